//! MNS queues and their messages over the v1 handlers.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use sluice_client::{
    AckRequest, Message, Queue, QueueAttributesUpdate, ReceiveRequest, SendMessage, TopicMessage,
    VisibilityEntry,
};

use super::{
    Answer, Ctx, Failure, MnsError, MnsRequest, Outcome, body_md5, document, list_answer, number,
    properties_to_v1, properties_xml, seconds,
};
use crate::http::extract::{Json, Path, Query};
use crate::http::{messages, queues};
use crate::raft::now_ms;
use crate::topic::config::Format;
use crate::xml::{Element, Writer};

/// MNS's defaults for what a CreateQueue leaves out.
const VISIBILITY_DEFAULT: u32 = 30;
const MAX_MESSAGE_BYTES_DEFAULT: u32 = 65_536;
const RETENTION_DEFAULT: u32 = 345_600;
/// Messages a batch may carry, send or receive.
const BATCH_MAX: usize = 16;
/// The longest long poll MNS allows.
const WAIT_SECONDS_MAX: u32 = 30;

pub async fn run(ctx: &Ctx, r: &MnsRequest) -> Result<Answer, Outcome> {
    let segments: Vec<&str> = r.segments.iter().map(String::as_str).collect();
    match (&r.method, segments.as_slice()) {
        (&Method::GET, []) => list(ctx, r).await,
        (&Method::PUT, [q]) if r.query("metaoverride") == Some("true") => {
            set_attributes(ctx, q, r).await
        }
        (&Method::PUT, [q]) => create(ctx, q, r).await,
        (&Method::GET, [q]) => get_attributes(ctx, q),
        (&Method::DELETE, [q]) => delete(ctx, q).await,
        (&Method::POST, [q, "messages"]) => send(ctx, q, r).await,
        (&Method::GET, [q, "messages"]) if r.query("peekonly") == Some("true") => {
            peek(ctx, q, r).await
        }
        (&Method::GET, [q, "messages"]) => receive(ctx, q, r).await,
        (&Method::DELETE, [q, "messages"]) => delete_messages(ctx, q, r).await,
        (&Method::PUT, [q, "messages"]) => change_visibility(ctx, q, r).await,
        _ => Err(MnsError::new(
            "InvalidRequestURL",
            400,
            format!(
                "{} /queues/{} is not an MNS queue operation",
                r.method,
                r.segments.join("/")
            ),
        )
        .into()),
    }
}

fn checked_name(ctx: &Ctx, q: &str) -> Result<String, MnsError> {
    queues::check_name(q).map_err(|e| MnsError::new("InvalidQueueName", 400, e.0.message))?;
    ctx.allow_queue(q)?;
    Ok(q.to_string())
}

fn view(ctx: &Ctx, q: &str) -> Result<Queue, MnsError> {
    queues::get_view(&ctx.node, q).map_err(|_| MnsError::queue_not_exist(q))
}

/// The attributes a `<Queue>` document sets.
fn attributes_of(doc: &Element) -> Result<QueueAttributesUpdate, MnsError> {
    let field = |name: &str| -> Result<Option<u32>, MnsError> {
        doc.text_of(name)
            .map(|t| {
                let n = number(name, t)?;
                u32::try_from(n)
                    .map_err(|_| MnsError::invalid(format!("{name} is out of range: {n}")))
            })
            .transpose()
    };
    if doc
        .text_of("LoggingEnabled")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Err(MnsError::unsupported(
            "LoggingEnabled: Sluice has no MNS operation logs; its metrics are at /metrics",
        ));
    }
    Ok(QueueAttributesUpdate {
        visibility_seconds: field("VisibilityTimeout")?,
        delay_seconds: field("DelaySeconds")?,
        retention_seconds: field("MessageRetentionPeriod")?,
        max_message_bytes: field("MaximumMessageSize")?,
        receive_wait_seconds: field("PollingWaitSeconds")?,
        ..QueueAttributesUpdate::default()
    })
}

fn location(ctx: &Ctx, q: &str) -> String {
    format!("{}/queues/{q}", ctx.base_url)
}

