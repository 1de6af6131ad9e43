//! The ZooKeeper backend of [`super::Coordination`], on the `zookeeper-client`
//! crate (async; its socket I/O runs on the crate's reactor thread and its
//! session task on the tokio runtime that connected).
//!
//! What this layer adds to the crate: the chroot is created when missing;
//! the whole connect is bounded by the connection timeout (the crate would
//! keep cycling through unreachable servers); errors become
//! [`CoordinationError`] kinds naming the path; persistent recursive watches
//! feed a bounded [`TreeWatch`] and turn a reconnect or the end of the session
//! into a `Resync`; `close` waits until the server has ended the session, so
//! the session's ephemeral nodes are gone when it returns.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use zookeeper_client as zk;

use super::client::{MultiOp, NodeKind, SessionEvent, ZooKeeperSettings};
use super::connect_string;
use super::error::CoordinationError;
use super::node::{SessionId, Stat};
use super::path;
use super::tree_watch::{
    self, TreeEventKind, TreeWatch, TreeWatchSender, TREE_WATCH_MAX_QUEUED_EVENTS,
};

#[derive(Debug)]
pub(crate) struct ZooKeeperSession {
    /// `None` once closed. Each call clones the client out (cheap: the
    /// session is shared) so the lock is never held across an await. Tree
    /// watch tasks hold it weakly: a client handle they kept would keep the
    /// session open after `close`.
    client: Arc<Mutex<Option<zk::Client>>>,
    session_id: i64,
    /// Session state as the crate reports it, kept apart from the client so
    /// it can still be read after `close`.
    state: zk::StateWatcher,
    session_timeout: Duration,
    connection_timeout_ms: u64,
    /// The runtime that connected (and runs the crate's session task): tree
    /// watch forwarders run there too, so `watch_tree` works from any thread.
    runtime: tokio::runtime::Handle,
}

impl ZooKeeperSession {
    pub(crate) async fn connect(settings: &ZooKeeperSettings) -> Result<Self, CoordinationError> {
        let parsed = connect_string::parse(&settings.connect)?;
        if settings.session_timeout_ms == 0 || settings.connection_timeout_ms == 0 {
            return Err(CoordinationError::InvalidConnectString {
                connect: settings.connect.clone(),
                reason: "session and connection timeouts must be positive".to_owned(),
            });
        }
        let bound = Duration::from_millis(settings.connection_timeout_ms);
        match tokio::time::timeout(bound, Self::connect_unbounded(settings, &parsed)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(CoordinationError::Timeout {
                operation: format!(
                    "connecting to ZooKeeper at {} (is it running?)",
                    settings.connect
                ),
                timeout_ms: settings.connection_timeout_ms,
            }),
        }
    }

