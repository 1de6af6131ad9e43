//! The broker: starts the shards with their partitions, listens on every shard, runs retention,
//! and shuts down cleanly on SIGTERM/SIGINT.

pub mod config_ops;
pub mod context;
pub mod decompress;
pub mod dynamic_config;
pub mod group_placement;
pub mod group_runtime;
pub mod leader_replication;
mod lifecycle;
mod log_dir;
pub mod log_dirs;
pub mod metadata_cache;
pub mod partition;
pub mod placement;
pub mod producer_ids;
pub mod producer_state;
pub mod recompress;
pub mod shard;
pub mod topic_config;
pub mod topics;

pub use lifecycle::{run, stop_running_broker, BrokerError};
