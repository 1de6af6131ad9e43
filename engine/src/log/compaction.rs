//! Log compaction (`cleanup.policy=compact`): keep only the latest record per key, as Kafka's
//! log cleaner does, so a keyed log such as `__consumer_offsets` grows with its live keys rather
//! than with its history.
//!
//! One pass of [`PartitionLog::compact`], which the owning shard calls periodically:
//!
//! 1. **Plan.** Only a prefix of *settled* segments is compactable: sealed (never the active
//!    segment), fully written, synced (below the recovery point) and below the high watermark,
//!    so that no record a crash could still lose or a truncation could still remove is ever the
//!    reason a durable record goes. The end of that prefix is the *clean point*. Below it lie
//!    the *clean section* (deduplicated by an earlier pass of this process) and the *dirty
//!    section*. A pass runs when the dirty bytes are at least `min.cleanable.dirty.ratio` of the
//!    compactable bytes, or when a tombstone kept by an earlier pass has expired.
//! 2. **Map** the dirty section: key → offset of its latest record. The map's memory is capped
//!    ([`OFFSET_MAP_BYTES_MAX`] of keys plus a per-entry overhead); when it is full the map ends
//!    at the first record that did not fit (the *map end*), only the log below it is cleaned,
//!    and the next pass continues from there (Kafka's dedupe buffer).
//! 3. **Clean** every segment from the first one up to the map end, in offset order. A record
//!    goes iff the map holds a later offset for its key. A tombstone (null value) that is the
//!    latest for its key goes once `delete.retention.ms` has passed since its segment's largest
//!    timestamp, unless a batch whose records could not be read (below) precedes it: that batch
//!    may hold an older value which the tombstone still hides. Records with a null key stay
//!    (Kafka refuses them on compacted topics). A batch that loses some records is re-encoded:
//!    same base offset and `lastOffsetDelta` (offsets after it do not move), the surviving
//!    records byte for byte (their offset and timestamp deltas unchanged), and a new record
//!    count, length, max timestamp (recomputed for `CreateTime`) and CRC-32C. A batch that loses
//!    all its records goes. Kept whole and never mapped: control batches, compressed batches
//!    (not inflated here), transactional batches (transaction outcomes are not tracked; the
//!    broker refuses transactional produce) and batches whose records do not parse.
//! 4. **Swap** each changed segment, in offset order, each durable before the next. The cleaned
//!    log and its indexes are written to `<base>.{log,index,timeindex}.cleaned` and synced.
//!    Then, with no await in between: re-check that the log still holds exactly the segment
//!    that was cleaned (no truncation since the plan, same base, size and end, still sealed,
//!    not closed, no index write of the syncer in flight for it; otherwise the pass is
//!    abandoned), remove the old index files and sync the directory, rename `.log.cleaned` over
//!    `.log` and sync the directory, replace the in-memory segment, and rename the new index
//!    files into place. A crash leaves the old or the new log, never a mix, and never one log
//!    with the other's indexes (missing indexes are rebuilt on open, which also deletes stray
//!    `.cleaned` files). A segment left empty is deleted instead; if it was the first one the
//!    log start moves to the next segment, as retention would move it. Since swaps are durable
//!    in offset order, a crash cannot keep an older value whose tombstone is already gone.
//!    Readers holding the old file keep reading the old inode.
//!
//! Offsets never change: reads, offset and time lookups, and recovery only see gaps, inside
//! batches (offset deltas no longer consecutive) and between batches and segments.
//!
//! Limits: every pass reads the whole compactable log (as Kafka's cleaner does) but rewrites
//! only segments that change; the clean/dirty boundary lives in memory, so the first pass after
//! a restart maps the whole log again; the swap's directory syncs (two per changed segment) are
//! blocking calls on the shard, like the checkpoint writes; small cleaned segments are not
//! merged; compressed batches are never cleaned (a future step inflates them); transaction
//! markers are never removed; idempotent-producer state is not preserved (a producer's last
//! batch may go, which Kafka avoids by keeping an empty batch). Nothing at or above the high
//! watermark is compacted, so an owner that never advances it gets no compaction.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::checkpoint::{self, LOG_START_FILE};
use super::recovery::recover_segment;
use super::segment::{segment_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use super::{CleanupPolicy, LogConfig, PartitionLog};
use crate::batch::{
    read_log_overhead, BatchHeader, Compression, RecordEntries, RecordEntry, BATCH_HEADER_BYTES,
    LOG_OVERHEAD_BYTES,
};
use crate::error::{Error, IoContext, Result};
use crate::io::{Fs, OpenMode, SharedFile};

/// Memory one pass may spend on its offset map: key bytes plus a per-entry estimate.
pub const OFFSET_MAP_BYTES_MAX: usize = 64 << 20;
/// Estimated bytes per map entry besides the key: the boxed slice, the offset, the hash
/// table's control byte and slack.
pub(super) const MAP_ENTRY_OVERHEAD_BYTES: usize = 48;
/// Bytes read from a segment per step.
const READ_CHUNK_BYTES: usize = 1 << 20;
/// Bytes of cleaned output gathered before one write.
const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Appended to a segment file's name while its cleaned replacement is being written.
const CLEANED_SUFFIX: &str = ".cleaned";

// Fields of the RecordBatch v2 header rewritten when a batch loses records (see `batch`).
const BATCH_LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const CRC_COVERED_FROM: usize = 21;
const MAX_TIMESTAMP_AT: usize = 35;
const RECORD_COUNT_AT: usize = 57;

/// What one call of [`PartitionLog::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Whether a pass ran: not when the policy is `delete`, another pass is running, nothing
    /// is compactable yet, or too little is dirty (`min.cleanable.dirty.ratio`).
    pub ran: bool,
    /// The log changed under the pass (truncation, retention, close) before a swap, so it
    /// stopped there; segments swapped before stay compacted and the next call starts over.
    pub abandoned: bool,
    pub segments_rewritten: usize,
    /// Segments left without records, deleted.
    pub segments_deleted: usize,
    /// Records removed, expired tombstones included.
    pub records_removed: u64,
    /// Tombstones removed because `delete.retention.ms` had passed.
    pub tombstones_removed: u64,
    pub bytes_removed: u64,
    /// When the pass completed: everything below this offset is deduplicated.
    pub cleaned_up_to: Option<i64>,
}

