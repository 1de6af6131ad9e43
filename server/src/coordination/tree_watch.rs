//! Persistent recursive watches: every create, data change and delete at or
//! below a path, until the watch is dropped (ZooKeeper 3.6's
//! `AddWatch(PERSISTENT_RECURSIVE)`), for both backends.
//!
//! Each watch has its own bounded queue, so a slow watcher never blocks the
//! store or the ZooKeeper session and never grows memory without bound. When
//! the queue is full, the queued events are dropped and replaced by a single
//! [`TreeEventKind::Resync`]; further events are dropped until the watcher has
//! taken the `Resync`. A watcher that sees `Resync` re-reads everything it
//! cares about: it then observes every change that was dropped, because the
//! re-read happens after the `Resync` was taken.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Events one watch may hold before it overflows into a `Resync`. Metadata
/// changes come in bursts of a few per topic operation; 1024 absorbs a large
/// CreateTopics while bounding a stuck watcher to ~100 KiB.
pub const TREE_WATCH_MAX_QUEUED_EVENTS: usize = 1024;

/// What happened below a watched path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TreeEventKind {
    /// A node was created.
    Created,
    /// A node's data was set.
    DataChanged,
    /// A node was deleted.
    Deleted,
    /// Events were dropped (the queue overflowed, or the connection to
    /// ZooKeeper was lost and re-established): re-read everything. The event's
    /// path is the watched path.
    Resync,
}

/// One change seen by a [`TreeWatch`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TreeEvent {
    /// What happened.
    pub kind: TreeEventKind,
    /// The node it happened to (the watched path itself for `Resync`).
    pub path: String,
}

#[derive(Debug)]
struct Queue {
    events: VecDeque<TreeEvent>,
    /// A `Resync` is queued and not yet taken: drop everything else.
    resync_pending: bool,
    /// No more events will come (session ended).
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    path: String,
    max_events: usize,
    queue: Mutex<Queue>,
    /// Wakes the receiver (one receiver per watch).
    event_ready: Notify,
    /// Set when the [`TreeWatch`] is dropped, so senders can forget it.
    receiver_gone: AtomicBool,
    /// Wakes a forwarding task waiting for the receiver to go.
    receiver_gone_notify: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is a plain VecDeque: a panic while holding the lock cannot
        // leave it inconsistent, so recover the guard.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Creates a watch on `path` and its sending half.
pub(crate) fn channel(path: &str, max_events: usize) -> (TreeWatchSender, TreeWatch) {
    assert!(
        max_events >= 1,
        "a tree watch queue holds at least the Resync"
    );
    let shared = Arc::new(Shared {
        path: path.to_owned(),
        max_events,
        queue: Mutex::new(Queue {
            events: VecDeque::new(),
            resync_pending: false,
            closed: false,
        }),
        event_ready: Notify::new(),
        receiver_gone: AtomicBool::new(false),
        receiver_gone_notify: Notify::new(),
    });
    (
        TreeWatchSender {
            shared: Arc::clone(&shared),
        },
        TreeWatch { shared },
    )
}

/// The store's or session's end of a [`TreeWatch`]. Never blocks.
#[derive(Debug)]
pub(crate) struct TreeWatchSender {
    shared: Arc<Shared>,
}

impl TreeWatchSender {
    /// The watched path.
    pub(crate) fn path(&self) -> &str {
        &self.shared.path
    }

    /// Whether `path` is the watched path or below it.
    pub(crate) fn covers(&self, path: &str) -> bool {
        covers(&self.shared.path, path)
    }

    /// Queues an event, or overflows into a `Resync`.
    pub(crate) fn send(&self, kind: TreeEventKind, path: &str) {
        let mut queue = self.shared.lock();
        if queue.closed || queue.resync_pending {
            return;
        }
        if queue.events.len() >= self.shared.max_events {
            queue.events.clear();
            queue.events.push_back(TreeEvent {
                kind: TreeEventKind::Resync,
                path: self.shared.path.clone(),
            });
            queue.resync_pending = true;
        } else {
            queue.events.push_back(TreeEvent {
                kind,
                path: path.to_owned(),
            });
        }
        drop(queue);
        self.shared.event_ready.notify_one();
    }

    /// Tells the watcher that events may have been missed.
    pub(crate) fn resync(&self) {
        let mut queue = self.shared.lock();
        if queue.closed || queue.resync_pending {
            return;
        }
        queue.events.clear();
        queue.events.push_back(TreeEvent {
            kind: TreeEventKind::Resync,
            path: self.shared.path.clone(),
        });
        queue.resync_pending = true;
        drop(queue);
        self.shared.event_ready.notify_one();
    }

    /// Ends the watch: the watcher gets what is queued, then `None`.
    pub(crate) fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.event_ready.notify_one();
    }

