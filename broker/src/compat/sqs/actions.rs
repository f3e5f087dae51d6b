//! SQS actions over the v1 handlers. Inputs and outputs have the JSON protocol's shape;
//! `query.rs` converts for the query protocol.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sluice_client::{
    AckRequest, BatchResult, DeadLetter, ErrorCode, ListQueues, Message, Queue,
    QueueAttributesUpdate, ReceiveRequest, RedriveRequest, RedriveState, RedriveTask, SendMessage,
    VisibilityEntry, names,
};

use super::digest::{md5_hex, md5_of_attributes};
use super::error::SqsError;
use crate::compat::attributes::{
    AttributeInput, AttributeValue, attribute_values, from_v1_attributes, to_v1_attributes,
};
use crate::compat::auth::AccessKey;
use crate::compat::sns::notification::Published;
use crate::http::extract::{Json, Path, Query};
use crate::http::{messages, queues, redrive};
use crate::node::Node;
use crate::topic::config::Format;

/// The account every queue URL and ARN names: a broker is one account.
pub const ACCOUNT: &str = "000000000000";
/// Where a message's `AWSTraceHeader` system attribute is kept.
const TRACE_HEADER: &str = "AWS.SQS.TraceHeader";
/// Where a FIFO message's de-duplication id is kept, to answer `MessageDeduplicationId`.
const DEDUP_ID: &str = "AWS.SQS.DeduplicationId";
const BATCH_MAX: usize = 10;
/// SQS's limit on a message, and on the sum of a batch's messages.
const MESSAGE_BYTES_MAX: usize = 262_144;

/// What every action knows of the request besides its input.
pub struct Ctx {
    pub node: Arc<Node>,
    /// `http://host:port` as the client addressed this broker.
    pub base_url: String,
    /// The key that signed the request, when the broker checks signatures.
    pub key: Option<AccessKey>,
}

impl Ctx {
    /// Refuses a queue the request's key may not use.
    fn allow(&self, queue: &str) -> Result<(), SqsError> {
        match &self.key {
            Some(key) if !key.allows_queue(queue) => Err(SqsError::access_denied(queue)),
            _ => Ok(()),
        }
    }

    fn allows(&self, queue: &str) -> bool {
        self.allow(queue).is_ok()
    }

    /// The queue a `QueueUrl` names, if the key may use it.
    fn queue(&self, url: &str) -> Result<String, SqsError> {
        let name = queue_name(url)?;
        self.allow(&name)?;
        Ok(name)
    }

    /// The queue an ARN names, if the key may use it.
    fn queue_of_arn(&self, arn: &str) -> Result<String, SqsError> {
        let name = queue_of_arn(arn)?;
        self.allow(&name)?;
        Ok(name)
    }

    fn queue_url(&self, name: &str) -> String {
        format!("{}/{ACCOUNT}/{name}", self.base_url)
    }

    fn arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{ACCOUNT}:{name}", self.node.region)
    }
}

/// Runs one action; its output in the JSON protocol's shape.
pub async fn run(ctx: &Ctx, action: &str, input: Value) -> Result<Value, SqsError> {
    match action {
        "CreateQueue" => create_queue(ctx, parse(input)?).await,
        "GetQueueUrl" => get_queue_url(ctx, parse(input)?),
        "ListQueues" => list_queues(ctx, parse(input)?).await,
        "GetQueueAttributes" => get_queue_attributes(ctx, parse(input)?),
        "SetQueueAttributes" => set_queue_attributes(ctx, parse(input)?).await,
        "DeleteQueue" => delete_queue(ctx, parse(input)?).await,
        "PurgeQueue" => purge_queue(ctx, parse(input)?).await,
        "ListDeadLetterSourceQueues" => list_dead_letter_sources(ctx, parse(input)?).await,
        "SendMessage" => send_message(ctx, parse(input)?).await,
        "SendMessageBatch" => send_message_batch(ctx, parse(input)?).await,
        "ReceiveMessage" => receive_message(ctx, parse(input)?).await,
        "DeleteMessage" => delete_message(ctx, parse(input)?).await,
        "DeleteMessageBatch" => delete_message_batch(ctx, parse(input)?).await,
        "ChangeMessageVisibility" => change_visibility(ctx, parse(input)?).await,
        "ChangeMessageVisibilityBatch" => change_visibility_batch(ctx, parse(input)?).await,
        "TagQueue" => tag_queue(ctx, parse(input)?).await,
        "UntagQueue" => untag_queue(ctx, parse(input)?).await,
        "ListQueueTags" => list_queue_tags(ctx, parse(input)?),
        "StartMessageMoveTask" => start_move_task(ctx, parse(input)?).await,
        "ListMessageMoveTasks" => list_move_tasks(ctx, parse(input)?).await,
        "CancelMessageMoveTask" => cancel_move_task(ctx, parse(input)?).await,
        "AddPermission" | "RemovePermission" => Err(SqsError::unsupported(
            "queue policies are an AWS IAM feature; Sluice does not have them",
        )),
        other => Err(SqsError::invalid_action(other)),
    }
}

/// Reads an action's input; a wrong or missing member is the caller's error.
fn parse<T: DeserializeOwned>(input: Value) -> Result<T, SqsError> {
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        match inner.strip_prefix("missing field `") {
            Some(rest) => SqsError::missing_parameter(rest.trim_end_matches('`')),
            None => SqsError::invalid_parameter(format!("{path}: {inner}")),
        }
    })
}

/// Numbers arrive as JSON numbers (JSON protocol) or strings (query protocol).
mod lenient {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(i64),
        Text(String),
    }

    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<NumberOrText>::deserialize(d)? {
            None => Ok(None),
            Some(NumberOrText::Number(n)) => Ok(Some(n)),
            Some(NumberOrText::Text(t)) => t
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a whole number"))),
        }
    }

    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        opt_i64(d)?.ok_or_else(|| serde::de::Error::custom("a number is required"))
    }
}

fn in_range(name: &str, value: i64, min: i64, max: i64) -> Result<u32, SqsError> {
    if value < min || value > max {
        return Err(SqsError::invalid_parameter(format!(
            "Value {value} for parameter {name} is invalid. Reason: must be between {min} and {max}."
        )));
    }
    Ok(value as u32)
}

