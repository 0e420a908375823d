#!/usr/bin/env bash
# Never lose an event (part A): a LogQS outage, one attempt at a time per
# resource, dead letters, listing, replay, duplicates, retention, admin access.
. "$(dirname "$0")/lib.sh"

# ---------- LogQS down (connection refused) for a while, then up ----------
# a port outside the kernel's ephemeral range, so that no other test's
# server takes it while the mock is down
port=$(quiet_port) || { echo "no free port"; exit 1; }
start_mock --synthetic 2x3x3 --key-id "$KEY_ID" --key-secret "$KEY_SECRET" --datastore "$DS" --port "$port"
digs=$(curl -s "$MOCK/_mock/expected" | jq -r '.digestion_ids[]')
kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null
HOOKD_ENV="$(mock_env) LQS_RETRY_COUNT=0 LQS_HOOKD_RETRY_BASE=300ms LQS_HOOKD_RETRY_MAX_DELAY=1s LQS_HOOKD_MAX_ATTEMPTS=100" \
	start_hookd "$T_DIR/outage.db"
ids=()
for d in $digs; do
	post "$(event_json finalizing digestion "$d")" -H "$AUTH"
	check "accepted while LogQS is down" "$CODE" 202
	ids+=("$(jq -r .event_id <<<"$BODY")")
done
sleep 3
get "/events/${ids[0]}"
check "retrying while LogQS is down" "$(jq -r '.state' <<<"$BODY")" retrying
check "several attempts made" "$(jq '.attempts >= 3' <<<"$BODY")" true
check "error says why" "$(jq -r '.error' <<<"$BODY" | cut -d: -f1)" ConnectionError
start_mock --synthetic 2x3x3 --key-id "$KEY_ID" --key-secret "$KEY_SECRET" --datastore "$DS" --port "$port"
for id in "${ids[@]}"; do
	wait_done "$id" 20 || fail "event $id finished after the outage"
	get "/events/$id"
	check "completed after the outage" "$(jq -r .trace_event_status <<<"$BODY")" OK
