//! DeleteGroups (key 42, v0–v2): only empty groups can be deleted.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::group_route::{receive, split_by_partition, submit};
use super::{RequestContext, ResponseFuture};
use crate::group::{Input, Response};

pub async fn handle(ctx: RequestContext, request: DeleteGroupsRequest) -> ResponseFuture {
    let mut pending = Vec::new();
    for (partition, groups) in split_by_partition(&ctx, request.groups_names.clone(), |group| {
        group.to_string()
    }) {
        let part = request.clone().with_groups_names(groups.clone());
        pending.push((
            groups,
            submit(&ctx, partition, move |group_ctx| {
                Input::DeleteGroups(group_ctx, part)
            })
            .await,
        ));
    }
    Box::pin(async move {
        let mut results = Vec::new();
        for (groups, receiver) in pending {
            match receive(receiver).await {
                Ok(Response::DeleteGroups(part)) => results.extend(part.results),
                Ok(_) | Err(_) => results.extend(groups.into_iter().map(|group| {
                    DeletableGroupResult::default()
                        .with_group_id(group)
                        .with_error_code(super::error_codes::code(
                            kafka_protocol::error::ResponseError::CoordinatorNotAvailable,
                        ))
                })),
            }
        }
        ctx.respond(&DeleteGroupsResponse::default().with_results(results))
    })
}
