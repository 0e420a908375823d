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

# options before the command count as after it
out=$("$LQS_HOOKD" -c "$T_DIR/cli.conf" --listen "127.0.0.1:$PORT" list --state completed --format json); rc=$?
check "-c FILE list: exit 0" "$rc" 0
check "-c FILE list: the config's admin token was used" "$(jq '.data | length' <<<"$out")" 2
out=$("$LQS_HOOKD" --config "$T_DIR/cli.conf" list --listen "127.0.0.1:$PORT" --handler digestion_stats --format json)
check "list --handler filters" "$(jq -r '[.data[].handler] | unique | join(",")' <<<"$out")" digestion_stats
# a command does not read a secret it does not use: the service's hook
# secret file is root's and unreadable to an operator
printf '[auth]\nadmin_token = cli-admin-token\nsecret_file = %s/missing-hook-secret\n' "$T_DIR" >"$T_DIR/svc.conf"
out=$("$LQS_HOOKD" -c "$T_DIR/svc.conf" status "$id" --listen "127.0.0.1:$PORT" 2>&1); rc=$?
check "status with an unreadable hook secret file: exit 0" "$rc" 0
out=$(LQS_EXPECTED_SECRET= "$LQS_HOOKD" -c "$T_DIR/svc.conf" --check-config 2>&1); rc=$?
check "the daemon still refuses it" "$rc" 1
check_contains "and says where" "$out" "$T_DIR/svc.conf:3: cannot read secret file '$T_DIR/missing-hook-secret'"
# progress and paged history
get_admin() { curl -s -H 'Authorization: Bearer cli-admin-token' "$BASE$1"; }
check "a replayed attempt that had nothing to do reports no progress" "$(get_admin "/events/$id" | jq -r '.progress')" null
all=$(get_admin "/events/$id/history" | jq '.history | length')
p1=$(get_admin "/events/$id/history?limit=3")
p2=$(get_admin "/events/$id/history?limit=3&cursor=$(jq -r .next_cursor <<<"$p1")")
check "history page 1: received first, a cursor" "$(jq -r '[(.history | length), .history[0].step, (.next_cursor | type)] | @tsv' <<<"$p1")" \
	"3	received	string"
check "history page 2 goes on where page 1 stopped" \
	"$(jq -c '[.history[].started_at]' <<<"$p2")" "$(get_admin "/events/$id/history" | jq -c '[.history[3:6][].started_at]')"
check "the CLI follows every page" "$(cli status "$id" --history --format json | jq '.history | length')" "$all"
check "history limit bounded" "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer cli-admin-token' "$BASE/events/$id/history?limit=0")" 400
check "version names the commit" "$("$LQS_HOOKD" --version | grep -c '^lqs-hookd [0-9.]* (commit [0-9a-z-]*)$')" 1

stop_hookd TERM
finish
