//! A topic's timeline: its published messages in order, each at a sequence number that
//! never changes, so cursors stay valid while old messages expire from the front.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::queue::deque::BlockDeque;
use crate::queue::ids::MsgLoc;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// The sequence number of the first retained message.
    base: u64,
    msgs: BlockDeque<MsgLoc>,
    /// `(sequence number, publish time)`, one per second: every message from one to the
    /// next was published within a second after its time.
    times: VecDeque<(u64, u64)>,
}

impl Timeline {
    /// The sequence number the next message will get.
    pub fn next_seq(&self) -> u64 {
        self.base + self.msgs.len() as u64
    }

    /// The oldest retained sequence number.
    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn len(&self) -> u64 {
        self.msgs.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    pub fn push(&mut self, loc: MsgLoc, now: u64) -> u64 {
        let seq = self.next_seq();
        if self.times.back().is_none_or(|&(_, t)| now >= t + 1000) {
            self.times.push_back((seq, now));
        }
        self.msgs.push_back(loc);
        seq
    }

    /// The message at `seq`, while retained.
    pub fn get(&self, seq: u64) -> Option<MsgLoc> {
        let i = seq.checked_sub(self.base)?;
        self.msgs.get(i as usize).copied()
    }

    pub fn oldest_loc(&self) -> Option<MsgLoc> {
        self.msgs.front().copied()
    }

    /// The latest instant the oldest message can have been published.
    pub fn oldest_published_by(&self) -> Option<u64> {
        self.msgs.front()?;
        self.times.front().map(|&(_, t)| t + 999)
    }

    /// Drops messages past retention (within a second); returns how many.
    pub fn expire(&mut self, now: u64, retention_ms: u64) -> u64 {
        let mut dropped = 0;
        while self
            .oldest_published_by()
            .is_some_and(|t| t + retention_ms <= now)
        {
            self.msgs.pop_front();
            self.base += 1;
            dropped += 1;
            match self.msgs.front() {
                None => self.times.clear(),
                Some(_) => {
                    while self.times.len() >= 2 && self.times[1].0 <= self.base {
                        self.times.pop_front();
                    }
                }
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_survive_expiry() {
        let mut t = Timeline::default();
        for i in 0..10u64 {
            assert_eq!(t.push(MsgLoc::new(i + 1, 0), i * 1000), i);
        }
        assert_eq!(t.get(3), Some(MsgLoc::new(4, 0)));
        // Retention 5 s: at 9.5 s, what was published by 4.5 s (up to the second) goes.
        assert_eq!(t.expire(9_500, 5_000), 4);
        assert_eq!(t.base(), 4);
        assert_eq!(t.get(3), None);
        assert_eq!(t.get(4), Some(MsgLoc::new(5, 0)));
        assert_eq!(t.next_seq(), 10);
        assert_eq!(t.expire(100_000, 5_000), 6);
        assert!(t.is_empty());
        assert_eq!(t.push(MsgLoc::new(99, 0), 100_000), 10);
    }
}
