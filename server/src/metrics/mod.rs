//! The broker's metrics: counters kept per shard on the request path ([`ShardMetrics`], plain
//! cells in the shard's own state), gathered from every shard by a message when scraped
//! ([`gather`]), summed, and encoded in the Prometheus text format ([`exposition`]). The admin
//! HTTP listener (`crate::admin_http`) serves them.
//!
//! Nothing on the produce or fetch path takes a lock or touches memory another core writes: a
//! shard's counters are written only by its thread and read only by a message run on it.
//! Counters of the control-plane thread (which is off the data path) are process-wide atomics.

pub mod exposition;
pub mod gather;
pub mod histogram;
pub mod process;
pub mod shard;
pub mod traffic;

use std::sync::atomic::{AtomicU64, Ordering};

pub use exposition::{encode, BrokerSnapshot, CONTENT_TYPE};
pub use gather::{
    gather, shard_ready, ClusterGauges, CommittedOffset, PartitionGauges, ShardSnapshot,
};
pub use shard::{count_isr_change, frame_api_key, ShardMetrics};
pub use traffic::{TopicConsumed, TrafficCounter};

/// Partition leaderships this broker's controller wrote (written by the control-plane thread).
static LEADER_ELECTIONS: AtomicU64 = AtomicU64::new(0);

/// The controller wrote `count` partition states that name a leader.
pub fn count_leader_elections(count: u64) {
    LEADER_ELECTIONS.fetch_add(count, Ordering::Relaxed);
}

pub fn leader_elections() -> u64 {
    LEADER_ELECTIONS.load(Ordering::Relaxed)
}
