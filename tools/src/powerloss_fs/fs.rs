//! The FUSE filesystem: a passthrough to a backing directory that keeps every unsynced change
//! (file data in [`Overlay`]s, directory operations in the [`Journal`]) so it can lose them.
//!
//! Node ids are our own (never reused); each maps to a path relative to the backing directory,
//! kept current through renames. All state sits behind one mutex: this filesystem is for tests
//! and values being obviously correct over being fast.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use super::journal::{Journal, PendingOp, UndoCounts, UndoStep};
use super::overlay::Overlay;

mod fuse_ops;

/// Hidden directory (in the backing root) holding removed files until their removal is durable.
pub const TRASH_DIR: &str = ".strom-powerloss-trash";

/// Attributes and entries are never cached by the kernel: sizes come from the overlays, which
/// only this process knows.
const TTL: Duration = Duration::ZERO;

const ROOT_ID: u64 = 1;

/// The most unsynced data all files together may hold in memory. A write beyond it fails with
/// ENOSPC rather than let a test that never fsyncs exhaust the machine's memory (a real page
/// cache would write back instead, which this filesystem must not: that would make it durable).
pub const MAX_UNSYNCED_BYTES: u64 = 512 * 1024 * 1024;

/// What a power loss or a clean shutdown did, printed as the filesystem's last report.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ShutdownReport {
    /// Files whose unsynced data was dropped (power loss) or written (clean shutdown).
    pub files: u64,
    /// Unsynced data bytes dropped or written.
    pub bytes: u64,
    /// Directory operations undone (power loss) or made durable (clean shutdown).
    pub namespace_ops: u64,
    /// Undo steps that failed (power loss only; 0 unless the backing directory was tampered with).
    pub failed_undo_steps: u64,
}

/// One node: where it lives in the backing directory, and its unsynced data.
struct Node {
    /// Relative to the backing root; inside the trash once removed.
    path: PathBuf,
    /// Open backing file while the kernel holds handles to it.
    file: Option<File>,
    open_handles: u32,
    /// Unsynced data; `None` when the backing file is all there is.
    overlay: Option<Overlay>,
}

struct State {
    nodes: HashMap<u64, Node>,
    /// Backing inode number to node id, so a second lookup of a file finds the same node.
    by_backing_ino: HashMap<u64, u64>,
    next_id: u64,
    next_trash_id: u64,
    journal: Journal,
    /// The sum of every overlay's unsynced bytes (bounded by `MAX_UNSYNCED_BYTES`).
    unsynced_bytes: u64,
    /// Set by a power loss: every later operation fails with EIO, as on a dead disk.
    powered_off: bool,
}

/// Cheap to clone: clones share one state, so the thread that handles the control signals
/// acts on the filesystem the FUSE session serves.
#[derive(Clone)]
pub struct PowerLossFs {
    backing: PathBuf,
    state: Arc<Mutex<State>>,
}

type FsResult<T> = Result<T, Errno>;

fn errno(error: io::Error) -> Errno {
    Errno::from(error)
}

impl PowerLossFs {
    /// A filesystem over `backing` (an existing directory). Empties the trash a previous run
    /// may have left (its contents were removals made durable or a process killed mid-way).
    pub fn new(backing: &Path) -> io::Result<PowerLossFs> {
        let backing = backing.canonicalize()?;
        let trash = backing.join(TRASH_DIR);
        if trash.exists() {
            fs::remove_dir_all(&trash)?;
        }
        fs::create_dir(&trash)?;
        let root_ino = fs::metadata(&backing)?.ino();
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_ID,
            Node {
                path: PathBuf::new(),
                file: None,
                open_handles: 0,
                overlay: None,
            },
        );
        Ok(PowerLossFs {
            backing,
            state: Arc::new(Mutex::new(State {
                nodes,
                by_backing_ino: HashMap::from([(root_ino, ROOT_ID)]),
                next_id: ROOT_ID + 1,
                next_trash_id: 1,
                journal: Journal::default(),
                unsynced_bytes: 0,
                powered_off: false,
            })),
        })
    }

    fn lock(&self) -> FsResult<MutexGuard<'_, State>> {
        let state = self
            .state
            .lock()
            .expect("no thread panics while holding the filesystem state");
        if state.powered_off {
            return Err(Errno::EIO);
        }
        Ok(state)
    }

    fn full(&self, relative: &Path) -> PathBuf {
        self.backing.join(relative)
    }

    /// Power loss: drops every unsynced byte and undoes every pending directory operation.
    /// Afterwards every operation fails with EIO.
    pub fn lose_power(&self) -> ShutdownReport {
        let mut state = self
            .state
            .lock()
            .expect("no thread panics while holding the filesystem state");
        state.powered_off = true;
        let mut report = ShutdownReport::default();
        for node in state.nodes.values_mut() {
            if let Some(overlay) = node.overlay.take() {
                if overlay.is_dirty() {
                    report.files += 1;
                    report.bytes += overlay.unsynced_bytes();
                }
            }
            node.file = None;
        }
        let UndoCounts {
            undone_ops,
            failed_steps,
        } = state.journal.undo_all();
        report.namespace_ops = undone_ops;
        report.failed_undo_steps = failed_steps;
        report
    }

    /// Clean shutdown: makes everything durable, as `sync` before a power-off would.
    pub fn sync_everything(&self) -> io::Result<ShutdownReport> {
        let mut state = self
            .state
            .lock()
            .expect("no thread panics while holding the filesystem state");
        let mut report = ShutdownReport::default();
        let backing = self.backing.clone();
        for node in state.nodes.values_mut() {
            let Some(overlay) = node.overlay.as_mut() else {
                continue;
            };
            if !overlay.is_dirty() {
                continue;
            }
            report.files += 1;
            report.bytes += overlay.unsynced_bytes();
            let opened;
            let file = match node.file.as_ref() {
                Some(file) => file,
                None => match OpenOptions::new()
                    .write(true)
                    .open(backing.join(&node.path))
                {
                    Ok(file) => {
                        opened = file;
                        &opened
                    }
                    // Removed for good since (its removal was durable): nothing to keep.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error),
                },
            };
            overlay.apply(file)?;
        }
        state.unsynced_bytes = 0;
        report.namespace_ops = state.journal.commit_all() as u64;
        state.powered_off = true;
        Ok(report)
    }
}

