#!/usr/bin/env bash
# Run every libFuzzer harness for a bounded time.
# usage: scripts/fuzz.sh BUILD_DIR SECONDS
# Each starts from the seeds in tests/fuzz/seeds/<target>/ (which always run
# first, so they are regression cases too) and grows a scratch corpus in
# BUILD_DIR. A crash stops the run; add the input it saved to the seeds
# (and, for HTTP, a case to tests/data/http) when fixing it.
set -u
BUILD=$1
SECONDS_EACH=$2
SRC=$(cd "$(dirname "$0")/.." && pwd)
status=0
for t in event auth config lqs http objects; do
	work="$BUILD/fuzz-corpus/$t"
	mkdir -p "$work"
	extra=()
	case $t in
	http) extra=(-max_len=65536 -detect_leaks=0) ;;   # leaks: checked by the sanitizer test runs
	*) extra=(-max_len=16384) ;;
	esac
	echo "== fuzz_$t for ${SECONDS_EACH}s"
	if ! "$BUILD/fuzz_$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$BUILD/fuzz-crash-$t-" -print_final_stats=1 "${extra[@]}" \
		"$work" "$SRC/tests/fuzz/seeds/$t" >"$BUILD/fuzz-$t.log" 2>&1; then
		echo "fuzz_$t FAILED; the end of its log:"
		tail -40 "$BUILD/fuzz-$t.log"
		status=1
	else
		grep -E '^stat::number_of_executed_units|^Done' "$BUILD/fuzz-$t.log" | tr '\n' ' '
		echo
	fi
done
exit $status
