//! Keyed deadlines, Kafka's coordinator timer without threads: scheduling a
//! key again replaces its deadline, cancelling removes it, and the runtime
//! learns the earliest deadline from [`Timers::next_deadline_ms`] and calls
//! back with the time.

use std::collections::{BTreeSet, HashMap};

/// What a deadline is for. Handlers look the group and member up again when
/// the deadline passes, so a key whose subject is gone expires harmlessly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKey {
    /// A member's (or pending member's) session: no heartbeat by then removes it.
    Heartbeat { group: String, member: String },
    /// The join phase of a rebalance (initial delay or rebalance timeout).
    Join { group: String },
    /// Members that have not sent SyncGroup after the join phase.
    Sync { group: String },
    /// The periodic offset and group expiry.
    Cleanup,
}

/// Deadlines by key, and keys by deadline.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    by_key: HashMap<TimerKey, i64>,
    by_deadline: BTreeSet<(i64, TimerKey)>,
}

impl Timers {
    /// Sets `key` to fire at `deadline_ms`, replacing any earlier schedule.
    pub(crate) fn schedule(&mut self, key: TimerKey, deadline_ms: i64) {
        self.cancel(&key);
        self.by_deadline.insert((deadline_ms, key.clone()));
        self.by_key.insert(key, deadline_ms);
        debug_assert_eq!(self.by_key.len(), self.by_deadline.len());
    }

    /// Removes `key` if scheduled.
    pub(crate) fn cancel(&mut self, key: &TimerKey) {
        if let Some(deadline_ms) = self.by_key.remove(key) {
            let removed = self.by_deadline.remove(&(deadline_ms, key.clone()));
            assert!(removed, "timer indexes disagree for {key:?}");
        }
    }

    /// The deadline of `key`, if scheduled.
    #[cfg(test)]
    pub(crate) fn deadline_of(&self, key: &TimerKey) -> Option<i64> {
        self.by_key.get(key).copied()
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline_ms(&self) -> Option<i64> {
        self.by_deadline
            .first()
            .map(|(deadline_ms, _)| *deadline_ms)
    }

    /// Removes and returns the earliest key due at `now_ms`, with its deadline.
    pub(crate) fn pop_due(&mut self, now_ms: i64) -> Option<(i64, TimerKey)> {
        let (deadline_ms, _) = self.by_deadline.first()?;
        if *deadline_ms > now_ms {
            return None;
        }
        let (deadline_ms, key) = self.by_deadline.pop_first()?;
        self.by_key.remove(&key);
        Some((deadline_ms, key))
    }

    /// Scheduled keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Removes every key.
    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
        self.by_deadline.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(group: &str) -> TimerKey {
        TimerKey::Join {
            group: group.to_owned(),
        }
    }

    #[test]
    fn rescheduling_replaces_and_pop_follows_deadline_order() {
        let mut timers = Timers::default();
        timers.schedule(join("a"), 50);
        timers.schedule(join("b"), 20);
        timers.schedule(join("a"), 10);
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.next_deadline_ms(), Some(10));
        assert_eq!(timers.pop_due(5), None);
        assert_eq!(timers.pop_due(30), Some((10, join("a"))));
        assert_eq!(timers.pop_due(30), Some((20, join("b"))));
        assert_eq!(timers.pop_due(30), None);
        timers.schedule(TimerKey::Cleanup, 1);
        timers.cancel(&TimerKey::Cleanup);
        assert_eq!(timers.next_deadline_ms(), None);
    }
}
