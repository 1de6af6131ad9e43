//! [`CoordinationStore`]: the node tree, sessions, watches and persistence,
//! behind one mutex.
//!
//! Metadata is the control plane, not the data path: one `std::sync::Mutex`
//! serializes all operations, which keeps every operation atomic (including
//! "read and set a watch") and makes the store `Send + Sync` for sharing as
//! `Arc<CoordinationStore>` across shard threads. Watch events are sent while
//! the lock is held; oneshot sends never block.
//!
//! A change to a persistent node is applied in memory, written to the
//! snapshot, and only then made visible to watchers and returned. If the
//! write fails before the new snapshot is renamed into place, the change is
//! undone and the error returned, so memory and disk never disagree.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use super::error::CoordinationError;
use super::node::{accounted_bytes, CreateMode, Node, SessionId, Stat};
use super::path::{self, ROOT};
use super::snapshot::{self, WriteFailure};
use super::tree_watch::{
    self, TreeEventKind, TreeWatch, TreeWatchSender, TREE_WATCH_MAX_QUEUED_EVENTS,
};
use super::watch::{WatchEventKind, WatchKind, WatchReceiver, WatchRegistry};

/// Bounds on what the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Total bytes of paths, data and per-node overhead. Also bounds the
    /// snapshot size and so the cost of each rewrite.
    pub max_total_bytes: usize,
    /// Largest data of one node (ZooKeeper's default jute.maxbuffer).
    pub max_node_data_bytes: usize,
    /// Open sessions.
    pub max_sessions: usize,
    /// Pending watches.
    pub max_watches: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_total_bytes: 64 * 1024 * 1024,
            max_node_data_bytes: 1024 * 1024,
            max_sessions: 4096,
            max_watches: 65_536,
        }
    }
}

/// An embedded store with ZooKeeper's data model: a tree of nodes with
/// versioned data, persistent and ephemeral nodes, sessions and one-shot
/// watches. Persistent nodes survive restarts when opened on a directory.
#[derive(Debug)]
pub struct CoordinationStore {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Every node by full path; the root always exists.
    nodes: BTreeMap<String, Node>,
    /// Last transaction id handed out.
    last_txid: u64,
    /// Sum of `accounted_bytes` over all nodes.
    used_bytes: usize,
    /// Open sessions and the ephemeral nodes each owns.
    sessions: HashMap<SessionId, BTreeSet<String>>,
    last_session_id: u64,
    watches: WatchRegistry,
    /// Persistent recursive watches (bounded by `limits.max_watches`).
    tree_watches: Vec<OwnedTreeWatch>,
    /// Snapshot directory; `None` keeps everything in memory.
    dir: Option<PathBuf>,
    limits: StoreLimits,
    /// Set when durability became unknown; refuses further changes.
    failed: bool,
}