    async fn connect_unbounded(
        settings: &ZooKeeperSettings,
        parsed: &connect_string::ConnectString,
    ) -> Result<Self, CoordinationError> {
        let servers = parsed.servers_joined();
        let map = |error: zk::Error, operation: &'static str, path: &str| {
            map_error(error, operation, path, None, settings.connection_timeout_ms)
        };
        let client = zk::Client::connector()
            .with_session_timeout(Duration::from_millis(settings.session_timeout_ms))
            .with_connection_timeout(Duration::from_millis(settings.connection_timeout_ms))
            .connect(&servers)
            .await
            .map_err(|error| map(error, "connect", &servers))?;
        let client = match &parsed.chroot {
            None => client,
            Some(chroot) => {
                // Same session, re-rooted: no second connection needed.
                client
                    .mkdir(chroot, &persistent_options())
                    .await
                    .map_err(|error| map(error, "create chroot", chroot))?;
                client.chroot(chroot.as_str()).map_err(|_| {
                    CoordinationError::InvalidConnectString {
                        connect: settings.connect.clone(),
                        reason: format!("chroot {chroot} refused by the client"),
                    }
                })?
            }
        };
        Ok(Self {
            session_id: client.session_id().0,
            state: client.state_watcher(),
            session_timeout: client.session_timeout(),
            connection_timeout_ms: settings.connection_timeout_ms,
            runtime: tokio::runtime::Handle::current(),
            client: Arc::new(Mutex::new(Some(client))),
        })
    }

    pub(crate) fn session_id(&self) -> i64 {
        self.session_id
    }

    fn lock(&self) -> MutexGuard<'_, Option<zk::Client>> {
        lock_client(&self.client)
    }

    fn client(&self) -> Result<zk::Client, CoordinationError> {
        self.lock().clone().ok_or(CoordinationError::Closed)
    }

    fn error(
        &self,
        error: zk::Error,
        operation: &'static str,
        path: &str,
        version: Option<i32>,
    ) -> CoordinationError {
        map_error(error, operation, path, version, self.connection_timeout_ms)
    }

    pub(crate) async fn create(
        &self,
        path: &str,
        data: Bytes,
        kind: NodeKind,
    ) -> Result<Stat, CoordinationError> {
        path::validate(path)?;
        let client = self.client()?;
        match client.create(path, &data, &create_options(kind)).await {
            Ok((stat, _sequence)) => Ok(convert_stat(&stat)),
            Err(error) => Err(self.create_error(error, path)),
        }
    }

    /// ZooKeeper says NONODE when a create's parent is missing; the embedded
    /// store says `NoParent`, and callers should not see a difference.
    fn create_error(&self, error: zk::Error, path: &str) -> CoordinationError {
        match error {
            zk::Error::NoNode if path != "/" => CoordinationError::NoParent {
                path: path.to_owned(),
                parent: path::parent(path).to_owned(),
            },
            zk::Error::NoChildrenForEphemerals if path != "/" => {
                CoordinationError::NoChildrenForEphemerals {
                    path: path.to_owned(),
                    parent: path::parent(path).to_owned(),
                }
            }
            error => self.error(error, "create", path, None),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Result<(Bytes, Stat), CoordinationError> {
        path::validate(path)?;
        let client = self.client()?;
        let (data, stat) = client
            .get_data(path)
            .await
            .map_err(|error| self.error(error, "get", path, None))?;
        Ok((Bytes::from(data), convert_stat(&stat)))
    }

    pub(crate) async fn exists(&self, path: &str) -> Result<Option<Stat>, CoordinationError> {
        path::validate(path)?;
        let client = self.client()?;
        let stat = client
            .check_stat(path)
            .await
            .map_err(|error| self.error(error, "exists", path, None))?;
        Ok(stat.as_ref().map(convert_stat))
    }

    pub(crate) async fn set(
        &self,
        path: &str,
        data: Bytes,
        version: Option<i32>,
    ) -> Result<Stat, CoordinationError> {
        path::validate(path)?;
        let client = self.client()?;
        let stat = client
            .set_data(path, &data, version)
            .await
            .map_err(|error| self.error(error, "set", path, version))?;
        Ok(convert_stat(&stat))
    }

    pub(crate) async fn delete(
        &self,
        path: &str,
        version: Option<i32>,
    ) -> Result<(), CoordinationError> {
        path::validate(path)?;
        if path == "/" {
            return Err(CoordinationError::RootNotDeletable);
        }
        let client = self.client()?;
        client
            .delete(path, version)
            .await
            .map_err(|error| self.error(error, "delete", path, version))
    }

    pub(crate) async fn children(&self, path: &str) -> Result<Vec<String>, CoordinationError> {
        path::validate(path)?;
        let client = self.client()?;
        let mut children = client
            .list_children(path)
            .await
            .map_err(|error| self.error(error, "children", path, None))?;
        // ZooKeeper lists in no particular order; the embedded store sorts.
        children.sort_unstable();
        Ok(children)
    }

    pub(crate) async fn multi(&self, ops: &[MultiOp]) -> Result<(), CoordinationError> {
        for op in ops {
            path::validate(op.path())?;
        }
        let client = self.client()?;
        let mut writer = client.new_multi_writer();
        for op in ops {
            let added = match op {
                MultiOp::Check { path, version } => writer.add_check_version(path, *version),
                MultiOp::Create { path, data, kind } => {
                    writer.add_create(path, data, &create_options(*kind))
                }
                MultiOp::Set {
                    path,
                    data,
                    version,
                } => writer.add_set_data(path, data, *version),
                MultiOp::Delete { path, version } => writer.add_delete(path, *version),
            };
            added.map_err(|error| self.error(error, "multi", op.path(), None))?;
        }
        match writer.commit().await {
            Ok(_results) => Ok(()),
            Err(zk::MultiWriteError::RequestFailed { source }) => {
                let first = ops.first().map_or("/", MultiOp::path);
                Err(self.error(source, "multi", first, None))
            }
            Err(zk::MultiWriteError::OperationFailed { index, source }) => {
                Err(match ops.get(index) {
                    Some(MultiOp::Create { path, .. }) => self.create_error(source, path),
                    Some(MultiOp::Check { path, version }) => {
                        self.error(source, "multi check", path, Some(*version))
                    }
                    Some(MultiOp::Set { path, version, .. }) => {
                        self.error(source, "multi set", path, *version)
                    }
                    Some(MultiOp::Delete { path, version }) => {
                        self.error(source, "multi delete", path, *version)
                    }
                    None => self.error(source, "multi", "/", None),
                })
            }
        }
    }

    pub(crate) async fn watch_tree(&self, path: &str) -> Result<TreeWatch, CoordinationError> {
        path::validate(path)?;
        let client = self.client()?;
        let watcher = client
            .watch(path, zk::AddWatchMode::PersistentRecursive)
            .await
            .map_err(|error| self.error(error, "watch", path, None))?;
        let (sender, watch) = tree_watch::channel(path, TREE_WATCH_MAX_QUEUED_EVENTS);
        self.runtime.spawn(forward_tree_events(
            watcher,
            sender,
            Arc::downgrade(&self.client),
        ));
        Ok(watch)
    }

    pub(crate) fn state_watch(&self) -> ZooKeeperStateWatch {
        let mut watcher = self.state.clone();
        // A watch made after the session ended still reports how it ended
        // (the crate's watcher would wait forever).
        let current = watcher.state();
        ZooKeeperStateWatch {
            watcher,
            pending: current.is_terminated().then(|| convert_state(current)),
        }
    }

    pub(crate) async fn close(&self) {
        let Some(client) = self.lock().take() else {
            return;
        };
        let mut state = self.state.clone();
        // Dropping the last client handle makes the session task send
        // CloseSession; the server then deletes the session's ephemeral nodes
        // and the state becomes Closed.
        drop(client);
        let closed = async move {
            while !state.peek_state().is_terminated() {
                state.changed().await;
            }
        };
        // Bounded: a server that never answers lets the session expire
        // anyway. The timer runs on the session's runtime, so the caller
        // needs no tokio context.
        let bound = self.session_timeout;
        let waited = self
            .runtime
            .spawn(async move { tokio::time::timeout(bound, closed).await });
        // Err only if that runtime is shutting down: nothing left to wait for.
        let _ = waited.await;
    }
}

/// Session events of a ZooKeeper client.
#[derive(Debug)]
pub(crate) struct ZooKeeperStateWatch {
    watcher: zk::StateWatcher,
    pending: Option<SessionEvent>,
}

impl ZooKeeperStateWatch {
    pub(crate) async fn next(&mut self) -> SessionEvent {
        if let Some(event) = self.pending.take() {
            return event;
        }
        convert_state(self.watcher.changed().await)
    }
}

fn convert_state(state: zk::SessionState) -> SessionEvent {
    match state {
        zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
            SessionEvent::Connected
        }
        zk::SessionState::Disconnected => SessionEvent::Disconnected,
        // We never authenticate; a failed authentication ends the session
        // like an expiry does.
        zk::SessionState::Expired | zk::SessionState::AuthFailed => SessionEvent::Expired,
        zk::SessionState::Closed => SessionEvent::Closed,
    }
}

