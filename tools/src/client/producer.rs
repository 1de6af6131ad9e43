//! A batching producer: records accumulate per partition until a batch reaches
//! `batch_max_bytes` or has waited `linger_ms`; a sender task groups ready batches by leader into
//! Produce requests and pipelines up to `max_in_flight` of them per connection. Optional
//! idempotence (InitProducerId, per-partition sequence numbers) and compression.
//!
//! Records are encoded into their batch when they are sent (see [`BatchBuilder`]), so a queued
//! record costs its encoded bytes and one completion entry.
//!
//! Memory is bounded by `buffer_max_bytes`: `send` waits while the records accepted and not yet
//! acknowledged exceed it (Kafka's `buffer.memory`, with blocking instead of `max.block.ms`).
//!
//! Ordering: batches of one partition are drained in order and sent in order on one connection,
//! and Kafka answers a connection's requests in order, so acknowledgements of one partition
//! arrive in order. A retried batch goes back to the front of its partition's queue.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tokio::sync::{oneshot, Notify, Semaphore};
use tokio::task::JoinHandle;

use super::cluster::Client;
use super::connection::ResponseFuture;
use super::errors::{ClientError, KafkaCode, Result};
use super::records::{
    partition_for_key, BatchBuilder, OutgoingRecord, ProducerIdentity, BATCH_HEADER_BYTES,
};

/// Kafka's DUPLICATE_SEQUENCE_NUMBER: the broker already has this batch (a retry of an
/// acknowledged batch whose acknowledgement was lost); treated as success.
const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// 0 (no acknowledgement), 1 (leader) or -1 (all in-sync replicas).
    pub acks: i16,
    pub linger_ms: u64,
    /// A batch is sent once its records reach this size (Kafka's `batch.size`).
    pub batch_max_bytes: usize,
    pub compression: Compression,
    pub idempotence: bool,
    /// Produce requests in flight per connection (`max.in.flight.requests.per.connection`).
    pub max_in_flight: usize,
    /// Time the broker may take to replicate before answering (Produce `timeout_ms`).
    pub request_timeout_ms: i32,
    /// Records accepted and not yet acknowledged, at most (`buffer.memory`).
    pub buffer_max_bytes: usize,
    /// Largest Produce request, and so the largest record (`max.request.size`).
    pub request_max_bytes: usize,
    /// Tries of one batch after retriable errors.
    pub retries_max: u32,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: -1,
            linger_ms: 5,
            batch_max_bytes: 16 * 1024,
            compression: Compression::None,
            idempotence: false,
            max_in_flight: 5,
            request_timeout_ms: 30_000,
            buffer_max_bytes: 32 * 1024 * 1024,
            request_max_bytes: 1024 * 1024,
            retries_max: 5,
        }
    }
}

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Shared so that sending many records to one topic does not copy its name each time.
    pub topic: Arc<str>,
    /// `None`: by key hash (murmur2, as Kafka), or sticky round robin for records without a key.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// `None`: now.
    pub timestamp_ms: Option<i64>,
}

/// Where an acknowledged record landed. `offset` is -1 with acks=0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
}

/// A delivery callback, run on the producer's runtime when the record's batch completes.
pub type Callback = Box<dyn FnOnce(Result<RecordMetadata>) + Send>;

enum Completion {
    Channel(oneshot::Sender<Result<RecordMetadata>>),
    Callback(Callback),
}

impl Completion {
    fn complete(self, result: Result<RecordMetadata>) {
        match self {
            Completion::Channel(tx) => {
                let _ = tx.send(result);
            }
            Completion::Callback(callback) => callback(result),
        }
    }
}

/// Waits for one record's acknowledgement.
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl DeliveryFuture {
    pub async fn wait(self) -> Result<RecordMetadata> {
        self.rx
            .await
            .unwrap_or(Err(ClientError::Closed("producer")))
    }
}

struct Batch {
    topic: Arc<str>,
    partition: i32,
    builder: BatchBuilder,
    /// One per record, with the record's timestamp.
    completions: Vec<(Completion, i64)>,
    /// Buffer space reserved for the records (released when the batch completes).
    reserved_bytes: usize,
    created: Instant,
    /// Fixed at the first drain of an idempotent producer's batch.
    base_sequence: Option<i32>,
    /// Set when first sent: the encoded batch, resent unchanged on retry.
    encoded: Option<Bytes>,
    tries: u32,
    /// Not before this instant (retry backoff).
    not_before: Option<Instant>,
}

