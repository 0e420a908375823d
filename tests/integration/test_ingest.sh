#!/usr/bin/env bash
# lqs_ingest: an instrument folder of files becomes one LogQS log with one
# ingestion per file, in the object store that holds the folder; a rerun
# (replay, a retry, a restart after kill -9) creates no second log and no
# second ingestion for a key.
. "$(dirname "$0")/lib.sh"

start_mock --fixture "$LQS_SRC/tests/data/mock/objects.json"
OBJ_TOKEN=obj-token; TOK=$OBJ_TOKEN
hide "$TOK"
cat >"$T_DIR/i.conf" <<CONF
[objects]
objects_secret = $TOK

[worker]
retry_base = 200ms
retry_max_delay = 200ms

[watch instruments]
bucket = my-bucket
prefix = instruments/
count = 5
trigger = lqs_ingest
group = Instruments
workflow_id = 11111111-2222-4333-8444-555555555555
CONF
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/i.db" --config "$T_DIR/i.conf"
logs_named() { mock_state | jq --arg n "$1" '[.logs[] | select(.name == $n)] | length'; }
ingestions_of() { mock_state | jq -c --arg n "$1" '(.logs[] | select(.name == $n) | .id) as $l | [.ingestions[] | select(.log_id == $l)] | sort_by(.object_key)'; }

# --- a folder of 5 files: one log, 5 ingestions ---
for i in 1 2 3 4 5; do opost "$(s3_record "instruments/cam1/run+7/f$i.mcap" "a$i")"; done
ev=$(last_trigger)
wait_done "$ev" 15 || fail "ingest trigger finished"
get "/events/$ev"
check "completed: 5 created, none existing" "$(jq -r '[.state, .handler, .result.created, .result.existing, .result.log_name] | @tsv' <<<"$BODY")" \
	"completed	lqs_ingest	5	0	instruments/cam1"
check "the object store whose key_prefix holds the folder (the longest enabled one)" \
	"$(jq -r .result.object_store_id <<<"$BODY")" 0b000000-0000-4000-8000-000000000002
check "one group, created" "$(mock_state | jq -c '[.groups[] | .name]')" '["Instruments"]'
check "one log in it" "$(logs_named instruments/cam1) $(mock_state | jq -r '(.groups[] | .id) as $g | [.logs[] | select(.name == "instruments/cam1") | .group_id == $g] | .[0]')" "1 true"
ing=$(ingestions_of instruments/cam1)
check "5 ingestions, queued, keys as S3 holds them, with the workflow" \
	"$(jq -c '[.[] | [.object_key, .state, .object_store_id[-1:], .workflow_id[0:8]]]' <<<"$ing")" \
	'[["instruments/cam1/run 7/f1.mcap","queued","2","11111111"],["instruments/cam1/run 7/f2.mcap","queued","2","11111111"],["instruments/cam1/run 7/f3.mcap","queued","2","11111111"],["instruments/cam1/run 7/f4.mcap","queued","2","11111111"],["instruments/cam1/run 7/f5.mcap","queued","2","11111111"]]'
check "it looked before creating each" \
	"$(mock_requests | jq '[.requests[] | select(.path == "ingestions" and .method == "GET")] | length')" 5

# --- replayed: nothing created twice ---
"$LQS_HOOKD" --listen "127.0.0.1:$PORT" replay "$ev" >/dev/null
wait_done "$ev" 15 || fail "replayed trigger finished"
check "replay: 0 created, 5 existing" "$(curl -s "$BASE/events/$ev" | jq -r '[.state, .result.created, .result.existing] | @tsv')" \
	"completed	0	5"
check "still one group, one log, 5 ingestions" \
	"$(mock_state | jq '.groups | length') $(logs_named instruments/cam1) $(ingestions_of instruments/cam1 | jq length)" "1 1 5"

# --- kill -9 in the middle of creating ingestions, then restart ---
mock_fault '{"method":"POST","path":"ingestions","delay_ms":1500,"count":2}'
for i in 1 2 3 4 5; do opost "$(s3_record "instruments/cam2/f$i.mcap" "b$i")"; done
ev=$(last_trigger)
wait_until 10 bash -c "curl -s '$MOCK/_mock/requests' | jq -e '[.requests[] | select(.method == \"POST\" and .path == \"ingestions\")] | length >= 7'" ||
	fail "creating the second folder's ingestions"
stop_hookd KILL
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/i.db" --config "$T_DIR/i.conf"
wait_done "$ev" 20 || fail "the trigger finished after the restart"
check "after kill -9: one log, 5 ingestions, each key once" \
	"$(logs_named instruments/cam2) $(ingestions_of instruments/cam2 | jq '[.[].object_key] | unique | length') $(ingestions_of instruments/cam2 | jq length)" \
	"1 5 5"
check "completed" "$(curl -s "$BASE/events/$ev" | jq -r .state)" completed

# --- kill -9 once the batch is closed, before its trigger did anything ---
mock_fault '{"method":"GET","path":"objectStores","delay_ms":3000,"count":1}'
stores_calls() { curl -s "$MOCK/_mock/requests" | jq '[.requests[] | select(.path == "objectStores")] | length'; }
before=$(stores_calls)
for i in 1 2 3 4 5; do opost "$(s3_record "instruments/cam3/f$i.mcap" "c$i")"; done
ev=$(last_trigger)
wait_until 10 bash -c "[ \$(curl -s '$MOCK/_mock/requests' | jq '[.requests[] | select(.path == \"objectStores\")] | length') -gt $before ]" ||
	fail "the trigger started (its first call hangs)"
stop_hookd KILL
check "killed before anything was created" "$(logs_named instruments/cam3)" 0
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/i.db" --config "$T_DIR/i.conf"
wait_done "$ev" 20 || fail "the trigger ran after the restart"
check "after the restart: exactly one log, 5 ingestions" \
	"$(logs_named instruments/cam3) $(ingestions_of instruments/cam3 | jq length)" "1 5"
check "one trigger event for the batch" "$(all_events process_type=batch | jq -r 'select(.event.prefix == "instruments/cam3/") | .event_id' | wc -l)" 1

# --- no object store for the bucket: a dead letter that says why ---
printf '[objects]\nobjects_secret = %s\n[watch other]\nbucket = lonely-bucket\ncount = 1\ntrigger = lqs_ingest\ngroup = G\n' "$TOK" \
	>"$T_DIR/o.conf"
stop_hookd TERM
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/o.db" --config "$T_DIR/o.conf"
opost '{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"lonely-bucket"},"object":{"key":"a/b/c","sequencer":"1"}}}]}'
ev=$(last_trigger)
wait_done "$ev" 10 || fail "trigger finished"
check "no store: failed, saying so" "$(curl -s "$BASE/events/$ev" | jq -r '[.state, .error] | @tsv')" \
	"failed	NoObjectStore: no enabled LogQS object store holds s3://lonely-bucket/a/b/"
stop_hookd TERM

finish
