//! `Topic`: a broker topic that hands each message to every matching subscription.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_client::TopicAttributesUpdate;

use super::common::{ClusterRef, DeletionPolicy, ResourceStatus, broker_name_schema};

/// A topic on a SluiceCluster.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    shortname = "st",
    category = "sluice",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.clusterRef.name"
    ),
    printcolumn(
        name = "Partitions",
        type_ = "integer",
        json_path = ".status.partitions"
    ),
    printcolumn(name = "Messages", type_ = "integer", json_path = ".status.messages"),
    printcolumn(
        name = "Subscriptions",
        type_ = "integer",
        json_path = ".status.subscriptions"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    pub cluster_ref: ClusterRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "broker_name_schema")]
    pub name: Option<String>,
    /// What deleting this resource does to the broker's topic (default: Delete).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// May only grow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("partitions may only grow"))]
    pub partitions: Option<u32>,
    /// How long published messages stay on the timeline (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 1209600))]
    pub retention_seconds: Option<u32>,
    /// Largest message in bytes (default 262144).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 1048576))]
    pub max_message_bytes: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    #[serde(flatten)]
    pub common: ResourceStatus,
    /// Messages on the timeline (within retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
}

impl TopicSpec {
    pub fn attributes(&self) -> TopicAttributesUpdate {
        TopicAttributesUpdate {
            retention_seconds: self.retention_seconds,
            max_message_bytes: self.max_message_bytes,
            partitions: self.partitions,
        }
    }
}
