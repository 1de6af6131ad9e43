//! Walking the records of an uncompressed batch without decoding keys or values: enough to
//! validate record framing and to find a record's timestamp (ListOffsets by time).

use super::header::BATCH_HEADER_BYTES;

/// The position of one record inside its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
}

/// Iterates over the records of an uncompressed batch, yielding each record's deltas or an
/// error message for the first malformed record.
pub struct RecordCursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> RecordCursor<'a> {
    /// `batch` is the whole batch including its header.
    pub fn new(batch: &'a [u8]) -> Self {
        RecordCursor {
            bytes: batch,
            at: BATCH_HEADER_BYTES.min(batch.len()),
        }
    }

    /// Whether every byte of the batch has been consumed.
    pub fn is_at_end(&self) -> bool {
        self.at == self.bytes.len()
    }

    fn read_varlong(&mut self) -> Result<i64, &'static str> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .bytes
                .get(self.at)
                .ok_or("varint runs past the batch")?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                // Zig-zag decode.
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err("varint longer than 10 bytes")
    }

    fn next_record(&mut self) -> Result<RecordPosition, &'static str> {
        let length = self.read_varlong()?;
        let length = usize::try_from(length).map_err(|_| "negative record length")?;
        let start = self.at;
        let end = start.checked_add(length).ok_or("record length overflows")?;
        if end > self.bytes.len() {
            return Err("record runs past the batch");
        }
        // attributes int8, then timestampDelta varlong, offsetDelta varint.
        self.at += 1;
        let timestamp_delta = self.read_varlong()?;
        let offset_delta =
            i32::try_from(self.read_varlong()?).map_err(|_| "offset delta out of range")?;
        if self.at > end {
            return Err("record header longer than the record");
        }
        self.at = end;
        Ok(RecordPosition {
            offset_delta,
            timestamp_delta,
        })
    }
}

impl Iterator for RecordCursor<'_> {
    type Item = Result<RecordPosition, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.is_at_end() {
            return None;
        }
        let item = self.next_record();
        if item.is_err() {
            // Stop after the first error: the framing after it is meaningless.
            self.at = self.bytes.len();
        }
        Some(item)
    }
}