impl State {
    fn node(&self, id: INodeNo) -> FsResult<&Node> {
        self.nodes.get(&id.0).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, id: INodeNo) -> FsResult<&mut Node> {
        self.nodes.get_mut(&id.0).ok_or(Errno::ENOENT)
    }

    fn child_path(&self, parent: INodeNo, name: &OsStr) -> FsResult<PathBuf> {
        let parent = self.node(parent)?;
        if parent.path.as_os_str().is_empty() && name == TRASH_DIR {
            return Err(Errno::ENOENT);
        }
        Ok(parent.path.join(name))
    }

    /// The node for the backing file at `path` (relative) with inode `backing_ino`.
    fn node_for(&mut self, path: &Path, backing_ino: u64, fresh: bool) -> u64 {
        if !fresh {
            if let Some(&id) = self.by_backing_ino.get(&backing_ino) {
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.path = path.to_path_buf();
                    return id;
                }
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.nodes.insert(
            id,
            Node {
                path: path.to_path_buf(),
                file: None,
                open_handles: 0,
                overlay: None,
            },
        );
        self.by_backing_ino.insert(backing_ino, id);
        id
    }

    fn dir_id_of(&self, path: &Path) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(_, node)| node.path == path)
            .map(|(&id, _)| id)
    }

    /// Moves every node at or under `from` to the same place under `to`.
    fn repath(&mut self, from: &Path, to: &Path) {
        for node in self.nodes.values_mut() {
            if let Ok(rest) = node.path.strip_prefix(from) {
                node.path = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
    }

    fn trash_path(&mut self) -> PathBuf {
        let id = self.next_trash_id;
        self.next_trash_id += 1;
        Path::new(TRASH_DIR).join(id.to_string())
    }
}

fn kind_of(metadata: &Metadata) -> FileType {
    FileType::from_std(metadata.file_type()).unwrap_or(FileType::RegularFile)
}

fn time(secs: i64, nanos: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos.clamp(0, 999_999_999) as u32)
    } else {
        UNIX_EPOCH
    }
}