async fn create(ctx: &Ctx, q: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_name(ctx, q)?;
    let doc = if r.body.is_empty() {
        Element::default()
    } else {
        r.document()?
    };
    let asked = attributes_of(&doc)?;
    if let Ok(existing) = queues::get_view(&ctx.node, &name) {
        let a = existing.attributes;
        let same = [
            (asked.visibility_seconds, a.visibility_seconds),
            (asked.delay_seconds, a.delay_seconds),
            (asked.retention_seconds, a.retention_seconds),
            (asked.max_message_bytes, a.max_message_bytes),
            (asked.receive_wait_seconds, a.receive_wait_seconds),
        ]
        .iter()
        .all(|(want, have)| want.is_none_or(|w| w == *have));
        if !same {
            return Err(MnsError::new(
                "QueueAlreadyExist",
                409,
                format!("The queue {name} already exists with other attributes"),
            )
            .into());
        }
        return Ok(Answer::located(
            StatusCode::NO_CONTENT,
            location(ctx, &name),
        ));
    }
    let update = QueueAttributesUpdate {
        visibility_seconds: asked.visibility_seconds.or(Some(VISIBILITY_DEFAULT)),
        max_message_bytes: asked.max_message_bytes.or(Some(MAX_MESSAGE_BYTES_DEFAULT)),
        retention_seconds: asked.retention_seconds.or(Some(RETENTION_DEFAULT)),
        ..asked
    };
    queues::put(State(ctx.node.clone()), Path(name.clone()), Json(update)).await?;
    Ok(Answer::located(StatusCode::CREATED, location(ctx, &name)))
}

async fn set_attributes(ctx: &Ctx, q: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_name(ctx, q)?;
    view(ctx, &name)?;
    let update = attributes_of(&r.document()?)?;
    queues::put(State(ctx.node.clone()), Path(name), Json(update)).await?;
    Ok(Answer::empty(StatusCode::NO_CONTENT))
}

fn get_attributes(ctx: &Ctx, q: &str) -> Result<Answer, Outcome> {
    let name = checked_name(ctx, q)?;
    let queue = view(ctx, &name)?;
    let a = &queue.attributes;
    let mut xml = Writer::default();
    xml.field("QueueName", &queue.name)
        .field("CreateTime", &seconds(queue.created_at))
        .field("LastModifyTime", &seconds(queue.created_at))
        .field("VisibilityTimeout", &a.visibility_seconds.to_string())
        .field("MaximumMessageSize", &a.max_message_bytes.to_string())
        .field("MessageRetentionPeriod", &a.retention_seconds.to_string())
        .field("DelaySeconds", &a.delay_seconds.to_string())
        .field("PollingWaitSeconds", &a.receive_wait_seconds.to_string())
        .field("ActiveMessages", &queue.counts.visible.to_string())
        .field("InactiveMessages", &queue.counts.in_flight.to_string())
        .field("DelayMessages", &queue.counts.delayed.to_string())
        .field("LoggingEnabled", "False");
    Ok(Answer::document(StatusCode::OK, "Queue", &xml.0))
}

async fn delete(ctx: &Ctx, q: &str) -> Result<Answer, Outcome> {
    let name = checked_name(ctx, q)?;
    match queues::delete(State(ctx.node.clone()), Path(name)).await {
        // Deleting a queue that is gone succeeds, as in MNS.
        Err(e) if e.0.code == sluice_client::ErrorCode::QueueNotFound => {}
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    Ok(Answer::empty(StatusCode::NO_CONTENT))
}

/// `x-mns-prefix`, `x-mns-marker` and `x-mns-ret-number` of a list request.
pub fn page(r: &MnsRequest) -> Result<(String, Option<String>, usize), MnsError> {
    let limit = match r.header("x-mns-ret-number") {
        None => 1000,
        Some(n) => match number("x-mns-ret-number", n)? {
            n @ 1..=1000 => n as usize,
            n => {
                return Err(MnsError::invalid(format!(
                    "x-mns-ret-number is {n}; it must be between 1 and 1000"
                )));
            }
        },
    };
    Ok((
        r.header("x-mns-prefix").unwrap_or_default().to_string(),
        r.header("x-mns-marker").map(str::to_string),
        limit,
    ))
}

async fn list(ctx: &Ctx, r: &MnsRequest) -> Result<Answer, Outcome> {
    let (prefix, marker, limit) = page(r)?;
    let mut all: Vec<String> = Vec::new();
    for group in ctx
        .node
        .caught_up_data_groups()
        .await
        .map_err(MnsError::from)?
    {
        let state = group.state.read();
        let (page, _) = state.queues.list(&prefix, marker.as_deref(), usize::MAX);
        all.extend(page.into_iter().map(|q| q.name.clone()));
    }
    all.sort();
    let visible: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|name| ctx.allow_queue(name).is_ok())
        .collect();
    Ok(list_answer(
        "Queues",
        "Queue",
        "QueueURL",
        &visible,
        limit,
        |q| location(ctx, q),
    ))
}

