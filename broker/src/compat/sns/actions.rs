//! SNS actions over the v1 handlers: each reads its parameters and writes the inside of
//! its `<{Action}Result>` element (`None` for actions that answer with none).

use std::collections::{BTreeMap, HashSet};

use axum::extract::State;
use sluice_client::{
    Endpoint, ErrorCode, PublishMessage, Subscription, SubscriptionFilter, SubscriptionSpec,
    TopicAttributesUpdate, names,
};

use super::error::SnsError;
use super::notification::{subscription_arn, topic_arn};
use super::{Ctx, Params, policy};
use crate::compat::attributes::{SUBJECT, attribute_values, to_v1_attributes};
use crate::compat::sqs::actions::{ACCOUNT, queue_of_arn};
use crate::http::extract::{Json, Path};
use crate::http::topics;
use crate::node::Node;
use crate::xml::Writer;

pub const ACTIONS: &[&str] = &[
    "CreateTopic",
    "DeleteTopic",
    "ListTopics",
    "GetTopicAttributes",
    "SetTopicAttributes",
    "Subscribe",
    "ConfirmSubscription",
    "Unsubscribe",
    "ListSubscriptions",
    "ListSubscriptionsByTopic",
    "GetSubscriptionAttributes",
    "SetSubscriptionAttributes",
    "Publish",
    "PublishBatch",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

/// Items in a page of a list, as SNS pages them.
const PAGE: usize = 100;
/// SNS's limit on a message with its attributes, and on a whole batch.
const MESSAGE_BYTES_MAX: usize = 262_144;
const BATCH_MAX: usize = 10;
const SUBJECT_MAX: usize = 100;

pub async fn run(ctx: &Ctx, action: &str, p: &Params) -> Result<Option<String>, SnsError> {
    match action {
        "CreateTopic" => create_topic(ctx, p).await,
        "DeleteTopic" => delete_topic(ctx, p).await,
        "ListTopics" => list_topics(ctx, p).await,
        "GetTopicAttributes" => get_topic_attributes(ctx, p),
        "SetTopicAttributes" => Err(SnsError::unsupported(
            "Invalid parameter: Sluice keeps no SNS topic attributes (DisplayName, Policy, DeliveryPolicy); a topic's retention and size limit are set through the v1 API",
        )),
        "Subscribe" => subscribe(ctx, p).await,
        "ConfirmSubscription" => Err(SnsError::invalid_parameter(
            "Invalid parameter: Token: Sluice confirms subscriptions when they are made and issues no tokens",
        )),
        "Unsubscribe" => unsubscribe(ctx, p).await,
        "ListSubscriptions" => list_subscriptions(ctx, p, None).await,
        "ListSubscriptionsByTopic" => {
            let topic = topic_of_arn(p.required("TopicArn")?)?;
            ctx.allow_topic(&topic)?;
            list_subscriptions(ctx, p, Some(&topic)).await
        }
        "GetSubscriptionAttributes" => get_subscription_attributes(ctx, p),
        "SetSubscriptionAttributes" => set_subscription_attributes(ctx, p).await,
        "Publish" => publish(ctx, p).await,
        "PublishBatch" => publish_batch(ctx, p).await,
        "TagResource" | "UntagResource" | "ListTagsForResource" => Err(SnsError::unsupported(
            "Invalid parameter: Sluice keeps no tags on SNS topics",
        )),
        other => Err(SnsError::invalid_action(other)),
    }
}

/// `arn:aws:sns:<region>:<account>:<topic>`: the topic (any region and account name
/// this broker, which is one account).
fn topic_of_arn(arn: &str) -> Result<String, SnsError> {
    match arn.split(':').collect::<Vec<_>>()[..] {
        ["arn", _, "sns", _, _, topic] if names::validate_name("topic", topic).is_ok() => {
            Ok(topic.to_string())
        }
        _ => Err(SnsError::invalid_parameter(format!(
            "Invalid parameter: TopicArn: {arn:?} is not a topic ARN (arn:aws:sns:<region>:<account>:<topic>)"
        ))),
    }
}

/// `arn:aws:sns:<region>:<account>:<topic>:<subscription>`.
fn subscription_of_arn(arn: &str) -> Result<(String, String), SnsError> {
    match arn.split(':').collect::<Vec<_>>()[..] {
        ["arn", _, "sns", _, _, topic, sub]
            if names::validate_name("topic", topic).is_ok()
                && names::validate_name("subscription", sub).is_ok() =>
        {
            Ok((topic.to_string(), sub.to_string()))
        }
        _ => Err(SnsError::invalid_parameter(format!(
            "Invalid parameter: SubscriptionArn: {arn:?} is not a subscription ARN"
        ))),
    }
}

fn topic_not_found() -> SnsError {
    SnsError::not_found("Topic does not exist")
}

fn check_topic_exists(node: &Node, topic: &str) -> Result<(), SnsError> {
    node.group_of(topic)
        .state
        .read()
        .topics
        .get(topic)
        .map(|_| ())
        .map_err(|_| topic_not_found())
}

async fn create_topic(ctx: &Ctx, p: &Params) -> Result<Option<String>, SnsError> {
    let name = p.required("Name")?;
    let valid = name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.ends_with(".fifo") {
        return Err(SnsError::invalid_parameter(
            "Invalid parameter: Sluice has no FIFO topics; fan out into a FIFO queue is not supported either",
        ));
    }
    if !valid || names::validate_name("topic", name).is_err() {
        return Err(SnsError::invalid_parameter(format!(
            "Invalid parameter: Topic Name: {name:?}: 1 to 255 letters, digits, hyphens and underscores, starting with a letter or digit"
        )));
    }
    for (attribute, value) in p.map("Attributes")? {
        let harmless = attribute == "FifoTopic" && value == "false";
        if !harmless {
            return Err(SnsError::unsupported(format!(
                "Invalid parameter: Attributes: Sluice keeps no topic attribute {attribute}"
            )));
        }
    }
    if !p.indexed("Tags.member")?.is_empty() {
        return Err(SnsError::unsupported(
            "Invalid parameter: Tags: Sluice keeps no tags on SNS topics",
        ));
    }
    ctx.allow_topic(name)?;
    topics::put(
        State(ctx.node.clone()),
        Path(name.to_string()),
        Json(TopicAttributesUpdate::default()),
    )
    .await?;
    Ok(Writer::default()
        .field("TopicArn", &topic_arn(ctx.region(), name))
        .done())
}

async fn delete_topic(ctx: &Ctx, p: &Params) -> Result<Option<String>, SnsError> {
    let topic = topic_of_arn(p.required("TopicArn")?)?;
    ctx.allow_topic(&topic)?;
    match topics::delete(State(ctx.node.clone()), Path(topic)).await {
        // Deleting a topic that is gone succeeds, as in SNS.
        Err(e) if e.0.code == ErrorCode::TopicNotFound => Ok(None),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(None),
    }
}

async fn list_topics(ctx: &Ctx, p: &Params) -> Result<Option<String>, SnsError> {
    let after = p.get("NextToken").filter(|t| !t.is_empty());
    let (page, more) = ctx
        .node
        .list_across(
            PAGE,
            |state, _| {
                let (page, more) = state.topics.list("", after, PAGE);
                (page.into_iter().map(|t| t.name.clone()).collect(), more)
            },
            String::as_str,
        )
        .await?;
    let mut xml = Writer::default();
    xml.open("Topics");
    for name in &page {
        if ctx.allow_topic(name).is_ok() {
            xml.open("member")
                .field("TopicArn", &topic_arn(ctx.region(), name))
                .close("member");
        }
    }
    xml.close("Topics");
    if more && let Some(last) = page.last() {
        xml.field("NextToken", last);
    }
    Ok(xml.done())
}

fn get_topic_attributes(ctx: &Ctx, p: &Params) -> Result<Option<String>, SnsError> {
    let topic = topic_of_arn(p.required("TopicArn")?)?;
    ctx.allow_topic(&topic)?;
    let state = ctx.node.group_of(&topic).state.read();
    let t = state.topics.get(&topic).map_err(|_| topic_not_found())?;
    let attributes = BTreeMap::from([
        ("TopicArn", topic_arn(ctx.region(), &topic)),
        ("Owner", ACCOUNT.to_string()),
        ("DisplayName", String::new()),
        ("SubscriptionsConfirmed", t.subscriptions.len().to_string()),
        ("SubscriptionsPending", "0".to_string()),
        ("SubscriptionsDeleted", "0".to_string()),
    ]);
    Ok(Writer::default().map("Attributes", &attributes).done())
}

/// A subscription's SNS protocol, endpoint, and whether it delivers raw.
fn protocol_of(ctx: &Ctx, s: &Subscription) -> (&'static str, String, bool) {
    let raw = s.format != sluice_client::DeliveryFormat::Sns;
    match &s.endpoint {
        Endpoint::Queue(q) => (
            "sqs",
            format!("arn:aws:sqs:{}:{ACCOUNT}:{q}", ctx.region()),
            raw,
        ),
        Endpoint::Http { url } => ("http", url.clone(), raw),
        Endpoint::Email { to } if raw => ("email", to.clone(), raw),
        Endpoint::Email { to } => ("email-json", to.clone(), raw),
        Endpoint::Websocket {} => ("sluice-websocket", String::new(), raw),
        Endpoint::Pull {} => ("sluice-pull", String::new(), raw),
    }
}

/// The settings `Subscribe` and `SetSubscriptionAttributes` take.
fn apply_attribute(
    spec: &mut SubscriptionSpec,
    protocol: &str,
    name: &str,
    value: &str,
) -> Result<(), SnsError> {
    match name {
        "FilterPolicy" => {
            spec.filter =
                Some(policy::parse(value)?).filter(|f| *f != SubscriptionFilter::default());
        }
        "FilterPolicyScope" => {
            if value != "MessageAttributes" {
                return Err(SnsError::unsupported(format!(
                    "Invalid parameter: FilterPolicyScope: {value}: Sluice filters on message attributes only"
                )));
            }
        }
        "RawMessageDelivery" => {
            let raw = match value.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(SnsError::invalid_parameter(format!(
                        "Invalid parameter: RawMessageDelivery: {value:?} is not true or false"
                    )));
                }
            };
            if !matches!(protocol, "sqs" | "http" | "https") {
                return Err(SnsError::invalid_parameter(format!(
                    "Invalid parameter: RawMessageDelivery: applies to sqs and http subscriptions, not {protocol}"
                )));
            }
            spec.format = Some(if raw {
                sluice_client::DeliveryFormat::Simplified
            } else {
                sluice_client::DeliveryFormat::Sns
            });
        }
        "RedrivePolicy" => {
            spec.dead_letter_queue = if value.trim().is_empty() {
                None
            } else {
                let policy: serde_json::Value = serde_json::from_str(value).map_err(|e| {
                    SnsError::invalid_parameter(format!(
                        "Invalid parameter: RedrivePolicy: not JSON ({e})"
                    ))
                })?;
                let arn = policy["deadLetterTargetArn"].as_str().ok_or_else(|| {
                    SnsError::invalid_parameter(
                        "Invalid parameter: RedrivePolicy: deadLetterTargetArn is missing",
                    )
                })?;
                Some(queue_of_arn(arn).map_err(SnsError::from)?)
            };
        }
        other => {
            return Err(SnsError::invalid_parameter(format!(
                "Invalid parameter: AttributeName: Sluice does not support the subscription attribute {other} (it has FilterPolicy, FilterPolicyScope, RawMessageDelivery and RedrivePolicy)"
            )));
        }
    }
    Ok(())
}

