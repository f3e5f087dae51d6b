//! How a `Topic` is declared on and removed from a broker.

use kube::ResourceExt;

use super::{Topology, broker_name};
use crate::broker::Broker;
use crate::context::{Context, Failure};
use crate::crd::{DeletionPolicy, ResourceStatus, Topic, TopicStatus};

impl Topic {
    pub fn broker_name(&self) -> String {
        broker_name(&self.spec.name, self.name_any())
    }
}

impl Topology for Topic {
    const KIND: &'static str = "Topic";
    type Resolved = ();
    type Status = TopicStatus;

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

    async fn declare<B: Broker>(&self, _: &(), broker: &B) -> Result<TopicStatus, Failure> {
        let name = self.broker_name();
        super::check_partitions(
            &format!("topic {name}"),
            self.spec.partitions,
            self.status.as_ref().and_then(|s| s.partitions),
        )?;
        let topic = broker
            .put_topic(&name, &self.spec.attributes())
            .await
            .map_err(|e| Failure::from_broker(self.cluster(), e))?;
        Ok(TopicStatus {
            common: ResourceStatus::default(),
            messages: Some(topic.messages),
            subscriptions: Some(topic.subscriptions),
            partitions: Some(topic.attributes.partitions),
        })
    }

    async fn remove<B: Broker>(&self, _: &(), broker: &B) -> Result<(), Failure> {
        super::removed(
            self.cluster(),
            broker.delete_topic(&self.broker_name()).await,
        )
    }

    fn status_without_counts(&self, common: ResourceStatus) -> TopicStatus {
        TopicStatus {
            common,
            ..self.status.clone().unwrap_or_default()
        }
    }

    fn with_conditions(status: TopicStatus, common: ResourceStatus) -> TopicStatus {
        TopicStatus { common, ..status }
    }
}
