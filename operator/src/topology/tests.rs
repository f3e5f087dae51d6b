//! Declaring and removing against an in-memory broker: what the broker is asked, and
//! the failure each refusal becomes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::json;
use sluice_client::{
    ApiError, ClusterStatus, Error, ErrorCode, Queue, QueueAttributes, QueueAttributesUpdate,
    Subscription, SubscriptionSpec, Topic, TopicAttributesUpdate,
};

use super::Topology;
use super::subscription::Resolved;
use crate::broker::Broker;
use crate::context::Failure;
use crate::crd::{self, conditions};

/// Queues and subscriptions by name, and every call made, in order.
#[derive(Default)]
struct FakeBroker {
    queues: Mutex<BTreeMap<String, QueueAttributes>>,
    topics: Mutex<Vec<String>>,
    calls: Mutex<Vec<String>>,
}

fn api_error(status: u16, code: ErrorCode, message: &str) -> Error {
    Error::Api {
        status,
        error: ApiError {
            code,
            message: message.into(),
        },
    }
}

impl FakeBroker {
    fn called(&self, call: String) {
        self.calls.lock().expect("calls").push(call);
    }
}

impl Broker for FakeBroker {
    async fn cluster(&self) -> Result<ClusterStatus, Error> {
        unimplemented!("not used by topology")
    }
    async fn add_member(&self, _: u64, _: &str) -> Result<ClusterStatus, Error> {
        unimplemented!("not used by topology")
    }
    async fn remove_member(&self, _: u64) -> Result<ClusterStatus, Error> {
        unimplemented!("not used by topology")
    }
    async fn drain_member(&self, _: u64) -> Result<ClusterStatus, Error> {
        unimplemented!("not used by topology")
    }
    async fn put_queue(&self, name: &str, a: &QueueAttributesUpdate) -> Result<Queue, Error> {
        self.called(format!("put_queue {name}"));
        let mut queues = self.queues.lock().expect("queues");
        let attributes = queues.entry(name.into()).or_default();
        if let Some(v) = a.visibility_seconds {
            attributes.visibility_seconds = v;
        }
        Ok(serde_json::from_value(json!({
            "name": name, "attributes": attributes.clone(),
            "counts": {"visible": 7, "inFlight": 2, "delayed": 1},
            "createdAt": "2026-11-30T00:00:00Z",
        }))
        .expect("queue"))
    }
    async fn delete_queue(&self, name: &str) -> Result<(), Error> {
        self.called(format!("delete_queue {name}"));
        match self.queues.lock().expect("queues").remove(name) {
            Some(_) => Ok(()),
            None => Err(api_error(404, ErrorCode::QueueNotFound, "no such queue")),
        }
    }
    async fn put_topic(&self, _: &str, _: &TopicAttributesUpdate) -> Result<Topic, Error> {
        unimplemented!("not used by these tests")
    }
    async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        self.called(format!("delete_topic {name}"));
        Ok(())
    }
    async fn put_subscription(
        &self,
        topic: &str,
        name: &str,
        spec: &SubscriptionSpec,
    ) -> Result<Subscription, Error> {
        self.called(format!("put_subscription {topic}/{name}"));
        if !self
            .topics
            .lock()
            .expect("topics")
            .iter()
            .any(|t| t == topic)
        {
            return Err(api_error(404, ErrorCode::TopicNotFound, "no such topic"));
        }
        Ok(serde_json::from_value(json!({
            "name": name, "topic": topic, "endpoint": spec.endpoint,
            "filter": {}, "retry": {"strategy": "BACKOFF_RETRY"}, "format": "JSON",
            "maxInFlight": 8, "secret": "s",
            "counts": {"delivered": 3, "backlog": 4, "retrying": 1, "failed": 0},
            "createdAt": "2026-11-30T00:00:00Z",
        }))
        .expect("subscription"))
    }
    async fn delete_subscription(&self, topic: &str, name: &str) -> Result<(), Error> {
        self.called(format!("delete_subscription {topic}/{name}"));
        Err(api_error(404, ErrorCode::SubscriptionNotFound, "gone"))
    }
}

