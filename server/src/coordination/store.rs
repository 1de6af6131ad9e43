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
        state.check_node_data(path, data.len())?;
        if state.nodes.contains_key(path) {
            return Err(CoordinationError::NodeExists {
                path: path.to_owned(),
            });
        }
        let parent_path = path::parent(path);
        match state.nodes.get(parent_path) {
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
            Some(_) => {}
        }
        let owner = match mode {
            CreateMode::Persistent => None,
            CreateMode::Ephemeral { session } if state.sessions.contains_key(&session) => {
                Some(session)
            }
            CreateMode::Ephemeral { session } => {
                return Err(CoordinationError::UnknownSession { session })
            }
        };
        let cost = accounted_bytes(path, data.len());
        state.check_room(state.used_bytes + cost)?;

        let undo = state.undo_point(parent_path);
        let txid = state.last_txid + 1;
        state.insert_node(path, Node::new(data, txid, owner));
        if owner.is_none() {
            if let Err(error) = state.persist() {
                state.remove_node(path);
                state.restore(undo);
                return Err(error);
            }
        }
        state
            .watches
            .fire(WatchKind::Data, path, WatchEventKind::Created);
        state.watches.fire(
            WatchKind::Children,
            parent_path,
            WatchEventKind::ChildrenChanged,
        );
        Ok(state.node_mut(path).stat())
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
        state.check_node_data(path, data.len())?;
        let node = state.node(path)?;
        check_version(path, node, expected_version)?;
        let needed_bytes = state.used_bytes - node.data.len() + data.len();
        state.check_room(needed_bytes)?;

        let undo = state.undo_point(path::parent_or_root(path));
        let txid = state.last_txid + 1;
        state.last_txid = txid;
        state.used_bytes = needed_bytes;
        let node = state.node_mut(path);
        let old_data = std::mem::replace(&mut node.data, data);
        let old_modified_txid = node.modified_txid;
        node.version = node.version.wrapping_add(1);
        node.modified_txid = txid;
        if node.is_persistent() {
            if let Err(error) = state.persist() {
                let node = state.node_mut(path);
                node.data = old_data;
                node.version = node.version.wrapping_sub(1);
                node.modified_txid = old_modified_txid;
                state.restore(undo);
                return Err(error);
            }
        }
        state
            .watches
            .fire(WatchKind::Data, path, WatchEventKind::DataChanged);
        Ok(state.node_mut(path).stat())
    }

    /// Deletes a node without children. With `expected_version`, only if the
    /// node's version matches.
    pub fn delete(
        &self,
        path: &str,
        expected_version: Option<i32>,
    ) -> Result<(), CoordinationError> {
        path::validate(path)?;
        if path == ROOT {
            return Err(CoordinationError::RootNotDeletable);
        }
        let mut state = self.lock()?;
        state.check_writable()?;
        let node = state.node(path)?;
        check_version(path, node, expected_version)?;
        if !node.children.is_empty() {
            return Err(CoordinationError::NotEmpty {
                path: path.to_owned(),
                children: node.children.len(),
            });
        }
        let undo = state.undo_point(path::parent(path));
        let removed = state.remove_node(path);
        if removed.is_persistent() {
            if let Err(error) = state.persist() {
                state.insert_node(path, removed);
                state.restore(undo);
                return Err(error);
            }
        }
        state.fire_deleted(path);
        Ok(())
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
            actual: node.version,
        }),
        _ => Ok(()),
    }
}

/// See [`State::undo_point`].
#[derive(Debug)]
struct UndoPoint {
    last_txid: u64,
    used_bytes: usize,
    parent_path: String,
    parent_cversion: i32,
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

    /// Counters a failed change must put back (the tree itself is restored
    /// by the caller's inverse operation).
    fn undo_point(&self, parent_path: &str) -> UndoPoint {
        UndoPoint {
            last_txid: self.last_txid,
            used_bytes: self.used_bytes,
            parent_path: parent_path.to_owned(),
            parent_cversion: self
                .nodes
                .get(parent_path)
                .map_or(0, |parent| parent.cversion),
        }
    }

    fn restore(&mut self, undo: UndoPoint) {
        self.last_txid = undo.last_txid;
        self.used_bytes = undo.used_bytes;
        self.node_mut(&undo.parent_path).cversion = undo.parent_cversion;
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
                actual: 1,
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
            Err(CoordinationError::NotEmpty { children: 2, .. })
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
