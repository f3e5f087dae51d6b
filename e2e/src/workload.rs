//! Load for the fault tests: senders and consumers that report every operation to a
//! [`Checker`], and keep going through errors (a node down, an election) until stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_client::{Client, ReceiveRequest, SendMessage};

use crate::checker::Checker;

/// Sends batches of `batch` unique messages to `queue` until `stop`.
pub async fn sender(
    client: Client,
    checker: Arc<Checker>,
    queue: &'static str,
    task: usize,
    batch: usize,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let messages: Vec<SendMessage> = (0..batch)
            .map(|_| {
                n += 1;
                SendMessage::text(format!("{queue}-{task}-{n}-{}", "x".repeat(40)))
            })
            .collect();
        for m in &messages {
            checker.sending(m.body.as_deref().unwrap_or_default().as_bytes());
        }
        match client.send_batch(queue, &messages).await {
            Ok(results) => {
                for (m, r) in messages.iter().zip(results) {
                    if let Ok(sent) = r {
                        let body = m.body.as_deref().unwrap_or_default().as_bytes();
                        checker.sent(&sent.id, body, None);
                    }
                }
            }
            // The outcome is unknown, which the checker allows.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Sends to FIFO `queue`, group `g<group>`, one message at a time, so the group's send
/// order is the order of the answers.
pub async fn fifo_sender(
    client: Client,
    checker: Arc<Checker>,
    queue: &'static str,
    group: usize,
    stop: Arc<AtomicBool>,
) {
    let name = format!("g{group}");
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = format!("{queue}-{group}-{n}");
        checker.sending(body.as_bytes());
        let message = SendMessage {
            group_id: Some(name.clone()),
            ..SendMessage::text(body.clone())
        };
        if let Ok(sent) = client.send(queue, &message).await {
            checker.sent(&sent.id, body.as_bytes(), Some(&name));
        }
    }
}

/// Receives (hiding for `visibility_seconds`) and acknowledges from `queue` until `stop`.
pub async fn consumer(
    client: Client,
    checker: Arc<Checker>,
    queue: &'static str,
    visibility_seconds: u32,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let ticket = checker.now();
        let request = ReceiveRequest {
            max: Some(8),
            wait_seconds: Some(1),
            visibility_seconds: Some(visibility_seconds),
        };
        let messages = match client.receive(queue, &request).await {
            Ok(m) => m,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        for m in &messages {
            let body = m.body_bytes().unwrap_or_default();
            checker.received(ticket, &m.id, &body, m.group_id.as_deref());
        }
        let receipts: Vec<String> = messages.iter().filter_map(|m| m.receipt.clone()).collect();
        if receipts.is_empty() {
            continue;
        }
        if let Ok(results) = client.ack(queue, &receipts).await {
            for (m, r) in messages.iter().zip(results) {
                if r.is_ok() {
                    checker.acked(&m.id);
                }
            }
        }
    }
}
