//! ListGroups (key 16, v0–v4): every coordinator of every shard answers for its groups.

use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

use super::error_codes::NONE;
use super::group_route::submit_everywhere;
use super::{RequestContext, ResponseFuture};
use crate::group::{Input, Response};

pub async fn handle(ctx: RequestContext, request: ListGroupsRequest) -> ResponseFuture {
    Box::pin(async move {
        let answers = submit_everywhere(&ctx, move |group_ctx| {
            Input::ListGroups(group_ctx, request.clone())
        })
        .await;
        let mut merged = ListGroupsResponse::default().with_error_code(NONE);
        for answer in answers {
            match answer {
                Ok(Response::ListGroups(part)) => {
                    if part.error_code != NONE && merged.error_code == NONE {
                        merged.error_code = part.error_code;
                    }
                    merged.groups.extend(part.groups);
                }
                Ok(_) => {}
                Err(error_code) => {
                    if merged.error_code == NONE {
                        merged.error_code = error_code;
                    }
                }
            }
        }
        ctx.respond(&merged)
    })
}
