//! Counts of the io_uring operations this thread (one shard) submitted, for the broker's
//! metrics.
//!
//! Each shard is one thread with its own ring, so the counters are thread-locals: plain cells
//! that only their shard writes, with no atomic and no cache line shared with another core.
//! Another thread reads them only by asking the shard (a message run on that thread), which
//! calls [`shard_io_stats`].

use std::cell::Cell;

/// What one shard's thread has submitted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    /// io_uring operations Strom submitted itself (file reads and writes, fdatasync, socket
    /// writes, splices). tokio-uring's own socket reads and accepts are not counted.
    pub submissions: u64,
    /// `fdatasync` operations submitted.
    pub fsyncs: u64,
}

thread_local! {
    static SUBMISSIONS: Cell<u64> = const { Cell::new(0) };
    static FSYNCS: Cell<u64> = const { Cell::new(0) };
}

/// Counts one submitted operation.
pub(super) fn count_submission() {
    SUBMISSIONS.with(|count| count.set(count.get().wrapping_add(1)));
}

/// Counts one submitted fdatasync (also counted as a submission by the op itself).
pub(super) fn count_fsync() {
    FSYNCS.with(|count| count.set(count.get().wrapping_add(1)));
}

/// This thread's counts (call it on the shard whose counts you want).
pub fn shard_io_stats() -> IoStats {
    IoStats {
        submissions: SUBMISSIONS.with(Cell::get),
        fsyncs: FSYNCS.with(Cell::get),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_per_thread() {
        count_submission();
        count_submission();
        count_fsync();
        let here = shard_io_stats();
        assert!(here.submissions >= 2 && here.fsyncs >= 1, "{here:?}");
        let elsewhere = std::thread::spawn(shard_io_stats)
            .join()
            .expect("thread reading its counters");
        assert_eq!(elsewhere, IoStats::default(), "a new thread starts at zero");
    }
}
