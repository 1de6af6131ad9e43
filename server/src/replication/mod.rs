//! Replication: followers copy their leaders' logs.
//!
//! - `leader_connection`: a follower's Kafka client connection to a leader broker.
//! - `fetcher`: one fetcher task per (leader broker, local shard), fetching every partition of
//!   that shard that follows that leader (Fetch as a replica, OffsetForLeaderEpoch truncation).

pub(crate) mod engine_interim;
pub mod fetcher;
pub mod leader_connection;
