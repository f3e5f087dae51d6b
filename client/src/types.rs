//! The wire types of the v1 API: what goes into a request and what comes back.
//!
//! JSON field names are camelCase. Requests refuse unknown fields, so a misspelt
//! attribute is an error rather than silently ignored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// Limits and defaults of queue attributes, as SQS and MNS users know them.
pub mod limits {
    pub const VISIBILITY_SECONDS_DEFAULT: u32 = 30;
    pub const VISIBILITY_SECONDS_MAX: u32 = 43_200;
    pub const DELAY_SECONDS_MAX: u32 = 604_800;
    pub const RETENTION_SECONDS_DEFAULT: u32 = 259_200;
    pub const RETENTION_SECONDS_MIN: u32 = 60;
    pub const RETENTION_SECONDS_MAX: u32 = 1_209_600;
    pub const MAX_MESSAGE_BYTES_DEFAULT: u32 = 262_144;
    pub const MAX_MESSAGE_BYTES_MIN: u32 = 1_024;
    pub const MAX_MESSAGE_BYTES_MAX: u32 = 1_048_576;
    pub const RECEIVE_WAIT_SECONDS_MAX: u32 = 30;
    pub const MAX_RECEIVES_MAX: u32 = 1_000;
    pub const PARTITIONS_MAX: u32 = 256;
    /// Priorities run from 1 (highest) to 16; a message without one gets 8, as in MNS.
    pub const PRIORITY_HIGHEST: u8 = 1;
    pub const PRIORITY_LOWEST: u8 = 16;
    pub const PRIORITY_DEFAULT: u8 = 8;
    /// Messages per send batch, receipts per ack or visibility batch.
    pub const BATCH_MAX: usize = 256;
    /// Messages per receive.
    pub const RECEIVE_MAX: u32 = 32;
    /// How far ahead `deliverAt` may be.
    pub const DELIVER_AT_MAX_SECONDS: u32 = 604_800;
    /// FIFO de-duplication window.
    pub const DEDUP_WINDOW_SECONDS: u32 = 300;
    /// Length limit of group ids, de-duplication ids and keys, as in SQS.
    pub const ID_MAX_LEN: usize = 128;
    pub const LIST_LIMIT_DEFAULT: u32 = 100;
    pub const LIST_LIMIT_MAX: u32 = 1_000;
    pub const PEEK_MAX: u32 = 32;
    pub const QUERY_LIMIT_MAX: u32 = 1_000;
    /// Topics keep their timeline a day by default.
    pub const TOPIC_RETENTION_SECONDS_DEFAULT: u32 = 86_400;
    /// Subscriptions per topic.
    pub const SUBSCRIPTIONS_MAX: usize = 1_000;
    pub const PULL_MAX: u32 = 256;
    pub const MAX_IN_FLIGHT_DEFAULT: u32 = 8;
    pub const MAX_IN_FLIGHT_MAX: u32 = 256;
}

/// A queue's dead-letter target: after `maxReceives` receives without an ack, a message
/// moves to `queue`, remembering where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeadLetter {
    pub queue: String,
    pub max_receives: u32,
}

/// Every attribute of a queue, resolved (what `GET` answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueAttributes {
    pub visibility_seconds: u32,
    pub delay_seconds: u32,
    pub retention_seconds: u32,
    pub max_message_bytes: u32,
    pub receive_wait_seconds: u32,
    pub fifo: bool,
    pub content_dedup: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetter>,
    pub partitions: u32,
    /// The queues that may name this one as their dead-letter queue: absent, any; empty,
    /// none (SQS's RedriveAllowPolicy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redrive_allow: Option<Vec<String>>,
}

impl Default for QueueAttributes {
    fn default() -> Self {
        use limits::*;
        Self {
            visibility_seconds: VISIBILITY_SECONDS_DEFAULT,
            delay_seconds: 0,
            retention_seconds: RETENTION_SECONDS_DEFAULT,
            max_message_bytes: MAX_MESSAGE_BYTES_DEFAULT,
            receive_wait_seconds: 0,
            fifo: false,
            content_dedup: false,
            dead_letter: None,
            partitions: 1,
            redrive_allow: None,
        }
    }
}

/// The body of `PUT /v1/queues/{queue}`: the attributes to set. Absent fields keep their
/// current value (or the default on create); `"deadLetter": null` removes the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueAttributesUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_wait_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fifo: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_dedup: Option<bool>,
    /// `None`: unchanged; `Some(None)`: removed; `Some(Some(..))`: set.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    pub dead_letter: Option<Option<DeadLetter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// `None`: unchanged; `Some(None)`: any queue may use this one as its dead-letter
    /// queue again; `Some(Some(list))`: only those (none when empty).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_or_null"
    )]
    pub redrive_allow: Option<Option<Vec<String>>>,
}

