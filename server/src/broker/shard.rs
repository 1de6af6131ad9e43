//! One shard's state: the partitions it owns. Every request for one of them runs here; other
//! shards reach it through `ShardRouter::submit_to`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use strom_engine::log::CleanupPolicy;
use strom_engine::runtime::{ShardId, ShardRouter};

use super::context::BrokerContext;
use super::group_placement::OFFSETS_TOPIC;
use super::group_runtime::{group_config, GroupRuntime};
use super::leader_replication::LeaderReplication;
use super::log_dir::{close_partitions, open_owned_partitions};
use super::metadata_cache::{Applied, MetadataCache, MetadataChange, MetadataUpdate};
use super::partition::Partition;
use super::placement::owner_shard;
use super::topic_config::{log_config, TopicCompression};
use super::topics::{PartitionView, TopicMetadata};
use crate::replication::fetcher::{FetcherConfig, FetcherSet};

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
    /// The replica fetchers of this shard's follower replicas, one per leader broker.
    pub fetchers: FetcherSet,
    /// Set when shutdown starts: connections stop reading new requests.
    pub stopping: std::cell::Cell<bool>,
    /// This shard's request-path counters (written only here; read by a scrape's message).
    pub metrics: crate::metrics::ShardMetrics,
}

impl ShardState {
    /// Builds the shard's state and opens (recovering if needed, several at a time) every
    /// partition it owns that is assigned to this broker, in its log dir (see `log_dirs`), and
    /// takes up the leaderships the metadata gives it.
    pub async fn start(id: ShardId, router: Router, broker: Arc<BrokerContext>) -> Self {
        let state = ShardState {
            id,
            router,
            metadata: MetadataCache::from_snapshot(&broker.topics.snapshot()),
            broker: broker.clone(),
            partitions: RefCell::new(HashMap::new()),
            groups: Rc::new(GroupRuntime::default()),
            fetchers: FetcherSet::new(FetcherConfig::from_broker(&broker.config)),
            stopping: std::cell::Cell::new(false),
            metrics: crate::metrics::ShardMetrics::default(),
        };
        for partition in open_owned_partitions(id, broker).await {
            state
                .partitions
                .borrow_mut()
                .entry(partition.topic.clone())
                .or_default()
                .insert(partition.index, partition);
        }
        for topic in state.metadata.topics() {
            state.apply_topic_configs(&topic.metadata);
            state.apply_leaderships(&topic.metadata);
        }
        state
    }

    /// Re-applies every topic's configs: the dynamic broker configs (what topics fall back to)
    /// changed.
    pub fn reapply_all_topic_configs(&self) {
        for topic in self.metadata.topics() {
            self.apply_topic_configs(&topic.metadata);
        }
    }

    /// Applies `topic`'s configs (overrides over the broker's defaults) to this shard's
    /// replicas of it: at start, and whenever they change (a config znode written through any
    /// broker), without a restart.
    fn apply_topic_configs(&self, topic: &TopicMetadata) {
        let Some(partitions) = self.partitions.borrow().get(topic.name.as_str()).cloned() else {
            return;
        };
        let broker_config = self.broker.effective_config();
        let config = log_config(&broker_config, &topic.configs);
        let min_insync_replicas = min_insync_replicas(&broker_config, topic);
        let compression = TopicCompression::of_topic(&topic.configs);
        for partition in partitions.values() {
            partition.apply_topic_configs(config.clone(), min_insync_replicas, compression);
        }
    }

