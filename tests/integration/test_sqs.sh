#!/usr/bin/env bash
# SQS, against a real implementation (moto's server mode): S3, SNS-wrapped
# and EventBridge bodies; a batch of 10 in one receive; a poison message that
# ends in the dead-letter queue after its redrive count; a message delivered
# twice and a kill -9 while messages are in flight (no double count, one
# trigger); the endpoint down for a while; check-sqs.
. "$(dirname "$0")/lib.sh"

python3 -c 'import moto.server, boto3' 2>/dev/null || { echo "moto and boto3 are needed (make test installs them)"; exit 1; }
MOTO_PORT=$(quiet_port)
start_moto() {
	python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$T_DIR/moto.log" 2>&1 &
	MOTO_PID=$!
	T_PIDS+=("$MOTO_PID")
	wait_until 20 curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/" || { echo "moto did not start"; cat "$T_DIR/moto.log"; exit 1; }
}
start_moto
EP="http://127.0.0.1:$MOTO_PORT"
setup() { python3 "$LQS_SRC/tests/tools/sqs_setup.py" "$EP" "$@"; }
Q=$(setup queues 2 2)
export AWS_ACCESS_KEY_ID=test-key AWS_SECRET_ACCESS_KEY=test-secret
hide test-secret

s3body() { printf '{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"my-bucket"},"object":{"key":"%s","size":1,"sequencer":"%s"}}}]}' "$1" "$2"; }
ebbody() { printf '{"version":"0","detail-type":"Object Created","source":"aws.s3","time":"2024-05-01T10:00:00Z","detail":{"bucket":{"name":"my-bucket"},"object":{"key":"%s","size":1,"sequencer":"%s"}}}' "$1" "$2"; }
snsbody() { jq -cn --arg m "$(s3body "$1" "$2")" '{Type:"Notification",MessageId:"x",TopicArn:"arn:aws:sns:us-east-1:1:t",Message:$m,Timestamp:"2024-05-01T10:00:00.000Z"}'; }

cat >"$T_DIR/q.conf" <<CONF
[watch runs]
bucket = my-bucket
count = 10
quiet = 1h

[sqs uploads]
queue_url = $Q
region = us-east-1
endpoint = $EP
wait = 1
CONF
out=$("$LQS_HOOKD" -c "$T_DIR/q.conf" check-sqs); rc=$?
check "check-sqs: the queue is reachable, the credentials work, a dead-letter queue is set" "$rc $out" \
	"0 OK: sqs uploads: $Q reachable with the environment credentials; 0 message(s) waiting; a dead-letter queue is set"

# --- three formats, ten messages, one receive; a poison one; one delivered twice ---
{
	for i in 1 2 3; do s3body "a/run1/s3-$i.csv" "s$i"; echo; done
	for i in 1 2 3; do snsbody "a/run1/sns-$i.csv" "n$i"; echo; done
	for i in 1 2 3; do ebbody "a/run1/eb-$i.csv" "e$i"; echo; done
	echo 'this is not an object event'
} >"$T_DIR/m1"
setup send "$T_DIR/m1"
s3body "a/run1/s3-1.csv" s1 >"$T_DIR/m2"; echo >>"$T_DIR/m2"
setup send "$T_DIR/m2"   # the first notification again, as at-least-once delivery may
start_hookd "$T_DIR/q.db" --config "$T_DIR/q.conf"
wait_until 20 bash -c "[ \$(python3 '$LQS_SRC/tests/tools/sqs_setup.py' '$EP' count uploads-dlq) = 1 ]" ||
	fail "the poison message reached the dead-letter queue"
batch=$(curl -s "$BASE/batches" | jq -c '.data[] | select(.prefix == "a/run1/")')
check "nine objects from S3, SNS and EventBridge bodies, the repeat counted once" \
	"$(jq -r '.objects' <<<"$batch") $(curl -s "$BASE/batches/$(jq -r .batch_id <<<"$batch")" | jq -c '[.keys[].key] | sort | .[0:3]')" \
	'9 ["a/run1/eb-1.csv","a/run1/eb-2.csv","a/run1/eb-3.csv"]'