/// Tells an absent field (`None`, by `default`) from an explicit `null` (`Some(None)`).
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Message counts of a queue, as of the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueCounts {
    /// Ready to be received now.
    pub visible: u64,
    /// Received and not yet acknowledged, invisible until their deadline.
    pub in_flight: u64,
    /// Waiting for their delay or `deliverAt`.
    pub delayed: u64,
}

/// Messages a queue has taken in (sent, published into it, dead-lettered or redriven
/// into it), handed out and seen acknowledged since it was made; rates come from these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueTotals {
    pub sent: u64,
    pub received: u64,
    pub acked: u64,
}

/// A queue as `GET /v1/queues/{queue}` and `PUT` answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Queue {
    pub name: String,
    pub attributes: QueueAttributes,
    pub counts: QueueCounts,
    #[serde(default)]
    pub totals: QueueTotals,
    /// Key-value labels (set through the SQS protocol's TagQueue).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(with = "crate::timefmt")]
    pub created_at: DateTime<Utc>,
    /// The Raft group that holds it (see `GET /v1/cluster` for its leader).
    #[serde(default)]
    pub group: u32,
}

/// A page of `GET /v1/queues`; pass `next` back as `after` for the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueList {
    pub queues: Vec<Queue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A message to send. Exactly one of `body` (UTF-8) and `bodyBase64` (any bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Hide the message for this long after the send (overrides the queue's delay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<u32>,
    /// Hide the message until this instant, at most 7 days ahead.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timefmt::option"
    )]
    pub deliver_at: Option<DateTime<Utc>>,
    /// 1 (highest) to 16; default 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// FIFO queues: the message group (required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// FIFO queues: a repeat within five minutes is not stored again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
    /// A business key to look messages up by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl SendMessage {
    /// A message with a UTF-8 body and nothing else set.
    pub fn text(body: impl Into<String>) -> Self {
        Self {
            body: Some(body.into()),
            ..Self::default()
        }
    }
}

/// The body of `POST /v1/queues/{queue}/messages`: one message, or `{"messages": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<SendMessage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_seconds: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timefmt::option"
    )]
    pub deliver_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl SendRequest {
    /// True when any single-message field is set (which a batch must not have).
    pub fn has_message_fields(&self) -> bool {
        self.body.is_some()
            || self.body_base64.is_some()
            || self.delay_seconds.is_some()
            || self.deliver_at.is_some()
            || self.priority.is_some()
            || self.group_id.is_some()
            || self.dedup_id.is_some()
            || self.key.is_some()
            || !self.attributes.is_empty()
    }

    /// The single message this request carries (when `messages` is absent).
    pub fn into_message(self) -> SendMessage {
        SendMessage {
            body: self.body,
            body_base64: self.body_base64,
            delay_seconds: self.delay_seconds,
            deliver_at: self.deliver_at,
            priority: self.priority,
            group_id: self.group_id,
            dedup_id: self.dedup_id,
            key: self.key,
            attributes: self.attributes,
        }
    }
}

impl From<SendMessage> for SendRequest {
    fn from(m: SendMessage) -> Self {
        SendRequest {
            messages: None,
            body: m.body,
            body_base64: m.body_base64,
            delay_seconds: m.delay_seconds,
            deliver_at: m.deliver_at,
            priority: m.priority,
            group_id: m.group_id,
            dedup_id: m.dedup_id,
            key: m.key,
            attributes: m.attributes,
        }
    }
}

/// The answer to one sent message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sent {
    pub id: String,
    /// True when a FIFO de-duplication id matched an earlier message, whose id this is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// One result of a batch: the entry's answer, or `{"error"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BatchResult<T> {
    Error { error: crate::ApiError },
    Ok(T),
}

/// `{"results": [...]}`: one result per entry of a batch, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchResults<T> {
    pub results: Vec<BatchResult<T>>,
}

/// How the client reads batch results: every field of either shape, optional, so no
/// buffering of untagged variants is needed.
pub(crate) mod batch_wire {
    use serde::Deserialize;

    use super::{NewReceipt, Sent};
    use crate::ApiError;

    #[derive(Deserialize)]
    pub struct Results<R> {
        pub results: Vec<R>,
    }

