#!/usr/bin/env bash
# The step before LogQS, end to end: S3 object events posted with curl as S3
# posts them; a folder of files becomes one LogQS log with an ingestion per
# file, and a folder whose _SUCCESS marker lands starts a REST workflow.
# Against the mock LogQS (which also plays the REST target).
set -euo pipefail

BUILD=${1:-build}
SRC=$(cd "$(dirname "$0")/.." && pwd)
FIXTURE="$SRC/tests/data/mock/objects.json"
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

say "starting the mock LogQS (an object store for my-bucket; it also records REST calls)"
"$BUILD/lqs-mock" --port 0 --fixture "$FIXTURE" >"$WORK/mock.out" 2>&1 &
PIDS+=($!)
wait_for 10 grep -q '^PORT=' "$WORK/mock.out"
MOCK="http://127.0.0.1:$(sed -n 's/^PORT=//p' "$WORK/mock.out")"

say "starting lqs-hookd with two watches"
cat >"$WORK/demo.conf" <<CONF
[objects]
objects_secret = demo-objects-token

[watch instruments]      ; 3 files of a run: one LogQS log, an ingestion each
bucket = my-bucket
prefix = instruments/
prefix_depth = 3
count = 3
trigger = lqs_ingest
group = Instruments

[watch datasets]         ; a job's _SUCCESS: one REST workflow execution
bucket = my-bucket
prefix = datasets/
suffix = _SUCCESS
trigger = http_trigger
url = $MOCK/target/api/v1/workflow/execute
body = {"workflowId": 7, "programParameters": "--var datapath={path}"}
CONF
sed -n '/^\[watch/,$p' "$WORK/demo.conf"
export LQS_EXPECTED_SECRET=demo-hook-secret LQS_API_URL=$MOCK LQS_DATASTORE_ID=$(jq -r .datastore_id "$FIXTURE")
export LQS_API_KEY_ID=$(jq -r .api_key_id "$FIXTURE") LQS_API_KEY_SECRET=$(jq -r .api_key_secret "$FIXTURE")
"$BUILD/lqs-hookd" --config "$WORK/demo.conf" --listen 127.0.0.1:0 --store "$WORK/lqs-hookd.db" 2>"$WORK/hookd.log" &
PIDS+=($!)
wait_for 10 grep -q '"listening on' "$WORK/hookd.log"
URL="http://127.0.0.1:$(grep -o 'listening on 127.0.0.1:[0-9]*' "$WORK/hookd.log" | grep -o '[0-9]*$')"

post() { # KEY (form-encoded, as S3 writes it)
	local body
	body=$(printf '{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"my-bucket"},"object":{"key":"%s","size":1048576,"sequencer":"%s"}}}]}' "$1" "$(date +%s%N)")
	curl -s -X POST "$URL/objects" -H 'Content-Type: application/json' -H 'Authorization: Bearer demo-objects-token' -d "$body"
}

say "S3 announces 3 files of run 7 of robot cam1 (one curl each)"
echo "curl -X POST $URL/objects -H 'Authorization: Bearer demo-objects-token' -d '{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"my-bucket\"},\"object\":{\"key\":\"instruments/cam1/run+7/f1.mcap\",…}}}]}'"
for i in 1 2 3; do LAST=$(post "instruments/cam1/run+7/f$i.mcap"); jq -c '.objects[0] | {key, outcome, batch_id}' <<<"$LAST"; done
BATCH=$(jq -r '.objects[0].batch_id' <<<"$LAST")

say "the batch (GET /batches/$BATCH): closed on its count"
curl -s "$URL/batches/$BATCH" | jq '{path, state, close_reason, objects, trigger_event_id, keys: [.keys[].key]}'
EV=$(curl -s "$URL/batches/$BATCH" | jq -r .trigger_event_id)
wait_for 30 bash -c "curl -s '$URL/events/$EV' | jq -e .done" || { cat "$WORK/hookd.log" >&2; exit 1; }

say "its trigger (lqs_ingest) in LogQS: the group, the log, an ingestion per file"
curl -s "$URL/events/$EV" | jq '{state, result: (.result | {log_name, created, existing})}'
curl -s "$MOCK/_mock/state" | jq '{groups: [.groups[].name], logs: [.logs[] | .name], ingestions: [.ingestions[] | {object_key, state}]}'

say "a Spark job finishes datasets/2026-12-02/: its _SUCCESS lands"
LAST=$(post "datasets/2026-12-02/_SUCCESS")
jq -c '.objects[0] | {key, outcome}' <<<"$LAST"
EV=$(curl -s "$URL/batches/$(jq -r '.objects[0].batch_id' <<<"$LAST")" | jq -r .trigger_event_id)
wait_for 30 bash -c "curl -s '$URL/events/$EV' | jq -e .done" || { cat "$WORK/hookd.log" >&2; exit 1; }

say "the REST workflow call (http_trigger) the target received, and its answer"
curl -s "$MOCK/_mock/requests" | jq -c '[.requests[] | select(.path | startswith("target/")) | {method, url, body}]'
curl -s "$URL/events/$EV" | jq -c '{state, result}'
STATE=$(curl -s "$URL/events/$EV" | jq -r .state)
[ "$STATE" = completed ] || { echo "trigger is $STATE, expected completed" >&2; exit 1; }
say "done: both processes stopped"