fn attr_of(id: u64, metadata: &Metadata, overlay: Option<&Overlay>) -> FileAttr {
    let size = overlay.map_or(metadata.size(), Overlay::size_bytes);
    FileAttr {
        ino: INodeNo(id),
        size,
        blocks: size.div_ceil(512),
        atime: time(metadata.atime(), metadata.atime_nsec()),
        mtime: time(metadata.mtime(), metadata.mtime_nsec()),
        ctime: time(metadata.ctime(), metadata.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: kind_of(metadata),
        perm: (metadata.mode() & 0o7777) as u16,
        nlink: metadata.nlink() as u32,
        uid: metadata.uid(),
        gid: metadata.gid(),
        rdev: metadata.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn system_time(time: TimeOrNow) -> SystemTime {
    match time {
        TimeOrNow::SpecificTime(time) => time,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl PowerLossFs {
    fn attr(&self, state: &State, id: u64) -> FsResult<FileAttr> {
        let node = state.nodes.get(&id).ok_or(Errno::ENOENT)?;
        let metadata = fs::symlink_metadata(self.full(&node.path)).map_err(errno)?;
        Ok(attr_of(id, &metadata, node.overlay.as_ref()))
    }

    fn do_lookup(&self, parent: INodeNo, name: &OsStr) -> FsResult<FileAttr> {
        let mut state = self.lock()?;
        let path = state.child_path(parent, name)?;
        let metadata = fs::symlink_metadata(self.full(&path)).map_err(errno)?;
        let id = state.node_for(&path, metadata.ino(), false);
        let node = state.nodes.get(&id).ok_or(Errno::ENOENT)?;
        Ok(attr_of(id, &metadata, node.overlay.as_ref()))
    }

    /// Opens the backing file of `id` if it is not open yet, and counts the handle.
    fn open_node(&self, state: &mut State, id: u64) -> FsResult<()> {
        let full = {
            let node = state.nodes.get(&id).ok_or(Errno::ENOENT)?;
            self.full(&node.path)
        };
        let node = state.nodes.get_mut(&id).ok_or(Errno::ENOENT)?;
        if node.file.is_none() {
            // Read-write for fsync's apply; the kernel already checked the caller's access mode.
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&full)
                .or_else(|_| File::open(&full))
                .map_err(errno)?;
            node.file = Some(file);
        }
        node.open_handles += 1;
        Ok(())
    }

    /// The node's overlay, created over the backing file's current length on first use.
    fn overlay_of<'a>(&self, node: &'a mut Node) -> FsResult<&'a mut Overlay> {
        if node.overlay.is_none() {
            let len = match node.file.as_ref() {
                Some(file) => file.metadata().map_err(errno)?.len(),
                None => fs::metadata(self.full(&node.path)).map_err(errno)?.len(),
            };
            node.overlay = Some(Overlay::new(len));
        }
        Ok(node.overlay.as_mut().expect("the overlay was just created"))
    }

    fn do_create(
        &self,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        is_dir: bool,
    ) -> FsResult<FileAttr> {
        let mut state = self.lock()?;
        let path = state.child_path(parent, name)?;
        let full = self.full(&path);
        let mode = mode & !umask & 0o7777;
        if is_dir {
            fs::DirBuilder::new()
                .mode(mode)
                .create(&full)
                .map_err(errno)?;
        } else {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&full)
                .map_err(errno)?;
        }
        state.journal.record(PendingOp {
            dirs: vec![parent.0],
            undo: vec![if is_dir {
                UndoStep::RemoveDir(full.clone())
            } else {
                UndoStep::RemoveFile(full.clone())
            }],
            trash: vec![],
        });
        let metadata = fs::symlink_metadata(&full).map_err(errno)?;
        let id = state.node_for(&path, metadata.ino(), true);
        Ok(attr_of(id, &metadata, None))
    }

    fn do_unlink(&self, parent: INodeNo, name: &OsStr, is_dir: bool) -> FsResult<()> {
        let mut state = self.lock()?;
        let path = state.child_path(parent, name)?;
        let full = self.full(&path);
        if is_dir {
            fs::remove_dir(&full).map_err(errno)?;
            state.journal.record(PendingOp {
                dirs: vec![parent.0],
                undo: vec![UndoStep::CreateDir(full)],
                trash: vec![],
            });
            return Ok(());
        }
        let trash = state.trash_path();
        let trash_full = self.full(&trash);
        fs::rename(&full, &trash_full).map_err(errno)?;
        // A node still open keeps reading and writing the same bytes, now in the trash.
        state.repath(&path, &trash);
        state.journal.record(PendingOp {
            dirs: vec![parent.0],
            undo: vec![UndoStep::Move {
                from: trash_full.clone(),
                to: full,
            }],
            trash: vec![trash_full],
        });
        Ok(())
    }

    fn do_rename(
        &self,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> FsResult<()> {
        let mut state = self.lock()?;
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return Err(Errno::EINVAL);
        }
        let from = state.child_path(parent, name)?;
        let to = state.child_path(new_parent, new_name)?;
        let (from_full, to_full) = (self.full(&from), self.full(&to));
        fs::symlink_metadata(&from_full).map_err(errno)?;
        let mut undo = Vec::new();
        let mut trash = Vec::new();
        match fs::symlink_metadata(&to_full) {
            Ok(_) if flags.contains(RenameFlags::RENAME_NOREPLACE) => return Err(Errno::EEXIST),
            Ok(existing) if existing.is_dir() => {
                // rename(2) replaces only an empty directory: remove it (the rename then
                // cannot fail for it), and recreate it on undo.
                fs::remove_dir(&to_full).map_err(errno)?;
                undo.push(UndoStep::CreateDir(to_full.clone()));
            }
            Ok(_) => {
                let trashed = state.trash_path();
                let trashed_full = self.full(&trashed);
                fs::rename(&to_full, &trashed_full).map_err(errno)?;
                state.repath(&to, &trashed);
                undo.push(UndoStep::Move {
                    from: trashed_full.clone(),
                    to: to_full.clone(),
                });
                trash.push(trashed_full);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(errno(error)),
        }
        if let Err(error) = fs::rename(&from_full, &to_full) {
            // Put back what was moved aside, so a failed rename changes nothing.
            for step in undo.iter().rev() {
                if let UndoStep::Move { from, to } = step {
                    let _ = fs::rename(from, to);
                }
                if let UndoStep::CreateDir(path) = step {
                    let _ = fs::create_dir(path);
                }
            }
            return Err(errno(error));
        }
        state.repath(&from, &to);
        // Undo runs in order: first move the renamed file back, then restore the replaced one.
        undo.insert(
            0,
            UndoStep::Move {
                from: to_full,
                to: from_full,
            },
        );
        state.journal.record(PendingOp {
            dirs: vec![parent.0, new_parent.0],
            undo,
            trash,
        });
        Ok(())
    }

    fn do_read(&self, ino: INodeNo, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let mut state = self.lock()?;
        let node = state.node_mut(ino)?;
        let file = match node.file.as_ref() {
            Some(file) => file,
            None => return Err(Errno::EBADF),
        };
        match node.overlay.as_ref() {
            Some(overlay) => overlay
                .read(offset, size as usize, |at, buf| file.read_at(buf, at))
                .map_err(errno),
            None => {
                let mut out = vec![0u8; size as usize];
                let mut filled = 0;
                while filled < out.len() {
                    let read = file
                        .read_at(&mut out[filled..], offset + filled as u64)
                        .map_err(errno)?;
                    if read == 0 {
                        break;
                    }
                    filled += read;
                }
                out.truncate(filled);
                Ok(out)
            }
        }
    }

    fn do_write(&self, ino: INodeNo, offset: u64, data: &[u8]) -> FsResult<u32> {
        let written = u32::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        let mut state = self.lock()?;
        if state.unsynced_bytes + data.len() as u64 > MAX_UNSYNCED_BYTES {
            return Err(Errno::ENOSPC);
        }
        let node = state.node_mut(ino)?;
        let overlay = self.overlay_of(node)?;
        let before = overlay.unsynced_bytes();
        overlay.write(offset, data);
        let after = overlay.unsynced_bytes();
        state.unsynced_bytes = state.unsynced_bytes + after - before;
        Ok(written)
    }

    fn do_fsync(&self, ino: INodeNo) -> FsResult<()> {
        let mut state = self.lock()?;
        let node = state.node_mut(ino)?;
        let Some(overlay) = node.overlay.as_mut() else {
            return Ok(());
        };
        let file = node.file.as_ref().ok_or(Errno::EBADF)?;
        let synced = overlay.unsynced_bytes();
        overlay.apply(file).map_err(errno)?;
        state.unsynced_bytes -= synced;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> FsResult<FileAttr> {
        let mut state = self.lock()?;
        let full = self.full(&state.node(ino)?.path);
        // Metadata other than the size goes straight through: the durability model covers data
        // and names, which is what a broker's recovery depends on.
        if let Some(mode) = mode {
            fs::set_permissions(&full, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(errno)?;
        }
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::chown(&full, uid, gid).map_err(errno)?;
        }
        if atime.is_some() || mtime.is_some() {
            let file = File::options().write(true).open(&full).map_err(errno)?;
            let mut times = fs::FileTimes::new();
            if let Some(atime) = atime {
                times = times.set_accessed(system_time(atime));
            }
            if let Some(mtime) = mtime {
                times = times.set_modified(system_time(mtime));
            }
            file.set_times(times).map_err(errno)?;
        }
        if let Some(size) = size {
            let node = state.node_mut(ino)?;
            let overlay = self.overlay_of(node)?;
            let before = overlay.unsynced_bytes();
            overlay.set_len(size);
            let after = overlay.unsynced_bytes();
            state.unsynced_bytes = state.unsynced_bytes + after - before;
        }
        self.attr(&state, ino.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trash_is_emptied_and_hidden() {
        let backing = tempfile::tempdir().expect("temp dir");
        let trash = backing.path().join(TRASH_DIR);
        fs::create_dir(&trash).expect("stale trash");
        fs::write(trash.join("1"), "stale").expect("stale entry");
        let fs = PowerLossFs::new(backing.path()).expect("filesystem");
        assert!(trash.is_dir());
        assert_eq!(fs::read_dir(&trash).expect("list").count(), 0);
        let state = fs.lock().expect("powered on");
        assert_eq!(
            state.child_path(INodeNo(ROOT_ID), OsStr::new(TRASH_DIR)),
            Err(Errno::ENOENT)
        );
    }
}
