#!/usr/bin/env bash
# Three daemons on one PostgreSQL database: 2 000 hook events (40 to a
# resource) posted round robin, one daemon kill -9'd midway and another
# SIGTERM'd: every acknowledged event completes once, no two attempts of
# one resource overlap (from the histories), a duplicate delivery to
# another daemon is recognised, and batches filled from all three at once
# close and trigger once each.
. "$(dirname "$0")/lib.sh"

URL=$(pg_server "$T_DIR/pg") || { echo "no PostgreSQL server"; exit 1; }
sql() { psql -X -qAt -v ON_ERROR_STOP=1 "$URL" -c "$1"; }
start_mock
# each forward takes a while, so that the kill finds attempts running
mock_fault '{"method":"POST","path":"target/hooks","delay_ms":15}'
OBJ_TOKEN=obj-token
cat >"$T_DIR/c.conf" <<CONF
[worker]
workers = 4
lease = 3s
retry_base = 100ms
retry_max_delay = 300ms
drain_timeout = 10s

[objects]
objects_secret = $OBJ_TOKEN

[route forward]
process_type = digestion
state = completed
handler = http_trigger
url = $MOCK/target/hooks
body = {"hook": "{hook_id}", "resource": "{resource_id}"}

[watch packs]
bucket = my-bucket
prefix = packs/
count = 4
trigger = http_trigger
url = $MOCK/target/packs
CONF
declare -a PIDS BASES
for i in 0 1 2; do
	start_hookd "$URL" --config "$T_DIR/c.conf"
	PIDS[i]=$HOOKD_PID
	BASES[i]=$BASE
done
check "three daemons ready on one database" "$(for b in "${BASES[@]}"; do curl -s "$b/readyz" | jq -r .status; done | sort | uniq -c | xargs)" "3 ready"

