//! The queue API through sluice-client against a real broker process: each attribute's
//! behaviour as an SQS or MNS user expects it, and errors exactly as the contract says.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use sluice_client::{
    DeadLetter, Error, ErrorCode, ListQueues, MessageQuery, MessageState, QueueAttributesUpdate,
    ReceiveRequest, RedriveRequest, RedriveState, SendMessage, VisibilityEntry,
};
use sluice_e2e::{Broker, BrokerOptions, test_dir};

async fn broker(name: &str) -> (tempfile::TempDir, Broker) {
    let dir = test_dir(name).expect("test dir");
    let broker = Broker::start(BrokerOptions::single(dir.path()).expect("ports"))
        .await
        .expect("broker starts");
    (dir, broker)
}

fn code(e: Error) -> (u16, ErrorCode) {
    match e {
        Error::Api { status, error } => (status, error.code),
        other => panic!("expected an API error, got {other}"),
    }
}

fn attrs() -> QueueAttributesUpdate {
    QueueAttributesUpdate::default()
}

fn receive(max: u32, vis: u32) -> ReceiveRequest {
    ReceiveRequest {
        max: Some(max),
        wait_seconds: Some(0),
        visibility_seconds: Some(vis),
    }
}

#[tokio::test]
async fn create_update_get_list_delete() {
    let (_dir, b) = broker("crud").await;
    let c = &b.client;
    let q = c
        .put_queue(
            "orders",
            &QueueAttributesUpdate {
                visibility_seconds: Some(45),
                ..attrs()
            },
        )
        .await
        .expect("create");
    assert_eq!(q.attributes.visibility_seconds, 45);
    assert_eq!(
        q.attributes.retention_seconds, 259_200,
        "default three days"
    );
    // Updating keeps what is not named.
    let q = c
        .put_queue(
            "orders",
            &QueueAttributesUpdate {
                delay_seconds: Some(5),
                ..attrs()
            },
        )
        .await
        .expect("update");
    assert_eq!(
        (q.attributes.visibility_seconds, q.attributes.delay_seconds),
        (45, 5)
    );
    for name in ["orders-eu", "orders-us", "payments"] {
        c.put_queue(name, &attrs()).await.expect("create");
    }
    let page = c
        .list_queues(&ListQueues {
            prefix: Some("orders".into()),
            limit: Some(2),
            after: None,
        })
        .await
        .expect("list");
    let names: Vec<_> = page.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["orders", "orders-eu"]);
    let next = page.next.expect("more pages");
    let page = c
        .list_queues(&ListQueues {
            prefix: Some("orders".into()),
            limit: Some(2),
            after: Some(next),
        })
        .await
        .expect("list");
    assert_eq!(page.queues.len(), 1);
    assert_eq!(page.queues[0].name, "orders-us");
    assert!(page.next.is_none());

    c.delete_queue("payments").await.expect("delete");
    assert_eq!(
        code(c.get_queue("payments").await.unwrap_err()),
        (404, ErrorCode::QueueNotFound)
    );
    assert_eq!(
        code(c.delete_queue("payments").await.unwrap_err()),
        (404, ErrorCode::QueueNotFound)
    );
}

