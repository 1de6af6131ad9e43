//! OffsetCommit (key 8): acknowledged once its record is durable in __consumer_offsets.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::group_route::{coordinator_partition, receive, submit};
use super::{RequestContext, ResponseFuture};
use crate::group::{Input, Response};
use crate::network::Response as Wire;

pub async fn handle(ctx: RequestContext, request: OffsetCommitRequest) -> ResponseFuture {
    let partition = coordinator_partition(&ctx, &request.group_id);
    let fallback = request.clone();
    let pending = submit(&ctx, partition, move |group_ctx| {
        Input::OffsetCommit(group_ctx, request)
    })
    .await;
    Box::pin(async move {
        match receive(pending).await {
            Ok(Response::OffsetCommit(response)) => ctx.respond(&response),
            Ok(other) => Wire::Close(format!("coordinator answered OffsetCommit with {other:?}")),
            Err(error_code) => ctx.respond(&error_response(&fallback, error_code)),
        }
    })
}

/// OffsetCommit carries its error per partition.
fn error_response(request: &OffsetCommitRequest, error_code: i16) -> OffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|partition| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(partition.partition_index)
                                .with_error_code(error_code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
