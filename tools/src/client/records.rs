//! Record batches (v2) on the client side: building them for Produce, reading them out of Fetch
//! responses, and Kafka's default key partitioner.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self as cmpr, Compressor};
use kafka_protocol::records::{Compression, RecordBatchDecoder, TimestampType};

use super::errors::{ClientError, Result};

/// Size of the v2 batch header up to and including the record count.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Offset of the length field's end: base offset (8) + batch length (4).
const LOG_OVERHEAD_BYTES: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const LAST_OFFSET_DELTA_OFFSET: usize = 23;
const RECORD_COUNT_OFFSET: usize = 57;
/// Smallest encoded record: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count, one byte each.
const RECORD_MIN_BYTES: usize = 7;
/// Most records accepted in one compressed batch (their count cannot be bounded by the
/// compressed size): `kafka-protocol` reserves memory for the advertised count before decoding.
const COMPRESSED_BATCH_RECORDS_MAX: usize = 1_000_000;

/// Parses a compression name as Kafka spells it (`compression.type`).
pub fn parse_compression(name: &str) -> Result<Compression> {
    match name.to_ascii_lowercase().as_str() {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(ClientError::InvalidArgument(format!(
            "unknown compression '{other}' (expected none, gzip, snappy, lz4 or zstd)"
        ))),
    }
}

pub fn compression_name(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

/// Producer identity stamped on a batch (idempotent producers), or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// Sequence of the batch's first record.
    pub base_sequence: i32,
}

/// One record to put in a batch.
#[derive(Debug, Clone, Default)]
pub struct OutgoingRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp_ms: i64,
}

impl OutgoingRecord {
    /// Encoded size upper bound, for batch.size and buffer accounting.
    pub fn estimated_bytes(&self) -> usize {
        OutgoingRecord::estimate(self.key.as_ref(), self.value.as_ref(), &self.headers)
    }

    /// Encoded size upper bound of a record with these fields (varints counted at their max).
    pub fn estimate(
        key: Option<&Bytes>,
        value: Option<&Bytes>,
        headers: &[(String, Option<Bytes>)],
    ) -> usize {
        let headers: usize = headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 10)
            .sum();
        36 + key.map_or(0, Bytes::len) + value.map_or(0, Bytes::len) + headers
    }
}

/// Zigzag varint length of a signed 64-bit value.
fn varint_len(value: i64) -> usize {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut len = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        len += 1;
    }
    len
}

