//! The replicated command: every state change is one of these in a log entry, stamped with
//! the proposing node's clock, and the answer the state machine gives to it. An entry
//! carries the commands of every request that arrived while the previous entry was being
//! proposed, so Raft's per-entry work is shared by all of them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_client::ApiError;

use crate::queue::config::ConfigUpdate;
use crate::queue::ids::Receipt;
use crate::queue::message::NewMessage;
use crate::queue::redrive::RedriveTaskState;
use crate::queue::state::{Delivery, SendOutcome};
use crate::topic::DeliveryReport;
use crate::topic::config::{SubscriptionConfig, TopicConfig, TopicUpdate};

/// A log entry's application data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Milliseconds since the epoch on the proposer. The state machine takes the largest
    /// time seen so far, so its clock never runs backwards across leaders.
    pub time_ms: u64,
    /// Applied in order. The messages of the entry's sends are numbered (their slots) in
    /// this order too.
    pub commands: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    PutQueue {
        queue: String,
        update: ConfigUpdate,
    },
    DeleteQueue {
        queue: String,
    },
    PurgeQueue {
        queue: String,
    },
    /// The messages are shared so that cached entries clone cheaply. `key`: the send's
    /// idempotency key, if it has one.
    Send {
        queue: String,
        messages: Arc<[NewMessage]>,
        key: Option<u128>,
    },
    Receive {
        queue: String,
        max: u32,
        visibility_ms: u64,
    },
    Ack {
        queue: String,
        receipts: Vec<Receipt>,
    },
    ChangeVisibility {
        queue: String,
        entries: Vec<(Receipt, u64)>,
    },
    StartRedrive {
        queue: String,
        max_per_second: Option<u32>,
    },
    RedriveStep {
        queue: String,
        task: u64,
        max: u32,
    },
    CancelRedrive {
        queue: String,
    },
    /// Applies time-driven transitions: lapsed delays and visibility timeouts, retention.
    Tick,
    PutTopic {
        topic: String,
        update: TopicUpdate,
    },
    DeleteTopic {
        topic: String,
    },
    /// Like a send: the messages take slots of the entry, and `key` makes it idempotent.
    Publish {
        topic: String,
        messages: Arc<[NewMessage]>,
        key: Option<u128>,
    },
    PutSubscription {
        topic: String,
        subscription: String,
        config: SubscriptionConfig,
    },
    DeleteSubscription {
        topic: String,
        subscription: String,
    },
    /// A device's position on a pull or WebSocket subscription.
    CommitCursor {
        topic: String,
        subscription: String,
        device: String,
        position: u64,
    },
    /// What a push worker delivered and what failed.
    ReportDelivery {
        topic: String,
        subscription: String,
        report: DeliveryReport,
    },
    /// A visibility change that leaves the receipt valid, as SQS's does (a client keeps
    /// using the handle it received). Last, so older log entries decode unchanged.
    ExtendVisibility {
        queue: String,
        entries: Vec<(Receipt, u64)>,
    },
    /// Sets and removes a queue's tags (SQS TagQueue and UntagQueue).
    TagQueue {
        queue: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    /// Messages another group moves into this group's queues (a topic's fan-out, a dead
    /// letter, a redrive), shipped from that group's outbox. Each item carries its
    /// sequence in the source's outbox: one already applied is skipped, so shipping again
    /// after a failure stores nothing twice. The messages take slots of the entry.
    Transfer {
        from: u32,
        items: Arc<[TransferItem]>,
    },
    /// The source's leader delivered its outbox up to `upto`: those items go.
    OutboxShipped {
        upto: u64,
    },
    /// Marks a node drained (no group's leadership goes to it) or undrains it. Proposed to
    /// the metadata group.
    SetDrained {
        node: u64,
        drained: bool,
    },
    /// Marks a node as leaving the cluster: data groups move their voters off it before
    /// it is removed. Proposed to the metadata group.
    SetRetiring {
        node: u64,
        retiring: bool,
    },
    /// Makes partition `topic` (a stored name `{topic}#p`) of the topic whose partition 0
    /// has id `topic_id` hold that partition's settings and subscriptions.
    SyncPartition {
        topic: String,
        topic_id: u64,
        config: TopicConfig,
        subscriptions: Vec<(String, SubscriptionConfig)>,
    },
}

/// One message moving into a queue of another group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferItem {
    pub seq: u64,
    pub queue: String,
    pub message: NewMessage,
    /// The queue a dead letter came from, where a redrive returns it.
    pub origin: Option<String>,
    /// The topic a published message came from (consumers read it in that topic's format).
    pub topic: Option<String>,
    /// True: placed as a send is (the queue's delay applies); false: moved, visible at once.
    pub published: bool,
}

