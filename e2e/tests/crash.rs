//! Kill -9 under load: a broker is SIGKILLed repeatedly while clients send, receive and
//! acknowledge; after each restart the load goes on, and at the end the queue is drained.
//! The checker then holds every acknowledged send received with its exact body, and no
//! message delivered again after its ack was answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sluice_client::QueueAttributesUpdate;
use sluice_e2e::checker::Checker;
use sluice_e2e::{Broker, BrokerOptions, test_dir, workload};

const QUEUE: &str = "crash";
const KILLS: usize = 3;
const LOAD_BETWEEN_KILLS: Duration = Duration::from_millis(1500);

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
            tokio::spawn(workload::sender(
                client.clone(),
                checker.clone(),
                QUEUE,
                t,
                8,
                stop_senders.clone(),
            ))
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(workload::consumer(
                client.clone(),
                checker.clone(),
                QUEUE,
                3,
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
    for c in consumers {
        c.await.expect("consumer");
    }

    let verdict = checker.verdict();
    println!("faults injected: {KILLS} x kill -9 of the only node\n{verdict}");
    assert!(
        verdict.sends_acknowledged > 100,
        "too little load: {verdict}"
    );
    assert!(verdict.acks_acknowledged > 0);
    assert!(
        verdict.ok(),
        "{verdict}\nbroker log:\n{}",
        broker.log_tail()
    );
    assert_eq!(verdict.lost, 0);
}
