//! Encoding a Fetch response (v4–v16) around file ranges, so record bytes go from the page
//! cache to the socket untouched. `kafka-protocol` can only encode records from memory, so the
//! framing here follows Kafka's FetchResponse schema by hand:
//!
//! ```text
//! throttle_time_ms i32 | error_code i16 (v7+) | session_id i32 (v7+)
//! responses: [ topic: string (v<13) or topic_id: uuid (v13+)
//!              partitions: [ partition_index i32, error_code i16, high_watermark i64,
//!                            last_stable_offset i64, log_start_offset i64 (v5+),
//!                            aborted_transactions: nullable array (null here),
//!                            preferred_read_replica i32 (v11+), records: bytes,
//!                            diverging_epoch (v12+, tagged field 0: epoch i32, end_offset i64) ] ]
//! ```
//! v12+ is flexible: compact arrays/strings/bytes (unsigned varint length + 1) and a tagged-field
//! section after every struct and after the response header (empty, except a replica fetch's
//! diverging epoch).

use bytes::{BufMut, Bytes, BytesMut};
use strom_engine::log::FileRange;

use crate::network::Chunk;

pub struct PartitionOut {
    pub partition_index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub records: Option<FileRange>,
    /// For a replica fetch whose last fetched epoch the leader's log does not hold as the
    /// follower does (KIP-320): (the leader's largest epoch <= it, where that epoch ends).
    pub diverging_epoch: Option<(i32, i64)>,
}

/// Tag of `diverging_epoch` in a v12+ FetchResponse partition.
const DIVERGING_EPOCH_TAG: u64 = 0;
/// Encoded size of the diverging epoch struct: epoch i32, end_offset i64, empty tagged fields.
const DIVERGING_EPOCH_BYTES: u64 = 4 + 8 + 1;

pub struct TopicOut {
    pub name: String,
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<PartitionOut>,
}

fn put_uvarint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn put_array_len(out: &mut BytesMut, len: usize, flexible: bool) {
    if flexible {
        put_uvarint(out, len as u64 + 1);
    } else {
        out.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
    }
}

fn put_string(out: &mut BytesMut, text: &str, flexible: bool) {
    if flexible {
        put_uvarint(out, text.len() as u64 + 1);
    } else {
        out.put_i16(i16::try_from(text.len()).unwrap_or(i16::MAX));
    }
    out.put_slice(text.as_bytes());
}

