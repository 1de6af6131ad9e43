//! [`Coordination`]: one async client over two backends, the embedded
//! [`CoordinationStore`] (single broker, no ZooKeeper) and a real ZooKeeper
//! ensemble (a cluster of brokers).
//!
//! Callers see ZooKeeper's model either way: a session that owns ephemeral
//! nodes, versioned nodes, all-or-nothing `multi`, persistent recursive
//! watches. Errors are [`CoordinationError`] kinds (`NoNode`, `NodeExists`,
//! `BadVersion`, `NotEmpty`, `SessionExpired`, `ConnectionLoss`, ...), the
//! same for both backends, so callers match on them and never on a backend.
//!
//! The client is `Clone + Send + Sync` (an `Arc` inside). The ZooKeeper
//! backend runs its session task and its tree-watch tasks on the tokio
//! runtime that called [`Coordination::connect_zookeeper`] (the broker's
//! control-plane thread), so that runtime must outlive the client; calls may
//! come from any thread or runtime (no tokio context needed). The embedded backend's calls run synchronously under the store's
//! mutex (and write the snapshot for persistent changes), as the store did
//! before it had this interface.

use std::sync::Arc;

use bytes::Bytes;

use super::embedded::EmbeddedSession;
use super::error::CoordinationError;
use super::node::Stat;
use super::path;
use super::store::CoordinationStore;
use super::tree_watch::TreeWatch;
use super::zookeeper::{ZooKeeperSession, ZooKeeperStateWatch};

/// How long a node lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Until deleted.
    Persistent,
    /// Until deleted or this client's session ends.
    Ephemeral,
}

/// One operation of [`Coordination::multi`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    /// The node exists with this data version.
    Check {
        /// The node.
        path: String,
        /// Its expected version.
        version: i32,
    },
    /// Create a node.
    Create {
        /// The node.
        path: String,
        /// Its data.
        data: Bytes,
        /// Persistent or ephemeral.
        kind: NodeKind,
    },
    /// Replace a node's data, if its version matches (when given).
    Set {
        /// The node.
        path: String,
        /// The new data.
        data: Bytes,
        /// Expected version; `None` for any.
        version: Option<i32>,
    },
    /// Delete a childless node, if its version matches (when given).
    Delete {
        /// The node.
        path: String,
        /// Expected version; `None` for any.
        version: Option<i32>,
    },
}

impl MultiOp {
    /// The node the op is about.
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Check { path, .. }
            | MultiOp::Create { path, .. }
            | MultiOp::Set { path, .. }
            | MultiOp::Delete { path, .. } => path,
        }
    }
}

/// A change of the session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionEvent {
    /// Connected (again): requests go through. After a `Disconnected`, tree
    /// watches deliver a `Resync`.
    Connected,
    /// The connection was lost; the client reconnects by itself while the
    /// session lives. Requests fail with `ConnectionLoss` meanwhile.
    Disconnected,
    /// The session expired: its ephemeral nodes are gone and this client is
    /// finished. Terminal.
    Expired,
    /// The client was closed. Terminal.
    Closed,
}

impl SessionEvent {
    /// Whether no event can follow.
    pub fn is_terminal(self) -> bool {
        matches!(self, SessionEvent::Expired | SessionEvent::Closed)
    }
}

/// Where to find ZooKeeper and how patient to be with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooKeeperSettings {
    /// `host:port[,host:port...][/chroot]` (`zookeeper.connect`).
    pub connect: String,
    /// The session lives this long without contact (`zookeeper.session.timeout.ms`).
    pub session_timeout_ms: u64,
    /// Bound on establishing the session, and on one connection attempt
    /// (`zookeeper.connection.timeout.ms`).
    pub connection_timeout_ms: u64,
}

/// The coordination client. Cheap to clone; all clones share one session.
#[derive(Debug, Clone)]
pub struct Coordination {
    backend: Arc<Backend>,
}

#[derive(Debug)]
enum Backend {
    Embedded(EmbeddedSession),
    ZooKeeper(ZooKeeperSession),
}

impl Coordination {
    /// A client of the embedded store, with a new session. Its session never
    /// expires; it ends on [`Self::close`] or when the last clone is dropped.
    pub fn embedded(store: Arc<CoordinationStore>) -> Result<Self, CoordinationError> {
        Ok(Self {
            backend: Arc::new(Backend::Embedded(EmbeddedSession::open(store)?)),
        })
    }

    /// Connects to ZooKeeper and establishes a session, within
    /// `settings.connection_timeout_ms` (else a `Timeout` error). A chroot in
    /// the connect string is created (with its parents) if missing. Must be
    /// called inside a tokio runtime that outlives the client.
    pub async fn connect_zookeeper(
        settings: &ZooKeeperSettings,
    ) -> Result<Self, CoordinationError> {
        Ok(Self {
            backend: Arc::new(Backend::ZooKeeper(
                ZooKeeperSession::connect(settings).await?,
            )),
        })
    }

    /// The session's id (ZooKeeper's, or the embedded store's).
    pub fn session_id(&self) -> i64 {
        match &*self.backend {
            Backend::Embedded(session) => session.session_id(),
            Backend::ZooKeeper(session) => session.session_id(),
        }
    }

    /// Creates a node; its parent must exist (else `NoParent`).
    pub async fn create(
        &self,
        path: &str,
        data: Bytes,
        kind: NodeKind,
    ) -> Result<Stat, CoordinationError> {
        match &*self.backend {
            Backend::Embedded(session) => session.create(path, data, kind),
            Backend::ZooKeeper(session) => session.create(path, data, kind).await,
        }
    }

