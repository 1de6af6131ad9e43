//! The APIs and version ranges Strom advertises, and the ApiVersions response.
//!
//! # The table
//! [`ADVERTISED_APIS`] lists only APIs Strom implements, with ranges taken
//! from Apache Kafka 3.9/4.0 (clients such as kafka-python guess the broker
//! release from this table, so invented ranges confuse them), clamped to what
//! the `kafka-protocol` 0.18 crate can decode and encode. The crate follows
//! Kafka 4.1 schemas with the KIP-896 minimums and refuses versions below
//! them on both decode and encode.
//!
//! One range starts below the crate's minimum on purpose: Produce is
//! advertised from v0 because librdkafka before 2.11.1 only enables
//! compression when the broker's Produce range includes v0. Kafka 4.0 does the
//! same and rejects v0–2 with UNSUPPORTED_VERSION. The crate cannot decode
//! Produce v0–2 (it starts at v3), so the Produce handler must answer those
//! versions with a hand-written UNSUPPORTED_VERSION response;
//! [`version_support`] reports them as [`VersionSupport::AnsweredByHand`].
//!
//! # The response
//! ApiVersions is encoded by hand, not by the crate, for three reasons:
//! - its response header is always v0 (no tagged fields), even for v3+;
//! - for a request version Strom does not know, the answer is a v0 body with
//!   UNSUPPORTED_VERSION and the ranges, so the client retries lower;
//! - it must never carry tagged fields: librdkafka before 2.2.0 (Debian's
//!   2.0.2, so Debian's kcat) mis-skips them and fails with "Read underflow".
//!   The crate omits default-valued tagged fields today (SupportedFeatures,
//!   FinalizedFeaturesEpoch, FinalizedFeatures, ZkMigrationReady), but
//!   writing the bytes here keeps that guarantee independent of crate
//!   versions, and the tests pin the exact bytes.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::ApiKey;

use super::frame::encode_raw_response_frame;
use super::wire::put_uvarint32;
use super::WireError;

/// Kafka error code UNSUPPORTED_VERSION.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// Highest ApiVersions version Strom answers in kind.
pub const API_VERSIONS_MAX_VERSION: i16 = 4;

/// Response header version of ApiVersions at every request version.
pub const API_VERSIONS_RESPONSE_HEADER_VERSION: i16 = 0;

/// First ApiVersions version with a flexible (compact, tagged) body.
const API_VERSIONS_FIRST_FLEXIBLE_VERSION: i16 = 3;

/// One advertised API and its version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertisedApi {
    /// The API.
    pub api: ApiKey,
    /// Lowest version advertised to clients.
    pub min_version: i16,
    /// Highest version advertised to clients.
    pub max_version: i16,
    /// Lowest version the `kafka-protocol` crate decodes. Versions in
    /// `min_version..min_decoded_version` are advertised only for client
    /// feature detection and answered by hand with UNSUPPORTED_VERSION.
    pub min_decoded_version: i16,
}

const fn api(api: ApiKey, min_version: i16, max_version: i16) -> AdvertisedApi {
    AdvertisedApi {
        api,
        min_version,
        max_version,
        min_decoded_version: min_version,
    }
}

