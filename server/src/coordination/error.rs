//! `CoordinationError`: ZooKeeper's error cases plus Strom's limits and
//! persistence failures.

use std::path::PathBuf;

use thiserror::Error;

use super::node::SessionId;

/// A coordination store operation that did not happen.
#[derive(Debug, Error)]
pub enum CoordinationError {
    /// The path is not absolute, has empty, `.` or `..` segments, a trailing
    /// slash, a NUL byte, or is too long.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// No node at this path (ZooKeeper NONODE).
    #[error("no node at {path}")]
    NoNode {
        /// The path.
        path: String,
    },

    /// Creating a node whose parent does not exist.
    #[error("cannot create {path}: parent {parent} does not exist")]
    NoParent {
        /// The node being created.
        path: String,
        /// Its missing parent.
        parent: String,
    },

    /// A node already exists at this path (ZooKeeper NODEEXISTS).
    #[error("node {path} already exists")]
    NodeExists {
        /// The path.
        path: String,
    },

    /// The expected version did not match (ZooKeeper BADVERSION).
    #[error("version mismatch at {path}: expected {expected}, found {}", display_actual(*.actual))]
    BadVersion {
        /// The path.
        path: String,
        /// Version the caller expected.
        expected: i32,
        /// Version the node has (`None`: ZooKeeper does not say).
        actual: Option<i32>,
    },

    /// Deleting a node that still has children (ZooKeeper NOTEMPTY).
    #[error("node {path} has children")]
    NotEmpty {
        /// The path.
        path: String,
        /// How many children it has (`None`: ZooKeeper does not say).
        children: Option<usize>,
    },

    /// Ephemeral nodes cannot have children (ZooKeeper NOCHILDRENFOREPHEMERALS).
    #[error("cannot create {path}: parent {parent} is ephemeral")]
    NoChildrenForEphemerals {
        /// The node being created.
        path: String,
        /// Its ephemeral parent.
        parent: String,
    },

    /// The root node always exists.
    #[error("the root node cannot be deleted")]
    RootNotDeletable,

    /// The session is not open.
    #[error("session {session} is not open")]
    UnknownSession {
        /// The session.
        session: SessionId,
    },

    /// One node's data exceeds the per-node limit.
    #[error("data for {path} is {data_bytes} bytes; the limit is {max_bytes}")]
    NodeTooLarge {
        /// The path.
        path: String,
        /// Size of the rejected data.
        data_bytes: usize,
        /// The per-node limit.
        max_bytes: usize,
    },

    /// The store would exceed its total size limit.
    #[error("coordination store full: {needed_bytes} bytes needed, limit {max_bytes}")]
    StoreFull {
        /// Size the store would have reached.
        needed_bytes: usize,
        /// The total limit.
        max_bytes: usize,
    },

    /// Too many open sessions.
    #[error("too many open sessions (limit {max_sessions})")]
    TooManySessions {
        /// The limit.
        max_sessions: usize,
    },

    /// Too many pending watches.
    #[error("too many pending watches (limit {max_watches})")]
    TooManyWatches {
        /// The limit.
        max_watches: usize,
    },

    /// A file operation on the store's directory failed.
    #[error("coordination store {operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// The snapshot file cannot be trusted. Never treated as an empty store.
    #[error("coordination snapshot {path} is corrupt: {reason}")]
    Corrupt {
        /// The snapshot file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },

    /// The ZooKeeper session expired: its ephemeral nodes are gone and this
    /// client can do nothing more; open a new one.
    #[error("the ZooKeeper session expired")]
    SessionExpired,

    /// The connection to ZooKeeper was lost while the operation was in
    /// flight: it may or may not have been applied. The client reconnects by
    /// itself while the session lives.
    #[error("the connection to ZooKeeper was lost")]
    ConnectionLoss,

    /// An operation did not complete in time.
    #[error("{operation} did not complete within {timeout_ms} ms")]
    Timeout {
        /// What was being done.
        operation: String,
        /// The bound that passed.
        timeout_ms: u64,
    },

    /// The client was closed ([`super::Coordination::close`]).
    #[error("the coordination client is closed")]
    Closed,

    /// `zookeeper.connect` is not `host:port[,host:port...][/chroot]`.
    #[error("invalid ZooKeeper connect string {connect:?}: {reason}")]
    InvalidConnectString {
        /// The string as given.
        connect: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Any other ZooKeeper failure (authorization, quota, protocol...).
    #[error("ZooKeeper {operation} {path}: {message}")]
    ZooKeeper {
        /// The request.
        operation: &'static str,
        /// The node it was about.
        path: String,
        /// The client library's description.
        message: String,
    },

    /// A snapshot was renamed into place but its directory could not be
    /// synced, or a thread panicked while holding the store: what is durable
    /// is unknown, so the store refuses further changes until restarted.
    #[error("coordination store failed earlier and refuses changes until restart")]
    Failed,
}

fn display_actual(actual: Option<i32>) -> String {
    match actual {
        Some(version) => version.to_string(),
        None => "another version".to_owned(),
    }
}
