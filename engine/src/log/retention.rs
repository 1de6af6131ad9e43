//! Retention: delete whole old segments by age (`retention.ms`), by total size
//! (`retention.bytes`) — both only under `cleanup.policy=delete` — and those wholly below the
//! log start. The active segment is never deleted. Runs when the owner calls it (the shard's
//! periodic retention task).

use super::checkpoint::{self, LOG_START_FILE};
use super::segment::Segment;
use super::{CleanupPolicy, PartitionLog};
use crate::error::Result;

/// What one retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
}

impl PartitionLog {
    /// Deletes segments that retention no longer keeps, as of wall-clock `now_ms`.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome> {
        let deleted: Vec<Segment> = {
            let mut state = self.state.borrow_mut();
            let config = state.config.clone();
            let written_end = self.progress.borrow().written_offset;
            let mut total_bytes: u64 = state
                .segments
                .values()
                .map(|segment| segment.size_bytes)
                .sum();
            let mut doomed = Vec::new();
            let segment_count = state.segments.len();
            for (index, segment) in state.segments.values().enumerate() {
                let is_active = index + 1 == segment_count;
                // Only whole, fully written segments go.
                if is_active || segment.next_offset > written_end {
                    break;
                }
                // A compacted log keeps its latest records however old (Kafka's `compact`).
                let by_policy = config.cleanup_policy == CleanupPolicy::Delete;
                let expired = by_policy
                    && config.retention_ms.is_some_and(|retention_ms| {
                        segment.max_timestamp_ms >= 0
                            && now_ms - segment.max_timestamp_ms > retention_ms
                    });
                let oversize = by_policy
                    && config
                        .retention_bytes
                        .is_some_and(|max_bytes| total_bytes - segment.size_bytes >= max_bytes);
                let below_start = segment.next_offset <= state.log_start_offset;
                if !(expired || oversize || below_start) {
                    break;
                }
                total_bytes -= segment.size_bytes;
                doomed.push(segment.base_offset);
            }
            let removed: Vec<Segment> = doomed
                .iter()
                .filter_map(|base| state.segments.remove(base))
                .collect();
            if let Some(first) = state.segments.keys().next().copied() {
                state.log_start_offset = state.log_start_offset.max(first);
            }
            state.dirty_segments.retain(|base| !doomed.contains(base));
            removed
        };
        if deleted.is_empty() {
            return Ok(RetentionOutcome::default());
        }
        let outcome = RetentionOutcome {
            segments_deleted: deleted.len(),
            bytes_deleted: deleted.iter().map(|segment| segment.size_bytes).sum(),
        };
        for segment in &deleted {
            segment.delete_files(&self.fs, &self.dir);
        }
        checkpoint::write_offset(&self.fs, &self.dir, LOG_START_FILE, self.log_start_offset())?;
        self.trim_leader_epochs_to_log_start()?;
        tracing::info!(dir = %self.dir.display(), ?outcome, "retention deleted segments");
        Ok(outcome)
    }

    /// Deletes segments whose every batch is below the log start.
    pub(super) fn delete_segments_below_log_start(&self) {
        let removed: Vec<Segment> = {
            let mut state = self.state.borrow_mut();
            let log_start = state.log_start_offset;
            let segment_count = state.segments.len();
            let doomed: Vec<i64> = state
                .segments
                .values()
                .take(segment_count.saturating_sub(1))
                .take_while(|segment| segment.next_offset <= log_start)
                .map(|segment| segment.base_offset)
                .collect();
            state.dirty_segments.retain(|base| !doomed.contains(base));
            doomed
                .iter()
                .filter_map(|base| state.segments.remove(base))
                .collect()
        };
        for segment in &removed {
            segment.delete_files(&self.fs, &self.dir);
        }
    }
}
