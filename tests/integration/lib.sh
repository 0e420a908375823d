# Shared helpers for integration tests: start the real binaries on 127.0.0.1,
# bounded waits, assertions, and cleanup of only the processes we started.
set -u

: "${LQS_HOOKD:?path to the lqs-hookd binary}"
: "${LQS_MOCK:?path to the lqs-mock binary}"
: "${LQS_SRC:?source tree}"

T_PASS=0
T_FAIL=0
T_PIDS=()
T_DIR=$(mktemp -d /tmp/lqs-it-XXXXXX)
# Never the packaged configuration of the machine running the tests: an
# installed /etc/lqs-hookd/lqs-hookd.conf would otherwise be read by default.
export LQS_HOOKD_CONFIG=
SECRET=it-hook-secret
AUTH="Authorization: Bearer $(printf %s "$SECRET" | base64)"
DEMO_FIXTURE="$LQS_SRC/tests/data/mock/demo.json"
DS=$(jq -r .datastore_id "$DEMO_FIXTURE")
KEY_ID=$(jq -r .api_key_id "$DEMO_FIXTURE")
KEY_SECRET=$(jq -r .api_key_secret "$DEMO_FIXTURE")
DIG=$(jq -r '.digestions[0].id' "$DEMO_FIXTURE")
LOG_ID=$(jq -r '.logs[0].id' "$DEMO_FIXTURE")

