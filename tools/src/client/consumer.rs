//! A consumer of explicitly assigned partitions: resolves start offsets with ListOffsets,
//! fetches from each partition's leader, and keeps one fetch in flight while the caller works
//! through the previous one (prefetch).
//!
//! Memory bound: at most one decoded fetch response waits in the buffer and one more is in
//! flight, each at most `fetch_max_bytes` on the wire.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinHandle;

use super::admin::{Admin, OffsetSpec};
use super::cluster::Client;
use super::errors::{ClientError, KafkaCode, Result};
use super::records::{decode_records, ConsumerRecord, DecodedRecords};

/// Where a partition starts being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    Earliest,
    Latest,
    /// This offset (clamped by the broker's OFFSET_OUT_OF_RANGE handling, see `offset_reset`).
    Offset(i64),
    /// The first offset with a timestamp at or after this (ms since the epoch).
    Timestamp(i64),
}

/// What to do when the fetch offset is out of range (Kafka's `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail the poll.
    None,
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub fetch_max_wait_ms: i32,
    pub fetch_min_bytes: i32,
    /// Bytes per Fetch response, at most (`fetch.max.bytes`).
    pub fetch_max_bytes: i32,
    /// Bytes per partition per Fetch, at most (`max.partition.fetch.bytes`).
    pub partition_fetch_max_bytes: i32,
    /// Records one poll returns, at most (`max.poll.records`).
    pub max_poll_records: usize,
    /// 0 = read_uncommitted, 1 = read_committed.
    pub isolation_level: i8,
    pub offset_reset: OffsetReset,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            fetch_max_wait_ms: 500,
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            partition_fetch_max_bytes: 1024 * 1024,
            max_poll_records: 500,
            isolation_level: 0,
            offset_reset: OffsetReset::Latest,
        }
    }
}

/// Topic and partition.
pub type TopicPartition = (String, i32);

#[derive(Debug, Clone)]
struct PartitionState {
    topic: Arc<str>,
    /// Next offset to fetch.
    fetch_offset: i64,
    /// Next offset to hand to the caller (what a commit stores).
    position: i64,
    high_watermark: i64,
    /// Raised when a batch did not fit in one partition fetch.
    fetch_max_bytes: i32,
}

struct PartitionFetch {
    topic: Arc<str>,
    partition: i32,
    fetch_offset: i64,
    outcome: std::result::Result<(DecodedRecords, i64), i16>,
}

type FetchOutcome = Result<Vec<PartitionFetch>>;

/// One partition in a fetch request: topic, partition, fetch offset, partition byte limit.
type FetchTarget = (Arc<str>, i32, i64, i32);

pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    buffer: VecDeque<ConsumerRecord>,
    in_flight: Option<JoinHandle<FetchOutcome>>,
    consecutive_failures: u32,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(handle) = self.in_flight.take() {
            handle.abort();
        }
    }
}

impl Consumer {
    pub fn new(client: Client, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            config,
            partitions: BTreeMap::new(),
            buffer: VecDeque::new(),
            in_flight: None,
            consecutive_failures: 0,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Replaces the assignment. Start offsets are resolved now.
    pub async fn assign(&mut self, assignment: &[(String, i32, StartOffset)]) -> Result<()> {
        self.cancel_fetch();
        self.partitions.clear();
        self.buffer.clear();
        let admin = Admin::new(self.client.clone());
        let mut by_topic: BTreeMap<&str, Vec<(i32, StartOffset)>> = BTreeMap::new();
        for (topic, partition, start) in assignment {
            by_topic
                .entry(topic.as_str())
                .or_default()
                .push((*partition, *start));
        }
        for (topic, entries) in by_topic {
            let info = self.client.topic(topic).await?;
            let topic_arc: Arc<str> = Arc::from(topic);
            for &(partition, _) in &entries {
                if info.partition(partition).is_none() {
                    return Err(ClientError::UnknownPartition {
                        topic: topic.to_string(),
                        partition,
                    });
                }
            }
            let offsets = resolve_offsets(&admin, topic, &entries).await?;
            for (partition, offset) in offsets {
                self.partitions.insert(
                    (topic.to_string(), partition),
                    PartitionState {
                        topic: topic_arc.clone(),
                        fetch_offset: offset,
                        position: offset,
                        high_watermark: -1,
                        fetch_max_bytes: self.config.partition_fetch_max_bytes,
                    },
                );
            }
        }
        Ok(())
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.partitions.keys().cloned().collect()
    }

    /// Next offset the caller will see per partition (what a commit stores).
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.partitions
            .iter()
            .map(|(tp, state)| (tp.clone(), state.position))
            .collect()
    }

