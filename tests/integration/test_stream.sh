#!/usr/bin/env bash
# GET /events/stream and the CLI that follows it: every status change in
# order with its SSE id, filters, heartbeats, Last-Event-ID, the admin
# token, the subscriber limit, a stalled subscriber cut without slowing
# anyone, `watch`, `status ID --watch` exit codes, and SIGTERM.
. "$(dirname "$0")/lib.sh"

start_demo_mock
cat >"$T_DIR/s.conf" <<CONF
[http]
stream_max_subscribers = 4
stream_buffer = 256K
stream_heartbeat = 1s
[auth]
admin_token = stream-admin
[objects]
objects_secret = obj-token
[watch runs]
bucket = my-bucket
prefix = runs/
count = 2
quiet = 1h
CONF
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/s.db" --config "$T_DIR/s.conf"
ADM="Authorization: Bearer stream-admin"
CLI=("$LQS_HOOKD" --config "$T_DIR/s.conf" --listen "127.0.0.1:$PORT")
metric() { curl -s -H "$ADM" "$BASE/metrics" | awk -v s="$1" '$1 == s {print $2}'; }
# the messages of an SSE capture, one JSON line each: {id, event, data}
messages() { awk '/^id: /{id=substr($0,5)} /^event: /{ev=substr($0,8)} /^data: /{print "{\"id\":\"" id "\",\"event\":\"" ev "\",\"data\":" substr($0,7) "}"}' "$1"; }

check "the stream needs the admin token" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/events/stream")" 401

curl -sN -H "$ADM" "$BASE/events/stream" >"$T_DIR/a.out" &
APID=$!; T_PIDS+=("$APID")
curl -sN -H "$ADM" "$BASE/events/stream?state=completed,failed" >"$T_DIR/b.out" &
BPID=$!; T_PIDS+=("$BPID")
"${CLI[@]}" watch --format json >"$T_DIR/w.out" 2>"$T_DIR/w.err" &
WPID=$!; T_PIDS+=("$WPID")
wait_until 10 bash -c "[ \$(curl -s -H '$ADM' '$BASE/metrics' | awk '\$1 == \"lqs_hookd_stream_subscribers\" {print \$2}') = 3 ]" ||
	fail "three subscribers"
check "the stream starts with its retry interval" "$(head -1 "$T_DIR/a.out")" "retry: 2000"

post "$(event_json finalizing digestion "$DIG" processing)" -H "$AUTH"
ok_id=$(jq -r .event_id <<<"$BODY")
"${CLI[@]}" status "$ok_id" --watch --timeout 20s >"$T_DIR/sw.out" 2>&1
check "status --watch: exit 0 once the event completed" "$? $(tail -1 "$T_DIR/sw.out")" "0 $ok_id: completed"
post "$(event_json finalizing digestion 00000000-0000-4000-8000-0000000000ff processing)" -H "$AUTH"
bad_id=$(jq -r .event_id <<<"$BODY")
"${CLI[@]}" status "$bad_id" --watch --timeout 20s >"$T_DIR/sf.out" 2>&1
check "status --watch: exit 1 when it failed" "$? $(tail -1 "$T_DIR/sf.out")" "1 $bad_id: failed"
wait_until 10 bash -c "grep -q '\"change\":\"failed\"' '$T_DIR/b.out'" || fail "the failure streamed"

check "every change of the completed event, in order" \
	"$(messages "$T_DIR/a.out" | jq -r --arg e "$ok_id" 'select(.data.event_id == $e) | "\(.event)/\(.data.state)"' | paste -sd' ')" \
	"received/queued started/running completed/completed"
check "... with what a reader filters on" \
	"$(messages "$T_DIR/a.out" | jq -c --arg e "$ok_id" 'select(.data.event_id == $e and .event == "started") | [.data.process_type, .data.resource_id, .data.handler, .data.attempt]')" \
	"[\"digestion\",\"$DIG\",\"digestion_stats\",1]"
check "SSE ids: one per message, increasing" \
	"$(messages "$T_DIR/a.out" | jq -r .id | awk -F- '{ t = $1 + $2 + $3; if (t <= last) bad = 1; last = t } END { print (NR > 0 && !bad) }')" 1
check "a state filter: only the finished ones" \
	"$(messages "$T_DIR/b.out" | jq -r '"\(.event) \(.data.event_id)"' | paste -sd,)" "completed $ok_id,failed $bad_id"
check "the failure says why" "$(messages "$T_DIR/b.out" | jq -r 'select(.event == "failed") | .data.error | length > 0')" true
check "watch --format json: the same changes" \
	"$(jq -r --arg e "$ok_id" 'select(.event_id == $e) | .change' "$T_DIR/w.out" | paste -sd' ')" "received started completed"
sleep 2
check_contains "heartbeats while nothing happens" "$(cat "$T_DIR/a.out")" ": heartbeat"

