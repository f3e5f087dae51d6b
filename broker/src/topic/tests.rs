//! Topic semantics without a log or a clock.

use bytes::Bytes;
use sluice_client::{
    AttributeCondition, Endpoint, ErrorCode, RetryPolicy, RetryStrategy, SubscriptionFilter,
    SubscriptionSpec,
};

use super::config::{SubscriptionConfig, TopicUpdate};
use super::*;
use crate::queue::config::ConfigUpdate;

const S: u64 = 1000;

fn published(body: &str, tag: Option<&str>, attrs: &[(&str, &str)]) -> NewMessage {
    NewMessage {
        body: Bytes::copy_from_slice(body.as_bytes()),
        text: true,
        visible_at_ms: None,
        priority: 8,
        group: None,
        dedup: None,
        key: None,
        tag: tag.map(String::from),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn sub(
    endpoint: Endpoint,
    filter: Option<SubscriptionFilter>,
    retry: Option<RetryPolicy>,
) -> SubscriptionConfig {
    let spec = SubscriptionSpec {
        filter,
        retry,
        dead_letter_queue: Some("dlq".into()),
        ..SubscriptionSpec::new(endpoint)
    };
    SubscriptionConfig::from_wire(&spec, "secret".into()).expect("valid")
}

struct Fixture {
    topics: Topics,
    queues: Queues,
    index: u64,
}

impl Fixture {
    fn new() -> Self {
        let mut queues = Queues::default();
        for q in ["orders", "audit", "dlq"] {
            queues.put(0, q, &ConfigUpdate::default()).expect("queue");
        }
        let mut topics = Topics::default();
        topics.put(0, "t", &TopicUpdate::default()).expect("topic");
        Self {
            topics,
            queues,
            index: 0,
        }
    }

    fn publish(&mut self, now: u64, msgs: &[NewMessage]) -> Vec<Result<SendOutcome, ApiError>> {
        self.index += 1;
        self.topics
            .publish(now, "t", self.index, 0, msgs, None, &mut self.queues)
            .expect("topic")
    }
}

#[test]
fn publishing_fans_out_into_matching_queues_and_onto_the_timeline() {
    let mut f = Fixture::new();
    let orders_only = SubscriptionFilter {
        tags: vec!["order".into()],
        ..Default::default()
    };
    f.topics
        .put_subscription(
            0,
            "t",
            "to-orders",
            sub(Endpoint::Queue("orders".into()), Some(orders_only), None),
            &f.queues,
        )
        .expect("sub");
    f.topics
        .put_subscription(
            0,
            "t",
            "to-audit",
            sub(Endpoint::Queue("audit".into()), None, None),
            &f.queues,
        )
        .expect("sub");
    let out = f.publish(
        0,
        &[
            published("o1", Some("order"), &[]),
            published("r1", Some("refund"), &[]),
        ],
    );
    assert!(out.iter().all(Result::is_ok));
    assert_eq!(f.queues.get("orders").expect("q").len(), 1);
    assert_eq!(f.queues.get("audit").expect("q").len(), 2);
    let t = f.topics.get("t").expect("t");
    assert_eq!(t.timeline.len(), 2);
    assert_eq!(t.subscriptions["to-orders"].delivered, 1);
    assert_eq!(t.subscriptions["to-audit"].delivered, 2);
}

#[test]
fn a_subscription_to_a_missing_or_fifo_queue_is_refused() {
    let mut f = Fixture::new();
    let err = f
        .topics
        .put_subscription(
            0,
            "t",
            "s",
            sub(Endpoint::Queue("nope".into()), None, None),
            &f.queues,
        )
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidAttribute);
    f.queues
        .put(
            0,
            "f",
            &ConfigUpdate {
                fifo: Some(true),
                ..Default::default()
            },
        )
        .expect("fifo");
    let err = f
        .topics
        .put_subscription(
            0,
            "t",
            "s",
            sub(Endpoint::Queue("f".into()), None, None),
            &f.queues,
        )
        .unwrap_err();
    assert!(err.message.contains("FIFO"));
}

#[test]
fn push_failures_retry_then_dead_letter() {
    let mut f = Fixture::new();
    let retry = RetryPolicy {
        strategy: RetryStrategy::BackoffRetry,
        max_retries: Some(2),
        interval_seconds: Some(5),
    };
    f.topics
        .put_subscription(
            0,
            "t",
            "hook",
            sub(
                Endpoint::Http {
                    url: "http://x/y".into(),
                },
                None,
                Some(retry),
            ),
            &f.queues,
        )
        .expect("sub");
    f.publish(0, &[published("a", None, &[]), published("b", None, &[])]);
    let report = DeliveryReport {
        advance_to: 2,
        delivered: vec![0],
        failed: vec![1],
    };
    f.topics
        .report(S, "t", "hook", &report, &mut f.queues)
        .expect("report");
    let s = &f.topics.get("t").expect("t").subscriptions["hook"];
    assert_eq!(s.next, 2);
    assert_eq!(s.retries.get(&1), Some(&(1, 6 * S)));
    assert_eq!(s.delivered, 1);
    for (at, retries) in [(6 * S, 2), (11 * S, 2)] {
        let again = DeliveryReport {
            advance_to: 2,
            delivered: vec![],
            failed: vec![1],
        };
        f.topics
            .report(at, "t", "hook", &again, &mut f.queues)
            .expect("report");
        let s = &f.topics.get("t").expect("t").subscriptions["hook"];
        if at == 6 * S {
            assert_eq!(s.retries.get(&1), Some(&(retries, 11 * S)));
        }
    }
    let s = &f.topics.get("t").expect("t").subscriptions["hook"];
    assert!(s.retries.is_empty(), "given up after two retries");
    assert_eq!(s.failed, 1);
    assert_eq!(f.queues.get("dlq").expect("dlq").len(), 1, "dead-lettered");
}

#[test]
fn exponential_retries_grow_up_to_the_cap() {
    let config = sub(
        Endpoint::Http {
            url: "http://x".into(),
        },
        None,
        Some(RetryPolicy {
            strategy: RetryStrategy::ExponentialDecayRetry,
            max_retries: None,
            interval_seconds: None,
        }),
    );
    assert_eq!(config.retry.max_retries, 176);
    let delays: Vec<u64> = (1..=12).map(|n| config.retry.delay_ms(n) / 1000).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 512, 512]);
}

