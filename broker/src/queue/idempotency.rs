//! Retried sends: a send that carries an idempotency key and arrives again within the
//! window answers as the first did and stores nothing. Clients retry a send whose answer
//! they did not get (a leader failed over, a connection broke); without this, each retry
//! would store the messages again.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::ids::MsgLoc;
use super::state::SendOutcome;

/// How long a key is remembered: far longer than any client retries.
pub const WINDOW_MS: u64 = 120_000;

/// What the first send with a key did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recorded {
    /// Every message stored, at consecutive places (the common case, in 16 bytes).
    Run { first: MsgLoc, count: u32 },
    /// Anything else: each message's outcome; `None` for one refused (which a retry
    /// refuses again, for the same reason).
    Each(Vec<Option<SendOutcome>>),
}

/// The keys of one queue's recent sends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Idempotency {
    seen: HashMap<u128, Recorded>,
    order: VecDeque<(u64, u128)>,
}

impl Idempotency {
    pub fn expire(&mut self, now: u64) {
        while let Some(&(expires, key)) = self.order.front() {
            if expires > now {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&key);
        }
    }

    pub fn get(&self, key: u128) -> Option<&Recorded> {
        self.seen.get(&key)
    }

    /// Remembers what a send did: `outcomes[i]` is `None` where message `i` was refused.
    pub fn record(&mut self, now: u64, key: u128, outcomes: Vec<Option<SendOutcome>>) {
        let run = match outcomes.first() {
            Some(Some(SendOutcome::Stored(first))) => {
                let first = *first;
                outcomes
                    .iter()
                    .enumerate()
                    .all(|(i, o)| {
                        *o == Some(SendOutcome::Stored(MsgLoc::new(
                            first.index(),
                            first.slot() + i,
                        )))
                    })
                    .then_some(Recorded::Run {
                        first,
                        count: outcomes.len() as u32,
                    })
            }
            _ => None,
        };
        self.seen
            .insert(key, run.unwrap_or(Recorded::Each(outcomes)));
        self.order.push_back((now + WINDOW_MS, key));
    }

    /// The earliest instant a key expires.
    pub fn next_due(&self) -> Option<u64> {
        self.order.front().map(|(t, _)| *t)
    }
}

impl Recorded {
    /// The outcome of message `i` of the first send; `None` when it was refused.
    pub fn outcome(&self, i: usize) -> Option<SendOutcome> {
        match self {
            Recorded::Run { first, count } => ((i as u32) < *count)
                .then(|| SendOutcome::Stored(MsgLoc::new(first.index(), first.slot() + i))),
            Recorded::Each(outcomes) => outcomes.get(i).cloned().flatten(),
        }
    }
}

/// The key as the state machine keeps it: 32 hex digits (what sluice-client sends) are
/// read as they are; any other text (up to 128 characters) is hashed.
pub fn parse_key(text: &str) -> Option<u128> {
    if text.is_empty() || text.len() > 128 || text.chars().any(char::is_control) {
        return None;
    }
    if text.len() == 32
        && let Ok(v) = u128::from_str_radix(text, 16)
    {
        return Some(v);
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    Some(u128::from_be_bytes(digest[..16].try_into().ok()?))
}
