//! Walking the records of an uncompressed batch: [`RecordCursor`] without decoding keys or
//! values (enough to validate record framing and to find a record's timestamp for ListOffsets
//! by time), [`RecordEntries`] with keys and values borrowed (what log compaction needs).

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
        read_varlong(self.bytes, &mut self.at)
    }

    fn next_record(&mut self) -> Result<RecordPosition, &'static str> {
        // Plain branches rather than combinators: see `skip_nullable_bytes`.
        let length = self.read_varlong()?;
        if length < 0 {
            return Err("negative record length");
        }
        if length as u64 > (self.bytes.len() - self.at) as u64 {
            return Err("record runs past the batch");
        }
        let end = self.at + length as usize;
        // attributes int8, then timestampDelta varlong, offsetDelta varint.
        self.at += 1;
        let timestamp_delta = self.read_varlong()?;
        let offset_delta = self.read_varlong()?;
        if offset_delta < i64::from(i32::MIN) || offset_delta > i64::from(i32::MAX) {
            return Err("offset delta out of range");
        }
        if self.at > end {
            return Err("record header longer than the record");
        }
        // The rest must fill the record exactly, as Kafka checks: a key and a value (nullable),
        // then a header count and that many headers (a non-null key, a nullable value). A batch
        // whose records do not parse would be accepted here and then break every reader of the
        // records (consumers, compaction, the group coordinator's replay).
        skip_nullable_bytes(self.bytes, &mut self.at, end, false)?;
        skip_nullable_bytes(self.bytes, &mut self.at, end, false)?;
        let mut headers_left = read_varlong(self.bytes, &mut self.at)?;
        if headers_left < 0 {
            return Err("negative header count");
        }
        while headers_left > 0 {
            // Each header takes at least two bytes, so a huge count fails within the record.
            skip_nullable_bytes(self.bytes, &mut self.at, end, true)?;
            skip_nullable_bytes(self.bytes, &mut self.at, end, false)?;
            headers_left -= 1;
        }
        if self.at != end {
            return Err("record fields do not fill the record");
        }
        Ok(RecordPosition {
            offset_delta: offset_delta as i32,
            timestamp_delta,
        })
    }
}

/// Steps over a varint-length-prefixed byte string (length -1 = null, unless `required`) that
/// must end by `end`.
///
/// This and [`read_varlong`] run for every record of every produced batch, and CI measures the
/// request path in a debug build (tests/instruction_count.rs), where each iterator adapter and
/// `Option`/`Result` combinator is a call: they are written with plain indexing and branches.
#[inline]
fn skip_nullable_bytes(
    bytes: &[u8],
    at: &mut usize,
    end: usize,
    required: bool,
) -> Result<(), &'static str> {
    if *at >= end {
        return Err("record field runs past the record");
    }
    let length = read_varlong(bytes, at)?;
    if length == -1 && !required {
        return Ok(());
    }
    if length < 0 {
        return Err("negative key, value or header length");
    }
    // `*at` may have passed `end` inside the length varint; `length` fits in usize (>= 0, and
    // usize is 64-bit on every target Strom builds for).
    if *at > end || length as u64 > (end - *at) as u64 {
        return Err("key, value or header runs past the record");
    }
    *at += length as usize;
    Ok(())
}

/// Reads a zig-zag varint at `*at`, advancing it (at most 10 bytes).
#[inline]
fn read_varlong(bytes: &[u8], at: &mut usize) -> Result<i64, &'static str> {
    let mut value: u64 = 0;
    let mut shift: u32 = 0;
    let mut index = *at;
    while index < bytes.len() {
        let byte = bytes[index];
        index += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            *at = index;
            // Zig-zag decode.
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
        shift += 7;
        if shift >= 70 {
            return Err("varint longer than 10 bytes");
        }
    }
    Err("varint runs past the batch")
}

/// One record of an uncompressed batch, borrowed from the batch's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordEntry<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    /// `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// `None` for a null value: a tombstone on a compacted topic.
    pub value: Option<&'a [u8]>,
    /// The whole record as stored, from its length varint to its last header byte.
    pub bytes: &'a [u8],
}

