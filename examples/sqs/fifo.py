"""A FIFO queue with boto3: message groups, de-duplication ids and content-based
de-duplication. Only the endpoint differs from a program for AWS (SQS_ENDPOINT)."""

import os
import sys

import boto3

sqs = boto3.client("sqs", endpoint_url=os.environ["SQS_ENDPOINT"])

url = sqs.create_queue(
    QueueName="example-jobs.fifo",
    Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"},
)["QueueUrl"]

first = sqs.send_message(
    QueueUrl=url, MessageBody="a1", MessageGroupId="a", MessageDeduplicationId="a1"
)
# The same de-duplication id within five minutes is accepted and not stored again.
repeat = sqs.send_message(
    QueueUrl=url, MessageBody="a1 again", MessageGroupId="a", MessageDeduplicationId="a1"
)
assert repeat["MessageId"] == first["MessageId"]
assert "SequenceNumber" in first
sqs.send_message_batch(
    QueueUrl=url,
    Entries=[
        {"Id": "a2", "MessageBody": "a2", "MessageGroupId": "a", "MessageDeduplicationId": "a2"},
        {"Id": "b1", "MessageBody": "b1", "MessageGroupId": "b", "MessageDeduplicationId": "b1"},
        {"Id": "a3", "MessageBody": "a3", "MessageGroupId": "a", "MessageDeduplicationId": "a3"},
    ],
)

# One message of a group is in flight at a time; order holds within a group.
order = []
while len(order) < 4:
    got = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2, AttributeNames=["All"]
    ).get("Messages", [])
    for m in got:
        order.append((m["Attributes"]["MessageGroupId"], m["Body"]))
        assert m["Attributes"]["MessageDeduplicationId"] == m["Body"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
assert [b for g, b in order if g == "a"] == ["a1", "a2", "a3"], order
assert [b for g, b in order if g == "b"] == ["b1"], order

# Without a de-duplication id the queue must de-duplicate by content.
try:
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="a")
    raise SystemExit("a FIFO send without a de-duplication id was accepted")
except sqs.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidParameterValue", e.response

content = sqs.create_queue(
    QueueName="example-content.fifo",
    Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
)["QueueUrl"]
one = sqs.send_message(QueueUrl=content, MessageBody="same", MessageGroupId="g")
two = sqs.send_message(QueueUrl=content, MessageBody="same", MessageGroupId="g")
assert one["MessageId"] == two["MessageId"]

# A receive retried with its ReceiveRequestAttemptId (as after a lost answer) gets the
# same message and receipt handle, not nothing (the group is locked by the first).
first = sqs.receive_message(QueueUrl=content, ReceiveRequestAttemptId="try-1", WaitTimeSeconds=2)
retry = sqs.receive_message(QueueUrl=content, ReceiveRequestAttemptId="try-1", WaitTimeSeconds=1)
assert [m["ReceiptHandle"] for m in retry["Messages"]] == [
    m["ReceiptHandle"] for m in first["Messages"]
], (first, retry)
assert "Messages" not in sqs.receive_message(QueueUrl=content, ReceiveRequestAttemptId="try-2")
sqs.delete_message(QueueUrl=content, ReceiptHandle=first["Messages"][0]["ReceiptHandle"])

for u in (url, content):
    sqs.delete_queue(QueueUrl=u)
print("fifo: ok", file=sys.stderr)
