//! The partition log: an append-only sequence of Kafka RecordBatch v2 batches addressed by
//! offset, stored as segments with sparse indexes, owned by exactly one shard.
//!
//! Life of an append (follow it top to bottom): [`PartitionLog::append`] validates the bytes,
//! assigns offsets and a place in the active segment (rolling it if needed) and queues them;
//! the log's writer task writes queued batches with one vectored io_uring write per round
//! ([`append`]); the syncer task makes them durable per the topic's [`Durability`]
//! ([`sync`]). Each append gets [`AppendReceipt`] futures for "written" and "durable".
//!
//! Old data goes per the topic's [`CleanupPolicy`]: whole segments by age or size
//! ([`PartitionLog::enforce_retention`]), or all but the latest record per key
//! ([`PartitionLog::compact`], see the `compaction` module); the owner calls these periodically.

mod append;
mod checkpoint;
mod compaction;
mod config;
mod leader_epoch;
mod log_dir;
mod offset_checkpoint;
mod offset_index;
mod open;
mod read;
mod recovery;
mod retention;
mod scan;
mod segment;
mod sync;
mod time_index;
mod truncate;
mod write_failure;

pub use append::{AppendReceipt, ValidatedRecordSet, WaitOffset};
pub use compaction::{CompactionOutcome, OFFSET_MAP_BYTES_MAX};
pub use config::{
    CleanupPolicy, Durability, LogConfig, DEFAULT_DELETE_RETENTION_MS, DEFAULT_MAX_MESSAGE_BYTES,
};
pub use leader_epoch::{
    EpochEntry, LeaderEpochCache, LEADER_EPOCH_CHECKPOINT_FILE, UNDEFINED_EPOCH,
    UNDEFINED_EPOCH_OFFSET,
};
pub use log_dir::{LogDir, LogDirClose, ShutdownScope};
pub use offset_checkpoint::{
    OffsetCheckpointFile, PartitionOffsets, REPLICATION_OFFSET_CHECKPOINT_FILE,
};
pub use open::OpenReport;
pub use read::{FileRange, TimestampLookup};
pub use recovery::{recover_segment, RecoveryReport};
pub use retention::RetentionOutcome;
pub use write_failure::{file_system_space, FileSystemSpace, RESUME_FREE_BYTES_MIN};

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use tokio::sync::{watch, Notify};

use crate::error::{Error, Result};
use segment::Segment;

/// Bytes of appends queued but not yet written before `append` waits: bounds memory per log.
pub const PENDING_WRITE_BYTES_MAX: u64 = 64 << 20;

/// Where the log's background work has got to. Waiters on appends watch this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Offset after the last batch whose write completed: the visible log end offset.
    pub written_offset: i64,
    /// Offset after the last batch that is durable per the log's policy.
    pub durable_offset: i64,
    /// Set once a write or sync failed; the log accepts nothing more.
    pub failed: bool,
    /// Write rounds undone because the file system was full (see `write_failure`), counted
    /// since open. An append's waiter compares it with the count when it was made.
    pub aborts: u64,
    /// The offset the log went back to at each of the latest [`ABORTS_REMEMBERED`] aborts, at
    /// index `abort number % ABORTS_REMEMBERED` (abort number 1 is the first): a waiter whose
    /// batch ends past the offset of the first abort after its append was discarded.
    pub abort_offsets: [i64; ABORTS_REMEMBERED],
}

/// Aborts a waiter can look back over. A waiter that slept through more than this many
/// (each one a failed write on a full disk) reports its append failed, which is safe: the
/// producer retries, and an idempotent producer's retry of a batch that was in fact written is
/// acknowledged as a duplicate.
pub const ABORTS_REMEMBERED: usize = 8;

