//! Appending: validate, assign offsets and positions, queue; the writer task writes queued
//! batches in order with one vectored write per round, so concurrent appends to a partition are
//! coalesced without reordering.
//!
//! Zero copy: the producer's bytes are written as received. The only bytes the broker changes,
//! `baseOffset` and `partitionLeaderEpoch` (outside the CRC), live in the first 16 bytes of a
//! batch; those 16 bytes go out from a small patched copy as their own iovec, and the rest of the
//! batch goes out from the network buffer itself.

use bytes::{Bytes, BytesMut};

use super::checkpoint::{self, RECOVERY_POINT_FILE};
use super::segment::Segment;
use super::{PartitionLog, PendingWrite, PENDING_WRITE_BYTES_MAX};
use crate::batch::{
    patched_prefix, split_record_set, validate_batch, validate_stored_batch, BatchError,
    BatchHeader, PATCHED_PREFIX_BYTES,
};
use crate::error::{Error, IoContext, Result};
use crate::io::SharedFile;

/// Batches written in one vectored write (two iovecs each, under IOV_MAX).
const WRITE_ROUND_BATCHES_MAX: usize = 500;
/// Bytes written in one round, so one huge backlog does not delay every waiter behind it.
const WRITE_ROUND_BYTES_MAX: u64 = 8 << 20;

/// A record set that passed validation: its batches' byte ranges and headers.
#[derive(Debug, Clone)]
pub struct ValidatedRecordSet {
    ranges: Vec<std::ops::Range<usize>>,
    headers: Vec<BatchHeader>,
    record_set_bytes: usize,
}

impl ValidatedRecordSet {
    /// The headers of the record set's batches, in order.
    pub fn headers(&self) -> &[BatchHeader] {
        &self.headers
    }
}

/// How an append gets its batches' base offsets and leader epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// A leader's append: offsets assigned from the log end, every batch stamped with the
    /// epoch.
    Assign { leader_epoch: i32 },
    /// A follower's append: the leader's offsets and epochs, kept as they are.
    Keep,
}

/// Splits and validates a record set, each batch with `validate` and at most
/// `max_batch_bytes` long.
fn validate_with(
    record_set: &Bytes,
    max_batch_bytes: usize,
    validate: fn(&[u8]) -> std::result::Result<BatchHeader, BatchError>,
) -> Result<ValidatedRecordSet> {
    let ranges = split_record_set(record_set)?;
    let mut headers = Vec::with_capacity(ranges.len());
    for range in &ranges {
        let len = range.len();
        if len > max_batch_bytes {
            return Err(Error::MessageTooLarge {
                size_bytes: len,
                max_bytes: max_batch_bytes,
            });
        }
        headers.push(validate(record_set.get(range.clone()).unwrap_or(&[]))?);
    }
    Ok(ValidatedRecordSet {
        ranges,
        headers,
        record_set_bytes: record_set.len(),
    })
}

/// Resolves when the log has reached an offset (written, or durable).
#[derive(Debug)]
pub struct WaitOffset {
    progress: tokio::sync::watch::Receiver<super::Progress>,
    target_offset: i64,
    durable: bool,
    /// [`super::Progress::aborts`] when the append was made: a later abort may have discarded
    /// it.
    aborts_at_append: u64,
}

impl WaitOffset {
    /// Waits until the offset is reached; fails if the log failed or was dropped first, or
    /// with [`Error::NoSpace`] if the append's write was undone because the disk was full.
    pub async fn wait(mut self) -> Result<()> {
        let target = self.target_offset;
        let durable = self.durable;
        loop {
            let seen = self.aborts_at_append;
            let progress = *self
                .progress
                .wait_for(|progress| {
                    progress.failed
                        || progress.aborts != seen
                        || if durable {
                            progress.durable_offset >= target
                        } else {
                            progress.written_offset >= target
                        }
                })
                .await
                .map_err(|_| Error::Closed)?;
            if progress.failed {
                return Err(Error::Closed);
            }
            if progress.aborts == seen {
                return Ok(());
            }
            // Checked before "reached": after an abort the offsets are handed out again, so
            // the log reaching the target says nothing about this append's batches.
            if progress.discarded(seen, target) {
                return Err(Error::NoSpace {
                    dir: String::from("the log (write undone)"),
                });
            }
            // Written before the abort: later aborts go back no further than that one.
            self.aborts_at_append = progress.aborts;
        }
    }
}

