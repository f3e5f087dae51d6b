//! What every kind shares: references to a cluster or another resource, the deletion
//! policy, and the `Ready` condition with its reasons.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The `SluiceCluster` (in the same namespace) a resource lives on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// Name of the SluiceCluster.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
}

/// Another resource of this API in the same namespace, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What deleting the Kubernetes resource does to the broker's queue, topic or
/// subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete it on the broker, with its messages.
    #[default]
    Delete,
    /// Leave it on the broker (the messages stay; a new resource of the same name adopts it).
    Retain,
}

/// The status every queue, topic and subscription shares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// `Ready`: the broker has the resource as the spec says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation of the spec the conditions speak of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Names of the condition and its reasons, what a person reads in `kubectl describe`.
pub mod conditions {
    pub const READY: &str = "Ready";

    pub const RECONCILED: &str = "Reconciled";
    pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFound";
    pub const BROKER_UNREACHABLE: &str = "BrokerUnreachable";
    pub const REFUSED: &str = "RefusedByBroker";
    pub const PARTITIONS_DECREASED: &str = "PartitionsDecreased";
    pub const TOPIC_NOT_FOUND: &str = "TopicNotFound";
    pub const INVALID_ENDPOINT: &str = "InvalidEndpoint";
    pub const PAUSED: &str = "Paused";
    pub const PROGRESSING: &str = "Progressing";
}

/// Sets condition `type_` in `list`, keeping its transition time unless the status
/// changed (so `kubectl describe` shows since when it has been so).
pub fn set_condition(
    list: &mut Vec<Condition>,
    type_: &str,
    ready: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) {
    let status = if ready { "True" } else { "False" };
    let previous = list.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous.map(|i| &list[i]) {
        Some(old) if old.status == status => old.last_transition_time.clone(),
        _ => Time(k8s_openapi::jiff::Timestamp::now()),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time,
    };
    match previous {
        Some(i) => list[i] = condition,
        None => list.push(condition),
    }
}

/// The schema of a broker-side name, as the v1 API accepts it.
pub(crate) fn broker_name_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = <String as JsonSchema>::json_schema(generator);
    schema.insert("pattern".into(), BROKER_NAME_PATTERN.into());
    schema.insert("maxLength".into(), 255.into());
    schema.insert(
        "description".into(),
        "The name on the broker (default: metadata.name): letters, digits, '.', '-', '_', starting with a letter or digit.".into(),
    );
    schema
}

pub(crate) const BROKER_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$";
