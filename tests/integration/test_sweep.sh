#!/usr/bin/env bash
# Sweeps find digestions LogQS left in `finalizing` without a hook event:
# the old ones are completed with their stats, one with a hook event already
# held is not enqueued twice, a young one waits for min_age, the schedule
# survives a restart, a refused key stops the sweep's calls, and a kill -9
# in the middle of a run loses and doubles nothing.
. "$(dirname "$0")/lib.sh"

SW=digestion-finalizing
start_mock --synthetic 2x5x6 --key-id "$KEY_ID" --key-secret "$KEY_SECRET" --datastore "$DS"
mapfile -t D < <(curl -s "$MOCK/_mock/expected" | jq -r '.digestion_ids[]')
want=$(curl -s "$MOCK/_mock/expected" | jq -r .record_count)
age() { # ID SECONDS
	curl -s -X POST "$MOCK/_mock/digestions" -d "{\"id\":\"$1\",\"age_s\":$2,\"previous_state\":\"processing\"}" >/dev/null
}
for i in 0 1 2 4 5; do age "${D[$i]}" 1200; done
age "${D[3]}" 60   # in finalizing for a minute only
list_calls() { curl -s "$MOCK/_mock/requests" | jq '[.requests[] | select(.method == "GET" and .path == "digestions")] | length'; }
events_of() { all_events | jq -r --arg r "$1" 'select(.event.resource_id == $r) | .event_id'; }
completed_with_stats() { # ID
	mock_state | jq -r --arg d "$1" '.digestions[$d] as $g | [$g.state, .logs[$g.log_id].context.digestion_stats.record_count] | @tsv'
}
cli() { "$LQS_HOOKD" -c "$T_DIR/s.conf" --listen "127.0.0.1:$PORT" "$@"; }

# --- a hook event for D[2] arrives, and is held retrying (LogQS answers 503) ---
# pages of 2: the sweep's listing takes every page
printf '[worker]\nretry_base = 300ms\nretry_max_delay = 300ms\n[lqs]\npage_limit = 2\n\n[sweep %s]\nenabled = false\n' \
	"$SW" >"$T_DIR/s.conf"
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/s.db" --config "$T_DIR/s.conf"
check_contains "a configured sweep that is off is pointed out" "$(cat "$HOOKD_LOG")" \
	"sweep '$SW' is configured but not enabled"
mock_fault "{\"method\":\"GET\",\"path\":\"digestions/${D[2]}\",\"status\":503,\"count\":-1}"
post "$(event_json finalizing digestion "${D[2]}" processing)" -H "$AUTH"
check "the hook event for D2 is accepted" "$CODE" 202
hook_id=$(jq -r .event_id <<<"$BODY")
wait_until 10 bash -c "curl -s '$BASE/events/$hook_id' | jq -e '.state == \"retrying\"'" || fail "hook event retrying"
get /sweeps
check "GET /sweeps: the built-in sweep, off, never run" \
	"$(jq -c '.sweeps[] | [.name, .enabled, .process_type, .state, .every_s, .min_age_s, .handler, .last_run, .next_run_at]' <<<"$BODY")" \
	"[\"$SW\",false,\"digestion\",\"finalizing\",300,600,\"digestion_stats\",null,null]"
check "a sweep that is off calls nothing" "$(list_calls)" 0
code=$(curl -s -o "$T_DIR/x" -w '%{http_code}' -X POST "$BASE/sweeps/nope/run")
check "run an unknown sweep: 404, naming the sweeps there are" "$code $(jq -r .detail "$T_DIR/x")" \
	"404 no sweep named 'nope' (configured: $SW)"
check "GET on a run: 405" "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/sweeps/$SW/run")" 405
out=$(cli sweep nope --now 2>&1); rc=$?
check "sweep --now of an unknown sweep: exit 1 and why" "$rc $out" \
	"1 lqs-hookd: HTTP 404: no sweep named 'nope' (configured: $SW)"

# --- run it now: D0, D1, D4, D5 enqueued; D2 already held; D3 too young ---
out=$(cli sweep "$SW" --now); rc=$?
check "sweep --now: exit 0" "$rc" 0
check "sweep --now: the summary" "$(tail -1 <<<"$out")" \
	"sweep $SW: 5 listed, 5 old enough: enqueued 4, 1 already held"
