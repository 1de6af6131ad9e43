//! The broker's view of the cluster's topics: names, ids, configs, replica assignments and each
//! partition's leadership, as the control plane read them from the coordination store (Kafka's
//! znodes: `/brokers/topics/<name>` and its partition states). Control plane only: a `RwLock` is
//! fine here, the data path never takes it. The data path reads each shard's
//! [`MetadataCache`](super::metadata_cache::MetadataCache), which every change here feeds: each
//! returns the numbered [`MetadataUpdate`] that the control plane publishes to every shard.
//!
//! Writes do not happen here: topics are created, grown and deleted by writing znodes (see
//! `control_plane::admin`), and this view follows what the store then says.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::dynamic_config::DynamicBrokerConfigs;
use super::metadata_cache::{ClusterMembers, MetadataChange, MetadataUpdate, TopicsSnapshot};
use crate::config::BrokerConfig;

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_MAX_BYTES: usize = 249;
/// Upper bound on partitions per topic, so one request cannot make a broker open millions of
/// files.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;
/// "No leader" (Kafka's -1): the partition is offline or not elected yet.
pub const NO_LEADER: i32 = -1;

/// One partition's replicas and leadership as the controller last decided them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionView {
    /// The assigned replicas (AR), in preference order: the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// [`NO_LEADER`] when offline or not yet elected.
    pub leader: i32,
    /// -1 before the first election.
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// The epoch of the controller that wrote this state; -1 before the first election.
    pub controller_epoch: i32,
    /// The state znode's version (-1 before the first election): a leader's ISR change is
    /// written only over this version, so it never overwrites a newer decision.
    #[serde(default = "no_zk_version")]
    pub zk_version: i32,
}

fn no_zk_version() -> i32 {
    -1
}

impl PartitionView {
    /// A partition whose leader has not been elected yet.
    pub fn unelected(replicas: Vec<i32>) -> Self {
        PartitionView {
            replicas,
            leader: NO_LEADER,
            leader_epoch: -1,
            isr: Vec::new(),
            controller_epoch: -1,
            zk_version: -1,
        }
    }
}

/// One topic as this broker knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub id: uuid::Uuid,
    /// `== partition_states.len()`.
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic-level config overrides (Kafka names).
    pub configs: BTreeMap<String, String>,
    /// Per partition, by index.
    #[serde(default)]
    pub partition_states: Vec<PartitionView>,
}

impl TopicMetadata {
    pub fn partition(&self, index: i32) -> Option<&PartitionView> {
        usize::try_from(index)
            .ok()
            .and_then(|index| self.partition_states.get(index))
    }

    /// Whether every partition has a leader (creation is complete once it does).
    pub fn all_partitions_led(&self) -> bool {
        self.partition_states
            .iter()
            .all(|state| state.leader != NO_LEADER)
    }
}

/// Why a topic operation was refused; each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic '{0}' already exists")]
    AlreadyExists(String),
    #[error("topic '{0}' does not exist")]
    Unknown(String),
    #[error("invalid topic name '{name}': {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    #[error("invalid replication factor {requested}: this cluster has {brokers} live broker(s)")]
    InvalidReplicationFactor { requested: i16, brokers: i32 },
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("topic '{0}' is being deleted")]
    BeingDeleted(String),
    #[error("not the controller")]
    NotController,
    #[error("timed out: {0}")]
    TimedOut(String),
    #[error("coordination store: {0}")]
    Store(String),
}

