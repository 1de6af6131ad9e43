//! DescribeGroups (key 15, v0–v5): groups are split by coordinator and the answers merged in
//! request order.

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

use super::group_route::{receive, split_by_partition, submit};
use super::{RequestContext, ResponseFuture};
use crate::group::{Input, Response};

pub async fn handle(ctx: RequestContext, request: DescribeGroupsRequest) -> ResponseFuture {
    let order: Vec<GroupId> = request.groups.clone();
    let mut pending = Vec::new();
    for (partition, groups) in
        split_by_partition(&ctx, request.groups.clone(), |group| group.to_string())
    {
        let part = request.clone().with_groups(groups.clone());
        pending.push((
            groups,
            submit(&ctx, partition, move |group_ctx| {
                Input::DescribeGroups(group_ctx, part)
            })
            .await,
        ));
    }
    Box::pin(async move {
        let mut described: Vec<DescribedGroup> = Vec::new();
        for (groups, receiver) in pending {
            match receive(receiver).await {
                Ok(Response::DescribeGroups(part)) => described.extend(part.groups),
                _ => described.extend(groups.into_iter().map(|group| {
                    DescribedGroup::default()
                        .with_group_id(group)
                        .with_error_code(super::error_codes::code(
                            kafka_protocol::error::ResponseError::CoordinatorNotAvailable,
                        ))
                })),
            }
        }
        described.sort_by_key(|group| {
            order
                .iter()
                .position(|wanted| *wanted == group.group_id)
                .unwrap_or(usize::MAX)
        });
        ctx.respond(&DescribeGroupsResponse::default().with_groups(described))
    })
}
