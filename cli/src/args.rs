//! The command line: every command and flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Sluice from the command line: queues, messages, topics, subscriptions and the
/// cluster, over the broker's HTTP API.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// The broker (any node of a cluster).
    #[arg(
        long,
        env = "SLUICE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Tables for people, or JSON for scripts.
    #[arg(short, long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

pub const EXIT_CODES: &str = "\
Exit codes: 0 done; 1 the broker refused the request (the message says why); 2 bad \
command line; 3 no such queue, topic, subscription, message or member; 4 the broker \
cannot be reached or is unavailable (retry later); 5 some entries of a batch failed.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, inspect, change, purge and delete queues.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Send a message (body from an argument, `--file`, or standard input).
    Send(SendArgs),
    /// Receive messages; `--ack` acknowledges them at once.
    Receive(ReceiveArgs),
    /// Acknowledge received messages by receipt.
    Ack {
        queue: String,
        #[arg(required = true)]
        receipts: Vec<String>,
    },
    /// Look at visible messages without receiving them.
    Peek {
        queue: String,
        #[arg(long, default_value_t = 10)]
        max: u32,
    },
    /// One message by id.
    Message { queue: String, id: String },
    /// Messages by key and send time.
    Query(QueryArgs),
    /// Receive and acknowledge until the queue is empty, printing each body.
    Drain {
        queue: String,
        /// Do not print the bodies, only the count.
        #[arg(long)]
        quiet: bool,
    },
    /// Move a dead-letter queue's messages back to the queues they came from.
    #[command(subcommand)]
    Redrive(RedriveCommand),
    /// Create, list, inspect and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Publish a message to a topic.
    Publish(PublishArgs),
    /// Create, list, inspect and delete subscriptions of a topic.
    #[command(subcommand, name = "sub")]
    Subscription(SubscriptionCommand),
    /// Read a pull subscription's timeline.
    Pull(PullArgs),
    /// The cluster: members, roles, leaders, lag; add, drain and remove members.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Check the broker end to end: send a message to a queue (made if missing), receive
    /// it back and acknowledge it. Exits 0 when it came back, 1 when not.
    Check {
        /// The queue used for the check.
        #[arg(long, default_value = "sluice-check")]
        queue: String,
        /// Seconds to wait for the message to come back.
        #[arg(long, default_value_t = 20)]
        timeout: u64,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args, Default)]
