//! Decompression of a batch's records section with a bound on the decompressed size, for
//! recompression (see `recompress`). A few kilobytes of gzip or zstd can claim gigabytes; the
//! broker stops reading at the bound instead of allocating what a producer claims.

use std::io::Read;

use super::topic_config::Codec;

/// The xerial framing Kafka's Java client and librdkafka put around snappy blocks: magic,
/// version and compatible version, then (length, block) pairs.
const SNAPPY_XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const SNAPPY_XERIAL_HEADER_BYTES: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("decompresses to more than {max_bytes} bytes")]
    TooLarge { max_bytes: usize },
    #[error("{0}")]
    Corrupt(String),
}

fn corrupt(error: impl std::fmt::Display) -> DecompressError {
    DecompressError::Corrupt(error.to_string())
}

/// Reads `reader` to its end, refusing more than `max_bytes`.
fn read_bounded(reader: impl Read, max_bytes: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader.take(limit).read_to_end(&mut out).map_err(corrupt)?;
    if out.len() > max_bytes {
        return Err(DecompressError::TooLarge { max_bytes });
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its claimed length against the budget
/// before allocating for it.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, max_bytes: usize) -> Result<(), DecompressError> {
    let claimed = snap::raw::decompress_len(block).map_err(corrupt)?;
    if out.len().saturating_add(claimed) > max_bytes {
        return Err(DecompressError::TooLarge { max_bytes });
    }
    let start = out.len();
    out.resize(start + claimed, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(corrupt)?;
    out.truncate(start + written);
    Ok(())
}

fn snappy(input: &[u8], max_bytes: usize) -> Result<Vec<u8>, DecompressError> {
    let mut out = Vec::new();
    if !input.starts_with(SNAPPY_XERIAL_MAGIC) {
        snappy_block(input, &mut out, max_bytes)?;
        return Ok(out);
    }
    let mut rest = input
        .get(SNAPPY_XERIAL_HEADER_BYTES..)
        .ok_or_else(|| corrupt("snappy framing header cut short"))?;
    while !rest.is_empty() {
        let (length, after) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("snappy block length cut short"))?;
        let length = usize::try_from(u32::from_be_bytes(*length)).map_err(corrupt)?;
        let block = after
            .get(..length)
            .ok_or_else(|| corrupt("snappy block cut short"))?;
        snappy_block(block, &mut out, max_bytes)?;
        rest = &after[length..];
    }
    Ok(out)
}

/// The records section `input`, compressed with `codec`, decompressed: at most `max_bytes`.
pub fn decompress_bounded(
    codec: Codec,
    input: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, DecompressError> {
    match codec {
        Codec::None => read_bounded(input, max_bytes),
        // Several gzip members in a row decompress to their concatenation, as Java's
        // GZIPInputStream reads them.
        Codec::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(input), max_bytes),
        Codec::Snappy => snappy(input, max_bytes),
        Codec::Lz4 => read_bounded(lz4::Decoder::new(input).map_err(corrupt)?, max_bytes),
        Codec::Zstd => read_bounded(
            zstd::stream::read::Decoder::new(input).map_err(corrupt)?,
            max_bytes,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

    fn compressed(codec: Codec, plain: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let write = |buf: &mut BytesMut| {
            buf.extend_from_slice(plain);
            Ok(())
        };
        match codec {
            Codec::None => out.extend_from_slice(plain),
            Codec::Gzip => Gzip::compress(&mut out, write).expect("gzip"),
            Codec::Snappy => Snappy::compress(&mut out, write).expect("snappy"),
            Codec::Lz4 => Lz4::compress(&mut out, write).expect("lz4"),
            Codec::Zstd => Zstd::compress(&mut out, write).expect("zstd"),
        }
        out.to_vec()
    }

    const CODECS: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    #[test]
    fn every_codec_round_trips_within_the_bound_and_is_refused_beyond_it() {
        // Larger than one 32 KiB snappy block, and very compressible.
        let plain = b"strom ".repeat(20_000);
        for codec in CODECS {
            let input = compressed(codec, &plain);
            assert_eq!(
                decompress_bounded(codec, &input, plain.len()).expect("within the bound"),
                plain,
                "{codec:?}"
            );
            assert_eq!(
                decompress_bounded(codec, &input, plain.len() - 1),
                Err(DecompressError::TooLarge {
                    max_bytes: plain.len() - 1
                }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            assert!(
                matches!(
                    decompress_bounded(codec, b"definitely not compressed", 1 << 20),
                    Err(DecompressError::Corrupt(_))
                ),
                "{codec:?}"
            );
        }
    }
}
