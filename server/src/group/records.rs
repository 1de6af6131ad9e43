//! The records a coordinator writes to `__consumer_offsets`, in Kafka's own
//! formats, so that the partition reads the same as a Kafka broker's.
//!
//! Every key and value starts with an INT16 version, then the fields of that
//! version (non-flexible encodings: INT16-prefixed strings, -1 for null;
//! INT32-prefixed bytes; INT32-counted arrays; big-endian integers).
//!
//! | Key version | Record | Key fields | Value written |
//! |---|---|---|---|
//! | 0, 1 | offset commit | group, topic, partition INT32 | OffsetCommitValue v3: offset INT64, leader_epoch INT32, metadata, commit_timestamp INT64 (v1 with expire_timestamp INT64 instead of leader_epoch when the commit set a retention time) |
//! | 2 | group metadata | group | GroupMetadataValue v3: protocol_type, generation INT32, protocol (nullable), leader (nullable), current_state_timestamp INT64, members [member_id, group_instance_id (nullable), client_id, client_host, rebalance_timeout INT32, session_timeout INT32, subscription BYTES, assignment BYTES] |
//!
//! A null value is a tombstone: the offset or the group is gone. Keys with
//! other versions (Kafka's KIP-848 and transaction records) are skipped on
//! replay. Values are decoded in versions 0 to 3; trailing bytes after the
//! known fields are ignored (Kafka adds only "ignorable" fields).

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Key version Strom writes for offset commits (Kafka's current one; 0 is
/// the legacy version with the same layout).
const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version of group metadata records.
const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// OffsetCommitValue version without an expire timestamp.
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// OffsetCommitValue version that carries an expire timestamp.
const OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY: i16 = 1;
/// GroupMetadataValue version Strom writes.
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// One record for `__consumer_offsets`: a key and a value, or no value for a
/// tombstone. The runtime appends it as a Kafka record with this key and
/// value and hands the same bytes back to [`super::GroupCoordinator::replay`]
/// at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The encoded key (version prefix included).
    pub key: Bytes,
    /// The encoded value, or `None` for a tombstone.
    pub value: Option<Bytes>,
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// The bytes ended inside a field.
    #[error("record truncated in {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A length prefix was negative where null is not allowed.
    #[error("invalid length {length} for {field}")]
    InvalidLength {
        /// The field being read.
        field: &'static str,
        /// The length as written.
        length: i32,
    },
    /// A string was not UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// A value version this code cannot read.
    #[error("unsupported {record} value version {version}")]
    UnsupportedValueVersion {
        /// Which kind of value.
        record: &'static str,
        /// The version found.
        version: i16,
    },
    /// A key had bytes left after its last field.
    #[error("{trailing_bytes} bytes after the end of a {record} key")]
    TrailingKeyBytes {
        /// Which kind of key.
        record: &'static str,
        /// How many bytes were left.
        trailing_bytes: usize,
    },
}

/// A decoded key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordKey {
    /// An offset commit for one partition.
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    /// The metadata of one group.
    GroupMetadata { group: String },
    /// A record type this coordinator does not use (skipped on replay).
    Other { version: i16 },
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Set only by OffsetCommit v2–v4 with a retention time.
    pub expire_timestamp_ms: Option<i64>,
}

/// A group's metadata as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown.
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadataValue>,
}

/// One member inside [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberMetadataValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

// ---------------------------------------------------------------- encoding

fn put_string(buf: &mut BytesMut, value: &str) {
    let length =
        i16::try_from(value.len()).expect("callers bound every string in a record to ID_BYTES_MAX");
    buf.put_i16(length);
    buf.put_slice(value.as_bytes());
}

fn put_nullable_string(buf: &mut BytesMut, value: Option<&str>) {
    match value {
        Some(value) => put_string(buf, value),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, value: &[u8]) {
    let length =
        i32::try_from(value.len()).expect("callers bound metadata and assignments below i32::MAX");
    buf.put_i32(length);
    buf.put_slice(value);
}

fn string_size(value: &str) -> usize {
    2 + value.len()
}

/// The key of an offset commit record.
pub(crate) fn offset_commit_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(2 + string_size(group) + string_size(topic) + 4);
    buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
    put_string(&mut buf, group);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

/// The key of a group metadata record.
pub(crate) fn group_metadata_key(group: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(2 + string_size(group));
    buf.put_i16(GROUP_METADATA_KEY_VERSION);
    put_string(&mut buf, group);
    buf.freeze()
}

impl OffsetCommitValue {
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(2 + 8 + 4 + string_size(&self.metadata) + 8 + 8);
        match self.expire_timestamp_ms {
            Some(expire_timestamp_ms) => {
                buf.put_i16(OFFSET_COMMIT_VALUE_VERSION_WITH_EXPIRY);
                buf.put_i64(self.offset);
                put_string(&mut buf, &self.metadata);
                buf.put_i64(self.commit_timestamp_ms);
                buf.put_i64(expire_timestamp_ms);
            }
            None => {
                buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
                buf.put_i64(self.offset);
                buf.put_i32(self.leader_epoch);
                put_string(&mut buf, &self.metadata);
                buf.put_i64(self.commit_timestamp_ms);
            }
        }
        buf.freeze()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut reader = Reader::new(bytes);
        let version = reader.i16("offset commit value version")?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::UnsupportedValueVersion {
                record: "offset commit",
                version,
            });
        }
        let offset = reader.i64("offset")?;
        let leader_epoch = if version >= 3 {
            reader.i32("leader_epoch")?
        } else {
            -1
        };
        let metadata = reader.string("metadata")?;
        let commit_timestamp_ms = reader.i64("commit_timestamp")?;
        let expire_timestamp_ms = if version == 1 {
            Some(reader.i64("expire_timestamp")?).filter(|&ts| ts >= 0)
        } else {
            None
        };
        Ok(Self {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms,
        })
    }
}

