//! The on-disk snapshot of all persistent nodes, and how it is replaced.
//!
//! Metadata changes are rare (topic creation, config changes), so every
//! change to a persistent node rewrites the whole snapshot: simple, and the
//! file is always one self-consistent state. The store's size limit bounds
//! the cost of a rewrite.
//!
//! Replacement is atomic: write `coordination.snapshot.tmp`, fsync it, rename
//! it over `coordination.snapshot`, fsync the directory. A crash leaves either
//! the old or the new snapshot; a leftover `.tmp` is discarded at open.
//!
//! Format (big-endian):
//! ```text
//! header:  magic "STROMCS\0" | format u32 = 1 | body_bytes u64 | body_crc32c u32
//! body:    last_txid u64 | node_count u32 | node*
//! node:    path_len u16 | path | data_len u32 | data
//!          | version i32 | cversion i32 | created_txid u64 | modified_txid u64
//! ```
//! Nodes are in path order, so every parent precedes its children and the
//! root comes first. Any mismatch (magic, format, length, CRC, bad path,
//! missing parent, duplicate, trailing bytes) is a [`CoordinationError::Corrupt`];
//! a damaged snapshot is never read as an empty store.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes};

use super::error::CoordinationError;
use super::node::{Node, NODE_OVERHEAD_BYTES};
use super::path::{self, ROOT};

/// Snapshot file name inside the store directory.
pub const SNAPSHOT_FILE_NAME: &str = "coordination.snapshot";
const TEMP_FILE_NAME: &str = "coordination.snapshot.tmp";
const MAGIC: &[u8; 8] = b"STROMCS\0";
const FORMAT_VERSION: u32 = 1;
/// magic + format + body_bytes + crc.
const HEADER_BYTES: usize = 8 + 4 + 8 + 4;
/// last_txid + node_count.
const BODY_PREFIX_BYTES: usize = 8 + 4;
/// Fixed bytes per node besides its path and data.
const NODE_FIXED_BYTES: usize = 2 + 4 + 4 + 4 + 8 + 8;

// A node never takes more snapshot bytes than it counts against the store
// limit, so a store within its limit always has a snapshot within
// `max_file_bytes`.
const _: () = assert!(NODE_FIXED_BYTES <= NODE_OVERHEAD_BYTES);

/// Largest snapshot a store limited to `max_total_bytes` can write.
pub(crate) fn max_file_bytes(max_total_bytes: usize) -> usize {
    HEADER_BYTES + BODY_PREFIX_BYTES + max_total_bytes
}

/// One persistent node as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotNode {
    pub(crate) path: String,
    pub(crate) data: Bytes,
    pub(crate) version: i32,
    pub(crate) cversion: i32,
    pub(crate) created_txid: u64,
    pub(crate) modified_txid: u64,
}

/// Encodes a snapshot of `nodes`, which must be persistent and in path order.
pub(crate) fn encode<'a>(
    last_txid: u64,
    nodes: impl Iterator<Item = (&'a str, &'a Node)>,
) -> Vec<u8> {
    let mut body = Vec::new();
    body.put_u64(last_txid);
    body.put_u32(0); // node count, patched below
    let mut node_count: u32 = 0;
    for (node_path, fields) in nodes {
        debug_assert!(fields.is_persistent());
        // Paths are validated to at most PATH_MAX_BYTES (1024), and node data
        // to the per-node limit, far below these field widths.
        let path_len = u16::try_from(node_path.len()).expect("path length is validated");
        let data_len = u32::try_from(fields.data.len()).expect("node data size is limited");
        body.put_u16(path_len);
        body.put_slice(node_path.as_bytes());
        body.put_u32(data_len);
        body.put_slice(&fields.data);
        body.put_i32(fields.version);
        body.put_i32(fields.cversion);
        body.put_u64(fields.created_txid);
        body.put_u64(fields.modified_txid);
        node_count += 1;
    }
    body[8..12].copy_from_slice(&node_count.to_be_bytes());

    let mut file = Vec::with_capacity(HEADER_BYTES + body.len());
    file.put_slice(MAGIC);
    file.put_u32(FORMAT_VERSION);
    file.put_u64(body.len() as u64);
    file.put_u32(crc32c::crc32c(&body));
    file.put_slice(&body);
    file
}

