//! Opening a partition log: load segments, recover what may be torn, start background tasks.
//! Closing it cleanly: drain, persist indexes and, for a log on its own
//! ([`ShutdownScope::OwnMarker`]), sync and write its checkpoints and clean-shutdown marker; a
//! log under a [`LogDir`](super::LogDir) leaves syncing and the marker to the log dir.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::rc::Rc;

use tokio::sync::{watch, Notify};

use super::checkpoint::{self, CLEAN_SHUTDOWN_FILE, LOG_START_FILE, RECOVERY_POINT_FILE};
use super::log_dir::ShutdownScope;
use super::offset_index::OffsetIndex;
use super::recovery::recover_segment;
use super::scan::scan_batches;
use super::segment::{
    parse_log_file_name_list, segment_path, Segment, INDEX_SUFFIX, TIME_INDEX_SUFFIX,
};
use super::time_index::TimeIndex;
use super::{LogConfig, LogState, PartitionLog, Progress};
use crate::error::{Error, IoContext, Result};
use crate::io::{Fs, OpenMode, SharedFile};

#[cfg(test)]
thread_local! {
    /// A deliberately wrong recovery, for proving that the crash simulation's checker catches
    /// one: every open believes the last shutdown was clean and scans nothing.
    pub(super) static SKIP_RECOVERY: Cell<bool> = const { Cell::new(false) };
}

fn skip_recovery_for_tests() -> bool {
    #[cfg(test)]
    {
        SKIP_RECOVERY.with(Cell::get)
    }
    #[cfg(not(test))]
    {
        false
    }
}

/// What opening found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    pub clean_shutdown: bool,
    pub segments: usize,
    pub segments_recovered: usize,
    pub bytes_scanned: u64,
    pub bytes_truncated: u64,
    pub indexes_rebuilt: usize,
}

fn open_segment_file(fs: &Fs, dir: &Path, base_offset: i64) -> Result<SharedFile> {
    let path = segment_path(dir, base_offset, super::segment::LOG_SUFFIX);
    fs.open(&path, OpenMode::Existing)
        .context(|| format!("open segment {}", path.display()))
}

/// Loads a segment that needs no recovery, trusting its index files only if they are
/// consistent with the log; otherwise they are rebuilt by a recovery scan.
async fn load_segment(
    fs: &Fs,
    dir: &Path,
    base_offset: i64,
    config: &LogConfig,
) -> Result<(Segment, bool)> {
    let file = open_segment_file(fs, dir, base_offset)?;
    let size_bytes = file
        .len_bytes()
        .context(|| format!("stat segment {base_offset}"))?;
    let offset_bytes = fs.read(&segment_path(dir, base_offset, INDEX_SUFFIX)).ok();
    let time_bytes = fs
        .read(&segment_path(dir, base_offset, TIME_INDEX_SUFFIX))
        .ok();
    if let (Some(offset_bytes), Some(time_bytes)) = (offset_bytes, time_bytes) {
        if let Ok(offset_index) = OffsetIndex::from_bytes(&offset_bytes, size_bytes.max(1)) {
            // Find the segment's end offset by stepping over the batches after the last entry.
            let start = offset_index
                .last()
                .map_or(0, |entry| u64::from(entry.position));
            let mut next_offset = base_offset;
            let mut reached = start;
            scan_batches(&file, start, size_bytes, |batch| {
                next_offset = batch.header.next_offset();
                reached = batch.end_position();
                std::ops::ControlFlow::Continue(())
            })
            .await?;
            if reached == size_bytes {
                let relative_end = u64::try_from(next_offset - base_offset).unwrap_or(0);
                if let Ok(time_index) = TimeIndex::from_bytes(&time_bytes, relative_end) {
                    let max_timestamp_ms = time_index.last().map_or(-1, |entry| entry.timestamp_ms);
                    let mut segment = Segment::from_parts(
                        base_offset,
                        file,
                        size_bytes,
                        next_offset,
                        offset_index,
                        time_index,
                        max_timestamp_ms,
                    );
                    segment.index_dirty = false;
                    return Ok((segment, false));
                }
            }
        }
    }
    tracing::info!(
        base_offset,
        "index missing or inconsistent; rebuilding it from the log"
    );
    let (mut segment, _report) = recover_segment(
        file,
        base_offset,
        config.index_interval_bytes,
        config.segment_bytes.max(config.max_message_bytes as u64),
    )
    .await?;
    segment.seal_time_index();
    Ok((segment, true))
}

impl PartitionLog {
    /// Opens (or creates) a log on its own in `dir`, which keeps its own clean-shutdown marker
    /// ([`ShutdownScope::OwnMarker`]). See [`PartitionLog::open_in`].
    pub async fn open(dir: &Path, config: LogConfig) -> Result<(Rc<Self>, OpenReport)> {
        Self::open_in(dir, config, ShutdownScope::OwnMarker).await
    }

