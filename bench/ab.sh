#!/usr/bin/env bash
# A/B of the receive path: several lqs-hookd binaries alternated in one loop
# (the machine's noise then hits them alike), a fresh store per run, wrk on
# 127.0.0.1 only. Prints "c=C round=R NAME requests/s".
# usage: bench/ab.sh NAME=BINARY [NAME=BINARY...]
#        (CS: connection counts, default "16 128"; ROUNDS, default 3; SECONDS_EACH, default 5;
#         AB_STORE=pg: each run on a fresh database of a throwaway PostgreSQL server)
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECRET=bench-secret
AUTH=$(printf %s "$SECRET" | base64)
W=$(mktemp -d /tmp/lqs-ab-XXXXXX)
trap '[ -n "${PGURL:-}" ] && "$SRC/tests/tools/pgtmp.sh" stop "$W/pg"; rm -rf "$W"' EXIT
if [ "${AB_STORE:-}" = pg ]; then
	mkdir -p "$W/pg"
	PGURL=$("$SRC/tests/tools/pgtmp.sh" start "$W/pg") || { echo "no PostgreSQL server"; exit 1; }
fi
store() { # a fresh store for one run
	if [ -n "${PGURL:-}" ]; then
		local db=ab_$(date +%s%N)
		PGOPTIONS="-c client_min_messages=warning" psql -X -q "$PGURL" -c "CREATE DATABASE $db" >/dev/null
		sed "s|/hookd?|/$db?|" <<<"$PGURL"
	else
		rm -f "$W"/s.db*
		echo "$W/s.db"
	fi
}
run() { # BINARY CONNECTIONS
	local port pid rps st
	port=$((20000 + RANDOM % 9000))   # below the ephemeral range wrk's connections use
	st=$(store)
	LQS_HOOKD_CONFIG= LQS_EXPECTED_SECRET=$SECRET LQS_HOOKD_MAX_CONNECTIONS_PER_IP=0 \
		LQS_API_URL=http://127.0.0.1:9 "$1" --listen "127.0.0.1:$port" --store "$st" 2>/dev/null &
	pid=$!
	for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
	BENCH_AUTH=$AUTH wrk -t1 -c8 -d1 -s "$SRC/bench/post_event.lua" "http://127.0.0.1:$port" >/dev/null 2>&1
	rps=$(BENCH_AUTH=$AUTH wrk -t1 -c"$2" -d"${SECONDS_EACH:-5}s" --timeout 5s -s "$SRC/bench/post_event.lua" \
		"http://127.0.0.1:$port" 2>&1 | awk '/Requests\/sec/ {print int($2)}')
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	echo "${rps:-none}"
}
for c in ${CS:-16 128}; do
	for round in $(seq 1 "${ROUNDS:-3}"); do
		for pair in "$@"; do
			echo "c=$c round=$round ${pair%%=*} $(run "${pair#*=}" "$c")"
		done
	done
done
