//! Topic semantics: topics, their timelines, and subscriptions with their replicated
//! delivery state. Pure and deterministic, like the queues: the state machine calls these
//! with each entry's timestamp and place.
//!
//! - A queue subscription gets its messages when the publish is applied: they are placed
//!   in the queue like sends (the body stays where the publish put it, in the log).
//! - Pull and WebSocket subscriptions read the timeline with their devices' cursors.
//! - HTTP and email subscriptions are pushed by the leader's delivery workers
//!   (`crate::push`), which report back what they delivered and what failed; the
//!   subscription keeps its position and its pending retries, so delivery goes on from
//!   there after a restart or a change of leader.

pub mod config;
pub mod filter;
pub mod partition;
pub mod timeline;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use sluice_client::{ApiError, ErrorCode};

use crate::queue::Queues;
use crate::queue::idempotency::Idempotency;
use crate::queue::ids::MsgLoc;
use crate::queue::message::NewMessage;
use crate::queue::state::{Meta, Moved, SendOutcome, Stage};
use config::{SubscriptionConfig, Target, TopicConfig, TopicUpdate};
use timeline::Timeline;

fn topic_not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::TopicNotFound,
        format!("topic {name} does not exist; create it with PUT /v1/topics/{name}"),
    )
}

fn subscription_not_found(topic: &str, sub: &str) -> ApiError {
    ApiError::new(
        ErrorCode::SubscriptionNotFound,
        format!("topic {topic} has no subscription {sub}"),
    )
}

/// A subscription and how its deliveries stand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionState {
    pub name: String,
    pub config: SubscriptionConfig,
    pub created_ms: u64,
    /// Push: the first timeline position not yet handed to delivery.
    pub next: u64,
    /// Push: positions whose delivery failed and waits: position → (retries made, due).
    pub retries: BTreeMap<u64, (u32, u64)>,
    /// Pull and WebSocket: each device's committed position.
    pub cursors: BTreeMap<String, u64>,
    pub delivered: u64,
    pub failed: u64,
}

impl SubscriptionState {
    /// A new subscription, delivering from timeline position `next` on.
    fn new(name: &str, config: SubscriptionConfig, now: u64, next: u64) -> Self {
        Self {
            name: name.to_string(),
            config,
            created_ms: now,
            next,
            retries: BTreeMap::new(),
            cursors: BTreeMap::new(),
            delivered: 0,
            failed: 0,
        }
    }
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicState {
    pub id: u64,
    pub name: String,
    pub config: TopicConfig,
    pub created_ms: u64,
    pub timeline: Timeline,
    pub subscriptions: BTreeMap<String, SubscriptionState>,
    pub idempotency: Idempotency,
}

impl TopicState {
    /// One of its subscriptions, or the error that names it under the topic's name.
    pub fn subscription(&self, sub: &str) -> Result<&SubscriptionState, ApiError> {
        self.subscriptions
            .get(sub)
            .ok_or_else(|| subscription_not_found(partition::topic_of(&self.name), sub))
    }
}

/// What a push worker did with a stretch of the timeline and with due retries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// The worker handled every position from the subscription's `next` up to this one
    /// (exclusive): delivered, skipped by the filter, or listed in `failed`.
    pub advance_to: u64,
    /// Positions delivered (first attempts and retries).
    pub delivered: Vec<u64>,
    /// Positions whose delivery failed (first attempts and retries).
    pub failed: Vec<u64>,
}

/// Every topic of a group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topics {
    by_name: BTreeMap<String, TopicState>,
    next_id: u64,
}

impl Topics {
    pub fn get(&self, name: &str) -> Result<&TopicState, ApiError> {
        self.by_name.get(name).ok_or_else(|| topic_not_found(name))
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut TopicState, ApiError> {
        self.by_name
            .get_mut(name)
            .ok_or_else(|| topic_not_found(name))
    }

    /// The topics clients see (partition 0 of each).
    pub fn iter(&self) -> impl Iterator<Item = &TopicState> {
        self.by_name
            .values()
            .filter(|t| !partition::is_extra_partition(&t.name))
    }

    /// Every partition this group holds, under its stored name.
    pub fn partitions(&self) -> impl Iterator<Item = &TopicState> {
        self.by_name.values()
    }

    /// Topics in name order with `prefix`, after `after`, up to `limit`; and whether more
    /// follow.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<&TopicState>, bool) {
        use std::ops::Bound;
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        let mut page = Vec::new();
        let mut more = false;
        for (name, topic) in self.by_name.range((start, Bound::Unbounded)) {
            if !name.starts_with(prefix) {
                break;
            }
            if partition::is_extra_partition(name) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(topic);
        }
        (page, more)
    }