    /// Opens (or creates) the log in `dir`. After an unclean shutdown every segment from the
    /// one holding the recovery point on is scanned and cut at the first torn or corrupt batch;
    /// segments after a cut are deleted, since they follow a hole.
    ///
    /// The shutdown was clean if the log's own marker is in `dir` (always honoured, also under
    /// a log dir: an earlier version wrote one per partition) or `scope` says the log dir was
    /// closed clean.
    pub async fn open_in(
        dir: &Path,
        config: LogConfig,
        scope: ShutdownScope,
    ) -> Result<(Rc<Self>, OpenReport)> {
        Self::open_on(Fs::Real, dir, config, scope).await
    }

    /// [`PartitionLog::open_in`] on the file system `fs` (a simulated disk in crash tests).
    pub async fn open_on(
        fs: Fs,
        dir: &Path,
        config: LogConfig,
        scope: ShutdownScope,
    ) -> Result<(Rc<Self>, OpenReport)> {
        config.validate().map_err(|detail| Error::Corrupt {
            what: "log config",
            detail,
        })?;
        checkpoint::create_dir_durably(&fs, dir)?;
        let mut report = OpenReport::default();
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let own_marker = fs.exists(&marker);
        report.clean_shutdown = own_marker
            || scope
                == ShutdownScope::LogDir {
                    dir_was_clean: true,
                }
            || skip_recovery_for_tests();
        let recovery_point = if report.clean_shutdown {
            i64::MAX
        } else {
            checkpoint::read_offset(&fs, dir, RECOVERY_POINT_FILE).unwrap_or(0)
        };

        // A compaction pass that did not finish swapping leaves temp files: the segments they
        // were meant to replace are intact.
        super::compaction::remove_stray_cleaned_files(&fs, dir);
        let bases = parse_log_file_name_list(&fs, dir);

        let max_batch_bytes = config.segment_bytes.max(config.max_message_bytes as u64);
        let mut segments = BTreeMap::new();
        let mut cut = false;
        let mut deleted_after_cut = false;
        for (index, &base_offset) in bases.iter().enumerate() {
            if cut {
                tracing::warn!(base_offset, "deleting segment after a truncated one");
                Segment::create(&fs, dir, base_offset)?.delete_files(&fs, dir);
                deleted_after_cut = true;
                continue;
            }
            let next_base = bases.get(index + 1).copied().unwrap_or(i64::MAX);
            let needs_recovery = next_base > recovery_point;
            let segment = if needs_recovery {
                let file = open_segment_file(&fs, dir, base_offset)?;
                let (mut segment, recovered) = recover_segment(
                    file,
                    base_offset,
                    config.index_interval_bytes,
                    max_batch_bytes,
                )
                .await?;
                report.segments_recovered += 1;
                report.bytes_scanned += recovered.valid_bytes + recovered.truncated_bytes;
                report.bytes_truncated += recovered.truncated_bytes;
                cut = recovered.truncated_bytes > 0;
                if cut {
                    // The cut must be durable before the recovery point can move past this
                    // segment (the syncer seals it without syncing it again when nothing new
                    // is written to it); otherwise a crash brings the torn tail back under a
                    // recovery point that says it is clean (found by the crash simulation,
                    // seed 1592590386).
                    segment
                        .file
                        .sync_data()
                        .await
                        .context(|| format!("sync recovered segment {base_offset}"))?;
                }
                segment.seal_time_index();
                segment
            } else {
                let (segment, rebuilt) = load_segment(&fs, dir, base_offset, &config).await?;
                report.indexes_rebuilt += usize::from(rebuilt);
                segment
            };
            segments.insert(base_offset, segment);
        }
        if deleted_after_cut {
            // Durable before anything is appended at their offsets again: segments that came
            // back after a crash would overlap the new batches.
            checkpoint::sync_dir(&fs, dir)?;
        }
        // An empty segment other than the last carries nothing; keep the structure simple.
        let checkpointed_start = checkpoint::read_offset(&fs, dir, LOG_START_FILE).unwrap_or(0);
        let recovered_end = segments.values().next_back().map(|s| s.next_offset);
        if recovered_end.is_some_and(|end| end < checkpointed_start) {
            // The crash took data up to the durable log start (DeleteRecords may move it past
            // what is synced). Starting at the recovered end would hand out offsets below the
            // log start again; the log starts over, empty, at its start instead (found by the
            // crash simulation, seed 1592590015).
            tracing::warn!(
                checkpointed_start,
                "the log ends before its start after recovery; starting it over there"
            );
            for segment in std::mem::take(&mut segments).into_values() {
                segment.delete_files(&fs, dir);
            }
        }
        if segments.is_empty() {
            let segment = Segment::create(&fs, dir, checkpointed_start)?;
            segments.insert(segment.base_offset, segment);
            checkpoint::sync_dir(&fs, dir)?;
        }
        let first_base = segments.keys().next().copied().unwrap_or(0);
        let next_offset = segments
            .values()
            .next_back()
            .map_or(first_base, |segment| segment.next_offset);
        let log_start_offset = checkpointed_start.clamp(first_base, next_offset);
        report.segments = segments.len();

        // The marker only describes the shutdown just recovered from: remove it (durably)
        // before anything new is appended. (A log dir's marker was removed by `LogDir::open`.)
        if own_marker {
            fs.remove_file(&marker)
                .context(|| format!("remove {}", marker.display()))?;
            checkpoint::sync_dir(&fs, dir)?;
        }
        let recovery_point = if report.clean_shutdown {
            next_offset
        } else {
            recovery_point.min(next_offset)
        };
        let leader_epochs =
            super::leader_epoch::load(&fs, dir, &segments, log_start_offset, next_offset).await?;

        let state = LogState {
            config,
            segments,
            log_start_offset,
            next_offset,
            recovery_point,
            pending: VecDeque::new(),
            pending_bytes: 0,
            dirty_segments: Vec::new(),
            dir_dirty: false,
            index_writes_in_flight: Vec::new(),
            truncations: 0,
            leader_epochs,
            compaction: Default::default(),
            rewinding: false,
            space_low: false,
            closed: false,
        };
        let (progress, _) = watch::channel(Progress {
            written_offset: next_offset,
            durable_offset: next_offset,
            failed: false,
            aborts: 0,
            abort_offsets: [next_offset; super::ABORTS_REMEMBERED],
        });
        let log = Rc::new(PartitionLog {
            dir: dir.to_path_buf(),
            fs,
            state: RefCell::new(state),
            progress,
            high_watermark: watch::channel(next_offset).0,
            high_watermark_follows_log_end: Cell::new(false),
            writer_wakeup: Notify::new(),
            syncer_wakeup: Notify::new(),
            shutdown_scope: scope,
            tasks_running: Cell::new(0),
            tasks_done: Notify::new(),
        });
        log.start_background_tasks();
        Ok((log, report))
    }