    /// Takes up or gives up the leadership of this shard's replicas of `topic` as the metadata
    /// says, each decision once (a newer leader epoch); loads or unloads the group coordinator
    /// of a `__consumer_offsets` partition with its leadership.
    fn apply_leaderships(&self, topic: &TopicMetadata) {
        let broker_id = self.broker.config.broker_id;
        for (state, index) in topic.partition_states.iter().zip(0..) {
            let Some(partition) = self.partition(&topic.name, index) else {
                continue;
            };
            let leads = state.leader == broker_id;
            let applied = partition.apply_leadership(state.leader_epoch, leads);
            self.sync_follower(&partition, state);
            if !applied {
                // The same epoch: the ISR may have changed (this leader's own write read back,
                // or the controller removing a dead broker).
                if let Some(replication) = partition.leader_replication() {
                    if replication.leader_epoch() == state.leader_epoch {
                        replication.on_state_from_store(state, crate::handlers::now_ms());
                    }
                }
                continue;
            }
            tracing::debug!(topic = %topic.name, index, leader_epoch = state.leader_epoch, leads, "leadership applied");
            // (Leaders record the new epoch's start in the log: `start_or_stop_replication`.)
            self.start_or_stop_replication(topic, &partition, state, leads);
            if topic.name == OFFSETS_TOPIC {
                if leads {
                    self.load_group_coordinator(partition);
                } else {
                    self.groups.unload(index);
                }
            }
        }
    }

    /// A replicated partition's leader tracks its followers, the ISR and the high watermark
    /// (see `leader_replication`); a single replica's high watermark follows its log end.
    fn start_or_stop_replication(
        &self,
        topic: &TopicMetadata,
        partition: &Rc<Partition>,
        state: &super::topics::PartitionView,
        leads: bool,
    ) {
        let config = &self.broker.config;
        partition
            .set_min_insync_replicas(min_insync_replicas(&self.broker.effective_config(), topic));
        if !leads || state.replicas.len() < 2 {
            partition.set_leader_replication(None);
            if leads {
                // KIP-101: the new epoch starts at the log end before any write in it.
                if let Err(error) = partition.log.start_leader_epoch(state.leader_epoch) {
                    tracing::error!(topic = %topic.name, index = partition.index, %error, "could not record the new leader epoch");
                }
            }
            // A follower's high watermark is its leader's (set by its fetcher); a lone
            // replica's follows its own log end.
            partition.log.set_high_watermark_follows_log_end(leads);
            return;
        }
        match LeaderReplication::start(
            partition,
            state,
            config.broker_id,
            config.replica_lag_time_max_ms,
            self.broker.control.clone(),
            self.broker.topics.clone(),
            crate::handlers::now_ms(),
        ) {
            Ok(replication) => partition.set_leader_replication(Some(replication)),
            Err(error) => {
                // Without its replication state the leader cannot move the high watermark:
                // it keeps the partition unled rather than acknowledge what is not replicated.
                tracing::error!(topic = %topic.name, index = partition.index, %error, "could not take up leadership");
                partition.resign_leadership();
            }
        }
    }

    /// Starts or stops fetching a replica from its leader as the metadata says: a follower of
    /// the epoch it applied, whose leader is live, fetches from it; a leader, or a replica whose
    /// leader is unknown or gone, does not. Repeating it is harmless (`follow` of the same leader
    /// and epoch changes nothing), so it also runs when the live brokers change.
    fn sync_follower(&self, partition: &Rc<Partition>, state: &PartitionView) {
        let broker_id = self.broker.config.broker_id;
        let current = partition.leader_epoch.get() == state.leader_epoch;
        let leader = self.metadata.members().broker(state.leader).cloned();
        match leader {
            Some(leader) if current && !partition.is_leader() && leader.id != broker_id => {
                self.fetchers
                    .follow(partition.clone(), leader, state.leader_epoch);
            }
            _ if current || partition.is_leader() => {
                self.fetchers.unfollow(&partition.topic, partition.index);
            }
            // A stale view: keep what the newer decision set up.
            _ => {}
        }
    }

    /// Re-checks every replica's fetcher (the live brokers changed: a leader may have come
    /// back, or moved to a new address).
    fn sync_all_followers(&self) {
        for topic in self.metadata.topics() {
            for (state, index) in topic.metadata.partition_states.iter().zip(0..) {
                if let Some(partition) = self.partition(&topic.name, index) {
                    self.sync_follower(&partition, state);
                }
            }
        }
    }

