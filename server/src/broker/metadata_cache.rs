//! The shard-local metadata cache: every topic's name, id and partitions as one shard sees them,
//! read on the data path without a lock and found by name or id in O(1).
//!
//! The control plane owns the truth (the broker's view of the znodes the controller and admin
//! requests write, [`TopicRegistry`](super::topics::TopicRegistry)) and numbers every change with
//! a version. Each change
//! is sent to every shard as a [`MetadataUpdate`]; a shard applies it to its own copy, so lookups
//! touch only memory this core owns (no atomic reference counts, no shared cache lines).
//!
//! Invariant: a shard's cache at version `v` holds exactly the registry's topics at version `v`.
//! Updates carry the version they produce; one that does not follow the cache's version directly
//! (a gap, because updates from two publishers crossed) makes the shard rebuild from a full
//! snapshot instead, and one at or below the cache's version is already included and ignored.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::group_placement::OFFSETS_TOPIC;
use super::placement::topic_placement_hash;
use super::topics::{PartitionView, TopicMetadata, NO_LEADER};

/// A live broker as clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerEndpoint {
    pub id: i32,
    pub host: String,
    pub port: u16,
    /// The broker epoch: the creation transaction id of its registration (ZooKeeper's czxid).
    pub epoch: i64,
}

/// The live brokers (sorted by id) and the controller (-1: none elected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMembers {
    pub brokers: Vec<BrokerEndpoint>,
    pub controller_id: i32,
}

impl Default for ClusterMembers {
    fn default() -> Self {
        ClusterMembers {
            brokers: Vec::new(),
            controller_id: NO_LEADER,
        }
    }
}

impl ClusterMembers {
    pub fn broker(&self, id: i32) -> Option<&BrokerEndpoint> {
        self.brokers
            .binary_search_by_key(&id, |broker| broker.id)
            .ok()
            .map(|found| &self.brokers[found])
    }

    pub fn is_live(&self, id: i32) -> bool {
        self.broker(id).is_some()
    }
}

/// The control plane's topics and members at one version; `Send`, so it can travel to every
/// shard.
#[derive(Debug, Clone, Default)]
pub struct TopicsSnapshot {
    pub version: u64,
    pub topics: Vec<Arc<TopicMetadata>>,
    pub members: Arc<ClusterMembers>,
}

/// One change of the control plane's topics, and the version it produces.
#[derive(Debug, Clone)]
pub struct MetadataUpdate {
    pub version: u64,
    pub change: MetadataChange,
}

#[derive(Debug, Clone)]
pub enum MetadataChange {
    /// A topic was created or changed (partitions added, configs changed).
    Upsert(Arc<TopicMetadata>),
    /// A topic was deleted.
    Remove { name: String, id: uuid::Uuid },
    /// The live brokers or the controller changed.
    Members(Arc<ClusterMembers>),
}

/// A topic as the data path needs it.
#[derive(Debug)]
pub struct CachedTopic {
    pub name: Rc<str>,
    pub id: uuid::Uuid,
    pub partition_count: i32,
    /// Only the group coordinator writes an internal topic.
    pub is_internal: bool,
    /// The topic's part of the partition → shard placement, computed once.
    placement_hash: usize,
    /// The full record, for the few paths that need configs.
    pub metadata: Arc<TopicMetadata>,
    /// What consumers fetched of each partition through this shard (the metrics); carried from
    /// the entry this one replaces.
    pub consumed: crate::metrics::TopicConsumed,
}

impl CachedTopic {
    fn new(metadata: Arc<TopicMetadata>, previous: Option<&CachedTopic>) -> Self {
        let previous_consumed = previous
            .filter(|previous| previous.id == metadata.id)
            .map(|previous| &previous.consumed);
        CachedTopic {
            consumed: crate::metrics::traffic::carry_over(
                previous_consumed,
                usize::try_from(metadata.partitions).unwrap_or(0),
            ),
            name: Rc::from(metadata.name.as_str()),
            id: metadata.id,
            partition_count: metadata.partitions,
            is_internal: metadata.name == OFFSETS_TOPIC,
            placement_hash: topic_placement_hash(&metadata.name),
            metadata,
        }
    }

    pub fn has_partition(&self, index: i32) -> bool {
        (0..self.partition_count).contains(&index)
    }

    /// The partition's replicas and leadership (`None` for an index the topic does not have).
    pub fn partition(&self, index: i32) -> Option<&PartitionView> {
        self.metadata.partition(index)
    }

    /// The partition's leader ([`NO_LEADER`] when offline or unknown).
    pub fn leader_of(&self, index: i32) -> i32 {
        self.partition(index)
            .map_or(NO_LEADER, |state| state.leader)
    }