fn lock_client(client: &Mutex<Option<zk::Client>>) -> MutexGuard<'_, Option<zk::Client>> {
    // Only `take` and `clone` run under the lock; neither can leave the
    // option half-changed, so a poisoned lock is still consistent.
    client
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Moves the crate's watch events into the bounded [`TreeWatch`] queue until
/// the watch is dropped or the session ends.
///
/// After a reconnect the watch is registered again here: zookeeper-client
/// 0.11.2 re-sends one-shot watches on reconnect but not persistent ones
/// (its `resend_watches` never selects SetWatches2), so without this a tree
/// watch would go silent after the first connection loss. Only then is the
/// `Resync` queued, so the watcher's re-read cannot miss a later change.
async fn forward_tree_events(
    mut watcher: zk::PersistentWatcher,
    sender: TreeWatchSender,
    client: Weak<Mutex<Option<zk::Client>>>,
) {
    let mut disconnected = false;
    loop {
        let event = tokio::select! {
            event = watcher.changed() => event,
            () = sender.receiver_gone() => return,
        };
        match event.event_type {
            zk::EventType::NodeCreated => sender.send(TreeEventKind::Created, &event.path),
            zk::EventType::NodeDataChanged => sender.send(TreeEventKind::DataChanged, &event.path),
            zk::EventType::NodeDeleted => sender.send(TreeEventKind::Deleted, &event.path),
            // Recursive watches report no child-list changes; creates and
            // deletes of the children are reported instead.
            zk::EventType::NodeChildrenChanged => {}
            zk::EventType::Session => match event.session_state {
                zk::SessionState::Disconnected => disconnected = true,
                zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                    if !disconnected {
                        continue;
                    }
                    match rewatch(&client, sender.path()).await {
                        Ok(renewed) => {
                            // The new registration first, then drop the old:
                            // the crate removes a server watch when its last
                            // local watcher goes.
                            watcher = renewed;
                            disconnected = false;
                            sender.resync();
                        }
                        // Lost again: the next SyncConnected retries.
                        Err(zk::Error::ConnectionLoss) => {}
                        Err(error) => {
                            tracing::warn!(path = sender.path(), %error, "tree watch not renewed after reconnect; ending it");
                            sender.resync();
                            return;
                        }
                    }
                }
                state => {
                    debug_assert!(state.is_terminated(), "unknown session state {state}");
                    // The watch is dead with the session (and the crate
                    // panics on a further `changed`): Resync, then end.
                    sender.resync();
                    tracing::debug!(path = sender.path(), %state, "tree watch ended with its session");
                    return;
                }
            },
        }
    }
}

