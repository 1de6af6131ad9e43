//! Stepping over stored batches by reading only their headers: how reads find the batch that
//! holds an offset, and how the end of a read is aligned to whole batches.

use std::ops::ControlFlow;

use crate::batch::{BatchHeader, BATCH_HEADER_BYTES};
use crate::error::{Error, IoContext, Result};
use crate::io::SharedFile;

/// Bytes read per step: several small batches' headers in one read.
const SCAN_CHUNK_BYTES: usize = 16 << 10;

/// A stored batch's place in its segment.
#[derive(Debug, Clone, Copy)]
pub struct StoredBatch {
    pub position: u64,
    pub header: BatchHeader,
}

impl StoredBatch {
    pub fn end_position(&self) -> u64 {
        self.position + self.header.total_bytes() as u64
    }
}

/// Visits the batches of `file` from `start` (a batch boundary) up to `end` (exclusive), in
/// order, until `visit` breaks. Stored batches were validated when appended or recovered, so a
/// header that does not parse here means the file changed under us: a `Corrupt` error.
pub async fn scan_batches(
    file: &SharedFile,
    start: u64,
    end: u64,
    mut visit: impl FnMut(StoredBatch) -> ControlFlow<()>,
) -> Result<()> {
    let mut position = start;
    let mut chunk: Vec<u8> = Vec::new();
    let mut chunk_start = start;
    while position + BATCH_HEADER_BYTES as u64 <= end {
        let offset_in_chunk = usize::try_from(position - chunk_start).unwrap_or(usize::MAX);
        if chunk.len() < offset_in_chunk.saturating_add(BATCH_HEADER_BYTES) {
            let want = usize::try_from(end - position)
                .unwrap_or(usize::MAX)
                .min(SCAN_CHUNK_BYTES);
            chunk = file
                .read_exact_at(position, want.max(BATCH_HEADER_BYTES))
                .await
                .context(|| format!("read batch headers at {position}"))?;
            chunk_start = position;
            continue;
        }
        let bytes = chunk.get(offset_in_chunk..).unwrap_or(&[]);
        let header = BatchHeader::parse(bytes).map_err(|error| Error::Corrupt {
            what: "stored batch",
            detail: format!("at byte {position}: {error}"),
        })?;
        if header.batch_length <= 0 {
            return Err(Error::Corrupt {
                what: "stored batch",
                detail: format!("length {} at {position}", header.batch_length),
            });
        }
        let batch = StoredBatch { position, header };
        if visit(batch).is_break() {
            return Ok(());
        }
        position = batch.end_position();
    }
    Ok(())
}
