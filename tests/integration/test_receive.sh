#!/usr/bin/env bash
# The receive path: every status code of POST /events and the status API,
# exact bodies, header-only rejections, size limits, split bodies.
. "$(dirname "$0")/lib.sh"

RID=00000000-0000-0000-0000-000000000000
EV=$(event_json finalizing digestion "$RID")
# Unrouted state so no worker calls LogQS during this test.
UNROUTED=$(event_json ready ingestion "$RID")

HOOKD_ENV="LQS_HOOKD_MAX_BODY=1K LQS_HOOKD_DEDUPE_WINDOW=0" start_hookd "$T_DIR/r.db"

# --- routing ---
get /nope
check "unknown path 404" "$CODE $BODY" '404 {"detail":"Not Found"}'
allow=$(curl -s -o /dev/null -D - -X PUT "$BASE/events" | tr -d '\r' | sed -n 's/^Allow: //p')
check "PUT /events 405 with Allow" "$allow" "GET, POST"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$BASE/events")
check "DELETE /events 405" "$code" 405

# --- authentication ---
post "$EV"
check "no Authorization 401" "$CODE $BODY" '401 {"detail":"Authorization header is missing"}'
for h in "Bearer $(printf wrong | base64)" "Bearer !!notbase64" "Basic $(printf %s "$SECRET" | base64)" \
	 "Bearer " "Bearer $(printf it-hook-secre | base64)" "Bearer $(printf it-hook-secretX | base64)" \
	 "Bearer  $(printf %s "$SECRET" | base64)" "Bearer $(head -c 10000 /dev/zero | tr '\0' A)"; do
	post "$EV" -H "Authorization: $h"
	check "bad Authorization '${h:0:24}' 401" "$CODE $BODY" '401 {"detail":"Invalid authorization token"}'
done
post "$UNROUTED" -H "authorization: bearer $(printf %s "$SECRET" | base64)"
check "lowercase header and scheme accepted" "$CODE" 202