pub struct QueueAttributeArgs {
    /// Seconds a received message stays hidden.
    #[arg(long)]
    pub visibility: Option<u32>,
    /// Seconds a new message stays hidden.
    #[arg(long)]
    pub delay: Option<u32>,
    /// Seconds a message is kept.
    #[arg(long)]
    pub retention: Option<u32>,
    /// Largest message, in bytes.
    #[arg(long)]
    pub max_bytes: Option<u32>,
    /// Default long-poll wait of a receive, in seconds.
    #[arg(long)]
    pub wait: Option<u32>,
    /// Queue that messages go to after `--max-receives` receives without an ack.
    #[arg(long, requires = "max_receives")]
    pub dead_letter: Option<String>,
    #[arg(long, requires = "dead_letter")]
    pub max_receives: Option<u32>,
    /// Remove the dead-letter queue.
    #[arg(long, conflicts_with = "dead_letter")]
    pub no_dead_letter: bool,
    /// FIFO de-duplication by the body's SHA-256.
    #[arg(long)]
    pub content_dedup: Option<bool>,
    /// Partitions (may only grow).
    #[arg(long)]
    pub partitions: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create a queue (or set the attributes of an existing one).
    Create {
        name: String,
        /// First in, first out, with message groups (cannot change later).
        #[arg(long)]
        fifo: bool,
        #[command(flatten)]
        attributes: QueueAttributeArgs,
    },
    /// Change the attributes of an existing queue.
    Set {
        name: String,
        #[command(flatten)]
        attributes: QueueAttributeArgs,
    },
    /// Queues with their message counts.
    List {
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// A queue's attributes and counts.
    Get { name: String },
    /// Delete a queue and its messages.
    Delete { name: String },
    /// Delete every message of a queue.
    Purge { name: String },
}

#[derive(Debug, Args)]
pub struct SendArgs {
    pub queue: String,
    /// The body; without it, `--file` or standard input.
    pub body: Option<String>,
    #[arg(long, conflicts_with = "body")]
    pub file: Option<PathBuf>,
    /// Each line of the input is a message, sent in batches with a progress bar.
    #[arg(long)]
    pub lines: bool,
    #[arg(long)]
    pub delay: Option<u32>,
    /// 1 (highest) to 16.
    #[arg(long)]
    pub priority: Option<u8>,
    /// FIFO message group.
    #[arg(long)]
    pub group: Option<String>,
    /// FIFO de-duplication id.
    #[arg(long)]
    pub dedup_id: Option<String>,
    /// A business key to find the message by.
    #[arg(long)]
    pub key: Option<String>,
    /// An attribute, `name=value`; repeat for more.
    #[arg(long = "attr", value_parser = parse_pair)]
    pub attributes: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    pub queue: String,
    #[arg(long, default_value_t = 1)]
    pub max: u32,
    /// Seconds to wait for a first message.
    #[arg(long)]
    pub wait: Option<u32>,
    /// Seconds the messages stay hidden.
    #[arg(long)]
    pub visibility: Option<u32>,
    /// Acknowledge what was received.
    #[arg(long)]
    pub ack: bool,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    pub queue: String,
    #[arg(long)]
    pub key: Option<String>,
    /// Sent at or after (RFC 3339, e.g. 2026-11-25T10:00:00Z).
    #[arg(long)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long)]
    pub limit: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum RedriveCommand {
    /// Start moving the dead-letter queue's messages back.
    Start {
        queue: String,
        #[arg(long)]
        max_per_second: Option<u32>,
    },
    /// The running task first, then recent ones.
    List { queue: String },
    /// Cancel the running task.
    Cancel { queue: String },
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (or set the attributes of an existing one).
    Create {
        name: String,
        /// Seconds published messages stay readable.
        #[arg(long)]
        retention: Option<u32>,
        #[arg(long)]
        max_bytes: Option<u32>,
        #[arg(long)]
        partitions: Option<u32>,
    },
    List {
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    Get {
        name: String,
    },
    Delete {
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    pub topic: String,
    /// The body; without it, `--file` or standard input.
    pub body: Option<String>,
    #[arg(long, conflicts_with = "body")]
    pub file: Option<PathBuf>,
    /// What subscriptions filter on.
    #[arg(long)]
    pub tag: Option<String>,
    #[arg(long)]
    pub key: Option<String>,
    /// An attribute, `name=value`; repeat for more.
    #[arg(long = "attr", value_parser = parse_pair)]
    pub attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeliveryFormatArg {
    Json,
    Xml,
    Simplified,
    /// Amazon SNS's JSON notification.
    Sns,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RetryArg {
    /// A fixed interval, a bounded number of times.
    Backoff,
    /// Growing intervals up to a day.
    Exponential,
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// Subscribe an endpoint: exactly one of --queue, --http, --email, --pull, --websocket.
    Create(SubscriptionCreateArgs),
    List {
        topic: String,
    },
    Get {
        topic: String,
        name: String,
    },
    Delete {
        topic: String,
        name: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("endpoint").required(true).args(["queue", "http", "email", "pull", "websocket"])))]
pub struct SubscriptionCreateArgs {
    pub topic: String,
    pub name: String,
    /// Into this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// POSTed to this URL, signed.
    #[arg(long)]
    pub http: Option<String>,
    /// Emailed to this address.
    #[arg(long)]
    pub email: Option<String>,
    /// Kept on the timeline for clients to pull.
    #[arg(long)]
    pub pull: bool,
    /// Streamed to WebSocket clients.
    #[arg(long)]
    pub websocket: bool,
    /// Only messages with one of these tags; repeat for more.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only messages whose attribute equals this, `name=value`; repeat for more.
    #[arg(long = "attr", value_parser = parse_pair)]
    pub attributes: Vec<(String, String)>,
    #[arg(long, value_enum)]
    pub format: Option<DeliveryFormatArg>,
    #[arg(long, value_enum)]
    pub retry: Option<RetryArg>,
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Push deliveries that fail their last retry go to this queue.
    #[arg(long)]
    pub dead_letter: Option<String>,
    #[arg(long)]
    pub max_in_flight: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    pub topic: String,
    pub subscription: String,
    /// Read from this device's committed cursor (and `--commit` to move it).
    #[arg(long)]
    pub device: Option<String>,
    /// Read after this cursor.
    #[arg(long)]
    pub after: Option<String>,
    #[arg(long, default_value_t = 10)]
    pub max: u32,
    #[arg(long)]
    pub wait: Option<u32>,
    /// Commit the device's cursor past what was read.
    #[arg(long, requires = "device")]
    pub commit: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Members, roles, groups, leaders and lag.
    Status,
    /// Add a node: it joins as a learner and becomes a voter once caught up.
    Add { id: u64, peer_address: String },
    /// Move a member's leaderships to other nodes.
    Drain { id: u64 },
    /// Remove a member.
    Remove { id: u64 },
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not name=value")),
    }
}
