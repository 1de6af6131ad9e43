//! Nodes, their metadata ([`Stat`]), creation modes and session ids.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;

/// Identifies a session that owns ephemeral nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ZooKeeper prints session ids in hex.
        write!(formatter, "0x{:x}", self.0)
    }
}

/// How long a node lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    /// Until deleted; survives restarts.
    Persistent,
    /// Until deleted or its session closes; never written to disk.
    Ephemeral {
        /// The owning session.
        session: SessionId,
    },
}

/// A node's metadata, as ZooKeeper's `Stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Data version: 0 at creation, +1 per `set`. Used for compare-and-set.
    pub version: i32,
    /// Child list version: +1 per child created or deleted.
    pub cversion: i32,
    /// Transaction id of the create (ZooKeeper czxid).
    pub created_txid: u64,
    /// Transaction id of the last data change (ZooKeeper mzxid).
    pub modified_txid: u64,
    /// Owning session for ephemeral nodes.
    pub ephemeral_owner: Option<SessionId>,
    /// Length of the data in bytes.
    pub data_length: usize,
    /// Number of children.
    pub num_children: usize,
}

/// A node in the in-memory tree.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) data: Bytes,
    pub(crate) version: i32,
    pub(crate) cversion: i32,
    pub(crate) created_txid: u64,
    pub(crate) modified_txid: u64,
    pub(crate) ephemeral_owner: Option<SessionId>,
    /// Child names (last path segment), sorted.
    pub(crate) children: BTreeSet<String>,
}

/// Estimated bookkeeping bytes per node beyond its path and data (map entry,
/// struct, child-set entry in the parent). Counted against the store limit so
/// millions of empty nodes cannot slip under it.
pub(crate) const NODE_OVERHEAD_BYTES: usize = 128;

impl Node {
    pub(crate) fn new(data: Bytes, txid: u64, ephemeral_owner: Option<SessionId>) -> Self {
        Self {
            data,
            version: 0,
            cversion: 0,
            created_txid: txid,
            modified_txid: txid,
            ephemeral_owner,
            children: BTreeSet::new(),
        }
    }

    pub(crate) fn stat(&self) -> Stat {
        Stat {
            version: self.version,
            cversion: self.cversion,
            created_txid: self.created_txid,
            modified_txid: self.modified_txid,
            ephemeral_owner: self.ephemeral_owner,
            data_length: self.data.len(),
            num_children: self.children.len(),
        }
    }

    pub(crate) fn is_persistent(&self) -> bool {
        self.ephemeral_owner.is_none()
    }
}

/// Bytes a node at `path` with `data_bytes` of data counts against the limit.
pub(crate) fn accounted_bytes(path: &str, data_bytes: usize) -> usize {
    path.len() + data_bytes + NODE_OVERHEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_node_stat() {
        let mut node = Node::new(Bytes::from_static(b"abc"), 7, Some(SessionId(2)));
        node.children.insert("x".into());
        let stat = node.stat();
        assert_eq!((stat.version, stat.cversion), (0, 0));
        assert_eq!((stat.created_txid, stat.modified_txid), (7, 7));
        assert_eq!(stat.ephemeral_owner, Some(SessionId(2)));
        assert_eq!((stat.data_length, stat.num_children), (3, 1));
        assert!(!node.is_persistent());
        assert_eq!(SessionId(255).to_string(), "0xff");
    }
}
