//! DescribeCluster (key 60, v0–v1): the live brokers, the controller, the cluster id.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::error_codes::NONE;
use super::{ready, RequestContext, ResponseFuture};

pub async fn handle(ctx: RequestContext, request: DescribeClusterRequest) -> ResponseFuture {
    let broker = &ctx.shard.broker;
    let members = ctx.shard.metadata.members();
    let brokers = members
        .brokers
        .iter()
        .map(|member| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(member.id))
                .with_host(member.host.clone().into())
                .with_port(i32::from(member.port))
        })
        .collect();
    let response = DescribeClusterResponse::default()
        .with_error_code(NONE)
        .with_endpoint_type(if ctx.version() >= 1 {
            request.endpoint_type
        } else {
            1
        })
        .with_cluster_id(broker.cluster_id.clone().into())
        .with_controller_id(BrokerId(members.controller_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(i32::MIN);
    ready(ctx.respond(&response))
}
