//! IncrementalAlterConfigs (key 44, v0–v1): SET, DELETE, APPEND and SUBTRACT of single topic
//! configs, and of dynamic broker configs (`/config/brokers`, see `broker::dynamic_config`). Each resource succeeds or fails alone, with Kafka's error code; `validate_only`
//! checks everything and writes nothing. The control plane writes `/config/topics/<t>`, and
//! every broker holding a replica applies the change from its watch, without a restart.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::error_codes::{code, topic_error_code, ErrorCode, NONE};
use super::{RequestContext, ResponseFuture};
use crate::broker::config_ops::{AlterOp, ConfigChange};
use crate::broker::dynamic_config::broker_entity;
use crate::broker::topics::TopicError;

/// Kafka's ConfigResource types.
pub(super) const RESOURCE_TOPIC: i8 = 2;
pub(super) const RESOURCE_BROKER: i8 = 4;

/// Applies `change` to one resource; the error code and message of its response entry.
pub(super) async fn alter_resource(
    ctx: &RequestContext,
    resource_type: i8,
    resource_name: &str,
    change: Result<ConfigChange, TopicError>,
    validate_only: bool,
) -> (ErrorCode, Option<String>) {
    let outcome = match resource_type {
        RESOURCE_TOPIC => match change {
            Ok(change) => ctx
                .shard
                .broker
                .control
                .alter_topic_configs(resource_name.to_string(), change, validate_only)
                .await
                .map(|_| ()),
            Err(error) => Err(error),
        },
        // `""` is the cluster-wide default (`<default>`), else one broker's id.
        RESOURCE_BROKER => match (broker_entity(resource_name), change) {
            (Ok(entity), Ok(change)) => ctx
                .shard
                .broker
                .control
                .alter_broker_configs(entity, change, validate_only)
                .await
                .map(|_| ()),
            (Err(error), _) | (_, Err(error)) => Err(error),
        },
        other => {
            return (
                code(ResponseError::InvalidRequest),
                Some(format!("unsupported resource type {other}")),
            )
        }
    };
    match outcome {
        Ok(()) => (NONE, None),
        Err(error) => {
            tracing::info!(resource = resource_name, %error, validate_only, "config change refused");
            (topic_error_code(&error), Some(error.to_string()))
        }
    }
}

pub async fn handle(
    ctx: RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> ResponseFuture {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let change = resource
            .configs
            .iter()
            .map(|config| {
                AlterOp::from_wire(
                    config.name.as_str(),
                    config.config_operation,
                    config.value.as_ref().map(|value| value.as_str()),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map(ConfigChange::Incremental);
        let (error_code, message) = alter_resource(
            &ctx,
            resource.resource_type,
            resource.resource_name.as_str(),
            change,
            request.validate_only,
        )
        .await;
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(error_code)
                .with_error_message(message.map(Into::into))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    let response = IncrementalAlterConfigsResponse::default().with_responses(responses);
    super::ready(ctx.respond(&response))
}
