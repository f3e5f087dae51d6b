"""An SNS topic fanned out into SQS queues with boto3, as its documentation shows it used.

Only the endpoints differ from a program written for AWS: they come from SNS_ENDPOINT
and SQS_ENDPOINT. Credentials and region come from the usual AWS_* environment variables.
"""

import json
import os

import boto3

sns = boto3.client("sns", endpoint_url=os.environ["SNS_ENDPOINT"])
sqs = boto3.client("sqs", endpoint_url=os.environ["SQS_ENDPOINT"])


def queue(name):
    url = sqs.create_queue(QueueName=name, Attributes={"ReceiveMessageWaitTimeSeconds": "2"})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def receive_all(url, expected):
    """Receives until `expected` messages came (or a receive comes back empty)."""
    got = []
    while len(got) < expected:
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2, MessageAttributeNames=["All"]
        )
        messages = answer.get("Messages", [])
        if not messages:
            break
        for m in messages:
            got.append(m)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return got


# Creating a topic is idempotent: the same name gives the same ARN.
topic_arn = sns.create_topic(Name="example-orders")["TopicArn"]
assert sns.create_topic(Name="example-orders")["TopicArn"] == topic_arn
listed = [t["TopicArn"] for page in sns.get_paginator("list_topics").paginate() for t in page["Topics"]]
assert topic_arn in listed, listed

# Every order reaches the audit queue, wrapped in the SNS notification.
audit_url, audit_arn = queue("example-audit")
audit_sub = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=audit_arn)["SubscriptionArn"]
# Subscribing the same endpoint again is the same subscription.
assert sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=audit_arn)["SubscriptionArn"] == audit_sub

# The north warehouse gets only its large orders, raw (body and attributes as published).
north_url, north_arn = queue("example-north")
north_sub = sns.subscribe(
    TopicArn=topic_arn,
    Protocol="sqs",
    Endpoint=north_arn,
    Attributes={
        "FilterPolicy": json.dumps({"store": ["north"], "quantity": [{"numeric": [">=", 10]}]}),
        "RawMessageDelivery": "true",
    },
    ReturnSubscriptionArn=True,
)["SubscriptionArn"]

attributes = sns.get_subscription_attributes(SubscriptionArn=north_sub)["Attributes"]
assert attributes["RawMessageDelivery"] == "true", attributes
assert json.loads(attributes["FilterPolicy"])["store"] == ["north"], attributes
assert attributes["TopicArn"] == topic_arn and attributes["Protocol"] == "sqs", attributes

subs = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
assert sorted(s["SubscriptionArn"] for s in subs) == sorted([audit_sub, north_sub]), subs
assert {s["Endpoint"] for s in subs} == {audit_arn, north_arn}, subs


def order(store, quantity):
    return {
        "store": {"DataType": "String", "StringValue": store},
        "quantity": {"DataType": "Number", "StringValue": str(quantity)},
    }


big_north = sns.publish(
    TopicArn=topic_arn,
    Message="12 x widget",
    Subject="New order",
    MessageAttributes=order("north", 12),
)["MessageId"]
sns.publish(TopicArn=topic_arn, Message="1 x gadget", MessageAttributes=order("north", 1))
batch = sns.publish_batch(
    TopicArn=topic_arn,
    PublishBatchRequestEntries=[
        {"Id": "a", "Message": "30 x bolt", "MessageAttributes": order("north", 30)},
        {"Id": "b", "Message": "40 x nut", "MessageAttributes": order("south", 40)},
    ],
)
assert [s["Id"] for s in batch["Successful"]] == ["a", "b"] and not batch["Failed"], batch

# The audit queue has all four, each an SNS notification.
audit = receive_all(audit_url, 4)
notes = [json.loads(m["Body"]) for m in audit]
assert sorted(n["Message"] for n in notes) == ["1 x gadget", "12 x widget", "30 x bolt", "40 x nut"], notes
for n in notes:
    assert n["Type"] == "Notification" and n["TopicArn"] == topic_arn, n
first = next(n for n in notes if n["MessageId"] == big_north)
assert first["Subject"] == "New order", first
assert first["MessageAttributes"]["quantity"] == {"Type": "Number", "Value": "12"}, first

# The north queue has the two large north orders, raw, with their typed attributes.
north = receive_all(north_url, 2)
assert sorted(m["Body"] for m in north) == ["12 x widget", "30 x bolt"], north
for m in north:
    assert m["MessageAttributes"]["store"] == {"DataType": "String", "StringValue": "north"}, m
    assert m["MessageAttributes"]["quantity"]["DataType"] == "Number", m

# Turning raw delivery off makes the next message a notification there too.
sns.set_subscription_attributes(SubscriptionArn=north_sub, AttributeName="RawMessageDelivery", AttributeValue="false")
sns.publish(TopicArn=topic_arn, Message="50 x screw", MessageAttributes=order("north", 50))
[wrapped] = receive_all(north_url, 1)
assert json.loads(wrapped["Body"])["Message"] == "50 x screw", wrapped
receive_all(audit_url, 1)

# Unsubscribed, a queue gets nothing more; a deleted topic is gone from the list.
sns.unsubscribe(SubscriptionArn=north_sub)
sns.publish(TopicArn=topic_arn, Message="60 x north", MessageAttributes=order("north", 60))
assert [json.loads(m["Body"])["Message"] for m in receive_all(audit_url, 1)] == ["60 x north"]
assert receive_all(north_url, 1) == []
sns.delete_topic(TopicArn=topic_arn)
assert topic_arn not in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
print("fanout: ok")
