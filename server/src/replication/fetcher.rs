//! The follower's fetchers: one task per (leader broker, local shard) — or `num.replica.fetchers`
//! of them, each partition in a fixed one — carrying every partition of this shard that follows
//! that leader, fetching them with one Kafka Fetch as a replica.
//!
//! Life of a followed partition: [`FetcherSet::follow`] puts it in the leader's fetcher in
//! [`Phase::Truncating`]: before its first fetch in a new leader epoch it asks the leader
//! (OffsetForLeaderEpoch) where its log and the leader's diverge and truncates there (KIP-101,
//! KIP-279), never simply to its high watermark. Then [`Phase::Fetching`]: each round fetches from
//! its log end offset (its durable end under `log.durability=sync`, so the leader counts only
//! durable progress), appends what came back as it is, and takes the leader's high watermark
//! (clamped to its own log end). A diverging epoch in a response (Fetch v12, KIP-320) truncates
//! again. NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH pause the partition: it starts over
//! with the truncation step when the next `follow` gives a new leader or epoch, or after
//! `replica.fetch.backoff.ms` (the leader may only have been behind on the same metadata); other
//! partition errors retry it after the backoff; a connection error drops the connection and
//! reconnects after the same backoff.
//!
//! Membership changes while a request is out: every followed partition carries a generation,
//! bumped by each `follow`, and a response is applied to a partition only if its generation is
//! the one the request was built with.
//!
//! The decisions (what to ask, what a response means) are pure functions tested apart from the
//! socket: [`build_fetch_request`], [`build_epoch_request`], [`classify_partition`],
//! [`whole_batches`]; where to truncate is `replication::truncation`'s.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_engine::log::Durability;
use tokio::sync::Notify;

use super::leader_connection::{
    ConnectionError, LeaderConnection, FETCH_VERSION, OFFSET_FOR_LEADER_EPOCH_VERSION,
};
use super::truncation::{epoch_to_ask, truncation_point, EpochEndOffset, TruncationDecision};
use crate::broker::metadata_cache::BrokerEndpoint;
use crate::broker::partition::Partition;

/// Kafka's `replica.fetch.wait.max.ms`: how long the leader may hold a fetch without new data.
pub const REPLICA_FETCH_WAIT_MAX_MS: i32 = 500;
/// Kafka's `replica.fetch.min.bytes`.
pub const REPLICA_FETCH_MIN_BYTES: i32 = 1;
/// Kafka's `replica.fetch.response.max.bytes`: bounds one fetch response (and so the memory a
/// fetcher holds at once).
pub const REPLICA_FETCH_RESPONSE_MAX_BYTES: i32 = 10 << 20;
/// Kafka's `replica.fetch.max.bytes`: per partition in one fetch (at least one batch is sent).
pub const REPLICA_FETCH_MAX_BYTES: i32 = 1 << 20;
/// Kafka's `replica.fetch.backoff.ms`: pause after an error before trying again.
pub const REPLICA_FETCH_BACKOFF_MS: u64 = 1_000;
/// How long connecting to a leader may take (Kafka's `replica.socket.timeout.ms`).
pub const REPLICA_SOCKET_TIMEOUT_MS: u64 = 30_000;
/// How long a request may wait for its answer beyond the fetch's own wait.
pub const REPLICA_REQUEST_TIMEOUT_MS: u64 = 30_000;

/// How a broker's fetchers fetch (Kafka's `replica.fetch.*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetcherConfig {
    /// This broker's id: the `replica_id` of its fetches.
    pub broker_id: i32,
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub response_max_bytes: i32,
    pub partition_max_bytes: i32,
    pub backoff_ms: u64,
    pub socket_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// `num.replica.fetchers`: fetchers (connections) per leader broker on each shard; a
    /// partition's is fixed by its name and index.
    pub fetchers_per_leader: u32,
}

impl FetcherConfig {
    /// Kafka's defaults (as [`Self::from_broker`] with no `replica.*` setting).
    pub fn new(broker_id: i32) -> Self {
        FetcherConfig {
            broker_id,
            max_wait_ms: REPLICA_FETCH_WAIT_MAX_MS,
            min_bytes: REPLICA_FETCH_MIN_BYTES,
            response_max_bytes: REPLICA_FETCH_RESPONSE_MAX_BYTES,
            partition_max_bytes: REPLICA_FETCH_MAX_BYTES,
            backoff_ms: REPLICA_FETCH_BACKOFF_MS,
            socket_timeout_ms: REPLICA_SOCKET_TIMEOUT_MS,
            request_timeout_ms: REPLICA_REQUEST_TIMEOUT_MS,
            fetchers_per_leader: 1,
        }
    }

