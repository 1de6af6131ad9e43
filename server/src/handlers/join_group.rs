//! JoinGroup (key 11, v0–v9): held open by the coordinator until the rebalance completes.

use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::group_route::{coordinator_partition, receive, submit};
use super::{RequestContext, ResponseFuture};
use crate::group::{Input, Response};
use crate::network::Response as Wire;

pub async fn handle(ctx: RequestContext, request: JoinGroupRequest) -> ResponseFuture {
    let partition = coordinator_partition(&ctx, &request.group_id);
    let pending = submit(&ctx, partition, move |group_ctx| {
        Input::JoinGroup(group_ctx, request)
    })
    .await;
    Box::pin(async move {
        match receive(pending).await {
            Ok(Response::JoinGroup(response)) => ctx.respond(&response),
            Ok(other) => Wire::Close(format!("coordinator answered JoinGroup with {other:?}")),
            Err(error_code) => {
                ctx.respond(&JoinGroupResponse::default().with_error_code(error_code))
            }
        }
    })
}
