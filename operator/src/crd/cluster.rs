//! `SluiceCluster`: a set of brokers forming one Raft cluster, run as a StatefulSet.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Sluice cluster: `replicas` brokers, each with its own volume, forming one Raft
/// cluster. The operator keeps the Raft membership in step with the pods.
#[derive(CustomResource, KubeSchema, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "SluiceCluster",
    namespaced,
    status = "SluiceClusterStatus",
    shortname = "slc",
    category = "sluice",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.readyReplicas"
    ),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.leader"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SluiceClusterSpec {
    /// Brokers. Three or five tolerate one or two failures; the operator never removes
    /// a member while that would leave fewer healthy voters than a quorum.
    #[schemars(range(min = 1, max = 9))]
    pub replicas: i32,
    /// Raft groups that hold the queues and topics besides the metadata group, each with
    /// its own leader, so several brokers take writes at once (0: everything in the
    /// metadata group). Fixed when the cluster is made; unset, a new cluster gets 3 and
    /// one made before keeps what it was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 64))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("dataGroups is fixed when the cluster is made"))]
    pub data_groups: Option<u32>,
    /// The broker image. Changing it rolls the brokers one at a time, each drained of its
    /// leaderships first and caught up again before the next.
    #[schemars(length(min = 1))]
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never` (default: IfNotPresent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^(Always|IfNotPresent|Never)$"))]
    pub image_pull_policy: Option<String>,
    /// Each broker's volume.
    #[serde(default)]
    pub storage: StorageSpec,
    /// CPU and memory of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Overrides of the broker pods' template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodOverrides>,
    /// Extra broker flags as environment variables (`SLUICE_<FLAG>`), e.g.
    /// `SLUICE_SMTP_SERVER`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The access keys SQS, SNS and MNS requests must be signed with: a Secret holding
    /// the keys file (`{"keys": [{"accessKeyId", "secretAccessKey", "queues",
    /// "topics"}]}`, key `keys.json` unless named). Without it no signature is checked.
    /// The brokers read it when they start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_keys: Option<SecretFile>,
    /// Certificates trusted for `https://` push endpoints besides the public roots (a
    /// private CA in the cluster): a Secret holding a PEM bundle (key `ca.crt` unless
    /// named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_ca: Option<SecretFile>,
}

/// One file of a Secret, mounted into the brokers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretFile {
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub key: Option<String>,
}

/// Each broker's persistent volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each broker's volume claim (a Kubernetes quantity).
    #[serde(default = "default_storage_size")]
    #[schemars(regex(pattern = "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    pub size: String,
    /// Storage class of the claims (default: the cluster's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Keep the volume claims (and so the messages) when the SluiceCluster is deleted.
    /// By default they belong to it and go with it.
    #[serde(default)]
    pub retain_claims: bool,
}

fn default_storage_size() -> String {
    "1Gi".to_string()
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
            retain_claims: false,
        }
    }
}

/// What may be set on the broker pods beyond what the operator sets itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodOverrides {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// How the cluster stands, as the operator last saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SluiceClusterStatus {
    /// Broker pods that exist (the scale subresource's status).
    #[serde(default)]
    pub replicas: i32,
    /// Broker pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// The label selector of the broker pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// The Raft members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<ClusterMember>,
    /// The pod of the Raft leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The image every broker runs, once a roll is complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The address clients reach the brokers at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The data groups the brokers run with: fixed when the cluster was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_groups: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One Raft member and the pod it runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMember {
    pub id: u64,
    pub pod: String,
    /// `voter` or `learner`.
    pub role: String,
    pub peer_address: String,
    #[serde(default)]
    pub leader: bool,
    /// Log entries behind the leader, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}