    /// From the broker's `replica.fetch.*` and `num.replica.fetchers` settings.
    pub fn from_broker(config: &crate::config::BrokerConfig) -> Self {
        let fetch = &config.replica_fetch;
        FetcherConfig {
            broker_id: config.broker_id,
            max_wait_ms: fetch.wait_max_ms,
            min_bytes: fetch.min_bytes,
            response_max_bytes: fetch.response_max_bytes,
            partition_max_bytes: fetch.max_bytes,
            backoff_ms: fetch.backoff_ms,
            socket_timeout_ms: fetch.socket_timeout_ms,
            request_timeout_ms: REPLICA_REQUEST_TIMEOUT_MS,
            fetchers_per_leader: config.num_replica_fetchers.max(1),
        }
    }

    /// Which of a leader's fetchers carries `topic`/`index` (Kafka's rule: the partition's
    /// hash modulo `num.replica.fetchers`).
    fn fetcher_slot(&self, topic: &str, index: i32) -> u32 {
        let hash = crate::broker::group_placement::java_string_hash(topic)
            .wrapping_mul(31)
            .wrapping_add(index);
        hash.unsigned_abs() % self.fetchers_per_leader.max(1)
    }

    fn backoff(&self) -> Duration {
        Duration::from_millis(self.backoff_ms)
    }

    fn fetch_timeout_ms(&self) -> u64 {
        u64::try_from(self.max_wait_ms).unwrap_or(0) + self.request_timeout_ms
    }
}

/// Where a followed partition is in its life (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Must find where its log diverges from the leader's before fetching; `ask_epoch` is the
    /// epoch to ask about next (`None`: its latest).
    Truncating {
        ask_epoch: Option<i32>,
    },
    Fetching,
    /// The leader refused it (not the leader, or our epoch is stale): the metadata should move
    /// on (a `follow` in a new epoch resets it). Meanwhile it starts over from the truncation
    /// step after the backoff, since a leader may only be behind on the same metadata (a
    /// follower that paused for good would then never fetch again).
    Paused {
        error_code: i16,
    },
}

/// A partition as its fetcher carries it.
struct Followed {
    partition: Rc<Partition>,
    leader_epoch: i32,
    generation: u64,
    phase: Phase,
    /// After an error: not asked about again before this time.
    retry_at: Option<Instant>,
}

type PartitionKey = (Rc<str>, i32);

/// The state one fetcher task shares with the shard that adds and removes its partitions.
struct FetcherShared {
    leader: RefCell<BrokerEndpoint>,
    partitions: RefCell<BTreeMap<PartitionKey, Followed>>,
    /// Set when the leader's address changed: the task reconnects before its next request.
    reconnect: Cell<bool>,
    /// Set when the fetcher has no partition left: the task exits at its next step.
    stopped: Cell<bool>,
    /// Wakes the task when partitions are added or the fetcher stops.
    changed: Notify,
}

impl FetcherShared {
    /// Whether `key` is still followed in the same generation (nothing changed it while a
    /// request was out).
    fn is_current(&self, key: &PartitionKey, generation: u64) -> bool {
        !self.stopped.get()
            && self
                .partitions
                .borrow()
                .get(key)
                .is_some_and(|followed| followed.generation == generation)
    }

    /// Changes a partition's state if it is still current.
    fn update(&self, key: &PartitionKey, generation: u64, change: impl FnOnce(&mut Followed)) {
        if let Some(followed) = self.partitions.borrow_mut().get_mut(key) {
            if followed.generation == generation {
                change(followed);
            }
        }
    }

    fn pause(&self, key: &PartitionKey, generation: u64, error_code: i16, backoff: Duration) {
        self.update(key, generation, |followed| {
            followed.phase = Phase::Paused { error_code };
            followed.retry_at = Some(Instant::now() + backoff);
        });
    }

    fn retry_later(&self, key: &PartitionKey, generation: u64, backoff: Duration) {
        self.update(key, generation, |followed| {
            followed.retry_at = Some(Instant::now() + backoff);
        });
    }

    /// Partitions ready for `phase_filter` now, and the earliest time a waiting one is ready.
    fn ready(
        &self,
        now: Instant,
        phase_filter: impl Fn(&Phase) -> bool,
    ) -> Vec<(PartitionKey, u64, Rc<Partition>, i32, Phase)> {
        let mut partitions = self.partitions.borrow_mut();
        partitions
            .iter_mut()
            .filter(|(_, followed)| phase_filter(&followed.phase))
            .filter(|(_, followed)| followed.retry_at.is_none_or(|at| at <= now))
            .map(|(key, followed)| {
                followed.retry_at = None;
                (
                    key.clone(),
                    followed.generation,
                    followed.partition.clone(),
                    followed.leader_epoch,
                    followed.phase,
                )
            })
            .collect()
    }

