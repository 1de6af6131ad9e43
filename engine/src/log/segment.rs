//! One segment of a partition log: `<20-digit base offset>.log` with its offset and time
//! indexes. A segment is plain data owned by its log; I/O goes through clones of its file.
//!
//! Invariants: `written_bytes <= size_bytes` (bytes assigned to appends may not be written yet);
//! every index entry points at the start of a batch; `next_offset` is just past the last batch
//! assigned to this segment.

use std::path::{Path, PathBuf};

use super::offset_index::{OffsetEntry, OffsetIndex};
use super::time_index::{TimeEntry, TimeIndex};
use crate::error::{IoContext, Result};
use crate::io::{Fs, OpenMode, SharedFile};

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

/// `<dir>/<base offset, 20 digits>.<suffix>`, Kafka's naming, so files sort by offset.
pub fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Parses the base offset out of a `.log` file name.
pub fn parse_log_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Base offsets of the `.log` files in `dir`, sorted.
pub fn parse_log_file_name_list(fs: &Fs, dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = fs
        .list_dir(dir)
        .map(|names| {
            names
                .iter()
                .filter_map(|name| parse_log_file_name(name))
                .collect()
        })
        .unwrap_or_default();
    bases.sort_unstable();
    bases
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    pub file: SharedFile,
    /// Bytes assigned to appends (written or queued).
    pub size_bytes: u64,
    /// Bytes whose write completed: what readers may see.
    pub written_bytes: u64,
    /// Offset after the last batch assigned to this segment.
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Largest batch max-timestamp in the segment, -1 when empty.
    pub max_timestamp_ms: i64,
    /// Max-timestamp of the first batch: `segment.ms` counts from it (as Kafka does).
    pub first_batch_timestamp_ms: Option<i64>,
    bytes_since_index_entry: u64,
    /// Whether the on-disk index files lag behind the in-memory ones.
    pub index_dirty: bool,
}

impl Segment {
    /// Creates (or reopens empty) the files of a new segment starting at `base_offset`.
    pub fn create(fs: &Fs, dir: &Path, base_offset: i64) -> Result<Self> {
        let path = segment_path(dir, base_offset, LOG_SUFFIX);
        let file = fs
            .open(&path, OpenMode::Create { truncate: true })
            .context(|| format!("create segment {}", path.display()))?;
        Ok(Self::from_parts(
            base_offset,
            file,
            0,
            base_offset,
            OffsetIndex::default(),
            TimeIndex::default(),
            -1,
        ))
    }

    pub fn from_parts(
        base_offset: i64,
        file: SharedFile,
        size_bytes: u64,
        next_offset: i64,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
        max_timestamp_ms: i64,
    ) -> Self {
        let bytes_since_index_entry = size_bytes
            - offset_index
                .last()
                .map_or(0, |entry| u64::from(entry.position));
        Segment {
            base_offset,
            file,
            size_bytes,
            written_bytes: size_bytes,
            next_offset,
            offset_index,
            time_index,
            max_timestamp_ms,
            first_batch_timestamp_ms: (max_timestamp_ms >= 0).then_some(max_timestamp_ms),
            bytes_since_index_entry,
            index_dirty: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    /// Offset relative to the base, as the indexes store it.
    pub fn relative(&self, offset: i64) -> u32 {
        let relative = offset - self.base_offset;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&relative),
            "offset {offset} outside segment {}",
            self.base_offset
        );
        relative as u32
    }

    /// Accounts for a batch assigned at the end of this segment: size, offsets, indexes.
    pub fn record_batch(
        &mut self,
        base_offset: i64,
        next_offset: i64,
        len_bytes: u64,
        max_timestamp_ms: i64,
        index_interval_bytes: u64,
    ) {
        assert_eq!(
            base_offset,
            self.next_offset.max(base_offset),
            "batches must not go back in offset"
        );
        let position = self.size_bytes;
        if self.bytes_since_index_entry >= index_interval_bytes && position > 0 {
            let relative_offset = self.relative(base_offset);
            let position = u32::try_from(position).expect("segment.bytes is capped at u32::MAX");
            self.offset_index.append(OffsetEntry {
                relative_offset,
                position,
            });
            self.time_index.maybe_append(TimeEntry {
                timestamp_ms: self.max_timestamp_ms.max(max_timestamp_ms),
                relative_offset,
            });
            self.bytes_since_index_entry = 0;
            self.index_dirty = true;
        }
        self.bytes_since_index_entry += len_bytes;
        self.size_bytes += len_bytes;
        self.next_offset = next_offset;
        self.max_timestamp_ms = self.max_timestamp_ms.max(max_timestamp_ms);
        if self.first_batch_timestamp_ms.is_none() {
            self.first_batch_timestamp_ms = Some(max_timestamp_ms);
        }
    }

