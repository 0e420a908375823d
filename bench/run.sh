#!/usr/bin/env bash
# Benchmarks: receive path, digestion statistics, backlog recovery. All on
# 127.0.0.1, bounded in time; only processes started here are stopped, by PID.
# usage: bench/run.sh BUILD_DIR      (BENCH_SECONDS: wrk duration, default 10)
set -u
BUILD=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/.." && pwd)
DUR=${BENCH_SECONDS:-10}
PY=/usr/bin/python3            # Debian's, with python3-fastapi/uvicorn/requests
WORK=$(mktemp -d /tmp/lqs-bench-XXXXXX)
SECRET=bench-secret
AUTH_B64=$(printf %s "$SECRET" | base64)
KEY_ID=3b8f2a9c-1d4e-4f6a-8b7c-0e9d2c1a5f34 KEY_SECRET=bench-api-secret
DS=6f0c1c4e-8f5a-4d8e-9b3a-2f1d5c7e9a01
PIDS=()
OUT="$WORK/report.md"

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	[ -n "${PGW:-}" ] && "$SRC/tests/tools/pgtmp.sh" kill "$PGW" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

wait_for() { local n=$(($1 * 20)); shift; for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 12000))   # below the ephemeral range wrk and curl draw from
		ss -Htln "( sport = :$p )" | grep -q . || { echo "$p"; return; }
	done
}
wait_listen() { wait_for 30 bash -c "ss -Htln '( sport = :$1 )' | grep -q ."; }
rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }
say() { echo "$*" | tee -a "$OUT"; }

# hookd NAME PORT STORE [VAR=value...]: start lqs-hookd, set HPID
hookd() {
	local port=$2 store=$3
	shift 3
	env LQS_EXPECTED_SECRET="$SECRET" LQS_HOOKD_MAX_CONNECTIONS_PER_IP=0 "$@" \
		"$BUILD/lqs-hookd" --listen "127.0.0.1:$port" --store "$store" 2>>"$WORK/hookd.log" &
	HPID=$!
	PIDS+=("$HPID")
	wait_for 10 bash -c "curl -sf http://127.0.0.1:$port/healthz >/dev/null || curl -skf https://127.0.0.1:$port/healthz >/dev/null" ||
		{ echo "lqs-hookd did not start"; tail "$WORK/hookd.log"; exit 1; }
}

# BENCH_ONLY=receive|digestion|backlog|pg|objects|sqs|stream|tls runs one section (default: all);
# BENCH_SQS_MESSAGES: the queue's size for the sqs section (default 10 000)
only() { [ -z "${BENCH_ONLY:-}" ] || [ "$BENCH_ONLY" = "$1" ]; }

# ---------------------------------------------------------------- receive
declare -A RPS P99
receive() { # LABEL PID PORT
	local label=$1 pid=$2 port=$3 line
	BENCH_AUTH=$AUTH_B64 wrk -t 1 -c 8 -d 1 -s "$SRC/bench/post_event.lua" "http://127.0.0.1:$port" >/dev/null 2>&1
	for c in 1 16 128; do
		line=$(BENCH_AUTH=$AUTH_B64 wrk -t 1 -c "$c" -d "${DUR}s" --timeout 5s -s "$SRC/bench/post_event.lua" \
			"http://127.0.0.1:$port" 2>&1 | grep '^RESULT')
		rps=0 p50_ms=- p99_ms=- p999_ms=- errors=all
		[ -n "$line" ] || echo "wrk got no result from $label at $c connections" >&2
		eval "$(sed 's/^RESULT //' <<<"$line")"
		RPS[$label,$c]=$rps
		P99[$label,$c]=$p99_ms
		say "| $label | $c | $rps | $p50_ms | $p99_ms | $p999_ms | $errors | $(rss_mib "$pid") |"
	done
}