/// Compaction's bookkeeping in the log state.
#[derive(Debug, Default)]
pub(super) struct CompactionState {
    /// A pass is running; passes are exclusive.
    running: bool,
    /// The map end of the last completed pass: the log below it is deduplicated (the clean
    /// section). In memory only: after a restart the whole log counts as dirty.
    cleaned_up_to: i64,
    /// `LogState::truncations` when `cleaned_up_to` was set; a truncation since voids it.
    truncations_seen: u64,
    /// When the earliest tombstone kept by the last pass becomes removable.
    tombstone_expiry_ms: Option<i64>,
}

/// A segment as the plan saw it.
struct SegmentPlan {
    base_offset: i64,
    file: SharedFile,
    size_bytes: u64,
    next_offset: i64,
    max_timestamp_ms: i64,
    /// Where mapping starts in this segment: the index entry at or before the dirty start.
    map_from_position: u64,
}

struct Plan {
    /// The compactable segments, oldest first; the clean point is the last one's end.
    segments: Vec<SegmentPlan>,
    clean_point: i64,
    dirty_start: i64,
    truncations: u64,
    config: LogConfig,
}

/// Key → offset of its latest record in the mapped range.
type OffsetMap = HashMap<Box<[u8]>, i64>;

/// What cleaning decides, shared by all segments of a pass.
struct CleanContext<'a> {
    map: &'a OffsetMap,
    map_end: i64,
    now_ms: i64,
    delete_retention_ms: i64,
}

/// What cleaning carries from one segment to the next, in offset order.
#[derive(Default)]
struct PassState {
    /// A batch whose records could not be read was seen: later tombstones must stay.
    unreadable_seen: bool,
    /// When the earliest kept, otherwise removable tombstone expires.
    tombstone_expiry_ms: Option<i64>,
}

/// When the tombstones of one segment expire.
#[derive(Clone, Copy)]
struct TombstoneClock {
    expired: bool,
    expires_after_ms: Option<i64>,
}

#[derive(Default)]
struct Tally {
    records_removed: u64,
    tombstones_removed: u64,
    bytes_removed: u64,
}

enum Cleaned {
    Unchanged,
    /// The cleaned segment, on `<base>.*.cleaned` files, ready to swap in.
    Replaced(Segment, Tally),
    /// No record survived.
    Emptied(Tally),
}

