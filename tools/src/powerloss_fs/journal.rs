//! Directory operations not yet made durable, and how to undo them on a power loss.
//!
//! Creations, unlinks, renames, mkdirs and rmdirs are applied to the backing directory at once
//! (so every later operation sees them), and each is recorded here with the steps that undo it.
//! A file removed from view is not deleted but moved into the trash directory until its removal
//! is durable, so a power loss can bring it back.
//!
//! The durability model is a journaling filesystem's (ext4, xfs): metadata operations reach the
//! disk in the order they were made, and an fsync of a directory makes durable every operation
//! up to the last one that touched that directory. Fsyncing a file makes its data durable, not
//! its name. So a file created (or renamed) and never followed by an fsync of its directory (or
//! of a later-changed directory) disappears (or reverts) on a power loss.
//!
//! Invariant: durable operations are always a prefix of the history, pending ones a suffix, so
//! undoing the pending ones newest-first always finds the state each undo step expects.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Pending operations beyond this many are a sign of a runaway caller; the filesystem then makes
/// the oldest durable (as a real journal would once it fills) rather than grow without bound.
pub const MAX_PENDING_OPS: usize = 100_000;

/// One step that reverses part of an operation (paths are absolute, in the backing directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UndoStep {
    /// Undo a file creation.
    RemoveFile(PathBuf),
    /// Undo a mkdir.
    RemoveDir(PathBuf),
    /// Undo an rmdir.
    CreateDir(PathBuf),
    /// Undo a move (rename, or a removal into the trash): move `from` back to `to`.
    Move { from: PathBuf, to: PathBuf },
}

/// One recorded operation.
#[derive(Debug, Clone)]
pub struct PendingOp {
    /// The directories (filesystem node ids) whose entries the operation changed.
    pub dirs: Vec<u64>,
    /// Applied in order to undo the operation.
    pub undo: Vec<UndoStep>,
    /// Trash entries to delete for good once the operation is durable.
    pub trash: Vec<PathBuf>,
}

/// What a power loss undid.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UndoCounts {
    pub undone_ops: u64,
    /// Undo steps that failed (should be 0; reported so a test can assert it).
    pub failed_steps: u64,
}

/// The pending directory operations, oldest first.
#[derive(Debug, Default)]
pub struct Journal {
    pending: Vec<PendingOp>,
}

impl Journal {
    pub fn record(&mut self, op: PendingOp) {
        self.pending.push(op);
        if self.pending.len() > MAX_PENDING_OPS {
            self.commit_count(1);
        }
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// An fsync of directory `dir`: everything up to the last operation touching it is durable.
    /// Returns how many operations became durable.
    pub fn sync_dir(&mut self, dir: u64) -> usize {
        match self.pending.iter().rposition(|op| op.dirs.contains(&dir)) {
            Some(last) => self.commit_count(last + 1),
            None => 0,
        }
    }

    /// Everything is durable (a clean shutdown).
    pub fn commit_all(&mut self) -> usize {
        self.commit_count(self.pending.len())
    }

    /// Power loss: undoes every pending operation, newest first, in the backing directory.
    pub fn undo_all(&mut self) -> UndoCounts {
        let mut counts = UndoCounts::default();
        while let Some(op) = self.pending.pop() {
            counts.undone_ops += 1;
            for step in &op.undo {
                if let Err(error) = undo_step(step) {
                    eprintln!("strom test-fs: undoing {step:?} failed: {error}");
                    counts.failed_steps += 1;
                }
            }
        }
        counts
    }

    fn commit_count(&mut self, count: usize) -> usize {
        for op in self.pending.drain(..count) {
            for trashed in op.trash {
                // Already gone is fine (a later operation may have moved it).
                let _ = fs::remove_file(&trashed).or_else(|_| fs::remove_dir_all(&trashed));
            }
        }
        count
    }
}

fn undo_step(step: &UndoStep) -> io::Result<()> {
    match step {
        UndoStep::RemoveFile(path) => fs::remove_file(path),
        UndoStep::RemoveDir(path) => fs::remove_dir(path),
        UndoStep::CreateDir(path) => fs::create_dir(path),
        UndoStep::Move { from, to } => fs::rename(from, to),
    }
}

/// The parent of `path` inside the backing tree, for recording which directory changed.
pub fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(dir: &Path, name: &str, parent_id: u64, journal: &mut Journal) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, name).expect("create file");
        journal.record(PendingOp {
            dirs: vec![parent_id],
            undo: vec![UndoStep::RemoveFile(path.clone())],
            trash: vec![],
        });
        path
    }

    #[test]
    fn unsynced_creations_disappear_and_synced_ones_stay() {
        let root = tempfile::tempdir().expect("temp dir");
        let mut journal = Journal::default();
        let a = create(root.path(), "a", 1, &mut journal);
        assert_eq!(journal.sync_dir(1), 1);
        let b = create(root.path(), "b", 1, &mut journal);
        assert_eq!(
            journal.sync_dir(2),
            0,
            "another directory's sync commits nothing"
        );
        let counts = journal.undo_all();
        assert_eq!(
            counts,
            UndoCounts {
                undone_ops: 1,
                failed_steps: 0
            }
        );
        assert!(a.exists(), "synced creation survives");
        assert!(!b.exists(), "unsynced creation is gone");
    }

    #[test]
    fn an_unsynced_rename_over_a_file_reverts_both() {
        let root = tempfile::tempdir().expect("temp dir");
        let trash = root.path().join("trash");
        fs::create_dir(&trash).expect("trash dir");
        let mut journal = Journal::default();
        let old = root.path().join("old");
        let new = root.path().join("new");
        fs::write(&old, "old").expect("write");
        fs::write(&new, "replaced").expect("write");
        // What the filesystem does for rename(old, new) over an existing `new`:
        let trashed = trash.join("1");
        fs::rename(&new, &trashed).expect("trash the target");
        fs::rename(&old, &new).expect("rename");
        journal.record(PendingOp {
            dirs: vec![1],
            undo: vec![
                UndoStep::Move {
                    from: new.clone(),
                    to: old.clone(),
                },
                UndoStep::Move {
                    from: trashed.clone(),
                    to: new.clone(),
                },
            ],
            trash: vec![trashed.clone()],
        });
        journal.undo_all();
        assert_eq!(fs::read_to_string(&old).expect("old is back"), "old");
        assert_eq!(fs::read_to_string(&new).expect("new is back"), "replaced");
    }

    #[test]
    fn syncing_a_directory_commits_every_earlier_operation_and_empties_the_trash() {
        let root = tempfile::tempdir().expect("temp dir");
        let mut journal = Journal::default();
        let first = create(root.path(), "first", 7, &mut journal);
        let trashed = root.path().join("trashed");
        fs::write(&trashed, "x").expect("write");
        journal.record(PendingOp {
            dirs: vec![8],
            undo: vec![],
            trash: vec![trashed.clone()],
        });
        let later = create(root.path(), "later", 7, &mut journal);
        // Syncing 8 commits the ops up to its own (ordered journal), not the later one.
        assert_eq!(journal.sync_dir(8), 2);
        assert!(
            !trashed.exists(),
            "a durable removal deletes the trash entry"
        );
        assert_eq!(journal.pending_len(), 1);
        journal.undo_all();
        assert!(first.exists());
        assert!(!later.exists());
    }
}
