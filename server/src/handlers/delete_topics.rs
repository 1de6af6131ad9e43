//! DeleteTopics (key 20, v1–v6; v6 may name topics by id).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::error_codes::{code, topic_error_code, NONE};
use super::topic_admin::{delete_topic, request_timeout_ms};
use super::{RequestContext, ResponseFuture};
use crate::network::Response;

pub async fn handle(ctx: RequestContext, request: DeleteTopicsRequest) -> ResponseFuture {
    Box::pin(delete_topics(ctx, request))
}

async fn delete_topics(ctx: RequestContext, request: DeleteTopicsRequest) -> Response {
    // v0–5 list names; v6 lists (name or id) states.
    let mut wanted: Vec<(Option<String>, uuid::Uuid)> = request
        .topic_names
        .iter()
        .map(|name| (Some(name.to_string()), uuid::Uuid::nil()))
        .collect();
    wanted.extend(request.topics.iter().map(|state| {
        (
            state.name.as_ref().map(|name| name.0.to_string()),
            state.topic_id,
        )
    }));
    let timeout_ms = request_timeout_ms(request.timeout_ms);
    let mut results = Vec::with_capacity(wanted.len());
    for (name, topic_id) in wanted {
        let name = name.or_else(|| {
            ctx.shard
                .metadata
                .topic_by_id(topic_id)
                .map(|topic| topic.name.to_string())
        });
        let result = match &name {
            None => DeletableTopicResult::default()
                .with_topic_id(topic_id)
                .with_error_code(code(ResponseError::UnknownTopicId)),
            Some(topic) => match delete_topic(&ctx.shard, topic, timeout_ms).await {
                Ok(deleted) => DeletableTopicResult::default()
                    .with_topic_id(deleted.id)
                    .with_error_code(NONE),
                Err(error) => DeletableTopicResult::default()
                    .with_topic_id(topic_id)
                    .with_error_code(topic_error_code(&error))
                    .with_error_message(Some(error.to_string().into())),
            },
        };
        let result = if ctx.version() >= 6 {
            result
        } else {
            result.with_topic_id(uuid::Uuid::nil())
        };
        let result = if ctx.version() >= 5 {
            result
        } else {
            result.with_error_message(None)
        };
        results.push(result.with_name(name.map(|name| TopicName(name.into()))));
    }
    ctx.respond(&DeleteTopicsResponse::default().with_responses(results))
}