impl CoordinationStore {
    /// Opens (or creates) the store in `dir` with default limits.
    ///
    /// `dir` should be dedicated to the store, not a Kafka log directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, CoordinationError> {
        Self::open_with_limits(dir, StoreLimits::default())
    }

    /// Opens (or creates) the store in `dir`. A missing snapshot means a new,
    /// empty store; a damaged one is a [`CoordinationError::Corrupt`] error.
    pub fn open_with_limits(
        dir: impl AsRef<Path>,
        limits: StoreLimits,
    ) -> Result<Self, CoordinationError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            std::fs::create_dir_all(dir).map_err(|source| CoordinationError::Io {
                operation: "creating directory",
                path: dir.to_owned(),
                source,
            })?;
            // Make the new directory's entry durable before files go in it.
            if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                snapshot::sync_dir(parent)?;
            }
        }
        let mut state = State::empty(Some(dir.to_owned()), limits);
        let max_file_bytes = snapshot::max_file_bytes(limits.max_total_bytes);
        if let Some(bytes) = snapshot::read(dir, max_file_bytes)? {
            let file_path = dir.join(snapshot::SNAPSHOT_FILE_NAME);
            let (last_txid, nodes) = snapshot::decode(&bytes, &file_path)?;
            state.load(last_txid, nodes)?;
        }
        Ok(Self {
            state: Mutex::new(state),
        })
    }

    /// A store that keeps nothing on disk (tests, tools).
    pub fn in_memory(limits: StoreLimits) -> Self {
        Self {
            state: Mutex::new(State::empty(None, limits)),
        }
    }

    /// Creates a node. Its parent must exist and must not be ephemeral.
    pub fn create(
        &self,
        path: &str,
        data: Bytes,
        mode: CreateMode,
    ) -> Result<Stat, CoordinationError> {
        path::validate(path)?;
        let mut state = self.lock()?;
        state.check_writable()?;
        let mut txn = state.begin();
        let stat = match state.txn_create(&mut txn, path, data, mode) {
            Ok(stat) => stat,
            Err(error) => {
                state.rollback(txn);
                return Err(error);
            }
        };
        state.commit(txn)?;
        Ok(stat)
    }

    /// Reads a node's data and metadata.
    pub fn get(&self, path: &str) -> Result<(Bytes, Stat), CoordinationError> {
        path::validate(path)?;
        let state = self.lock()?;
        let node = state.node(path)?;
        Ok((node.data.clone(), node.stat()))
    }

    /// A node's metadata, or `None` if it does not exist.
    pub fn exists(&self, path: &str) -> Result<Option<Stat>, CoordinationError> {
        path::validate(path)?;
        Ok(self.lock()?.nodes.get(path).map(Node::stat))
    }

    /// Replaces a node's data. With `expected_version`, only if the node's
    /// version matches (compare-and-set); the version then increases by one.
    pub fn set(
        &self,
        path: &str,
        data: Bytes,
        expected_version: Option<i32>,
    ) -> Result<Stat, CoordinationError> {
        path::validate(path)?;
        let mut state = self.lock()?;
        state.check_writable()?;
        let mut txn = state.begin();
        let stat = match state.txn_set(&mut txn, path, data, expected_version) {
            Ok(stat) => stat,
            Err(error) => {
                state.rollback(txn);
                return Err(error);
            }
        };
        state.commit(txn)?;
        Ok(stat)
    }

    /// Deletes a node without children. With `expected_version`, only if the
    /// node's version matches.
    pub fn delete(
        &self,
        path: &str,
        expected_version: Option<i32>,
    ) -> Result<(), CoordinationError> {
        path::validate(path)?;
        let mut state = self.lock()?;
        state.check_writable()?;
        let mut txn = state.begin();
        if let Err(error) = state.txn_delete(&mut txn, path, expected_version) {
            state.rollback(txn);
            return Err(error);
        }
        state.commit(txn)
    }

    /// Applies `ops` in order as one transaction: all of them or none.
    ///
    /// Each op sees the effects of the ones before it (a `Check` after a
    /// `Set` of the same node expects the new version). On the first failing
    /// op, everything is undone and its error returned (the error names the
    /// op's path). Persistent changes are written to the snapshot once, and
    /// watches fire only after the whole transaction is durable.
    pub fn multi(&self, ops: &[TxnOp]) -> Result<Vec<TxnResult>, CoordinationError> {
        for op in ops {
            path::validate(op.path())?;
        }
        let mut state = self.lock()?;
        state.check_writable()?;
        let mut txn = state.begin();
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let result = match op {
                TxnOp::Check { path, version } => {
                    state.check(path, *version).map(|()| TxnResult::Checked)
                }
                TxnOp::Create { path, data, mode } => state
                    .txn_create(&mut txn, path, data.clone(), *mode)
                    .map(TxnResult::Created),
                TxnOp::Set {
                    path,
                    data,
                    version,
                } => state
                    .txn_set(&mut txn, path, data.clone(), *version)
                    .map(TxnResult::Set),
                TxnOp::Delete { path, version } => state
                    .txn_delete(&mut txn, path, *version)
                    .map(|()| TxnResult::Deleted),
            };
            match result {
                Ok(result) => results.push(result),
                Err(error) => {
                    state.rollback(txn);
                    return Err(error);
                }
            }
        }
        state.commit(txn)?;
        Ok(results)
    }

    /// Starts a persistent recursive watch on `path` (which need not exist):
    /// every create, data change and delete of `path` or a node below it,
    /// until the [`TreeWatch`] is dropped. Queues at most
    /// [`TREE_WATCH_MAX_QUEUED_EVENTS`] events, then overflows into one
    /// `Resync`.
    pub fn watch_tree(&self, path: &str) -> Result<TreeWatch, CoordinationError> {
        self.watch_tree_with_capacity(path, TREE_WATCH_MAX_QUEUED_EVENTS)
    }

    /// [`Self::watch_tree`] with a given queue bound (tests of overflow).
    pub fn watch_tree_with_capacity(
        &self,
        path: &str,
        max_queued_events: usize,
    ) -> Result<TreeWatch, CoordinationError> {
        self.add_tree_watch(path, max_queued_events, None)
    }

    /// [`Self::watch_tree`] owned by `session`: when the session closes, the
    /// watch delivers a `Resync` and ends, as a ZooKeeper session's watches do.
    pub fn watch_tree_in_session(
        &self,
        path: &str,
        session: SessionId,
    ) -> Result<TreeWatch, CoordinationError> {
        self.add_tree_watch(path, TREE_WATCH_MAX_QUEUED_EVENTS, Some(session))
    }

    fn add_tree_watch(
        &self,
        path: &str,
        max_queued_events: usize,
        session: Option<SessionId>,
    ) -> Result<TreeWatch, CoordinationError> {
        path::validate(path)?;
        let mut state = self.lock()?;
        if let Some(session) = session {
            if !state.sessions.contains_key(&session) {
                return Err(CoordinationError::UnknownSession { session });
            }
        }
        let max_watches = state.limits.max_watches;
        state
            .tree_watches
            .retain(|watch| !watch.sender.is_receiver_gone());
        if state.tree_watches.len() >= max_watches {
            return Err(CoordinationError::TooManyWatches { max_watches });
        }
        let (sender, watch) = tree_watch::channel(path, max_queued_events.max(1));
        state.tree_watches.push(OwnedTreeWatch { session, sender });
        Ok(watch)
    }

    /// Names of a node's children, sorted.
    pub fn children(&self, path: &str) -> Result<Vec<String>, CoordinationError> {
        path::validate(path)?;
        let state = self.lock()?;
        Ok(state.node(path)?.children.iter().cloned().collect())
    }

    /// Reads a node (or its absence) and sets a data watch, atomically, so no
    /// change between the read and the watch can be missed. The watch fires
    /// once on `Created`, `DataChanged` or `Deleted`.
    pub fn watch_data(
        &self,
        path: &str,
    ) -> Result<(Option<(Bytes, Stat)>, WatchReceiver), CoordinationError> {
        path::validate(path)?;
        let mut state = self.lock()?;
        let current = state
            .nodes
            .get(path)
            .map(|node| (node.data.clone(), node.stat()));
        let receiver = state.watches.add(WatchKind::Data, path)?;
        Ok((current, receiver))
    }

    /// Lists a node's children and sets a child watch, atomically. The watch
    /// fires once on `ChildrenChanged` or `Deleted`. The node must exist.
    pub fn watch_children(
        &self,
        path: &str,
    ) -> Result<(Vec<String>, WatchReceiver), CoordinationError> {
        path::validate(path)?;
        let mut state = self.lock()?;
        let children = state.node(path)?.children.iter().cloned().collect();
        let receiver = state.watches.add(WatchKind::Children, path)?;
        Ok((children, receiver))
    }

    /// Opens a session that can own ephemeral nodes.
    pub fn open_session(&self) -> Result<SessionId, CoordinationError> {
        let mut state = self.lock()?;
        if state.sessions.len() >= state.limits.max_sessions {
            return Err(CoordinationError::TooManySessions {
                max_sessions: state.limits.max_sessions,
            });
        }
        state.last_session_id += 1;
        let session = SessionId(state.last_session_id);
        state.sessions.insert(session, BTreeSet::new());
        Ok(session)
    }

    /// Closes a session and deletes its ephemeral nodes, firing their watches.
    pub fn close_session(&self, session: SessionId) -> Result<(), CoordinationError> {
        let mut state = self.lock()?;
        let owned = state
            .sessions
            .remove(&session)
            .ok_or(CoordinationError::UnknownSession { session })?;
        // Ephemeral nodes have no children and are never on disk, so removal
        // cannot fail and needs no snapshot write.
        for path in owned {
            state.remove_node(&path);
            state.fire_deleted(&path);
        }
        // The session's tree watches end with it (dropping a sender closes
        // its watch after the Resync).
        state.tree_watches.retain(|watch| {
            if watch.session == Some(session) {
                watch.sender.resync();
                false
            } else {
                true
            }
        });
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, CoordinationError> {
        // A panic while holding the lock may have left the tree half-changed.
        self.state.lock().map_err(|_| CoordinationError::Failed)
    }
}

