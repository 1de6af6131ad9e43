//! CreatePartitions (key 37, v0–v3): grow a topic.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::error_codes::{topic_error_code, NONE};
use super::topic_admin::{open_partitions, publish_metadata};
use super::{RequestContext, ResponseFuture};
use crate::broker::topics::TopicError;
use crate::network::Response;

pub async fn handle(ctx: RequestContext, request: CreatePartitionsRequest) -> ResponseFuture {
    Box::pin(create_partitions(ctx, request))
}

async fn create_partitions(ctx: RequestContext, request: CreatePartitionsRequest) -> Response {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.to_string();
        let outcome = async {
            let (old, grown) = ctx.shard.broker.topics.add_partitions(
                &name,
                topic.count,
                request.validate_only,
            )?;
            if let Some((metadata, update)) = grown {
                let opened = open_partitions(&ctx.shard, &metadata, old).await;
                publish_metadata(&ctx.shard, update).await;
                opened.map_err(TopicError::Store)?;
                tracing::info!(topic = %name, from = old, to = topic.count, "added partitions");
                super::topic_admin::notify_partitions_changed(&ctx.shard, vec![name.clone()]).await;
            }
            Ok::<(), TopicError>(())
        }
        .await;
        let result = CreatePartitionsTopicResult::default().with_name(topic.name);
        results.push(match outcome {
            Ok(()) => result.with_error_code(NONE),
            Err(error) => result
                .with_error_code(topic_error_code(&error))
                .with_error_message(Some(error.to_string().into())),
        });
    }
    ctx.respond(&CreatePartitionsResponse::default().with_results(results))
}
