//! Validation of RecordBatch v2 bytes as a producer sent them, before anything is stored.

use super::header::{crc_covered, BatchHeader, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES};
use super::records::RecordCursor;
use super::Compression;

/// Why bytes are not an acceptable RecordBatch v2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("truncated: needed {needed_bytes} bytes, have {available_bytes}")]
    Truncated {
        needed_bytes: usize,
        available_bytes: usize,
    },
    #[error("batch length {0} is impossible")]
    BadLength(i32),
    #[error("magic {0} is not supported (only RecordBatch v2)")]
    UnsupportedMagic(i8),
    #[error("CRC mismatch: header says {expected:#010x}, bytes give {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("record count {record_count} does not match lastOffsetDelta {last_offset_delta}")]
    CountMismatch {
        record_count: i32,
        last_offset_delta: i32,
    },
    #[error("malformed record {index}: {reason}")]
    MalformedRecord { index: i32, reason: &'static str },
    #[error("empty record set")]
    Empty,
}

impl BatchError {
    /// Kafka answers framing and checksum damage with CORRUPT_MESSAGE and well-framed but
    /// semantically wrong batches with INVALID_RECORD; this says which.
    pub fn is_corrupt(&self) -> bool {
        match self {
            BatchError::Truncated { .. }
            | BatchError::BadLength(_)
            | BatchError::CrcMismatch { .. } => true,
            BatchError::UnsupportedMagic(_)
            | BatchError::CountMismatch { .. }
            | BatchError::MalformedRecord { .. }
            | BatchError::Empty => false,
        }
    }
}

/// Splits a record set (one or more concatenated batches) into the byte ranges of its batches.
/// Fails if a batch's length runs past the end or is too small to hold a header.
pub fn split_record_set(bytes: &[u8]) -> Result<Vec<std::ops::Range<usize>>, BatchError> {
    let mut ranges = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = bytes.get(at..).unwrap_or(&[]);
        let Some((_, batch_length)) = super::header::read_log_overhead(rest) else {
            return Err(BatchError::Truncated {
                needed_bytes: LOG_OVERHEAD_BYTES,
                available_bytes: rest.len(),
            });
        };
        let length =
            usize::try_from(batch_length).map_err(|_| BatchError::BadLength(batch_length))?;
        if length < BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES {
            return Err(BatchError::BadLength(batch_length));
        }
        let total = LOG_OVERHEAD_BYTES + length;
        if total > rest.len() {
            return Err(BatchError::Truncated {
                needed_bytes: total,
                available_bytes: rest.len(),
            });
        }
        ranges.push(at..at + total);
        at += total;
    }
    if ranges.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(ranges)
}