check "the queue is drained (the stored ones deleted, the poison one moved)" "$(setup count uploads)" 0
metric() { curl -s "$BASE/metrics" | awk -v s="$1" '$1 == s {print $2}'; }
check "metrics: received 11 + 1 (the poison one twice), deleted 10, left twice" \
	"$(metric 'lqs_hookd_sqs_messages_received_total{queue="uploads"}') $(metric 'lqs_hookd_sqs_messages_deleted_total{queue="uploads"}') $(metric 'lqs_hookd_sqs_messages_left_total{queue="uploads",reason="unreadable"}')" \
	"12 10 2"
check_contains "the poison message is logged with its id" "$(cat "$HOOKD_LOG")" "is not an object event; left for the queue's redrive policy"

# --- kill -9 while messages are in flight: nothing counted twice, one trigger ---
for i in $(seq 1 10); do s3body "b/run2/f$i.csv" "k$i"; echo; done >"$T_DIR/m3"
setup send "$T_DIR/m3"
stop_hookd KILL
start_hookd "$T_DIR/q.db" --config "$T_DIR/q.conf"
wait_until 20 bash -c "curl -s '$BASE/batches' | jq -e '[.data[] | select(.prefix == \"b/run2/\" and .state == \"closed\")] | length == 1'" ||
	fail "the second run's batch closed"
check "ten objects, one batch, one trigger" \
	"$(curl -s "$BASE/batches" | jq -r '[.data[] | select(.prefix == "b/run2/")] | [length, .[0].objects, .[0].close_reason] | @tsv') $(all_events process_type=batch | jq -r 'select(.event.prefix == "b/run2/") | .event_id' | wc -l)" \
	"1	10	count 1"
wait_until 10 bash -c "[ \$(python3 '$LQS_SRC/tests/tools/sqs_setup.py' '$EP' count uploads) = 0 ]" || fail "drained again"

# --- the endpoint down for a while: errors counted, backed off, then it goes on ---
kill "$MOTO_PID"; wait "$MOTO_PID" 2>/dev/null
sleep 3
check "network errors counted while SQS is down" "$([ "$(metric 'lqs_hookd_sqs_poll_errors_total{queue="uploads",kind="network"}')" -ge 1 ] && echo yes)" yes
calls=$(metric 'lqs_hookd_sqs_poll_errors_total{queue="uploads",kind="network"}')
[ "$calls" -le 4 ] && pass "it backs off (${calls} tries in 3 s)" || fail "it backs off" "$calls tries in 3 s"
start_moto
Q=$(setup queues 2 2)
for i in 1 2; do s3body "c/run3/f$i.csv" "d$i"; echo; done >"$T_DIR/m4"
setup send "$T_DIR/m4"
wait_until 40 bash -c "curl -s '$BASE/batches' | jq -e '[.data[] | select(.prefix == \"c/run3/\") | .objects] == [2]'" ||
	fail "receiving again once SQS is back"
check_contains "it said so" "$(cat "$HOOKD_LOG")" '"sqs uploads: receiving"'
stop_hookd TERM
check "SIGTERM: exit 0" "$HOOKD_RC" 0

# --- the store refuses (max_store_size reached): the messages are held,
#     hidden, not re-received (the redrive count of 2 is not reached), and
#     stored once the limit is lifted; SIGTERM while holding hands them back ---
long=$(printf 'k%.0s' $(seq 1 900))
for i in $(seq 1 10); do s3body "e/run5/$long-$i.csv" "h$i"; echo; done >"$T_DIR/m6"
cp "$T_DIR/q.conf" "$T_DIR/full.conf"
sed -i 's/^\[watch runs\]$/[store]\nmax_store_size = 4096\n\n[watch runs]/' "$T_DIR/full.conf"
# all ten on the queue before the first receive (a receive while they are
# being sent may take some of them only)
setup send "$T_DIR/m6"
start_hookd "$T_DIR/f.db" --config "$T_DIR/full.conf"
wait_until 15 grep -q "the store refused the records of 10 message(s)" "$HOOKD_LOG" || fail "the store refused them"
sleep 7   # longer than the queue's visibility timeout (2 s) x its redrive count (2)
check "held: counted once, tried again, nothing in the dead-letter queue, all still on the queue" \
	"$(metric 'lqs_hookd_sqs_messages_left_total{queue="uploads",reason="store_refused"}') $([ "$(metric 'lqs_hookd_sqs_poll_errors_total{queue="uploads",kind="store"}')" -ge 3 ] && echo retried) $(setup count uploads-dlq) $(setup count uploads) $(metric 'lqs_hookd_sqs_messages_received_total{queue="uploads"}')" \
	"10 retried 0 10 10"
