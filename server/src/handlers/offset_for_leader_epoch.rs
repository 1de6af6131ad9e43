//! OffsetForLeaderEpoch (key 23, v2–v4): the end offset of a leader epoch, which consumers use to
//! detect log truncation after a leader change. With one epoch per partition so far, the current
//! epoch ends at the log end and later epochs are unknown.

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
                    let epoch = match partition.check_leader_epoch(current_epoch) {
                        Ok(epoch) => epoch,
                        Err(error) => return (code(error), -1, -1),
                    };
                    if asked_epoch > epoch {
                        (NONE, -1, -1)
                    } else {
                        (NONE, epoch, partition.log.log_end_offset())
                    }
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