/// Every API Strom serves, sorted by api key.
///
/// Comments give Kafka 4.0's range and the crate's range where Strom differs.
pub const ADVERTISED_APIS: &[AdvertisedApi] = &[
    // Kafka 0–12, crate 3–13. v0–2 answered by hand (see module docs).
    AdvertisedApi {
        api: ApiKey::Produce,
        min_version: 0,
        max_version: 11,
        min_decoded_version: 3,
    },
    // Kafka 4–17, crate 4–18. v13+ needs topic ids; clients fall back to v12.
    api(ApiKey::Fetch, 4, 16),
    // Kafka 1–10, crate 1–10. No v0 (librdkafka and kafkajs start at v1 when offered).
    api(ApiKey::ListOffsets, 1, 8),
    // Kafka 0–13, crate 0–13.
    api(ApiKey::Metadata, 0, 12),
    // Kafka 2–9, crate 2–10.
    api(ApiKey::OffsetCommit, 2, 9),
    // Kafka 1–9, crate 1–10.
    api(ApiKey::OffsetFetch, 1, 9),
    // Kafka 0–6, crate 0–6. v0 required by librdkafka < 2.11.1.
    api(ApiKey::FindCoordinator, 0, 4),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::SyncGroup, 0, 5),
    // Kafka 0–6, crate 0–6.
    api(ApiKey::DescribeGroups, 0, 5),
    // Kafka 0–5, crate 0–5.
    api(ApiKey::ListGroups, 0, 4),
    // Kafka 0–4, crate 0–4.
    api(ApiKey::ApiVersions, 0, API_VERSIONS_MAX_VERSION),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 6),
    api(ApiKey::DeleteRecords, 0, 2),
    // Kafka 0–5, crate 0–6. v0 required by librdkafka < 2.11.1.
    api(ApiKey::InitProducerId, 0, 4),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    // Kafka 0–2, crate 0–2.
    api(ApiKey::AlterConfigs, 0, 2),
    // Kafka 1–4 (v0 removed), crate 1–4.
    api(ApiKey::DescribeLogDirs, 1, 4),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteGroups, 0, 2),
    // Kafka 0–2, crate 0–2. Served by the controller (NOT_CONTROLLER elsewhere).
    api(ApiKey::ElectLeaders, 0, 2),
    // Kafka 0–1, crate 0–1.
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    // Kafka 0–1 / 0, crate 0–1 / 0. v0 is Kafka 2.8's (v1 adds KIP-860's
    // allow_replication_factor_change). Served by the controller.
    api(ApiKey::AlterPartitionReassignments, 0, 0),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::OffsetDelete, 0, 0),
    // Kafka 0–2, crate 0–2.
    api(ApiKey::DescribeCluster, 0, 1),
];

// The table's invariants, checked at compile time: sorted by key without
// duplicates, and every range well formed.
const _: () = {
    let mut index = 0;
    while index < ADVERTISED_APIS.len() {
        let entry = &ADVERTISED_APIS[index];
        assert!(entry.min_version >= 0);
        assert!(entry.min_version <= entry.min_decoded_version);
        assert!(entry.min_decoded_version <= entry.max_version);
        if index > 0 {
            assert!((ADVERTISED_APIS[index - 1].api as i16) < (entry.api as i16));
        }
        index += 1;
    }
};

/// How a request at some (api key, version) must be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSupport {
    /// Advertised, and the crate decodes the request and encodes the response.
    Decoded,
    /// Advertised for client feature detection only; the crate cannot decode
    /// it, so the handler answers UNSUPPORTED_VERSION with hand-written bytes.
    AnsweredByHand,
    /// Not advertised (unknown key, unimplemented API, or version outside
    /// the range). Kafka closes the connection for these.
    NotAdvertised,
}

/// The advertised range for `api`, if Strom implements it.
pub fn advertised(api: ApiKey) -> Option<&'static AdvertisedApi> {
    ADVERTISED_APIS.iter().find(|entry| entry.api == api)
}

/// Classifies a request by its raw api key and version.
pub fn version_support(api_key: i16, api_version: i16) -> VersionSupport {
    let Some(entry) = ApiKey::try_from(api_key).ok().and_then(advertised) else {
        return VersionSupport::NotAdvertised;
    };
    if api_version < entry.min_version || api_version > entry.max_version {
        VersionSupport::NotAdvertised
    } else if api_version < entry.min_decoded_version {
        VersionSupport::AnsweredByHand
    } else {
        VersionSupport::Decoded
    }
}