sed -i 's/^max_store_size = 4096$/max_store_size = 0/' "$T_DIR/full.conf"
kill -HUP "$HOOKD_PID"
wait_until 40 bash -c "[ \$(python3 '$LQS_SRC/tests/tools/sqs_setup.py' '$EP' count uploads) = 0 ]" || fail "stored once the limit was lifted"
check "the limit lifted: one batch of ten, received once, nothing in the dead-letter queue" \
	"$(curl -s "$BASE/batches" | jq -r '[.data[] | select(.prefix == "e/run5/")] | [length, .[0].objects] | @tsv') $(metric 'lqs_hookd_sqs_messages_received_total{queue="uploads"}') $(setup count uploads-dlq)" \
	"1	10 10 0"
check_contains "it said so" "$(cat "$HOOKD_LOG")" "the store took the 10 held message(s)"
for i in $(seq 1 10); do s3body "e/run6/$long-$i.csv" "j$i"; echo; done >"$T_DIR/m7"
sed -i 's/^max_store_size = 0$/max_store_size = 4096/' "$T_DIR/full.conf"
kill -HUP "$HOOKD_PID"
sleep 1
setup send "$T_DIR/m7"
# (sent while the poller waits: it may receive them in more than one go)
wait_until 15 bash -c "[ \$(grep -c 'the store refused the records of [0-9]* message(s)' '$HOOKD_LOG') -ge 2 ]" || fail "refused again"
stop_hookd TERM
check "SIGTERM while holding: exit 0, the messages handed back (visible at once)" \
	"$HOOKD_RC $(python3 - "$EP" <<'PY'
