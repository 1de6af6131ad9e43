//! Crash recovery of one segment: read it front to back, check every batch (framing, magic,
//! CRC-32C, offsets that only grow, and what [`validate_stored_batch`] checks), rebuild both indexes, and cut the file at the first batch
//! that is torn or corrupt. What stays is exactly the prefix of batches that were fully written.

use crate::batch::{
    read_log_overhead, validate_stored_batch, BatchHeader, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES,
};
use crate::error::{IoContext, Result};
use crate::io::SharedFile;

use super::segment::Segment;

/// Bytes read from the file per step; large reads keep the scan near memory bandwidth.
const RECOVERY_READ_BYTES: usize = 1 << 20;

/// What recovery found in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    pub valid_batches: u64,
    pub valid_bytes: u64,
    /// Bytes cut off the end (0 when the segment was intact).
    pub truncated_bytes: u64,
}

/// Why a scan stopped before the end of the file.
fn stored_batch_problem(
    bytes: &[u8],
    expected_min_offset: i64,
    max_batch_bytes: u64,
) -> Option<String> {
    let header = match BatchHeader::parse(bytes) {
        Ok(header) => header,
        Err(error) => return Some(error.to_string()),
    };
    if header.total_bytes() != bytes.len() {
        return Some(format!("length {} does not match", header.batch_length));
    }
    if header.total_bytes() as u64 > max_batch_bytes {
        return Some(format!(
            "length {} is larger than a segment",
            header.batch_length
        ));
    }
    if header.base_offset < expected_min_offset || header.last_offset_delta < 0 {
        return Some(format!(
            "offset {} goes back (expected >= {expected_min_offset})",
            header.base_offset
        ));
    }
    // The CRC, then everything a follower checks before it copies a batch (magic, record
    // count, the framing of every record): a batch kept here is served to consumers and
    // followers, and one they refuse would stop replication at it.
    validate_stored_batch(bytes)
        .err()
        .map(|error| error.to_string())
}

/// Scans `file` (a segment starting at `base_offset`), truncates it after its last valid batch,
/// and returns the segment with rebuilt indexes.
pub async fn recover_segment(
    file: SharedFile,
    base_offset: i64,
    index_interval_bytes: u64,
    max_batch_bytes: u64,
) -> Result<(Segment, RecoveryReport)> {
    let file_len = file
        .len_bytes()
        .context(|| format!("stat segment {base_offset}"))?;
    let mut segment = Segment::from_parts(
        base_offset,
        file.clone(),
        0,
        base_offset,
        Default::default(),
        Default::default(),
        -1,
    );
    let mut buffer: Vec<u8> = Vec::with_capacity(RECOVERY_READ_BYTES);
    // File position of buffer[0].
    let mut buffer_start: u64 = 0;
    let mut position: u64 = 0;
    let mut valid_batches: u64 = 0;
    let mut stop_reason: Option<String> = None;

    while position < file_len {
        let in_buffer = usize::try_from(position - buffer_start).unwrap_or(usize::MAX);
        // Make sure the log overhead is buffered.
        if buffer.len() < in_buffer + LOG_OVERHEAD_BYTES {
            buffer.drain(..in_buffer.min(buffer.len()));
            buffer_start = position;
            let want = usize::try_from(file_len - (buffer_start + buffer.len() as u64))
                .unwrap_or(usize::MAX);
            let at = buffer_start + buffer.len() as u64;
            let (result, returned) = file
                .read_at(buffer, at, want.min(RECOVERY_READ_BYTES))
                .await;
            buffer = returned;
            if result.context(|| format!("read segment {base_offset}"))? == 0
                || buffer.len() < LOG_OVERHEAD_BYTES
            {
                stop_reason = Some("torn log overhead at the end".into());
                break;
            }
            continue;
        }
        let (_, batch_length) =
            read_log_overhead(buffer.get(in_buffer..).unwrap_or(&[])).unwrap_or((0, -1));
        let total = match usize::try_from(batch_length) {
            Ok(length) if length + LOG_OVERHEAD_BYTES >= BATCH_HEADER_BYTES => {
                length + LOG_OVERHEAD_BYTES
            }
            _ => {
                stop_reason = Some(format!("impossible batch length {batch_length}"));
                break;
            }
        };
        if position + total as u64 > file_len {
            stop_reason = Some(format!("batch of {total} bytes torn at the end"));
            break;
        }
        if total as u64 > max_batch_bytes {
            stop_reason = Some(format!("batch of {total} bytes is larger than a segment"));
            break;
        }
        if buffer.len() < in_buffer + total {
            // Keep the partial batch and read the rest of it (and more) after it.
            buffer.drain(..in_buffer);
            buffer_start = position;
            let missing = total - buffer.len();
            let at = buffer_start + buffer.len() as u64;
            let (result, returned) = file
                .read_at(buffer, at, missing.max(RECOVERY_READ_BYTES))
                .await;
            buffer = returned;
            if result.context(|| format!("read segment {base_offset}"))? == 0 {
                stop_reason = Some("file shrank during recovery".into());
                break;
            }
            continue;
        }
        let bytes = buffer.get(in_buffer..in_buffer + total).unwrap_or(&[]);
        if let Some(problem) = stored_batch_problem(bytes, segment.next_offset, max_batch_bytes) {
            stop_reason = Some(problem);
            break;
        }
        let header = BatchHeader::parse(bytes).map_err(|error| crate::Error::Corrupt {
            what: "segment",
            detail: error.to_string(),
        })?;
        segment.record_batch(
            header.base_offset,
            header.next_offset(),
            total as u64,
            header.max_timestamp,
            index_interval_bytes,
        );
        valid_batches += 1;
        position += total as u64;
    }

    let truncated_bytes = file_len - position;
    if truncated_bytes > 0 {
        tracing::warn!(
            base_offset,
            valid_bytes = position,
            truncated_bytes,
            reason = stop_reason.as_deref().unwrap_or("unknown"),
            "recovery truncated a torn or corrupt segment tail"
        );
        file.set_len(position)
            .context(|| format!("truncate segment {base_offset}"))?;
    }
    segment.written_bytes = segment.size_bytes;
    assert_eq!(
        segment.size_bytes, position,
        "recovered size must match the scan"
    );
    Ok((
        segment,
        RecoveryReport {
            valid_batches,
            valid_bytes: position,
            truncated_bytes,
        },
    ))
}