impl Batch {
    /// Whether more records may be added.
    fn open(&self) -> bool {
        self.base_sequence.is_none() && self.encoded.is_none()
    }

    fn bytes(&self) -> usize {
        BATCH_HEADER_BYTES + self.builder.records_bytes()
    }
}

#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<Batch>,
    next_sequence: i32,
}

struct TopicState {
    name: Arc<str>,
    /// One queue per partition, by partition id.
    queues: Vec<PartitionQueue>,
    /// The partition keyless records currently go to.
    sticky_partition: i32,
}

impl TopicState {
    fn partition_count(&self) -> i32 {
        i32::try_from(self.queues.len()).unwrap_or(i32::MAX)
    }
}

#[derive(Default)]
struct Accumulator {
    topics: HashMap<Arc<str>, TopicState>,
    /// Records accepted and not yet completed.
    records_pending: usize,
    /// Flushes waiting; while non-zero every batch is ready at once.
    flushes_waiting: usize,
    closed: bool,
}

struct Inner {
    client: Client,
    config: ProducerConfig,
    identity: Option<(i64, i16)>,
    state: Mutex<Accumulator>,
    /// Wakes the sender: a batch became ready, a flush or close began.
    wake_sender: Notify,
    /// Wakes flushes: records completed.
    records_completed: Notify,
    buffer: Semaphore,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, Accumulator> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The producer; cheap to clone, all clones share batches and connections.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
    sender: Arc<Mutex<Option<JoinHandle<()>>>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Producer {
    /// Creates the producer (InitProducerId when idempotent) and starts its sender task.
    pub async fn new(client: Client, config: ProducerConfig) -> Result<Producer> {
        if ![0, 1, -1].contains(&config.acks) {
            return Err(ClientError::InvalidArgument(format!(
                "acks must be 0, 1 or -1 (all), got {}",
                config.acks
            )));
        }
        if config.idempotence && config.acks != -1 {
            return Err(ClientError::InvalidArgument(
                "idempotence requires acks=all".into(),
            ));
        }
        if config.batch_max_bytes == 0
            || config.buffer_max_bytes < config.request_max_bytes
            || config.max_in_flight == 0
        {
            return Err(ClientError::InvalidArgument(
                "batch size and in-flight limit must be positive, and the buffer at least one request".into(),
            ));
        }
        let identity = if config.idempotence {
            Some(init_producer_id(&client).await?)
        } else {
            None
        };
        let inner = Arc::new(Inner {
            client,
            identity,
            state: Mutex::new(Accumulator::default()),
            wake_sender: Notify::new(),
            records_completed: Notify::new(),
            buffer: Semaphore::new(config.buffer_max_bytes),
            config,
        });
        let sender = tokio::spawn(sender_loop(inner.clone()));
        Ok(Producer {
            inner,
            sender: Arc::new(Mutex::new(Some(sender))),
        })
    }

    /// The producer id and epoch, when idempotent.
    pub fn identity(&self) -> Option<(i64, i16)> {
        self.inner.identity
    }

    /// Queues a record; the returned future resolves when it is acknowledged.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let (tx, rx) = oneshot::channel();
        self.append(record, Completion::Channel(tx)).await?;
        Ok(DeliveryFuture { rx })
    }

    /// Queues a record; `callback` runs when it is acknowledged or fails. Cheaper than
    /// [`Producer::send`] when the caller has many records in flight.
    pub async fn send_with_callback(
        &self,
        record: ProducerRecord,
        callback: Callback,
    ) -> Result<()> {
        self.append(record, Completion::Callback(callback)).await
    }

    /// Learns a topic's partition count (once per topic).
    async fn learn_topic(&self, topic: &Arc<str>) -> Result<()> {
        let info = self.inner.client.topic(topic).await?;
        if info.partitions.is_empty() {
            return Err(ClientError::UnknownTopic(topic.to_string()));
        }
        let count = info.partitions.len();
        let start = usize::try_from(now_ms()).unwrap_or(0) % count;
        self.inner
            .state()
            .topics
            .entry(topic.clone())
            .or_insert_with(|| TopicState {
                name: topic.clone(),
                queues: (0..count).map(|_| PartitionQueue::default()).collect(),
                sticky_partition: i32::try_from(start).unwrap_or(0),
            });
        Ok(())
    }