    /// The shard that owns partition `index` (see [`super::placement::owner_shard`]).
    pub fn owner_of(&self, index: i32, shard_count: usize) -> usize {
        super::placement::owner_from_hash(self.placement_hash, index, shard_count)
    }
}

#[derive(Default)]
struct Tables {
    version: u64,
    by_name: HashMap<Rc<str>, Rc<CachedTopic>>,
    by_id: HashMap<uuid::Uuid, Rc<CachedTopic>>,
    members: Arc<ClusterMembers>,
}

impl Tables {
    /// Inserts `metadata`, carrying the metrics of the entry it replaces, here or (a full
    /// reload) in `previous`.
    fn insert(&mut self, metadata: Arc<TopicMetadata>, previous: Option<&Tables>) {
        let replaced = self
            .by_id
            .get(&metadata.id)
            .or_else(|| previous.and_then(|tables| tables.by_id.get(&metadata.id)));
        let topic = Rc::new(CachedTopic::new(metadata, replaced.map(|topic| &**topic)));
        // A recreated topic has a new id: forget the old one's.
        if let Some(old) = self.by_name.insert(topic.name.clone(), topic.clone()) {
            self.by_id.remove(&old.id);
        }
        self.by_id.insert(topic.id, topic);
    }

    fn remove(&mut self, name: &str, id: uuid::Uuid) {
        if self.by_name.get(name).is_some_and(|topic| topic.id == id) {
            self.by_name.remove(name);
        }
        self.by_id.remove(&id);
    }
}

/// How an update was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied in place.
    Applied,
    /// Already included (its version is not newer).
    Stale,
    /// It did not follow the cache's version: the caller must install a full snapshot.
    Gap,
}

/// One shard's cache. Single-threaded: lives in the shard's state, never shared.
#[derive(Default)]
pub struct MetadataCache {
    tables: RefCell<Tables>,
}

impl MetadataCache {
    pub fn from_snapshot(snapshot: &TopicsSnapshot) -> Self {
        let cache = MetadataCache::default();
        cache.install(snapshot);
        cache
    }

    pub fn version(&self) -> u64 {
        self.tables.borrow().version
    }

    pub fn topic(&self, name: &str) -> Option<Rc<CachedTopic>> {
        self.tables.borrow().by_name.get(name).cloned()
    }