impl GroupMetadataValue {
    /// Bytes [`Self::encode`] will produce, without encoding.
    pub(crate) fn encoded_size(&self) -> usize {
        let mut size = 2
            + string_size(&self.protocol_type)
            + 4
            + 2
            + self.protocol.as_deref().map_or(0, str::len)
            + 2
            + self.leader.as_deref().map_or(0, str::len)
            + 8
            + 4;
        for member in &self.members {
            size += string_size(&member.member_id)
                + 2
                + member.group_instance_id.as_deref().map_or(0, str::len)
                + string_size(&member.client_id)
                + string_size(&member.client_host)
                + 4
                + 4
                + 4
                + member.subscription.len()
                + 4
                + member.assignment.len();
        }
        size
    }

    pub(crate) fn encode(&self) -> Bytes {
        let size = self.encoded_size();
        let mut buf = BytesMut::with_capacity(size);
        buf.put_i16(GROUP_METADATA_VALUE_VERSION);
        put_string(&mut buf, &self.protocol_type);
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref());
        put_nullable_string(&mut buf, self.leader.as_deref());
        buf.put_i64(self.current_state_timestamp_ms);
        let count = i32::try_from(self.members.len()).expect("group_max_size bounds members");
        buf.put_i32(count);
        for member in &self.members {
            put_string(&mut buf, &member.member_id);
            put_nullable_string(&mut buf, member.group_instance_id.as_deref());
            put_string(&mut buf, &member.client_id);
            put_string(&mut buf, &member.client_host);
            buf.put_i32(member.rebalance_timeout_ms);
            buf.put_i32(member.session_timeout_ms);
            put_bytes(&mut buf, &member.subscription);
            put_bytes(&mut buf, &member.assignment);
        }
        assert_eq!(buf.len(), size, "encoded_size disagrees with encode");
        buf.freeze()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        let mut reader = Reader::new(bytes);
        let version = reader.i16("group metadata value version")?;
        if !(0..=3).contains(&version) {
            return Err(RecordError::UnsupportedValueVersion {
                record: "group metadata",
                version,
            });
        }
        let protocol_type = reader.string("protocol_type")?;
        let generation = reader.i32("generation")?;
        let protocol = reader.nullable_string("protocol")?;
        let leader = reader.nullable_string("leader")?;
        let current_state_timestamp_ms = if version >= 2 {
            reader.i64("current_state_timestamp")?
        } else {
            -1
        };
        let count = reader.i32("members count")?;
        let count = usize::try_from(count).map_err(|_| RecordError::InvalidLength {
            field: "members",
            length: count,
        })?;
        // Each member takes at least 24 bytes: never reserve more than the
        // bytes present could hold.
        let mut members = Vec::with_capacity(count.min(reader.remaining() / 24));
        for _ in 0..count {
            let member_id = reader.string("member_id")?;
            let group_instance_id = if version >= 3 {
                reader.nullable_string("group_instance_id")?
            } else {
                None
            };
            let client_id = reader.string("client_id")?;
            let client_host = reader.string("client_host")?;
            let rebalance_timeout_ms = if version >= 1 {
                reader.i32("rebalance_timeout")?
            } else {
                -1
            };
            let session_timeout_ms = reader.i32("session_timeout")?;
            let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            };
            let subscription = reader.bytes("subscription")?;
            let assignment = reader.bytes("assignment")?;
            members.push(MemberMetadataValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription,
                assignment,
            });
        }
        Ok(Self {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

/// Decodes a record key.
pub(crate) fn decode_key(bytes: &[u8]) -> Result<RecordKey, RecordError> {
    let mut reader = Reader::new(bytes);
    let version = reader.i16("key version")?;
    let (key, record) = match version {
        0 | 1 => {
            let group = reader.string("group")?;
            let topic = reader.string("topic")?;
            let partition = reader.i32("partition")?;
            (
                RecordKey::OffsetCommit {
                    group,
                    topic,
                    partition,
                },
                "offset commit",
            )
        }
        2 => {
            let group = reader.string("group")?;
            (RecordKey::GroupMetadata { group }, "group metadata")
        }
        version => return Ok(RecordKey::Other { version }),
    };
    if reader.remaining() != 0 {
        return Err(RecordError::TrailingKeyBytes {
            record,
            trailing_bytes: reader.remaining(),
        });
    }
    Ok(key)
}

// ---------------------------------------------------------------- decoding

/// A cursor over untrusted bytes; every read checks the bounds.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn take(&mut self, field: &'static str, count: usize) -> Result<&'a [u8], RecordError> {
        if self.bytes.len() < count {
            return Err(RecordError::Truncated { field });
        }
        let (head, tail) = self.bytes.split_at(count);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, RecordError> {
        let length = self.i16(field)?;
        if length == -1 {
            return Ok(None);
        }
        let length = usize::try_from(length).map_err(|_| RecordError::InvalidLength {
            field,
            length: length.into(),
        })?;
        let raw = self.take(field, length)?;
        let text = std::str::from_utf8(raw).map_err(|_| RecordError::InvalidUtf8 { field })?;
        Ok(Some(text.to_owned()))
    }

    fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        self.nullable_string(field)?
            .ok_or(RecordError::InvalidLength { field, length: -1 })
    }

    fn bytes(&mut self, field: &'static str) -> Result<Bytes, RecordError> {
        let length = self.i32(field)?;
        if length == -1 {
            // Old writers used null for an empty assignment.
            return Ok(Bytes::new());
        }
        let length =
            usize::try_from(length).map_err(|_| RecordError::InvalidLength { field, length })?;
        Ok(Bytes::copy_from_slice(self.take(field, length)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_group() -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".to_owned(),
            generation: 7,
            protocol: Some("range".to_owned()),
            leader: Some("c-1".to_owned()),
            current_state_timestamp_ms: 1_700_000_000_000,
            members: vec![
                MemberMetadataValue {
                    member_id: "c-1".to_owned(),
                    group_instance_id: None,
                    client_id: "c".to_owned(),
                    client_host: "/127.0.0.1".to_owned(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"assign"),
                },
                MemberMetadataValue {
                    member_id: "i-2".to_owned(),
                    group_instance_id: Some("i".to_owned()),
                    client_id: "c".to_owned(),
                    client_host: "/127.0.0.2".to_owned(),
                    rebalance_timeout_ms: 10_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                },
            ],
        }
    }

    #[test]
    fn group_metadata_round_trips_and_size_is_exact() {
        let value = sample_group();
        let bytes = value.encode();
        assert_eq!(bytes.len(), value.encoded_size());
        assert_eq!(GroupMetadataValue::decode(&bytes), Ok(value));
    }

    #[test]
    fn offset_commit_round_trips_with_and_without_expiry() {
        for expire_timestamp_ms in [None, Some(99)] {
            let value = OffsetCommitValue {
                offset: 42,
                leader_epoch: if expire_timestamp_ms.is_some() { -1 } else { 5 },
                metadata: "meta".to_owned(),
                commit_timestamp_ms: 1_000,
                expire_timestamp_ms,
            };
            assert_eq!(OffsetCommitValue::decode(&value.encode()), Ok(value));
        }
    }

    #[test]
    fn keys_round_trip_and_match_kafka_layout() {
        let key = offset_commit_key("g", "t", 3);
        // version 1, "g", "t", partition 3: Kafka's OffsetCommitKey bytes.
        assert_eq!(&key[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(
            decode_key(&key),
            Ok(RecordKey::OffsetCommit {
                group: "g".to_owned(),
                topic: "t".to_owned(),
                partition: 3
            })
        );
        let key = group_metadata_key("g");
        assert_eq!(&key[..], &[0, 2, 0, 1, b'g']);
        assert_eq!(
            decode_key(&key),
            Ok(RecordKey::GroupMetadata {
                group: "g".to_owned()
            })
        );
        assert_eq!(
            decode_key(&[0, 9, 1, 2]),
            Ok(RecordKey::Other { version: 9 })
        );
    }

    #[test]
    fn truncated_and_hostile_input_is_an_error_not_a_panic() {
        let bytes = sample_group().encode();
        for cut in 0..bytes.len() {
            assert!(
                GroupMetadataValue::decode(&bytes[..cut]).is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
        // A member count of i32::MAX with no bytes behind it.
        let mut hostile = BytesMut::new();
        hostile.put_i16(3);
        put_string(&mut hostile, "consumer");
        hostile.put_i32(1);
        hostile.put_i16(-1);
        hostile.put_i16(-1);
        hostile.put_i64(-1);
        hostile.put_i32(i32::MAX);
        assert_eq!(
            GroupMetadataValue::decode(&hostile),
            Err(RecordError::Truncated { field: "member_id" })
        );
        assert!(matches!(
            decode_key(&[0, 2, 0, 1, b'g', 0]),
            Err(RecordError::TrailingKeyBytes { .. })
        ));
        assert!(matches!(
            OffsetCommitValue::decode(&[0, 4]),
            Err(RecordError::UnsupportedValueVersion { version: 4, .. })
        ));
    }
}
