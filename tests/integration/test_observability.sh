#!/usr/bin/env bash
# /metrics (valid Prometheus text with the right numbers), /readyz, logs.
. "$(dirname "$0")/lib.sh"

PROMTOOL=$(command -v promtool || echo "$LQS_SRC/.tools/usr/bin/promtool")
[ -x "$PROMTOOL" ] || { echo "promtool not found (make deps fetches it)"; exit 1; }

start_demo_mock
mock_fault "{\"method\":\"GET\",\"path\":\"digestions/$DIG/parts\",\"status\":503,\"count\":1}"
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/o.db"
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
check "attempts" "$(m 'lqs_hookd_attempts_total{handler="digestion_stats"}')" 1
calls=$(mock_requests | jq '[.requests[] | select(.method=="GET")] | length')
check "LogQS GET calls, 2xx (mock saw $calls GETs, one was the 503)" "$(m 'lqs_hookd_lqs_calls_total{method="GET",status_class="2xx"}')" $((calls - 1))
check "LogQS GET calls, 5xx" "$(m 'lqs_hookd_lqs_calls_total{method="GET",status_class="5xx"}')" 1
check "LogQS PATCH calls" "$(m 'lqs_hookd_lqs_calls_total{method="PATCH",status_class="2xx"}')" 2
check "call histogram count" "$(m 'lqs_hookd_lqs_call_duration_seconds_count{method="PATCH"}')" 2
check "handler histogram +Inf" "$(m 'lqs_hookd_handler_duration_seconds_bucket{handler="digestion_stats",le="+Inf"}')" 1
check "queue depth: completed" "$(m 'lqs_hookd_events{state="completed"}')" 2
check "queue depth: queued" "$(m 'lqs_hookd_events{state="queued"}')" 0
check "oldest runnable age 0 when idle" "$(m 'lqs_hookd_oldest_runnable_age_seconds')" 0.000
check "store size reported" "$(awk '$1 == "lqs_hookd_store_size_bytes" { print ($2 > 0) ? "yes" : "no" }' "$T_DIR/metrics.txt")" yes
check "build info" "$(m 'lqs_hookd_build_info{version="')" 1
check "workers gauge" "$(m 'lqs_hookd_workers ')" 4

# every log line about an event names the event and its resource
lines=$(grep -c '"event_id"' "$HOOKD_LOG")
check "event log lines exist" "$([ "$lines" -ge 4 ] && echo yes)" yes
check "every event line carries resource_id" "$(grep '"event_id"' "$HOOKD_LOG" | grep -vc '"resource_id"')" 0
check "log lines are JSON" "$(jq -c . "$HOOKD_LOG" >/dev/null 2>&1 && echo yes)" yes
case "$(cat "$HOOKD_LOG")" in *"$SECRET"*|*"$KEY_SECRET"*) fail "no secret in the log" ;; *) pass "no secret in the log" ;; esac

# /readyz: 503 while another process holds the store's write lock
( echo "BEGIN IMMEDIATE;"; sleep 2; echo "ROLLBACK;" ) | sqlite3 "$T_DIR/o.db" &
locker=$!
sleep 0.4
get /readyz
check "readyz 503 while the store is locked" "$CODE $BODY" '503 {"detail":"event store is not writable"}'
wait "$locker"
get /readyz
check "readyz 200 again" "$CODE $BODY" '200 {"status":"ready"}'
stop_hookd TERM

# metrics follow the administration access rule
HOOKD_ENV="LQS_HOOKD_ADMIN_TOKEN=tok-9" start_hookd "$T_DIR/o2.db"
check "metrics need the admin token" "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/metrics")" 401
check "metrics with the token" "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer tok-9' "$BASE/metrics")" 200
check "readyz stays open" "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" 200
stop_hookd TERM

finish