    /// The high watermark of a partition as of the last fetch (-1 before one).
    pub fn high_watermark(&self, topic: &str, partition: i32) -> i64 {
        self.partitions
            .get(&(topic.to_string(), partition))
            .map_or(-1, |s| s.high_watermark)
    }

    /// Whether every assigned partition has been read up to its last known high watermark.
    pub fn at_end(&self) -> bool {
        self.buffer.is_empty()
            && self
                .partitions
                .values()
                .all(|s| s.high_watermark >= 0 && s.position >= s.high_watermark)
    }

    /// Moves a partition's position.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        self.cancel_fetch();
        self.buffer
            .retain(|r| !(&*r.topic == topic && r.partition == partition));
        if let Some(state) = self.partitions.get_mut(&(topic.to_string(), partition)) {
            state.fetch_offset = offset;
            state.position = offset;
        }
    }

    fn cancel_fetch(&mut self) {
        if let Some(handle) = self.in_flight.take() {
            handle.abort();
        }
    }

    /// Returns the next records (at most `max_poll_records`), waiting up to `timeout` for some.
    /// An empty result means none arrived in time.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.buffer.is_empty() {
                self.ensure_fetch();
                return Ok(self.take_buffered());
            }
            if self.partitions.is_empty() {
                tokio::time::sleep_until(deadline.into()).await;
                return Ok(Vec::new());
            }
            self.ensure_fetch();
            let Some(handle) = self.in_flight.as_mut() else {
                continue;
            };
            let joined = match tokio::time::timeout_at(deadline.into(), handle).await {
                Err(_elapsed) => return Ok(Vec::new()),
                Ok(joined) => joined,
            };
            self.in_flight = None;
            let outcome = joined.map_err(|error| ClientError::Protocol {
                addr: "fetch task".into(),
                reason: error.to_string(),
            })?;
            match outcome {
                Ok(results) => {
                    self.consecutive_failures = 0;
                    self.apply(results).await?;
                }
                Err(error)
                    if error.is_retriable()
                        && self.consecutive_failures < self.client.config().retries_max =>
                {
                    self.consecutive_failures += 1;
                    let _ = self.client.refresh_metadata(None).await;
                    self.client.backoff().await;
                }
                Err(error) => return Err(error),
            }
            if Instant::now() >= deadline && self.buffer.is_empty() {
                return Ok(Vec::new());
            }
        }
    }

    fn take_buffered(&mut self) -> Vec<ConsumerRecord> {
        let count = self.buffer.len().min(self.config.max_poll_records.max(1));
        let records: Vec<ConsumerRecord> = self.buffer.drain(..count).collect();
        for record in &records {
            if let Some(state) = self
                .partitions
                .get_mut(&(record.topic.to_string(), record.partition))
            {
                state.position = state.position.max(record.offset + 1);
            }
        }
        records
    }

    /// Applies a fetch's results to the buffer and positions.
    async fn apply(&mut self, results: Vec<PartitionFetch>) -> Result<()> {
        let mut refresh = false;
        for result in results {
            let key = (result.topic.to_string(), result.partition);
            let Some(state) = self.partitions.get_mut(&key) else {
                continue;
            };
            if state.fetch_offset != result.fetch_offset {
                continue; // stale (a seek happened)
            }
            match result.outcome {
                Ok((decoded, high_watermark)) => {
                    state.high_watermark = high_watermark;
                    if decoded.records.is_empty()
                        && decoded.truncated
                        && decoded.next_offset == state.fetch_offset
                    {
                        // A batch larger than the partition limit: ask for more next time.
                        state.fetch_max_bytes = state
                            .fetch_max_bytes
                            .saturating_mul(2)
                            .min(self.config.fetch_max_bytes);
                    }
                    state.fetch_offset = decoded.next_offset;
                    if decoded.records.is_empty() {
                        // Only control batches or records below the position: the position
                        // moves past them (the buffer is empty while results are applied).
                        state.position = state.position.max(decoded.next_offset);
                    }
                    self.buffer.extend(decoded.records);
                }
                Err(code) if code == KafkaCode::OFFSET_OUT_OF_RANGE => {
                    let spec = match self.config.offset_reset {
                        OffsetReset::Earliest => OffsetSpec::Earliest,
                        OffsetReset::Latest => OffsetSpec::Latest,
                        OffsetReset::None => {
                            return Err(ClientError::kafka(
                                format!(
                                    "fetch {}-{} at offset {}",
                                    key.0, key.1, result.fetch_offset
                                ),
                                code,
                                None,
                            ))
                        }
                    };
                    let admin = Admin::new(self.client.clone());
                    let offsets = admin.list_offsets(&key.0, &[key.1], spec).await?;
                    let offset = offsets.get(&key.1).copied().unwrap_or(0);
                    if let Some(state) = self.partitions.get_mut(&key) {
                        state.fetch_offset = offset;
                        state.position = offset;
                    }
                }
                Err(code)
                    if KafkaCode(code).is_retriable()
                        || code == KafkaCode::FENCED_LEADER_EPOCH
                        || code == KafkaCode::UNKNOWN_LEADER_EPOCH =>
                {
                    refresh = true;
                }
                Err(code) => {
                    return Err(ClientError::kafka(
                        format!("fetch {}-{}", key.0, key.1),
                        code,
                        None,
                    ));
                }
            }
        }
        if refresh {
            let _ = self.client.refresh_metadata(None).await;
            self.client.backoff().await;
        }
        Ok(())
    }

    /// Starts a fetch of every assigned partition unless one is in flight.
    fn ensure_fetch(&mut self) {
        if self.in_flight.is_some() || self.partitions.is_empty() {
            return;
        }
        let mut by_leader: HashMap<i32, Vec<FetchTarget>> = HashMap::new();
        let mut unknown = Vec::new();
        for ((topic, partition), state) in &self.partitions {
            match self.client.leader_of(topic, *partition) {
                Ok(leader) => by_leader.entry(leader).or_default().push((
                    state.topic.clone(),
                    *partition,
                    state.fetch_offset,
                    state.fetch_max_bytes,
                )),
                Err(error) => unknown.push(error),
            }
        }
        let client = self.client.clone();
        let config = self.config.clone();
        self.in_flight = Some(tokio::spawn(async move {
            if by_leader.is_empty() {
                let error = unknown
                    .into_iter()
                    .next()
                    .unwrap_or(ClientError::Closed("consumer"));
                return Err(error);
            }
            let mut tasks = Vec::new();
            for (leader, partitions) in by_leader {
                let client = client.clone();
                let config = config.clone();
                tasks.push(tokio::spawn(async move {
                    fetch_from(&client, &config, leader, partitions).await
                }));
            }
            let mut results = Vec::new();
            let mut first_error = None;
            for task in tasks {
                match task.await {
                    Ok(Ok(mut fetched)) => results.append(&mut fetched),
                    Ok(Err(error)) => first_error = first_error.or(Some(error)),
                    Err(join) => {
                        first_error = first_error.or(Some(ClientError::Protocol {
                            addr: "fetch task".into(),
                            reason: join.to_string(),
                        }))
                    }
                }
            }
            match (results.is_empty(), first_error) {
                (true, Some(error)) => Err(error),
                _ => Ok(results),
            }
        }));
    }
}

