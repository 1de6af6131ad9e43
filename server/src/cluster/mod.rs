//! A cluster of brokers coordinated through ZooKeeper, Kafka 2.8 style: the
//! pure logic only. Nothing here does I/O or reads a clock.
//!
//! - [`znodes`]: the znode paths and the JSON stored in them (Kafka 2.8's
//!   layout, so Kafka's own tools can read a Strom cluster's ZooKeeper).
//! - [`assignment`]: where the replicas of a new topic or new partitions go.
//! - [`election`]: who leads a partition, one rule per occasion.
//! - [`controller`]: the controller as a state machine: events in, writes and
//!   answers out.

pub mod assignment;
pub mod controller;
pub mod election;
pub mod znodes;

/// A topic name and a partition index.
pub type TopicPartition = (String, i32);

/// The `leader` of a partition that has none (Kafka's `LeaderAndIsr.NoLeader`).
pub const NO_LEADER: i32 = -1;