enum BatchAction {
    Keep,
    Drop,
    Rewrite(Vec<u8>),
}

/// Clears the running flag however the pass ends (error, or its future being dropped).
struct RunningGuard<'a>(&'a PartitionLog);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.try_borrow_mut() {
            state.compaction.running = false;
        }
    }
}

/// Test hook, taken by the next pass when it is about to swap a cleaned segment in.
#[cfg(test)]
pub(super) enum BeforeSwap {
    /// Stop there with an error, leaving the `.cleaned` files, as a crash would.
    Stop,
    /// Signal `paused` and wait for `resume` (the test changes the log meanwhile).
    Pause {
        paused: std::rc::Rc<tokio::sync::Notify>,
        resume: std::rc::Rc<tokio::sync::Notify>,
    },
}

#[cfg(test)]
thread_local! {
    pub(super) static BEFORE_SWAP: std::cell::RefCell<Option<BeforeSwap>> =
        const { std::cell::RefCell::new(None) };
}

impl PartitionLog {
    /// One compaction pass as of wall-clock `now_ms` (see the `compaction` module); a no-op
    /// unless `cleanup.policy` is `compact`. Only sealed, synced segments below the high
    /// watermark are compacted: the owner keeps the high watermark current.
    pub async fn compact(&self, now_ms: i64) -> Result<CompactionOutcome> {
        self.compact_with_map_limit(now_ms, OFFSET_MAP_BYTES_MAX)
            .await
    }

    pub(super) async fn compact_with_map_limit(
        &self,
        now_ms: i64,
        map_bytes_max: usize,
    ) -> Result<CompactionOutcome> {
        self.check_open()?;
        let Some(plan) = self.plan_compaction(now_ms) else {
            return Ok(CompactionOutcome::default());
        };
        let _running = RunningGuard(self);
        let (map, map_end) = match build_offset_map(&plan, map_bytes_max).await {
            Ok(built) => built,
            Err(error) => return self.abandoned_or(error, &plan, CompactionOutcome::default()),
        };
        let context = CleanContext {
            map: &map,
            map_end,
            now_ms,
            delete_retention_ms: plan.config.delete_retention_ms,
        };
        let mut pass = PassState::default();
        let mut outcome = CompactionOutcome {
            ran: true,
            ..CompactionOutcome::default()
        };
        for planned in plan
            .segments
            .iter()
            .take_while(|segment| segment.base_offset < map_end)
        {
            let base = planned.base_offset;
            let cleaned = self
                .clean_segment(planned, &context, &mut pass, &plan.config)
                .await;
            let (replacement, tally) = match cleaned {
                Ok(Cleaned::Unchanged) => continue,
                Ok(Cleaned::Replaced(segment, tally)) => (Some(segment), tally),
                Ok(Cleaned::Emptied(tally)) => (None, tally),
                Err(error) => {
                    remove_cleaned_files(&self.fs, &self.dir, base);
                    return self.abandoned_or(error, &plan, outcome);
                }
            };
            #[cfg(test)]
            match BEFORE_SWAP.with(|hook| hook.borrow_mut().take()) {
                Some(BeforeSwap::Stop) => return Err(Error::Closed),
                Some(BeforeSwap::Pause { paused, resume }) => {
                    paused.notify_one();
                    resume.notified().await;
                }
                None => {}
            }
            let deleted = replacement.is_none();
            let swapped = self.swap_in(planned, plan.truncations, replacement);
            remove_cleaned_files(&self.fs, &self.dir, base);
            if !swapped? {
                tracing::info!(
                    dir = %self.dir.display(),
                    base_offset = base,
                    "log changed during compaction; pass abandoned"
                );
                outcome.abandoned = true;
                return Ok(outcome);
            }
            if deleted {
                outcome.segments_deleted += 1;
            } else {
                outcome.segments_rewritten += 1;
            }
            outcome.records_removed += tally.records_removed;
            outcome.tombstones_removed += tally.tombstones_removed;
            outcome.bytes_removed += tally.bytes_removed;
        }
        {
            let mut state = self.state.borrow_mut();
            if state.truncations == plan.truncations {
                state.compaction.cleaned_up_to = map_end;
                state.compaction.truncations_seen = plan.truncations;
                state.compaction.tombstone_expiry_ms = pass.tombstone_expiry_ms;
                outcome.cleaned_up_to = Some(map_end);
            }
        }
        if outcome.segments_rewritten + outcome.segments_deleted > 0 {
            tracing::info!(dir = %self.dir.display(), ?outcome, "compacted log");
        } else {
            tracing::debug!(dir = %self.dir.display(), ?outcome, "compaction found nothing to remove");
        }
        Ok(outcome)
    }

