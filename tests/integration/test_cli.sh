#!/usr/bin/env bash
# Operator commands: status, list, replay against the running daemon;
# check-lqs against LogQS.
. "$(dirname "$0")/lib.sh"

start_demo_mock
printf '[auth]\nadmin_token = cli-admin-token\n' >"$T_DIR/cli.conf"
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/c.db" --config "$T_DIR/cli.conf"
post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"; id=$(jq -r .event_id <<<"$BODY")
wait_done_admin() {
	wait_until 20 bash -c "curl -s -H 'Authorization: Bearer cli-admin-token' '$BASE/events/$1' | jq -e .done"
}
wait_done_admin "$id" || fail "event finished"
cli() { "$LQS_HOOKD" "$@" --config "$T_DIR/cli.conf" --listen "127.0.0.1:$PORT"; }

out=$(cli status "$id"); rc=$?
check "status exit 0" "$rc" 0
check_contains "status table: trace" "$out" "trace_status         FINISHED"
check_contains "status table: outcome" "$out" "trace_event_status   OK"
check_contains "status table: result with exact integers" "$out" '"start_time":1700000000000000000'
out=$(cli status "$id" --history)
check_contains "history table header" "$out" "STARTED_AT"
check "history table lists the calls" "$(grep -c 'lqs_call' <<<"$out")" "$(mock_requests | jq '.requests | length')"
out=$(cli status "$id" --history --format json)
check "status --format json" "$(jq -r '[.event_id, (.history | length > 3)] | join(" ")' <<<"$out")" "$id true"

post "$(event_json ready ingestion "$DIG")" -H "$AUTH"
sleep 0.3
out=$(cli list --state completed)
check "list table: header + 2 rows" "$(wc -l <<<"$out")" 3
check_contains "list table row" "$out" "digestion/finalizing"
out=$(cli list --limit 1 --format json)
check "list --limit --format json" "$(jq '.data | length' <<<"$out") $(jq -r '.next_cursor != null' <<<"$out")" "1 true"

out=$(cli replay "$id"); rc=$?
check "replay exit 0" "$rc" 0
check "replay says so" "$out" "replayed $id: it runs again from scratch"
wait_done_admin "$id" || fail "replayed event finished"
check "replayed event result" "$(cli status "$id" --format json | jq -r .result.status)" already_completed

out=$(cli status 11111111-2222-3333-4444-555555555555 2>&1); rc=$?
check "unknown event: exit 1" "$rc" 1
check "unknown event: message" "$out" "lqs-hookd: HTTP 404: event not found"
out=$(cli status not-a-uuid 2>&1); rc=$?
check "malformed id: exit 2" "$rc" 2
out=$(cli status 2>&1); rc=$?
check "missing id: usage, exit 2" "$rc" 2
out=$("$LQS_HOOKD" status "$id" --listen "127.0.0.1:$PORT" 2>&1); rc=$?
check "without the admin token: exit 1" "$rc" 1
check "without the admin token: says why" "$out" "lqs-hookd: HTTP 401: Authorization header is missing"
out=$("$LQS_HOOKD" list --listen 127.0.0.1:9 2>&1); rc=$?
check "daemon unreachable: exit 1" "$rc" 1
check_contains "daemon unreachable: says so" "$out" "cannot reach lqs-hookd at http://127.0.0.1:9"

out=$(env $(mock_env) "$LQS_HOOKD" check-lqs); rc=$?
check "check-lqs OK: exit 0" "$rc" 0
check "check-lqs OK: message" "$out" "OK: LogQS reachable at $MOCK/apps/lqs/$DS/api/users/me; API key accepted (user mock)"
out=$(env $(mock_env) LQS_API_KEY_SECRET=wrong "$LQS_HOOKD" check-lqs); rc=$?
check "check-lqs bad key: exit 1" "$rc" 1
check_contains "check-lqs bad key: message" "$out" "FAILED: LogQS reachable at $MOCK/apps/lqs/$DS/api/users/me, but the API key was refused"
out=$(env LQS_API_URL=http://127.0.0.1:9 "$LQS_HOOKD" check-lqs); rc=$?
check "check-lqs unreachable: exit 1" "$rc" 1
check_contains "check-lqs unreachable: message" "$out" "FAILED: cannot reach LogQS at http://127.0.0.1:9"
case "$out" in *wrong*) fail "check-lqs does not print the key" ;; *) pass "check-lqs does not print the key" ;; esac

stop_hookd TERM
finish
