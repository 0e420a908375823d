#!/usr/bin/env bash
# POST /objects: every shape S3 object events arrive in (S3 notification,
# EventBridge, SNS envelope and raw delivery), each key encoding, the
# credentials, field-precise errors, duplicates, watches and every way a
# batch closes, exactly once, across kill -9.
. "$(dirname "$0")/lib.sh"

TOK=obj-token
# LogQS is not part of this test: a closed port, so nothing leaves the host
NO_LQS=$(quiet_port)
cat >"$T_DIR/o.conf" <<CONF
[objects]
objects_secret = $TOK
objects_basic_user = eb
objects_basic_password = eb-pass

[watch inst]
bucket = my-bucket
prefix = inst/
ignore = inst/scratch/*
count = 3
quiet = 1h

[watch slow]
bucket = my-bucket
prefix = slow/
count = 0
quiet = 1s

[watch capped]
bucket = my-bucket
prefix = capped/
count = 0
quiet = 1h
max_age = 1s
CONF
hide "$TOK" eb-pass
HOOKD_ENV="LQS_API_URL=http://127.0.0.1:$NO_LQS" start_hookd "$T_DIR/o.db" --config "$T_DIR/o.conf"
OAUTH="Authorization: Bearer $TOK"

# opost BODY [curl args...]: POST /objects with the token; CODE and BODY.
eb() { # KEY(raw) SEQUENCER
	printf '{"version":"0","id":"5f1e","detail-type":"Object Created","source":"aws.s3","account":"1","time":"2024-05-01T10:00:00Z","region":"eu-west-1","resources":["arn:aws:s3:::my-bucket"],"detail":{"version":"0","bucket":{"name":"my-bucket"},"object":{"key":"%s","size":5,"etag":"e1","sequencer":"%s"},"reason":"PutObject"}}' "$1" "$2"
}
batch_of() { jq -r '.objects[0].batch_id' <<<"$BODY"; }

# --- credentials, media type, size, errors ---
opost "$(s3_record inst/a.csv 01)"
check "no Authorization: 401" "$CODE $(jq -r .detail <<<"$BODY")" "401 Authorization header is missing"
opost "$(s3_record inst/a.csv 01)" -H "Authorization: Bearer wrong"
check "a wrong token: 401" "$CODE" 401
opost "$(s3_record inst/a.csv 01)" -H "Authorization: Basic $(printf 'eb:nope' | base64)"
check "a wrong Basic password: 401" "$CODE" 401
CT=application/xml opost "$(s3_record inst/a.csv 01)" -H "$OAUTH"
check "application/xml: 415" "$CODE" 415
opost '{"Records":[' -H "$OAUTH"
check "not JSON: 400" "$CODE" 400
opost '{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"my-bucket"},"object":{"key":"a%2"}}}]}' -H "$OAUTH"
check "a malformed key: 422 naming the field" "$CODE $(jq -c '.detail[0].loc' <<<"$BODY")" \
	'422 ["body","Records",0,"s3","object","key"]'
opost '{"hello":1}' -H "$OAUTH"
check "not an object event: 422" "$CODE $(jq -c '.detail[0].loc' <<<"$BODY")" '422 ["body","Records"]'
opost "$(head -c 70000 /dev/zero | tr '\0' ' ')" -H "$OAUTH"
check "over max_body: 413" "$CODE" 413
CT=text/plain opost '{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T10:00:00Z","Bucket":"my-bucket"}' -H "$OAUTH"
check "s3:TestEvent: 200, ignored" "$CODE $(jq -r .status <<<"$BODY")" "200 ignored"
check "nothing rejected was stored" "$(curl -s "$BASE/batches" | jq '.data | length')" 0

# --- each format and its key encoding; a batch of 3 closes on count ---
opost "$(s3_record 'inst/exp1/a+b%2Bc%3D1%25+%C3%A9.csv' 01)" -H "$OAUTH"
check "S3 notification (bearer token): 202" "$CODE $(jq -r '.objects[0] | [.outcome, .key] | @tsv' <<<"$BODY")" \
	"202 stored	inst/exp1/a b+c=1% é.csv"
B1=$(batch_of)
opost "$(s3_record 'inst/exp1/a+b%2Bc%3D1%25+%C3%A9.csv' 01)" -H "$OAUTH"
check "the same notification again: 200 duplicate" "$CODE $(jq -r '.objects[0].outcome' <<<"$BODY")" "200 duplicate"
opost "$(eb 'inst/exp1/r a+w%20.csv' 02)" -H "Authorization: Basic $(printf 'eb:eb-pass' | base64)"
check "EventBridge (Basic, raw key): 202, same batch" "$CODE $(jq -r '.objects[0] | [.key, .batch_id] | @tsv' <<<"$BODY")" \
	"202 inst/exp1/r a+w%20.csv	$B1"
sns=$(jq -n --arg m "$(s3_record 'inst/exp1/sub/d.csv' 03)" '{Type:"Notification",MessageId:"m1",TopicArn:"arn:aws:sns:eu-west-1:1:t",Subject:"Amazon S3 Notification",Message:$m,Timestamp:"2024-05-01T10:00:00Z"}')
CT=text/plain opost "$sns" -H "$OAUTH" -H 'x-amz-sns-message-type: Notification'
check "an SNS envelope from a topic not in sns_topics: 403, nothing stored" "$CODE $(jq -r .detail <<<"$BODY")" \
	"403 SNS topic arn:aws:sns:eu-west-1:1:t is not in sns_topics"
CT=text/plain opost "$(s3_record 'inst/exp1/sub/d.csv' 03)" -H "$OAUTH" -H 'x-amz-sns-rawdelivery: true'
check "SNS raw delivery (text/plain): 202, the third object closes the batch" \
	"$CODE $(jq -r '.objects[0] | [.batch_id, (.closed_batch_trigger != null)] | @tsv' <<<"$BODY")" "202 $B1	true"
get "/batches/$B1"
check "batch: closed on count, 3 keys as S3 holds them" \
	"$(jq -c '[.state, .close_reason, .objects, .path, [.keys[].key]]' <<<"$BODY")" \
	'["closed","count",3,"s3://my-bucket/inst/exp1/",["inst/exp1/a b+c=1% é.csv","inst/exp1/r a+w%20.csv","inst/exp1/sub/d.csv"]]'
trig=$(jq -r .trigger_event_id <<<"$BODY")
get "/events/$trig"
check "its trigger event: the batch, its keys (no trigger: finished, not routed)" \
	"$(jq -c '[.source, .event.reason, .event.count, .event.objects[2].key, .state, .result.status]' <<<"$BODY")" \
	'["batch","count",3,"inst/exp1/sub/d.csv","completed","not_routed"]'
opost "$(s3_record 'inst/exp1/e.csv' 04)" -H "$OAUTH"
check "the next object opens the next batch" "$(batch_of | grep -vc "$B1")" 1
opost "$(s3_record 'inst/exp2/raw.csv' 05)" -H "$OAUTH"
check "another folder: 202" "$CODE" 202

# --- marker, ignore, no watch, removals ---
opost "$(s3_record 'inst/exp2/_SUCCESS' 06)" -H "$OAUTH"
check "the marker closes its folder's batch at once" "$CODE $(jq -r '.objects[0].outcome' <<<"$BODY")" "202 marker"
get "/batches/$(batch_of)"
check "closed on the marker; the marker is not one of its objects" \
	"$(jq -c '[.close_reason, .objects, [.keys[] | .role]]' <<<"$BODY")" '["marker",1,["member","marker"]]'
opost "$(s3_record 'inst/scratch/x.csv' 07)" -H "$OAUTH"
check "an ignored path matches no watch: stored, not routed" "$(jq -r '.objects[0].outcome' <<<"$BODY")" not_routed
opost "$(s3_record 'elsewhere/x.csv' 08)" -H "$OAUTH"
check "no watch: stored, not routed" "$(jq -r '.objects[0].outcome' <<<"$BODY")" not_routed
opost "$(s3_record 'inst/exp1/e.csv' 09 ObjectRemoved:Delete)" -H "$OAUTH"
check "a removal the watch does not take: not routed" "$(jq -r '.objects[0].outcome' <<<"$BODY")" not_routed

# --- timers: quiet, max_age ---
opost "$(s3_record 'slow/run1/a.csv' 10)" -H "$OAUTH"
SLOW=$(batch_of)
opost "$(s3_record 'capped/run1/a.csv' 11)" -H "$OAUTH"
CAPPED=$(batch_of)
sleep 0.6
opost "$(s3_record 'capped/run1/b.csv' 12)" -H "$OAUTH"
wait_until 5 bash -c "curl -s '$BASE/batches/$SLOW' | jq -e '.state == \"closed\"'" || fail "quiet batch closed"
wait_until 5 bash -c "curl -s '$BASE/batches/$CAPPED' | jq -e '.state == \"closed\"'" || fail "max_age batch closed"
check "quiet: closed a second after its last object" "$(curl -s "$BASE/batches/$SLOW" | jq -r '[.close_reason, .objects] | @tsv')" "quiet	1"
check "max_age: closed a second after its first object, objects kept coming" \
	"$(curl -s "$BASE/batches/$CAPPED" | jq -r '[.close_reason, .objects] | @tsv')" "max_age	2"
check "GET /batches?state=open" "$(curl -s "$BASE/batches?state=open" | jq -r '[.data[].prefix] | join(",")')" "inst/exp1/"
check "metric: batches closed by reason" \
	"$(curl -s "$BASE/metrics" | grep -E '^lqs_hookd_batches_closed_total' | sort | tr '\n' ' ')" \
	'lqs_hookd_batches_closed_total{reason="count"} 1 lqs_hookd_batches_closed_total{reason="marker"} 1 lqs_hookd_batches_closed_total{reason="max_age"} 1 lqs_hookd_batches_closed_total{reason="quiet"} 1 '
out=$("$LQS_HOOKD" --listen "127.0.0.1:$PORT" batches --state open)
check "CLI: batches --state open" "$(tail -n +2 <<<"$out" | awk '{print $2, $3, $4, $NF}')" "open inst 1 s3://my-bucket/inst/exp1/"
check "CLI: batch ID" "$("$LQS_HOOKD" --listen "127.0.0.1:$PORT" batch "$SLOW" | jq -r '[.close_reason, .keys[0].key] | @tsv')" \
	"quiet	slow/run1/a.csv"
check "metric: batches open" "$(curl -s "$BASE/metrics" | awk '$1 == "lqs_hookd_batches_open" {print $2}')" 1

# --- kill -9 after 3 of 5 objects, then the rest: one trigger, 5 keys ---
stop_hookd TERM
sed -i 's/^count = 3$/count = 5/' "$T_DIR/o.conf"
HOOKD_ENV="LQS_API_URL=http://127.0.0.1:$NO_LQS" start_hookd "$T_DIR/k.db" --config "$T_DIR/o.conf"
for i in 1 2 3; do opost "$(s3_record "inst/crash/f$i.csv" "c$i")" -H "$OAUTH"; done
check "3 of 5 stored" "$CODE" 202
CRASH=$(batch_of)
stop_hookd KILL
HOOKD_ENV="LQS_API_URL=http://127.0.0.1:$NO_LQS" start_hookd "$T_DIR/k.db" --config "$T_DIR/o.conf"
opost "$(s3_record "inst/crash/f3.csv" "c3")" -H "$OAUTH"
check "after the crash, a notification seen before is still a duplicate" "$CODE" 200
for i in 4 5; do opost "$(s3_record "inst/crash/f$i.csv" "c$i")" -H "$OAUTH"; done
get "/batches/$CRASH"
check "one batch, closed on count with the 5 keys" "$(jq -c '[.close_reason, .objects, [.keys[].key]]' <<<"$BODY")" \
	'["count",5,["inst/crash/f1.csv","inst/crash/f2.csv","inst/crash/f3.csv","inst/crash/f4.csv","inst/crash/f5.csv"]]'
check "exactly one trigger event for it" \
	"$(all_events process_type=batch | jq -r --arg b "$CRASH" 'select(.event.batch_id == $b) | .event_id' | wc -l)" 1

# --- kill -9 with a batch open whose quiet time passes while down ---
opost "$(s3_record 'slow/run2/a.csv' 20)" -H "$OAUTH"
DOWN=$(batch_of)
stop_hookd KILL
sleep 1.2
HOOKD_ENV="LQS_API_URL=http://127.0.0.1:$NO_LQS" start_hookd "$T_DIR/k.db" --config "$T_DIR/o.conf"
wait_until 5 bash -c "curl -s '$BASE/batches/$DOWN' | jq -e '.state == \"closed\"'" || fail "closed after the restart"
check "closed at start, once" \
	"$(all_events process_type=batch | jq -r --arg b "$DOWN" 'select(.event.batch_id == $b) | .event.reason' | tr '\n' ' ')" "quiet "
stop_hookd TERM
check "SIGTERM: exit 0" "$HOOKD_RC" 0

# --- no credentials configured: closed, and said so ---
printf '[watch w]\nbucket = my-bucket\n' >"$T_DIR/n.conf"
HOOKD_ENV="LQS_API_URL=http://127.0.0.1:$NO_LQS" start_hookd "$T_DIR/n.db" --config "$T_DIR/n.conf"
opost "$(s3_record a.csv 01)" -H "$OAUTH"
check "no objects_secret: 401 saying what to set" "$CODE $(jq -r .detail <<<"$BODY")" \
	"401 no credentials are configured for this path (objects_secret, or objects_basic_user and objects_basic_password)"
stop_hookd TERM

finish
