//! Small files beside the segments that make restart fast and correct:
//!
//! - `recovery-point-offset-checkpoint`: every batch below this offset was synced to disk, so
//!   recovery only scans segments from the one holding it;
//! - `log-start-offset-checkpoint`: the log start set by `DeleteRecords`;
//! - `.clean-shutdown`: present only after a clean close; then nothing needs scanning.
//!
//! Checkpoints are written atomically (temp file, fsync, rename, fsync directory). A checkpoint
//! that does not parse is ignored with a warning: that only costs a longer recovery scan.

use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_FILE: &str = "log-start-offset-checkpoint";
pub const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

/// Writes `contents` to `dir/name` so that after a crash the file holds either the old or the
/// new contents, never a mix.
pub fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> Result<()> {
    write_atomically_with(dir, name, contents, true)
}

/// [`write_atomically`], with the fsyncs (of the file before the rename, and of the directory
/// after it) only if `sync`: a log whose data is not synced (`Durability::None`) need not sync
/// its checkpoints either; the rename alone still keeps a reader from seeing a torn file.
pub fn write_atomically_with(dir: &Path, name: &str, contents: &[u8], sync: bool) -> Result<()> {
    let temp_path = dir.join(format!("{name}.tmp"));
    let written = write_then_rename(dir, name, &temp_path, contents, sync);
    if written.is_err() {
        // A full disk must not leave a stray temp file behind (it holds blocks, and the old
        // file is still in place).
        let _ = std::fs::remove_file(&temp_path);
    }
    written
}

fn write_then_rename(
    dir: &Path,
    name: &str,
    temp_path: &Path,
    contents: &[u8],
    sync: bool,
) -> Result<()> {
    let final_path = dir.join(name);
    let mut file =
        std::fs::File::create(temp_path).context(|| format!("create {}", temp_path.display()))?;
    file.write_all(contents)
        .context(|| format!("write {}", temp_path.display()))?;
    if sync {
        file.sync_data()
            .context(|| format!("sync {}", temp_path.display()))?;
    }
    std::fs::rename(temp_path, &final_path)
        .context(|| format!("rename to {}", final_path.display()))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Makes creations, renames and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .context(|| format!("sync directory {}", dir.display()))
}

pub fn write_offset(dir: &Path, name: &str, offset: i64) -> Result<()> {
    write_atomically(dir, name, format!("{offset}\n").as_bytes())
}

/// Reads an offset checkpoint; `None` if it is missing or unreadable.
pub fn read_offset(dir: &Path, name: &str) -> Option<i64> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
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
        assert_eq!(read_offset(dir.path(), RECOVERY_POINT_FILE), None);
        write_offset(dir.path(), RECOVERY_POINT_FILE, 1234).expect("write");
        assert_eq!(read_offset(dir.path(), RECOVERY_POINT_FILE), Some(1234));
        std::fs::write(dir.path().join(RECOVERY_POINT_FILE), b"12x").expect("write garbage");
        assert_eq!(read_offset(dir.path(), RECOVERY_POINT_FILE), None);
    }
}