/// Validates one whole batch (exactly its bytes): length, magic, CRC-32C, record count, and
/// for uncompressed batches the framing of every record (non-negative sizes, consecutive
/// offset deltas). Compressed records are not inflated here: their CRC already covers them.
pub fn validate_batch(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = validate_framing(bytes)?;
    if header.record_count <= 0 || header.last_offset_delta != header.record_count - 1 {
        return Err(BatchError::CountMismatch {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    validate_records(bytes, &header, RecordDeltas::Consecutive)?;
    Ok(header)
}

/// Validates one whole batch as a leader stored it, for a follower that copies it: the checks
/// of [`validate_batch`], except that compaction may have removed records from it, so it may
/// hold fewer records than `lastOffsetDelta + 1` (even none) and its offset deltas need only
/// increase within `[0, lastOffsetDelta]`.
pub fn validate_stored_batch(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = validate_framing(bytes)?;
    if header.record_count < 0
        || header.last_offset_delta < 0
        || i64::from(header.record_count) > i64::from(header.last_offset_delta) + 1
    {
        return Err(BatchError::CountMismatch {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    validate_records(bytes, &header, RecordDeltas::Increasing)?;
    Ok(header)
}

/// Length, magic and CRC-32C of one whole batch.
fn validate_framing(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if header.batch_length < 0 || header.total_bytes() != bytes.len() {
        return Err(BatchError::BadLength(header.batch_length));
    }
    let actual = crc32c::crc32c(crc_covered(bytes));
    if actual != header.crc {
        return Err(BatchError::CrcMismatch {
            expected: header.crc,
            actual,
        });
    }
    Ok(header)
}

/// What a batch's record offset deltas must look like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RecordDeltas {
    /// 0, 1, 2, ...: as a producer sends them.
    Consecutive,
    /// Strictly increasing up to `lastOffsetDelta`: compaction may have left holes.
    Increasing,
}

/// For an uncompressed batch, the framing of every record and their offset deltas; a
/// compressed batch's records are covered by its CRC and not inflated here.
fn validate_records(
    bytes: &[u8],
    header: &BatchHeader,
    deltas: RecordDeltas,
) -> Result<(), BatchError> {
    if header.compression() != Compression::None {
        return Ok(());
    }
    let mut seen: i32 = 0;
    let mut previous_delta: Option<i32> = None;
    for record in RecordCursor::new(bytes) {
        let position = record.map_err(|reason| BatchError::MalformedRecord {
            index: seen,
            reason,
        })?;
        let in_sequence = match deltas {
            RecordDeltas::Consecutive => position.offset_delta == seen,
            RecordDeltas::Increasing => {
                previous_delta.map_or(position.offset_delta >= 0, |previous| {
                    position.offset_delta > previous
                }) && position.offset_delta <= header.last_offset_delta
            }
        };
        if !in_sequence {
            return Err(BatchError::MalformedRecord {
                index: seen,
                reason: "offset delta out of sequence",
            });
        }
        previous_delta = Some(position.offset_delta);
        seen += 1;
    }
    if seen != header.record_count {
        return Err(BatchError::CountMismatch {
            record_count: header.record_count,
            last_offset_delta: seen - 1,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::batch::build::build_batch as build_batch_with;

    fn from_hex(parts: &[&str]) -> Vec<u8> {
        let text: String = parts.concat();
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
            .collect()
    }

    /// Found by the `record_batch` fuzz target (tests/fuzz): a `__consumer_offsets` batch whose
    /// last record declares a value longer than the record. Validation walked only each record's
    /// length and deltas and accepted it; the record reader (compaction, the group loader) then
    /// failed on it. The CRC is recomputed here as the fuzz target does, so only the record
    /// framing is wrong.
    #[test]
    fn fuzz_regression_a_value_running_past_its_record_is_refused() {
        let mut bytes = from_hex(&[
            "000000000000001700000095000000000296e4dc3e000000000003000001a225e634c3000001a225",
            "e634c3ffffffffffffffffffffffffffff00000004340000002800010008636b2d67726f75700002",
            "636b000000000100340000022800010008636b2d67726f75700002636b0000000101003400000428",
            "00010008636b2d67726f75700002636b000000020100240000061800020008636b2d67726f7502c4",
            "00",
        ]);
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(
            crate::batch::RecordEntries::new(&bytes).any(|entry| entry.is_err()),
            "the input is malformed"
        );
        for result in [validate_batch(&bytes), validate_stored_batch(&bytes)] {
            assert!(
                matches!(result, Err(BatchError::MalformedRecord { index: 3, .. })),
                "{result:?}"
            );
        }
    }

    #[test]
    fn record_fields_must_fill_the_record_exactly() {
        let bytes = build_batch_with(0, 1, 10, 1_000, -1, -1, -1);
        assert!(validate_batch(&bytes).is_ok());
        // One byte more in the record than its fields take: grow the record length varint by
        // one (length 2n zig-zag) and append a byte, then fix the batch length and CRC.
        let mut grown = bytes.clone();
        let length_at = BATCH_HEADER_BYTES;
        let record_len = (grown[length_at] >> 1) as usize;
        assert!(record_len < 63, "a one-byte varint in this test");
        grown[length_at] = ((record_len + 1) << 1) as u8;
        grown.push(0);
        let batch_length = (grown.len() - LOG_OVERHEAD_BYTES) as i32;
        grown[8..12].copy_from_slice(&batch_length.to_be_bytes());
        let crc = crc32c::crc32c(&grown[21..]);
        grown[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batch(&grown),
            Err(BatchError::MalformedRecord {
                index: 0,
                reason: "record fields do not fill the record"
            })
        ));
    }

    #[test]
    fn accepts_valid_batch() {
        let bytes = build_batch_with(0, 5, 100, 1_000, -1, -1, -1);
        let header = validate_batch(&bytes).expect("valid");
        assert_eq!(header.record_count, 5);
    }

    #[test]
    fn rejects_flipped_byte_anywhere_in_crc_range() {
        let bytes = build_batch_with(0, 3, 20, 1_000, -1, -1, -1);
        for position in 21..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[position] ^= 0x40;
            let error = validate_batch(&damaged).expect_err("damage must be caught");
            assert!(
                matches!(error, BatchError::CrcMismatch { .. }),
                "byte {position}: {error:?}"
            );
            assert!(error.is_corrupt());
        }
    }

    #[test]
    fn rejects_wrong_length_and_count() {
        let bytes = build_batch_with(0, 3, 20, 1_000, -1, -1, -1);
        assert!(matches!(
            validate_batch(&bytes[..bytes.len() - 1]),
            Err(BatchError::BadLength(_))
        ));
        let mut wrong_count = bytes.clone();
        wrong_count[57..61].copy_from_slice(&4i32.to_be_bytes());
        let crc = crc32c::crc32c(&wrong_count[21..]);
        wrong_count[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batch(&wrong_count),
            Err(BatchError::CountMismatch { .. })
        ));
    }

    #[test]
    fn rejects_negative_record_length() {
        let mut bytes = build_batch_with(0, 1, 4, 1_000, -1, -1, -1);
        bytes[61] = 0x01; // zig-zag -1
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batch(&bytes),
            Err(BatchError::MalformedRecord { .. })
        ));
    }

    /// The batch with only the records at `keep` (indexes), as compaction leaves it: header
    /// kept (base offset, lastOffsetDelta), record count, length and CRC updated.
    fn thinned(bytes: &[u8], keep: &[usize]) -> Vec<u8> {
        let records: Vec<_> = crate::batch::RecordEntries::new(bytes)
            .map(|record| record.expect("valid record").bytes.to_vec())
            .collect();
        let mut out = bytes[..BATCH_HEADER_BYTES].to_vec();
        for &index in keep {
            out.extend_from_slice(&records[index]);
        }
        let length = (out.len() - LOG_OVERHEAD_BYTES) as i32;
        out[8..12].copy_from_slice(&length.to_be_bytes());
        out[57..61].copy_from_slice(&(keep.len() as i32).to_be_bytes());
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn a_stored_batch_may_have_lost_records_to_compaction() {
        let bytes = build_batch_with(0, 4, 10, 1_000, -1, -1, -1);
        assert!(
            validate_stored_batch(&bytes).is_ok(),
            "a whole batch is fine"
        );
        for keep in [&[1usize, 3][..], &[3], &[]] {
            let thinned = thinned(&bytes, keep);
            let header = validate_stored_batch(&thinned).expect("a compacted batch");
            assert_eq!(header.record_count, keep.len() as i32);
            assert_eq!(header.last_offset_delta, 3);
            assert!(
                matches!(
                    validate_batch(&thinned),
                    Err(BatchError::CountMismatch { .. })
                ),
                "a producer may not send it"
            );
        }
        // Records out of order are not what compaction leaves.
        let reordered = thinned(&bytes, &[2, 1]);
        assert!(matches!(
            validate_stored_batch(&reordered),
            Err(BatchError::MalformedRecord { .. })
        ));
        // More records than lastOffsetDelta allows.
        let mut too_many = bytes.clone();
        too_many[23..27].copy_from_slice(&2i32.to_be_bytes());
        let crc = crc32c::crc32c(&too_many[21..]);
        too_many[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_stored_batch(&too_many),
            Err(BatchError::CountMismatch { .. })
        ));
        // Damage is caught as for a producer's batch.
        let mut damaged = thinned(&bytes, &[0, 2]);
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert!(matches!(
            validate_stored_batch(&damaged),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn splits_concatenated_batches() {
        let mut set = build_batch_with(0, 2, 10, 0, -1, -1, -1);
        let first_len = set.len();
        set.extend(build_batch_with(0, 1, 10, 0, -1, -1, -1));
        let ranges = split_record_set(&set).expect("two batches");
        assert_eq!(ranges, vec![0..first_len, first_len..set.len()]);
        assert!(matches!(
            split_record_set(&set[..set.len() - 3]),
            Err(BatchError::Truncated { .. })
        ));
        assert!(matches!(split_record_set(&[]), Err(BatchError::Empty)));
    }
}
