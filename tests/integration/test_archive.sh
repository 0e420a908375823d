#!/usr/bin/env bash
# The partitioned archive: every finished event, with its history, as one
# JSON line under year=/month=/day=/hour= of its finish (UTC); retention
# prunes only what is archived; an archive that cannot be written keeps the
# events in the store; a torn last line is cut at start.
. "$(dirname "$0")/lib.sh"

start_demo_mock
ARCH="$T_DIR/archive"
cat >"$T_DIR/a.conf" <<CONF
[store]
archive_dir = $ARCH
archive_interval = 0.2s
retention = 1s
failed_retention = 1s
CONF
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/a.db" --config "$T_DIR/a.conf"
metric() { curl -s "$BASE/metrics" | awk -v s="$1" '$1 == s {print $2}'; }
lines() { find "$ARCH" -name '*.ndjson' -exec cat {} + 2>/dev/null; }

post "$(event_json finalizing digestion "$DIG" processing)" -H "$AUTH"
ids=$(jq -r .event_id <<<"$BODY")
for i in 1 2 3; do
	post "$(event_json finalizing digestion "00000000-0000-4000-8003-00000000000$i" processing)" -H "$AUTH"
	ids="$ids $(jq -r .event_id <<<"$BODY")"
done
for i in 1 2; do
	post "$(event_json archived digestion_part "00000000-0000-4000-8004-00000000000$i")" -H "$AUTH"
	ids="$ids $(jq -r .event_id <<<"$BODY")"
done
wait_until 20 bash -c "[ \"\$(curl -s '$BASE/metrics' | awk '\$1 == \"lqs_hookd_archive_events_total\" {print \$2}')\" = 6 ]" ||
	fail "six events archived"
check "every line parses, one per event" "$(lines | jq -r .event_id | sort | paste -sd' ')" "$(tr ' ' '\n' <<<"$ids" | sort | paste -sd' ')"
host=$(hostname | tr -c 'A-Za-z0-9._\n' '_')
check "files: lqs-hookd-HOST-TIMESTAMP.ndjson under year=/month=/day=/hour=" \
	"$(find "$ARCH" -name '*.ndjson' | sed "s|^$ARCH/||" | grep -cvE "^year=[0-9]{4}/month=[0-9]{2}/day=[0-9]{2}/hour=[0-9]{2}/lqs-hookd-${host}-[0-9]{8}T[0-9]{6}Z\.ndjson$")" 0
misplaced=0
while IFS= read -r f; do
	dir=$(dirname "${f#"$ARCH"/}")
	while IFS= read -r fin; do
		want=$(date -u -d "$fin" +'year=%Y/month=%m/day=%d/hour=%H')
		[ "$want" = "$dir" ] || misplaced=$((misplaced + 1))
	done < <(jq -r .finished_at "$f")
done < <(find "$ARCH" -name '*.ndjson')
check "each line in the partition of its finish hour (UTC)" "$misplaced" 0
check "states: one completed digestion, three failed, two unrouted" \
	"$(lines | jq -r '"\(.event.process_type)/\(.state)"' | sort | uniq -c | awk '{print $1, $2}' | paste -sd,)" \
	"1 digestion/completed,3 digestion/failed,2 digestion_part/completed"
ok=$(lines | jq -c --arg d "$DIG" 'select(.event.resource_id == $d)')
check "a line holds the result and the whole history" \
	"$(jq -c --arg d "$DIG" '[.result.digestion_id == $d, ([.history[].step] | unique), .trace_event_status]' <<<"$ok")" \
	'[true,["attempt","lqs_call","outcome","received","started"],"OK"]'
check "a failure keeps its error" "$(lines | jq -r 'select(.state == "failed") | .error | test("404")' | sort -u)" true

# retention prunes what is archived (1 s here), and the archive keeps it
wait_until 10 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' '$BASE/events/${ids%% *}') = 404 ]" ||
	fail "pruned once archived"
