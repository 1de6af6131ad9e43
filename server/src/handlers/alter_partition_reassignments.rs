//! AlterPartitionReassignments (key 45, v0): start, change or cancel (null replicas) partition
//! reassignments (KIP-455). The controller runs them; another broker answers NOT_CONTROLLER so
//! the client retries at the controller, as Kafka's admin clients do. The answer comes once the
//! controller has written each reassignment's first step, not when it completes
//! (ListPartitionReassignments follows it).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, TopicName,
};

use super::error_codes::{topic_error_code, NONE};
use super::{RequestContext, ResponseFuture};
use crate::control_plane::ReassignmentChange;
use crate::network::Response;

pub async fn handle(
    ctx: RequestContext,
    request: AlterPartitionReassignmentsRequest,
) -> ResponseFuture {
    Box::pin(alter(ctx, request))
}

async fn alter(ctx: RequestContext, request: AlterPartitionReassignmentsRequest) -> Response {
    let changes: Vec<ReassignmentChange> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |partition| {
                (
                    (topic.name.to_string(), partition.partition_index),
                    partition
                        .replicas
                        .as_ref()
                        .map(|replicas| replicas.iter().map(|id| id.0).collect()),
                )
            })
        })
        .collect();
    let outcome = ctx
        .shard
        .broker
        .control
        .alter_reassignments(changes.clone())
        .await;
    let response = match outcome {
        Ok(results) => {
            let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> =
                BTreeMap::new();
            for ((topic, index), result) in results {
                let entry = ReassignablePartitionResponse::default().with_partition_index(index);
                let entry = match result {
                    Ok(()) => entry.with_error_code(NONE),
                    Err((error_code, message)) => entry
                        .with_error_code(error_code)
                        .with_error_message(Some(message.into())),
                };
                by_topic.entry(topic).or_default().push(entry);
            }
            AlterPartitionReassignmentsResponse::default()
                .with_error_code(NONE)
                .with_responses(topic_responses(by_topic))
        }
        Err(error) => {
            // The whole request failed (NOT_CONTROLLER, a busy control plane): the top-level
            // error says so, as Kafka does, with no per-partition answers.
            AlterPartitionReassignmentsResponse::default()
                .with_error_code(topic_error_code(&error))
                .with_error_message(Some(error.to_string().into()))
        }
    };
    ctx.respond(&response)
}

fn topic_responses(
    by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>>,
) -> Vec<ReassignableTopicResponse> {
    by_topic
        .into_iter()
        .map(|(name, partitions)| {
            ReassignableTopicResponse::default()
                .with_name(TopicName(name.into()))
                .with_partitions(partitions)
        })
        .collect()
}
