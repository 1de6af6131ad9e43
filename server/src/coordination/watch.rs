//! One-shot watches, as in ZooKeeper: a watch fires once with the first
//! matching event and is then gone; the watcher re-reads and re-registers.
//!
//! - A data watch on a path fires on `Created`, `DataChanged` or `Deleted` of
//!   that node. It may be set on a path that does not exist yet.
//! - A child watch on a path fires on `ChildrenChanged` (a child created or
//!   deleted) or `Deleted` (the node itself).
//!
//! Delivery uses a tokio oneshot channel, which holds at most one event, so a
//! slow watcher never blocks the store. Pending watches are capped; watches
//! whose receiver was dropped are pruned when the cap is reached.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::error::CoordinationError;

/// What happened to a watched node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventKind {
    /// The node was created.
    Created,
    /// The node was deleted.
    Deleted,
    /// The node's data was set.
    DataChanged,
    /// A child was created or deleted.
    ChildrenChanged,
}

/// One watch notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The watched path (for `ChildrenChanged`, the parent).
    pub path: String,
    /// What happened.
    pub kind: WatchEventKind,
}

/// Receives a single [`WatchEvent`]. Await it, or poll with `try_recv`. It
/// reports an error only if the store is dropped first.
pub type WatchReceiver = oneshot::Receiver<WatchEvent>;

/// Which kind of watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchKind {
    Data,
    Children,
}

/// Pending watches by path.
#[derive(Debug)]
pub(crate) struct WatchRegistry {
    data: HashMap<String, Vec<oneshot::Sender<WatchEvent>>>,
    children: HashMap<String, Vec<oneshot::Sender<WatchEvent>>>,
    pending: usize,
    max_watches: usize,
}

impl WatchRegistry {
    pub(crate) fn new(max_watches: usize) -> Self {
        Self {
            data: HashMap::new(),
            children: HashMap::new(),
            pending: 0,
            max_watches,
        }
    }

    /// Registers a watch on `path`.
    pub(crate) fn add(
        &mut self,
        kind: WatchKind,
        path: &str,
    ) -> Result<WatchReceiver, CoordinationError> {
        if self.pending >= self.max_watches {
            self.prune_dropped();
            if self.pending >= self.max_watches {
                return Err(CoordinationError::TooManyWatches {
                    max_watches: self.max_watches,
                });
            }
        }
        let (sender, receiver) = oneshot::channel();
        self.map(kind)
            .entry(path.to_owned())
            .or_default()
            .push(sender);
        self.pending += 1;
        Ok(receiver)
    }

    /// Fires and removes every `kind` watch on `path`.
    pub(crate) fn fire(&mut self, kind: WatchKind, path: &str, event_kind: WatchEventKind) {
        let Some(senders) = self.map(kind).remove(path) else {
            return;
        };
        self.pending -= senders.len();
        for sender in senders {
            // A dropped receiver just means nobody is listening any more.
            let _ = sender.send(WatchEvent {
                path: path.to_owned(),
                kind: event_kind,
            });
        }
    }

    /// Number of pending watches.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    fn map(&mut self, kind: WatchKind) -> &mut HashMap<String, Vec<oneshot::Sender<WatchEvent>>> {
        match kind {
            WatchKind::Data => &mut self.data,
            WatchKind::Children => &mut self.children,
        }
    }

    /// Drops watches whose receiver is gone.
    fn prune_dropped(&mut self) {
        let mut pending = 0;
        for map in [&mut self.data, &mut self.children] {
            map.retain(|_, senders| {
                senders.retain(|sender| !sender.is_closed());
                pending += senders.len();
                !senders.is_empty()
            });
        }
        self.pending = pending;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_then_is_gone() {
        let mut registry = WatchRegistry::new(10);
        let mut receiver = registry.add(WatchKind::Data, "/a").expect("room");
        registry.fire(WatchKind::Children, "/a", WatchEventKind::ChildrenChanged);
        assert!(receiver.try_recv().is_err(), "other kind does not fire");
        registry.fire(WatchKind::Data, "/a", WatchEventKind::DataChanged);
        registry.fire(WatchKind::Data, "/a", WatchEventKind::Deleted);
        assert_eq!(
            receiver.try_recv(),
            Ok(WatchEvent {
                path: "/a".into(),
                kind: WatchEventKind::DataChanged
            })
        );
        assert_eq!(registry.pending(), 0);
    }

    #[test]
    fn cap_counts_live_watches_only() {
        let mut registry = WatchRegistry::new(2);
        let _kept = registry.add(WatchKind::Data, "/a").expect("room");
        let dropped = registry.add(WatchKind::Children, "/b").expect("room");
        assert!(matches!(
            registry.add(WatchKind::Data, "/c"),
            Err(CoordinationError::TooManyWatches { max_watches: 2 })
        ));
        drop(dropped);
        assert!(registry.add(WatchKind::Data, "/c").is_ok(), "pruned");
        assert_eq!(registry.pending(), 2);
    }
}
