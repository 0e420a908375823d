#!/usr/bin/env bash
# LogQS misbehaving: retried and non-retried statuses, permanent failures
# reported back to LogQS, skipped and unrouted events, malformed part data.
. "$(dirname "$0")/lib.sh"

# fresh [mock args...]: a new mock (pristine datastore) and a daemon on it.
fresh() {
	[ -n "${HOOKD_PID:-}" ] && stop_hookd KILL
	start_demo_mock "$@"
	HOOKD_ENV="$(mock_env) LQS_HOOKD_RETRY_BASE=0.2 LQS_HOOKD_MAX_ATTEMPTS=2 ${EXTRA_ENV:-}" start_hookd "$T_DIR/f.$RANDOM.db"
}

run_event() { # -> sets ID and BODY (the final status)
	post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"
	ID=$(jq -r .event_id <<<"$BODY")
	wait_done "$ID" 30 || fail "event $ID finished in time"
	get "/events/$ID"
}

calls_to() { mock_requests | jq --arg m "$1" --arg p "$2" '[.requests[] | select(.method==$m and .path==$p)] | length'; }

# --- 503 twice, then success: retried within the call ---
fresh
mock_fault "{\"method\":\"GET\",\"path\":\"digestions/$DIG\",\"status\":503,\"count\":2}"
run_event
check "503x2 then OK" "$(jq -c '[.trace_event_status, .attempts]' <<<"$BODY")" '["OK",1]'
get "/events/$ID/history"
check "history shows the retries" \
	"$(jq -c --arg p "digestions/$DIG" '[.history[] | select(.step=="lqs_call" and .detail.path==$p and .detail.method=="GET") | [.detail.status, .detail.try]]' <<<"$BODY")" \
	'[[503,1],[503,2],[200,3]]'
check "retries carry the error" "$(jq -r '[.history[] | select(.detail.status==503)][0].error' <<<"$BODY")" \
	"LogQS GET digestions/$DIG: HTTP 503: [ServiceUnavailable] fault injected by lqs-mock"
check "digestion completed after retries" "$(mock_state | jq -r --arg d "$DIG" '.digestions[$d].state')" completed

# --- 404 on the digestion: FAILED at once, no retry ---
fresh
mock_fault "{\"method\":\"GET\",\"path\":\"digestions/$DIG\",\"status\":404,\"count\":1}"
run_event
check "404: FAILED" "$(jq -c '[.trace_status, .trace_event_status, .attempts]' <<<"$BODY")" '["FINISHED","FAILED",1]'
check_contains "404: error says why" "$(jq -r .error <<<"$BODY")" "HTTP 404"
check "404: fetched once, never retried" "$(calls_to GET "digestions/$DIG")" 1

# --- 403 on the log PATCH: FAILED, digestion marked failed with the message ---
fresh
mock_fault "{\"method\":\"PATCH\",\"path\":\"logs/$LOG_ID\",\"status\":403}"
run_event
check "403: FAILED" "$(jq -r .trace_event_status <<<"$BODY")" FAILED
check "403: PATCH tried once" "$(calls_to PATCH "logs/$LOG_ID")" 1
st=$(mock_state)
check "403: digestion PATCHed to failed" "$(jq -r --arg d "$DIG" '.digestions[$d].state' <<<"$st")" failed
check "403: error_name" "$(jq -r --arg d "$DIG" '.digestions[$d].error_name' <<<"$st")" Injected
check_contains "403: error_message" "$(jq -r --arg d "$DIG" '.digestions[$d].error_message' <<<"$st")" "HTTP 403"
check "403: context untouched" "$(jq -c --arg l "$LOG_ID" '.logs[$l].context' <<<"$st")" "$(jq -c '.logs[0].context' "$DEMO_FIXTURE")"

# --- on_failure = leave: the digestion is not touched ---
EXTRA_ENV="LQS_HOOKD_ON_FAILURE=leave" fresh
mock_fault "{\"method\":\"PATCH\",\"path\":\"logs/$LOG_ID\",\"status\":403}"
run_event
check "leave: FAILED" "$(jq -r .trace_event_status <<<"$BODY")" FAILED
check "leave: digestion not PATCHed" "$(calls_to PATCH "digestions/$DIG")" 0