#[tokio::test]
async fn errors_are_exact_and_change_nothing() {
    let (_dir, b) = broker("errors").await;
    let c = &b.client;
    c.put_queue(
        "q",
        &QueueAttributesUpdate {
            max_message_bytes: Some(1024),
            ..attrs()
        },
    )
    .await
    .expect("create");
    c.send("q", &SendMessage::text("keep me"))
        .await
        .expect("send");
    let before = c.get_queue("q").await.expect("get");

    assert_eq!(
        code(c.put_queue("-bad", &attrs()).await.unwrap_err()),
        (400, ErrorCode::InvalidName)
    );
    let e = c
        .put_queue(
            "q",
            &QueueAttributesUpdate {
                visibility_seconds: Some(43_201),
                ..attrs()
            },
        )
        .await
        .unwrap_err();
    let Error::Api { status, error } = e else {
        panic!("api error")
    };
    assert_eq!((status, error.code), (400, ErrorCode::InvalidAttribute));
    assert!(
        error.message.contains("visibilitySeconds"),
        "{}",
        error.message
    );
    assert_eq!(
        code(
            c.put_queue(
                "q",
                &QueueAttributesUpdate {
                    fifo: Some(true),
                    ..attrs()
                }
            )
            .await
            .unwrap_err()
        ),
        (409, ErrorCode::ImmutableAttribute)
    );
    assert_eq!(
        code(
            c.send("missing", &SendMessage::text("x"))
                .await
                .unwrap_err()
        ),
        (404, ErrorCode::QueueNotFound)
    );
    assert_eq!(
        code(
            c.send("q", &SendMessage::text("x".repeat(1025)))
                .await
                .unwrap_err()
        ),
        (413, ErrorCode::MessageTooLarge)
    );
    let too_many: Vec<SendMessage> = (0..257).map(|i| SendMessage::text(i.to_string())).collect();
    assert_eq!(
        code(c.send_batch("q", &too_many).await.unwrap_err()),
        (400, ErrorCode::InvalidBatch)
    );
    assert_eq!(
        code(c.receive("q", &receive(33, 30)).await.unwrap_err()),
        (400, ErrorCode::InvalidRequest)
    );
    assert_eq!(
        code(c.ack_one("q", "not-a-receipt").await.unwrap_err()),
        (400, ErrorCode::InvalidReceipt)
    );

    // Malformed JSON and unknown fields, by hand: the typed client cannot send them.
    let http = reqwest_like_post(&b.url(), "/v1/queues/q/messages", "{\"body\": ").await;
    assert_eq!(http.0, 400);
    assert!(http.1.contains("InvalidRequest"), "{}", http.1);
    let http = reqwest_like_post(&b.url(), "/v1/queues/q/messages", "{\"bdy\": \"x\"}").await;
    assert_eq!(http.0, 400);
    assert!(
        http.1.contains("bdy"),
        "the unknown field is named: {}",
        http.1
    );
    let http = reqwest_like_put(&b.url(), "/v1/queues/q", "{\"retentionSeconds\": \"long\"}").await;
    assert_eq!(http.0, 400);
    assert!(http.1.contains("retentionSeconds"), "{}", http.1);

    let after = c.get_queue("q").await.expect("get");
    assert_eq!(before, after, "no error changed anything");
    let got = c.receive("q", &receive(10, 30)).await.expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body.as_deref(), Some("keep me"));
}

/// A raw POST, for bodies the typed client cannot produce; returns status and body.
async fn reqwest_like_post(base: &str, path: &str, body: &str) -> (u16, String) {
    raw("POST", base, path, body).await
}

async fn reqwest_like_put(base: &str, path: &str, body: &str) -> (u16, String) {
    raw("PUT", base, path, body).await
}

async fn raw(method: &str, base: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, response)
}

#[tokio::test]
async fn visibility_timeout_redelivers_and_stale_receipts_are_refused() {
    let (_dir, b) = broker("visibility").await;
    let c = &b.client;
    c.put_queue("q", &attrs()).await.expect("create");
    c.send("q", &SendMessage::text("m")).await.expect("send");
    let first = c.receive("q", &receive(1, 1)).await.expect("receive");
    assert_eq!(first[0].receive_count, 1);
    assert!(
        c.receive("q", &receive(1, 1))
            .await
            .expect("receive")
            .is_empty(),
        "invisible until the deadline"
    );
    let second = c
        .receive(
            "q",
            &ReceiveRequest {
                max: Some(1),
                wait_seconds: Some(5),
                visibility_seconds: Some(30),
            },
        )
        .await
        .expect("receive");
    assert_eq!(second.len(), 1, "visible again after one second");
    assert_eq!(second[0].receive_count, 2);
    assert_eq!(second[0].first_received_at, first[0].first_received_at);
    let stale = first[0].receipt.clone().expect("receipt");
    assert_eq!(
        code(c.ack_one("q", &stale).await.unwrap_err()),
        (400, ErrorCode::ReceiptStale)
    );
    c.ack_one("q", second[0].receipt.as_deref().expect("receipt"))
        .await
        .expect("ack");
    // A retried ack is harmless.
    c.ack_one("q", second[0].receipt.as_deref().expect("receipt"))
        .await
        .expect("ack again");
    assert_eq!(c.get_queue("q").await.expect("get").counts.in_flight, 0);
}

