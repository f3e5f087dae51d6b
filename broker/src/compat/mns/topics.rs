//! MNS topics and subscriptions over the v1 handlers. An MNS subscription is the v1
//! subscription of the same name; its endpoint is an HTTP URL, a queue
//! (`acs:mns:<region>:<account>:queues/<name>`) or a mail address
//! (`mail:directmail:<address>`).

use axum::extract::State;
use axum::http::{Method, StatusCode};
use sluice_client::{
    DeliveryFormat, Endpoint, ErrorCode, PublishMessage, RetryPolicy, RetryStrategy, Subscription,
    SubscriptionFilter, SubscriptionSpec, TopicAttributesUpdate,
};

use super::queues::page;
use super::{
    ACCOUNT, Answer, Ctx, MnsError, MnsRequest, Outcome, body_md5, list_answer, number,
    properties_to_v1, seconds,
};
use crate::http::extract::{Json, Path};
use crate::http::topics;
use crate::xml::{Element, Writer};

/// MNS's default (and largest) message size for a topic.
const MAX_MESSAGE_BYTES_DEFAULT: u32 = 65_536;
/// MNS's limit on a message tag.
const TAG_MAX: usize = 16;

pub async fn run(ctx: &Ctx, r: &MnsRequest) -> Result<Answer, Outcome> {
    let segments: Vec<&str> = r.segments.iter().map(String::as_str).collect();
    let meta = r.query("metaoverride") == Some("true");
    match (&r.method, segments.as_slice()) {
        (&Method::GET, []) => list(ctx, r).await,
        (&Method::PUT, [t]) if meta => set_attributes(ctx, t, r).await,
        (&Method::PUT, [t]) => create(ctx, t, r).await,
        (&Method::GET, [t]) => get_attributes(ctx, t),
        (&Method::DELETE, [t]) => delete(ctx, t).await,
        (&Method::POST, [t, "messages"]) => publish(ctx, t, r).await,
        (&Method::GET, [t, "subscriptions"]) => list_subscriptions(ctx, t, r),
        (&Method::PUT, [t, "subscriptions", s]) if meta => {
            set_subscription_attributes(ctx, t, s, r).await
        }
        (&Method::PUT, [t, "subscriptions", s]) => subscribe(ctx, t, s, r).await,
        (&Method::GET, [t, "subscriptions", s]) => get_subscription_attributes(ctx, t, s),
        (&Method::DELETE, [t, "subscriptions", s]) => unsubscribe(ctx, t, s).await,
        _ => Err(MnsError::new(
            "InvalidRequestURL",
            400,
            format!(
                "{} /topics/{} is not an MNS topic operation",
                r.method,
                r.segments.join("/")
            ),
        )
        .into()),
    }
}

fn checked_topic(ctx: &Ctx, t: &str) -> Result<String, MnsError> {
    topics::check_topic(t).map_err(|e| MnsError::new("InvalidTopicName", 400, e.0.message))?;
    ctx.allow_topic(t)?;
    Ok(t.to_string())
}

fn topic_location(ctx: &Ctx, t: &str) -> String {
    format!("{}/topics/{t}", ctx.base_url)
}

fn subscription_location(ctx: &Ctx, t: &str, s: &str) -> String {
    format!("{}/topics/{t}/subscriptions/{s}", ctx.base_url)
}

/// `MaximumMessageSize` of a `<Topic>` document; LoggingEnabled=true is refused.
fn max_bytes_of(doc: &Element) -> Result<Option<u32>, MnsError> {
    if doc
        .text_of("LoggingEnabled")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Err(MnsError::unsupported(
            "LoggingEnabled: Sluice has no MNS operation logs; its metrics are at /metrics",
        ));
    }
    doc.text_of("MaximumMessageSize")
        .map(|t| {
            let n = number("MaximumMessageSize", t)?;
            u32::try_from(n)
                .map_err(|_| MnsError::invalid(format!("MaximumMessageSize {n} is out of range")))
        })
        .transpose()
}

fn body_or_empty(r: &MnsRequest) -> Result<Element, MnsError> {
    if r.body.is_empty() {
        Ok(Element::default())
    } else {
        r.document()
    }
}

async fn create(ctx: &Ctx, t: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_topic(ctx, t)?;
    let asked = max_bytes_of(&body_or_empty(r)?)?;
    let existing = {
        let state = ctx.node.group_of(&name).state.read();
        state
            .topics
            .get(&name)
            .ok()
            .map(|t| t.config.max_message_bytes)
    };
    if let Some(have) = existing {
        if asked.is_some_and(|want| want != have) {
            return Err(MnsError::new(
                "TopicAlreadyExist",
                409,
                format!("The topic {name} already exists with other attributes"),
            )
            .into());
        }
        return Ok(Answer::located(
            StatusCode::NO_CONTENT,
            topic_location(ctx, &name),
        ));
    }
    topics::put(
        State(ctx.node.clone()),
        Path(name.clone()),
        Json(TopicAttributesUpdate {
            max_message_bytes: Some(asked.unwrap_or(MAX_MESSAGE_BYTES_DEFAULT)),
            ..TopicAttributesUpdate::default()
        }),
    )
    .await?;
    Ok(Answer::located(
        StatusCode::CREATED,
        topic_location(ctx, &name),
    ))
}

