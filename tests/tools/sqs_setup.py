"""Test helper for the SQS tests: queues in moto's server, messages in them,
counts out of them. usage: sqs_setup.py ENDPOINT COMMAND [ARGS...]
  queues VISIBILITY MAX_RECEIVES   create uploads + uploads-dlq; print the queue URL
  send FILE                        one message per line of FILE (the body)
  count QUEUE                      visible + in flight messages of QUEUE
  iamusers                         (moto with IAM checks after 3 actions) two users, the queue: both keys
"""
import json
import os
import sys

import boto3

ep, cmd = sys.argv[1], sys.argv[2]
sqs = boto3.client("sqs", endpoint_url=ep, region_name="us-east-1",
                   aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test-key"),
                   aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test-secret"))


def url(name):
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


if cmd == "iamusers":
    # moto checks signatures and policies once INITIAL_NO_AUTH_ACTION_COUNT
    # (3) actions are done: an administrator made with those three; with
    # its key, a user that may not delete messages, and the queue (1 s
    # visibility). Prints both keys.
    anon = boto3.client("iam", endpoint_url=ep, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x")
    keys = []

    def user(iam, name, actions):
        iam.create_user(UserName=name)
        k = iam.create_access_key(UserName=name)["AccessKey"]
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
        keys.extend([k["AccessKeyId"], k["SecretAccessKey"]])

    user(anon, "hookd", "*")
    admin = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id=keys[0], aws_secret_access_key=keys[1])
    user(boto3.client("iam", **admin), "nodelete", ["sqs:ReceiveMessage", "sqs:GetQueueAttributes"])
    boto3.client("sqs", **admin).create_queue(QueueName="uploads", Attributes={"VisibilityTimeout": "1"})
    print(" ".join(keys))
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