/// Registers the persistent recursive watch on `path` again.
async fn rewatch(
    client: &Weak<Mutex<Option<zk::Client>>>,
    path: &str,
) -> Result<zk::PersistentWatcher, zk::Error> {
    let client = client
        .upgrade()
        .and_then(|client| lock_client(&client).clone())
        .ok_or(zk::Error::ClientClosed)?;
    client
        .watch(path, zk::AddWatchMode::PersistentRecursive)
        .await
}

fn persistent_options() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

fn create_options(kind: NodeKind) -> zk::CreateOptions<'static> {
    match kind {
        NodeKind::Persistent => persistent_options(),
        NodeKind::Ephemeral => zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
    }
}

fn convert_stat(stat: &zk::Stat) -> Stat {
    Stat {
        version: stat.version,
        cversion: stat.cversion,
        // ZooKeeper's zxids and counts are never negative on a real node.
        created_txid: u64::try_from(stat.czxid).unwrap_or(0),
        modified_txid: u64::try_from(stat.mzxid).unwrap_or(0),
        ephemeral_owner: (stat.ephemeral_owner != 0)
            .then_some(SessionId(stat.ephemeral_owner as u64)),
        data_length: usize::try_from(stat.data_length).unwrap_or(0),
        num_children: usize::try_from(stat.num_children).unwrap_or(0),
    }
}

