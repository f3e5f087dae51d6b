//! Moves of messages into queues of other groups. The apply that decides a move (a
//! topic's fan-out, a dead letter, a redrive) cannot reach another group's state, so it
//! records the move here, in the source group's replicated state; the source's leader
//! ships the items to the target group's leader (`Command::Transfer`) and, once they are
//! applied there, proposes `Command::OutboxShipped`. Items carry a sequence; the target
//! keeps the highest it applied per source group, so a shipment repeated after a failure
//! or a leader change stores nothing twice. A body stays in the source's log until its
//! item is shipped.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::ids::MsgLoc;

/// One pending move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub seq: u64,
    /// The target queue (its group follows from its name).
    pub queue: String,
    /// Where the body lives in this group's log.
    pub loc: MsgLoc,
    /// A dead letter's source queue, for a later redrive.
    pub origin: Option<String>,
    /// Placed as a send (true) or moved (false).
    pub published: bool,
}

/// Pending moves out of a group, and the moves into it already applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    next_seq: u64,
    items: VecDeque<OutboxItem>,
    /// Per source group, the highest sequence applied here.
    applied_from: BTreeMap<u32, u64>,
}

impl Outbox {
    pub fn push(&mut self, queue: &str, loc: MsgLoc, origin: Option<String>, published: bool) {
        self.next_seq += 1;
        self.items.push_back(OutboxItem {
            seq: self.next_seq,
            queue: queue.to_string(),
            loc,
            origin,
            published,
        });
    }

    /// The oldest pending items, at most `max`.
    pub fn pending(&self, max: usize) -> Vec<OutboxItem> {
        self.items.iter().take(max).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Drops the items up to `upto`, which the target groups applied.
    pub fn shipped(&mut self, upto: u64) {
        while self.items.front().is_some_and(|i| i.seq <= upto) {
            self.items.pop_front();
        }
    }

    /// The oldest log place a pending item refers to.
    pub fn oldest_loc(&self) -> Option<MsgLoc> {
        self.items.iter().map(|i| i.loc).min()
    }

    /// True the first time item `seq` from group `from` arrives; a repeat is refused.
    pub fn first_arrival(&mut self, from: u32, seq: u64) -> bool {
        let applied = self.applied_from.entry(from).or_insert(0);
        if seq <= *applied {
            return false;
        }
        *applied = seq;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_items_go_and_repeats_are_refused() {
        let mut outbox = Outbox::default();
        for i in 0..3 {
            outbox.push("q", MsgLoc::new(10 + i, 0), None, true);
        }
        assert_eq!(outbox.oldest_loc(), Some(MsgLoc::new(10, 0)));
        let pending = outbox.pending(2);
        assert_eq!(pending.iter().map(|i| i.seq).collect::<Vec<_>>(), [1, 2]);
        outbox.shipped(2);
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox.oldest_loc(), Some(MsgLoc::new(12, 0)));

        let mut target = Outbox::default();
        assert!(target.first_arrival(1, 1));
        assert!(target.first_arrival(1, 2));
        assert!(
            !target.first_arrival(1, 2),
            "a repeated shipment is skipped"
        );
        assert!(target.first_arrival(2, 1), "sequences are per source group");
    }
}
