//! Member ids: `clientId-UUID` (or `groupInstanceId-UUID` for static
//! members), as Kafka makes them, from a seeded generator so tests can
//! predict them. The runtime seeds it from real randomness (one seed per
//! coordinator load), so ids from different loads do not collide.

use uuid::Builder;

/// SplitMix64: tiny, fast, and every seed gives a full-period sequence.
#[derive(Debug, Clone)]
pub(crate) struct MemberIdGenerator {
    state: u64,
}

impl MemberIdGenerator {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `prefix-UUID` with a version-4 style UUID.
    pub(crate) fn member_id(&mut self, prefix: &str) -> String {
        let high = self.next_u64().to_be_bytes();
        let low = self.next_u64().to_be_bytes();
        let mut random = [0u8; 16];
        random[..8].copy_from_slice(&high);
        random[8..].copy_from_slice(&low);
        let uuid = Builder::from_random_bytes(random).into_uuid();
        format!("{prefix}-{uuid}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ids_and_ids_differ() {
        let mut a = MemberIdGenerator::new(7);
        let mut b = MemberIdGenerator::new(7);
        let first = a.member_id("client");
        assert_eq!(first, b.member_id("client"));
        assert!(first.starts_with("client-"));
        assert_eq!(first.len(), "client-".len() + 36);
        assert_ne!(first, a.member_id("client"));
        assert_ne!(first, MemberIdGenerator::new(8).member_id("client"));
    }
}