    /// Creates a topic or updates it; true when created.
    pub fn put(&mut self, now: u64, name: &str, update: &TopicUpdate) -> Result<bool, ApiError> {
        if let Some(topic) = self.by_name.get_mut(name) {
            topic.config = topic.config.change(update)?;
            return Ok(false);
        }
        let config = TopicConfig::default().change(update)?;
        self.next_id += 1;
        self.by_name.insert(
            name.to_string(),
            TopicState {
                id: self.next_id,
                name: name.to_string(),
                config,
                created_ms: now,
                timeline: Timeline::default(),
                subscriptions: BTreeMap::new(),
                idempotency: Idempotency::default(),
            },
        );
        Ok(true)
    }

    /// Makes partition `name` (p > 0) of the topic whose partition 0 has id `topic_id`
    /// hold `config` and `subscriptions`, as partition 0 does. A subscription new here
    /// starts at the end of this partition's timeline, one whose endpoint changed starts
    /// again, the others keep their delivery state; one not named stays (a late copy must
    /// never take a subscription away: deleting one is a command of its own). A
    /// partition takes its topic's id, so one left by a deleted topic of the same name is
    /// told apart and started afresh. True when created.
    pub fn sync_partition(
        &mut self,
        now: u64,
        name: &str,
        topic_id: u64,
        config: &TopicConfig,
        subscriptions: &[(String, SubscriptionConfig)],
    ) -> bool {
        let fresh = self.by_name.get(name).is_none_or(|t| t.id != topic_id);
        if fresh {
            self.by_name.insert(
                name.to_string(),
                TopicState {
                    id: topic_id,
                    name: name.to_string(),
                    config: config.clone(),
                    created_ms: now,
                    timeline: Timeline::default(),
                    subscriptions: BTreeMap::new(),
                    idempotency: Idempotency::default(),
                },
            );
        }
        if let Some(t) = self.by_name.get_mut(name) {
            t.config = config.clone();
            sync_subscriptions(t, now, subscriptions);
        }
        fresh
    }

