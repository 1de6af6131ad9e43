//! Which `__consumer_offsets` partition coordinates a group: Kafka's rule,
//! `abs(groupId.hashCode()) % offsets.topic.num.partitions`, with Java's `String.hashCode`, so a
//! group maps to the same partition as in Kafka. The coordinator is that partition's leader.

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode`: `s[0]*31^(n-1) + … + s[n-1]` over UTF-16 code units, wrapping.
pub fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition for `group_id`.
pub fn offsets_partition_for(group_id: &str, partition_count: i32) -> i32 {
    assert!(
        partition_count > 0,
        "offsets.topic.num.partitions must be positive"
    );
    let hash = java_string_hash(group_id);
    // Kafka's Utils.abs: MIN_VALUE maps to 0.
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partition_count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_java_string_hash_code() {
        // Values computed with Java's "…".hashCode().
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(offsets_partition_for("my-group", 50), 12);
        assert_eq!(offsets_partition_for("hello", 50), 22);
    }
}
