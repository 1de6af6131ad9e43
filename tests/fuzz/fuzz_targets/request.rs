//! A client's bytes as the broker receives them: cut into frames by the connection's framing
//! (`decode_request_frame`, with `socket.request.max.bytes`), then each frame decoded by
//! `decode_request` — the function the dispatcher calls — and the record sets of a Produce
//! validated as the produce handler validates them. The input is also decoded as one frame on
//! its own, since most seeds are single frames without their size prefix.
#![no_main]

/// The broker binary's allocator (`src/allocator.rs`, the same file): `kafka-protocol` reserves
/// an array's claimed length before decoding it, and the broker survives a claim of 2^31
/// elements only because this allocator reserves huge allocations without committing them.
/// Fuzzing with the system allocator would report an abort the broker never has.
#[path = "../../../src/allocator.rs"]
#[allow(dead_code)]
mod allocator;

#[global_allocator]
static ALLOCATOR: allocator::ReserveLargeAllocations = allocator::ReserveLargeAllocations;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use strom_engine::batch::{split_record_set, validate_batch};
use strom_server::protocol::frame::decode_request_frame;
use strom_server::protocol::request::{decode_request, RequestBody};

/// Kafka's default `socket.request.max.bytes` (100 MiB) is far above any fuzz input; a small
/// limit also exercises the TooLarge path.
const MAX_REQUEST_BYTES: usize = 1 << 20;

fn decode_one(frame: &Bytes) {
    let Ok((header, body)) = decode_request(frame) else {
        return;
    };
    assert!(
        header.body_offset <= frame.len(),
        "body starts inside the frame"
    );
    if let RequestBody::Produce(produce) = body {
        for topic in &produce.topic_data {
            for partition in &topic.partition_data {
                if let Some(records) = &partition.records {
                    if let Ok(ranges) = split_record_set(records) {
                        for range in ranges {
                            assert!(range.end <= records.len());
                            let _ = validate_batch(&records[range]);
                        }
                    }
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    decode_one(&Bytes::copy_from_slice(data));

    let mut stream = BytesMut::from(data);
    while let Ok(Some(frame)) = decode_request_frame(&mut stream, MAX_REQUEST_BYTES) {
        decode_one(&frame);
    }
});
