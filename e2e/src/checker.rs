//! A checker of queue guarantees, fed by a workload as it runs: every acknowledged send
//! is received with its exact body, and no message whose ack was answered is delivered
//! again. Every operation takes a ticket from one clock, so "after" means after in real
//! time, as the client saw it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
struct Book {
    /// Bodies of sends that may have been stored (answered or not).
    attempted: HashSet<Vec<u8>>,
    /// Sends answered 2xx: id → body.
    acknowledged: HashMap<String, Vec<u8>>,
    /// id → how many times it was received.
    received: HashMap<String, u64>,
    /// id → the clock when its ack was answered 2xx.
    acked: HashMap<String, u64>,
    /// FIFO: per group, the order sends were acknowledged in, and the ids received in
    /// the order they were received. Judged in the verdict: a consumer may receive a
    /// message before its sender has recorded the send's answer.
    group_order: HashMap<String, Vec<String>>,
    group_received: HashMap<String, Vec<String>>,
    violations: Vec<String>,
}

/// Records operations and judges them. Share it by reference between tasks.
#[derive(Default)]
pub struct Checker {
    clock: AtomicU64,
    book: Mutex<Book>,
}

/// What the checker found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub sends_acknowledged: u64,
    pub acks_acknowledged: u64,
    pub received: u64,
    /// Acknowledged sends never received.
    pub lost: u64,
    /// Receives of a message after its ack was answered.
    pub redelivered_after_ack: u64,
    /// Receives beyond the first of messages not (yet) acknowledged: allowed.
    pub repeats: u64,
    pub violations: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| sends acknowledged | acks acknowledged | received | lost | redelivered after ack | repeats |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|")?;
        writeln!(
            f,
            "| {} | {} | {} | {} | {} | {} |",
            self.sends_acknowledged,
            self.acks_acknowledged,
            self.received,
            self.lost,
            self.redelivered_after_ack,
            self.repeats
        )?;
        for v in self.violations.iter().take(20) {
            writeln!(f, "violation: {v}")?;
        }
        if self.violations.len() > 20 {
            writeln!(f, "... and {} more", self.violations.len() - 20)?;
        }
        Ok(())
    }
}

impl Checker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A ticket from the checker's clock: take one before starting a receive.
    pub fn now(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Before sending: the body may be stored from now on.
    pub fn sending(&self, body: &[u8]) {
        self.book().attempted.insert(body.to_vec());
    }

    /// A send was answered 2xx with this id.
    pub fn sent(&self, id: &str, body: &[u8], group: Option<&str>) {
        let mut book = self.book();
        if let Some(previous) = book.acknowledged.insert(id.to_string(), body.to_vec())
            && previous != body
        {
            book.violations
                .push(format!("id {id} answered for two different bodies"));
        }
        if let Some(group) = group {
            book.group_order
                .entry(group.to_string())
                .or_default()
                .push(id.to_string());
        }
    }

    /// A receive that started at `started` (a ticket) returned this message.
    pub fn received(&self, started: u64, id: &str, body: &[u8], group: Option<&str>) {
        let mut book = self.book();
        *book.received.entry(id.to_string()).or_default() += 1;
        match book.acknowledged.get(id) {
            Some(sent) if sent != body => {
                book.violations.push(format!(
                    "id {id} received with a body other than the one sent"
                ));
            }
            None if !book.attempted.contains(body) => {
                book.violations
                    .push(format!("id {id} received with a body never sent"));
            }
            _ => {}
        }
        if let Some(&acked_at) = book.acked.get(id)
            && acked_at < started
        {
            book.violations.push(format!(
                "id {id} delivered again after its ack was answered"
            ));
        }
        if let Some(group) = group {
            book.group_received
                .entry(group.to_string())
                .or_default()
                .push(id.to_string());
        }
    }

    /// An ack of this id was answered 2xx.
    pub fn acked(&self, id: &str) {
        let at = self.now();
        self.book().acked.entry(id.to_string()).or_insert(at);
    }

    /// The verdict, once the queue has been drained.
    pub fn verdict(&self) -> Verdict {
        let book = self.book();
        let mut v = Verdict {
            sends_acknowledged: book.acknowledged.len() as u64,
            acks_acknowledged: book.acked.len() as u64,
            received: book.received.values().sum(),
            violations: book.violations.clone(),
            ..Verdict::default()
        };
        for (group, received) in &book.group_received {
            v.violations.extend(order_violations(
                group,
                book.group_order.get(group).map_or(&[][..], Vec::as_slice),
                received,
            ));
        }
        for id in book.acknowledged.keys() {
            if !book.received.contains_key(id) {
                v.lost += 1;
                if v.lost <= 20 {
                    v.violations
                        .push(format!("acknowledged send {id} never received"));
                }
            }
        }
        v.redelivered_after_ack = book
            .violations
            .iter()
            .filter(|m| m.contains("after its ack"))
            .count() as u64;
        v.repeats = book
            .received
            .values()
            .map(|n| n.saturating_sub(1))
            .sum::<u64>()
            - v.redelivered_after_ack.min(v.received);
        v
    }
}

