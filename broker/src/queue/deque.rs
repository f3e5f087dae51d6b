//! A double-ended queue in fixed-size blocks: it grows without copying what it holds and
//! without the doubling slack of a `VecDeque`, which for queues of millions of messages
//! was the difference between a steady memory footprint and a spike at every growth.

use std::collections::VecDeque;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const BLOCK: usize = 4096;

/// A FIFO of `Copy` values, in blocks of `BLOCK`.
#[derive(Debug, Clone)]
pub struct BlockDeque<T> {
    blocks: VecDeque<Vec<T>>,
    /// Values already popped from the front block.
    head: usize,
    len: usize,
}

impl<T: Copy + PartialEq> PartialEq for BlockDeque<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Copy + Eq> Eq for BlockDeque<T> {}

impl<T: Copy> Default for BlockDeque<T> {
    fn default() -> Self {
        Self {
            blocks: VecDeque::new(),
            head: 0,
            len: 0,
        }
    }
}

impl<T: Copy> BlockDeque<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, value: T) {
        match self.blocks.back_mut() {
            Some(block) if block.len() < BLOCK => block.push(value),
            _ => {
                let mut block = Vec::with_capacity(BLOCK);
                block.push(value);
                self.blocks.push_back(block);
            }
        }
        self.len += 1;
    }

    /// The value `i` places from the front.
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        // Every block but the first is full; the first starts at `head`.
        let at = self.head + i;
        self.blocks.get(at / BLOCK).and_then(|b| b.get(at % BLOCK))
    }

    pub fn front(&self) -> Option<&T> {
        self.blocks.front().and_then(|b| b.get(self.head))
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let block = self.blocks.front()?;
        let value = *block.get(self.head)?;
        self.head += 1;
        self.len -= 1;
        if self.head == block.len() {
            self.blocks.pop_front();
            self.head = 0;
        }
        Some(value)
    }

    pub fn clear(&mut self) {
        self.blocks.clear();
        self.head = 0;
        self.len = 0;
    }

    /// Values front to back.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.blocks
            .iter()
            .enumerate()
            .flat_map(move |(i, b)| b[if i == 0 { self.head } else { 0 }..].iter())
    }

    /// True when a value with `key` is present, the deque being sorted by `key`.
    pub fn contains_sorted<K: Ord>(&self, key: &K, key_of: impl Fn(&T) -> K) -> bool {
        // The last block whose first live value is <= key holds it, if anything does.
        let first_of = |i: usize| {
            let start = if i == 0 { self.head } else { 0 };
            key_of(&self.blocks[i][start])
        };
        let n = self.blocks.len();
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if first_of(mid) <= *key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return false;
        }
        let i = lo - 1;
        let start = if i == 0 { self.head } else { 0 };
        self.blocks[i][start..]
            .binary_search_by(|v| key_of(v).cmp(key))
            .is_ok()
    }
}

impl<T: Copy + Serialize> Serialize for BlockDeque<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for v in self.iter() {
            seq.serialize_element(v)?;
        }
        seq.end()
    }
}

impl<'de, T: Copy + Deserialize<'de>> Deserialize<'de> for BlockDeque<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values = Vec::<T>::deserialize(deserializer)?;
        let mut deque = BlockDeque::default();
        for v in values {
            deque.push_back(v);
        }
        Ok(deque)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_fifo_across_blocks() {
        let mut d = BlockDeque::default();
        for i in 0..10_000u64 {
            d.push_back(i);
        }
        assert_eq!(d.len(), 10_000);
        for i in 0..5_000u64 {
            assert_eq!(d.pop_front(), Some(i));
        }
        assert_eq!(d.front(), Some(&5_000));
        assert_eq!(d.get(0), Some(&5_000));
        assert_eq!(d.get(4_999), Some(&9_999));
        assert_eq!(d.get(5_000), None);
        assert!(d.contains_sorted(&9_999, |v| *v));
        assert!(d.contains_sorted(&5_000, |v| *v));
        assert!(!d.contains_sorted(&4_999, |v| *v));
        assert_eq!(
            d.iter().copied().sum::<u64>(),
            (5_000..10_000u64).sum::<u64>()
        );
        let encoded = postcard::to_allocvec(&d).expect("encode");
        let back: BlockDeque<u64> = postcard::from_bytes(&encoded).expect("decode");
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            d.iter().collect::<Vec<_>>()
        );
        while d.pop_front().is_some() {}
        assert!(d.is_empty());
        assert_eq!(d.front(), None);
    }
}
