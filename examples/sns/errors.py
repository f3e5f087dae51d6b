"""SNS errors reach boto3 as the exceptions it models."""

import json
import os

import boto3

sns = boto3.client("sns", endpoint_url=os.environ["SNS_ENDPOINT"])
missing = "arn:aws:sns:us-east-1:000000000000:example-missing"


def fails(exception, call, **kwargs):
    try:
        call(**kwargs)
    except exception as e:
        return str(e)
    raise AssertionError(f"{call.__name__} did not raise {exception.__name__}")


fails(sns.exceptions.NotFoundException, sns.publish, TopicArn=missing, Message="x")
fails(sns.exceptions.NotFoundException, sns.get_topic_attributes, TopicArn=missing)
fails(sns.exceptions.InvalidParameterException, sns.create_topic, Name="bad name!")
arn = sns.create_topic(Name="example-errors")["TopicArn"]
assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["SubscriptionsConfirmed"] == "0"
message = fails(
    sns.exceptions.InvalidParameterException,
    sns.subscribe,
    TopicArn=arn,
    Protocol="sqs",
    Endpoint="arn:aws:sqs:us-east-1:000000000000:example-errors-q",
    Attributes={"FilterPolicy": json.dumps({"a": [{"suffix": "x"}]})},
)
assert "suffix" in message, message
fails(sns.exceptions.InvalidParameterException, sns.subscribe, TopicArn=arn, Protocol="sms", Endpoint="+15555550100")
fails(
    sns.exceptions.InvalidParameterException,
    sns.subscribe,
    TopicArn=arn,
    Protocol="sqs",
    Endpoint="arn:aws:sqs:us-east-1:000000000000:example-no-such-queue",
)
fails(
    sns.exceptions.InvalidParameterValueException,
    sns.publish,
    TopicArn=arn,
    Message="x",
    MessageAttributes={"n": {"DataType": "Number", "StringValue": "not a number"}},
)
fails(
    sns.exceptions.BatchEntryIdsNotDistinctException,
    sns.publish_batch,
    TopicArn=arn,
    PublishBatchRequestEntries=[{"Id": "a", "Message": "1"}, {"Id": "a", "Message": "2"}],
)
fails(sns.exceptions.EmptyBatchRequestException, sns.publish_batch, TopicArn=arn, PublishBatchRequestEntries=[])
sns.delete_topic(TopicArn=arn)
sns.delete_topic(TopicArn=arn)  # deleting a deleted topic succeeds, as in SNS
print("errors: ok")
