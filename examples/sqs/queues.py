"""A standard SQS queue with boto3, as its documentation shows it used.

Only the endpoint differs from a program written for AWS: it comes from SQS_ENDPOINT.
Credentials and region come from the usual AWS_* environment variables.
"""

import hashlib
import os
import sys

import boto3

sqs = boto3.client("sqs", endpoint_url=os.environ["SQS_ENDPOINT"])

# Create a queue with attributes; creating it again with the same ones is a no-op.
url = sqs.create_queue(
    QueueName="example-orders",
    Attributes={"VisibilityTimeout": "30", "ReceiveMessageWaitTimeSeconds": "1"},
)["QueueUrl"]
assert sqs.create_queue(QueueName="example-orders", Attributes={"VisibilityTimeout": "30"})[
    "QueueUrl"
] == url
assert sqs.get_queue_url(QueueName="example-orders")["QueueUrl"] == url
assert url in sqs.list_queues(QueueNamePrefix="example-")["QueueUrls"]

# Send with message attributes of every data type; boto3 checks the MD5 digests.
sent = sqs.send_message(
    QueueUrl=url,
    MessageBody="order 1: 2 x widget",
    DelaySeconds=0,
    MessageAttributes={
        "customer": {"DataType": "String", "StringValue": "ada"},
        "total": {"DataType": "Number", "StringValue": "19.90"},
        "signature": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe"},
        "region": {"DataType": "String.eu", "StringValue": "eu-west"},
    },
)
assert sent["MD5OfMessageBody"] == hashlib.md5(b"order 1: 2 x widget").hexdigest()

# Long-poll receive with attribute selection.
got = sqs.receive_message(
    QueueUrl=url,
    MaxNumberOfMessages=10,
    WaitTimeSeconds=5,
    AttributeNames=["All"],
    MessageAttributeNames=["All"],
)["Messages"]
assert len(got) == 1, got
message = got[0]
assert message["MessageId"] == sent["MessageId"]
assert message["Body"] == "order 1: 2 x widget"
assert message["MessageAttributes"]["signature"]["BinaryValue"] == b"\x00\x01\xfe"
assert message["MessageAttributes"]["total"] == {"DataType": "Number", "StringValue": "19.90"}
assert message["Attributes"]["ApproximateReceiveCount"] == "1"

# Only the attributes asked for come back.
sqs.change_message_visibility(
    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
)
again = sqs.receive_message(
    QueueUrl=url, WaitTimeSeconds=5, MessageAttributeNames=["customer"]
)["Messages"][0]
assert set(again["MessageAttributes"]) == {"customer"}, again
assert "Attributes" not in again

# Extend the visibility; the handle received stays valid, and deletes it.
sqs.change_message_visibility(
    QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=60
)
sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])

# Batches.
result = sqs.send_message_batch(
    QueueUrl=url,
    Entries=[{"Id": f"m{i}", "MessageBody": f"batch {i}"} for i in range(10)],
)
assert len(result["Successful"]) == 10 and not result.get("Failed"), result
attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
assert attributes["ApproximateNumberOfMessages"] == "10", attributes
assert attributes["VisibilityTimeout"] == "30"
assert attributes["QueueArn"].endswith(":example-orders")

received = []
while len(received) < 10:
    batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2)
    received += batch.get("Messages", [])
assert sorted(m["Body"] for m in received) == sorted(f"batch {i}" for i in range(10))
changed = sqs.change_message_visibility_batch(
    QueueUrl=url,
    Entries=[
        {"Id": f"v{i}", "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 120}
        for i, m in enumerate(received)
    ],
)
assert len(changed["Successful"]) == 10, changed
deleted = sqs.delete_message_batch(
    QueueUrl=url,
    Entries=[{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)],
)
assert len(deleted["Successful"]) == 10, deleted
counts = sqs.get_queue_attributes(
    QueueUrl=url,
    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
)["Attributes"]
assert counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}

# Attributes can change; purge empties; delete removes.
sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "45"})
assert (
    sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"][
        "VisibilityTimeout"
    ]
    == "45"
)
sqs.send_message(QueueUrl=url, MessageBody="to be purged")
sqs.purge_queue(QueueUrl=url)
assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
sqs.delete_queue(QueueUrl=url)
assert url not in sqs.list_queues().get("QueueUrls", [])

# Tags: set at creation, added, changed and removed.
tagged = sqs.create_queue(QueueName="example-tagged", tags={"team": "payments", "env": "test"})[
    "QueueUrl"
]
assert sqs.list_queue_tags(QueueUrl=tagged)["Tags"] == {"team": "payments", "env": "test"}
sqs.tag_queue(QueueUrl=tagged, Tags={"env": "prod", "cost-center": "42"})
sqs.untag_queue(QueueUrl=tagged, TagKeys=["team"])
assert sqs.list_queue_tags(QueueUrl=tagged)["Tags"] == {"env": "prod", "cost-center": "42"}
sqs.delete_queue(QueueUrl=tagged)

# The resource interface works too.
queue = boto3.resource("sqs", endpoint_url=os.environ["SQS_ENDPOINT"]).create_queue(
    QueueName="example-resource"
)
queue.send_message(MessageBody="via the resource API")
[m] = queue.receive_messages(WaitTimeSeconds=5)
assert m.body == "via the resource API"
m.delete()
queue.delete()

print("queues: ok", file=sys.stderr)
