//! What the log does when its file system is full.
//!
//! The rule (issue 11, "Disk full"): a write that fails with ENOSPC (or EDQUOT) does not take
//! the log offline, unlike any other I/O error (Kafka takes the whole log dir offline on every
//! I/O error; a full disk is the one failure that fixes itself once space returns, and reads of
//! what is stored are unaffected). Instead:
//!
//! 1. The writer undoes the failed round: the active segment is cut back to where the round
//!    started (a failed `pwritev` may have written part of it: a torn tail), every append queued
//!    after it is discarded, segments rolled for them are deleted, and the log's next offset, its
//!    segment indexes and leader epochs go back to the last batch written. Appends are refused
//!    ([`Error::NoSpace`]) while this runs.
//! 2. Every discarded append's waiter gets [`Error::NoSpace`] (KAFKA_STORAGE_ERROR to the
//!    producer, which retries): `Progress::aborts` counts the undo and `Progress::abort_offsets`
//!    says where it went back to, so a waiter can tell "written before the abort" from
//!    "discarded" even though the offsets are handed out again.
//! 3. Until a write succeeds again, an append is refused up front unless the file system has at
//!    least the append's size plus [`RESUME_FREE_BYTES_MIN`] free (`statvfs`): producers hammering a
//!    full disk cost one syscall each, not a write and an undo each. Space returning (retention,
//!    DeleteRecords, a bigger file system) lets the next append through: no restart.
//!
//! Nothing acknowledged is ever lost by this: only batches whose write had not completed are
//! discarded, and a batch's waiter resolves only after its write completed. Readers never saw
//! the discarded bytes (they read up to the written end, which does not move back).
//!
//! An index write or recovery-point checkpoint that fails for lack of space is skipped and
//! retried by a later sync round (`sync`): those files are rebuilt from the log at open if they
//! are missing or torn, so a missing one costs only a longer start. An fsync that fails is
//! still fatal: after a failed fsync the page cache may have dropped the data.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::recovery::recover_segment;
use super::{PartitionLog, ABORTS_REMEMBERED};
use crate::error::{Error, IoContext, Result};

/// Free bytes (beyond the append itself) a file system that filled up must have again before
/// appends are written to it: room for the index files and checkpoints a roll writes, so the
/// first append after a full disk does not fill it again at once.
pub const RESUME_FREE_BYTES_MIN: u64 = 1 << 20;

/// Size and free space of the file system holding a path (`statvfs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSystemSpace {
    pub total_bytes: u64,
    /// Bytes an unprivileged writer may still use (`f_bavail`).
    pub usable_bytes: u64,
}

/// `statvfs(2)` of the file system holding `path`.
pub fn file_system_space(path: &Path) -> std::io::Result<FileSystemSpace> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL"))?;
    // SAFETY: a zeroed statvfs is a valid out-parameter; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above; `stat` lives for the call.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fragment_bytes = stat.f_frsize as u64;
    Ok(FileSystemSpace {
        total_bytes: (stat.f_blocks as u64).saturating_mul(fragment_bytes),
        usable_bytes: (stat.f_bavail as u64).saturating_mul(fragment_bytes),
    })
}

impl PartitionLog {
    /// Refuses an append of `len_bytes` while a full disk's write is being undone, or while the
    /// file system that filled up has not got room again (see the module comment). Costs two
    /// flag reads while the disk is fine.
    pub(super) fn check_space(&self, len_bytes: usize) -> Result<()> {
        let (rewinding, space_low) = {
            let state = self.state.borrow();
            (state.rewinding, state.space_low)
        };
        if rewinding {
            return Err(self.no_space());
        }
        if !space_low {
            return Ok(());
        }
        match file_system_space(&self.dir) {
            Ok(space) if space.usable_bytes >= len_bytes as u64 + RESUME_FREE_BYTES_MIN => Ok(()),
            Ok(_) => Err(self.no_space()),
            // Cannot tell: let the write find out.
            Err(_) => Ok(()),
        }
    }

    fn no_space(&self) -> Error {
        Error::NoSpace {
            dir: self.dir.display().to_string(),
        }
    }

