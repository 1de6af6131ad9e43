//! One module per Kafka API. [`dispatch`] decodes the frame with
//! [`decode_request`](crate::protocol::request::decode_request) (header, version check against the
//! advertised table, body with `kafka-protocol`) and calls the handler.
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
use kafka_protocol::protocol::Encodable;

use crate::broker::shard::ShardState;
use crate::network::Response;
use crate::protocol::frame::encode_response_frame;
use crate::protocol::request::{decode_request, RequestBody, RequestError};
use crate::protocol::request_header::RequestHeader;

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

/// Routes one request frame to its handler. Decoding is [`decode_request`] (no broker
/// context, fuzzed on its own); this function only routes.
pub async fn dispatch(shard: &Rc<ShardState>, frame: Bytes, peer: SocketAddr) -> ResponseFuture {
    let (header, body) = match decode_request(&frame) {
        Ok(decoded) => decoded,
        Err(error) => {
            // At most a line a second per cause (a misbehaving client must not flood the log).
            let cause = match &error {
                RequestError::Header { .. } => "unparseable request header",
                RequestError::Unsupported { .. } => "unsupported request",
                RequestError::NotServed(_) => "request not served",
                RequestError::Body(_) => "undecodable request",
            };
            if let Some(suppressed) = refusal_log::admit((cause, -1)) {
                match &error {
                    // An unknown api key's header cannot be fully parsed; report what we can.
                    RequestError::Header { prefix, .. } => {
                        tracing::warn!(%peer, ?prefix, %error, suppressed, "unparseable request header")
                    }
                    _ => tracing::warn!(%peer, %error, suppressed, "closing connection"),
                }
            }
            return close(error.to_string());
        }
    };
    let ctx = RequestContext {
        shard: shard.clone(),
        header,
        peer,
    };
    match body {
        RequestBody::ApiVersions => ready(api_versions::handle(&ctx.header)),
        RequestBody::AnsweredByHand(api) => {
            ready(produce::unsupported_old_version(&ctx, &frame, api))
        }
        RequestBody::Produce(request) => produce::handle(ctx, *request).await,
        RequestBody::Fetch(request) => fetch::handle(ctx, *request).await,
        RequestBody::ListOffsets(request) => list_offsets::handle(ctx, *request).await,
        RequestBody::Metadata(request) => metadata::handle(ctx, *request).await,
        RequestBody::OffsetForLeaderEpoch(request) => {
            offset_for_leader_epoch::handle(ctx, *request).await
        }
        RequestBody::CreateTopics(request) => create_topics::handle(ctx, *request).await,
        RequestBody::DeleteTopics(request) => delete_topics::handle(ctx, *request).await,
        RequestBody::CreatePartitions(request) => create_partitions::handle(ctx, *request).await,
        RequestBody::DescribeConfigs(request) => describe_configs::handle(ctx, *request).await,
        RequestBody::DeleteRecords(request) => delete_records::handle(ctx, *request).await,
        RequestBody::DescribeCluster(request) => describe_cluster::handle(ctx, *request).await,
        RequestBody::InitProducerId(request) => init_producer_id::handle(ctx, *request).await,
        RequestBody::FindCoordinator(request) => find_coordinator::handle(ctx, *request).await,
        RequestBody::JoinGroup(request) => join_group::handle(ctx, *request).await,
        RequestBody::SyncGroup(request) => sync_group::handle(ctx, *request).await,
        RequestBody::Heartbeat(request) => heartbeat::handle(ctx, *request).await,
        RequestBody::LeaveGroup(request) => leave_group::handle(ctx, *request).await,
        RequestBody::OffsetCommit(request) => offset_commit::handle(ctx, *request).await,
        RequestBody::OffsetFetch(request) => offset_fetch::handle(ctx, *request).await,
        RequestBody::OffsetDelete(request) => offset_delete::handle(ctx, *request).await,
        RequestBody::DescribeGroups(request) => describe_groups::handle(ctx, *request).await,
        RequestBody::ListGroups(request) => list_groups::handle(ctx, *request).await,
        RequestBody::DeleteGroups(request) => delete_groups::handle(ctx, *request).await,
        RequestBody::ElectLeaders(request) => elect_leaders::handle(ctx, *request).await,
        RequestBody::AlterConfigs(request) => alter_configs::handle(ctx, *request).await,
        RequestBody::IncrementalAlterConfigs(request) => {
            incremental_alter_configs::handle(ctx, *request).await
        }
        RequestBody::DescribeLogDirs(request) => describe_log_dirs::handle(ctx, *request).await,
        RequestBody::AlterPartitionReassignments(request) => {
            alter_partition_reassignments::handle(ctx, *request).await
        }
        RequestBody::ListPartitionReassignments(request) => {
            list_partition_reassignments::handle(ctx, *request).await
        }
    }
}
