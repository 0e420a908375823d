"""Test helper for the SQS tests: queues in moto's server, messages in them,
counts out of them. usage: sqs_setup.py ENDPOINT COMMAND [ARGS...]
  queues VISIBILITY MAX_RECEIVES   create uploads + uploads-dlq; print the queue URL
  send FILE                        one message per line of FILE (the body)
  count QUEUE                      visible + in flight messages of QUEUE
  iamuser                          (moto with IAM checks) a user, its key, the queue: print the key
"""
import json
import sys

import boto3

ep, cmd = sys.argv[1], sys.argv[2]
sqs = boto3.client("sqs", endpoint_url=ep, region_name="us-east-1", aws_access_key_id="test-key",
                   aws_secret_access_key="test-secret")


def url(name):
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


if cmd == "iamuser":
    # moto checks signatures once INITIAL_NO_AUTH_ACTION_COUNT actions are done:
    # a user with a key that may do anything, and the queue, made before that
    iam = boto3.client("iam", endpoint_url=ep, region_name="us-east-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    iam.create_user(UserName="hookd")
    k = iam.create_access_key(UserName="hookd")["AccessKey"]
    iam.put_user_policy(UserName="hookd", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    s = boto3.client("sqs", endpoint_url=ep, region_name="us-east-1", aws_access_key_id=k["AccessKeyId"],
                     aws_secret_access_key=k["SecretAccessKey"])
    s.create_queue(QueueName="uploads")
    print(k["AccessKeyId"], k["SecretAccessKey"])
elif cmd == "queues":
    dlq = sqs.create_queue(QueueName="uploads-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    q = sqs.create_queue(QueueName="uploads", Attributes={
        "VisibilityTimeout": sys.argv[3],
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": sys.argv[4]})})["QueueUrl"]
    print(q)
elif cmd == "send":
    q = url("uploads")
    with open(sys.argv[3]) as f:
        bodies = [line.rstrip("\n") for line in f if line.strip()]
    for i in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=q, Entries=[{"Id": str(k), "MessageBody": b}
                                                     for k, b in enumerate(bodies[i:i + 10])])
elif cmd == "count":
    a = sqs.get_queue_attributes(QueueUrl=url(sys.argv[3]), AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    print(int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]))
