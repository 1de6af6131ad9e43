//! DescribeConfigs (key 32, v1–v4): a topic's effective configs (overrides and defaults), or
//! the broker's defaults for them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::error_codes::{code, NONE};
use super::{ready, RequestContext, ResponseFuture};
use crate::broker::topic_config::{broker_default, TOPIC_CONFIGS};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC_OVERRIDE: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
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
        "retention.ms" | "retention.bytes" | "segment.ms" | "flush.ms" => TYPE_LONG,
        _ => TYPE_STRING,
    }
}

fn wanted(keys: Option<&Vec<kafka_protocol::protocol::StrBytes>>, key: &str) -> bool {
    keys.is_none_or(|keys| keys.iter().any(|wanted| wanted.as_str() == key))
}

pub async fn handle(ctx: RequestContext, request: DescribeConfigsRequest) -> ResponseFuture {
    let broker = &ctx.shard.broker;
    let version = ctx.version();
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
                    .map(|(key, _)| {
                        let (value, source) = match topic.configs.get(*key) {
                            Some(value) => (Some(value.clone()), SOURCE_TOPIC_OVERRIDE),
                            None => (broker_default(&broker.config, key), SOURCE_DEFAULT),
                        };
                        DescribeConfigsResourceResult::default()
                            .with_name((*key).into())
                            .with_value(value.map(Into::into))
                            .with_config_source(source)
                            .with_config_type(if version >= 3 { config_type(key) } else { 0 })
                    })
                    .collect()),
            },
            RESOURCE_BROKER => Ok(TOPIC_CONFIGS
                .iter()
                .filter(|(_, broker_key)| wanted(keys, broker_key))
                .map(|(key, broker_key)| {
                    DescribeConfigsResourceResult::default()
                        .with_name((*broker_key).into())
                        .with_value(broker_default(&broker.config, key).map(Into::into))
                        .with_config_source(SOURCE_STATIC_BROKER)
                        .with_read_only(true)
                        .with_config_type(if version >= 3 { config_type(key) } else { 0 })
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
