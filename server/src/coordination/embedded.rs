//! The embedded backend of [`super::Coordination`]: one session of the
//! in-process [`CoordinationStore`].
//!
//! The session never expires (there is no network to lose); it ends on
//! `close` or when the last client clone is dropped, deleting its ephemeral
//! nodes either way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use super::client::{MultiOp, NodeKind, SessionEvent};
use super::error::CoordinationError;
use super::node::{CreateMode, SessionId, Stat};
use super::store::{CoordinationStore, TxnOp};
use super::tree_watch::TreeWatch;

#[derive(Debug)]
pub(crate) struct EmbeddedSession {
    store: Arc<CoordinationStore>,
    session: SessionId,
    state: watch::Sender<SessionEvent>,
    closed: AtomicBool,
}

impl EmbeddedSession {
    pub(crate) fn open(store: Arc<CoordinationStore>) -> Result<Self, CoordinationError> {
        let session = store.open_session()?;
        Ok(Self {
            store,
            session,
            state: watch::Sender::new(SessionEvent::Connected),
            closed: AtomicBool::new(false),
        })
    }

    pub(crate) fn session_id(&self) -> i64 {
        // Embedded session ids count up from 1, far below i64::MAX.
        i64::try_from(self.session.0).unwrap_or(i64::MAX)
    }

    fn check_open(&self) -> Result<(), CoordinationError> {
        if self.closed.load(Ordering::Acquire) {
            Err(CoordinationError::Closed)
        } else {
            Ok(())
        }
    }

    fn mode(&self, kind: NodeKind) -> CreateMode {
        match kind {
            NodeKind::Persistent => CreateMode::Persistent,
            NodeKind::Ephemeral => CreateMode::Ephemeral {
                session: self.session,
            },
        }
    }

    pub(crate) fn create(
        &self,
        path: &str,
        data: Bytes,
        kind: NodeKind,
    ) -> Result<Stat, CoordinationError> {
        self.check_open()?;
        self.store.create(path, data, self.mode(kind))
    }

    pub(crate) fn get(&self, path: &str) -> Result<(Bytes, Stat), CoordinationError> {
        self.check_open()?;
        self.store.get(path)
    }

    pub(crate) fn exists(&self, path: &str) -> Result<Option<Stat>, CoordinationError> {
        self.check_open()?;
        self.store.exists(path)
    }

    pub(crate) fn set(
        &self,
        path: &str,
        data: Bytes,
        version: Option<i32>,
    ) -> Result<Stat, CoordinationError> {
        self.check_open()?;
        self.store.set(path, data, version)
    }

    pub(crate) fn delete(&self, path: &str, version: Option<i32>) -> Result<(), CoordinationError> {
        self.check_open()?;
        self.store.delete(path, version)
    }

    pub(crate) fn children(&self, path: &str) -> Result<Vec<String>, CoordinationError> {
        self.check_open()?;
        self.store.children(path)
    }

    pub(crate) fn multi(&self, ops: &[MultiOp]) -> Result<(), CoordinationError> {
        self.check_open()?;
        let ops: Vec<TxnOp> = ops
            .iter()
            .map(|op| match op {
                MultiOp::Check { path, version } => TxnOp::Check {
                    path: path.clone(),
                    version: *version,
                },
                MultiOp::Create { path, data, kind } => TxnOp::Create {
                    path: path.clone(),
                    data: data.clone(),
                    mode: self.mode(*kind),
                },
                MultiOp::Set {
                    path,
                    data,
                    version,
                } => TxnOp::Set {
                    path: path.clone(),
                    data: data.clone(),
                    version: *version,
                },
                MultiOp::Delete { path, version } => TxnOp::Delete {
                    path: path.clone(),
                    version: *version,
                },
            })
            .collect();
        self.store.multi(&ops).map(|_| ())
    }

    pub(crate) fn watch_tree(&self, path: &str) -> Result<TreeWatch, CoordinationError> {
        self.check_open()?;
        self.store.watch_tree_in_session(path, self.session)
    }

    pub(crate) fn state_receiver(&self) -> watch::Receiver<SessionEvent> {
        self.state.subscribe()
    }

    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Unknown only if the store lost the session some other way; either
        // way its ephemeral nodes are gone.
        let _ = self.store.close_session(self.session);
        self.state.send_replace(SessionEvent::Closed);
    }
}

impl Drop for EmbeddedSession {
    fn drop(&mut self) {
        self.close();
    }
}