    /// Loads the coordinator of a `__consumer_offsets` partition this shard leads, in the
    /// background: until it has replayed its partition it answers COORDINATOR_LOAD_IN_PROGRESS.
    fn load_group_coordinator(&self, partition: Rc<Partition>) {
        let config = group_config(&self.broker.config);
        let now_ms = crate::handlers::now_ms();
        let groups = self.groups.clone();
        strom_engine::io::spawn_local(async move {
            let index = partition.index;
            if let Err(error) = groups.load(partition, config, now_ms).await {
                tracing::error!(partition = index, %error, "could not load group coordinator");
            }
        });
    }

    /// Gives up every leadership this shard holds, without waiting for a new election: the
    /// broker lost its coordination session, so the controller may already have moved them.
    pub fn resign_all_leaderships(&self) {
        for partition in self.partitions() {
            partition.resign_leadership();
            if &*partition.topic == OFFSETS_TOPIC {
                self.groups.unload(partition.index);
            }
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

    /// Applies a control-plane change to this shard's metadata cache (on a gap, when updates
    /// from two publishers crossed, it reloads the whole cache from the view instead), then
    /// brings this shard's replicas in line: opens the ones newly assigned to this broker,
    /// applies leaderships, and removes (with their files) replicas of deleted topics or no
    /// longer assigned here.
    pub async fn apply_metadata(self: &Rc<Self>, update: &MetadataUpdate) {
        let partitions_before = match &update.change {
            MetadataChange::Upsert(topic) => Some(
                self.metadata
                    .topic(&topic.name)
                    .map_or(0, |cached| cached.partition_count),
            ),
            MetadataChange::Remove { .. } | MetadataChange::Members(_) => None,
        };
        let configs_changed = match &update.change {
            MetadataChange::Upsert(topic) => self
                .metadata
                .topic(&topic.name)
                .is_some_and(|cached| cached.metadata.configs != topic.configs),
            MetadataChange::Remove { .. } | MetadataChange::Members(_) => false,
        };
        match self.metadata.apply(update) {
            Applied::Stale => {}
            Applied::Gap => {
                self.metadata.install(&self.broker.topics.snapshot());
                self.reconcile_all().await;
            }
            Applied::Applied => match &update.change {
                MetadataChange::Upsert(topic) => {
                    if configs_changed {
                        self.apply_topic_configs(topic);
                    }
                    self.reconcile_topic(topic).await;
                    if partitions_before != Some(topic.partitions) {
                        self.notify_partitions_changed(&topic.name);
                    }
                }
                MetadataChange::Remove { name, .. } => {
                    self.remove_topic_replicas(name).await;
                    self.notify_partitions_changed(name);
                }
                MetadataChange::Members(_) => self.sync_all_followers(),
            },
        }
    }

    /// Tells this shard's group coordinators that a topic's partitions changed (created,
    /// grown, deleted): groups subscribed to it rebalance.
    fn notify_partitions_changed(&self, topic: &str) {
        let topics = vec![topic.to_string()];
        self.groups.broadcast(crate::handlers::now_ms(), || {
            crate::group::Input::PartitionsChanged(topics.clone())
        });
    }

    /// Reconciles every replica with the whole cache (after a gap).
    async fn reconcile_all(self: &Rc<Self>) {
        let topics = self.metadata.topics();
        let live: std::collections::HashSet<Rc<str>> =
            topics.iter().map(|topic| topic.name.clone()).collect();
        let gone: Vec<Rc<str>> = self
            .partitions
            .borrow()
            .keys()
            .filter(|name| !live.contains(*name))
            .cloned()
            .collect();
        for name in gone {
            self.remove_topic_replicas(&name).await;
        }
        for topic in topics {
            // The gap may have hidden a config change.
            self.apply_topic_configs(&topic.metadata);
            self.reconcile_topic(&topic.metadata).await;
        }
    }

    /// Opens this shard's replicas of `topic` assigned to this broker, removes those no longer
    /// assigned here, and applies leaderships.
    async fn reconcile_topic(self: &Rc<Self>, topic: &TopicMetadata) {
        let broker_id = self.broker.config.broker_id;
        for (state, index) in topic.partition_states.iter().zip(0..) {
            if self.owner_of(&topic.name, index) != self.id {
                continue;
            }
            let assigned = state.replicas.contains(&broker_id);
            match (self.partition(&topic.name, index), assigned) {
                (Some(partition), _) if partition.topic_id != topic.id => {
                    // The topic was deleted and created again while this replica was away.
                    self.remove_partition(&topic.name, index, true).await;
                    if assigned {
                        self.open_assigned(topic, index).await;
                    }
                }
                (None, true) => self.open_assigned(topic, index).await,
                (Some(_), false) => {
                    tracing::info!(topic = %topic.name, index, "replica no longer assigned here; removing it");
                    self.remove_partition(&topic.name, index, true).await;
                }
                (Some(_), true) | (None, false) => {}
            }
        }
        self.apply_leaderships(topic);
    }

    async fn open_assigned(&self, topic: &TopicMetadata, index: i32) {
        if let Err(error) = self.open_partition(topic, index).await {
            tracing::error!(topic = %topic.name, index, %error, "could not open a replica; it stays offline");
        }
    }

    /// Removes this shard's replicas of a deleted topic, with their files.
    async fn remove_topic_replicas(&self, name: &str) {
        let indexes: Vec<i32> = self
            .partitions
            .borrow()
            .get(name)
            .map(|by_index| by_index.keys().copied().collect())
            .unwrap_or_default();
        for index in indexes {
            if name == OFFSETS_TOPIC {
                self.groups.unload(index);
            }
            self.remove_partition(name, index, true).await;
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
        // Where it is, or (new here) the log dir with the fewest partitions.
        let (_, dir) = self.broker.log_dirs.place(&topic.name, index);
        let config = log_config(&self.broker.config, &topic.configs);
        let name: Rc<str> = Rc::from(topic.name.as_str());
        let partition = Partition::open(dir, name.clone(), index, topic.id, config).await?;
        let broker_config = self.broker.effective_config();
        partition.apply_topic_configs(
            log_config(&broker_config, &topic.configs),
            min_insync_replicas(&broker_config, topic),
            TopicCompression::of_topic(&topic.configs),
        );
        restore_high_watermark(&self.broker, topic, &partition);
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
        self.fetchers.unfollow(topic, index);
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
            None => match self.broker.log_dirs.dir_index_of(topic, index) {
                Some(_) => self.broker.log_dirs.place(topic, index).1,
                None => return,
            },
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
        if delete_files {
            self.broker.log_dirs.forget(topic, index);
        }
    }

    /// This shard's partitions' high watermarks, for the log dir's checkpoint.
    pub fn high_watermarks(&self) -> Vec<((String, i32), i64)> {
        self.partitions()
            .into_iter()
            .map(|partition| {
                (
                    (partition.topic.to_string(), partition.index),
                    partition.log.high_watermark(),
                )
            })
            .collect()
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
    /// dir's, written once all shards are done). A failure marks the partition's log dir
    /// unclean.
    pub async fn shutdown(&self) {
        self.stopping.set(true);
        self.fetchers.unfollow_all();
        close_partitions(self.partitions(), self.broker.clone()).await;
    }
}

/// The topic's `min.insync.replicas` (validated when set), else the broker's.
fn min_insync_replicas(config: &crate::config::BrokerConfig, topic: &TopicMetadata) -> usize {
    topic
        .configs
        .get("min.insync.replicas")
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(config.min_insync_replicas as usize)
}

/// A replicated partition opens with the high watermark of the log dir's checkpoint (its log
/// start without one): its log end may hold records its leader never confirmed, which consumers
/// must not see. A lone replica's high watermark follows its log end.
pub fn restore_high_watermark(
    broker: &BrokerContext,
    topic: &TopicMetadata,
    partition: &Partition,
) {
    let replicated = topic
        .partition(partition.index)
        .is_some_and(|state| state.replicas.len() > 1);
    if !replicated {
        return;
    }
    partition.log.set_high_watermark_follows_log_end(false);
    let checkpointed = broker
        .checkpointed_high_watermarks
        .get(&(topic.name.clone(), partition.index))
        .copied()
        .unwrap_or_else(|| partition.log.log_start_offset());
    partition.log.reset_high_watermark(checkpointed);
}