#[tokio::test]
async fn visibility_changes_give_new_receipts() {
    let (_dir, b) = broker("vischange").await;
    let c = &b.client;
    c.put_queue("q", &attrs()).await.expect("create");
    c.send_batch("q", &[SendMessage::text("a"), SendMessage::text("b")])
        .await
        .expect("send");
    let got = c.receive("q", &receive(2, 30)).await.expect("receive");
    let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone().expect("r")).collect();
    let changed = c
        .change_visibility(
            "q",
            &[
                VisibilityEntry {
                    receipt: receipts[0].clone(),
                    seconds: 0,
                },
                VisibilityEntry {
                    receipt: "garbage".into(),
                    seconds: 10,
                },
                VisibilityEntry {
                    receipt: receipts[1].clone(),
                    seconds: 600,
                },
            ],
        )
        .await
        .expect("batch");
    assert!(changed[0].is_ok());
    assert_eq!(
        changed[1].clone().unwrap_err().code,
        ErrorCode::InvalidReceipt
    );
    let new_b = changed[2].clone().expect("ok").receipt;
    assert_ne!(new_b, receipts[1]);
    // "a" is visible again at once; "b" is hidden for ten minutes.
    let again = c.receive("q", &receive(2, 30)).await.expect("receive");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].body.as_deref(), Some("a"));
    assert_eq!(
        code(
            c.change_visibility_one("q", &receipts[1], 5)
                .await
                .unwrap_err()
        ),
        (400, ErrorCode::ReceiptStale)
    );
    let newer = c
        .change_visibility_one("q", &new_b, 5)
        .await
        .expect("single change");
    c.ack_one("q", &newer.receipt).await.expect("ack");
}

#[tokio::test]
async fn delays_per_queue_per_message_and_deliver_at() {
    let (_dir, b) = broker("delays").await;
    let c = &b.client;
    c.put_queue(
        "q",
        &QueueAttributesUpdate {
            delay_seconds: Some(2),
            ..attrs()
        },
    )
    .await
    .expect("create");
    let started = Instant::now();
    c.send("q", &SendMessage::text("queue delay"))
        .await
        .expect("send");
    c.send(
        "q",
        &SendMessage {
            delay_seconds: Some(0),
            ..SendMessage::text("no delay")
        },
    )
    .await
    .expect("send");
    c.send(
        "q",
        &SendMessage {
            deliver_at: Some(Utc::now() + chrono::Duration::milliseconds(1200)),
            ..SendMessage::text("at")
        },
    )
    .await
    .expect("send");
    let counts = c.get_queue("q").await.expect("get").counts;
    assert_eq!((counts.visible, counts.delayed), (1, 2));
    let mut order = Vec::new();
    while order.len() < 3 {
        let got = c
            .receive(
                "q",
                &ReceiveRequest {
                    max: Some(10),
                    wait_seconds: Some(5),
                    visibility_seconds: Some(60),
                },
            )
            .await
            .expect("receive");
        for m in got {
            order.push((m.body.expect("text"), started.elapsed()));
        }
    }
    assert_eq!(order[0].0, "no delay");
    assert_eq!(order[1].0, "at");
    assert!(
        order[1].1 >= Duration::from_millis(1100),
        "{:?}",
        order[1].1
    );
    assert_eq!(order[2].0, "queue delay");
    assert!(
        order[2].1 >= Duration::from_millis(1900),
        "{:?}",
        order[2].1
    );

    // More than seven days ahead is refused.
    let e = c
        .send(
            "q",
            &SendMessage {
                deliver_at: Some(Utc::now() + chrono::Duration::days(8)),
                ..SendMessage::text("too far")
            },
        )
        .await
        .unwrap_err();
    assert_eq!(code(e), (400, ErrorCode::InvalidMessage));
}

#[tokio::test]
async fn priorities_order_delivery() {
    let (_dir, b) = broker("priority").await;
    let c = &b.client;
    c.put_queue("q", &attrs()).await.expect("create");
    let batch: Vec<SendMessage> = [(16, "lowest"), (8, "default"), (1, "highest"), (4, "high")]
        .into_iter()
        .map(|(p, body)| SendMessage {
            priority: Some(p),
            ..SendMessage::text(body)
        })
        .collect();
    c.send_batch("q", &batch).await.expect("send");
    let got = c.receive("q", &receive(4, 30)).await.expect("receive");
    let bodies: Vec<_> = got.iter().map(|m| m.body.clone().expect("text")).collect();
    assert_eq!(bodies, ["highest", "high", "default", "lowest"]);
    assert_eq!(got[0].priority, 1);
}

