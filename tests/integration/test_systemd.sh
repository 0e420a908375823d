#!/usr/bin/env bash
# The unit files verify and score well; the daemon speaks sd_notify and
# serves a socket passed by systemd.
. "$(dirname "$0")/lib.sh"

UNIT="$LQS_SRC/systemd/lqs-hookd.service"
SOCK="$LQS_SRC/systemd/lqs-hookd.socket"

# verify: a copy whose ExecStart names the binary under test; warnings count
mkdir -p "$T_DIR/units"
sed "s|/usr/bin/lqs-hookd|$LQS_HOOKD|" "$UNIT" >"$T_DIR/units/lqs-hookd.service"
cp "$SOCK" "$T_DIR/units/"
out=$(systemd-analyze verify --man=no "$T_DIR/units/lqs-hookd.service" "$T_DIR/units/lqs-hookd.socket" 2>&1)
check "systemd-analyze verify: exit 0" "$?" 0
check "systemd-analyze verify: no warnings" "$out" ""
score=$(systemd-analyze security --offline=true "$UNIT" 2>&1 | sed -n 's/.*Overall exposure level for lqs-hookd.service: \([0-9.]*\).*/\1/p')
check "security score $score is 2.0 or lower" "$(awk -v s="$score" 'BEGIN { print (s != "" && s <= 2.0) ? "yes" : "no" }')" yes
for key in "Type=notify" "DynamicUser=yes" "StateDirectory=lqs-hookd" "ConfigurationDirectory=lqs-hookd" \
	   "LoadCredential=lqs-hookd.secret$" "LoadCredential=lqs-hookd.api_key_secret$" "LimitNOFILE=65536" \
	   "SystemCallFilter=setpriority setrlimit prlimit64" "ExecReload=/bin/kill -HUP" "EnvironmentFile=-/etc/default/lqs-hookd" \
	   "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" "SystemCallFilter=@system-service" "WatchdogSec="; do
	grep -q "^$key" "$UNIT" && pass "unit has $key" || fail "unit has $key"
done

# A credential given with a path fails the start when the file is missing;
# the shipped unit names credentials only (looked up in the credstore, and
# skipped when absent)
check "no LoadCredential= with a path" "$(grep -c '^LoadCredential=[^:]*:' "$UNIT")" 0
# @resources stays denied but for the calls the daemon makes (worker_nice,
# the open-file limit): after the deny line, in this order
check "setpriority allowed after @resources is denied" \
	"$(grep -n '^SystemCallFilter=' "$UNIT" | cut -d: -f1 | tr '\n' ' ')" \
	"$(grep -n -e '^SystemCallFilter=@system-service' -e '^SystemCallFilter=~@privileged @resources' -e '^SystemCallFilter=setpriority' "$UNIT" | cut -d: -f1 | tr '\n' ' ')"

# sd_notify: READY=1 once listening, STATUS=, STOPPING=1 at shutdown
"$NOTIFY_LISTEN" "$T_DIR/notify.sock" 20 >"$T_DIR/notify.out" &
listener=$!
T_PIDS+=("$listener")
wait_until 5 grep -q LISTENING "$T_DIR/notify.out" || fail "listener up"
HOOKD_ENV="NOTIFY_SOCKET=$T_DIR/notify.sock" start_hookd "$T_DIR/n.db"
wait_until 5 grep -q 'READY=1' "$T_DIR/notify.out" && pass "READY=1 sent" || fail "READY=1 sent"
code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")
check "serving when READY=1 arrives" "$code" 200
wait_until 8 grep -q 'STATUS=.*unfinished events' "$T_DIR/notify.out" && pass "STATUS= sent" || fail "STATUS= sent"
stop_hookd TERM
wait_until 5 grep -q 'STOPPING=1' "$T_DIR/notify.out" && pass "STOPPING=1 sent" || fail "STOPPING=1 sent"
wait "$listener" 2>/dev/null
check "READY before STOPPING" "$(grep -n -o 'READY=1\|STOPPING=1' "$T_DIR/notify.out" | cut -d: -f2 | head -1)" "READY=1"

# socket activation: systemd-socket-activate binds, passes the socket, execs us
for try in 1 2 3 4 5; do
	sport=$((20000 + RANDOM % 40000))
	HOOKD_LOG="$T_DIR/sa.log"
	systemd-socket-activate -l "127.0.0.1:$sport" -E LQS_EXPECTED_SECRET="$SECRET" \
		"$LQS_HOOKD" --store "$T_DIR/sa.db" 2>"$HOOKD_LOG" &
	HOOKD_PID=$!
	T_PIDS+=("$HOOKD_PID")
	sleep 0.3
	kill -0 "$HOOKD_PID" 2>/dev/null && break
done
BASE="http://127.0.0.1:$sport"
post "$(event_json ready ingestion "$DIG")" -H "$AUTH"
check "socket-activated daemon accepts events" "$CODE" 202
check_contains "daemon says it serves the passed socket" "$(cat "$HOOKD_LOG")" "listening on the socket passed by systemd"
stop_hookd TERM
check "socket-activated daemon exits 0" "$HOOKD_RC" 0

finish