/// The crate's error as a [`CoordinationError`] kind. `version` is what the
/// caller expected, for `BadVersion`.
fn map_error(
    error: zk::Error,
    operation: &'static str,
    path: &str,
    version: Option<i32>,
    connection_timeout_ms: u64,
) -> CoordinationError {
    match error {
        zk::Error::NoNode => CoordinationError::NoNode {
            path: path.to_owned(),
        },
        zk::Error::NodeExists => CoordinationError::NodeExists {
            path: path.to_owned(),
        },
        zk::Error::BadVersion => CoordinationError::BadVersion {
            path: path.to_owned(),
            expected: version.unwrap_or(-1),
            actual: None,
        },
        zk::Error::NotEmpty => CoordinationError::NotEmpty {
            path: path.to_owned(),
            children: None,
        },
        zk::Error::SessionExpired => CoordinationError::SessionExpired,
        zk::Error::ConnectionLoss => CoordinationError::ConnectionLoss,
        zk::Error::ClientClosed => CoordinationError::Closed,
        zk::Error::Timeout => CoordinationError::Timeout {
            operation: format!("ZooKeeper {operation} {path}"),
            timeout_ms: connection_timeout_ms,
        },
        error => CoordinationError::ZooKeeper {
            operation,
            path: path.to_owned(),
            message: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_kinds_naming_the_path() {
        let map = |error| map_error(error, "set", "/a", Some(3), 100);
        assert!(
            matches!(map(zk::Error::NoNode), CoordinationError::NoNode { path } if path == "/a")
        );
        assert!(matches!(
            map(zk::Error::BadVersion),
            CoordinationError::BadVersion {
                expected: 3,
                actual: None,
                ..
            }
        ));
        assert!(matches!(
            map(zk::Error::NotEmpty),
            CoordinationError::NotEmpty { .. }
        ));
        assert!(matches!(
            map(zk::Error::NodeExists),
            CoordinationError::NodeExists { .. }
        ));
        assert!(matches!(
            map(zk::Error::SessionExpired),
            CoordinationError::SessionExpired
        ));
        assert!(matches!(
            map(zk::Error::ConnectionLoss),
            CoordinationError::ConnectionLoss
        ));
        assert!(matches!(
            map(zk::Error::ClientClosed),
            CoordinationError::Closed
        ));
        assert!(matches!(
            map(zk::Error::Timeout),
            CoordinationError::Timeout {
                timeout_ms: 100,
                ..
            }
        ));
        assert!(matches!(
            map(zk::Error::NoAuth),
            CoordinationError::ZooKeeper { .. }
        ));
    }

    #[test]
    fn stat_fields() {
        let zk_stat = zk::Stat {
            czxid: 7,
            mzxid: 9,
            pzxid: 9,
            ctime: 0,
            mtime: 0,
            version: 2,
            cversion: 1,
            aversion: 0,
            ephemeral_owner: 0x55,
            data_length: 4,
            num_children: 0,
        };
        let stat = convert_stat(&zk_stat);
        assert_eq!((stat.created_txid, stat.modified_txid), (7, 9));
        assert_eq!((stat.version, stat.cversion), (2, 1));
        assert_eq!(stat.ephemeral_owner, Some(SessionId(0x55)));
        assert_eq!((stat.data_length, stat.num_children), (4, 0));
        assert_eq!(
            convert_stat(&zk::Stat {
                ephemeral_owner: 0,
                ..zk_stat
            })
            .ephemeral_owner,
            None
        );
    }
}
