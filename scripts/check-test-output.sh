#!/usr/bin/env bash
# After a test run: none of the secrets the tests hand to the daemon may
# appear anywhere in what the run printed (ctest keeps it all in LastTest.log).
# usage: scripts/check-test-output.sh BUILD_DIR
set -u
log="$1/Testing/Temporary/LastTest.log"
[ -f "$log" ] || { echo "check-test-output: no $log"; exit 1; }
secrets=(it-hook-secret demo-api-secret demo-hook-secret corpus-secret hook-secret-one-Zq81
	 hook-secret-two-Wx42 admin-token-Pv77 cli-admin-token admin-tok-123 old-secret new-secret)
leaks=0
for s in "${secrets[@]}"; do
	for form in "$s" "$(printf %s "$s" | base64)"; do
		if grep -qF -- "$form" "$log"; then
			echo "check-test-output: a test secret (${s:0:6}…) appears in the test output:"
			grep -nF -- "$form" "$log" | head -3
			leaks=$((leaks + 1))
		fi
	done
done
# the API key travels as base64("id:secret")
id=$(sed -n 's/.*"api_key_id": *"\([^"]*\)".*/\1/p' "$(dirname "$0")/../tests/data/mock/demo.json" | head -1)
if grep -qF -- "$(printf '%s:demo-api-secret' "$id" | base64)" "$log"; then
	echo "check-test-output: the API key's bearer token appears in the test output"
	leaks=$((leaks + 1))
fi
if [ "$leaks" -gt 0 ]; then exit 1; fi
echo "check-test-output: no secret in $(wc -l <"$log") lines of test output"