fn check_version(
    path: &str,
    node: &Node,
    expected_version: Option<i32>,
) -> Result<(), CoordinationError> {
    match expected_version {
        Some(expected) if expected != node.version => Err(CoordinationError::BadVersion {
            path: path.to_owned(),
            expected,
            actual: Some(node.version),
        }),
        _ => Ok(()),
    }
}

/// One operation of [`CoordinationStore::multi`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// The node exists with this version.
    Check {
        /// The node.
        path: String,
        /// Its expected data version.
        version: i32,
    },
    /// Create a node (as [`CoordinationStore::create`]).
    Create {
        /// The node.
        path: String,
        /// Its data.
        data: Bytes,
        /// Persistent or owned by a session.
        mode: CreateMode,
    },
    /// Replace a node's data (as [`CoordinationStore::set`]).
    Set {
        /// The node.
        path: String,
        /// The new data.
        data: Bytes,
        /// Expected version, if any.
        version: Option<i32>,
    },
    /// Delete a childless node (as [`CoordinationStore::delete`]).
    Delete {
        /// The node.
        path: String,
        /// Expected version, if any.
        version: Option<i32>,
    },
}

impl TxnOp {
    /// The node the op is about.
    pub fn path(&self) -> &str {
        match self {
            TxnOp::Check { path, .. }
            | TxnOp::Create { path, .. }
            | TxnOp::Set { path, .. }
            | TxnOp::Delete { path, .. } => path,
        }
    }
}

/// What one [`TxnOp`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnResult {
    /// The check passed.
    Checked,
    /// The node was created with this stat.
    Created(Stat),
    /// The data was set; the node's new stat.
    Set(Stat),
    /// The node was deleted.
    Deleted,
}

/// A tree watch and the session it ends with (`None`: the store's lifetime).
#[derive(Debug)]
struct OwnedTreeWatch {
    session: Option<SessionId>,
    sender: TreeWatchSender,
}

/// How to put back one applied change.
#[derive(Debug)]
enum Undo {
    Created {
        path: String,
        parent_cversion: i32,
    },
    Set {
        path: String,
        data: Bytes,
        version: i32,
        modified_txid: u64,
    },
    Deleted {
        path: String,
        node: Node,
        parent_cversion: i32,
    },
}

/// A change to announce to watchers once the transaction is committed.
#[derive(Debug)]
enum Change {
    Created(String),
    DataChanged(String),
    Deleted(String),
}

/// A transaction in progress: what to undo if it fails, what to announce if
/// it succeeds. Invariant: `undo` and `changes` are in the order applied.
#[derive(Debug)]
struct Txn {
    last_txid: u64,
    used_bytes: usize,
    undo: Vec<Undo>,
    changes: Vec<Change>,
    /// A persistent node changed, so the snapshot must be rewritten.
    persistent_changed: bool,
}