    async fn append(&self, record: ProducerRecord, completion: Completion) -> Result<()> {
        let inner = &self.inner;
        let timestamp_ms = record.timestamp_ms.unwrap_or_else(now_ms);
        let estimate =
            OutgoingRecord::estimate(record.key.as_ref(), record.value.as_ref(), &record.headers);
        if estimate + BATCH_HEADER_BYTES > inner.config.request_max_bytes {
            return Err(ClientError::RecordTooLarge {
                record_bytes: estimate,
                limit_bytes: inner.config.request_max_bytes,
            });
        }
        // Reserve buffer space first (this is where a fast caller waits for the broker).
        let permits = u32::try_from(estimate).unwrap_or(u32::MAX);
        inner
            .buffer
            .acquire_many(permits)
            .await
            .map_err(|_| ClientError::Closed("producer"))?
            .forget();
        let mut completion = Some(completion);
        for _ in 0..2 {
            let appended = {
                let mut state = inner.state();
                if state.topics.contains_key(&record.topic) {
                    Some(append_locked(
                        inner,
                        &mut state,
                        &record,
                        &mut completion,
                        permits as usize,
                        estimate,
                        timestamp_ms,
                    ))
                } else {
                    None
                }
            };
            match appended {
                Some(Ok(now_ready)) => {
                    if now_ready {
                        inner.wake_sender.notify_one();
                    }
                    return Ok(());
                }
                Some(Err(error)) => {
                    inner.buffer.add_permits(permits as usize);
                    return Err(error);
                }
                None => {
                    // First record for this topic: learn its partitions (once), then retry.
                    if let Err(error) = self.learn_topic(&record.topic).await {
                        inner.buffer.add_permits(permits as usize);
                        return Err(error);
                    }
                }
            }
        }
        inner.buffer.add_permits(permits as usize);
        Err(ClientError::UnknownTopic(record.topic.to_string()))
    }

    /// Sends everything queued now and waits until it is acknowledged (or failed).
    pub async fn flush(&self) {
        let inner = &self.inner;
        inner.state().flushes_waiting += 1;
        loop {
            let completed = inner.records_completed.notified();
            tokio::pin!(completed);
            completed.as_mut().enable();
            if inner.state().records_pending == 0 {
                break;
            }
            inner.wake_sender.notify_one();
            completed.await;
        }
        inner.state().flushes_waiting -= 1;
    }

