#!/usr/bin/env bash
# Replay after a failure does the work: a digestion this daemon marked
# failed is computed again and completed. Bulk replay brings back every dead
# letter a bad API key made, once the key is fixed. The LogQS check warns
# about the key at start (log, /readyz, metric).
. "$(dirname "$0")/lib.sh"

# --- one event: failed for good (a 400 from LogQS), marked failed in LogQS ---
start_demo_mock
mock_fault "{\"method\":\"GET\",\"path\":\"digestions/$DIG/parts\",\"status\":400,\"count\":1}"
printf '[log]\nlog_level = info\n' >"$T_DIR/r.conf"
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/r.db" --config "$T_DIR/r.conf"
post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"; id=$(jq -r .event_id <<<"$BODY")
wait_done "$id" 20 || fail "first attempt finished"
get "/events/$id"
check "event is a dead letter" "$(jq -r .state <<<"$BODY")" failed
check "its error names the method" "$(jq -r .error <<<"$BODY")" \
	"Injected: LogQS GET digestions/$DIG/parts?include_count=True&offset=0&limit=1000&order=created_at&sort=ASC: HTTP 400: [Injected] fault injected by lqs-mock"
check "LogQS was told: digestion failed" "$(mock_state | jq -r --arg d "$DIG" '.digestions[$d].state')" failed
check "no stats written yet" "$(mock_state | jq -r --arg l "$LOG_ID" '.logs[$l].context.digestion_stats')" null

# the cause is gone (the fault was used up); the operator replays, with the
# options before the command
out=$("$LQS_HOOKD" -c "$T_DIR/r.conf" --listen "127.0.0.1:$PORT" replay "$id"); rc=$?
check "replay: exit 0" "$rc" 0
wait_done "$id" 20 || fail "replayed event finished"
get "/events/$id"
check "replayed event completed (not skipped)" "$(jq -r '[.state, .result.record_count, .replayed] | @tsv' <<<"$BODY")" \
	"completed	$(fixture_stats "$DEMO_FIXTURE" "$DIG" | cut -d'|' -f1)	true"
check "digestion completed in LogQS" "$(mock_state | jq -r --arg d "$DIG" '.digestions[$d] | [.state, .error_name, .error_message] | @tsv')" \
	"completed		"
check "stats written to the log context" \
	"$(mock_state | jq -r --arg l "$LOG_ID" '.logs[$l].context.digestion_stats.record_count')" \
	"$(fixture_stats "$DEMO_FIXTURE" "$DIG" | cut -d'|' -f1)"
check "the completing PATCH clears the error" \
	"$(mock_requests | jq -c --arg d "$DIG" '[.requests[] | select(.method == "PATCH" and .path == "digestions/" + $d)] | last | .body')" \
	'{"state":"completed","error_name":null,"error_message":null}'
check "the replayed attempt reported its progress" "$(jq -r .progress.step <<<"$BODY")" "completing the digestion"
check "history says replay" "$(curl -s "$BASE/events/$id/history" | jq '[.history[] | select(.step == "replay")] | length')" 1
check_contains "the log says why it is computed again" "$(cat "$HOOKD_LOG")" "digestion is failed, but this event was replayed"
stop_hookd TERM

# --- a bad API key: every event a dead letter; the check says so at once ---
start_mock --synthetic 2x5x3 --key-id "$KEY_ID" --key-secret "$KEY_SECRET" --datastore "$DS"
mapfile -t DIGS < <(curl -s "$MOCK/_mock/expected" | jq -r '.digestion_ids[]')
want=$(curl -s "$MOCK/_mock/expected" | jq -r .record_count)
HOOKD_ENV="$(mock_env) LQS_API_KEY_SECRET=wrong-secret LQS_HOOKD_READYZ_REQUIRES_LQS=true" \
	start_hookd "$T_DIR/b.db"
hide wrong-secret "$(printf '%s:%s' "$KEY_ID" wrong-secret | base64)"
wait_until 10 bash -c "curl -s '$BASE/readyz' | grep -q 'API key was refused'" || fail "readyz reports the refused key"
get /readyz
check "readyz 503 while LogQS refuses the key" "$CODE" 503
check_contains "readyz says why" "$(jq -r .detail <<<"$BODY")" \
	"LogQS check failed: LogQS reachable at $MOCK/apps/lqs/$DS/api/users/me, but the API key was refused: LogQS GET users/me: HTTP 401"
