//! Push delivery of topic messages to HTTP endpoints and email, done by the leader.
//!
//! The leader runs one worker per push subscription. A worker takes a window of the
//! timeline from the subscription's replicated position (plus retries that are due),
//! delivers the matching messages concurrently, and replicates a report of what was
//! delivered and what failed. The position only moves through reports, so a new leader
//! resumes where the last report left off: delivery is at least once, and a message
//! delivered just before a failover may be delivered again.

pub mod client;
pub mod deliver;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use sluice_client::{ApiError, ErrorCode};
use tokio::task::JoinHandle;

use crate::http::topics::{encode_cursor, stored_message, topic_message};
use crate::node::Node;
use crate::queue::ids::MsgLoc;
use crate::raft::command::Command;
use crate::raft::now_ms;
use crate::topic::DeliveryReport;
use crate::topic::config::{SubscriptionConfig, Target};
use crate::topic::partition::topic_of;
use client::PushClient;
use deliver::Mailer;

/// How often the leader matches its workers to the push subscriptions.
const SUPERVISE_EVERY: Duration = Duration::from_millis(250);
/// Timeline positions a worker looks at in one round (matching or not).
const SCAN_MAX: u64 = 4_096;
/// The longest a worker sleeps without looking again (a safety net for missed wakes).
const IDLE_MAX: Duration = Duration::from_secs(1);
/// Pause before trying a report again that could not be replicated.
const REPORT_RETRY: Duration = Duration::from_millis(200);
/// Outcomes a round gathers at most before it ends with a report (more while a backlog
/// drains means fewer proposals; fewer means less delivered again after a failover).
const REPORT_EVERY_MIN: usize = 256;

/// A subscription by name: (topic, subscription).
type SubscriptionKey = (String, String);
/// Which life of a subscription a worker serves: (topic id, subscription created at). A
/// subscription deleted and made again gets a new worker.
type Incarnation = (u64, u64);

/// What every worker shares.
struct Pusher {
    node: Arc<Node>,
    http: PushClient,
    mailer: Option<Mailer>,
}

/// Keeps one worker running per push subscription while this node leads. Returns on
/// shutdown.
pub async fn supervise(node: Arc<Node>, mailer: Option<Mailer>, http: PushClient) {
    let pusher = Arc::new(Pusher {
        node: node.clone(),
        http,
        mailer,
    });
    let mut shutdown = node.shutdown_signal();
    let mut workers: HashMap<SubscriptionKey, (Incarnation, JoinHandle<()>)> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SUPERVISE_EVERY) => {}
            _ = shutdown.changed() => break,
        }
        // Workers run on the leader of each partition's group.
        let mut wanted: HashMap<SubscriptionKey, Incarnation> = HashMap::new();
        for group in node.data_groups().filter(|g| g.is_leader()) {
            let state = group.state.read();
            wanted.extend(state.topics.partitions().flat_map(|t| {
                t.subscriptions
                    .values()
                    .filter(|s| s.config.target.is_push())
                    .map(|s| ((t.name.clone(), s.name.clone()), (t.id, s.created_ms)))
            }));
        }
        // A partition a deleted topic left behind delivers nothing.
        wanted.retain(|(stored, _), (topic_id, _)| {
            let topic = topic_of(stored);
            topic == stored
                || node
                    .group_of(topic)
                    .state
                    .read()
                    .topics
                    .get(topic)
                    .is_ok_and(|t| t.id == *topic_id)
        });
        workers.retain(|key, (incarnation, worker)| {
            let keep = wanted.get(key) == Some(incarnation) && !worker.is_finished();
            if !keep {
                worker.abort();
            }
            keep
        });
        for (key, incarnation) in wanted {
            if workers.contains_key(&key) {
                continue;
            }
            let worker = tokio::spawn(run_worker(pusher.clone(), key.0.clone(), key.1.clone()));
            workers.insert(key, (incarnation, worker));
        }
    }
    for (_, (_, worker)) in workers {
        worker.abort();
    }
}

/// One delivery to make.
struct Delivery {
    seq: u64,
    loc: MsgLoc,
    /// 1 for the first attempt.
    attempt: u32,
}