# floor LABEL [MODE ARGS...]: the receive rows of a bench-floor server
floor() {
	local label=$1 port fpid
	shift
	port=$(free_port)
	"$BUILD/bench-floor" "$port" "$SECRET" "$@" >/dev/null &
	fpid=$!; PIDS+=("$fpid")
	wait_listen "$port"
	receive "$label" "$fpid" "$port"
	kill "$fpid"; wait "$fpid" 2>/dev/null
}

cat >"$WORK/noroute.conf" <<EOF2
# every event is stored (fsynced before its 202) and finished at once: the
# receive path alone, with the durable store as shipped
[route nothing]
process_type = digestion_part
state = archived
handler = digestion_stats
EOF2

if only receive; then
say ""
say "### Receive path (wrk -t 1, ${DUR} s per row, keep-alive, tutorial event with bearer)"
say ""
say "| server | connections | requests/s | p50 ms | p99 ms | p99.9 ms | errors | peak RSS MiB |"
say "|---|---|---|---|---|---|---|---|"
port=$(free_port)
hookd receive "$port" "$WORK/r.db" LQS_HOOKD_CONFIG="$WORK/noroute.conf"
receive "lqs-hookd" "$HPID" "$port"
kill "$HPID"; wait "$HPID" 2>/dev/null
port=$(free_port)
# every event stays unfinished (retrying): lift max_queued so that the row
# measures processing, not the 503s of backpressure past 100 000
hookd process "$port" "$WORK/p.db" LQS_API_URL=http://127.0.0.1:9 LQS_RETRY_COUNT=0 LQS_HOOKD_RETRY_BASE=1h \
	LQS_HOOKD_RETRY_MAX_DELAY=1h LQS_HOOKD_MAX_QUEUED=100000000
receive "lqs-hookd + processing" "$HPID" "$port"
kill "$HPID"; wait "$HPID" 2>/dev/null
floor "floor (no store)"
# two more floors: what the daemon's path to its answer costs with nothing
# stored, and the least any server syncing before its 202 must pay
floor "floor + handoff (no store)" handoff
floor "floor + append log (fdatasync per batch)" fsync "$WORK/append.log"
rm -f "$WORK/append.log"
port=$(free_port)
(cd "$SRC/bench" && LQS_EXPECTED_SECRET="$SECRET" exec "$PY" -m uvicorn listener:app --host 127.0.0.1 --port "$port" \
	--log-level warning --no-access-log) &
ppid=$!; PIDS+=("$ppid")
wait_listen "$port" || echo "the python listener did not start" >&2
receive "python listener" "$ppid" "$port"
kill "$ppid"; wait "$ppid" 2>/dev/null
say ""
for c in 16 128; do
	say "- $c connections: lqs-hookd / floor = $(awk -v a="${RPS[lqs-hookd,$c]}" -v b="${RPS[floor (no store),$c]}" 'BEGIN { printf "%.2f", a / b }'), lqs-hookd / python = $(awk -v a="${RPS[lqs-hookd,$c]}" -v b="${RPS[python listener,$c]}" 'BEGIN { printf "%.1f", a / b }'), append-log floor / floor = $(awk -v a="${RPS[floor + append log (fdatasync per batch),$c]}" -v b="${RPS[floor (no store),$c]}" 'BEGIN { printf "%.2f", a / b }')"
done

fi