check "sweep --now: D2 is the event the hook brought" "$(grep "${D[2]}" <<<"$out")" "$hook_id  ${D[2]}  already held"
check "sweep --now: D3 is not there" "$(grep -c "${D[3]}" <<<"$out")" 0
q=$(curl -s "$MOCK/_mock/requests" | jq -r '[.requests[] | select(.path == "digestions")][0].query')
check_contains "the list asks LogQS for that state" "$q" "state=finalizing&updated_at_lte="
check_contains "and pages like every list" "$q" "include_count=True&offset=0&limit=2"
check "every page: offsets 0, 2, 4 for 5 digestions" \
	"$(curl -s "$MOCK/_mock/requests" | jq -r '[.requests[] | select(.path == "digestions") | .query | capture("offset=(?<o>[0-9]+)").o] | join(",")')" \
	"0,2,4"
for i in 0 1 4 5; do
	id=$(events_of "${D[$i]}")
	wait_done "$id" 20 || fail "swept event of D$i finished"
	check "D$i: one event, from the sweep, completed" \
		"$(curl -s "$BASE/events/$id" | jq -r '[.source, .state, .event.hook_id, .event.previous_state, .event.datastore_id] | @tsv')" \
		"sweep:$SW	completed		processing	$DS"
	check "D$i: completed in LogQS with its stats" "$(completed_with_stats "${D[$i]}")" "completed	$want"
done
curl -s -X DELETE "$MOCK/_mock/faults" >/dev/null
wait_done "$hook_id" 20 || fail "the hook event finished"
check "D2: one event (the hook's), completed with its stats" \
	"$(events_of "${D[2]}" | wc -l) $(completed_with_stats "${D[2]}")" "1 completed	$want"
check "D3 (young) untouched" "$(events_of "${D[3]}" | wc -l) $(mock_state | jq -r --arg d "${D[3]}" '.digestions[$d].state')" \
	"0 finalizing"

# --- enabled on a schedule (reload): D3 is taken once it is old enough ---
printf '[sweep %s]\nenabled = true\nevery = 1s\n' "$SW" >"$T_DIR/s.conf"
kill -HUP "$HOOKD_PID"
wait_until 10 bash -c "curl -s '$BASE/sweeps' | jq -e '.sweeps[0].runs >= 3'" || fail "scheduled runs"
check "nothing more enqueued while D3 is young" "$(count_events)" 5
age "${D[3]}" 1200
wait_until 10 bash -c "curl -s '$BASE/events' | jq -e '[.data[] | select(.event.resource_id == \"${D[3]}\")] | length == 1'" ||
	fail "D3 enqueued once old enough"
wait_done "$(events_of "${D[3]}")" 20 || fail "D3 finished"
check "D3 completed with its stats" "$(completed_with_stats "${D[3]}")" "completed	$want"
get /sweeps
check "GET /sweeps: the last run, the next" \
	"$(jq -r '.sweeps[0] | [.enabled, .last_run.error, (.next_run_at != null), (.runs >= 4), .errors] | @tsv' <<<"$BODY")" \
	"true		true	true	0"
check "metric: events a sweep enqueued" \
	"$(curl -s "$BASE/metrics" | awk -v s="lqs_hookd_sweep_events_enqueued_total{sweep=\"$SW\"}" '$1 == s {print $2}')" 5
runs=$(jq .sweeps[0].runs <<<"$BODY")
lines=$(grep -c "\"sweep $SW: [0-9]* digestion(s) in finalizing" "$HOOKD_LOG")
[ "$lines" -ge "$runs" ] && [ "$lines" -le $((runs + 1)) ] && pass "one log line per run ($runs runs)" ||
	fail "one log line per run" "$lines lines for $runs runs"
stop_hookd TERM
check "SIGTERM: exit 0" "$HOOKD_RC" 0

# --- a restart does not run it twice in a row ---
printf '[sweep %s]\nenabled = true\nevery = 1h\n' "$SW" >"$T_DIR/s.conf"
before=$(list_calls)
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/s.db" --config "$T_DIR/s.conf"
sleep 1.5
check "restart: no run (the last one is recent)" "$(list_calls)" "$before"
check "restart: next run an hour after the last" \
	"$(curl -s "$BASE/sweeps" | jq -r '.sweeps[0] | ((.next_run_at | sub("\\.[0-9]+Z$"; "Z") | fromdate) - (.last_run.started_at | sub("\\.[0-9]+Z$"; "Z") | fromdate))')" 3600

