//! `<log dir>/replication-offset-checkpoint`: the high watermark of every partition in a log
//! dir, so that a restarted broker does not expose data its leader never committed (it starts
//! its high watermarks from here, not from its log ends). Kafka's text format:
//!
//! ```text
//! 0                      <- version
//! 2                      <- number of entries
//! orders 0 1200          <- topic partition offset
//! orders 1 977
//! ```
//!
//! Written atomically (temp file, fsync, rename, fsync of the directory): after a crash the
//! file holds the old map or the new one, never a mix. A file that does not parse is an error
//! the caller sees (never a panic): the caller decides whether to start from zero.

use std::collections::BTreeMap;
use std::path::Path;

use super::checkpoint;
use crate::error::{Error, IoContext, Result};
use crate::io::Fs;

pub const REPLICATION_OFFSET_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

/// The only version of the format (Kafka's `OffsetCheckpointFile` version 0).
const VERSION: i32 = 0;

/// Offsets per `(topic, partition)`, as the checkpoint file holds them.
pub type PartitionOffsets = BTreeMap<(String, i32), i64>;

/// Reads and writes an offset checkpoint file in Kafka's format.
pub struct OffsetCheckpointFile;

impl OffsetCheckpointFile {
    /// Reads the file at `path`: an empty map if it does not exist (a new log dir), a
    /// [`Error::Corrupt`] naming the problem if it does not parse.
    pub fn read(path: &Path) -> Result<PartitionOffsets> {
        Self::read_on(&Fs::Real, path)
    }