/// The queue a `QueueUrl` names: its last path segment.
fn queue_name(url: &str) -> Result<String, SqsError> {
    let url = url.split(['?', '#']).next().unwrap_or("");
    // The path, after `scheme://authority` when the URL has them.
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => url,
    };
    let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
    if name.is_empty() || names::validate_name("queue", name).is_err() {
        return Err(SqsError::queue_does_not_exist(format!(
            "{url:?} is not the URL of a queue"
        )));
    }
    Ok(name.to_string())
}

/// The queue an ARN names.
pub fn queue_of_arn(arn: &str) -> Result<String, SqsError> {
    let name = arn.rsplit(':').next().unwrap_or("");
    if !arn.starts_with("arn:") || names::validate_name("queue", name).is_err() {
        return Err(SqsError::invalid_parameter(format!(
            "{arn:?} is not the ARN of a queue"
        )));
    }
    Ok(name.to_string())
}

fn view(ctx: &Ctx, name: &str) -> Result<Queue, SqsError> {
    Ok(queues::get_view(&ctx.node, name)?)
}

// ---- queues ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateQueueInput {
    queue_name: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    /// `tags` in the JSON protocol, `Tag.N` in the query protocol.
    #[serde(default, alias = "tags")]
    tags: BTreeMap<String, String>,
}

fn parse_bool(name: &str, value: &str) -> Result<bool, SqsError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SqsError::invalid_attribute_value(format!(
            "Invalid value for the parameter {name}: {value:?} (true or false)"
        ))),
    }
}

fn parse_seconds(name: &str, value: &str, min: i64, max: i64) -> Result<u32, SqsError> {
    let n: i64 = value.trim().parse().map_err(|_| {
        SqsError::invalid_attribute_value(format!(
            "Invalid value for the parameter {name}: {value:?} is not a whole number"
        ))
    })?;
    if n < min || n > max {
        return Err(SqsError::invalid_attribute_value(format!(
            "Invalid value for the parameter {name}: {n} (between {min} and {max})"
        )));
    }
    Ok(n as u32)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedrivePolicy {
    dead_letter_target_arn: String,
    #[serde(deserialize_with = "lenient::i64")]
    max_receive_count: i64,
}

/// SQS queue attributes as a v1 update. Attributes that belong to AWS (IAM policies,
/// KMS keys) are accepted and have no effect.
fn to_update(attributes: &BTreeMap<String, String>) -> Result<QueueAttributesUpdate, SqsError> {
    let mut update = QueueAttributesUpdate::default();
    for (name, value) in attributes {
        match name.as_str() {
            "VisibilityTimeout" => {
                update.visibility_seconds = Some(parse_seconds(name, value, 0, 43_200)?)
            }
            "DelaySeconds" => update.delay_seconds = Some(parse_seconds(name, value, 0, 900)?),
            "MessageRetentionPeriod" => {
                update.retention_seconds = Some(parse_seconds(name, value, 60, 1_209_600)?)
            }
            "MaximumMessageSize" => {
                update.max_message_bytes = Some(parse_seconds(name, value, 1_024, 262_144)?)
            }
            "ReceiveMessageWaitTimeSeconds" => {
                update.receive_wait_seconds = Some(parse_seconds(name, value, 0, 20)?)
            }
            "FifoQueue" => update.fifo = Some(parse_bool(name, value)?),
            "ContentBasedDeduplication" => update.content_dedup = Some(parse_bool(name, value)?),
            "RedrivePolicy" if value.trim().is_empty() => update.dead_letter = Some(None),
            "RedrivePolicy" => {
                let policy: RedrivePolicy = serde_json::from_str(value).map_err(|e| {
                    SqsError::invalid_attribute_value(format!(
                        "Invalid value for the parameter RedrivePolicy: {e}"
                    ))
                })?;
                let max_receives = in_range("maxReceiveCount", policy.max_receive_count, 1, 1000)
                    .map_err(|e| SqsError::invalid_attribute_value(e.message))?;
                update.dead_letter = Some(Some(DeadLetter {
                    queue: queue_of_arn(&policy.dead_letter_target_arn)
                        .map_err(|e| SqsError::invalid_attribute_value(e.message))?,
                    max_receives,
                }));
            }
            "DeduplicationScope" if value == "queue" => {}
            "FifoThroughputLimit" if value == "perQueue" || value == "perMessageGroupId" => {}
            "DeduplicationScope" | "FifoThroughputLimit" => {
                return Err(SqsError::invalid_attribute_value(format!(
                    "{name} {value:?} is not supported by Sluice (de-duplication is per queue)"
                )));
            }
            "Policy"
            | "KmsMasterKeyId"
            | "KmsDataKeyReusePeriodSeconds"
            | "SqsManagedSseEnabled" => {}
            "RedriveAllowPolicy" if value.trim().is_empty() => update.redrive_allow = Some(None),
            "RedriveAllowPolicy" => update.redrive_allow = Some(redrive_allow(value)?),
            other => {
                return Err(SqsError::invalid_attribute_name(format!(
                    "Unknown Attribute {other}."
                )));
            }
        }
    }
    Ok(update)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedriveAllowPolicy {
    redrive_permission: String,
    #[serde(default)]
    source_queue_arns: Vec<String>,
}

/// A `RedriveAllowPolicy` as the queues it allows: `None` for any.
fn redrive_allow(value: &str) -> Result<Option<Vec<String>>, SqsError> {
    let bad = |why: String| {
        SqsError::invalid_attribute_value(format!(
            "Invalid value for the parameter RedriveAllowPolicy: {why}"
        ))
    };
    let policy: RedriveAllowPolicy = serde_json::from_str(value).map_err(|e| bad(e.to_string()))?;
    let sources = policy
        .source_queue_arns
        .iter()
        .map(|arn| queue_of_arn(arn).map_err(|e| bad(e.message)))
        .collect::<Result<Vec<_>, _>>()?;
    match (policy.redrive_permission.as_str(), sources.len()) {
        ("allowAll", 0) => Ok(None),
        ("denyAll", 0) => Ok(Some(Vec::new())),
        ("byQueue", 1..=10) => Ok(Some(sources)),
        ("byQueue", _) => Err(bad("byQueue needs 1 to 10 sourceQueueArns".to_string())),
        ("allowAll" | "denyAll", _) => Err(bad(format!(
            "sourceQueueArns go with byQueue, not {}",
            policy.redrive_permission
        ))),
        (other, _) => Err(bad(format!(
            "redrivePermission {other:?} is not allowAll, denyAll or byQueue"
        ))),
    }
}

/// The attributes of an update that differ from a queue's: `CreateQueue` of an existing
/// queue must not change it.
fn differences(update: &QueueAttributesUpdate, queue: &Queue) -> Vec<&'static str> {
    let a = &queue.attributes;
    let mut out = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            out.push(name);
        }
    };
    check(
        "VisibilityTimeout",
        update
            .visibility_seconds
            .is_some_and(|v| v != a.visibility_seconds),
    );
    check(
        "DelaySeconds",
        update.delay_seconds.is_some_and(|v| v != a.delay_seconds),
    );
    check(
        "MessageRetentionPeriod",
        update
            .retention_seconds
            .is_some_and(|v| v != a.retention_seconds),
    );
    check(
        "MaximumMessageSize",
        update
            .max_message_bytes
            .is_some_and(|v| v != a.max_message_bytes),
    );
    check(
        "ReceiveMessageWaitTimeSeconds",
        update
            .receive_wait_seconds
            .is_some_and(|v| v != a.receive_wait_seconds),
    );
    check("FifoQueue", update.fifo.is_some_and(|v| v != a.fifo));
    check(
        "ContentBasedDeduplication",
        update.content_dedup.is_some_and(|v| v != a.content_dedup),
    );
    check(
        "RedrivePolicy",
        update
            .dead_letter
            .as_ref()
            .is_some_and(|d| d.as_ref() != a.dead_letter.as_ref()),
    );
    check(
        "RedriveAllowPolicy",
        update
            .redrive_allow
            .as_ref()
            .is_some_and(|r| *r != a.redrive_allow),
    );
    out
}

