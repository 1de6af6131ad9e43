//! The topic registry: names, ids, partition counts and configs of every topic, persisted in
//! the coordination store (`/brokers/topics/<name>`, JSON as Kafka keeps it in ZooKeeper) and
//! cached in memory. Control plane only: a `RwLock` is fine here, the data path never takes it.
//! The data path reads each shard's [`MetadataCache`](super::metadata_cache::MetadataCache),
//! which every mutation here feeds: each returns the numbered [`MetadataUpdate`] that the caller
//! publishes to every shard.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::metadata_cache::{MetadataChange, MetadataUpdate, TopicsSnapshot};
use crate::coordination::{CoordinationError, CoordinationStore, CreateMode};

const TOPICS_PATH: &str = "/brokers/topics";
/// Kafka's limit on topic name length.
pub const TOPIC_NAME_MAX_BYTES: usize = 249;
/// Upper bound on partitions per topic, so one request cannot make a broker open millions of
/// files.
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

/// One topic as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub id: uuid::Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic-level config overrides (Kafka names).
    pub configs: BTreeMap<String, String>,
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
    #[error("invalid replication factor {requested}: this cluster has {brokers} broker(s)")]
    InvalidReplicationFactor { requested: i16, brokers: i32 },
    #[error("invalid config {key}={value}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: String,
    },
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

/// What the registry holds in memory: the topics and the version of that set, bumped by every
/// change (the metadata caches of the shards follow it).
#[derive(Default)]
struct Topics {
    version: u64,
    by_name: BTreeMap<String, Arc<TopicMetadata>>,
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

/// Topic names and ids, persisted and cached.
pub struct TopicRegistry {
    store: Arc<CoordinationStore>,
    cache: RwLock<Topics>,
    broker_count: i32,
}

fn store_error(error: CoordinationError) -> TopicError {
    TopicError::Store(error.to_string())
}

fn topic_path(name: &str) -> String {
    format!("{TOPICS_PATH}/{name}")
}

impl TopicRegistry {
    /// Loads every topic from the store (creating the parent paths on first start).
    pub fn load(store: Arc<CoordinationStore>, broker_count: i32) -> Result<Self, TopicError> {
        for path in ["/brokers", TOPICS_PATH] {
            match store.create(path, Bytes::new(), CreateMode::Persistent) {
                Ok(_) | Err(CoordinationError::NodeExists { .. }) => {}
                Err(error) => return Err(store_error(error)),
            }
        }
        let mut cache = Topics {
            version: 1,
            by_name: BTreeMap::new(),
        };
        for name in store.children(TOPICS_PATH).map_err(store_error)? {
            let (data, _stat) = store.get(&topic_path(&name)).map_err(store_error)?;
            let metadata: TopicMetadata = serde_json::from_slice(&data).map_err(|error| {
                TopicError::Store(format!("topic {name} metadata does not parse: {error}"))
            })?;
            cache.by_name.insert(name, Arc::new(metadata));
        }
        Ok(TopicRegistry {
            store,
            cache: RwLock::new(cache),
            broker_count,
        })
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

    /// A topic, read under the registry's lock (control plane; the data path reads its shard's
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

    /// Every topic at the current version, for a shard's metadata cache.
    pub fn snapshot(&self) -> TopicsSnapshot {
        let topics = self.read();
        TopicsSnapshot {
            version: topics.version,
            topics: topics.by_name.values().cloned().collect(),
        }
    }

    /// Validates and records a new topic. Creating its partitions' logs is the caller's job.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(TopicMetadata, Option<MetadataUpdate>), TopicError> {
        validate_topic_name(name)?;
        if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
            return Err(TopicError::InvalidPartitions(partitions));
        }
        if replication_factor < 1 || i32::from(replication_factor) > self.broker_count {
            return Err(TopicError::InvalidReplicationFactor {
                requested: replication_factor,
                brokers: self.broker_count,
            });
        }
        super::topic_config::validate_topic_configs(&configs)?;
        let mut cache = self.write();
        if cache.by_name.contains_key(name) {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let metadata = TopicMetadata {
            name: name.to_string(),
            id: uuid::Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
        };
        if validate_only {
            return Ok((metadata, None));
        }
        let data =
            serde_json::to_vec(&metadata).map_err(|error| TopicError::Store(error.to_string()))?;
        match self
            .store
            .create(&topic_path(name), Bytes::from(data), CreateMode::Persistent)
        {
            Ok(_) => {}
            Err(CoordinationError::NodeExists { .. }) => {
                return Err(TopicError::AlreadyExists(name.to_string()))
            }
            Err(error) => return Err(store_error(error)),
        }
        let shared = Arc::new(metadata.clone());
        cache.by_name.insert(name.to_string(), shared.clone());
        let update = cache.changed(MetadataChange::Upsert(shared));
        Ok((metadata, Some(update)))
    }

