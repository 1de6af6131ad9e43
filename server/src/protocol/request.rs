//! Decoding one request frame into a typed request, with no broker context.
//!
//! [`decode_request`] is everything the broker does with a received frame before a handler
//! runs: parse the header, check the version against the advertised table, and decode the body
//! with `kafka-protocol`. The dispatcher (`handlers::dispatch`) calls it and only routes the
//! result, so the fuzz target `tests/fuzz/fuzz_targets/request.rs` drives the exact code a
//! client's bytes reach.

use bytes::Bytes;
use kafka_protocol::messages::{self as m, ApiKey};
use kafka_protocol::protocol::Decodable;

use super::api_versions::{version_support, VersionSupport};
use super::request_header::{parse_request_header, parse_request_prefix, RequestHeader};
use super::WireError;

/// Generates [`RequestBody`] (one variant per decoded api, named as the [`ApiKey`] variant) and
/// the body decoder, so the two can never disagree.
macro_rules! decoded_requests {
    ($($api:ident => $message:ty,)*) => {
        /// A request body ready for its handler.
        #[derive(Debug)]
        pub enum RequestBody {
            /// ApiVersions, answered from the header alone (at any version, so a client asking
            /// with a version Strom does not know gets UNSUPPORTED_VERSION and can retry lower).
            ApiVersions,
            /// An advertised version the crate cannot decode: the handler answers it by hand.
            AnsweredByHand(ApiKey),
            $(
                #[allow(missing_docs)]
                $api(Box<$message>),
            )*
        }

        fn decode_body(
            api: ApiKey,
            frame: &Bytes,
            header: &RequestHeader,
        ) -> Result<RequestBody, RequestError> {
            match api {
                $(ApiKey::$api => decode::<$message>(frame, header)
                    .map(|body| RequestBody::$api(Box::new(body))),)*
                other => Err(RequestError::NotServed(other)),
            }
        }
    };
}

decoded_requests! {
    Produce => m::ProduceRequest,
    Fetch => m::FetchRequest,
    ListOffsets => m::ListOffsetsRequest,
    Metadata => m::MetadataRequest,
    OffsetForLeaderEpoch => m::OffsetForLeaderEpochRequest,
    CreateTopics => m::CreateTopicsRequest,
    DeleteTopics => m::DeleteTopicsRequest,
    CreatePartitions => m::CreatePartitionsRequest,
    DescribeConfigs => m::DescribeConfigsRequest,
    DeleteRecords => m::DeleteRecordsRequest,
    DescribeCluster => m::DescribeClusterRequest,
    InitProducerId => m::InitProducerIdRequest,
    FindCoordinator => m::FindCoordinatorRequest,
    JoinGroup => m::JoinGroupRequest,
    SyncGroup => m::SyncGroupRequest,
    Heartbeat => m::HeartbeatRequest,
    LeaveGroup => m::LeaveGroupRequest,
    OffsetCommit => m::OffsetCommitRequest,
    OffsetFetch => m::OffsetFetchRequest,
    OffsetDelete => m::OffsetDeleteRequest,
    DescribeGroups => m::DescribeGroupsRequest,
    ListGroups => m::ListGroupsRequest,
    DeleteGroups => m::DeleteGroupsRequest,
    ElectLeaders => m::ElectLeadersRequest,
    AlterConfigs => m::AlterConfigsRequest,
    IncrementalAlterConfigs => m::IncrementalAlterConfigsRequest,
    DescribeLogDirs => m::DescribeLogDirsRequest,
    AlterPartitionReassignments => m::AlterPartitionReassignmentsRequest,
    ListPartitionReassignments => m::ListPartitionReassignmentsRequest,
}

/// Why a frame is not served. Every variant closes the connection, as in Kafka.
#[derive(Debug, PartialEq)]
pub enum RequestError {
    /// The header does not parse; `api_key`, `api_version` and `correlation_id` are known when
    /// the first 8 bytes are there.
    Header {
        error: WireError,
        prefix: Option<super::request_header::RequestPrefix>,
    },
    /// An api key or version Strom does not advertise.
    Unsupported { api_key: i16, api_version: i16 },
    /// Advertised (ApiVersions lists it) but no handler serves it.
    NotServed(ApiKey),
    /// The body does not parse.
    Body(String),
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::Header { error, .. } => write!(f, "unparseable request header: {error}"),
            RequestError::Unsupported {
                api_key,
                api_version,
            } => write!(f, "unsupported api key {api_key} version {api_version}"),
            RequestError::NotServed(api) => write!(f, "api {api:?} is not served"),
            RequestError::Body(reason) => f.write_str(reason),
        }
    }
}

