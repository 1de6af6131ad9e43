//! CreatePartitions (key 37, v0–v3): grow a topic.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::error_codes::{topic_error_code, NONE};
use super::topic_admin::request_timeout_ms;
use super::{RequestContext, ResponseFuture};
use crate::network::Response;

pub async fn handle(ctx: RequestContext, request: CreatePartitionsRequest) -> ResponseFuture {
    Box::pin(create_partitions(ctx, request))
}

async fn create_partitions(ctx: RequestContext, request: CreatePartitionsRequest) -> Response {
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.to_string();
        // Explicit assignments for the new partitions, if the client gave them.
        let assignment = topic.assignments.as_ref().map(|assignments| {
            assignments
                .iter()
                .map(|assignment| assignment.broker_ids.iter().map(|id| id.0).collect())
                .collect()
        });
        let outcome = ctx
            .shard
            .broker
            .control
            .create_partitions(
                name.clone(),
                topic.count,
                assignment,
                request.validate_only,
                request_timeout_ms(request.timeout_ms),
            )
            .await
            .map(|_| ());
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
