//! Reading the cluster's znodes into the broker's view: live brokers, the controller, and each
//! topic's assignment, configs and partition states. A znode that does not decode is reported
//! with its path and skipped; it never takes the broker down.

use std::collections::{BTreeMap, BTreeSet};

use crate::broker::metadata_cache::{BrokerEndpoint, ClusterMembers};
use crate::broker::topics::{PartitionView, TopicMetadata, NO_LEADER};
use crate::cluster::znodes::{
    self, BrokerRegistration, ControllerZnode, PartitionState, TopicAssignment, TopicConfig,
};
use crate::coordination::{Coordination, CoordinationError};

/// A topic as the store holds it: assignment, configs and the state znodes (with versions).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTopic {
    pub id: uuid::Uuid,
    pub assignment: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
    /// Per partition; `None` until the controller wrote the first state.
    pub states: Vec<Option<PartitionState>>,
    /// The version of `/brokers/topics/<t>` read.
    pub zk_version: i32,
    /// An ongoing reassignment's replicas being added / removed, by partition.
    pub adding_replicas: BTreeMap<i32, Vec<i32>>,
    pub removing_replicas: BTreeMap<i32, Vec<i32>>,
}

impl StoredTopic {
    /// The view of it that shards use.
    pub fn to_metadata(&self, name: &str) -> TopicMetadata {
        let partition_states: Vec<PartitionView> = self
            .assignment
            .iter()
            .zip(&self.states)
            .map(|(replicas, state)| match state {
                Some(state) => PartitionView {
                    replicas: replicas.clone(),
                    leader: state.leader,
                    leader_epoch: state.leader_epoch,
                    isr: state.isr.clone(),
                    controller_epoch: state.controller_epoch,
                    zk_version: state.zk_version,
                },
                None => PartitionView::unelected(replicas.clone()),
            })
            .collect();
        TopicMetadata {
            name: name.to_string(),
            id: self.id,
            partitions: i32::try_from(partition_states.len()).unwrap_or(i32::MAX),
            replication_factor: self.assignment.first().map_or(0, |replicas| {
                i16::try_from(replicas.len()).unwrap_or(i16::MAX)
            }),
            configs: self.configs.clone(),
            partition_states,
        }
    }
}

