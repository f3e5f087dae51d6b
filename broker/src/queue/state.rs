//! One queue's replicated state: which messages are visible, delayed or in flight.
//!
//! Pure and deterministic: every method takes the command's timestamp, never the clock,
//! and reads no body (bodies stay in the log). Memory per message is small and fixed:
//!
//! - a standard queue keeps each message that was never delivered and is visible at once
//!   in a per-priority *lane*: 16 bytes (its place and send time), in send order;
//! - everything else (delayed, in flight, visible again after a delivery, and every
//!   message of a FIFO queue) has a [`Meta`] record, indexed by the instant it next
//!   changes, so time-driven transitions cost `O(log n)` each.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sluice_client::{ApiError, ErrorCode, MessageState, limits};

use super::config::QueueConfig;
use super::deque::BlockDeque;
use super::idempotency::Idempotency;
use super::ids::{MsgLoc, Receipt};
use super::message::NewMessage;

/// Messages in flight at once, per queue, as in SQS.
pub const IN_FLIGHT_LIMIT_STANDARD: usize = 120_000;
pub const IN_FLIGHT_LIMIT_FIFO: usize = 20_000;
/// How far a peek or count looks past the materialised state for lapsed deadlines.
const VIRTUAL_SCAN: usize = 1_024;

/// The never-delivered, visible messages of one priority of a standard queue, in send
/// order: 8 bytes each. Send times are kept to the second, as checkpoints `(first place,
/// time)`: every message from a checkpoint's place to the next one's was sent within a
/// second after its time. Retention needs no more.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Lane {
    #[serde(with = "delta_locs")]
    msgs: BlockDeque<MsgLoc>,
    times: VecDeque<(MsgLoc, u64)>,
}

/// Lanes are encoded as gaps between places: neighbours mostly differ by one slot, so a
/// snapshot spends about a byte per queued message instead of eight.
mod delta_locs {
    use serde::de::{SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserializer, Serializer};

    use super::{BlockDeque, MsgLoc};

    pub fn serialize<S: Serializer>(msgs: &BlockDeque<MsgLoc>, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(msgs.len()))?;
        let mut previous = 0u64;
        for loc in msgs.iter() {
            let raw = loc.raw();
            seq.serialize_element(&(raw - previous))?;
            previous = raw;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BlockDeque<MsgLoc>, D::Error> {
        struct Gaps;
        impl<'de> Visitor<'de> for Gaps {
            type Value = BlockDeque<MsgLoc>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("gaps between message places")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut msgs = BlockDeque::default();
                let mut previous = 0u64;
                while let Some(gap) = seq.next_element::<u64>()? {
                    previous = previous
                        .checked_add(gap)
                        .ok_or_else(|| serde::de::Error::custom("message place out of range"))?;
                    msgs.push_back(MsgLoc::from_raw(previous));
                }
                Ok(msgs)
            }
        }
        d.deserialize_seq(Gaps)
    }
}

impl Lane {
    fn push(&mut self, loc: MsgLoc, now: u64) {
        if self.times.back().is_none_or(|&(_, t)| now >= t + 1000) {
            self.times.push_back((loc, now));
        }
        self.msgs.push_back(loc);
    }

    fn front(&self) -> Option<MsgLoc> {
        self.msgs.front().copied()
    }

    /// The latest instant the front message can have been sent.
    fn front_sent_by(&self) -> Option<u64> {
        self.front()?;
        self.times.front().map(|&(_, t)| t + 999)
    }

    fn pop(&mut self) -> Option<MsgLoc> {
        let loc = self.msgs.pop_front()?;
        match self.msgs.front() {
            None => self.times.clear(),
            Some(&front) => {
                while self.times.len() >= 2 && self.times[1].0 <= front {
                    self.times.pop_front();
                }
            }
        }
        Some(loc)
    }

    fn clear(&mut self) {
        self.msgs.clear();
        self.times.clear();
    }

    fn contains(&self, loc: MsgLoc) -> bool {
        self.msgs.contains_sorted(&loc, |l| *l)
    }

    /// Places of messages that may have been sent within `[since, until]`.
    fn sent_between(&self, since: u64, until: u64) -> impl Iterator<Item = MsgLoc> + '_ {
        let mut times = self.times.iter().peekable();
        let mut current: Option<u64> = None;
        self.msgs.iter().copied().filter(move |&loc| {
            while let Some(&&(at, t)) = times.peek() {
                if at <= loc {
                    current = Some(t);
                    times.next();
                } else {
                    break;
                }
            }
            current.is_some_and(|t| t + 999 >= since && t <= until)
        })
    }
}