# --- object arrivals: a batch opened, then closed (its trigger event) ---
OBJ_TOKEN=obj-token opost "$(s3_record runs/r1/a.bag s1)"
batch=$(jq -r '.objects[0].batch_id' <<<"$BODY")
OBJ_TOKEN=obj-token opost "$(s3_record runs/r1/b.bag s2)"
trigger=$(curl -s -H "$ADM" "$BASE/batches/$batch" | jq -r .trigger_event_id)
wait_until 10 bash -c "grep -q '\"event_id\":\"$trigger\"' '$T_DIR/a.out'" || fail "the batch's trigger streamed"
check "a batch: opened (watch, bucket, prefix), then closed with its trigger event" \
	"$(messages "$T_DIR/a.out" | jq -r --arg b "$batch" --arg t "$trigger" 'select(.data.batch_id == $b or .data.event_id == $t) | "\(.event):\(.data.watch // .data.process_type):\(.data.prefix // .data.state)"' | head -2 | paste -sd' ')" \
	"batch_opened:runs:runs/r1/ batch_closed:batch:completed"

# --- Last-Event-ID: what came after it, read back from the store ---
first=$(messages "$T_DIR/a.out" | jq -r .id | head -1)
curl -sN --max-time 2 -H "$ADM" -H "Last-Event-ID: $first" "$BASE/events/stream" >"$T_DIR/r.out"
check "reconnecting with Last-Event-ID: everything after it, nothing twice" \
	"$(messages "$T_DIR/r.out" | jq -r .id | paste -sd' ')" "$(messages "$T_DIR/a.out" | jq -r .id | tail -n +2 | paste -sd' ')"
CODE=$(curl -s -o "$T_DIR/e.json" -w '%{http_code}' --max-time 5 -H "$ADM" -H 'Last-Event-ID: 12;drop' "$BASE/events/stream")
check "a Last-Event-ID this stream never sent: 400" "$CODE $(jq -r .detail "$T_DIR/e.json")" \
	"400 Last-Event-ID: not an id this stream sent (R-S-B)"

# --- the subscriber limit ---
# the streams of the status --watch and Last-Event-ID clients above are
# closed; the daemon lets them go at its next look (within a second): three
# remain
wait_until 10 bash -c "[ \$(curl -s -H '$ADM' '$BASE/metrics' | awk '\$1 == \"lqs_hookd_stream_subscribers\" {print \$2}') = 3 ]" ||
	fail "the closed streams let go"
curl -sN -H "$ADM" "$BASE/events/stream" >/dev/null &
CPID=$!; T_PIDS+=("$CPID")
wait_until 10 bash -c "[ \$(curl -s -H '$ADM' '$BASE/metrics' | awk '\$1 == \"lqs_hookd_stream_subscribers\" {print \$2}') = 4 ]" ||
	fail "four subscribers"
refused=$(metric lqs_hookd_stream_refused_total)
CODE=$(curl -s -o "$T_DIR/e.json" -w '%{http_code}' --max-time 5 -H "$ADM" "$BASE/events/stream")
check "one more than stream_max_subscribers: 503, and why" "$CODE $(jq -r .detail "$T_DIR/e.json")" \
	"503 too many stream subscribers (stream_max_subscribers is 4); retry later"
check "counted" "$(($(metric lqs_hookd_stream_refused_total) - refused))" 1
kill "$CPID" "$WPID"; wait "$CPID" "$WPID" 2>/dev/null

# --- a subscriber that stops reading is cut; the others get everything ---
python3 "$LQS_SRC/tests/tools/stream_load.py" stall "$PORT" /events/stream stream-admin 60 &
SPID=$!; T_PIDS+=("$SPID")
wait_until 10 bash -c "[ \$(curl -s -H '$ADM' '$BASE/metrics' | awk '\$1 == \"lqs_hookd_stream_subscribers\" {print \$2}') = 3 ]" ||
	fail "the stalled one subscribed" "$(curl -s -H "$ADM" "$BASE/metrics" | grep -E "stream_sub|notifications")"
check "800 events accepted while one subscriber stalls" \
	"$(python3 "$LQS_SRC/tests/tools/stream_load.py" post "$PORT" /events 800 00000000-0000-4000-8001- "${AUTH#Authorization: }")" 800
wait_until 20 bash -c "[ \"\$(curl -s -H '$ADM' '$BASE/metrics' | awk '\$1 == \"lqs_hookd_stream_cut_total\" {print \$2}')\" = 1 ]" ||
	fail "the stalled subscriber was cut"
check_contains "the cut is logged" "$(cat "$HOOKD_LOG")" "stream: a subscriber was cut:"
wait_until 10 bash -c "[ \$(curl -s -H '$ADM' '$BASE/metrics' | awk '\$1 == \"lqs_hookd_stream_subscribers\" {print \$2}') = 2 ]" ||
	fail "its connection closed at once"
wait_until 20 bash -c "[ \$(grep -c '^event: received' '$T_DIR/a.out') = 802 ]" || fail "all 802 arrivals streamed"
check "the reader that keeps up got every arrival" "$(grep -c '^event: received' "$T_DIR/a.out")" 802

# --- status --watch gives up at --timeout ---
mock_fault '{"method":"GET","path":"digestions/00000000-0000-4000-8002-000000000001","status":503,"count":1000}'
post "$(event_json finalizing digestion 00000000-0000-4000-8002-000000000001 processing)" -H "$AUTH"
"${CLI[@]}" status "$(jq -r .event_id <<<"$BODY")" --watch --timeout 2s >"$T_DIR/st.out" 2>&1
check "status --watch: exit 3 when still not finished at --timeout" "$? $(tail -1 "$T_DIR/st.out")" \
	"3 lqs-hookd: $(jq -r .event_id <<<"$BODY") has not finished within --timeout"
out=$("${CLI[@]}" status "$ok_id" --timeout 2s 2>&1); rc=$?
check "status --watch --timeout alone is a usage error" "$rc $out" "2 lqs-hookd: --timeout goes with --watch"

# --- SIGTERM ends the streams cleanly and promptly ---
t0=$(date +%s)
stop_hookd TERM
check "SIGTERM with subscribers: exit 0, soon" "$HOOKD_RC $(($(date +%s) - t0 < 10))" "0 1"
wait_until 5 bash -c "! kill -0 $APID 2>/dev/null" || fail "the subscriber's stream ended"
wait "$APID"
check "... as a stream that ended, not a broken one (curl exit 0)" "$?" 0
finish
