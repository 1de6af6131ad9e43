//! Admin operations: topics, configs, offsets, groups and cluster description.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest,
    ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::assignor::decode_assignment;
use super::cluster::{BrokerInfo, Client, TopicInfo};
use super::connection::Connection;
use super::errors::{check, ClientError, KafkaCode, Result};

/// Longest time the broker may take to create or delete topics before answering.
const ADMIN_TIMEOUT_MS: i32 = 30_000;

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// A topic to create. `None` leaves the choice to the broker's defaults (CreateTopics v4+).
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    pub configs: Vec<(String, String)>,
}

/// What the broker reported for a created topic.
#[derive(Debug, Clone)]
pub struct CreatedTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
}

#[derive(Debug, Clone)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    /// Not set on the topic itself (its value comes from the broker or the built-in default).
    pub is_default: bool,
    pub is_sensitive: bool,
    /// Where the value comes from, as DescribeConfigs names it (`topic`, `static-broker`...).
    pub source: &'static str,
}

/// DescribeConfigs' `config_source` as a word.
fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "topic",
        2 => "dynamic-broker",
        3 => "dynamic-default-broker",
        4 => "static-broker",
        5 => "default",
        _ => "unknown",
    }
}

/// Where to look up an offset (ListOffsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at or after this time.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    /// Empty when the broker's ListGroups version predates states (v4).
    pub state: String,
}

#[derive(Debug, Clone)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Decoded from the member's assignment when the group uses the "consumer" protocol.
    pub assignment: Vec<(String, i32)>,
}

#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<GroupMember>,
    pub coordinator: String,
}

#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: Vec<BrokerInfo>,
    pub topics: Vec<TopicInfo>,
}

/// A partition as `cluster info` reports it: where it is and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionReplicas {
    pub topic: String,
    pub partition: i32,
    /// -1: no leader (offline).
    pub leader: i32,
    pub leader_epoch: i32,
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Assigned replicas on brokers that are not live.
    pub offline_replicas: Vec<i32>,
}

impl ClusterInfo {
    /// Partitions without a leader (leader -1), ordered by topic and partition.
    pub fn offline_partitions(&self) -> Vec<PartitionReplicas> {
        self.partitions_where(|partition| partition.leader < 0)
    }

    /// Partitions whose ISR is smaller than their replica set, ordered by topic and partition.
    pub fn under_replicated_partitions(&self) -> Vec<PartitionReplicas> {
        self.partitions_where(|partition| partition.isr.len() < partition.replicas.len())
    }

    fn partitions_where(
        &self,
        wanted: impl Fn(&super::cluster::PartitionInfo) -> bool,
    ) -> Vec<PartitionReplicas> {
        let mut found: Vec<PartitionReplicas> = self
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .filter(|partition| wanted(partition))
                    .map(|partition| PartitionReplicas {
                        topic: topic.name.clone(),
                        partition: partition.id,
                        leader: partition.leader,
                        leader_epoch: partition.leader_epoch,
                        replicas: partition.replicas.clone(),
                        isr: partition.isr.clone(),
                        offline_replicas: partition.offline.clone(),
                    })
            })
            .collect();
        found.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        found
    }
}

/// Topic and partition.
pub type TopicPartition = (String, i32);

