#!/usr/bin/env bash
# The main job against the mock LogQS: a digestion over several list pages,
# with parts whose index must be fetched, computed, written, completed.
. "$(dirname "$0")/lib.sh"

# Pages of 2 parts; parts with more than 100 entries are listed without
# their index, so the daemon has to fetch them.
start_demo_mock --max-page 2 --list-index-max 100
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/d.db"

post "$(event_json finalizing digestion "$DIG" processing)" -H "$AUTH"
check "event accepted" "$CODE" 202
id=$(jq -r .event_id <<<"$BODY")
wait_done "$id" 20 || fail "event finished in time"
get "/events/$id"
check "event completed" "$(jq -c '[.trace_status, .trace_event_status, .done, .attempts, .error]' <<<"$BODY")" \
	'["FINISHED","OK",true,1,null]'

mock_state >"$T_DIR/state.json"
check "digestion completed in LogQS" "$(jq -r --arg d "$DIG" '.digestions[$d].state' "$T_DIR/state.json")" completed

expected=$(fixture_stats "$DEMO_FIXTURE" "$DIG")
# guard: the comparison below must not be between two empty answers
check "fixture has 164 records in 5 parts" "$(cut -d'|' -f1,5 <<<"$expected")" "164|5"
actual=$(context_stats "$T_DIR/state.json" "$LOG_ID")
check "stats equal an independent computation" "$actual" "$expected"
check "topics equal an independent computation" "$(context_topics "$T_DIR/state.json" "$LOG_ID")" \
	"$(fixture_topics "$DEMO_FIXTURE" "$DIG")"
check "other context keys kept" "$(jq -c --arg l "$LOG_ID" '.logs[$l].context | del(.digestion_stats)' "$T_DIR/state.json")" \
	"$(jq -c '.logs[0].context' "$DEMO_FIXTURE")"
check "stats name the digestion" "$(jq -r --arg l "$LOG_ID" '.logs[$l].context.digestion_stats.digestion_id' "$T_DIR/state.json")" "$DIG"
check "event result holds the stats" "$(jq -c '.result | del(.topics)' <<<"$BODY")" \
	"$(jq -c --arg l "$LOG_ID" '.logs[$l].context.digestion_stats | del(.topics)' "$T_DIR/state.json")"

# What LogQS received, in order, with the right URL layout and auth.
reqs=$(mock_requests)
check "every request authenticated" "$(jq '[.requests[] | select(.auth_ok | not)] | length' <<<"$reqs")" 0
check "URL layout" "$(jq -r '.requests[0].url' <<<"$reqs")" "/apps/lqs/$DS/api/digestions/$DIG"
check "list query as the client sends it" "$(jq -r '.requests[1].query' <<<"$reqs")" \
	"include_count=True&offset=0&limit=1000&order=created_at&sort=ASC"
check "paged until count" "$(jq -c '[.requests[] | select(.path | endswith("/parts")) | .query | capture("offset=(?<o>[0-9]+)").o]' <<<"$reqs")" \
	'["0","2","4"]'
big_part=$(jq -r '.digestion_parts[] | select((.index|length) > 100) | .id' "$DEMO_FIXTURE")
check "part with unlisted index fetched" "$(jq -r '[.requests[] | select(.method=="GET" and (.path | contains("/parts/")))] | map(.path) | join(",")' <<<"$reqs")" \
	"digestions/$DIG/parts/$big_part"
check "writes: log context, then digestion" "$(jq -c '[.requests[] | select(.method=="PATCH") | .path]' <<<"$reqs")" \
	"[\"logs/$LOG_ID\",\"digestions/$DIG\"]"
check "digestion PATCH body" "$(jq -c '[.requests[] | select(.method=="PATCH" and (.path|startswith("digestions")))][0].body' <<<"$reqs")" \
	'{"state":"completed"}'

# History: received, attempt, every LogQS call, outcome.
get "/events/$id/history"
check "history steps" "$(jq -c '[.history[].step] | unique' <<<"$BODY")" '["attempt","lqs_call","outcome","received","started"]'
check "history records each call" "$(jq '[.history[] | select(.step=="lqs_call")] | length' <<<"$BODY")" \
	"$(jq '.requests | length' <<<"$reqs")"
check "history call detail" "$(jq -c '[.history[] | select(.step=="lqs_call")][0].detail' <<<"$BODY")" \
	"{\"method\":\"GET\",\"path\":\"digestions/$DIG\",\"status\":200,\"try\":1}"
check "history timestamps and durations" "$(jq '[.history[] | select(.started_at == null or .duration_ms == null)] | length' <<<"$BODY")" 0