    /// After a failed read or write: if a truncation overlapped the pass (it may have cut a
    /// file being read), the pass is abandoned rather than failed.
    fn abandoned_or(
        &self,
        error: Error,
        plan: &Plan,
        outcome: CompactionOutcome,
    ) -> Result<CompactionOutcome> {
        if self.state.borrow().truncations == plan.truncations {
            return Err(error);
        }
        tracing::info!(dir = %self.dir.display(), %error, "log truncated during compaction; pass abandoned");
        Ok(CompactionOutcome {
            ran: true,
            abandoned: true,
            ..outcome
        })
    }

    /// Decides whether a pass runs and over what; marks it running.
    fn plan_compaction(&self, now_ms: i64) -> Option<Plan> {
        let written_offset = self.progress.borrow().written_offset;
        let high_watermark = self.high_watermark();
        let mut state = self.state.borrow_mut();
        if state.config.cleanup_policy != CleanupPolicy::Compact || state.compaction.running {
            return None;
        }
        let bound = high_watermark.min(state.recovery_point).min(written_offset);
        let sealed = state.segments.len().saturating_sub(1);
        let settled: Vec<&Segment> = state
            .segments
            .values()
            .take(sealed)
            .take_while(|segment| segment.next_offset <= bound)
            .collect();
        let first_base = settled.first()?.base_offset;
        let clean_point = settled.last()?.next_offset;
        let cleaned_up_to = if state.compaction.truncations_seen == state.truncations {
            state.compaction.cleaned_up_to
        } else {
            first_base
        };
        let dirty_start = cleaned_up_to.clamp(first_base, clean_point);
        let total_bytes: u64 = settled.iter().map(|segment| segment.size_bytes).sum();
        let dirty_bytes: u64 = settled
            .iter()
            .filter(|segment| segment.next_offset > dirty_start)
            .map(|segment| segment.size_bytes)
            .sum();
        let dirty_enough = dirty_bytes > 0
            && dirty_bytes as f64 >= state.config.min_cleanable_dirty_ratio * total_bytes as f64;
        let tombstone_due = state
            .compaction
            .tombstone_expiry_ms
            .is_some_and(|expiry| now_ms > expiry);
        if !(dirty_enough || tombstone_due) {
            return None;
        }
        let segments = settled
            .iter()
            .map(|segment| {
                let holds_dirty_start =
                    segment.base_offset <= dirty_start && dirty_start < segment.next_offset;
                let map_from_position = if holds_dirty_start {
                    segment
                        .offset_index
                        .floor_by_offset(segment.relative(dirty_start))
                        .map_or(0, |entry| u64::from(entry.position))
                } else {
                    0
                };
                SegmentPlan {
                    base_offset: segment.base_offset,
                    file: segment.file.clone(),
                    size_bytes: segment.size_bytes,
                    next_offset: segment.next_offset,
                    max_timestamp_ms: segment.max_timestamp_ms,
                    map_from_position,
                }
            })
            .collect();
        let plan = Plan {
            segments,
            clean_point,
            dirty_start,
            truncations: state.truncations,
            config: state.config.clone(),
        };
        state.compaction.running = true;
        Some(plan)
    }

