//! Topic and subscription settings as the state machine keeps them, and their validation
//! from the wire forms.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_client::{
    ApiError, AttributeCondition, DeliveryFormat, Endpoint, ErrorCode, NumericTerm, RetryPolicy,
    RetryStrategy, SubscriptionFilter, SubscriptionSpec, TopicAttributes, TopicAttributesUpdate,
    limits, names,
};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidAttribute, message)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    pub retention_seconds: u32,
    pub max_message_bytes: u32,
    pub partitions: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        let d = TopicAttributes::default();
        Self {
            retention_seconds: d.retention_seconds,
            max_message_bytes: d.max_message_bytes,
            partitions: d.partitions,
        }
    }
}

/// A checked change of a topic's attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicUpdate {
    pub retention_seconds: Option<u32>,
    pub max_message_bytes: Option<u32>,
    pub partitions: Option<u32>,
}

fn check_range(name: &str, value: Option<u32>, min: u32, max: u32) -> Result<(), ApiError> {
    match value {
        Some(v) if v < min || v > max => Err(invalid(format!(
            "{name} is {v}; it must be between {min} and {max}"
        ))),
        _ => Ok(()),
    }
}

impl TopicUpdate {
    pub fn from_wire(update: &TopicAttributesUpdate) -> Result<Self, ApiError> {
        use limits::*;
        check_range(
            "retentionSeconds",
            update.retention_seconds,
            RETENTION_SECONDS_MIN,
            RETENTION_SECONDS_MAX,
        )?;
        check_range(
            "maxMessageBytes",
            update.max_message_bytes,
            MAX_MESSAGE_BYTES_MIN,
            MAX_MESSAGE_BYTES_MAX,
        )?;
        check_range("partitions", update.partitions, 1, PARTITIONS_MAX)?;
        Ok(Self {
            retention_seconds: update.retention_seconds,
            max_message_bytes: update.max_message_bytes,
            partitions: update.partitions,
        })
    }
}

impl TopicConfig {
    pub fn change(&self, update: &TopicUpdate) -> Result<Self, ApiError> {
        if let Some(p) = update.partitions
            && p < self.partitions
        {
            return Err(ApiError::new(
                ErrorCode::ImmutableAttribute,
                format!(
                    "partitions may only grow: the topic has {}, asked for {p}",
                    self.partitions
                ),
            ));
        }
        Ok(Self {
            retention_seconds: update.retention_seconds.unwrap_or(self.retention_seconds),
            max_message_bytes: update.max_message_bytes.unwrap_or(self.max_message_bytes),
            partitions: update.partitions.unwrap_or(self.partitions),
        })
    }

    pub fn to_wire(&self) -> TopicAttributes {
        TopicAttributes {
            retention_seconds: self.retention_seconds,
            max_message_bytes: self.max_message_bytes,
            partitions: self.partitions,
        }
    }
}

/// Where a subscription delivers (the replicated form of [`Endpoint`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Queue(String),
    Http(String),
    Websocket,
    Email(String),
    Pull,
}

impl Target {
    /// Delivered by the leader's push workers.
    pub fn is_push(&self) -> bool {
        matches!(self, Target::Http(_) | Target::Email(_))
    }

