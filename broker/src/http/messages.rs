//! Messages of a queue: send, receive (long polling), acknowledge, change visibility,
//! peek, look up by id, query by key and time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use sluice_client::{
    AckRequest, Acked, ApiError, BatchResult, BatchResults, ErrorCode, Message, MessageQuery,
    Messages, NewReceipt, ReceiveRequest, SendMessage, SendRequest, Sent, VisibilityChange,
    VisibilityEntry, VisibilityRequest, limits,
};

use super::error::{HttpError, HttpResult};
use super::extract::{Json, Path, Query};
use super::queues::{check_name, time};
use crate::node::Node;
use crate::queue::idempotency::parse_key;
use crate::queue::ids::{MsgLoc, Receipt, message_id, parse_message_id};
use crate::queue::message::NewMessage;
use crate::queue::state::{Delivery, Peeked, SendOutcome};
use crate::raft::Group;
use crate::raft::command::{Command, Response};
use crate::raft::now_ms;
use crate::raft::state_machine::unexpected;

const MAX_ATTRIBUTES: usize = 16;
const ATTRIBUTE_NAME_MAX: usize = 256;
/// Messages a query looks at before it stops, whatever it found.
const QUERY_SCAN_MAX: usize = 100_000;

fn invalid_message(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidMessage, message)
}

pub fn check_id_field(field: &str, value: &Option<String>) -> Result<(), ApiError> {
    if let Some(v) = value {
        if v.is_empty() || v.len() > limits::ID_MAX_LEN {
            return Err(invalid_message(format!(
                "{field} must be 1 to {} characters long",
                limits::ID_MAX_LEN
            )));
        }
        if v.chars().any(char::is_control) {
            return Err(invalid_message(format!(
                "{field} contains a control character"
            )));
        }
    }
    Ok(())
}

/// A message's body from `body` (UTF-8) or `bodyBase64` (bytes), and whether it is text.
pub fn body_of(
    body: Option<String>,
    body_base64: Option<String>,
) -> Result<(Bytes, bool), ApiError> {
    match (body, body_base64) {
        (Some(_), Some(_)) => Err(invalid_message("give body or bodyBase64, not both")),
        (None, None) => Err(invalid_message(
            "a message needs a body: body (UTF-8 text) or bodyBase64 (bytes)",
        )),
        (Some(text), None) => Ok((Bytes::from(text.into_bytes()), true)),
        (None, Some(b64)) => match STANDARD.decode(b64.as_bytes()) {
            Ok(bytes) => Ok((Bytes::from(bytes), false)),
            Err(e) => Err(invalid_message(format!(
                "bodyBase64 is not valid base64 ({e})"
            ))),
        },
    }
}

/// Checks a message's attributes: how many, and their names.
pub fn check_attributes(attributes: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(invalid_message(format!(
            "a message has {} attributes; the limit is {MAX_ATTRIBUTES}",
            attributes.len()
        )));
    }
    for name in attributes.keys() {
        if name.is_empty() || name.len() > ATTRIBUTE_NAME_MAX || name.chars().any(char::is_control)
        {
            return Err(invalid_message(format!(
                "attribute name {name:?} must be 1 to {ATTRIBUTE_NAME_MAX} characters without control characters"
            )));
        }
    }
    Ok(())
}

/// The value of the `Idempotency-Key` header, if any.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> HttpResult<Option<u128>> {
    match headers.get(sluice_client::IDEMPOTENCY_KEY) {
        None => Ok(None),
        Some(value) => Ok(Some(value.to_str().ok().and_then(parse_key).ok_or_else(
            || {
                HttpError::invalid(
                    "the Idempotency-Key header must be 1 to 128 printable characters",
                )
            },
        )?)),
    }
}

