//! The syncer task: makes written batches durable per the log's [`Durability`], and seals
//! rolled segments (sync, persist their indexes, move the recovery point past them).
//!
//! Group commit (`Durability::Sync`): a round takes every segment written since the last round,
//! fdatasyncs each once, then declares durable everything that was written when the round began.
//! Writes that land during a round are picked up by the next one, so while one fdatasync is in
//! flight the next group is already forming.

use std::time::Duration;

use super::checkpoint;
use super::{Durability, PartitionLog};
use crate::error::{IoContext, Result};
use crate::io::SharedFile;

struct SyncPlan {
    /// Offset up to which data was written when the round started.
    target_offset: i64,
    files: Vec<(i64, SharedFile)>,
    dir_dirty: bool,
    /// Whether this round declares `target_offset` durable (not in `Durability::None`).
    advances_durable: bool,
    /// Base of the active segment, when everything before it is written: sealed segments can be
    /// finished and the recovery point moved to it.
    sealed_up_to: Option<i64>,
}

impl PartitionLog {
    fn plan_sync_round(&self) -> SyncPlan {
        let target_offset = self.progress.borrow().written_offset;
        let mut state = self.state.borrow_mut();
        let active_base = state.segments.keys().next_back().copied().unwrap_or(0);
        let advances_durable = state.config.durability != Durability::None;
        let mut taken = Vec::new();
        state.dirty_segments.retain(|&base| {
            let take = advances_durable || base < active_base;
            if take {
                taken.push(base);
            }
            !take
        });
        let files = taken
            .into_iter()
            .filter_map(|base| {
                state
                    .segments
                    .get(&base)
                    .map(|segment| (base, segment.file.clone()))
            })
            .collect();
        let dir_dirty = std::mem::take(&mut state.dir_dirty);
        let sealed_pending = state
            .segments
            .range(..active_base)
            .any(|(_, segment)| segment.index_dirty)
            || state.recovery_point < active_base;
        let sealed_up_to = (sealed_pending && target_offset >= active_base).then_some(active_base);
        SyncPlan {
            target_offset,
            files,
            dir_dirty,
            advances_durable,
            sealed_up_to,
        }
    }

    async fn sync_round(&self) -> Result<()> {
        let plan = self.plan_sync_round();
        for (base, file) in &plan.files {
            file.sync_data()
                .await
                .context(|| format!("fdatasync segment {base} in {}", self.dir.display()))?;
        }
        if plan.dir_dirty {
            checkpoint::sync_dir(&self.fs, &self.dir)?;
        }
        if plan.advances_durable {
            let target = plan.target_offset;
            self.progress.send_if_modified(|progress| {
                let advanced = target > progress.durable_offset;
                progress.durable_offset = progress.durable_offset.max(target);
                advanced
            });
        }
        if let Some(active_base) = plan.sealed_up_to {
            let snapshots: Vec<_> = {
                let mut state = self.state.borrow_mut();
                state
                    .segments
                    .range_mut(..active_base)
                    .filter(|(_, segment)| segment.index_dirty)
                    .map(|(_, segment)| {
                        segment.index_dirty = false;
                        segment.index_snapshot()
                    })
                    .collect()
            };
            let bases: Vec<i64> = snapshots.iter().map(|s| s.base_offset).collect();
            self.state
                .borrow_mut()
                .index_writes_in_flight
                .extend_from_slice(&bases);
            let mut written = Ok(());
            for snapshot in snapshots {
                written = snapshot.write(&self.fs, &self.dir).await;
                if written.is_err() {
                    break;
                }
            }
            self.state
                .borrow_mut()
                .index_writes_in_flight
                .retain(|base| !bases.contains(base));
            if let Err(error) = written {
                if !error.is_no_space() {
                    return Err(error);
                }
                // Full disk: the sealed segments keep their dirty indexes for a later round
                // (open rebuilds a missing or torn index anyway); the recovery point stays.
                tracing::warn!(dir = %self.dir.display(), %error, "no space to write sealed segments' indexes; retrying later");
                let mut state = self.state.borrow_mut();
                for (&base, segment) in state.segments.range_mut(..active_base) {
                    if bases.contains(&base) {
                        segment.index_dirty = true;
                    }
                }
                return Ok(());
            }
            if let Err(error) = self.checkpoint_recovery_point(active_base) {
                if !error.is_no_space() {
                    return Err(error);
                }
                // A stale recovery point only makes the next recovery scan longer.
                tracing::warn!(dir = %self.dir.display(), %error, "no space to write the recovery point");
            }
        }
        Ok(())
    }

    /// Whether every segment before the active one is sealed (index written, recovery point
    /// moved past it): tests wait for this instead of sleeping a guessed time.
    #[cfg(test)]
    pub(crate) fn sealed_up_to_active_segment(&self) -> bool {
        let state = self.state.borrow();
        let active_base = state.segments.keys().next_back().copied().unwrap_or(0);
        state.recovery_point >= active_base
    }

    /// Whether the syncer has work now.
    fn has_sync_work(&self) -> bool {
        let state = self.state.borrow();
        !state.dirty_segments.is_empty() || state.dir_dirty
    }

    /// The syncer task; ends when the log closes (close does the final sync itself).
    pub(super) async fn run_syncer(&self) {
        loop {
            let (closed, durability) = {
                let state = self.state.borrow();
                (state.closed, state.config.durability)
            };
            if closed {
                return;
            }
            match durability {
                Durability::Interval { flush_ms } => {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(flush_ms)) => {}
                        () = self.syncer_wakeup.notified() => {
                            // Woken by a write or roll: only a roll or close needs action before
                            // the interval elapses; the round below handles sealed segments.
                            if !self.state.borrow().closed && !self.state.borrow().dir_dirty {
                                continue;
                            }
                        }
                    }
                }
                Durability::None | Durability::Sync => {
                    if !self.has_sync_work() {
                        self.syncer_wakeup.notified().await;
                        continue;
                    }
                }
            }
            if let Err(error) = self.sync_round().await {
                self.fail("sync", &error);
                return;
            }
            if durability == Durability::None {
                // Only sealed segments are synced in this mode; wait for the next event.
                self.syncer_wakeup.notified().await;
            }
        }
    }
}
