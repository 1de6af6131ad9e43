//! One shard's state: the partitions it owns. Every request for one of them runs here; other
//! shards reach it through `ShardRouter::submit_to`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use strom_engine::log::{CleanupPolicy, LogDir};
use strom_engine::runtime::{ShardId, ShardRouter};

use super::context::BrokerContext;
use super::group_placement::OFFSETS_TOPIC;
use super::group_runtime::{group_config, GroupRuntime};
use super::log_dir::{close_partitions, open_owned_partitions};
use super::metadata_cache::{Applied, MetadataCache, MetadataUpdate};
use super::partition::{partition_dir, Partition};
use super::placement::owner_shard;
use super::topic_config::log_config;
use super::topics::TopicMetadata;

pub type Router = ShardRouter<ShardState>;

/// topic → partition index → partition.
type PartitionTable = HashMap<Rc<str>, HashMap<i32, Rc<Partition>>>;

pub struct ShardState {
    pub id: ShardId,
    pub router: Router,
    pub broker: Arc<BrokerContext>,
    /// Every topic as this shard sees it: what the data path reads, without a lock.
    pub metadata: MetadataCache,
    /// topic → partition index → partition, for the partitions this shard owns.
    partitions: RefCell<PartitionTable>,
    /// Group coordinators of the `__consumer_offsets` partitions this shard owns.
    pub groups: Rc<GroupRuntime>,
    /// Set when shutdown starts: connections stop reading new requests.
    pub stopping: std::cell::Cell<bool>,
}

impl ShardState {
    /// Builds the shard's state and opens (recovering if needed, several at a time) every
    /// partition it owns, under the broker's log dir (see `log_dir`).
    pub async fn start(
        id: ShardId,
        router: Router,
        broker: Arc<BrokerContext>,
        log_dir: Arc<LogDir>,
    ) -> Self {
        let state = ShardState {
            id,
            router,
            metadata: MetadataCache::from_snapshot(&broker.topics.snapshot()),
            broker: broker.clone(),
            partitions: RefCell::new(HashMap::new()),
            groups: Rc::new(GroupRuntime::default()),
            stopping: std::cell::Cell::new(false),
        };
        for partition in open_owned_partitions(id, broker, log_dir).await {
            state
                .partitions
                .borrow_mut()
                .entry(partition.topic.clone())
                .or_default()
                .insert(partition.index, partition);
        }
        state.start_group_coordinators();
        state
    }

    /// Loads a coordinator for every `__consumer_offsets` partition this shard owns, in the
    /// background: until each has replayed its partition it answers COORDINATOR_LOAD_IN_PROGRESS.
    fn start_group_coordinators(&self) {
        let config = group_config(&self.broker.config);
        let now_ms = crate::handlers::now_ms();
        for partition in self
            .partitions()
            .into_iter()
            .filter(|partition| &*partition.topic == OFFSETS_TOPIC)
        {
            let groups = self.groups.clone();
            let config = config.clone();
            strom_engine::io::spawn_local(async move {
                let index = partition.index;
                if let Err(error) = groups.load(partition, config, now_ms).await {
                    tracing::error!(partition = index, %error, "could not load group coordinator");
                }
            });
        }
    }

    pub fn owner_of(&self, topic: &str, index: i32) -> ShardId {
        owner_shard(topic, index, self.broker.shard_count)
    }