/// Checks what can be checked of a message without its queue, and resolves its times.
fn to_new_message(m: SendMessage, now: u64) -> Result<NewMessage, ApiError> {
    let (body, text) = body_of(m.body, m.body_base64)?;
    let visible_at_ms = match (m.delay_seconds, m.deliver_at) {
        (Some(_), Some(_)) => {
            return Err(invalid_message("give delaySeconds or deliverAt, not both"));
        }
        (Some(delay), None) => {
            if delay > limits::DELAY_SECONDS_MAX {
                return Err(invalid_message(format!(
                    "delaySeconds is {delay}; it must be between 0 and {}",
                    limits::DELAY_SECONDS_MAX
                )));
            }
            Some(now + delay as u64 * 1000)
        }
        (None, Some(at)) => {
            let at = at.timestamp_millis().max(0) as u64;
            if at > now + limits::DELIVER_AT_MAX_SECONDS as u64 * 1000 {
                return Err(invalid_message(
                    "deliverAt is more than 7 days ahead; the limit is 7 days",
                ));
            }
            Some(at.max(now))
        }
        (None, None) => None,
    };
    let priority = m.priority.unwrap_or(limits::PRIORITY_DEFAULT);
    if !(limits::PRIORITY_HIGHEST..=limits::PRIORITY_LOWEST).contains(&priority) {
        return Err(invalid_message(format!(
            "priority is {priority}; it must be between 1 (highest) and 16"
        )));
    }
    check_id_field("groupId", &m.group_id)?;
    check_id_field("dedupId", &m.dedup_id)?;
    check_id_field("key", &m.key)?;
    check_attributes(&m.attributes)?;
    Ok(NewMessage {
        body,
        text,
        visible_at_ms,
        priority,
        group: m.group_id,
        dedup: m.dedup_id,
        key: m.key,
        tag: None,
        attributes: m.attributes.into_iter().collect(),
    })
}

fn sent(group: &Group, outcome: SendOutcome) -> Sent {
    match outcome {
        SendOutcome::Stored(loc) => Sent {
            id: message_id(group.id, loc),
            duplicate: false,
        },
        SendOutcome::Duplicate(loc) => Sent {
            id: message_id(group.id, loc),
            duplicate: true,
        },
    }
}

/// `POST /v1/queues/{queue}/messages`: one message answers `{"id"}`, a batch
/// `{"results": [...]}`.
pub async fn send(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    Json(mut request): Json<SendRequest>,
) -> HttpResult<axum::response::Response> {
    check_name(&name)?;
    let key = idempotency_key(&headers)?;
    let (messages, batch) = match request.messages.take() {
        Some(messages) => {
            if request.has_message_fields() {
                return Err(HttpError::invalid(
                    "a batch carries its messages in \"messages\" only; move the other fields into each message",
                ));
            }
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
            (messages, true)
        }
        None => (vec![request.into_message()], false),
    };
    let results = send_messages(&node, name, key, messages).await?;
    sent_answer(results, batch, "sending")
}

/// The answer to a send or publish: `{"results": [...]}` for a batch, else the one
/// message's `{"id"}` or its error.
pub fn sent_answer(
    mut results: Vec<Result<Sent, ApiError>>,
    batch: bool,
    doing: &str,
) -> HttpResult<axum::response::Response> {
    use axum::response::IntoResponse;
    if batch {
        let results = results
            .into_iter()
            .map(|r| match r {
                Ok(s) => BatchResult::Ok(s),
                Err(error) => BatchResult::Error { error },
            })
            .collect();
        Ok(Json(BatchResults { results }).into_response())
    } else {
        match results.pop() {
            Some(Ok(s)) => Ok(Json(s).into_response()),
            Some(Err(e)) => Err(e.into()),
            None => Err(HttpError::internal(doing, "no result")),
        }
    }
}