# ---------------------------------------------------------------- digestion
if only digestion; then
say ""
say "### Digestion statistics (synthetic digestion on lqs-mock, every part's index fetched on its own)"
say ""
say "| shape (parts x entries) | records | lqs-hookd s, median (POST to completed) | lqs-hookd peak RSS MiB | python tutorial s, median | speed-up | figures equal |"
say "|---|---|---|---|---|---|---|"
# median of three a side (BENCH_REPEAT): single runs on a 2-core machine vary
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
REPEAT=${BENCH_REPEAT:-3}
for shape in 1000x1000 10000x100; do
	all_secs="" all_py="" rss_max=0 equal=yes
	for _ in $(seq 1 "$REPEAT"); do
		mport=$(free_port)
		"$BUILD/lqs-mock" --port "$mport" --synthetic "$shape" --key-id "$KEY_ID" --key-secret "$KEY_SECRET" \
			--datastore "$DS" --max-page 1000 --no-record-bodies >"$WORK/mock.out" 2>&1 &
		mpid=$!; PIDS+=("$mpid")
		wait_for 60 grep -q PORT= "$WORK/mock.out"
		MOCK="http://127.0.0.1:$mport"
		dig=$(curl -s "$MOCK/_mock/expected" | jq -r .digestion_id)
		expected=$(curl -s "$MOCK/_mock/expected" | jq -c '[.record_count, .record_size]')
		port=$(free_port)
		rm -f "$WORK/d-$shape.db"*
		hookd dig "$port" "$WORK/d-$shape.db" LQS_API_URL="$MOCK" LQS_DATASTORE_ID="$DS" LQS_API_KEY_ID="$KEY_ID" \
			LQS_API_KEY_SECRET="$KEY_SECRET"
		t0=$(date +%s%N)
		id=$(curl -s -X POST "http://127.0.0.1:$port/events" -H 'Content-Type: application/json' -H "Authorization: Bearer $AUTH_B64" \
			-d "{\"current_state\":\"finalizing\",\"process_type\":\"digestion\",\"resource_id\":\"$dig\"}" | jq -r .event_id)
		for _ in $(seq 1 6000); do
			curl -s "http://127.0.0.1:$port/events/$id" | jq -e .done >/dev/null && break
			sleep 0.02
		done
		rss=$(rss_mib "$HPID")   # before asking for the (long) history
		# the end is when the daemon recorded the outcome (its history), not
		# when this loop happened to look: polling would add up to a period
		t1=$(curl -s "http://127.0.0.1:$port/events/$id/history" | jq -r '[.history[] | select(.step == "outcome")] | last | .ended_at')
		t1=$(date -u -d "$t1" +%s%N 2>/dev/null || date +%s%N)
		all_secs="$all_secs $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
		rss_max=$(awk -v a="$rss_max" -v b="$rss" 'BEGIN { print (b > a) ? b : a }')
		got=$(curl -s "$MOCK/_mock/state" | jq -c --arg d "$dig" '.logs[.digestions[$d].log_id].context.digestion_stats | [.record_count, .record_size]')
		[ "$got" = "$expected" ] || equal="NO: $got vs $expected"
		kill "$HPID" "$mpid"; wait "$HPID" "$mpid" 2>/dev/null
		# the tutorial's algorithm against a fresh mock of the same digestion
		"$BUILD/lqs-mock" --port "$mport" --synthetic "$shape" --key-id "$KEY_ID" --key-secret "$KEY_SECRET" \
			--datastore "$DS" --max-page 1000 --no-record-bodies >"$WORK/mock.out" 2>&1 &
		mpid=$!; PIDS+=("$mpid")
		wait_for 60 grep -q PORT= "$WORK/mock.out"
		pyline=$("$PY" "$SRC/bench/tutorial_stats.py" "$MOCK" "$DS" "$KEY_ID" "$KEY_SECRET" "$dig" 2>&1 | grep '^RESULT')
		all_py="$all_py $(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$pyline")"
		kill "$mpid"; wait "$mpid" 2>/dev/null
	done
	secs=$(median <<<"$all_secs")
	pysecs=$(median <<<"$all_py")
	say "| $shape | $(jq '.[0]' <<<"$expected") | $secs (runs:$all_secs) | $rss_max | $pysecs (runs:$all_py) | $(awk -v a="$pysecs" -v b="$secs" 'BEGIN { printf "%.1f", a / b }')x | $equal |"
done

fi