/// A subscription id in the shape of SNS's (a UUID).
fn new_subscription_name() -> String {
    let t = sluice_client::random_token();
    format!(
        "{}-{}-{}-{}-{}",
        &t[0..8],
        &t[8..12],
        &t[12..16],
        &t[16..20],
        &t[20..32]
    )
}

async fn subscribe(ctx: &Ctx, p: &Params) -> Result<Option<String>, SnsError> {
    let topic = topic_of_arn(p.required("TopicArn")?)?;
    ctx.allow_topic(&topic)?;
    check_topic_exists(&ctx.node, &topic)?;
    let protocol = p.required("Protocol")?.to_ascii_lowercase();
    let endpoint = p.get("Endpoint").unwrap_or_default();
    let missing_endpoint = || SnsError::missing_parameter("Endpoint");
    let (target, format) = match protocol.as_str() {
        "sqs" => {
            if endpoint.is_empty() {
                return Err(missing_endpoint());
            }
            let queue = queue_of_arn(endpoint).map_err(|_| {
                SnsError::invalid_parameter(format!(
                    "Invalid parameter: SQS endpoint ARN: {endpoint:?}"
                ))
            })?;
            ctx.allow_queue(&queue)?;
            (Endpoint::Queue(queue), sluice_client::DeliveryFormat::Sns)
        }
        "http" | "https" => {
            if endpoint.is_empty() {
                return Err(missing_endpoint());
            }
            if !endpoint
                .to_ascii_lowercase()
                .starts_with(&format!("{protocol}://"))
            {
                return Err(SnsError::invalid_parameter(format!(
                    "Invalid parameter: Endpoint: {endpoint:?} must start with {protocol}://"
                )));
            }
            let url = endpoint.to_string();
            (Endpoint::Http { url }, sluice_client::DeliveryFormat::Sns)
        }
        "email" | "email-json" => {
            if endpoint.is_empty() {
                return Err(missing_endpoint());
            }
            let format = if protocol == "email" {
                sluice_client::DeliveryFormat::Simplified
            } else {
                sluice_client::DeliveryFormat::Sns
            };
            (
                Endpoint::Email {
                    to: endpoint.to_string(),
                },
                format,
            )
        }
        other => {
            return Err(SnsError::invalid_parameter(format!(
                "Invalid parameter: Protocol: Sluice delivers to sqs, http, email and email-json endpoints, not {other}"
            )));
        }
    };
    let mut spec = SubscriptionSpec::new(target);
    spec.format = Some(format);
    let attributes = p.map("Attributes")?;
    for (name, value) in &attributes {
        apply_attribute(&mut spec, &protocol, name, value)?;
    }
    // The same endpoint subscribed again is the same subscription, as in SNS; with other
    // settings it is refused.
    let existing = {
        let state = ctx.node.group_of(&topic).state.read();
        let t = state.topics.get(&topic).map_err(|_| topic_not_found())?;
        t.subscriptions
            .values()
            .map(|s| {
                let view = topics::subscription_view(t, s);
                (
                    protocol_of(ctx, &view).0 == protocol || protocol == "https",
                    view,
                )
            })
            .find(|(same_protocol, view)| *same_protocol && view.endpoint == spec.endpoint)
            .map(|(_, view)| view)
    };
    if let Some(view) = existing {
        let same = attributes.is_empty()
            || (view.format == spec.format.unwrap_or(format)
                && Some(&view.filter).filter(|f| **f != SubscriptionFilter::default())
                    == spec.filter.as_ref()
                && view.dead_letter_queue == spec.dead_letter_queue);
        if !same {
            return Err(SnsError::invalid_parameter(
                "Invalid parameter: Attributes: Subscription already exists with different attributes",
            ));
        }
        return Ok(Writer::default()
            .field(
                "SubscriptionArn",
                &subscription_arn(ctx.region(), &topic, &view.name),
            )
            .done());
    }
    let name = new_subscription_name();
    topics::put_subscription(
        State(ctx.node.clone()),
        Path((topic.clone(), name.clone())),
        Json(spec),
    )
    .await?;
    Ok(Writer::default()
        .field(
            "SubscriptionArn",
            &subscription_arn(ctx.region(), &topic, &name),
        )
        .done())
}