# --- LogQS refuses the key: the sweep's calls stop, said once ---
mock_fault '{"method":"GET","path":"digestions","status":401,"count":-1}'
out=$(cli sweep "$SW" --now); rc=$?
check "sweep --now with a refused key: exit 1" "$rc" 1
check_contains "it says why" "$out" "error: LogQS GET digestions"
before=$(list_calls)
printf '[sweep %s]\nenabled = true\nevery = 1s\n' "$SW" >"$T_DIR/s.conf"
kill -HUP "$HOOKD_PID"
sleep 4
calls=$(( $(list_calls) - before ))
[ "$calls" -le 1 ] && pass "refused: the sweep stops calling ($calls list call(s) in 4 s at every = 1s)" ||
	fail "refused: the sweep stops calling" "$calls list calls"
check "refused: one log line a run, no more" "$(grep -c "sweep $SW: run FAILED.*HTTP 401" "$HOOKD_LOG")" "$((calls + 1))"
[ "$(grep -c "sweep $SW: waiting while the LogQS check fails" "$HOOKD_LOG")" -le 1 ] &&
	pass "refused: waiting said at most once" || fail "refused: waiting said at most once"
check "GET /sweeps says why it waits" "$(curl -s "$BASE/sweeps" | jq -r '.sweeps[0].waiting' | grep -c -E 'refused|401')" 1
check "metric: auth errors" \
	"$(curl -s "$BASE/metrics" | awk -v s="lqs_hookd_sweep_errors_total{sweep=\"$SW\",kind=\"auth\"}" '$1 == s {print $2}')" "$((calls + 1))"
stop_hookd TERM
curl -s -X DELETE "$MOCK/_mock/faults" >/dev/null

# --- kill -9 in the middle of a run, then again before its end was recorded ---
start_mock --synthetic 2x5x4 --key-id "$KEY_ID" --key-secret "$KEY_SECRET" --datastore "$DS"
mapfile -t D < <(curl -s "$MOCK/_mock/expected" | jq -r '.digestion_ids[]')
for i in 0 1 2 3; do age "${D[$i]}" 1200; done
printf '[sweep %s]\nenabled = true\nevery = 1h\n' "$SW" >"$T_DIR/k.conf"
mock_fault '{"method":"GET","path":"digestions","delay_ms":4000,"count":2}'   # the listing hangs
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/k.db" --config "$T_DIR/k.conf"
wait_until 10 bash -c "curl -s '$BASE/sweeps' | jq -e '.sweeps[0].running'" || fail "a run under way"
t0=$(date +%s%N)
stop_hookd TERM
check "SIGTERM during a run: exit 0, without waiting for LogQS" "$HOOKD_RC $(( ($(date +%s%N) - t0) / 1000000 < 2500 ))" "0 1"
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/k.db" --config "$T_DIR/k.conf"
wait_until 10 bash -c "curl -s '$BASE/sweeps' | jq -e '.sweeps[0].running'" || fail "the cut-short run runs again at start"
stop_hookd KILL
check "killed while listing: the run is recorded as started, not finished" 	"$(store_sql "$T_DIR/k.db" "SELECT CASE WHEN started_at > 0 THEN 1 ELSE 0 END, finished_at FROM sweeps WHERE name = '$SW'")" "1|0"
# handlers are slowed, so that the next kill finds the events still running
mock_fault '{"method":"GET","path":"/parts","delay_ms":2500,"count":-1}'
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/k.db" --config "$T_DIR/k.conf"
wait_until 10 grep -q "\"sweep $SW: 4 digestion(s)" "$HOOKD_LOG" || fail "the interrupted run runs again at start"
check_contains "and enqueues all four" "$(grep "\"sweep $SW: " "$HOOKD_LOG")" "enqueued 4, 0 already held"
stop_hookd KILL
# a crash right after the events were stored, before the run's end was
store_sql "$T_DIR/k.db" "UPDATE sweeps SET finished_at = 0"
curl -s -X DELETE "$MOCK/_mock/faults" >/dev/null
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/k.db" --config "$T_DIR/k.conf"
wait_until 10 grep -q "\"sweep $SW: " "$HOOKD_LOG" || fail "the run runs again at start"
# (whatever the recovered events completed meanwhile is no longer listed)
check_contains "nothing doubled: what is listed is already held" "$(grep "\"sweep $SW: " "$HOOKD_LOG")" "enqueued 0,"
for i in 0 1 2 3; do
	ids=$(events_of "${D[$i]}")
	check "D$i: exactly one event" "$(wc -l <<<"$ids")" 1
	wait_done "$ids" 20 || fail "D$i finished"
	check "D$i: completed with its stats" "$(completed_with_stats "${D[$i]}")" "completed	$want"
done
stop_hookd TERM

finish
