//! Replication logic, pure: what a partition's leader decides about its
//! followers (the ISR and the high watermark) and how a follower finds the
//! point where its log stops agreeing with the leader's.
//!
//! No I/O and no clock reads: the runtime passes the time (`now_ms`, ms since
//! the Unix epoch) and the log positions it read, and carries out what comes
//! back (writes the partition-state znode, sets the high watermark, truncates
//! the log). The rules follow Kafka's `kafka.cluster.Partition` (ZooKeeper
//! era, with KIP-497's "maximal ISR") and `AbstractFetcherThread` (KIP-101,
//! KIP-279, KIP-320); where Strom differs, the item says why.
//!
//! - [`leader`]: [`LeaderState`], one per partition this broker leads.
//! - [`truncation`]: the follower's truncation decision and the leader's
//!   diverging-epoch check on a replica fetch.
//!
//! And the wire, which does the I/O:
//! - [`leader_connection`]: a follower's Kafka client connection to a leader broker.
//! - [`fetcher`]: one fetcher task per (leader broker, local shard), fetching every partition of
//!   that shard that follows that leader (Fetch as a replica, OffsetForLeaderEpoch truncation).

pub mod fetcher;
pub mod leader;
pub mod leader_connection;
pub mod truncation;

#[cfg(test)]
mod leader_model_tests;
#[cfg(test)]
mod leader_tests;
#[cfg(test)]
mod truncation_model_tests;
#[cfg(test)]
mod truncation_tests;

pub use leader::{
    AcksAllProgress, FollowerFetchError, InvalidLeaderState, IsrWriteFailed, LeaderAction,
    LeaderConfig, LeaderStart, LeaderState, NotEnoughReplicas,
};
pub use truncation::{
    diverging_epoch, end_offset_for_epoch, epoch_to_ask, truncation_point, EpochEndOffset,
    FetchedEpochUnknown, TruncationDecision,
};

/// Kafka's `UNDEFINED_EPOCH`: no leader epoch (also "absent" in requests).
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no end offset.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;