async fn unsubscribe(ctx: &Ctx, p: &Params) -> Result<Option<String>, SnsError> {
    let (topic, sub) = subscription_of_arn(p.required("SubscriptionArn")?)?;
    ctx.allow_topic(&topic)?;
    match topics::delete_subscription(State(ctx.node.clone()), Path((topic, sub))).await {
        Err(e)
            if matches!(
                e.0.code,
                ErrorCode::SubscriptionNotFound | ErrorCode::TopicNotFound
            ) =>
        {
            Err(SnsError::not_found("Subscription does not exist"))
        }
        Err(e) => Err(e.into()),
        Ok(_) => Ok(None),
    }
}

async fn list_subscriptions(
    ctx: &Ctx,
    p: &Params,
    only: Option<&str>,
) -> Result<Option<String>, SnsError> {
    let after = p.get("NextToken").filter(|t| !t.is_empty());
    let mut all: Vec<Subscription> = Vec::new();
    match only {
        Some(topic) => {
            let state = ctx.node.group_of(topic).state.read();
            let t = state.topics.get(topic).map_err(|_| topic_not_found())?;
            all.extend(
                t.subscriptions
                    .values()
                    .map(|s| topics::subscription_view(t, s)),
            );
        }
        None => {
            for group in ctx.node.caught_up_data_groups().await? {
                let state = group.state.read();
                for t in state.topics.iter() {
                    if ctx.allow_topic(&t.name).is_ok() {
                        all.extend(
                            t.subscriptions
                                .values()
                                .map(|s| topics::subscription_view(t, s)),
                        );
                    }
                }
            }
        }
    }
    let token = |s: &Subscription| format!("{}/{}", s.topic, s.name);
    all.sort_by_key(token);
    let start = after.map_or(0, |after| {
        all.partition_point(|s| token(s).as_str() <= after)
    });
    let page = &all[start.min(all.len())..];
    let mut xml = Writer::default();
    xml.open("Subscriptions");
    for s in page.iter().take(PAGE) {
        let (protocol, endpoint, _) = protocol_of(ctx, s);
        xml.open("member")
            .field(
                "SubscriptionArn",
                &subscription_arn(ctx.region(), &s.topic, &s.name),
            )
            .field("Owner", ACCOUNT)
            .field("Protocol", protocol)
            .field("Endpoint", &endpoint)
            .field("TopicArn", &topic_arn(ctx.region(), &s.topic))
            .close("member");
    }
    xml.close("Subscriptions");
    if page.len() > PAGE {
        xml.field("NextToken", &token(&page[PAGE - 1]));
    }
    Ok(xml.done())
}

