//! Topics and their subscriptions: create, update, list, delete, publish, and pulling a
//! subscription's timeline with per-device cursors.
//!
//! A partitioned topic (see `crate::topic::partition`) is one topic to clients: a
//! publish goes to its messages' partitions, a pull gathers from every partition, a
//! cursor holds a position per partition, and the views add up the partitions.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sluice_client::{
    ApiError, CursorPosition, DeliveryCounts, ErrorCode, ListQueues, PublishMessage,
    PublishRequest, PullQuery, PullResponse, Sent, Subscription, SubscriptionList,
    SubscriptionSpec, Topic, TopicAttributesUpdate, TopicList, TopicMessage, limits, names,
};

use super::error::{HttpError, HttpResult};
use super::extract::{Json, Path, Query};
use super::messages::{body_of, check_attributes, check_id_field, idempotency_key};
use super::queues::time;
use crate::node::Node;
use crate::queue::ids::{MsgLoc, message_id};
use crate::queue::message::NewMessage;
use crate::queue::state::SendOutcome;
use crate::raft::Group;
use crate::raft::command::{Command, Response};
use crate::raft::log_store::StoredMessage;
use crate::raft::state_machine::{Waiters, unexpected};
use crate::topic::config::{Filter, SubscriptionConfig, Target, TopicUpdate};
use crate::topic::partition::{partition_name, partition_of};
use crate::topic::{SubscriptionState, TopicState};

/// Messages a pull looks at (matching or not, over every partition) before it answers.
const PULL_SCAN_MAX: u64 = 10_000;

/// Whose turn it is among a topic's partitions for messages without a key.
static UNKEYED_TURN: AtomicU32 = AtomicU32::new(0);

pub fn check_topic(name: &str) -> HttpResult<()> {
    names::validate_name("topic", name).map_err(|m| HttpError::new(ErrorCode::InvalidName, m))
}

pub fn check_subscription(name: &str) -> HttpResult<()> {
    names::validate_name("subscription", name)
        .map_err(|m| HttpError::new(ErrorCode::InvalidName, m))
}

fn topic_view(t: &TopicState, group: u32) -> Topic {
    Topic {
        name: t.name.clone(),
        attributes: t.config.to_wire(),
        messages: t.timeline.len(),
        subscriptions: t.subscriptions.len() as u64,
        created_at: time(t.created_ms),
        group,
        partition_groups: Vec::new(),
    }
}

/// Reads partition `p` of `topic` as this node's replica holds it; `None` when that
/// replica does not hold it (yet).
fn read_partition<R>(
    node: &Node,
    topic: &str,
    p: u32,
    read: impl FnOnce(&TopicState) -> R,
) -> Option<R> {
    let name = partition_name(topic, p);
    let state = node.group_of(&name).state.read();
    state.topics.get(&name).ok().map(read)
}

/// A view of partition 0 completed with the other partitions: their messages, and the
/// group of each partition.
fn with_partitions(node: &Node, mut view: Topic) -> Topic {
    let partitions = view.attributes.partitions;
    if partitions > 1 {
        view.messages += (1..partitions)
            .filter_map(|p| read_partition(node, &view.name, p, |t| t.timeline.len()))
            .sum::<u64>();
        view.partition_groups = (0..partitions)
            .map(|p| node.placement.group_of(&partition_name(&view.name, p)))
            .collect();
    }
    view
}

/// A subscription's view with the delivery counts of every partition added up.
fn subscription_with_partitions(
    node: &Node,
    partitions: u32,
    mut view: Subscription,
) -> Subscription {
    for p in 1..partitions {
        let counts = read_partition(node, &view.topic, p, |t| {
            t.subscriptions
                .get(&view.name)
                .map(|s| subscription_view(t, s).counts)
        })
        .flatten();
        if let Some(c) = counts {
            view.counts.delivered += c.delivered;
            view.counts.backlog += c.backlog;
            view.counts.retrying += c.retrying;
            view.counts.failed += c.failed;
        }
    }
    view
}