/// FIFO within `group`: `received` (ids, in the order received) never skips ahead of an
/// acknowledged send (`acknowledged`, in the order answered) not received yet. Redelivery
/// of the same or an earlier message is allowed (at least once); ids never acknowledged
/// are left out.
fn order_violations(group: &str, acknowledged: &[String], received: &[String]) -> Vec<String> {
    let position: HashMap<&str, usize> = acknowledged
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut violations = Vec::new();
    let mut seen: Option<usize> = None;
    for pos in received
        .iter()
        .filter_map(|id| position.get(id.as_str()).copied())
    {
        match seen {
            None if pos > 0 => violations.push(format!(
                "group {group}: first delivery is message {pos}, not 0"
            )),
            Some(seen) if pos > seen + 1 => violations.push(format!(
                "group {group}: message {pos} delivered after {seen}, skipping {}",
                pos - seen - 1
            )),
            _ => {}
        }
        seen = Some(seen.map_or(pos, |s| s.max(pos)));
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_history_passes() {
        let c = Checker::new();
        c.sending(b"a");
        c.sent("1", b"a", None);
        let t = c.now();
        c.received(t, "1", b"a", None);
        c.acked("1");
        let v = c.verdict();
        assert!(v.ok(), "{v}");
        assert_eq!((v.sends_acknowledged, v.received, v.lost), (1, 1, 0));
    }

    #[test]
    fn it_catches_loss_redelivery_after_ack_wrong_bodies_and_order() {
        let c = Checker::new();
        for (id, body) in [("1", "a"), ("2", "b"), ("3", "c")] {
            c.sending(body.as_bytes());
            c.sent(id, body.as_bytes(), Some("g"));
        }
        let t = c.now();
        c.received(t, "1", b"a", Some("g"));
        c.acked("1");
        let later = c.now();
        c.received(later, "1", b"a", Some("g"));
        c.received(later, "3", b"x", Some("g"));
        let v = c.verdict();
        assert!(!v.ok());
        assert_eq!(v.lost, 1, "{v}");
        assert_eq!(v.redelivered_after_ack, 1, "{v}");
        assert!(v.violations.iter().any(|m| m.contains("other than")), "{v}");
        assert!(v.violations.iter().any(|m| m.contains("skipping")), "{v}");
    }

    #[test]
    fn a_message_received_before_its_send_was_recorded_keeps_its_place() {
        let c = Checker::new();
        c.sending(b"a");
        c.sending(b"b");
        // The consumer gets the first message before its sender records the answer.
        let t = c.now();
        c.received(t, "1", b"a", Some("g"));
        c.sent("1", b"a", Some("g"));
        c.acked("1");
        c.sent("2", b"b", Some("g"));
        c.received(c.now(), "2", b"b", Some("g"));
        c.acked("2");
        let v = c.verdict();
        assert!(v.ok(), "{v}");
    }

    #[test]
    fn a_first_delivery_out_of_order_is_caught() {
        let c = Checker::new();
        for (id, body) in [("1", "a"), ("2", "b")] {
            c.sending(body.as_bytes());
            c.sent(id, body.as_bytes(), Some("g"));
        }
        c.received(c.now(), "2", b"b", Some("g"));
        c.received(c.now(), "1", b"a", Some("g"));
        let v = c.verdict();
        assert!(
            v.violations.iter().any(|m| m.contains("first delivery")),
            "{v}"
        );
    }
}