/// One Fetch request to one leader, decoded.
async fn fetch_from(
    client: &Client,
    config: &ConsumerConfig,
    leader: i32,
    partitions: Vec<FetchTarget>,
) -> Result<Vec<PartitionFetch>> {
    let connection = client.broker_connection(leader).await?;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (topic, partition, offset, max_bytes) in &partitions {
        let mut entry = FetchPartition::default();
        entry.partition = *partition;
        entry.fetch_offset = *offset;
        entry.partition_max_bytes = *max_bytes;
        match topics.iter_mut().find(|t| t.topic.0.as_str() == &**topic) {
            Some(existing) => existing.partitions.push(entry),
            None => {
                let mut fetch_topic = FetchTopic::default();
                fetch_topic.topic = TopicName(StrBytes::from_string(topic.to_string()));
                fetch_topic.partitions.push(entry);
                topics.push(fetch_topic);
            }
        }
    }
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = config.fetch_max_wait_ms;
    request.min_bytes = config.fetch_min_bytes;
    request.max_bytes = config.fetch_max_bytes;
    request.isolation_level = config.isolation_level;
    request.topics = topics;
    let response = connection.send(&request).await?;
    if response.error_code != 0 {
        return Err(ClientError::kafka(
            format!("fetch from broker {leader}"),
            response.error_code,
            None,
        ));
    }
    let requested: HashMap<(&str, i32), (&Arc<str>, i64)> = partitions
        .iter()
        .map(|(t, p, o, _)| ((&**t, *p), (t, *o)))
        .collect();
    let mut out = Vec::new();
    for topic in response.responses {
        for data in topic.partitions {
            let Some(&(topic_arc, fetch_offset)) =
                requested.get(&(topic.topic.0.as_str(), data.partition_index))
            else {
                continue;
            };
            let outcome = if data.error_code != 0 {
                Err(data.error_code)
            } else {
                let records = data.records.unwrap_or_default();
                Ok((
                    decode_records(topic_arc, data.partition_index, records, fetch_offset)?,
                    data.high_watermark,
                ))
            };
            out.push(PartitionFetch {
                topic: topic_arc.clone(),
                partition: data.partition_index,
                fetch_offset,
                outcome,
            });
        }
    }
    Ok(out)
}