/// Decodes one request frame (without its size prefix).
///
/// The header is returned with every decoded body: handlers need the correlation id, the
/// version and the client id.
pub fn decode_request(frame: &Bytes) -> Result<(RequestHeader, RequestBody), RequestError> {
    let header = parse_request_header(frame).map_err(|error| RequestError::Header {
        error,
        prefix: parse_request_prefix(frame).ok(),
    })?;
    if header.api == Some(ApiKey::ApiVersions) {
        return Ok((header, RequestBody::ApiVersions));
    }
    let api = match (
        version_support(header.api_key, header.api_version),
        header.api,
    ) {
        (VersionSupport::NotAdvertised, _) | (_, None) => {
            return Err(RequestError::Unsupported {
                api_key: header.api_key,
                api_version: header.api_version,
            })
        }
        (VersionSupport::AnsweredByHand, Some(api)) => {
            return Ok((header, RequestBody::AnsweredByHand(api)))
        }
        (VersionSupport::Decoded, Some(api)) => api,
    };
    let body = decode_body(api, frame, &header)?;
    Ok((header, body))
}

/// Decodes a request body with the crate; a body that does not parse closes the connection.
fn decode<T: Decodable>(frame: &Bytes, header: &RequestHeader) -> Result<T, RequestError> {
    let mut body = frame.slice(header.body_offset.min(frame.len())..);
    T::decode(&mut body, header.api_version).map_err(|error| {
        RequestError::Body(format!(
            "malformed {:?} v{} request: {error}",
            header.api, header.api_version
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::Encodable;

    fn frame_of<M: Encodable>(api: ApiKey, version: i16, body: &M) -> Bytes {
        let header = m::RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(5);
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .expect("header encodes");
        body.encode(&mut buf, version).expect("body encodes");
        buf.freeze()
    }

    #[test]
    fn a_metadata_request_decodes_to_its_variant() {
        let request = m::MetadataRequest::default().with_topics(Some(vec![
            m::metadata_request::MetadataRequestTopic::default().with_name(Some(
                m::TopicName::from(kafka_protocol::protocol::StrBytes::from_static_str("t")),
            )),
        ]));
        let (header, body) =
            decode_request(&frame_of(ApiKey::Metadata, 9, &request)).expect("decodes");
        assert_eq!(header.correlation_id, 5);
        match body {
            RequestBody::Metadata(decoded) => assert_eq!(*decoded, request),
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn api_versions_at_an_unknown_version_is_still_answered() {
        let frame = frame_of(ApiKey::ApiVersions, 3, &m::ApiVersionsRequest::default());
        let mut raw = BytesMut::from(&frame[..]);
        raw[2..4].copy_from_slice(&99i16.to_be_bytes());
        let (_, body) = decode_request(&raw.freeze()).expect("answered");
        assert!(matches!(body, RequestBody::ApiVersions));
    }

    #[test]
    fn unknown_keys_versions_and_bad_bodies_are_errors() {
        let mut raw = BytesMut::new();
        raw.put_i16(31_000);
        raw.put_i16(0);
        raw.put_i32(1);
        raw.put_i16(-1);
        assert!(matches!(
            decode_request(&raw.freeze()),
            Err(RequestError::Unsupported {
                api_key: 31_000,
                ..
            })
        ));
        let truncated = frame_of(ApiKey::Heartbeat, 4, &m::HeartbeatRequest::default());
        let cut = truncated.slice(..truncated.len() - 3);
        assert!(matches!(decode_request(&cut), Err(RequestError::Body(_))));
        assert!(matches!(
            decode_request(&Bytes::from_static(&[0, 3])),
            Err(RequestError::Header { prefix: None, .. })
        ));
    }
}
