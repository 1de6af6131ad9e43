//! OffsetDelete (key 47): removes a group's committed offsets for partitions it no longer consumes.

use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::group_route::{coordinator_partition, receive, submit};
use super::{RequestContext, ResponseFuture};
use crate::group::{Input, Response};
use crate::network::Response as Wire;

pub async fn handle(ctx: RequestContext, request: OffsetDeleteRequest) -> ResponseFuture {
    let partition = coordinator_partition(&ctx, &request.group_id);
    let pending = submit(&ctx, partition, move |group_ctx| {
        Input::OffsetDelete(group_ctx, request)
    })
    .await;
    Box::pin(async move {
        match receive(pending).await {
            Ok(Response::OffsetDelete(response)) => ctx.respond(&response),
            Ok(other) => Wire::Close(format!("coordinator answered OffsetDelete with {other:?}")),
            Err(error_code) => ctx.respond(&error_response(error_code)),
        }
    })
}

fn error_response(error_code: i16) -> OffsetDeleteResponse {
    OffsetDeleteResponse::default().with_error_code(error_code)
}
