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
    let mut records = Vec::new();
    for index in 0..count {
        let mut body = vec![0u8]; // attributes
        put_varlong(&mut body, i64::from(index)); // timestamp delta
        put_varlong(&mut body, i64::from(index)); // offset delta
        put_varlong(&mut body, -1); // null key
        put_varlong(&mut body, value_bytes as i64);
        body.extend((0..value_bytes).map(|i| (i as u8).wrapping_add(index as u8)));
        put_varlong(&mut body, 0); // no headers
        put_varlong(&mut records, body.len() as i64);
        records.extend(body);
    }
    let mut batch = Vec::with_capacity(BATCH_HEADER_BYTES + records.len());
    batch.extend(base_offset.to_be_bytes());
    let batch_length = (BATCH_HEADER_BYTES - LOG_OVERHEAD_BYTES + records.len()) as i32;
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
    batch.extend(records);
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}