async fn set_attributes(ctx: &Ctx, t: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_topic(ctx, t)?;
    let max = max_bytes_of(&body_or_empty(r)?)?;
    exists(ctx, &name)?;
    topics::put(
        State(ctx.node.clone()),
        Path(name),
        Json(TopicAttributesUpdate {
            max_message_bytes: max,
            ..TopicAttributesUpdate::default()
        }),
    )
    .await?;
    Ok(Answer::empty(StatusCode::NO_CONTENT))
}

fn exists(ctx: &Ctx, name: &str) -> Result<(), MnsError> {
    let state = ctx.node.group_of(name).state.read();
    state
        .topics
        .get(name)
        .map(|_| ())
        .map_err(|_| MnsError::topic_not_exist(name))
}

fn get_attributes(ctx: &Ctx, t: &str) -> Result<Answer, Outcome> {
    let name = checked_topic(ctx, t)?;
    let topic = topics::get_view(&ctx.node, &name).map_err(|_| MnsError::topic_not_exist(&name))?;
    let mut xml = Writer::default();
    xml.field("TopicName", &topic.name)
        .field("CreateTime", &seconds(topic.created_at))
        .field("LastModifyTime", &seconds(topic.created_at))
        .field(
            "MaximumMessageSize",
            &topic.attributes.max_message_bytes.to_string(),
        )
        .field(
            "MessageRetentionPeriod",
            &topic.attributes.retention_seconds.to_string(),
        )
        .field("MessageCount", &topic.messages.to_string())
        .field("LoggingEnabled", "False");
    Ok(Answer::document(StatusCode::OK, "Topic", &xml.0))
}

async fn delete(ctx: &Ctx, t: &str) -> Result<Answer, Outcome> {
    let name = checked_topic(ctx, t)?;
    match topics::delete(State(ctx.node.clone()), Path(name)).await {
        // Deleting a topic that is gone succeeds, as in MNS.
        Err(e) if e.0.code == ErrorCode::TopicNotFound => {}
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    Ok(Answer::empty(StatusCode::NO_CONTENT))
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
        let (page, _) = state.topics.list(&prefix, marker.as_deref(), usize::MAX);
        all.extend(page.into_iter().map(|t| t.name.clone()));
    }
    all.sort();
    let visible: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|name| ctx.allow_topic(name).is_ok())
        .collect();
    Ok(list_answer(
        "Topics",
        "Topic",
        "TopicURL",
        &visible,
        limit,
        |t| topic_location(ctx, t),
    ))
}

async fn publish(ctx: &Ctx, t: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_topic(ctx, t)?;
    let doc = r.document()?;
    let body = doc
        .text_of("MessageBody")
        .filter(|b| !b.is_empty())
        .ok_or_else(|| MnsError::invalid("a message needs a MessageBody"))?;
    let tag = doc.text_of("MessageTag").filter(|t| !t.is_empty());
    if tag.is_some_and(|t| t.chars().count() > TAG_MAX) {
        return Err(
            MnsError::invalid(format!("MessageTag is longer than {TAG_MAX} characters")).into(),
        );
    }
    if doc.child("MessageAttributes").is_some() {
        return Err(MnsError::unsupported(
            "MessageAttributes (DirectMail, DirectSMS) are not supported: Sluice mails through its own SMTP server to mail endpoints",
        )
        .into());
    }
    if doc.text_of("MessageGroupId").is_some_and(|g| !g.is_empty()) {
        return Err(MnsError::unsupported("Sluice topics have no message groups").into());
    }
    exists(ctx, &name)?;
    let message = PublishMessage {
        body: Some(body.to_string()),
        tag: tag.map(str::to_string),
        attributes: properties_to_v1(&doc)?,
        ..PublishMessage::default()
    };
    let mut results = topics::publish_messages(&ctx.node, name, None, vec![message]).await?;
    let sent = match results.pop() {
        Some(Ok(sent)) => sent,
        Some(Err(e)) => return Err(MnsError::from_api(e).into()),
        None => return Err(MnsError::internal("no outcome").into()),
    };
    let mut xml = Writer::default();
    xml.field("MessageId", &sent.id)
        .field("MessageBodyMD5", &body_md5(body));
    Ok(Answer::document(StatusCode::CREATED, "Message", &xml.0))
}

