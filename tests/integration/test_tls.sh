#!/usr/bin/env bash
# Native TLS: a certificate made here, HTTPS with curl, the pair checked by
# --check-config (a wrong key, an expired certificate, one expiring soon),
# the expiry metric, the priority string, the CLI over TLS, a reload under
# a stream of requests (none fails, an open connection goes on), a broken
# pair on reload kept out, and the plain port closing a TLS handshake at once.
. "$(dirname "$0")/lib.sh"

python3 -c 'import cryptography' 2>/dev/null || { echo "python3-cryptography is needed (make test installs it)"; exit 1; }
cert() { python3 "$LQS_SRC/tests/tools/make_cert.py" "$T_DIR/$1.pem" "$T_DIR/$1.key" "$2" "$3"; }
good_end=$(cert good -1 30)
cert new -1 60 >/dev/null
cert soon -1 7.5 >/dev/null
cert expired -30 -1 >/dev/null
cert other -1 30 >/dev/null
conf() { printf '[http]\ntls_cert = %s\ntls_key = %s\n%s' "$T_DIR/$1.pem" "$T_DIR/$2.key" "${3:-}" >"$T_DIR/$4.conf"; }
conf good good "" ok; conf good other "" mismatch; conf expired expired "" expired; conf soon soon "" soon

export LQS_EXPECTED_SECRET=$SECRET
out=$("$LQS_HOOKD" --config "$T_DIR/ok.conf" --check-config 2>&1); rc=$?
check "--check-config: a good pair is valid" "$rc ${out##*: }" "0 configuration is valid"
out=$("$LQS_HOOKD" --config "$T_DIR/mismatch.conf" --check-config 2>&1); rc=$?
check "--check-config: a key of another certificate" "$rc $out" \
	"1 tls_key $T_DIR/other.key does not match tls_cert $T_DIR/good.pem (the key of another certificate?)"
out=$("$LQS_HOOKD" --config "$T_DIR/expired.conf" --check-config 2>&1); rc=$?
check_contains "--check-config: an expired certificate" "$rc $out" "1 tls_cert $T_DIR/expired.pem expired at "
out=$("$LQS_HOOKD" --config "$T_DIR/soon.conf" --check-config 2>&1); rc=$?
check_contains "--check-config: one expiring within 14 days is valid, with a warning" "$rc $out" \
	"warning: tls_cert $T_DIR/soon.pem expires in 7 day(s)"
out=$(timeout 10 "$LQS_HOOKD" --config "$T_DIR/expired.conf" --listen 127.0.0.1:0 --store "$T_DIR/x.db" 2>&1); rc=$?
check_contains "an expired certificate stops the start, with the reason" "$rc $out" "1 "
check_contains "... the reason" "$out" "tls_cert $T_DIR/expired.pem expired at"

# --- HTTPS ---
cat "$T_DIR/good.pem" "$T_DIR/new.pem" >"$T_DIR/ca.pem"
start_hookd "$T_DIR/t.db" --config "$T_DIR/ok.conf"
BASE="https://127.0.0.1:$PORT"
CURL=(curl -s --max-time 5 --cacert "$T_DIR/ca.pem")
check "HTTPS: healthz" "$("${CURL[@]}" "$BASE/healthz")" '{"status":"ok"}'
check_contains "it says it serves TLS" "$(cat "$HOOKD_LOG")" "listening on 127.0.0.1:$PORT over TLS"
CODE=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -X POST "$BASE/events" -H "$AUTH" -H 'Content-Type: application/json' \
	--data-binary "$(event_json finalizing digestion 00000000-0000-4000-8006-000000000001 processing)")
check "HTTPS: an event accepted" "$CODE" 202
check "TLS 1.3 by default" "$(echo | openssl s_client -connect "127.0.0.1:$PORT" 2>/dev/null | grep -o 'New, TLSv1.[0-9]' | head -1)" "New, TLSv1.3"
check "TLS 1.1 refused" "$(echo | openssl s_client -connect "127.0.0.1:$PORT" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' 2>/dev/null | grep -c 'New, TLSv1.1')" 0
check "the expiry metric is the certificate's notAfter" \
	"$("${CURL[@]}" "$BASE/metrics" | awk '$1 == "lqs_hookd_tls_cert_expiry_timestamp_seconds" {print $2}')" "$good_end"