fn subscription(ctx: &Ctx, arn: &str) -> Result<Subscription, SnsError> {
    let (topic, sub) = subscription_of_arn(arn)?;
    ctx.allow_topic(&topic)?;
    let state = ctx.node.group_of(&topic).state.read();
    state
        .topics
        .get(&topic)
        .ok()
        .and_then(|t| {
            t.subscriptions
                .get(&sub)
                .map(|s| topics::subscription_view(t, s))
        })
        .ok_or_else(|| SnsError::not_found("Subscription does not exist"))
}

fn get_subscription_attributes(ctx: &Ctx, p: &Params) -> Result<Option<String>, SnsError> {
    let arn = p.required("SubscriptionArn")?;
    let s = subscription(ctx, arn)?;
    let (protocol, endpoint, raw) = protocol_of(ctx, &s);
    let mut attributes = BTreeMap::from([
        ("SubscriptionArn", arn.to_string()),
        ("TopicArn", topic_arn(ctx.region(), &s.topic)),
        ("Owner", ACCOUNT.to_string()),
        ("Protocol", protocol.to_string()),
        ("Endpoint", endpoint),
        ("ConfirmationWasAuthenticated", "true".to_string()),
        ("PendingConfirmation", "false".to_string()),
        ("RawMessageDelivery", raw.to_string()),
    ]);
    if let Some(text) = policy::render(&s.filter) {
        attributes.insert("FilterPolicy", text);
        attributes.insert("FilterPolicyScope", "MessageAttributes".to_string());
    }
    if let Some(dlq) = &s.dead_letter_queue {
        attributes.insert(
            "RedrivePolicy",
            serde_json::json!({
                "deadLetterTargetArn": format!("arn:aws:sqs:{}:{ACCOUNT}:{dlq}", ctx.region())
            })
            .to_string(),
        );
    }
    Ok(Writer::default().map("Attributes", &attributes).done())
}

