#!/usr/bin/env bash
# The main job end to end: a mock LogQS with a sample datastore, lqs-hookd
# pointed at it, one hook event posted with curl exactly as LogQS posts it.
set -euo pipefail

BUILD=${1:-build}
SRC=$(cd "$(dirname "$0")/.." && pwd)
FIXTURE="$SRC/tests/data/mock/demo.json"
WORK=$(mktemp -d /tmp/lqs-demo-XXXXXX)
PIDS=()

cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

wait_for() { # SECONDS COMMAND...
	local n=$(($1 * 20)); shift
	for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
	return 1
}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

DS=$(jq -r .datastore_id "$FIXTURE")
DIG=$(jq -r '.digestions[0].id' "$FIXTURE")
LOG=$(jq -r '.logs[0].id' "$FIXTURE")

say "starting the mock LogQS (sample datastore, 2 parts per list page)"
"$BUILD/lqs-mock" --port 0 --fixture "$FIXTURE" --max-page 2 >"$WORK/mock.out" 2>&1 &
PIDS+=($!)
wait_for 10 grep -q '^PORT=' "$WORK/mock.out"
MOCK="http://127.0.0.1:$(sed -n 's/^PORT=//p' "$WORK/mock.out")"
echo "mock LogQS at $MOCK; the log before:"
curl -s "$MOCK/_mock/logs/$LOG"; echo

say "starting lqs-hookd"
export LQS_EXPECTED_SECRET=demo-hook-secret
export LQS_API_URL=$MOCK LQS_DATASTORE_ID=$DS
export LQS_API_KEY_ID=$(jq -r .api_key_id "$FIXTURE") LQS_API_KEY_SECRET=$(jq -r .api_key_secret "$FIXTURE")
"$BUILD/lqs-hookd" --listen 127.0.0.1:0 --store "$WORK/lqs-hookd.db" 2>"$WORK/hookd.log" &
PIDS+=($!)
wait_for 10 grep -q '"listening on' "$WORK/hookd.log"
PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/hookd.log" | grep -o '[0-9]*$')
URL="http://127.0.0.1:$PORT"
echo "lqs-hookd at $URL"

say "LogQS posts the hook event (digestion $DIG reached finalizing)"
BODY="{\"previous_state\":\"processing\",\"current_state\":\"finalizing\",\"process_type\":\"digestion\",\"resource_id\":\"$DIG\",\"datastore_id\":\"$DS\"}"
echo "curl -X POST $URL/events -H 'Content-Type: application/json' \\"
echo "     -H \"Authorization: Bearer \$(echo -n \$LQS_EXPECTED_SECRET | base64)\" -d '$BODY'"
RESP=$(curl -s -X POST "$URL/events" -H 'Content-Type: application/json' \
	-H "Authorization: Bearer $(echo -n "$LQS_EXPECTED_SECRET" | base64)" -d "$BODY")
echo "$RESP"
ID=$(jq -r .event_id <<<"$RESP")

if ! wait_for 30 bash -c "curl -s '$URL/events/$ID' | jq -e .done"; then
	echo "event did not finish in 30 s; daemon log:" >&2
	cat "$WORK/hookd.log" >&2
	exit 1
fi

say "event status (GET /events/$ID)"
curl -s "$URL/events/$ID?pretty"; echo

say "event history (GET /events/$ID/history)"
curl -s "$URL/events/$ID/history" | jq -r '.history[] |
	"\(.started_at)  \(.step | . + " " * (9 - length))  \(if .detail.method then "\(.detail.method) \(.detail.path) -> \(.detail.status) (\(.duration_ms) ms)" else (.detail // {} | tostring) end)"'

say "digestion state in LogQS"
curl -s "$MOCK/_mock/state" | jq -r --arg d "$DIG" '.digestions[$d].state'

say "log in LogQS: context keeps its keys and gains digestion_stats"
curl -s "$MOCK/_mock/logs/$LOG"; echo

STATE=$(curl -s "$MOCK/_mock/state" | jq -r --arg d "$DIG" '.digestions[$d].state')
[ "$STATE" = completed ] || { echo "digestion is $STATE, expected completed" >&2; exit 1; }
say "done: both processes stopped"