# ---------------------------------------------------------------- backlog
if only backlog; then
say ""
say "### Backlog recovery (100 000 stored runnable events, unrouted so handlers are instant)"
say ""
port=$(free_port)
hookd schema "$port" "$WORK/b.db"
kill "$HPID"; wait "$HPID" 2>/dev/null
sqlite3 "$WORK/b.db" "
  WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n LIMIT 100000)
  INSERT INTO events(id, received_at, updated_at, process_type, current_state, resource_id, dedupe_key,
                     dedupe_hash, body, handler, state)
  SELECT printf('01000000-0000-7000-8000-%012x', x), 1, 1, 'ingestion', 'ready',
         printf('00000000-0000-4000-8000-%012x', x), printf('|ingestion|%d||ready', x), x,
         printf('{\"previous_state\":null,\"current_state\":\"ready\",\"process_type\":\"ingestion\",\"resource_id\":\"00000000-0000-4000-8000-%012x\"}', x),
         NULL, 'queued' FROM n;"
t0=$(date +%s%N)
hookd backlog "$port" "$WORK/b.db"
for _ in $(seq 1 1200); do
	left=$(sqlite3 "$WORK/b.db" "select count(*) from events where state != 'completed'" 2>/dev/null)
	[ "$left" = 0 ] && break
	sleep 0.1
done
secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
say "- 100 000 events from start to all FINISHED: ${secs} s (left unfinished: $left), peak RSS $(rss_mib "$HPID") MiB"
kill "$HPID"; wait "$HPID" 2>/dev/null
fi

# ---------------------------------------------------------------- pg
if only pg; then
PGW="$WORK/pg"; mkdir -p "$PGW"
PGURL=$("$SRC/tests/tools/pgtmp.sh" start "$PGW") || { echo "no PostgreSQL server"; exit 1; }
pgdb() { # NAME: a fresh database on the bench server; prints its address
	PGOPTIONS="-c client_min_messages=warning" psql -X -q "$PGURL" -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
	sed "s|/hookd?|/$1?|" <<<"$PGURL"
}
say ""
say "### Durable receive: PostgreSQL store beside SQLite and the floors (wrk -t 1, ${DUR} s per row; PostgreSQL $(psql -X -qAt "$PGURL" -c 'SHOW server_version' | cut -d' ' -f1) on the same host over its Unix socket, synchronous_commit on, fsync on)"
say ""
say "| server | connections | requests/s | p50 ms | p99 ms | p99.9 ms | errors | peak RSS MiB |"
say "|---|---|---|---|---|---|---|---|"
floor "floor (no store)"
floor "floor + append log (fdatasync per batch)" fsync "$WORK/append-pg.log"
port=$(free_port)
hookd sqlite "$port" "$WORK/rs.db" LQS_HOOKD_CONFIG="$WORK/noroute.conf"
receive "lqs-hookd, SQLite" "$HPID" "$port"
kill "$HPID"; wait "$HPID" 2>/dev/null
port=$(free_port)
hookd pg "$port" "$(pgdb bench_receive)" LQS_HOOKD_CONFIG="$WORK/noroute.conf"
receive "lqs-hookd, PostgreSQL" "$HPID" "$port"
kill "$HPID"; wait "$HPID" 2>/dev/null
say ""
for c in 16 128; do
	say "- $c connections: PostgreSQL / SQLite = $(awk -v a="${RPS[lqs-hookd, PostgreSQL,$c]}" -v b="${RPS[lqs-hookd, SQLite,$c]}" 'BEGIN { printf "%.2f", a / b }'), PostgreSQL / append-log floor = $(awk -v a="${RPS[lqs-hookd, PostgreSQL,$c]}" -v b="${RPS[floor + append log (fdatasync per batch),$c]}" 'BEGIN { printf "%.2f", a / b }')"
done

