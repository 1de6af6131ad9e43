//! ElectLeaders (key 43, v0–v2): preferred (0) or unclean (1) leader election for some or all
//! partitions. The controller runs it; another broker answers NOT_CONTROLLER so the client
//! retries at the controller, as Kafka's admin clients do.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::error_codes::{code, topic_error_code, NONE};
use super::{RequestContext, ResponseFuture};
use crate::network::Response;

/// Kafka's `ElectionType`: 0 preferred, 1 unclean (v1+; v0 is always preferred).
const ELECTION_UNCLEAN: i8 = 1;

pub async fn handle(ctx: RequestContext, request: ElectLeadersRequest) -> ResponseFuture {
    Box::pin(elect_leaders(ctx, request))
}

async fn elect_leaders(ctx: RequestContext, request: ElectLeadersRequest) -> Response {
    let preferred = ctx.version() == 0 || request.election_type != ELECTION_UNCLEAN;
    let partitions: Option<Vec<(String, i32)>> = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(move |index| (topic.topic.to_string(), *index))
            })
            .collect()
    });
    let outcome = ctx
        .shard
        .broker
        .control
        .elect_leaders(preferred, partitions.clone())
        .await;
    let (error_code, results) = match outcome {
        Ok(results) => (NONE, results),
        Err(error) => {
            // The whole request failed (e.g. NOT_CONTROLLER): v0 has no top-level error, so
            // every partition carries it.
            let error_code = topic_error_code(&error);
            let message = error.to_string();
            let results = partitions
                .unwrap_or_default()
                .into_iter()
                .map(|partition| (partition, Err((error_code, message.clone()))))
                .collect();
            (error_code, results)
        }
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, index), result) in results {
        let entry = match result {
            Ok(_leader) => PartitionResult::default()
                .with_partition_id(index)
                .with_error_code(NONE),
            Err((error_code, message)) => PartitionResult::default()
                .with_partition_id(index)
                .with_error_code(error_code)
                .with_error_message(Some(message.into())),
        };
        by_topic.entry(topic).or_default().push(entry);
    }
    let replica_election_results = by_topic
        .into_iter()
        .map(|(topic, partition_result)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(topic.into()))
                .with_partition_result(partition_result)
        })
        .collect();
    let response =
        ElectLeadersResponse::default().with_replica_election_results(replica_election_results);
    let response = if ctx.version() >= 1 {
        response.with_error_code(if error_code == code(ResponseError::NotController) {
            error_code
        } else {
            NONE
        })
    } else {
        response
    };
    ctx.respond(&response)
}
