#!/usr/bin/env bash
# kill -9 in a loop while a load generator posts events and LogQS answers
# slowly: after a final restart every acknowledged event is FINISHED, every
# digestion is completed with exactly the expected figures, none is stuck.
. "$(dirname "$0")/lib.sh"

CYCLES=${CRASH_CYCLES:-20}
NDIG=30
start_mock --synthetic 3x20x$NDIG --key-id "$KEY_ID" --key-secret "$KEY_SECRET" --datastore "$DS" --no-record-bodies
mock_fault '{"method":"GET","path":"digestions/","delay_ms":60}'
mapfile -t DIGS < <(curl -s "$MOCK/_mock/expected" | jq -r '.digestion_ids[]')
STORE="$T_DIR/crash.db"
ENV="$(mock_env) LQS_HOOKD_RETRY_BASE=200ms LQS_HOOKD_RETRY_MAX_DELAY=1s LQS_HOOKD_DRAIN_TIMEOUT=1s"

# generator CYCLE: post events for successive digestions until killed;
# one line per request: "<http code> <event id or ->"
generator() {
	local n=$1 i=0 out code id
	while :; do
		local d=${DIGS[$(( (n * 7 + i) % NDIG ))]}
		# a distinct hook_id per request: every post is a new delivery
		local ev
		ev=$(printf '{"previous_state":"processing","current_state":"finalizing","process_type":"digestion","resource_id":"%s","hook_id":"%08d-0000-4000-8000-%012d"}' "$d" "$n" "$i")
		out=$(curl -s --max-time 3 -w '\n%{http_code}' -X POST "$BASE/events" -H 'Content-Type: application/json' \
			-H "$AUTH" -d "$ev")
		code=$(tail -n1 <<<"$out")
		id=$(head -n1 <<<"$out" | jq -r '.event_id // "-"' 2>/dev/null || echo -)
		echo "$code ${id:--}" >>"$T_DIR/acks"
		i=$((i + 1))
	done
}

: >"$T_DIR/acks"
for cycle in $(seq 1 "$CYCLES"); do
	HOOKD_ENV="$ENV" start_hookd "$STORE"
	generator "$cycle" &
	gen=$!
	sleep "0.$(( (RANDOM % 6) + 2 ))"
	kill -9 "$HOOKD_PID"
	wait "$HOOKD_PID" 2>/dev/null
	kill "$gen" 2>/dev/null; wait "$gen" 2>/dev/null
done
acked=$(awk '$1 == 202 || $1 == 200 {print $2}' "$T_DIR/acks" | sort -u)
n_acked=$(wc -l <<<"$acked")
n_202=$(awk '$1 == 202' "$T_DIR/acks" | wc -l)
n_unanswered=$(awk '$1 != 202 && $1 != 200' "$T_DIR/acks" | wc -l)
echo "cycles=$CYCLES requests=$(wc -l <"$T_DIR/acks") accepted=$n_202 acknowledged_ids=$n_acked unanswered=$n_unanswered"
check "the generator got events acknowledged" "$([ "$n_202" -ge "$CYCLES" ] && echo yes)" yes

# Final start: everything acknowledged must finish.
HOOKD_ENV="$ENV" start_hookd "$STORE"
deadline=$((SECONDS + 90))
while [ $SECONDS -lt $deadline ]; do
	all_events >"$T_DIR/events.jsonl"
	left=$(jq -s '[.[] | select(.state != "completed" and .state != "failed")] | length' "$T_DIR/events.jsonl")
	[ "$left" = 0 ] && break
	sleep 0.2
done
check "nothing stuck after the final restart" "$left" 0
missing=0; notok=0
while read -r id; do
	[ -z "$id" ] && continue
	st=$(jq -r --arg id "$id" 'select(.event_id == $id) | .state' "$T_DIR/events.jsonl")
	[ -z "$st" ] && missing=$((missing + 1))
	[ -n "$st" ] && [ "$st" != completed ] && notok=$((notok + 1))
done <<<"$acked"
check "no acknowledged event lost" "$missing" 0
check "every acknowledged event completed" "$notok" 0
rows=$(wc -l <"$T_DIR/events.jsonl")
# Every repeat of a delivery was answered with the first event: no delivery
# (hook, resource, previous and current state) is stored twice. A stored row
# without a 202 can only be a request the crash cut off before its answer.
check "no delivery stored twice ($rows rows, $n_202 accepted)" \
	"$(jq -s '[group_by([.event.hook_id, .event.process_type, .event.resource_id, .event.previous_state, .event.current_state])[] | select(length > 1)] | length' "$T_DIR/events.jsonl")" 0
check "rows are the accepted events plus at most one cut-off request per crash" \
	"$([ "$rows" -ge "$n_202" ] && [ "$rows" -le $((n_202 + n_unanswered + CYCLES)) ] && echo yes)" yes

# LogQS: every digestion that had an acknowledged event is completed, with
# exactly the generator's figures.
mock_state >"$T_DIR/state.json"
expected=$(curl -s "$MOCK/_mock/expected" | jq -cS 'del(.digestion_ids, .digestion_id)')
touched=$(jq -r 'select(.state == "completed") | .event.resource_id' "$T_DIR/events.jsonl" | sort -u)
bad=0
for d in $touched; do
	log=$(jq -r --arg d "$d" '.digestions[$d].log_id' "$T_DIR/state.json")
	st=$(jq -r --arg d "$d" '.digestions[$d].state' "$T_DIR/state.json")
	got=$(jq -cS --arg l "$log" '.logs[$l].context.digestion_stats | del(.digestion_id)' "$T_DIR/state.json")
	did=$(jq -r --arg l "$log" '.logs[$l].context.digestion_stats.digestion_id' "$T_DIR/state.json")
	if [ "$st" != completed ] || [ "$got" != "$expected" ] || [ "$did" != "$d" ]; then bad=$((bad + 1)); fi
done
check "digestions completed exactly as expected ($(wc -w <<<"$touched") touched)" "$bad" 0
check "the expected figures are real" "$(jq -r .record_count <<<"$expected")" 60
check "the other context keys survived" \
	"$(jq '[.logs[] | select(.context.digestion_stats != null) | select(.context.source != "lqs-mock synthetic")] | length' "$T_DIR/state.json")" 0

stop_hookd TERM
check "clean exit after the storm" "$HOOKD_RC" 0
finish
