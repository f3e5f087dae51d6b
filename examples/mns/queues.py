"""An MNS queue with the aliyun-mns-sdk, as its documentation shows it used.

Only the endpoint differs from a program written for Alibaba Cloud: it comes from
MNS_ENDPOINT, and the access key from MNS_ACCESS_KEY_ID / MNS_ACCESS_KEY_SECRET.
"""

import os
import time

from mns.account import Account
from mns.mns_exception import MNSServerException
from mns.queue import Message, QueueMeta
from mns.message_property import MessagePropertyValue, PropertyType

account = Account(
    os.environ["MNS_ENDPOINT"], os.environ["MNS_ACCESS_KEY_ID"], os.environ["MNS_ACCESS_KEY_SECRET"]
)

# Create a queue; creating it again with the same attributes succeeds, with others fails.
queue = account.get_queue("example-jobs")
meta = QueueMeta()
meta.set_visibilitytimeout(20)
meta.set_polling_wait_seconds(1)
queue_url = queue.create(meta)
assert queue_url.endswith("/queues/example-jobs"), queue_url
assert queue.create(meta) == queue_url
other = QueueMeta()
other.set_visibilitytimeout(99)
try:
    queue.create(other)
    raise AssertionError("a queue with other attributes was created again")
except MNSServerException as e:
    assert e.type == "QueueAlreadyExist", e.type

attributes = queue.get_attributes()
assert attributes.visibility_timeout == 20 and attributes.polling_wait_seconds == 1
assert attributes.maximum_message_size == 65536 and attributes.message_retention_period == 345600
queue_urls, _ = account.list_queue(prefix="example-")
assert queue_url in queue_urls, queue_urls

# Send: the SDK base64-encodes bodies and decodes them on receive.
sent = queue.send_message(Message("job 1: resize image 7", priority=2))
assert len(sent.message_id) > 0 and len(sent.message_body_md5) == 32

# Receive (long poll), make the message invisible longer, then delete it.
got = queue.receive_message_with_str_body(wait_seconds=3)
assert got.message_body == "job 1: resize image 7", got.message_body
assert got.message_id == sent.message_id and got.dequeue_count == 1 and got.priority == 2
assert got.next_visible_time > int(time.time() * 1000)
changed = queue.change_message_visibility(got.receipt_handle, 60)
assert changed.receipt_handle != got.receipt_handle
try:
    queue.delete_message(got.receipt_handle)
    raise AssertionError("an outdated receipt handle deleted a message")
except MNSServerException as e:
    assert e.type in ("ReceiptHandleError", "MessageNotExist"), e.type
queue.delete_message(changed.receipt_handle)

# An empty queue answers MessageNotExist.
try:
    queue.receive_message(wait_seconds=1)
    raise AssertionError("received from an empty queue")
except MNSServerException as e:
    assert e.type == "MessageNotExist", e.type

# Batches, priorities (1 comes first), delays, peeks and user properties.
messages = []
for i, priority in enumerate([8, 1, 8]):
    m = Message("batch %d" % i, priority=priority)
    m.add_user_property("index", MessagePropertyValue(PropertyType.NUMBER, i))
    messages.append(m)
delayed = Message("later", delay_seconds=30)
sent = queue.batch_send_message(messages + [delayed])
assert len(sent) == 4
peeked = queue.batch_peek_message_with_str_body(16)
assert len(peeked) == 3 and peeked[0].message_body == "batch 1", [m.message_body for m in peeked]
got = queue.batch_receive_message_with_str_body(16, wait_seconds=2)
assert [m.message_body for m in got] == ["batch 1", "batch 0", "batch 2"], [m.message_body for m in got]
index = got[0].user_properties["index"]
assert index.data_type == PropertyType.NUMBER and index.string_value == "1", vars(index)
queue.batch_delete_message([m.receipt_handle for m in got])
attributes = queue.get_attributes()
assert attributes.active_messages == 0 and attributes.delay_messages == 1, (
    attributes.active_messages,
    attributes.delay_messages,
)

# A batch fails entry by entry: the good message is sent, the bad one reported.
try:
    queue.batch_send_message([Message("good"), Message("bad", priority=17)])
    raise AssertionError("a priority of 17 was accepted")
except MNSServerException as e:
    assert e.type == "InvalidArgument", e.type
    assert [sorted(s.keys()) for s in e.sub_errors] == [
        ["MessageBodyMD5", "MessageId"],
        ["ErrorCode", "ErrorMessage"],
    ], e.sub_errors
good = queue.receive_message_with_str_body(wait_seconds=2)
assert good.message_body == "good", good.message_body
try:
    queue.batch_delete_message([good.receipt_handle, "not-a-handle"])
    raise AssertionError("a bad receipt handle was accepted")
except MNSServerException as e:
    assert [s["ReceiptHandle"] for s in e.sub_errors] == ["not-a-handle"], e.sub_errors
assert queue.get_attributes().inactive_messages == 0

# Changing attributes, then deleting the queue.
meta = QueueMeta()
meta.set_delay_seconds(2)
queue.set_attributes(meta)
assert queue.get_attributes().delay_seconds == 2
queue.delete()
try:
    queue.get_attributes()
    raise AssertionError("a deleted queue still answers")
except MNSServerException as e:
    assert e.type == "QueueNotExist", e.type
print("queues: ok")