# A digestion-stats backlog drained by one daemon, then by three on the
# same database: 400 digestions of 20 parts waiting in finalizing, each
# LogQS call answered after 5 ms (a near network's latency).
say ""
say "### Digestion-stats backlog drain: 1 vs 3 daemons on one PostgreSQL database (400 digestions x 20 parts, 4 workers each, every LogQS GET answered after 5 ms)"
say ""
say "| daemons | seconds to all completed | digestions/s | figures written |"
say "|---|---|---|---|"
declare -A DRAIN
for n in 1 3; do
	mport=$(free_port)
	"$BUILD/lqs-mock" --port "$mport" --synthetic 20x100x400 --key-id "$KEY_ID" --key-secret "$KEY_SECRET" \
		--datastore "$DS" --no-record-bodies >"$WORK/pgmock.out" 2>&1 &
	mpid=$!; PIDS+=("$mpid")
	wait_for 30 grep -q PORT= "$WORK/pgmock.out"
	curl -s -X POST "http://127.0.0.1:$mport/_mock/faults" -d '{"method":"GET","path":"digestions","delay_ms":5}' >/dev/null
	url=$(pgdb "bench_drain$n")
	port=$(free_port)
	hookd schema "$port" "$url"
	kill "$HPID"; wait "$HPID" 2>/dev/null
	psql -X -q "$url" -c "INSERT INTO events(id, received_at, updated_at, process_type, current_state, resource_id,
	  dedupe_key, body, handler, state)
	  SELECT format('01000000-0000-7000-8000-%s', lpad(to_hex(x), 12, '0')), 1, 1, 'digestion', 'finalizing',
	         format('dddddddd-0000-4000-8000-%s', lpad(x::text, 12, '0')), 'k' || x,
	         format('{\"previous_state\":\"processing\",\"current_state\":\"finalizing\",\"process_type\":\"digestion\",\"resource_id\":\"dddddddd-0000-4000-8000-%s\"}', lpad(x::text, 12, '0')),
	         'digestion_stats', 'queued' FROM generate_series(1, 400) AS x" >/dev/null
	t0=$(date +%s%N)
	dpids=()
	for _ in $(seq 1 "$n"); do
		hookd drain "$(free_port)" "$url" LQS_API_URL="http://127.0.0.1:$mport" LQS_DATASTORE_ID="$DS" \
			LQS_API_KEY_ID="$KEY_ID" LQS_API_KEY_SECRET="$KEY_SECRET"
		dpids+=("$HPID")
	done
	for _ in $(seq 1 3000); do
		left=$(psql -X -qAt "$url" -c "SELECT count(*) FROM events WHERE state NOT IN ('completed', 'failed')")
		[ "$left" = 0 ] && break
		sleep 0.1
	done
	secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
	DRAIN[$n]=$secs
	written=$(curl -s "http://127.0.0.1:$mport/_mock/state" | jq '[.logs[] | select(.context.digestion_stats != null)] | length')
	say "| $n | $secs (left: $left, failed: $(psql -X -qAt "$url" -c "SELECT count(*) FROM events WHERE state = 'failed'")) | $(awk -v s="$secs" 'BEGIN { printf "%.0f", 400 / s }') | $written |"
	kill "${dpids[@]}" "$mpid"; wait "${dpids[@]}" "$mpid" 2>/dev/null
done
say ""
say "- 3 daemons / 1 daemon, throughput: $(awk -v a="${DRAIN[1]}" -v b="${DRAIN[3]}" 'BEGIN { printf "%.2f", a / b }')x"

# How soon a status stream shows a change: on SQLite the stream reads the
# store every 100 ms; on PostgreSQL a NOTIFY wakes it, also on a daemon
# that did not receive the event.
say ""
say "### Status stream latency: from sending a POST to its \"received\" message on a stream (100 events, 50-250 ms apart)"
say ""
say "| store | POST to | stream on | p50 ms | p90 ms | max ms | missing |"
say "|---|---|---|---|---|---|---|"
declare -A LAT
port=$(free_port)
hookd lat_sqlite "$port" "$WORK/lat.db" LQS_HOOKD_CONFIG="$WORK/noroute.conf"
read -r p50 p90 max missing < <(python3 "$SRC/bench/stream_latency.py" "http://127.0.0.1:$port" "http://127.0.0.1:$port" "$AUTH_B64" 100)
LAT[sqlite]=$p50
say "| SQLite | daemon A | daemon A (read every 100 ms) | $p50 | $p90 | $max | $missing |"
kill "$HPID"; wait "$HPID" 2>/dev/null
url=$(pgdb bench_latency)
pa=$(free_port); hookd lat_a "$pa" "$url" LQS_HOOKD_CONFIG="$WORK/noroute.conf"; apid=$HPID
pb=$(free_port); hookd lat_b "$pb" "$url" LQS_HOOKD_CONFIG="$WORK/noroute.conf"; bpid=$HPID
read -r p50 p90 max missing < <(python3 "$SRC/bench/stream_latency.py" "http://127.0.0.1:$pa" "http://127.0.0.1:$pb" "$AUTH_B64" 100)
LAT[pg]=$p50
say "| PostgreSQL | daemon A | daemon B (woken by NOTIFY) | $p50 | $p90 | $max | $missing |"
kill "$apid" "$bpid"; wait "$apid" "$bpid" 2>/dev/null
say ""
say "- p50, PostgreSQL across daemons / SQLite on one daemon: $(awk -v a="${LAT[pg]}" -v b="${LAT[sqlite]}" 'BEGIN { printf "%.2f", a / b }')"
"$SRC/tests/tools/pgtmp.sh" stop "$PGW"
fi