/// Sends messages to a queue in one proposal: each is checked alone and against the
/// queue as this node sees it (the state machine checks again, authoritatively). One
/// result per message, in order; an error for the whole request only when the queue is
/// missing or the proposal fails.
pub async fn send_messages(
    node: &Node,
    name: String,
    key: Option<u128>,
    messages: Vec<SendMessage>,
) -> HttpResult<Vec<Result<Sent, ApiError>>> {
    let now = now_ms();
    let group = node.group_of(&name);
    let max_bytes = {
        let state = group.state.read();
        state.queues.get(&name)?.config.max_message_bytes as usize
    };
    let mut results: Vec<Option<Result<Sent, ApiError>>> = Vec::with_capacity(messages.len());
    let mut accepted = Vec::with_capacity(messages.len());
    for m in messages {
        match to_new_message(m, now) {
            Ok(m) if m.size() > max_bytes => results.push(Some(Err(ApiError::new(
                ErrorCode::MessageTooLarge,
                format!(
                    "the message is {} bytes (body and attributes); the queue's maxMessageBytes is {max_bytes}",
                    m.size()
                ),
            )))),
            Ok(m) => {
                results.push(None);
                accepted.push(m);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    if !accepted.is_empty() {
        let response = node
            .propose(Command::Send {
                queue: name,
                messages: accepted.into(),
                key,
            })
            .await?;
        let Response::Sent(outcomes) = response else {
            return Err(unexpected(&response).into());
        };
        let mut outcomes = outcomes.into_iter();
        for slot in results.iter_mut().filter(|r| r.is_none()) {
            *slot = outcomes
                .next()
                .map(|o| o.map(|outcome| sent(group, outcome)));
        }
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(ApiError::new(
                    ErrorCode::Internal,
                    "no outcome for this message",
                ))
            })
        })
        .collect())
}

/// The wire form of a message read back from the log.
fn wire(
    group: &Group,
    loc: MsgLoc,
    receive_count: u32,
    first_received_ms: u64,
    origin: Option<u64>,
) -> HttpResult<Option<Message>> {
    let Some(stored) = group
        .log
        .message(loc)
        .map_err(|e| HttpError::internal("reading a message from the log", e))?
    else {
        return Ok(None);
    };
    let msg = stored.message();
    let (body, body_base64) = if msg.text {
        match std::str::from_utf8(&msg.body) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (None, Some(STANDARD.encode(&msg.body))),
        }
    } else {
        (None, Some(STANDARD.encode(&msg.body)))
    };
    let source_queue =
        origin.and_then(|id| group.state.read().queues.name_of(id).map(str::to_string));
    Ok(Some(Message {
        id: message_id(group.id, loc),
        body,
        body_base64,
        receipt: None,
        receive_count,
        sent_at: time(stored.time_ms()),
        first_received_at: (first_received_ms > 0).then(|| time(first_received_ms)),
        priority: msg.priority,
        group_id: msg.group.clone(),
        key: msg.key.clone(),
        attributes: msg.attributes.iter().cloned().collect::<BTreeMap<_, _>>(),
        source_queue,
        topic: stored.topic().map(str::to_string),
        state: None,
        visible_at: None,
    }))
}

fn delivered(group: &Group, d: &Delivery) -> HttpResult<Option<Message>> {
    let message = wire(group, d.loc, d.receive_count, d.first_received_ms, d.origin)?;
    if message.is_none() {
        tracing::error!(loc = ?d.loc, "a delivered message's body is missing from the log");
    }
    Ok(message.map(|m| Message {
        receipt: Some(d.receipt.encode()),
        ..m
    }))
}

fn peeked(group: &Group, p: &Peeked) -> HttpResult<Option<Message>> {
    Ok(
        wire(group, p.loc, p.receive_count, p.first_received_ms, p.origin)?.map(|m| Message {
            state: Some(p.state),
            visible_at: p.visible_at_ms.map(time),
            ..m
        }),
    )
}

