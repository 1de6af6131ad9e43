//! AlterConfigs (key 33, v0–v2), the older form of IncrementalAlterConfigs: the configs given
//! replace every override the resource has (entries with a null value are skipped, as in
//! Kafka). Validation, error codes and `validate_only` as for the incremental form.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::incremental_alter_configs::alter_resource;
use super::{RequestContext, ResponseFuture};
use crate::broker::config_ops::ConfigChange;

pub async fn handle(ctx: RequestContext, request: AlterConfigsRequest) -> ResponseFuture {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let configs = resource
            .configs
            .iter()
            .filter_map(|config| {
                let value = config.value.as_ref()?;
                Some((config.name.to_string(), value.to_string()))
            })
            .collect();
        let (error_code, message) = alter_resource(
            &ctx,
            resource.resource_type,
            resource.resource_name.as_str(),
            Ok(ConfigChange::Replace(configs)),
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
    let response = AlterConfigsResponse::default().with_responses(responses);
    super::ready(ctx.respond(&response))
}
