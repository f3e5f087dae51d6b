"""An SNS topic delivering to an HTTP endpoint, with boto3 and the standard library.

The endpoint is a small HTTP server on loopback that dispatches on the
x-amz-sns-message-type header, as an SNS endpoint does. Only the endpoint of the SNS
client differs from a program written for AWS: it comes from SNS_ENDPOINT.
"""

import json
import os
import queue
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3

sns = boto3.client("sns", endpoint_url=os.environ["SNS_ENDPOINT"])
received = queue.Queue()


class Endpoint(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.put((self.headers.get("x-amz-sns-message-type"), self.headers, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Endpoint)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_port}/sns"

topic_arn = sns.create_topic(Name="example-alerts")["TopicArn"]
sub = sns.subscribe(TopicArn=topic_arn, Protocol="http", Endpoint=url)["SubscriptionArn"]
sns.publish(
    TopicArn=topic_arn,
    Subject="disk",
    Message="disk 91% full on node-3",
    MessageAttributes={"severity": {"DataType": "String", "StringValue": "warning"}},
)
kind, headers, body = received.get(timeout=20)
assert kind == "Notification", kind
assert headers["x-amz-sns-topic-arn"] == topic_arn, dict(headers)
assert headers["x-amz-sns-subscription-arn"] == sub, dict(headers)
note = json.loads(body)
assert note["Message"] == "disk 91% full on node-3" and note["Subject"] == "disk", note
assert note["MessageAttributes"]["severity"]["Value"] == "warning", note

# With raw delivery the endpoint gets the body alone.
sns.set_subscription_attributes(SubscriptionArn=sub, AttributeName="RawMessageDelivery", AttributeValue="true")
sns.publish(TopicArn=topic_arn, Message="raw body")
_, _, body = received.get(timeout=20)
assert body == b"raw body", body
sns.delete_topic(TopicArn=topic_arn)
server.shutdown()
print("http endpoint: ok")