/// The live brokers with their epochs (registration czxid).
pub async fn read_brokers(
    coordination: &Coordination,
) -> Result<BTreeMap<i32, (BrokerRegistration, i64)>, CoordinationError> {
    let mut brokers = BTreeMap::new();
    for child in coordination.children(znodes::BROKER_IDS_PATH).await? {
        let Ok(id) = child.parse::<i32>() else {
            tracing::warn!(path = %format!("{}/{child}", znodes::BROKER_IDS_PATH), "ignoring a znode that is not a broker id");
            continue;
        };
        let path = znodes::broker_path(id);
        match coordination.get(&path).await {
            Ok((data, stat)) => match BrokerRegistration::decode(&path, &data) {
                Ok(registration) => {
                    brokers.insert(id, (registration, stat.created_txid as i64));
                }
                Err(error) => tracing::warn!(%error, "ignoring a broker registration"),
            },
            // Gone between the listing and the read.
            Err(CoordinationError::NoNode { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(brokers)
}

/// The controller's broker id and the node's own version, or -1 when none is elected.
pub async fn read_controller(coordination: &Coordination) -> Result<i32, CoordinationError> {
    match coordination.get(znodes::CONTROLLER_PATH).await {
        Ok((data, _)) => Ok(ControllerZnode::decode(znodes::CONTROLLER_PATH, &data)
            .map(|controller| controller.broker_id)
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "unreadable controller znode");
                NO_LEADER
            })),
        Err(CoordinationError::NoNode { .. }) => Ok(NO_LEADER),
        Err(error) => Err(error),
    }
}

/// Members as clients see them: the live brokers' PLAINTEXT endpoints and the controller.
pub fn members(
    brokers: &BTreeMap<i32, (BrokerRegistration, i64)>,
    controller_id: i32,
) -> ClusterMembers {
    ClusterMembers {
        brokers: brokers
            .iter()
            .filter_map(|(id, (registration, epoch))| {
                let endpoint = registration
                    .endpoint("PLAINTEXT")
                    .or_else(|| registration.endpoints.first())?;
                Some(BrokerEndpoint {
                    id: *id,
                    host: endpoint.host.clone(),
                    port: u16::try_from(endpoint.port).ok()?,
                    epoch: *epoch,
                })
            })
            .collect(),
        controller_id,
    }
}

/// The names of every topic.
pub async fn read_topic_names(
    coordination: &Coordination,
) -> Result<BTreeSet<String>, CoordinationError> {
    Ok(coordination
        .children(znodes::BROKER_TOPICS_PATH)
        .await?
        .into_iter()
        .collect())
}

/// Topics marked for deletion (`/admin/delete_topics/<t>`).
pub async fn read_deleting(
    coordination: &Coordination,
) -> Result<BTreeSet<String>, CoordinationError> {
    match coordination.children(znodes::DELETE_TOPICS_PATH).await {
        Ok(children) => Ok(children.into_iter().collect()),
        Err(CoordinationError::NoNode { .. }) => Ok(BTreeSet::new()),
        Err(error) => Err(error),
    }
}

/// One topic, or `None` if it does not exist (or its assignment does not decode).
pub async fn read_topic(
    coordination: &Coordination,
    name: &str,
) -> Result<Option<StoredTopic>, CoordinationError> {
    let path = znodes::topic_path(name);
    let (data, stat) = match coordination.get(&path).await {
        Ok(found) => found,
        Err(CoordinationError::NoNode { .. }) => return Ok(None),
        Err(error) => return Err(error),
    };
    let assignment = match TopicAssignment::decode(&path, &data) {
        Ok(assignment) => assignment,
        Err(error) => {
            tracing::error!(%error, "ignoring a topic whose assignment does not decode");
            return Ok(None);
        }
    };
    let configs = read_topic_config(coordination, name).await?;
    let mut states = Vec::with_capacity(assignment.partitions.len());
    for index in 0..assignment.partitions.len() {
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        states.push(read_partition_state(coordination, name, index).await?);
    }
    Ok(Some(StoredTopic {
        // A topic written without an id (by an old tool) gets a stable one from its name.
        id: assignment.topic_id.unwrap_or_else(|| id_from_name(name)),
        assignment: assignment.partitions,
        configs,
        states,
        zk_version: stat.version,
        adding_replicas: assignment.adding_replicas,
        removing_replicas: assignment.removing_replicas,
    }))
}

pub async fn read_topic_config(
    coordination: &Coordination,
    name: &str,
) -> Result<BTreeMap<String, String>, CoordinationError> {
    read_config_znode(coordination, &znodes::topic_config_path(name)).await
}

/// A config znode's map (`{"version":1,"config":{...}}`: a topic's overrides or a broker
/// entity's dynamic configs); empty when absent or unreadable.
pub async fn read_config_znode(
    coordination: &Coordination,
    path: &str,
) -> Result<BTreeMap<String, String>, CoordinationError> {
    let path = path.to_string();
    match coordination.get(&path).await {
        Ok((data, _)) => Ok(TopicConfig::decode(&path, &data)
            .map(|config| config.config)
            .unwrap_or_else(|error| {
                tracing::error!(%error, "ignoring unreadable configs");
                BTreeMap::new()
            })),
        Err(CoordinationError::NoNode { .. }) => Ok(BTreeMap::new()),
        Err(error) => Err(error),
    }
}

/// A partition's state znode (`None`: not written yet, or unreadable).
pub async fn read_partition_state(
    coordination: &Coordination,
    name: &str,
    index: i32,
) -> Result<Option<PartitionState>, CoordinationError> {
    let path = znodes::partition_state_path(name, index);
    match coordination.get(&path).await {
        Ok((data, stat)) => Ok(PartitionState::decode(&path, &data, stat.version)
            .map_err(|error| tracing::error!(%error, "ignoring an unreadable partition state"))
            .ok()),
        Err(CoordinationError::NoNode { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// A stable id for a topic whose znode has none (written by an older tool): the same on every
/// broker and across restarts.
fn id_from_name(name: &str) -> uuid::Uuid {
    let high = crc32c::crc32c(name.as_bytes());
    let low = crc32c::crc32c_append(high, name.as_bytes());
    uuid::Uuid::from_u64_pair(
        u64::from(high) << 32 | u64::from(low),
        u64::from(!low) << 32 | u64::from(!high),
    )
}