/// A worker's round: what to deliver, and how far the position moves once it is done.
struct Round {
    topic_id: u64,
    /// The topic's partitions (a pushed message carries a pull cursor only when it is 1).
    partitions: u32,
    config: SubscriptionConfig,
    retries: Vec<Delivery>,
    /// New positions to look at, in order: `(seq, loc)`.
    fresh: Vec<(u64, MsgLoc)>,
    /// Where the scan of new positions ends (exclusive).
    scan_end: u64,
    /// When the earliest retry not yet due comes due.
    next_retry: Option<u64>,
}

impl Round {
    fn is_idle(&self, next: u64) -> bool {
        self.retries.is_empty() && self.fresh.is_empty() && self.scan_end == next
    }
}

/// Plans a round from the replicated state; `None` when the subscription is gone.
///
/// `reporting` is the report still being replicated: the round starts after the
/// positions it covers and leaves alone the retries it settles.
fn plan(
    node: &Node,
    topic: &str,
    sub: &str,
    reporting: Option<&Reporting>,
) -> Option<(u64, Round)> {
    let state = node.group_of(topic).state.read();
    let t = state.topics.get(topic).ok()?;
    let s = t.subscriptions.get(sub)?;
    let now = now_ms();
    let slots = s.config.max_in_flight.max(1) as usize;
    let retries: Vec<Delivery> = s
        .retries
        .iter()
        .filter(|(seq, (_, due))| *due <= now && !reporting.is_some_and(|r| r.settles(**seq)))
        .take(slots)
        .filter_map(|(&seq, &(made, _))| {
            t.timeline.get(seq).map(|loc| Delivery {
                seq,
                loc,
                attempt: made + 1,
            })
        })
        .collect();
    let next_retry = s
        .retries
        .values()
        .map(|(_, due)| *due)
        .filter(|due| *due > now)
        .min();
    let next = reporting.map_or(s.next, |r| r.advance_to.max(s.next));
    let start = next.max(t.timeline.base());
    let scan_end = t.timeline.next_seq().min(start + SCAN_MAX);
    let fresh = (start..scan_end)
        .filter_map(|seq| t.timeline.get(seq).map(|loc| (seq, loc)))
        .collect();
    Some((
        next,
        Round {
            topic_id: t.id,
            partitions: t.config.partitions,
            config: s.config.clone(),
            retries,
            fresh,
            scan_end,
            next_retry,
        },
    ))
}

/// A report being replicated while the next round delivers.
struct Reporting {
    advance_to: u64,
    settled: HashSet<u64>,
    replicated: JoinHandle<bool>,
}

impl Reporting {
    fn settles(&self, seq: u64) -> bool {
        self.settled.contains(&seq)
    }
}

/// Delivers one subscription's messages until it is deleted or the worker is aborted.
///
/// A round's report is replicated while the next round delivers, so the fsync of a
/// report never stalls deliveries; at most one report is in flight, in order.
async fn run_worker(pusher: Arc<Pusher>, topic: String, sub: String) {
    let node = &pusher.node;
    let waiters = node.group_of(&topic).state.waiters();
    let wake_key = format!("topic/{topic}");
    let mut reporting: Option<Reporting> = None;
    loop {
        // A replicated report's retries are in the state now, due or not.
        if reporting
            .as_ref()
            .is_some_and(|r| r.replicated.is_finished())
            && let Some(done) = reporting.take()
            && !done.replicated.await.unwrap_or(false)
        {
            return;
        }
        let notify = waiters.get(&wake_key);
        let planned = {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let planned = plan(node, &topic, &sub, reporting.as_ref());
            if let Some((next, round)) = &planned
                && round.is_idle(*next)
            {
                let wait = round
                    .next_retry
                    .map(|due| Duration::from_millis(due.saturating_sub(now_ms())))
                    .unwrap_or(IDLE_MAX)
                    .min(IDLE_MAX);
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                None
            } else {
                Some(planned)
            }
        };
        waiters.release(&wake_key, notify);
        let Some(planned) = planned else { continue };
        let Some((_, round)) = planned else { return };
        let report = run_round(&pusher, &topic, &sub, round).await;
        if let Some(previous) = reporting.take()
            && !previous.replicated.await.unwrap_or(false)
        {
            return;
        }
        let settled = report
            .delivered
            .iter()
            .chain(&report.failed)
            .copied()
            .collect();
        let advance_to = report.advance_to;
        let replicated = tokio::spawn({
            let node = node.clone();
            let (topic, sub) = (topic.clone(), sub.clone());
            async move { send_report(&node, &topic, &sub, report).await }
        });
        reporting = Some(Reporting {
            advance_to,
            settled,
            replicated,
        });
    }
}

