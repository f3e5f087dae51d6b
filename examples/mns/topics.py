"""An MNS topic with the aliyun-mns-sdk, as its documentation shows it used: fan-out into
queues (filtered by tag) and push to an HTTP endpoint in the XML notification format.

Only the endpoint differs from a program written for Alibaba Cloud: it comes from
MNS_ENDPOINT, and the access key from MNS_ACCESS_KEY_ID / MNS_ACCESS_KEY_SECRET.
"""

import os
import queue as queues
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, HTTPServer

from mns.account import Account
from mns.mns_exception import MNSServerException
from mns.queue import QueueMeta
from mns.subscription import SubscriptionMeta
from mns.topic import Base64TopicMessage, TopicMessage, TopicMeta

account = Account(
    os.environ["MNS_ENDPOINT"], os.environ["MNS_ACCESS_KEY_ID"], os.environ["MNS_ACCESS_KEY_SECRET"]
)
NS = "{http://mns.aliyuncs.com/doc/v1/}"

# An HTTP endpoint on loopback that records what MNS pushes to it.
pushed = queues.Queue()


class Endpoint(BaseHTTPRequestHandler):
    def do_POST(self):
        pushed.put(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Endpoint)
threading.Thread(target=server.serve_forever, daemon=True).start()

topic = account.get_topic("example-news")
topic_url = topic.create(TopicMeta())
assert topic_url.endswith("/topics/example-news"), topic_url
assert topic.create(TopicMeta()) == topic_url
assert topic.get_attributes().maximum_message_size == 65536
topic_urls, _ = account.list_topic(prefix="example-")
assert topic_url in topic_urls, topic_urls

# Sports news go into a queue, body as published (SIMPLIFIED).
sports = account.get_queue("example-sports")
sports.create(QueueMeta())
sports_sub = topic.get_subscription("sports-queue")
sports_sub.subscribe(
    SubscriptionMeta(
        "acs:mns:cn-hangzhou:000000000000:queues/example-sports",
        notify_content_format="SIMPLIFIED",
        filter_tag="sports",
    )
)
# Everything is pushed to the HTTP endpoint as an XML notification, retried with
# exponential decay.
http_sub = topic.get_subscription("all-http")
http_sub.subscribe(
    SubscriptionMeta(
        "http://127.0.0.1:%d/notify" % server.server_port,
        notify_strategy="EXPONENTIAL_DECAY_RETRY",
        notify_content_format="XML",
    )
)
attributes = http_sub.get_attributes()
assert attributes.notify_strategy == "EXPONENTIAL_DECAY_RETRY" and attributes.notify_content_format == "XML"
urls, _ = topic.list_subscription()
assert sorted(u.rsplit("/", 1)[1] for u in urls) == ["all-http", "sports-queue"], urls
try:
    topic.get_subscription("sports-queue").subscribe(SubscriptionMeta("http://127.0.0.1:1/other"))
    raise AssertionError("a subscription was made again with another endpoint")
except MNSServerException as e:
    assert e.type == "SubscriptionAlreadyExist", e.type

# Publish: the queue consumer decodes base64 bodies (the SDK's default), so the
# publisher encodes them with Base64TopicMessage.
sent = topic.publish_message(Base64TopicMessage("final score 2:1", "sports"))
assert len(sent.message_id) > 0
topic.publish_message(Base64TopicMessage("rain tomorrow", "weather"))

got = sports.receive_message_with_str_body(wait_seconds=5)
assert got.message_body == "final score 2:1", got.message_body
sports.delete_message(got.receipt_handle)
try:
    sports.receive_message(wait_seconds=1)
    raise AssertionError("the weather message passed the sports filter")
except MNSServerException as e:
    assert e.type == "MessageNotExist", e.type

notes = sorted((ET.fromstring(pushed.get(timeout=20)) for _ in range(2)), key=lambda n: n.find(NS + "MessageTag").text)
assert [n.find(NS + "MessageTag").text for n in notes] == ["sports", "weather"]
assert notes[0].find(NS + "TopicName").text == "example-news"
assert notes[0].find(NS + "MessageId").text == sent.message_id

# A queue subscribed in the XML format gets the notification document; it is read
# without base64 decoding.
archive = account.get_queue("example-archive")
archive.create(QueueMeta())
archive.set_encoding(False)
topic.get_subscription("archive").subscribe(
    SubscriptionMeta("acs:mns:cn-hangzhou:000000000000:queues/example-archive", notify_content_format="XML")
)
topic.publish_message(TopicMessage("plain text news", "misc"))
note = ET.fromstring(archive.receive_message(wait_seconds=5).message_body)
assert note.find(NS + "Message").text == "plain text news"

# Changing the retry strategy, unsubscribing, deleting.
meta = SubscriptionMeta("", notify_strategy="BACKOFF_RETRY")
http_sub.set_attributes(meta)
assert http_sub.get_attributes().notify_strategy == "BACKOFF_RETRY"
http_sub.unsubscribe()
try:
    http_sub.get_attributes()
    raise AssertionError("an unsubscribed subscription still answers")
except MNSServerException as e:
    assert e.type == "SubscriptionNotExist", e.type
topic.delete()
try:
    topic.publish_message(TopicMessage("gone"))
    raise AssertionError("published to a deleted topic")
except MNSServerException as e:
    assert e.type == "TopicNotExist", e.type
server.shutdown()
print("topics: ok")