/// What an append was given, and how to wait for it.
#[derive(Debug)]
pub struct AppendReceipt {
    pub base_offset: i64,
    pub last_offset: i64,
    /// One subscription to the log's progress, shared by whichever wait the caller picks: an
    /// append is on the produce path, and a caller needs only one of the two.
    progress: tokio::sync::watch::Receiver<super::Progress>,
    /// The log's abort count when the append was made (see [`WaitOffset`]).
    aborts_at_append: u64,
}

impl AppendReceipt {
    fn wait(
        &self,
        progress: tokio::sync::watch::Receiver<super::Progress>,
        durable: bool,
    ) -> WaitOffset {
        WaitOffset {
            progress,
            target_offset: self.last_offset + 1,
            durable,
            aborts_at_append: self.aborts_at_append,
        }
    }

    /// Resolves when the batches are written (visible to readers).
    pub fn written(&self) -> WaitOffset {
        self.wait(self.progress.clone(), false)
    }

    /// Resolves when the batches are durable per the log's durability policy.
    pub fn durable(&self) -> WaitOffset {
        self.wait(self.progress.clone(), true)
    }

    /// The one wait a caller needs (durable or written), without another subscription.
    pub fn into_wait(self, durable: bool) -> WaitOffset {
        let progress = self.progress.clone();
        self.wait(progress, durable)
    }
}

impl PartitionLog {
    /// Appends a record set (one or more RecordBatch v2, as a producer sent them). On any
    /// validation error nothing is appended. Waits only if too many bytes are queued.
    pub async fn append(&self, record_set: Bytes, leader_epoch: i32) -> Result<AppendReceipt> {
        let validated = self.validate_record_set(&record_set)?;
        self.append_validated(record_set, validated, leader_epoch)
            .await
    }

    /// Validates a record set for this log (framing, magic, CRC, records, `max.message.bytes`)
    /// without appending it, so a caller can look at the batches (e.g. idempotent-producer
    /// sequences) before [`Self::append_validated`].
    pub fn validate_record_set(&self, record_set: &Bytes) -> Result<ValidatedRecordSet> {
        let max_message_bytes = self.state.borrow().config.max_message_bytes;
        validate_with(record_set, max_message_bytes, validate_batch)
    }

    /// Validates a record set fetched from the leader for [`Self::append_replicated_now`]:
    /// framing, magic and CRC as [`Self::validate_record_set`], but batches as the leader
    /// stored them (compaction may have removed records from them), and no
    /// `max.message.bytes` check (the leader accepted them; Kafka's followers do not re-check
    /// it either), only the bound recovery puts on a stored batch.
    pub fn validate_replicated_record_set(&self, record_set: &Bytes) -> Result<ValidatedRecordSet> {
        let max_batch_bytes = {
            let config = &self.state.borrow().config;
            usize::try_from(config.segment_bytes)
                .unwrap_or(usize::MAX)
                .max(config.max_message_bytes)
        };
        validate_with(record_set, max_batch_bytes, validate_stored_batch)
    }

    /// Appends a record set validated by [`Self::validate_record_set`], first waiting while the
    /// write queue is full.
    pub async fn append_validated(
        &self,
        record_set: Bytes,
        validated: ValidatedRecordSet,
        leader_epoch: i32,
    ) -> Result<AppendReceipt> {
        self.wait_for_queue_room().await?;
        self.append_validated_now(record_set, validated, leader_epoch)
    }