    /// The earliest retry time among waiting partitions; `None` when none waits.
    fn next_retry(&self) -> Option<Instant> {
        self.partitions
            .borrow()
            .values()
            .filter_map(|followed| followed.retry_at)
            .min()
    }
}

/// A running fetcher for one leader.
struct Fetcher {
    shared: Rc<FetcherShared>,
}

/// A fetcher: (leader broker id, slot among that leader's `num.replica.fetchers`).
type FetcherId = (i32, u32);

/// A shard's fetchers, by leader broker id (and slot). Lives in the shard's state; every method
/// runs on the shard thread.
pub struct FetcherSet {
    config: FetcherConfig,
    fetchers: RefCell<HashMap<FetcherId, Fetcher>>,
    /// Which fetcher each followed partition is in.
    fetcher_of: RefCell<HashMap<PartitionKey, FetcherId>>,
    next_generation: Cell<u64>,
}

impl FetcherSet {
    pub fn new(config: FetcherConfig) -> Self {
        FetcherSet {
            config,
            fetchers: RefCell::new(HashMap::new()),
            fetcher_of: RefCell::new(HashMap::new()),
            next_generation: Cell::new(0),
        }
    }

    pub fn config(&self) -> &FetcherConfig {
        &self.config
    }

    /// Makes `partition` follow `leader` in `leader_epoch`: it joins that leader's fetcher
    /// (started if needed), leaving any other, and truncates before its first fetch. Repeating
    /// the same leader and epoch changes nothing (unless the partition was paused, which a
    /// repeated decision un-pauses to try again). Must run on the partition's owner shard.
    pub fn follow(&self, partition: Rc<Partition>, leader: BrokerEndpoint, leader_epoch: i32) {
        assert_ne!(
            leader.id, self.config.broker_id,
            "a broker does not follow itself"
        );
        let key: PartitionKey = (partition.topic.clone(), partition.index);
        let id: FetcherId = (
            leader.id,
            self.config.fetcher_slot(&partition.topic, partition.index),
        );
        let previous = self.fetcher_of.borrow().get(&key).copied();
        if let Some(previous) = previous.filter(|&previous| previous != id) {
            self.remove_from(previous, &key);
        }
        // A follower's high watermark is the leader's (clamped to its own log end), set by the
        // fetcher, not its own log end.
        partition.log.set_high_watermark_follows_log_end(false);
        let mut fetchers = self.fetchers.borrow_mut();
        let fetcher = fetchers.entry(id).or_insert_with(|| {
            tracing::info!(leader = leader.id, slot = id.1, host = %leader.host, port = leader.port, "starting replica fetcher");
            start_fetcher(leader.clone(), self.config.clone())
        });
        {
            let mut current = fetcher.shared.leader.borrow_mut();
            if current.host != leader.host || current.port != leader.port {
                *current = leader.clone();
                fetcher.shared.reconnect.set(true);
            }
        }
        let mut partitions = fetcher.shared.partitions.borrow_mut();
        let unchanged = partitions.get(&key).is_some_and(|followed| {
            followed.leader_epoch == leader_epoch
                && Rc::ptr_eq(&followed.partition, &partition)
                && !matches!(followed.phase, Phase::Paused { .. })
        });
        if !unchanged {
            let generation = self.next_generation.get() + 1;
            self.next_generation.set(generation);
            partitions.insert(
                key.clone(),
                Followed {
                    partition,
                    leader_epoch,
                    generation,
                    phase: Phase::Truncating { ask_epoch: None },
                    retry_at: None,
                },
            );
        }
        drop(partitions);
        self.fetcher_of.borrow_mut().insert(key, id);
        fetcher.shared.changed.notify_one();
    }

    /// Stops following a partition (this broker became its leader, or the replica was
    /// removed). A fetcher left with no partition stops.
    pub fn unfollow(&self, topic: &str, index: i32) {
        let key: PartitionKey = (Rc::from(topic), index);
        let id = self.fetcher_of.borrow_mut().remove(&key);
        if let Some(id) = id {
            self.remove_from(id, &key);
        }
    }

    /// Stops every fetcher (shutdown, or a lost coordination session).
    pub fn unfollow_all(&self) {
        self.fetcher_of.borrow_mut().clear();
        for (_, fetcher) in self.fetchers.borrow_mut().drain() {
            fetcher.shared.partitions.borrow_mut().clear();
            fetcher.shared.stopped.set(true);
            fetcher.shared.changed.notify_one();
        }
    }