# ---------------------------------------------------------------- objects
if only objects; then
say ""
say "### Object intake beside /events (wrk -t 1, 16 connections, ${DUR} s per row, same daemon)"
say ""
say "| path | records/request | requests/s | records/s | p50 ms | p99 ms | errors | records/s ÷ /events |"
say "|---|---|---|---|---|---|---|---|"
cat >"$WORK/objects.conf" <<EOF2
[objects]
objects_secret = bench-token
[watch bench]
bucket = bench-bucket
count = 0
quiet = 1h
[route nothing]
process_type = digestion_part
state = archived
handler = digestion_stats
EOF2
port=$(free_port)
hookd objects "$port" "$WORK/o.db" LQS_HOOKD_CONFIG="$WORK/objects.conf" LQS_API_URL=http://127.0.0.1:9
BENCH_AUTH=$AUTH_B64 wrk -t 1 -c 16 -d 1 -s "$SRC/bench/post_event.lua" "http://127.0.0.1:$port" >/dev/null 2>&1
line=$(BENCH_AUTH=$AUTH_B64 wrk -t 1 -c 16 -d "${DUR}s" --timeout 5s -s "$SRC/bench/post_event.lua" \
	"http://127.0.0.1:$port" 2>&1 | grep '^RESULT')
eval "$(sed 's/^RESULT //' <<<"$line")"
base=$rps
say "| POST /events | 1 | $rps | $rps | $p50_ms | $p99_ms | $errors | 1.00 |"
for per in 1 10; do
	line=$(BENCH_TOKEN=bench-token BENCH_RECORDS=$per wrk -t 1 -c 16 -d "${DUR}s" --timeout 5s \
		-s "$SRC/bench/post_objects.lua" "http://127.0.0.1:$port" 2>&1 | grep '^RESULT')
	rps=0 p50_ms=- p99_ms=- errors=all
	eval "$(sed 's/^RESULT //' <<<"$line")"
	recs=$((rps * per))
	say "| POST /objects | $per | $rps | $recs | $p50_ms | $p99_ms | $errors | $(awk -v a="$recs" -v b="$base" 'BEGIN { printf "%.2f", a / b }') |"
done
say ""
say "- stored: $(sqlite3 "$WORK/o.db" "select count(*) from objects") objects in $(sqlite3 "$WORK/o.db" "select count(*) from batches") batches; peak RSS $(rss_mib "$HPID") MiB"
kill "$HPID"; wait "$HPID" 2>/dev/null
fi

