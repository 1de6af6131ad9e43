//! DeleteRecords (key 21, v0–v2): move a partition's log start forward (-1 = to the high
//! watermark).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, TopicName};

use super::error_codes::{code, engine_error_code, NONE};
use super::topic_admin::on_partition_owner;
use super::{RequestContext, ResponseFuture};
use crate::network::Response;

pub async fn handle(ctx: RequestContext, request: DeleteRecordsRequest) -> ResponseFuture {
    Box::pin(delete_records(ctx, request))
}

async fn delete_records(ctx: RequestContext, request: DeleteRecordsRequest) -> Response {
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.to_string();
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let (index, offset) = (wanted.partition_index, wanted.offset);
            let outcome =
                on_partition_owner(&ctx.shard, &name, index, move |partition| async move {
                    let high_watermark = partition.high_watermark();
                    let target = if offset == -1 { high_watermark } else { offset };
                    match partition.log.delete_records_before(target) {
                        Ok(low_watermark) => (NONE, low_watermark),
                        Err(error) => (engine_error_code(&error), -1),
                    }
                })
                .await;
            let (error_code, low_watermark) =
                outcome.unwrap_or((code(ResponseError::UnknownTopicOrPartition), -1));
            partitions.push(
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(index)
                    .with_error_code(error_code)
                    .with_low_watermark(low_watermark),
            );
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(TopicName(name.into()))
                .with_partitions(partitions),
        );
    }
    ctx.respond(&DeleteRecordsResponse::default().with_topics(topics))
}