#[tokio::test]
async fn a_long_poll_wakes_within_milliseconds_of_a_send() {
    let (_dir, b) = broker("longpoll").await;
    c_put(&b, "q").await;
    let receiver = b.client.clone();
    let waiting = tokio::spawn(async move {
        let got = receiver
            .receive(
                "q",
                &ReceiveRequest {
                    max: Some(1),
                    wait_seconds: Some(20),
                    visibility_seconds: None,
                },
            )
            .await
            .expect("receive");
        (got, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.client
        .send("q", &SendMessage::text("wake up"))
        .await
        .expect("send");
    let sent_at = Instant::now();
    let (got, woke_at) = waiting.await.expect("task");
    assert_eq!(got[0].body.as_deref(), Some("wake up"));
    let lag = woke_at.saturating_duration_since(sent_at);
    assert!(
        lag < Duration::from_millis(250),
        "woke {lag:?} after the send"
    );

    // An empty long poll waits out its time and answers empty.
    let started = Instant::now();
    let got = b
        .client
        .receive(
            "q",
            &ReceiveRequest {
                max: Some(1),
                wait_seconds: Some(1),
                visibility_seconds: None,
            },
        )
        .await
        .expect("receive");
    assert!(got.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(950));
}

#[tokio::test]
async fn receive_wait_seconds_is_the_default_long_poll() {
    let (_dir, b) = broker("defaultwait").await;
    let c = &b.client;
    c.put_queue(
        "q",
        &QueueAttributesUpdate {
            receive_wait_seconds: Some(1),
            ..attrs()
        },
    )
    .await
    .expect("create");
    let started = Instant::now();
    let got = c
        .receive("q", &ReceiveRequest::default())
        .await
        .expect("receive");
    assert!(got.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited the queue's one second: {:?}",
        started.elapsed()
    );
    // An explicit waitSeconds of 0 overrides it.
    let started = Instant::now();
    c.receive("q", &receive(1, 30)).await.expect("receive");
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn partitions_only_grow() {
    let (_dir, b) = broker("partitions").await;
    let c = &b.client;
    let q = c
        .put_queue(
            "q",
            &QueueAttributesUpdate {
                partitions: Some(2),
                ..attrs()
            },
        )
        .await
        .expect("create");
    assert_eq!(q.attributes.partitions, 2);
    let grown = c
        .put_queue(
            "q",
            &QueueAttributesUpdate {
                partitions: Some(4),
                ..attrs()
            },
        )
        .await
        .expect("grow");
    assert_eq!(grown.attributes.partitions, 4);
    assert_eq!(
        code(
            c.put_queue(
                "q",
                &QueueAttributesUpdate {
                    partitions: Some(3),
                    ..attrs()
                }
            )
            .await
            .unwrap_err()
        ),
        (409, ErrorCode::ImmutableAttribute)
    );
}

async fn c_put(b: &Broker, name: &str) {
    b.client.put_queue(name, &attrs()).await.expect("create");
}

fn fifo_attrs(content_dedup: bool) -> QueueAttributesUpdate {
    QueueAttributesUpdate {
        fifo: Some(true),
        content_dedup: Some(content_dedup),
        ..attrs()
    }
}

fn grouped(body: &str, group: &str) -> SendMessage {
    SendMessage {
        group_id: Some(group.into()),
        ..SendMessage::text(body)
    }
}

#[tokio::test]
async fn fifo_keeps_group_order_one_in_flight_and_deduplicates() {
    let (_dir, b) = broker("fifo").await;
    let c = &b.client;
    c.put_queue("f", &fifo_attrs(false)).await.expect("create");
    let batch = [
        grouped("a1", "a"),
        grouped("b1", "b"),
        grouped("a2", "a"),
        grouped("a3", "a"),
    ];
    c.send_batch("f", &batch).await.expect("send");
    let got = c.receive("f", &receive(10, 30)).await.expect("receive");
    let bodies: Vec<_> = got.iter().map(|m| m.body.clone().expect("text")).collect();
    assert_eq!(bodies, ["a1", "b1"], "one message per group in flight");
    assert!(
        c.receive("f", &receive(10, 30))
            .await
            .expect("r")
            .is_empty()
    );
    for m in &got {
        c.ack_one("f", m.receipt.as_deref().expect("r"))
            .await
            .expect("ack");
    }
    let next = c.receive("f", &receive(10, 30)).await.expect("receive");
    assert_eq!(next[0].body.as_deref(), Some("a2"));
    assert_eq!(next[0].group_id.as_deref(), Some("a"));

    // De-duplication: the same id within five minutes returns the first id, stores nothing.
    let with_id = SendMessage {
        dedup_id: Some("order-17".into()),
        ..grouped("x", "c")
    };
    let first = c.send("f", &with_id).await.expect("send");
    let again = c.send("f", &with_id).await.expect("send");
    assert_eq!(first.id, again.id);
    assert!(again.duplicate && !first.duplicate);
    let q = c.get_queue("f").await.expect("get");
    assert_eq!(
        q.counts.visible + q.counts.in_flight,
        3,
        "a3, c's x and a2 in flight"
    );

    assert_eq!(
        code(
            c.send("f", &SendMessage::text("no group"))
                .await
                .unwrap_err()
        ),
        (400, ErrorCode::InvalidMessage)
    );
}

#[tokio::test]
async fn content_dedup_uses_the_body() {
    let (_dir, b) = broker("contentdedup").await;
    let c = &b.client;
    c.put_queue("f", &fifo_attrs(true)).await.expect("create");
    let a = c.send("f", &grouped("same body", "g")).await.expect("send");
    let b2 = c.send("f", &grouped("same body", "h")).await.expect("send");
    let other = c
        .send("f", &grouped("other body", "g"))
        .await
        .expect("send");
    assert_eq!(a.id, b2.id);
    assert!(b2.duplicate);
    assert_ne!(a.id, other.id);
    // contentDedup needs FIFO.
    assert_eq!(
        code(
            c.put_queue(
                "std",
                &QueueAttributesUpdate {
                    content_dedup: Some(true),
                    ..attrs()
                }
            )
            .await
            .unwrap_err()
        ),
        (400, ErrorCode::InvalidAttribute)
    );
}

#[tokio::test]
async fn dead_letters_remember_their_source_and_redrive_back() {
    let (_dir, b) = broker("deadletter").await;
    let c = &b.client;
    c.put_queue("dlq", &attrs()).await.expect("create");
    c.put_queue(
        "work",
        &QueueAttributesUpdate {
            dead_letter: Some(Some(DeadLetter {
                queue: "dlq".into(),
                max_receives: 2,
            })),
            ..attrs()
        },
    )
    .await
    .expect("create");
    let sent = c
        .send("work", &SendMessage::text("poison"))
        .await
        .expect("send");
    let long = |vis| ReceiveRequest {
        max: Some(1),
        wait_seconds: Some(5),
        visibility_seconds: Some(vis),
    };
    for n in 1..=2 {
        let got = c.receive("work", &long(1)).await.expect("receive");
        assert_eq!(got[0].receive_count, n);
    }
    // The third receive finds it over maxReceives: it moves instead.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        c.receive("work", &receive(1, 1))
            .await
            .expect("r")
            .is_empty()
    );
    let dead = c.receive("dlq", &receive(1, 1)).await.expect("receive");
    assert_eq!(dead[0].id, sent.id, "the id survives the move");
    assert_eq!(dead[0].source_queue.as_deref(), Some("work"));
    assert_eq!(dead[0].body.as_deref(), Some("poison"));

    // Redrive moves it back once its visibility lapses.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let task = c
        .start_redrive(
            "dlq",
            &RedriveRequest {
                max_per_second: Some(100),
            },
        )
        .await
        .expect("redrive");
    assert_eq!(task.state, RedriveState::Running);
    assert_eq!(task.total, 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tasks = c.list_redrives("dlq").await.expect("tasks");
        if tasks[0].state == RedriveState::Completed {
            assert_eq!(tasks[0].moved, 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "redrive did not complete: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back = c.receive("work", &receive(1, 30)).await.expect("receive");
    assert_eq!(back[0].id, sent.id);
    assert_eq!(back[0].receive_count, 1);
    assert_eq!(
        code(c.cancel_redrive("dlq").await.unwrap_err()),
        (404, ErrorCode::TaskNotFound)
    );
    // A queue that is nobody's dead-letter queue has nothing to redrive.
    assert_eq!(
        code(
            c.start_redrive("work", &RedriveRequest::default())
                .await
                .unwrap_err()
        ),
        (409, ErrorCode::RedriveConflict)
    );
}

#[tokio::test]
async fn peek_lookup_by_id_and_query_by_key_and_time() {
    let (_dir, b) = broker("lookup").await;
    let c = &b.client;
    c.put_queue("q", &attrs()).await.expect("create");
    let before = Utc::now();
    let mut attributes = BTreeMap::new();
    attributes.insert("region".to_string(), "eu".to_string());
    let order = c
        .send(
            "q",
            &SendMessage {
                key: Some("order-1".into()),
                attributes,
                ..SendMessage::text("first")
            },
        )
        .await
        .expect("send");
    c.send(
        "q",
        &SendMessage {
            key: Some("order-2".into()),
            ..SendMessage::text("second")
        },
    )
    .await
    .expect("send");
    let peeked = c.peek("q", 5).await.expect("peek");
    assert_eq!(peeked.len(), 2);
    assert!(peeked.iter().all(|m| m.receipt.is_none()));
    assert_eq!(peeked[0].state, Some(MessageState::Visible));
    assert_eq!(
        c.get_queue("q").await.expect("get").counts.visible,
        2,
        "peek changed nothing"
    );

    let m = c.get_message("q", &order.id).await.expect("by id");
    assert_eq!(m.body.as_deref(), Some("first"));
    assert_eq!(m.attributes.get("region").map(String::as_str), Some("eu"));
    let got = c.receive("q", &receive(1, 60)).await.expect("receive");
    let m = c.get_message("q", &got[0].id).await.expect("by id");
    assert_eq!(m.state, Some(MessageState::InFlight));
    assert!(m.visible_at.is_some());

    let found = c
        .query_messages(
            "q",
            &MessageQuery {
                key: Some("order-2".into()),
                since: Some(before),
                until: Some(Utc::now()),
                limit: None,
            },
        )
        .await
        .expect("query");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].body.as_deref(), Some("second"));
    let none = c
        .query_messages(
            "q",
            &MessageQuery {
                key: None,
                since: Some(Utc::now() + chrono::Duration::hours(1)),
                until: None,
                limit: None,
            },
        )
        .await
        .expect("query");
    assert!(none.is_empty());

    c.ack_one("q", got[0].receipt.as_deref().expect("r"))
        .await
        .expect("ack");
    assert_eq!(
        code(c.get_message("q", &got[0].id).await.unwrap_err()),
        (404, ErrorCode::MessageNotFound)
    );
    assert_eq!(
        code(c.get_message("q", "zzz").await.unwrap_err()),
        (400, ErrorCode::InvalidRequest)
    );
}

#[tokio::test]
async fn purge_drops_every_message_and_keeps_the_queue() {
    let (_dir, b) = broker("purge").await;
    let c = &b.client;
    c.put_queue("q", &attrs()).await.expect("create");
    let batch: Vec<SendMessage> = (0..10).map(|i| SendMessage::text(i.to_string())).collect();
    c.send_batch("q", &batch).await.expect("send");
    c.receive("q", &receive(3, 30)).await.expect("receive");
    assert_eq!(c.purge_queue("q").await.expect("purge").purged, 10);
    let q = c.get_queue("q").await.expect("get");
    assert_eq!((q.counts.visible, q.counts.in_flight), (0, 0));
    c.send("q", &SendMessage::text("after"))
        .await
        .expect("send");
}

#[tokio::test]
async fn binary_bodies_and_batches_answer_per_message() {
    let (_dir, b) = broker("binary").await;
    let c = &b.client;
    c.put_queue("q", &attrs()).await.expect("create");
    let results = c
        .send_batch(
            "q",
            &[
                SendMessage {
                    body_base64: Some("AAEC/w==".into()),
                    ..SendMessage::default()
                },
                SendMessage {
                    body_base64: Some("not base64!".into()),
                    ..SendMessage::default()
                },
                SendMessage {
                    priority: Some(0),
                    ..SendMessage::text("bad priority")
                },
            ],
        )
        .await
        .expect("batch");
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].clone().unwrap_err().code,
        ErrorCode::InvalidMessage
    );
    assert_eq!(
        results[2].clone().unwrap_err().code,
        ErrorCode::InvalidMessage
    );
    let got = c.receive("q", &receive(5, 30)).await.expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body_bytes().expect("b64"), vec![0, 1, 2, 255]);
    let acks = c
        .ack("q", &[got[0].receipt.clone().expect("r"), "bogus".into()])
        .await
        .expect("ack");
    assert!(acks[0].is_ok());
    assert_eq!(acks[1].clone().unwrap_err().code, ErrorCode::InvalidReceipt);
}

#[tokio::test]
async fn retention_expires_old_messages() {
    let (_dir, b) = broker("retention").await;
    let c = &b.client;
    c.put_queue(
        "q",
        &QueueAttributesUpdate {
            retention_seconds: Some(60),
            ..attrs()
        },
    )
    .await
    .expect("create");
    c.send("q", &SendMessage::text("short-lived"))
        .await
        .expect("send");
    assert_eq!(c.get_queue("q").await.expect("get").counts.visible, 1);
    // Retention is counted in seconds from the send, at least 60 as in SQS: wait it out.
    let deadline = Instant::now() + Duration::from_secs(75);
    loop {
        let q = c.get_queue("q").await.expect("get");
        if q.counts.visible == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not expired: {:?}", q.counts);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(c.receive("q", &receive(1, 30)).await.expect("r").is_empty());
}

/// Bytes of every file under `dir`.
fn disk_usage(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        disk_usage(&path)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn consumed_messages_free_their_disk_space() {
    let dir = test_dir("diskspace").expect("dir");
    let mut options = BrokerOptions::single(dir.path()).expect("ports");
    // Small segments and frequent snapshots, so space is freed within a short test.
    options
        .extra_args
        .extend(["--segment-bytes", "1048576", "--snapshot-logs", "200"].map(String::from));
    let data = options.data_dir.clone();
    let b = Broker::start(options).await.expect("broker");
    let c = &b.client;
    c.put_queue("q", &attrs()).await.expect("create");
    let batch: Vec<SendMessage> = (0..32)
        .map(|_| SendMessage::text("x".repeat(1024)))
        .collect();
    for _ in 0..600 {
        c.send_batch("q", &batch).await.expect("send");
    }
    let full = disk_usage(&data);
    assert!(full > 19 << 20, "the backlog is on disk: {full} bytes");
    loop {
        let got = c.receive("q", &receive(32, 60)).await.expect("receive");
        if got.is_empty() {
            break;
        }
        let receipts: Vec<String> = got.into_iter().filter_map(|m| m.receipt).collect();
        c.ack("q", &receipts).await.expect("ack");
    }
    // Snapshots follow the acks; the segments no message needs are freed (a few are
    // kept for reuse).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = disk_usage(&data);
        if now < 10 << 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{now} bytes still on disk after consuming everything (was {full})"
        );
        c.send("q", &SendMessage::text("tick")).await.expect("send");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn health_metrics_and_a_clean_sigterm() {
    let (_dir, mut b) = broker("health").await;
    let c = b.client.clone();
    assert!(c.healthy().await.expect("healthz"));
    assert!(c.ready().await.expect("readyz"));
    c.put_queue("q", &attrs()).await.expect("create");
    c.send("q", &SendMessage::text("m")).await.expect("send");
    let metrics = c.metrics_text().await.expect("metrics");
    for name in [
        "sluice_http_requests_total",
        "sluice_http_request_duration_seconds",
        "sluice_log_fsync_duration_seconds",
        "sluice_log_commit_batch_records",
        "sluice_queue_messages{queue=\"q\",state=\"visible\"} 1",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    // A long poll in progress is answered (empty) when shutdown begins.
    let poller = c.clone();
    c.put_queue("empty", &attrs()).await.expect("create");
    let polling = tokio::spawn(async move {
        poller
            .receive(
                "empty",
                &ReceiveRequest {
                    max: Some(1),
                    wait_seconds: Some(20),
                    visibility_seconds: None,
                },
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let status = b.terminate(Duration::from_secs(10)).expect("terminates");
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let polled = polling.await.expect("task");
    assert!(polled.map(|m| m.is_empty()).unwrap_or(true));
    // Everything acknowledged is there after the restart.
    b.restart().await.expect("restart");
    let got = c.receive("q", &receive(1, 30)).await.expect("receive");
    assert_eq!(got[0].body.as_deref(), Some("m"));
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_error_body() {
    let (_dir, b) = broker("routes").await;
    let (status, body) = raw("GET", &b.url(), "/v2/nothing", "").await;
    assert_eq!(status, 404);
    assert!(body.contains("\"NotFound\""), "{body}");
    let (status, body) = raw("PATCH", &b.url(), "/v1/queues/q", "{}").await;
    assert_eq!(status, 405);
    assert!(body.contains("MethodNotAllowed"), "{body}");
}
