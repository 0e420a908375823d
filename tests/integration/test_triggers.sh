#!/usr/bin/env bash
# http_trigger: a folder whose _SUCCESS marker lands starts one REST
# workflow execution with the folder as its parameter; a batch of objects
# sends the default EventBridge-shaped event; a target that fails is
# retried, one that refuses is a dead letter until replayed; kill -9 while
# the trigger waits loses nothing and calls once.
. "$(dirname "$0")/lib.sh"

start_mock
OBJ_TOKEN=obj-token; TOK=$OBJ_TOKEN
printf 'eyJhbGciOi.jwt.token\n' >"$T_DIR/target.token"
hide "$TOK" eyJhbGciOi.jwt.token
cat >"$T_DIR/t.conf" <<CONF
[objects]
objects_secret = $TOK

[worker]
retry_base = 200ms
retry_max_delay = 200ms

[watch datasets]
bucket = my-bucket
prefix = datasets/
suffix = _SUCCESS
trigger = http_trigger
url = $MOCK/target/api/v1/workflow/execute
body = {"workflowId": 7, "programParameters": "--var datapath={path}"}
token_file = $T_DIR/target.token
token_header = token

[route forward]
process_type = digestion
state = completed
handler = http_trigger
url = $MOCK/target/hooks
body = {"digestion": "{resource_id}", "state": "{current_state}", "as_sent": {event}}

[watch instruments]
bucket = my-bucket
prefix = instruments/
count = 3
trigger = http_trigger
url = $MOCK/target/events
headers = {"X-Source": "lqs-hookd"}
CONF
HOOKD_ENV="LQS_RETRY_COUNT=1" start_hookd "$T_DIR/t.db" --config "$T_DIR/t.conf"
targets() { curl -s "$MOCK/_mock/requests" | jq -c --arg p "$1" '[.requests[] | select(.path == $p)]'; }

# --- _SUCCESS → one workflow execution with the folder ---
opost "$(s3_record 'datasets/run+42/part-0000.csv' 01)"
check "a data file the watch does not take (suffix)" "$(jq -r '.objects[0].outcome' <<<"$BODY")" not_routed
opost "$(s3_record 'datasets/run+42/_SUCCESS' 02)"
check "the marker: 202, batch closed" "$CODE $(jq -r '.objects[0].outcome' <<<"$BODY")" "202 marker"
ev=$(last_trigger)
wait_done "$ev" 10 || fail "trigger event finished"
get "/events/$ev"
check "the trigger completed with the target's answer" "$(jq -c '[.state, .handler, .result.status, .result.answer]' <<<"$BODY")" \
	'["completed","http_trigger",200,162]'
calls=$(targets target/api/v1/workflow/execute)
check "one execute call" "$(jq length <<<"$calls")" 1
check "its body: the folder as the workflow's parameter" "$(jq -c '.[0].body' <<<"$calls")" \
	'{"workflowId":7,"programParameters":"--var datapath=s3://my-bucket/datasets/run 42/"}'
check "the answer is in the history too" \
	"$(curl -s "$BASE/events/$ev/history" | jq -c '[.history[] | select(.step == "outcome")][0].detail.result')" \
	"{\"url\":\"$MOCK/target/api/v1/workflow/execute\",\"status\":200,\"answer\":162}"
check "the token in its own header, from the file" "$(jq -r '.[0].headers.token' <<<"$calls")" eyJhbGciOi.jwt.token
check "JSON" "$(jq -r '.[0].headers["content-type"]' <<<"$calls")" application/json

# --- 3 objects → the default event, with headers; a failing target is retried ---
mock_fault '{"method":"POST","path":"target/events","status":503,"count":2}'
for i in 1 2 3; do opost "$(s3_record "instruments/cam1/f$i.bin" "i$i")"; done
ev=$(last_trigger)
wait_done "$ev" 15 || fail "trigger after the target recovered"
calls=$(targets target/events)
check "503, 503, then 200: the trigger completed" "$(jq -c '[.[] | .at] | length' <<<"$calls") $(curl -s "$BASE/events/$ev" | jq -r .state)" \
	"3 completed"
check "the default body: package-objects-ready, EventBridge-shaped" \
	"$(jq -c '.[-1].body | [.["detail-type"], .resources[0], .detail.bucket, .detail.prefix, .detail.count, .detail.reason]' <<<"$calls")" \
	'["package-objects-ready","arn:aws:s3:::my-bucket","my-bucket","instruments/cam1/",3,"count"]'
check "the configured header" "$(jq -r '.[-1].headers["x-source"]' <<<"$calls")" lqs-hookd

# --- a target that refuses (400): a dead letter, replayed once fixed ---
mock_fault '{"method":"POST","path":"target/events","status":400,"count":-1}'
for i in 4 5 6; do opost "$(s3_record "instruments/cam2/f$i.bin" "i$i")"; done
ev=$(last_trigger)
wait_done "$ev" 10 || fail "refused trigger finished"
check "400: failed, the error says who answered what" "$(curl -s "$BASE/events/$ev" | jq -r '[.state, .error] | @tsv')" \
	"failed	HTTP400: trigger POST $MOCK/target/events: HTTP 400: {\"message\":\"[Injected] fault injected by lqs-mock\"}"