    pub fn delete(&mut self, name: &str) -> Result<(), ApiError> {
        self.by_name
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| topic_not_found(name))
    }

    /// Creates or replaces a subscription; true when created. A queue it delivers to must
    /// exist and be a standard queue.
    pub fn put_subscription(
        &mut self,
        now: u64,
        topic: &str,
        sub: &str,
        config: SubscriptionConfig,
        queues: &Queues,
    ) -> Result<bool, ApiError> {
        for queue in [
            match &config.target {
                Target::Queue(q) => Some(q),
                _ => None,
            },
            config.dead_letter_queue.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if !queues.home().is_remote(queue) {
                check_subscription_queue(queue, queues.get(queue).ok())?;
            }
        }
        let t = self.get_mut(topic)?;
        if !t.subscriptions.contains_key(sub)
            && t.subscriptions.len() >= sluice_client::limits::SUBSCRIPTIONS_MAX
        {
            return Err(ApiError::new(
                ErrorCode::InvalidAttribute,
                format!(
                    "topic {topic} has {} subscriptions, the limit",
                    t.subscriptions.len()
                ),
            ));
        }
        let next = t.timeline.next_seq();
        match t.subscriptions.get_mut(sub) {
            Some(existing) => {
                if existing.config.target != config.target {
                    return Err(ApiError::new(
                        ErrorCode::ImmutableAttribute,
                        format!(
                            "subscription {sub} delivers elsewhere; delete it and create it again to change its endpoint"
                        ),
                    ));
                }
                existing.config = config;
                Ok(false)
            }
            None => {
                t.subscriptions.insert(
                    sub.to_string(),
                    SubscriptionState::new(sub, config, now, next),
                );
                Ok(true)
            }
        }
    }

    pub fn delete_subscription(&mut self, topic: &str, sub: &str) -> Result<(), ApiError> {
        self.get_mut(topic)?
            .subscriptions
            .remove(sub)
            .map(|_| ())
            .ok_or_else(|| subscription_not_found(topic, sub))
    }

    /// Publishes the messages of an entry at log `index`, the first at slot `first_slot`:
    /// onto the timeline, and into the queues of matching queue subscriptions.
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &mut self,
        now: u64,
        name: &str,
        index: u64,
        first_slot: usize,
        messages: &[NewMessage],
        key: Option<u128>,
        queues: &mut Queues,
    ) -> Result<Vec<Result<SendOutcome, ApiError>>, ApiError> {
        let topic = self.get_mut(name)?;
        topic.idempotency.expire(now);
        if let Some(key) = key
            && let Some(recorded) = topic.idempotency.get(key)
        {
            let recorded = recorded.clone();
            return Ok((0..messages.len())
                .map(|i| {
                    recorded.outcome(i).ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::InvalidMessage,
                            "this message was refused when it was first published",
                        )
                    })
                })
                .collect());
        }
        let max = topic.config.max_message_bytes as usize;
        let mut outcomes = Vec::with_capacity(messages.len());
        for (i, msg) in messages.iter().enumerate() {
            if msg.size() > max {
                outcomes.push(Err(ApiError::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "the message is {} bytes (body and attributes); the topic's maxMessageBytes is {max}",
                        msg.size()
                    ),
                )));
                continue;
            }
            let loc = MsgLoc::new(index, first_slot + i);
            topic.timeline.push(loc, now);
            let mut fed: HashSet<&str> = HashSet::new();
            for sub in topic.subscriptions.values_mut() {
                let Target::Queue(queue) = &sub.config.target else {
                    continue;
                };
                if !sub.config.filter.matches(msg) || !fed.insert(queue.as_str()) {
                    continue;
                }
                match queues.accept_published(now, queue, loc, msg) {
                    Ok(()) => sub.delivered += 1,
                    Err(_) => sub.failed += 1,
                }
            }
            outcomes.push(Ok(SendOutcome::Stored(loc)));
        }
        if let Some(key) = key {
            let recorded = outcomes.iter().map(|o| o.as_ref().ok().cloned()).collect();
            topic.idempotency.record(now, key, recorded);
        }
        Ok(outcomes)
    }

    /// A device's position on a pull or WebSocket subscription.
    pub fn commit_cursor(
        &mut self,
        topic: &str,
        sub: &str,
        device: &str,
        seq: u64,
    ) -> Result<(), ApiError> {
        let t = self.get_mut(topic)?;
        let s = t
            .subscriptions
            .get_mut(sub)
            .ok_or_else(|| subscription_not_found(topic, sub))?;
        if !s.config.target.is_timeline() {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "subscription {sub} is pushed; cursors belong to pull and WebSocket subscriptions"
                ),
            ));
        }
        s.cursors.insert(device.to_string(), seq);
        Ok(())
    }

    /// Applies a push worker's report: positions advance, failures wait for a retry or,
    /// after the last one, go to the dead-letter queue (if any) and count as failed.
    pub fn report(
        &mut self,
        now: u64,
        topic: &str,
        sub: &str,
        report: &DeliveryReport,
        queues: &mut Queues,
    ) -> Result<(), ApiError> {
        let t = self.get_mut(topic)?;
        let timeline = &t.timeline;
        let s = t
            .subscriptions
            .get_mut(sub)
            .ok_or_else(|| subscription_not_found(topic, sub))?;
        if report.advance_to > s.next {
            s.next = report.advance_to.min(timeline.next_seq());
        }
        for seq in &report.delivered {
            s.retries.remove(seq);
            s.delivered += 1;
        }
        for &seq in &report.failed {
            let retries = s.retries.get(&seq).map(|(n, _)| *n).unwrap_or(0);
            if retries < s.config.retry.max_retries && timeline.get(seq).is_some() {
                let due = now + s.config.retry.delay_ms(retries + 1);
                s.retries.insert(seq, (retries + 1, due));
                continue;
            }
            s.retries.remove(&seq);
            s.failed += 1;
            if let (Some(dlq), Some(loc)) = (&s.config.dead_letter_queue, timeline.get(seq)) {
                // The message stays where it is in the log; the queue refers to it.
                let _ = queues.accept_dead_letter(now, dlq, loc);
            }
        }
        Ok(())
    }

    /// Drops timeline messages past retention; push subscriptions behind them lose them.
    pub fn tick(&mut self, now: u64) {
        for t in self.by_name.values_mut() {
            let retention = t.config.retention_seconds as u64 * 1000;
            if t.timeline.expire(now, retention) == 0 {
                continue;
            }
            let base = t.timeline.base();
            for s in t.subscriptions.values_mut() {
                if s.next < base {
                    s.failed += base - s.next;
                    s.next = base;
                }
                let expired: Vec<u64> = s.retries.range(..base).map(|(k, _)| *k).collect();
                for seq in expired {
                    s.retries.remove(&seq);
                    s.failed += 1;
                }
            }
        }
    }

    pub fn oldest_loc(&self) -> Option<MsgLoc> {
        self.by_name
            .values()
            .filter_map(|t| t.timeline.oldest_loc())
            .min()
    }

    /// The earliest instant a [`Topics::tick`] has something to do.
    pub fn next_due(&self) -> Option<u64> {
        self.by_name
            .values()
            .filter_map(|t| {
                let retention = t.config.retention_seconds as u64 * 1000;
                let expiry = t.timeline.oldest_published_by().map(|p| p + retention);
                [expiry, t.idempotency.next_due()]
                    .into_iter()
                    .flatten()
                    .min()
            })
            .min()
    }
}