impl State {
    fn empty(dir: Option<PathBuf>, limits: StoreLimits) -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT.to_owned(), Node::new(Bytes::new(), 0, None));
        Self {
            nodes,
            last_txid: 0,
            used_bytes: accounted_bytes(ROOT, 0),
            sessions: HashMap::new(),
            last_session_id: 0,
            watches: WatchRegistry::new(limits.max_watches),
            tree_watches: Vec::new(),
            dir,
            limits,
            failed: false,
        }
    }

    /// Replaces the tree with decoded snapshot nodes (root first, parents
    /// before children, as `snapshot::decode` guarantees).
    fn load(
        &mut self,
        last_txid: u64,
        loaded: Vec<snapshot::SnapshotNode>,
    ) -> Result<(), CoordinationError> {
        self.nodes.clear();
        self.used_bytes = 0;
        self.last_txid = last_txid;
        for entry in loaded {
            self.used_bytes += accounted_bytes(&entry.path, entry.data.len());
            if entry.path != ROOT {
                let name = path::name(&entry.path).to_owned();
                self.node_mut(path::parent(&entry.path))
                    .children
                    .insert(name);
            }
            let mut node = Node::new(entry.data, entry.created_txid, None);
            node.version = entry.version;
            node.cversion = entry.cversion;
            node.modified_txid = entry.modified_txid;
            self.nodes.insert(entry.path, node);
        }
        self.check_room(self.used_bytes)
    }

    fn node(&self, path: &str) -> Result<&Node, CoordinationError> {
        self.nodes
            .get(path)
            .ok_or_else(|| CoordinationError::NoNode {
                path: path.to_owned(),
            })
    }

    /// A node known to exist (checked earlier under the same lock).
    fn node_mut(&mut self, path: &str) -> &mut Node {
        self.nodes
            .get_mut(path)
            .unwrap_or_else(|| panic!("coordination store invariant: {path} must exist"))
    }

    fn check_writable(&self) -> Result<(), CoordinationError> {
        if self.failed {
            Err(CoordinationError::Failed)
        } else {
            Ok(())
        }
    }

    fn check_node_data(&self, path: &str, data_bytes: usize) -> Result<(), CoordinationError> {
        if data_bytes > self.limits.max_node_data_bytes {
            return Err(CoordinationError::NodeTooLarge {
                path: path.to_owned(),
                data_bytes,
                max_bytes: self.limits.max_node_data_bytes,
            });
        }
        Ok(())
    }

    fn check_room(&self, needed_bytes: usize) -> Result<(), CoordinationError> {
        if needed_bytes > self.limits.max_total_bytes {
            return Err(CoordinationError::StoreFull {
                needed_bytes,
                max_bytes: self.limits.max_total_bytes,
            });
        }
        Ok(())
    }

    /// Adds a node under its (existing) parent with the next txid.
    fn insert_node(&mut self, path: &str, node: Node) {
        self.last_txid += 1;
        self.used_bytes += accounted_bytes(path, node.data.len());
        if let Some(session) = node.ephemeral_owner {
            if let Some(owned) = self.sessions.get_mut(&session) {
                owned.insert(path.to_owned());
            }
        }
        let parent = self.node_mut(path::parent(path));
        parent.children.insert(path::name(path).to_owned());
        parent.cversion = parent.cversion.wrapping_add(1);
        self.nodes.insert(path.to_owned(), node);
    }

    /// Removes an existing childless node with the next txid.
    fn remove_node(&mut self, path: &str) -> Node {
        let node = self
            .nodes
            .remove(path)
            .unwrap_or_else(|| panic!("coordination store invariant: {path} must exist"));
        assert!(node.children.is_empty(), "removing {path} with children");
        self.last_txid += 1;
        self.used_bytes -= accounted_bytes(path, node.data.len());
        if let Some(session) = node.ephemeral_owner {
            if let Some(owned) = self.sessions.get_mut(&session) {
                owned.remove(path);
            }
        }
        let parent = self.node_mut(path::parent(path));
        parent.children.remove(path::name(path));
        parent.cversion = parent.cversion.wrapping_add(1);
        node
    }

    fn fire_deleted(&mut self, path: &str) {
        self.watches
            .fire(WatchKind::Data, path, WatchEventKind::Deleted);
        self.watches
            .fire(WatchKind::Children, path, WatchEventKind::Deleted);
        self.watches.fire(
            WatchKind::Children,
            path::parent(path),
            WatchEventKind::ChildrenChanged,
        );
        self.fire_tree(TreeEventKind::Deleted, path);
    }

    fn fire_created(&mut self, path: &str) {
        self.watches
            .fire(WatchKind::Data, path, WatchEventKind::Created);
        self.watches.fire(
            WatchKind::Children,
            path::parent(path),
            WatchEventKind::ChildrenChanged,
        );
        self.fire_tree(TreeEventKind::Created, path);
    }

    fn fire_data_changed(&mut self, path: &str) {
        self.watches
            .fire(WatchKind::Data, path, WatchEventKind::DataChanged);
        self.fire_tree(TreeEventKind::DataChanged, path);
    }

    /// Sends `kind` at `path` to every tree watch covering it, and forgets
    /// watches whose receiver was dropped.
    fn fire_tree(&mut self, kind: TreeEventKind, path: &str) {
        self.tree_watches.retain(|watch| {
            if watch.sender.is_receiver_gone() {
                return false;
            }
            if watch.sender.covers(path) {
                watch.sender.send(kind, path);
            }
            true
        });
    }

    fn begin(&self) -> Txn {
        Txn {
            last_txid: self.last_txid,
            used_bytes: self.used_bytes,
            undo: Vec::new(),
            changes: Vec::new(),
            persistent_changed: false,
        }
    }

    fn check(&self, path: &str, version: i32) -> Result<(), CoordinationError> {
        check_version(path, self.node(path)?, Some(version))
    }

    fn txn_create(
        &mut self,
        txn: &mut Txn,
        path: &str,
        data: Bytes,
        mode: CreateMode,
    ) -> Result<Stat, CoordinationError> {
        self.check_node_data(path, data.len())?;
        if self.nodes.contains_key(path) {
            return Err(CoordinationError::NodeExists {
                path: path.to_owned(),
            });
        }
        // The root always exists, so from here on `path` has a parent.
        let parent_path = path::parent(path);
        let parent_cversion = match self.nodes.get(parent_path) {
            None => {
                return Err(CoordinationError::NoParent {
                    path: path.to_owned(),
                    parent: parent_path.to_owned(),
                })
            }
            Some(parent) if !parent.is_persistent() => {
                return Err(CoordinationError::NoChildrenForEphemerals {
                    path: path.to_owned(),
                    parent: parent_path.to_owned(),
                })
            }
            Some(parent) => parent.cversion,
        };
        let owner = match mode {
            CreateMode::Persistent => None,
            CreateMode::Ephemeral { session } if self.sessions.contains_key(&session) => {
                Some(session)
            }
            CreateMode::Ephemeral { session } => {
                return Err(CoordinationError::UnknownSession { session })
            }
        };
        self.check_room(self.used_bytes + accounted_bytes(path, data.len()))?;

        let txid = self.last_txid + 1;
        self.insert_node(path, Node::new(data, txid, owner));
        txn.undo.push(Undo::Created {
            path: path.to_owned(),
            parent_cversion,
        });
        txn.changes.push(Change::Created(path.to_owned()));
        txn.persistent_changed |= owner.is_none();
        Ok(self.node_mut(path).stat())
    }

    fn txn_set(
        &mut self,
        txn: &mut Txn,
        path: &str,
        data: Bytes,
        expected_version: Option<i32>,
    ) -> Result<Stat, CoordinationError> {
        self.check_node_data(path, data.len())?;
        let node = self.node(path)?;
        check_version(path, node, expected_version)?;
        let needed_bytes = self.used_bytes - node.data.len() + data.len();
        self.check_room(needed_bytes)?;

        let txid = self.last_txid + 1;
        self.last_txid = txid;
        self.used_bytes = needed_bytes;
        let node = self.node_mut(path);
        let old_data = std::mem::replace(&mut node.data, data);
        txn.undo.push(Undo::Set {
            path: path.to_owned(),
            data: old_data,
            version: node.version,
            modified_txid: node.modified_txid,
        });
        node.version = node.version.wrapping_add(1);
        node.modified_txid = txid;
        let persistent = node.is_persistent();
        let stat = node.stat();
        txn.changes.push(Change::DataChanged(path.to_owned()));
        txn.persistent_changed |= persistent;
        Ok(stat)
    }

    fn txn_delete(
        &mut self,
        txn: &mut Txn,
        path: &str,
        expected_version: Option<i32>,
    ) -> Result<(), CoordinationError> {
        if path == ROOT {
            return Err(CoordinationError::RootNotDeletable);
        }
        let node = self.node(path)?;
        check_version(path, node, expected_version)?;
        if !node.children.is_empty() {
            return Err(CoordinationError::NotEmpty {
                path: path.to_owned(),
                children: Some(node.children.len()),
            });
        }
        let parent_cversion = self.node_mut(path::parent(path)).cversion;
        let removed = self.remove_node(path);
        txn.persistent_changed |= removed.is_persistent();
        txn.undo.push(Undo::Deleted {
            path: path.to_owned(),
            node: removed,
            parent_cversion,
        });
        txn.changes.push(Change::Deleted(path.to_owned()));
        Ok(())
    }

    /// Undoes every change of `txn`, newest first, and puts the counters back.
    fn rollback(&mut self, txn: Txn) {
        for undo in txn.undo.into_iter().rev() {
            match undo {
                Undo::Created {
                    path,
                    parent_cversion,
                } => {
                    self.remove_node(&path);
                    self.node_mut(path::parent(&path)).cversion = parent_cversion;
                }
                Undo::Set {
                    path,
                    data,
                    version,
                    modified_txid,
                } => {
                    let node = self.node_mut(&path);
                    node.data = data;
                    node.version = version;
                    node.modified_txid = modified_txid;
                }
                Undo::Deleted {
                    path,
                    node,
                    parent_cversion,
                } => {
                    self.insert_node(&path, node);
                    self.node_mut(path::parent(&path)).cversion = parent_cversion;
                }
            }
        }
        self.last_txid = txn.last_txid;
        self.used_bytes = txn.used_bytes;
    }

    /// Makes `txn` durable (one snapshot write if a persistent node changed)
    /// and then visible to watchers; if the write fails, undoes it.
    fn commit(&mut self, mut txn: Txn) -> Result<(), CoordinationError> {
        if txn.persistent_changed {
            if let Err(error) = self.persist() {
                self.rollback(txn);
                return Err(error);
            }
        }
        for change in std::mem::take(&mut txn.changes) {
            match change {
                Change::Created(path) => self.fire_created(&path),
                Change::DataChanged(path) => self.fire_data_changed(&path),
                Change::Deleted(path) => self.fire_deleted(&path),
            }
        }
        Ok(())
    }

    /// Writes all persistent nodes to the snapshot (no-op in memory).
    fn persist(&mut self) -> Result<(), CoordinationError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let persistent = self
            .nodes
            .iter()
            .filter(|(_, node)| node.is_persistent())
            .map(|(node_path, node)| (node_path.as_str(), node));
        let contents = snapshot::encode(self.last_txid, persistent);
        match snapshot::write_atomically(dir, &contents) {
            Ok(()) => Ok(()),
            Err(WriteFailure::BeforeRename(error)) => Err(error),
            Err(WriteFailure::AfterRename(error)) => {
                // The new snapshot is visible, so the change must stay in
                // memory, but it may not survive a crash: stop accepting
                // changes so nothing builds on it.
                self.failed = true;
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::watch::WatchEvent;

    fn store() -> CoordinationStore {
        CoordinationStore::in_memory(StoreLimits::default())
    }

    fn data(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    fn event(path: &str, kind: WatchEventKind) -> WatchEvent {
        WatchEvent {
            path: path.to_owned(),
            kind,
        }
    }

    #[test]
    fn versions_increase_and_guard_set_and_delete() {
        let store = store();
        let stat = store
            .create("/a", data("1"), CreateMode::Persistent)
            .expect("created");
        assert_eq!(stat.version, 0);
        let stat = store.set("/a", data("2"), Some(0)).expect("cas");
        assert_eq!(stat.version, 1);
        assert!(stat.modified_txid > stat.created_txid);
        assert!(matches!(
            store.set("/a", data("3"), Some(0)),
            Err(CoordinationError::BadVersion {
                expected: 0,
                actual: Some(1),
                ..
            })
        ));
        let stat = store.set("/a", data("4"), None).expect("unconditional");
        assert_eq!(stat.version, 2);
        assert_eq!(store.get("/a").expect("exists").0, data("4"));
        assert!(matches!(
            store.delete("/a", Some(1)),
            Err(CoordinationError::BadVersion { .. })
        ));
        store.delete("/a", Some(2)).expect("deleted");
        assert_eq!(store.exists("/a").expect("valid path"), None);
    }

    #[test]
    fn tree_rules() {
        let store = store();
        assert!(matches!(
            store.create("/a/b", Bytes::new(), CreateMode::Persistent),
            Err(CoordinationError::NoParent { ref parent, .. }) if parent == "/a"
        ));
        store
            .create("/a", Bytes::new(), CreateMode::Persistent)
            .expect("created");
        assert!(matches!(
            store.create("/a", Bytes::new(), CreateMode::Persistent),
            Err(CoordinationError::NodeExists { .. })
        ));
        store
            .create("/a/c", Bytes::new(), CreateMode::Persistent)
            .expect("created");
        store
            .create("/a/b", Bytes::new(), CreateMode::Persistent)
            .expect("created");
        assert_eq!(store.children("/a").expect("exists"), ["b", "c"]);
        assert_eq!(
            store
                .exists("/a")
                .expect("valid")
                .map(|s| (s.num_children, s.cversion)),
            Some((2, 2))
        );
        assert!(matches!(
            store.delete("/a", None),
            Err(CoordinationError::NotEmpty {
                children: Some(2),
                ..
            })
        ));
        assert!(matches!(
            store.delete("/", None),
            Err(CoordinationError::RootNotDeletable)
        ));
        assert!(matches!(
            store.get("/zz"),
            Err(CoordinationError::NoNode { .. })
        ));
        assert!(matches!(
            store.get("bad"),
            Err(CoordinationError::InvalidPath { .. })
        ));
        assert!(matches!(
            store.children("/zz"),
            Err(CoordinationError::NoNode { .. })
        ));
    }

    #[test]
    fn ephemeral_nodes_go_with_their_session() {
        let store = store();
        store
            .create("/brokers", Bytes::new(), CreateMode::Persistent)
            .expect("created");
        let session = store.open_session().expect("room");
        let other = store.open_session().expect("room");
        assert_ne!(session, other);
        let mode = CreateMode::Ephemeral { session };
        let stat = store
            .create("/brokers/0", data("host:9092"), mode)
            .expect("created");
        assert_eq!(stat.ephemeral_owner, Some(session));
        store
            .create(
                "/brokers/1",
                Bytes::new(),
                CreateMode::Ephemeral { session: other },
            )
            .expect("created");
        assert!(matches!(
            store.create("/brokers/0/x", Bytes::new(), CreateMode::Persistent),
            Err(CoordinationError::NoChildrenForEphemerals { .. })
        ));

        let (_, mut watch) = store.watch_data("/brokers/0").expect("watch");
        store.close_session(session).expect("open");
        assert_eq!(store.children("/brokers").expect("exists"), ["1"]);
        assert_eq!(
            watch.try_recv(),
            Ok(event("/brokers/0", WatchEventKind::Deleted))
        );
        assert!(matches!(
            store.close_session(session),
            Err(CoordinationError::UnknownSession { .. })
        ));
        assert!(matches!(
            store.create("/brokers/2", Bytes::new(), mode),
            Err(CoordinationError::UnknownSession { .. })
        ));
    }

    #[test]
    fn data_watch_fires_once() {
        let store = store();
        let (current, mut watch) = store.watch_data("/a").expect("watch absent node");
        assert_eq!(current, None);
        store
            .create("/a", data("1"), CreateMode::Persistent)
            .expect("created");
        store.set("/a", data("2"), None).expect("set");
        assert_eq!(watch.try_recv(), Ok(event("/a", WatchEventKind::Created)));

        let (current, mut watch) = store.watch_data("/a").expect("watch");
        assert_eq!(current.map(|(bytes, _)| bytes), Some(data("2")));
        store.set("/a", data("3"), None).expect("set");
        store.delete("/a", None).expect("deleted");
        assert_eq!(
            watch.try_recv(),
            Ok(event("/a", WatchEventKind::DataChanged))
        );
        assert_eq!(store.lock().expect("lock").watches.pending(), 0);
    }

    #[test]
    fn child_watch_fires_once_on_create_or_delete() {
        let store = store();
        store
            .create("/t", Bytes::new(), CreateMode::Persistent)
            .expect("created");
        let (children, mut watch) = store.watch_children("/t").expect("watch");
        assert!(children.is_empty());
        store
            .set("/t", data("x"), None)
            .expect("data change does not fire child watch");
        store
            .create("/t/a", Bytes::new(), CreateMode::Persistent)
            .expect("created");
        store
            .create("/t/b", Bytes::new(), CreateMode::Persistent)
            .expect("created");
        assert_eq!(
            watch.try_recv(),
            Ok(event("/t", WatchEventKind::ChildrenChanged))
        );

        let (_, mut on_delete) = store.watch_children("/t/a").expect("watch");
        store.delete("/t/a", None).expect("deleted");
        assert_eq!(
            on_delete.try_recv(),
            Ok(event("/t/a", WatchEventKind::Deleted))
        );
        assert!(matches!(
            store.watch_children("/none"),
            Err(CoordinationError::NoNode { .. })
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn watch_can_be_awaited() {
        let store = std::sync::Arc::new(store());
        let (_, watch) = store.watch_data("/x").expect("watch");
        let writer = std::sync::Arc::clone(&store);
        std::thread::spawn(move || writer.create("/x", Bytes::new(), CreateMode::Persistent))
            .join()
            .expect("thread")
            .expect("created");
        assert_eq!(watch.await, Ok(event("/x", WatchEventKind::Created)));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = StoreLimits {
            max_total_bytes: 1000,
            max_node_data_bytes: 100,
            max_sessions: 1,
            max_watches: 1,
        };
        let store = CoordinationStore::in_memory(limits);
        assert!(matches!(
            store.create("/big", Bytes::from(vec![0; 101]), CreateMode::Persistent),
            Err(CoordinationError::NodeTooLarge { .. })
        ));
        let mut created = 0;
        let error = loop {
            match store.create(
                &format!("/n{created}"),
                Bytes::from(vec![0; 100]),
                CreateMode::Persistent,
            ) {
                Ok(_) => created += 1,
                Err(error) => break error,
            }
        };
        assert!(matches!(
            error,
            CoordinationError::StoreFull {
                max_bytes: 1000,
                ..
            }
        ));
        assert!(created > 0 && created < 10);
        store.open_session().expect("first session");
        assert!(matches!(
            store.open_session(),
            Err(CoordinationError::TooManySessions { .. })
        ));
        let _watch = store.watch_data("/n0").expect("first watch");
        assert!(matches!(
            store.watch_data("/n0"),
            Err(CoordinationError::TooManyWatches { .. })
        ));
    }

    #[test]
    fn persistent_nodes_survive_reopen_and_ephemeral_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = {
            let store = CoordinationStore::open(dir.path()).expect("new store");
            store
                .create("/brokers", Bytes::new(), CreateMode::Persistent)
                .expect("created");
            store
                .create("/brokers/topics", Bytes::new(), CreateMode::Persistent)
                .expect("created");
            store
                .create(
                    "/brokers/topics/foo",
                    data("{\"partitions\":3}"),
                    CreateMode::Persistent,
                )
                .expect("created");
            store
                .set("/brokers/topics/foo", data("{\"partitions\":4}"), Some(0))
                .expect("set");
            let session = store.open_session().expect("room");
            store
                .create("/brokers/ids", Bytes::new(), CreateMode::Persistent)
                .expect("created");
            store
                .create(
                    "/brokers/ids/0",
                    data("me"),
                    CreateMode::Ephemeral { session },
                )
                .expect("created");
            store.get("/brokers/topics/foo").expect("exists")
        };
        let store = CoordinationStore::open(dir.path()).expect("reopened");
        let after = store.get("/brokers/topics/foo").expect("survived");
        assert_eq!(after, before);
        assert_eq!(after.1.version, 1);
        assert_eq!(store.exists("/brokers/ids/0").expect("valid"), None);
        assert_eq!(
            store.children("/brokers").expect("exists"),
            ["ids", "topics"]
        );
        // Transaction ids keep increasing after a restart.
        let stat = store
            .create("/later", Bytes::new(), CreateMode::Persistent)
            .expect("created");
        assert!(stat.created_txid > after.1.modified_txid);
        store.delete("/later", None).expect("deleted");
        drop(store);
        let store = CoordinationStore::open(dir.path()).expect("reopened");
        assert_eq!(store.exists("/later").expect("valid"), None);
    }

    fn txn_create(path: &str, text: &'static str) -> TxnOp {
        TxnOp::Create {
            path: path.to_owned(),
            data: data(text),
            mode: CreateMode::Persistent,
        }
    }

    #[test]
    fn multi_applies_all_or_nothing_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CoordinationStore::open(dir.path()).expect("new store");
        store
            .create("/epoch", data("1"), CreateMode::Persistent)
            .expect("created");
        let before_root = store.exists("/").expect("valid");
        let (_, mut watch) = store.watch_data("/t").expect("watch");
        let mut tree = store.watch_tree("/").expect("tree watch");

        let failing = [
            txn_create("/t", "topic"),
            txn_create("/t/0", "p0"),
            TxnOp::Set {
                path: "/epoch".into(),
                data: data("2"),
                version: Some(0),
            },
            TxnOp::Delete {
                path: "/t/0".into(),
                version: Some(0),
            },
            TxnOp::Check {
                path: "/epoch".into(),
                version: 0,
            },
        ];
        assert!(matches!(
            store.multi(&failing),
            Err(CoordinationError::BadVersion { ref path, expected: 0, actual: Some(1) })
                if path == "/epoch"
        ));
        assert_eq!(store.exists("/t").expect("valid"), None);
        assert_eq!(store.get("/epoch").expect("exists").1.version, 0);
        assert_eq!(
            store.exists("/").expect("valid"),
            before_root,
            "cversion and all"
        );
        assert!(watch.try_recv().is_err(), "no event for an undone change");
        assert_eq!(tree.try_next(), None);

        let results = store
            .multi(&[
                TxnOp::Check {
                    path: "/epoch".into(),
                    version: 0,
                },
                txn_create("/t", "topic"),
                txn_create("/t/0", "p0"),
            ])
            .expect("applied");
        assert!(matches!(
            results.as_slice(),
            [
                TxnResult::Checked,
                TxnResult::Created(_),
                TxnResult::Created(_)
            ]
        ));
        assert_eq!(
            watch.try_recv().map(|event| event.kind),
            Ok(WatchEventKind::Created)
        );
        assert_eq!(
            tree.try_next().map(|event| event.path),
            Some("/t".to_owned())
        );
        drop(store);
        let store = CoordinationStore::open(dir.path()).expect("reopened");
        assert_eq!(store.get("/t/0").expect("survived").0, data("p0"));
    }

    #[test]
    fn failed_snapshot_write_undoes_a_multi() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CoordinationStore::open(dir.path()).expect("new store");
        store
            .create("/keep", data("v0"), CreateMode::Persistent)
            .expect("created");
        let blocker = dir.path().join("coordination.snapshot.tmp");
        std::fs::create_dir(&blocker).expect("mkdir");
        assert!(matches!(
            store.multi(&[
                txn_create("/new", "x"),
                TxnOp::Delete {
                    path: "/keep".into(),
                    version: None,
                },
            ]),
            Err(CoordinationError::Io { .. })
        ));
        assert_eq!(store.exists("/new").expect("valid"), None);
        assert_eq!(store.get("/keep").expect("still there").0, data("v0"));
        assert_eq!(store.children("/").expect("root"), ["keep"]);
    }

    #[test]
    fn tree_watch_sees_ephemeral_nodes_go_with_their_session() {
        let store = store();
        let session = store.open_session().expect("room");
        store
            .create("/e", Bytes::new(), CreateMode::Ephemeral { session })
            .expect("created");
        let mut tree = store.watch_tree("/e").expect("watch");
        store.close_session(session).expect("open");
        assert_eq!(
            tree.try_next().map(|event| event.kind),
            Some(TreeEventKind::Deleted)
        );
    }

    #[test]
    fn corrupt_snapshot_is_an_error_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = CoordinationStore::open(dir.path()).expect("new store");
            store
                .create("/a", data("payload"), CreateMode::Persistent)
                .expect("created");
        }
        let file = dir.path().join(snapshot::SNAPSHOT_FILE_NAME);
        let mut bytes = std::fs::read(&file).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&file, &bytes).expect("write");
        assert!(matches!(
            CoordinationStore::open(dir.path()),
            Err(CoordinationError::Corrupt { .. })
        ));
        std::fs::write(&file, &bytes[..10]).expect("truncate");
        assert!(matches!(
            CoordinationStore::open(dir.path()),
            Err(CoordinationError::Corrupt { .. })
        ));
        std::fs::write(&file, b"").expect("empty");
        assert!(matches!(
            CoordinationStore::open(dir.path()),
            Err(CoordinationError::Corrupt { .. })
        ));
    }

    #[test]
    fn failed_snapshot_write_undoes_the_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CoordinationStore::open(dir.path()).expect("new store");
        store
            .create("/keep", data("v0"), CreateMode::Persistent)
            .expect("created");
        let before_root = store.exists("/").expect("valid");
        let before_keep = store.get("/keep").expect("exists");
        // A directory where the temp file goes makes every write fail.
        let blocker = dir.path().join("coordination.snapshot.tmp");
        std::fs::create_dir(&blocker).expect("mkdir");

        let (_, mut watch) = store.watch_data("/new").expect("watch");
        assert!(matches!(
            store.create("/new", Bytes::new(), CreateMode::Persistent),
            Err(CoordinationError::Io { .. })
        ));
        assert!(matches!(
            store.set("/keep", data("v1"), None),
            Err(CoordinationError::Io { .. })
        ));
        assert!(matches!(
            store.delete("/keep", None),
            Err(CoordinationError::Io { .. })
        ));
        assert_eq!(store.exists("/new").expect("valid"), None);
        assert_eq!(store.get("/keep").expect("still there"), before_keep);
        assert_eq!(store.exists("/").expect("valid"), before_root);
        assert!(watch.try_recv().is_err(), "no event for an undone change");

        std::fs::remove_dir(&blocker).expect("rmdir");
        store
            .create("/new", Bytes::new(), CreateMode::Persistent)
            .expect("works again");
        drop(store);
        let store = CoordinationStore::open(dir.path()).expect("reopened");
        assert_eq!(store.children("/").expect("root"), ["keep", "new"]);
    }
}