    /// Appends a record set validated by [`Self::validate_record_set`] without waiting: offsets
    /// are assigned and the batches queued for the writer before this returns. It never
    /// suspends, so a caller that checks something (e.g. idempotent-producer sequences) right
    /// before it needs no lock: on the owning shard's single thread nothing can run in between.
    /// Call [`Self::wait_for_queue_room`] first to respect the write queue's bound.
    ///
    /// Every batch is stamped with `leader_epoch`; a newer epoch than the log knows is recorded
    /// in its leader-epoch cache.
    pub fn append_validated_now(
        &self,
        record_set: Bytes,
        validated: ValidatedRecordSet,
        leader_epoch: i32,
    ) -> Result<AppendReceipt> {
        self.append_batches_now(record_set, validated, Stamp::Assign { leader_epoch })
    }

    /// A follower's append of batches fetched from its leader, first waiting while the write
    /// queue is full. See [`Self::append_replicated_now`].
    pub async fn append_replicated(
        &self,
        record_set: Bytes,
        validated: ValidatedRecordSet,
    ) -> Result<AppendReceipt> {
        self.wait_for_queue_room().await?;
        self.append_replicated_now(record_set, validated)
    }

    /// A follower's append: stores batches copied from the leader (validated by
    /// [`Self::validate_replicated_record_set`]) byte for byte, keeping the leader's offsets,
    /// partition leader epochs and producer ids. The first batch must start at
    /// [`Self::next_offset`] and each batch where the one before ended; otherwise nothing is
    /// appended and the error is [`Error::ReplicaOffsetMismatch`] with the offset expected and
    /// the one found. A compacted log (`cleanup.policy=compact`) also accepts a batch that
    /// starts later than expected, since compaction on the leader removes whole batches, but
    /// never one that starts earlier (an overlap).
    ///
    /// Never suspends (like [`Self::append_validated_now`]); the batches' epochs update the
    /// leader-epoch cache. Returns the first batch's base offset and the last batch's last
    /// offset.
    pub fn append_replicated_now(
        &self,
        record_set: Bytes,
        validated: ValidatedRecordSet,
    ) -> Result<AppendReceipt> {
        self.append_batches_now(record_set, validated, Stamp::Keep)
    }

    /// The one append path: checks or assigns offsets, places every batch in the active segment
    /// (rolling it when needed), queues it for the writer and records new leader epochs. All
    /// checks come before any change, so a refused append leaves the log as it was.
    fn append_batches_now(
        &self,
        record_set: Bytes,
        validated: ValidatedRecordSet,
        stamp: Stamp,
    ) -> Result<AppendReceipt> {
        assert_eq!(
            validated.record_set_bytes,
            record_set.len(),
            "validated a different record set"
        );
        let ValidatedRecordSet {
            ranges, headers, ..
        } = validated;
        self.check_open()?;
        self.check_space(record_set.len())?;
        if stamp == Stamp::Keep {
            self.check_replicated_offsets(&headers)?;
        }

        let mut state = self.state.borrow_mut();
        let mut base_offset = None;
        let mut epochs_changed = false;
        for (range, header) in ranges.iter().zip(&headers) {
            let len = range.len() as u64;
            let original_prefix: [u8; PATCHED_PREFIX_BYTES] = record_set
                .get(range.start..range.start + PATCHED_PREFIX_BYTES)
                .and_then(|prefix| prefix.try_into().ok())
                .expect("a validated batch is longer than its prefix");
            let (batch_base, prefix, epoch) = match stamp {
                Stamp::Assign { leader_epoch } => {
                    let batch_base = state.next_offset;
                    let prefix = patched_prefix(&original_prefix, batch_base, leader_epoch);
                    (batch_base, prefix, leader_epoch)
                }
                // The leader's bytes as they are: offset and epoch included.
                Stamp::Keep => (
                    header.base_offset,
                    original_prefix,
                    header.partition_leader_epoch,
                ),
            };
            base_offset.get_or_insert(batch_base);
            let batch_next = batch_base + i64::from(header.last_offset_delta) + 1;
            if self.should_roll(&state, len, batch_next, header.max_timestamp) {
                drop(state);
                self.roll(batch_base)?;
                state = self.state.borrow_mut();
            }
            let interval = state.config.index_interval_bytes;
            let segment = state
                .segments
                .values_mut()
                .next_back()
                .expect("a log always has an active segment");
            let position = segment.size_bytes;
            segment.record_batch(batch_base, batch_next, len, header.max_timestamp, interval);
            let pending = PendingWrite {
                segment_base: segment.base_offset,
                file: segment.file.clone(),
                position,
                prefix,
                body: record_set.slice(range.start + PATCHED_PREFIX_BYTES..range.end),
                next_offset: batch_next,
            };
            state.pending.push_back(pending);
            state.pending_bytes += len;
            state.next_offset = batch_next;
            epochs_changed |= state.leader_epochs.assign(epoch, batch_base);
        }
        let base_offset = base_offset.expect("a validated record set has a batch");
        let last_offset = state.next_offset - 1;
        drop(state);
        self.writer_wakeup.notify_one();
        if epochs_changed {
            // Rare (once per leader epoch). A failed write is not the append's failure: the
            // cache in memory is right, and open rebuilds a checkpoint that disagrees with the
            // log.
            if let Err(error) = self.persist_leader_epochs() {
                tracing::warn!(dir = %self.dir.display(), %error, "could not write the leader-epoch checkpoint");
            }
        }
        let progress = self.progress.subscribe();
        let aborts_at_append = progress.borrow().aborts;
        Ok(AppendReceipt {
            base_offset,
            last_offset,
            progress,
            aborts_at_append,
        })
    }

