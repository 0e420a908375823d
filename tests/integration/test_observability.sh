#!/usr/bin/env bash
# /metrics (valid Prometheus text with the right numbers), /readyz, logs.
. "$(dirname "$0")/lib.sh"

PROMTOOL=$(command -v promtool || echo "$LQS_SRC/.tools/usr/bin/promtool")
[ -x "$PROMTOOL" ] || { echo "promtool not found (make deps fetches it)"; exit 1; }

start_demo_mock
# three 503s: the first attempt's three tries fail, so it ends "retrying";
# the second attempt (retry_base later) completes
mock_fault "{\"method\":\"GET\",\"path\":\"digestions/$DIG\",\"status\":503,\"count\":3}"
HOOKD_ENV="$(mock_env) LQS_HOOKD_RETRY_BASE=0.2" start_hookd "$T_DIR/o.db"
post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"; id=$(jq -r .event_id <<<"$BODY")
wait_done "$id" 20 || fail "event finished"
post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"             # duplicate
post "$(event_json finalizing digestion "$DIG")"                        # 401
post '{"nope":1}' -H "$AUTH"                                            # 422
post "$(event_json ready ingestion "$DIG")" -H "$AUTH"; u=$(jq -r .event_id <<<"$BODY")
wait_done "$u" 10 || fail "unrouted event finished"
get /nope

curl -s -D "$T_DIR/mh" "$BASE/metrics" >"$T_DIR/metrics.txt"
check "metrics content type" "$(tr -d '\r' <"$T_DIR/mh" | sed -n 's/^Content-Type: //p')" "text/plain; version=0.0.4; charset=utf-8"
out=$("$PROMTOOL" check metrics <"$T_DIR/metrics.txt" 2>&1)
check "promtool check metrics: exit 0" "$?" 0
check "promtool check metrics: no complaints" "$out" ""
m() { grep -v '^#' "$T_DIR/metrics.txt" | grep -F "$1" | awk '{print $NF}'; }
check "accepted counter" "$(m 'lqs_hookd_events_received_total{outcome="accepted",reason=""}')" 2
check "duplicate counter" "$(m 'lqs_hookd_events_received_total{outcome="duplicate",reason=""}')" 1
check "rejected: unauthorized" "$(m 'lqs_hookd_events_received_total{outcome="rejected",reason="unauthorized"}')" 1
check "rejected: invalid_event" "$(m 'lqs_hookd_events_received_total{outcome="rejected",reason="invalid_event"}')" 1
check "requests by route and code" "$(m 'lqs_hookd_http_requests_total{route="events",code="202"}')" 2
check "404s counted" "$(m 'lqs_hookd_http_requests_total{route="other",code="404"}')" 1
check "finished by handler and outcome" "$(m 'lqs_hookd_events_finished_total{handler="digestion_stats",outcome="completed"}')" 1
check "unrouted finished" "$(m 'lqs_hookd_events_finished_total{handler="none",outcome="completed"}')" 1
check "attempts: completed" "$(m 'lqs_hookd_attempts_total{handler="digestion_stats",outcome="completed"}')" 1
check "attempts: retrying counts the attempt that runs again" "$(m 'lqs_hookd_attempts_total{handler="digestion_stats",outcome="retrying"}')" 1
check "retries counter agrees" "$(m 'lqs_hookd_retries_total{handler="digestion_stats"}')" 1
check "no event counted finished while it retries" "$(grep -c 'events_finished_total{.*retrying' "$T_DIR/metrics.txt")" 0
# every GET the mock saw, the daemon's own users/me check included
calls=$(curl -s "$MOCK/_mock/requests" | jq '[.requests[] | select(.method=="GET")] | length')
check "LogQS GET calls, 200 (mock saw $calls GETs, three were 503s)" "$(m 'lqs_hookd_lqs_calls_total{method="GET",code="200"}')" $((calls - 3))
check "LogQS GET calls, by code: 503" "$(m 'lqs_hookd_lqs_calls_total{method="GET",code="503"}')" 3
check "LogQS PATCH calls" "$(m 'lqs_hookd_lqs_calls_total{method="PATCH",code="200"}')" 2
check "LogQS check metric" "$(m 'lqs_hookd_lqs_check_ok')" 1
check "receive histogram: every answer to POST /events counted" "$(m 'lqs_hookd_event_receive_duration_seconds_count')" 5
check "receive histogram: sub-millisecond buckets" "$(grep -c 'lqs_hookd_event_receive_duration_seconds_bucket{le="0.0005"}' "$T_DIR/metrics.txt")" 1
check "process metrics" "$(grep -c -E '^process_(cpu_seconds_total|resident_memory_bytes|open_fds|max_fds|start_time_seconds) ' "$T_DIR/metrics.txt")" 5
check "open fds is a count" "$(awk '$1 == "process_open_fds" { print ($2 > 5 && $2 < 1000) ? "yes" : "no" }' "$T_DIR/metrics.txt")" yes
check "start time is now-ish" "$(awk -v now="$(date +%s)" '$1 == "process_start_time_seconds" { print ($2 > now - 120 && $2 <= now + 1) ? "yes" : "no" }' "$T_DIR/metrics.txt")" yes
check "reload result before any reload" "$(m 'lqs_hookd_config_last_reload_successful')" 1
check "call histogram count" "$(m 'lqs_hookd_lqs_call_duration_seconds_count{method="PATCH"}')" 2
check "handler histogram +Inf: both attempts" "$(m 'lqs_hookd_handler_duration_seconds_bucket{handler="digestion_stats",le="+Inf"}')" 2
check "queue depth: completed" "$(m 'lqs_hookd_events{state="completed"}')" 2
check "queue depth: queued" "$(m 'lqs_hookd_events{state="queued"}')" 0
check "oldest runnable age 0 when idle" "$(m 'lqs_hookd_oldest_runnable_age_seconds')" 0.000
check "store size reported" "$(awk '$1 == "lqs_hookd_store_size_bytes" { print ($2 > 0) ? "yes" : "no" }' "$T_DIR/metrics.txt")" yes
check "build info names the commit" "$(grep -c '^lqs_hookd_build_info{version="[0-9.]*",commit="[0-9a-z-]*"} 1$' "$T_DIR/metrics.txt")" 1
check "workers gauge" "$(m 'lqs_hookd_workers ')" 4

