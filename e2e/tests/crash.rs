//! Kill -9 under load: a broker is SIGKILLed repeatedly while clients send, receive and
//! acknowledge; after each restart the load goes on, and at the end the queue is drained.
//! The checker then holds every acknowledged send received with its exact body, and no
//! message delivered again after its ack was answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_client::{Client, QueueAttributesUpdate, ReceiveRequest, SendMessage};
use sluice_e2e::checker::Checker;
use sluice_e2e::{Broker, BrokerOptions, test_dir};

const QUEUE: &str = "crash";
const KILLS: usize = 3;
const LOAD_BETWEEN_KILLS: Duration = Duration::from_millis(1500);

async fn sender(client: Client, checker: Arc<Checker>, task: usize, stop: Arc<AtomicBool>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<SendMessage> = (0..8)
            .map(|i| {
                n += 1;
                SendMessage::text(format!("sender-{task}-msg-{n}-{i}-{}", "x".repeat(48)))
            })
            .collect();
        for m in &batch {
            checker.sending(m.body.as_deref().unwrap_or_default().as_bytes());
        }
        match client.send_batch(QUEUE, &batch).await {
            Ok(results) => {
                for (m, r) in batch.iter().zip(results) {
                    if let Ok(sent) = r {
                        checker.sent(
                            &sent.id,
                            m.body.as_deref().unwrap_or_default().as_bytes(),
                            None,
                        );
                    }
                }
            }
            // Down or restarting: the outcome is unknown, which the checker allows.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Receives and acknowledges until `stop`, then returns how many it acknowledged.
async fn consumer(client: Client, checker: Arc<Checker>, stop: Arc<AtomicBool>) -> u64 {
    let mut acked = 0;
    while !stop.load(Ordering::Relaxed) {
        let ticket = checker.now();
        let request = ReceiveRequest {
            max: Some(8),
            wait_seconds: Some(1),
            visibility_seconds: Some(3),
        };
        let messages = match client.receive(QUEUE, &request).await {
            Ok(m) => m,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        for m in &messages {
            checker.received(ticket, &m.id, &m.body_bytes().unwrap_or_default(), None);
        }
        let receipts: Vec<String> = messages.iter().filter_map(|m| m.receipt.clone()).collect();
        if receipts.is_empty() {
            continue;
        }
        if let Ok(results) = client.ack(QUEUE, &receipts).await {
            for (m, r) in messages.iter().zip(results) {
                if r.is_ok() {
                    checker.acked(&m.id);
                    acked += 1;
                }
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_under_load() {
    let dir = test_dir("crash").expect("dir");
    let mut broker = Broker::start(BrokerOptions::single(dir.path()).expect("ports"))
        .await
        .expect("start");
    let client = broker.client.clone();
    client
        .put_queue(QUEUE, &QueueAttributesUpdate::default())
        .await
        .expect("create");
    let checker = Arc::new(Checker::new());
    let stop_senders = Arc::new(AtomicBool::new(false));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..3)
        .map(|t| {
            tokio::spawn(sender(
                client.clone(),
                checker.clone(),
                t,
                stop_senders.clone(),
            ))
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(consumer(
                client.clone(),
                checker.clone(),
                stop_consumers.clone(),
            ))
        })
        .collect();

    for kill in 1..=KILLS {
        tokio::time::sleep(LOAD_BETWEEN_KILLS).await;
        broker.kill9().expect("kill -9");
        eprintln!("kill -9 #{kill}");
        broker.restart().await.expect("restart");
    }
    tokio::time::sleep(LOAD_BETWEEN_KILLS).await;
    stop_senders.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.expect("sender");
    }

    // Drain: consumers go on until the queue is empty (unacked deliveries reappear
    // after their three-second visibility).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let q = client.get_queue(QUEUE).await.expect("get");
        let c = q.counts;
        if c.visible + c.in_flight + c.delayed == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "queue not drained: {c:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_consumers.store(true, Ordering::Relaxed);
    let mut acked = 0;
    for c in consumers {
        acked += c.await.expect("consumer");
    }

    let verdict = checker.verdict();
    println!("faults injected: {KILLS} x kill -9 of the only node\n{verdict}");
    assert!(
        verdict.sends_acknowledged > 100,
        "too little load: {verdict}"
    );
    assert!(acked > 0);
    assert!(
        verdict.ok(),
        "{verdict}\nbroker log:\n{}",
        broker.log_tail()
    );
    assert_eq!(verdict.lost, 0);
}