/// Where a message with a [`Meta`] record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Hidden until `visible_at` (a delay or `deliverAt`); never delivered.
    Delayed { visible_at: u64 },
    /// Received; hidden until `deadline`.
    InFlight { deadline: u64 },
    /// Ready to be received.
    Visible,
}

/// What the queue knows of a message beyond its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub sent_ms: u64,
    pub priority: u8,
    pub receive_count: u32,
    /// Bumped by every delivery and visibility change; receipts carry it.
    pub receipt_seq: u32,
    /// 0 until the first delivery.
    pub first_received_ms: u64,
    pub stage: Stage,
    /// FIFO queues: the message group.
    pub group: Option<String>,
}

/// A FIFO message group: its messages in send order; the front one may be in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Group {
    msgs: VecDeque<MsgLoc>,
    locked: bool,
}

/// One delivery made by a receive. The message's own fields (body, priority, send time)
/// are read from its entry in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub loc: MsgLoc,
    pub receipt: Receipt,
    pub receive_count: u32,
    pub first_received_ms: u64,
    /// Dead-lettered messages: the id of the queue they came from.
    pub origin: Option<u64>,
}

/// A message as peek and look-up see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peeked {
    pub loc: MsgLoc,
    pub state: MessageState,
    pub receive_count: u32,
    pub first_received_ms: u64,
    pub visible_at_ms: Option<u64>,
    pub origin: Option<u64>,
}

/// A message leaving this queue for its dead-letter queue (or back to its source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub loc: MsgLoc,
    pub meta: Meta,
    pub origin: Option<u64>,
}

/// The outcome of sending one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendOutcome {
    Stored(MsgLoc),
    /// A FIFO de-duplication id seen within the window: the first message's place.
    Duplicate(MsgLoc),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

/// Messages a queue has taken in, handed out and seen acknowledged since it was made:
/// what rates are computed from (the console's plots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub sent: u64,
    pub received: u64,
    pub acked: u64,
}

/// The state of one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueState {
    pub id: u64,
    pub name: String,
    pub config: QueueConfig,
    pub created_ms: u64,
    /// Standard queues: never-delivered visible messages, one lane per priority (index 0
    /// is priority 1), as far as the lowest priority used.
    lanes: Vec<Lane>,
    lane_len: u64,
    meta: HashMap<MsgLoc, Meta>,
    delayed: BTreeSet<(u64, MsgLoc)>,
    in_flight: BTreeSet<(u64, MsgLoc)>,
    /// Standard queues: visible again after a delivery (or after a delay), by priority.
    retry: BTreeSet<(u8, MsgLoc)>,
    /// FIFO queues.
    groups: HashMap<String, Group>,
    /// FIFO: unlocked, non-empty groups by the place of their front message.
    ready_groups: BTreeSet<(MsgLoc, String)>,
    /// FIFO de-duplication ids within the window: id → (first message, expiry).
    dedup: HashMap<String, (MsgLoc, u64)>,
    dedup_order: VecDeque<(u64, String)>,
    /// Dead-lettered messages: the queue each came from.
    origins: BTreeMap<MsgLoc, u64>,
    /// No meta record was sent before this instant (a lower bound; exact after a scan),
    /// so retention scans the records only when one can have expired.
    meta_oldest_sent: u64,
    /// Idempotency keys of recent sends.
    pub idempotency: Idempotency,
    pub totals: Totals,
    /// Key-value labels (SQS queue tags).
    pub tags: BTreeMap<String, String>,
}

fn stale(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ReceiptStale,
        format!(
            "the receipt is stale: the message was {what} since; use the receipt of the latest receive or visibility change"
        ),
    )
}

impl QueueState {
    pub fn new(id: u64, name: String, config: QueueConfig, now: u64) -> Self {
        Self {
            id,
            name,
            config,
            created_ms: now,
            lanes: Vec::new(),
            lane_len: 0,
            meta: HashMap::new(),
            delayed: BTreeSet::new(),
            in_flight: BTreeSet::new(),
            retry: BTreeSet::new(),
            groups: HashMap::new(),
            ready_groups: BTreeSet::new(),
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            origins: BTreeMap::new(),
            meta_oldest_sent: u64::MAX,
            idempotency: Idempotency::default(),
            totals: Totals::default(),
            tags: BTreeMap::new(),
        }
    }