    /// Undoes a write round that failed for lack of space at `position` of segment
    /// `segment_base`, and everything queued after it (see the module comment). Everything
    /// before that point was written: the writer writes in order and stops at the first failure.
    pub(super) async fn undo_unwritten(
        &self,
        segment_base: i64,
        position: u64,
        cause: &Error,
    ) -> Result<()> {
        let undo_to_offset = self.progress.borrow().written_offset;
        let (file, later) = {
            let mut state = self.state.borrow_mut();
            state.rewinding = true;
            state.space_low = true;
            state.pending.clear();
            state.pending_bytes = 0;
            let later = state.segments.split_off(&(segment_base + 1));
            let segment = state.segments.get(&segment_base).ok_or(Error::Corrupt {
                what: "log",
                detail: format!("the failed write's segment {segment_base} is gone"),
            })?;
            (segment.file.clone(), later)
        };
        tracing::warn!(dir = %self.dir.display(), %cause, undo_to_offset, discarded_segments = later.len(), "file system full: undoing unwritten appends; the log stays online and refuses appends until there is room");
        for segment in later.values() {
            segment.delete_files(&self.fs, &self.dir);
        }
        // The torn tail goes, and with it the blocks it took.
        file.set_len(position)
            .context(|| format!("cut segment {segment_base} back to {position}"))?;
        // The active segment's indexes and end, rebuilt from what is on disk (at most one
        // segment's scan, only after a failed write).
        let config = self.config();
        let (segment, _report) = recover_segment(
            file,
            segment_base,
            config.index_interval_bytes,
            config.segment_bytes.max(config.max_message_bytes as u64),
        )
        .await?;
        if segment.next_offset != undo_to_offset && !segment.is_empty() {
            return Err(Error::Corrupt {
                what: "log",
                detail: format!(
                    "segment {segment_base} ends at {} after the undo, expected {undo_to_offset}",
                    segment.next_offset
                ),
            });
        }
        let epochs_dropped = {
            let mut state = self.state.borrow_mut();
            state.segments.insert(segment_base, segment);
            state.next_offset = undo_to_offset;
            state.truncations += 1;
            state.dir_dirty |= !later.is_empty();
            state.recovery_point = state.recovery_point.min(undo_to_offset);
            let segments = &state.segments;
            let kept: Vec<i64> = state
                .dirty_segments
                .iter()
                .copied()
                .filter(|base| segments.contains_key(base))
                .collect();
            state.dirty_segments = kept;
            // Epochs that start past the new end go; one that starts at it stays: it may be
            // this leader's own epoch, recorded at the log end before its first write (KIP-101),
            // and an epoch starting at the log end with no batch yet is a valid state.
            let epochs_dropped = state.leader_epochs.truncate_from_end(undo_to_offset + 1);
            state.rewinding = false;
            epochs_dropped
        };
        if epochs_dropped {
            if let Err(error) = self.persist_leader_epochs() {
                tracing::warn!(dir = %self.dir.display(), %error, "could not write the leader-epoch checkpoint after an undo; open rebuilds it");
            }
        }
        drop(later);
        self.progress.send_modify(|progress| {
            progress.aborts += 1;
            let slot = (progress.aborts % ABORTS_REMEMBERED as u64) as usize;
            progress.abort_offsets[slot] = undo_to_offset;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use bytes::Bytes;

    use super::super::tests::{batch, read_all, run};
    use super::super::{LogConfig, PartitionLog, Progress};
    use super::*;

    #[test]
    fn a_waiter_is_discarded_only_by_an_abort_below_its_end() {
        let mut progress = Progress {
            written_offset: 10,
            durable_offset: 10,
            failed: false,
            aborts: 0,
            abort_offsets: [0; ABORTS_REMEMBERED],
        };
        assert!(!progress.discarded(0, 12), "no abort yet");
        progress.aborts = 1;
        progress.abort_offsets[1] = 10;
        assert!(progress.discarded(0, 12), "ends past the undo");
        assert!(!progress.discarded(0, 10), "written before the undo");
        assert!(!progress.discarded(1, 12), "appended after the undo");
        // A second abort further on: the first one after the append decides.
        progress.aborts = 2;
        progress.abort_offsets[2] = 14;
        assert!(
            progress.discarded(0, 12),
            "the first abort after it discarded it"
        );
        assert!(!progress.discarded(1, 12), "the second one did not");
        progress.aborts = 1 + ABORTS_REMEMBERED as u64;
        assert!(
            progress.discarded(0, 1),
            "too many aborts ago: reported failed"
        );
    }

    /// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
    struct SmallFileSystem {
        _parent: tempfile::TempDir,
        path: PathBuf,
    }

    impl SmallFileSystem {
        /// `None` (with a message) when not root: mounting needs it.
        fn mount(size: &str) -> Option<SmallFileSystem> {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                eprintln!("SKIPPED: mounting a small tmpfs needs root");
                return None;
            }
            let parent = tempfile::tempdir().expect("tempdir");
            let path = parent.path().join("small");
            std::fs::create_dir(&path).expect("mkdir");
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&path)
                .status()
                .expect("run mount");
            assert!(status.success(), "mount tmpfs");
            Some(SmallFileSystem {
                _parent: parent,
                path,
            })
        }

        fn resize(&self, size: &str) {
            let status = Command::new("mount")
                .args(["-o", &format!("remount,size={size}")])
                .arg(&self.path)
                .status()
                .expect("run mount");
            assert!(status.success(), "remount tmpfs");
        }
    }

    impl Drop for SmallFileSystem {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.path).status();
        }
    }

    fn stored(original: &Bytes, base_offset: i64) -> Vec<u8> {
        let mut bytes = original.to_vec();
        bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
        bytes
    }

    /// Issue 11, disk full: appends to a log on a full file system fail with `NoSpace` (never a
    /// torn batch, never an offline log); what was acknowledged reads back, nothing else; once
    /// the file system grows, appends go on without reopening; and a recovery scan after it
    /// finds nothing to cut.
    #[test]
    fn a_full_file_system_refuses_appends_undoes_torn_writes_and_recovers_when_space_returns() {
        let Some(small) = SmallFileSystem::mount("1m") else {
            return;
        };
        let dir = small.path.join("t-0");
        let config = LogConfig {
            segment_bytes: 96 << 10,
            index_interval_bytes: 4096,
            ..LogConfig::default()
        };
        run(async {
            let (log, _) = PartitionLog::open(&dir, config.clone())
                .await
                .expect("open");
            let mut acknowledged: Vec<Vec<u8>> = Vec::new();
            let mut refused = 0;
            let mut undone = 0;
            for round in 0..200 {
                // Several appends queued at once, so an undo also discards queued ones (and
                // segments rolled for them).
                let mut receipts = Vec::new();
                for index in 0..6 {
                    let original = batch(1, 7_000, 1_000 + round * 10 + index);
                    match log.append(original.clone(), 0).await {
                        Ok(receipt) => receipts.push((original, receipt)),
                        Err(error) => {
                            assert!(error.is_no_space(), "refused with {error}");
                            refused += 1;
                        }
                    }
                }
                for (original, receipt) in receipts {
                    let base = receipt.base_offset;
                    match receipt.written().wait().await {
                        Ok(()) => acknowledged.push(stored(&original, base)),
                        Err(error) => {
                            assert!(
                                matches!(error, Error::NoSpace { .. }),
                                "failed with {error}"
                            );
                            undone += 1;
                        }
                    }
                }
                if refused > 20 {
                    break;
                }
            }
            assert!(undone > 0, "some write was undone");
            assert!(refused > 20, "appends are refused while the disk is full");
            assert!(!log.progress().failed, "the log stays online");
            assert!(log.write_aborts() > 0);
            assert_eq!(
                read_all(&log).await,
                acknowledged,
                "exactly what was acknowledged"
            );
            assert_eq!(log.log_end_offset(), acknowledged.len() as i64);
            assert_eq!(log.next_offset(), log.log_end_offset(), "nothing queued");

            // Space returns: the same log takes appends again.
            small.resize("4m");
            for index in 0..20 {
                let original = batch(1, 7_000, 5_000 + index);
                let receipt = log.append(original.clone(), 0).await.expect("append");
                receipt.written().wait().await.expect("written");
                acknowledged.push(stored(&original, receipt.base_offset));
            }
            assert_eq!(read_all(&log).await, acknowledged);
            log.close().await.expect("close");
        });
        // A recovery scan of every segment finds every batch whole.
        std::fs::remove_file(dir.join(super::super::checkpoint::CLEAN_SHUTDOWN_FILE))
            .expect("remove the marker");
        std::fs::remove_file(dir.join(super::super::checkpoint::RECOVERY_POINT_FILE))
            .expect("remove the recovery point");
        run(async {
            let (log, report) = PartitionLog::open(&dir, config).await.expect("reopen");
            assert_eq!(report.bytes_truncated, 0, "no torn tail: {report:?}");
            assert!(report.segments_recovered > 1, "scanned: {report:?}");
            let batches = read_all(&log).await;
            let offsets: Vec<i64> = batches
                .iter()
                .map(|bytes| i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")))
                .collect();
            assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
            log.close().await.expect("close");
        });
    }

    /// Fills `dir`'s file system with a file, then frees `free_pages` pages of it.
    fn fill_leaving(dir: &Path, free_pages: u64) -> PathBuf {
        use std::io::Write;
        let path = dir.join("filler");
        let mut file = std::fs::File::create(&path).expect("create filler");
        let chunk = vec![7u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let len = file.metadata().expect("stat filler").len() / 4096 * 4096;
        file.set_len(len.saturating_sub(free_pages * 4096))
            .expect("free pages");
        path
    }

    /// Issue 11, disk full: the sealed segment's index files cannot be written (the roll's
    /// new segment took the last free pages). The log stays online, and a crash right then
    /// leaves nothing the next open refuses: the torn index is rebuilt by recovery, and every
    /// acknowledged batch reads back.
    #[test]
    fn an_index_write_that_finds_no_space_leaves_the_log_online_and_recoverable() {
        let Some(small) = SmallFileSystem::mount("1m") else {
            return;
        };
        let dir = small.path.join("t-0");
        let config = LogConfig {
            // 15 batches of ~4 KB fit, the 16th rolls.
            segment_bytes: 60 << 10,
            index_interval_bytes: 1024,
            ..LogConfig::default()
        };
        let mut acknowledged = Vec::new();
        run(async {
            let (log, _) = PartitionLog::open(&dir, config.clone())
                .await
                .expect("open");
            for index in 0..15 {
                let original = batch(1, 4_000, 1_000 + index);
                let receipt = log.append(original.clone(), 0).await.expect("append");
                receipt.written().wait().await.expect("written");
                acknowledged.push(stored(&original, receipt.base_offset));
            }
            // Room for the next batch (two pages) and nothing more.
            fill_leaving(&small.path, 2);
            let original = batch(1, 4_000, 2_000);
            let receipt = log.append(original.clone(), 0).await.expect("append");
            receipt.written().wait().await.expect("the batch fits");
            acknowledged.push(stored(&original, receipt.base_offset));
            assert_eq!(log.segment_count(), 2, "rolled");
            // The syncer seals segment 0: its index file is created, but its write fails.
            let index_file = dir.join(format!("{:020}.index", 0));
            for _ in 0..2_000 {
                if index_file.exists() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            assert!(index_file.exists(), "the syncer tried to write the index");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert!(!log.progress().failed, "the log stays online");
            assert!(
                !log.sealed_up_to_active_segment(),
                "the recovery point stays"
            );
            // A crash now: the runtime ends without a close.
        });
        std::fs::remove_file(small.path.join("filler")).expect("free the space");
        run(async {
            let (log, report) = PartitionLog::open(&dir, config).await.expect("reopen");
            assert_eq!(report.bytes_truncated, 0, "{report:?}");
            assert_eq!(read_all(&log).await, acknowledged);
            let receipt = log.append(batch(1, 4_000, 3_000), 0).await.expect("append");
            receipt.written().wait().await.expect("written");
            log.close().await.expect("close");
        });
    }

    /// Issue 11, disk full: DeleteRecords is a way to get space back, so it must work on a file
    /// system without a free page (its checkpoint cannot be written before segments go).
    #[test]
    fn delete_records_frees_space_on_a_full_file_system() {
        let Some(small) = SmallFileSystem::mount("1m") else {
            return;
        };
        let dir = small.path.join("t-0");
        let config = LogConfig {
            segment_bytes: 60 << 10,
            index_interval_bytes: 1024,
            ..LogConfig::default()
        };
        run(async {
            let (log, _) = PartitionLog::open(&dir, config).await.expect("open");
            log.set_high_watermark_follows_log_end(true);
            for index in 0..40 {
                let receipt = log
                    .append(batch(1, 4_000, 1_000 + index), 0)
                    .await
                    .expect("append");
                receipt.written().wait().await.expect("written");
            }
            assert!(log.segment_count() >= 3);
            // Sealed segments synced, their indexes written: no background I/O holds their
            // files open, so deleting them frees their pages at once.
            super::super::tests::settle(&log).await;
            fill_leaving(&small.path, 0);
            let usable_before = file_system_space(&small.path)
                .expect("statvfs")
                .usable_bytes;
            assert_eq!(
                log.delete_records_before(30)
                    .expect("DeleteRecords on a full disk"),
                30
            );
            let usable_after = file_system_space(&small.path)
                .expect("statvfs")
                .usable_bytes;
            assert!(
                usable_after >= usable_before + (100 << 10),
                "whole segments were freed: {usable_before} -> {usable_after}"
            );
            let receipt = log.append(batch(1, 4_000, 9_000), 0).await.expect("append");
            receipt.written().wait().await.expect("written");
            log.close().await.expect("close");
        });
    }
}
