//! Heartbeat (key 12): keeps a member's session alive.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::group_route::{coordinator_partition, receive, submit};
use super::{RequestContext, ResponseFuture};
use crate::group::{Input, Response};
use crate::network::Response as Wire;

pub async fn handle(ctx: RequestContext, request: HeartbeatRequest) -> ResponseFuture {
    let partition = coordinator_partition(&ctx, &request.group_id);
    let pending = submit(&ctx, partition, move |group_ctx| {
        Input::Heartbeat(group_ctx, request)
    })
    .await;
    Box::pin(async move {
        match receive(pending).await {
            Ok(Response::Heartbeat(response)) => ctx.respond(&response),
            Ok(other) => Wire::Close(format!("coordinator answered Heartbeat with {other:?}")),
            Err(error_code) => ctx.respond(&error_response(error_code)),
        }
    })
}

fn error_response(error_code: i16) -> HeartbeatResponse {
    HeartbeatResponse::default().with_error_code(error_code)
}
