//! Topics and their subscriptions: create, update, list, delete, publish, and pulling a
//! subscription's timeline with per-device cursors.

use std::collections::BTreeMap;
use std::sync::Arc;
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
use crate::raft::state_machine::unexpected;
use crate::topic::config::{SubscriptionConfig, Target, TopicUpdate};
use crate::topic::{SubscriptionState, TopicState};

/// Messages a pull looks at (matching or not) before it answers.
const PULL_SCAN_MAX: u64 = 10_000;

pub fn check_topic(name: &str) -> HttpResult<()> {
    names::validate_name("topic", name).map_err(|m| HttpError::new(ErrorCode::InvalidName, m))
}

pub fn check_subscription(name: &str) -> HttpResult<()> {
    names::validate_name("subscription", name)
        .map_err(|m| HttpError::new(ErrorCode::InvalidName, m))
}

fn subscription_not_found(topic: &str, sub: &str) -> HttpError {
    HttpError::new(
        ErrorCode::SubscriptionNotFound,
        format!("topic {topic} has no subscription {sub}"),
    )
}

fn topic_view(t: &TopicState, group: u32) -> Topic {
    Topic {
        name: t.name.clone(),
        attributes: t.config.to_wire(),
        messages: t.timeline.len(),
        subscriptions: t.subscriptions.len() as u64,
        created_at: time(t.created_ms),
        group,
    }
}

