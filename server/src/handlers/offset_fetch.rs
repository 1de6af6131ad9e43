//! OffsetFetch (key 9, v1–v9): one group up to v7; from v8 several groups, which are split by
//! coordinator and merged.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use super::error_codes::code;
use super::group_route::{coordinator_partition, receive, split_by_partition, submit};
use super::{RequestContext, ResponseFuture};
use crate::group::{Input, Response};
use crate::network::Response as Wire;

pub async fn handle(ctx: RequestContext, request: OffsetFetchRequest) -> ResponseFuture {
    if ctx.version() < 8 {
        let partition = coordinator_partition(&ctx, &request.group_id);
        let pending = submit(&ctx, partition, move |group_ctx| {
            Input::OffsetFetch(group_ctx, request)
        })
        .await;
        return Box::pin(async move {
            match receive(pending).await {
                Ok(Response::OffsetFetch(response)) => ctx.respond(&response),
                Ok(other) => {
                    Wire::Close(format!("coordinator answered OffsetFetch with {other:?}"))
                }
                Err(error_code) => {
                    ctx.respond(&OffsetFetchResponse::default().with_error_code(error_code))
                }
            }
        });
    }
    let mut pending = Vec::new();
    for (partition, groups) in split_by_partition(&ctx, request.groups.clone(), |group| {
        group.group_id.to_string()
    }) {
        let ids: Vec<_> = groups.iter().map(|group| group.group_id.clone()).collect();
        let part = request.clone().with_groups(groups);
        pending.push((
            ids,
            submit(&ctx, partition, move |group_ctx| {
                Input::OffsetFetch(group_ctx, part)
            })
            .await,
        ));
    }
    Box::pin(async move {
        let mut groups = Vec::new();
        for (ids, receiver) in pending {
            match receive(receiver).await {
                Ok(Response::OffsetFetch(part)) => groups.extend(part.groups),
                Ok(_) | Err(_) => groups.extend(ids.into_iter().map(|group_id| {
                    OffsetFetchResponseGroup::default()
                        .with_group_id(group_id)
                        .with_error_code(code(ResponseError::CoordinatorNotAvailable))
                })),
            }
        }
        ctx.respond(&OffsetFetchResponse::default().with_groups(groups))
    })
}