check "plain HTTP on the TLS port: no answer" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$PORT/healthz")" 000
check "the CLI asks over TLS (the certificate's key pinned)" \
	"$("$LQS_HOOKD" --config "$T_DIR/ok.conf" --listen "127.0.0.1:$PORT" list --format json | jq '.data | length')" 1

# --- reload under a stream of requests ---
python3 "$LQS_SRC/tests/tools/tls_keepalive.py" "$PORT" "$T_DIR/ca.pem" "$T_DIR/reloaded" >"$T_DIR/keep.out" &
KPID=$!; T_PIDS+=("$KPID")
( for _ in $(seq 1 60); do
	"${CURL[@]}" -o /dev/null -w '%{http_code}\n' "$BASE/healthz"
	sleep 0.05
done ) >"$T_DIR/codes" &
LPID=$!; T_PIDS+=("$LPID")
sleep 1
cp "$T_DIR/new.pem" "$T_DIR/good.pem"
cp "$T_DIR/new.key" "$T_DIR/good.key"
kill -HUP "$HOOKD_PID"
wait_until 10 grep -q "TLS certificate loaded" "$HOOKD_LOG" || fail "the new certificate loaded"
touch "$T_DIR/reloaded"
wait "$LPID" "$KPID"
check "every request during the reload answered 200" "$(sort "$T_DIR/codes" | uniq -c | awk '{print $2 ":" ($1 >= 40)}')" "200:1"
check "a connection opened before the reload goes on after it" "$(cat "$T_DIR/keep.out")" "200 200 same-connection"
check "new handshakes get the new certificate" \
	"$(echo | openssl s_client -connect "127.0.0.1:$PORT" 2>/dev/null | openssl x509 -noout -serial)" \
	"$(openssl x509 -in "$T_DIR/new.pem" -noout -serial)"
cp "$T_DIR/other.key" "$T_DIR/good.key"
kill -HUP "$HOOKD_PID"
wait_until 10 grep -q "the certificate in use is kept" "$HOOKD_LOG" || fail "a broken pair is refused on reload"
check "... and the one in use still serves" "$("${CURL[@]}" "$BASE/healthz")" '{"status":"ok"}'
stop_hookd TERM
check "SIGTERM: exit 0" "$HOOKD_RC" 0

# --- the plain port: a TLS handshake (https:// by mistake) is closed at once ---
start_hookd "$T_DIR/p.db"
t0=$(date +%s%N)
curl -s -o /dev/null --max-time 8 "https://127.0.0.1:$PORT/healthz"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 3000 ] && pass "a TLS handshake on the plain port is closed at once (${ms} ms, header_timeout is 10 s)" ||
	fail "a TLS handshake on the plain port is closed at once" "${ms} ms"
check_contains "... with a line that names the likely mistake" "$(cat "$HOOKD_LOG")" \
	"began with a TLS handshake: is the hook URI https:// while this port serves plain HTTP?"
python3 - "$PORT" <<'PY' >"$T_DIR/garbage.out"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"\x00\x01\x02\x03")
t = time.time()
s.settimeout(8)
got = b""
while True:
    k = s.recv(4096)
    if not k:
        break
    got += k
print(got.split(b"\r\n")[0].decode(), got.split(b"\r\n\r\n")[-1].decode(), int((time.time() - t) < 3))
PY
check "bytes that cannot begin a request: a 400 and closed at once too" "$(cat "$T_DIR/garbage.out")" \
	'HTTP/1.1 400 Bad Request {"detail":"not an HTTP request"} 1'
check "counted by reason" \
	"$(curl -s "http://127.0.0.1:$PORT/metrics" | grep -E 'lqs_hookd_connections_cut_total\{reason="(tls_on_plain_port|not_http)"\}' | awk '{print $2}' | paste -sd' ')" "1 1"
check "what a TLS client reads there: the classic sign of https:// against http" \
	"$(curl -s --max-time 5 "https://127.0.0.1:$PORT/healthz" 2>&1; curl -sS --max-time 5 "https://127.0.0.1:$PORT/healthz" 2>&1 | grep -o 'wrong version number')" \
	"wrong version number"
check "plain HTTP still served" "$(curl -s "http://127.0.0.1:$PORT/healthz")" '{"status":"ok"}'
finish