# attempts carry their number and duration as fields of their own
check "attempt fields on the completed line" \
	"$(jq -r 'select(.msg | startswith("event completed")) | [.attempt, (.duration_ms | type)] | @tsv' "$HOOKD_LOG" | head -1)" \
	"2	number"
check "attempt fields on the retry line" \
	"$(jq -r 'select(.msg | contains("failed, will retry")) | .attempt' "$HOOKD_LOG" | head -1)" 1
# the rejected deliveries above left a line each: reason, client, path
check_contains "401 logged with reason, client and path" "$(cat "$HOOKD_LOG")" \
	'"msg":"rejected POST /events from 127.0.0.1: 401 Authorization header is missing","status":401}'
check_contains "422 logged with the field, not the body" "$(cat "$HOOKD_LOG")" \
	'rejected POST /events from 127.0.0.1: 422 invalid event: current_state: Field required (and more)'

# every log line about an event names the event and its resource
lines=$(grep -c '"event_id"' "$HOOKD_LOG")
check "event log lines exist" "$([ "$lines" -ge 4 ] && echo yes)" yes
check "every event line carries resource_id" "$(grep '"event_id"' "$HOOKD_LOG" | grep -vc '"resource_id"')" 0
check "log lines are JSON" "$(jq -c . "$HOOKD_LOG" >/dev/null 2>&1 && echo yes)" yes
case "$(cat "$HOOKD_LOG")" in *"$SECRET"*|*"$KEY_SECRET"*) fail "no secret in the log" ;; *) pass "no secret in the log" ;; esac

# /readyz: 503 while another process holds the store's write lock (a
# SQLite store; the PostgreSQL one is taken away in test_pgfaults)
if [ -z "${LQS_TEST_PG:-}" ]; then
	( echo "BEGIN IMMEDIATE;"; sleep 2; echo "ROLLBACK;" ) | sqlite3 "$T_DIR/o.db" &
	locker=$!
	sleep 0.4
	get /readyz
	check "readyz 503 while the store is locked" "$CODE $BODY" '503 {"detail":"event store is not writable"}'
	wait "$locker"
fi
get /readyz
check "readyz 200 again" "$CODE $BODY" '200 {"status":"ready"}'
stop_hookd TERM

# rejections are rate-limited: 2 lines per 4 s window (long enough for
# seven requests on a loaded machine), then one summary line
HOOKD_ENV="LQS_HOOKD_MAX_REJECTION_LOGS=2 LQS_HOOKD_REJECTION_LOG_INTERVAL=4s" start_hookd "$T_DIR/o3.db"
for i in 1 2 3 4 5; do post "$(event_json finalizing digestion "$DIG")" -H "Authorization: Bearer d3JvbmctQk9EWS1TRUNSRVQ="; done
post '{"current_state":"finalizing","process_type":"digestion","resource_id":"not-a-uuid-BODY-MARKER"}' -H "$AUTH"
CT=text/plain post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"
check "the 415 was answered" "$CODE" 415
wait_until 10 grep -q 'more rejected requests not logged' "$HOOKD_LOG" || fail "summary line"
check "two lines, then a summary" "$(grep -c '"msg":"rejected ' "$HOOKD_LOG")" 2
check_contains "summary counts by status" "$(cat "$HOOKD_LOG")" \
	'"msg":"5 more rejected requests not logged in the last 4 s (by status: 401: 3, 422: 1, 415: 1)"'
check "neither the token nor the body is logged" "$(grep -c -e 'd3JvbmctQk9EWS1TRUNSRVQ' -e 'BODY-MARKER' "$HOOKD_LOG")" 0
post "$(event_json finalizing digestion "$DIG")"   # a new window: logged again
wait_until 3 bash -c "[ \$(grep -c '\"msg\":\"rejected ' '$HOOKD_LOG') -eq 3 ]" && pass "a new interval logs again" || fail "a new interval logs again"
stop_hookd TERM

# log_format = journal where there is no journald: lines still reach stderr
if [ -S /run/systemd/journal/socket ]; then
	echo "skip: journald runs here; the fallback is for machines without it"
else
	HOOKD_ENV="LQS_HOOKD_LOG_FORMAT=journal" start_hookd "$T_DIR/o4.db"
	pass "journal format without journald: start-up lines on stderr"
	check_contains "and a warning says so" "$(cat "$HOOKD_LOG")" "log_format = journal, but journald is not running here"
	stop_hookd TERM
	check_contains "shutdown lines too" "$(cat "$HOOKD_LOG")" '"msg":"stopped"'
fi

# metrics follow the administration access rule
HOOKD_ENV="LQS_HOOKD_ADMIN_TOKEN=tok-9" start_hookd "$T_DIR/o2.db"
check "metrics need the admin token" "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics")" 401
check "metrics with the token" "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer tok-9' "$BASE/metrics")" 200
check "readyz stays open" "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" 200
stop_hookd TERM

finish