# ---------------------------------------------------------------- sqs
if only sqs; then
say ""
N=${BENCH_SQS_MESSAGES:-10000}
say "### Draining an SQS queue (moto's server mode, bench/moto_sqs.py, on the same machine; $N messages of one S3 record)"
say ""
mport=$(free_port)
python3 "$SRC/bench/moto_sqs.py" -H 127.0.0.1 -p "$mport" >"$WORK/moto.log" 2>&1 &
mpid=$!; PIDS+=("$mpid")
wait_for 30 curl -s -o /dev/null "http://127.0.0.1:$mport/"
MEP="http://127.0.0.1:$mport"
Q=$(python3 "$SRC/tests/tools/sqs_setup.py" "$MEP" queues 60 5)
for i in $(seq 1 "$N"); do
	printf '{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"bench-bucket"},"object":{"key":"q/run%d/f%d.bin","size":1,"sequencer":"%x"}}}]}\n' \
		$((i / 1000)) "$i" "$i"
done >"$WORK/msgs"
python3 "$SRC/tests/tools/sqs_setup.py" "$MEP" send "$WORK/msgs"
for pollers in 1 4; do
	cat >"$WORK/sqs.conf" <<EOF2
[watch bench]
bucket = bench-bucket
count = 0
quiet = 1h
[sqs bench]
queue_url = $Q
region = us-east-1
endpoint = $MEP
wait = 1
pollers = $pollers
EOF2
	rm -f "$WORK/s.db"*
	[ "$pollers" = 4 ] && python3 "$SRC/tests/tools/sqs_setup.py" "$MEP" send "$WORK/msgs"
	port=$(free_port)
	t0=$(date +%s%N)
	hookd sqs "$port" "$WORK/s.db" LQS_HOOKD_CONFIG="$WORK/sqs.conf" LQS_API_URL=http://127.0.0.1:9 \
		AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
	for _ in $(seq 1 3000); do
		n=$(sqlite3 "$WORK/s.db" "select count(*) from objects" 2>/dev/null || echo 0)
		[ "$n" -ge "$N" ] && break
		sleep 0.1
	done
	secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
	# stored is not the end: the last deletes (and the deletes of what moto
	# handed out twice) follow
	for _ in $(seq 1 120); do
		[ "$(python3 "$SRC/tests/tools/sqs_setup.py" "$MEP" count uploads)" = 0 ] && break
		sleep 1
	done
	dsecs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
	dups=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "lqs_hookd_objects_received_total{outcome=\"duplicate\"}" {print $2}')
	ticks=$(awk '{ print $14 + $15 }' "/proc/$HPID/stat")
	hz=$(getconf CLK_TCK)
	say "- $pollers poller(s): $N messages stored in ${secs} s ($(awk -v s="$secs" -v n="$N" 'BEGIN { printf "%.0f", n / s }') messages/s); the daemon's CPU: $(awk -v t="$ticks" -v h="$hz" -v n="$N" 'BEGIN { printf "%.0f", t / h * 1e6 / n }') µs per message; peak RSS $(rss_mib "$HPID") MiB; the queue empty (every message deleted) after ${dsecs} s, $(python3 "$SRC/tests/tools/sqs_setup.py" "$MEP" count uploads) left; ${dups:-0} records received twice (recognised as duplicates)"
	kill "$HPID"; wait "$HPID" 2>/dev/null
done
kill "$mpid"; wait "$mpid" 2>/dev/null
fi