    #[derive(Deserialize)]
    pub struct SentOrError {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        duplicate: bool,
        #[serde(default)]
        error: Option<ApiError>,
    }

    #[derive(Deserialize)]
    pub struct AckedOrError {
        #[serde(default)]
        error: Option<ApiError>,
    }

    #[derive(Deserialize)]
    pub struct ReceiptOrError {
        #[serde(default)]
        receipt: Option<String>,
        #[serde(default)]
        error: Option<ApiError>,
    }

    fn malformed(what: &str) -> ApiError {
        ApiError::new(
            crate::ErrorCode::Unknown,
            format!("a batch result has neither {what} nor error"),
        )
    }

    impl From<SentOrError> for Result<Sent, ApiError> {
        fn from(r: SentOrError) -> Self {
            match (r.error, r.id) {
                (Some(e), _) => Err(e),
                (None, Some(id)) => Ok(Sent {
                    id,
                    duplicate: r.duplicate,
                }),
                (None, None) => Err(malformed("id")),
            }
        }
    }

    impl From<AckedOrError> for Result<(), ApiError> {
        fn from(r: AckedOrError) -> Self {
            r.error.map_or(Ok(()), Err)
        }
    }

    impl From<ReceiptOrError> for Result<NewReceipt, ApiError> {
        fn from(r: ReceiptOrError) -> Self {
            match (r.error, r.receipt) {
                (Some(e), _) => Err(e),
                (None, Some(receipt)) => Ok(NewReceipt { receipt }),
                (None, None) => Err(malformed("receipt")),
            }
        }
    }
}

/// The body of `POST /v1/queues/{queue}/receive`. Absent fields take the queue's values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReceiveRequest {
    /// 1 to 32, default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// 0 to 30; default the queue's `receiveWaitSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u32>,
    /// Default the queue's `visibilitySeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility_seconds: Option<u32>,
}

/// Where a message is as of the answer (peek and look-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageState {
    Visible,
    InFlight,
    Delayed,
}

/// A message as receive, peek and look-up answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    /// The body, when it was sent as UTF-8 text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body, when it was sent as bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// Present on received messages: the handle to ack it or change its visibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    pub receive_count: u32,
    #[serde(with = "crate::timefmt")]
    pub sent_at: DateTime<Utc>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timefmt::option"
    )]
    pub first_received_at: Option<DateTime<Utc>>,
    pub priority: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// On a message in a dead-letter queue: the queue it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_queue: Option<String>,
    /// On a message a subscription delivered: the topic it was published to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Present on peek and look-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<MessageState>,
    /// Present on peek and look-up of a message not visible now: when it will be.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timefmt::option"
    )]
    pub visible_at: Option<DateTime<Utc>>,
}

impl Message {
    /// The body's bytes, whichever way it travels.
    pub fn body_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        use base64::Engine;
        match (&self.body, &self.body_base64) {
            (Some(text), _) => Ok(text.as_bytes().to_vec()),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64),
            (None, None) => Ok(Vec::new()),
        }
    }
}

/// `{"messages": [...]}`: what receive, peek and query answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Messages {
    pub messages: Vec<Message>,
}

/// The body of `POST /v1/queues/{queue}/ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    pub receipts: Vec<String>,
}

/// What an acknowledgement answers: `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {}

/// One entry of `POST /v1/queues/{queue}/visibility`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisibilityEntry {
    pub receipt: String,
    pub seconds: u32,
}

/// The body of `POST /v1/queues/{queue}/visibility`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisibilityRequest {
    pub entries: Vec<VisibilityEntry>,
}

/// The body of `PUT /v1/queues/{queue}/receipts/{receipt}/visibility`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisibilityChange {
    pub seconds: u32,
}

/// A new receipt, after a visibility change; the old one is stale from then on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReceipt {
    pub receipt: String,
}

/// What a purge answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purged {
    pub purged: u64,
}

/// The body of `POST /v1/queues/{queue}/redrive`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedriveRequest {
    /// Messages moved per second; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_second: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RedriveState {
    Running,
    Completed,
    Cancelled,
}

/// A redrive: moving a dead-letter queue's messages back to the queues they came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveTask {
    pub id: String,
    /// The dead-letter queue being drained.
    pub queue: String,
    pub state: RedriveState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_second: Option<u32>,
    /// Messages in the dead-letter queue when the task started.
    pub total: u64,
    pub moved: u64,
    /// Messages left behind because their source queue no longer exists.
    pub failed: u64,
    #[serde(with = "crate::timefmt")]
    pub started_at: DateTime<Utc>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timefmt::option"
    )]
    pub finished_at: Option<DateTime<Utc>>,
}