/// Decodes and validates a snapshot read from `file_path`.
pub(crate) fn decode(
    bytes: &Bytes,
    file_path: &Path,
) -> Result<(u64, Vec<SnapshotNode>), CoordinationError> {
    let corrupt = |reason: String| CoordinationError::Corrupt {
        path: file_path.to_owned(),
        reason,
    };
    let mut reader = Reader { bytes, position: 0 };
    let magic = reader
        .take(MAGIC.len())
        .ok_or_else(|| corrupt("shorter than its header".into()))?;
    if &magic[..] != MAGIC {
        return Err(corrupt(
            "wrong magic bytes; not a Strom coordination snapshot".into(),
        ));
    }
    let format = reader
        .u32()
        .ok_or_else(|| corrupt("shorter than its header".into()))?;
    if format != FORMAT_VERSION {
        return Err(corrupt(format!("unknown format version {format}")));
    }
    let body_bytes = reader
        .u64()
        .ok_or_else(|| corrupt("shorter than its header".into()))?;
    let expected_crc = reader
        .u32()
        .ok_or_else(|| corrupt("shorter than its header".into()))?;
    let actual_body_bytes = (bytes.len() - HEADER_BYTES) as u64;
    if body_bytes != actual_body_bytes {
        return Err(corrupt(format!(
            "header says {body_bytes} body bytes, file has {actual_body_bytes} (truncated?)"
        )));
    }
    let body = bytes.slice(HEADER_BYTES..);
    let actual_crc = crc32c::crc32c(&body);
    if actual_crc != expected_crc {
        return Err(corrupt(format!(
            "checksum mismatch: header {expected_crc:#010x}, body {actual_crc:#010x}"
        )));
    }

    let mut reader = Reader {
        bytes: &body,
        position: 0,
    };
    let truncated = || corrupt("body ends inside a node".into());
    let last_txid = reader.u64().ok_or_else(truncated)?;
    let node_count = reader.u32().ok_or_else(truncated)?;
    // Never trust a count for allocation beyond what the body can hold.
    let capacity = (node_count as usize).min(body.len() / NODE_FIXED_BYTES);
    let mut nodes: Vec<SnapshotNode> = Vec::with_capacity(capacity);
    let mut seen = BTreeSet::new();
    for _ in 0..node_count {
        let path_len = reader.u16().ok_or_else(truncated)?;
        let path_bytes = reader.take(usize::from(path_len)).ok_or_else(truncated)?;
        let node_path = String::from_utf8(path_bytes.to_vec())
            .map_err(|_| corrupt("node path is not UTF-8".into()))?;
        path::validate(&node_path).map_err(|error| corrupt(error.to_string()))?;
        let data_len = reader.u32().ok_or_else(truncated)?;
        let data = reader.take(data_len as usize).ok_or_else(truncated)?;
        let node = SnapshotNode {
            data,
            version: reader.i32().ok_or_else(truncated)?,
            cversion: reader.i32().ok_or_else(truncated)?,
            created_txid: reader.u64().ok_or_else(truncated)?,
            modified_txid: reader.u64().ok_or_else(truncated)?,
            path: node_path,
        };
        if nodes.is_empty() && node.path != ROOT {
            return Err(corrupt("first node is not the root".into()));
        }
        if node.path != ROOT && !seen.contains(path::parent(&node.path)) {
            return Err(corrupt(format!("{} appears before its parent", node.path)));
        }
        if !seen.insert(node.path.clone()) {
            return Err(corrupt(format!("{} appears twice", node.path)));
        }
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(corrupt("no root node".into()));
    }
    if reader.position != body.len() {
        return Err(corrupt(format!(
            "{} bytes after the last node",
            body.len() - reader.position
        )));
    }
    Ok((last_txid, nodes))
}

/// Reads the snapshot in `dir`, or `None` if there is none yet. Removes a
/// leftover temp file from an interrupted write. Refuses files larger than
/// `max_file_bytes` before reading them.
pub(crate) fn read(dir: &Path, max_file_bytes: usize) -> Result<Option<Bytes>, CoordinationError> {
    let temp_path = dir.join(TEMP_FILE_NAME);
    match fs::remove_file(&temp_path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(CoordinationError::Io {
                operation: "removing leftover",
                path: temp_path,
                source,
            })
        }
    }
    let snapshot_path = dir.join(SNAPSHOT_FILE_NAME);
    let file_bytes = match fs::metadata(&snapshot_path) {
        Ok(metadata) => metadata.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CoordinationError::Io {
                operation: "inspecting",
                path: snapshot_path,
                source,
            })
        }
    };
    if file_bytes > max_file_bytes as u64 {
        return Err(CoordinationError::Corrupt {
            path: snapshot_path,
            reason: format!("{file_bytes} bytes exceeds the store limit of {max_file_bytes}"),
        });
    }
    let bytes = fs::read(&snapshot_path).map_err(|source| CoordinationError::Io {
        operation: "reading",
        path: snapshot_path,
        source,
    })?;
    Ok(Some(Bytes::from(bytes)))
}

/// Where an atomic replacement failed.
#[derive(Debug)]
pub(crate) enum WriteFailure {
    /// Before the rename: the old snapshot is intact.
    BeforeRename(CoordinationError),
    /// After the rename: the new snapshot is visible but maybe not durable.
    AfterRename(CoordinationError),
}

