//! `Queue`: a broker queue, its attributes under the v1 API's names.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sluice_client::QueueAttributesUpdate;

use super::common::{ClusterRef, DeletionPolicy, ResourceStatus, broker_name_schema};

/// A queue on a SluiceCluster. Absent attributes keep the broker's defaults.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Queue",
    namespaced,
    status = "QueueStatus",
    shortname = "sq",
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
    printcolumn(name = "Visible", type_ = "integer", json_path = ".status.visible"),
    printcolumn(name = "InFlight", type_ = "integer", json_path = ".status.inFlight"),
    printcolumn(
        name = "Delayed",
        type_ = "integer",
        json_path = ".status.delayed",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct QueueSpec {
    pub cluster_ref: ClusterRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "broker_name_schema")]
    pub name: Option<String>,
    /// What deleting this resource does to the broker's queue (default: Delete).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Data groups the queue is spread over; may only grow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("partitions may only grow"))]
    pub partitions: Option<u32>,
    /// Seconds a received message stays invisible (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 43200))]
    pub visibility_seconds: Option<u32>,
    /// Seconds new messages stay hidden (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 604800))]
    pub delay_seconds: Option<u32>,
    /// Seconds a message is kept (default 259200, three days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 1209600))]
    pub retention_seconds: Option<u32>,
    /// Largest message in bytes (default 262144).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 1048576))]
    pub max_message_bytes: Option<u32>,
    /// Default long-poll wait of a receive (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 30))]
    pub receive_wait_seconds: Option<u32>,
    /// Message groups delivered in order, with de-duplication. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("fifo is immutable; make a new queue"))]
    pub fifo: Option<bool>,
    /// FIFO only: the body's SHA-256 is the de-duplication id when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_dedup: Option<bool>,
    /// Where messages go after `maxReceives` receives without an ack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterSpec>,
}

/// A queue's dead-letter target, by broker queue name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSpec {
    #[schemars(schema_with = "broker_name_schema")]
    pub queue: String,
    #[schemars(range(min = 1, max = 1000))]
    pub max_receives: u32,
}

/// The queue's condition and its counts, refreshed periodically.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    #[serde(flatten)]
    pub common: ResourceStatus,
    /// Ready to be received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<u64>,
    /// Received and not yet acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<u64>,
    /// Waiting for their delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delayed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
}

impl QueueSpec {
    /// The attributes to `PUT` on the broker. Unset attributes are not sent, so the
    /// broker keeps what it has (or its default); a removed dead letter is removed.
    pub fn attributes(&self) -> QueueAttributesUpdate {
        QueueAttributesUpdate {
            visibility_seconds: self.visibility_seconds,
            delay_seconds: self.delay_seconds,
            retention_seconds: self.retention_seconds,
            max_message_bytes: self.max_message_bytes,
            receive_wait_seconds: self.receive_wait_seconds,
            fifo: self.fifo,
            content_dedup: self.content_dedup,
            dead_letter: Some(
                self.dead_letter
                    .as_ref()
                    .map(|d| sluice_client::DeadLetter {
                        queue: d.queue.clone(),
                        max_receives: d.max_receives,
                    }),
            ),
            partitions: self.partitions,
            // Not in the CRD: a broker-side SQS setting the operator leaves alone.
            redrive_allow: None,
        }
    }
}