import boto3, sys
s = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1")
print(s.get_queue_attributes(QueueUrl=s.get_queue_url(QueueName="uploads")["QueueUrl"],
      AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
PY
)" "0 10"
grep -q "stopping: [0-9]* message(s) the store refused are handed back to the queue" "$HOOKD_LOG" &&
	pass "... and said so" || fail "... and said so"

# --- wrong credentials: moto with its IAM checks on, so signatures count ---
kill "$MOTO_PID"; wait "$MOTO_PID" 2>/dev/null
INITIAL_NO_AUTH_ACTION_COUNT=3 python3 -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$T_DIR/moto.log" 2>&1 &
MOTO_PID=$!
T_PIDS+=("$MOTO_PID")
# not probed with a request: every request counts against the three
wait_until 20 bash -c "ss -Htln '( sport = :$MOTO_PORT )' | grep -q ." || fail "moto with IAM checks"
sleep 0.5
read -r KID KSECRET NDID NDSECRET < <(setup iamusers)
hide "$KSECRET" "$NDSECRET"
out=$(AWS_ACCESS_KEY_ID=AKIAWRONGWRONGWRONG AWS_SECRET_ACCESS_KEY=nope "$LQS_HOOKD" -c "$T_DIR/q.conf" check-sqs); rc=$?
check_contains "check-sqs with a wrong key: refused, and says what to check" "$rc $out" \
	"1 FAILED: sqs uploads: SQS GetQueueAttributes: HTTP 403"
check_contains "... the credentials and the IAM policy" "$out" "(check the credentials and the IAM policy)"
out=$(AWS_ACCESS_KEY_ID=$KID AWS_SECRET_ACCESS_KEY=$KSECRET "$LQS_HOOKD" -c "$T_DIR/q.conf" check-sqs); rc=$?
check "check-sqs with the right key: the signature is checked and accepted" "$rc ${out:0:20}" "0 OK: sqs uploads: htt"
AWS_ACCESS_KEY_ID=AKIAWRONGWRONGWRONG AWS_SECRET_ACCESS_KEY=nope start_hookd "$T_DIR/w.db" --config "$T_DIR/q.conf"
wait_until 10 bash -c "curl -s '$BASE/metrics' | grep -q 'lqs_hookd_sqs_poll_errors_total{queue=\"uploads\",kind=\"auth\"}'" ||
	fail "auth errors counted"
check_contains "/readyz warns" "$(curl -s "$BASE/readyz")" "sqs uploads: SQS ReceiveMessage: HTTP 403"
sleep 2
check "refused: logged once, tried again a minute later (not spinning)" \
	"$(grep -c 'AWS refused the credentials' "$HOOKD_LOG") $(metric 'lqs_hookd_sqs_poll_errors_total{queue="uploads",kind="auth"}')" "1 1"
stop_hookd TERM

# --- received and stored, never deleted (the key may not delete), kill -9,
#     then the right key: redelivered, recognised, counted once, one trigger ---
for i in $(seq 1 10); do s3body "d/run4/f$i.csv" "r$i"; echo; done >"$T_DIR/m5"
AWS_ACCESS_KEY_ID=$KID AWS_SECRET_ACCESS_KEY=$KSECRET setup send "$T_DIR/m5"
AWS_ACCESS_KEY_ID=$NDID AWS_SECRET_ACCESS_KEY=$NDSECRET start_hookd "$T_DIR/r.db" --config "$T_DIR/q.conf"
wait_until 15 bash -c "curl -s '$BASE/batches' | jq -e '[.data[] | select(.prefix == \"d/run4/\" and .state == \"closed\")] | length == 1'" ||
	fail "stored without a delete"
check_contains "the refused delete is said" "$(cat "$HOOKD_LOG")" "SQS DeleteMessageBatch: HTTP 403"
check "nothing was deleted" "$(AWS_ACCESS_KEY_ID=$KID AWS_SECRET_ACCESS_KEY=$KSECRET setup count uploads)" 10
stop_hookd KILL
AWS_ACCESS_KEY_ID=$KID AWS_SECRET_ACCESS_KEY=$KSECRET start_hookd "$T_DIR/r.db" --config "$T_DIR/q.conf"
wait_until 20 bash -c "[ \$(AWS_ACCESS_KEY_ID=$KID AWS_SECRET_ACCESS_KEY=$KSECRET python3 '$LQS_SRC/tests/tools/sqs_setup.py' '$EP' count uploads) = 0 ]" ||
	fail "the redelivered messages were deleted"
check "redelivered after kill -9: all ten recognised as duplicates" \
	"$(curl -s "$BASE/metrics" | awk '$1 == "lqs_hookd_objects_received_total{outcome=\"duplicate\"}" {print $2}')" 10
check "still one batch of ten, one trigger" \
	"$(curl -s "$BASE/batches" | jq -r '[.data[] | select(.prefix == "d/run4/")] | [length, .[0].objects] | @tsv') $(all_events process_type=batch | jq -r 'select(.event.prefix == "d/run4/") | .event_id' | wc -l)" \
	"1	10 1"
stop_hookd TERM

# --- no key anywhere: the instance role, through IMDSv2 (token first) ---
start_mock --imds "$KID:$KSECRET"
printf '\n[aws]\nimds_endpoint = %s\n' "$MOCK" >>"$T_DIR/q.conf"
out=$(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$LQS_HOOKD" -c "$T_DIR/q.conf" check-sqs); rc=$?
check "check-sqs with the instance role's credentials" "$rc ${out:0:19} $(grep -o 'with the [a-z]* credentials' <<<"$out")" \
	"0 OK: sqs uploads: ht with the imds credentials"
check "IMDSv2: a session token first, then the role, then its credentials, each with the token" \
	"$(curl -s "$MOCK/_mock/requests" | jq -c '[.requests[] | [.method, .path, (.authorization != null)]]')" \
	'[["PUT","latest/api/token",false],["GET","latest/meta-data/iam/security-credentials/",true],["GET","latest/meta-data/iam/security-credentials/hookd-role",true]]'

finish
