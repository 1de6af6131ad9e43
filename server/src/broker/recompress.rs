//! Recompression of a produced RecordBatch v2 into a topic's `compression.type` codec.
//!
//! Only the records section (after the 61-byte batch header) is compressed in a v2 batch, and
//! its records carry their own offset and timestamp deltas, keys, values and headers. So a batch
//! is recompressed by decompressing that section with the batch's codec and compressing the same
//! bytes with the topic's: every record stays byte for byte what the producer sent, and the
//! header keeps its base offset, timestamps, producer id, epoch and base sequence, record count
//! and last offset delta. Only the codec bits of the attributes, the batch length and the CRC
//! change. Kafka's broker does the same for a topic whose `compression.type` is not `producer`.
//!
//! The produce path calls this only for a batch whose codec differs from the topic's; batches
//! already in the topic's codec (and every batch of a `producer` topic) are stored as received.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use super::decompress::{decompress_bounded, DecompressError};
use super::topic_config::Codec;

/// Largest records section a batch may decompress to for recompression. Producers compress
/// batches of at most `max.message.bytes` (1 MiB by default); text compresses perhaps 10:1, so
/// this leaves wide room for real batches while a crafted one (gigabytes from a few kilobytes)
/// is refused with MESSAGE_TOO_LARGE before it is allocated. One batch is recompressed at a time
/// per shard.
pub const RECOMPRESS_PLAIN_BYTES_MAX: usize = 64 << 20;

/// Bytes of a v2 batch header, up to the records.
const HEADER_BYTES: usize = 61;
const BATCH_LENGTH_AT: usize = 8;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
/// The CRC covers everything from the attributes on.
const ATTRIBUTES_AT: usize = 21;
const CODEC_BITS: i16 = 0x7;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecompressError {
    #[error("batch too short for a v2 header")]
    Truncated,
    #[error("only record batch v2 can be recompressed (magic {0})")]
    Magic(i8),
    #[error("unknown codec in attributes {0:#x}")]
    UnknownCodec(i16),
    #[error("records do not decompress: {0}")]
    Decompress(String),
    #[error("records decompress to more than {0} bytes")]
    PlainTooLarge(usize),
    #[error("records do not compress: {0}")]
    Compress(String),
    #[error("recompressed batch of {0} bytes exceeds a batch's length field")]
    TooLarge(usize),
}

fn compress(codec: Codec, plain: &[u8], out: &mut BytesMut) -> Result<(), RecompressError> {
    let write = |buf: &mut BytesMut| {
        buf.put_slice(plain);
        Ok(())
    };
    let result = match codec {
        Codec::None => {
            out.put_slice(plain);
            return Ok(());
        }
        Codec::Gzip => Gzip::compress(out, write),
        Codec::Snappy => Snappy::compress(out, write),
        Codec::Lz4 => Lz4::compress(out, write),
        Codec::Zstd => Zstd::compress(out, write),
    };
    result.map_err(|error| RecompressError::Compress(error.to_string()))
}

/// The codec of a v2 batch (its attributes' low bits).
pub fn batch_codec(attributes: i16) -> Result<Codec, RecompressError> {
    Codec::from_attributes(attributes).ok_or(RecompressError::UnknownCodec(attributes))
}

/// `batch` (one v2 RecordBatch whose CRC was checked) with its records in `target`'s codec.
pub fn recompress(batch: &Bytes, target: Codec) -> Result<Bytes, RecompressError> {
    if batch.len() < HEADER_BYTES {
        return Err(RecompressError::Truncated);
    }
    let magic = batch[MAGIC_AT] as i8;
    if magic != 2 {
        return Err(RecompressError::Magic(magic));
    }
    let attributes = i16::from_be_bytes([batch[ATTRIBUTES_AT], batch[ATTRIBUTES_AT + 1]]);
    let source = batch_codec(attributes)?;
    let plain = decompress_bounded(source, &batch[HEADER_BYTES..], RECOMPRESS_PLAIN_BYTES_MAX)
        .map_err(|error| match error {
            DecompressError::TooLarge { max_bytes } => RecompressError::PlainTooLarge(max_bytes),
            DecompressError::Corrupt(reason) => RecompressError::Decompress(reason),
        })?;
    let mut out = BytesMut::with_capacity(HEADER_BYTES + plain.len() / 2);
    out.put_slice(&batch[..HEADER_BYTES]);
    compress(target, &plain, &mut out)?;
    let batch_length = i32::try_from(out.len() - BATCH_LENGTH_AT - 4)
        .map_err(|_| RecompressError::TooLarge(out.len()))?;
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = (attributes & !CODEC_BITS) | target as i16;
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_AT..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn records() -> Vec<Record> {
        (0..20)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 4242,
                producer_epoch: 3,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: 17 + i as i32,
                timestamp: 1_700_000_000_000 + i * 7,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(format!("value {i} ").repeat(10))),
                headers: IndexMap::from([(
                    StrBytes::from_static_str("h"),
                    Some(Bytes::from(format!("{i}"))),
                )]),
            })
            .collect()
    }

    fn encode(compression: Compression) -> Bytes {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf.freeze()
    }

    #[test]
    fn every_codec_pair_keeps_every_record_and_header_field() {
        let codecs = [
            (Codec::None, Compression::None),
            (Codec::Gzip, Compression::Gzip),
            (Codec::Snappy, Compression::Snappy),
            (Codec::Lz4, Compression::Lz4),
            (Codec::Zstd, Compression::Zstd),
        ];
        for (_, from) in codecs {
            let original = encode(from);
            for (target, expected) in codecs {
                let recompressed = recompress(&original, target).expect("recompress");
                // Untouched header fields: base offset, leader epoch, magic, and from the last
                // offset delta through the record count.
                assert_eq!(recompressed[..8], original[..8]);
                assert_eq!(recompressed[12..17], original[12..17]);
                assert_eq!(recompressed[23..HEADER_BYTES], original[23..HEADER_BYTES]);
                let attributes = i16::from_be_bytes([recompressed[21], recompressed[22]]);
                assert_eq!(attributes & CODEC_BITS, target as i16);
                let mut input = recompressed.clone();
                let decoded = RecordBatchDecoder::decode(&mut input).expect("decodes, CRC ok");
                assert_eq!(decoded.compression, expected);
                assert_eq!(decoded.records, records(), "{from:?} -> {target:?}");
            }
        }
    }

    #[test]
    fn damaged_or_foreign_batches_are_refused() {
        let original = encode(Compression::Gzip);
        assert_eq!(
            recompress(&original.slice(..40), Codec::Lz4),
            Err(RecompressError::Truncated)
        );
        let mut old_magic = BytesMut::from(&original[..]);
        old_magic[MAGIC_AT] = 1;
        assert_eq!(
            recompress(&old_magic.freeze(), Codec::Lz4),
            Err(RecompressError::Magic(1))
        );
        let mut garbage = BytesMut::from(&original[..HEADER_BYTES]);
        garbage.put_slice(b"not gzip at all");
        assert!(matches!(
            recompress(&garbage.freeze(), Codec::Lz4),
            Err(RecompressError::Decompress(_))
        ));
    }
}