async fn create_queue(ctx: &Ctx, input: CreateQueueInput) -> Result<Value, SqsError> {
    let name = input.queue_name;
    if name.len() > 80 {
        return Err(SqsError::invalid_parameter(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
        ));
    }
    queues::check_name(&name).map_err(|e| SqsError::invalid_parameter(e.0.message))?;
    check_tags(&input.tags)?;
    ctx.allow(&name)?;
    let mut update = to_update(&input.attributes)?;
    if let Some(Some(dlq)) = &update.dead_letter {
        ctx.allow(&dlq.queue)?;
    }
    let fifo_name = name.ends_with(".fifo");
    match update.fifo {
        Some(true) if !fifo_name => {
            return Err(SqsError::invalid_parameter(
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix",
            ));
        }
        Some(false) | None if fifo_name => {
            return Err(SqsError::invalid_parameter(
                "a queue whose name ends in .fifo must have the attribute FifoQueue=true",
            ));
        }
        _ => {}
    }
    if update.fifo == Some(false) {
        update.fifo = None;
    }
    if let Ok(existing) = view(ctx, &name) {
        let differs = differences(&update, &existing);
        if !differs.is_empty() {
            return Err(SqsError::queue_name_exists(format!(
                "A queue already exists with the same name and a different value for attribute {}",
                differs.join(", ")
            )));
        }
    } else {
        queues::put(State(ctx.node.clone()), Path(name.clone()), Json(update)).await?;
        if !input.tags.is_empty() {
            queues::tag(&ctx.node, name.clone(), input.tags, Vec::new()).await?;
        }
    }
    Ok(json!({"QueueUrl": ctx.queue_url(&name)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetQueueUrlInput {
    queue_name: String,
    #[serde(default, rename = "QueueOwnerAWSAccountId")]
    _owner: Option<String>,
}

fn get_queue_url(ctx: &Ctx, input: GetQueueUrlInput) -> Result<Value, SqsError> {
    let name = input.queue_name;
    queues::check_name(&name)
        .map_err(|_| SqsError::queue_does_not_exist("The specified queue does not exist."))?;
    ctx.allow(&name)?;
    view(ctx, &name)?;
    Ok(json!({"QueueUrl": ctx.queue_url(&name)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListQueuesInput {
    #[serde(default)]
    queue_name_prefix: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
}

async fn list_queues(ctx: &Ctx, input: ListQueuesInput) -> Result<Value, SqsError> {
    let paged = input.max_results.is_some();
    let limit = match input.max_results {
        Some(n) => in_range("MaxResults", n, 1, 1000)?,
        None => 1000,
    };
    let Json(page) = queues::list(
        State(ctx.node.clone()),
        Query(ListQueues {
            prefix: input.queue_name_prefix,
            limit: Some(limit),
            after: input.next_token,
        }),
    )
    .await?;
    let mut out = Map::new();
    let urls: Vec<Value> = page
        .queues
        .iter()
        .filter(|q| ctx.allows(&q.name))
        .map(|q| Value::String(ctx.queue_url(&q.name)))
        .collect();
    if !urls.is_empty() {
        out.insert("QueueUrls".into(), Value::Array(urls));
    }
    if paged && let Some(next) = page.next {
        out.insert("NextToken".into(), Value::String(next));
    }
    Ok(Value::Object(out))
}

/// Every attribute SQS reports, from a queue's view.
fn all_attributes(ctx: &Ctx, queue: &Queue) -> BTreeMap<&'static str, String> {
    let a = &queue.attributes;
    let created = (queue.created_at.timestamp()).to_string();
    let mut out = BTreeMap::from([
        ("QueueArn", ctx.arn(&queue.name)),
        (
            "ApproximateNumberOfMessages",
            queue.counts.visible.to_string(),
        ),
        (
            "ApproximateNumberOfMessagesNotVisible",
            queue.counts.in_flight.to_string(),
        ),
        (
            "ApproximateNumberOfMessagesDelayed",
            queue.counts.delayed.to_string(),
        ),
        ("CreatedTimestamp", created.clone()),
        ("LastModifiedTimestamp", created),
        ("VisibilityTimeout", a.visibility_seconds.to_string()),
        ("MaximumMessageSize", a.max_message_bytes.to_string()),
        ("MessageRetentionPeriod", a.retention_seconds.to_string()),
        ("DelaySeconds", a.delay_seconds.to_string()),
        (
            "ReceiveMessageWaitTimeSeconds",
            a.receive_wait_seconds.to_string(),
        ),
        ("SqsManagedSseEnabled", "false".to_string()),
    ]);
    if let Some(d) = &a.dead_letter {
        out.insert(
            "RedrivePolicy",
            json!({"deadLetterTargetArn": ctx.arn(&d.queue), "maxReceiveCount": d.max_receives})
                .to_string(),
        );
    }
    if let Some(sources) = &a.redrive_allow {
        let policy = if sources.is_empty() {
            json!({"redrivePermission": "denyAll"})
        } else {
            json!({
                "redrivePermission": "byQueue",
                "sourceQueueArns": sources.iter().map(|q| ctx.arn(q)).collect::<Vec<_>>(),
            })
        };
        out.insert("RedriveAllowPolicy", policy.to_string());
    }
    if a.fifo {
        out.insert("FifoQueue", "true".into());
        out.insert("ContentBasedDeduplication", a.content_dedup.to_string());
        out.insert("DeduplicationScope", "queue".into());
        out.insert("FifoThroughputLimit", "perQueue".into());
    }
    out
}

/// Attribute names a `GetQueueAttributes` may ask for.
const QUEUE_ATTRIBUTE_NAMES: &[&str] = &[
    "All",
    "Policy",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "ApproximateNumberOfMessagesDelayed",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetQueueAttributesInput {
    queue_url: String,
    #[serde(default)]
    attribute_names: Vec<String>,
}

fn get_queue_attributes(ctx: &Ctx, input: GetQueueAttributesInput) -> Result<Value, SqsError> {
    let queue = view(ctx, &ctx.queue(&input.queue_url)?)?;
    for name in &input.attribute_names {
        if !QUEUE_ATTRIBUTE_NAMES.contains(&name.as_str()) {
            return Err(SqsError::invalid_attribute_name(format!(
                "Unknown Attribute {name}."
            )));
        }
    }
    let all = input.attribute_names.iter().any(|n| n == "All");
    let attributes: Map<String, Value> = all_attributes(ctx, &queue)
        .into_iter()
        .filter(|(name, _)| all || input.attribute_names.iter().any(|n| n == name))
        .map(|(name, value)| (name.to_string(), Value::String(value)))
        .collect();
    if attributes.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({"Attributes": attributes}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SetQueueAttributesInput {
    queue_url: String,
    attributes: BTreeMap<String, String>,
}

async fn set_queue_attributes(
    ctx: &Ctx,
    input: SetQueueAttributesInput,
) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    let queue = view(ctx, &name)?;
    let update = to_update(&input.attributes)?;
    if let Some(Some(dlq)) = &update.dead_letter {
        ctx.allow(&dlq.queue)?;
    }
    if update.fifo.is_some_and(|f| f != queue.attributes.fifo) {
        return Err(SqsError::invalid_attribute_name(
            "FifoQueue cannot be changed after a queue is created",
        ));
    }
    queues::put(State(ctx.node.clone()), Path(name), Json(update))
        .await
        .map_err(|e| match e.0.code {
            ErrorCode::ImmutableAttribute => SqsError::invalid_attribute_value(e.0.message),
            _ => SqsError::from_api(e.0),
        })?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QueueUrlInput {
    queue_url: String,
}

async fn delete_queue(ctx: &Ctx, input: QueueUrlInput) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    queues::delete(State(ctx.node.clone()), Path(name)).await?;
    Ok(json!({}))
}

async fn purge_queue(ctx: &Ctx, input: QueueUrlInput) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    queues::purge(State(ctx.node.clone()), Path(name)).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListSourcesInput {
    queue_url: String,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
}

async fn list_dead_letter_sources(ctx: &Ctx, input: ListSourcesInput) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    view(ctx, &name)?;
    let limit = match input.max_results {
        Some(n) => in_range("MaxResults", n, 1, 1000)? as usize,
        None => 1000,
    };
    let mut sources: Vec<String> = Vec::new();
    for group in ctx.node.caught_up_data_groups().await? {
        let state = group.state.read();
        let (all, _) = state.queues.list("", None, usize::MAX);
        sources.extend(
            all.into_iter()
                .filter(|q| {
                    q.config
                        .to_wire()
                        .dead_letter
                        .is_some_and(|d| d.queue == name)
                })
                .map(|q| q.name.clone())
                .filter(|n| ctx.allows(n))
                .filter(|n| input.next_token.as_ref().is_none_or(|after| n > after)),
        );
    }
    sources.sort();
    let more = sources.len() > limit;
    let page = &sources[..sources.len().min(limit)];
    let mut out = json!({"queueUrls": page.iter().map(|n| ctx.queue_url(n)).collect::<Vec<_>>()});
    if more && let Some(last) = page.last() {
        out["NextToken"] = Value::String(last.clone());
    }
    Ok(out)
}

// ---- tags ----

/// SQS's limits on a tag: a key of 1 to 128 characters, a value of up to 256.
fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), SqsError> {
    for (key, value) in tags {
        if key.is_empty()
            || key.chars().count() > 128
            || key.to_ascii_lowercase().starts_with("aws:")
        {
            return Err(SqsError::invalid_parameter(format!(
                "the tag key {key:?} must be 1 to 128 characters and not start with aws:"
            )));
        }
        if value.chars().count() > 256 {
            return Err(SqsError::invalid_parameter(format!(
                "the value of tag {key} is longer than 256 characters"
            )));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagInput {
    queue_url: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

async fn tag_queue(ctx: &Ctx, input: TagInput) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    check_tags(&input.tags)?;
    queues::tag(&ctx.node, name, input.tags, Vec::new()).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagInput {
    queue_url: String,
    #[serde(default)]
    tag_keys: Vec<String>,
}

async fn untag_queue(ctx: &Ctx, input: UntagInput) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    queues::tag(&ctx.node, name, BTreeMap::new(), input.tag_keys).await?;
    Ok(json!({}))
}

fn list_queue_tags(ctx: &Ctx, input: QueueUrlInput) -> Result<Value, SqsError> {
    let queue = view(ctx, &ctx.queue(&input.queue_url)?)?;
    if queue.tags.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({"Tags": queue.tags}))
}

// ---- messages ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendInput {
    #[serde(default)]
    queue_url: String,
    /// Only in batch entries.
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    message_body: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    delay_seconds: Option<i64>,
    #[serde(default)]
    message_attributes: BTreeMap<String, AttributeInput>,
    #[serde(default)]
    message_system_attributes: BTreeMap<String, AttributeInput>,
    #[serde(default)]
    message_deduplication_id: Option<String>,
    #[serde(default)]
    message_group_id: Option<String>,
}

/// Characters SQS allows in a body (those of XML 1.0).
fn check_body(body: &str) -> Result<(), SqsError> {
    if body.is_empty() {
        return Err(SqsError::missing_parameter("MessageBody"));
    }
    let allowed = |c: char| matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}');
    if let Some(bad) = body.chars().find(|c| !allowed(*c)) {
        return Err(SqsError::invalid_message_contents(format!(
            "Invalid characters found. The message body has the character {:#x}, which SQS does not allow",
            bad as u32
        )));
    }
    Ok(())
}

/// A checked send, ready for the v1 layer, and what its answer reports.
struct PreparedSend {
    message: SendMessage,
    md5_of_body: String,
    md5_of_attributes: Option<String>,
    md5_of_system_attributes: Option<String>,
    bytes: usize,
}

fn prepare_send(
    input: SendInput,
    fifo: bool,
    content_dedup: bool,
) -> Result<PreparedSend, SqsError> {
    let body = input
        .message_body
        .ok_or_else(|| SqsError::missing_parameter("MessageBody"))?;
    check_body(&body)?;
    let delay = input
        .delay_seconds
        .map(|d| in_range("DelaySeconds", d, 0, 900))
        .transpose()?;
    if fifo {
        if delay.is_some_and(|d| d > 0) {
            return Err(SqsError::invalid_parameter(
                "Value for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type.",
            ));
        }
        if input.message_group_id.is_none() {
            return Err(SqsError::missing_parameter("MessageGroupId"));
        }
        if input.message_deduplication_id.is_none() && !content_dedup {
            return Err(SqsError::invalid_parameter(
                "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
            ));
        }
    } else if input.message_deduplication_id.is_some() {
        return Err(SqsError::invalid_parameter(
            "Value for parameter MessageDeduplicationId is invalid. Reason: The request includes a parameter that is not valid for this queue type.",
        ));
    }
    let attributes = attribute_values(input.message_attributes)?;
    let mut system = attribute_values(input.message_system_attributes)?;
    if let Some(name) = system.keys().find(|n| *n != "AWSTraceHeader") {
        return Err(SqsError::invalid_parameter(format!(
            "Message system attribute {name} is not supported; only AWSTraceHeader is"
        )));
    }
    let md5_of_system_attributes = (!system.is_empty()).then(|| md5_of_attributes(&system));
    let md5_of_attributes = (!attributes.is_empty()).then(|| md5_of_attributes(&attributes));
    let bytes = body.len()
        + attributes
            .iter()
            .map(|(n, a)| n.len() + a.data_type.len() + a.value.len())
            .sum::<usize>();
    let mut v1_attributes = to_v1_attributes(&attributes);
    if let Some(trace) = system.remove("AWSTraceHeader") {
        v1_attributes.insert(
            TRACE_HEADER.into(),
            String::from_utf8_lossy(&trace.value).into_owned(),
        );
    }
    if let Some(dedup) = &input.message_deduplication_id {
        v1_attributes.insert(DEDUP_ID.into(), dedup.clone());
    }
    Ok(PreparedSend {
        md5_of_body: md5_hex(body.as_bytes()),
        md5_of_attributes,
        md5_of_system_attributes,
        bytes,
        message: SendMessage {
            body: Some(body),
            delay_seconds: delay,
            group_id: input.message_group_id,
            dedup_id: input.message_deduplication_id,
            attributes: v1_attributes,
            ..SendMessage::default()
        },
    })
}

/// The 128-bit sequence number SQS gives FIFO messages, from the message id.
fn sequence_number(id: &str) -> String {
    u128::from_str_radix(id, 16)
        .map(|n| n.to_string())
        .unwrap_or_else(|_| id.to_string())
}

fn sent_output(prepared: &PreparedSend, id: &str, fifo: bool) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("MessageId".into(), Value::String(id.to_string()));
    out.insert(
        "MD5OfMessageBody".into(),
        Value::String(prepared.md5_of_body.clone()),
    );
    if let Some(md5) = &prepared.md5_of_attributes {
        out.insert("MD5OfMessageAttributes".into(), Value::String(md5.clone()));
    }
    if let Some(md5) = &prepared.md5_of_system_attributes {
        out.insert(
            "MD5OfMessageSystemAttributes".into(),
            Value::String(md5.clone()),
        );
    }
    if fifo {
        out.insert("SequenceNumber".into(), Value::String(sequence_number(id)));
    }
    out
}

fn queue_kind(ctx: &Ctx, name: &str) -> Result<(bool, bool, u32), SqsError> {
    let a = view(ctx, name)?.attributes;
    Ok((a.fifo, a.content_dedup, a.max_message_bytes))
}

fn check_size(bytes: usize, max: u32) -> Result<(), SqsError> {
    if bytes > max as usize {
        return Err(SqsError::invalid_parameter(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {max} bytes."
        )));
    }
    Ok(())
}

async fn send_message(ctx: &Ctx, input: SendInput) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    let (fifo, content_dedup, max) = queue_kind(ctx, &name)?;
    let prepared = prepare_send(input, fifo, content_dedup)?;
    check_size(prepared.bytes, max)?;
    let mut results =
        messages::send_messages(&ctx.node, name, None, vec![prepared.message.clone()]).await?;
    match results.pop() {
        Some(Ok(sent)) => Ok(Value::Object(sent_output(&prepared, &sent.id, fifo))),
        Some(Err(e)) => Err(e.into()),
        None => Err(SqsError::from_api(sluice_client::ApiError::new(
            ErrorCode::Internal,
            "no result for the message",
        ))),
    }
}

/// A batch's entry ids, checked: 1 to 10 entries, each id well-formed and distinct.
fn entry_ids<'a>(
    ids: impl ExactSizeIterator<Item = Option<&'a str>>,
) -> Result<Vec<String>, SqsError> {
    let ids: Vec<&str> = ids.map(|id| id.unwrap_or_default()).collect();
    check_entries(ids.iter().copied())?;
    Ok(ids.into_iter().map(str::to_string).collect())
}

fn check_entries<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> Result<(), SqsError> {
    let n = ids.len();
    if n == 0 {
        return Err(SqsError::empty_batch());
    }
    if n > BATCH_MAX {
        return Err(SqsError::too_many_entries(n));
    }
    let mut seen = HashSet::new();
    for id in ids {
        let ok = !id.is_empty()
            && id.len() <= 80
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(SqsError::invalid_batch_entry_id(id));
        }
        if !seen.insert(id) {
            return Err(SqsError::ids_not_distinct(id));
        }
    }
    Ok(())
}

fn failed_entry(id: &str, e: &SqsError) -> Value {
    json!({
        "Id": id,
        "SenderFault": e.status < 500,
        "Code": e.query_code,
        "Message": e.message,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendBatchInput {
    queue_url: String,
    #[serde(default)]
    entries: Vec<SendInput>,
}

async fn send_message_batch(ctx: &Ctx, input: SendBatchInput) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    let ids = entry_ids(input.entries.iter().map(|e| e.id.as_deref()))?;
    let (fifo, content_dedup, max) = queue_kind(ctx, &name)?;
    let mut failed = Vec::new();
    let mut ready = Vec::new();
    let mut total = 0;
    for (id, entry) in ids.iter().zip(input.entries) {
        match prepare_send(entry, fifo, content_dedup).and_then(|p| {
            check_size(p.bytes, max)?;
            Ok(p)
        }) {
            Ok(p) => {
                total += p.bytes;
                ready.push((id.clone(), p));
            }
            Err(e) => failed.push(failed_entry(id, &e)),
        }
    }
    if total > MESSAGE_BYTES_MAX {
        return Err(SqsError::batch_too_long(total));
    }
    let mut successful = Vec::new();
    if !ready.is_empty() {
        let batch = ready.iter().map(|(_, p)| p.message.clone()).collect();
        let results = messages::send_messages(&ctx.node, name, None, batch).await?;
        for ((id, prepared), result) in ready.iter().zip(results) {
            match result {
                Ok(sent) => {
                    let mut out = sent_output(prepared, &sent.id, fifo);
                    out.insert("Id".into(), Value::String(id.clone()));
                    successful.push(Value::Object(out));
                }
                Err(e) => failed.push(failed_entry(id, &SqsError::from_api(e))),
            }
        }
    }
    Ok(json!({"Successful": successful, "Failed": failed}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReceiveInput {
    queue_url: String,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
    #[serde(default)]
    message_attribute_names: Vec<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    max_number_of_messages: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    visibility_timeout: Option<i64>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    wait_time_seconds: Option<i64>,
    /// FIFO queues: a retry with the same id gets the same answer (see `attempts.rs`).
    #[serde(default)]
    receive_request_attempt_id: Option<String>,
}

/// The system attributes of a received message, as SQS names them.
fn system_attributes(ctx: &Ctx, m: &Message) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::from([
        ("SenderId", ACCOUNT.to_string()),
        ("SentTimestamp", m.sent_at.timestamp_millis().to_string()),
        ("ApproximateReceiveCount", m.receive_count.to_string()),
    ]);
    if let Some(first) = m.first_received_at {
        out.insert(
            "ApproximateFirstReceiveTimestamp",
            first.timestamp_millis().to_string(),
        );
    }
    if let Some(group) = &m.group_id {
        out.insert("MessageGroupId", group.clone());
        out.insert("SequenceNumber", sequence_number(&m.id));
    }
    if let Some(dedup) = m.attributes.get(DEDUP_ID) {
        out.insert("MessageDeduplicationId", dedup.clone());
    }
    if let Some(trace) = m.attributes.get(TRACE_HEADER) {
        out.insert("AWSTraceHeader", trace.clone());
    }
    if let Some(source) = &m.source_queue {
        out.insert("DeadLetterQueueSourceArn", ctx.arn(source));
    }
    out
}

fn wants(names: &[String], name: &str) -> bool {
    names.iter().any(|n| {
        n == "All"
            || n == ".*"
            || n == name
            || n.strip_suffix(".*").is_some_and(|prefix| {
                name.starts_with(prefix) && name[prefix.len()..].starts_with('.')
            })
    })
}

fn received(ctx: &Ctx, m: Message, input: &ReceiveInput) -> Value {
    let body = match (&m.body, &m.body_base64) {
        (Some(text), _) => text.clone(),
        (None, Some(b64)) => b64.clone(),
        (None, None) => String::new(),
    };
    let mut out = Map::new();
    out.insert("MessageId".into(), Value::String(m.id.clone()));
    out.insert(
        "ReceiptHandle".into(),
        Value::String(m.receipt.clone().unwrap_or_default()),
    );
    out.insert("MD5OfBody".into(), Value::String(md5_hex(body.as_bytes())));
    out.insert("Body".into(), Value::String(body));
    let system_names: Vec<String> = input
        .attribute_names
        .iter()
        .chain(&input.message_system_attribute_names)
        .cloned()
        .collect();
    let system: Map<String, Value> = system_attributes(ctx, &m)
        .into_iter()
        .filter(|(name, _)| wants(&system_names, name))
        .map(|(name, value)| (name.to_string(), Value::String(value)))
        .collect();
    if !system.is_empty() {
        out.insert("Attributes".into(), Value::Object(system));
    }
    let attributes: BTreeMap<String, AttributeValue> = from_v1_attributes(&m.attributes)
        .into_iter()
        .filter(|(name, _)| wants(&input.message_attribute_names, name))
        .collect();
    if !attributes.is_empty() {
        out.insert(
            "MD5OfMessageAttributes".into(),
            Value::String(md5_of_attributes(&attributes)),
        );
        let values: Map<String, Value> = attributes
            .into_iter()
            .map(|(name, a)| {
                let value = if a.is_binary() {
                    json!({"DataType": a.data_type, "BinaryValue": STANDARD.encode(&a.value)})
                } else {
                    json!({"DataType": a.data_type, "StringValue": String::from_utf8_lossy(&a.value)})
                };
                (name, value)
            })
            .collect();
        out.insert("MessageAttributes".into(), Value::Object(values));
    }
    Value::Object(out)
}

/// The message with the SNS notification as its body, and no attributes of its own
/// (SNS puts them inside the notification).
fn in_sns_notification(ctx: &Ctx, m: Message) -> Message {
    let topic = m.topic.clone().unwrap_or_default();
    let body = m.body.as_deref().or(m.body_base64.as_deref()).unwrap_or("");
    let notification = crate::compat::sns::notification::render(&Published {
        region: &ctx.node.region,
        topic: &topic,
        id: &m.id,
        body,
        published_at: m.sent_at,
        attributes: &m.attributes,
    });
    Message {
        body: Some(notification),
        body_base64: None,
        attributes: BTreeMap::new(),
        ..m
    }
}

async fn receive_message(ctx: &Ctx, input: ReceiveInput) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    let max = input
        .max_number_of_messages
        .map(|n| in_range("MaxNumberOfMessages", n, 1, 10))
        .transpose()?;
    let wait = input
        .wait_time_seconds
        .map(|n| in_range("WaitTimeSeconds", n, 0, 20))
        .transpose()?;
    let visibility = input
        .visibility_timeout
        .map(|n| in_range("VisibilityTimeout", n, 0, 43_200))
        .transpose()?;
    let attempt = match input.receive_request_attempt_id.as_deref() {
        Some(id) if queue_kind(ctx, &name)?.0 => {
            let ok = !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic());
            if !ok {
                return Err(SqsError::invalid_parameter(
                    "ReceiveRequestAttemptId must be 1 to 128 printable ASCII characters",
                ));
            }
            if let Some(answer) = ctx.node.receive_attempts.get(&name, id) {
                return Ok(answer);
            }
            Some(id.to_string())
        }
        // Standard queues ignore it, as SQS does.
        _ => None,
    };
    let Json(got) = messages::receive(
        State(ctx.node.clone()),
        Path(name.clone()),
        Json(ReceiveRequest {
            max: Some(max.unwrap_or(1)),
            wait_seconds: wait,
            visibility_seconds: visibility,
        }),
    )
    .await?;
    if got.messages.is_empty() {
        return Ok(json!({}));
    }
    let messages: Vec<Value> = got
        .messages
        .into_iter()
        .map(|m| {
            let m = match m.topic.as_deref() {
                Some(topic)
                    if matches!(
                        crate::compat::feeding_subscription(&ctx.node, topic, &name),
                        Some((_, Format::Sns))
                    ) =>
                {
                    in_sns_notification(ctx, m)
                }
                _ => m,
            };
            received(ctx, m, &input)
        })
        .collect();
    let answer = json!({"Messages": messages});
    if let Some(attempt) = attempt {
        ctx.node
            .receive_attempts
            .put(&name, &attempt, answer.clone());
    }
    Ok(answer)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteInput {
    #[serde(default)]
    queue_url: String,
    #[serde(default)]
    id: Option<String>,
    receipt_handle: String,
}

/// Acknowledges by receipt handle, as SQS does: a handle that is not one is refused; an
/// older handle of a message received since, or of one already deleted, succeeds and
/// deletes nothing.
async fn delete_handles(
    ctx: &Ctx,
    name: String,
    handles: Vec<String>,
) -> Result<Vec<Result<(), SqsError>>, SqsError> {
    let Json(answer) = messages::ack(
        State(ctx.node.clone()),
        Path(name),
        Json(AckRequest { receipts: handles }),
    )
    .await?;
    Ok(answer
        .results
        .into_iter()
        .map(|r| match r {
            BatchResult::Ok(_) => Ok(()),
            BatchResult::Error { error } => match error.code {
                ErrorCode::ReceiptStale | ErrorCode::MessageNotFound => Ok(()),
                _ => Err(SqsError::from_api(error)),
            },
        })
        .collect())
}

async fn delete_message(ctx: &Ctx, input: DeleteInput) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    let mut results = delete_handles(ctx, name, vec![input.receipt_handle]).await?;
    results.pop().unwrap_or(Ok(()))?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteBatchInput {
    queue_url: String,
    #[serde(default)]
    entries: Vec<DeleteInput>,
}

async fn delete_message_batch(ctx: &Ctx, input: DeleteBatchInput) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    let ids = entry_ids(input.entries.iter().map(|e| e.id.as_deref()))?;
    let handles = input
        .entries
        .into_iter()
        .map(|e| e.receipt_handle)
        .collect();
    let results = delete_handles(ctx, name, handles).await?;
    Ok(batch_output(&ids, results))
}

fn batch_output(ids: &[String], results: Vec<Result<(), SqsError>>) -> Value {
    let (mut successful, mut failed) = (Vec::new(), Vec::new());
    for (id, result) in ids.iter().zip(results) {
        match result {
            Ok(()) => successful.push(json!({"Id": id})),
            Err(e) => failed.push(failed_entry(id, &e)),
        }
    }
    json!({"Successful": successful, "Failed": failed})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VisibilityInput {
    #[serde(default)]
    queue_url: String,
    #[serde(default)]
    id: Option<String>,
    receipt_handle: String,
    #[serde(deserialize_with = "lenient::i64")]
    visibility_timeout: i64,
}

/// Changes visibility keeping each handle valid, as SQS does.
async fn extend(
    ctx: &Ctx,
    name: String,
    entries: Vec<VisibilityInput>,
) -> Result<Vec<Result<(), SqsError>>, SqsError> {
    let mut checked = Vec::with_capacity(entries.len());
    let mut v1_entries = Vec::new();
    for e in entries {
        match in_range("VisibilityTimeout", e.visibility_timeout, 0, 43_200) {
            Ok(seconds) => {
                checked.push(None);
                v1_entries.push(VisibilityEntry {
                    receipt: e.receipt_handle,
                    seconds,
                });
            }
            Err(err) => checked.push(Some(err)),
        }
    }
    let mut answers = if v1_entries.is_empty() {
        Vec::new()
    } else {
        messages::change_visibility_of(&ctx.node, name, &v1_entries, true).await?
    }
    .into_iter();
    Ok(checked
        .into_iter()
        .map(|c| match c {
            Some(err) => Err(err),
            None => match answers.next() {
                Some(BatchResult::Ok(_)) => Ok(()),
                Some(BatchResult::Error { error }) => Err(SqsError::from_api(error)),
                None => Err(SqsError::from_api(sluice_client::ApiError::new(
                    ErrorCode::Internal,
                    "no outcome for this entry",
                ))),
            },
        })
        .collect())
}

async fn change_visibility(ctx: &Ctx, input: VisibilityInput) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    let mut results = extend(ctx, name, vec![input]).await?;
    results.pop().unwrap_or(Ok(()))?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VisibilityBatchInput {
    queue_url: String,
    #[serde(default)]
    entries: Vec<VisibilityInput>,
}

async fn change_visibility_batch(
    ctx: &Ctx,
    input: VisibilityBatchInput,
) -> Result<Value, SqsError> {
    let name = ctx.queue(&input.queue_url)?;
    let ids = entry_ids(input.entries.iter().map(|e| e.id.as_deref()))?;
    let results = extend(ctx, name, input.entries).await?;
    Ok(batch_output(&ids, results))
}

// ---- move tasks: the v1 redrive of a dead-letter queue back to its sources ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartMoveInput {
    source_arn: String,
    #[serde(default)]
    destination_arn: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    max_number_of_messages_per_second: Option<i64>,
}

/// A task handle names the dead-letter queue and the task: `queue/id`, in base64.
fn task_handle(queue: &str, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{queue}/{id}"))
}

fn parse_task_handle(handle: &str) -> Result<(String, String), SqsError> {
    let invalid = || {
        SqsError::from_api(sluice_client::ApiError::new(
            ErrorCode::TaskNotFound,
            format!("{handle:?} is not a task handle"),
        ))
    };
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(handle)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let (queue, id) = text.split_once('/').ok_or_else(invalid)?;
    Ok((queue.to_string(), id.to_string()))
}

async fn start_move_task(ctx: &Ctx, input: StartMoveInput) -> Result<Value, SqsError> {
    let queue = ctx.queue_of_arn(&input.source_arn)?;
    if input.destination_arn.is_some() {
        return Err(SqsError::invalid_parameter(
            "Sluice moves messages back to the queues they came from; leave DestinationArn out",
        ));
    }
    let max_per_second = input
        .max_number_of_messages_per_second
        .map(|n| in_range("MaxNumberOfMessagesPerSecond", n, 1, 500))
        .transpose()?;
    let (_, Json(task)) = redrive::start(
        State(ctx.node.clone()),
        Path(queue.clone()),
        Json(RedriveRequest { max_per_second }),
    )
    .await?;
    Ok(json!({"TaskHandle": task_handle(&queue, &task.id)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListMovesInput {
    source_arn: String,
    #[serde(default, deserialize_with = "lenient::opt_i64")]
    max_results: Option<i64>,
}

fn move_task(ctx: &Ctx, t: &RedriveTask) -> Value {
    let status = match t.state {
        RedriveState::Running => "RUNNING",
        RedriveState::Completed => "COMPLETED",
        RedriveState::Cancelled => "CANCELLED",
    };
    let mut out = json!({
        "Status": status,
        "SourceArn": ctx.arn(&t.queue),
        "ApproximateNumberOfMessagesMoved": t.moved,
        "ApproximateNumberOfMessagesToMove": t.total,
        "StartedTimestamp": t.started_at.timestamp_millis(),
    });
    if t.state == RedriveState::Running {
        out["TaskHandle"] = Value::String(task_handle(&t.queue, &t.id));
    }
    if let Some(rate) = t.max_per_second {
        out["MaxNumberOfMessagesPerSecond"] = json!(rate);
    }
    out
}

async fn list_move_tasks(ctx: &Ctx, input: ListMovesInput) -> Result<Value, SqsError> {
    let queue = ctx.queue_of_arn(&input.source_arn)?;
    let max = match input.max_results {
        Some(n) => in_range("MaxResults", n, 1, 10)? as usize,
        None => 1,
    };
    let Json(tasks) = redrive::list(State(ctx.node.clone()), Path(queue)).await?;
    let results: Vec<Value> = tasks
        .tasks
        .iter()
        .take(max)
        .map(|t| move_task(ctx, t))
        .collect();
    Ok(json!({"Results": results}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CancelMoveInput {
    task_handle: String,
}

async fn cancel_move_task(ctx: &Ctx, input: CancelMoveInput) -> Result<Value, SqsError> {
    let (queue, id) = parse_task_handle(&input.task_handle)?;
    ctx.allow(&queue)?;
    let Json(tasks) = redrive::list(State(ctx.node.clone()), Path(queue.clone())).await?;
    let running = tasks
        .tasks
        .iter()
        .any(|t| t.id == id && t.state == RedriveState::Running);
    if !running {
        return Err(SqsError::from_api(sluice_client::ApiError::new(
            ErrorCode::TaskNotFound,
            "the task is not running (it completed or was cancelled)",
        )));
    }
    let Json(task) = redrive::cancel(State(ctx.node.clone()), Path(queue)).await?;
    Ok(json!({"ApproximateNumberOfMessagesMoved": task.moved}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_and_arns_name_their_queue() {
        assert_eq!(
            queue_name("http://127.0.0.1:8080/000000000000/orders").expect("url"),
            "orders"
        );
        assert_eq!(
            queue_name("https://sqs.us-east-1.amazonaws.com/123/jobs.fifo/").expect("url"),
            "jobs.fifo"
        );
        assert!(queue_name("http://host/").is_err());
        assert_eq!(
            queue_of_arn("arn:aws:sqs:us-east-1:000000000000:dlq").expect("arn"),
            "dlq"
        );
    }

    #[test]
    fn attributes_keep_their_types_through_v1() {
        let mut input = BTreeMap::new();
        input.insert(
            "price".to_string(),
            AttributeInput {
                data_type: "Number.float".into(),
                string_value: Some("1.5".into()),
                binary_value: None,
            },
        );
        input.insert(
            "blob".to_string(),
            AttributeInput {
                data_type: "Binary".into(),
                string_value: None,
                binary_value: Some(STANDARD.encode([0u8, 255, 7])),
            },
        );
        let values = attribute_values(input).expect("valid");
        let v1 = to_v1_attributes(&values);
        assert_eq!(from_v1_attributes(&v1), values);
    }

    #[test]
    fn bad_attributes_and_entries_are_refused() {
        let mut input = BTreeMap::new();
        input.insert(
            "AWS.x".to_string(),
            AttributeInput {
                data_type: "String".into(),
                string_value: Some("v".into()),
                binary_value: None,
            },
        );
        assert!(attribute_values(input).is_err());
        assert_eq!(
            check_entries(["a", "a"].into_iter()).unwrap_err().shape,
            "BatchEntryIdsNotDistinct"
        );
        assert_eq!(
            check_entries(std::iter::empty()).unwrap_err().shape,
            "EmptyBatchRequest"
        );
        assert!(check_body("ok\u{1}").is_err());
    }

    #[test]
    fn attribute_selection_follows_sqs() {
        let names = vec!["order.*".to_string()];
        assert!(wants(&names, "order.id"));
        assert!(!wants(&names, "orders"));
        assert!(wants(&["All".to_string()], "x"));
    }
}
