#!/usr/bin/env bash
# 2xx means stored: kill -9 right after a 202 loses nothing, and an attempt
# cut short by a crash runs again after the restart.
. "$(dirname "$0")/lib.sh"

RID=00000000-0000-0000-0000-000000000000
STORE="$T_DIR/k.db"

# --- kill -9 immediately after each 202 ---
ids=()
for round in 1 2 3; do
	HOOKD_ENV="LQS_HOOKD_DEDUPE_WINDOW=0" start_hookd "$STORE"
	post "$(event_json ready ingestion "$RID")" -H "$AUTH"
	check "round $round: 202" "$CODE" 202
	ids+=("$(jq -r .event_id <<<"$BODY")")
	kill -9 "$HOOKD_PID"
	wait "$HOOKD_PID" 2>/dev/null
done
HOOKD_ENV="LQS_HOOKD_DEDUPE_WINDOW=0" start_hookd "$STORE"
for id in "${ids[@]}"; do
	get "/events/$id"
	check "event $id survived kill -9" "$CODE" 200
done
check "store holds exactly the acknowledged events" "$(count_events)" 3
for id in "${ids[@]}"; do
	wait_done "$id" 10 || fail "recovered event $id finished"
done
stop_hookd TERM

# --- kill -9 in the middle of an attempt (LogQS answering slowly) ---
start_demo_mock
mock_fault "{\"method\":\"GET\",\"path\":\"digestions/$DIG\",\"delay_ms\":3000,\"count\":1}"
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/m.db"
post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"
id=$(jq -r .event_id <<<"$BODY")
wait_until 5 bash -c "curl -s '$BASE/events/$id' | jq -e '.state == \"running\"'" && pass "attempt running" || fail "attempt running"
kill -9 "$HOOKD_PID"
wait "$HOOKD_PID" 2>/dev/null
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/m.db"
check_contains "recovery logged" "$(cat "$HOOKD_LOG")" "recovered 1 event(s)"
# the crash left it running: its interrupted attempt is in the history
check "row left running by the crash, recovered" \
	"$(curl -s "$BASE/events/$id/history" | jq -r '[.history[] | select(.step == "recovered" or (.step == "attempt" and (.error // "" | startswith("interrupted"))))] | length')" 2
wait_done "$id" 20 || fail "recovered event finished"
get "/events/$id"
check "recovered event completed" "$(jq -c '[.trace_event_status, .attempts]' <<<"$BODY")" '["OK",2]'
get "/events/$id/history"
check "history shows the interruption" "$(jq -c '[.history[].step | select(. != "lqs_call")]' <<<"$BODY")" \
	'["received","started","attempt","recovered","started","attempt","outcome"]'
check "digestion completed once" "$(mock_state | jq -r --arg d "$DIG" '.digestions[$d].state')" completed

stop_hookd TERM
check "clean exit" "$HOOKD_RC" 0
finish
