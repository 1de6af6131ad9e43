//! FindCoordinator (key 10, v0–v4; batched keys from v4): the coordinator of a group is the
//! leader of its `__consumer_offsets` partition (see `group_placement`), as this broker's metadata
//! cache knows it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::error_codes::{code, NONE};
use super::{ready, RequestContext, ResponseFuture};
use crate::broker::group_placement::{offsets_partition_for, OFFSETS_TOPIC};

const KEY_TYPE_GROUP: i8 = 0;

/// (error, node id, host, port) for one key.
fn locate(ctx: &RequestContext, key: &str, key_type: i8) -> (i16, i32, String, i32) {
    let not_available = || {
        (
            code(ResponseError::CoordinatorNotAvailable),
            -1,
            String::new(),
            -1,
        )
    };
    if key_type != KEY_TYPE_GROUP {
        // Transactions are not supported.
        return not_available();
    }
    let Some(topic) = ctx.shard.metadata.topic(OFFSETS_TOPIC) else {
        // As in Kafka, the first FindCoordinator creates the offsets topic (once enough brokers
        // are live); the client retries until it has a leader.
        ctx.shard.broker.control.ensure_offsets_topic();
        return not_available();
    };
    let partition = offsets_partition_for(key, topic.partition_count);
    let members = ctx.shard.metadata.members();
    match members.broker(topic.leader_of(partition)) {
        Some(leader) => (NONE, leader.id, leader.host.clone(), i32::from(leader.port)),
        None => not_available(),
    }
}

pub async fn handle(ctx: RequestContext, request: FindCoordinatorRequest) -> ResponseFuture {
    let response = if ctx.version() >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let (error_code, node_id, host, port) =
                    locate(&ctx, key.as_str(), request.key_type);
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(node_id))
                    .with_host(StrBytes::from_string(host))
                    .with_port(port)
                    .with_error_code(error_code)
                    .with_error_message(None)
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let (error_code, node_id, host, port) =
            locate(&ctx, request.key.as_str(), request.key_type);
        let response = FindCoordinatorResponse::default()
            .with_error_code(error_code)
            .with_node_id(BrokerId(node_id))
            .with_host(StrBytes::from_string(host))
            .with_port(port);
        if ctx.version() >= 1 {
            response.with_error_message(None)
        } else {
            response
        }
    };
    ready(ctx.respond(&response))
}