# ---------------------------------------------------------------- stream
if only stream; then
say ""
say "### /events with status stream subscribers (wrk -t 1 -c 16, ${DUR} s per row, one daemon, rows alternated)"
say ""
say "| subscribers | requests/s | p99 ms | cut during the row | peak RSS MiB |"
say "|---|---|---|---|---|"
port=$(free_port)
hookd stream "$port" "$WORK/st.db" LQS_HOOKD_CONFIG="$WORK/noroute.conf"
declare -a S0 S50
for round in 1 2; do
	for subs in 0 50; do
		spids=()
		if [ "$subs" = 50 ]; then
			for _ in $(seq 1 49); do
				curl -sN "http://127.0.0.1:$port/events/stream" >/dev/null &
				spids+=($!)
			done
			# one that never reads (a tiny receive window): it must be cut,
			# not slow anyone down
			python3 "$SRC/tests/tools/stream_load.py" stall "$port" /events/stream - 600 &
			spids+=($!)
			PIDS+=("${spids[@]}")
			wait_for 10 bash -c "curl -s http://127.0.0.1:$port/metrics | grep -q '^lqs_hookd_stream_subscribers 50'"
		fi
		sm() { curl -s "http://127.0.0.1:$port/metrics" | awk -v s="$1" '$1 == s {print $2}'; }
		cut0=$(sm lqs_hookd_stream_cut_total) following=$(sm lqs_hookd_stream_subscribers)
		line=$(BENCH_AUTH=$AUTH_B64 wrk -t 1 -c 16 -d "${DUR}s" --timeout 5s -s "$SRC/bench/post_event.lua" \
			"http://127.0.0.1:$port" 2>&1 | grep '^RESULT')
		rps=0 p99_ms=-
		eval "$(sed 's/^RESULT //' <<<"$line")"
		[ "$subs" = 0 ] && S0+=("$rps") || S50+=("$rps")
		say "| $following (round $round) | $rps | $p99_ms | $(($(sm lqs_hookd_stream_cut_total) - cut0)) | $(rss_mib "$HPID") |"
		if [ ${#spids[@]} -gt 0 ]; then
			kill "${spids[@]}" 2>/dev/null
			wait "${spids[@]}" 2>/dev/null
		fi
	done
done
kill "$HPID"; wait "$HPID" 2>/dev/null
say ""
say "- 50 subscribers (one stalled) / none: $(awk -v a="${S50[0]}" -v b="${S50[1]}" -v c="${S0[0]}" -v d="${S0[1]}" 'BEGIN { printf "%.2f", (a + b) / (c + d) }') (sum of the two rounds each)"
fi

# ---------------------------------------------------------------- tls
if only tls; then
say ""
say "### /events over TLS beside plain HTTP (wrk -t 1, keep-alive, ${DUR} s per row, rows alternated)"
say ""
say "| port | connections | requests/s | p99 ms | peak RSS MiB |"
say "|---|---|---|---|---|"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
	-keyout "$WORK/tls.key" -out "$WORK/tls.pem" 2>/dev/null
cat "$WORK/noroute.conf" >"$WORK/tls.conf"
printf '[http]\ntls_cert = %s\ntls_key = %s\n' "$WORK/tls.pem" "$WORK/tls.key" >>"$WORK/tls.conf"
declare -A TR
for round in 1 2; do
	for mode in plain tls; do
		port=$(free_port)
		rm -f "$WORK/tl.db"*
		hookd tls "$port" "$WORK/tl.db" LQS_HOOKD_CONFIG="$WORK/$([ "$mode" = tls ] && echo tls || echo noroute).conf"
		scheme=$([ "$mode" = tls ] && echo https || echo http)
		for c in 1 16; do
			line=$(BENCH_AUTH=$AUTH_B64 wrk -t 1 -c "$c" -d "${DUR}s" --timeout 5s -s "$SRC/bench/post_event.lua" \
				"$scheme://127.0.0.1:$port" 2>&1 | grep '^RESULT')
			rps=0 p99_ms=-
			eval "$(sed 's/^RESULT //' <<<"$line")"
			TR[$mode,$c]=$(( ${TR[$mode,$c]:-0} + ${rps%.*} ))
			say "| $mode (round $round) | $c | $rps | $p99_ms | $(rss_mib "$HPID") |"
		done
		kill "$HPID"; wait "$HPID" 2>/dev/null
	done
done
say ""
for c in 1 16; do
	say "- $c connection(s): TLS / plain = $(awk -v a="${TR[tls,$c]}" -v b="${TR[plain,$c]}" 'BEGIN { printf "%.2f", a / b }') (sum of the two rounds each)"
done
fi

# ---------------------------------------------------------------- record
{
	echo ""
	echo "## $(date -u +%Y-%m-%dT%H:%MZ) — commit $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo ""
	echo "Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r); wrk on the same machine."
	cat "$OUT"
} >>"${BENCH_RESULTS:-$SRC/bench/RESULTS.md}"
echo
echo "appended to bench/RESULTS.md"
