//! OffsetCommit (key 8): acknowledged once its record is durable in __consumer_offsets.
//!
//! A partition of a topic this broker does not know (or an index the topic does not have) gets
//! UNKNOWN_TOPIC_OR_PARTITION and is not stored, as in Kafka; the other partitions of the same
//! request are committed as usual. The check runs here, against this shard's metadata cache,
//! before the request goes to the group's coordinator.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::error_codes::code;
use super::group_route::{coordinator_partition, receive, submit};
use super::{RequestContext, ResponseFuture};
use crate::group::{Input, Response};
use crate::network::Response as Wire;

pub async fn handle(ctx: RequestContext, mut request: OffsetCommitRequest) -> ResponseFuture {
    let original = request.clone();
    let unknown = remove_unknown_partitions(&mut request, |topic, index| {
        ctx.shard
            .metadata
            .topic(topic)
            .is_some_and(|cached| cached.has_partition(index))
    });
    if request.topics.is_empty() {
        // Nothing left to commit: Kafka answers without asking the coordinator.
        let response = merge_response(&original, OffsetCommitResponse::default(), &unknown);
        return super::ready(ctx.respond(&response));
    }
    let partition = coordinator_partition(&ctx, &request.group_id);
    let pending = submit(&ctx, partition, move |group_ctx| {
        Input::OffsetCommit(group_ctx, request)
    })
    .await;
    Box::pin(async move {
        match receive(pending).await {
            Ok(Response::OffsetCommit(response)) => {
                ctx.respond(&merge_response(&original, response, &unknown))
            }
            Ok(other) => Wire::Close(format!("coordinator answered OffsetCommit with {other:?}")),
            Err(error_code) => ctx.respond(&error_response(&original, error_code, &unknown)),
        }
    })
}

/// (topic, partition) pairs the request named that do not exist.
type Unknown = Vec<(String, i32)>;

/// Takes the partitions `exists` denies out of `request` (and topics left with none); returns
/// them.
fn remove_unknown_partitions(
    request: &mut OffsetCommitRequest,
    exists: impl Fn(&str, i32) -> bool,
) -> Unknown {
    let mut unknown = Vec::new();
    for topic in &mut request.topics {
        topic.partitions.retain(|partition| {
            let known = exists(topic.name.as_str(), partition.partition_index);
            if !known {
                unknown.push((topic.name.to_string(), partition.partition_index));
            }
            known
        });
    }
    request.topics.retain(|topic| !topic.partitions.is_empty());
    unknown
}

/// The response in the request's order: the coordinator's answers, and
/// UNKNOWN_TOPIC_OR_PARTITION for the partitions taken out.
fn merge_response(
    request: &OffsetCommitRequest,
    coordinator: OffsetCommitResponse,
    unknown: &Unknown,
) -> OffsetCommitResponse {
    let unknown_code = code(ResponseError::UnknownTopicOrPartition);
    let answered: HashMap<(String, i32), i16> = coordinator
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|partition| {
                (
                    (topic.name.to_string(), partition.partition_index),
                    partition.error_code,
                )
            })
        })
        .collect();
    let error_of = |topic: &str, index: i32| {
        let key = (topic.to_string(), index);
        if unknown.contains(&key) {
            unknown_code
        } else {
            // Every committed partition is answered by the coordinator; should one be missing,
            // the client retries rather than believes it stored.
            answered
                .get(&key)
                .copied()
                .unwrap_or(code(ResponseError::UnknownServerError))
        }
    };
    respond_per_partition(request, coordinator.throttle_time_ms, error_of)
}

/// OffsetCommit carries its error per partition.
fn error_response(
    request: &OffsetCommitRequest,
    error_code: i16,
    unknown: &Unknown,
) -> OffsetCommitResponse {
    let unknown_code = code(ResponseError::UnknownTopicOrPartition);
    respond_per_partition(request, 0, |topic, index| {
        if unknown.contains(&(topic.to_string(), index)) {
            unknown_code
        } else {
            error_code
        }
    })
}

fn respond_per_partition(
    request: &OffsetCommitRequest,
    throttle_time_ms: i32,
    error_of: impl Fn(&str, i32) -> i16,
) -> OffsetCommitResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|partition| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(partition.partition_index)
                                .with_error_code(error_of(
                                    topic.name.as_str(),
                                    partition.partition_index,
                                ))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default()
        .with_throttle_time_ms(throttle_time_ms)
        .with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::TopicName;

    fn request(topics: &[(&str, &[i32])]) -> OffsetCommitRequest {
        OffsetCommitRequest::default().with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName::from(kafka_protocol::protocol::StrBytes::from(
                            name.to_string(),
                        )))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|index| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(*index)
                                        .with_committed_offset(5)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    fn codes(response: &OffsetCommitResponse) -> Vec<(String, i32, i16)> {
        response
            .topics
            .iter()
            .flat_map(|topic| {
                topic.partitions.iter().map(|partition| {
                    (
                        topic.name.to_string(),
                        partition.partition_index,
                        partition.error_code,
                    )
                })
            })
            .collect()
    }

    #[test]
    fn unknown_partitions_are_taken_out_and_answered_in_request_order() {
        let original = request(&[("gone", &[0]), ("orders", &[0, 7, 1])]);
        let mut filtered = original.clone();
        let unknown =
            remove_unknown_partitions(&mut filtered, |topic, index| topic == "orders" && index < 3);
        assert_eq!(
            unknown,
            vec![("gone".to_string(), 0), ("orders".to_string(), 7)]
        );
        // Only orders-0 and orders-1 reach the coordinator.
        assert_eq!(filtered.topics.len(), 1);
        assert_eq!(filtered.topics[0].partitions.len(), 2);
        let coordinator = respond_per_partition(&filtered, 0, |_, _| 0);
        let merged = merge_response(&original, coordinator, &unknown);
        assert_eq!(
            codes(&merged),
            vec![
                ("gone".to_string(), 0, 3),
                ("orders".to_string(), 0, 0),
                ("orders".to_string(), 7, 3),
                ("orders".to_string(), 1, 0),
            ]
        );
        let failed = error_response(&original, 15, &unknown);
        assert_eq!(codes(&failed)[1], ("orders".to_string(), 0, 15));
        assert_eq!(codes(&failed)[2], ("orders".to_string(), 7, 3));
    }
}