/// Appends a complete ApiVersions response frame (size prefix, v0 response
/// header, body) answering a request of `request_version`.
///
/// `error_code` is 0 normally, or e.g. INVALID_REQUEST (42) when a v3+
/// request's client software name is malformed. A `request_version` outside
/// `0..=API_VERSIONS_MAX_VERSION` is answered with a v0 body carrying
/// UNSUPPORTED_VERSION regardless of `error_code`, as Kafka does, so the
/// client can read the ranges and retry with a version Strom knows.
pub fn encode_api_versions_response(
    out: &mut BytesMut,
    correlation_id: i32,
    request_version: i16,
    error_code: i16,
    throttle_time_ms: i32,
) -> Result<(), WireError> {
    let (body_version, error_code) = if (0..=API_VERSIONS_MAX_VERSION).contains(&request_version) {
        (request_version, error_code)
    } else {
        (0, UNSUPPORTED_VERSION)
    };
    let mut body = BytesMut::new();
    encode_body(
        &mut body,
        body_version,
        error_code,
        throttle_time_ms,
        ADVERTISED_APIS,
    );
    encode_raw_response_frame(
        out,
        correlation_id,
        API_VERSIONS_RESPONSE_HEADER_VERSION,
        &body,
    )
}

/// Writes an ApiVersions response body of `body_version` (0..=4) listing `apis`.
fn encode_body(
    out: &mut BytesMut,
    body_version: i16,
    error_code: i16,
    throttle_time_ms: i32,
    apis: &[AdvertisedApi],
) {
    assert!((0..=API_VERSIONS_MAX_VERSION).contains(&body_version));
    let flexible = body_version >= API_VERSIONS_FIRST_FLEXIBLE_VERSION;
    // The table is a small constant (asserted at compile time to be sorted);
    // its length always fits both array length encodings.
    let count = u32::try_from(apis.len()).expect("advertised API table is small");
    out.put_i16(error_code);
    if flexible {
        put_uvarint32(out, count + 1); // compact array: length + 1
    } else {
        out.put_i32(i32::try_from(count).expect("advertised API table is small"));
    }
    for entry in apis {
        out.put_i16(entry.api as i16);
        out.put_i16(entry.min_version);
        out.put_i16(entry.max_version);
        if flexible {
            put_uvarint32(out, 0); // no tagged fields per entry
        }
    }
    if body_version >= 1 {
        out.put_i32(throttle_time_ms);
    }
    if flexible {
        // No tagged fields at all: see the module docs on librdkafka 2.0.2.
        put_uvarint32(out, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Decodable, Encodable, Request};

    /// Advertised versions the crate cannot decode; each must be answered by
    /// hand with UNSUPPORTED_VERSION. Adding to this list needs a handler.
    const ANSWERED_BY_HAND: &[(ApiKey, i16)] = &[
        (ApiKey::Produce, 0),
        (ApiKey::Produce, 1),
        (ApiKey::Produce, 2),
    ];

    /// Encodes a default `M` at `version` and decodes it back.
    fn round_trip<M: Encodable + Decodable + Default>(version: i16) -> Result<(), String> {
        let mut buf = BytesMut::new();
        M::default()
            .encode(&mut buf, version)
            .map_err(|error| format!("encode: {error}"))?;
        let mut bytes: Bytes = buf.freeze();
        M::decode(&mut bytes, version).map_err(|error| format!("decode: {error}"))?;
        if bytes.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes left after decode", bytes.len()))
        }
    }

    /// Round-trips the request and the response type of `api` at `version`.
    fn crate_handles(api: ApiKey, version: i16) -> Result<(), String> {
        fn both<R: Request + Default>(api: ApiKey, version: i16) -> Result<(), String>
        where
            R::Response: Default,
        {
            assert_eq!(R::KEY, api as i16, "request type mapped to wrong key");
            round_trip::<R>(version).map_err(|error| format!("request {error}"))?;
            round_trip::<R::Response>(version).map_err(|error| format!("response {error}"))
        }
        match api {
            ApiKey::Produce => both::<ProduceRequest>(api, version),
            ApiKey::Fetch => both::<FetchRequest>(api, version),
            ApiKey::ListOffsets => both::<ListOffsetsRequest>(api, version),
            ApiKey::Metadata => both::<MetadataRequest>(api, version),
            ApiKey::OffsetCommit => both::<OffsetCommitRequest>(api, version),
            ApiKey::OffsetFetch => both::<OffsetFetchRequest>(api, version),
            ApiKey::FindCoordinator => both::<FindCoordinatorRequest>(api, version),
            ApiKey::JoinGroup => both::<JoinGroupRequest>(api, version),
            ApiKey::Heartbeat => both::<HeartbeatRequest>(api, version),
            ApiKey::LeaveGroup => both::<LeaveGroupRequest>(api, version),
            ApiKey::SyncGroup => both::<SyncGroupRequest>(api, version),
            ApiKey::DescribeGroups => both::<DescribeGroupsRequest>(api, version),
            ApiKey::ListGroups => both::<ListGroupsRequest>(api, version),
            ApiKey::ApiVersions => both::<ApiVersionsRequest>(api, version),
            ApiKey::CreateTopics => both::<CreateTopicsRequest>(api, version),
            ApiKey::DeleteTopics => both::<DeleteTopicsRequest>(api, version),
            ApiKey::DeleteRecords => both::<DeleteRecordsRequest>(api, version),
            ApiKey::InitProducerId => both::<InitProducerIdRequest>(api, version),
            ApiKey::OffsetForLeaderEpoch => both::<OffsetForLeaderEpochRequest>(api, version),
            ApiKey::DescribeConfigs => both::<DescribeConfigsRequest>(api, version),
            ApiKey::AlterConfigs => both::<AlterConfigsRequest>(api, version),
            ApiKey::IncrementalAlterConfigs => both::<IncrementalAlterConfigsRequest>(api, version),
            ApiKey::CreatePartitions => both::<CreatePartitionsRequest>(api, version),
            ApiKey::DeleteGroups => both::<DeleteGroupsRequest>(api, version),
            ApiKey::ElectLeaders => both::<ElectLeadersRequest>(api, version),
            ApiKey::DescribeLogDirs => both::<DescribeLogDirsRequest>(api, version),
            ApiKey::AlterPartitionReassignments => {
                both::<AlterPartitionReassignmentsRequest>(api, version)
            }
            ApiKey::ListPartitionReassignments => {
                both::<ListPartitionReassignmentsRequest>(api, version)
            }
            ApiKey::OffsetDelete => both::<OffsetDeleteRequest>(api, version),
            ApiKey::DescribeCluster => both::<DescribeClusterRequest>(api, version),
            other => Err(format!("{other:?} has no mapping in this test")),
        }
    }

    #[test]
    fn every_advertised_version_is_decoded_by_the_crate_or_answered_by_hand() {
        for entry in ADVERTISED_APIS {
            for version in entry.min_version..=entry.max_version {
                let by_hand = ANSWERED_BY_HAND.contains(&(entry.api, version));
                let support = version_support(entry.api as i16, version);
                if by_hand {
                    assert_eq!(support, VersionSupport::AnsweredByHand);
                    assert!(
                        crate_handles(entry.api, version).is_err(),
                        "{:?} v{version} is decodable now; drop it from ANSWERED_BY_HAND",
                        entry.api
                    );
                } else {
                    assert_eq!(
                        support,
                        VersionSupport::Decoded,
                        "{:?} v{version}",
                        entry.api
                    );
                    if let Err(error) = crate_handles(entry.api, version) {
                        panic!("{:?} v{version}: {error}", entry.api);
                    }
                }
            }
        }
    }

    #[test]
    fn version_support_rejects_outside_the_table() {
        assert_eq!(version_support(0, 12), VersionSupport::NotAdvertised);
        assert_eq!(version_support(1, 3), VersionSupport::NotAdvertised);
        assert_eq!(version_support(18, -1), VersionSupport::NotAdvertised);
        assert_eq!(version_support(4, 0), VersionSupport::NotAdvertised); // LeaderAndIsr
        assert_eq!(version_support(9_999, 0), VersionSupport::NotAdvertised);
        assert_eq!(version_support(0, 2), VersionSupport::AnsweredByHand);
        assert_eq!(version_support(0, 3), VersionSupport::Decoded);
    }

    #[test]
    fn librdkafka_feature_detection_versions_are_advertised() {
        for (api, version) in [
            (ApiKey::Produce, 0),
            (ApiKey::Produce, 3),
            (ApiKey::Produce, 7),
            (ApiKey::Fetch, 4),
            (ApiKey::FindCoordinator, 0),
            (ApiKey::InitProducerId, 0),
            (ApiKey::ApiVersions, 0),
        ] {
            assert_ne!(
                version_support(api as i16, version),
                VersionSupport::NotAdvertised,
                "{api:?} v{version}"
            );
        }
    }

    const SMALL_TABLE: &[AdvertisedApi] =
        &[api(ApiKey::Produce, 0, 11), api(ApiKey::ApiVersions, 0, 4)];

    #[test]
    fn v0_body_exact_bytes() {
        let mut out = BytesMut::new();
        encode_body(&mut out, 0, 0, 500, SMALL_TABLE);
        let expected: &[u8] = &[
            0, 0, // error_code
            0, 0, 0, 2, // array length
            0, 0, 0, 0, 0, 11, // Produce 0-11
            0, 18, 0, 0, 0, 4, // ApiVersions 0-4
        ]; // v0: no throttle_time_ms
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn v3_body_exact_bytes_without_tagged_fields() {
        let mut out = BytesMut::new();
        encode_body(&mut out, 3, 0, 500, SMALL_TABLE);
        let expected: &[u8] = &[
            0, 0, // error_code
            3, // compact array: 2 entries + 1
            0, 0, 0, 0, 0, 11, 0, // Produce 0-11, no tags
            0, 18, 0, 0, 0, 4, 0, // ApiVersions 0-4, no tags
            0, 0, 1, 0xf4, // throttle_time_ms = 500
            0,    // no tagged fields (no SupportedFeatures etc.)
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn full_response_frame_v3_uses_v0_header_and_decodes() {
        let mut out = BytesMut::new();
        encode_api_versions_response(&mut out, 0x0a0b_0c0d, 3, 0, 0).expect("encodes");
        let table_bytes = ADVERTISED_APIS.len() * 7;
        let body_bytes = 2 + 1 + table_bytes + 4 + 1;
        let size_bytes = 4 + body_bytes; // v0 header: correlation id only
        assert_eq!(out.len(), 4 + size_bytes);
        assert_eq!(
            &out[..4],
            &u32::try_from(size_bytes).expect("small").to_be_bytes()
        );
        assert_eq!(&out[4..8], &[0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(*out.last().expect("non-empty"), 0, "empty top-level tags");

        let mut body = out.freeze().slice(8..);
        let decoded = ApiVersionsResponse::decode(&mut body, 3).expect("crate decodes");
        assert!(body.is_empty());
        assert_eq!(decoded.error_code, 0);
        assert_eq!(decoded.api_keys.len(), ADVERTISED_APIS.len());
        assert!(decoded.supported_features.is_empty());
        assert_eq!(decoded.finalized_features_epoch, -1);
        assert!(decoded.finalized_features.is_empty());
        assert!(!decoded.zk_migration_ready);
        assert!(decoded.unknown_tagged_fields.is_empty());
    }

    #[test]
    fn unknown_version_gets_v0_body_with_unsupported_version() {
        let mut out = BytesMut::new();
        encode_api_versions_response(&mut out, 7, 5, 0, 0).expect("encodes");
        let mut body = out.freeze().slice(8..);
        assert_eq!(&body[..2], &UNSUPPORTED_VERSION.to_be_bytes());
        let decoded = ApiVersionsResponse::decode(&mut body, 0).expect("v0 body");
        assert!(body.is_empty(), "v0 body has no throttle or tags");
        assert_eq!(decoded.error_code, UNSUPPORTED_VERSION);
        let ranges: Vec<_> = decoded
            .api_keys
            .iter()
            .map(|key| (key.api_key, key.min_version, key.max_version))
            .collect();
        assert!(ranges.contains(&(ApiKey::ApiVersions as i16, 0, 4)));
    }

    #[test]
    fn every_known_version_decodes_with_the_crate() {
        for version in 0..=API_VERSIONS_MAX_VERSION {
            let mut out = BytesMut::new();
            encode_api_versions_response(&mut out, 1, version, 0, 10).expect("encodes");
            let mut body = out.freeze().slice(8..);
            let decoded = ApiVersionsResponse::decode(&mut body, version).expect("decodes");
            assert!(body.is_empty(), "v{version}");
            if version >= 1 {
                assert_eq!(decoded.throttle_time_ms, 10);
            }
        }
    }
}
