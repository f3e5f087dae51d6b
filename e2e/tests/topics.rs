//! Topics and subscriptions against real broker processes and real endpoints on
//! loopback: an HTTP server that fails on demand, WebSocket clients, an SMTP server
//! (aiosmtpd), fan-out into queues, every filter kind, signatures, retries and
//! dead-lettering, and delivery that goes on across a leader's death.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_client::{
    AttributeCondition, DeliveryFormat, Endpoint, Error, ErrorCode, ListQueues, NumericTerm,
    PublishMessage, PullQuery, QueueAttributesUpdate, ReceiveRequest, RetryPolicy, RetryStrategy,
    StreamEvent, Subscription, SubscriptionFilter, SubscriptionSpec, TopicAttributesUpdate,
    TopicMessage,
};
use sluice_e2e::sink::{Push, Sink};
use sluice_e2e::{Broker, BrokerOptions, Cluster, free_port, test_dir};
use tokio_tungstenite::tungstenite::Message as Frame;

/// A subscription's state once `settled` holds for it, or as it is after 20 s: its
/// counts move when the leader's delivery report is replicated, a moment after the
/// endpoint has had the push.
async fn subscription_when(
    client: &sluice_client::Client,
    topic: &str,
    subscription: &str,
    settled: impl Fn(&Subscription) -> bool,
) -> Subscription {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let state = client
            .get_subscription(topic, subscription)
            .await
            .expect("subscription");
        if settled(&state) || tokio::time::Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn broker(name: &str, extra: &[&str]) -> (tempfile::TempDir, Broker) {
    let dir = test_dir(name).expect("test dir");
    let mut options = BrokerOptions::single(dir.path()).expect("ports");
    options
        .extra_args
        .extend(extra.iter().map(|s| s.to_string()));
    let broker = Broker::start(options).await.expect("broker starts");
    (dir, broker)
}

fn code(e: Error) -> (u16, ErrorCode) {
    match e {
        Error::Api { status, error } => (status, error.code),
        other => panic!("expected an API error, got {other}"),
    }
}

fn message(body: &str, tag: Option<&str>, attributes: &[(&str, &str)]) -> PublishMessage {
    PublishMessage {
        body: Some(body.to_string()),
        tag: tag.map(String::from),
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..PublishMessage::default()
    }
}

fn http(url: String) -> Endpoint {
    Endpoint::Http { url }
}

fn backoff(max_retries: u32, interval_seconds: u32) -> Option<RetryPolicy> {
    Some(RetryPolicy {
        strategy: RetryStrategy::BackoffRetry,
        max_retries: Some(max_retries),
        interval_seconds: Some(interval_seconds),
    })
}

fn verify_signature(secret: &str, push: &Push) -> bool {
    let Some(header) = push.header("x-sluice-signature") else {
        return false;
    };
    let Some((t, v1)) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&push.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

#[tokio::test]
async fn topics_and_subscriptions_are_managed_with_clear_errors() {
    let (_dir, b) = broker("topics-crud", &[]).await;
    let c = &b.client;
    let t = c
        .put_topic(
            "orders",
            &TopicAttributesUpdate {
                retention_seconds: Some(3600),
                ..TopicAttributesUpdate::default()
            },
        )
        .await
        .expect("create");
    assert_eq!(t.attributes.retention_seconds, 3600);
    assert_eq!(t.subscriptions, 0);
    let again = c
        .put_topic("orders", &TopicAttributesUpdate::default())
        .await
        .expect("update keeps what is not named");
    assert_eq!(again.attributes.retention_seconds, 3600);
    let names: Vec<String> = c
        .list_topics(&ListQueues::default())
        .await
        .expect("list")
        .topics
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec!["orders"]);

    assert_eq!(
        code(
            c.put_topic("bad name!", &TopicAttributesUpdate::default())
                .await
                .unwrap_err()
        ),
        (400, ErrorCode::InvalidName)
    );
    assert_eq!(
        code(c.get_topic("nope").await.unwrap_err()),
        (404, ErrorCode::TopicNotFound)
    );
    assert_eq!(
        code(
            c.publish("nope", &PublishMessage::text("x"))
                .await
                .unwrap_err()
        ),
        (404, ErrorCode::TopicNotFound)
    );
    assert_eq!(
        code(
            c.put_subscription("nope", "s", &SubscriptionSpec::new(Endpoint::Pull {}))
                .await
                .unwrap_err()
        ),
        (404, ErrorCode::TopicNotFound)
    );
    // A queue endpoint must exist; email needs an SMTP server; filters must make sense.
    let (status, err) = code(
        c.put_subscription(
            "orders",
            "q",
            &SubscriptionSpec::new(Endpoint::Queue("missing".into())),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((status, err), (400, ErrorCode::InvalidAttribute));
    assert_eq!(
        code(
            c.put_subscription(
                "orders",
                "mail",
                &SubscriptionSpec::new(Endpoint::Email {
                    to: "ops@example.com".into()
                })
            )
            .await
            .unwrap_err()
        ),
        (400, ErrorCode::InvalidAttribute)
    );
    let mut bad_filter = SubscriptionSpec::new(Endpoint::Pull {});
    bad_filter.filter = Some(SubscriptionFilter {
        tags: vec![],
        attributes: BTreeMap::from([(
            "amount".to_string(),
            vec![AttributeCondition::Numeric {
                numeric: vec![NumericTerm::Operator("~".into()), NumericTerm::Value(1.0)],
            }],
        )]),
    });
    assert_eq!(
        code(
            c.put_subscription("orders", "f", &bad_filter)
                .await
                .unwrap_err()
        )
        .0,
        400
    );
    assert_eq!(
        code(
            c.put_subscription(
                "orders",
                "h",
                &SubscriptionSpec::new(http("ftp://x".into()))
            )
            .await
            .unwrap_err()
        )
        .0,
        400
    );

    // A pushed subscription is not pulled; cursors belong to their topic.
    let hook = c
        .put_subscription(
            "orders",
            "hook",
            &SubscriptionSpec::new(http("http://127.0.0.1:9/x".into())),
        )
        .await
        .expect("http subscription");
    assert_eq!(hook.secret.len(), 32, "a secret is generated");
    assert_eq!(
        code(
            c.pull("orders", "hook", &PullQuery::default())
                .await
                .unwrap_err()
        )
        .0,
        400
    );
    c.put_subscription("orders", "p", &SubscriptionSpec::new(Endpoint::Pull {}))
        .await
        .expect("pull subscription");
    let bad_cursor = PullQuery {
        after: Some("not-a-cursor".into()),
        ..PullQuery::default()
    };
    assert_eq!(
        code(c.pull("orders", "p", &bad_cursor).await.unwrap_err()),
        (400, ErrorCode::InvalidCursor)
    );
    c.put_topic("other", &TopicAttributesUpdate::default())
        .await
        .expect("other topic");
    c.put_subscription("other", "p", &SubscriptionSpec::new(Endpoint::Pull {}))
        .await
        .expect("other pull");
    let foreign = c
        .pull("other", "p", &PullQuery::default())
        .await
        .expect("pull other")
        .cursor;
    let foreign_query = PullQuery {
        after: Some(foreign),
        ..PullQuery::default()
    };
    assert_eq!(
        code(c.pull("orders", "p", &foreign_query).await.unwrap_err()),
        (400, ErrorCode::InvalidCursor)
    );
    // An endpoint cannot be changed in place.
    assert_eq!(
        code(
            c.put_subscription(
                "orders",
                "p",
                &SubscriptionSpec::new(http("http://127.0.0.1:9/y".into()))
            )
            .await
            .unwrap_err()
        )
        .0,
        409
    );
    assert_eq!(c.list_subscriptions("orders").await.expect("list").len(), 2);
    c.delete_subscription("orders", "p")
        .await
        .expect("delete sub");
    assert_eq!(
        code(c.get_subscription("orders", "p").await.unwrap_err()),
        (404, ErrorCode::SubscriptionNotFound)
    );
    c.delete_topic("orders").await.expect("delete topic");
    assert_eq!(
        code(c.get_topic("orders").await.unwrap_err()),
        (404, ErrorCode::TopicNotFound)
    );
}

/// A message as the fan-out test publishes it, with what each filter looks at.
struct Published {
    body: String,
    tag: Option<&'static str>,
    attributes: BTreeMap<String, String>,
}

/// The filters of the fan-out test, and an independent statement of which messages each
/// one takes: the reference the broker's deliveries are checked against.
/// Which published messages a subscription should get.
type Expectation = Box<dyn Fn(&Published) -> bool>;

fn fan_out_filter(i: usize) -> (SubscriptionFilter, Expectation) {
    let attr = |k: &str, conditions: Vec<AttributeCondition>| SubscriptionFilter {
        tags: vec![],
        attributes: BTreeMap::from([(k.to_string(), conditions)]),
    };
    let get = |p: &Published, k: &str| p.attributes.get(k).cloned();
    match i % 8 {
        0 => (SubscriptionFilter::default(), Box::new(|_| true)),
        1 => (
            SubscriptionFilter {
                tags: vec!["red".into(), "green".into()],
                attributes: BTreeMap::new(),
            },
            Box::new(|p| matches!(p.tag, Some("red") | Some("green"))),
        ),
        2 => (
            attr("kind", vec![AttributeCondition::Exact("paid".into())]),
            Box::new(move |p| get(p, "kind").as_deref() == Some("paid")),
        ),
        3 => (
            attr(
                "region",
                vec![AttributeCondition::Prefix {
                    prefix: "eu-".into(),
                }],
            ),
            Box::new(move |p| get(p, "region").is_some_and(|r| r.starts_with("eu-"))),
        ),
        4 => (
            attr(
                "amount",
                vec![AttributeCondition::Numeric {
                    numeric: vec![
                        NumericTerm::Operator(">=".into()),
                        NumericTerm::Value(100.0),
                        NumericTerm::Operator("<".into()),
                        NumericTerm::Value(500.0),
                    ],
                }],
            ),
            Box::new(move |p| {
                get(p, "amount")
                    .and_then(|a| a.parse::<f64>().ok())
                    .is_some_and(|a| (100.0..500.0).contains(&a))
            }),
        ),
        5 => (
            attr("coupon", vec![AttributeCondition::Exists { exists: true }]),
            Box::new(move |p| get(p, "coupon").is_some()),
        ),
        6 => (
            attr("coupon", vec![AttributeCondition::Exists { exists: false }]),
            Box::new(move |p| get(p, "coupon").is_none()),
        ),
        _ => (
            // Tags and attributes together, and two conditions on one key (either will do).
            SubscriptionFilter {
                tags: vec!["red".into()],
                attributes: BTreeMap::from([(
                    "kind".to_string(),
                    vec![
                        AttributeCondition::AnythingBut {
                            anything_but: vec!["refund".into(), "void".into()],
                        },
                        AttributeCondition::Exists { exists: false },
                    ],
                )]),
            },
            Box::new(move |p| {
                p.tag == Some("red") && get(p, "kind").is_none_or(|k| k != "refund" && k != "void")
            }),
        ),
    }
}

fn fan_out_messages(count: usize) -> Vec<Published> {
    let tags = [None, Some("red"), Some("blue"), Some("green")];
    let kinds = [
        Some("paid"),
        Some("refund"),
        Some("void"),
        Some("new"),
        None,
    ];
    let regions = [Some("eu-west"), Some("us-east"), None, Some("eu")];
    let amounts = [
        Some("50"),
        Some("100"),
        Some("250.5"),
        Some("499"),
        Some("500"),
        None,
        Some("abc"),
    ];
    (0..count)
        .map(|i| {
            let mut attributes = BTreeMap::new();
            for (key, value) in [
                ("kind", kinds[i % kinds.len()]),
                ("region", regions[(i / 2) % regions.len()]),
                ("amount", amounts[(i / 3) % amounts.len()]),
                ("coupon", (i % 3 == 0).then_some("SAVE")),
            ] {
                if let Some(v) = value {
                    attributes.insert(key.to_string(), v.to_string());
                }
            }
            Published {
                body: format!("fan-out message {i} ✓"),
                tag: tags[(i / 5) % tags.len()],
                attributes,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_puts_each_message_in_every_matching_queue_exactly_once() {
    let (_dir, b) = broker("topics-fanout", &[]).await;
    let c = &b.client;
    const SUBSCRIPTIONS: usize = 100;
    c.put_topic("events", &TopicAttributesUpdate::default())
        .await
        .expect("topic");
    let mut expectations = Vec::new();
    for i in 0..SUBSCRIPTIONS {
        let queue = format!("q{i:03}");
        c.put_queue(&queue, &QueueAttributesUpdate::default())
            .await
            .expect("queue");
        let (filter, expect) = fan_out_filter(i);
        let mut spec = SubscriptionSpec::new(Endpoint::Queue(queue.clone()));
        spec.filter = Some(filter);
        c.put_subscription("events", &format!("s{i:03}"), &spec)
            .await
            .expect("subscription");
        expectations.push((queue, expect));
    }
    let published = fan_out_messages(140);
    for chunk in published.chunks(20) {
        let batch: Vec<PublishMessage> = chunk
            .iter()
            .map(|p| PublishMessage {
                body: Some(p.body.clone()),
                tag: p.tag.map(String::from),
                attributes: p.attributes.clone(),
                ..PublishMessage::default()
            })
            .collect();
        let results = c.publish_batch("events", &batch).await.expect("publish");
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    }
    let mut checked_kinds = BTreeSet::new();
    for (i, (queue, expect)) in expectations.iter().enumerate() {
        let want: BTreeSet<String> = published
            .iter()
            .filter(|p| expect(p))
            .map(|p| p.body.clone())
            .collect();
        let mut got = Vec::new();
        loop {
            let batch = c
                .receive(
                    queue,
                    &ReceiveRequest {
                        max: Some(32),
                        wait_seconds: Some(0),
                        visibility_seconds: Some(300),
                    },
                )
                .await
                .expect("receive");
            if batch.is_empty() {
                break;
            }
            got.extend(batch.into_iter().map(|m| m.body.expect("text body")));
        }
        let got_set: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(got.len(), got_set.len(), "{queue}: a message arrived twice");
        assert_eq!(got_set, want, "{queue} (filter kind {})", i % 8);
        assert!(
            !want.is_empty() && want.len() < published.len() || i % 8 == 0,
            "filter kind {} selects a proper subset, so the test can tell",
            i % 8
        );
        checked_kinds.insert(i % 8);
    }
    assert_eq!(checked_kinds.len(), 8);
}

/// An `https://` endpoint with a certificate from a private CA: reached when the broker
/// trusts that CA (`--push-ca-file`), never when it does not (the message waits, retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_push_verifies_the_endpoint_certificate() {
    let (sink, base, certificate) = Sink::start_tls().await.expect("tls sink");
    let dir = test_dir("topics-https-ca").expect("dir");
    let ca = dir.path().join("sink-ca.pem");
    std::fs::write(&ca, &certificate.pem).expect("write ca");
    let ca = ca.display().to_string();
    let (_trusting_dir, trusting) = broker("topics-https", &["--push-ca-file", &ca]).await;
    let (_plain_dir, plain) = broker("topics-https-untrusted", &[]).await;
    for (b, endpoint) in [(&trusting, "trusted"), (&plain, "untrusted")] {
        b.client
            .put_topic("alerts", &TopicAttributesUpdate::default())
            .await
            .expect("topic");
        let mut spec = SubscriptionSpec::new(http(format!("{base}/{endpoint}")));
        spec.retry = backoff(50, 1);
        spec.format = Some(DeliveryFormat::Simplified);
        b.client
            .put_subscription("alerts", "hook", &spec)
            .await
            .expect("https subscription");
        b.client
            .publish("alerts", &message("disk full", None, &[]))
            .await
            .expect("publish");
    }
    let delivered = sink
        .wait_for(Duration::from_secs(20), |pushes| {
            pushes.iter().any(|p| p.endpoint == "trusted")
        })
        .await;
    assert!(delivered, "pushes: {:#?}", sink.pushes());
    let hook = trusting
        .client
        .get_subscription("alerts", "hook")
        .await
        .expect("subscription");
    let push = &sink.delivered("trusted")[0];
    assert_eq!(push.body.as_ref(), b"disk full");
    assert!(
        verify_signature(&hook.secret, push),
        "signature of {push:?}"
    );
    // The broker without the CA fails the handshake: its attempt counts as failed and
    // the message waits for a retry; nothing arrives.
    let untrusted =
        subscription_when(&plain.client, "alerts", "hook", |s| s.counts.retrying >= 1).await;
    assert_eq!(untrusted.counts.retrying, 1, "{:?}", untrusted.counts);
    assert_eq!(untrusted.counts.delivered, 0);
    assert!(sink.pushes().iter().all(|p| p.endpoint != "untrusted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_push_is_signed_retried_and_dead_lettered() {
    let (_dir, b) = broker("topics-http", &[]).await;
    let c = &b.client;
    let (sink, base) = Sink::start().await.expect("sink");
    c.put_topic("orders", &TopicAttributesUpdate::default())
        .await
        .expect("topic");
    c.put_queue("dead", &QueueAttributesUpdate::default())
        .await
        .expect("dlq");

    // `flaky` fails its first two requests, then recovers: the retries get through.
    let mut flaky = SubscriptionSpec::new(http(format!("{base}/flaky")));
    flaky.retry = backoff(3, 1);
    flaky.filter = Some(SubscriptionFilter {
        tags: vec!["shipped".into()],
        attributes: BTreeMap::new(),
    });
    let flaky_sub = c
        .put_subscription("orders", "flaky", &flaky)
        .await
        .expect("flaky");
    sink.fail("flaky", 2);
    // `down` never answers 2xx: after its retries the message goes to the DLQ.
    let mut down = SubscriptionSpec::new(http(format!("{base}/down")));
    down.retry = backoff(2, 1);
    down.dead_letter_queue = Some("dead".into());
    c.put_subscription("orders", "down", &down)
        .await
        .expect("down");
    sink.fail("down", u32::MAX);
    // Each format, filtered by tag.
    for (name, format) in [
        ("json", DeliveryFormat::Json),
        ("xml", DeliveryFormat::Xml),
        ("raw", DeliveryFormat::Simplified),
    ] {
        let mut spec = SubscriptionSpec::new(http(format!("{base}/{name}")));
        spec.format = Some(format);
        spec.filter = Some(SubscriptionFilter {
            tags: vec!["shipped".into()],
            attributes: BTreeMap::new(),
        });
        c.put_subscription("orders", name, &spec)
            .await
            .expect("format sub");
    }

    let sent = c
        .publish(
            "orders",
            &message("order <42> & more", Some("shipped"), &[("amount", "42")]),
        )
        .await
        .expect("publish");
    c.publish("orders", &message("not shipped", Some("created"), &[]))
        .await
        .expect("publish other");

    let done = sink
        .wait_for(Duration::from_secs(30), |pushes| {
            let ok = |e: &str| {
                pushes
                    .iter()
                    .filter(|p| p.endpoint == e && p.status == 200)
                    .count()
            };
            ok("flaky") == 1 && pushes.iter().filter(|p| p.endpoint == "down").count() == 6
        })
        .await;
    assert!(done, "pushes: {:#?}", sink.pushes());

    let flaky_pushes: Vec<Push> = sink
        .pushes()
        .into_iter()
        .filter(|p| p.endpoint == "flaky")
        .collect();
    let first: Vec<&Push> = flaky_pushes
        .iter()
        .filter(|p| p.header("x-sluice-message-id") == Some(sent.id.as_str()))
        .collect();
    assert_eq!(
        first.iter().map(|p| p.status).collect::<Vec<_>>(),
        vec![500, 500, 200],
        "two failures, then the retry gets through"
    );
    assert_eq!(
        first
            .iter()
            .map(|p| p.header("x-sluice-attempt"))
            .collect::<Vec<_>>(),
        vec![Some("1"), Some("2"), Some("3")]
    );
    let gap = first[1].at.duration_since(first[0].at);
    assert!(
        gap >= Duration::from_millis(900),
        "retried after the interval, not at once: {gap:?}"
    );
    for push in &flaky_pushes {
        assert!(
            verify_signature(&flaky_sub.secret, push),
            "signature of {push:?}"
        );
        assert!(!verify_signature("another secret", push));
    }

    // Formats: JSON carries everything, XML escapes, SIMPLIFIED is the body alone; the
    // tag filter kept the other message out.
    let json = sink.delivered("json");
    assert_eq!(json.len(), 1);
    let doc: serde_json::Value = serde_json::from_slice(&json[0].body).expect("json");
    assert_eq!(doc["body"], "order <42> & more");
    assert_eq!(doc["topic"], "orders");
    assert_eq!(doc["subscription"], "json");
    assert_eq!(doc["id"], sent.id.as_str());
    assert_eq!(doc["attributes"]["amount"], "42");
    let xml = String::from_utf8(sink.delivered("xml")[0].body.to_vec()).expect("utf-8");
    assert!(
        xml.contains("<Message>order &lt;42&gt; &amp; more</Message>"),
        "{xml}"
    );
    assert!(xml.contains("<MessageTag>shipped</MessageTag>"), "{xml}");
    assert_eq!(&sink.delivered("raw")[0].body[..], b"order <42> & more");

    // `down` gave up on both messages after 1 + 2 attempts each; they wait in the DLQ.
    let dead = c
        .receive(
            "dead",
            &ReceiveRequest {
                max: Some(10),
                wait_seconds: Some(5),
                visibility_seconds: Some(60),
            },
        )
        .await
        .expect("dlq");
    let mut dead_bodies: Vec<String> = dead.into_iter().filter_map(|m| m.body).collect();
    dead_bodies.sort();
    assert_eq!(dead_bodies, vec!["not shipped", "order <42> & more"]);
    let down_state = subscription_when(c, "orders", "down", |s| s.counts.failed >= 2).await;
    assert_eq!(down_state.counts.failed, 2);
    assert_eq!(down_state.counts.delivered, 0);
    let flaky_state = subscription_when(c, "orders", "flaky", |s| s.counts.delivered >= 1).await;
    assert_eq!(flaky_state.counts.delivered, 1);
    assert_eq!(flaky_state.counts.backlog + flaky_state.counts.retrying, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_endpoint_delays_no_other_subscription_and_gets_at_most_max_in_flight() {
    let (_dir, b) = broker("topics-isolation", &[]).await;
    let c = &b.client;
    let (sink, base) = Sink::start().await.expect("sink");
    c.put_topic("ticks", &TopicAttributesUpdate::default())
        .await
        .expect("topic");
    sink.hold("hung");
    let mut hung = SubscriptionSpec::new(http(format!("{base}/hung")));
    hung.max_in_flight = Some(3);
    c.put_subscription("ticks", "hung", &hung)
        .await
        .expect("hung");
    c.put_subscription(
        "ticks",
        "healthy",
        &SubscriptionSpec::new(http(format!("{base}/healthy"))),
    )
    .await
    .expect("healthy");
    for i in 0..10 {
        c.publish("ticks", &PublishMessage::text(format!("tick {i}")))
            .await
            .expect("publish");
    }
    // Every message reaches the healthy endpoint while the hung one holds its requests.
    let healthy_done = sink
        .wait_for(Duration::from_secs(30), |p| {
            p.iter().filter(|p| p.endpoint == "healthy").count() == 10
        })
        .await;
    assert!(healthy_done, "{:?}", sink.pushes());
    assert!(sink.wait_held(Duration::from_secs(10), "hung", 3).await);
    assert_eq!(sink.waiting("hung"), 3, "no more than maxInFlight at once");
    assert!(sink.delivered("hung").is_empty());
    sink.release("hung");
    let hung_done = sink
        .wait_for(Duration::from_secs(30), |p| {
            p.iter()
                .filter(|p| p.endpoint == "hung" && p.status == 200)
                .count()
                == 10
        })
        .await;
    assert!(hung_done, "{:?}", sink.pushes());
}

/// The next event of a stream (text frames only), within 10 s.
async fn stream_event<S>(ws: &mut S) -> StreamEvent
where
    S: futures::Stream<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("frame");
        if let Frame::Text(text) = frame {
            return serde_json::from_str(text.as_str()).expect("event");
        }
    }
}

/// The next `n` messages of a stream; any other event fails the test.
async fn stream_messages<S>(ws: &mut S, n: usize) -> Vec<TopicMessage>
where
    S: futures::Stream<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let mut messages = Vec::with_capacity(n);
    while messages.len() < n {
        match stream_event(ws).await {
            StreamEvent::Message { message } => messages.push(message),
            other => panic!("unexpected {other:?}"),
        }
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_and_websocket_read_the_timeline_with_device_cursors() {
    let (_dir, b) = broker("topics-stream", &[]).await;
    let c = &b.client;
    c.put_topic("feed", &TopicAttributesUpdate::default())
        .await
        .expect("topic");
    let mut spec = SubscriptionSpec::new(Endpoint::Websocket {});
    spec.filter = Some(SubscriptionFilter {
        tags: vec![],
        attributes: BTreeMap::from([(
            "level".to_string(),
            vec![AttributeCondition::AnythingBut {
                anything_but: vec!["debug".into()],
            }],
        )]),
    });
    c.put_subscription("feed", "live", &spec)
        .await
        .expect("ws sub");
    c.put_subscription("feed", "poll", &SubscriptionSpec::new(Endpoint::Pull {}))
        .await
        .expect("pull sub");

    let url = format!(
        "ws://{}/v1/topics/feed/subscriptions/live/stream?device=phone",
        b.options.listen
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("websocket connects");
    // A long-polling pull waits for the first publish.
    let poller = {
        let c = c.clone();
        tokio::spawn(async move {
            c.pull(
                "feed",
                "poll",
                &PullQuery {
                    wait_seconds: Some(10),
                    ..PullQuery::default()
                },
            )
            .await
        })
    };
    for (i, level) in ["info", "debug", "warn", "info"].iter().enumerate() {
        c.publish(
            "feed",
            &message(&format!("line {i}"), None, &[("level", level)]),
        )
        .await
        .expect("publish");
    }
    let (bodies, cursors): (Vec<String>, Vec<String>) = stream_messages(&mut ws, 3)
        .await
        .into_iter()
        .map(|m| (m.body.expect("body"), m.cursor))
        .unzip();
    assert_eq!(
        bodies,
        vec!["line 0", "line 2", "line 3"],
        "debug filtered out"
    );
    let polled = poller.await.expect("join").expect("pull");
    assert_eq!(polled.messages[0].body.as_deref(), Some("line 0"));

    // Commit after the second message, reconnect as the same device: the stream resumes
    // right after it.
    let commit = serde_json::json!({ "commit": cursors[1] }).to_string();
    let (mut ws, _) = {
        let mut old = ws;
        old.send(Frame::Text(commit.into()))
            .await
            .expect("send commit");
        assert_eq!(
            stream_event(&mut old).await,
            StreamEvent::Committed {
                cursor: cursors[1].clone()
            }
        );
        old.close(None).await.expect("close");
        tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("reconnect")
    };
    assert_eq!(
        c.get_cursor("feed", "live", "phone").await.expect("cursor"),
        cursors[1]
    );
    let next = stream_messages(&mut ws, 1).await;
    assert_eq!(next[0].body.as_deref(), Some("line 3"));
    // A garbled commit gets an error frame, and the stream stays open.
    ws.send(Frame::Text("{\"commit\": 5}".into()))
        .await
        .expect("send");
    let event = stream_event(&mut ws).await;
    assert!(matches!(event, StreamEvent::Error { .. }), "{event:?}");

    // Pull pages with cursors, and devices keep their own positions.
    let page = c
        .pull(
            "feed",
            "poll",
            &PullQuery {
                max: Some(2),
                ..PullQuery::default()
            },
        )
        .await
        .expect("page 1");
    assert_eq!(page.messages.len(), 2);
    c.commit_cursor("feed", "poll", "tablet", &page.cursor)
        .await
        .expect("commit");
    let rest = c
        .pull(
            "feed",
            "poll",
            &PullQuery {
                device: Some("tablet".into()),
                ..PullQuery::default()
            },
        )
        .await
        .expect("resume by device");
    let rest: Vec<String> = rest.messages.into_iter().filter_map(|m| m.body).collect();
    assert_eq!(rest, vec!["line 2", "line 3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_a_partitioned_topic_wakes_on_every_partition_and_resumes_by_device() {
    let (_dir, b) = broker("topics-partitioned-stream", &[]).await;
    let c = &b.client;
    let topic = c
        .put_topic(
            "ticks",
            &TopicAttributesUpdate {
                partitions: Some(3),
                ..TopicAttributesUpdate::default()
            },
        )
        .await
        .expect("topic");
    // One broker without data groups: every partition in group 0.
    assert_eq!(topic.partition_groups, vec![0, 0, 0]);
    c.put_subscription(
        "ticks",
        "live",
        &SubscriptionSpec::new(Endpoint::Websocket {}),
    )
    .await
    .expect("subscription");
    let url = format!(
        "ws://{}/v1/topics/ticks/subscriptions/live/stream?device=watch",
        b.options.listen
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("websocket connects");
    // Published one at a time after the stream is open: each key wakes it, whichever
    // partition it goes to; each key's messages come in order.
    let mut sent = Vec::new();
    for i in 0..24 {
        let mut m = message(&format!("k{} {}", i % 6, i / 6), None, &[]);
        m.key = Some(format!("k{}", i % 6));
        c.publish("ticks", &m).await.expect("publish");
        sent.push(m.body.expect("body"));
    }
    let (got, cursors): (Vec<String>, Vec<String>) = stream_messages(&mut ws, sent.len())
        .await
        .into_iter()
        .map(|m| (m.body.expect("body"), m.cursor))
        .unzip();
    let mut sorted_got = got.clone();
    sorted_got.sort();
    let mut sorted_sent = sent.clone();
    sorted_sent.sort();
    assert_eq!(sorted_got, sorted_sent, "each message once");
    for key in 0..6 {
        let order: Vec<&String> = got
            .iter()
            .filter(|b| b.starts_with(&format!("k{key} ")))
            .collect();
        let mut expected = order.clone();
        expected.sort();
        assert_eq!(order, expected, "key k{key} in order");
    }

    // The commit of the 20th message's cursor holds in every partition: a reconnect as
    // the same device gets exactly the last four.
    let commit = serde_json::json!({ "commit": cursors[19] }).to_string();
    ws.send(Frame::Text(commit.into())).await.expect("commit");
    assert_eq!(
        stream_event(&mut ws).await,
        StreamEvent::Committed {
            cursor: cursors[19].clone()
        }
    );
    ws.close(None).await.expect("close");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("reconnect");
    let rest: Vec<String> = stream_messages(&mut ws, 4)
        .await
        .into_iter()
        .map(|m| m.body.expect("body"))
        .collect();
    assert_eq!(rest, got[20..].to_vec());
    // The topic grows under the open stream: messages in the new partitions come too.
    let grown = c
        .put_topic(
            "ticks",
            &TopicAttributesUpdate {
                partitions: Some(5),
                ..TopicAttributesUpdate::default()
            },
        )
        .await
        .expect("grow");
    assert_eq!(grown.partition_groups.len(), 5);
    let mut later = Vec::new();
    for i in 0..10 {
        let mut m = message(&format!("later {i}"), None, &[]);
        m.key = Some(format!("later-{i}"));
        c.publish("ticks", &m).await.expect("publish");
        later.push(m.body.expect("body"));
    }
    let mut streamed: Vec<String> = stream_messages(&mut ws, later.len())
        .await
        .into_iter()
        .map(|m| m.body.expect("body"))
        .collect();
    streamed.sort();
    later.sort();
    assert_eq!(streamed, later);
    // A topic has at least one partition.
    let err = c
        .put_topic(
            "ticks",
            &TopicAttributesUpdate {
                partitions: Some(0),
                ..TopicAttributesUpdate::default()
            },
        )
        .await
        .expect_err("zero partitions");
    assert_eq!(code(err), (400, ErrorCode::InvalidAttribute));
}

/// Starts aiosmtpd (a real SMTP server) writing into a maildir.
struct SmtpServer {
    child: std::process::Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl SmtpServer {
    async fn start(dir: &std::path::Path) -> Self {
        let port = free_port().expect("port");
        let maildir = dir.join("maildir");
        let mut child = std::process::Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self {
                    child,
                    port,
                    maildir,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not listen on {port}");
    }

    fn mails(&self) -> Vec<String> {
        std::fs::read_dir(self.maildir.join("new"))
            .map(|dir| {
                dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_subscriptions_send_through_a_real_smtp_server() {
    let dir = test_dir("topics-email").expect("dir");
    let smtp = SmtpServer::start(dir.path()).await;
    let mut options = BrokerOptions::single(dir.path()).expect("ports");
    options.extra_args.extend([
        "--smtp-server".to_string(),
        format!("127.0.0.1:{}", smtp.port),
        "--smtp-from".to_string(),
        "alerts@sluice.test".to_string(),
    ]);
    let b = Broker::start(options).await.expect("broker");
    let c = &b.client;
    c.put_topic("alerts", &TopicAttributesUpdate::default())
        .await
        .expect("topic");
    assert_eq!(
        code(
            c.put_subscription(
                "alerts",
                "bad",
                &SubscriptionSpec::new(Endpoint::Email {
                    to: "not an address".into()
                })
            )
            .await
            .unwrap_err()
        )
        .0,
        400
    );
    let mut spec = SubscriptionSpec::new(Endpoint::Email {
        to: "oncall@example.com".into(),
    });
    spec.filter = Some(SubscriptionFilter {
        tags: vec!["page".into()],
        attributes: BTreeMap::new(),
    });
    c.put_subscription("alerts", "oncall", &spec)
        .await
        .expect("email sub");
    c.publish("alerts", &message("disk full on node-3", Some("page"), &[]))
        .await
        .expect("publish");
    c.publish("alerts", &message("just so you know", Some("info"), &[]))
        .await
        .expect("publish");
    // Once the subscription has handled both messages, its mail has been accepted.
    let state = subscription_when(c, "alerts", "oncall", |s| s.counts.backlog == 0).await;
    assert_eq!(state.counts.backlog, 0, "{state:?}");
    assert_eq!(
        state.counts.delivered, 1,
        "the info message is filtered out"
    );
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert!(mail.contains("From: alerts@sluice.test"), "{mail}");
    assert!(mail.contains("To: oncall@example.com"), "{mail}");
    assert!(mail.contains("Subject: [alerts] page"), "{mail}");
    assert!(mail.contains("disk full on node-3"), "{mail}");
}

/// Messages acknowledged to the publisher that never reached the endpoint with their
/// exact body.
fn undelivered(acknowledged: &[String], pushes: &[Push]) -> Vec<String> {
    let got: BTreeSet<&[u8]> = pushes
        .iter()
        .filter(|p| p.status == 200)
        .map(|p| &p.body[..])
        .collect();
    acknowledged
        .iter()
        .filter(|body| !got.contains(body.as_bytes()))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_delivery_goes_on_after_the_leader_is_killed() {
    let dir = test_dir("topics-failover").expect("dir");
    let mut cluster = Cluster::start(dir.path(), 3).await.expect("cluster");
    let (sink, base) = Sink::start().await.expect("sink");
    let client = sluice_client::Client::with_nodes(
        &cluster
            .nodes
            .iter()
            .map(|n| n.url())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .expect("client");
    client
        .put_topic("jobs", &TopicAttributesUpdate::default())
        .await
        .expect("topic");
    let mut spec = SubscriptionSpec::new(http(format!("{base}/worker")));
    spec.format = Some(DeliveryFormat::Simplified);
    spec.retry = backoff(20, 1);
    client
        .put_subscription("jobs", "worker", &spec)
        .await
        .expect("subscription");

    let mut acknowledged = Vec::new();
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("leader");
    for i in 0..300 {
        if i == 100 {
            cluster.node_mut(leader).kill9().expect("kill leader");
        }
        if i == 200 {
            cluster.node_mut(leader).restart().await.expect("restart");
        }
        let body = format!("job {i}");
        match client.publish("jobs", &PublishMessage::text(&body)).await {
            Ok(_) => acknowledged.push(body),
            Err(e) => eprintln!("publish {i} not acknowledged: {e}"),
        }
    }
    assert!(
        acknowledged.len() >= 290,
        "publishing went on: {}",
        acknowledged.len()
    );
    let all_there = sink
        .wait_for(Duration::from_secs(60), |pushes| {
            undelivered(&acknowledged, pushes).is_empty()
        })
        .await;
    let pushes = sink.pushes();
    let missing = undelivered(&acknowledged, &pushes);
    assert!(
        all_there && missing.is_empty(),
        "never delivered: {missing:?}\n{}",
        cluster.log_tails()
    );
    // The checker is not vacuous: hide one delivery and it is reported.
    let hidden: Vec<Push> = pushes
        .iter()
        .filter(|p| &p.body[..] != acknowledged[150].as_bytes())
        .cloned()
        .collect();
    assert_eq!(
        undelivered(&acknowledged, &hidden),
        vec![acknowledged[150].clone()]
    );
    let duplicates = pushes
        .iter()
        .filter(|p| p.status == 200)
        .count()
        .saturating_sub(acknowledged.len());
    eprintln!(
        "{} published, {} deliveries ({duplicates} repeated across the failover)",
        acknowledged.len(),
        pushes.len()
    );
}

/// A broker killed (SIGKILL) while an HTTP subscription is failing and retrying, and a
/// device has committed part of a pull timeline: after the restart the pushes resume
/// where the replicated state left them, and reach the endpoint once it recovers, every
/// acknowledged message; the device goes on from its committed cursor, and history is
/// still readable from any earlier cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_pending_pushes_and_committed_cursors() {
    let (_dir, mut broker) = broker("topics-restart", &[]).await;
    let (sink, base) = Sink::start().await.expect("sink");
    let client = sluice_client::Client::new(&broker.url())
        .expect("client")
        .retry_for(Duration::from_secs(20));
    client
        .put_topic("events", &TopicAttributesUpdate::default())
        .await
        .expect("topic");
    let mut push = SubscriptionSpec::new(http(format!("{base}/down")));
    push.format = Some(DeliveryFormat::Simplified);
    push.retry = backoff(100, 1);
    client
        .put_subscription("events", "hook", &push)
        .await
        .expect("push subscription");
    client
        .put_subscription("events", "phone", &SubscriptionSpec::new(Endpoint::Pull {}))
        .await
        .expect("pull subscription");

    // The endpoint fails everything: the messages pile up as backlog and retries.
    sink.fail("down", u32::MAX);
    let mut acknowledged = Vec::new();
    for i in 0..60 {
        let body = format!("event {i}");
        client
            .publish("events", &PublishMessage::text(&body))
            .await
            .expect("publish");
        acknowledged.push(body);
    }
    assert!(
        sink.wait_for(Duration::from_secs(20), |pushes| pushes.len() >= 3)
            .await,
        "the endpoint was tried"
    );
    let read = client
        .pull(
            "events",
            "phone",
            &PullQuery {
                device: Some("tablet".into()),
                max: Some(25),
                ..PullQuery::default()
            },
        )
        .await
        .expect("pull");
    assert_eq!(read.messages.len(), 25);
    client
        .commit_cursor("events", "phone", "tablet", &read.cursor)
        .await
        .expect("commit");
    let tenth = read.messages[9].cursor.clone();
    let before = client
        .get_subscription("events", "hook")
        .await
        .expect("counts")
        .counts;
    assert!(before.backlog + before.retrying > 0, "{before:?}");

    broker.kill9().expect("kill");
    broker.restart().await.expect("restart");
    sink.fail("down", 0);

    let all_there = sink
        .wait_for(Duration::from_secs(60), |pushes| {
            undelivered(&acknowledged, pushes).is_empty()
        })
        .await;
    let missing = undelivered(&acknowledged, &sink.pushes());
    assert!(
        all_there && missing.is_empty(),
        "never delivered after the restart: {missing:?}\n{}",
        broker.log_tail()
    );

    // The device resumes after its committed cursor; an earlier cursor reads history.
    let resumed = client
        .pull(
            "events",
            "phone",
            &PullQuery {
                device: Some("tablet".into()),
                max: Some(100),
                ..PullQuery::default()
            },
        )
        .await
        .expect("pull after the restart");
    let bodies: Vec<String> = resumed
        .messages
        .iter()
        .filter_map(|m| m.body.clone())
        .collect();
    assert_eq!(bodies, acknowledged[25..].to_vec());
    let history = client
        .pull(
            "events",
            "phone",
            &PullQuery {
                after: Some(tenth),
                max: Some(5),
                ..PullQuery::default()
            },
        )
        .await
        .expect("pull from an earlier cursor");
    let bodies: Vec<String> = history
        .messages
        .iter()
        .filter_map(|m| m.body.clone())
        .collect();
    assert_eq!(bodies, acknowledged[10..15].to_vec());
}