    /// The leader `topic`/`index` fetches from, and its phase (for tests and diagnostics).
    pub fn followed(&self, topic: &str, index: i32) -> Option<(i32, Phase)> {
        let key: PartitionKey = (Rc::from(topic), index);
        let id = *self.fetcher_of.borrow().get(&key)?;
        let fetchers = self.fetchers.borrow();
        let phase = fetchers
            .get(&id)?
            .shared
            .partitions
            .borrow()
            .get(&key)?
            .phase;
        Some((id.0, phase))
    }

    /// Running fetchers: (leader broker id, slot), sorted.
    pub fn fetcher_ids(&self) -> Vec<(i32, u32)> {
        let mut ids: Vec<FetcherId> = self.fetchers.borrow().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn remove_from(&self, id: FetcherId, key: &PartitionKey) {
        let mut fetchers = self.fetchers.borrow_mut();
        let Some(fetcher) = fetchers.get(&id) else {
            return;
        };
        let empty = {
            let mut partitions = fetcher.shared.partitions.borrow_mut();
            partitions.remove(key);
            partitions.is_empty()
        };
        if empty {
            // The task exits at its next step; one in the middle of a request applies nothing
            // (its partitions are gone).
            fetcher.shared.stopped.set(true);
            fetcher.shared.changed.notify_one();
            fetchers.remove(&id);
            tracing::info!(
                leader = id.0,
                slot = id.1,
                "replica fetcher stopped: no partition left in it"
            );
        }
    }
}

fn start_fetcher(leader: BrokerEndpoint, config: FetcherConfig) -> Fetcher {
    let shared = Rc::new(FetcherShared {
        leader: RefCell::new(leader),
        partitions: RefCell::new(BTreeMap::new()),
        reconnect: Cell::new(false),
        stopped: Cell::new(false),
        changed: Notify::new(),
    });
    strom_engine::io::spawn_local(run_fetcher(shared.clone(), config));
    Fetcher { shared }
}

/// The fetcher task: truncation rounds and fetch rounds until it is stopped.
async fn run_fetcher(shared: Rc<FetcherShared>, config: FetcherConfig) {
    let mut connection: Option<LeaderConnection> = None;
    while !shared.stopped.get() {
        let now = Instant::now();
        // Paused partitions start over with the truncation step once their backoff is over.
        let truncating = shared.ready(now, |phase| {
            matches!(phase, Phase::Truncating { .. } | Phase::Paused { .. })
        });
        let has_fetching = shared.partitions.borrow().values().any(|followed| {
            followed.phase == Phase::Fetching && followed.retry_at.is_none_or(|at| at <= now)
        });
        if truncating.is_empty() && !has_fetching {
            let sleep = match shared.next_retry() {
                Some(at) => tokio::time::sleep_until(at.into()),
                None => tokio::time::sleep(Duration::from_secs(3600)),
            };
            tokio::select! {
                () = shared.changed.notified() => {}
                () = sleep => {}
            }
            continue;
        }
        if shared.reconnect.replace(false) {
            connection = None;
        }
        let conn = match connection.as_mut() {
            Some(conn) => conn,
            None => {
                let leader = shared.leader.borrow().clone();
                match LeaderConnection::connect(
                    &leader.host,
                    leader.port,
                    config.broker_id,
                    config.socket_timeout_ms,
                )
                .await
                {
                    Ok(conn) => connection.insert(conn),
                    Err(error) => {
                        tracing::warn!(leader = leader.id, %error, "replica fetcher cannot reach its leader; retrying");
                        tokio::time::sleep(config.backoff()).await;
                        continue;
                    }
                }
            }
        };
        let round = async {
            if !truncating.is_empty() {
                truncation_round(&shared, &config, conn, truncating).await?;
            }
            fetch_round(&shared, &config, conn).await
        };
        if let Err(error) = round.await {
            tracing::warn!(leader = shared.leader.borrow().id, %error, "replica fetch failed; reconnecting after backoff");
            connection = None;
            tokio::time::sleep(config.backoff()).await;
        }
    }
}

/// The leader epochs of a replica's log, oldest first: (epoch, start offset).
fn local_epochs(partition: &Partition) -> Vec<(i32, i64)> {
    partition.log.leader_epoch_entries()
}

/// What to ask the leader about a truncating partition: the epoch a previous answer named, else
/// its latest; `None` when its log holds no epoch (empty: nothing can diverge, fetch at once).
fn next_epoch_to_ask(phase: Phase, epochs: &[(i32, i64)]) -> Option<i32> {
    match phase {
        Phase::Truncating {
            ask_epoch: Some(epoch),
        } => Some(epoch),
        _ => epoch_to_ask(epochs),
    }
}

/// One OffsetForLeaderEpoch request for every truncating partition, then the truncations.
async fn truncation_round(
    shared: &FetcherShared,
    config: &FetcherConfig,
    conn: &mut LeaderConnection,
    truncating: Vec<(PartitionKey, u64, Rc<Partition>, i32, Phase)>,
) -> Result<(), ConnectionError> {
    let mut asks = Vec::new();
    for (key, generation, partition, leader_epoch, phase) in truncating {
        let epochs = local_epochs(&partition);
        match next_epoch_to_ask(phase, &epochs) {
            Some(epoch) => asks.push((key, generation, partition, leader_epoch, epoch)),
            None => {
                // No epoch: an empty log (the engine rebuilds the epochs of any batch it holds),
                // so nothing can diverge.
                shared.update(&key, generation, |followed| {
                    followed.phase = Phase::Fetching
                });
            }
        }
    }
    if asks.is_empty() {
        return Ok(());
    }
    let request = build_epoch_request(
        config.broker_id,
        asks.iter()
            .map(|(key, _, _, leader_epoch, epoch)| (key.0.as_ref(), key.1, *leader_epoch, *epoch)),
    );
    let response = conn
        .send(
            &request,
            OFFSET_FOR_LEADER_EPOCH_VERSION,
            config.request_timeout_ms,
        )
        .await?;
    let mut answers: HashMap<(String, i32), (i16, i32, i64)> = HashMap::new();
    for topic in response.topics {
        for partition in topic.partitions {
            answers.insert(
                (topic.topic.to_string(), partition.partition),
                (
                    partition.error_code,
                    partition.leader_epoch,
                    partition.end_offset,
                ),
            );
        }
    }
    for (key, generation, partition, _, _) in asks {
        if !shared.is_current(&key, generation) {
            continue;
        }
        let Some(&(error_code, epoch, end_offset)) = answers.get(&(key.0.to_string(), key.1))
        else {
            shared.retry_later(&key, generation, config.backoff());
            continue;
        };
        match classify_error(error_code) {
            ErrorClass::None => {
                apply_truncation(shared, &key, generation, &partition, (epoch, end_offset)).await;
            }
            ErrorClass::Pause => {
                tracing::info!(topic = %key.0, index = key.1, error_code, "leader refused OffsetForLeaderEpoch; asking again after the backoff");
                shared.pause(&key, generation, error_code, config.backoff());
            }
            ErrorClass::Retry => shared.retry_later(&key, generation, config.backoff()),
        }
    }
    Ok(())
}

/// Applies the leader's answer about where an epoch ends (from OffsetForLeaderEpoch or a
/// fetch's diverging epoch): truncates, or asks again about an older epoch.
async fn apply_truncation(
    shared: &FetcherShared,
    key: &PartitionKey,
    generation: u64,
    partition: &Partition,
    answer: (i32, i64),
) {
    let epochs = local_epochs(partition);
    let log_end = partition.log.log_end_offset();
    let decision = truncation_point(
        &epochs,
        log_end,
        partition.log.high_watermark(),
        EpochEndOffset::from(answer),
    );
    let (truncate_to, next_phase) = match decision {
        TruncationDecision::TruncateTo(offset) => (offset, Phase::Fetching),
        TruncationDecision::AskAgain { truncate_to, epoch } => (
            truncate_to,
            Phase::Truncating {
                ask_epoch: Some(epoch),
            },
        ),
    };
    if truncate_to < log_end {
        // The leader's history holds nothing of ours from `truncate_to` on: those records were
        // never committed, and keeping them would fork the replicas.
        tracing::info!(topic = %key.0, index = key.1, from = log_end, to = truncate_to, "follower truncates its divergent log");
    }
    // Even with no record to cut, an epoch this replica started at its log end while it led
    // (and wrote nothing in) must go: the leader does not know it, so a fetch naming it as the
    // last fetched epoch would be answered "diverging" forever.
    if let Err(error) = partition.truncate_to(truncate_to).await {
        tracing::error!(topic = %key.0, index = key.1, %error, "truncation failed");
        shared.retry_later(
            key,
            generation,
            Duration::from_millis(REPLICA_FETCH_BACKOFF_MS),
        );
        return;
    }
    shared.update(key, generation, |followed| followed.phase = next_phase);
}

/// One fetch for every fetching partition; appends, truncations and high watermarks.
async fn fetch_round(
    shared: &FetcherShared,
    config: &FetcherConfig,
    conn: &mut LeaderConnection,
) -> Result<(), ConnectionError> {
    let fetching = shared.ready(Instant::now(), |phase| *phase == Phase::Fetching);
    if fetching.is_empty() {
        return Ok(());
    }
    let targets: Vec<FetchTarget> = fetching
        .iter()
        .map(|(key, _, partition, leader_epoch, _)| FetchTarget {
            topic: key.0.clone(),
            index: key.1,
            fetch_offset: fetch_offset(partition),
            log_start_offset: partition.log.log_start_offset(),
            current_leader_epoch: *leader_epoch,
            last_fetched_epoch: local_epochs(partition)
                .last()
                .map_or(-1, |&(epoch, _)| epoch),
        })
        .collect();
    let request = build_fetch_request(config, &targets);
    let response = conn
        .send(&request, FETCH_VERSION, config.fetch_timeout_ms())
        .await?;
    if response.error_code != 0 {
        tracing::warn!(
            error_code = response.error_code,
            "leader refused the whole fetch; backing off"
        );
        for (key, generation, ..) in &fetching {
            shared.retry_later(key, *generation, config.backoff());
        }
        return Ok(());
    }
    let mut by_partition: HashMap<(String, i32), PartitionData> = HashMap::new();
    for topic in response.responses {
        for data in topic.partitions {
            by_partition.insert((topic.topic.to_string(), data.partition_index), data);
        }
    }
    let mut appended = Vec::new();
    for ((key, generation, partition, _, _), target) in fetching.into_iter().zip(&targets) {
        if !shared.is_current(&key, generation) {
            continue;
        }
        let Some(data) = by_partition.remove(&(key.0.to_string(), key.1)) else {
            continue;
        };
        match classify_partition(&data) {
            PartitionOutcome::Data {
                records,
                high_watermark,
                leader_log_start_offset,
            } => {
                if records.is_empty() {
                    set_follower_high_watermark(&partition, high_watermark);
                    follow_leader_log_start(&key, &partition, leader_log_start_offset);
                    continue;
                }
                if partition.log.wait_for_queue_room().await.is_err()
                    || !shared.is_current(&key, generation)
                    || fetch_offset(&partition) != target.fetch_offset
                {
                    continue;
                }
                if let Some(batch_base) =
                    first_batch_straddling_empty_log_start(&partition, &records)
                {
                    // Our log (just started over at the leader's log start) begins inside the
                    // leader's first batch: a batch cannot be split, so the log starts at the
                    // batch's base instead, and the log start follows the leader's below.
                    if let Err(error) = partition.truncate_fully_and_start_at(batch_base).await {
                        tracing::error!(topic = %key.0, index = key.1, %error, "starting the log at the batch base failed");
                        shared.retry_later(&key, generation, config.backoff());
                        continue;
                    }
                }
                match partition.append_replicated(records) {
                    Ok(receipt) => {
                        let durable = partition.log.config().durability == Durability::Sync;
                        appended.push((
                            key,
                            generation,
                            partition,
                            (high_watermark, leader_log_start_offset),
                            receipt.into_wait(durable),
                        ));
                    }
                    Err(error) => {
                        // A gap or overlap (the log moved under the fetch) or a damaged batch:
                        // find the divergence again before fetching more.
                        tracing::warn!(topic = %key.0, index = key.1, %error, "replicated append refused; truncating again");
                        shared.update(&key, generation, |followed| {
                            followed.phase = Phase::Truncating { ask_epoch: None };
                            followed.retry_at = Some(Instant::now() + config.backoff());
                        });
                    }
                }
            }
            PartitionOutcome::Diverging {
                epoch,
                end_offset,
                high_watermark,
            } => {
                apply_truncation(shared, &key, generation, &partition, (epoch, end_offset)).await;
                set_follower_high_watermark(&partition, high_watermark);
            }
            PartitionOutcome::Pause { error_code } => {
                tracing::info!(topic = %key.0, index = key.1, error_code, "leader refused the fetch; asking again after the backoff");
                shared.pause(&key, generation, error_code, config.backoff());
            }
            PartitionOutcome::OutOfRange {
                leader_log_start_offset,
            } if leader_log_start_offset > target.fetch_offset => {
                // The leader deleted the records we lack (retention, DeleteRecords) while we
                // were away: they can never be copied, so start over at its log start.
                tracing::warn!(topic = %key.0, index = key.1, fetch_offset = target.fetch_offset, leader_log_start_offset, "follower is behind the leader's log start; starting its log over there");
                match partition
                    .truncate_fully_and_start_at(leader_log_start_offset)
                    .await
                {
                    Ok(_) => shared.update(&key, generation, |followed| {
                        followed.phase = Phase::Fetching;
                        followed.retry_at = None;
                    }),
                    Err(error) => {
                        tracing::error!(topic = %key.0, index = key.1, %error, "starting the log over failed");
                        shared.retry_later(&key, generation, config.backoff());
                    }
                }
            }
            PartitionOutcome::OutOfRange { .. } => {
                // Our offset is past the leader's log end: check for divergence again after a
                // backoff.
                tracing::warn!(topic = %key.0, index = key.1, fetch_offset = target.fetch_offset, "fetch offset out of range on the leader");
                shared.update(&key, generation, |followed| {
                    followed.phase = Phase::Truncating { ask_epoch: None };
                    followed.retry_at = Some(Instant::now() + config.backoff());
                });
            }
            PartitionOutcome::Retry { error_code } => {
                tracing::debug!(topic = %key.0, index = key.1, error_code, "replica fetch error; retrying after backoff");
                shared.retry_later(&key, generation, config.backoff());
            }
        }
    }
    // Wait for the appends to be written (durable under sync) before the next fetch reports them
    // as this replica's progress, all partitions at once.
    let waits = appended.into_iter().map(
        |(key, generation, partition, leader_offsets, wait)| async move {
            let outcome = wait.wait().await;
            (key, generation, partition, leader_offsets, outcome)
        },
    );
    for (key, generation, partition, (high_watermark, leader_log_start_offset), outcome) in
        strom_engine::runtime::join_all(waits.collect()).await
    {
        match outcome {
            Ok(()) if shared.is_current(&key, generation) => {
                set_follower_high_watermark(&partition, high_watermark);
                follow_leader_log_start(&key, &partition, leader_log_start_offset);
            }
            Ok(()) => {}
            Err(error) => {
                tracing::error!(topic = %key.0, index = key.1, %error, "replicated append failed");
                shared.retry_later(&key, generation, config.backoff());
            }
        }
    }
    Ok(())
}

/// The offset a follower fetches from: its log end, or under `log.durability=sync` its durable
/// end (it reports only durable progress, so `acks=all` means fsynced on every ISR member).
fn fetch_offset(partition: &Partition) -> i64 {
    let log_end = partition.log.log_end_offset();
    if partition.log.config().durability == Durability::Sync {
        partition.log.durable_end_offset().min(log_end)
    } else {
        log_end
    }
}

/// A follower's high watermark: the leader's, never past its own log end.
fn set_follower_high_watermark(partition: &Partition, leader_high_watermark: i64) {
    if leader_high_watermark >= 0 {
        partition
            .log
            .set_high_watermark(leader_high_watermark.min(partition.log.log_end_offset()));
    }
}

/// The base offset of the first fetched batch if the local log is empty (its end is its start)
/// and that start lies inside the batch: the leader's log start (DeleteRecords) fell in the middle
/// of a batch, and the leader serves the batch whole (Kafka's follower handles the same case by
/// starting its log at the batch's base).
fn first_batch_straddling_empty_log_start(partition: &Partition, records: &Bytes) -> Option<i64> {
    let log_end = partition.log.log_end_offset();
    if log_end != partition.log.log_start_offset() {
        return None;
    }
    let header = strom_engine::batch::BatchHeader::parse(records).ok()?;
    (header.base_offset < log_end && header.last_offset() >= log_end).then_some(header.base_offset)
}

/// Moves the follower's log start up to the leader's (never past the follower's high
/// watermark, which bounds what may be deleted), as Kafka's followers do: records the leader
/// deleted must not be served again by this replica once it leads.
fn follow_leader_log_start(key: &PartitionKey, partition: &Partition, leader_log_start: i64) {
    let new_start = leader_log_start.min(partition.log.high_watermark());
    if new_start <= partition.log.log_start_offset() {
        return;
    }
    if let Err(error) = partition.log.delete_records_before(new_start) {
        tracing::warn!(topic = %key.0, index = key.1, %error, new_start, "could not follow the leader's log start");
    }
}

/// One partition of a replica fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTarget {
    pub topic: Rc<str>,
    pub index: i32,
    pub fetch_offset: i64,
    pub log_start_offset: i64,
    pub current_leader_epoch: i32,
    /// The epoch of the last batch in the local log (-1: none), for the leader's divergence
    /// check (KIP-320).
    pub last_fetched_epoch: i32,
}