/// An MNS endpoint as a v1 one.
fn endpoint_of(text: &str) -> Result<Endpoint, MnsError> {
    if text.starts_with("http://") || text.starts_with("https://") {
        return Ok(Endpoint::Http {
            url: text.to_string(),
        });
    }
    if let Some(to) = text.strip_prefix("mail:directmail:") {
        return Ok(Endpoint::Email { to: to.to_string() });
    }
    if text.starts_with("acs:mns:")
        && let Some((_, queue)) = text.rsplit_once(":queues/")
    {
        return Ok(Endpoint::Queue(queue.to_string()));
    }
    Err(MnsError::invalid(format!(
        "Endpoint {text:?} is not one Sluice delivers to: http(s)://..., acs:mns:<region>:<account>:queues/<queue> or mail:directmail:<address>"
    )))
}

/// A v1 endpoint as MNS writes it.
fn endpoint_text(ctx: &Ctx, endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Http { url } => url.clone(),
        Endpoint::Queue(q) => format!("acs:mns:{}:{ACCOUNT}:queues/{q}", ctx.node.region),
        Endpoint::Email { to } => format!("mail:directmail:{to}"),
        Endpoint::Websocket {} => "sluice:websocket".into(),
        Endpoint::Pull {} => "sluice:pull".into(),
    }
}

fn strategy_of(text: &str) -> Result<RetryStrategy, MnsError> {
    match text {
        "BACKOFF_RETRY" => Ok(RetryStrategy::BackoffRetry),
        "EXPONENTIAL_DECAY_RETRY" => Ok(RetryStrategy::ExponentialDecayRetry),
        other => Err(MnsError::invalid(format!(
            "NotifyStrategy {other:?} is not BACKOFF_RETRY or EXPONENTIAL_DECAY_RETRY"
        ))),
    }
}

fn strategy_text(s: RetryStrategy) -> &'static str {
    match s {
        RetryStrategy::BackoffRetry => "BACKOFF_RETRY",
        RetryStrategy::ExponentialDecayRetry => "EXPONENTIAL_DECAY_RETRY",
    }
}

fn format_of(text: &str) -> Result<DeliveryFormat, MnsError> {
    match text {
        "XML" => Ok(DeliveryFormat::Xml),
        "JSON" => Ok(DeliveryFormat::Json),
        "SIMPLIFIED" => Ok(DeliveryFormat::Simplified),
        other => Err(MnsError::invalid(format!(
            "NotifyContentFormat {other:?} is not XML, JSON or SIMPLIFIED"
        ))),
    }
}

fn format_text(f: DeliveryFormat) -> &'static str {
    match f {
        DeliveryFormat::Xml => "XML",
        DeliveryFormat::Json => "JSON",
        DeliveryFormat::Simplified => "SIMPLIFIED",
        DeliveryFormat::Sns => "SNS",
    }
}

fn retry(strategy: RetryStrategy) -> RetryPolicy {
    RetryPolicy {
        strategy,
        max_retries: None,
        interval_seconds: None,
    }
}

fn subscription(ctx: &Ctx, t: &str, s: &str) -> Result<Subscription, MnsError> {
    let state = ctx.node.group_of(t).state.read();
    let topic = state
        .topics
        .get(t)
        .map_err(|_| MnsError::topic_not_exist(t))?;
    topic
        .subscriptions
        .get(s)
        .map(|sub| topics::subscription_view(topic, sub))
        .ok_or_else(|| MnsError::subscription_not_exist(t, s))
}

async fn subscribe(ctx: &Ctx, t: &str, s: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_topic(ctx, t)?;
    topics::check_subscription(s)
        .map_err(|e| MnsError::new("InvalidSubscriptionName", 400, e.0.message))?;
    let doc = r.document()?;
    let endpoint = endpoint_of(
        doc.text_of("Endpoint")
            .filter(|e| !e.is_empty())
            .ok_or_else(|| MnsError::invalid("a subscription needs an Endpoint"))?,
    )?;
    if let Endpoint::Queue(q) = &endpoint {
        ctx.allow_queue(q)?;
    }
    let strategy = strategy_of(doc.text_of("NotifyStrategy").unwrap_or("BACKOFF_RETRY"))?;
    // MNS pushes XML by default; into a queue Sluice puts the body as published unless
    // XML is asked for, so consumers with the SDK's default base64 decoding read it.
    let default_format = match endpoint {
        Endpoint::Queue(_) => "SIMPLIFIED",
        _ => "XML",
    };
    let format = format_of(
        doc.text_of("NotifyContentFormat")
            .filter(|f| !f.is_empty())
            .unwrap_or(default_format),
    )?;
    let filter = match doc.text_of("FilterTag").filter(|t| !t.is_empty()) {
        Some(tag) if tag.chars().count() > TAG_MAX => {
            return Err(MnsError::invalid(format!(
                "FilterTag is longer than {TAG_MAX} characters"
            ))
            .into());
        }
        Some(tag) => Some(SubscriptionFilter {
            tags: vec![tag.to_string()],
            ..SubscriptionFilter::default()
        }),
        None => None,
    };
    exists(ctx, &name)?;
    if let Ok(existing) = subscription(ctx, &name, s) {
        let same = existing.endpoint == endpoint
            && existing.retry.strategy == strategy
            && existing.format == format
            && existing.filter == filter.clone().unwrap_or_default();
        if !same {
            return Err(MnsError::new(
                "SubscriptionAlreadyExist",
                409,
                format!(
                    "The subscription {s} of topic {name} already exists with other attributes"
                ),
            )
            .into());
        }
        return Ok(Answer::located(
            StatusCode::NO_CONTENT,
            subscription_location(ctx, &name, s),
        ));
    }
    let spec = SubscriptionSpec {
        filter,
        retry: Some(retry(strategy)),
        format: Some(format),
        ..SubscriptionSpec::new(endpoint)
    };
    topics::put_subscription(
        State(ctx.node.clone()),
        Path((name.clone(), s.to_string())),
        Json(spec),
    )
    .await?;
    Ok(Answer::located(
        StatusCode::CREATED,
        subscription_location(ctx, &name, s),
    ))
}

