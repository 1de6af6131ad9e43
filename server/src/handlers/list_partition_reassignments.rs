//! ListPartitionReassignments (key 46, v0): the ongoing reassignments with their replicas,
//! adding and removing replicas, for all topics (null) or the partitions asked. Served by the
//! controller from what it holds (NOT_CONTROLLER elsewhere, as Kafka).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use super::error_codes::{topic_error_code, NONE};
use super::{RequestContext, ResponseFuture};
use crate::network::Response;

pub async fn handle(
    ctx: RequestContext,
    request: ListPartitionReassignmentsRequest,
) -> ResponseFuture {
    Box::pin(list(ctx, request))
}

async fn list(ctx: RequestContext, request: ListPartitionReassignmentsRequest) -> Response {
    // `None`: every partition.
    let wanted: Option<BTreeSet<(String, i32)>> = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partition_indexes
                    .iter()
                    .map(move |index| (topic.name.to_string(), *index))
            })
            .collect()
    });
    let response = match ctx.shard.broker.control.list_reassignments().await {
        Ok(ongoing) => {
            let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
            let ids = |list: &[i32]| list.iter().copied().map(BrokerId).collect::<Vec<_>>();
            for reassignment in ongoing {
                let key = (reassignment.topic.clone(), reassignment.partition);
                if wanted.as_ref().is_some_and(|wanted| !wanted.contains(&key)) {
                    continue;
                }
                by_topic
                    .entry(reassignment.topic.clone())
                    .or_default()
                    .push(
                        OngoingPartitionReassignment::default()
                            .with_partition_index(reassignment.partition)
                            .with_replicas(ids(&reassignment.replicas))
                            .with_adding_replicas(ids(&reassignment.adding))
                            .with_removing_replicas(ids(&reassignment.removing)),
                    );
            }
            let topics = by_topic
                .into_iter()
                .map(|(name, partitions)| {
                    OngoingTopicReassignment::default()
                        .with_name(TopicName(name.into()))
                        .with_partitions(partitions)
                })
                .collect();
            ListPartitionReassignmentsResponse::default()
                .with_error_code(NONE)
                .with_topics(topics)
        }
        Err(error) => ListPartitionReassignmentsResponse::default()
            .with_error_code(topic_error_code(&error))
            .with_error_message(Some(error.to_string().into())),
    };
    ctx.respond(&response)
}