/// One `<Message>` of a send, as a v1 send.
fn message_of(m: &Element) -> Result<SendMessage, MnsError> {
    let body = m
        .text_of("MessageBody")
        .filter(|b| !b.is_empty())
        .ok_or_else(|| MnsError::invalid("a message needs a MessageBody"))?;
    let delay = m
        .text_of("DelaySeconds")
        .map(|d| number("DelaySeconds", d))
        .transpose()?;
    let priority = m
        .text_of("Priority")
        .map(|p| number("Priority", p))
        .transpose()?;
    Ok(SendMessage {
        body: Some(body.to_string()),
        delay_seconds: delay
            .map(|d| {
                u32::try_from(d)
                    .map_err(|_| MnsError::invalid(format!("DelaySeconds {d} is out of range")))
            })
            .transpose()?,
        priority: priority
            .map(|p| match p {
                1..=16 => Ok(p as u8),
                _ => Err(MnsError::invalid(format!(
                    "Priority is {p}; it must be between 1 and 16"
                ))),
            })
            .transpose()?,
        group_id: m
            .text_of("MessageGroupId")
            .filter(|g| !g.is_empty())
            .map(str::to_string),
        attributes: properties_to_v1(m)?,
        ..SendMessage::default()
    })
}

async fn send(ctx: &Ctx, q: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_name(ctx, q)?;
    let doc = r.document()?;
    let batch = doc.name == "Messages";
    let entries: Vec<&Element> = if batch {
        doc.children
            .iter()
            .filter(|c| c.name == "Message")
            .collect()
    } else if doc.name == "Message" {
        vec![&doc]
    } else {
        return Err(MnsError::malformed(format!(
            "the body's root is <{}>; a send takes <Message> or <Messages>",
            doc.name
        ))
        .into());
    };
    if entries.is_empty() || entries.len() > BATCH_MAX {
        return Err(MnsError::invalid(format!(
            "a batch has {} messages; it must have 1 to {BATCH_MAX}",
            entries.len()
        ))
        .into());
    }
    view(ctx, &name)?;
    let checked: Vec<Result<SendMessage, MnsError>> =
        entries.iter().map(|m| message_of(m)).collect();
    if !batch && let Some(Err(e)) = checked.first() {
        return Err(e.clone().into());
    }
    let valid: Vec<SendMessage> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    let mut sent = if valid.is_empty() {
        Vec::new()
    } else {
        messages::send_messages(&ctx.node, name, None, valid).await?
    }
    .into_iter();
    // Each entry's answer: its id and digest, or its error.
    let mut answers = Vec::with_capacity(entries.len());
    let mut failed = false;
    for (entry, check) in entries.iter().zip(checked) {
        let outcome = match check {
            Ok(_) => sent
                .next()
                .unwrap_or_else(|| {
                    Err(sluice_client::ApiError::new(
                        sluice_client::ErrorCode::Internal,
                        "no outcome",
                    ))
                })
                .map_err(MnsError::from),
            Err(e) => Err(e),
        };
        let mut xml = Writer::default();
        match outcome {
            Ok(s) => {
                let body = entry.text_of("MessageBody").unwrap_or_default();
                xml.field("MessageId", &s.id)
                    .field("MessageBodyMD5", &body_md5(body));
            }
            Err(e) if !batch => return Err(e.into()),
            Err(e) => {
                failed = true;
                xml.field("ErrorCode", e.code)
                    .field("ErrorMessage", &e.message);
            }
        }
        answers.push(xml.0);
    }
    if !batch {
        return Ok(Answer::document(
            StatusCode::CREATED,
            "Message",
            &answers[0],
        ));
    }
    let inner: String = answers
        .iter()
        .map(|a| format!("<Message>{a}</Message>"))
        .collect();
    if failed {
        // Per-entry failures: a failing status with the same document, as MNS answers.
        return Err(Outcome::Failure(Failure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: document("Messages", &inner),
        }));
    }
    Ok(Answer::document(StatusCode::CREATED, "Messages", &inner))
}

