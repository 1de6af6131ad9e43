//! DescribeConfigs (key 32, v1–v4): a topic's effective configs, each with its source (a topic
//! override written by CreateTopics or IncrementalAlterConfigs, the broker's properties, or the
//! built-in default) and, when asked, its synonyms; or the broker's values of them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::error_codes::{code, NONE};
use super::{ready, RequestContext, ResponseFuture};
use crate::broker::dynamic_config::DYNAMIC_BROKER_KEYS;
use crate::broker::topic_config::{
    broker_default, broker_value_source, describe_topic_config, TOPIC_CONFIGS,
};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;

fn config_type(key: &str) -> i8 {
    match key {
        "unclean.leader.election.enable" => TYPE_BOOLEAN,
        "max.message.bytes" | "min.insync.replicas" | "index.interval.bytes" | "segment.bytes" => {
            TYPE_INT
        }
        "retention.ms" | "retention.bytes" | "segment.ms" | "flush.ms" | "delete.retention.ms" => {
            TYPE_LONG
        }
        _ => TYPE_STRING,
    }
}

fn wanted(keys: Option<&Vec<kafka_protocol::protocol::StrBytes>>, key: &str) -> bool {
    keys.is_none_or(|keys| keys.iter().any(|wanted| wanted.as_str() == key))
}

pub async fn handle(ctx: RequestContext, request: DescribeConfigsRequest) -> ResponseFuture {
    let broker = &ctx.shard.broker;
    // Topic configs fall back to the broker's values with the dynamic broker configs applied.
    let effective = broker.effective_config();
    let dynamic = broker.dynamic_broker_configs();
    let version = ctx.version();
    let typed = |key: &str| if version >= 3 { config_type(key) } else { 0 };
    let mut results = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let keys = resource.configuration_keys.as_ref();
        let result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let entries: Result<Vec<DescribeConfigsResourceResult>, i16> = match resource.resource_type
        {
            RESOURCE_TOPIC => match broker.topics.get(resource.resource_name.as_str()) {
                None => Err(code(ResponseError::UnknownTopicOrPartition)),
                Some(topic) => Ok(TOPIC_CONFIGS
                    .iter()
                    .filter(|(key, _)| wanted(keys, key))
                    .map(|(key, broker_key)| {
                        let described = describe_topic_config(
                            &effective,
                            &dynamic,
                            &topic.configs,
                            key,
                            broker_key,
                        );
                        let synonyms = if request.include_synonyms {
                            described
                                .synonyms
                                .into_iter()
                                .map(|(name, value, source)| {
                                    DescribeConfigsSynonym::default()
                                        .with_name(name.into())
                                        .with_value(value.map(Into::into))
                                        .with_source(source as i8)
                                })
                                .collect()
                        } else {
                            Vec::new()
                        };
                        DescribeConfigsResourceResult::default()
                            .with_name((*key).into())
                            .with_value(described.value.map(Into::into))
                            .with_config_source(described.source as i8)
                            .with_synonyms(synonyms)
                            .with_config_type(typed(key))
                    })
                    .collect()),
            },
            RESOURCE_BROKER => Ok(TOPIC_CONFIGS
                .iter()
                .filter(|(_, broker_key)| wanted(keys, broker_key))
                .map(|(key, broker_key)| {
                    let source = broker_value_source(&effective, &dynamic, broker_key);
                    DescribeConfigsResourceResult::default()
                        .with_name((*broker_key).into())
                        .with_value(broker_default(&effective, key).map(Into::into))
                        .with_config_source(source as i8)
                        // Changeable at run time (IncrementalAlterConfigs on the broker).
                        .with_read_only(!DYNAMIC_BROKER_KEYS.contains(broker_key))
                        .with_config_type(typed(key))
                })
                .collect()),
            _ => Err(code(ResponseError::InvalidRequest)),
        };
        results.push(match entries {
            Ok(configs) => result.with_error_code(NONE).with_configs(configs),
            Err(error_code) => result.with_error_code(error_code),
        });
    }
    ready(ctx.respond(&DescribeConfigsResponse::default().with_results(results)))
}