fn put_varint(buf: &mut BytesMut, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        buf.put_u8((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    buf.put_u8(zigzag as u8);
}

fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// Builds one RecordBatch v2 record by record (as Kafka's `MemoryRecordsBuilder` does): each
/// record is encoded into the batch's buffer when it is added, so a batch holds no per-record
/// objects; `finish` adds the header, compression and CRC.
#[derive(Debug)]
pub struct BatchBuilder {
    records: BytesMut,
    record_count: i32,
    base_timestamp_ms: i64,
    max_timestamp_ms: i64,
}

impl BatchBuilder {
    pub fn with_capacity(bytes: usize) -> BatchBuilder {
        BatchBuilder {
            records: BytesMut::with_capacity(bytes),
            record_count: 0,
            base_timestamp_ms: 0,
            max_timestamp_ms: i64::MIN,
        }
    }

    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// Bytes of the encoded records so far (the batch is `BATCH_HEADER_BYTES` more, before
    /// compression).
    pub fn records_bytes(&self) -> usize {
        self.records.len()
    }

    /// Appends a record; returns its encoded size.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(String, Option<Bytes>)],
        timestamp_ms: i64,
    ) -> usize {
        if self.record_count == 0 {
            self.base_timestamp_ms = timestamp_ms;
        }
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        let timestamp_delta = timestamp_ms.wrapping_sub(self.base_timestamp_ms);
        let offset_delta = i64::from(self.record_count);
        let bytes_field =
            |field: Option<&[u8]>| field.map_or(1, |f| varint_len(len_i64(f.len())) + f.len());
        let mut body = 1
            + varint_len(timestamp_delta)
            + varint_len(offset_delta)
            + bytes_field(key)
            + bytes_field(value);
        body += varint_len(len_i64(headers.len()));
        for (name, header_value) in headers {
            body +=
                varint_len(len_i64(name.len())) + name.len() + bytes_field(header_value.as_deref());
        }
        let total = varint_len(len_i64(body)) + body;
        self.records.reserve(total);
        let before = self.records.len();
        put_varint(&mut self.records, len_i64(body));
        self.records.put_u8(0); // attributes
        put_varint(&mut self.records, timestamp_delta);
        put_varint(&mut self.records, offset_delta);
        let put_bytes = |buf: &mut BytesMut, field: Option<&[u8]>| match field {
            None => put_varint(buf, -1),
            Some(f) => {
                put_varint(buf, len_i64(f.len()));
                buf.extend_from_slice(f);
            }
        };
        put_bytes(&mut self.records, key);
        put_bytes(&mut self.records, value);
        put_varint(&mut self.records, len_i64(headers.len()));
        for (name, header_value) in headers {
            put_bytes(&mut self.records, Some(name.as_bytes()));
            put_bytes(&mut self.records, header_value.as_deref());
        }
        debug_assert_eq!(
            self.records.len() - before,
            total,
            "record size computed and written must agree"
        );
        self.record_count += 1;
        total
    }

    /// The complete batch (base offset 0): header, records compressed with `compression`, CRC.
    pub fn finish(
        &self,
        compression: Compression,
        identity: Option<ProducerIdentity>,
    ) -> Result<Bytes> {
        if self.record_count == 0 {
            return Err(ClientError::InvalidArgument(
                "a batch needs at least one record".into(),
            ));
        }
        let (producer_id, producer_epoch, base_sequence) = identity.map_or((-1, -1, -1), |id| {
            (id.producer_id, id.producer_epoch, id.base_sequence)
        });
        let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + self.records.len());
        out.put_i64(0); // base offset
        out.put_i32(0); // batch length, filled below
        out.put_i32(-1); // partition leader epoch
        out.put_i8(2); // magic
        out.put_u32(0); // crc, filled below
        out.put_i16(compression as i16);
        out.put_i32(self.record_count - 1); // last offset delta
        out.put_i64(self.base_timestamp_ms);
        out.put_i64(self.max_timestamp_ms);
        out.put_i64(producer_id);
        out.put_i16(producer_epoch);
        out.put_i32(base_sequence);
        out.put_i32(self.record_count);
        assert_eq!(out.len(), BATCH_HEADER_BYTES);
        let compress_error = |error: anyhow::Error| {
            ClientError::InvalidArgument(format!(
                "cannot compress a batch with {compression:?}: {error}"
            ))
        };
        let copy = |tmp: &mut BytesMut| {
            tmp.extend_from_slice(&self.records);
            Ok(())
        };
        match compression {
            Compression::None => out.extend_from_slice(&self.records),
            Compression::Gzip => <cmpr::Gzip as Compressor<BytesMut>>::compress(&mut out, copy)
                .map_err(compress_error)?,
            Compression::Snappy => <cmpr::Snappy as Compressor<BytesMut>>::compress(&mut out, copy)
                .map_err(compress_error)?,
            Compression::Lz4 => <cmpr::Lz4 as Compressor<BytesMut>>::compress(&mut out, copy)
                .map_err(compress_error)?,
            Compression::Zstd => <cmpr::Zstd as Compressor<BytesMut>>::compress(&mut out, copy)
                .map_err(compress_error)?,
        }
        let batch_length = i32::try_from(out.len() - LOG_OVERHEAD_BYTES).map_err(|_| {
            ClientError::InvalidArgument(format!("batch of {} bytes is too large", out.len()))
        })?;
        out[8..12].copy_from_slice(&batch_length.to_be_bytes());
        let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(out.freeze())
    }
}

