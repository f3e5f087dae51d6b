//! How a `Queue` is declared on and removed from a broker.

use super::{Topology, broker_name};
use crate::broker::Broker;
use crate::context::{Context, Failure};
use crate::crd::{DeletionPolicy, Queue, QueueStatus, ResourceStatus};
use kube::ResourceExt;

impl Queue {
    pub fn broker_name(&self) -> String {
        broker_name(&self.spec.name, self.name_any())
    }
}

impl Topology for Queue {
    const KIND: &'static str = "Queue";
    type Resolved = ();
    type Status = QueueStatus;

    fn cluster(&self) -> &str {
        &self.spec.cluster_ref.name
    }
    fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy
    }
    fn conditions(&self) -> Option<&ResourceStatus> {
        self.status.as_ref().map(|s| &s.common)
    }

    async fn resolve(&self, _ctx: &Context) -> Result<(), Failure> {
        Ok(())
    }

    async fn declare<B: Broker>(&self, _: &(), broker: &B) -> Result<QueueStatus, Failure> {
        let name = self.broker_name();
        let cluster = self.cluster();
        super::check_partitions(
            &format!("queue {name}"),
            self.spec.partitions,
            self.status.as_ref().and_then(|s| s.partitions),
        )?;
        let queue = broker
            .put_queue(&name, &self.spec.attributes())
            .await
            .map_err(|e| Failure::from_broker(cluster, e))?;
        Ok(QueueStatus {
            common: ResourceStatus::default(),
            visible: Some(queue.counts.visible),
            in_flight: Some(queue.counts.in_flight),
            delayed: Some(queue.counts.delayed),
            partitions: Some(queue.attributes.partitions),
        })
    }

    async fn remove<B: Broker>(&self, _: &(), broker: &B) -> Result<(), Failure> {
        super::removed(
            self.cluster(),
            broker.delete_queue(&self.broker_name()).await,
        )
    }

    fn status_without_counts(&self, common: ResourceStatus) -> QueueStatus {
        QueueStatus {
            common,
            ..self.status.clone().unwrap_or_default()
        }
    }

    fn with_conditions(status: QueueStatus, common: ResourceStatus) -> QueueStatus {
        QueueStatus { common, ..status }
    }
}