/// What a command acts on, which decides the group it is proposed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity<'a> {
    Queue(&'a str),
    Topic(&'a str),
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::PutQueue { .. } => "put_queue",
            Command::DeleteQueue { .. } => "delete_queue",
            Command::PurgeQueue { .. } => "purge_queue",
            Command::Send { .. } => "send",
            Command::Receive { .. } => "receive",
            Command::Ack { .. } => "ack",
            Command::ChangeVisibility { .. } => "change_visibility",
            Command::ExtendVisibility { .. } => "extend_visibility",
            Command::TagQueue { .. } => "tag_queue",
            Command::StartRedrive { .. } => "start_redrive",
            Command::RedriveStep { .. } => "redrive_step",
            Command::CancelRedrive { .. } => "cancel_redrive",
            Command::Tick => "tick",
            Command::PutTopic { .. } => "put_topic",
            Command::DeleteTopic { .. } => "delete_topic",
            Command::Publish { .. } => "publish",
            Command::PutSubscription { .. } => "put_subscription",
            Command::DeleteSubscription { .. } => "delete_subscription",
            Command::CommitCursor { .. } => "commit_cursor",
            Command::ReportDelivery { .. } => "report_delivery",
            Command::SyncPartition { .. } => "sync_partition",
            Command::Transfer { .. } => "transfer",
            Command::OutboxShipped { .. } => "outbox_shipped",
            Command::SetDrained { .. } => "set_drained",
            Command::SetRetiring { .. } => "set_retiring",
        }
    }

    /// The queue or topic the command acts on; `None` for a group's own housekeeping.
    pub fn entity(&self) -> Option<Entity<'_>> {
        match self {
            Command::PutQueue { queue, .. }
            | Command::DeleteQueue { queue }
            | Command::PurgeQueue { queue }
            | Command::Send { queue, .. }
            | Command::Receive { queue, .. }
            | Command::Ack { queue, .. }
            | Command::ChangeVisibility { queue, .. }
            | Command::ExtendVisibility { queue, .. }
            | Command::TagQueue { queue, .. }
            | Command::StartRedrive { queue, .. }
            | Command::RedriveStep { queue, .. }
            | Command::CancelRedrive { queue } => Some(Entity::Queue(queue)),
            Command::PutTopic { topic, .. }
            | Command::DeleteTopic { topic }
            | Command::Publish { topic, .. }
            | Command::PutSubscription { topic, .. }
            | Command::DeleteSubscription { topic, .. }
            | Command::CommitCursor { topic, .. }
            | Command::ReportDelivery { topic, .. }
            | Command::SyncPartition { topic, .. } => Some(Entity::Topic(topic)),
            Command::Tick
            | Command::Transfer { .. }
            | Command::OutboxShipped { .. }
            | Command::SetDrained { .. }
            | Command::SetRetiring { .. } => None,
        }
    }
}

impl Command {
    /// Messages this command stores (slots it takes in its entry).
    pub fn slots(&self) -> usize {
        match self {
            Command::Send { messages, .. } | Command::Publish { messages, .. } => messages.len(),
            Command::Transfer { items, .. } => items.len(),
            _ => 0,
        }
    }

    /// A rough size in bytes, to keep entries of a reasonable size.
    pub fn weight(&self) -> usize {
        match self {
            Command::Send { messages, .. } | Command::Publish { messages, .. } => {
                messages.iter().map(|m| m.size() + 64).sum()
            }
            Command::Transfer { items, .. } => items.iter().map(|i| i.message.size() + 96).sum(),
            Command::Ack { receipts, .. } => receipts.len() * 32,
            Command::ChangeVisibility { entries, .. }
            | Command::ExtendVisibility { entries, .. } => entries.len() * 40,
            _ => 64,
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} commands@{}", self.commands.len(), self.time_ms)
    }
}

/// The state machine's answers to an entry's commands, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Responses(pub Vec<Response>);

/// The state machine's answer to one command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Blank and membership entries, ticks, deletes.
    #[default]
    Done,
    /// A queue, topic or subscription was created (true) or updated.
    QueuePut {
        created: bool,
    },
    Purged(u64),
    Sent(Vec<Result<SendOutcome, ApiError>>),
    Received(Vec<Delivery>),
    Acked(Vec<Result<(), ApiError>>),
    Visibility(Vec<Result<Receipt, ApiError>>),
    Redrive(RedriveTaskState),
    /// The command changed nothing: it named a missing queue, broke a rule, ...
    Failed(ApiError),
}
