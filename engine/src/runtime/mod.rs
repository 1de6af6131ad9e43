//! Thread-per-core runtime: N shards, each a thread pinned to a core running its own io_uring
//! runtime and owning its own state `S`. Work for a shard travels to it as a message
//! ([`ShardRouter::submit_to`]); shard state is never shared, so the data path takes no locks.
//!
//! Every mailbox is bounded ([`MAILBOX_CAPACITY`]): a sender waits when the target shard is
//! behind, which is the backpressure between cores.

mod affinity;
mod join;
mod shard;

pub use join::join_all;

pub use shard::{ShardId, ShardRouter, ShardSet, ShardSetConfig, MAILBOX_CAPACITY};