/// `numOfMessages` of a batch receive or peek; `None` for a single one.
fn batch_size(r: &MnsRequest) -> Result<Option<u32>, MnsError> {
    r.query("numOfMessages")
        .map(|n| match number("numOfMessages", n)? {
            n @ 1..=16 => Ok(n as u32),
            n => Err(MnsError::invalid(format!(
                "numOfMessages is {n}; it must be between 1 and {BATCH_MAX}"
            ))),
        })
        .transpose()
}

/// A message as a receive or peek shows it.
fn message_xml(m: &Message, next_visible_ms: Option<u64>) -> String {
    let body = m
        .body
        .as_deref()
        .or(m.body_base64.as_deref())
        .unwrap_or_default();
    let mut xml = Writer::default();
    xml.field("MessageId", &m.id);
    if let Some(receipt) = &m.receipt {
        xml.field("ReceiptHandle", receipt);
    }
    xml.field("MessageBodyMD5", &body_md5(body))
        .field("MessageBody", body)
        .field("EnqueueTime", &m.sent_at.timestamp_millis().to_string())
        .field(
            "FirstDequeueTime",
            &m.first_received_at
                .map_or(m.sent_at.timestamp_millis(), |t| t.timestamp_millis())
                .to_string(),
        );
    if let Some(at) = next_visible_ms {
        xml.field("NextVisibleTime", &at.to_string());
    }
    xml.field("DequeueCount", &m.receive_count.to_string())
        .field("Priority", &m.priority.to_string());
    if let Some(group) = &m.group_id {
        xml.field("MessageGroupId", group);
    }
    xml.0.push_str(&properties_xml(&m.attributes));
    xml.0
}

/// A message as MNS consumers read it: from a topic through an `XML`-format
/// subscription, the MNS `<Notification>` document; otherwise the body as sent.
fn as_read(ctx: &Ctx, queue: &str, m: Message) -> Message {
    let Some(topic) = m.topic.clone() else {
        return m;
    };
    let Some((subscription, Format::Xml)) =
        crate::compat::feeding_subscription(&ctx.node, &topic, queue)
    else {
        return m;
    };
    let published = TopicMessage {
        id: m.id.clone(),
        body: m.body.clone(),
        body_base64: m.body_base64.clone(),
        tag: None,
        key: m.key.clone(),
        attributes: m.attributes.clone(),
        published_at: m.sent_at,
        cursor: String::new(),
    };
    Message {
        body: Some(crate::push::deliver::xml_notification(
            &topic,
            &subscription,
            &published,
        )),
        body_base64: None,
        ..m
    }
}

/// The messages of a receive or peek: one `<Message>`, or `<Messages>` for a batch.
fn messages_answer(
    got: &[Message],
    batch: bool,
    next_visible_ms: Option<u64>,
) -> Result<Answer, Outcome> {
    if got.is_empty() {
        return Err(MnsError::message_not_exist().into());
    }
    if !batch {
        return Ok(Answer::document(
            StatusCode::OK,
            "Message",
            &message_xml(&got[0], next_visible_ms),
        ));
    }
    let inner: String = got
        .iter()
        .map(|m| format!("<Message>{}</Message>", message_xml(m, next_visible_ms)))
        .collect();
    Ok(Answer::document(StatusCode::OK, "Messages", &inner))
}

async fn receive(ctx: &Ctx, q: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_name(ctx, q)?;
    let batch = batch_size(r)?;
    let wait = r
        .query("waitseconds")
        .map(|w| match number("waitseconds", w)? {
            w @ 0..=30 => Ok(w as u32),
            w => Err(MnsError::invalid(format!(
                "waitseconds is {w}; it must be between 0 and {WAIT_SECONDS_MAX}"
            ))),
        })
        .transpose()?;
    let queue = view(ctx, &name)?;
    let Json(got) = messages::receive(
        State(ctx.node.clone()),
        Path(name),
        Json(ReceiveRequest {
            max: Some(batch.unwrap_or(1)),
            wait_seconds: wait,
            visibility_seconds: None,
        }),
    )
    .await?;
    let next_visible = now_ms() + u64::from(queue.attributes.visibility_seconds) * 1000;
    let got: Vec<Message> = got
        .messages
        .into_iter()
        .map(|m| as_read(ctx, &queue.name, m))
        .collect();
    messages_answer(&got, batch.is_some(), Some(next_visible))
}