# --- content type and size, decided on headers ---
CT=text/plain post "$EV" -H "$AUTH"
check "wrong Content-Type 415" "$CODE $BODY" '415 {"detail":"Content-Type must be application/json"}'
CT='application/json; charset=utf-8' post "$UNROUTED" -H "$AUTH"
check "Content-Type with charset 202" "$CODE" 202
big=$(printf '{"pad":"%s"}' "$(head -c 2000 /dev/zero | tr '\0' x)")
post "$big" -H "$AUTH"
check "declared body over max_body 413" "$CODE $BODY" '413 {"detail":"Request body larger than max_body (1024 bytes)"}'
post "$big" -H "$AUTH" -H 'Transfer-Encoding: chunked'
check "chunked body over max_body 413" "$CODE $BODY" '413 {"detail":"Request body larger than max_body (1024 bytes)"}'
# exactly max_body is accepted, one byte more is not
pad=$((1024 - ${#UNROUTED}))
exact="$UNROUTED$(printf '%*s' "$pad" '')"
check "exact-size body built" "${#exact}" 1024
post "$exact" -H "$AUTH"
check "body of exactly max_body 202" "$CODE" 202
post "$exact " -H "$AUTH"
check "body of max_body+1 413" "$CODE" 413
# auth comes before size: an oversized unauthenticated request is a 401
post "$big"
check "401 before 413" "$CODE" 401

# --- body validation ---
post '{"current_state":' -H "$AUTH"
check "truncated JSON 400" "$CODE" 400
check_contains "400 names the position" "$BODY" 'position'
post '{"current_state":"bogus","process_type":"digestion"}' -H "$AUTH"
check "invalid event 422" "$CODE" 422
check "422 lists every bad field" "$(jq -c '[.detail[] | [.loc[1], .type]]' <<<"$BODY")" \
	'[["current_state","enum"],["resource_id","missing"]]'
post '[]' -H "$AUTH"
check "top-level array 422" "$CODE $(jq -c '.detail[0].loc' <<<"$BODY")" '422 ["body"]'

# --- accepted ---
out=$(curl -s -D "$T_DIR/h" -X POST "$BASE/events?source=test" -H 'Content-Type: application/json' -H "$AUTH" -d "$EV")
id=$(jq -r .event_id <<<"$out")
check "202 body" "$(jq -c 'del(.event_id)' <<<"$out")" '{"status":"accepted"}'
check "Location header" "$(tr -d '\r' <"$T_DIR/h" | sed -n 's/^Location: //p')" "/events/$id"
check "JSON content type" "$(tr -d '\r' <"$T_DIR/h" | sed -n 's/^Content-Type: //p')" "application/json"

get "/events/$id"
check "GET event 200" "$CODE" 200
check "status document" "$(jq -c '{event_id, handler, trace_event_status, done, attempts: (.attempts|type), ev: .event.resource_id}' <<<"$BODY")" \
	"{\"event_id\":\"$id\",\"handler\":\"digestion_stats\",\"trace_event_status\":\"OK\",\"done\":false,\"attempts\":\"number\",\"ev\":\"$RID\"}"
check "trace_status is a trace state" "$(jq -r '.trace_status | test("^(STARTED|CONTINUE)$")' <<<"$BODY")" true
get "/events/11111111-2222-3333-4444-555555555555"
check "unknown event 404" "$CODE $BODY" '404 {"detail":"event not found"}'
get "/events/not-a-uuid"
check "malformed id 400" "$CODE $BODY" '400 {"detail":"event id must be a UUID"}'
get /healthz
check "healthz" "$CODE $BODY" '200 {"status":"ok"}'
# no LogQS is configured here: ready (nothing is lost), with the reason
# events will fail named once the daemon's own check has run
wait_until 30 bash -c "curl -s '$BASE/readyz' | jq -e .warning"
get /readyz
check "readyz" "$CODE $(jq -r .status <<<"$BODY")" '200 ready'
check_contains "readyz names the LogQS problem" "$(jq -r .warning <<<"$BODY")" "LogQS check failed: "

# --- a body trickled in many small TCP writes ---
split_post() {
	local body=$1 i resp
	exec 3<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' \
		"$AUTH" "${#body}" >&3
	for ((i = 0; i < ${#body}; i += 7)); do
		printf '%s' "${body:i:7}" >&3
		sleep 0.01
	done
	resp=$(timeout 5 cat <&3)
	exec 3>&-
	printf '%s' "$resp"
}
resp=$(split_post "$UNROUTED")
check_contains "split body accepted" "$resp" 'HTTP/1.1 202'
check_contains "split body answer" "$resp" '"status":"accepted"'

# --- the store holds exactly the accepted events ---
accepted=$(count_events)
check "store rows = accepted events" "$accepted" 5

stop_hookd TERM
check "SIGTERM exits 0" "$HOOKD_RC" 0

# --- command line ---
out=$("$LQS_HOOKD" --version)
check_contains "--version" "$out" "lqs-hookd "
out=$("$LQS_HOOKD" --help)
check_contains "--help" "$out" "--check-config"
out=$(env -u LQS_EXPECTED_SECRET "$LQS_HOOKD" --store "$T_DIR/x.db" 2>&1)
check "no secret refuses to start" "$?" 1
check_contains "no secret says why" "$out" "no hook secret configured"
printf '[http]\nlisten = 127.0.0.1:0\n[auth]\nsecret = hooksecret-one\nsecret = hooksecret-two\nadmin_token = admintoken-xyz\n[lqs]\napi_key_secret = apikeysecret-xyz\n' >"$T_DIR/ok.conf"
out=$("$LQS_HOOKD" --config "$T_DIR/ok.conf" --check-config 2>&1)
check "--check-config valid exits 0" "$?" 0
out=$("$LQS_HOOKD" --config "$T_DIR/ok.conf" --print-config 2>&1)
check_contains "--print-config shows values" "$out" "listen = 127.0.0.1:0"
case "$out" in *hooksecret-*|*admintoken-xyz*|*apikeysecret-xyz*) fail "--print-config hides secrets" "$out" ;; *) pass "--print-config hides secrets" ;; esac
printf '[http]\nmax_body = 10\n' >"$T_DIR/bad.conf"
out=$("$LQS_HOOKD" --config "$T_DIR/bad.conf" --check-config 2>&1)
check "--check-config invalid exits 1" "$?" 1
check_contains "--check-config file:line" "$out" "bad.conf:2: max_body: 10 is out of bounds"

# auth = none: starts, warns
HOOKD_ENV="LQS_HOOKD_AUTH=none" start_hookd "$T_DIR/n.db"
check_contains "auth=none warns" "$(cat "$HOOKD_LOG")" "WITHOUT authentication"
post "$UNROUTED"
check "auth=none accepts without header" "$CODE" 202
stop_hookd TERM

finish