    /// Checks that replicated batches continue the log (see [`Self::append_replicated_now`]).
    fn check_replicated_offsets(&self, headers: &[BatchHeader]) -> Result<()> {
        let state = self.state.borrow();
        let gaps_allowed = state.config.cleanup_policy == super::CleanupPolicy::Compact;
        let mut expected = state.next_offset;
        for header in headers {
            let found = header.base_offset;
            if found < expected || (found > expected && !gaps_allowed) {
                return Err(Error::ReplicaOffsetMismatch { expected, found });
            }
            expected = header.next_offset();
        }
        Ok(())
    }

    /// Waits while more than [`PENDING_WRITE_BYTES_MAX`] bytes are queued for the writer (the
    /// bound on a log's memory). Returns at once when there is room, without suspending. Fails
    /// if the log is closed or failed.
    pub async fn wait_for_queue_room(&self) -> Result<()> {
        self.check_open()?;
        if self.state.borrow().pending_bytes <= PENDING_WRITE_BYTES_MAX {
            return Ok(());
        }
        let mut progress = self.progress.subscribe();
        while self.state.borrow().pending_bytes > PENDING_WRITE_BYTES_MAX {
            if progress.changed().await.is_err() || progress.borrow().failed {
                return Err(Error::Closed);
            }
        }
        self.check_open()
    }

    fn should_roll(
        &self,
        state: &super::LogState,
        len_bytes: u64,
        batch_next: i64,
        max_timestamp_ms: i64,
    ) -> bool {
        let Some(active) = state.segments.values().next_back() else {
            return true;
        };
        if active.is_empty() {
            return false;
        }
        let config = &state.config;
        active.size_bytes + len_bytes > config.segment_bytes
            || active.offset_index.size_bytes() + 8 > config.segment_index_bytes
            || batch_next - active.base_offset > i64::from(i32::MAX)
            || active
                .first_batch_timestamp_ms
                .is_some_and(|first| max_timestamp_ms - first > config.segment_ms)
    }

    /// Starts a new active segment at `base_offset`. The old one is sealed: its final time-index
    /// entry is added, and once it is synced its indexes are persisted and the recovery point
    /// moves to the new segment (see the syncer).
    fn roll(&self, base_offset: i64) -> Result<()> {
        let segment = Segment::create(&self.fs, &self.dir, base_offset)?;
        let mut state = self.state.borrow_mut();
        if let Some(old) = state.segments.values_mut().next_back() {
            old.seal_time_index();
        }
        state.segments.insert(base_offset, segment);
        state.dir_dirty = true;
        tracing::debug!(dir = %self.dir.display(), base_offset, "rolled segment");
        drop(state);
        self.syncer_wakeup.notify_one();
        Ok(())
    }

