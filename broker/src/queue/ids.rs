//! Where a message lives, and the opaque ids and receipts handed to clients.
//!
//! A message is identified by its place in its group's log: the index of the entry that
//! carried it and its slot in that entry. That place is also its age (older messages have
//! smaller places), so ordered sets of places are queues. Message ids and receipts encode
//! places, so a look-up needs no index.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// A message's place in the log: `entry index << 16 | slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MsgLoc(u64);

/// Slots per entry, so the most messages one command can carry.
pub const SLOTS_PER_ENTRY: usize = 1 << 16;

impl MsgLoc {
    pub const MIN: MsgLoc = MsgLoc(0);
    pub const MAX: MsgLoc = MsgLoc(u64::MAX);

    pub fn new(index: u64, slot: usize) -> Self {
        debug_assert!(slot < SLOTS_PER_ENTRY);
        debug_assert!(index < 1 << 48);
        MsgLoc(index << 16 | slot as u64)
    }

    /// The packed form, for compact encodings.
    pub fn raw(self) -> u64 {
        self.0
    }

    pub fn from_raw(raw: u64) -> Self {
        MsgLoc(raw)
    }

    /// The log index of the entry that carried the message.
    pub fn index(self) -> u64 {
        self.0 >> 16
    }

    /// The message's position within that entry.
    pub fn slot(self) -> usize {
        (self.0 & 0xffff) as usize
    }
}

/// The id of a message: its group and place, as 28 hex digits.
pub fn message_id(group: u32, loc: MsgLoc) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 28];
    let mut put = |at: usize, value: u64, digits: usize| {
        for i in 0..digits {
            out[at + i] = HEX[((value >> (4 * (digits - 1 - i))) & 0xf) as usize];
        }
    };
    put(0, group as u64, 8);
    put(8, loc.index(), 16);
    put(24, loc.slot() as u64, 4);
    String::from_utf8(out.to_vec()).expect("hex digits are ASCII")
}

/// Reads a message id back into its group and place.
pub fn parse_message_id(id: &str) -> Option<(u32, MsgLoc)> {
    if id.len() != 28 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let group = u32::from_str_radix(&id[..8], 16).ok()?;
    let index = u64::from_str_radix(&id[8..24], 16).ok()?;
    let slot = usize::from_str_radix(&id[24..], 16).ok()?;
    if index >= 1 << 48 {
        return None;
    }
    Some((group, MsgLoc::new(index, slot)))
}

/// What a receipt proves: one delivery of one message of one queue incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The queue's id; a queue deleted and created again gets a new one.
    pub queue_id: u64,
    pub loc: MsgLoc,
    /// Bumped on every delivery and visibility change, so older receipts go stale.
    pub seq: u32,
}

const RECEIPT_VERSION: u8 = 1;
const RECEIPT_LEN: usize = 1 + 8 + 8 + 4;

impl Receipt {
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; RECEIPT_LEN];
        bytes[0] = RECEIPT_VERSION;
        bytes[1..9].copy_from_slice(&self.queue_id.to_be_bytes());
        bytes[9..17].copy_from_slice(&self.loc.0.to_be_bytes());
        bytes[17..21].copy_from_slice(&self.seq.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(text: &str) -> Option<Receipt> {
        if text.len() > 64 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() != RECEIPT_LEN || bytes[0] != RECEIPT_VERSION {
            return None;
        }
        Some(Receipt {
            queue_id: u64::from_be_bytes(bytes[1..9].try_into().ok()?),
            loc: MsgLoc(u64::from_be_bytes(bytes[9..17].try_into().ok()?)),
            seq: u32::from_be_bytes(bytes[17..21].try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_receipts_round_trip() {
        let loc = MsgLoc::new(123_456_789, 31);
        assert_eq!(loc.index(), 123_456_789);
        assert_eq!(loc.slot(), 31);
        let id = message_id(7, loc);
        assert_eq!(id, format!("{:08x}{:016x}{:04x}", 7, 123_456_789, 31));
        assert_eq!(parse_message_id(&id), Some((7, loc)));
        assert_eq!(parse_message_id("zz"), None);
        assert_eq!(parse_message_id(&"g".repeat(28)), None);

        let receipt = Receipt {
            queue_id: 42,
            loc,
            seq: 3,
        };
        assert_eq!(Receipt::decode(&receipt.encode()), Some(receipt));
        assert_eq!(Receipt::decode("not-a-receipt"), None);
        assert_eq!(Receipt::decode(""), None);
    }

    #[test]
    fn places_order_by_age() {
        assert!(MsgLoc::new(5, 9) < MsgLoc::new(6, 0));
        assert!(MsgLoc::new(5, 1) < MsgLoc::new(5, 2));
    }
}
