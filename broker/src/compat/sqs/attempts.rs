//! `ReceiveRequestAttemptId`: a FIFO receive retried with the same attempt id (after a
//! lost answer) gets the same messages and receipt handles back instead of new ones,
//! which FIFO order would otherwise hold back until their visibility ran out. Kept in
//! the memory of the node that answers (the leader) for five minutes, as SQS keeps
//! them; a leader change forgets them, and the retry is then an ordinary receive.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long an attempt's answer is kept.
const KEEP: Duration = Duration::from_secs(300);
/// Attempts kept at most; the oldest are dropped first when more come.
const MAX_KEPT: usize = 10_000;

#[derive(Default)]
pub struct ReceiveAttempts {
    answers: Mutex<HashMap<(String, String), (Instant, Value)>>,
}

impl ReceiveAttempts {
    /// The answer given to this attempt, if it is recent.
    pub fn get(&self, queue: &str, attempt: &str) -> Option<Value> {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers
            .get(&(queue.to_string(), attempt.to_string()))
            .filter(|(at, _)| at.elapsed() < KEEP)
            .map(|(_, answer)| answer.clone())
    }

    /// Remembers the answer given to an attempt.
    pub fn put(&self, queue: &str, attempt: &str, answer: Value) {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers.retain(|_, (at, _)| at.elapsed() < KEEP);
        if answers.len() >= MAX_KEPT
            && let Some(oldest) = answers
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
        {
            answers.remove(&oldest);
        }
        answers.insert(
            (queue.to_string(), attempt.to_string()),
            (Instant::now(), answer),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_gets_its_own_answer_back_per_queue() {
        let attempts = ReceiveAttempts::default();
        attempts.put("q", "a1", Value::from("first"));
        assert_eq!(attempts.get("q", "a1"), Some(Value::from("first")));
        assert_eq!(attempts.get("q", "a2"), None);
        assert_eq!(attempts.get("other", "a1"), None);
    }
}