async fn set_subscription_attributes(
    ctx: &Ctx,
    t: &str,
    s: &str,
    r: &MnsRequest,
) -> Result<Answer, Outcome> {
    let name = checked_topic(ctx, t)?;
    let existing = subscription(ctx, &name, s)?;
    let doc = body_or_empty(r)?;
    let strategy = match doc.text_of("NotifyStrategy").filter(|v| !v.is_empty()) {
        Some(text) => strategy_of(text)?,
        None => return Ok(Answer::empty(StatusCode::NO_CONTENT)),
    };
    if strategy == existing.retry.strategy {
        return Ok(Answer::empty(StatusCode::NO_CONTENT));
    }
    let spec = SubscriptionSpec {
        endpoint: existing.endpoint,
        filter: Some(existing.filter),
        retry: Some(retry(strategy)),
        format: Some(existing.format),
        dead_letter_queue: existing.dead_letter_queue,
        max_in_flight: Some(existing.max_in_flight),
        secret: Some(existing.secret),
    };
    topics::put_subscription(
        State(ctx.node.clone()),
        Path((name, s.to_string())),
        Json(spec),
    )
    .await?;
    Ok(Answer::empty(StatusCode::NO_CONTENT))
}

fn get_subscription_attributes(ctx: &Ctx, t: &str, s: &str) -> Result<Answer, Outcome> {
    let name = checked_topic(ctx, t)?;
    let sub = subscription(ctx, &name, s)?;
    let mut xml = Writer::default();
    xml.field("TopicOwner", ACCOUNT)
        .field("TopicName", &name)
        .field("SubscriptionName", &sub.name)
        .field("Endpoint", &endpoint_text(ctx, &sub.endpoint));
    if let [tag] = sub.filter.tags.as_slice() {
        xml.field("FilterTag", tag);
    }
    xml.field("NotifyStrategy", strategy_text(sub.retry.strategy))
        .field("NotifyContentFormat", format_text(sub.format))
        .field("CreateTime", &seconds(sub.created_at))
        .field("LastModifyTime", &seconds(sub.created_at));
    Ok(Answer::document(StatusCode::OK, "Subscription", &xml.0))
}

async fn unsubscribe(ctx: &Ctx, t: &str, s: &str) -> Result<Answer, Outcome> {
    let name = checked_topic(ctx, t)?;
    match topics::delete_subscription(State(ctx.node.clone()), Path((name, s.to_string()))).await {
        // Unsubscribing what is gone succeeds, as in MNS.
        Err(e)
            if matches!(
                e.0.code,
                ErrorCode::SubscriptionNotFound | ErrorCode::TopicNotFound
            ) => {}
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    Ok(Answer::empty(StatusCode::NO_CONTENT))
}

fn list_subscriptions(ctx: &Ctx, t: &str, r: &MnsRequest) -> Result<Answer, Outcome> {
    let name = checked_topic(ctx, t)?;
    let (prefix, marker, limit) = page(r)?;
    let state = ctx.node.group_of(&name).state.read();
    let topic = state
        .topics
        .get(&name)
        .map_err(|_| MnsError::topic_not_exist(&name))?;
    let names: Vec<&str> = topic
        .subscriptions
        .keys()
        .map(String::as_str)
        .filter(|s| s.starts_with(&prefix) && marker.as_deref().is_none_or(|m| *s > m))
        .collect();
    Ok(list_answer(
        "Subscriptions",
        "Subscription",
        "SubscriptionURL",
        &names,
        limit,
        |s| subscription_location(ctx, &name, s),
    ))
}