/// Builds the whole response frame (size prefix, header, body) as chunks.
pub fn encode_fetch_response(
    correlation_id: i32,
    version: i16,
    error_code: i16,
    topics: Vec<TopicOut>,
) -> Vec<Chunk> {
    assert!(
        (4..=16).contains(&version),
        "fetch v{version} is not encoded here"
    );
    let flexible = version >= 12;
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(correlation_id);
    if flexible {
        put_uvarint(&mut out, 0); // response header v1 tagged fields
    }
    out.put_i32(0); // throttle_time_ms
    if version >= 7 {
        out.put_i16(error_code);
        out.put_i32(0); // session_id: fetch sessions are not kept; every fetch is a full fetch
    }
    put_array_len(&mut out, topics.len(), flexible);
    for topic in topics {
        if version >= 13 {
            out.put_slice(topic.topic_id.as_bytes());
        } else {
            put_string(&mut out, &topic.name, flexible);
        }
        put_array_len(&mut out, topic.partitions.len(), flexible);
        for partition in topic.partitions {
            out.put_i32(partition.partition_index);
            out.put_i16(partition.error_code);
            out.put_i64(partition.high_watermark);
            out.put_i64(partition.last_stable_offset);
            if version >= 5 {
                out.put_i64(partition.log_start_offset);
            }
            // aborted_transactions: null (no transactions).
            if flexible {
                put_uvarint(&mut out, 0);
            } else {
                out.put_i32(-1);
            }
            if version >= 11 {
                out.put_i32(-1); // preferred_read_replica
            }
            let records_len = partition
                .records
                .as_ref()
                .map_or(0, |range| range.len_bytes);
            // Records are never null: librdkafka rejects null records in v12+.
            if flexible {
                put_uvarint(&mut out, records_len as u64 + 1);
            } else {
                out.put_i32(i32::try_from(records_len).unwrap_or(i32::MAX));
            }
            if let Some(range) = partition.records {
                chunks.push(Chunk::Bytes(out.split().freeze()));
                chunks.push(Chunk::File(range));
            }
            if flexible {
                match partition.diverging_epoch {
                    Some((epoch, end_offset)) => {
                        put_uvarint(&mut out, 1); // one tagged field
                        put_uvarint(&mut out, DIVERGING_EPOCH_TAG);
                        put_uvarint(&mut out, DIVERGING_EPOCH_BYTES);
                        out.put_i32(epoch);
                        out.put_i64(end_offset);
                        put_uvarint(&mut out, 0); // the struct's own tagged fields
                    }
                    None => put_uvarint(&mut out, 0), // partition tagged fields
                }
            }
        }
        if flexible {
            put_uvarint(&mut out, 0); // topic tagged fields
        }
    }
    if flexible {
        put_uvarint(&mut out, 0); // response tagged fields
    }
    chunks.push(Chunk::Bytes(out.freeze()));
    let body_bytes: usize = chunks.iter().map(Chunk::len_bytes).sum();
    let size = i32::try_from(body_bytes).unwrap_or(i32::MAX);
    chunks.insert(0, Chunk::Bytes(Bytes::copy_from_slice(&size.to_be_bytes())));
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Decodable;

    /// Encodes with in-memory "records" standing in for file ranges, then checks that
    /// kafka-protocol's own decoder reads back every field, for every version.
    #[test]
    fn the_crate_decodes_what_we_encode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("records");
        let records = b"0123456789abcdef".to_vec();
        std::fs::write(&path, &records).expect("write");
        let file = strom_engine::io::SharedFile::new(std::fs::File::open(&path).expect("open"));
        for version in 4..=16i16 {
            let range = FileRange {
                file: file.clone(),
                position: 2,
                len_bytes: 10,
                first_offset: 0,
                next_offset: 1,
            };
            let topics = vec![TopicOut {
                name: "orders".into(),
                topic_id: uuid::Uuid::from_u128(7),
                partitions: vec![
                    PartitionOut {
                        partition_index: 0,
                        error_code: 0,
                        high_watermark: 10,
                        last_stable_offset: 10,
                        log_start_offset: 2,
                        records: Some(range),
                        diverging_epoch: None,
                    },
                    PartitionOut {
                        partition_index: 1,
                        error_code: 1,
                        high_watermark: 5,
                        last_stable_offset: 5,
                        log_start_offset: 0,
                        records: None,
                        diverging_epoch: (version >= 12).then_some((3, 17)),
                    },
                ],
            }];
            let chunks = encode_fetch_response(42, version, 0, topics);
            let mut frame = Vec::new();
            for chunk in chunks {
                match chunk {
                    Chunk::Bytes(bytes) => frame.extend_from_slice(&bytes),
                    Chunk::File(range) => frame.extend_from_slice(
                        &records
                            [range.position as usize..range.position as usize + range.len_bytes],
                    ),
                }
            }
            let size = i32::from_be_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
            assert_eq!(size, frame.len() - 4, "v{version} size prefix");
            assert_eq!(
                i32::from_be_bytes(frame[4..8].try_into().expect("4 bytes")),
                42
            );
            let header_bytes = if version >= 12 { 5 } else { 4 };
            let mut body = Bytes::copy_from_slice(&frame[4 + header_bytes..]);
            let decoded = FetchResponse::decode(&mut body, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert!(body.is_empty(), "v{version}: trailing bytes");
            let topic = &decoded.responses[0];
            if version >= 13 {
                assert_eq!(topic.topic_id, uuid::Uuid::from_u128(7));
            } else {
                assert_eq!(topic.topic.as_str(), "orders");
            }
            assert_eq!(
                topic.partitions[0].records.as_deref(),
                Some(&records[2..12])
            );
            assert_eq!(topic.partitions[0].high_watermark, 10);
            assert_eq!(topic.partitions[1].error_code, 1);
            let diverging = &topic.partitions[1].diverging_epoch;
            if version >= 12 {
                assert_eq!(
                    (diverging.epoch, diverging.end_offset),
                    (3, 17),
                    "v{version}"
                );
            }
            assert_eq!(
                topic.partitions[0].diverging_epoch.epoch, -1,
                "v{version}: absent means -1"
            );
            assert_eq!(
                topic.partitions[1].records.as_deref().map(<[u8]>::len),
                Some(0),
                "v{version}: empty, not null"
            );
        }
    }
}