    /// Creates `path` and any missing parents as empty persistent nodes;
    /// nodes that exist are left as they are.
    pub async fn ensure_path(&self, path: &str) -> Result<(), CoordinationError> {
        path::validate(path)?;
        for prefix in path::prefixes(path) {
            match self
                .create(prefix, Bytes::new(), NodeKind::Persistent)
                .await
            {
                Ok(_) | Err(CoordinationError::NodeExists { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// A node's data and stat (`NoNode` if absent).
    pub async fn get(&self, path: &str) -> Result<(Bytes, Stat), CoordinationError> {
        match &*self.backend {
            Backend::Embedded(session) => session.get(path),
            Backend::ZooKeeper(session) => session.get(path).await,
        }
    }

    /// A node's stat, or `None` if absent.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>, CoordinationError> {
        match &*self.backend {
            Backend::Embedded(session) => session.exists(path),
            Backend::ZooKeeper(session) => session.exists(path).await,
        }
    }

    /// Replaces a node's data if its version is `version` (when given).
    pub async fn set(
        &self,
        path: &str,
        data: Bytes,
        version: Option<i32>,
    ) -> Result<Stat, CoordinationError> {
        match &*self.backend {
            Backend::Embedded(session) => session.set(path, data, version),
            Backend::ZooKeeper(session) => session.set(path, data, version).await,
        }
    }

    /// Deletes a childless node if its version is `version` (when given).
    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), CoordinationError> {
        match &*self.backend {
            Backend::Embedded(session) => session.delete(path, version),
            Backend::ZooKeeper(session) => session.delete(path, version).await,
        }
    }

    /// Deletes `path` and everything below it, children first. Not atomic: a
    /// concurrent writer may add nodes (then `NotEmpty`); nodes someone else
    /// deletes meanwhile are fine. A missing `path` is not an error.
    pub async fn delete_recursive(&self, path: &str) -> Result<(), CoordinationError> {
        path::validate(path)?;
        // Depth-first with an explicit stack: (path, children listed yet?).
        let mut stack = vec![(path.to_owned(), false)];
        while let Some((node, listed)) = stack.pop() {
            if listed {
                match self.delete(&node, None).await {
                    Ok(()) | Err(CoordinationError::NoNode { .. }) => {}
                    Err(error) => return Err(error),
                }
                continue;
            }
            let children = match self.children(&node).await {
                Ok(children) => children,
                Err(CoordinationError::NoNode { .. }) => continue,
                Err(error) => return Err(error),
            };
            stack.push((node.clone(), true));
            for child in children {
                stack.push((path::join(&node, &child), false));
            }
        }
        Ok(())
    }

    /// Names of a node's children, sorted (`NoNode` if absent).
    pub async fn children(&self, path: &str) -> Result<Vec<String>, CoordinationError> {
        match &*self.backend {
            Backend::Embedded(session) => session.children(path),
            Backend::ZooKeeper(session) => session.children(path).await,
        }
    }

    /// Applies `ops` atomically: all or nothing. Each op sees the effects of
    /// those before it. On failure the error is that of the first failing op
    /// and names its path (`BadVersion`, `NoNode`, `NodeExists`, `NoParent`,
    /// `NotEmpty`).
    pub async fn multi(&self, ops: Vec<MultiOp>) -> Result<(), CoordinationError> {
        match &*self.backend {
            Backend::Embedded(session) => session.multi(&ops),
            Backend::ZooKeeper(session) => session.multi(&ops).await,
        }
    }

    /// A persistent recursive watch on `path` (which need not exist): every
    /// create, data change and delete at or below it, until dropped. See
    /// [`TreeWatch`] for overflow and `Resync`.
    pub async fn watch_tree(&self, path: &str) -> Result<TreeWatch, CoordinationError> {
        match &*self.backend {
            Backend::Embedded(session) => session.watch_tree(path),
            Backend::ZooKeeper(session) => session.watch_tree(path).await,
        }
    }

    /// Session state changes from now on.
    pub fn session_events(&self) -> SessionWatch {
        match &*self.backend {
            Backend::Embedded(session) => SessionWatch {
                inner: SessionWatchInner::Embedded(session.state_receiver()),
                ended: false,
            },
            Backend::ZooKeeper(session) => SessionWatch {
                inner: SessionWatchInner::ZooKeeper(session.state_watch()),
                ended: false,
            },
        }
    }

    /// Ends the session: its ephemeral nodes are deleted before this returns
    /// (ZooKeeper: once the server confirmed, bounded by the session timeout).
    /// Every clone is closed; later calls fail with `Closed`. Idempotent.
    pub async fn close(&self) {
        match &*self.backend {
            Backend::Embedded(session) => session.close(),
            Backend::ZooKeeper(session) => session.close().await,
        }
    }
}

/// Session state changes; see [`Coordination::session_events`].
#[derive(Debug)]
pub struct SessionWatch {
    inner: SessionWatchInner,
    ended: bool,
}

#[derive(Debug)]
enum SessionWatchInner {
    Embedded(tokio::sync::watch::Receiver<SessionEvent>),
    ZooKeeper(ZooKeeperStateWatch),
}

impl SessionWatch {
    /// The next change; `None` after a terminal event (`Expired`, `Closed`).
    /// Changes in quick succession may be coalesced into the latest.
    pub async fn next(&mut self) -> Option<SessionEvent> {
        if self.ended {
            return None;
        }
        let event = match &mut self.inner {
            SessionWatchInner::Embedded(receiver) => match receiver.changed().await {
                Ok(()) => *receiver.borrow_and_update(),
                // The session is gone with the last client.
                Err(_) => SessionEvent::Closed,
            },
            SessionWatchInner::ZooKeeper(watch) => watch.next().await,
        };
        self.ended = event.is_terminal();
        Some(event)
    }
}