    /// Flushes, then stops the sender task. Later sends fail with `Closed`.
    pub async fn close(&self) {
        self.flush().await;
        self.inner.state().closed = true;
        self.inner.wake_sender.notify_one();
        let handle = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

/// Adds a record to its partition's open batch (or a new one) under the accumulator lock.
/// Returns whether a batch became ready to send.
fn append_locked(
    inner: &Inner,
    state: &mut Accumulator,
    record: &ProducerRecord,
    completion: &mut Option<Completion>,
    reserved_bytes: usize,
    estimate: usize,
    timestamp_ms: i64,
) -> Result<bool> {
    if state.closed {
        return Err(ClientError::Closed("producer"));
    }
    let batch_max_bytes = inner.config.batch_max_bytes;
    let linger_zero = inner.config.linger_ms == 0;
    let Accumulator {
        topics,
        records_pending,
        ..
    } = state;
    let Some(topic) = topics.get_mut(&record.topic) else {
        return Err(ClientError::UnknownTopic(record.topic.to_string()));
    };
    let partition_count = topic.partition_count();
    let partition = match (record.partition, record.key.as_deref()) {
        (Some(partition), _) if (0..partition_count).contains(&partition) => partition,
        (Some(partition), _) => {
            return Err(ClientError::UnknownPartition {
                topic: record.topic.to_string(),
                partition,
            });
        }
        (None, Some(key)) => partition_for_key(key, partition_count),
        (None, None) => {
            // Sticky: keep filling one partition's batch; move on once it is full.
            let sticky = topic.sticky_partition;
            let full = usize::try_from(sticky)
                .ok()
                .and_then(|index| topic.queues.get(index))
                .and_then(|q| q.batches.back())
                .is_some_and(|b| b.open() && b.bytes() + estimate > batch_max_bytes);
            if full {
                topic.sticky_partition = (sticky + 1) % partition_count;
            }
            topic.sticky_partition
        }
    };
    let Some(queue) = usize::try_from(partition)
        .ok()
        .and_then(|index| topic.queues.get_mut(index))
    else {
        return Err(ClientError::UnknownPartition {
            topic: record.topic.to_string(),
            partition,
        });
    };
    let fits = queue
        .batches
        .back()
        .is_some_and(|b| b.open() && b.bytes() + estimate <= batch_max_bytes);
    if !fits {
        queue.batches.push_back(Batch {
            topic: topic.name.clone(),
            partition,
            builder: BatchBuilder::with_capacity(batch_max_bytes.min(estimate.max(1024) * 16)),
            completions: Vec::new(),
            reserved_bytes: 0,
            created: Instant::now(),
            base_sequence: None,
            encoded: None,
            tries: 0,
            not_before: None,
        });
    }
    let (Some(batch), Some(completion)) = (queue.batches.back_mut(), completion.take()) else {
        return Err(ClientError::Closed("producer"));
    };
    batch.builder.push(
        record.key.as_deref(),
        record.value.as_deref(),
        &record.headers,
        timestamp_ms,
    );
    batch.completions.push((completion, timestamp_ms));
    batch.reserved_bytes += reserved_bytes;
    let now_ready = batch.bytes() >= batch_max_bytes || linger_zero || !fits;
    *records_pending += 1;
    Ok(now_ready)
}

async fn init_producer_id(client: &Client) -> Result<(i64, i16)> {
    let mut tries = 0;
    loop {
        tries += 1;
        let connection = client.any_connection().await?;
        let mut request = InitProducerIdRequest::default();
        request.transactional_id = None;
        request.transaction_timeout_ms = 60_000;
        let response = connection.send(&request).await?;
        if response.error_code == 0 {
            return Ok((response.producer_id.0, response.producer_epoch));
        }
        if !KafkaCode(response.error_code).is_retriable() || tries > client.config().retries_max {
            return Err(ClientError::kafka(
                "init producer id",
                response.error_code,
                None,
            ));
        }
        client.backoff().await;
    }
}

/// One Produce request on its way, and the batches it carries.
struct InFlight {
    batches: Vec<Batch>,
    response: ResponseFuture<ProduceResponse>,
    broker_addr: String,
}

/// Picks ready batches (at most one per partition), grouped by leader broker. Returns the
/// groups and the earliest time a not-yet-ready batch becomes ready.
fn drain_ready(
    inner: &Inner,
    state: &mut Accumulator,
) -> (HashMap<i32, Vec<Batch>>, Option<Instant>) {
    let now = Instant::now();
    let linger = Duration::from_millis(inner.config.linger_ms);
    let flushing = state.flushes_waiting > 0 || state.closed;
    let mut by_leader: HashMap<i32, Vec<Batch>> = HashMap::new();
    let mut request_bytes: HashMap<i32, usize> = HashMap::new();
    let mut next_ready: Option<Instant> = None;
    let mut note = |at: Instant| next_ready = Some(next_ready.map_or(at, |n: Instant| n.min(at)));
    for topic in state.topics.values_mut() {
        for (index, queue) in topic.queues.iter_mut().enumerate() {
            let Some(front) = queue.batches.front() else {
                continue;
            };
            if let Some(not_before) = front.not_before {
                if not_before > now {
                    note(not_before);
                    continue;
                }
            }
            let ready = flushing
                || !front.open()
                || queue.batches.len() > 1
                || front.bytes() >= inner.config.batch_max_bytes
                || front.created + linger <= now;
            if !ready {
                note(front.created + linger);
                continue;
            }
            let partition = i32::try_from(index).unwrap_or(i32::MAX);
            let Ok(leader) = inner.client.leader_of(&topic.name, partition) else {
                // No leader known: the sender refreshes metadata and tries again after a backoff.
                note(now + Duration::from_millis(inner.client.config().retry_backoff_ms));
                continue;
            };
            let used = request_bytes.entry(leader).or_default();
            let size = front
                .encoded
                .as_ref()
                .map_or_else(|| front.bytes(), Bytes::len);
            if *used > 0 && *used + size > inner.config.request_max_bytes {
                note(now);
                continue;
            }
            *used += size;
            if let Some(mut batch) = queue.batches.pop_front() {
                if inner.identity.is_some() && batch.base_sequence.is_none() {
                    // First drain: fix the batch's sequence numbers; a retry reuses them.
                    let base_sequence = queue.next_sequence;
                    queue.next_sequence =
                        base_sequence.wrapping_add(batch.builder.record_count()) & i32::MAX;
                    batch.base_sequence = Some(base_sequence);
                }
                by_leader.entry(leader).or_default().push(batch);
            }
        }
    }
    (by_leader, next_ready)
}

fn has_batches(state: &Accumulator) -> bool {
    state
        .topics
        .values()
        .any(|t| t.queues.iter().any(|q| !q.batches.is_empty()))
}

async fn sender_loop(inner: Arc<Inner>) {
    let mut in_flight: VecDeque<JoinHandle<()>> = VecDeque::new();
    loop {
        let notified = inner.wake_sender.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (groups, next_ready, done) = {
            let mut state = inner.state();
            let (groups, next_ready) = drain_ready(&inner, &mut state);
            let done = state.closed && !has_batches(&state);
            (groups, next_ready, done)
        };
        if groups.is_empty() {
            if done {
                break;
            }
            if next_ready.is_some_and(|at| at <= Instant::now()) {
                // Waiting on a leader or a full request: refresh and retry after a backoff.
                let _ = inner.client.refresh_metadata(None).await;
                inner.client.backoff().await;
                continue;
            }
            match next_ready {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at.into(), notified).await;
                }
                None => notified.await,
            }
            continue;
        }
        for (leader, batches) in groups {
            match send_request(&inner, leader, batches).await {
                Ok(flight) => {
                    let inner = inner.clone();
                    in_flight.push_back(tokio::spawn(complete_request(inner, flight)));
                }
                Err((error, batches)) => {
                    for batch in batches {
                        retry_or_fail(&inner, batch, &error);
                    }
                }
            }
        }
        // Reap finished completion tasks (bounded by the connections' in-flight limits).
        while in_flight.front().is_some_and(JoinHandle::is_finished) {
            in_flight.pop_front();
        }
    }
    for handle in in_flight {
        let _ = handle.await;
    }
}

