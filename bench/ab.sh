#!/usr/bin/env bash
# A/B of the receive path: several lqs-hookd binaries alternated in one loop
# (the machine's noise then hits them alike), a fresh store per run, wrk on
# 127.0.0.1 only. Prints "c=C round=R NAME requests/s".
# usage: bench/ab.sh NAME=BINARY [NAME=BINARY...]
#        (CS: connection counts, default "16 128"; ROUNDS, default 3; SECONDS_EACH, default 5)
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECRET=bench-secret
AUTH=$(printf %s "$SECRET" | base64)
W=$(mktemp -d /tmp/lqs-ab-XXXXXX)
trap 'rm -rf "$W"' EXIT
run() { # BINARY CONNECTIONS
	local port pid rps
	port=$((20000 + RANDOM % 9000))   # below the ephemeral range wrk's connections use
	rm -f "$W"/s.db*
	LQS_HOOKD_CONFIG= LQS_EXPECTED_SECRET=$SECRET LQS_HOOKD_MAX_CONNECTIONS_PER_IP=0 \
		LQS_API_URL=http://127.0.0.1:9 "$1" --listen "127.0.0.1:$port" --store "$W/s.db" 2>/dev/null &
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