# 2 000 events over 50 resources, 8 at a time, round robin; a refused or
# unreachable daemon is skipped as a load balancer would. Daemon 2 is
# killed after 700 events, daemon 3 stopped after 1 400.
python3 - "$T_DIR/acks" "$SECRET" "${PIDS[1]}" "${PIDS[2]}" "${BASES[@]}" <<'PY'
import base64, json, os, signal, sys, threading, urllib.request, uuid
out, secret, kill_pid, term_pid, *bases = sys.argv[1:]
auth = "Bearer " + base64.b64encode(secret.encode()).decode()
resources = [str(uuid.UUID(int=i + 1)) for i in range(50)]
lock = threading.Lock()
acks, next_i = [], [0]
def post(i):
    ev = {"hook_id": str(uuid.uuid4()), "process_type": "digestion", "resource_id": resources[i % 50],
          "previous_state": "finalizing", "current_state": "completed"}
    data = json.dumps(ev).encode()
    for k in range(30):
        base = bases[(i + k) % 3]
        req = urllib.request.Request(base + "/events", data=data, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": auth})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                body = json.loads(r.read())
                # a copy whose answer was lost with its daemon comes back
                # from another as a duplicate (200) of the stored event
                if r.status in (200, 202):
                    return ev["hook_id"], body["event_id"], body.get("status")
        except Exception:
            pass
    return ev["hook_id"], None, None
def worker():
    while True:
        with lock:
            i = next_i[0]
            next_i[0] += 1
            if i == 700:
                os.kill(int(kill_pid), signal.SIGKILL)
            if i == 1400:
                os.kill(int(term_pid), signal.SIGTERM)
        if i >= 2000:
            return
        r = post(i)
        with lock:
            acks.append(r)
ts = [threading.Thread(target=worker) for _ in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
with open(out, "w") as f:
    for h, e, s in acks:
        f.write(f"{h} {e} {s}\n")
PY
check "every event acknowledged (by a daemon still up)" "$(awk '$2 != "None"' "$T_DIR/acks" | wc -l)" 2000
dups=$(awk '$3 == "duplicate"' "$T_DIR/acks" | wc -l)
check "... each new, or a duplicate of a copy whose answer was lost ($dups)" \
	"$(awk '$3 == "accepted" || $3 == "duplicate"' "$T_DIR/acks" | wc -l)" 2000
check "each stored once" "$(sql "SELECT count(*), count(DISTINCT body::json->>'hook_id') FROM events WHERE process_type = 'digestion'")" "2000|2000"
BASE=${BASES[0]}
wait_until 90 bash -c "[ \"\$(psql -X -qAt '$URL' -c \"SELECT count(*) FROM events WHERE state <> 'completed' AND process_type = 'digestion'\")\" = 0 ]" ||
	fail "all finished" "$(sql "SELECT state, count(*) FROM events GROUP BY state")"
awk '{print $2}' "$T_DIR/acks" | sort >"$T_DIR/acked"
sql "SELECT id FROM events WHERE process_type = 'digestion' AND state = 'completed'" | sort >"$T_DIR/completed"
check "every acknowledged event completed" "$(comm -23 "$T_DIR/acked" "$T_DIR/completed" | wc -l)" 0
check "each completed once (one completed outcome each)" \
	"$(sql "SELECT count(*), count(DISTINCT event_id) FROM history WHERE step = 'outcome' AND detail::json->>'state' = 'completed'")" "2000|2000"
overlaps=$(sql "SELECT count(*) FROM (SELECT h.started_at, max(h.ended_at) OVER (PARTITION BY e.resource_id
	ORDER BY h.started_at, h.seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
	FROM history h JOIN events e ON e.id = h.event_id WHERE h.step = 'attempt') a WHERE started_at < prev_end")
check "no two attempts of one resource overlap" "$overlaps" 0
check "attempts ran on more than one daemon" \
	"$([ "$(sql "SELECT count(DISTINCT detail::json->>'owner') FROM history WHERE step = 'started'")" -ge 2 ] && echo yes)" yes
recovered=$(sql "SELECT count(DISTINCT event_id) FROM history WHERE step IN ('recovered', 'requeued')")
echo "     events whose attempt was cut short by the kill or the stop: $recovered"
# the target saw every event; twice only one whose attempt was cut short
targets() { curl -s "$MOCK/_mock/requests" | jq -r --arg p "$1" '.requests[] | select(.path == $p) | .body.hook'; }
targets target/hooks | sort >"$T_DIR/sent"
check "the target got every event" "$(awk '{print $1}' "$T_DIR/acks" | sort | comm -23 - <(sort -u "$T_DIR/sent") | wc -l)" 0
twice=$(uniq -d "$T_DIR/sent" | wc -l)
check "sent twice only when an attempt was cut short ($twice)" "$([ "$twice" -le "$recovered" ] && echo yes)" yes

# the same delivery to two daemons: the second is a duplicate
ev='{"hook_id":"00000000-0000-0000-0000-0000000000aa","process_type":"digestion","resource_id":"00000000-0000-0000-0000-0000000000bb","previous_state":"finalizing","current_state":"completed"}'
BASE=${BASES[0]}; post "$ev" -H "$AUTH"; first=$(jq -r .event_id <<<"$BODY")
start_hookd "$URL" --config "$T_DIR/c.conf"
post "$ev" -H "$AUTH"
check "a delivery to another daemon is a duplicate" "$CODE $(jq -r '.status + " " + .event_id' <<<"$BODY")" "200 duplicate $first"

# a status stream on one daemon shows what another one did
curl -sN --max-time 20 "$BASE/events/stream?resource_id=00000000-0000-0000-0000-0000000000dd" >"$T_DIR/s.out" &
spid=$!
sleep 0.5
ev='{"hook_id":"00000000-0000-0000-0000-0000000000ab","process_type":"digestion","resource_id":"00000000-0000-0000-0000-0000000000dd","previous_state":"finalizing","current_state":"completed"}'
OTHER=${BASES[0]}
curl -s -o /dev/null --max-time 10 -X POST "$OTHER/events" -H "$AUTH" -H 'Content-Type: application/json' -d "$ev"
wait_until 15 grep -q '^event: completed' "$T_DIR/s.out"
kill "$spid" 2>/dev/null
check "a stream on one daemon follows an event another one received and ran" \
	"$(grep '^event:' "$T_DIR/s.out" | cut -d' ' -f2 | xargs)" "received started completed"

# change notifications: every NOTIFY either daemon sends, the other hears
# (both listen, so what B heard is what A and B sent), also after their
# notification connections are killed
note() { curl -s "$1/metrics" | awk -v s="lqs_hookd_store_notifications_total{direction=\"$2\"}" '$1 == s {print $2}'; }
sent_both() { echo $(($(note "$OTHER" sent) + $(note "$BASE" sent))); }
listeners() { sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lqs-hookd notifications'"; }
check "the daemon that ran it sent notifications" "$([ "$(note "$OTHER" sent)" -gt 0 ] && echo yes)" yes
check "one notification connection per running daemon, killed" \
	"$(sql "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'lqs-hookd notifications'")" 2
wait_until 10 grep -q 'change notifications from PostgreSQL .* flow again' "$HOOKD_LOG" ||
	fail "the notification connection is made again" "$(grep -i notification "$HOOKD_LOG")"
check "its loss is logged, once" "$(grep -c 'change notification connection to PostgreSQL .* was lost' "$HOOKD_LOG")" 1
wait_until 10 [ "$(listeners)" = 2 ] || fail "both listen again" "$(listeners)"
sleep 0.3
h0=$(note "$BASE" heard); s0=$(sent_both)
curl -sN --max-time 20 "$BASE/events/stream?resource_id=00000000-0000-0000-0000-0000000000de" >"$T_DIR/s2.out" &
spid=$!
sleep 0.5
ev='{"hook_id":"00000000-0000-0000-0000-0000000000ac","process_type":"digestion","resource_id":"00000000-0000-0000-0000-0000000000de","previous_state":"finalizing","current_state":"completed"}'
curl -s -o /dev/null --max-time 10 -X POST "$OTHER/events" -H "$AUTH" -H 'Content-Type: application/json' -d "$ev"
wait_until 15 grep -q '^event: completed' "$T_DIR/s2.out"
kill "$spid" 2>/dev/null
check "after that, a stream still follows the other daemon" \
	"$(grep '^event:' "$T_DIR/s2.out" | cut -d' ' -f2 | xargs)" "received started completed"
heard_all() { [ $(($(note "$BASE" heard) - h0)) = $(($(sent_both) - s0)) ]; }
wait_until 5 heard_all
sent=$(($(sent_both) - s0)); heard=$(($(note "$BASE" heard) - h0))
check "B heard every notification sent since ($heard of $sent)" "$([ "$sent" -gt 0 ] && [ "$heard" = "$sent" ] && echo yes)" yes
# idle daemons (lease renewals, recovery passes) notify nobody
s1=$(sent_both); sleep 2
check "idle: no notification in 2 s" "$(($(sent_both) - s1))" 0

# 40 batches of 4 objects, each object posted to one of two daemons, all
# four of a batch at once: each batch closes once, with one trigger
B=("${BASES[0]}" "$BASE")
for p in $(seq 1 40); do
	cpids=()
	for k in 1 2 3 4; do
		curl -s -o /dev/null --max-time 10 -X POST "${B[k % 2]}/objects" -H "Authorization: Bearer $OBJ_TOKEN" \
			-H 'Content-Type: application/json' --data-binary "$(s3_record "packs/p$p/f$k" "$p$k")" &
		cpids+=($!)
	done
	wait "${cpids[@]}"
done
check "40 batches, all closed by count" "$(sql "SELECT count(*), count(*) FILTER (WHERE state = 'closed' AND reason = 'count') FROM batches")" "40|40"
check "one trigger event per batch" "$(sql "SELECT count(*), count(DISTINCT resource_id) FROM events WHERE process_type = 'batch'")" "40|40"
check "every object in its batch" "$(sql "SELECT count(*) FROM objects WHERE role = 'member' AND batch_id IS NOT NULL")" 160
wait_until 30 bash -c "[ \"\$(curl -s '$MOCK/_mock/requests' | jq '[.requests[] | select(.path == \"target/packs\")] | length')\" = 40 ]" ||
	fail "one trigger call per batch"
pass "one trigger call per batch"
kill -TERM "${PIDS[0]}" "$HOOKD_PID"
finish
