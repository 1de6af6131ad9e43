//! OffsetForLeaderEpoch (key 23, v2–v4): the end offset of a leader epoch, answered from the
//! leader's epoch cache (KIP-101): the largest epoch at or below the one asked and where it ends
//! (the next epoch's start, or the log end). Consumers use it to detect log truncation after a
//! leader change; followers, to find where their log diverges from the leader's.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};

use super::error_codes::{code, NONE};
use super::topic_admin::on_partition_owner;
use super::{RequestContext, ResponseFuture};
use crate::network::Response;

pub async fn handle(ctx: RequestContext, request: OffsetForLeaderEpochRequest) -> ResponseFuture {
    Box::pin(offsets_for_epochs(ctx, request))
}

async fn offsets_for_epochs(ctx: RequestContext, request: OffsetForLeaderEpochRequest) -> Response {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.topic.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let (index, current_epoch, asked_epoch) = (
                wanted.partition,
                wanted.current_leader_epoch,
                wanted.leader_epoch,
            );
            let outcome =
                on_partition_owner(&ctx.shard, &name, index, move |partition| async move {
                    if let Err(error) = partition.check_leader_epoch(current_epoch) {
                        return (code(error), -1, -1);
                    }
                    let (epoch, end_offset) = partition.log.end_offset_for_epoch(asked_epoch);
                    (NONE, epoch, end_offset)
                })
                .await;
            let (error_code, leader_epoch, end_offset) =
                outcome.unwrap_or((code(ResponseError::UnknownTopicOrPartition), -1, -1));
            partitions.push(
                EpochEndOffset::default()
                    .with_partition(index)
                    .with_error_code(error_code)
                    .with_leader_epoch(leader_epoch)
                    .with_end_offset(end_offset),
            );
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(TopicName(name.into()))
                .with_partitions(partitions),
        );
    }
    ctx.respond(&OffsetForLeaderEpochResponse::default().with_topics(topics))
}
