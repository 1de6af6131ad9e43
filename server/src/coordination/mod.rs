//! The embedded coordination store: ZooKeeper's data model inside the broker.
//!
//! Strom keeps cluster metadata (topics, partition counts, configs) as nodes
//! at paths like `/brokers/topics/foo`, exactly as Kafka did in ZooKeeper, so
//! a real ZooKeeper backend can replace this store when Strom runs as a
//! cluster without changing how the broker lays out its metadata.
//!
//! The model:
//! - nodes with versioned data ([`Stat::version`] for compare-and-set);
//! - [`CreateMode::Persistent`] nodes survive restarts (the whole set is rewritten
//!   atomically to [`SNAPSHOT_FILE_NAME`] on each change); [`CreateMode::Ephemeral`] nodes belong to a
//!   session and vanish when it closes (or the process stops);
//! - one-shot data and child watches ([`WatchEvent`]).
//!
//! Share it as `Arc<CoordinationStore>`; it serializes operations with an
//! internal mutex (control plane, not the data path).

mod error;
mod node;
mod path;
mod snapshot;
mod store;
mod watch;

pub use error::CoordinationError;
pub use node::{CreateMode, SessionId, Stat};
pub use path::{PATH_MAX_BYTES, ROOT};
pub use snapshot::SNAPSHOT_FILE_NAME;
pub use store::{CoordinationStore, StoreLimits};
pub use watch::{WatchEvent, WatchEventKind, WatchReceiver};