/// Encodes records as one RecordBatch v2 with base offset 0.
pub fn encode_batch(
    records: &[OutgoingRecord],
    compression: Compression,
    identity: Option<ProducerIdentity>,
) -> Result<Bytes> {
    let estimated: usize = records.iter().map(OutgoingRecord::estimated_bytes).sum();
    let mut builder = BatchBuilder::with_capacity(estimated);
    for record in records {
        builder.push(
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
            record.timestamp_ms,
        );
    }
    builder.finish(compression, identity)
}

/// One record read from a partition.
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// What a partition's fetched bytes held.
#[derive(Debug, Default)]
pub struct DecodedRecords {
    pub records: Vec<ConsumerRecord>,
    /// The offset to fetch next: one past the last offset of the last complete batch, or the
    /// requested offset when no complete batch was present.
    pub next_offset: i64,
    /// A batch was cut off by the fetch size limit (the caller may need a larger fetch).
    pub truncated: bool,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(word)
}

/// Decodes the complete batches in `data`, keeping records at offsets `>= from_offset`
/// (a fetch may start in the middle of a batch), skipping control batches, and stopping at a
/// trailing partial batch.
pub fn decode_records(
    topic: &Arc<str>,
    partition: i32,
    mut data: Bytes,
    from_offset: i64,
) -> Result<DecodedRecords> {
    let bad = |reason: String| ClientError::Protocol {
        addr: format!("{topic}-{partition}"),
        reason,
    };
    let mut out = DecodedRecords {
        records: Vec::new(),
        next_offset: from_offset,
        truncated: false,
    };
    while data.len() >= LOG_OVERHEAD_BYTES {
        let base_offset = (&data[0..8]).get_i64();
        let batch_length = (&data[8..12]).get_i32();
        let Ok(batch_length) = usize::try_from(batch_length) else {
            return Err(bad(format!(
                "negative batch length {batch_length} at offset {base_offset}"
            )));
        };
        if batch_length + LOG_OVERHEAD_BYTES < BATCH_HEADER_BYTES {
            return Err(bad(format!(
                "batch at offset {base_offset} is too short ({batch_length} bytes)"
            )));
        }
        if data.len() < LOG_OVERHEAD_BYTES + batch_length {
            out.truncated = true;
            break;
        }
        let mut batch = data.split_to(LOG_OVERHEAD_BYTES + batch_length);
        let magic = batch[MAGIC_OFFSET];
        if magic != 2 {
            return Err(bad(format!(
                "record format v{magic} at offset {base_offset} is not supported (only v2)"
            )));
        }
        let attributes = (&batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2]).get_i16();
        let last_offset_delta =
            (&batch[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]).get_i32();
        let record_count = u32_at(&batch, RECORD_COUNT_OFFSET) as usize;
        let compressed = attributes & 0x7 != 0;
        let records_max = if compressed {
            COMPRESSED_BATCH_RECORDS_MAX
        } else {
            (batch.len() - BATCH_HEADER_BYTES) / RECORD_MIN_BYTES
        };
        if record_count > records_max {
            return Err(bad(format!("batch at offset {base_offset} claims {record_count} records, more than it can hold")));
        }
        let batch_next = base_offset + i64::from(last_offset_delta) + 1;
        let is_control = attributes & (1 << 5) != 0;
        if batch_next <= from_offset || is_control {
            out.next_offset = out.next_offset.max(batch_next);
            continue;
        }
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|error| {
            bad(format!(
                "cannot decode batch at offset {base_offset}: {error}"
            ))
        })?;
        for record in set.records {
            if record.offset < from_offset {
                continue;
            }
            out.records.push(ConsumerRecord {
                topic: topic.clone(),
                partition,
                offset: record.offset,
                timestamp_ms: record.timestamp,
                timestamp_type: record.timestamp_type,
                key: record.key,
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
        out.next_offset = out.next_offset.max(batch_next);
    }
    Ok(out)
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), used by its default partitioner.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len();
    let mut h: u32 = SEED ^ (length as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for a key: `toPositive(murmur2(key)) % n`.
pub fn partition_for_key(key: &[u8], partition_count: i32) -> i32 {
    assert!(partition_count > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partition_count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Vectors from Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        assert!((0..7).contains(&partition_for_key(b"foobar", 7)));
    }

    fn record(value: &str, timestamp_ms: i64) -> OutgoingRecord {
        OutgoingRecord {
            key: Some(Bytes::from(format!("k-{value}"))),
            value: Some(Bytes::from(value.to_string())),
            headers: vec![
                ("h".into(), Some(Bytes::from_static(b"v"))),
                ("n".into(), None),
            ],
            timestamp_ms,
        }
    }

    /// Gives a batch a base offset, as the broker does on append.
    fn at_offset(batch: &Bytes, base_offset: i64) -> Bytes {
        let mut out = BytesMut::from(&batch[..]);
        out[0..8].copy_from_slice(&base_offset.to_be_bytes());
        out.freeze()
    }

    #[test]
    fn batches_round_trip_with_every_compression() {
        let topic: Arc<str> = Arc::from("t");
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let records: Vec<_> = (0..50)
                .map(|i| record(&format!("value-{i}"), 1_000 + i))
                .collect();
            let batch = encode_batch(&records, compression, None).expect("encode");
            // One batch, not one per record.
            assert_eq!(
                RecordBatchDecoder::decode_batch_info(&mut batch.clone())
                    .expect("info")
                    .len(),
                1
            );
            let decoded = decode_records(&topic, 0, at_offset(&batch, 100), 0).expect("decode");
            assert_eq!(decoded.records.len(), 50, "{compression:?}");
            assert_eq!(decoded.next_offset, 150);
            let third = &decoded.records[2];
            assert_eq!(third.offset, 102);
            assert_eq!(third.timestamp_ms, 1_002);
            assert_eq!(third.value.as_deref(), Some(&b"value-2"[..]));
            assert_eq!(third.key.as_deref(), Some(&b"k-value-2"[..]));
            assert_eq!(
                third.headers,
                vec![
                    ("h".to_string(), Some(Bytes::from_static(b"v"))),
                    ("n".to_string(), None)
                ]
            );
        }
    }

    #[test]
    fn idempotent_batches_carry_producer_identity() {
        let records: Vec<_> = (0..3).map(|i| record("x", i)).collect();
        let identity = ProducerIdentity {
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: i32::MAX - 1,
        };
        let batch = encode_batch(&records, Compression::None, Some(identity)).expect("encode");
        let info = RecordBatchDecoder::decode_batch_info(&mut batch.clone()).expect("info");
        assert_eq!(info.len(), 1, "sequence wrap must not split the batch");
        assert_eq!(info[0].producer_id, 42);
        assert_eq!(info[0].producer_epoch, 3);
        assert_eq!(info[0].base_sequence, i32::MAX - 1);
        assert_eq!(info[0].record_count, 3);
    }

    #[test]
    fn decoding_skips_records_below_the_fetch_offset_and_stops_at_partial_batches() {
        let topic: Arc<str> = Arc::from("t");
        let first = at_offset(
            &encode_batch(
                &[record("a", 1), record("b", 2), record("c", 3)],
                Compression::None,
                None,
            )
            .expect("encode"),
            10,
        );
        let second = at_offset(
            &encode_batch(&[record("d", 4)], Compression::None, None).expect("encode"),
            13,
        );
        let mut data = BytesMut::new();
        data.extend_from_slice(&first);
        data.extend_from_slice(&second[..second.len() - 5]);
        let decoded = decode_records(&topic, 3, data.freeze(), 11).expect("decode");
        assert_eq!(
            decoded.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![11, 12]
        );
        assert_eq!(decoded.next_offset, 13);
        assert!(decoded.truncated);
        // Nothing complete: the next offset stays where it was.
        let only_partial = decode_records(&topic, 3, second.slice(..20), 13).expect("decode");
        assert!(only_partial.records.is_empty());
        assert_eq!(only_partial.next_offset, 13);
    }

    #[test]
    fn corrupt_batches_are_errors_not_panics() {
        let topic: Arc<str> = Arc::from("t");
        let good = encode_batch(&[record("a", 1)], Compression::None, None).expect("encode");
        // Flip a payload byte: CRC mismatch.
        let mut flipped = BytesMut::from(&good[..]);
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        assert!(decode_records(&topic, 0, flipped.freeze(), 0).is_err());
        // A record count the batch cannot hold.
        let mut inflated = BytesMut::from(&good[..]);
        inflated[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4]
            .copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_records(&topic, 0, inflated.freeze(), 0).is_err());
        // Negative length.
        let mut negative = BytesMut::from(&good[..]);
        negative[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(decode_records(&topic, 0, negative.freeze(), 0).is_err());
        // Every truncation of a valid batch decodes to nothing, without error.
        for cut in 0..good.len() {
            let decoded = decode_records(&topic, 0, good.slice(..cut), 0)
                .expect("truncated input is not an error");
            assert!(decoded.records.is_empty());
        }
    }

    #[test]
    fn builder_matches_the_crate_encoder() {
        use indexmap::IndexMap;
        use kafka_protocol::protocol::StrBytes;
        use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions};
        // Timestamps in order, so the crate (which bases on the minimum) and Kafka's layout
        // (which bases on the first) agree byte for byte.
        let records: Vec<_> = (0..20)
            .map(|i| record(&"v".repeat(i * 37), 1_000 + i as i64))
            .collect();
        let ours = encode_batch(&records, Compression::None, None).expect("encode");
        let theirs: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, r)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1 + i as i32,
                timestamp: r.timestamp_ms,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                    .collect::<IndexMap<_, _>>(),
            })
            .collect();
        let mut expected = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut expected,
            &theirs,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("crate encode");
        assert_eq!(&ours[..], &expected[..]);
    }

    #[test]
    fn out_of_order_timestamps_and_null_fields_decode() {
        let topic: Arc<str> = Arc::from("t");
        let mut builder = BatchBuilder::with_capacity(0);
        builder.push(None, None, &[], 5_000);
        builder.push(Some(b"k"), Some(b""), &[("h".into(), None)], 4_000);
        builder.push(None, Some(&[0u8; 300]), &[], 9_000);
        assert_eq!(builder.record_count(), 3);
        let batch = builder.finish(Compression::Zstd, None).expect("finish");
        let decoded = decode_records(&topic, 0, batch, 0).expect("decode");
        let stamps: Vec<i64> = decoded.records.iter().map(|r| r.timestamp_ms).collect();
        assert_eq!(stamps, vec![5_000, 4_000, 9_000]);
        assert_eq!(decoded.records[0].key, None);
        assert_eq!(decoded.records[0].value, None);
        assert_eq!(decoded.records[1].value.as_deref(), Some(&b""[..]));
        assert_eq!(decoded.records[2].value.as_ref().map(Bytes::len), Some(300));
    }

    #[test]
    fn varints_follow_the_zigzag_encoding() {
        for (value, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (63, vec![126]),
            (64, vec![128, 1]),
            (-65, vec![129, 1]),
            (300, vec![216, 4]),
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, value);
            assert_eq!(&buf[..], &bytes[..], "{value}");
            assert_eq!(varint_len(value), bytes.len());
        }
        assert_eq!(varint_len(i64::MIN), 10);
    }

    #[test]
    fn compression_names_parse() {
        assert_eq!(parse_compression("ZSTD").ok(), Some(Compression::Zstd));
        assert!(parse_compression("brotli").is_err());
        for c in ["none", "gzip", "snappy", "lz4", "zstd"] {
            assert_eq!(parse_compression(c).map(compression_name).ok(), Some(c));
        }
    }
}
