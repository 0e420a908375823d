#!/usr/bin/env bash
# The closing line of make test: test programs passed and failed over every
# ctest run (plain, sanitizers, clang) plus the fuzzers.
# usage: scripts/test-summary.sh FUZZ_STATUS BUILD_DIR...
set -u
fuzz_status=$1
shift
passed=0 failed=0
for b in "$@"; do
	log="$b/Testing/Temporary/LastTest.log"
	[ -f "$log" ] || continue
	passed=$((passed + $(grep -c '^Test Passed\.' "$log")))
	failed=$((failed + $(grep -c '^Test Failed\.' "$log")))
done
if [ "$fuzz_status" = 0 ]; then passed=$((passed + 5)); else failed=$((failed + 1)); fi
echo "summary: $passed passed, $failed failed"
[ "$failed" = 0 ]
