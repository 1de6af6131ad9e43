//! Removing data: `truncate_to` (a follower cutting its log back to its leader's) and
//! `delete_records_before` (DeleteRecords moving the log start forward).

use std::ops::ControlFlow;

use super::checkpoint::{self, LOG_START_FILE, RECOVERY_POINT_FILE};
use super::recovery::recover_segment;
use super::scan::scan_batches;
use super::segment::Segment;
use super::PartitionLog;
use crate::error::{Error, IoContext, Result};

impl PartitionLog {
    /// Waits until every queued append is written, so truncation sees a quiet log.
    async fn wait_for_writes(&self) -> Result<()> {
        let mut progress = self.progress.subscribe();
        loop {
            let next = self.state.borrow().next_offset;
            {
                let current = progress.borrow_and_update();
                if current.failed {
                    return Err(Error::Closed);
                }
                if current.written_offset >= next {
                    return Ok(());
                }
            }
            progress.changed().await.map_err(|_| Error::Closed)?;
        }
    }

    /// Removes every batch at or after `offset`. A batch that holds `offset` in its middle is
    /// removed whole (a batch cannot be split), so afterwards the log end is at most `offset`.
    /// Leader epochs starting at or after the new log end are dropped, even when no batch goes.
    /// Returns the new log end offset. Appends must not race with truncation (the replica owner
    /// serialises them); queued appends are written first.
    pub async fn truncate_to(&self, offset: i64) -> Result<i64> {
        self.check_open()?;
        self.wait_for_writes().await?;
        let (log_start, log_end) = (self.log_start_offset(), self.log_end_offset());
        if offset >= log_end {
            // No record goes, but an epoch may start at the log end with nothing written in it:
            // this replica led that epoch and died (or lost the leadership) before its first
            // write. The leader's history does not have it, and while it is our latest epoch
            // every fetch names it and the leader answers a diverging epoch again (Kafka's
            // `truncateTo` drops it too).
            let dropped = self
                .state
                .borrow_mut()
                .leader_epochs
                .truncate_from_end(log_end);
            if dropped {
                self.persist_leader_epochs()?;
            }
            return Ok(log_end);
        }
        // Counted when truncation starts and again when it ends, so a compaction pass that
        // overlaps it in any way sees the count change and does not swap in stale data.
        self.state.borrow_mut().truncations += 1;
        if offset <= log_start {
            return self.start_fresh_at(offset.max(0)).await;
        }
        let (base, file, scan_from, end) = {
            let state = self.state.borrow();
            let (&base, segment) =
                state
                    .segments
                    .range(..=offset)
                    .next_back()
                    .ok_or(Error::Corrupt {
                        what: "log",
                        detail: format!("no segment holds offset {offset}"),
                    })?;
            // `offset` may lie in a gap compaction left after the segment's last batch.
            let scan_from = segment
                .offset_index
                .floor_by_offset(segment.relative(offset.min(segment.next_offset)))
                .map_or(0, |entry| u64::from(entry.position));
            (base, segment.file.clone(), scan_from, segment.written_bytes)
        };
        let mut cut_position = end;
        scan_batches(&file, scan_from, end, |batch| {
            if batch.header.last_offset() >= offset {
                cut_position = batch.position;
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .await?;
        file.set_len(cut_position)
            .context(|| format!("truncate segment {base}"))?;
        // Durable before anything new is: otherwise a crash could bring the cut batches back
        // in this segment while their offsets were reused, durably, in a later one (an overlap
        // recovery cannot untangle; found by the crash simulation, seed 1592590344). The later
        // segments' deletions become durable with the checkpoint's directory sync below.
        file.sync_data()
            .await
            .context(|| format!("sync truncated segment {base}"))?;
        // Rebuild the cut segment's indexes and end from what remains (truncation is rare; a
        // rescan keeps the segment's invariants obviously true).
        let config = self.config();
        let (segment, _report) = recover_segment(
            file,
            base,
            config.index_interval_bytes,
            config.segment_bytes.max(config.max_message_bytes as u64),
        )
        .await?;
        let new_end = segment.next_offset;
        if new_end < log_start {
            // Nothing from the log start on is left: the batch removed held the log start
            // (DeleteRecords moved it into the batch's middle), or compaction had removed
            // every batch between the log start and the cut. Ending the log there would put
            // its end below its start; since the log start never moves back, the log starts
            // over, empty, at `offset` (found by the crash simulation, seeds 1592590338 and
            // 1592590346).
            return self.start_fresh_at(offset).await;
        }
        let removed: Vec<Segment> = {
            let mut state = self.state.borrow_mut();
            let later = state.segments.split_off(&(base + 1));
            state.segments.insert(base, segment);
            state.truncations += 1;
            state.next_offset = new_end;
            state.recovery_point = state.recovery_point.min(new_end);
            state.dir_dirty = true;
            state.leader_epochs.truncate_from_end(new_end);
            later.into_values().collect()
        };
        for segment in &removed {
            segment.delete_files(&self.fs, &self.dir);
        }
        self.progress.send_modify(|progress| {
            progress.written_offset = new_end;
            progress.durable_offset = progress.durable_offset.min(new_end);
        });
        self.high_watermark.send_if_modified(|high_watermark| {
            let changed = *high_watermark > new_end;
            *high_watermark = (*high_watermark).min(new_end);
            changed
        });
        checkpoint::write_offset(
            &self.fs,
            &self.dir,
            RECOVERY_POINT_FILE,
            self.state.borrow().recovery_point,
        )?;
        // Written even if unchanged: truncation is rare, and a checkpoint that may lag an
        // earlier failed write is then put right.
        self.persist_leader_epochs()?;
        Ok(new_end)
    }

    /// Deletes every segment and starts an empty log at `offset`, which may lie past the log
    /// end: a follower whose log ends below its leader's log start (the leader deleted those
    /// records by retention or DeleteRecords while the follower was away) can never fetch the
    /// missing range, so it drops what it has and starts at the leader's log start (Kafka's
    /// `truncateFullyAndStartAt`). Queued appends are written first. Returns `offset`.
    pub async fn truncate_fully_and_start_at(&self, offset: i64) -> Result<i64> {
        self.check_open()?;
        if offset < 0 {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            });
        }
        self.wait_for_writes().await?;
        self.state.borrow_mut().truncations += 1;
        self.start_fresh_at(offset).await
    }

    /// Replaces every segment with one empty segment based at `offset`.
    async fn start_fresh_at(&self, offset: i64) -> Result<i64> {
        let fresh = Segment::create(&self.fs, &self.dir, offset)?;
        // Creating it may have emptied an old segment with the same base: make that durable,
        // so a crash cannot bring the old batches back under the new log.
        fresh
            .file
            .sync_data()
            .await
            .context(|| format!("sync new segment {offset}"))?;
        let removed: Vec<Segment> = {
            let mut state = self.state.borrow_mut();
            let old = std::mem::take(&mut state.segments);
            state.segments.insert(offset, fresh);
            state.truncations += 1;
            state.next_offset = offset;
            state.log_start_offset = offset;
            state.recovery_point = offset;
            state.dirty_segments.clear();
            // Kafka clears the cache too: the epochs return with the data copied next.
            state.leader_epochs.clear();
            old.into_values()
                .filter(|segment| segment.base_offset != offset)
                .collect()
        };
        for segment in &removed {
            segment.delete_files(&self.fs, &self.dir);
        }
        self.progress.send_modify(|progress| {
            progress.written_offset = offset;
            progress.durable_offset = offset;
        });
        self.high_watermark.send_replace(offset);
        checkpoint::write_offset(&self.fs, &self.dir, LOG_START_FILE, offset)?;
        checkpoint::write_offset(&self.fs, &self.dir, RECOVERY_POINT_FILE, offset)?;
        self.persist_leader_epochs()?;
        Ok(offset)
    }

    /// Moves the log start to `offset` (DeleteRecords): records below it are no longer readable
    /// and whole segments below it are deleted. `offset` may not pass the high watermark.
    /// Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        self.check_open()?;
        let (log_start, high_watermark) = (self.log_start_offset(), self.high_watermark());
        if offset > high_watermark || offset < 0 {
            return Err(Error::OffsetOutOfRange {
                offset,
                log_start_offset: log_start,
                log_end_offset: high_watermark,
            });
        }
        if offset <= log_start {
            return Ok(log_start);
        }
        self.state.borrow_mut().log_start_offset = offset;
        match checkpoint::write_offset(&self.fs, &self.dir, LOG_START_FILE, offset) {
            Ok(()) => self.delete_segments_below_log_start(),
            Err(error) if error.is_no_space() => {
                // A full disk (see `write_failure`): deleting the segments below the new start
                // is what frees space, so it cannot wait for the checkpoint. Should the process
                // die before the checkpoint is written, the log starts at its first remaining
                // segment, below `offset`: deleted records may come back, never data lost
                // (Kafka writes this checkpoint lazily and has the same window).
                self.delete_segments_below_log_start();
                if let Err(error) =
                    checkpoint::write_offset(&self.fs, &self.dir, LOG_START_FILE, offset)
                {
                    tracing::warn!(dir = %self.dir.display(), %error, "could not write the log start checkpoint; a restart before the next one may show records below the log start again");
                }
            }
            Err(error) => return Err(error),
        }
        if let Err(error) = self.trim_leader_epochs_to_log_start() {
            if !error.is_no_space() {
                return Err(error);
            }
            // The cache in memory is right; open rebuilds a checkpoint that disagrees.
            tracing::warn!(dir = %self.dir.display(), %error, "no space to write the leader-epoch checkpoint");
        }
        Ok(offset)
    }
}