    /// Cleans one segment into `.cleaned` files if any of its records go.
    async fn clean_segment(
        &self,
        planned: &SegmentPlan,
        context: &CleanContext<'_>,
        pass: &mut PassState,
        config: &LogConfig,
    ) -> Result<Cleaned> {
        let expires_after_ms = (planned.max_timestamp_ms >= 0).then(|| {
            planned
                .max_timestamp_ms
                .saturating_add(context.delete_retention_ms)
        });
        let clock = TombstoneClock {
            expired: expires_after_ms.is_some_and(|after| context.now_ms > after),
            expires_after_ms,
        };
        let mut tally = Tally::default();
        let mut output: Option<CleanedWriter> = None;
        let mut reader = BatchReader::new(&planned.file, 0, planned.size_bytes);
        while let Some((position, bytes)) = reader.next().await? {
            let action = decide(bytes, context, clock, pass, &mut tally)?;
            if matches!(action, BatchAction::Keep) {
                if let Some(output) = output.as_mut() {
                    output.push(bytes).await?;
                }
                continue;
            }
            if output.is_none() {
                // The first change: what came before it is copied as is.
                output = Some(CleanedWriter::start(&self.fs, &self.dir, planned, position).await?);
            }
            if let (BatchAction::Rewrite(rewritten), Some(output)) = (action, output.as_mut()) {
                output.push(&rewritten).await?;
            }
        }
        let Some(output) = output else {
            return Ok(Cleaned::Unchanged);
        };
        let (file, len_bytes) = output.finish().await?;
        tally.bytes_removed = planned.size_bytes.saturating_sub(len_bytes);
        if len_bytes == 0 {
            return Ok(Cleaned::Emptied(tally));
        }
        // Rebuild the indexes from the new file; the scan also checks every batch written.
        let (mut segment, report) = recover_segment(
            file,
            planned.base_offset,
            config.index_interval_bytes,
            config.segment_bytes.max(config.max_message_bytes as u64),
        )
        .await?;
        if report.truncated_bytes > 0 || segment.next_offset > planned.next_offset {
            return Err(Error::Corrupt {
                what: "cleaned segment",
                detail: format!(
                    "segment {} did not read back as written: {report:?}",
                    planned.base_offset
                ),
            });
        }
        segment.seal_time_index();
        segment
            .index_snapshot()
            .write_as(&self.fs, &self.dir, CLEANED_SUFFIX)
            .await?;
        Ok(Cleaned::Replaced(segment, tally))
    }

    /// Puts `cleaned` in place of the planned segment (deletes the segment when `None`) if the
    /// log still holds exactly the segment that was cleaned; returns `false`, changing nothing,
    /// otherwise. No await: nothing else runs on the log in between.
    fn swap_in(
        &self,
        planned: &SegmentPlan,
        truncations: u64,
        cleaned: Option<Segment>,
    ) -> Result<bool> {
        let base = planned.base_offset;
        {
            let state = self.state.borrow();
            let unchanged = !state.closed
                && !self.progress.borrow().failed
                && state.truncations == truncations
                && state
                    .segments
                    .keys()
                    .next_back()
                    .is_some_and(|&active| active > base)
                && state.segments.get(&base).is_some_and(|segment| {
                    segment.size_bytes == planned.size_bytes
                        && segment.written_bytes == planned.size_bytes
                        && segment.next_offset == planned.next_offset
                })
                && !state.index_writes_in_flight.contains(&base);
            if !unchanged {
                return Ok(false);
            }
        }
        // The old indexes go first, durably: a log is never paired with the other's indexes.
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_exists(&self.fs, &segment_path(&self.dir, base, suffix))?;
        }
        checkpoint::sync_dir(&self.fs, &self.dir)?;
        let log_path = segment_path(&self.dir, base, LOG_SUFFIX);
        let Some(mut segment) = cleaned else {
            remove_if_exists(&self.fs, &log_path)?;
            let moved_start = {
                let mut state = self.state.borrow_mut();
                state.segments.remove(&base);
                state.dirty_segments.retain(|dirty| *dirty != base);
                let old_start = state.log_start_offset;
                if let Some(&first) = state.segments.keys().next() {
                    state.log_start_offset = old_start.max(first);
                }
                (state.log_start_offset != old_start).then_some(state.log_start_offset)
            };
            checkpoint::sync_dir(&self.fs, &self.dir)?;
            if let Some(start) = moved_start {
                checkpoint::write_offset(&self.fs, &self.dir, LOG_START_FILE, start)?;
                self.trim_leader_epochs_to_log_start()?;
            }
            return Ok(true);
        };
        self.fs
            .rename(&cleaned_path(&self.dir, base, LOG_SUFFIX), &log_path)
            .context(|| format!("rename cleaned segment to {}", log_path.display()))?;
        // The name now holds the new file: the in-memory segment follows at once.
        segment.index_dirty = false;
        {
            let mut state = self.state.borrow_mut();
            state.segments.insert(base, segment);
            // The index renames below become durable with the syncer's next directory sync; if
            // they do not, the indexes are rebuilt on open.
            state.dir_dirty = true;
        }
        let synced = checkpoint::sync_dir(&self.fs, &self.dir);
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let to = segment_path(&self.dir, base, suffix);
            if let Err(error) = self.fs.rename(&cleaned_path(&self.dir, base, suffix), &to) {
                tracing::warn!(path = %to.display(), %error, "cleaned index not renamed; it will be rebuilt on open");
            }
        }
        self.syncer_wakeup.notify_one();
        synced?;
        Ok(true)
    }
}