async fn peek(ctx: &Ctx, q: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_name(ctx, q)?;
    let batch = batch_size(r)?;
    view(ctx, &name)?;
    let Json(got) = messages::peek(
        State(ctx.node.clone()),
        Path(name.clone()),
        Query(messages::PeekParams {
            max: Some(batch.unwrap_or(1)),
        }),
    )
    .await?;
    let got: Vec<Message> = got
        .messages
        .into_iter()
        .map(|m| as_read(ctx, &name, m))
        .collect();
    messages_answer(&got, batch.is_some(), None)
}

async fn delete_messages(ctx: &Ctx, q: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_name(ctx, q)?;
    view(ctx, &name)?;
    let (handles, batch) = match r.query("ReceiptHandle") {
        Some(handle) => (vec![handle.to_string()], false),
        None => {
            let doc = r.document()?;
            let handles: Vec<String> = doc
                .children
                .iter()
                .filter(|c| c.name == "ReceiptHandle")
                .map(|c| c.text.clone())
                .collect();
            if handles.is_empty() || handles.len() > BATCH_MAX {
                return Err(MnsError::invalid(format!(
                    "a batch delete has {} receipt handles; it must have 1 to {BATCH_MAX}",
                    handles.len()
                ))
                .into());
            }
            (handles, true)
        }
    };
    let Json(results) = messages::ack(
        State(ctx.node.clone()),
        Path(name),
        Json(AckRequest {
            receipts: handles.clone(),
        }),
    )
    .await?;
    let mut errors = Writer::default();
    let mut first = None;
    for (handle, result) in handles.iter().zip(results.results) {
        if let sluice_client::BatchResult::Error { error: e } = result {
            let e = MnsError::from_api(e);
            errors
                .open("Error")
                .field("ErrorCode", e.code)
                .field("ErrorMessage", &e.message)
                .field("ReceiptHandle", handle)
                .close("Error");
            first.get_or_insert(e);
        }
    }
    match first {
        None => Ok(Answer::empty(StatusCode::NO_CONTENT)),
        Some(e) if !batch => Err(e.into()),
        Some(_) => Err(Outcome::Failure(Failure {
            status: StatusCode::NOT_FOUND,
            body: document("Errors", &errors.0),
        })),
    }
}

async fn change_visibility(ctx: &Ctx, q: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_name(ctx, q)?;
    let handle = r
        .query("ReceiptHandle")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            MnsError::new(
                "MissingReceiptHandle",
                400,
                "the ReceiptHandle parameter is missing",
            )
        })?;
    let seconds = r
        .query("VisibilityTimeout")
        .ok_or_else(|| {
            MnsError::new(
                "MissingVisibilityTimeout",
                400,
                "the VisibilityTimeout parameter is missing",
            )
        })
        .and_then(|t| number("VisibilityTimeout", t))?;
    let seconds = u32::try_from(seconds)
        .ok()
        .filter(|s| *s <= sluice_client::limits::VISIBILITY_SECONDS_MAX)
        .ok_or_else(|| {
            MnsError::invalid(format!(
                "VisibilityTimeout is {seconds}; it must be between 0 and 43200"
            ))
        })?;
    view(ctx, &name)?;
    let mut results = messages::change_visibility_of(
        &ctx.node,
        name,
        &[VisibilityEntry {
            receipt: handle.to_string(),
            seconds,
        }],
        false,
    )
    .await?;
    let result = results
        .pop()
        .ok_or_else(|| MnsError::internal("no outcome"))?;
    match result {
        sluice_client::BatchResult::Ok(new) => {
            let mut xml = Writer::default();
            xml.field("ReceiptHandle", &new.receipt).field(
                "NextVisibleTime",
                &(now_ms() + u64::from(seconds) * 1000).to_string(),
            );
            Ok(Answer::document(StatusCode::OK, "ChangeVisibility", &xml.0))
        }
        sluice_client::BatchResult::Error { error } => Err(MnsError::from_api(error).into()),
    }
}
