//! Small files beside the segments that make restart fast and correct:
//!
//! - `recovery-point-offset-checkpoint`: every batch below this offset was synced to disk, so
//!   recovery only scans segments from the one holding it;
//! - `log-start-offset-checkpoint`: the log start set by `DeleteRecords`;
//! - `.clean-shutdown`: present only after a clean close; then nothing needs scanning.
//!
//! Checkpoints are written atomically (temp file, fsync, rename, fsync directory). A checkpoint
//! that does not parse is ignored with a warning: that only costs a longer recovery scan.

use std::path::Path;

use crate::error::{IoContext, Result};
use crate::io::Fs;

pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_FILE: &str = "log-start-offset-checkpoint";
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

/// Writes `contents` to `dir/name` so that after a crash the file holds either the old or the
/// new contents, never a mix: temp file, fdatasync, rename, fsync of the directory.
pub fn write_atomically(fs: &Fs, dir: &Path, name: &str, contents: &[u8]) -> Result<()> {
    let temp_path = dir.join(format!("{name}.tmp"));
    let written = write_then_rename(fs, dir, name, &temp_path, contents);
    if written.is_err() {
        // A full disk must not leave a stray temp file behind (it holds blocks, and the old
        // file is still in place).
        let _ = fs.remove_file(&temp_path);
    }
    written
}

fn write_then_rename(
    fs: &Fs,
    dir: &Path,
    name: &str,
    temp_path: &Path,
    contents: &[u8],
) -> Result<()> {
    let final_path = dir.join(name);
    fs.write_file(temp_path, contents, true)
        .context(|| format!("write {}", temp_path.display()))?;
    fs.rename(temp_path, &final_path)
        .context(|| format!("rename to {}", final_path.display()))?;
    sync_dir(fs, dir)
}

/// Creates `dir` (and any missing parent) so that it survives a crash: a new directory's name
/// is durable only once the directory holding it is synced, and without that a crash could
/// take a whole new log with it — data synced into it included. Costs one directory sync per
/// level created, nothing when `dir` exists.
pub fn create_dir_durably(fs: &Fs, dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|ancestor| !ancestor.as_os_str().is_empty() && !fs.exists(ancestor))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs.create_dir_all(dir)
        .context(|| format!("create directory {}", dir.display()))?;
    // Deepest first: each new directory's entry lives in its parent.
    for created in missing {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(fs, parent)?;
        }
    }
    Ok(())
}

/// Makes creations, renames and deletions in `dir` durable.
pub fn sync_dir(fs: &Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir)
        .context(|| format!("sync directory {}", dir.display()))
}

pub fn write_offset(fs: &Fs, dir: &Path, name: &str, offset: i64) -> Result<()> {
    write_atomically(fs, dir, name, format!("{offset}\n").as_bytes())
}

/// Reads an offset checkpoint; `None` if it is missing or unreadable.
pub fn read_offset(fs: &Fs, dir: &Path, name: &str) -> Option<i64> {
    let path = dir.join(name);
    let text = match fs.read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "unreadable checkpoint ignored");
            return None;
        }
    };
    match text.trim().parse::<i64>() {
        Ok(offset) if offset >= 0 => Some(offset),
        _ => {
            tracing::warn!(path = %path.display(), "malformed checkpoint ignored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = Fs::Real;
        assert_eq!(read_offset(&fs, dir.path(), RECOVERY_POINT_FILE), None);
        write_offset(&fs, dir.path(), RECOVERY_POINT_FILE, 1234).expect("write");
        assert_eq!(
            read_offset(&fs, dir.path(), RECOVERY_POINT_FILE),
            Some(1234)
        );
        std::fs::write(dir.path().join(RECOVERY_POINT_FILE), b"12x").expect("write garbage");
        assert_eq!(read_offset(&fs, dir.path(), RECOVERY_POINT_FILE), None);
    }
}
