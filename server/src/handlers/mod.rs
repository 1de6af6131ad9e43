//! One module per Kafka API. [`dispatch`] parses the header, checks the version against the
//! advertised table, decodes the body with `kafka-protocol`, and calls the handler.
//!
//! Ordering: `dispatch` is awaited by the connection's dispatcher before it dispatches the next
//! request (the socket reader reads ahead meanwhile, into a bounded queue), so anything a handler
//! does before returning its [`ResponseFuture`] happens in request order
//! (Produce queues its appends there). The returned future completes the response and may run
//! concurrently with later requests of the same connection.

mod alter_configs;
mod alter_partition_reassignments;
mod api_versions;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod elect_leaders;
mod error_codes;
mod fetch;
mod find_coordinator;
mod group_route;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
pub mod refusal_log;
mod sync_group;
mod topic_admin;

pub use error_codes::{append_error_code, engine_error_code, topic_error_code, ErrorCode};
pub use group_route::now_ms;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::broker::shard::ShardState;
use crate::network::Response;
use crate::protocol::api_versions::{version_support, VersionSupport};
use crate::protocol::frame::encode_response_frame;
use crate::protocol::request_header::{parse_request_header, parse_request_prefix, RequestHeader};

/// The completion of one request.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Response>>>;

/// What a handler knows about the request it serves.
pub struct RequestContext {
    pub shard: Rc<ShardState>,
    pub header: RequestHeader,
    pub peer: SocketAddr,
}

impl RequestContext {
    pub fn version(&self) -> i16 {
        self.header.api_version
    }

    /// Encodes `body` as this request's response (header version from the api and version).
    pub fn respond<M: Encodable>(&self, body: &M) -> Response {
        let Some(api) = self.header.api else {
            return Response::Close("response to an unknown api".into());
        };
        let header_version = api.response_header_version(self.header.api_version);
        let mut out = BytesMut::new();
        match encode_response_frame(
            &mut out,
            self.header.correlation_id,
            header_version,
            body,
            self.header.api_version,
        ) {
            Ok(()) => Response::bytes(out.freeze()),
            Err(error) => {
                tracing::error!(api = ?api, version = self.header.api_version, %error, "could not encode a response");
                Response::Close(format!("response encoding failed: {error}"))
            }
        }
    }
}

fn ready(response: Response) -> ResponseFuture {
    Box::pin(std::future::ready(response))
}

fn close(reason: String) -> ResponseFuture {
    ready(Response::Close(reason))
}

/// Decodes a request body; a body that does not parse closes the connection, as in Kafka.
fn decode<T: Decodable>(frame: &Bytes, header: &RequestHeader) -> Result<T, String> {
    let mut body = frame.slice(header.body_offset.min(frame.len())..);
    T::decode(&mut body, header.api_version).map_err(|error| {
        format!(
            "malformed {:?} v{} request: {error}",
            header.api, header.api_version
        )
    })
}

