#!/usr/bin/env bash
# Never lose an event (part B): backpressure, drain on SIGTERM, the second
# signal, reload with SIGHUP.
. "$(dirname "$0")/lib.sh"

# ---------- 503 at max_queued: never a 2xx for an event not stored ----------
# LogQS unreachable (a closed port) and long backoff: events stay unfinished.
HOOKD_ENV="LQS_API_URL=http://127.0.0.1:9 LQS_RETRY_COUNT=0 LQS_HOOKD_RETRY_BASE=1h LQS_HOOKD_RETRY_MAX_DELAY=1h LQS_HOOKD_MAX_QUEUED=2 LQS_HOOKD_DEDUPE_WINDOW=0" \
	start_hookd "$T_DIR/q.db"
for i in 1 2; do
	post "$(event_json finalizing digestion "0000000$i-0000-0000-0000-000000000000")" -H "$AUTH"
	check "event $i of max_queued accepted" "$CODE" 202
done
hdrs=$(curl -s -D - -o "$T_DIR/b" -X POST "$BASE/events" -H 'Content-Type: application/json' -H "$AUTH" \
	-d "$(event_json finalizing digestion 00000003-0000-0000-0000-000000000000)" | tr -d '\r')
check "over max_queued: 503" "$(head -1 <<<"$hdrs" | cut -d' ' -f2)" 503
check "over max_queued: Retry-After" "$(sed -n 's/^Retry-After: //p' <<<"$hdrs")" 30
check "over max_queued: says why" "$(cat "$T_DIR/b")" '{"detail":"queue full: 2 unfinished events (max_queued); retry later"}'
check "store holds only the accepted" "$(count_events)" 2
stop_hookd TERM

# ---------- 503 when the store is full ----------
# (PostgreSQL's empty tables and indexes take about 320K, and its size is
# measured every 5 s)
MAXSIZE=96K; [ -n "${LQS_TEST_PG:-}" ] && MAXSIZE=800K
HOOKD_ENV="LQS_HOOKD_MAX_STORE_SIZE=$MAXSIZE LQS_HOOKD_DEDUPE_WINDOW=0" start_hookd "$T_DIR/full.db"
accepted=0; full=""
for i in $(seq 1 3000); do
	post "$(event_json ready ingestion "$DIG")" -H "$AUTH"
	if [ "$CODE" = 202 ]; then accepted=$((accepted + 1)); else full="$CODE $BODY"; break; fi
done
check "store full: 503 with a clear message" "$full" '503 {"detail":"event store is full (disk space or max_store_size); retry later"}'
check "store full: some events were accepted first" "$([ "$accepted" -gt 5 ] && echo yes)" yes
check "store full: every 202 is in the store" "$(count_events)" "$accepted"
kill -0 "$HOOKD_PID" && pass "store full: daemon still serving" || fail "store full: daemon still serving"
stop_hookd TERM

# ---------- SIGTERM drains running attempts ----------
start_demo_mock
mock_fault "{\"method\":\"GET\",\"path\":\"digestions/$DIG\",\"delay_ms\":1500,\"count\":1}"
HOOKD_ENV="$(mock_env) LQS_HOOKD_DRAIN_TIMEOUT=10s" start_hookd "$T_DIR/drain.db"
post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"; id=$(jq -r .event_id <<<"$BODY")
wait_until 5 bash -c "curl -s '$BASE/events/$id' | jq -e '.state == \"running\"'" || fail "attempt running"
t0=$(date +%s%N)
stop_hookd TERM
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "drain: exit 0" "$HOOKD_RC" 0
check "drain: waited for it, not for the timeout ($ms ms)" "$([ "$ms" -lt 5000 ] && echo yes)" yes
check_contains "drain: logged" "$(cat "$HOOKD_LOG")" "stopping: no new connections; draining"
# seen after a restart: finished by the first daemon, nothing recovered
start_hookd "$T_DIR/drain.db"
get "/events/$id"
check "drain: attempt finished before exit" "$(jq -r '[.state, .attempts] | @tsv' <<<"$BODY")" "completed	1"
check "drain: nothing left to recover" "$(grep -c 'recovered' "$HOOKD_LOG")" 0
stop_hookd TERM

# an attempt longer than drain_timeout is interrupted and left runnable
start_demo_mock
mock_fault "{\"method\":\"GET\",\"path\":\"digestions/$DIG\",\"delay_ms\":6000,\"count\":1}"
HOOKD_ENV="$(mock_env) LQS_HOOKD_DRAIN_TIMEOUT=300ms" start_hookd "$T_DIR/drain2.db"
post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"; id=$(jq -r .event_id <<<"$BODY")
wait_until 5 bash -c "curl -s '$BASE/events/$id' | jq -e '.state == \"running\"'" || fail "attempt running"
t0=$(date +%s%N)
stop_hookd TERM
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "drain timeout: exit 0" "$HOOKD_RC" 0
check "drain timeout: did not wait for LogQS ($ms ms)" "$([ "$ms" -lt 3000 ] && echo yes)" yes
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/drain2.db"
# left runnable, not running: no lease to recover, the attempt not counted
check "drain timeout: event left runnable (requeued, not recovered)" \
	"$(curl -s "$BASE/events/$id/history" | jq -r '[.history[].step | select(. == "requeued" or . == "recovered")] | join(",")')" requeued