/// Maps the dirty section's keys to their latest offsets; returns the map and its end.
async fn build_offset_map(plan: &Plan, map_bytes_max: usize) -> Result<(OffsetMap, i64)> {
    let mut map = OffsetMap::new();
    let mut map_bytes = 0usize;
    for segment in plan
        .segments
        .iter()
        .filter(|segment| segment.next_offset > plan.dirty_start)
    {
        let mut reader =
            BatchReader::new(&segment.file, segment.map_from_position, segment.size_bytes);
        while let Some((_, bytes)) = reader.next().await? {
            let header = parse_header(bytes)?;
            if header.next_offset() <= plan.dirty_start || header.is_control() {
                continue;
            }
            let Some(records) = readable_records(&header, bytes) else {
                continue;
            };
            for record in records {
                let offset = header.base_offset + i64::from(record.offset_delta);
                let Some(key) = record.key else { continue };
                if offset < plan.dirty_start {
                    continue;
                }
                if let Some(latest) = map.get_mut(key) {
                    *latest = (*latest).max(offset);
                    continue;
                }
                let cost = key.len() + MAP_ENTRY_OVERHEAD_BYTES;
                if map_bytes + cost > map_bytes_max && !map.is_empty() {
                    return Ok((map, offset));
                }
                map_bytes += cost;
                map.insert(Box::from(key), offset);
            }
        }
    }
    Ok((map, plan.clean_point))
}

fn parse_header(bytes: &[u8]) -> Result<BatchHeader> {
    BatchHeader::parse(bytes).map_err(|error| Error::Corrupt {
        what: "stored batch",
        detail: error.to_string(),
    })
}

/// The records of a non-control batch that compaction may look into, or `None` if the batch
/// is kept whole unread (compressed, transactional, or records that do not parse).
fn readable_records<'a>(header: &BatchHeader, bytes: &'a [u8]) -> Option<Vec<RecordEntry<'a>>> {
    if header.compression() != Compression::None || header.is_transactional() {
        return None;
    }
    let records = RecordEntries::new(bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .ok()?;
    (i32::try_from(records.len()).ok() == Some(header.record_count)).then_some(records)
}

/// What happens to one stored batch.
fn decide(
    bytes: &[u8],
    context: &CleanContext<'_>,
    clock: TombstoneClock,
    pass: &mut PassState,
    tally: &mut Tally,
) -> Result<BatchAction> {
    let header = parse_header(bytes)?;
    if header.is_control() {
        return Ok(BatchAction::Keep);
    }
    let Some(records) = readable_records(&header, bytes) else {
        pass.unreadable_seen = true;
        return Ok(BatchAction::Keep);
    };
    let mut kept: Vec<&RecordEntry<'_>> = Vec::with_capacity(records.len());
    for record in &records {
        let offset = header.base_offset + i64::from(record.offset_delta);
        if keeps(record, offset, context, clock, pass, tally) {
            kept.push(record);
        } else {
            tally.records_removed += 1;
        }
    }
    Ok(if kept.len() == records.len() {
        BatchAction::Keep
    } else if kept.is_empty() {
        BatchAction::Drop
    } else {
        BatchAction::Rewrite(reencode(bytes, &header, &kept))
    })
}