# --- 503 for good: call retries, then event retries, then FAILED ---
fresh
mock_fault "{\"method\":\"GET\",\"path\":\"/parts\",\"status\":503}"
run_event
check "exhausted: FAILED after max_attempts" "$(jq -c '[.trace_event_status, .attempts]' <<<"$BODY")" '["FAILED",2]'
check_contains "exhausted: error says so" "$(jq -r .error <<<"$BODY")" "gave up after 2 attempts"
# 1 try + LQS_RETRY_COUNT (2) retries per attempt, 2 attempts
check "exhausted: 3 tries x 2 attempts" "$(mock_requests | jq '[.requests[] | select(.path | endswith("/parts"))] | length')" 6
check "exhausted: digestion marked failed" "$(mock_state | jq -r --arg d "$DIG" '.digestions[$d].state')" failed
get "/events/$ID/history"
check "exhausted: history has a retrying outcome then failed" \
	"$(jq -c '[.history[] | select(.step=="outcome") | .detail.state]' <<<"$BODY")" '["retrying","failed"]'

# --- a dropped connection is retried like a 5xx ---
fresh
mock_fault "{\"method\":\"GET\",\"path\":\"logs/$LOG_ID\",\"drop\":true,\"count\":1}"
run_event
check "dropped connection retried: OK" "$(jq -r .trace_event_status <<<"$BODY")" OK

# --- wrong API key: 401 is not retried ---
start_demo_mock
HOOKD_ENV="LQS_API_URL=$MOCK LQS_DATASTORE_ID=$DS LQS_API_KEY_ID=$KEY_ID LQS_API_KEY_SECRET=wrong" stop_hookd KILL
HOOKD_ENV="LQS_API_URL=$MOCK LQS_DATASTORE_ID=$DS LQS_API_KEY_ID=$KEY_ID LQS_API_KEY_SECRET=wrong" start_hookd "$T_DIR/k.db"
run_event
check "bad API key: FAILED" "$(jq -r .trace_event_status <<<"$BODY")" FAILED
check_contains "bad API key: 401 in error" "$(jq -r .error <<<"$BODY")" "HTTP 401: [Unauthorized]"
check "bad API key: not retried" "$(calls_to GET "digestions/$DIG")" 1

# --- skipped: digestion already failed/cancelled ---
fixture_set "$DEMO_FIXTURE" '$.digestions[0].state' '"cancelled"' >"$T_DIR/cancelled.json"
[ -n "${HOOKD_PID:-}" ] && stop_hookd KILL
start_mock --fixture "$T_DIR/cancelled.json"
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/c.db"
run_event
check "cancelled: OK, skipped with reason" "$(jq -c '[.trace_event_status, .result.status, .result.reason]' <<<"$BODY")" \
	'["OK","skipped","digestion is cancelled"]'
check "cancelled: no writes" "$(mock_requests | jq '[.requests[] | select(.method != "GET")] | length')" 0

# --- unrouted event: finished at once, LogQS untouched ---
curl -s -X DELETE "$MOCK/_mock/requests" >/dev/null
post "$(event_json completed ingestion "$DIG")" -H "$AUTH"
uid=$(jq -r .event_id <<<"$BODY")
wait_done "$uid" 10 || fail "unrouted event finished"
get "/events/$uid"
check "unrouted: OK not_routed" "$(jq -c '[.trace_status, .trace_event_status, .handler, .result.status]' <<<"$BODY")" \
	'["FINISHED","OK",null,"not_routed"]'
check "unrouted: no LogQS calls" "$(mock_requests | jq '.requests | length')" 0

# --- malformed part data: a clear error naming part and entry ---
bad_part=$(jq -r '.digestion_parts[1].id' "$DEMO_FIXTURE")
fixture_set "$DEMO_FIXTURE" '$.digestion_parts[1].index[2]' '[1,2,3]' >"$T_DIR/bad.json"
stop_hookd KILL
start_mock --fixture "$T_DIR/bad.json"
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/b.db"
run_event
check "malformed: FAILED, not retried" "$(jq -c '[.trace_event_status, .attempts]' <<<"$BODY")" '["FAILED",1]'
check "malformed: error names part and entry" "$(jq -r .error <<<"$BODY")" \
	"InvalidPartData: part $bad_part: index entry 2 is not an array of 9 fields"
check "malformed: digestion marked failed" "$(mock_state | jq -c --arg d "$DIG" '.digestions[$d] | [.state, .error_name]')" \
	'["failed","InvalidPartData"]'
kill -0 "$HOOKD_PID" && pass "daemon still running" || fail "daemon still running"

stop_hookd TERM
finish