async fn set_subscription_attributes(ctx: &Ctx, p: &Params) -> Result<Option<String>, SnsError> {
    let s = subscription(ctx, p.required("SubscriptionArn")?)?;
    let name = p.required("AttributeName")?;
    let value = p.get("AttributeValue").unwrap_or_default();
    let (protocol, _, _) = protocol_of(ctx, &s);
    let mut spec = SubscriptionSpec {
        endpoint: s.endpoint.clone(),
        filter: Some(s.filter.clone()),
        retry: Some(s.retry),
        format: Some(s.format),
        dead_letter_queue: s.dead_letter_queue.clone(),
        max_in_flight: Some(s.max_in_flight),
        secret: Some(s.secret.clone()),
    };
    apply_attribute(&mut spec, protocol, name, value)?;
    topics::put_subscription(
        State(ctx.node.clone()),
        Path((s.topic.clone(), s.name.clone())),
        Json(spec),
    )
    .await?;
    Ok(None)
}

/// One message of `Publish` or of a `PublishBatch` entry, checked; and its size.
fn message_of(p: &Params) -> Result<(PublishMessage, usize), SnsError> {
    let text = p.required("Message")?;
    if p.get("MessageGroupId").is_some() || p.get("MessageDeduplicationId").is_some() {
        return Err(SnsError::invalid_parameter(
            "Invalid parameter: MessageGroupId and MessageDeduplicationId are for FIFO topics, which Sluice does not have",
        ));
    }
    let body = match p.get("MessageStructure") {
        None | Some("") => text.to_string(),
        Some("json") => {
            let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
                .map_err(|_| {
                    SnsError::invalid_parameter(
                        "Invalid parameter: Message Structure - JSON message body failed to parse",
                    )
                })?;
            let default = doc.get("default").and_then(|d| d.as_str()).ok_or_else(|| {
                SnsError::invalid_parameter(
                    "Invalid parameter: Message Structure - No default entry in JSON message body",
                )
            })?;
            if doc.len() > 1 {
                return Err(SnsError::unsupported(
                    "Invalid parameter: Message Structure - Sluice sends one message to every protocol; give only \"default\"",
                ));
            }
            default.to_string()
        }
        Some(other) => {
            return Err(SnsError::invalid_parameter(format!(
                "Invalid parameter: MessageStructure: {other:?}; the only structure is json"
            )));
        }
    };
    let attributes = attribute_values(p.message_attributes()?)?;
    let mut v1 = to_v1_attributes(&attributes);
    if let Some(subject) = p.get("Subject") {
        let ok = !subject.is_empty()
            && subject.chars().count() <= SUBJECT_MAX
            && subject
                .chars()
                .all(|c| c.is_ascii() && !c.is_ascii_control());
        if !ok {
            return Err(SnsError::invalid_parameter(
                "Invalid parameter: Subject: 1 to 100 printable ASCII characters, without line breaks",
            ));
        }
        v1.insert(SUBJECT.to_string(), subject.to_string());
    }
    let bytes = body.len()
        + attributes
            .iter()
            .map(|(k, a)| k.len() + a.data_type.len() + a.value.len())
            .sum::<usize>();
    if bytes > MESSAGE_BYTES_MAX {
        return Err(SnsError::invalid_parameter(format!(
            "Invalid parameter: Message too long: {bytes} bytes with its attributes; the limit is {MESSAGE_BYTES_MAX}"
        )));
    }
    Ok((
        PublishMessage {
            body: Some(body),
            attributes: v1,
            ..PublishMessage::default()
        },
        bytes,
    ))
}