/// Checks a topic name as Kafka does: 1–249 bytes of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let invalid = |reason| {
        Err(TopicError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not allowed");
    }
    if name.len() > TOPIC_NAME_MAX_BYTES {
        return invalid("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// What the view holds: the topics, the live brokers and the controller, and the version of
/// that set, bumped by every change (the metadata caches of the shards follow it).
#[derive(Default)]
struct Topics {
    version: u64,
    by_name: BTreeMap<String, Arc<TopicMetadata>>,
    members: Arc<ClusterMembers>,
}

impl Topics {
    /// Records a change: bumps the version and returns the update to publish.
    fn changed(&mut self, change: MetadataChange) -> MetadataUpdate {
        self.version += 1;
        MetadataUpdate {
            version: self.version,
            change,
        }
    }
}

/// The broker's view of the cluster's topics and members.
#[derive(Default)]
pub struct TopicRegistry {
    cache: RwLock<Topics>,
    /// The dynamic broker configs (`/config/brokers`) and the configuration they make, once
    /// any are set. Read when topic configs are applied and described, never on the data path.
    dynamic: RwLock<Option<(DynamicBrokerConfigs, Arc<BrokerConfig>)>>,
}

impl TopicRegistry {
    pub fn new() -> Self {
        TopicRegistry::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Topics> {
        self.cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Topics> {
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A topic, read under the view's lock (control plane; the data path reads its shard's
    /// metadata cache).
    pub fn get(&self, name: &str) -> Option<TopicMetadata> {
        self.read()
            .by_name
            .get(name)
            .map(|topic| TopicMetadata::clone(topic))
    }

    pub fn list(&self) -> Vec<TopicMetadata> {
        self.read()
            .by_name
            .values()
            .map(|topic| TopicMetadata::clone(topic))
            .collect()
    }

    pub fn members(&self) -> Arc<ClusterMembers> {
        self.read().members.clone()
    }

    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// Everything at the current version, for a shard's metadata cache.
    pub fn snapshot(&self) -> TopicsSnapshot {
        let topics = self.read();
        TopicsSnapshot {
            version: topics.version,
            topics: topics.by_name.values().cloned().collect(),
            members: topics.members.clone(),
        }
    }

    /// Records what the store says about one topic (`None`: it is gone). Returns the update to
    /// publish, or `None` when nothing changed.
    pub fn apply_topic(&self, name: &str, topic: Option<TopicMetadata>) -> Option<MetadataUpdate> {
        let mut cache = self.write();
        match topic {
            Some(topic) => {
                debug_assert_eq!(topic.name, name);
                debug_assert_eq!(
                    usize::try_from(topic.partitions).ok(),
                    Some(topic.partition_states.len()),
                    "partition count and states disagree"
                );
                if cache.by_name.get(name).is_some_and(|old| **old == topic) {
                    return None;
                }
                let shared = Arc::new(topic);
                cache.by_name.insert(name.to_string(), shared.clone());
                Some(cache.changed(MetadataChange::Upsert(shared)))
            }
            None => {
                let old = cache.by_name.remove(name)?;
                Some(cache.changed(MetadataChange::Remove {
                    name: name.to_string(),
                    id: old.id,
                }))
            }
        }
    }

    /// Records the live brokers and the controller.
    pub fn apply_members(&self, members: ClusterMembers) -> Option<MetadataUpdate> {
        let mut cache = self.write();
        if *cache.members == members {
            return None;
        }
        let shared = Arc::new(members);
        cache.members = shared.clone();
        Some(cache.changed(MetadataChange::Members(shared)))
    }

    /// Records the dynamic broker configs and the effective configuration; false when they
    /// did not change.
    pub fn set_dynamic_broker_configs(
        &self,
        dynamic: DynamicBrokerConfigs,
        effective: BrokerConfig,
    ) -> bool {
        let mut slot = self
            .dynamic
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot
            .as_ref()
            .is_some_and(|(current, _)| *current == dynamic)
        {
            return false;
        }
        *slot = Some((dynamic, Arc::new(effective)));
        true
    }

    /// The dynamic broker configs and the configuration they make (`None`: none read yet).
    pub fn dynamic_broker_configs(&self) -> Option<(DynamicBrokerConfigs, Arc<BrokerConfig>)> {
        self.dynamic
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records a no-op change of the members: bumps the version and returns an update carrying
    /// the current members, for shards whose starting snapshot may be older than the view.
    pub fn republish_members(&self) -> MetadataUpdate {
        let mut cache = self.write();
        let members = cache.members.clone();
        cache.changed(MetadataChange::Members(members))
    }
}

/// Checks what a new topic asks for before anything is written: name, partition count,
/// replication factor against the live brokers, configs.
pub fn validate_new_topic(
    name: &str,
    partitions: i32,
    replication_factor: i16,
    live_brokers: usize,
    configs: &BTreeMap<String, String>,
) -> Result<(), TopicError> {
    validate_topic_name(name)?;
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return Err(TopicError::InvalidPartitions(partitions));
    }
    let brokers = i32::try_from(live_brokers).unwrap_or(i32::MAX);
    if replication_factor < 1 || i32::from(replication_factor) > brokers {
        return Err(TopicError::InvalidReplicationFactor {
            requested: replication_factor,
            brokers,
        });
    }
    super::topic_config::validate_topic_configs(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32) -> TopicMetadata {
        TopicMetadata {
            name: name.to_string(),
            id: uuid::Uuid::new_v4(),
            partitions,
            replication_factor: 1,
            configs: BTreeMap::new(),
            partition_states: (0..partitions)
                .map(|_| PartitionView::unelected(vec![1]))
                .collect(),
        }
    }

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_topics_are_validated_against_live_brokers() {
        let none = BTreeMap::new();
        assert!(validate_new_topic("t", 3, 2, 2, &none).is_ok());
        assert_eq!(
            validate_new_topic("t", 0, 1, 1, &none),
            Err(TopicError::InvalidPartitions(0))
        );
        assert!(matches!(
            validate_new_topic("t", 1, 3, 2, &none),
            Err(TopicError::InvalidReplicationFactor {
                requested: 3,
                brokers: 2
            })
        ));
        assert!(matches!(
            validate_new_topic("a b", 1, 1, 1, &none),
            Err(TopicError::InvalidName { .. })
        ));
    }

    #[test]
    fn changes_are_numbered_and_unchanged_topics_publish_nothing() {
        let view = TopicRegistry::new();
        let created = topic("t", 2);
        let first = view
            .apply_topic("t", Some(created.clone()))
            .expect("new topic");
        assert_eq!(first.version, 1);
        assert!(view.apply_topic("t", Some(created.clone())).is_none());
        let mut led = created.clone();
        led.partition_states[0].leader = 1;
        assert_eq!(view.apply_topic("t", Some(led)).map(|u| u.version), Some(2));
        assert_eq!(view.apply_topic("t", None).map(|u| u.version), Some(3));
        assert!(view.apply_topic("t", None).is_none());
        let members = ClusterMembers {
            brokers: Vec::new(),
            controller_id: 1,
        };
        assert_eq!(
            view.apply_members(members.clone()).map(|u| u.version),
            Some(4)
        );
        assert!(view.apply_members(members).is_none());
        assert_eq!(view.snapshot().version, 4);
    }

    #[test]
    fn a_republish_takes_a_version_of_its_own() {
        // Shards that applied a republish must not drop the next real change as stale.
        let view = TopicRegistry::new();
        let republished = view.republish_members();
        assert_eq!(republished.version, 1);
        assert_eq!(view.snapshot().version, 1);
        let members = ClusterMembers {
            brokers: Vec::new(),
            controller_id: 2,
        };
        assert_eq!(view.apply_members(members).map(|u| u.version), Some(2));
    }
}