/// Encodes the batches (once) and enqueues one Produce request on the leader's connection.
async fn send_request(
    inner: &Arc<Inner>,
    leader: i32,
    mut batches: Vec<Batch>,
) -> std::result::Result<InFlight, (ClientError, Vec<Batch>)> {
    for batch in &mut batches {
        if batch.encoded.is_none() {
            let identity = inner
                .identity
                .map(|(producer_id, producer_epoch)| ProducerIdentity {
                    producer_id,
                    producer_epoch,
                    base_sequence: batch.base_sequence.unwrap_or(0),
                });
            match batch.builder.finish(inner.config.compression, identity) {
                Ok(bytes) => batch.encoded = Some(bytes),
                Err(error) => return Err((error, batches)),
            }
        }
    }
    let connection = match inner.client.broker_connection(leader).await {
        Ok(connection) => connection,
        Err(error) => return Err((error, batches)),
    };
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for batch in &batches {
        let mut partition = PartitionProduceData::default();
        partition.index = batch.partition;
        partition.records = batch.encoded.clone();
        match topics
            .iter_mut()
            .find(|t| t.name.0.as_str() == &*batch.topic)
        {
            Some(topic) => topic.partition_data.push(partition),
            None => {
                let mut topic = TopicProduceData::default();
                topic.name = TopicName(StrBytes::from_string(batch.topic.to_string()));
                topic.partition_data.push(partition);
                topics.push(topic);
            }
        }
    }
    let mut request = ProduceRequest::default();
    request.acks = inner.config.acks;
    request.timeout_ms = inner.config.request_timeout_ms;
    request.topic_data = topics;
    let version = match connection.version::<ProduceRequest>() {
        Ok(version) => version,
        Err(error) => return Err((error, batches)),
    };
    match connection
        .enqueue(&request, version, inner.config.acks != 0)
        .await
    {
        Ok(response) => Ok(InFlight {
            batches,
            response,
            broker_addr: connection.addr().to_string(),
        }),
        Err(error) => Err((error, batches)),
    }
}