    /// Runs `task` on shard `target` with that shard's state: a direct call when it is this
    /// shard, a message through its mailbox otherwise.
    pub async fn run_on<R, F, Fut>(
        self: &Rc<Self>,
        target: ShardId,
        task: F,
    ) -> Result<R, strom_engine::Error>
    where
        R: Send + 'static,
        F: FnOnce(Rc<ShardState>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R> + 'static,
    {
        if target == self.id {
            Ok(task(self.clone()).await)
        } else {
            self.router.submit_to(target, task).await
        }
    }

    /// Sends every non-empty `work_by_owner[shard]` to that shard in one message (a direct call
    /// for this shard), all shards concurrently, and returns every item's result by its slot.
    /// If a shard has stopped, each of its items gets `stopped()`.
    pub async fn run_on_owners<W, R, F, Fut>(
        self: &Rc<Self>,
        work_by_owner: Vec<Vec<W>>,
        slot_of: fn(&W) -> usize,
        task: F,
        stopped: fn() -> R,
    ) -> Vec<(usize, R)>
    where
        W: Send + 'static,
        R: Send + 'static,
        F: Fn(Rc<ShardState>, Vec<W>) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Vec<(usize, R)>> + 'static,
    {
        let deliveries: Vec<_> = work_by_owner
            .into_iter()
            .enumerate()
            .filter(|(_, work)| !work.is_empty())
            .map(|(owner, work)| {
                let slots: Vec<usize> = work.iter().map(slot_of).collect();
                let task = task.clone();
                async move {
                    match self.run_on(owner, move |state| task(state, work)).await {
                        Ok(results) => results,
                        Err(_) => slots.into_iter().map(|slot| (slot, stopped())).collect(),
                    }
                }
            })
            .collect();
        strom_engine::runtime::join_all(deliveries)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Applies a control-plane change to this shard's metadata cache; on a gap (updates from two
    /// publishers crossed) it reloads the whole cache from the registry instead.
    pub fn apply_metadata(&self, update: &MetadataUpdate) {
        if self.metadata.apply(update) == Applied::Gap {
            self.metadata.install(&self.broker.topics.snapshot());
        }
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Rc<Partition>> {
        self.partitions
            .borrow()
            .get(topic)
            .and_then(|partitions| partitions.get(&index))
            .cloned()
    }

    pub fn partitions(&self) -> Vec<Rc<Partition>> {
        self.partitions
            .borrow()
            .values()
            .flat_map(|partitions| partitions.values().cloned())
            .collect()
    }

    /// Opens a partition of `topic` on this shard (a no-op if already open).
    pub async fn open_partition(
        &self,
        topic: &TopicMetadata,
        index: i32,
    ) -> Result<Rc<Partition>, strom_engine::Error> {
        assert_eq!(
            self.owner_of(&topic.name, index),
            self.id,
            "partition opened on a shard that does not own it"
        );
        if let Some(existing) = self.partition(&topic.name, index) {
            return Ok(existing);
        }
        let dir = partition_dir(&self.broker.log_dir, &topic.name, index);
        let config = log_config(&self.broker.config, &topic.configs);
        let name: Rc<str> = Rc::from(topic.name.as_str());
        let partition = Partition::open(dir, name.clone(), index, topic.id, config).await?;
        // Another request may have opened it while this one awaited recovery.
        let mut partitions = self.partitions.borrow_mut();
        let entry = partitions
            .entry(name)
            .or_default()
            .entry(index)
            .or_insert_with(|| partition.clone());
        Ok(entry.clone())
    }

    /// Closes a partition; with `delete_files`, removes its directory (topic deletion). The
    /// directory is renamed first so a crash mid-delete never leaves a half-deleted partition
    /// that looks live.
    pub async fn remove_partition(&self, topic: &str, index: i32, delete_files: bool) {
        let removed = {
            let mut partitions = self.partitions.borrow_mut();
            let removed = partitions
                .get_mut(topic)
                .and_then(|by_index| by_index.remove(&index));
            if partitions.get(topic).is_some_and(HashMap::is_empty) {
                partitions.remove(topic);
            }
            removed
        };
        let dir = match &removed {
            Some(partition) => {
                if let Err(error) = partition.log.close().await {
                    tracing::warn!(topic, index, %error, "closing a removed partition failed");
                }
                partition.dir.clone()
            }
            None => partition_dir(&self.broker.log_dir, topic, index),
        };
        if delete_files && dir.exists() {
            let doomed = dir.with_extension(format!("{}-delete", uuid::Uuid::new_v4().simple()));
            match std::fs::rename(&dir, &doomed) {
                Ok(()) => {
                    if let Err(error) = std::fs::remove_dir_all(&doomed) {
                        tracing::warn!(dir = %doomed.display(), %error, "could not delete partition directory");
                    }
                }
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "could not delete partition directory")
                }
            }
        }
    }

    /// Applies retention to every partition of this shard, and compacts those whose
    /// cleanup.policy is compact (e.g. `__consumer_offsets`).
    pub async fn enforce_retention(&self, now_ms: i64) {
        for partition in self.partitions() {
            if let Err(error) = partition.log.enforce_retention(now_ms) {
                tracing::warn!(topic = %partition.topic, index = partition.index, %error, "retention failed");
            }
            if partition.log.config().cleanup_policy == CleanupPolicy::Compact {
                match partition.log.compact(now_ms).await {
                    Ok(outcome) => {
                        tracing::debug!(topic = %partition.topic, index = partition.index, ?outcome, "compacted")
                    }
                    Err(error) => {
                        tracing::warn!(topic = %partition.topic, index = partition.index, %error, "compaction failed")
                    }
                }
            }
        }
    }

    /// Closes every partition cleanly (producer snapshots; the clean-shutdown marker is the log
    /// dir's, written once all shards are done). A failure marks `log_dir` unclean.
    pub async fn shutdown(&self, log_dir: Arc<LogDir>) {
        self.stopping.set(true);
        close_partitions(self.partitions(), log_dir).await;
    }
}