/// Iterates over the records of an uncompressed batch with their keys and values, yielding an
/// error message for the first malformed record (and nothing after it).
pub struct RecordEntries<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> RecordEntries<'a> {
    /// `batch` is the whole batch including its header.
    pub fn new(batch: &'a [u8]) -> Self {
        RecordEntries {
            bytes: batch,
            at: BATCH_HEADER_BYTES.min(batch.len()),
        }
    }

    /// Reads a varint length and that many bytes (`None` for length -1), not past `end`.
    fn nullable_bytes(&mut self, end: usize) -> Result<Option<&'a [u8]>, &'static str> {
        let length = read_varlong(self.bytes, &mut self.at)?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length).map_err(|_| "negative key or value length")?;
        let start = self.at;
        let stop = start
            .checked_add(length)
            .filter(|stop| *stop <= end)
            .ok_or("key or value runs past the record")?;
        self.at = stop;
        Ok(self.bytes.get(start..stop))
    }

    fn next_entry(&mut self) -> Result<RecordEntry<'a>, &'static str> {
        let record_start = self.at;
        let length = read_varlong(self.bytes, &mut self.at)?;
        let length = usize::try_from(length).map_err(|_| "negative record length")?;
        let end = self
            .at
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or("record runs past the batch")?;
        // attributes int8, timestampDelta varlong, offsetDelta varint, key, value, headers.
        self.at += 1;
        let timestamp_delta = read_varlong(self.bytes, &mut self.at)?;
        let offset_delta = i32::try_from(read_varlong(self.bytes, &mut self.at)?)
            .map_err(|_| "offset delta out of range")?;
        if self.at > end {
            return Err("record header longer than the record");
        }
        let key = self.nullable_bytes(end)?;
        let value = self.nullable_bytes(end)?;
        if self.at > end {
            return Err("key or value length runs past the record");
        }
        self.at = end;
        Ok(RecordEntry {
            offset_delta,
            timestamp_delta,
            key,
            value,
            bytes: self.bytes.get(record_start..end).unwrap_or(&[]),
        })
    }
}

impl<'a> Iterator for RecordEntries<'a> {
    type Item = Result<RecordEntry<'a>, &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let item = self.next_entry();
        if item.is_err() {
            self.at = self.bytes.len();
        }
        Some(item)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::build::build_keyed_batch;

    #[test]
    fn entries_borrow_keys_values_and_whole_records() {
        let batch = build_keyed_batch(
            &[
                (Some(b"k1".as_slice()), Some(b"v1".as_slice())),
                (Some(b"k2".as_slice()), None),
                (None, Some(b"v3".as_slice())),
            ],
            1_000,
        );
        let entries: Vec<RecordEntry<'_>> = RecordEntries::new(&batch)
            .collect::<Result<_, _>>()
            .expect("well-formed");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].key, Some(b"k1".as_slice()));
        assert_eq!(entries[0].value, Some(b"v1".as_slice()));
        assert_eq!(entries[1].value, None, "a tombstone");
        assert_eq!(entries[2].key, None);
        assert_eq!(entries[2].offset_delta, 2);
        assert_eq!(entries[2].timestamp_delta, 2);
        let whole: usize = entries.iter().map(|e| e.bytes.len()).sum();
        assert_eq!(
            BATCH_HEADER_BYTES + whole,
            batch.len(),
            "records tile the batch"
        );
    }

    #[test]
    fn a_key_longer_than_its_record_is_an_error() {
        let mut batch = build_keyed_batch(&[(Some(b"k".as_slice()), Some(b"v".as_slice()))], 0);
        // Record: length, attributes, timestamp delta, offset delta, then the key length.
        batch[BATCH_HEADER_BYTES + 4] = 0x20; // zig-zag 16
        let mut entries = RecordEntries::new(&batch);
        assert!(matches!(entries.next(), Some(Err(_))));
        assert!(entries.next().is_none());
    }

    #[test]
    fn varlongs_of_every_length_round_trip_and_bad_ones_are_errors() {
        let values = [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            8191,
            -8192,
            8192,
            -8193,
            1 << 20,
            -(1 << 27),
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ];
        for value in values {
            let mut bytes = Vec::new();
            crate::batch::build::put_varlong(&mut bytes, value);
            bytes.push(0xAA); // a following byte must not be consumed
            let mut at = 0;
            assert_eq!(read_varlong(&bytes, &mut at), Ok(value), "{value}");
            assert_eq!(at, bytes.len() - 1, "{value}: consumed {at} bytes");
            // Cut short anywhere, it is an error, never a wrong value.
            for cut in 0..bytes.len() - 1 {
                let mut at = 0;
                assert!(
                    read_varlong(&bytes[..cut], &mut at).is_err(),
                    "{value} cut at {cut}"
                );
            }
        }
        let mut at = 0;
        assert!(
            read_varlong(&[0x80; 11], &mut at).is_err(),
            "longer than 10 bytes"
        );
        // Decoding from an offset inside a buffer.
        let mut at = 2;
        assert_eq!(read_varlong(&[0xff, 0xff, 0x02], &mut at), Ok(1));
        assert_eq!(at, 3);
    }
}
