//! LeaveGroup (key 13): members leave (batched from v3).

use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::group_route::{coordinator_partition, receive, submit};
use super::{RequestContext, ResponseFuture};
use crate::group::{Input, Response};
use crate::network::Response as Wire;

pub async fn handle(ctx: RequestContext, request: LeaveGroupRequest) -> ResponseFuture {
    let partition = coordinator_partition(&ctx, &request.group_id);
    let pending = submit(&ctx, partition, move |group_ctx| {
        Input::LeaveGroup(group_ctx, request)
    })
    .await;
    Box::pin(async move {
        match receive(pending).await {
            Ok(Response::LeaveGroup(response)) => ctx.respond(&response),
            Ok(other) => Wire::Close(format!("coordinator answered LeaveGroup with {other:?}")),
            Err(error_code) => ctx.respond(&error_response(error_code)),
        }
    })
}

fn error_response(error_code: i16) -> LeaveGroupResponse {
    LeaveGroupResponse::default().with_error_code(error_code)
}
