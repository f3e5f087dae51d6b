//! The broker calls the controllers make, behind a trait so reconcile logic is tested
//! against an in-memory broker; `sluice_client::Client` is the real one.

use std::future::Future;

use sluice_client::{
    Client, ClusterStatus, Error, Queue, QueueAttributesUpdate, Subscription, SubscriptionSpec,
    Topic, TopicAttributesUpdate,
};

pub trait Broker: Send + Sync {
    fn cluster(&self) -> impl Future<Output = Result<ClusterStatus, Error>> + Send;
    fn add_member(
        &self,
        id: u64,
        peer_address: &str,
    ) -> impl Future<Output = Result<ClusterStatus, Error>> + Send;
    fn remove_member(&self, id: u64) -> impl Future<Output = Result<ClusterStatus, Error>> + Send;
    fn drain_member(&self, id: u64) -> impl Future<Output = Result<ClusterStatus, Error>> + Send;

    fn put_queue(
        &self,
        name: &str,
        attributes: &QueueAttributesUpdate,
    ) -> impl Future<Output = Result<Queue, Error>> + Send;
    fn delete_queue(&self, name: &str) -> impl Future<Output = Result<(), Error>> + Send;

    fn put_topic(
        &self,
        name: &str,
        attributes: &TopicAttributesUpdate,
    ) -> impl Future<Output = Result<Topic, Error>> + Send;
    fn delete_topic(&self, name: &str) -> impl Future<Output = Result<(), Error>> + Send;

    fn put_subscription(
        &self,
        topic: &str,
        name: &str,
        spec: &SubscriptionSpec,
    ) -> impl Future<Output = Result<Subscription, Error>> + Send;
    fn delete_subscription(
        &self,
        topic: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl Broker for Client {
    async fn cluster(&self) -> Result<ClusterStatus, Error> {
        Client::cluster(self).await
    }
    async fn add_member(&self, id: u64, peer_address: &str) -> Result<ClusterStatus, Error> {
        Client::add_member(self, id, peer_address).await
    }
    async fn remove_member(&self, id: u64) -> Result<ClusterStatus, Error> {
        Client::remove_member(self, id).await
    }
    async fn drain_member(&self, id: u64) -> Result<ClusterStatus, Error> {
        Client::drain_member(self, id).await
    }
    async fn put_queue(&self, name: &str, a: &QueueAttributesUpdate) -> Result<Queue, Error> {
        Client::put_queue(self, name, a).await
    }
    async fn delete_queue(&self, name: &str) -> Result<(), Error> {
        Client::delete_queue(self, name).await
    }
    async fn put_topic(&self, name: &str, a: &TopicAttributesUpdate) -> Result<Topic, Error> {
        Client::put_topic(self, name, a).await
    }
    async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        Client::delete_topic(self, name).await
    }
    async fn put_subscription(
        &self,
        topic: &str,
        name: &str,
        spec: &SubscriptionSpec,
    ) -> Result<Subscription, Error> {
        Client::put_subscription(self, topic, name, spec).await
    }
    async fn delete_subscription(&self, topic: &str, name: &str) -> Result<(), Error> {
        Client::delete_subscription(self, topic, name).await
    }
}