/// `GET /v1/queues/{queue}/redrive`: the running task first, then recent ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveTasks {
    pub tasks: Vec<RedriveTask>,
}

/// Query parameters of `GET /v1/queues`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQueues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Query parameters of `GET /v1/queues/{queue}/messages`: by key and send time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timefmt::option"
    )]
    pub since: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::timefmt::option"
    )]
    pub until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A node's part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemberRole {
    /// Votes and holds replicas.
    Voter,
    /// Receives the log but does not vote yet (joining, catching up).
    Learner,
}

/// One node of the cluster, as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: u64,
    pub peer_address: String,
    pub role: MemberRole,
    /// Leads at least one group.
    pub leader: bool,
    /// Log entries it is behind the leader (per the leader's replication state); absent
    /// when the leader has no news from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// One Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    pub id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u64>,
    pub term: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<u64>,
}

/// `GET /v1/cluster`: who is in the cluster, what each does, and how far behind it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The node that answered.
    pub node: u64,
    pub members: Vec<Member>,
    pub groups: Vec<GroupStatus>,
}

/// The body of `POST /v1/cluster/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMember {
    pub id: u64,
    pub peer_address: String,
}

// ---- topics ----

/// Every attribute of a topic, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicAttributes {
    /// How long published messages stay readable on the timeline.
    pub retention_seconds: u32,
    pub max_message_bytes: u32,
    pub partitions: u32,
}

impl Default for TopicAttributes {
    fn default() -> Self {
        Self {
            retention_seconds: limits::TOPIC_RETENTION_SECONDS_DEFAULT,
            max_message_bytes: limits::MAX_MESSAGE_BYTES_DEFAULT,
            partitions: 1,
        }
    }
}

/// The body of `PUT /v1/topics/{topic}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopicAttributesUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
}

/// A topic as `GET /v1/topics/{topic}` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topic {
    pub name: String,
    pub attributes: TopicAttributes,
    /// Messages on the timeline now (within retention).
    pub messages: u64,
    pub subscriptions: u64,
    #[serde(with = "crate::timefmt")]
    pub created_at: DateTime<Utc>,
    /// The Raft group that holds it (partition 0 of a partitioned topic; see
    /// `GET /v1/cluster` for its leader).
    #[serde(default)]
    pub group: u32,
    /// A partitioned topic: the group of each partition, in partition order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_groups: Vec<u32>,
}

/// A page of `GET /v1/topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicList {
    pub topics: Vec<Topic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A message to publish. Exactly one of `body` and `bodyBase64`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// What subscriptions filter on by tag (MNS's MessageTag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl PublishMessage {
    pub fn text(body: impl Into<String>) -> Self {
        Self {
            body: Some(body.into()),
            ..Self::default()
        }
    }
}

/// The body of `POST /v1/topics/{topic}/messages`: one message or `{"messages": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<PublishMessage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl PublishRequest {
    /// The messages this request carries, or an error if it mixes both shapes.
    pub fn into_messages(self) -> Result<(Vec<PublishMessage>, bool), String> {
        let single = self.body.is_some()
            || self.body_base64.is_some()
            || self.tag.is_some()
            || self.key.is_some()
            || !self.attributes.is_empty();
        match self.messages {
            Some(_) if single => Err(
                "a batch carries its messages in \"messages\" only; move the other fields into each message"
                    .into(),
            ),
            Some(messages) => Ok((messages, true)),
            None => Ok((
                vec![PublishMessage {
                    body: self.body,
                    body_base64: self.body_base64,
                    tag: self.tag,
                    key: self.key,
                    attributes: self.attributes,
                }],
                false,
            )),
        }
    }
}

/// Where a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Endpoint {
    /// Into a Sluice queue (standard).
    Queue(String),
    /// POSTed to a URL, signed.
    Http { url: String },
    /// To clients connected to the subscription's `/stream`.
    Websocket {},
    /// By email, through the broker's SMTP server.
    Email { to: String },
    /// Kept on the timeline; clients pull with their own cursors.
    Pull {},
}

/// One condition on a message attribute, as in SNS filter policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeCondition {
    /// The value equals this.
    Exact(String),
    /// The value starts with this.
    Prefix { prefix: String },
    /// The value is a number within the bounds: `[">=", 10, "<", 20]`.
    Numeric { numeric: Vec<NumericTerm> },
    /// The attribute is present (`true`) or absent (`false`).
    Exists { exists: bool },
    /// The value is none of these.
    AnythingBut {
        #[serde(rename = "anything-but")]
        anything_but: Vec<String>,
    },
}

