//! A log dir: the directory that holds many partition logs (`<log dir>/<topic>-<partition>/`),
//! and the one clean-shutdown marker that covers all of them, so that a stop or a start costs a
//! constant number of syncs instead of several per partition (Kafka keeps one marker per log dir
//! too).
//!
//! Life of the marker `<log dir>/.clean-shutdown`:
//! 1. [`LogDir::open`] (at start, before any partition is opened) reads whether the marker is
//!    there and removes it durably (unlink, fsync of the log dir). So the marker never describes
//!    a run in which anything was appended.
//! 2. Each partition log is opened with [`LogDir::scope`]: after a clean shutdown it skips the
//!    recovery scan; otherwise it scans from its own recovery-point checkpoint.
//! 3. A partition that cannot be opened, or whose close fails, calls [`LogDir::mark_unclean`].
//! 4. Once every partition is closed (their writers drained, their index files written),
//!    [`LogDir::close`] syncs the whole file system once (`syncfs`) and only then writes the
//!    marker atomically — unless step 3 happened, or the sync failed: then no marker is written
//!    and the next start recovers every partition.
//!
//! Invariant: the marker exists only if, after the last start, every partition log under the
//! dir was opened and closed successfully and everything they wrote was synced afterwards.
//! The marker names no partition and no shard, so the number of shards (and which shard owns a
//! partition) may change between runs.
//!
//! Checkpoints stay per partition (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint` in each partition's directory): the log start is written durably
//! whenever it moves, the recovery point when a segment is sealed. A close under a log dir writes
//! neither: the marker supersedes the recovery point (everything is synced), and the log start is
//! already durable. After a crash that follows a clean start, the recovery point on disk may be
//! older than the end at the clean shutdown; that only lengthens the scan, never skips unsynced
//! data.
//!
//! Files left by an earlier version (a `.clean-shutdown` marker inside a partition directory)
//! are honoured: that partition skips recovery, and the file is removed durably on open.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::checkpoint::{self, CLEAN_SHUTDOWN_FILE};
use crate::error::{Error, IoContext, Result};
use crate::io::Fs;

/// Who records a partition log's clean shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownScope {
    /// The log on its own: close syncs every segment and index, writes its checkpoints and its
    /// own marker in its directory (one log used alone, e.g. in benchmarks and tests).
    OwnMarker,
    /// A [`LogDir`] above the log keeps one marker for all its logs: close drains and writes the
    /// index files but leaves the syncing and the marker to [`LogDir::close`].
    /// `dir_was_clean` is what the log dir found at start; it must be `false` for a log opened
    /// after the start (the marker was removed then, and says nothing about later opens).
    LogDir { dir_was_clean: bool },
}

/// What [`LogDir::close`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDirClose {
    /// Synced and marked clean: the next start skips recovery.
    MarkedClean,
    /// Left unmarked because a partition failed to open or close: the next start recovers.
    LeftUnclean,
}

/// One log dir for the life of a broker process. Shared by all shards (`Send + Sync`).
pub struct LogDir {
    root: PathBuf,
    fs: Fs,
    /// Opened at start and kept: `syncfs` on it reports write-back errors since it was opened.
    /// `None` on a simulated disk, which syncs without a descriptor.
    handle: Option<std::fs::File>,
    was_clean: bool,
    /// Set when some partition failed to open or close; no marker is written then.
    unclean: AtomicBool,
}

impl LogDir {
    /// Opens the log dir at start, before any of its partitions: notes whether the last
    /// shutdown was clean and removes the marker durably.
    pub fn open(root: &Path) -> Result<LogDir> {
        Self::open_on(Fs::Real, root)
    }

    /// [`LogDir::open`] on the file system `fs` (a simulated disk in crash tests).
    pub fn open_on(fs: Fs, root: &Path) -> Result<LogDir> {
        checkpoint::create_dir_durably(&fs, root)?;
        let handle = match fs {
            Fs::Real => Some(
                std::fs::File::open(root).context(|| format!("open log dir {}", root.display()))?,
            ),
            #[cfg(any(test, feature = "simulation"))]
            Fs::Simulated(_) => None,
        };
        let marker = root.join(CLEAN_SHUTDOWN_FILE);
        let was_clean = match fs.remove_file(&marker) {
            Ok(()) => true,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(Error::Io {
                    context: format!("remove {}", marker.display()),
                    source,
                })
            }
        };
        if was_clean {
            // Durable before any partition opens, so an append can never be covered by it.
            checkpoint::sync_dir(&fs, root)?;
        }
        Ok(LogDir {
            root: root.to_path_buf(),
            fs,
            handle,
            was_clean,
            unclean: AtomicBool::new(false),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the previous run ended with a clean shutdown of the whole dir.
    pub fn was_clean(&self) -> bool {
        self.was_clean
    }

    /// The scope to open the partitions found at start with.
    pub fn scope(&self) -> ShutdownScope {
        ShutdownScope::LogDir {
            dir_was_clean: self.was_clean,
        }
    }

    /// Records that some partition failed to open or to close: this run ends unclean.
    pub fn mark_unclean(&self) {
        self.unclean.store(true, Ordering::SeqCst);
    }

    pub fn is_marked_unclean(&self) -> bool {
        self.unclean.load(Ordering::SeqCst)
    }

    /// Call once, after every partition log under the dir was closed (or failed and was
    /// reported with [`LogDir::mark_unclean`]). Syncs the file system holding the dir (all
    /// segments, index files and directories the logs wrote), then writes the marker.
    pub fn close(&self) -> Result<LogDirClose> {
        if self.is_marked_unclean() {
            tracing::warn!(log_dir = %self.root.display(), "not every partition closed cleanly; the next start recovers them");
            return Ok(LogDirClose::LeftUnclean);
        }
        match (&self.fs, &self.handle) {
            (Fs::Real, Some(handle)) => {
                sync_file_system(handle).context(|| format!("syncfs {}", self.root.display()))?
            }
            (Fs::Real, None) => unreachable!("a log dir on the real file system has a handle"),
            #[cfg(any(test, feature = "simulation"))]
            (Fs::Simulated(sim), _) => sim
                .sync_all()
                .context(|| format!("syncfs {}", self.root.display()))?,
        }
        checkpoint::write_atomically(&self.fs, &self.root, CLEAN_SHUTDOWN_FILE, b"")?;
        Ok(LogDirClose::MarkedClean)
    }
}

/// `syncfs(2)`: one flush of every dirty page and the journal of the file system, instead of
/// one fsync per file. Since Linux 5.8 it reports write-back errors seen since `handle` was
/// opened.
fn sync_file_system(handle: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: syncfs on a descriptor we own for the duration of the call.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
