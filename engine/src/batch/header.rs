//! Parsing and patching of the RecordBatch v2 header (see the module docs of `batch`).

use super::BatchError;

/// Bytes of `baseOffset` + `batchLength`: the part of every batch before its length counts.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// Bytes of the whole v2 header, up to the first record.
pub const BATCH_HEADER_BYTES: usize = 61;

const MAGIC_V2: i8 = 2;
const CRC_COVERED_FROM: usize = 21;

/// Compression codec of a batch (attribute bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// The decoded header of one RecordBatch v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(bytes: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(raw)
}

fn be_i32(bytes: &[u8], at: usize) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(raw)
}

fn be_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// Reads `(baseOffset, batchLength)` from the first 12 bytes, as a scan needs to step over
/// batches without decoding them.
pub fn read_log_overhead(bytes: &[u8]) -> Option<(i64, i32)> {
    if bytes.len() < LOG_OVERHEAD_BYTES {
        return None;
    }
    Some((be_i64(bytes, 0), be_i32(bytes, 8)))
}

impl BatchHeader {
    /// Decodes a header from at least [`BATCH_HEADER_BYTES`] bytes. Checks only that the bytes
    /// are there and the magic is 2; [`super::validate_batch`] checks the rest.
    #[expect(clippy::indexing_slicing, reason = "length checked on entry")]
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::Truncated {
                needed_bytes: BATCH_HEADER_BYTES,
                available_bytes: bytes.len(),
            });
        }
        let magic = bytes[16] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        Ok(BatchHeader {
            base_offset: be_i64(bytes, 0),
            batch_length: be_i32(bytes, 8),
            partition_leader_epoch: be_i32(bytes, 12),
            magic,
            crc: be_i32(bytes, 17) as u32,
            attributes: be_i16(bytes, 21),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, 27),
            max_timestamp: be_i64(bytes, 35),
            producer_id: be_i64(bytes, 43),
            producer_epoch: be_i16(bytes, 51),
            base_sequence: be_i32(bytes, 53),
            record_count: be_i32(bytes, 57),
        })
    }

    /// Bytes of the whole batch including the log overhead.
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD_BYTES + usize::try_from(self.batch_length).unwrap_or(0)
    }

    /// Offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset just past the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn compression(&self) -> Compression {
        match self.attributes & 0x07 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            _ => Compression::Zstd,
        }
    }

    /// Whether timestamps are broker-assigned (`LogAppendTime`) rather than `CreateTime`.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// Whether the batch carries idempotent-producer state.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// The bytes covered by the CRC: everything from `attributes` on.
pub(super) fn crc_covered(bytes: &[u8]) -> &[u8] {
    bytes.get(CRC_COVERED_FROM..).unwrap_or(&[])
}

/// The prefix a broker rewrites when it stores a batch: `baseOffset`, `batchLength` (unchanged)
/// and `partitionLeaderEpoch`. Neither rewritten field is covered by the CRC.
pub const PATCHED_PREFIX_BYTES: usize = 16;

/// Builds the rewritten 16-byte prefix of a batch whose original first 16 bytes are `original`.
pub fn patched_prefix(
    original: &[u8],
    base_offset: i64,
    leader_epoch: i32,
) -> [u8; PATCHED_PREFIX_BYTES] {
    let mut prefix = [0u8; PATCHED_PREFIX_BYTES];
    prefix[..8].copy_from_slice(&base_offset.to_be_bytes());
    if let Some(length) = original.get(8..12) {
        prefix[8..12].copy_from_slice(length);
    }
    prefix[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    prefix
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a valid uncompressed v2 batch with `count` records of `value_bytes` each.
    pub fn build_batch(
        base_offset: i64,
        count: i32,
        value_bytes: usize,
        timestamp_ms: i64,
    ) -> Vec<u8> {
        crate::batch::build::build_batch(base_offset, count, value_bytes, timestamp_ms, -1, -1, -1)
    }

    #[test]
    fn parses_what_it_builds() {
        let bytes = build_batch(42, 3, 10, 1_000);
        let header = BatchHeader::parse(&bytes).expect("valid header");
        assert_eq!(header.base_offset, 42);
        assert_eq!(header.record_count, 3);
        assert_eq!(header.last_offset(), 44);
        assert_eq!(header.total_bytes(), bytes.len());
        assert_eq!(header.compression(), Compression::None);
    }

    #[test]
    fn rejects_short_and_old_magic() {
        assert!(matches!(
            BatchHeader::parse(&[0; 10]),
            Err(BatchError::Truncated { .. })
        ));
        let mut bytes = build_batch(0, 1, 1, 0);
        bytes[16] = 1;
        assert!(matches!(
            BatchHeader::parse(&bytes),
            Err(BatchError::UnsupportedMagic(1))
        ));
    }

    #[test]
    fn patched_prefix_keeps_length() {
        let bytes = build_batch(0, 1, 1, 0);
        let prefix = patched_prefix(&bytes[..16], 7, 3);
        assert_eq!(&prefix[8..12], &bytes[8..12]);
        assert_eq!(
            i64::from_be_bytes(prefix[..8].try_into().expect("8 bytes")),
            7
        );
        assert_eq!(
            i32::from_be_bytes(prefix[12..16].try_into().expect("4 bytes")),
            3
        );
    }
}
