//! A message as it is written to the log: the body and everything sent with it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One message of a send command. Times are resolved to milliseconds by the node that
/// proposes the command, so every replica reads the same values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMessage {
    pub body: Bytes,
    /// The body was sent as UTF-8 text (`body`), not as bytes (`bodyBase64`).
    pub text: bool,
    /// Hidden until this instant (ms since the epoch); `None` takes the queue's delay.
    pub visible_at_ms: Option<u64>,
    /// 1 (highest) to 16.
    pub priority: u8,
    pub group: Option<String>,
    pub dedup: Option<String>,
    pub key: Option<String>,
    /// Published messages: what subscriptions filter on by tag.
    pub tag: Option<String>,
    pub attributes: Vec<(String, String)>,
}

impl NewMessage {
    /// The size counted against `maxMessageBytes`: body, attribute names and values, as SQS
    /// counts it.
    pub fn size(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}
