//! Bounds-checked primitive readers and writers for hand-parsed protocol bytes.
//!
//! Used only where Strom parses or writes bytes itself (request header,
//! ApiVersions response). Every read checks the remaining length first and
//! returns a [`WireError`] naming the field, so a malicious frame can never
//! cause a panic or an allocation larger than the frame.

use bytes::BufMut;

use super::WireError;

/// Longest unsigned varint that fits in 32 bits (7 bits per byte).
const UVARINT32_MAX_BYTES: usize = 5;

/// A cursor over one frame's bytes.
pub(crate) struct WireReader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> WireReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    /// Offset of the next unread byte.
    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn remaining_bytes(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// Consumes `count` bytes and returns them.
    pub(crate) fn take(
        &mut self,
        field: &'static str,
        count: usize,
    ) -> Result<&'a [u8], WireError> {
        let remaining_bytes = self.remaining_bytes();
        if count > remaining_bytes {
            return Err(WireError::Truncated {
                field,
                needed_bytes: count,
                remaining_bytes,
            });
        }
        let start = self.position;
        self.position += count;
        Ok(&self.bytes[start..self.position])
    }

    pub(crate) fn read_i16(&mut self, field: &'static str) -> Result<i16, WireError> {
        let raw = self.take(field, 2)?;
        Ok(i16::from_be_bytes([raw[0], raw[1]]))
    }

    pub(crate) fn read_i32(&mut self, field: &'static str) -> Result<i32, WireError> {
        let raw = self.take(field, 4)?;
        Ok(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }

    /// Reads a Kafka unsigned varint limited to 32 bits.
    pub(crate) fn read_uvarint32(&mut self, field: &'static str) -> Result<u32, WireError> {
        let mut value: u32 = 0;
        for index in 0..UVARINT32_MAX_BYTES {
            let byte = self.take(field, 1)?[0];
            // The fifth byte may only carry the top 4 bits of a u32.
            if index == UVARINT32_MAX_BYTES - 1 && byte > 0x0f {
                return Err(WireError::VarIntTooLong { field });
            }
            value |= u32::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarIntTooLong { field })
    }

    /// Reads a non-compact nullable string (i16 length, -1 = null) and returns
    /// the byte range it occupies, or `None` for null.
    pub(crate) fn read_nullable_string_range(
        &mut self,
        field: &'static str,
    ) -> Result<Option<std::ops::Range<usize>>, WireError> {
        let length = self.read_i16(field)?;
        if length == -1 {
            return Ok(None);
        }
        let length_bytes = usize::try_from(length).map_err(|_| WireError::InvalidLength {
            field,
            length: i32::from(length),
        })?;
        let start = self.position;
        self.take(field, length_bytes)?;
        Ok(Some(start..self.position))
    }

    /// Skips a tagged-field section (count, then tag/size/bytes per field).
    ///
    /// Each field consumes at least two bytes, so a huge declared count ends in
    /// a `Truncated` error after at most `frame_len / 2` iterations.
    pub(crate) fn skip_tagged_fields(&mut self, field: &'static str) -> Result<u32, WireError> {
        let count = self.read_uvarint32(field)?;
        for _ in 0..count {
            let _tag = self.read_uvarint32(field)?;
            let size_bytes = self.read_uvarint32(field)?;
            // A size that does not fit usize cannot fit the frame either.
            self.take(field, usize::try_from(size_bytes).unwrap_or(usize::MAX))?;
        }
        Ok(count)
    }
}

/// Appends a Kafka unsigned varint.
pub(crate) fn put_uvarint32(out: &mut impl BufMut, mut value: u32) {
    while value >= 0x80 {
        // Truncation intended: the low 7 bits plus the continuation bit.
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_round_trips_edges() {
        for value in [0u32, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut out = Vec::new();
            put_uvarint32(&mut out, value);
            let mut reader = WireReader::new(&out);
            assert_eq!(reader.read_uvarint32("v"), Ok(value));
            assert_eq!(reader.remaining_bytes(), 0);
        }
    }

    #[test]
    fn uvarint_longer_than_32_bits_is_rejected() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0x1f];
        let mut reader = WireReader::new(&bytes);
        assert_eq!(
            reader.read_uvarint32("v"),
            Err(WireError::VarIntTooLong { field: "v" })
        );
        let endless = [0x80; 8];
        assert!(WireReader::new(&endless).read_uvarint32("v").is_err());
    }

    #[test]
    fn truncated_reads_name_the_field() {
        let mut reader = WireReader::new(&[0x00]);
        assert_eq!(
            reader.read_i32("correlation_id"),
            Err(WireError::Truncated {
                field: "correlation_id",
                needed_bytes: 4,
                remaining_bytes: 1
            })
        );
    }

    #[test]
    fn nullable_string_handles_null_and_negative() {
        let mut reader = WireReader::new(&[0xff, 0xff]);
        assert_eq!(reader.read_nullable_string_range("s"), Ok(None));
        let mut reader = WireReader::new(&[0xff, 0xfe]);
        assert_eq!(
            reader.read_nullable_string_range("s"),
            Err(WireError::InvalidLength {
                field: "s",
                length: -2
            })
        );
        let mut reader = WireReader::new(&[0x00, 0x02, b'h', b'i']);
        assert_eq!(reader.read_nullable_string_range("s"), Ok(Some(2..4)));
    }

    #[test]
    fn tagged_fields_with_huge_count_end_in_truncation() {
        // count = u32::MAX, then nothing.
        let bytes = [0xff, 0xff, 0xff, 0xff, 0x0f];
        let mut reader = WireReader::new(&bytes);
        assert!(matches!(
            reader.skip_tagged_fields("tags"),
            Err(WireError::Truncated { .. })
        ));
    }
}