#[test]
fn retention_expires_the_timeline_and_lagging_pushes_lose_it() {
    let mut f = Fixture::new();
    f.topics
        .put(
            0,
            "t",
            &TopicUpdate {
                retention_seconds: Some(60),
                ..Default::default()
            },
        )
        .expect("update");
    f.topics
        .put_subscription(
            0,
            "t",
            "hook",
            sub(
                Endpoint::Http {
                    url: "http://x".into(),
                },
                None,
                None,
            ),
            &f.queues,
        )
        .expect("sub");
    f.publish(0, &[published("a", None, &[]), published("b", None, &[])]);
    f.topics.tick(61 * S);
    let t = f.topics.get("t").expect("t");
    assert!(t.timeline.is_empty());
    assert_eq!(t.timeline.base(), 2);
    assert_eq!(t.subscriptions["hook"].next, 2);
    assert_eq!(t.subscriptions["hook"].failed, 2);
}

#[test]
fn cursors_belong_to_timeline_subscriptions() {
    let mut f = Fixture::new();
    f.topics
        .put_subscription(
            0,
            "t",
            "feed",
            sub(Endpoint::Pull {}, None, None),
            &f.queues,
        )
        .expect("sub");
    f.topics
        .put_subscription(
            0,
            "t",
            "hook",
            sub(
                Endpoint::Http {
                    url: "http://x".into(),
                },
                None,
                None,
            ),
            &f.queues,
        )
        .expect("sub");
    f.topics
        .commit_cursor("t", "feed", "phone", 7)
        .expect("commit");
    assert_eq!(
        f.topics.get("t").expect("t").subscriptions["feed"].cursors["phone"],
        7
    );
    let err = f.topics.commit_cursor("t", "hook", "phone", 7).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    let err = f.topics.commit_cursor("t", "nope", "phone", 7).unwrap_err();
    assert_eq!(err.code, ErrorCode::SubscriptionNotFound);
}