/// Atomically replaces the snapshot in `dir` with `contents`.
pub(crate) fn write_atomically(dir: &Path, contents: &[u8]) -> Result<(), WriteFailure> {
    let temp_path = dir.join(TEMP_FILE_NAME);
    let io_error = |operation, path: &PathBuf| {
        let path = path.clone();
        move |source| CoordinationError::Io {
            operation,
            path,
            source,
        }
    };
    let write_temp = || -> Result<(), CoordinationError> {
        let mut file = File::create(&temp_path).map_err(io_error("creating", &temp_path))?;
        file.write_all(contents)
            .map_err(io_error("writing", &temp_path))?;
        file.sync_all().map_err(io_error("syncing", &temp_path))
    };
    let snapshot_path = dir.join(SNAPSHOT_FILE_NAME);
    if let Err(error) = write_temp().and_then(|()| {
        fs::rename(&temp_path, &snapshot_path).map_err(io_error("renaming into", &snapshot_path))
    }) {
        // Best effort: the file is ignored and removed at the next open anyway.
        let _ = fs::remove_file(&temp_path);
        return Err(WriteFailure::BeforeRename(error));
    }
    sync_dir(dir).map_err(WriteFailure::AfterRename)
}

/// Fsyncs a directory so entries created or renamed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CoordinationError> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| CoordinationError::Io {
            operation: "syncing directory",
            path: dir.to_owned(),
            source,
        })
}

/// Bounds-checked big-endian reads; `None` means the bytes ran out.
struct Reader<'a> {
    bytes: &'a Bytes,
    position: usize,
}

impl Reader<'_> {
    fn take(&mut self, count: usize) -> Option<Bytes> {
        let end = self.position.checked_add(count)?;
        if end > self.bytes.len() {
            return None;
        }
        let slice = self.bytes.slice(self.position..end);
        self.position = end;
        Some(slice)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let slice = self.take(N)?;
        slice[..].try_into().ok()
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(data: &'static [u8], version: i32) -> Node {
        let mut node = Node::new(Bytes::from_static(data), 2, None);
        node.version = version;
        node.cversion = 1;
        node.modified_txid = 3;
        node
    }

    fn sample() -> Vec<u8> {
        let root = fields(b"", 0);
        let a = fields(b"hello", 4);
        let b = fields(b"", 0);
        encode(9, [("/", &root), ("/a", &a), ("/a/b", &b)].into_iter())
    }

    fn decode_bytes(bytes: Vec<u8>) -> Result<(u64, Vec<SnapshotNode>), CoordinationError> {
        decode(&Bytes::from(bytes), Path::new("snap"))
    }

    fn corrupt_reason(bytes: Vec<u8>) -> String {
        match decode_bytes(bytes) {
            Err(CoordinationError::Corrupt { reason, .. }) => reason,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let (last_txid, nodes) = decode_bytes(sample()).expect("valid");
        assert_eq!(last_txid, 9);
        let paths: Vec<_> = nodes.iter().map(|node| node.path.as_str()).collect();
        assert_eq!(paths, ["/", "/a", "/a/b"]);
        assert_eq!(&nodes[1].data[..], b"hello");
        assert_eq!(
            (
                nodes[1].version,
                nodes[1].cversion,
                nodes[1].created_txid,
                nodes[1].modified_txid
            ),
            (4, 1, 2, 3)
        );
    }

    #[test]
    fn every_truncation_is_corrupt() {
        let bytes = sample();
        for length in 0..bytes.len() {
            corrupt_reason(bytes[..length].to_vec());
        }
    }

    #[test]
    fn every_flipped_byte_is_corrupt() {
        let bytes = sample();
        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x40;
            corrupt_reason(damaged);
        }
    }

    #[test]
    fn structural_errors_are_reported() {
        let root = fields(b"", 0);
        let orphan = fields(b"", 0);
        let reason = corrupt_reason(encode(1, [("/", &root), ("/x/y", &orphan)].into_iter()));
        assert!(reason.contains("before its parent"), "{reason}");
        let reason = corrupt_reason(encode(1, [("/a", &root)].into_iter()));
        assert!(reason.contains("root"), "{reason}");
        let reason = corrupt_reason(encode(1, std::iter::empty()));
        assert!(reason.contains("root"), "{reason}");
        let reason = corrupt_reason(encode(1, [("/", &root), ("/", &root)].into_iter()));
        assert!(reason.contains("twice"), "{reason}");
    }

    #[test]
    fn write_then_read_and_leftover_temp_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path(), 1 << 20).expect("empty dir"), None);
        write_atomically(dir.path(), &sample()).expect("writes");
        fs::write(dir.path().join(TEMP_FILE_NAME), b"half written").expect("write");
        let bytes = read(dir.path(), 1 << 20).expect("reads").expect("exists");
        assert_eq!(&bytes[..], &sample()[..]);
        assert!(!dir.path().join(TEMP_FILE_NAME).exists());
        assert!(matches!(
            read(dir.path(), 10),
            Err(CoordinationError::Corrupt { .. })
        ));
    }
}