check "check metric 0" "$(curl -s "$BASE/metrics" | awk '$1 == "lqs_hookd_lqs_check_ok" {print $2}')" 0
check "one warning in the log" "$(grep -c 'LogQS check FAILED' "$HOOKD_LOG")" 1
ids=()
for d in "${DIGS[@]}"; do
	post "$(event_json finalizing digestion "$d")" -H "$AUTH"
	check "accepted while LogQS refuses (nothing is lost)" "$CODE" 202
	ids+=("$(jq -r .event_id <<<"$BODY")")
done
for i in "${ids[@]}"; do wait_done "$i" 20 || fail "dead letter $i finished"; done
check "all three failed" "$(curl -s "$BASE/events?state=failed" | jq '.data | length')" 3
stop_hookd TERM

# fixed: same store, right key
HOOKD_ENV="$(mock_env) LQS_HOOKD_READYZ_REQUIRES_LQS=true" start_hookd "$T_DIR/b.db"
wait_until 10 bash -c "curl -s -o /dev/null -w '%{http_code}' '$BASE/readyz' | grep -q 200" || fail "ready with the right key"
check "check metric 1" "$(curl -s "$BASE/metrics" | awk '$1 == "lqs_hookd_lqs_check_ok" {print $2}')" 1
cli() { "$LQS_HOOKD" --listen "127.0.0.1:$PORT" "$@"; }
out=$(cli replay --state failed --dry-run); rc=$?
check "dry run: exit 0" "$rc" 0
check "dry run: counts, changes nothing" "$(tail -1 <<<"$out") $(curl -s "$BASE/events?state=failed" | jq '.data | length')" \
	"would replay 3 failed event(s) (dry run: nothing changed) 3"
check "dry run lists the ids" "$(head -3 <<<"$out" | sort | tr '\n' ' ')" "$(printf '%s\n' "${ids[@]}" | sort | tr '\n' ' ')"
out=$(cli replay --state failed --since "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%S)")
check "since in the future: nothing" "$out" "replayed 0 failed event(s): they run again from scratch"
out=$(cli replay --state failed --handler digestion_stats --since "$(date -u -d '-1 hour' +%s)" --format json)
check "bulk replay: all three" "$(jq -r '[.status, .count] | @tsv' <<<"$out")" "replayed	3"
for i in "${ids[@]}"; do wait_done "$i" 20 || fail "replayed $i finished"; done
check "all completed" "$(curl -s "$BASE/events?state=completed" | jq '[.data[] | select(.handler == "digestion_stats")] | length')" 3
for d in "${DIGS[@]}"; do
	check "digestion $d completed with its stats" \
		"$(mock_state | jq -r --arg d "$d" '.digestions[$d] as $g | [$g.state, .logs[$g.log_id].context.digestion_stats.record_count] | @tsv')" \
		"completed	$want"
done
out=$(cli replay --state failed)
check "nothing left to replay" "$out" "replayed 0 failed event(s): they run again from scratch"

# the API behind it
code=$(curl -s -o "$T_DIR/x" -w '%{http_code}' -X POST "$BASE/events/replay")
check "replay without a state: 400" "$code $(jq -r .detail "$T_DIR/x")" \
	"400 state must be failed or completed (only finished events can be replayed)"
code=$(curl -s -o "$T_DIR/x" -w '%{http_code}' -X POST "$BASE/events/replay?state=completed&handler=nope")
check "replay with an unknown handler: 400" "$code" 400
code=$(curl -s -o "$T_DIR/x" -w '%{http_code}' -X POST "$BASE/events/replay?state=completed&limit=2&dry_run=true")
check "dry run pages" "$code $(jq -r '[.count, (.next_cursor != null)] | @tsv' "$T_DIR/x")" "200 2	true"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/events/replay")
check "GET on the replay endpoint: 405" "$code" 405
stop_hookd TERM

finish