    /// [`OffsetCheckpointFile::read`] on the file system `fs`.
    pub fn read_on(fs: &Fs, path: &Path) -> Result<PartitionOffsets> {
        let text = match fs.read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PartitionOffsets::new())
            }
            Err(source) => {
                return Err(Error::Io {
                    context: format!("read {}", path.display()),
                    source,
                })
            }
        };
        Self::parse(&text).map_err(|detail| Error::Corrupt {
            what: "replication offset checkpoint",
            detail: format!("{}: {detail}", path.display()),
        })
    }

    /// Writes `offsets` to `path` atomically and durably.
    pub fn write(path: &Path, offsets: &PartitionOffsets) -> Result<()> {
        Self::write_on(&Fs::Real, path, offsets)
    }

    /// [`OffsetCheckpointFile::write`] on the file system `fs`.
    pub fn write_on(fs: &Fs, path: &Path, offsets: &PartitionOffsets) -> Result<()> {
        let text = Self::encode(offsets).map_err(|detail| Error::Corrupt {
            what: "replication offset checkpoint",
            detail,
        })?;
        let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            return Err(Error::io(
                format!("write {}", path.display()),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
            ));
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        fs.create_dir_all(dir)
            .context(|| format!("create {}", dir.display()))?;
        checkpoint::write_atomically(fs, dir, name, text.as_bytes())
    }

    /// The file's text. Fails on a topic name the format cannot hold (empty, or with
    /// whitespace; Kafka's topic names never have either).
    pub fn encode(offsets: &PartitionOffsets) -> std::result::Result<String, String> {
        let mut text = format!("{VERSION}\n{}\n", offsets.len());
        for ((topic, partition), offset) in offsets {
            if topic.is_empty() || topic.chars().any(char::is_whitespace) {
                return Err(format!("topic name {topic:?} cannot be written"));
            }
            text.push_str(&format!("{topic} {partition} {offset}\n"));
        }
        Ok(text)
    }

    /// Parses the file's text: the version, the count, exactly that many
    /// `topic partition offset` lines (non-negative partition and offset, no duplicates), and
    /// nothing after them but blank lines.
    pub fn parse(text: &str) -> std::result::Result<PartitionOffsets, String> {
        let mut lines = text.lines();
        let version = lines.next().ok_or("empty file")?.trim();
        if version != VERSION.to_string() {
            return Err(format!("unsupported version {version:?}"));
        }
        let count_line = lines.next().ok_or("no entry count")?.trim();
        let count: usize = count_line
            .parse()
            .map_err(|_| format!("bad entry count {count_line:?}"))?;
        let mut offsets = PartitionOffsets::new();
        let mut read = 0usize;
        for line in lines.by_ref().take(count) {
            let mut fields = line.split_whitespace();
            let (Some(topic), Some(partition), Some(offset), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("bad entry line {line:?}"));
            };
            let partition: i32 = partition
                .parse()
                .ok()
                .filter(|partition| *partition >= 0)
                .ok_or_else(|| format!("bad partition in {line:?}"))?;
            let offset: i64 = offset
                .parse()
                .ok()
                .filter(|offset| *offset >= 0)
                .ok_or_else(|| format!("bad offset in {line:?}"))?;
            if offsets
                .insert((topic.to_string(), partition), offset)
                .is_some()
            {
                return Err(format!("{topic}-{partition} appears twice"));
            }
            read += 1;
        }
        if read != count {
            return Err(format!("{read} entries, header says {count}"));
        }
        if lines.any(|line| !line.trim().is_empty()) {
            return Err("lines after the entries".into());
        }
        Ok(offsets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PartitionOffsets {
        PartitionOffsets::from([
            (("orders".to_string(), 0), 1200),
            (("orders".to_string(), 1), 977),
            (("__consumer_offsets".to_string(), 17), 0),
        ])
    }

    #[test]
    fn round_trips_through_the_file_in_kafkas_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(REPLICATION_OFFSET_CHECKPOINT_FILE);
        assert_eq!(
            OffsetCheckpointFile::read(&path).expect("missing is empty"),
            PartitionOffsets::new()
        );
        OffsetCheckpointFile::write(&path, &sample()).expect("write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "0\n3\n__consumer_offsets 17 0\norders 0 1200\norders 1 977\n"
        );
        assert_eq!(OffsetCheckpointFile::read(&path).expect("read"), sample());
        // A rewrite replaces the whole map and leaves no temp file behind.
        let smaller = PartitionOffsets::from([(("orders".to_string(), 1), 980)]);
        OffsetCheckpointFile::write(&path, &smaller).expect("rewrite");
        assert_eq!(OffsetCheckpointFile::read(&path).expect("read"), smaller);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![REPLICATION_OFFSET_CHECKPOINT_FILE]);
    }

    #[test]
    fn an_empty_map_round_trips() {
        let text = OffsetCheckpointFile::encode(&PartitionOffsets::new()).expect("encode");
        assert_eq!(text, "0\n0\n");
        assert_eq!(
            OffsetCheckpointFile::parse(&text),
            Ok(PartitionOffsets::new())
        );
    }

    #[test]
    fn malformed_files_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(REPLICATION_OFFSET_CHECKPOINT_FILE);
        for text in [
            "",
            "1\n0\n",
            "0\n",
            "0\nmany\n",
            "0\n2\norders 0 5\n",
            "0\n1\norders 0 5\norders 1 6\n",
            "0\n1\norders 0\n",
            "0\n1\norders 0 5 7\n",
            "0\n1\norders x 5\n",
            "0\n1\norders 0 -5\n",
            "0\n1\norders -1 5\n",
            "0\n2\norders 0 5\norders 0 6\n",
            "\u{0}\u{ff}garbage",
        ] {
            std::fs::write(&path, text).expect("write");
            match OffsetCheckpointFile::read(&path) {
                Err(Error::Corrupt { detail, .. }) => {
                    assert!(
                        detail.contains(REPLICATION_OFFSET_CHECKPOINT_FILE),
                        "{detail}"
                    )
                }
                other => panic!("{text:?} must be refused, got {other:?}"),
            }
        }
        // Not UTF-8 at all: an error, not a panic.
        std::fs::write(&path, [0xff, 0xfe, 0x00]).expect("write");
        assert!(OffsetCheckpointFile::read(&path).is_err());
    }

    #[test]
    fn topic_names_the_format_cannot_hold_are_refused() {
        let bad = PartitionOffsets::from([(("two words".to_string(), 0), 1)]);
        assert!(OffsetCheckpointFile::encode(&bad).is_err());
        let empty = PartitionOffsets::from([((String::new(), 0), 1)]);
        assert!(OffsetCheckpointFile::encode(&empty).is_err());
    }
}