done
check "every digestion completed in LogQS" "$(mock_state | jq -r '[.digestions[].state] | unique | join(",")')" completed
get "/events/${ids[0]}/history"
spacing=$(jq '[.history[] | select(.step=="outcome" and .detail.state=="retrying")] | length' <<<"$BODY")
check "history shows the retries" "$([ "$spacing" -ge 3 ] && echo yes)" yes
# backoff: retry_base 300 ms doubling up to 1 s, jitter adds at most 25%
gaps=$(jq -r '[.history[] | select(.step=="attempt") | .started_at] | .[]' <<<"$BODY" |
	sed -E 's/^([0-9-]+)T([0-9:]+)\.([0-9]{3})Z$/\1 \2 \3/' |
	while read -r d t ms; do echo $(( $(date -u -d "$d $t" +%s) * 1000 + 10#$ms )); done |
	awk 'NR > 1 { printf "%d ", $1 - prev } { prev = $1 }')
first=$(awk '{print $1}' <<<"$gaps")
check "first retry after about retry_base ($first ms)" "$([ "$first" -ge 280 ] && [ "$first" -le 1000 ] && echo yes)" yes
late=$(awk '{print $3}' <<<"$gaps")
check "later retries capped near retry_max_delay ($late ms)" "$([ -n "$late" ] && [ "$late" -ge 900 ] && [ "$late" -le 1800 ] && echo yes)" yes
stop_hookd TERM

# ---------- one at a time per resource; different resources overlap ----------
start_mock --synthetic 2x3x2 --key-id "$KEY_ID" --key-secret "$KEY_SECRET" --datastore "$DS"
d1=$(curl -s "$MOCK/_mock/expected" | jq -r '.digestion_ids[0]')
d2=$(curl -s "$MOCK/_mock/expected" | jq -r '.digestion_ids[1]')
mock_fault '{"method":"GET","path":"digestions/","delay_ms":400}'
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/serial.db"
post "$(event_json finalizing digestion "$d1" processing)" -H "$AUTH"; a=$(jq -r .event_id <<<"$BODY")
post "$(event_json finalizing digestion "$d1")" -H "$AUTH"; b=$(jq -r .event_id <<<"$BODY")
post "$(event_json finalizing digestion "$d2")" -H "$AUTH"; c=$(jq -r .event_id <<<"$BODY")
for id in "$a" "$b" "$c"; do wait_done "$id" 30 || fail "event $id finished"; done
a_end=$(history_ms "$a" outcome); b_start=$(history_ms "$b" attempt)
check "same resource: second starts after first ends" "$([ "$b_start" -ge "$a_end" ] && echo yes)" yes
a_start=$(history_ms "$a" attempt); c_start=$(history_ms "$c" attempt); c_end=$(history_ms "$c" outcome)
check "different resources overlap" "$([ "$c_start" -lt "$a_end" ] && [ "$a_start" -lt "$c_end" ] && echo yes)" yes
# the LogQS calls of the two d1 events never interleave
order=$(mock_requests | jq -r --arg d "$d1" '[.requests[] | select(.path | startswith("digestions/" + $d)) | .method + " " + .path] | .[]')
check "calls for one digestion in one block" "$(tail -n1 <<<"$order")" "GET digestions/$d1"
get "/events/$b"
check "second delivery saw the work done" "$(jq -r .result.status <<<"$BODY")" already_completed
stop_hookd TERM

# ---------- dead letters, listing, replay ----------
start_demo_mock
mock_fault "{\"method\":\"PATCH\",\"path\":\"logs/$LOG_ID\",\"status\":403,\"count\":1}"
HOOKD_ENV="$(mock_env) LQS_HOOKD_ON_FAILURE=leave" start_hookd "$T_DIR/dead.db"
post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"; dead=$(jq -r .event_id <<<"$BODY")
wait_done "$dead" 20 || fail "dead letter finished"
for i in 1 2 3 4 5; do
	post "$(event_json ready ingestion "0000000$i-0000-0000-0000-000000000000")" -H "$AUTH"
done
get "/events?state=failed"
check "state=failed lists the dead letter" "$(jq -r '[.data[].event_id] | join(",")' <<<"$BODY")" "$dead"
get "/events?process_type=ingestion&limit=2"
check "page 1 of 3" "$(jq '.data | length' <<<"$BODY")" 2
cur=$(jq -r .next_cursor <<<"$BODY")
get "/events?process_type=ingestion&limit=2&cursor=$cur"
cur2=$(jq -r .next_cursor <<<"$BODY")
get "/events?process_type=ingestion&limit=2&cursor=$cur2"
check "last page" "$(jq -c '[(.data | length), .next_cursor]' <<<"$BODY")" '[1,null]'
get "/events?resource_id=00000003-0000-0000-0000-000000000000"
check "resource_id filter" "$(jq '.data | length' <<<"$BODY")" 1
get "/events?since=2000-01-01T00:00:00&state=completed"
check "since + state filter" "$(jq '.data | length' <<<"$BODY")" 5
get "/events?since=2999-01-01T00:00:00"
check "since in the future" "$(jq '.data | length' <<<"$BODY")" 0
get "/events?state=bogus"
check "bad state filter 400" "$CODE" 400
get "/events?limit=0"
check "bad limit 400" "$CODE" 400
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/events/$dead/replay")
check "replay accepted" "$code" 202
wait_done "$dead" 20 || fail "replayed event finished"
get "/events/$dead"
check "replayed event completed" "$(jq -c '[.trace_event_status, .attempts]' <<<"$BODY")" '["OK",1]'
get "/events/$dead/history"
check "history keeps the earlier attempt" "$(jq -c '[.history[] | select(.step != "lqs_call") | .step]' <<<"$BODY")" \
	'["received","started","attempt","outcome","replay","started","attempt","outcome"]'
check "digestion completed after replay" "$(mock_state | jq -r --arg d "$DIG" '.digestions[$d].state')" completed
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/events/11111111-1111-1111-1111-111111111111/replay")
check "replay unknown 404" "$code" 404

# ---------- duplicate deliveries ----------
HOOK=44444444-4444-4444-4444-444444444444
dup=$(printf '{"previous_state":"processing","current_state":"finalizing","process_type":"digestion","resource_id":"%s","hook_id":"%s"}' "$DIG" "$HOOK")
post "$dup" -H "$AUTH"; first=$(jq -r .event_id <<<"$BODY")
check "first delivery 202" "$CODE" 202
post "$dup" -H "$AUTH"
check "second delivery 200 duplicate" "$CODE $(jq -c . <<<"$BODY")" "200 {\"status\":\"duplicate\",\"event_id\":\"$first\"}"
check "duplicate not stored" "$(all_events | jq -s --arg h "$HOOK" '[.[] | select(.event.hook_id == $h)] | length')" 1
stop_hookd TERM

# ---------- retention ----------
HOOKD_ENV="LQS_HOOKD_RETENTION=1s" start_hookd "$T_DIR/ret.db"
post "$(event_json ready ingestion "$DIG")" -H "$AUTH"; old=$(jq -r .event_id <<<"$BODY")
wait_done "$old" 5 || fail "event finished"
wait_until 6 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$BASE/events/$old')\" = 404 ]" \
	&& pass "completed event pruned after retention" || fail "completed event pruned after retention"
check "pruned from the store, history too" "$(count_events) $(curl -s -o /dev/null -w '%{http_code}' "$BASE/events/$old/history")" "0 404"
stop_hookd TERM

# ---------- administration endpoints and the admin token ----------
HOOKD_ENV="LQS_HOOKD_ADMIN_TOKEN=admin-tok-123" start_hookd "$T_DIR/adm.db"
post "$(event_json ready ingestion "$DIG")" -H "$AUTH"; id=$(jq -r .event_id <<<"$BODY")
check "events still take the hook secret" "$CODE" 202
get "/events/$id"
check "admin without token 401" "$CODE $BODY" '401 {"detail":"Authorization header is missing"}'
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' "$BASE/events/$id")
check "admin with wrong token 401" "$code" 401
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer admin-tok-123' "$BASE/events/$id")
check "admin with token 200" "$code" 200
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")
check "healthz stays open" "$code" 200
stop_hookd TERM

finish
