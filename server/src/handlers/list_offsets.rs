//! ListOffsets (key 2, v1–v8): earliest (-2), latest (-1), max timestamp (-3), or the first
//! offset at or after a timestamp.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, TopicName};

use super::error_codes::{code, engine_error_code, NONE};
use super::topic_admin::on_partition_owner;
use super::{RequestContext, ResponseFuture};
use crate::network::Response;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(ctx: RequestContext, request: ListOffsetsRequest) -> ResponseFuture {
    Box::pin(list_offsets(ctx, request))
}

/// Whether a new leader's high watermark is still below the start of its epoch: it is then the
/// older one it had as a follower (it learns the previous leader's at each fetch, so it may lag
/// what that leader showed consumers) until its followers fetch from it. Answering it would show
/// clients the end of the log moving back, so ListOffsets answers OFFSET_NOT_AVAILABLE
/// (retriable) meanwhile, as Kafka does (KIP-207).
fn epoch_start_above_high_watermark(
    partition: &crate::broker::partition::Partition,
    epoch: i32,
) -> bool {
    let epoch_start = partition
        .log
        .leader_epoch_entries()
        .last()
        .filter(|(latest, _)| *latest == epoch)
        .map(|(_, start)| *start);
    epoch_start.is_some_and(|start| start > partition.high_watermark())
}

async fn list_offsets(ctx: RequestContext, request: ListOffsetsRequest) -> Response {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let (index, timestamp, current_epoch) = (
                wanted.partition_index,
                wanted.timestamp,
                wanted.current_leader_epoch,
            );
            let found = on_partition_owner(&ctx.shard, &name, index, move |partition| async move {
                let epoch = match partition.check_leader_epoch(current_epoch) {
                    Ok(epoch) => epoch,
                    Err(error) => return (code(error), -1, -1, -1),
                };
                let log = &partition.log;
                if epoch_start_above_high_watermark(&partition, epoch) {
                    return (code(ResponseError::OffsetNotAvailable), -1, -1, epoch);
                }
                match timestamp {
                    LATEST => (NONE, -1, partition.high_watermark(), epoch),
                    EARLIEST => (NONE, -1, log.log_start_offset(), epoch),
                    MAX_TIMESTAMP | 0.. => {
                        // Max timestamp (-3): the first record carrying the largest timestamp.
                        let target = if timestamp == MAX_TIMESTAMP {
                            log.max_timestamp_ms().unwrap_or(i64::MAX)
                        } else {
                            timestamp
                        };
                        match log.offset_for_timestamp(target).await {
                            Ok(Some(found)) => (NONE, found.timestamp_ms, found.offset, epoch),
                            Ok(None) => (NONE, -1, -1, epoch),
                            Err(error) => (engine_error_code(&error), -1, -1, epoch),
                        }
                    }
                    _ => (code(ResponseError::InvalidRequest), -1, -1, epoch),
                }
            })
            .await;
            let (error_code, timestamp, offset, leader_epoch) =
                found.unwrap_or((code(ResponseError::UnknownTopicOrPartition), -1, -1, -1));
            partitions.push(
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(index)
                    .with_error_code(error_code)
                    .with_timestamp(timestamp)
                    .with_offset(offset)
                    .with_leader_epoch(if ctx.version() >= 4 { leader_epoch } else { -1 }),
            );
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(TopicName(name.into()))
                .with_partitions(partitions),
        );
    }
    ctx.respond(&ListOffsetsResponse::default().with_topics(topics))
}