/// Gives a partition each of `subscriptions` (see [`Topics::sync_partition`]); others it
/// has stay until they are deleted.
fn sync_subscriptions(
    t: &mut TopicState,
    now: u64,
    subscriptions: &[(String, SubscriptionConfig)],
) {
    let next = t.timeline.next_seq();
    for (sub, config) in subscriptions {
        match t.subscriptions.get_mut(sub) {
            Some(existing) if existing.config.target == config.target => {
                existing.config = config.clone()
            }
            // Deleted and made again with another endpoint: it starts again.
            _ => {
                let fresh = SubscriptionState::new(sub, config.clone(), now, next);
                t.subscriptions.insert(sub.clone(), fresh);
            }
        }
    }
}

/// A queue a subscription delivers to must exist and be a standard queue. The HTTP layer
/// checks a queue of another group with this too.
pub fn check_subscription_queue(
    name: &str,
    queue: Option<&crate::queue::state::QueueState>,
) -> Result<(), ApiError> {
    let q = queue.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidAttribute,
            format!("queue {name} does not exist; create it first"),
        )
    })?;
    if q.config.fifo {
        return Err(ApiError::new(
            ErrorCode::InvalidAttribute,
            format!("queue {name} is FIFO; subscriptions deliver to standard queues"),
        ));
    }
    Ok(())
}

impl Queues {
    /// Places a published message in a queue, as a send would.
    pub fn accept_published(
        &mut self,
        now: u64,
        queue: &str,
        loc: MsgLoc,
        msg: &NewMessage,
    ) -> Result<(), ApiError> {
        if self.home().is_remote(queue) {
            self.outbox.push(queue, loc, None, true);
            return Ok(());
        }
        let q = self.get_mut(queue)?;
        if msg.size() > q.config.max_message_bytes as usize || q.config.fifo {
            return Err(ApiError::new(
                ErrorCode::MessageTooLarge,
                format!("the message does not fit queue {queue}"),
            ));
        }
        q.send(now, loc, msg);
        Ok(())
    }

    /// Places a message a push subscription gave up on in its dead-letter queue.
    pub fn accept_dead_letter(
        &mut self,
        now: u64,
        queue: &str,
        loc: MsgLoc,
    ) -> Result<(), ApiError> {
        if self.home().is_remote(queue) {
            self.outbox.push(queue, loc, None, false);
            return Ok(());
        }
        let q = self.get_mut(queue)?;
        q.accept_moved(Moved {
            loc,
            meta: Meta {
                sent_ms: now,
                priority: sluice_client::limits::PRIORITY_DEFAULT,
                receive_count: 0,
                receipt_seq: 0,
                first_received_ms: 0,
                stage: Stage::Visible,
                group: None,
            },
            origin: None,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