    /// Read by clients with their own cursors.
    pub fn is_timeline(&self) -> bool {
        matches!(self, Target::Pull | Target::Websocket)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Comparison {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Condition {
    Exact(String),
    Prefix(String),
    Numeric(Vec<(Comparison, f64)>),
    Exists(bool),
    AnythingBut(Vec<String>),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, Vec<Condition>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    Json,
    Xml,
    Simplified,
    Sns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    pub exponential: bool,
    pub max_retries: u32,
    pub interval_ms: u64,
}

/// The longest interval between exponential retries, as MNS's decay reaches it.
const EXPONENTIAL_CAP_MS: u64 = 512_000;

impl Retry {
    /// How long to wait before retry number `attempt` (1 for the first retry).
    pub fn delay_ms(&self, attempt: u32) -> u64 {
        if self.exponential {
            let shift = attempt.saturating_sub(1).min(20);
            (self.interval_ms << shift).min(EXPONENTIAL_CAP_MS.max(self.interval_ms))
        } else {
            self.interval_ms
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionConfig {
    pub target: Target,
    pub filter: Filter,
    pub retry: Retry,
    pub format: Format,
    pub dead_letter_queue: Option<String>,
    pub max_in_flight: u32,
    pub secret: String,
}

fn condition(key: &str, c: &AttributeCondition) -> Result<Condition, ApiError> {
    Ok(match c {
        AttributeCondition::Exact(v) => Condition::Exact(v.clone()),
        AttributeCondition::Prefix { prefix } => Condition::Prefix(prefix.clone()),
        AttributeCondition::Exists { exists } => Condition::Exists(*exists),
        AttributeCondition::AnythingBut { anything_but } => {
            Condition::AnythingBut(anything_but.clone())
        }
        AttributeCondition::Numeric { numeric } => {
            let bad = || {
                invalid(format!(
                    "filter on {key:?}: numeric takes pairs of an operator and a number, as [\">=\", 10, \"<\", 20]"
                ))
            };
            if numeric.is_empty() || numeric.len() % 2 != 0 {
                return Err(bad());
            }
            let mut terms = Vec::new();
            for pair in numeric.chunks(2) {
                let (NumericTerm::Operator(op), NumericTerm::Value(v)) = (&pair[0], &pair[1])
                else {
                    return Err(bad());
                };
                let op = match op.as_str() {
                    "=" => Comparison::Eq,
                    "<" => Comparison::Lt,
                    "<=" => Comparison::Le,
                    ">" => Comparison::Gt,
                    ">=" => Comparison::Ge,
                    other => {
                        return Err(invalid(format!(
                            "filter on {key:?}: unknown operator {other:?}; use =, <, <=, > or >="
                        )));
                    }
                };
                if !v.is_finite() {
                    return Err(bad());
                }
                terms.push((op, *v));
            }
            Condition::Numeric(terms)
        }
    })
}

impl SubscriptionConfig {
    /// Checks a `PUT` body. `secret` is used when the body names none.
    pub fn from_wire(spec: &SubscriptionSpec, secret: String) -> Result<Self, ApiError> {
        let target = match &spec.endpoint {
            Endpoint::Queue(queue) => {
                names::validate_name("queue", queue).map_err(invalid)?;
                Target::Queue(queue.clone())
            }
            Endpoint::Http { url } => {
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"));
                let ok = rest.is_some_and(|r| !r.is_empty())
                    && !url.chars().any(char::is_whitespace)
                    && url.parse::<axum::http::Uri>().is_ok();
                if !ok {
                    return Err(invalid(format!(
                        "endpoint url {url:?} is not an http:// or https:// URL"
                    )));
                }
                Target::Http(url.clone())
            }
            Endpoint::Websocket {} => Target::Websocket,
            Endpoint::Email { to } => {
                let ok = to.contains('@') && !to.starts_with('@') && !to.ends_with('@');
                if !ok || to.chars().any(char::is_whitespace) {
                    return Err(invalid(format!("{to:?} is not an email address")));
                }
                Target::Email(to.clone())
            }
            Endpoint::Pull {} => Target::Pull,
        };
        let wire_filter = spec.filter.clone().unwrap_or_default();
        let mut attributes = BTreeMap::new();
        for (key, conditions) in &wire_filter.attributes {
            if conditions.is_empty() {
                return Err(invalid(format!(
                    "filter on {key:?} lists no condition; remove the key or add one"
                )));
            }
            attributes.insert(
                key.clone(),
                conditions
                    .iter()
                    .map(|c| condition(key, c))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        let retry = spec.retry.unwrap_or(RetryPolicy {
            strategy: RetryStrategy::BackoffRetry,
            max_retries: None,
            interval_seconds: None,
        });
        let exponential = retry.strategy == RetryStrategy::ExponentialDecayRetry;
        let max_retries = retry
            .max_retries
            .unwrap_or(if exponential { 176 } else { 3 });
        let interval = retry
            .interval_seconds
            .unwrap_or(if exponential { 1 } else { 10 });
        check_range("retry.maxRetries", Some(max_retries), 0, 1_000)?;
        check_range("retry.intervalSeconds", Some(interval), 1, 86_400)?;
        let max_in_flight = spec.max_in_flight.unwrap_or(limits::MAX_IN_FLIGHT_DEFAULT);
        check_range(
            "maxInFlight",
            Some(max_in_flight),
            1,
            limits::MAX_IN_FLIGHT_MAX,
        )?;
        if let Some(dlq) = &spec.dead_letter_queue {
            names::validate_name("dead-letter queue", dlq).map_err(invalid)?;
        }
        let secret = spec.secret.clone().unwrap_or(secret);
        if secret.is_empty() || secret.len() > 256 {
            return Err(invalid("secret must be 1 to 256 characters"));
        }
        Ok(Self {
            target,
            filter: Filter {
                tags: wire_filter.tags,
                attributes,
            },
            retry: Retry {
                exponential,
                max_retries,
                interval_ms: interval as u64 * 1000,
            },
            format: match spec.format.unwrap_or(DeliveryFormat::Json) {
                DeliveryFormat::Json => Format::Json,
                DeliveryFormat::Xml => Format::Xml,
                DeliveryFormat::Simplified => Format::Simplified,
                DeliveryFormat::Sns => Format::Sns,
            },
            dead_letter_queue: spec.dead_letter_queue.clone(),
            max_in_flight,
            secret,
        })
    }

    pub fn endpoint(&self) -> Endpoint {
        match &self.target {
            Target::Queue(q) => Endpoint::Queue(q.clone()),
            Target::Http(url) => Endpoint::Http { url: url.clone() },
            Target::Websocket => Endpoint::Websocket {},
            Target::Email(to) => Endpoint::Email { to: to.clone() },
            Target::Pull => Endpoint::Pull {},
        }
    }

    pub fn wire_filter(&self) -> SubscriptionFilter {
        let op = |c: Comparison| match c {
            Comparison::Eq => "=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        };
        SubscriptionFilter {
            tags: self.filter.tags.clone(),
            attributes: self
                .filter
                .attributes
                .iter()
                .map(|(k, cs)| {
                    let cs = cs
                        .iter()
                        .map(|c| match c {
                            Condition::Exact(v) => AttributeCondition::Exact(v.clone()),
                            Condition::Prefix(p) => {
                                AttributeCondition::Prefix { prefix: p.clone() }
                            }
                            Condition::Exists(e) => AttributeCondition::Exists { exists: *e },
                            Condition::AnythingBut(v) => AttributeCondition::AnythingBut {
                                anything_but: v.clone(),
                            },
                            Condition::Numeric(terms) => AttributeCondition::Numeric {
                                numeric: terms
                                    .iter()
                                    .flat_map(|(c, v)| {
                                        [
                                            NumericTerm::Operator(op(*c).into()),
                                            NumericTerm::Value(*v),
                                        ]
                                    })
                                    .collect(),
                            },
                        })
                        .collect();
                    (k.clone(), cs)
                })
                .collect(),
        }
    }

    pub fn wire_retry(&self) -> RetryPolicy {
        RetryPolicy {
            strategy: if self.retry.exponential {
                RetryStrategy::ExponentialDecayRetry
            } else {
                RetryStrategy::BackoffRetry
            },
            max_retries: Some(self.retry.max_retries),
            interval_seconds: Some((self.retry.interval_ms / 1000) as u32),
        }
    }

    pub fn wire_format(&self) -> DeliveryFormat {
        match self.format {
            Format::Json => DeliveryFormat::Json,
            Format::Xml => DeliveryFormat::Xml,
            Format::Simplified => DeliveryFormat::Simplified,
            Format::Sns => DeliveryFormat::Sns,
        }
    }
}
