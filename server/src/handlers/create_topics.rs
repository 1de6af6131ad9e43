//! CreateTopics (key 19, v2–v7).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::error_codes::{topic_error_code, NONE};
use super::topic_admin::{create_topic, request_timeout_ms};
use super::{RequestContext, ResponseFuture};
use crate::broker::topic_config::broker_default;
use crate::control_plane::NewTopic;
use crate::network::Response;

pub async fn handle(ctx: RequestContext, request: CreateTopicsRequest) -> ResponseFuture {
    Box::pin(create_topics(ctx, request))
}

async fn create_topics(ctx: RequestContext, request: CreateTopicsRequest) -> Response {
    let config = &ctx.shard.broker.config;
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.to_string();
        // -1 means the broker's default (v4+).
        let partitions = if topic.num_partitions == -1 {
            config.num_partitions
        } else {
            topic.num_partitions
        };
        let replication_factor = if topic.replication_factor == -1 {
            config.default_replication_factor
        } else {
            topic.replication_factor
        };
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|entry| {
                entry
                    .value
                    .as_ref()
                    .map(|value| (entry.name.to_string(), value.to_string()))
            })
            .collect();
        let assignment = (!topic.assignments.is_empty()).then(|| {
            topic
                .assignments
                .iter()
                .map(|assignment| {
                    (
                        assignment.partition_index,
                        assignment.broker_ids.iter().map(|id| id.0).collect(),
                    )
                })
                .collect()
        });
        let new_topic = NewTopic {
            name: name.clone(),
            partitions,
            replication_factor,
            assignment,
            configs,
        };
        let result = create_topic(
            &ctx.shard,
            new_topic,
            request.validate_only,
            request_timeout_ms(request.timeout_ms),
        )
        .await;
        results.push(match result {
            Ok(created) => {
                let configs = crate::broker::topic_config::TOPIC_CONFIGS
                    .iter()
                    .map(|(key, _)| {
                        let value = created
                            .configs
                            .get(*key)
                            .cloned()
                            .or_else(|| broker_default(config, key));
                        CreatableTopicConfigs::default()
                            .with_name((*key).into())
                            .with_value(value.map(Into::into))
                            .with_config_source(if created.configs.contains_key(*key) {
                                1
                            } else {
                                5
                            })
                    })
                    .collect();
                let version = ctx.version();
                let result = CreatableTopicResult::default()
                    .with_name(topic.name)
                    .with_error_code(NONE)
                    .with_topic_id(if version >= 7 {
                        created.id
                    } else {
                        uuid::Uuid::nil()
                    });
                if version >= 5 {
                    result
                        .with_num_partitions(created.partitions)
                        .with_replication_factor(created.replication_factor)
                        .with_configs(Some(configs))
                } else {
                    result
                }
            }
            Err(error) => {
                tracing::info!(topic = %name, %error, "create topic refused");
                CreatableTopicResult::default()
                    .with_name(topic.name)
                    .with_error_code(topic_error_code(&error))
                    .with_error_message(Some(error.to_string().into()))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            }
        });
    }
    ctx.respond(&CreateTopicsResponse::default().with_topics(results))
}