/// Delivers a round's retries and the matching new messages, at most `max_in_flight` at
/// once, and says what came of each.
async fn run_round(pusher: &Pusher, topic: &str, sub: &str, round: Round) -> DeliveryReport {
    let node = &pusher.node;
    let slots = round.config.max_in_flight.max(1) as usize;
    let mut report = DeliveryReport {
        advance_to: round.scan_end,
        ..DeliveryReport::default()
    };
    let mut pending = round.retries.into_iter().collect::<Vec<_>>();
    let mut in_flight = FuturesUnordered::new();
    let mut fresh = round.fresh.into_iter().peekable();
    loop {
        // Fill the free slots: due retries first, then new matching messages.
        while in_flight.len() < slots {
            let delivery = if let Some(d) = pending.pop() {
                d
            } else if let Some((seq, loc)) = fresh.next() {
                Delivery {
                    seq,
                    loc,
                    attempt: 1,
                }
            } else {
                break;
            };
            let Ok(Some(stored)) = stored_message(node.group_of(topic), delivery.loc) else {
                continue; // gone from the log: nothing to deliver
            };
            if delivery.attempt == 1 && !round.config.filter.matches(stored.message()) {
                continue;
            }
            // A position in one partition is a cursor only when it is the topic's only one.
            let cursor = if round.partitions <= 1 {
                encode_cursor(round.topic_id, &[delivery.seq + 1])
            } else {
                String::new()
            };
            let message = topic_message(node.group_of(topic), delivery.loc, &stored, cursor);
            let config = &round.config;
            // Endpoints see the topic's name, whichever partition the message is in.
            let topic = topic_of(topic);
            in_flight.push(async move {
                let outcome = match &config.target {
                    Target::Http(url) => {
                        deliver::post(
                            &pusher.http,
                            url,
                            &config.secret,
                            config.format,
                            &node.region,
                            topic,
                            sub,
                            &message,
                            &stored.message().body,
                            delivery.attempt,
                        )
                        .await
                    }
                    Target::Email(to) => match &pusher.mailer {
                        Some(mailer) => {
                            deliver::mail(mailer, to, config.format, &node.region, topic, &message)
                                .await
                        }
                        None => Err("this broker has no SMTP server".to_string()),
                    },
                    _ => Ok(()),
                };
                (delivery.seq, outcome)
            });
        }
        // A full window of new positions waits for its deliveries; stop scanning here so
        // the report never claims positions not yet handled.
        if in_flight.is_empty() {
            break;
        }
        let Some((seq, outcome)) = in_flight.next().await else {
            break;
        };
        match outcome {
            Ok(()) => report.delivered.push(seq),
            Err(reason) => {
                tracing::debug!(topic, sub, seq, %reason, "push delivery failed");
                report.failed.push(seq);
            }
        }
        // Report in bounded pieces so progress is replicated while a backlog drains.
        let report_every = (slots * 4).max(REPORT_EVERY_MIN);
        if report.delivered.len() + report.failed.len() >= report_every && fresh.peek().is_some() {
            while let Some((seq, outcome)) = in_flight.next().await {
                match outcome {
                    Ok(()) => report.delivered.push(seq),
                    Err(_) => report.failed.push(seq),
                }
            }
            if let Some((next_seq, _)) = fresh.peek() {
                report.advance_to = *next_seq;
            }
            break;
        }
    }
    report
}

/// Replicates a round's report; `false` when the worker should stop (the subscription is
/// gone or this node no longer leads).
async fn send_report(node: &Node, topic: &str, sub: &str, report: DeliveryReport) -> bool {
    loop {
        let command = Command::ReportDelivery {
            topic: topic.to_string(),
            subscription: sub.to_string(),
            report: report.clone(),
        };
        match node.propose(command).await {
            Ok(_) => return true,
            Err(ApiError {
                code: ErrorCode::TopicNotFound | ErrorCode::SubscriptionNotFound,
                ..
            }) => return false,
            Err(e) => {
                if !node.group_of(topic).is_leader() || node.is_shutting_down() {
                    return false;
                }
                tracing::debug!(error = %e, topic, sub, "delivery report not replicated; retrying");
                tokio::time::sleep(REPORT_RETRY).await;
            }
        }
    }
}
