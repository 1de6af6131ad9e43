//! Which shard owns a partition. Every shard computes the same answer from the name alone, so
//! no table needs to be shared: a request for a partition goes straight to its owner.

use strom_engine::runtime::ShardId;

/// The shard that owns `topic`-`partition` among `shard_count` shards. Stable across restarts
/// with the same shard count (partition directories do not depend on it, so changing the count
/// only moves ownership).
pub fn owner_shard(topic: &str, partition: i32, shard_count: usize) -> ShardId {
    owner_from_hash(topic_placement_hash(topic), partition, shard_count)
}

/// The topic's part of the placement (a hash of its name), which the metadata cache computes
/// once per topic instead of once per request.
pub fn topic_placement_hash(topic: &str) -> usize {
    crc32c::crc32c(topic.as_bytes()) as usize
}

/// [`owner_shard`] from a precomputed [`topic_placement_hash`].
pub fn owner_from_hash(topic_hash: usize, partition: i32, shard_count: usize) -> ShardId {
    assert!(shard_count > 0, "a broker has at least one shard");
    // Spread consecutive partitions of one topic round-robin, offset by a hash of the topic so
    // many single-partition topics also spread.
    (topic_hash.wrapping_add(usize::try_from(partition).unwrap_or(0))) % shard_count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_a_topic_spread_over_shards() {
        let owners: Vec<ShardId> = (0..8)
            .map(|partition| owner_shard("orders", partition, 4))
            .collect();
        for shard in 0..4 {
            assert_eq!(
                owners.iter().filter(|&&owner| owner == shard).count(),
                2,
                "{owners:?}"
            );
        }
        assert_eq!(owner_shard("orders", 3, 4), owner_shard("orders", 3, 4));
        assert_eq!(owner_shard("x", 0, 1), 0);
    }
}