/// Turns start specs into offsets with ListOffsets (one request per kind).
async fn resolve_offsets(
    admin: &Admin,
    topic: &str,
    entries: &[(i32, StartOffset)],
) -> Result<Vec<(i32, i64)>> {
    let mut out = Vec::new();
    let mut by_spec: BTreeMap<i64, (OffsetSpec, Vec<i32>)> = BTreeMap::new();
    for &(partition, start) in entries {
        let spec = match start {
            StartOffset::Offset(offset) if offset >= 0 => {
                out.push((partition, offset));
                continue;
            }
            StartOffset::Offset(_) | StartOffset::Latest => OffsetSpec::Latest,
            StartOffset::Earliest => OffsetSpec::Earliest,
            StartOffset::Timestamp(ms) => OffsetSpec::Timestamp(ms),
        };
        let key = match spec {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        };
        by_spec
            .entry(key)
            .or_insert_with(|| (spec, Vec::new()))
            .1
            .push(partition);
    }
    for (_, (spec, partitions)) in by_spec {
        let offsets = admin.list_offsets(topic, &partitions, spec).await?;
        let mut missing = Vec::new();
        for partition in partitions {
            match offsets.get(&partition) {
                Some(&offset) if offset >= 0 => out.push((partition, offset)),
                _ => missing.push(partition),
            }
        }
        if !missing.is_empty() {
            // No record at or after the timestamp: start at the end.
            let latest = admin
                .list_offsets(topic, &missing, OffsetSpec::Latest)
                .await?;
            for partition in missing {
                out.push((partition, latest.get(&partition).copied().unwrap_or(0)));
            }
        }
    }
    Ok(out)
}