    fn retention_ms(&self) -> u64 {
        self.config.retention_seconds as u64 * 1000
    }

    fn in_flight_limit(&self) -> usize {
        if self.config.fifo {
            IN_FLIGHT_LIMIT_FIFO
        } else {
            IN_FLIGHT_LIMIT_STANDARD
        }
    }

    /// Number of messages in the queue, in any stage.
    pub fn len(&self) -> u64 {
        self.lane_len + self.meta.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn counts(&self) -> Counts {
        let in_flight = self.in_flight.len() as u64;
        let delayed = self.delayed.len() as u64;
        Counts {
            visible: self.len() - in_flight - delayed,
            in_flight,
            delayed,
        }
    }

    /// The oldest place this queue still refers to: the log must keep everything from it.
    pub fn oldest_loc(&self) -> Option<MsgLoc> {
        let lanes = self.lanes.iter().filter_map(Lane::front);
        let metas = self.meta.keys().copied();
        lanes.chain(metas).min()
    }

    /// The earliest instant at which something changes by time alone (a delay or
    /// visibility deadline lapses, a de-duplication id or a message expires).
    pub fn next_due(&self) -> Option<u64> {
        let retention = self.retention_ms();
        [
            self.delayed.first().map(|(t, _)| *t),
            self.in_flight.first().map(|(t, _)| *t),
            self.dedup_order.front().map(|(t, _)| *t),
            self.idempotency.next_due(),
            self.lanes
                .iter()
                .filter_map(|l| l.front_sent_by().map(|t| t + retention))
                .min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// True when a receive at `now` would find a message (counting lapsed deadlines).
    pub fn has_visible(&self, now: u64) -> bool {
        if self.config.fifo {
            self.ready_groups
                .iter()
                .any(|(loc, _)| self.fifo_front_visible(*loc, now))
                || self.in_flight.first().is_some_and(|(t, _)| *t <= now)
        } else {
            self.lane_len > 0
                || !self.retry.is_empty()
                || self.delayed.first().is_some_and(|(t, _)| *t <= now)
                || self.in_flight.first().is_some_and(|(t, _)| *t <= now)
        }
    }

    fn fifo_front_visible(&self, loc: MsgLoc, now: u64) -> bool {
        match self.meta.get(&loc).map(|m| m.stage) {
            Some(Stage::Visible) => true,
            Some(Stage::Delayed { visible_at }) => visible_at <= now,
            _ => false,
        }
    }

    // ---- sending ----

    /// Stores one message sent at `now` at place `loc`. The message was validated against
    /// this queue's attributes by the caller.
    pub fn send(&mut self, now: u64, loc: MsgLoc, msg: &NewMessage) -> SendOutcome {
        if let Some(dedup) = &msg.dedup {
            self.expire_dedup(now);
            if let Some((first, _)) = self.dedup.get(dedup) {
                return SendOutcome::Duplicate(*first);
            }
            let expires = now + limits::DEDUP_WINDOW_SECONDS as u64 * 1000;
            self.dedup.insert(dedup.clone(), (loc, expires));
            self.dedup_order.push_back((expires, dedup.clone()));
        }
        self.totals.sent += 1;
        let visible_at = msg
            .visible_at_ms
            .unwrap_or(now + self.config.delay_seconds as u64 * 1000);
        if self.config.fifo {
            let group = msg.group.clone().unwrap_or_default();
            let stage = if visible_at > now {
                self.delayed.insert((visible_at, loc));
                Stage::Delayed { visible_at }
            } else {
                Stage::Visible
            };
            self.insert_meta(
                loc,
                Meta {
                    sent_ms: now,
                    priority: msg.priority,
                    receive_count: 0,
                    receipt_seq: 0,
                    first_received_ms: 0,
                    stage,
                    group: Some(group.clone()),
                },
            );
            self.fifo_push(group, loc);
        } else if visible_at > now {
            self.insert_meta(
                loc,
                Meta {
                    sent_ms: now,
                    priority: msg.priority,
                    receive_count: 0,
                    receipt_seq: 0,
                    first_received_ms: 0,
                    stage: Stage::Delayed { visible_at },
                    group: None,
                },
            );
            self.delayed.insert((visible_at, loc));
        } else {
            let p = msg.priority as usize - 1;
            if self.lanes.len() <= p {
                // Lanes exist up to the lowest priority used: most queues use one.
                self.lanes.resize_with(p + 1, Lane::default);
            }
            self.lanes[p].push(loc, now);
            self.lane_len += 1;
        }
        SendOutcome::Stored(loc)
    }

    /// Appends `loc` to its FIFO group, keeping the group in send order.
    fn fifo_push(&mut self, group: String, loc: MsgLoc) {
        let g = self.groups.entry(group.clone()).or_default();
        let old_front = g.msgs.front().copied();
        match g.msgs.back() {
            Some(&back) if back > loc => {
                // A message moved back (redrive) goes to its place by age, but never
                // before a front that is in flight.
                let at = g.msgs.partition_point(|&l| l < loc).max(g.locked as usize);
                g.msgs.insert(at, loc);
            }
            _ => g.msgs.push_back(loc),
        }
        let new_front = g.msgs.front().copied();
        if !g.locked && old_front != new_front {
            if let Some(old) = old_front {
                self.ready_groups.remove(&(old, group.clone()));
            }
            if let Some(new) = new_front {
                self.ready_groups.insert((new, group));
            }
        }
    }

    fn expire_dedup(&mut self, now: u64) {
        while let Some((expires, _)) = self.dedup_order.front() {
            if *expires > now {
                break;
            }
            let (expires, id) = self.dedup_order.pop_front().expect("front");
            if self.dedup.get(&id).is_some_and(|(_, e)| *e == expires) {
                self.dedup.remove(&id);
            }
        }
    }

    // ---- time ----

    /// Applies every transition due by `now`: lapsed delays and visibility deadlines make
    /// messages visible, and messages past retention are dropped. Returns how many expired.
    pub fn advance(&mut self, now: u64) -> u64 {
        while let Some(&(t, loc)) = self.delayed.first() {
            if t > now {
                break;
            }
            self.delayed.pop_first();
            self.make_visible(loc);
        }
        while let Some(&(t, loc)) = self.in_flight.first() {
            if t > now {
                break;
            }
            self.in_flight.pop_first();
            if let Some(group) = self.meta.get(&loc).and_then(|m| m.group.clone()) {
                self.unlock_group(&group);
            }
            self.make_visible(loc);
        }
        self.expire_dedup(now);
        self.idempotency.expire(now);
        self.expire_retention(now)
    }

    fn make_visible(&mut self, loc: MsgLoc) {
        if let Some(meta) = self.meta.get_mut(&loc) {
            meta.stage = Stage::Visible;
            if !self.config.fifo {
                self.retry.insert((meta.priority, loc));
            }
        }
    }

    fn unlock_group(&mut self, group: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.locked = false;
            if let Some(&front) = g.msgs.front() {
                self.ready_groups.insert((front, group.to_string()));
            }
        }
    }

    fn expire_retention(&mut self, now: u64) -> u64 {
        let retention = self.retention_ms();
        let mut expired = 0;
        for lane in &mut self.lanes {
            while lane.front_sent_by().is_some_and(|t| t + retention <= now) {
                if let Some(loc) = lane.pop() {
                    self.lane_len -= 1;
                    self.origins.remove(&loc);
                    expired += 1;
                }
            }
        }
        if self.meta_oldest_sent.saturating_add(retention) > now {
            return expired;
        }
        let old: Vec<MsgLoc> = self
            .meta
            .iter()
            .filter(|(_, m)| m.sent_ms + retention <= now)
            .map(|(loc, _)| *loc)
            .collect();
        for loc in old {
            self.remove_meta(loc);
            expired += 1;
        }
        self.meta_oldest_sent = self
            .meta
            .values()
            .map(|m| m.sent_ms)
            .min()
            .unwrap_or(u64::MAX);
        expired
    }

    fn insert_meta(&mut self, loc: MsgLoc, meta: Meta) {
        self.meta_oldest_sent = self.meta_oldest_sent.min(meta.sent_ms);
        self.meta.insert(loc, meta);
    }

    /// Removes a message that has a meta record from every index.
    fn remove_meta(&mut self, loc: MsgLoc) -> Option<Meta> {
        let meta = self.meta.remove(&loc)?;
        match meta.stage {
            Stage::Delayed { visible_at } => {
                self.delayed.remove(&(visible_at, loc));
            }
            Stage::InFlight { deadline } => {
                self.in_flight.remove(&(deadline, loc));
            }
            Stage::Visible => {
                self.retry.remove(&(meta.priority, loc));
            }
        }
        self.origins.remove(&loc);
        if let Some(group) = &meta.group
            && let Some(g) = self.groups.get_mut(group)
        {
            let was_front = g.msgs.front() == Some(&loc);
            if let Some(at) = g.msgs.iter().position(|&l| l == loc) {
                g.msgs.remove(at);
            }
            if was_front {
                self.ready_groups.remove(&(loc, group.clone()));
                // The front left, so the group holds nothing in flight any more.
                g.locked = false;
                if let Some(&front) = g.msgs.front() {
                    self.ready_groups.insert((front, group.clone()));
                }
            }
            if g.msgs.is_empty() {
                self.groups.remove(group);
            }
        }
        Some(meta)
    }

    // ---- receiving ----

    /// Receives up to `max` messages at `now`, hiding each for `visibility_ms`. Messages
    /// received `max_receives` times already leave for the dead-letter queue instead
    /// (returned in the second list) when `max_receives` is given.
    pub fn receive(
        &mut self,
        now: u64,
        max: usize,
        visibility_ms: u64,
        max_receives: Option<u32>,
    ) -> Result<(Vec<Delivery>, Vec<Moved>), ApiError> {
        self.advance(now);
        let limit = self.in_flight_limit();
        if self.in_flight.len() >= limit {
            return Err(ApiError::new(
                ErrorCode::TooManyRequests,
                format!(
                    "queue {} has {} messages in flight, the limit; acknowledge some or let their visibility lapse",
                    self.name,
                    self.in_flight.len()
                ),
            ));
        }
        let mut deliveries = Vec::new();
        let mut moved = Vec::new();
        while deliveries.len() < max && self.in_flight.len() < limit {
            let Some(loc) = self.next_candidate(now) else {
                break;
            };
            if let Some(max_receives) = max_receives
                && self
                    .meta
                    .get(&loc)
                    .is_some_and(|m| m.receive_count >= max_receives)
            {
                let origin = self.origins.get(&loc).copied();
                let meta = self.remove_meta(loc).expect("candidate has meta");
                moved.push(Moved { loc, meta, origin });
                continue;
            }
            deliveries.push(self.deliver(loc, now, visibility_ms));
        }
        self.totals.received += deliveries.len() as u64;
        Ok((deliveries, moved))
    }

    /// The next message a receive would take, without taking it.
    fn next_candidate(&self, now: u64) -> Option<MsgLoc> {
        if self.config.fifo {
            return self
                .ready_groups
                .iter()
                .map(|(loc, _)| *loc)
                .find(|loc| self.fifo_front_visible(*loc, now));
        }
        let lane = self
            .lanes
            .iter()
            .enumerate()
            .filter_map(|(p, l)| l.front().map(|loc| (p as u8 + 1, loc)))
            .min();
        let retry = self.retry.first().copied();
        match (lane, retry) {
            (Some(a), Some(b)) => Some(a.min(b).1),
            (a, b) => a.or(b).map(|(_, loc)| loc),
        }
    }

    /// Moves a candidate into flight.
    fn deliver(&mut self, loc: MsgLoc, now: u64, visibility_ms: u64) -> Delivery {
        let deadline = now + visibility_ms;
        if !self.meta.contains_key(&loc) {
            // A lane message: it gets a meta record on its first delivery.
            let p = self
                .lanes
                .iter()
                .position(|l| l.front() == Some(loc))
                .expect("candidate is a lane front");
            let sent_by = self.lanes[p].front_sent_by().unwrap_or(now);
            self.lanes[p].pop();
            self.lane_len -= 1;
            self.insert_meta(
                loc,
                Meta {
                    sent_ms: sent_by,
                    priority: p as u8 + 1,
                    receive_count: 0,
                    receipt_seq: 0,
                    first_received_ms: 0,
                    stage: Stage::Visible,
                    group: None,
                },
            );
        }
        let meta = self.meta.get_mut(&loc).expect("meta present");
        match meta.stage {
            Stage::Visible => {
                self.retry.remove(&(meta.priority, loc));
            }
            Stage::Delayed { visible_at } => {
                self.delayed.remove(&(visible_at, loc));
            }
            Stage::InFlight { deadline } => {
                self.in_flight.remove(&(deadline, loc));
            }
        }
        meta.stage = Stage::InFlight { deadline };
        meta.receive_count += 1;
        meta.receipt_seq += 1;
        if meta.first_received_ms == 0 {
            meta.first_received_ms = now;
        }
        self.in_flight.insert((deadline, loc));
        let delivery = Delivery {
            loc,
            receipt: Receipt {
                queue_id: self.id,
                loc,
                seq: meta.receipt_seq,
            },
            receive_count: meta.receive_count,
            first_received_ms: meta.first_received_ms,
            origin: self.origins.get(&loc).copied(),
        };
        if let Some(group) = meta.group.clone() {
            self.ready_groups.remove(&(loc, group.clone()));
            if let Some(g) = self.groups.get_mut(&group) {
                g.locked = true;
            }
        }
        delivery
    }

    // ---- acknowledging and visibility ----

    fn check_receipt(&self, receipt: &Receipt) -> Result<(), ApiError> {
        if receipt.queue_id != self.id {
            return Err(ApiError::new(
                ErrorCode::InvalidReceipt,
                format!(
                    "the receipt belongs to another queue, or to an earlier queue named {}",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Acknowledges (deletes) a received message. A message already gone acknowledges
    /// again without error, so a retried ack is safe.
    pub fn ack(&mut self, now: u64, receipt: &Receipt) -> Result<(), ApiError> {
        self.check_receipt(receipt)?;
        self.advance(now);
        let Some(meta) = self.meta.get(&receipt.loc) else {
            return Ok(());
        };
        if meta.receipt_seq != receipt.seq || matches!(meta.stage, Stage::Delayed { .. }) {
            return Err(stale("received again"));
        }
        self.remove_meta(receipt.loc);
        self.totals.acked += 1;
        Ok(())
    }

    /// Hides an in-flight message for `visibility_ms` from `now`; returns its new receipt.
    pub fn change_visibility(
        &mut self,
        now: u64,
        receipt: &Receipt,
        visibility_ms: u64,
        keep_receipt: bool,
    ) -> Result<Receipt, ApiError> {
        self.check_receipt(receipt)?;
        self.advance(now);
        let Some(meta) = self.meta.get_mut(&receipt.loc) else {
            return Err(ApiError::new(
                ErrorCode::MessageNotFound,
                "the message is no longer in the queue (acknowledged, expired or purged)",
            ));
        };
        if meta.receipt_seq != receipt.seq {
            return Err(stale("received again or its visibility changed"));
        }
        let Stage::InFlight { deadline } = meta.stage else {
            return Err(ApiError::new(
                ErrorCode::MessageNotInFlight,
                "the message is not in flight: its visibility timeout lapsed; receive it again",
            ));
        };
        let new_deadline = now + visibility_ms;
        meta.stage = Stage::InFlight {
            deadline: new_deadline,
        };
        if !keep_receipt {
            meta.receipt_seq += 1;
        }
        let seq = meta.receipt_seq;
        self.in_flight.remove(&(deadline, receipt.loc));
        self.in_flight.insert((new_deadline, receipt.loc));
        // A zero timeout makes the message visible at once.
        self.advance(now);
        Ok(Receipt {
            queue_id: self.id,
            loc: receipt.loc,
            seq,
        })
    }

    /// Drops every message; returns how many.
    pub fn purge(&mut self) -> u64 {
        let n = self.len();
        self.lanes.iter_mut().for_each(Lane::clear);
        self.lane_len = 0;
        self.meta.clear();
        self.delayed.clear();
        self.in_flight.clear();
        self.retry.clear();
        self.groups.clear();
        self.ready_groups.clear();
        self.origins.clear();
        n
    }

    // ---- moving messages between queues (dead letters, redrive) ----

    /// Takes in a message from another queue (dead-lettering, or a redrive back to its
    /// source). It is visible at once, with a fresh receive count.
    pub fn accept_moved(&mut self, moved: Moved) {
        self.totals.sent += 1;
        let Moved { loc, meta, origin } = moved;
        let meta = Meta {
            receive_count: 0,
            receipt_seq: meta.receipt_seq,
            first_received_ms: 0,
            stage: Stage::Visible,
            group: if self.config.fifo {
                Some(meta.group.unwrap_or_default())
            } else {
                None
            },
            ..meta
        };
        if let Some(origin) = origin {
            self.origins.insert(loc, origin);
        }
        if let Some(group) = meta.group.clone() {
            self.insert_meta(loc, meta);
            self.fifo_push(group, loc);
        } else {
            self.retry.insert((meta.priority, loc));
            self.insert_meta(loc, meta);
        }
    }

    /// Takes up to `max` visible dead-lettered messages out, oldest first, for a redrive.
    /// Messages sent to this queue directly have no source and stay.
    pub fn take_for_redrive(&mut self, now: u64, max: usize) -> Vec<Moved> {
        self.advance(now);
        let locs: Vec<MsgLoc> = self
            .origins
            .keys()
            .filter(|loc| {
                self.meta
                    .get(loc)
                    .is_some_and(|m| m.stage == Stage::Visible)
            })
            .take(max)
            .copied()
            .collect();
        locs.into_iter()
            .filter_map(|loc| {
                let origin = self.origins.get(&loc).copied();
                let meta = self.remove_meta(loc)?;
                Some(Moved { loc, meta, origin })
            })
            .collect()
    }

    /// Number of dead-lettered messages waiting here.
    pub fn dead_letter_count(&self) -> u64 {
        self.origins.len() as u64
    }

    // ---- looking ----

    /// What a receive at `now` would return first, up to `max`, without changing anything.
    pub fn peek(&self, now: u64, max: usize) -> Vec<Peeked> {
        let mut candidates: Vec<(u8, MsgLoc)> = Vec::new();
        if self.config.fifo {
            for (loc, _) in &self.ready_groups {
                if candidates.len() >= max {
                    break;
                }
                if self.fifo_front_visible(*loc, now) {
                    candidates.push((0, *loc));
                }
            }
            for (t, loc) in self.in_flight.iter().take(VIRTUAL_SCAN) {
                if *t > now {
                    break;
                }
                candidates.push((0, *loc));
            }
        } else {
            for (p, lane) in self.lanes.iter().enumerate() {
                candidates.extend(lane.msgs.iter().take(max).map(|&loc| (p as u8 + 1, loc)));
            }
            candidates.extend(self.retry.iter().take(max).copied());
            for (t, loc) in self
                .in_flight
                .iter()
                .take(VIRTUAL_SCAN)
                .chain(self.delayed.iter().take(VIRTUAL_SCAN))
            {
                if *t <= now
                    && let Some(m) = self.meta.get(loc)
                {
                    candidates.push((m.priority, *loc));
                }
            }
        }
        candidates.sort();
        candidates.dedup();
        candidates
            .into_iter()
            .take(max)
            .filter_map(|(_, loc)| self.look(loc, now))
            .map(|mut p| {
                p.state = MessageState::Visible;
                p.visible_at_ms = None;
                p
            })
            .collect()
    }

    /// A message of this queue by place, with its state as of `now`.
    pub fn look(&self, loc: MsgLoc, now: u64) -> Option<Peeked> {
        let origin = self.origins.get(&loc).copied();
        if let Some(meta) = self.meta.get(&loc) {
            let (state, visible_at_ms) = match meta.stage {
                Stage::Visible => (MessageState::Visible, None),
                Stage::Delayed { visible_at } if visible_at > now => {
                    (MessageState::Delayed, Some(visible_at))
                }
                Stage::InFlight { deadline } if deadline > now => {
                    (MessageState::InFlight, Some(deadline))
                }
                _ => (MessageState::Visible, None),
            };
            return Some(Peeked {
                loc,
                state,
                receive_count: meta.receive_count,
                first_received_ms: meta.first_received_ms,
                visible_at_ms,
                origin,
            });
        }
        self.lanes
            .iter()
            .any(|lane| lane.contains(loc))
            .then_some(Peeked {
                loc,
                state: MessageState::Visible,
                receive_count: 0,
                first_received_ms: 0,
                visible_at_ms: None,
                origin,
            })
    }

    /// Places of messages that may have been sent within `[since, until]` (lane messages'
    /// times are known to the second), oldest first, at most `max`.
    pub fn sent_between(&self, since: u64, until: u64, max: usize) -> Vec<MsgLoc> {
        let mut out: Vec<MsgLoc> = Vec::new();
        for lane in &self.lanes {
            out.extend(lane.sent_between(since, until).take(max));
        }
        out.extend(
            self.meta
                .iter()
                .filter(|(_, m)| m.sent_ms >= since && m.sent_ms <= until)
                .map(|(loc, _)| *loc),
        );
        out.sort();
        out.truncate(max);
        out
    }
}