/// The Fetch a follower sends (v12, no fetch session: every fetch is full).
pub fn build_fetch_request(config: &FetcherConfig, targets: &[FetchTarget]) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for target in targets {
        let partition = FetchPartition::default()
            .with_partition(target.index)
            .with_current_leader_epoch(target.current_leader_epoch)
            .with_fetch_offset(target.fetch_offset)
            .with_last_fetched_epoch(target.last_fetched_epoch)
            .with_log_start_offset(target.log_start_offset)
            .with_partition_max_bytes(config.partition_max_bytes);
        match topics.last_mut() {
            Some(topic) if topic.topic.as_str() == &*target.topic => {
                topic.partitions.push(partition);
            }
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(target.topic.to_string())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(config.broker_id))
        .with_max_wait_ms(config.max_wait_ms)
        .with_min_bytes(config.min_bytes)
        .with_max_bytes(config.response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// The OffsetForLeaderEpoch a follower sends: per partition (topic, index, the leader epoch it
/// follows, the epoch whose end it asks for).
pub fn build_epoch_request<'a>(
    broker_id: i32,
    partitions: impl Iterator<Item = (&'a str, i32, i32, i32)>,
) -> OffsetForLeaderEpochRequest {
    let mut topics: Vec<OffsetForLeaderTopic> = Vec::new();
    for (topic, index, current_leader_epoch, epoch) in partitions {
        let partition = OffsetForLeaderPartition::default()
            .with_partition(index)
            .with_current_leader_epoch(current_leader_epoch)
            .with_leader_epoch(epoch);
        match topics.last_mut() {
            Some(last) if last.topic.as_str() == topic => last.partitions.push(partition),
            _ => topics.push(
                OffsetForLeaderTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(broker_id))
        .with_topics(topics)
}

/// How a follower treats a partition error from its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorClass {
    None,
    /// The leader is not the leader, or our epoch is stale: wait for new metadata.
    Pause,
    /// Transient (the leader has not caught up with the metadata yet, storage error, ...).
    Retry,
}

fn classify_error(error_code: i16) -> ErrorClass {
    if error_code == 0 {
        return ErrorClass::None;
    }
    match ResponseError::try_from_code(error_code) {
        // A newer leader epoch exists: wait for the metadata that names it (or the backoff).
        Some(ResponseError::FencedLeaderEpoch) => ErrorClass::Pause,
        // NOT_LEADER_OR_FOLLOWER is retried, as Kafka's fetcher does: this follower may have
        // read the new leadership from the store before the leader applied it, and on a quiet
        // topic no later metadata change would come to start it again.
        _ => ErrorClass::Retry,
    }
}

/// What one partition of a fetch response asks the follower to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionOutcome {
    /// Append `records` (whole batches, maybe none) and take the high watermark.
    Data {
        records: Bytes,
        high_watermark: i64,
        /// The leader's log start (-1 if unknown): the follower's follows it, so records the
        /// leader deleted (DeleteRecords, retention) do not come back after a failover.
        leader_log_start_offset: i64,
    },
    /// The leader's log diverges from ours (KIP-320): truncate before fetching on.
    Diverging {
        epoch: i32,
        end_offset: i64,
        high_watermark: i64,
    },
    Pause {
        error_code: i16,
    },
    /// The leader cannot serve our fetch offset; `leader_log_start_offset` (-1 if unknown)
    /// tells whether it is below the leader's log start (those records are gone) or past its
    /// log end (our log diverges).
    OutOfRange {
        leader_log_start_offset: i64,
    },
    Retry {
        error_code: i16,
    },
}

/// Reads one partition of a fetch response.
pub fn classify_partition(data: &PartitionData) -> PartitionOutcome {
    match classify_error(data.error_code) {
        ErrorClass::Pause => {
            return PartitionOutcome::Pause {
                error_code: data.error_code,
            }
        }
        ErrorClass::Retry
            if ResponseError::try_from_code(data.error_code)
                == Some(ResponseError::OffsetOutOfRange) =>
        {
            return PartitionOutcome::OutOfRange {
                leader_log_start_offset: data.log_start_offset,
            }
        }
        ErrorClass::Retry => {
            return PartitionOutcome::Retry {
                error_code: data.error_code,
            }
        }
        ErrorClass::None => {}
    }
    // Absent diverging epoch: both fields -1 (the schema's defaults).
    if data.diverging_epoch.epoch >= 0 || data.diverging_epoch.end_offset >= 0 {
        return PartitionOutcome::Diverging {
            epoch: data.diverging_epoch.epoch,
            end_offset: data.diverging_epoch.end_offset,
            high_watermark: data.high_watermark,
        };
    }
    PartitionOutcome::Data {
        records: whole_batches(data.records.clone().unwrap_or_default()),
        high_watermark: data.high_watermark,
        leader_log_start_offset: data.log_start_offset,
    }
}

/// Cuts a trailing partial batch off a fetched record set (a Kafka leader may end a response
/// with one; Strom's sends whole batches). Batches are laid out as base offset (8 bytes), batch
/// length (4 bytes), then `batch length` bytes.
pub fn whole_batches(records: Bytes) -> Bytes {
    const LENGTH_AT: usize = 8;
    const LOG_OVERHEAD_BYTES: usize = 12;
    let mut end = 0usize;
    while let Some(length) = records.get(end + LENGTH_AT..end + LOG_OVERHEAD_BYTES) {
        let length = i32::from_be_bytes([length[0], length[1], length[2], length[3]]);
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        let next = end + LOG_OVERHEAD_BYTES + length;
        if next > records.len() {
            break;
        }
        end = next;
    }
    records.slice(..end)
}

#[cfg(test)]
mod tests;