impl Progress {
    /// Whether a batch ending before `target_offset`, appended when `aborts_at_append` aborts had
    /// happened, was discarded by a later one (its offsets may since belong to other batches).
    pub fn discarded(&self, aborts_at_append: u64, target_offset: i64) -> bool {
        if self.aborts <= aborts_at_append {
            return false;
        }
        if self.aborts - aborts_at_append > ABORTS_REMEMBERED as u64 {
            return true;
        }
        let first_after = aborts_at_append + 1;
        target_offset > self.abort_offsets[(first_after % ABORTS_REMEMBERED as u64) as usize]
    }
}

/// A batch queued for the writer, already placed in its segment.
struct PendingWrite {
    segment_base: i64,
    file: crate::io::SharedFile,
    position: u64,
    /// The patched first 16 bytes (offset, length, leader epoch).
    prefix: [u8; crate::batch::PATCHED_PREFIX_BYTES],
    /// The producer's bytes from byte 16 on, untouched.
    body: bytes::Bytes,
    next_offset: i64,
}

struct LogState {
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    /// Offset the next append gets.
    next_offset: i64,
    /// Everything below it is on disk (synced); recovery scans from its segment.
    recovery_point: i64,
    pending: VecDeque<PendingWrite>,
    pending_bytes: u64,
    /// Segments written since the last sync, and whether the directory changed.
    dirty_segments: Vec<i64>,
    dir_dirty: bool,
    /// Segments whose index files the syncer is writing right now (compaction must not replace
    /// those files under it).
    index_writes_in_flight: Vec<i64>,
    /// Bumped by every truncation, so work planned before one can tell.
    truncations: u64,
    /// Leader epoch -> first offset (KIP-101), mirrored in `leader-epoch-checkpoint`.
    leader_epochs: leader_epoch::LeaderEpochCache,
    compaction: compaction::CompactionState,
    /// Set while the writer undoes a write the full file system refused (see
    /// `write_failure`): appends are refused until the log is consistent again.
    rewinding: bool,
    /// Set when a write failed for lack of space, cleared by the next write that succeeds:
    /// meanwhile an append is refused up front unless the file system has room for it.
    space_low: bool,
    closed: bool,
}

/// One partition's log. Single-shard: use it behind an `Rc` on the shard that owns it.
pub struct PartitionLog {
    dir: PathBuf,
    /// The file system the log lives on (the real one, or a simulated disk in crash tests).
    fs: crate::io::Fs,
    state: RefCell<LogState>,
    progress: watch::Sender<Progress>,
    /// The high watermark: what consumers may read up to. Kept apart from [`Progress`] so that a
    /// long-polling fetch wakes only when it moves, not on every write or sync.
    /// Invariant: `log_start_offset <= high_watermark <= log_end_offset`.
    high_watermark: watch::Sender<i64>,
    /// Whether the writer moves the high watermark to the log end after every write (a partition
    /// with no followers); otherwise the replica owner sets it.
    high_watermark_follows_log_end: Cell<bool>,
    writer_wakeup: Notify,
    syncer_wakeup: Notify,
    /// Who records this log's clean shutdown (the log itself, or the log dir above it).
    shutdown_scope: ShutdownScope,
    /// Background tasks still running (writer, syncer); close waits for them.
    tasks_running: Cell<u32>,
    tasks_done: Notify,
}

impl PartitionLog {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> LogConfig {
        self.state.borrow().config.clone()
    }

