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
//! - one-shot data and child watches ([`WatchEvent`]) and persistent recursive
//!   watches ([`TreeWatch`]);
//! - all-or-nothing transactions ([`CoordinationStore::multi`]).
//!
//! Share it as `Arc<CoordinationStore>`; it serializes operations with an
//! internal mutex (control plane, not the data path).
//!
//! [`Coordination`] is the async client over either this store or a real
//! ZooKeeper ensemble, with the same behaviour and error kinds; code that
//! must work in a cluster uses it rather than the store.

mod client;
mod connect_string;
mod embedded;
mod error;
pub(crate) mod node;
mod path;
pub(crate) mod snapshot;
mod store;
mod tree_watch;
mod watch;
mod zookeeper;

pub use client::{Coordination, MultiOp, NodeKind, SessionEvent, SessionWatch, ZooKeeperSettings};
pub use connect_string::{parse as parse_connect_string, ConnectString, ZOOKEEPER_DEFAULT_PORT};
pub use error::CoordinationError;
pub use node::{CreateMode, SessionId, Stat};
pub use path::{PATH_MAX_BYTES, ROOT};
pub use snapshot::SNAPSHOT_FILE_NAME;
pub use store::{CoordinationStore, StoreLimits, TxnOp, TxnResult};
pub use tree_watch::{TreeEvent, TreeEventKind, TreeWatch, TREE_WATCH_MAX_QUEUED_EVENTS};
pub use watch::{WatchEvent, WatchEventKind, WatchReceiver};