check "pruned from the store, still in the archive" "$(lines | jq -r --arg e "${ids%% *}" 'select(.event_id == $e) | .state')" completed

# --- a torn last line (a crash mid-write) is cut at start ---
stop_hookd TERM
file=$(find "$ARCH" -name '*.ndjson' | head -1)
before=$(wc -l <"$file")
printf '{"event_id":"01a2-torn","state":"compl' >>"$file"
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/a.db" --config "$T_DIR/a.conf"
check_contains "start: the torn line is reported" "$(cat "$HOOKD_LOG")" "ended in a line cut short by a crash: 38 byte(s) removed"
check "... and cut: every line parses again, none lost" "$(jq -c . "$file" >/dev/null 2>&1 && echo parses) $(wc -l <"$file")" \
	"parses $before"
stop_hookd TERM

# --- archive_gzip: a file of an hour long over is compressed (at start, here:
#     its hour is made three hours old); a .gz cut short beside it is redone ---
want=$(jq -c . "$file" | sort | md5sum)
touch -d '3 hours ago' "$file"
printf 'not gzip' >"$file.gz"
printf 'archive_gzip = true\n' >>"$T_DIR/a.conf"
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/a.db" --config "$T_DIR/a.conf"
check "gzip: the closed file compressed in place" "$([ -e "$file" ] && echo plain) $([ -e "$file.gz" ] && echo gz)" " gz"
check "... holding the same lines" "$(zcat "$file.gz" | jq -c . | sort | md5sum)" "$want"
stop_hookd TERM

# --- an archive that cannot be written: the events stay in the store ---
ARCH2="$T_DIR/archive2"
mkdir -p "$ARCH2"
touch "$ARCH2/year=$(date -u +%Y)"   # a file where the partition directory would go
sed "s|^archive_dir = .*|archive_dir = $ARCH2|" "$T_DIR/a.conf" >"$T_DIR/b.conf"
HOOKD_ENV="$(mock_env)" start_hookd "$T_DIR/b.db" --config "$T_DIR/b.conf"
post "$(event_json archived digestion_part 00000000-0000-4000-8005-000000000001)" -H "$AUTH"
held=$(jq -r .event_id <<<"$BODY")
wait_until 10 bash -c "[ \"\$(curl -s '$BASE/metrics' | awk '\$1 == \"lqs_hookd_archive_errors_total\" {print \$2}')\" -ge 2 ] 2>/dev/null" ||
	fail "archive errors counted"
check_contains "the error is logged, with what keeps the events" "$(cat "$HOOKD_LOG")" \
	"the events stay in the store (retention keeps them) and are tried again"
sleep 2
check "past retention, not archived: still in the store" "$(curl -s "$BASE/events/$held" | jq -r .state)" completed
rm "$ARCH2/year=$(date -u +%Y)"
wait_until 10 bash -c "[ \$(curl -s -o /dev/null -w '%{http_code}' '$BASE/events/$held') = 404 ]" ||
	fail "archived and pruned once the archive could be written"
check "then archived, once" "$(find "$ARCH2" -name '*.ndjson' -exec cat {} + | jq -r .event_id)" "$held"
stop_hookd TERM

# --- an archive_dir that cannot be made: the daemon says so and does not start ---
touch "$T_DIR/plain"
sed "s|^archive_dir = .*|archive_dir = $T_DIR/plain/archive|" "$T_DIR/a.conf" >"$T_DIR/c.conf"
out=$(LQS_EXPECTED_SECRET=x timeout 10 "$LQS_HOOKD" --config "$T_DIR/c.conf" --listen 127.0.0.1:0 --store "$T_DIR/c.db" 2>&1); rc=$?
check "archive_dir under a file: exit 1, and why" "$rc $(grep -o "archive_dir [^\"]*" <<<"$out" | head -1)" \
	"1 archive_dir $T_DIR/plain/archive: Not a directory"
finish