    /// Removes a topic; returns what it was.
    pub fn delete(&self, name: &str) -> Result<(TopicMetadata, MetadataUpdate), TopicError> {
        let mut cache = self.write();
        let metadata = cache
            .by_name
            .get(name)
            .map(|topic| TopicMetadata::clone(topic))
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        match self.store.delete(&topic_path(name), None) {
            Ok(()) | Err(CoordinationError::NoNode { .. }) => {}
            Err(error) => return Err(store_error(error)),
        }
        cache.by_name.remove(name);
        let update = cache.changed(MetadataChange::Remove {
            name: name.to_string(),
            id: metadata.id,
        });
        Ok((metadata, update))
    }

    /// Grows a topic to `new_total` partitions; returns the old count and, unless only
    /// validating, the grown topic and the update to publish.
    pub fn add_partitions(
        &self,
        name: &str,
        new_total: i32,
        validate_only: bool,
    ) -> Result<(i32, Option<(TopicMetadata, MetadataUpdate)>), TopicError> {
        let mut cache = self.write();
        let metadata = cache
            .by_name
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let old = metadata.partitions;
        if new_total <= old || new_total > PARTITIONS_PER_TOPIC_MAX {
            return Err(TopicError::InvalidPartitions(new_total));
        }
        if validate_only {
            return Ok((old, None));
        }
        let mut updated = TopicMetadata::clone(metadata);
        updated.partitions = new_total;
        let data =
            serde_json::to_vec(&updated).map_err(|error| TopicError::Store(error.to_string()))?;
        self.store
            .set(&topic_path(name), Bytes::from(data), None)
            .map_err(store_error)?;
        let shared = Arc::new(updated.clone());
        cache.by_name.insert(name.to_string(), shared.clone());
        let update = cache.changed(MetadataChange::Upsert(shared));
        Ok((old, Some((updated, update))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::StoreLimits;

    fn registry() -> TopicRegistry {
        TopicRegistry::load(
            Arc::new(CoordinationStore::in_memory(StoreLimits::default())),
            1,
        )
        .expect("load")
    }

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_delete_and_grow() {
        let topics = registry();
        let (created, update) = topics
            .create("t", 3, 1, BTreeMap::new(), false)
            .expect("create");
        let snapshot = topics.snapshot();
        assert_eq!(update.map(|u| u.version), Some(snapshot.version));
        assert!(snapshot.topics.iter().any(|t| t.id == created.id));
        assert!(matches!(
            topics.create("t", 3, 1, BTreeMap::new(), false),
            Err(TopicError::AlreadyExists(_))
        ));
        assert!(matches!(
            topics.create("u", 0, 1, BTreeMap::new(), false),
            Err(TopicError::InvalidPartitions(0))
        ));
        assert!(matches!(
            topics.create("u", 1, 2, BTreeMap::new(), false),
            Err(TopicError::InvalidReplicationFactor { .. })
        ));
        assert_eq!(topics.add_partitions("t", 5, false).expect("grow").0, 3);
        assert!(matches!(
            topics.add_partitions("t", 4, false),
            Err(TopicError::InvalidPartitions(4))
        ));
        let version_before = topics.snapshot().version;
        let (deleted, update) = topics.delete("t").expect("delete");
        assert_eq!(deleted.partitions, 5);
        assert_eq!(update.version, version_before + 1);
        assert!(topics.get("t").is_none());
        // validate_only records nothing.
        topics
            .create("v", 1, 1, BTreeMap::new(), true)
            .expect("validate");
        assert!(topics.get("v").is_none());
    }

    #[test]
    fn survives_reload_from_the_store() {
        let store = Arc::new(CoordinationStore::in_memory(StoreLimits::default()));
        let topics = TopicRegistry::load(store.clone(), 1).expect("load");
        let (created, _) = topics
            .create(
                "kept",
                2,
                1,
                BTreeMap::from([("retention.ms".into(), "1000".into())]),
                false,
            )
            .expect("create");
        let reloaded = TopicRegistry::load(store, 1).expect("reload");
        assert_eq!(reloaded.get("kept"), Some(created));
    }
}