    /// Adds the final time-index entry so the last entry holds the segment's largest timestamp
    /// (done when the segment stops being active).
    pub fn seal_time_index(&mut self) {
        if self.max_timestamp_ms < 0 || self.next_offset == self.base_offset {
            return;
        }
        // The entry's offset must be a batch start at or before the batch holding the maximum;
        // the last indexed batch qualifies (or the segment start).
        let relative_offset = self
            .offset_index
            .last()
            .map_or(0, |entry| entry.relative_offset);
        let relative_offset = relative_offset.max(
            self.time_index
                .last()
                .map_or(0, |entry| entry.relative_offset),
        );
        if self.time_index.maybe_append(TimeEntry {
            timestamp_ms: self.max_timestamp_ms,
            relative_offset,
        }) {
            self.index_dirty = true;
        }
    }

    /// The on-disk bytes of both indexes, to write without holding the log's state borrowed.
    pub fn index_snapshot(&self) -> IndexSnapshot {
        IndexSnapshot {
            base_offset: self.base_offset,
            offset_index: self.offset_index.to_bytes(),
            time_index: self.time_index.to_bytes(),
        }
    }

    /// Removes the segment's files (open handles keep the data readable until dropped). The
    /// indexes go first: a crash in between leaves a log without indexes (rebuilt on open),
    /// never index files that a later segment with this base could mistake for its own.
    pub fn delete_files(&self, fs: &Fs, dir: &Path) {
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            let path = segment_path(dir, self.base_offset, suffix);
            if let Err(error) = fs.remove_file(&path) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), %error, "could not delete segment file");
                }
            }
        }
    }
}

/// Index bytes taken from a segment, written by [`IndexSnapshot::write`].
pub struct IndexSnapshot {
    pub base_offset: i64,
    offset_index: Vec<u8>,
    time_index: Vec<u8>,
}

impl IndexSnapshot {
    /// Writes both index files whole and syncs them (on seal and on clean close).
    pub async fn write(self, fs: &Fs, dir: &Path) -> Result<()> {
        self.write_as(fs, dir, "").await
    }

    /// Writes both index files whole, named with `name_suffix` appended (e.g. `.cleaned` for
    /// compaction's temp files), and syncs them.
    pub async fn write_as(self, fs: &Fs, dir: &Path, name_suffix: &str) -> Result<()> {
        self.write_files(fs, dir, name_suffix, true).await
    }

    /// Writes both index files whole without syncing them: for a close under a log dir, whose
    /// one `syncfs` before its clean-shutdown marker makes them durable (see `log_dir`).
    pub async fn write_unsynced(self, fs: &Fs, dir: &Path) -> Result<()> {
        self.write_files(fs, dir, "", false).await
    }

    async fn write_files(self, fs: &Fs, dir: &Path, name_suffix: &str, sync: bool) -> Result<()> {
        for (suffix, bytes) in [
            (INDEX_SUFFIX, self.offset_index),
            (TIME_INDEX_SUFFIX, self.time_index),
        ] {
            let mut path = segment_path(dir, self.base_offset, suffix).into_os_string();
            path.push(name_suffix);
            let path = PathBuf::from(path);
            // Unsynced (a close under a log dir): overwrite in place, shrinking only if needed.
            // Truncating to zero first made ext4 free and reallocate the blocks, which was most
            // of the cost of closing 10,000 partitions. A crash before the log dir's syncfs
            // leaves no marker, and such a segment is at or after the recovery point, so
            // its index is rebuilt by the recovery scan.
            let file = fs
                .open(&path, OpenMode::Create { truncate: sync })
                .context(|| format!("create index {}", path.display()))?;
            if !sync {
                let len_bytes = bytes.len() as u64;
                let longer = file.len_bytes().map(|len| len > len_bytes);
                if longer.context(|| format!("stat index {}", path.display()))? {
                    file.set_len(len_bytes)
                        .context(|| format!("shrink index {}", path.display()))?;
                }
            }
            file.write_all_vectored_at(vec![bytes::Bytes::from(bytes)], 0)
                .await
                .context(|| format!("write index {}", path.display()))?;
            if sync {
                file.sync_data()
                    .await
                    .context(|| format!("sync index {}", path.display()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_offset_and_parse_back() {
        let path = segment_path(Path::new("/d"), 42, LOG_SUFFIX);
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some("00000000000000000042.log")
        );
        assert_eq!(parse_log_file_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_log_file_name("42.log"), None);
        assert_eq!(parse_log_file_name("00000000000000000042.index"), None);
    }
}