/// A subscription as one partition (partition 0: the topic's own) sees it.
pub fn subscription_view(t: &TopicState, s: &SubscriptionState) -> Subscription {
    let backlog = if s.config.target.is_push() {
        t.timeline.next_seq().saturating_sub(s.next)
    } else {
        0
    };
    Subscription {
        name: s.name.clone(),
        topic: crate::topic::partition::topic_of(&t.name).to_string(),
        endpoint: s.config.endpoint(),
        filter: s.config.wire_filter(),
        retry: s.config.wire_retry(),
        format: s.config.wire_format(),
        dead_letter_queue: s.config.dead_letter_queue.clone(),
        max_in_flight: s.config.max_in_flight,
        secret: s.config.secret.clone(),
        counts: DeliveryCounts {
            delivered: s.delivered,
            backlog,
            retrying: s.retries.len() as u64,
            failed: s.failed,
        },
        created_at: time(s.created_ms),
    }
}

/// A position on a topic's timeline, as clients see it: the topic's id (so a cursor
/// outlives no incarnation of its topic) and a sequence number per partition. A topic
/// of one partition has the same cursors as before partitions existed.
pub fn encode_cursor(topic_id: u64, position: &[u64]) -> String {
    let mut bytes = Vec::with_capacity(8 + 8 * position.len());
    bytes.extend_from_slice(&topic_id.to_be_bytes());
    for seq in position {
        bytes.extend_from_slice(&seq.to_be_bytes());
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A cursor's position, one sequence number for each of the topic's `partitions`: a
/// cursor from before the topic grew starts its new partitions at their beginning.
pub fn decode_cursor(topic_id: u64, partitions: u32, text: &str) -> HttpResult<Vec<u64>> {
    let bad = || {
        HttpError::new(
            ErrorCode::InvalidCursor,
            "the cursor is malformed or belongs to another topic; pass a cursor this topic returned",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let seqs = (bytes.len() / 8).saturating_sub(1);
    if bytes.len() % 8 != 0
        || seqs == 0
        || seqs > partitions as usize
        || bytes[..8] != topic_id.to_be_bytes()
    {
        return Err(bad());
    }
    let mut position: Vec<u64> = bytes[8..]
        .chunks_exact(8)
        .map(|chunk| {
            let mut seq = [0u8; 8];
            seq.copy_from_slice(chunk);
            u64::from_be_bytes(seq)
        })
        .collect();
    position.resize(partitions as usize, 0);
    Ok(position)
}

/// `PUT /v1/topics/{topic}`.
pub async fn put(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(update): Json<TopicAttributesUpdate>,
) -> HttpResult<(StatusCode, Json<Topic>)> {
    check_topic(&name)?;
    let update = TopicUpdate::from_wire(&update)?;
    // New partitions exist before partition 0 counts them, so no publish is routed to
    // one that does not (a smaller count is refused by the state machine).
    let current = read_partition(&node, &name, 0, |t| t.config.partitions);
    if let (Some(current), Some(wanted)) = (current, update.partitions)
        && wanted > current
    {
        crate::partitions::grow(&node, &name, wanted).await?;
    }
    let response = node
        .propose(Command::PutTopic {
            topic: name.clone(),
            update,
        })
        .await?;
    let Response::QueuePut { created } = response else {
        return Err(unexpected(&response).into());
    };
    crate::partitions::sync(&node, &name).await?;
    let view = get_view(&node, &name)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// `GET /v1/topics/{topic}`.
pub async fn get(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> HttpResult<Json<Topic>> {
    check_topic(&name)?;
    Ok(Json(get_view(&node, &name)?))
}

pub fn get_view(node: &Node, name: &str) -> HttpResult<Topic> {
    let view = {
        let state = node.group_of(name).state.read();
        topic_view(state.topics.get(name)?, node.placement.group_of(name))
    };
    Ok(with_partitions(node, view))
}

/// `GET /v1/topics?prefix=&limit=&after=`.
pub async fn list(
    State(node): State<Arc<Node>>,
    Query(params): Query<ListQueues>,
) -> HttpResult<Json<TopicList>> {
    let limit = params.limit.unwrap_or(limits::LIST_LIMIT_DEFAULT);
    if limit == 0 || limit > limits::LIST_LIMIT_MAX {
        return Err(HttpError::invalid(format!(
            "limit is {limit}; it must be between 1 and {}",
            limits::LIST_LIMIT_MAX
        )));
    }
    let prefix = params.prefix.as_deref().unwrap_or("");
    let (topics, more) = node
        .list_across(
            limit as usize,
            |state, group| {
                let (page, more) =
                    state
                        .topics
                        .list(prefix, params.after.as_deref(), limit as usize);
                (
                    page.into_iter().map(|t| topic_view(t, group)).collect(),
                    more,
                )
            },
            |t: &Topic| t.name.as_str(),
        )
        .await?;
    let next = more
        .then(|| topics.last().map(|t| t.name.clone()))
        .flatten();
    let topics = topics
        .into_iter()
        .map(|view| with_partitions(&node, view))
        .collect();
    Ok(Json(TopicList { topics, next }))
}

/// `DELETE /v1/topics/{topic}`: 204. Partition 0 goes first, so the topic is gone for
/// clients at once; then the other partitions.
pub async fn delete(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> HttpResult<StatusCode> {
    check_topic(&name)?;
    let partitions = read_partition(&node, &name, 0, |t| t.config.partitions).unwrap_or(1);
    node.propose(Command::DeleteTopic {
        topic: name.clone(),
    })
    .await?;
    crate::partitions::delete(&node, &name, partitions).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/topics/{topic}/messages`: one message answers `{"id"}`, a batch `{"results"}`.
pub async fn publish(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(request): Json<PublishRequest>,
) -> HttpResult<axum::response::Response> {
    check_topic(&name)?;
    let key = idempotency_key(&headers)?;
    let (messages, batch) = request.into_messages().map_err(HttpError::invalid)?;
    if messages.is_empty() || messages.len() > limits::BATCH_MAX {
        return Err(HttpError::new(
            ErrorCode::InvalidBatch,
            format!(
                "a batch has {} messages; it must have 1 to {}",
                messages.len(),
                limits::BATCH_MAX
            ),
        ));
    }
    let results = publish_messages(&node, name, key, messages).await?;
    super::messages::sent_answer(results, batch, "publishing")
}

/// Publishes messages, each checked on its own: an outcome per message, in order (a
/// message that fails its checks fails alone). The messages for one partition go in one
/// replicated command; a request whose messages all go to one partition fails as a
/// whole when that command does, one split over partitions fails per partition.
pub async fn publish_messages(
    node: &Node,
    name: String,
    key: Option<u128>,
    messages: Vec<PublishMessage>,
) -> HttpResult<Vec<Result<Sent, ApiError>>> {
    let (topic_id, partitions) = topic_shape(node, &name)?;
    // Messages without a key go together to one partition: the next in turn, or the one
    // the idempotency key names, so a request sent again lands where it did before.
    let unkeyed = match key {
        Some(key) => (key % u128::from(partitions.max(1))) as u32,
        None => UNKEYED_TURN.fetch_add(1, Ordering::Relaxed),
    };
    let mut results: Vec<Option<Result<Sent, ApiError>>> = Vec::new();
    // Per partition: the messages, and the slot of `results` each one answers.
    let mut batches: BTreeMap<u32, (Vec<NewMessage>, Vec<usize>)> = BTreeMap::new();
    for m in messages {
        let checked = (|| {
            let (body, text) = body_of(m.body, m.body_base64)?;
            check_id_field("tag", &m.tag)?;
            check_id_field("key", &m.key)?;
            check_attributes(&m.attributes)?;
            Ok::<_, ApiError>(NewMessage {
                body,
                text,
                visible_at_ms: None,
                priority: limits::PRIORITY_DEFAULT,
                group: None,
                dedup: None,
                key: m.key,
                tag: m.tag,
                attributes: m.attributes.into_iter().collect(),
            })
        })();
        match checked {
            Ok(msg) => {
                let p = partition_of(msg.key.as_deref(), partitions, unkeyed);
                let batch = batches.entry(p).or_default();
                batch.0.push(msg);
                batch.1.push(results.len());
                results.push(None);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    let split = batches.len() > 1;
    let proposals = batches.into_iter().map(|(p, (messages, slots))| {
        let topic = partition_name(&name, p);
        let group = node.placement.group_of(&topic);
        let name = &name;
        async move {
            let answer = match partition_ready(node, name, p, topic_id) {
                Err(e) => Err(e),
                Ok(()) => node
                    .propose(Command::Publish {
                        topic,
                        messages: messages.into(),
                        key,
                    })
                    .await
                    .map_err(|e| partition_error(name, p, e))
                    .and_then(|response| match response {
                        Response::Sent(outcomes) => Ok(outcomes),
                        other => Err(unexpected(&other)),
                    }),
            };
            (group, slots, answer)
        }
    });
    for (group, slots, answer) in futures::future::join_all(proposals).await {
        let outcomes = match answer {
            Ok(outcomes) => outcomes,
            Err(e) if !split => return Err(e.into()),
            Err(e) => slots.iter().map(|_| Err(e.clone())).collect(),
        };
        for (slot, outcome) in slots.into_iter().zip(outcomes) {
            results[slot] = Some(outcome.map(|outcome| match outcome {
                SendOutcome::Stored(loc) | SendOutcome::Duplicate(loc) => Sent {
                    id: message_id(group, loc),
                    duplicate: false,
                },
            }));
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ApiError::new(ErrorCode::Internal, "no outcome"))))
        .collect())
}

/// Partition `p` of the topic whose partition 0 has id `topic_id`, as this node's
/// replica holds it, is that topic's (not one a deleted topic of the same name left
/// behind, which is replaced when synced): else a passing error. Partition 0 always is.
fn partition_ready(node: &Node, topic: &str, p: u32, topic_id: u64) -> Result<(), ApiError> {
    if p == 0 || read_partition(node, topic, p, |t| t.id) == Some(topic_id) {
        return Ok(());
    }
    Err(partition_not_ready(topic, p))
}

fn partition_not_ready(topic: &str, p: u32) -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        format!(
            "partition {p} of topic {topic} is not ready yet (the topic is being made or grown); retry shortly"
        ),
    )
}

/// An error from another partition's group, told in the topic's terms: a partition not
/// found is one not made yet.
fn partition_error(topic: &str, p: u32, error: ApiError) -> ApiError {
    match error.code {
        ErrorCode::TopicNotFound | ErrorCode::SubscriptionNotFound if p > 0 => {
            partition_not_ready(topic, p)
        }
        _ => error,
    }
}

/// `PUT /v1/topics/{topic}/subscriptions/{sub}`: 201 when created.
pub async fn put_subscription(
    State(node): State<Arc<Node>>,
    Path((topic, sub)): Path<(String, String)>,
    Json(spec): Json<SubscriptionSpec>,
) -> HttpResult<(StatusCode, Json<Subscription>)> {
    check_topic(&topic)?;
    check_subscription(&sub)?;
    // An existing subscription keeps its secret unless the body names one.
    let secret = {
        let state = node.group_of(&topic).state.read();
        let t = state.topics.get(&topic)?;
        t.subscriptions
            .get(&sub)
            .map(|s| s.config.secret.clone())
            .unwrap_or_else(sluice_client::random_token)
    };
    let config = SubscriptionConfig::from_wire(&spec, secret)?;
    if let Target::Email(to) = &config.target {
        to.parse::<lettre::message::Mailbox>().map_err(|e| {
            HttpError::new(
                ErrorCode::InvalidAttribute,
                format!("endpoint email.to {to:?} is not an email address: {e}"),
            )
        })?;
    }
    if matches!(config.target, Target::Email(_)) && node.mailer.is_none() {
        return Err(HttpError::new(
            ErrorCode::InvalidAttribute,
            "this broker has no SMTP server; start it with --smtp-server host:port",
        ));
    }
    check_remote_queues(&node, &topic, &config).await?;
    let response = node
        .propose(Command::PutSubscription {
            topic: topic.clone(),
            subscription: sub.clone(),
            config,
        })
        .await?;
    let Response::QueuePut { created } = response else {
        return Err(unexpected(&response).into());
    };
    crate::partitions::sync(&node, &topic).await?;
    let view = subscription_across_partitions(&node, &topic, &sub)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// A subscription's view over every partition of its topic.
fn subscription_across_partitions(node: &Node, topic: &str, sub: &str) -> HttpResult<Subscription> {
    let (partitions, view) = {
        let state = node.group_of(topic).state.read();
        let t = state.topics.get(topic)?;
        let s = t.subscription(sub)?;
        (t.config.partitions, subscription_view(t, s))
    };
    Ok(subscription_with_partitions(node, partitions, view))
}

/// `GET /v1/topics/{topic}/subscriptions/{sub}`.
pub async fn get_subscription(
    State(node): State<Arc<Node>>,
    Path((topic, sub)): Path<(String, String)>,
) -> HttpResult<Json<Subscription>> {
    check_topic(&topic)?;
    check_subscription(&sub)?;
    Ok(Json(subscription_across_partitions(&node, &topic, &sub)?))
}

/// `GET /v1/topics/{topic}/subscriptions`.
pub async fn list_subscriptions(
    State(node): State<Arc<Node>>,
    Path(topic): Path<String>,
) -> HttpResult<Json<SubscriptionList>> {
    check_topic(&topic)?;
    let (partitions, views) = {
        let state = node.group_of(&topic).state.read();
        let t = state.topics.get(&topic)?;
        let views: Vec<Subscription> = t
            .subscriptions
            .values()
            .map(|s| subscription_view(t, s))
            .collect();
        (t.config.partitions, views)
    };
    Ok(Json(SubscriptionList {
        subscriptions: views
            .into_iter()
            .map(|view| subscription_with_partitions(&node, partitions, view))
            .collect(),
    }))
}

/// `DELETE /v1/topics/{topic}/subscriptions/{sub}`: 204.
pub async fn delete_subscription(
    State(node): State<Arc<Node>>,
    Path((topic, sub)): Path<(String, String)>,
) -> HttpResult<StatusCode> {
    check_topic(&topic)?;
    check_subscription(&sub)?;
    let partitions = read_partition(&node, &topic, 0, |t| t.config.partitions).unwrap_or(1);
    node.propose(Command::DeleteSubscription {
        topic: topic.clone(),
        subscription: sub.clone(),
    })
    .await?;
    crate::partitions::remove_subscription(&node, &topic, partitions, &sub).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues of another group that a subscription delivers to are checked here, against
/// that group's state (the state machine checks those in its own group).
async fn check_remote_queues(
    node: &Node,
    topic: &str,
    config: &SubscriptionConfig,
) -> HttpResult<()> {
    let home = node.placement.group_of(topic);
    let target = match &config.target {
        Target::Queue(q) => Some(q),
        _ => None,
    };
    for queue in target.into_iter().chain(config.dead_letter_queue.as_ref()) {
        let id = node.placement.group_of(queue);
        if id == home {
            continue;
        }
        let group = node.caught_up(id).await?;
        let state = group.state.read();
        crate::topic::check_subscription_queue(queue, state.queues.get(queue).ok())?;
    }
    Ok(())
}

/// A topic message as clients get it, with `cursor`, the position right after it.
pub fn topic_message(
    group: &Group,
    loc: MsgLoc,
    stored: &StoredMessage,
    cursor: String,
) -> TopicMessage {
    let msg = stored.message();
    let (body, body_base64) = match (msg.text, std::str::from_utf8(&msg.body)) {
        (true, Ok(text)) => (Some(text.to_string()), None),
        _ => (None, Some(STANDARD.encode(&msg.body))),
    };
    TopicMessage {
        id: message_id(group.id, loc),
        body,
        body_base64,
        tag: msg.tag.clone(),
        key: msg.key.clone(),
        attributes: msg.attributes.iter().cloned().collect::<BTreeMap<_, _>>(),
        published_at: time(stored.time_ms()),
        cursor,
    }
}

/// A message of the log, or `None` when it is gone (purged with its segment).
pub fn stored_message(group: &Group, loc: MsgLoc) -> HttpResult<Option<StoredMessage>> {
    group
        .log
        .message(loc)
        .map_err(|e| HttpError::internal("reading a message from the log", e))
}

/// A position a read looked at: its message when the subscription's filter takes it.
struct Scanned {
    seq: u64,
    published_ms: u64,
    message: Option<(MsgLoc, StoredMessage)>,
}

/// One partition's share of a read: the positions left to look at, and the first of them
/// read from the log (the others are read only when the merge gets to them).
struct Lane<'a> {
    group: &'a Group,
    filter: &'a Filter,
    positions: std::vec::IntoIter<(u64, MsgLoc)>,
    head: Option<Scanned>,
}

impl Lane<'_> {
    /// Reads the next position into `head` (`None` when the lane is done).
    fn advance(&mut self) -> HttpResult<()> {
        self.head = match self.positions.next() {
            None => None,
            Some((seq, loc)) => {
                let stored = stored_message(self.group, loc)?;
                Some(Scanned {
                    seq,
                    published_ms: stored.as_ref().map_or(0, |m| m.time_ms()),
                    message: stored
                        .filter(|m| self.filter.matches(m.message()))
                        .map(|m| (loc, m)),
                })
            }
        };
        Ok(())
    }
}

/// Messages of a timeline subscription from `start` (a position per partition),
/// filtered, up to `max`; and the position to resume from. Within a partition messages
/// come in order; the partitions are merged by publish time.
pub fn read_timeline(
    node: &Node,
    topic: &str,
    sub: &str,
    start: &[u64],
    max: usize,
) -> HttpResult<(Vec<TopicMessage>, Vec<u64>)> {
    let (topic_id, filter) = {
        let state = node.group_of(topic).state.read();
        let t = state.topics.get(topic)?;
        let s = t.subscription(sub)?;
        (t.id, s.config.filter.clone())
    };
    let scan_max = (PULL_SCAN_MAX / start.len().max(1) as u64).max(max as u64);
    let mut lanes = Vec::with_capacity(start.len());
    for (p, &from) in start.iter().enumerate() {
        let name = partition_name(topic, p as u32);
        let group = node.group_of(&name);
        let positions: Vec<(u64, MsgLoc)> = {
            let state = group.state.read();
            match state.topics.get(&name) {
                Ok(t) if t.id == topic_id => {
                    let from = from.max(t.timeline.base());
                    let end = t.timeline.next_seq().min(from + scan_max);
                    (from..end)
                        .filter_map(|seq| t.timeline.get(seq).map(|loc| (seq, loc)))
                        .collect()
                }
                // Not made yet on this replica (or left by a deleted topic): nothing
                // published to it here.
                _ => Vec::new(),
            }
        };
        let mut lane = Lane {
            group,
            filter: &filter,
            positions: positions.into_iter(),
            head: None,
        };
        lane.advance()?;
        lanes.push(lane);
    }
    let mut position = start.to_vec();
    let mut messages = Vec::new();
    while messages.len() < max {
        let Some(p) = (0..lanes.len())
            .filter_map(|p| lanes[p].head.as_ref().map(|s| (s.published_ms, p)))
            .min()
            .map(|(_, p)| p)
        else {
            break;
        };
        let lane = &mut lanes[p];
        let Some(next) = lane.head.take() else {
            break;
        };
        position[p] = next.seq + 1;
        if let Some((loc, stored)) = next.message {
            let cursor = encode_cursor(topic_id, &position);
            messages.push(topic_message(lane.group, loc, &stored, cursor));
        }
        lane.advance()?;
    }
    Ok((messages, position))
}

/// Where a pull or stream starts, a position per partition: after the given cursor, else
/// at the device's committed position, else at the oldest retained message.
pub fn start_position(
    node: &Node,
    topic: &str,
    sub: &str,
    after: Option<&str>,
    device: Option<&str>,
) -> HttpResult<Vec<u64>> {
    let (topic_id, partitions) = {
        let state = node.group_of(topic).state.read();
        let t = state.topics.get(topic)?;
        let s = t.subscription(sub)?;
        if !s.config.target.is_timeline() {
            return Err(HttpError::invalid(format!(
                "subscription {sub} is pushed, not pulled; make a pull or websocket subscription to read the timeline"
            )));
        }
        (t.id, t.config.partitions)
    };
    let mut position = match after {
        Some(cursor) => decode_cursor(topic_id, partitions, cursor)?,
        None => vec![0; partitions as usize],
    };
    for (p, seq) in position.iter_mut().enumerate() {
        let (base, committed) = read_partition(node, topic, p as u32, |t| {
            let committed = device.and_then(|d| t.subscriptions.get(sub)?.cursors.get(d).copied());
            (t.timeline.base(), committed)
        })
        .unwrap_or((0, None));
        if after.is_none() {
            *seq = committed.unwrap_or(0);
        }
        *seq = (*seq).max(base);
    }
    Ok(position)
}

/// The topic's id and its partitions, as its partition 0 has them.
pub fn topic_shape(node: &Node, topic: &str) -> HttpResult<(u64, u32)> {
    let state = node.group_of(topic).state.read();
    let t = state.topics.get(topic)?;
    Ok((t.id, t.config.partitions))
}

/// Commits a device's position on every partition of a timeline subscription.
pub async fn commit_position(
    node: &Node,
    topic: &str,
    sub: &str,
    device: &str,
    position: Vec<u64>,
) -> Result<(), ApiError> {
    let commits = position.into_iter().enumerate().map(|(p, seq)| async move {
        node.propose(Command::CommitCursor {
            topic: partition_name(topic, p as u32),
            subscription: sub.to_string(),
            device: device.to_string(),
            position: seq,
        })
        .await
        .map_err(|e| partition_error(topic, p as u32, e))
    });
    for answer in futures::future::join_all(commits).await {
        answer?;
    }
    Ok(())
}

/// A reader's registration with every partition of a topic: a publish to any of them
/// wakes it.
pub struct TimelineWaiters<'a> {
    registered: Vec<(&'a Waiters, String, Arc<tokio::sync::Notify>)>,
}

impl<'a> TimelineWaiters<'a> {
    pub fn new(node: &'a Node, topic: &str, partitions: usize) -> Self {
        let registered = (0..partitions)
            .map(|p| {
                let name = partition_name(topic, p as u32);
                let waiters = node.group_of(&name).state.waiters();
                let key = format!("topic/{name}");
                let notify = waiters.get(&key);
                (waiters, key, notify)
            })
            .collect();
        Self { registered }
    }

    /// Completes on the next publish to any partition after this call (so a read made
    /// after it misses no wake).
    pub fn published(&self) -> impl Future<Output = ()> + '_ {
        let mut notified: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>> = self
            .registered
            .iter()
            .map(|(_, _, notify)| Box::pin(notify.notified()))
            .collect();
        for n in &mut notified {
            n.as_mut().enable();
        }
        async move {
            if !notified.is_empty() {
                futures::future::select_all(notified).await;
            }
        }
    }

    pub fn release(self) {
        for (waiters, key, notify) in self.registered {
            waiters.release(&key, notify);
        }
    }
}

/// `GET /v1/topics/{topic}/subscriptions/{sub}/messages?after=&device=&max=&waitSeconds=`.
pub async fn pull(
    State(node): State<Arc<Node>>,
    Path((topic, sub)): Path<(String, String)>,
    Query(query): Query<PullQuery>,
) -> HttpResult<Json<PullResponse>> {
    check_topic(&topic)?;
    check_subscription(&sub)?;
    let max = query.max.unwrap_or(32);
    if max == 0 || max > limits::PULL_MAX {
        return Err(HttpError::invalid(format!(
            "max is {max}; it must be between 1 and {}",
            limits::PULL_MAX
        )));
    }
    let wait = query.wait_seconds.unwrap_or(0);
    if wait > limits::RECEIVE_WAIT_SECONDS_MAX {
        return Err(HttpError::invalid(format!(
            "waitSeconds is {wait}; it must be between 0 and {}",
            limits::RECEIVE_WAIT_SECONDS_MAX
        )));
    }
    let start = start_position(
        &node,
        &topic,
        &sub,
        query.after.as_deref(),
        query.device.as_deref(),
    )?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
    let waiters = TimelineWaiters::new(&node, &topic, start.len());
    let mut shutdown = node.shutdown_signal();
    let result: HttpResult<(Vec<TopicMessage>, Vec<u64>)> = async {
        let mut position = start;
        loop {
            let published = waiters.published();
            let (messages, resume) = read_timeline(&node, &topic, &sub, &position, max as usize)?;
            position = resume;
            if !messages.is_empty() || tokio::time::Instant::now() >= deadline || *shutdown.borrow()
            {
                return Ok((messages, position));
            }
            tokio::select! {
                _ = published => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
    .await;
    waiters.release();
    let (messages, resume) = result?;
    let (topic_id, _) = topic_shape(&node, &topic)?;
    Ok(Json(PullResponse {
        messages,
        cursor: encode_cursor(topic_id, &resume),
    }))
}

/// `PUT /v1/topics/{topic}/subscriptions/{sub}/cursors/{device}`: commits a device's
/// position.
pub async fn commit_cursor(
    State(node): State<Arc<Node>>,
    Path((topic, sub, device)): Path<(String, String, String)>,
    Json(position): Json<CursorPosition>,
) -> HttpResult<Json<CursorPosition>> {
    check_topic(&topic)?;
    check_subscription(&sub)?;
    check_id_field("device", &Some(device.clone()))?;
    let (topic_id, partitions) = topic_shape(&node, &topic)?;
    let seqs = decode_cursor(topic_id, partitions, &position.cursor)?;
    commit_position(&node, &topic, &sub, &device, seqs).await?;
    Ok(Json(position))
}

/// `GET /v1/topics/{topic}/subscriptions/{sub}/cursors/{device}`.
pub async fn get_cursor(
    State(node): State<Arc<Node>>,
    Path((topic, sub, device)): Path<(String, String, String)>,
) -> HttpResult<Json<CursorPosition>> {
    check_topic(&topic)?;
    check_subscription(&sub)?;
    let start = start_position(&node, &topic, &sub, None, Some(&device))?;
    let (topic_id, _) = topic_shape(&node, &topic)?;
    Ok(Json(CursorPosition {
        cursor: encode_cursor(topic_id, &start),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_holds_a_position_per_partition_and_survives_growth() {
        // One partition: the 16-byte cursor clients had before partitions.
        let one = encode_cursor(7, &[42]);
        assert_eq!(URL_SAFE_NO_PAD.decode(&one).expect("base64").len(), 16);
        assert_eq!(decode_cursor(7, 1, &one).expect("valid"), vec![42]);
        // A topic grown to three partitions reads the new ones from their start.
        assert_eq!(decode_cursor(7, 3, &one).expect("valid"), vec![42, 0, 0]);
        let three = encode_cursor(7, &[1, 2, 3]);
        assert_eq!(decode_cursor(7, 3, &three).expect("valid"), vec![1, 2, 3]);
        for (topic_id, partitions, text) in [
            (8, 3, three.as_str()), // another topic (or an earlier one of this name)
            (7, 2, three.as_str()), // more positions than partitions
            (7, 3, "not a cursor!"),
            (7, 3, "AAAA"),
        ] {
            let err = decode_cursor(topic_id, partitions, text).expect_err(text);
            assert_eq!(err.0.code, ErrorCode::InvalidCursor);
        }
    }
}