fn queue(spec: serde_json::Value) -> crd::Queue {
    crd::Queue::new("orders", serde_json::from_value(spec).expect("spec"))
}

fn subscription(spec: serde_json::Value) -> crd::Subscription {
    crd::Subscription::new("billing", serde_json::from_value(spec).expect("spec"))
}

#[tokio::test]
async fn a_queue_is_created_under_its_broker_name_and_reports_its_counts() {
    let broker = FakeBroker::default();
    let q = queue(
        json!({"clusterRef": {"name": "demo"}, "name": "orders-v2", "visibilitySeconds": 45}),
    );
    let status = q.declare(&(), &broker).await.expect("declared");
    assert_eq!(
        (status.visible, status.in_flight, status.delayed),
        (Some(7), Some(2), Some(1))
    );
    assert_eq!(
        broker.queues.lock().expect("queues")["orders-v2"].visibility_seconds,
        45
    );
    // Declaring again (the periodic refresh) is the same call: drift is repaired.
    broker.queues.lock().expect("queues").clear();
    q.declare(&(), &broker).await.expect("declared again");
    assert!(
        broker
            .queues
            .lock()
            .expect("queues")
            .contains_key("orders-v2")
    );
}

#[tokio::test]
async fn fewer_partitions_than_the_queue_has_is_refused_before_the_broker_is_asked() {
    let broker = FakeBroker::default();
    let mut q = queue(json!({"clusterRef": {"name": "demo"}, "partitions": 2}));
    q.status = Some(crd::QueueStatus {
        partitions: Some(4),
        ..Default::default()
    });
    let failure = q.declare(&(), &broker).await.expect_err("refused");
    assert_eq!(failure.reason(), conditions::PARTITIONS_DECREASED);
    assert!(broker.calls.lock().expect("calls").is_empty());
}

#[tokio::test]
async fn removing_what_is_already_gone_is_done() {
    let broker = FakeBroker::default();
    let q = queue(json!({"clusterRef": {"name": "demo"}}));
    q.remove(&(), &broker)
        .await
        .expect("a missing queue counts as removed");
    let s = subscription(
        json!({"clusterRef": {"name": "demo"}, "topicRef": {"name": "t"},
        "endpoint": {"pull": {}}}),
    );
    let resolved = Resolved {
        topic: "events".into(),
        secret: None,
    };
    s.remove(&resolved, &broker).await.expect("removed");
    assert_eq!(
        *broker.calls.lock().expect("calls"),
        ["delete_queue orders", "delete_subscription events/billing"]
    );
}

#[tokio::test]
async fn a_subscription_waits_for_its_topic_and_names_a_bad_endpoint() {
    let broker = FakeBroker::default();
    let resolved = Resolved {
        topic: "events".into(),
        secret: Some("k".into()),
    };
    let s = subscription(
        json!({"clusterRef": {"name": "demo"}, "topicRef": {"name": "t"},
        "endpoint": {"queue": "billing"}}),
    );
    let failure = s
        .declare(&resolved, &broker)
        .await
        .expect_err("no topic yet");
    assert!(
        matches!(failure, Failure::Pending { reason, .. } if reason == conditions::TOPIC_NOT_FOUND)
    );
    broker.topics.lock().expect("topics").push("events".into());
    let status = s.declare(&resolved, &broker).await.expect("declared");
    assert_eq!((status.delivered, status.backlog), (Some(3), Some(4)));
    assert_eq!(status.topic.as_deref(), Some("events"));

    let bad = subscription(
        json!({"clusterRef": {"name": "demo"}, "topicRef": {"name": "t"},
        "endpoint": {"http": {"url": "ftp://example.test/hook"}}}),
    );
    let failure = bad.declare(&resolved, &broker).await.expect_err("ftp");
    assert_eq!(failure.reason(), conditions::INVALID_ENDPOINT);
}
