"""SQS errors reach boto3 as the exceptions and codes it knows. Only the endpoint differs
(SQS_ENDPOINT)."""

import os
import sys

import boto3
from botocore.exceptions import ClientError

sqs = boto3.client("sqs", endpoint_url=os.environ["SQS_ENDPOINT"])


def code_of(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"]
    raise SystemExit(f"{call.__name__} {kwargs} succeeded")


try:
    sqs.get_queue_url(QueueName="example-missing")
    raise SystemExit("a missing queue was found")
except sqs.exceptions.QueueDoesNotExist as e:
    assert e.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"

url = sqs.create_queue(QueueName="example-errors", Attributes={"VisibilityTimeout": "30"})[
    "QueueUrl"
]
assert code_of(
    sqs.create_queue, QueueName="example-errors", Attributes={"VisibilityTimeout": "31"}
) in ("QueueAlreadyExists", "QueueNameExists")
assert code_of(sqs.delete_message, QueueUrl=url, ReceiptHandle="not-a-handle") == (
    "ReceiptHandleIsInvalid"
)
assert code_of(sqs.receive_message, QueueUrl=url, MaxNumberOfMessages=11) == (
    "InvalidParameterValue"
)
assert code_of(sqs.set_queue_attributes, QueueUrl=url, Attributes={"Nope": "1"}) == (
    "InvalidAttributeName"
)
assert code_of(sqs.send_message, QueueUrl=url, MessageBody="bad \u0001 character") == (
    "InvalidMessageContents"
)
assert code_of(sqs.send_message_batch, QueueUrl=url, Entries=[]) in (
    "AWS.SimpleQueueService.EmptyBatchRequest",
    "EmptyBatchRequest",
)
assert code_of(
    sqs.send_message_batch,
    QueueUrl=url,
    Entries=[{"Id": "same", "MessageBody": "1"}, {"Id": "same", "MessageBody": "2"}],
) in ("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "BatchEntryIdsNotDistinct")
# Nothing was stored by the refused requests.
assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)
sqs.delete_queue(QueueUrl=url)
print("errors: ok", file=sys.stderr)
