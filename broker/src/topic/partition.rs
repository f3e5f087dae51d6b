//! A topic's partitions. Partition 0 is the topic itself, in the group its name places it
//! in; partition p > 0 is kept as a topic named `{topic}#p` (a name no client can give:
//! `#` is not allowed), which places it by that name, so a topic's partitions spread
//! over the data groups and their leaders. Each partition holds its own timeline and
//! its own copy of the topic's settings and subscriptions, with a delivery state of its
//! own; partition 0 is where the settings and subscriptions are decided, and the copies
//! follow it (`crate::partitions`).
//!
//! A message with a `key` goes to partition FNV-1a(key) mod partitions (64-bit FNV-1a
//! over the key's UTF-8 bytes: fixed, so a key's partition never changes while the
//! count stays), so one key's messages keep their order. Messages without a key go
//! together to one partition per request, taken in turn.

use crate::placement::fnv1a64;

/// Separates a topic's name from a partition's number in the partition's stored name.
const SEPARATOR: char = '#';

/// The stored name of partition `p` of `topic`.
pub fn partition_name(topic: &str, p: u32) -> String {
    if p == 0 {
        topic.to_string()
    } else {
        format!("{topic}{SEPARATOR}{p}")
    }
}

/// The topic a stored name belongs to (itself for partition 0).
pub fn topic_of(stored: &str) -> &str {
    stored
        .split_once(SEPARATOR)
        .map_or(stored, |(topic, _)| topic)
}

/// True for the stored name of a partition other than 0, which no listing shows.
pub fn is_extra_partition(stored: &str) -> bool {
    stored.contains(SEPARATOR)
}

/// The partition a message goes to: by its key when it has one, else `unkeyed`.
pub fn partition_of(key: Option<&str>, partitions: u32, unkeyed: u32) -> u32 {
    let partitions = partitions.max(1);
    match key {
        Some(key) => (fnv1a64(key.as_bytes()) % u64::from(partitions)) as u32,
        None => unkeyed % partitions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Placement;

    #[test]
    fn partition_names_round_trip_and_stay_hidden() {
        assert_eq!(partition_name("orders", 0), "orders");
        assert_eq!(partition_name("orders", 3), "orders#3");
        assert_eq!(topic_of("orders#3"), "orders");
        assert_eq!(topic_of("orders"), "orders");
        assert!(is_extra_partition("orders#3"));
        assert!(!is_extra_partition("orders"));
        assert!(sluice_client::names::validate_name("topic", "orders#3").is_err());
    }

    #[test]
    fn a_key_always_lands_in_the_same_partition_and_keys_spread() {
        // Fixed by FNV-1a: these values must never change.
        assert_eq!(
            partition_of(Some("a"), 4, 0),
            (0xaf63_dc4c_8601_ec8c_u64 % 4) as u32
        );
        assert_eq!(partition_of(Some("user-1"), 1, 7), 0);
        assert_eq!(partition_of(None, 4, 6), 2);
        let mut seen = [0u32; 8];
        for i in 0..800 {
            seen[partition_of(Some(&format!("user-{i}")), 8, 0) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 60), "{seen:?}");
    }

    #[test]
    fn partitions_spread_over_the_data_groups() {
        let placement = Placement::new(3);
        let groups: std::collections::BTreeSet<u32> = (0..6)
            .map(|p| placement.group_of(&partition_name("events", p)))
            .collect();
        assert!(groups.len() >= 2, "{groups:?}");
    }
}