pub fn subscription_view(t: &TopicState, s: &SubscriptionState) -> Subscription {
    let backlog = if s.config.target.is_push() {
        t.timeline.next_seq().saturating_sub(s.next)
    } else {
        0
    };
    Subscription {
        name: s.name.clone(),
        topic: t.name.clone(),
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
/// outlives no incarnation of its topic) and the sequence number.
pub fn encode_cursor(topic_id: u64, seq: u64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&topic_id.to_be_bytes());
    bytes[8..].copy_from_slice(&seq.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode_cursor(topic_id: u64, text: &str) -> HttpResult<u64> {
    let bad = || {
        HttpError::new(
            ErrorCode::InvalidCursor,
            "the cursor is malformed or belongs to another topic; pass a cursor this topic returned",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    if bytes.len() != 16 || bytes[..8] != topic_id.to_be_bytes() {
        return Err(bad());
    }
    Ok(u64::from_be_bytes(
        bytes[8..].try_into().map_err(|_| bad())?,
    ))
}

/// `PUT /v1/topics/{topic}`.
pub async fn put(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(update): Json<TopicAttributesUpdate>,
) -> HttpResult<(StatusCode, Json<Topic>)> {
    check_topic(&name)?;
    let update = TopicUpdate::from_wire(&update)?;
    let response = node
        .propose(Command::PutTopic {
            topic: name.clone(),
            update,
        })
        .await?;
    let Response::QueuePut { created } = response else {
        return Err(unexpected(&response).into());
    };
    let state = node.group_of(&name).state.read();
    let view = topic_view(state.topics.get(&name)?, node.placement.group_of(&name));
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
    let state = node.group_of(name).state.read();
    Ok(topic_view(
        state.topics.get(name)?,
        node.placement.group_of(name),
    ))
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
    Ok(Json(TopicList { topics, next }))
}

/// `DELETE /v1/topics/{topic}`: 204.
pub async fn delete(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
) -> HttpResult<StatusCode> {
    check_topic(&name)?;
    node.propose(Command::DeleteTopic { topic: name }).await?;
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

/// Publishes messages in one replicated command, each checked on its own: an outcome
/// per message, in order (a message that fails its checks fails alone).
pub async fn publish_messages(
    node: &Node,
    name: String,
    key: Option<u128>,
    messages: Vec<PublishMessage>,
) -> HttpResult<Vec<Result<Sent, ApiError>>> {
    let group = node.group_of(&name);
    group.state.read().topics.get(&name)?;
    let mut results: Vec<Option<Result<Sent, ApiError>>> = Vec::new();
    let mut accepted = Vec::new();
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
                results.push(None);
                accepted.push(msg);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    if !accepted.is_empty() {
        let response = node
            .propose(Command::Publish {
                topic: name,
                messages: accepted.into(),
                key,
            })
            .await?;
        let Response::Sent(outcomes) = response else {
            return Err(unexpected(&response).into());
        };
        let mut outcomes = outcomes.into_iter();
        for slot in results.iter_mut().filter(|r| r.is_none()) {
            *slot = outcomes.next().map(|o| {
                o.map(|outcome| match outcome {
                    SendOutcome::Stored(loc) | SendOutcome::Duplicate(loc) => Sent {
                        id: message_id(group.id, loc),
                        duplicate: false,
                    },
                })
            });
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ApiError::new(ErrorCode::Internal, "no outcome"))))
        .collect())
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
    let state = node.group_of(&topic).state.read();
    let t = state.topics.get(&topic)?;
    let s = t
        .subscriptions
        .get(&sub)
        .ok_or_else(|| subscription_not_found(&topic, &sub))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(subscription_view(t, s))))
}

/// `GET /v1/topics/{topic}/subscriptions/{sub}`.
pub async fn get_subscription(
    State(node): State<Arc<Node>>,
    Path((topic, sub)): Path<(String, String)>,
) -> HttpResult<Json<Subscription>> {
    check_topic(&topic)?;
    check_subscription(&sub)?;
    let state = node.group_of(&topic).state.read();
    let t = state.topics.get(&topic)?;
    let s = t
        .subscriptions
        .get(&sub)
        .ok_or_else(|| subscription_not_found(&topic, &sub))?;
    Ok(Json(subscription_view(t, s)))
}

/// `GET /v1/topics/{topic}/subscriptions`.
pub async fn list_subscriptions(
    State(node): State<Arc<Node>>,
    Path(topic): Path<String>,
) -> HttpResult<Json<SubscriptionList>> {
    check_topic(&topic)?;
    let state = node.group_of(&topic).state.read();
    let t = state.topics.get(&topic)?;
    Ok(Json(SubscriptionList {
        subscriptions: t
            .subscriptions
            .values()
            .map(|s| subscription_view(t, s))
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
    node.propose(Command::DeleteSubscription {
        topic,
        subscription: sub,
    })
    .await?;
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

/// A topic message as clients get it, with the cursor right after it.
pub fn topic_message(
    group: &Group,
    topic_id: u64,
    seq: u64,
    loc: MsgLoc,
    stored: &StoredMessage,
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
        cursor: encode_cursor(topic_id, seq + 1),
    }
}

/// A message of the log, or `None` when it is gone (purged with its segment).
pub fn stored_message(group: &Group, loc: MsgLoc) -> HttpResult<Option<StoredMessage>> {
    group
        .log
        .message(loc)
        .map_err(|e| HttpError::internal("reading a message from the log", e))
}

/// Messages of a timeline subscription from `start`, filtered, up to `max`; and the
/// position to resume from.
pub fn read_timeline(
    node: &Node,
    topic: &str,
    sub: &str,
    start: u64,
    max: usize,
) -> HttpResult<(Vec<TopicMessage>, u64)> {
    let (topic_id, filter, locs) = {
        let state = node.group_of(topic).state.read();
        let t = state.topics.get(topic)?;
        let s = t
            .subscriptions
            .get(sub)
            .ok_or_else(|| subscription_not_found(topic, sub))?;
        let start = start.max(t.timeline.base());
        let end = t.timeline.next_seq().min(start + PULL_SCAN_MAX);
        let locs: Vec<(u64, MsgLoc)> = (start..end)
            .filter_map(|seq| t.timeline.get(seq).map(|loc| (seq, loc)))
            .collect();
        (t.id, s.config.filter.clone(), locs)
    };
    let mut messages = Vec::new();
    let mut resume = start;
    for (seq, loc) in locs {
        if messages.len() >= max {
            break;
        }
        resume = seq + 1;
        if let Some(stored) = stored_message(node.group_of(topic), loc)?
            && filter.matches(stored.message())
        {
            messages.push(topic_message(
                node.group_of(topic),
                topic_id,
                seq,
                loc,
                &stored,
            ));
        }
    }
    Ok((messages, resume))
}

/// Where a pull or stream starts: after the given cursor, else at the device's committed
/// position, else at the oldest retained message.
pub fn start_position(
    node: &Node,
    topic: &str,
    sub: &str,
    after: Option<&str>,
    device: Option<&str>,
) -> HttpResult<u64> {
    let state = node.group_of(topic).state.read();
    let t = state.topics.get(topic)?;
    let s = t
        .subscriptions
        .get(sub)
        .ok_or_else(|| subscription_not_found(topic, sub))?;
    if !s.config.target.is_timeline() {
        return Err(HttpError::invalid(format!(
            "subscription {sub} is pushed, not pulled; make a pull or websocket subscription to read the timeline"
        )));
    }
    let position = match (after, device) {
        (Some(cursor), _) => decode_cursor(t.id, cursor)?,
        (None, Some(device)) => s.cursors.get(device).copied().unwrap_or(0),
        (None, None) => 0,
    };
    Ok(position.max(t.timeline.base()))
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
    let waiters = node.group_of(&topic).state.waiters();
    let key = format!("topic/{topic}");
    let notify = waiters.get(&key);
    let mut shutdown = node.shutdown_signal();
    let result: HttpResult<(Vec<TopicMessage>, u64)> = async {
        let mut position = start;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (messages, resume) = read_timeline(&node, &topic, &sub, position, max as usize)?;
            position = resume;
            if !messages.is_empty() || tokio::time::Instant::now() >= deadline || *shutdown.borrow()
            {
                return Ok((messages, position));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
    .await;
    waiters.release(&key, notify);
    let (messages, resume) = result?;
    let topic_id = node.group_of(&topic).state.read().topics.get(&topic)?.id;
    Ok(Json(PullResponse {
        messages,
        cursor: encode_cursor(topic_id, resume),
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
    let topic_id = node.group_of(&topic).state.read().topics.get(&topic)?.id;
    let seq = decode_cursor(topic_id, &position.cursor)?;
    node.propose(Command::CommitCursor {
        topic,
        subscription: sub,
        device,
        position: seq,
    })
    .await?;
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
    let topic_id = node.group_of(&topic).state.read().topics.get(&topic)?.id;
    Ok(Json(CursorPosition {
        cursor: encode_cursor(topic_id, start),
    }))
}
