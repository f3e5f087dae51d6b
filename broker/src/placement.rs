//! Where queues and topics live. Group 0 is the metadata group (members, drained nodes);
//! with `--data-groups N` (N > 0) every queue and topic lives wholly in one of the data
//! groups 1..=N, chosen by a fixed hash of its placement key, so every node computes the
//! same place without asking anyone. With N = 0 everything lives in group 0.
//!
//! The placement key is the name without a trailing `.fifo` and then without a trailing
//! dead-letter suffix (`-dlq`, `_dlq`, `-deadletter`, `_deadletter`), so `orders`,
//! `orders.fifo`, `orders-dlq` and the topic `orders` share a group: the usual fan-out
//! and dead-letter pairs move messages inside one log entry's apply. Pairs that land in
//! different groups move them through the source group's outbox (see `queue::outbox`).
//!
//! The hash is 64-bit FNV-1a over the key's UTF-8 bytes, modulo N, plus one. It must never
//! change: data on disk is where it says.

use serde::{Deserialize, Serialize};

/// The layout of a cluster's groups, and which one a replica belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Data groups (0: everything in group 0).
    pub data_groups: u32,
}

/// Voters of each data group: three, on distinct nodes (every node when fewer exist).
pub const DATA_GROUP_VOTERS: usize = 3;

/// The voters of data group `group` among the cluster's voters `nodes`: the
/// [`DATA_GROUP_VOTERS`] with the highest rendezvous score FNV-1a(`"{group}:{node}"`), so
/// a node joining or leaving moves few groups' voters. In ascending id order.
pub fn group_voters(group: u32, nodes: &[u64]) -> Vec<u64> {
    let mut scored: Vec<(u64, u64)> = nodes
        .iter()
        .map(|node| (fnv1a64(format!("{group}:{node}").as_bytes()), *node))
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    let mut voters: Vec<u64> = scored
        .into_iter()
        .take(DATA_GROUP_VOTERS)
        .map(|(_, node)| node)
        .collect();
    voters.sort_unstable();
    voters
}

/// 64-bit FNV-1a: fixed by its definition, unlike `DefaultHasher`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The part of a name that decides its group.
pub fn placement_key(name: &str) -> &str {
    let name = name.strip_suffix(".fifo").unwrap_or(name);
    ["-dlq", "_dlq", "-deadletter", "_deadletter"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix).filter(|k| !k.is_empty()))
        .unwrap_or(name)
}

impl Placement {
    pub fn new(data_groups: u32) -> Self {
        Self { data_groups }
    }

    /// The group a queue or topic of this name lives in.
    pub fn group_of(&self, name: &str) -> u32 {
        if self.data_groups == 0 {
            return 0;
        }
        1 + (fnv1a64(placement_key(name).as_bytes()) % u64::from(self.data_groups)) as u32
    }

    /// Every group, the metadata group first.
    pub fn groups(&self) -> std::ops::RangeInclusive<u32> {
        0..=self.data_groups
    }

    /// The groups that hold queues and topics.
    pub fn data_groups(&self) -> std::ops::RangeInclusive<u32> {
        if self.data_groups == 0 {
            0..=0
        } else {
            1..=self.data_groups
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_its_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn dead_letter_and_fifo_names_share_their_queue_group() {
        let p = Placement::new(7);
        for name in ["orders-dlq", "orders_dlq", "orders.fifo", "orders-dlq.fifo"] {
            assert_eq!(p.group_of(name), p.group_of("orders"), "{name}");
        }
        assert_eq!(placement_key("-dlq"), "-dlq");
        assert!((1..=7).contains(&p.group_of("anything")));
    }

    #[test]
    fn each_group_has_three_voters_and_a_new_node_moves_few() {
        let three = [1, 2, 3];
        assert_eq!(group_voters(1, &three), vec![1, 2, 3]);
        assert_eq!(group_voters(1, &[7]), vec![7]);
        let five = [1, 2, 3, 4, 5];
        let mut load = [0usize; 6];
        for g in 1..=30 {
            let voters = group_voters(g, &five);
            assert_eq!(voters.len(), 3);
            for v in &voters {
                load[*v as usize] += 1;
            }
            // A sixth node takes at most one voter place of a group.
            let six = group_voters(g, &[1, 2, 3, 4, 5, 6]);
            assert!(six.iter().filter(|v| !voters.contains(v)).count() <= 1);
        }
        assert!(
            load[1..].iter().all(|n| *n >= 10),
            "voters spread: {load:?}"
        );
    }

    #[test]
    fn names_spread_over_every_data_group() {
        let p = Placement::new(3);
        let mut seen = [0u32; 4];
        for i in 0..300 {
            seen[p.group_of(&format!("queue-{i}")) as usize] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1..].iter().all(|n| *n > 60), "{seen:?}");
        assert_eq!(Placement::new(0).group_of("q"), 0);
    }
}
