#!/usr/bin/env bash
# SNS over HTTP(S): the signature of every message checked (versions 1 and
# 2) against the signing certificate, fetched over HTTPS from a trusted host
# only; the topic allow-list; a SubscriptionConfirmation confirmed by the
# daemon itself. The test is its own SNS: a CA, a host certificate for the
# mock over HTTPS, and a signing key, all made here with openssl.
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null || { echo "openssl is needed (make test installs it)"; exit 1; }
P="$T_DIR/pki"
mkdir -p "$P"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/ca.key" -out "$P/ca.pem" -days 2 -subj /CN=test-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$P/host.key" -out "$P/host.csr" -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$P/san"
openssl x509 -req -in "$P/host.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 2 -extfile "$P/san" \
	-out "$P/host.pem" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/sign.key" -out "$P/sign.pem" -days 2 -subj /CN=sns 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/other.key" -out "$P/other.pem" -days 2 -subj /CN=evil 2>/dev/null

# the "SNS" host: the signing certificate, and subscription confirmations
start_mock --tls-cert "$P/host.pem" --tls-key "$P/host.key" --static "/SimpleNotificationService-1.pem=$P/sign.pem"
SNS_HOST="https://127.0.0.1:$MOCK_PORT"
MOCK="$SNS_HOST"   # its control endpoints are on HTTPS too
curl() { command curl --cacert "$P/ca.pem" "$@"; }
export -f curl
export P

OBJ_TOKEN=obj-token
hide "$OBJ_TOKEN"
TOPIC=arn:aws:sns:eu-west-1:123456789012:uploads
cat >"$T_DIR/s.conf" <<CONF
[objects]
objects_secret = $OBJ_TOKEN
sns_topics = $TOPIC, arn:aws:sns:eu-west-1:123456789012:other
sns_cert_host = 127.0.0.1
sns_ca_file = $P/ca.pem

[watch all]
bucket = my-bucket
count = 0
quiet = 1h
CONF
# LogQS itself is not part of this: a closed port, so nothing leaves the host
HOOKD_ENV="LQS_API_URL=http://127.0.0.1:$(quiet_port)" start_hookd "$T_DIR/s.db" --config "$T_DIR/s.conf"

# sign JSON_WITHOUT_SIGNATURE VERSION KEY: the envelope with its Signature
sign() {
	local doc=$1 ver=$2 key=$3 alg=sha256 sig
	[ "$ver" = 1 ] && alg=sha1
	# piped, not captured: the string to sign ends in a newline
	sig=$(jq -j '(if .Type == "Notification" then ["Message","MessageId","Subject","Timestamp","TopicArn","Type"]
		else ["Message","MessageId","SubscribeURL","Timestamp","Token","TopicArn","Type"] end) as $k
		| . as $d | [$k[] | select($d[.] != null) | "\(.)\n\($d[.])\n"] | join("")' <<<"$doc" |
		openssl dgst -"$alg" -sign "$key" | base64 -w0)
	jq -c --arg s "$sig" --arg v "$ver" '. + {Signature: $s, SignatureVersion: $v}' <<<"$doc"
}
note() { # KEY SEQ [TOPIC] [CERT_URL]
	jq -n --arg m "$(s3_record "$1" "$2")" --arg t "${3:-$TOPIC}" --arg u "${4:-$SNS_HOST/SimpleNotificationService-1.pem}" \
		'{Type:"Notification",MessageId:"m-\($m | length)",TopicArn:$t,Subject:"Amazon S3 Notification",Message:$m,
		  Timestamp:"2024-05-01T10:00:00.000Z",SigningCertURL:$u,UnsubscribeURL:"https://x/"}'
}

CT=text/plain opost "$(sign "$(note a/b/v2.csv 01)" 2 "$P/sign.key")"
check "SignatureVersion 2 (SHA256withRSA): 202" "$CODE $(jq -r '.objects[0].key' <<<"$BODY")" "202 a/b/v2.csv"
CT=text/plain opost "$(sign "$(note a/b/v1.csv 02)" 1 "$P/sign.key")"
check "SignatureVersion 1 (SHA1withRSA): 202" "$CODE" 202
check "the certificate was fetched once (cached)" \
	"$(curl -s "$MOCK/_mock/requests" | jq '[.requests[] | select(.url == "/SimpleNotificationService-1.pem")] | length')" 1
tampered=$(sign "$(note a/b/t.csv 03)" 2 "$P/sign.key" | jq -c '.Message |= sub("t.csv"; "evil.csv")')
CT=text/plain opost "$tampered"
check "a changed Message: 403" "$CODE $(jq -r .detail <<<"$BODY")" "403 SNS signature does not verify"
CT=text/plain opost "$(sign "$(note a/b/o.csv 04)" 2 "$P/other.key")"
check "signed by another key: 403" "$CODE" 403
CT=text/plain opost "$(sign "$(note a/b/h.csv 05 "$TOPIC" "http://127.0.0.1:$MOCK_PORT/SimpleNotificationService-1.pem")" 2 "$P/sign.key")"
check "a certificate over plain HTTP: 403" "$CODE $(jq -r .detail <<<"$BODY")" "403 SigningCertURL is not an https:// URL"
CT=text/plain opost "$(sign "$(note a/b/x.csv 06 "$TOPIC" "https://sns.evil.example/x.pem")" 2 "$P/sign.key")"
check "a certificate from an untrusted host: 403" "$CODE $(jq -r .detail <<<"$BODY")" \
	"403 SigningCertURL names host sns.evil.example, not one matching sns_cert_host (127.0.0.1)"
CT=text/plain opost "$(sign "$(note a/b/n.csv 07 arn:aws:sns:eu-west-1:123456789012:nope)" 2 "$P/sign.key")"
check "a topic not allowed: 403" "$CODE" 403
check "only the two good messages were stored" "$(curl -s "$BASE/batches" | jq '[.data[].objects] | add')" 2

# --- a subscription confirmation, confirmed by the daemon itself ---
conf=$(jq -n --arg t "$TOPIC" --arg u "$SNS_HOST/target/?Action=ConfirmSubscription&TopicArn=x&Token=tok-1" \
	--arg c "$SNS_HOST/SimpleNotificationService-1.pem" \
	'{Type:"SubscriptionConfirmation",MessageId:"c1",Token:"tok-1",TopicArn:$t,Message:"You have chosen to subscribe",
	  SubscribeURL:$u,Timestamp:"2024-05-01T10:00:00.000Z",SigningCertURL:$c}')
CT=text/plain opost "$(sign "$conf" 2 "$P/sign.key")" -H 'x-amz-sns-message-type: SubscriptionConfirmation'
check "SubscriptionConfirmation: 200 confirmed" "$CODE $(jq -r .status <<<"$BODY")" "200 confirmed"
check "the daemon visited the SubscribeURL" \
	"$(curl -s "$MOCK/_mock/requests" | jq -r '[.requests[] | select(.path == "target/")] | length')" 1
check_contains "and logged it" "$(cat "$HOOKD_LOG")" "SNS subscription to $TOPIC confirmed"
bad=$(jq -c '.SubscribeURL = "https://sns.evil.example/?Action=ConfirmSubscription"' <<<"$conf")
CT=text/plain opost "$(sign "$bad" 2 "$P/sign.key")"
check "a SubscribeURL on an untrusted host is not visited: 502" "$CODE" 502
stop_hookd TERM

finish