async fn complete_request(inner: Arc<Inner>, flight: InFlight) {
    let InFlight {
        batches,
        response,
        broker_addr,
    } = flight;
    let outcome = response.wait().await;
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            let _ = inner.client.refresh_metadata(None).await;
            for batch in batches {
                retry_or_fail(&inner, batch, &error);
            }
            return;
        }
    };
    let Some(response) = response else {
        // acks=0: written is all we learn.
        for batch in batches {
            complete_batch(&inner, batch, -1, -1);
        }
        return;
    };
    let mut refresh = false;
    for batch in batches {
        let partition_response = response
            .responses
            .iter()
            .filter(|t| t.name.0.as_str() == &*batch.topic)
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == batch.partition);
        let Some(partition_response) = partition_response else {
            let error = ClientError::Protocol {
                addr: broker_addr.clone(),
                reason: format!("Produce response lacks {}-{}", batch.topic, batch.partition),
            };
            fail_batch(&inner, batch, &error);
            continue;
        };
        let code = partition_response.error_code;
        if code == 0 || code == DUPLICATE_SEQUENCE_NUMBER {
            complete_batch(
                &inner,
                batch,
                partition_response.base_offset,
                partition_response.log_append_time_ms,
            );
        } else {
            let error = ClientError::kafka(
                format!("produce to {}-{}", batch.topic, batch.partition),
                code,
                partition_response
                    .error_message
                    .as_ref()
                    .map(ToString::to_string),
            );
            refresh |= error.is_retriable();
            retry_or_fail(&inner, batch, &error);
        }
    }
    if refresh {
        let _ = inner.client.refresh_metadata(None).await;
        inner.wake_sender.notify_one();
    }
}

fn release(inner: &Inner, reserved_bytes: usize, record_count: usize) {
    inner.buffer.add_permits(reserved_bytes);
    let mut state = inner.state();
    state.records_pending = state.records_pending.saturating_sub(record_count);
    drop(state);
    inner.records_completed.notify_waiters();
}

fn complete_batch(inner: &Inner, batch: Batch, base_offset: i64, log_append_time_ms: i64) {
    let Batch {
        topic,
        partition,
        completions,
        reserved_bytes,
        ..
    } = batch;
    let count = completions.len();
    for (index, (completion, timestamp_ms)) in completions.into_iter().enumerate() {
        let offset = if base_offset >= 0 {
            base_offset + i64::try_from(index).unwrap_or(0)
        } else {
            -1
        };
        let timestamp_ms = if log_append_time_ms >= 0 {
            log_append_time_ms
        } else {
            timestamp_ms
        };
        completion.complete(Ok(RecordMetadata {
            topic: topic.clone(),
            partition,
            offset,
            timestamp_ms,
        }));
    }
    release(inner, reserved_bytes, count);
}

fn fail_batch(inner: &Inner, batch: Batch, error: &ClientError) {
    let count = batch.completions.len();
    for (completion, _) in batch.completions {
        completion.complete(Err(error.clone()));
    }
    release(inner, batch.reserved_bytes, count);
}

fn retry_or_fail(inner: &Inner, mut batch: Batch, error: &ClientError) {
    if !error.is_retriable() || batch.tries >= inner.config.retries_max {
        fail_batch(inner, batch, error);
        return;
    }
    batch.tries += 1;
    batch.not_before =
        Some(Instant::now() + Duration::from_millis(inner.client.config().retry_backoff_ms));
    let mut state = inner.state();
    let queue = state.topics.get_mut(&batch.topic).and_then(|t| {
        usize::try_from(batch.partition)
            .ok()
            .and_then(|index| t.queues.get_mut(index))
    });
    match queue {
        Some(queue) => {
            queue.batches.push_front(batch);
            drop(state);
            inner.wake_sender.notify_one();
        }
        None => {
            drop(state);
            fail_batch(inner, batch, error);
        }
    }
}
