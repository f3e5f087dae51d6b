//! What every reconcile shares: the API client, how to reach a cluster's brokers, the
//! metrics, what the API server supports, and the error type of a reconcile.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::runtime::events::Reporter;
use sluice_client::Client;

use crate::cluster::resources::{CLIENT_PORT, Names};
use crate::crd::{SluiceCluster, conditions};
use crate::metrics::Metrics;

/// Why a reconcile did not finish; each variant is a `Ready=False` reason a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(
        "SluiceCluster {0} does not exist in this namespace; create it or fix spec.clusterRef.name"
    )]
    ClusterNotFound(String),
    #[error("the brokers of cluster {cluster} cannot be reached: {detail}")]
    BrokerUnreachable { cluster: String, detail: String },
    #[error("the broker refused the change: {0}")]
    Refused(String),
    #[error("{message}")]
    Invalid {
        reason: &'static str,
        message: String,
    },
    /// Something this resource depends on is not there yet (its Topic, say).
    #[error("{message}")]
    Pending {
        reason: &'static str,
        message: String,
    },
    #[error("the Kubernetes API answered: {0}")]
    Kube(#[from] kube::Error),
}

impl Failure {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::ClusterNotFound(_) => conditions::CLUSTER_NOT_FOUND,
            Failure::BrokerUnreachable { .. } => conditions::BROKER_UNREACHABLE,
            Failure::Refused(_) => conditions::REFUSED,
            Failure::Invalid { reason, .. } | Failure::Pending { reason, .. } => reason,
            Failure::Kube(_) => "KubernetesApiError",
        }
    }

    /// When to look again: soon for what passes by itself, later for what needs a person.
    pub fn retry_after(&self) -> Duration {
        match self {
            Failure::BrokerUnreachable { .. } | Failure::Kube(_) => Duration::from_secs(5),
            Failure::ClusterNotFound(_) | Failure::Pending { .. } => Duration::from_secs(10),
            Failure::Refused(_) | Failure::Invalid { .. } => Duration::from_secs(60),
        }
    }

    /// A broker's answer as a failure: its refusals (4xx) need a change of spec, the rest
    /// pass by themselves.
    pub fn from_broker(cluster: &str, e: sluice_client::Error) -> Self {
        match &e {
            sluice_client::Error::Api { status, error } if *status < 500 && *status != 429 => {
                Failure::Refused(format!("{} ({:?})", error.message, error.code))
            }
            _ => Failure::BrokerUnreachable {
                cluster: cluster.to_string(),
                detail: e.to_string(),
            },
        }
    }
}

/// What the API server offers, found by discovery at start.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// policy/v1 PodDisruptionBudgets (Kubernetes 1.21 and later); else v1beta1.
    pub pdb_v1: bool,
}

pub struct Context {
    pub kube: kube::Client,
    /// `SLUICE_BROKER_URL`: one broker address for every cluster (an operator outside
    /// the cluster, brokers on loopback).
    pub broker_url: Option<String>,
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
    pub capabilities: Capabilities,
}

/// A broker request gives up and the reconcile is retried after this long.
const BROKER_RETRY: Duration = Duration::from_secs(5);

impl Context {
    /// A client for the brokers of `cluster` in `namespace`: the override when set, else
    /// the client Service's IP (no cluster DNS needed).
    pub async fn broker_for(&self, namespace: &str, cluster: &str) -> Result<Client, Failure> {
        let clusters: Api<SluiceCluster> = Api::namespaced(self.kube.clone(), namespace);
        let found = clusters
            .get_opt(cluster)
            .await?
            .ok_or_else(|| Failure::ClusterNotFound(cluster.to_string()))?;
        if let Some(url) = &self.broker_url {
            return client(cluster, &[url.as_str()]);
        }
        let services: Api<Service> = Api::namespaced(self.kube.clone(), namespace);
        let name = Names::of(&found).client_service();
        let ip = services
            .get_opt(&name)
            .await?
            .and_then(|s| s.spec)
            .and_then(|s| s.cluster_ip)
            .ok_or_else(|| Failure::BrokerUnreachable {
                cluster: cluster.to_string(),
                detail: format!("its Service {name} does not exist yet"),
            })?;
        client(cluster, &[&format!("http://{ip}:{CLIENT_PORT}")])
    }
}

/// A client over `urls` that retries passing failures only briefly: a reconcile is
/// retried anyway, and must not hold a worker for long.
pub fn client(cluster: &str, urls: &[&str]) -> Result<Client, Failure> {
    Client::with_nodes(urls)
        .map(|c| c.retry_for(BROKER_RETRY))
        .map_err(|e| Failure::BrokerUnreachable {
            cluster: cluster.to_string(),
            detail: e.to_string(),
        })
}