/// Routes one request frame to its handler.
pub async fn dispatch(shard: &Rc<ShardState>, frame: Bytes, peer: SocketAddr) -> ResponseFuture {
    let header = match parse_request_header(&frame) {
        Ok(header) => header,
        Err(error) => {
            // An unknown api key's header cannot be fully parsed; report what we can.
            let prefix = parse_request_prefix(&frame).ok();
            tracing::warn!(%peer, ?prefix, %error, "unparseable request header");
            return close(format!("unparseable request header: {error}"));
        }
    };
    let support = version_support(header.api_key, header.api_version);
    if header.api == Some(ApiKey::ApiVersions) {
        // Always answered, even for versions Strom does not know (with UNSUPPORTED_VERSION and a
        // v0 body, so the client can retry lower).
        return ready(api_versions::handle(&header));
    }
    let api = match (support, header.api) {
        (VersionSupport::NotAdvertised, _) | (_, None) => {
            tracing::warn!(%peer, api_key = header.api_key, api_version = header.api_version, "unsupported api or version");
            return close(format!(
                "unsupported api key {} version {}",
                header.api_key, header.api_version
            ));
        }
        (VersionSupport::AnsweredByHand, Some(api)) => {
            let ctx = RequestContext {
                shard: shard.clone(),
                header,
                peer,
            };
            return ready(produce::unsupported_old_version(&ctx, &frame, api));
        }
        (VersionSupport::Decoded, Some(api)) => api,
    };
    let ctx = RequestContext {
        shard: shard.clone(),
        header,
        peer,
    };
    macro_rules! handle {
        ($module:ident, $request:ty) => {
            match decode::<$request>(&frame, &ctx.header) {
                Ok(request) => $module::handle(ctx, request).await,
                Err(reason) => {
                    if let Some(suppressed) = refusal_log::admit(("undecodable request", -1)) {
                        tracing::warn!(%peer, %reason, suppressed, "closing connection");
                    }
                    close(reason)
                }
            }
        };
    }
    use kafka_protocol::messages as m;
    match api {
        ApiKey::Produce => handle!(produce, m::ProduceRequest),
        ApiKey::Fetch => handle!(fetch, m::FetchRequest),
        ApiKey::ListOffsets => handle!(list_offsets, m::ListOffsetsRequest),
        ApiKey::Metadata => handle!(metadata, m::MetadataRequest),
        ApiKey::OffsetForLeaderEpoch => {
            handle!(offset_for_leader_epoch, m::OffsetForLeaderEpochRequest)
        }
        ApiKey::CreateTopics => handle!(create_topics, m::CreateTopicsRequest),
        ApiKey::DeleteTopics => handle!(delete_topics, m::DeleteTopicsRequest),
        ApiKey::CreatePartitions => handle!(create_partitions, m::CreatePartitionsRequest),
        ApiKey::DescribeConfigs => handle!(describe_configs, m::DescribeConfigsRequest),
        ApiKey::DeleteRecords => handle!(delete_records, m::DeleteRecordsRequest),
        ApiKey::DescribeCluster => handle!(describe_cluster, m::DescribeClusterRequest),
        ApiKey::InitProducerId => handle!(init_producer_id, m::InitProducerIdRequest),
        ApiKey::FindCoordinator => handle!(find_coordinator, m::FindCoordinatorRequest),
        ApiKey::JoinGroup => handle!(join_group, m::JoinGroupRequest),
        ApiKey::SyncGroup => handle!(sync_group, m::SyncGroupRequest),
        ApiKey::Heartbeat => handle!(heartbeat, m::HeartbeatRequest),
        ApiKey::LeaveGroup => handle!(leave_group, m::LeaveGroupRequest),
        ApiKey::OffsetCommit => handle!(offset_commit, m::OffsetCommitRequest),
        ApiKey::OffsetFetch => handle!(offset_fetch, m::OffsetFetchRequest),
        ApiKey::OffsetDelete => handle!(offset_delete, m::OffsetDeleteRequest),
        ApiKey::DescribeGroups => handle!(describe_groups, m::DescribeGroupsRequest),
        ApiKey::ListGroups => handle!(list_groups, m::ListGroupsRequest),
        ApiKey::DeleteGroups => handle!(delete_groups, m::DeleteGroupsRequest),
        ApiKey::ElectLeaders => handle!(elect_leaders, m::ElectLeadersRequest),
        ApiKey::AlterConfigs => handle!(alter_configs, m::AlterConfigsRequest),
        ApiKey::IncrementalAlterConfigs => {
            handle!(incremental_alter_configs, m::IncrementalAlterConfigsRequest)
        }
        ApiKey::DescribeLogDirs => handle!(describe_log_dirs, m::DescribeLogDirsRequest),
        ApiKey::AlterPartitionReassignments => handle!(
            alter_partition_reassignments,
            m::AlterPartitionReassignmentsRequest
        ),
        ApiKey::ListPartitionReassignments => handle!(
            list_partition_reassignments,
            m::ListPartitionReassignmentsRequest
        ),
        other => {
            tracing::warn!(%peer, api = ?other, "api advertised but not served yet");
            close(format!("api {other:?} is not served"))
        }
    }
}