/// Whether a record at `offset` survives.
fn keeps(
    record: &RecordEntry<'_>,
    offset: i64,
    context: &CleanContext<'_>,
    clock: TombstoneClock,
    pass: &mut PassState,
    tally: &mut Tally,
) -> bool {
    let Some(key) = record.key else {
        return true;
    };
    if context.map.get(key).is_some_and(|&latest| latest > offset) {
        return false;
    }
    // The latest for its key (as far as the map knows). A tombstone may go once every older
    // value of its key is gone: this pass removes those below the map end, unless some may hide
    // in a batch that could not be read.
    let removable_tombstone =
        record.value.is_none() && offset < context.map_end && !pass.unreadable_seen;
    if !removable_tombstone {
        return true;
    }
    if clock.expired {
        tally.tombstones_removed += 1;
        return false;
    }
    if let Some(after) = clock.expires_after_ms {
        pass.tombstone_expiry_ms = Some(pass.tombstone_expiry_ms.map_or(after, |t| t.min(after)));
    }
    true
}

/// The batch with only `kept` records: same base offset and `lastOffsetDelta`, records byte
/// for byte; record count, length, max timestamp and CRC updated.
fn reencode(bytes: &[u8], header: &BatchHeader, kept: &[&RecordEntry<'_>]) -> Vec<u8> {
    let records_bytes: usize = kept.iter().map(|record| record.bytes.len()).sum();
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + records_bytes);
    out.extend_from_slice(bytes.get(..BATCH_HEADER_BYTES).unwrap_or(&[]));
    for record in kept {
        out.extend_from_slice(record.bytes);
    }
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD_BYTES).unwrap_or(i32::MAX);
    let record_count = i32::try_from(kept.len()).unwrap_or(i32::MAX);
    let max_timestamp = if header.is_log_append_time() {
        header.max_timestamp
    } else {
        kept.iter()
            .map(|record| header.base_timestamp + record.timestamp_delta)
            .max()
            .unwrap_or(header.max_timestamp)
    };
    put(&mut out, BATCH_LENGTH_AT, &batch_length.to_be_bytes());
    put(&mut out, MAX_TIMESTAMP_AT, &max_timestamp.to_be_bytes());
    put(&mut out, RECORD_COUNT_AT, &record_count.to_be_bytes());
    let crc = crc32c::crc32c(out.get(CRC_COVERED_FROM..).unwrap_or(&[]));
    put(&mut out, CRC_AT, &crc.to_be_bytes());
    out
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(field) = out.get_mut(at..at + bytes.len()) {
        field.copy_from_slice(bytes);
    }
}

/// Reads whole stored batches of a segment in large chunks.
struct BatchReader<'a> {
    file: &'a SharedFile,
    position: u64,
    end: u64,
    buffer: Vec<u8>,
    /// File position of `buffer[0]`.
    buffer_start: u64,
}

impl<'a> BatchReader<'a> {
    /// Batches from `start` (a batch boundary) up to `end` (the segment's size).
    fn new(file: &'a SharedFile, start: u64, end: u64) -> Self {
        BatchReader {
            file,
            position: start,
            end,
            buffer: Vec::new(),
            buffer_start: start,
        }
    }

    /// The next batch's position and bytes.
    async fn next(&mut self) -> Result<Option<(u64, &[u8])>> {
        let total = loop {
            if self.position >= self.end {
                return Ok(None);
            }
            let in_buffer =
                usize::try_from(self.position - self.buffer_start).unwrap_or(usize::MAX);
            let available = self.buffer.len().saturating_sub(in_buffer);
            let remaining = usize::try_from(self.end - self.position).unwrap_or(usize::MAX);
            let needed = match self.buffer.get(in_buffer..).and_then(read_log_overhead) {
                Some((_, length)) => {
                    let total = usize::try_from(length)
                        .ok()
                        .map(|length| length + LOG_OVERHEAD_BYTES)
                        .filter(|total| *total >= BATCH_HEADER_BYTES && *total <= remaining)
                        .ok_or_else(|| Error::Corrupt {
                            what: "stored batch",
                            detail: format!("length {length} at byte {}", self.position),
                        })?;
                    if available >= total {
                        break total;
                    }
                    total
                }
                None => LOG_OVERHEAD_BYTES,
            };
            if needed > remaining {
                return Err(Error::Corrupt {
                    what: "stored batch",
                    detail: format!("segment ends inside the batch at byte {}", self.position),
                });
            }
            // Keep the unread tail and read the rest of the batch, and more, after it.
            self.buffer.drain(..in_buffer.min(self.buffer.len()));
            self.buffer_start = self.position;
            let have = self.buffer.len();
            let want = needed.max(READ_CHUNK_BYTES).min(remaining) - have;
            let at = self.buffer_start + have as u64;
            let (result, buffer) = self
                .file
                .read_at(std::mem::take(&mut self.buffer), at, want)
                .await;
            self.buffer = buffer;
            if result.context(|| format!("read segment at byte {at}"))? == 0 {
                return Err(Error::Corrupt {
                    what: "stored batch",
                    detail: format!("segment shorter than expected at byte {at}"),
                });
            }
        };
        let position = self.position;
        let from = usize::try_from(position - self.buffer_start).unwrap_or(usize::MAX);
        self.position += total as u64;
        Ok(Some((
            position,
            self.buffer.get(from..from + total).unwrap_or(&[]),
        )))
    }
}