    fn start_background_tasks(self: &Rc<Self>) {
        self.tasks_running.set(2);
        let writer = self.clone();
        crate::io::spawn_local(async move {
            writer.run_writer().await;
            writer.task_finished();
        });
        let syncer = self.clone();
        crate::io::spawn_local(async move {
            syncer.run_syncer().await;
            syncer.task_finished();
        });
    }

    fn task_finished(&self) {
        self.tasks_running
            .set(self.tasks_running.get().saturating_sub(1));
        self.tasks_done.notify_one();
    }

    /// Stops accepting appends and waits for queued writes. On its own
    /// ([`ShutdownScope::OwnMarker`]) it then syncs everything, persists indexes and checkpoints,
    /// and writes the clean-shutdown marker. Under a log dir it only writes the dirty index
    /// files, unsynced: no fsync, no checkpoint, no marker per log, since `LogDir::close` syncs
    /// the file system once and writes one marker for all of them. Safe to call once; later
    /// calls no-op.
    pub async fn close(&self) -> Result<()> {
        {
            let mut state = self.state.borrow_mut();
            if state.closed {
                return Ok(());
            }
            state.closed = true;
        }
        self.writer_wakeup.notify_one();
        self.syncer_wakeup.notify_one();
        while self.tasks_running.get() > 0 {
            self.tasks_done.notified().await;
        }
        if self.progress.borrow().failed {
            return Err(Error::Closed);
        }
        if let ShutdownScope::LogDir { .. } = self.shutdown_scope {
            return self.persist_all_indexes_with(false).await;
        }
        let files: Vec<SharedFile> = self
            .state
            .borrow()
            .segments
            .values()
            .map(|segment| segment.file.clone())
            .collect();
        for file in files {
            file.sync_data()
                .await
                .context(|| format!("sync {}", self.dir.display()))?;
        }
        self.persist_all_indexes().await?;
        let next_offset = self.state.borrow().next_offset;
        checkpoint::write_offset(&self.fs, &self.dir, RECOVERY_POINT_FILE, next_offset)?;
        checkpoint::write_offset(&self.fs, &self.dir, LOG_START_FILE, self.log_start_offset())?;
        checkpoint::write_atomically(&self.fs, &self.dir, CLEAN_SHUTDOWN_FILE, b"")?;
        Ok(())
    }

    /// Writes and syncs every segment's dirty index files (after sealing the active one's time
    /// index).
    pub(super) async fn persist_all_indexes(&self) -> Result<()> {
        self.persist_all_indexes_with(true).await
    }

    async fn persist_all_indexes_with(&self, sync: bool) -> Result<()> {
        let snapshots: Vec<_> = {
            let mut state = self.state.borrow_mut();
            state
                .segments
                .values_mut()
                .filter_map(|segment| {
                    segment.seal_time_index();
                    let dirty = segment.index_dirty;
                    segment.index_dirty = false;
                    dirty.then(|| segment.index_snapshot())
                })
                .collect()
        };
        for snapshot in snapshots {
            if sync {
                snapshot.write(&self.fs, &self.dir).await?;
            } else {
                snapshot.write_unsynced(&self.fs, &self.dir).await?;
            }
        }
        Ok(())
    }
}