fn publish_topic(ctx: &Ctx, p: &Params) -> Result<String, SnsError> {
    if p.get("PhoneNumber").is_some() {
        return Err(SnsError::invalid_parameter(
            "Invalid parameter: PhoneNumber: Sluice does not send SMS",
        ));
    }
    let arn = p
        .get("TopicArn")
        .or_else(|| p.get("TargetArn"))
        .filter(|a| !a.is_empty())
        .ok_or_else(|| SnsError::missing_parameter("TopicArn or TargetArn"))?;
    let topic = topic_of_arn(arn)?;
    ctx.allow_topic(&topic)?;
    check_topic_exists(&ctx.node, &topic)?;
    Ok(topic)
}

async fn publish(ctx: &Ctx, p: &Params) -> Result<Option<String>, SnsError> {
    let topic = publish_topic(ctx, p)?;
    let (message, _) = message_of(p)?;
    let mut results = topics::publish_messages(&ctx.node, topic, None, vec![message]).await?;
    match results.pop() {
        Some(Ok(sent)) => Ok(Writer::default().field("MessageId", &sent.id).done()),
        Some(Err(e)) => Err(e.into()),
        None => Err(SnsError::internal("no result for the message")),
    }
}

async fn publish_batch(ctx: &Ctx, p: &Params) -> Result<Option<String>, SnsError> {
    let topic = publish_topic(ctx, p)?;
    let entries = p.indexed("PublishBatchRequestEntries.member")?;
    if entries.is_empty() {
        return Err(SnsError::batch(
            "EmptyBatchRequest",
            "The batch request doesn't contain any entries",
        ));
    }
    if entries.len() > BATCH_MAX {
        return Err(SnsError::batch(
            "TooManyEntriesInBatchRequest",
            format!(
                "The batch request contains {} entries; the limit is {BATCH_MAX}",
                entries.len()
            ),
        ));
    }
    let mut ids = HashSet::new();
    for entry in &entries {
        let id = entry.required("Id")?;
        let ok = id.len() <= 80
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(SnsError::batch(
                "InvalidBatchEntryId",
                format!(
                    "The batch entry id {id:?} is not 1 to 80 letters, digits, hyphens and underscores"
                ),
            ));
        }
        if !ids.insert(id) {
            return Err(SnsError::batch(
                "BatchEntryIdsNotDistinct",
                format!("Two batch entries have the id {id:?}"),
            ));
        }
    }
    // Entries that fail their checks fail alone; the rest are published together.
    let mut checked = Vec::new();
    let mut total = 0;
    for entry in &entries {
        let id = entry.get("Id").unwrap_or_default().to_string();
        let outcome = message_of(entry).map(|(message, bytes)| {
            total += bytes;
            message
        });
        checked.push((id, outcome));
    }
    if total > MESSAGE_BYTES_MAX {
        return Err(SnsError::batch(
            "BatchRequestTooLong",
            format!("The batch is {total} bytes; the limit is {MESSAGE_BYTES_MAX}"),
        ));
    }
    let messages: Vec<PublishMessage> = checked
        .iter()
        .filter_map(|(_, o)| o.as_ref().ok().cloned())
        .collect();
    let mut sent = if messages.is_empty() {
        Vec::new()
    } else {
        topics::publish_messages(&ctx.node, topic, None, messages).await?
    }
    .into_iter();
    let mut xml = Writer::default();
    let mut failed = Writer::default();
    xml.open("Successful");
    for (id, outcome) in checked {
        let result = match outcome {
            Ok(_) => sent
                .next()
                .unwrap_or_else(|| {
                    Err(sluice_client::ApiError::new(
                        ErrorCode::Internal,
                        "no outcome",
                    ))
                })
                .map_err(SnsError::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(s) => {
                xml.open("member")
                    .field("Id", &id)
                    .field("MessageId", &s.id)
                    .close("member");
            }
            Err(e) => {
                failed
                    .open("member")
                    .field("Id", &id)
                    .field("Code", e.code)
                    .field("Message", &e.message)
                    .field("SenderFault", &(e.status < 500).to_string())
                    .close("member");
            }
        }
    }
    xml.close("Successful").open("Failed");
    xml.0.push_str(&failed.0);
    xml.close("Failed");
    Ok(xml.done())
}
