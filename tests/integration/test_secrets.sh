#!/usr/bin/env bash
# Secret hygiene: secrets from files, credentials and the environment never
# show in logs (even at debug level), --print-config, error bodies, /metrics,
# the status API or the operator commands.
. "$(dirname "$0")/lib.sh"

HOOK1=hook-secret-one-Zq81 HOOK2=hook-secret-two-Wx42 ADMIN=admin-token-Pv77
printf '%s\n%s\n' "$HOOK1" "$HOOK2" >"$T_DIR/hook-secrets"
mkdir -p "$T_DIR/creds"
# named as the shipped unit loads it from /etc/credstore/
printf '%s\n' "$KEY_SECRET" >"$T_DIR/creds/lqs-hookd.api_key_secret"
printf '[auth]\nsecret_file = %s\n[log]\nlog_level = debug\n' "$T_DIR/hook-secrets" >"$T_DIR/s.conf"
hide "$HOOK1" "$HOOK2" "$ADMIN" "$(printf %s "$HOOK1" | base64)" "$(printf %s "$HOOK2" | base64)"

start_demo_mock
mock_fault "{\"method\":\"PATCH\",\"path\":\"logs/$LOG_ID\",\"status\":401,\"count\":1}"
all="$T_DIR/all-output.txt"
NO_ENV_SECRET=1 HOOKD_ENV="LQS_API_URL=$MOCK LQS_DATASTORE_ID=$DS LQS_API_KEY_ID=$KEY_ID CREDENTIALS_DIRECTORY=$T_DIR/creds LQS_HOOKD_ADMIN_TOKEN=$ADMIN" \
	start_hookd "$T_DIR/s.db" --config "$T_DIR/s.conf"
A1="Authorization: Bearer $(printf %s "$HOOK1" | base64)"
ADM="Authorization: Bearer $ADMIN"
{
	# accepted, refused with a wrong and a near-miss secret
	curl -s -D - -X POST "$BASE/events" -H 'Content-Type: application/json' -H "$A1" -d "$(event_json finalizing digestion "$DIG")"
	curl -s -D - -X POST "$BASE/events" -H 'Content-Type: application/json' -H "Authorization: Bearer $(printf %s "${HOOK1}x" | base64)" -d '{}'
	curl -s -D - -H "Authorization: Bearer ${ADMIN}x" "$BASE/events"
	sleep 1
	curl -s -H "$ADM" "$BASE/events?pretty"
	id=$(curl -s -H "$ADM" "$BASE/events" | jq -r '.data[0].event_id')
	curl -s -H "$ADM" "$BASE/events/$id/history?pretty"
	curl -s -H "$ADM" "$BASE/metrics"
	# reload, and the configuration as printed
	kill -HUP "$HOOKD_PID"; sleep 0.5
	env LQS_HOOKD_ADMIN_TOKEN="$ADMIN" CREDENTIALS_DIRECTORY="$T_DIR/creds" "$LQS_HOOKD" --config "$T_DIR/s.conf" --print-config
	env LQS_HOOKD_ADMIN_TOKEN="$ADMIN" "$LQS_HOOKD" --config "$T_DIR/s.conf" --check-config
	env LQS_HOOKD_ADMIN_TOKEN="$ADMIN" "$LQS_HOOKD" status "$id" --history --config "$T_DIR/s.conf" --listen "127.0.0.1:$PORT"
	env LQS_HOOKD_ADMIN_TOKEN="$ADMIN" "$LQS_HOOKD" list --config "$T_DIR/s.conf" --listen "127.0.0.1:$PORT"
	env $(mock_env) "$LQS_HOOKD" check-lqs
	env $(mock_env) LQS_API_KEY_SECRET="${KEY_SECRET}x" "$LQS_HOOKD" check-lqs
	# a configuration error must not echo a secret either
	printf '[auth]\nsecret = %s\nbogus = %s\n' "$HOOK1" "$HOOK2" >"$T_DIR/bad.conf"
	"$LQS_HOOKD" --config "$T_DIR/bad.conf" --check-config
	: >"$T_DIR/empty-secret"
	env LQS_HOOKD_ADMIN_TOKEN_FILE="$T_DIR/empty-secret" "$LQS_HOOKD" --config "$T_DIR/s.conf" --check-config
} >"$all" 2>&1
stop_hookd TERM
cat "$HOOKD_LOG" >>"$all"

check "debug logging was on" "$(grep -c '"level":"debug"\|"level":"info"' "$HOOKD_LOG" | awk '{print ($1 > 3) ? "yes" : "no"}')" yes
check "the event was processed (the 401 from LogQS is in the output)" "$(grep -c 'HTTP 401' "$all" | awk '{print ($1 > 0) ? "yes" : "no"}')" yes
check "a bad secret source is reported" "$(grep -c "secret file '$T_DIR/empty-secret' is empty" "$all")" 1
for s in "$HOOK1" "$HOOK2" "$ADMIN" "$KEY_SECRET" "$(printf %s "$HOOK1" | base64)" "$(printf '%s:%s' "$KEY_ID" "$KEY_SECRET" | base64)"; do
	if grep -qF -- "$s" "$all"; then
		fail "secret ${s:0:6}… absent from every output" "$(grep -nF -- "$s" "$all" | head -3)"
	else
		pass "secret ${s:0:6}… absent from every output"
	fi
done
finish