#[test]
fn a_retried_publish_stores_once() {
    let mut f = Fixture::new();
    f.topics
        .put_subscription(
            0,
            "t",
            "to-audit",
            sub(Endpoint::Queue("audit".into()), None, None),
            &f.queues,
        )
        .expect("sub");
    let msgs = [published("a", None, &[])];
    f.index += 1;
    let first = f
        .topics
        .publish(0, "t", f.index, 0, &msgs, Some(9), &mut f.queues)
        .expect("t");
    f.index += 1;
    let again = f
        .topics
        .publish(S, "t", f.index, 0, &msgs, Some(9), &mut f.queues)
        .expect("t");
    assert_eq!(first, again);
    assert_eq!(f.topics.get("t").expect("t").timeline.len(), 1);
    assert_eq!(f.queues.get("audit").expect("q").len(), 1);
}

#[test]
fn filters_are_checked_when_subscribing() {
    let bad = SubscriptionSpec {
        filter: Some(SubscriptionFilter {
            attributes: [(
                "price".to_string(),
                vec![AttributeCondition::Numeric {
                    numeric: vec![
                        sluice_client::NumericTerm::Operator("~".into()),
                        sluice_client::NumericTerm::Value(1.0),
                    ],
                }],
            )]
            .into(),
            ..Default::default()
        }),
        ..SubscriptionSpec::new(Endpoint::Pull {})
    };
    let err = SubscriptionConfig::from_wire(&bad, "s".into()).unwrap_err();
    assert!(err.message.contains("operator"), "{}", err.message);
}

#[test]
fn a_partition_follows_its_partition_zero_and_keeps_its_delivery_state() {
    let mut f = Fixture::new();
    let config = f.topics.get("t").expect("t").config.clone();
    let hook = sub(
        Endpoint::Http {
            url: "http://h/".into(),
        },
        None,
        None,
    );
    let feed = sub(Endpoint::Pull {}, None, None);
    let subs = vec![("hook".to_string(), hook.clone())];
    assert!(f.topics.sync_partition(0, "t#1", 7, &config, &subs));
    let report = |to| DeliveryReport {
        advance_to: to,
        ..DeliveryReport::default()
    };
    for i in 0..3 {
        f.topics
            .publish(
                0,
                "t#1",
                10 + i,
                0,
                &[published("m", None, &[])],
                None,
                &mut f.queues,
            )
            .expect("publish to the partition");
    }
    f.topics
        .report(0, "t#1", "hook", &report(2), &mut f.queues)
        .expect("report");

    // Synced again with one more subscription: the old one keeps its position, the new
    // one starts at the partition's end; partitions never show in the listing.
    let subs = vec![
        ("feed".to_string(), feed),
        ("hook".to_string(), hook.clone()),
    ];
    assert!(!f.topics.sync_partition(5, "t#1", 7, &config, &subs));
    let p = f.topics.get("t#1").expect("partition");
    assert_eq!(p.subscriptions["hook"].next, 2);
    assert_eq!(p.subscriptions["feed"].created_ms, 5);
    assert_eq!(p.timeline.len(), 3);
    let names: Vec<&str> = f.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["t"]);
    assert_eq!(f.topics.list("", None, 10).0.len(), 1);
    assert_eq!(f.topics.partitions().count(), 2);

    // A copy that does not name a subscription (a late one) leaves it; one whose endpoint
    // changed starts again.
    let moved = sub(
        Endpoint::Http {
            url: "http://elsewhere/".into(),
        },
        None,
        None,
    );
    let subs = vec![("hook".to_string(), moved)];
    f.topics.sync_partition(6, "t#1", 7, &config, &subs);
    let p = f.topics.get("t#1").expect("partition");
    assert_eq!(p.subscriptions.len(), 2);
    assert_eq!(
        (
            p.subscriptions["hook"].next,
            p.subscriptions["hook"].created_ms
        ),
        (3, 6)
    );

    // A partition a deleted topic left behind (another id) starts afresh.
    assert!(f.topics.sync_partition(9, "t#1", 8, &config, &subs));
    let p = f.topics.get("t#1").expect("partition");
    assert_eq!((p.id, p.timeline.len()), (8, 0));
}