check "drain timeout: nothing recovered at the restart" "$(grep -c 'recovered' "$HOOKD_LOG")" 0
wait_done "$id" 20 || fail "interrupted event finished after restart"
get "/events/$id"
check "drain timeout: completed at the next start" "$(jq -c '[.trace_event_status, .attempts]' <<<"$BODY")" '["OK",1]'
stop_hookd TERM

# ---------- a second signal exits at once, still losing nothing ----------
start_demo_mock
mock_fault "{\"method\":\"GET\",\"path\":\"digestions/$DIG\",\"delay_ms\":8000,\"count\":1}"
HOOKD_ENV="$(mock_env) LQS_HOOKD_DRAIN_TIMEOUT=20s" start_hookd "$T_DIR/twice.db"
post "$(event_json finalizing digestion "$DIG")" -H "$AUTH"; id=$(jq -r .event_id <<<"$BODY")
wait_until 5 bash -c "curl -s '$BASE/events/$id' | jq -e '.state == \"running\"'" || fail "attempt running"
kill -TERM "$HOOKD_PID"; sleep 0.3
t0=$(date +%s%N)
stop_hookd TERM
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "second signal: exits at once ($ms ms)" "$([ "$ms" -lt 1500 ] && echo yes)" yes
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/twice.db"
wait_done "$id" 20 || fail "event finished after the hard stop"
get "/events/$id"
check "second signal: event completed after restart" "$(jq -r .trace_event_status <<<"$BODY")" OK
stop_hookd TERM

# ---------- SIGHUP: rotation without dropping a request, invalid file, workers ----------
A="$(printf old-secret | base64)"; B="$(printf new-secret | base64)"
printf '[auth]\nsecret = old-secret\n[worker]\nworkers = 1\n[store]\ndedupe_window = 0\n' >"$T_DIR/hup.conf"
NO_ENV_SECRET=1 start_hookd "$T_DIR/hup.db" --config "$T_DIR/hup.conf"
ev=$(event_json ready ingestion "$DIG")
post "$ev" -H "Authorization: Bearer $A"; check "old secret before reload" "$CODE" 202
threads_before=$(awk '/^Threads:/ {print $2}' "/proc/$HOOKD_PID/status")
# a stream of requests with the old secret while the configuration changes
( for i in $(seq 1 60); do
	curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 -X POST "$BASE/events" \
		-H 'Content-Type: application/json' -H "Authorization: Bearer $A" -d "$ev"
  done >"$T_DIR/stream" ) &
stream=$!
sleep 0.2
printf '[auth]\nsecret = old-secret\nsecret = new-secret\n[worker]\nworkers = 3\n[store]\ndedupe_window = 0\n' >"$T_DIR/hup.conf"
kill -HUP "$HOOKD_PID"
wait "$stream"
check "no request dropped during reload" "$(sort "$T_DIR/stream" | uniq -c | awk '{print $2 "x" $1}')" "202x60"
wait_until 5 grep -q 'configuration reloaded' "$HOOKD_LOG" && pass "reload logged" || fail "reload logged"
post "$ev" -H "Authorization: Bearer $B"; check "new secret accepted after reload" "$CODE" 202
post "$ev" -H "Authorization: Bearer $A"; check "old secret still accepted during rotation" "$CODE" 202
threads_after=$(awk '/^Threads:/ {print $2}' "/proc/$HOOKD_PID/status")
check "workers 1 -> 3 on reload" "$((threads_after - threads_before))" 2
printf '[auth]\nsecret = new-secret\n[worker]\nworkers = 1\n[store]\ndedupe_window = 0\n' >"$T_DIR/hup.conf"
kill -HUP "$HOOKD_PID"
wait_until 5 bash -c "[ \$(grep -c 'configuration reloaded' '$HOOKD_LOG') -ge 2 ]" || fail "second reload"
post "$ev" -H "Authorization: Bearer $A"; check "old secret refused after rotation" "$CODE" 401
wait_until 5 bash -c "[ \$(awk '/^Threads:/ {print \$2}' /proc/$HOOKD_PID/status) -eq $threads_before ]" \
	&& pass "workers 3 -> 1 on reload" || fail "workers 3 -> 1 on reload"
printf '[auth]\nsecret = new-secret\nbogus line\n' >"$T_DIR/hup.conf"
kill -HUP "$HOOKD_PID"
wait_until 5 grep -q 'reload failed; keeping the running configuration' "$HOOKD_LOG" \
	&& pass "invalid file: reload refused and logged" || fail "invalid file: reload refused and logged"
check_contains "invalid file: the log says where" "$(grep 'reload failed' "$HOOKD_LOG")" "hup.conf:3: syntax error"
post "$ev" -H "Authorization: Bearer $B"; check "invalid file: running config kept" "$CODE" 202
# (listen and store come from the command line here, which outranks the file)
printf '[http]\nhttp_threads = 3\n[auth]\nsecret = new-secret\n' >"$T_DIR/hup.conf"
kill -HUP "$HOOKD_PID"
wait_until 5 grep -q 'http_threads.*take effect after a restart' "$HOOKD_LOG" && pass "restart-only setting named in the log" \
	|| fail "restart-only setting named in the log"
stop_hookd TERM
check "exit 0 after reloads" "$HOOKD_RC" 0

finish
