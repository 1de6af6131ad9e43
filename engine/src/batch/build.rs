//! Building RecordBatch v2 bytes, as a producer does: for tests and benchmarks of the engine.

use super::header::{BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES};

/// Appends `value` as a zig-zag varint.
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        if zigzag == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A record's key and value for [`build_keyed_batch`]; `None` is null.
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Builds a valid uncompressed batch of `count` records with `value_bytes`-byte values and
/// no keys, as a producer would (used by tests and benchmarks).
pub fn build_batch(
    base_offset: i64,
    count: i32,
    value_bytes: usize,
    timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|index| {
            (0..value_bytes)
                .map(|i| (i as u8).wrapping_add(index as u8))
                .collect()
        })
        .collect();
    let records: Vec<KeyValue<'_>> = values
        .iter()
        .map(|value| (None, Some(value.as_slice())))
        .collect();
    encode_batch(
        base_offset,
        &records,
        timestamp_ms,
        producer_id,
        producer_epoch,
        base_sequence,
    )
}

/// Builds a valid uncompressed batch of keyed records, `(key, value)` with `None` for null
/// (a null value is a tombstone on a compacted topic). Record `i` has timestamp
/// `timestamp_ms + i`. No producer id.
pub fn build_keyed_batch(records: &[KeyValue<'_>], timestamp_ms: i64) -> Vec<u8> {
    encode_batch(0, records, timestamp_ms, -1, -1, -1)
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            put_varlong(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
        None => put_varlong(out, -1),
    }
}

fn encode_batch(
    base_offset: i64,
    records: &[KeyValue<'_>],
    timestamp_ms: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let count = i32::try_from(records.len()).expect("record count fits i32");
    let mut encoded = Vec::new();
    for (index, (key, value)) in records.iter().enumerate() {
        let mut body = vec![0u8]; // attributes
        put_varlong(&mut body, index as i64); // timestamp delta
        put_varlong(&mut body, index as i64); // offset delta
        put_nullable(&mut body, *key);
        put_nullable(&mut body, *value);
        put_varlong(&mut body, 0); // no headers
        put_varlong(&mut encoded, body.len() as i64);
        encoded.extend(body);
    }
    let mut batch = Vec::with_capacity(BATCH_HEADER_BYTES + encoded.len());
    batch.extend(base_offset.to_be_bytes());
    let batch_length = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + encoded.len()) as i32;
    batch.extend(batch_length.to_be_bytes());
    batch.extend(0i32.to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend(0u32.to_be_bytes()); // crc, filled below
    batch.extend(0i16.to_be_bytes()); // attributes
    batch.extend((count - 1).to_be_bytes());
    batch.extend(timestamp_ms.to_be_bytes());
    batch.extend((timestamp_ms + i64::from(count - 1)).to_be_bytes());
    batch.extend(producer_id.to_be_bytes());
    batch.extend(producer_epoch.to_be_bytes());
    batch.extend(base_sequence.to_be_bytes());
    batch.extend(count.to_be_bytes());
    batch.extend(encoded);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}
