#!/usr/bin/env bash
# Losing the PostgreSQL store: the server stopped for 10 s under load (no
# 202 for an event that was not committed, /readyz 503 meanwhile, every
# 202'd event finished once it is back, no restart needed), and the
# daemon's connections killed with pg_terminate_backend.
. "$(dirname "$0")/lib.sh"

PGD="$T_DIR/pg"
URL=$(pg_server "$PGD") || { echo "no PostgreSQL server"; exit 1; }
sql() { psql -X -qAt -v ON_ERROR_STOP=1 "$URL" -c "$1"; }
start_mock
cat >"$T_DIR/f.conf" <<CONF
[worker]
workers = 2
retry_base = 200ms
retry_max_delay = 1s

[route forward]
process_type = digestion
state = completed
handler = http_trigger
url = $MOCK/target/hooks
body = {"hook": "{hook_id}"}
CONF
start_hookd "$URL" --config "$T_DIR/f.conf"

# posts for 16 s, 4 at a time, each answer recorded: hook, status, event id
python3 - "$T_DIR/answers" "$SECRET" "$BASE" 16 >"$T_DIR/poster.out" 2>&1 <<'PY' &
import base64, json, sys, threading, time, urllib.error, urllib.request, uuid
out, secret, base, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
auth = "Bearer " + base64.b64encode(secret.encode()).decode()
end = time.time() + seconds
lines, lock = [], threading.Lock()
def worker(n):
    i = 0
    while time.time() < end:
        ev = {"hook_id": str(uuid.uuid4()), "process_type": "digestion", "previous_state": "finalizing",
              "current_state": "completed", "resource_id": str(uuid.UUID(int=n * 1000 + i % 7 + 1))}
        i += 1
        req = urllib.request.Request(base + "/events", data=json.dumps(ev).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": auth})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                code, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            code, body = e.code, e.read()
        except Exception:
            code, body = 0, b"{}"
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        with lock:
            lines.append(f"{ev['hook_id']} {code} {doc.get('event_id', '-')} {time.time():.3f}")
        time.sleep(0.01)
ts = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
open(out, "w").write("\n".join(lines) + "\n")
PY
poster=$!
sleep 3
"$LQS_SRC/tests/tools/pgtmp.sh" stop "$PGD"
down_at=$(date +%s.%N)
sleep 1
get /readyz
check "the server stopped: /readyz 503" "$CODE $BODY" '503 {"detail":"event store is not writable"}'
post "$(event_json completed digestion 00000000-0000-0000-0000-0000000000cc finalizing)" -H "$AUTH"
check "the server stopped: POST answers 503" "$CODE $BODY" '503 {"detail":"event store unavailable; retry later"}'
sleep 9
up_at=$(date +%s.%N)
"$LQS_SRC/tests/tools/pgtmp.sh" start "$PGD" >/dev/null
wait_until 15 bash -c "curl -s '$BASE/readyz' | grep -q '\"ready\"'" && pass "back by itself: /readyz 200" ||
	fail "back by itself: /readyz 200"
wait "$poster"
answers() { awk -v c="$1" '$2 == c' "$T_DIR/answers"; }
echo "     answers: $(awk '{print $2}' "$T_DIR/answers" | sort | uniq -c | xargs)"
check "202s before the stop and after the return" \
	"$(answers 202 | awk -v d="$down_at" -v u="$up_at" '$4 < d {b=1} $4 > u {a=1} END {print b+a}')" 2
check "503s while it was down" "$([ "$(answers 503 | wc -l)" -gt 0 ] && echo yes)" yes
check "no 202 while the server was down" \
	"$(answers 202 | awk -v d="$down_at" -v u="$up_at" '$4 > d + 0.5 && $4 < u' | wc -l)" 0
wait_until 60 bash -c "[ \"\$(psql -X -qAt '$URL' -c \"SELECT count(*) FROM events WHERE state <> 'completed'\")\" = 0 ]" ||
	fail "all finished" "$(sql "SELECT state, count(*) FROM events GROUP BY state")"
answers 202 | awk '{print $3}' | sort >"$T_DIR/acked"
sql "SELECT id FROM events WHERE state = 'completed'" | sort >"$T_DIR/done"
check "every 202'd event is in the store, completed" "$(comm -23 "$T_DIR/acked" "$T_DIR/done" | wc -l)" 0
check "... and completed once" \
	"$(sql "SELECT count(*) = count(DISTINCT event_id) FROM history WHERE step = 'outcome' AND detail::json->>'state' = 'completed'")" t

# connections killed under the daemon: at most one answer fails, then it
# reconnects by itself
killed=$(sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'lqs-hookd'")
check "the daemon's connections killed" "$([ "$killed" -ge 1 ] && echo yes)" yes
codes=""
for i in 1 2 3 4 5 6; do
	post "$(event_json completed digestion "00000000-0000-0000-0000-00000000010$i" finalizing)" -H "$AUTH"
	codes="$codes $CODE"
done
check "after pg_terminate_backend: answers recover at once ($codes)" \
	"$(awk '{n = 0; for (i = 1; i <= NF; i++) if ($i == 202) n++; print (n >= NF - 1 && $NF == 202) ? "yes" : "no"}' <<<"$codes")" yes
ev=$(jq -r .event_id <<<"$BODY")
wait_done "$ev" 20 && pass "and its events still run" || fail "and its events still run"
get /readyz
check "/readyz 200" "$CODE" 200
grep -q "cannot reach PostgreSQL" "$HOOKD_LOG" && pass "the outage is in the log" || fail "the outage is in the log"
grep -q "connected to PostgreSQL .* again" "$HOOKD_LOG" && pass "and the return" || fail "and the return"
stop_hookd TERM
check "SIGTERM: exit 0" "$HOOKD_RC" 0

# a schema newer than this build knows is refused, by name
sql "UPDATE lqs_hookd_schema SET version = 99"
out=$(LQS_EXPECTED_SECRET=x timeout 20 "$LQS_HOOKD" --listen 127.0.0.1:0 --store "$URL" 2>&1); rc=$?
check "a newer schema: refused at start" "$rc" 1
check_contains "... saying why" "$out" "has schema version 99, newer than this lqs-hookd knows (1)"
# a wrong address: libpq's reason
out=$(LQS_EXPECTED_SECRET=x timeout 20 "$LQS_HOOKD" --listen 127.0.0.1:0 --store "postgresql://hookd:pw-not-shown@/nodb?host=$T_DIR/pg/pgsock" 2>&1); rc=$?
check "a database that does not exist: refused at start" "$rc" 1
check_contains "... with libpq's reason" "$out" 'database \"nodb\" does not exist'
case "$out" in *pw-not-shown*) fail "the password is not logged" ;; *) pass "the password is not logged" ;; esac
finish