    /// Takes the next round of queued writes: contiguous batches of one segment.
    fn take_write_round(&self) -> Option<(i64, SharedFile, u64, Vec<Bytes>, i64, u64)> {
        let mut state = self.state.borrow_mut();
        let first = state.pending.front()?;
        let segment_base = first.segment_base;
        let file = first.file.clone();
        let start_position = first.position;
        let mut end_position = start_position;
        let mut count = 0usize;
        for pending in &state.pending {
            if pending.segment_base != segment_base
                || pending.position != end_position
                || count == WRITE_ROUND_BATCHES_MAX
                || (count > 0 && end_position - start_position >= WRITE_ROUND_BYTES_MAX)
            {
                break;
            }
            end_position += (PATCHED_PREFIX_BYTES + pending.body.len()) as u64;
            count += 1;
        }
        // One allocation for all the patched prefixes of the round.
        let mut prefixes = BytesMut::with_capacity(count * PATCHED_PREFIX_BYTES);
        let mut bodies = Vec::with_capacity(count);
        let mut next_offset = 0;
        for pending in state.pending.drain(..count) {
            prefixes.extend_from_slice(&pending.prefix);
            bodies.push(pending.body);
            next_offset = pending.next_offset;
        }
        state.pending_bytes -= end_position - start_position;
        let prefixes = prefixes.freeze();
        let mut iovecs = Vec::with_capacity(count * 2);
        for (index, body) in bodies.into_iter().enumerate() {
            iovecs.push(
                prefixes.slice(index * PATCHED_PREFIX_BYTES..(index + 1) * PATCHED_PREFIX_BYTES),
            );
            iovecs.push(body);
        }
        Some((
            segment_base,
            file,
            start_position,
            iovecs,
            next_offset,
            end_position,
        ))
    }

    /// The writer task: writes queued batches in order until the log closes (after draining).
    pub(super) async fn run_writer(&self) {
        loop {
            let Some((segment_base, file, position, iovecs, next_offset, end_position)) =
                self.take_write_round()
            else {
                if self.state.borrow().closed {
                    return;
                }
                self.writer_wakeup.notified().await;
                continue;
            };
            let write_inline = self.state.borrow().config.write_inline;
            let outcome = if write_inline {
                file.write_all_vectored_at_inline(&iovecs, position)
            } else {
                file.write_all_vectored_at(iovecs, position).await
            }
            .context(|| format!("write segment {segment_base} in {}", self.dir.display()));
            if let Err(error) = outcome {
                if error.is_no_space() {
                    // Full, not broken: undo the round and everything queued after it, and stay
                    // online (see `write_failure`).
                    match self.undo_unwritten(segment_base, position, &error).await {
                        Ok(()) => continue,
                        Err(undo_error) => {
                            self.fail("undoing a write the full disk refused", &undo_error);
                            return;
                        }
                    }
                }
                self.fail("append write", &error);
                return;
            }
            let durable_now = {
                let mut state = self.state.borrow_mut();
                state.space_low = false;
                if let Some(segment) = state.segments.get_mut(&segment_base) {
                    assert!(
                        end_position <= segment.size_bytes,
                        "wrote past the assigned size"
                    );
                    segment.written_bytes = end_position;
                }
                if !state.dirty_segments.contains(&segment_base) {
                    state.dirty_segments.push(segment_base);
                }
                state.config.durability == super::Durability::None
            };
            self.progress.send_modify(|progress| {
                progress.written_offset = next_offset;
                if durable_now {
                    progress.durable_offset = next_offset;
                }
            });
            if self.high_watermark_follows_log_end.get() {
                self.set_high_watermark(next_offset);
            }
            self.syncer_wakeup.notify_one();
            if write_inline {
                // An inline write never suspended: let the shard's other tasks run before the
                // next round, so a long backlog cannot hold the thread.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Persists the recovery point (everything below `offset` is on disk).
    pub(super) fn checkpoint_recovery_point(&self, offset: i64) -> Result<()> {
        let advanced = {
            let mut state = self.state.borrow_mut();
            let advanced = offset > state.recovery_point;
            state.recovery_point = state.recovery_point.max(offset);
            advanced
        };
        if advanced {
            checkpoint::write_offset(&self.fs, &self.dir, RECOVERY_POINT_FILE, offset)?;
        }
        Ok(())
    }
}