# With LQS_TEST_PG (the Unix socket folder of a throwaway PostgreSQL
# server), every store a test names under its folder is a database of its
# own on that server instead: the same test, the other backend.
PG_DBS=()
pg_psql() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "postgresql://hookd@/postgres?host=$LQS_TEST_PG" "$@"; }
# pg_store PATH: the database standing for PATH (created on first use).
pg_store() {
	local name
	name=it_$(printf %s "$1" | md5sum | cut -c1-20)
	if [ ! -e "$1.pg" ]; then
		pg_psql -c "DROP DATABASE IF EXISTS $name" -c "CREATE DATABASE $name" >/dev/null || return 1
		: >"$1.pg"
		PG_DBS+=("$name")
	fi
	printf 'postgresql://hookd@/%s?host=%s' "$name" "$LQS_TEST_PG"
}
# STORE_URL PATH: what a daemon started on PATH uses (the path itself, or
# its database).
store_url() {
	if [ -n "${LQS_TEST_PG:-}" ] && [[ "$1" == "$T_DIR"/*.db ]]; then pg_store "$1"; else printf %s "$1"; fi
}

# store_sql PATH SQL: run SQL on the store a daemon started on PATH uses;
# rows as a|b lines, as sqlite3 prints them.
store_sql() {
	if [ -n "${LQS_TEST_PG:-}" ] && [[ "$1" == "$T_DIR"/*.db ]]; then
		psql -X -qAt -v ON_ERROR_STOP=1 "$(pg_store "$1")" -c "$2"
	else
		sqlite3 "$1" "$2"
	fi
}

# pg_server DIR: a throwaway PostgreSQL server of the test's own (stopped
# at exit); prints its database's address.
pg_server() {
	mkdir -p "$1" && echo "$1" >>"$T_DIR/pg_servers" && "$LQS_SRC/tests/tools/pgtmp.sh" start "$1"
}

cleanup() {
	local pid db
	for pid in "${T_PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	if [ -f "$T_DIR/pg_servers" ]; then
		while read -r db; do "$LQS_SRC/tests/tools/pgtmp.sh" kill "$db"; done <"$T_DIR/pg_servers"
	fi
	for db in "${PG_DBS[@]}"; do
		pg_psql -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
	done
	rm -rf "$T_DIR"
}
trap cleanup EXIT

pass() { T_PASS=$((T_PASS + 1)); printf 'ok   %s\n' "$1"; }
fail() { T_FAIL=$((T_FAIL + 1)); printf 'FAIL %s\n' "$1"; [ $# -gt 1 ] && printf '     %s\n' "$2"; }

# check NAME ACTUAL EXPECTED
check() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "expected [$3], got [$2]"; fi
}

# check_contains NAME HAYSTACK NEEDLE
check_contains() {
	case "$2" in *"$3"*) pass "$1" ;; *) fail "$1" "[$3] not in [$2]" ;; esac
}

# Secrets the daemons of this test were given; none may appear in their
# output, raw or in the base64 form they travel in. Tests add their own.
HIDDEN=()
hide() { HIDDEN+=("$@"); }

finish() {
	local s f leaked=""
	hide "$SECRET" "$KEY_SECRET" "$(printf %s "$SECRET" | base64)" "$(printf '%s:%s' "$KEY_ID" "$KEY_SECRET" | base64)"
	for f in "$T_DIR"/hookd.*.log "$T_DIR"/*.log; do
		[ -f "$f" ] || continue
		for s in "${HIDDEN[@]}"; do
			[ -n "$s" ] && grep -qF -- "$s" "$f" && leaked="$leaked $(basename "$f"):${s:0:4}…"
		done
	done
	[ -z "$leaked" ] && pass "no secret in any daemon log" || fail "no secret in any daemon log" "$leaked"
	# Any sanitizer report from a daemon or mock we ran fails the test.
	local reports
	reports=$(grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T_DIR"/hookd.*.log "$T_DIR"/mock.*.err 2>/dev/null)
	if [ -n "$reports" ]; then
		fail "no sanitizer reports" "$(cat $reports | head -60)"
	fi
	printf '%d passed, %d failed\n' "$T_PASS" "$T_FAIL"
	[ "$T_FAIL" -eq 0 ]
	exit $?
}

# wait_until SECONDS COMMAND...: poll every 50 ms, bounded.
wait_until() {
	local limit=$1 i=0
	shift
	local n=$((limit * 20))
	while [ $i -lt $n ]; do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

# start_mock [lqs-mock args...]: sets MOCK_PID, MOCK_PORT, MOCK.
start_mock() {
	local out="$T_DIR/mock.$RANDOM.out"
	"$LQS_MOCK" --port 0 "$@" >"$out" 2>"$out.err" &
	MOCK_PID=$!
	T_PIDS+=("$MOCK_PID")
	wait_until 10 grep -q '^PORT=' "$out" || { echo "mock did not start"; cat "$out.err"; exit 1; }
	MOCK_PORT=$(sed -n 's/^PORT=//p' "$out")
	MOCK="http://127.0.0.1:$MOCK_PORT"
}

# quiet_port: a free port below the kernel's ephemeral range. Every other
# test binds port 0, which the kernel fills from that range, so a port from
# here stays ours while a test keeps it closed on purpose (an outage).
quiet_port() {
	local low p
	low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
	[ -n "$low" ] && [ "$low" -gt 12000 ] || low=32768
	for _ in $(seq 1 100); do
		p=$((10000 + RANDOM % (low - 11000)))
		ss -Htan "( sport = :$p )" | grep -q . || { echo "$p"; return 0; }
	done
	return 1
}

start_demo_mock() { start_mock --fixture "$DEMO_FIXTURE" "$@"; }

# Environment for a daemon pointed at the mock.
mock_env() {
	echo "LQS_API_URL=$MOCK LQS_DATASTORE_ID=$DS LQS_API_KEY_ID=$KEY_ID LQS_API_KEY_SECRET=$KEY_SECRET"
}

# start_hookd STORE [args...]: env from HOOKD_ENV (space-separated VAR=value);
# sets HOOKD_PID, PORT, BASE, HOOKD_LOG.
start_hookd() {
	local store
	store=$(store_url "$1") || { echo "cannot make a database for $1"; exit 1; }
	shift
	HOOKD_LOG="$T_DIR/hookd.$RANDOM.log"
	local secret_env="LQS_EXPECTED_SECRET=$SECRET"
	[ -n "${NO_ENV_SECRET:-}" ] && secret_env="LQS_HOOKD_UNUSED=1"
	# shellcheck disable=SC2086
	# LogQS at a closed loopback port unless the test names one (HOOKD_ENV
	# comes later and wins): a test never reaches the internet
	env "$secret_env" LQS_RETRY_DELAY=0.05 LQS_API_URL=http://127.0.0.1:9 ${HOOKD_ENV:-} \
		"$LQS_HOOKD" --listen 127.0.0.1:0 --store "$store" "$@" 2>"$HOOKD_LOG" &
	HOOKD_PID=$!
	T_PIDS+=("$HOOKD_PID")
	if ! wait_until 10 grep -q '"listening on\|"listening on the socket' "$HOOKD_LOG"; then
		echo "lqs-hookd did not start:"; cat "$HOOKD_LOG"; exit 1
	fi
	PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$HOOKD_LOG" | head -1 | grep -o '[0-9]*$')
	BASE="http://127.0.0.1:$PORT"
}

# stop_hookd [SIGNAL]: signal our daemon and wait (bounded) for it to exit.
# Sets HOOKD_RC.
stop_hookd() {
	local sig=${1:-TERM}
	kill -"$sig" "$HOOKD_PID" 2>/dev/null
	wait_until 40 bash -c "! kill -0 $HOOKD_PID 2>/dev/null"
	wait "$HOOKD_PID" 2>/dev/null
	HOOKD_RC=$?
}

# post BODY [extra curl args...]: sets CODE and BODY. CT overrides the
# Content-Type (curl would send both if it were given twice).
post() {
	local data=$1
	shift
	local out="$T_DIR/resp.$RANDOM"
	CODE=$(curl -s -o "$out" -w '%{http_code}' --max-time 10 -X POST "$BASE/events" \
		-H "Content-Type: ${CT:-application/json}" "$@" --data-binary "$data")
	BODY=$(cat "$out")
}

# get PATH: sets CODE and BODY.
get() {
	local out="$T_DIR/resp.$RANDOM"
	CODE=$(curl -s -o "$out" -w '%{http_code}' --max-time 10 "$BASE$1")
	BODY=$(cat "$out")
}

event_json() { # current_state process_type resource_id [previous_state]
	local prev=${4:-}
	if [ -n "$prev" ]; then
		printf '{"previous_state":"%s","current_state":"%s","process_type":"%s","resource_id":"%s"}' "$prev" "$1" "$2" "$3"
	else
		printf '{"current_state":"%s","process_type":"%s","resource_id":"%s"}' "$1" "$2" "$3"
	fi
}

# wait_done ID [SECONDS]: until the event is FINISHED.
wait_done() {
	local id=$1 limit=${2:-20}
	wait_until "$limit" bash -c "curl -s --max-time 2 '$BASE/events/$id' | jq -e '.done == true'"
}

# What the mock received from handlers: the daemon's own LogQS check
# (users/me, at start and on reload) is left out; mock_checks counts it.
# all_events [QUERY]: every event the daemon holds (GET /events, paged), one
# JSON status document per line. Tests read the store through the API, so
# they hold for any store backend.
all_events() {
	local cursor="" page q=${1:+&$1}
	for _ in $(seq 1 1000); do
		page=$(curl -s --max-time 10 "$BASE/events?limit=1000$q${cursor:+&cursor=$cursor}") || return 1
		jq -c '.data[]' <<<"$page" || return 1
		cursor=$(jq -r '.next_cursor // empty' <<<"$page")
		[ -z "$cursor" ] && return 0
	done
}
count_events() { all_events "${1:-}" | wc -l; }

mock_requests() { curl -s --max-time 5 "$MOCK/_mock/requests" | jq '{requests: [.requests[] | select(.path != "users/me")]}'; }
mock_checks() { curl -s --max-time 5 "$MOCK/_mock/requests" | jq '[.requests[] | select(.path == "users/me")] | length'; }
mock_state() { curl -s --max-time 5 "$MOCK/_mock/state"; }
mock_fault() { curl -s --max-time 5 -X POST "$MOCK/_mock/faults" -d "$1" >/dev/null; }

# Independent computation of the digestion statistics straight from a fixture
# file, in SQL (exact 64-bit integers). Prints "count|size|start|end|parts".
fixture_stats() { # FIXTURE DIGESTION_ID
	sqlite3 :memory: "
	  WITH e AS (SELECT i.value AS v FROM json_each(readfile('$1'), '\$.digestion_parts') p,
	                  json_each(p.value, '\$.index') i
	             WHERE json_extract(p.value, '\$.digestion_id') = '$2')
	  SELECT count(*), sum(coalesce(json_extract(v, '\$[7]'), json_extract(v, '\$[4]'))),
	         min(cast(json_extract(v, '\$[8]') AS INTEGER)), max(cast(json_extract(v, '\$[8]') AS INTEGER)),
	         (SELECT count(*) FROM json_each(readfile('$1'), '\$.digestion_parts') q
	           WHERE json_extract(q.value, '\$.digestion_id') = '$2')
	  FROM e;"
}

# Per-topic "topic|count|size" lines, sorted.
fixture_topics() { # FIXTURE DIGESTION_ID
	sqlite3 :memory: "
	  WITH e AS (SELECT i.value AS v FROM json_each(readfile('$1'), '\$.digestion_parts') p,
	                  json_each(p.value, '\$.index') i
	             WHERE json_extract(p.value, '\$.digestion_id') = '$2')
	  SELECT lower(json_extract(v, '\$[0]')), count(*),
	         sum(coalesce(json_extract(v, '\$[7]'), json_extract(v, '\$[4]')))
	  FROM e GROUP BY 1 ORDER BY 1;"
}

# The same figures as the mock's log context holds them.
context_stats() { # STATE_FILE LOG_ID
	sqlite3 :memory: "
	  SELECT json_extract(s, '\$.record_count'), json_extract(s, '\$.record_size'),
	         json_extract(s, '\$.start_time'), json_extract(s, '\$.end_time'), json_extract(s, '\$.part_count')
	  FROM (SELECT json_extract(readfile('$1'), '\$.logs.\"$2\".context.digestion_stats') AS s);"
}

context_topics() { # STATE_FILE LOG_ID
	sqlite3 :memory: "
	  SELECT t.key, json_extract(t.value, '\$.record_count'), json_extract(t.value, '\$.record_size')
	  FROM json_each(readfile('$1'), '\$.logs.\"$2\".context.digestion_stats.topics') t ORDER BY 1;"
}

# fixture_set FIXTURE JSONPATH JSON > out: edit a fixture without losing
# integer precision (jq would turn 19-digit timestamps into doubles).
fixture_set() {
	sqlite3 :memory: "SELECT json_set(readfile('$1'), '$2', json('$3'));"
}

# history_ms ID STEP [N]: when the Nth (default first) history step named
# STEP started, in ms since the epoch.
history_ms() {
	curl -s --max-time 5 "$BASE/events/$1/history" |
		jq -r --arg s "$2" --argjson n "${3:-0}" '[.history[] | select(.step == $s)][$n].started_at' |
		sed -E 's/^([0-9-]+)T([0-9:]+)\.([0-9]{3})Z$/\1 \2 \3/' |
		{ read -r d t ms; echo $(( $(date -u -d "$d $t" +%s) * 1000 + 10#$ms )); }
}

# POST /objects, with OBJ_TOKEN as its bearer when set (CT overrides the
# Content-Type): CODE, BODY.
opost() {
	local data=$1 out="$T_DIR/resp.$RANDOM" auth=()
	shift
	[ -n "${OBJ_TOKEN:-}" ] && auth=(-H "Authorization: Bearer $OBJ_TOKEN")
	CODE=$(curl -s -o "$out" -w '%{http_code}' --max-time 10 -X POST "$BASE/objects" \
		-H "Content-Type: ${CT:-application/json}" "${auth[@]}" "$@" --data-binary "$data")
	BODY=$(cat "$out")
}
# An S3 notification of one object: KEY (form-encoded) SEQUENCER [EVENT].
s3_record() {
	printf '{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"eu-west-1","eventTime":"2024-05-01T10:00:00.123Z","eventName":"%s","s3":{"s3SchemaVersion":"1.0","bucket":{"name":"my-bucket","arn":"arn:aws:s3:::my-bucket"},"object":{"key":"%s","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"%s"}}}]}' \
		"${3:-ObjectCreated:Put}" "$1" "$2"
}
# The trigger event of the batch the last answer's first object joined.
last_trigger() { curl -s "$BASE/batches/$(jq -r '.objects[0].batch_id' <<<"$BODY")" | jq -r .trigger_event_id; }
