"""Dead-letter queues with boto3: a redrive policy, the sources of a dead-letter queue,
and a message move task back. Only the endpoint differs (SQS_ENDPOINT)."""

import json
import os
import sys
import time

import boto3

sqs = boto3.client("sqs", endpoint_url=os.environ["SQS_ENDPOINT"])

dlq = sqs.create_queue(QueueName="example-payments-dlq")["QueueUrl"]
dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
    "QueueArn"
]
source = sqs.create_queue(
    QueueName="example-payments",
    Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    },
)["QueueUrl"]
policy = json.loads(
    sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["RedrivePolicy"])["Attributes"][
        "RedrivePolicy"
    ]
)
assert policy == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}, policy
assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [source]

sqs.send_message(QueueUrl=source, MessageBody="card declined")
# Received twice and never deleted: the third receive finds it in the dead-letter queue.
for _ in range(2):
    [m] = sqs.receive_message(QueueUrl=source, WaitTimeSeconds=5, VisibilityTimeout=0)[
        "Messages"
    ]
assert "Messages" not in sqs.receive_message(QueueUrl=source, WaitTimeSeconds=1)
[dead] = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=5, AttributeNames=["All"])[
    "Messages"
]
assert dead["Body"] == "card declined"
assert dead["Attributes"]["DeadLetterQueueSourceArn"].endswith(":example-payments")
sqs.change_message_visibility(QueueUrl=dlq, ReceiptHandle=dead["ReceiptHandle"], VisibilityTimeout=0)

# Move it back to where it came from.
handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
assert handle
deadline = time.time() + 20
while True:
    [task] = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1)["Results"]
    if task["Status"] == "COMPLETED":
        break
    assert time.time() < deadline, task
    time.sleep(0.2)
assert task["ApproximateNumberOfMessagesMoved"] == 1, task
[back] = sqs.receive_message(QueueUrl=source, WaitTimeSeconds=5)["Messages"]
assert back["Body"] == "card declined"
sqs.delete_message(QueueUrl=source, ReceiptHandle=back["ReceiptHandle"])

# The policy can be removed.
sqs.set_queue_attributes(QueueUrl=source, Attributes={"RedrivePolicy": ""})
assert sqs.list_dead_letter_source_queues(QueueUrl=dlq).get("queueUrls", []) == []

# A dead-letter queue can name the queues allowed to use it.
source_arn = sqs.get_queue_attributes(QueueUrl=source, AttributeNames=["QueueArn"])["Attributes"][
    "QueueArn"
]
allow = {"redrivePermission": "byQueue", "sourceQueueArns": [source_arn]}
sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": json.dumps(allow)})
shown = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["RedriveAllowPolicy"])["Attributes"]
assert json.loads(shown["RedriveAllowPolicy"]) == allow, shown
other = sqs.create_queue(QueueName="example-refunds")["QueueUrl"]
redrive = {"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})}
try:
    sqs.set_queue_attributes(QueueUrl=other, Attributes=redrive)
    raise AssertionError("a queue the dead-letter queue does not allow used it")
except sqs.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] in ("InvalidAttributeValue", "InvalidParameterValue"), e.response
sqs.set_queue_attributes(QueueUrl=source, Attributes=redrive)
sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": json.dumps({"redrivePermission": "allowAll"})})
sqs.set_queue_attributes(QueueUrl=other, Attributes=redrive)
assert sorted(sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]) == sorted([source, other])
sqs.delete_queue(QueueUrl=other)
for u in (source, dlq):
    sqs.delete_queue(QueueUrl=u)
print("dead_letter: ok", file=sys.stderr)