    /// The live brokers and the controller.
    pub fn members(&self) -> Arc<ClusterMembers> {
        self.tables.borrow().members.clone()
    }

    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<Rc<CachedTopic>> {
        self.tables.borrow().by_id.get(&id).cloned()
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Rc<CachedTopic>> {
        let mut topics: Vec<_> = self.tables.borrow().by_name.values().cloned().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Replaces the cache with a full snapshot, unless the cache is already newer.
    pub fn install(&self, snapshot: &TopicsSnapshot) {
        let mut tables = self.tables.borrow_mut();
        if snapshot.version < tables.version {
            return;
        }
        let mut fresh = Tables {
            version: snapshot.version,
            members: snapshot.members.clone(),
            ..Tables::default()
        };
        for topic in &snapshot.topics {
            fresh.insert(topic.clone(), Some(&*tables));
        }
        *tables = fresh;
    }

    /// Applies one change if it is the next version.
    pub fn apply(&self, update: &MetadataUpdate) -> Applied {
        let mut tables = self.tables.borrow_mut();
        if update.version <= tables.version {
            return Applied::Stale;
        }
        if update.version != tables.version + 1 {
            return Applied::Gap;
        }
        match &update.change {
            MetadataChange::Upsert(metadata) => tables.insert(metadata.clone(), None),
            MetadataChange::Remove { name, id } => tables.remove(name, *id),
            MetadataChange::Members(members) => tables.members = members.clone(),
        }
        tables.version = update.version;
        Applied::Applied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn topic(name: &str, id: u128, partitions: i32) -> Arc<TopicMetadata> {
        Arc::new(TopicMetadata {
            name: name.to_string(),
            id: uuid::Uuid::from_u128(id),
            partitions,
            replication_factor: 1,
            configs: BTreeMap::new(),
            partition_states: (0..partitions)
                .map(|_| PartitionView::unelected(vec![1]))
                .collect(),
        })
    }

    fn upsert(version: u64, metadata: Arc<TopicMetadata>) -> MetadataUpdate {
        MetadataUpdate {
            version,
            change: MetadataChange::Upsert(metadata),
        }
    }

    #[test]
    fn consumer_traffic_counters_survive_metadata_changes_but_not_a_recreation() {
        let cache = MetadataCache::from_snapshot(&TopicsSnapshot {
            version: 1,
            topics: vec![topic("a", 1, 2)],
            ..TopicsSnapshot::default()
        });
        let bytes_of = |cache: &MetadataCache, index: usize| {
            cache.topic("a").expect("topic a").consumed[index].bytes()
        };
        cache.topic("a").expect("topic a").consumed[1].add(10, 2);
        // A change of the topic (it grew) keeps the counters.
        assert_eq!(cache.apply(&upsert(2, topic("a", 1, 3))), Applied::Applied);
        assert_eq!(bytes_of(&cache, 1), 10);
        // So does a full reload.
        cache.install(&TopicsSnapshot {
            version: 5,
            topics: vec![topic("a", 1, 3)],
            ..TopicsSnapshot::default()
        });
        assert_eq!(bytes_of(&cache, 1), 10);
        // A topic deleted and created again (a new id) starts from zero.
        assert_eq!(cache.apply(&upsert(6, topic("a", 2, 3))), Applied::Applied);
        assert_eq!(bytes_of(&cache, 1), 0);
    }

    #[test]
    fn lookups_by_name_and_id_follow_updates_in_order() {
        let cache = MetadataCache::from_snapshot(&TopicsSnapshot {
            version: 3,
            topics: vec![topic("a", 1, 2)],
            ..TopicsSnapshot::default()
        });
        assert_eq!(cache.topic("a").map(|t| t.partition_count), Some(2));
        assert_eq!(
            cache
                .topic_by_id(uuid::Uuid::from_u128(1))
                .map(|t| t.name.to_string()),
            Some("a".to_string())
        );
        assert_eq!(cache.apply(&upsert(4, topic("b", 2, 1))), Applied::Applied);
        assert_eq!(cache.apply(&upsert(5, topic("a", 1, 6))), Applied::Applied);
        assert_eq!(cache.topic("a").map(|t| t.partition_count), Some(6));
        assert!(cache.topic("a").is_some_and(|t| t.has_partition(5)));
        assert!(!cache.topic("a").is_some_and(|t| t.has_partition(6)));
        let removal = MetadataUpdate {
            version: 6,
            change: MetadataChange::Remove {
                name: "b".into(),
                id: uuid::Uuid::from_u128(2),
            },
        };
        assert_eq!(cache.apply(&removal), Applied::Applied);
        assert!(cache.topic("b").is_none());
        assert!(cache.topic_by_id(uuid::Uuid::from_u128(2)).is_none());
        assert_eq!(cache.version(), 6);
    }

    #[test]
    fn stale_updates_are_ignored_and_gaps_reported() {
        let cache = MetadataCache::from_snapshot(&TopicsSnapshot {
            version: 10,
            topics: vec![topic("a", 1, 1)],
            ..TopicsSnapshot::default()
        });
        assert_eq!(cache.apply(&upsert(10, topic("x", 9, 1))), Applied::Stale);
        assert_eq!(cache.apply(&upsert(12, topic("y", 8, 1))), Applied::Gap);
        assert!(cache.topic("x").is_none() && cache.topic("y").is_none());
        // An older snapshot never replaces a newer cache.
        cache.install(&TopicsSnapshot {
            version: 9,
            ..TopicsSnapshot::default()
        });
        assert!(cache.topic("a").is_some());
    }

    #[test]
    fn a_recreated_topic_forgets_the_old_id() {
        let cache = MetadataCache::from_snapshot(&TopicsSnapshot::default());
        cache.apply(&upsert(1, topic("t", 1, 1)));
        cache.apply(&MetadataUpdate {
            version: 2,
            change: MetadataChange::Remove {
                name: "t".into(),
                id: uuid::Uuid::from_u128(1),
            },
        });
        cache.apply(&upsert(3, topic("t", 2, 3)));
        assert!(cache.topic_by_id(uuid::Uuid::from_u128(1)).is_none());
        assert_eq!(
            cache
                .topic_by_id(uuid::Uuid::from_u128(2))
                .map(|t| t.partition_count),
            Some(3)
        );
        // An upsert over a live name with a new id also drops the old id.
        cache.apply(&upsert(4, topic("t", 3, 3)));
        assert!(cache.topic_by_id(uuid::Uuid::from_u128(2)).is_none());
    }

    #[test]
    fn placement_matches_the_shared_rule() {
        let cache = MetadataCache::from_snapshot(&TopicsSnapshot {
            version: 1,
            topics: vec![topic("orders", 1, 8)],
            ..TopicsSnapshot::default()
        });
        let cached = cache.topic("orders").expect("cached");
        for index in 0..8 {
            assert_eq!(
                cached.owner_of(index, 3),
                super::super::placement::owner_shard("orders", index, 3)
            );
        }
    }
}
