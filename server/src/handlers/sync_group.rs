//! SyncGroup (key 14): held until the leader sends assignments.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::group_route::{coordinator_partition, receive, submit};
use super::{RequestContext, ResponseFuture};
use crate::group::{Input, Response};
use crate::network::Response as Wire;

pub async fn handle(ctx: RequestContext, request: SyncGroupRequest) -> ResponseFuture {
    let partition = coordinator_partition(&ctx, &request.group_id);
    let pending = submit(&ctx, partition, move |group_ctx| {
        Input::SyncGroup(group_ctx, request)
    })
    .await;
    Box::pin(async move {
        match receive(pending).await {
            Ok(Response::SyncGroup(response)) => ctx.respond(&response),
            Ok(other) => Wire::Close(format!("coordinator answered SyncGroup with {other:?}")),
            Err(error_code) => ctx.respond(&error_response(error_code)),
        }
    })
}

fn error_response(error_code: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error_code)
}
