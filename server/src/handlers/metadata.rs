//! Metadata (key 3, v0–v12): brokers, the controller, and topics with their partitions' leaders.
//! Unknown topics are created when auto.create.topics.enable and the request allows it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::error_codes::{code, topic_error_code, NONE};
use super::topic_admin::auto_create_topic;
use super::{ready, RequestContext, ResponseFuture};
use crate::broker::metadata_cache::ClusterMembers;
use crate::broker::topics::{PartitionView, TopicMetadata, NO_LEADER};

/// Kafka's value for "authorized operations not requested".
const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

fn topic_entry(
    topic: &TopicMetadata,
    members: &ClusterMembers,
    version: i16,
) -> MetadataResponseTopic {
    let partitions = topic
        .partition_states
        .iter()
        .zip(0..)
        .map(|(state, index)| partition_entry(state, index, members, version))
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(NONE)
        .with_name(Some(TopicName(topic.name.clone().into())))
        .with_topic_id(if version >= 10 {
            topic.id
        } else {
            uuid::Uuid::nil()
        })
        .with_is_internal(version >= 1 && topic.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

/// One partition: its leader (LEADER_NOT_AVAILABLE when it has none or the leader is not live),
/// replicas, ISR, and the replicas whose brokers are down.
fn partition_entry(
    state: &PartitionView,
    index: i32,
    members: &ClusterMembers,
    version: i16,
) -> MetadataResponsePartition {
    let leader_live = state.leader != NO_LEADER && members.is_live(state.leader);
    let brokers = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let offline: Vec<i32> = state
        .replicas
        .iter()
        .copied()
        .filter(|replica| !members.is_live(*replica))
        .collect();
    MetadataResponsePartition::default()
        .with_error_code(if leader_live {
            NONE
        } else {
            code(ResponseError::LeaderNotAvailable)
        })
        .with_partition_index(index)
        .with_leader_id(BrokerId(if leader_live { state.leader } else { NO_LEADER }))
        .with_leader_epoch(if version >= 7 { state.leader_epoch } else { -1 })
        .with_replica_nodes(brokers(&state.replicas))
        .with_isr_nodes(brokers(&state.isr))
        .with_offline_replicas(if version >= 5 {
            brokers(&offline)
        } else {
            Vec::new()
        })
}

fn error_entry(
    name: Option<String>,
    topic_id: uuid::Uuid,
    error_code: i16,
    version: i16,
) -> MetadataResponseTopic {
    let topic_id = if version >= 10 {
        topic_id
    } else {
        uuid::Uuid::nil()
    };
    MetadataResponseTopic::default()
        .with_error_code(error_code)
        .with_name(name.map(|name| TopicName(name.into())))
        .with_topic_id(topic_id)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}

pub async fn handle(ctx: RequestContext, request: MetadataRequest) -> ResponseFuture {
    let broker = &ctx.shard.broker;
    let members = ctx.shard.metadata.members();
    // Before v4 the request has no flag: topics are auto-created.
    let auto_create = broker.config.auto_create_topics_enable
        && (ctx.version() < 4 || request.allow_auto_topic_creation);
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => ctx.version() == 0 && topics.is_empty(),
    };
    let mut topics = Vec::new();
    if all_topics {
        topics.extend(
            ctx.shard
                .metadata
                .topics()
                .iter()
                .map(|topic| topic_entry(&topic.metadata, &members, ctx.version())),
        );
    } else {
        for wanted in request.topics.unwrap_or_default() {
            let entry = match wanted.name.as_ref().map(|name| name.to_string()) {
                Some(name) => match ctx.shard.metadata.topic(&name) {
                    Some(topic) => topic_entry(&topic.metadata, &members, ctx.version()),
                    None if auto_create => match auto_create_topic(&ctx.shard, &name).await {
                        Ok(topic) => topic_entry(&topic, &members, ctx.version()),
                        Err(error) => error_entry(
                            Some(name),
                            uuid::Uuid::nil(),
                            topic_error_code(&error),
                            ctx.version(),
                        ),
                    },
                    None => error_entry(
                        Some(name),
                        uuid::Uuid::nil(),
                        code(ResponseError::UnknownTopicOrPartition),
                        ctx.version(),
                    ),
                },
                None => match ctx.shard.metadata.topic_by_id(wanted.topic_id) {
                    Some(topic) => topic_entry(&topic.metadata, &members, ctx.version()),
                    None => error_entry(
                        None,
                        wanted.topic_id,
                        code(ResponseError::UnknownTopicId),
                        ctx.version(),
                    ),
                },
            };
            topics.push(entry);
        }
    }
    // Members are read again: an auto-creation above may have waited for a change.
    let members = ctx.shard.metadata.members();
    let brokers = members
        .brokers
        .iter()
        .map(|broker| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(broker.id))
                .with_host(broker.host.clone().into())
                .with_port(i32::from(broker.port))
        })
        .collect();
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id((ctx.version() >= 2).then(|| broker.cluster_id.clone().into()))
        .with_controller_id(BrokerId(if ctx.version() >= 1 {
            members.controller_id
        } else {
            -1
        }))
        .with_topics(topics)
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED);
    ready(ctx.respond(&response))
}