# A second delivery of the same digestion event (after the dedupe window is
# bypassed by another previous_state): already completed, nothing written.
curl -s -X DELETE "$MOCK/_mock/requests" >/dev/null
post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"
id2=$(jq -r .event_id <<<"$BODY")
wait_done "$id2" 20 || fail "second event finished"
get "/events/$id2"
check "already completed: OK" "$(jq -c '[.trace_event_status, .result.status]' <<<"$BODY")" '["OK","already_completed"]'
check "already completed: no writes" "$(mock_requests | jq '[.requests[] | select(.method != "GET")] | length')" 0

# The synthetic generator: 40 parts x 250 entries, all fetched one by one.
start_mock --synthetic 40x250 --key-id "$KEY_ID" --key-secret "$KEY_SECRET" --datastore "$DS" --max-page 7
SYN_MOCK=$MOCK
stop_hookd TERM
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/s.db"
syn_dig=$(curl -s "$SYN_MOCK/_mock/expected" | jq -r .digestion_id)
post "$(event_json finalizing digestion "$syn_dig")" -H "$AUTH"
sid=$(jq -r .event_id <<<"$BODY")
wait_done "$sid" 60 || fail "synthetic digestion finished"
expected=$(curl -s "$SYN_MOCK/_mock/expected" | jq -S -c 'del(.digestion_ids)')
syn_log=$(curl -s "$SYN_MOCK/_mock/state" | jq -r '.logs | keys[0]')
actual=$(curl -s "$SYN_MOCK/_mock/state" | jq -S -c --arg l "$syn_log" '.logs[$l].context.digestion_stats')
# 40 parts to fetch: two threads scan them, and their figures are merged
check "synthetic stats (per topic too) match the generator" "$actual" "$expected"
check "synthetic parts fetched in parallel, each once" \
	"$(mock_requests | jq '[.requests[] | select(.path | contains("/parts/"))] | length')" 40
check "the finished event shows its last progress" \
	"$(curl -s "$BASE/events/$sid" | jq -r '.progress | [.step, .parts_listed, .parts_to_fetch, .parts_fetched, (.bytes_fetched > 0)] | @tsv')" \
	"completing the digestion	40	40	40	true"

# Progress while it runs: the digestion back in finalizing, part fetches
# slowed down, a new delivery, the event watched
mock_fault '{"method":"GET","path":"/parts/","delay_ms":150}'
curl -s -X PATCH "$SYN_MOCK/apps/lqs/$DS/api/digestions/$syn_dig" -H "Authorization: Bearer $(printf '%s:%s' "$KEY_ID" "$KEY_SECRET" | base64)" \
	-H 'Content-Type: application/json' -d '{"state":"finalizing"}' >/dev/null
post "$(jq -c '.hook_id = "99999999-0000-4000-8000-000000000001"' <<<"$(event_json finalizing digestion "$syn_dig")")" -H "$AUTH"
pid_=$(jq -r .event_id <<<"$BODY")
if wait_until 20 bash -c "curl -s '$BASE/events/$pid_' | jq -e '.state == \"running\" and .progress.step == \"fetching parts\" and .progress.parts_fetched > 0 and .progress.parts_fetched < 40'"; then
	pass "progress seen while running: parts fetched of 40"
else
	fail "progress seen while running" "$(curl -s "$BASE/events/$pid_")"
fi
wait_done "$pid_" 60 || fail "slow synthetic digestion finished"
curl -s -X DELETE "$SYN_MOCK/_mock/faults" >/dev/null

# One bad part among many: whichever thread scans it, the event fails
# with the part and entry named, and no figures are written.
stop_hookd TERM
start_mock --synthetic 40x250 --key-id "$KEY_ID" --key-secret "$KEY_SECRET" --datastore "$DS" --max-page 7
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/bad.db"
syn_dig=$(curl -s "$MOCK/_mock/expected" | jq -r .digestion_id)
bad=bbbbbbbb-0000-4000-8000-000000000033   # the generator's 34th part
mock_fault "{\"method\":\"GET\",\"path\":\"parts/$bad\",\"body\":\"{\\\"data\\\":{\\\"index\\\":[[\\\"x\\\"]]}}\"}"
post "$(event_json finalizing digestion "$syn_dig")" -H "$AUTH"
bid=$(jq -r .event_id <<<"$BODY")
wait_done "$bid" 60 || fail "bad-part digestion finished"
get "/events/$bid"
check "bad part among 40: FAILED" "$(jq -r .trace_event_status <<<"$BODY")" FAILED
check "bad part among 40: part and entry named" "$(jq -r .error <<<"$BODY")" \
	"InvalidPartData: part $bad: index entry 0 is not an array of 9 fields"
check "bad part among 40: no figures written" \
	"$(mock_state | jq -c '[.logs[].context.digestion_stats] | map(select(. != null)) | length')" 0

stop_hookd TERM
check "clean exit" "$HOOKD_RC" 0
finish