    /// Replaces the configuration (a topic config change). Durability changes apply to the
    /// next sync round.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate().map_err(|detail| Error::Corrupt {
            what: "log config",
            detail,
        })?;
        self.state.borrow_mut().config = config;
        self.syncer_wakeup.notify_one();
        Ok(())
    }

    pub fn log_start_offset(&self) -> i64 {
        self.state.borrow().log_start_offset
    }

    /// The visible log end offset: offset after the last batch whose write completed.
    pub fn log_end_offset(&self) -> i64 {
        self.progress.borrow().written_offset
    }

    /// Offset after the last batch that is durable per the durability policy.
    pub fn durable_offset(&self) -> i64 {
        self.progress.borrow().durable_offset
    }

    /// The offset below which everything is durable per the log's durability policy (fsynced
    /// under `sync`; under `none` it follows the writes): what a follower reports as its
    /// progress when only durable data may count towards the high watermark. It never passes
    /// the log end offset and follows it as appends become durable ([`Self::subscribe`] wakes
    /// on each move).
    pub fn durable_end_offset(&self) -> i64 {
        self.durable_offset()
    }

    /// Offset the next append will get (includes queued, unwritten appends).
    pub fn next_offset(&self) -> i64 {
        self.state.borrow().next_offset
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// Moves the high watermark forward (the replica owner decides it: a leader's is the
    /// minimum log end over the ISR, a follower's the leader's). It is clamped to
    /// `[log_start_offset, log_end_offset]` and never goes back: a smaller value (e.g. a stale
    /// fetch response) changes nothing. Only truncation below it lowers it (or
    /// [`Self::reset_high_watermark`]). Subscribers are woken only if it changed.
    pub fn set_high_watermark(&self, offset: i64) {
        let clamped = self.clamp_to_log(offset);
        self.high_watermark.send_if_modified(|current| {
            let changed = clamped > *current;
            *current = (*current).max(clamped);
            changed
        });
    }

    /// Sets the high watermark to `offset` (clamped to `[log_start_offset, log_end_offset]`)
    /// even if that lowers it: for restoring it from the `replication-offset-checkpoint` after
    /// open (a log opens with its high watermark at its end, which a replicated partition must
    /// not expose before its leader confirms it).
    pub fn reset_high_watermark(&self, offset: i64) {
        let clamped = self.clamp_to_log(offset);
        self.high_watermark.send_if_modified(|current| {
            let changed = clamped != *current;
            *current = clamped;
            changed
        });
    }

    fn clamp_to_log(&self, offset: i64) -> i64 {
        let end = self.log_end_offset();
        let start = self.state.borrow().log_start_offset;
        offset.clamp(start.min(end), end)
    }

    /// Makes the writer move the high watermark to the log end after every write (for a
    /// partition that has no followers), and moves it there now.
    pub fn set_high_watermark_follows_log_end(&self, follows: bool) {
        self.high_watermark_follows_log_end.set(follows);
        if follows {
            self.set_high_watermark(self.log_end_offset());
        }
    }

    /// A receiver that changes only when the high watermark moves (e.g. to wake long-poll
    /// fetches, which read up to it).
    pub fn subscribe_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    pub fn size_bytes(&self) -> u64 {
        self.state
            .borrow()
            .segments
            .values()
            .map(|segment| segment.size_bytes)
            .sum()
    }

    /// The largest batch timestamp in the log, if it has any batch.
    pub fn max_timestamp_ms(&self) -> Option<i64> {
        self.state
            .borrow()
            .segments
            .values()
            .map(|segment| segment.max_timestamp_ms)
            .max()
            .filter(|ms| *ms >= 0)
    }

    pub fn segment_count(&self) -> usize {
        self.state.borrow().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.state.borrow().segments.keys().copied().collect()
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// A receiver that changes whenever written or durable offsets move (e.g. to wake long-poll
    /// fetches).
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    fn check_open(&self) -> Result<()> {
        if self.state.borrow().closed || self.progress.borrow().failed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Write rounds undone for lack of space since open (see `write_failure`).
    pub fn write_aborts(&self) -> u64 {
        self.progress.borrow().aborts
    }

    /// Marks the log failed after an I/O error in the background and wakes every waiter.
    fn fail(&self, what: &str, error: &Error) {
        tracing::error!(dir = %self.dir.display(), %error, "{what} failed; the log is now offline");
        self.progress.send_modify(|progress| progress.failed = true);
        self.state.borrow_mut().closed = true;
        self.writer_wakeup.notify_one();
        self.syncer_wakeup.notify_one();
    }
}

#[cfg(test)]
mod crash_simulation_tests;
#[cfg(test)]
mod hot_path_tests;
#[cfg(test)]
mod replication_tests;
#[cfg(test)]
mod tests;