curl -s -X DELETE "$MOCK/_mock/faults" >/dev/null
"$LQS_HOOKD" --listen "127.0.0.1:$PORT" replay "$ev" >/dev/null
wait_done "$ev" 10 || fail "replayed trigger finished"
check "replayed: completed" "$(curl -s "$BASE/events/$ev" | jq -r .state)" completed

# --- kill -9 while the trigger waits for its target: called once, after ---
mock_fault '{"method":"POST","path":"target/events","status":503,"count":-1}'
for i in 7 8 9; do opost "$(s3_record "instruments/cam3/f$i.bin" "i$i")"; done
ev=$(last_trigger)
wait_until 10 bash -c "curl -s '$BASE/events/$ev' | jq -e '.state == \"retrying\"'" || fail "trigger retrying"
stop_hookd KILL
curl -s -X DELETE "$MOCK/_mock/faults" >/dev/null
curl -s -X DELETE "$MOCK/_mock/requests" >/dev/null
HOOKD_ENV="LQS_RETRY_COUNT=1" start_hookd "$T_DIR/t.db" --config "$T_DIR/t.conf"
wait_done "$ev" 15 || fail "trigger finished after the restart"
check "after kill -9: completed, one successful call" \
	"$(curl -s "$BASE/events/$ev" | jq -r .state) $(targets target/events | jq '[.[] | select(.body.detail.prefix == "instruments/cam3/")] | length')" \
	"completed 1"
check "one trigger event for that batch" \
	"$(all_events process_type=batch | jq -r 'select(.event.prefix == "instruments/cam3/") | .event_id' | wc -l)" 1

# --- on a [route]: a LogQS hook event forwarded to another system ---
post "$(event_json completed digestion 7e6d5c4b-3a29-4187-a6b5-c4d3e2f1a0b9 finalizing)" -H "$AUTH"
check "a hook event routed to http_trigger: 202" "$CODE" 202
ev=$(jq -r .event_id <<<"$BODY")
wait_done "$ev" 10 || fail "forwarded"
check "it completed" "$(curl -s "$BASE/events/$ev" | jq -r '[.handler, .state] | @tsv')" "http_trigger	completed"
check "the target got the event's fields and the event as LogQS sent it" \
	"$(targets target/hooks | jq -c '.[0].body | [.digestion, .state, .as_sent.previous_state, .as_sent.hook_id]')" \
	'["7e6d5c4b-3a29-4187-a6b5-c4d3e2f1a0b9","completed","finalizing",null]'
stop_hookd TERM
printf '[route r]\nprocess_type = digestion\nstate = completed\nhandler = digestion_stats\nurl = http://x/\n' >"$T_DIR/bad.conf"
out=$(LQS_EXPECTED_SECRET=x "$LQS_HOOKD" --check-config -c "$T_DIR/bad.conf" 2>&1); rc=$?
check "--check-config: a key the route's handler does not take" "$rc $out" \
	"1 $T_DIR/bad.conf: route 'r': unknown key 'url' (not a setting of digestion_stats)"
printf '[route r]\nprocess_type = digestion\nstate = completed\nhandler = lqs_ingest\n' >"$T_DIR/bad.conf"
out=$(LQS_EXPECTED_SECRET=x "$LQS_HOOKD" --check-config -c "$T_DIR/bad.conf" 2>&1); rc=$?
check "--check-config: a batch-only handler on a route" "$rc $out" \
	"1 $T_DIR/bad.conf:4: handler: 'lqs_ingest' runs closed batches (a [watch] trigger), not hook events"

# --- the configuration is checked: a bad template, a missing url ---
printf '[watch w]\nbucket = bbb\ntrigger = http_trigger\nurl = http://x/\nbody = {"a": "{nope}"}\n' >"$T_DIR/bad.conf"
out=$(LQS_EXPECTED_SECRET=x "$LQS_HOOKD" --check-config -c "$T_DIR/bad.conf" 2>&1); rc=$?
check "--check-config: an unknown placeholder" "$rc $out" \
	"1 $T_DIR/bad.conf: watch 'w': trigger http_trigger: unknown placeholder {nope} (known: {bucket}, {prefix}, {path}, {count}, {keys}, {batch_id}, {time}, {reason}, {watch}; for hook events {event}, {resource_id}, {process_type}, {current_state}, {previous_state}, {workflow_id}, {datastore_id}, {hook_id})"
printf '[watch w]\nbucket = bbb\ntrigger = http_trigger\n' >"$T_DIR/bad.conf"
out=$(LQS_EXPECTED_SECRET=x "$LQS_HOOKD" --check-config -c "$T_DIR/bad.conf" 2>&1); rc=$?
check "--check-config: no url" "$rc $out" "1 $T_DIR/bad.conf: watch 'w': trigger http_trigger: url: an http:// or https:// URL is required"

finish