/// Streams a cleaned segment into `<base>.log.cleaned`.
struct CleanedWriter {
    file: SharedFile,
    position: u64,
    buffer: Vec<u8>,
}

impl CleanedWriter {
    /// Creates the file and copies the planned segment's first `copy_bytes` bytes (the batches
    /// before the first change) into it.
    async fn start(fs: &Fs, dir: &Path, planned: &SegmentPlan, copy_bytes: u64) -> Result<Self> {
        let path = cleaned_path(dir, planned.base_offset, LOG_SUFFIX);
        let file = fs
            .open(&path, OpenMode::Create { truncate: true })
            .context(|| format!("create {}", path.display()))?;
        let mut writer = CleanedWriter {
            file,
            position: 0,
            buffer: Vec::new(),
        };
        let mut copied = 0u64;
        while copied < copy_bytes {
            let len = usize::try_from(copy_bytes - copied)
                .unwrap_or(usize::MAX)
                .min(READ_CHUNK_BYTES);
            let chunk = planned
                .file
                .read_exact_at(copied, len)
                .await
                .context(|| format!("read segment {}", planned.base_offset))?;
            writer.write(Bytes::from(chunk)).await?;
            copied += len as u64;
        }
        Ok(writer)
    }

    async fn push(&mut self, bytes: &[u8]) -> Result<()> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= WRITE_BUFFER_BYTES {
            let full = Bytes::from(std::mem::take(&mut self.buffer));
            self.write(full).await?;
        }
        Ok(())
    }

    async fn write(&mut self, bytes: Bytes) -> Result<()> {
        let len = bytes.len() as u64;
        self.file
            .write_all_vectored_at(vec![bytes], self.position)
            .await
            .context(|| "write cleaned segment".into())?;
        self.position += len;
        Ok(())
    }

    /// Writes what is buffered and syncs; returns the file and its length.
    async fn finish(mut self) -> Result<(SharedFile, u64)> {
        let rest = Bytes::from(std::mem::take(&mut self.buffer));
        self.write(rest).await?;
        self.file
            .sync_data()
            .await
            .context(|| "sync cleaned segment".into())?;
        Ok((self.file, self.position))
    }
}

/// `<base>.<suffix>.cleaned`: a segment file's replacement while compaction writes it.
fn cleaned_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    let mut path = segment_path(dir, base_offset, suffix).into_os_string();
    path.push(CLEANED_SUFFIX);
    PathBuf::from(path)
}

fn remove_if_exists(fs: &Fs, path: &Path) -> Result<()> {
    match fs.remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("remove {}", path.display()), error))
        }
        _ => Ok(()),
    }
}

/// Removes the `.cleaned` files of one segment (best effort: open removes any left).
fn remove_cleaned_files(fs: &Fs, dir: &Path, base_offset: i64) {
    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        if let Err(error) = remove_if_exists(fs, &cleaned_path(dir, base_offset, suffix)) {
            tracing::warn!(%error, "could not remove a compaction temp file");
        }
    }
}

/// Deletes the `.cleaned` files a compaction pass left (a crash before its swap): the segments
/// they were to replace are intact.
pub(super) fn remove_stray_cleaned_files(fs: &Fs, dir: &Path) {
    let Ok(names) = fs.list_dir(dir) else {
        return;
    };
    for name in names {
        if name.ends_with(CLEANED_SUFFIX) {
            let path = dir.join(&name);
            tracing::info!(path = %path.display(), "removing an unfinished compaction file");
            if let Err(error) = remove_if_exists(fs, &path) {
                tracing::warn!(%error, "could not remove an unfinished compaction file");
            }
        }
    }
}
