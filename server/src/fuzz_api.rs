//! Entry points for the fuzz targets in `tests/fuzz/` into decoders that are crate-private.
//!
//! Each function runs the real decoder on untrusted bytes and checks what it accepted: a value
//! the decoder returns must survive the encoder and decode to the same value again (the encoder
//! is the one the broker writes with, so a value it cannot write back was not valid). A broken
//! promise panics, which is what a fuzzer reports. Not part of the broker's API.

use std::collections::BTreeSet;
use std::path::Path;

use bytes::Bytes;

use crate::coordination::node::Node;
use crate::coordination::snapshot;
use crate::group::records::{
    decode_key, GroupMetadataValue, OffsetCommitValue, RecordError, RecordKey,
};

/// Decodes `bytes` as a coordination snapshot file; on success returns the node count after
/// checking that encoding the nodes again gives back exactly `bytes` (the format has one
/// encoding per state, so anything else means the decoder accepted what it should not).
pub fn coordination_snapshot(bytes: &[u8]) -> Option<usize> {
    let bytes = Bytes::copy_from_slice(bytes);
    let (last_txid, nodes) = snapshot::decode(&bytes, Path::new("fuzz")).ok()?;
    let stored: Vec<(String, Node)> = nodes
        .iter()
        .map(|node| {
            (
                node.path.clone(),
                Node {
                    data: node.data.clone(),
                    version: node.version,
                    cversion: node.cversion,
                    created_txid: node.created_txid,
                    modified_txid: node.modified_txid,
                    ephemeral_owner: None,
                    children: BTreeSet::new(),
                },
            )
        })
        .collect();
    let encoded = snapshot::encode(
        last_txid,
        stored.iter().map(|(path, node)| (path.as_str(), node)),
    );
    assert_eq!(
        encoded,
        &bytes[..],
        "a decoded snapshot encodes back to its own bytes"
    );
    Some(nodes.len())
}

/// Decodes a `__consumer_offsets` record (key, then the value its key announces) as the group
/// coordinator does on load; a decoded value must round-trip through its encoder.
pub fn group_record(key: &[u8], value: &[u8]) -> Result<(), RecordError> {
    match decode_key(key)? {
        RecordKey::OffsetCommit { .. } => {
            let decoded = OffsetCommitValue::decode(value)?;
            let again = OffsetCommitValue::decode(&decoded.encode())
                .expect("an encoded offset commit value decodes");
            assert_eq!(
                normalize_offset(decoded),
                normalize_offset(again),
                "offset commit value round trip"
            );
        }
        RecordKey::GroupMetadata { .. } => {
            let decoded = GroupMetadataValue::decode(value)?;
            let again = GroupMetadataValue::decode(&decoded.encode())
                .expect("an encoded group metadata value decodes");
            assert_eq!(decoded, again, "group metadata value round trip");
        }
        RecordKey::Other { .. } => {}
    }
    Ok(())
}

/// The fields an offset commit value keeps whatever version it was read in: the encoder
/// writes the leader epoch only in the version without an expiry.
fn normalize_offset(mut value: OffsetCommitValue) -> OffsetCommitValue {
    if value.expire_timestamp_ms.is_some() {
        value.leader_epoch = -1;
    }
    value
}