/// Admin operations on a [`Client`].
#[derive(Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub fn new(client: Client) -> Admin {
        Admin { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The controller (where topic changes go), or any broker when none is known.
    async fn controller(&self) -> Result<Arc<Connection>> {
        let metadata = self.client.refresh_metadata(Some(&[])).await?;
        if metadata.controller_id >= 0 {
            if let Ok(connection) = self.client.broker_connection(metadata.controller_id).await {
                return Ok(connection);
            }
        }
        self.client.any_connection().await
    }

    pub async fn create_topic(&self, spec: &NewTopic) -> Result<CreatedTopic> {
        if spec.name.is_empty() {
            return Err(ClientError::InvalidArgument(
                "topic name must not be empty".into(),
            ));
        }
        let connection = self.controller().await?;
        let version = connection.version::<CreateTopicsRequest>()?;
        let mut topic = CreatableTopic::default();
        topic.name = topic_name(&spec.name);
        // Before v4 the broker has no defaults to apply: fall back to Kafka's (1 and 1).
        topic.num_partitions = spec.partitions.unwrap_or(if version >= 4 { -1 } else { 1 });
        topic.replication_factor =
            spec.replication_factor
                .unwrap_or(if version >= 4 { -1 } else { 1 });
        topic.configs = spec
            .configs
            .iter()
            .map(|(name, value)| {
                let mut config = CreatableTopicConfig::default();
                config.name = str_bytes(name);
                config.value = Some(str_bytes(value));
                config
            })
            .collect();
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![topic];
        request.timeout_ms = ADMIN_TIMEOUT_MS;
        let response = connection.send_version(&request, version).await?;
        let result = response
            .topics
            .into_iter()
            .find(|t| t.name.0.as_str() == spec.name)
            .ok_or_else(|| ClientError::Protocol {
                addr: connection.addr().into(),
                reason: "CreateTopics response lacks the topic".into(),
            })?;
        if result.error_code != 0 {
            return Err(ClientError::kafka(
                format!("create topic '{}'", spec.name),
                result.error_code,
                result.error_message.map(|m| m.to_string()),
            ));
        }
        Ok(CreatedTopic {
            name: spec.name.clone(),
            partitions: if version >= 5 {
                result.num_partitions
            } else {
                topic_partitions_or(spec.partitions)
            },
            replication_factor: if version >= 5 {
                result.replication_factor
            } else {
                spec.replication_factor.unwrap_or(1)
            },
        })
    }

    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        // Fail clearly (and before touching anything) for a topic that is not there.
        self.client.topic(name).await?;
        let connection = self.controller().await?;
        let mut request = DeleteTopicsRequest::default();
        request.topic_names = vec![topic_name(name)];
        request.timeout_ms = ADMIN_TIMEOUT_MS;
        let response = connection.send(&request).await?;
        for result in response.responses {
            if result.error_code != 0 {
                return Err(ClientError::kafka(
                    format!("delete topic '{name}'"),
                    result.error_code,
                    result.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }

    /// Grows a topic to `total_partitions`.
    pub async fn create_partitions(&self, name: &str, total_partitions: i32) -> Result<()> {
        let current = self.client.topic(name).await?;
        let current_count = current.partitions.len();
        if usize::try_from(total_partitions).map_or(true, |total| total <= current_count) {
            return Err(ClientError::InvalidArgument(format!(
                "topic '{name}' has {current_count} partitions; the new count must be larger (got {total_partitions})"
            )));
        }
        let connection = self.controller().await?;
        let mut topic = CreatePartitionsTopic::default();
        topic.name = topic_name(name);
        topic.count = total_partitions;
        topic.assignments = None;
        let mut request = CreatePartitionsRequest::default();
        request.topics = vec![topic];
        request.timeout_ms = ADMIN_TIMEOUT_MS;
        let response = connection.send(&request).await?;
        for result in response.results {
            if result.error_code != 0 {
                return Err(ClientError::kafka(
                    format!("add partitions to '{name}'"),
                    result.error_code,
                    result.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }

    /// Every topic (internal ones too when asked), sorted by name.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<TopicInfo>> {
        let metadata = self.client.refresh_metadata(None).await?;
        Ok(metadata
            .topics
            .values()
            .filter(|t| include_internal || !t.is_internal)
            .cloned()
            .collect())
    }

    pub async fn describe_topic(&self, name: &str) -> Result<TopicInfo> {
        self.client.topic(name).await
    }

    /// The topic's configuration as the broker reports it (DescribeConfigs).
    pub async fn topic_configs(&self, name: &str) -> Result<Vec<ConfigEntry>> {
        let connection = self.client.any_connection().await?;
        if !connection.versions().offers(ApiKey::DescribeConfigs) {
            return Ok(Vec::new());
        }
        let mut resource = DescribeConfigsResource::default();
        resource.resource_type = 2; // TOPIC
        resource.resource_name = str_bytes(name);
        resource.configuration_keys = None;
        let mut request = DescribeConfigsRequest::default();
        request.resources = vec![resource];
        let response = connection.send(&request).await?;
        let mut entries = Vec::new();
        for result in response.results {
            if result.error_code != 0 {
                return Err(ClientError::kafka(
                    format!("configs of topic '{name}'"),
                    result.error_code,
                    result.error_message.map(|m| m.to_string()),
                ));
            }
            for config in result.configs {
                entries.push(ConfigEntry {
                    name: config.name.to_string(),
                    value: config.value.map(|v| v.to_string()),
                    read_only: config.read_only,
                    // Source 1 (DYNAMIC_TOPIC_CONFIG) is a value set on the topic itself.
                    is_default: config.config_source != 1,
                    is_sensitive: config.is_sensitive,
                    source: config_source_name(config.config_source),
                });
            }
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// Changes a topic's configs (IncrementalAlterConfigs): `set` are SET operations, `delete`
    /// DELETE ones (back to the broker's value). Any broker takes the change; every broker
    /// holding a replica applies it without a restart.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<()> {
        let connection = self.client.any_connection().await?;
        if !connection
            .versions()
            .offers(ApiKey::IncrementalAlterConfigs)
        {
            return Err(ClientError::InvalidArgument(
                "the broker does not offer IncrementalAlterConfigs".into(),
            ));
        }
        let mut configs: Vec<AlterableConfig> = set
            .iter()
            .map(|(key, value)| {
                let mut config = AlterableConfig::default();
                config.name = str_bytes(key);
                config.config_operation = 0; // SET
                config.value = Some(str_bytes(value));
                config
            })
            .collect();
        configs.extend(delete.iter().map(|key| {
            let mut config = AlterableConfig::default();
            config.name = str_bytes(key);
            config.config_operation = 1; // DELETE
            config
        }));
        let mut resource = AlterConfigsResource::default();
        resource.resource_type = 2; // TOPIC
        resource.resource_name = str_bytes(name);
        resource.configs = configs;
        let mut request = IncrementalAlterConfigsRequest::default();
        request.resources = vec![resource];
        let response = connection.send(&request).await?;
        for result in response.responses {
            if result.error_code != 0 {
                return Err(ClientError::kafka(
                    format!("alter configs of topic '{name}'"),
                    result.error_code,
                    result.error_message.map(|m| m.to_string()),
                ));
            }
        }
        Ok(())
    }

    /// Offsets of partitions of one topic (all partitions when `partitions` is empty).
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, i64>> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.list_offsets_once(topic, partitions, spec).await {
                Err(error) if error.is_retriable() && tries <= self.client.config().retries_max => {
                    self.client.backoff().await;
                }
                other => return other,
            }
        }
    }

    async fn list_offsets_once(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, i64>> {
        let info = self.client.topic(topic).await?;
        let wanted: Vec<i32> = if partitions.is_empty() {
            info.partitions.iter().map(|p| p.id).collect()
        } else {
            partitions.to_vec()
        };
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for &partition in &wanted {
            let leader = self.client.leader_of(topic, partition)?;
            by_leader.entry(leader).or_default().push(partition);
        }
        let mut out = BTreeMap::new();
        for (leader, ids) in by_leader {
            let connection = self.client.broker_connection(leader).await?;
            let mut request_topic = ListOffsetsTopic::default();
            request_topic.name = topic_name(topic);
            request_topic.partitions = ids
                .iter()
                .map(|&id| {
                    let mut partition = ListOffsetsPartition::default();
                    partition.partition_index = id;
                    partition.timestamp = spec.wire();
                    partition
                })
                .collect();
            let mut request = ListOffsetsRequest::default();
            request.replica_id = BrokerId(-1);
            request.topics = vec![request_topic];
            let version = connection.version::<ListOffsetsRequest>()?;
            if version >= 10 {
                request.timeout_ms = ADMIN_TIMEOUT_MS;
            }
            let response = connection.send_version(&request, version).await?;
            for response_topic in response.topics {
                for partition in response_topic.partitions {
                    if partition.error_code != 0 {
                        if KafkaCode(partition.error_code).is_retriable() {
                            let _ = self
                                .client
                                .refresh_metadata(Some(&[topic.to_string()]))
                                .await;
                        }
                        return Err(ClientError::kafka(
                            format!("offsets of {topic}-{}", partition.partition_index),
                            partition.error_code,
                            None,
                        ));
                    }
                    out.insert(partition.partition_index, partition.offset);
                }
            }
        }
        Ok(out)
    }

    /// The coordinator of a consumer group, retrying while it loads or is unavailable.
    pub async fn find_coordinator(&self, group: &str) -> Result<Arc<Connection>> {
        find_coordinator(&self.client, group).await
    }

    /// Groups on every broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let metadata = self.client.refresh_metadata(Some(&[])).await?;
        let mut groups = Vec::new();
        for broker in metadata.brokers.values() {
            let connection = self.client.connection_to(&broker.addr()).await?;
            let response = connection.send(&ListGroupsRequest::default()).await?;
            check(response.error_code, || {
                format!("list groups on broker {}", broker.id)
            })?;
            for group in response.groups {
                groups.push(GroupListing {
                    group_id: group.group_id.0.to_string(),
                    protocol_type: group.protocol_type.to_string(),
                    state: group.group_state.to_string(),
                });
            }
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(groups)
    }

    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let connection = self.find_coordinator(group).await?;
        let mut request = DescribeGroupsRequest::default();
        request.groups = vec![GroupId(str_bytes(group))];
        let response = connection.send(&request).await?;
        let described =
            response
                .groups
                .into_iter()
                .next()
                .ok_or_else(|| ClientError::Protocol {
                    addr: connection.addr().into(),
                    reason: "DescribeGroups response is empty".into(),
                })?;
        check(described.error_code, || format!("describe group '{group}'"))?;
        let is_consumer = described.protocol_type.as_str() == "consumer";
        let mut members = Vec::new();
        for member in described.members {
            let assignment = if is_consumer {
                decode_assignment(&member.member_assignment).unwrap_or_default()
            } else {
                Vec::new()
            };
            members.push(GroupMember {
                member_id: member.member_id.to_string(),
                group_instance_id: member.group_instance_id.map(|i| i.to_string()),
                client_id: member.client_id.to_string(),
                client_host: member.client_host.to_string(),
                assignment,
            });
        }
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: described.group_state.to_string(),
            protocol_type: described.protocol_type.to_string(),
            protocol: described.protocol_data.to_string(),
            members,
            coordinator: connection.addr().to_string(),
        })
    }

    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let connection = self.find_coordinator(group).await?;
        let mut request = DeleteGroupsRequest::default();
        request.groups_names = vec![GroupId(str_bytes(group))];
        let response = connection.send(&request).await?;
        for result in response.results {
            check(result.error_code, || format!("delete group '{group}'"))?;
        }
        Ok(())
    }

    /// Committed offsets of a group (`None` topics = every topic the group has offsets for).
    /// Partitions without a committed offset are left out.
    pub async fn committed_offsets(
        &self,
        group: &str,
        topics: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let connection = self.find_coordinator(group).await?;
        fetch_committed(&connection, group, topics).await
    }

    /// Commits offsets as an admin tool does (generation -1, no member id): accepted only while
    /// the group has no active members.
    pub async fn commit_offsets(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        let connection = self.find_coordinator(group).await?;
        commit(&connection, group, -1, "", offsets).await
    }

    /// Brokers, controller and topics.
    pub async fn cluster_info(&self) -> Result<ClusterInfo> {
        let metadata = self.client.refresh_metadata(None).await?;
        let mut brokers: Vec<BrokerInfo> = metadata.brokers.values().cloned().collect();
        let mut controller_id = metadata.controller_id;
        let mut cluster_id = metadata.cluster_id.clone();
        let connection = self.client.any_connection().await?;
        if connection.versions().offers(ApiKey::DescribeCluster) {
            if let Ok(response) = connection.send(&DescribeClusterRequest::default()).await {
                if response.error_code == 0 {
                    controller_id = response.controller_id.0;
                    cluster_id = Some(response.cluster_id.to_string());
                    brokers = response
                        .brokers
                        .into_iter()
                        .map(|b| BrokerInfo {
                            id: b.broker_id.0,
                            host: b.host.to_string(),
                            port: b.port,
                            rack: b.rack.map(|r| r.to_string()),
                        })
                        .collect();
                }
            }
        }
        brokers.sort_by_key(|b| b.id);
        Ok(ClusterInfo {
            cluster_id,
            controller_id,
            brokers,
            topics: metadata.topics.values().cloned().collect(),
        })
    }
}

fn topic_partitions_or(partitions: Option<i32>) -> i32 {
    partitions.unwrap_or(1)
}

/// FindCoordinator for a group, retrying while the coordinator loads or is not available;
/// returns the pooled connection to it.
pub async fn find_coordinator(client: &Client, group: &str) -> Result<Arc<Connection>> {
    let addr = find_coordinator_addr(client, group).await?;
    client.connection_to(&addr).await
}

/// The address of a group's coordinator (FindCoordinator, with retries).
pub async fn find_coordinator_addr(client: &Client, group: &str) -> Result<String> {
    let mut tries = 0;
    loop {
        tries += 1;
        let connection = client.any_connection().await?;
        let version = connection.version::<FindCoordinatorRequest>()?;
        let mut request = FindCoordinatorRequest::default();
        if version >= 4 {
            request.coordinator_keys = vec![str_bytes(group)];
        } else {
            request.key = str_bytes(group);
        }
        let response = connection.send_version(&request, version).await?;
        let (code, message, node_id, host, port) =
            if version >= 4 {
                let coordinator = response.coordinators.into_iter().next().ok_or_else(|| {
                    ClientError::Protocol {
                        addr: connection.addr().into(),
                        reason: "FindCoordinator response is empty".into(),
                    }
                })?;
                (
                    coordinator.error_code,
                    coordinator.error_message,
                    coordinator.node_id.0,
                    coordinator.host,
                    coordinator.port,
                )
            } else {
                (
                    response.error_code,
                    response.error_message,
                    response.node_id.0,
                    response.host,
                    response.port,
                )
            };
        if code == 0 {
            let addr = BrokerInfo {
                id: node_id,
                host: host.to_string(),
                port,
                rack: None,
            }
            .addr();
            return Ok(addr);
        }
        let retriable = code == KafkaCode::COORDINATOR_NOT_AVAILABLE
            || code == KafkaCode::COORDINATOR_LOAD_IN_PROGRESS
            || code == KafkaCode::NOT_COORDINATOR;
        if !retriable || tries > client.config().retries_max {
            return Err(ClientError::kafka(
                format!("find coordinator of group '{group}'"),
                code,
                message.map(|m| m.to_string()),
            ));
        }
        client.backoff().await;
    }
}

/// OffsetFetch on a coordinator connection.
pub async fn fetch_committed(
    connection: &Connection,
    group: &str,
    topics: Option<&[TopicPartition]>,
) -> Result<BTreeMap<TopicPartition, i64>> {
    let version = connection.version::<OffsetFetchRequest>()?;
    let mut request = OffsetFetchRequest::default();
    request.group_id = GroupId(str_bytes(group));
    request.topics = match topics {
        None if version >= 2 => None,
        None => {
            return Err(ClientError::InvalidArgument(
                "this broker cannot list all of a group's offsets (OffsetFetch v1)".into(),
            ))
        }
        Some(partitions) => {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (topic, partition) in partitions {
                by_topic.entry(topic.as_str()).or_default().push(*partition);
            }
            Some(
                by_topic
                    .into_iter()
                    .map(|(topic, ids)| {
                        let mut entry = OffsetFetchRequestTopic::default();
                        entry.name = topic_name(topic);
                        entry.partition_indexes = ids;
                        entry
                    })
                    .collect(),
            )
        }
    };
    let response = connection.send_version(&request, version).await?;
    if version >= 2 {
        check(response.error_code, || {
            format!("committed offsets of group '{group}'")
        })?;
    }
    let mut out = BTreeMap::new();
    for topic in response.topics {
        for partition in topic.partitions {
            check(partition.error_code, || {
                format!(
                    "committed offset of group '{group}' for {}-{}",
                    topic.name.0, partition.partition_index
                )
            })?;
            if partition.committed_offset >= 0 {
                out.insert(
                    (topic.name.0.to_string(), partition.partition_index),
                    partition.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

/// OffsetCommit on a coordinator connection.
pub async fn commit(
    connection: &Connection,
    group: &str,
    generation_id: i32,
    member_id: &str,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, partition), offset) in offsets {
        let mut entry = OffsetCommitRequestPartition::default();
        entry.partition_index = *partition;
        entry.committed_offset = *offset;
        entry.committed_metadata = Some(StrBytes::from_static_str(""));
        by_topic.entry(topic.as_str()).or_default().push(entry);
    }
    let mut request = OffsetCommitRequest::default();
    request.group_id = GroupId(str_bytes(group));
    request.generation_id_or_member_epoch = generation_id;
    request.member_id = str_bytes(member_id);
    request.topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            let mut entry = OffsetCommitRequestTopic::default();
            entry.name = topic_name(topic);
            entry.partitions = partitions;
            entry
        })
        .collect();
    let response = connection.send(&request).await?;
    for topic in response.topics {
        for partition in topic.partitions {
            check(partition.error_code, || {
                format!(
                    "commit offset of group '{group}' for {}-{}",
                    topic.name.0, partition.partition_index
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::cluster::PartitionInfo;

    fn partition(id: i32, leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionInfo {
        PartitionInfo {
            id,
            error_code: 0,
            leader,
            leader_epoch: 4,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            offline: replicas
                .iter()
                .copied()
                .filter(|replica| !isr.contains(replica))
                .collect(),
        }
    }

    fn topic(name: &str, partitions: Vec<PartitionInfo>) -> TopicInfo {
        TopicInfo {
            name: name.to_owned(),
            id: uuid::Uuid::nil(),
            is_internal: false,
            partitions,
        }
    }

    #[test]
    fn offline_and_under_replicated_partitions_are_picked_and_ordered() {
        let info = ClusterInfo {
            cluster_id: None,
            controller_id: 1,
            brokers: Vec::new(),
            topics: vec![
                topic(
                    "b",
                    vec![
                        partition(0, 1, &[1, 2, 3], &[1, 2, 3]),
                        partition(1, -1, &[2, 3], &[3]),
                    ],
                ),
                topic(
                    "a",
                    vec![
                        partition(2, 1, &[1, 2], &[1]),
                        partition(0, 2, &[2, 1], &[2]),
                    ],
                ),
            ],
        };
        let offline = info.offline_partitions();
        assert_eq!(offline.len(), 1);
        assert_eq!(
            offline[0],
            PartitionReplicas {
                topic: "b".into(),
                partition: 1,
                leader: -1,
                leader_epoch: 4,
                replicas: vec![2, 3],
                isr: vec![3],
                offline_replicas: vec![2],
            }
        );
        let under: Vec<(String, i32)> = info
            .under_replicated_partitions()
            .into_iter()
            .map(|p| (p.topic, p.partition))
            .collect();
        assert_eq!(
            under,
            vec![("a".into(), 0), ("a".into(), 2), ("b".into(), 1)],
            "a fully replicated partition is not listed; order is topic, partition"
        );
    }
}