/// An operator (`=`, `<`, `<=`, `>`, `>=`) or a bound of a numeric condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumericTerm {
    Operator(String),
    Value(f64),
}

/// Which messages a subscription gets: all of the tags' (if any are listed) and, of
/// those, the ones whose attributes meet every key's conditions (any one condition per
/// key).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Vec<AttributeCondition>>,
}

/// How push deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetryStrategy {
    /// A fixed interval, a bounded number of times (default: 3 times, 10 s apart).
    BackoffRetry,
    /// Growing intervals up to a day (default: 176 times, doubling from 1 s to 512 s).
    ExponentialDecayRetry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    pub strategy: RetryStrategy,
    /// Retries after the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// BACKOFF_RETRY: seconds between attempts; EXPONENTIAL_DECAY_RETRY: the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u32>,
}

/// What a push delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryFormat {
    /// A JSON document with the body and everything published with it.
    Json,
    /// An XML `<Notification>`, as MNS sends.
    Xml,
    /// The body alone.
    Simplified,
    /// The JSON notification Amazon SNS sends (`"Type": "Notification"`, `Message`,
    /// `TopicArn`, `MessageAttributes`). On a queue subscription it is how SQS
    /// `ReceiveMessage` shows the message (SNS's delivery without `RawMessageDelivery`);
    /// the v1 API always gives the body as published.
    Sns,
}

/// The body of `PUT /v1/topics/{topic}/subscriptions/{sub}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionSpec {
    pub endpoint: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<SubscriptionFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DeliveryFormat>,
    /// Push deliveries that fail their last retry go to this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<String>,
    /// Push deliveries in flight at once (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// The HMAC-SHA256 key of push signatures; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl SubscriptionSpec {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            filter: None,
            retry: None,
            format: None,
            dead_letter_queue: None,
            max_in_flight: None,
            secret: None,
        }
    }
}

/// How a subscription's deliveries stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryCounts {
    /// Delivered (2xx, sent, queued).
    pub delivered: u64,
    /// Published and not yet delivered or given up (push subscriptions).
    pub backlog: u64,
    /// Waiting for a retry.
    pub retrying: u64,
    /// Given up after the last retry (dead-lettered when a queue is set).
    pub failed: u64,
}

/// A subscription as `GET` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub name: String,
    pub topic: String,
    pub endpoint: Endpoint,
    pub filter: SubscriptionFilter,
    pub retry: RetryPolicy,
    pub format: DeliveryFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<String>,
    pub max_in_flight: u32,
    pub secret: String,
    pub counts: DeliveryCounts,
    #[serde(with = "crate::timefmt")]
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionList {
    pub subscriptions: Vec<Subscription>,
}

/// A published message, as pulls, streams and JSON pushes carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicMessage {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(with = "crate::timefmt")]
    pub published_at: DateTime<Utc>,
    /// The position right after this message: a cursor to resume from.
    pub cursor: String,
}

impl TopicMessage {
    pub fn body_bytes(&self) -> Result<Vec<u8>, base64::DecodeError> {
        use base64::Engine;
        match (&self.body, &self.body_base64) {
            (Some(text), _) => Ok(text.as_bytes().to_vec()),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64),
            (None, None) => Ok(Vec::new()),
        }
    }
}

/// What a push to an HTTP endpoint carries in the JSON format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub topic: String,
    pub subscription: String,
    #[serde(flatten)]
    pub message: TopicMessage,
}

/// `GET .../subscriptions/{sub}/messages`: messages after a cursor, and where to resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullResponse {
    pub messages: Vec<TopicMessage>,
    pub cursor: String,
}

/// Query parameters of a pull.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullQuery {
    /// Resume after this cursor; absent: the device's committed cursor, else the oldest
    /// retained message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u32>,
}

/// A device's committed position on a timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorPosition {
    pub cursor: String,
}

/// What the server sends on a subscription's WebSocket `/stream`, one JSON text frame
/// each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum StreamEvent {
    /// The next matching message.
    Message { message: TopicMessage },
    /// A cursor the client asked to commit is committed for its device.
    Committed { cursor: String },
    /// A request of the client failed; the stream goes on.
    Error { error: crate::ApiError },
}

/// What a client may send on the stream: commit its device's cursor (the connection
/// must have been opened with `?device=`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamCommit {
    pub commit: String,
}