/// `POST /v1/queues/{queue}/receive`: waits up to `waitSeconds` for a first message.
pub async fn receive(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(request): Json<ReceiveRequest>,
) -> HttpResult<Json<Messages>> {
    check_name(&name)?;
    let max = request.max.unwrap_or(1);
    if max == 0 || max > limits::RECEIVE_MAX {
        return Err(HttpError::invalid(format!(
            "max is {max}; it must be between 1 and {}",
            limits::RECEIVE_MAX
        )));
    }
    if let Some(wait) = request.wait_seconds
        && wait > limits::RECEIVE_WAIT_SECONDS_MAX
    {
        return Err(HttpError::invalid(format!(
            "waitSeconds is {wait}; it must be between 0 and {}",
            limits::RECEIVE_WAIT_SECONDS_MAX
        )));
    }
    if let Some(v) = request.visibility_seconds
        && v > limits::VISIBILITY_SECONDS_MAX
    {
        return Err(HttpError::invalid(format!(
            "visibilitySeconds is {v}; it must be between 0 and {}",
            limits::VISIBILITY_SECONDS_MAX
        )));
    }
    let group = node.group_of(&name);
    let (wait, visibility) = {
        let state = group.state.read();
        let config = &state.queues.get(&name)?.config;
        (
            request.wait_seconds.unwrap_or(config.receive_wait_seconds),
            request
                .visibility_seconds
                .unwrap_or(config.visibility_seconds),
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
    let waiters = group.state.waiters();
    let notify = waiters.get(&name);
    let mut shutdown = node.shutdown_signal();
    let result: HttpResult<Vec<Delivery>> = async {
        loop {
            // Register for a wake-up before looking, so a send in between is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = now_ms();
            let (visible, next_due) = {
                let state = group.state.read();
                let queue = state.queues.get(&name)?;
                (queue.has_visible(now), queue.next_due())
            };
            if visible {
                let response = node
                    .propose(Command::Receive {
                        queue: name.clone(),
                        max,
                        visibility_ms: visibility as u64 * 1000,
                    })
                    .await?;
                let Response::Received(deliveries) = response else {
                    return Err(unexpected(&response).into());
                };
                if !deliveries.is_empty() {
                    return Ok(deliveries);
                }
            }
            if tokio::time::Instant::now() >= deadline || *shutdown.borrow() {
                return Ok(Vec::new());
            }
            // Wake at a send, at the next time-driven change, or at the deadline.
            let mut wake = deadline;
            if let Some(due) = next_due {
                let due_in = Duration::from_millis(due.saturating_sub(now_ms()));
                wake = wake.min(tokio::time::Instant::now() + due_in);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
    .await;
    waiters.release(&name, notify);
    let deliveries = result?;
    let mut messages = Vec::with_capacity(deliveries.len());
    for d in &deliveries {
        if let Some(m) = delivered(group, d)? {
            messages.push(m);
        }
    }
    Ok(Json(Messages { messages }))
}

fn parse_receipt(text: &str) -> Result<Receipt, ApiError> {
    Receipt::decode(text).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidReceipt,
            "the receipt is malformed; pass the receipt of a received message unchanged",
        )
    })
}

fn check_batch_len(len: usize, what: &str) -> HttpResult<()> {
    if len == 0 || len > limits::BATCH_MAX {
        return Err(HttpError::new(
            ErrorCode::InvalidBatch,
            format!(
                "the batch has {len} {what}; it must have 1 to {}",
                limits::BATCH_MAX
            ),
        ));
    }
    Ok(())
}

/// Runs the well-formed entries of a batch through one command and puts each answer
/// back in its place.
async fn batch<T, E, R>(
    node: &Node,
    parsed: Vec<Result<E, ApiError>>,
    command: impl FnOnce(Vec<E>) -> Command,
    answers: impl FnOnce(Response) -> Option<Vec<Result<R, ApiError>>>,
    to_wire: impl Fn(R) -> T,
) -> HttpResult<Vec<BatchResult<T>>> {
    let mut results: Vec<Option<Result<T, ApiError>>> = Vec::with_capacity(parsed.len());
    let mut good = Vec::new();
    for p in parsed {
        match p {
            Ok(e) => {
                good.push(e);
                results.push(None);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    if !good.is_empty() {
        let response = node.propose(command(good)).await?;
        let Some(outcomes) = answers(response.clone()) else {
            return Err(unexpected(&response).into());
        };
        let mut outcomes = outcomes.into_iter();
        for slot in results.iter_mut().filter(|r| r.is_none()) {
            *slot = outcomes.next().map(|o| o.map(&to_wire));
        }
    }
    Ok(results
        .into_iter()
        .map(|r| match r {
            Some(Ok(v)) => BatchResult::Ok(v),
            Some(Err(error)) => BatchResult::Error { error },
            None => BatchResult::Error {
                error: ApiError::new(ErrorCode::Internal, "no outcome for this entry"),
            },
        })
        .collect())
}

/// `POST /v1/queues/{queue}/ack`.
pub async fn ack(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(request): Json<AckRequest>,
) -> HttpResult<Json<BatchResults<Acked>>> {
    check_name(&name)?;
    check_batch_len(request.receipts.len(), "receipts")?;
    let parsed = request.receipts.iter().map(|r| parse_receipt(r)).collect();
    let queue = name.clone();
    let results = batch(
        &node,
        parsed,
        |receipts| Command::Ack { queue, receipts },
        |r| match r {
            Response::Acked(v) => Some(v),
            _ => None,
        },
        |()| Acked {},
    )
    .await?;
    Ok(Json(BatchResults { results }))
}

/// `DELETE /v1/queues/{queue}/receipts/{receipt}`: 204.
pub async fn ack_one(
    State(node): State<Arc<Node>>,
    Path((name, receipt)): Path<(String, String)>,
) -> HttpResult<StatusCode> {
    check_name(&name)?;
    let receipt = parse_receipt(&receipt)?;
    let response = node
        .propose(Command::Ack {
            queue: name,
            receipts: vec![receipt],
        })
        .await?;
    match response {
        Response::Acked(mut v) if v.len() == 1 => {
            v.pop().expect("one").map_err(HttpError::from)?;
            Ok(StatusCode::NO_CONTENT)
        }
        other => Err(unexpected(&other).into()),
    }
}

fn check_visibility(seconds: u32) -> Result<u64, ApiError> {
    if seconds > limits::VISIBILITY_SECONDS_MAX {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "seconds is {seconds}; it must be between 0 and {}",
                limits::VISIBILITY_SECONDS_MAX
            ),
        ));
    }
    Ok(seconds as u64 * 1000)
}

/// `POST /v1/queues/{queue}/visibility`: a new receipt per entry.
pub async fn change_visibility(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Json(request): Json<VisibilityRequest>,
) -> HttpResult<Json<BatchResults<NewReceipt>>> {
    check_name(&name)?;
    let results = change_visibility_of(&node, name, &request.entries, false).await?;
    Ok(Json(BatchResults { results }))
}

/// Changes the visibility of in-flight messages. With `keep_receipt` each receipt stays
/// valid (SQS); without, each gets a new one and the old goes stale.
pub async fn change_visibility_of(
    node: &Node,
    queue: String,
    entries: &[VisibilityEntry],
    keep_receipt: bool,
) -> HttpResult<Vec<BatchResult<NewReceipt>>> {
    check_batch_len(entries.len(), "entries")?;
    let parsed = entries
        .iter()
        .map(|e| Ok((parse_receipt(&e.receipt)?, check_visibility(e.seconds)?)))
        .collect();
    batch(
        node,
        parsed,
        |entries| {
            if keep_receipt {
                Command::ExtendVisibility { queue, entries }
            } else {
                Command::ChangeVisibility { queue, entries }
            }
        },
        |r| match r {
            Response::Visibility(v) => Some(v),
            _ => None,
        },
        |r: Receipt| NewReceipt {
            receipt: r.encode(),
        },
    )
    .await
}

/// `PUT /v1/queues/{queue}/receipts/{receipt}/visibility`.
pub async fn change_visibility_one(
    State(node): State<Arc<Node>>,
    Path((name, receipt)): Path<(String, String)>,
    Json(change): Json<VisibilityChange>,
) -> HttpResult<Json<NewReceipt>> {
    check_name(&name)?;
    let receipt = parse_receipt(&receipt)?;
    let ms = check_visibility(change.seconds)?;
    let response = node
        .propose(Command::ChangeVisibility {
            queue: name,
            entries: vec![(receipt, ms)],
        })
        .await?;
    match response {
        Response::Visibility(mut v) if v.len() == 1 => {
            let r = v.pop().expect("one").map_err(HttpError::from)?;
            Ok(Json(NewReceipt {
                receipt: r.encode(),
            }))
        }
        other => Err(unexpected(&other).into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeekParams {
    pub max: Option<u32>,
}

/// `GET /v1/queues/{queue}/peek?max=n`.
pub async fn peek(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(params): Query<PeekParams>,
) -> HttpResult<Json<Messages>> {
    check_name(&name)?;
    let max = params.max.unwrap_or(1);
    if max == 0 || max > limits::PEEK_MAX {
        return Err(HttpError::invalid(format!(
            "max is {max}; it must be between 1 and {}",
            limits::PEEK_MAX
        )));
    }
    let group = node.group_of(&name);
    let found = {
        let state = group.state.read();
        state.queues.get(&name)?.peek(now_ms(), max as usize)
    };
    let mut messages = Vec::with_capacity(found.len());
    for p in &found {
        if let Some(m) = peeked(group, p)? {
            messages.push(m);
        }
    }
    Ok(Json(Messages { messages }))
}

fn message_not_found(name: &str) -> HttpError {
    HttpError::new(
        ErrorCode::MessageNotFound,
        format!(
            "no such message in queue {name}: it was acknowledged, expired, purged or never sent here"
        ),
    )
}

/// `GET /v1/queues/{queue}/messages/{id}`.
pub async fn get_message(
    State(node): State<Arc<Node>>,
    Path((name, id)): Path<(String, String)>,
) -> HttpResult<Json<Message>> {
    check_name(&name)?;
    let Some((group_id, loc)) = parse_message_id(&id) else {
        return Err(HttpError::invalid(format!(
            "{id:?} is not a message id (28 hex digits, as a send answers)"
        )));
    };
    let group = node.group_of(&name);
    if group_id != group.id {
        return Err(message_not_found(&name));
    }
    let found = {
        let state = group.state.read();
        state.queues.get(&name)?.look(loc, now_ms())
    };
    let Some(p) = found else {
        return Err(message_not_found(&name));
    };
    peeked(group, &p)?
        .map(Json)
        .ok_or_else(|| message_not_found(&name))
}

/// `GET /v1/queues/{queue}/messages?key=&since=&until=&limit=`: messages in the queue,
/// oldest first.
pub async fn query(
    State(node): State<Arc<Node>>,
    Path(name): Path<String>,
    Query(query): Query<MessageQuery>,
) -> HttpResult<Json<Messages>> {
    check_name(&name)?;
    let limit = query.limit.unwrap_or(limits::LIST_LIMIT_DEFAULT);
    if limit == 0 || limit > limits::QUERY_LIMIT_MAX {
        return Err(HttpError::invalid(format!(
            "limit is {limit}; it must be between 1 and {}",
            limits::QUERY_LIMIT_MAX
        )));
    }
    let since = query
        .since
        .map(|t| t.timestamp_millis().max(0) as u64)
        .unwrap_or(0);
    let until = query
        .until
        .map(|t| t.timestamp_millis().max(0) as u64)
        .unwrap_or(u64::MAX);
    if since > until {
        return Err(HttpError::invalid("since is after until"));
    }
    let now = now_ms();
    let group = node.group_of(&name);
    let found: Vec<Peeked> = {
        let state = group.state.read();
        let queue = state.queues.get(&name)?;
        queue
            .sent_between(since, until, QUERY_SCAN_MAX)
            .into_iter()
            .filter_map(|loc| queue.look(loc, now))
            .collect()
    };
    let mut messages = Vec::new();
    for p in &found {
        if messages.len() >= limit as usize {
            break;
        }
        let sent_in_range = |m: &Message| {
            let at = m.sent_at.timestamp_millis().max(0) as u64;
            at >= since && at <= until
        };
        if let Some(m) = peeked(group, p)?
            && (query.key.is_none() || m.key == query.key)
            && sent_in_range(&m)
        {
            messages.push(m);
        }
    }
    Ok(Json(Messages { messages }))
}