    /// Whether the [`TreeWatch`] was dropped.
    pub(crate) fn is_receiver_gone(&self) -> bool {
        self.shared.receiver_gone.load(Ordering::Acquire)
    }

    /// Resolves once the [`TreeWatch`] is dropped.
    pub(crate) async fn receiver_gone(&self) {
        loop {
            let notified = self.shared.receiver_gone_notify.notified();
            if self.is_receiver_gone() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TreeWatchSender {
    fn drop(&mut self) {
        // The last sender going means no more events: let the watcher see `None`.
        self.close();
    }
}

/// A persistent recursive watch. Dropping it removes the watch.
#[derive(Debug)]
pub struct TreeWatch {
    shared: Arc<Shared>,
}

impl TreeWatch {
    /// The watched path.
    pub fn path(&self) -> &str {
        &self.shared.path
    }

    /// The next event; `None` once the watch has ended (its session ended or
    /// the store was dropped) and every queued event was taken.
    pub async fn next(&mut self) -> Option<TreeEvent> {
        let shared = Arc::clone(&self.shared);
        loop {
            // Register interest before looking, so a send between the look
            // and the await is not missed (notify_one also stores a permit).
            let notified = shared.event_ready.notified();
            match self.take() {
                Taken::Event(event) => return Some(event),
                Taken::Closed => return None,
                Taken::Empty => notified.await,
            }
        }
    }

    /// The next event if one is queued, without waiting.
    pub fn try_next(&mut self) -> Option<TreeEvent> {
        match self.take() {
            Taken::Event(event) => Some(event),
            Taken::Closed | Taken::Empty => None,
        }
    }

    fn take(&mut self) -> Taken {
        let mut queue = self.shared.lock();
        match queue.events.pop_front() {
            Some(event) => {
                if event.kind == TreeEventKind::Resync {
                    queue.resync_pending = false;
                }
                Taken::Event(event)
            }
            None if queue.closed => Taken::Closed,
            None => Taken::Empty,
        }
    }
}

impl Drop for TreeWatch {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
        self.shared.receiver_gone_notify.notify_one();
    }
}

enum Taken {
    Event(TreeEvent),
    Closed,
    Empty,
}

/// Whether `path` is `watched` or below it.
pub(crate) fn covers(watched: &str, path: &str) -> bool {
    if watched == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(watched) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: TreeEventKind, path: &str) -> TreeEvent {
        TreeEvent {
            kind,
            path: path.to_owned(),
        }
    }

    #[test]
    fn covers_the_path_and_below_only() {
        assert!(covers("/a", "/a"));
        assert!(covers("/a", "/a/b/c"));
        assert!(!covers("/a", "/ab"));
        assert!(!covers("/a", "/"));
        assert!(covers("/", "/anything"));
    }

    #[test]
    fn overflow_becomes_one_resync_then_delivery_resumes() {
        let (sender, mut watch) = channel("/w", 2);
        sender.send(TreeEventKind::Created, "/w/1");
        sender.send(TreeEventKind::Created, "/w/2");
        sender.send(TreeEventKind::Created, "/w/3");
        sender.send(TreeEventKind::Deleted, "/w/1");
        assert_eq!(watch.try_next(), Some(event(TreeEventKind::Resync, "/w")));
        assert_eq!(watch.try_next(), None, "dropped until Resync was taken");
        sender.send(TreeEventKind::DataChanged, "/w/2");
        assert_eq!(
            watch.try_next(),
            Some(event(TreeEventKind::DataChanged, "/w/2"))
        );
    }

    #[test]
    fn resync_replaces_queued_events_and_close_ends_after_them() {
        let (sender, mut watch) = channel("/w", 8);
        sender.send(TreeEventKind::Created, "/w/1");
        sender.resync();
        sender.resync();
        sender.close();
        sender.send(TreeEventKind::Created, "/w/2");
        assert_eq!(watch.try_next(), Some(event(TreeEventKind::Resync, "/w")));
        assert_eq!(watch.try_next(), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn next_waits_for_a_send_from_another_thread_and_ends_on_drop_of_sender() {
        let (sender, mut watch) = channel("/w", 8);
        let thread = std::thread::spawn(move || {
            sender.send(TreeEventKind::Created, "/w/x");
            // Dropping the sender closes the watch.
        });
        assert_eq!(
            watch.next().await,
            Some(event(TreeEventKind::Created, "/w/x"))
        );
        thread.join().expect("sender thread");
        assert_eq!(watch.next().await, None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sender_learns_when_the_watch_is_dropped() {
        let (sender, watch) = channel("/w", 8);
        assert!(!sender.is_receiver_gone());
        drop(watch);
        sender.receiver_gone().await;
        assert!(sender.is_receiver_gone());
    }
}
