//! The benchmark workloads: produce, consume and end-to-end.
//!
//! Every producer and consumer task gets its own [`Client`] (so its own connections), sets up
//! (connect, metadata, assignment) before a shared barrier, and only then starts the clock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::Compression;
use serde_json::json;
use tokio::sync::Barrier;

use crate::client::admin::{Admin, NewTopic, OffsetSpec};
use crate::client::consumer::{Consumer, ConsumerConfig, StartOffset};
use crate::client::producer::{Callback, Producer, ProducerConfig, ProducerRecord};
use crate::client::records::compression_name;
use crate::client::{Client, ClientConfig, ClientError, Result};

use super::progress::{Counters, Progress};
use super::report::{Totals, WorkloadResult};
use super::stats::LatencyRecorder;

/// A consumer that sees no new record for this long stops (the data ran out).
const CONSUME_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the producers of an end-to-end run finish, consumers get this long to catch up.
const E2E_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll wait of benchmark consumers.
const POLL_TIMEOUT: Duration = Duration::from_millis(200);
/// End-to-end payloads carry their send time in their first 8 bytes.
const E2E_TIMESTAMP_BYTES: usize = 8;

/// Producer-side settings shared by `bench produce` and `bench e2e`.
#[derive(Debug, Clone)]
pub struct ProduceSettings {
    pub topic: String,
    pub message_bytes: usize,
    /// Total messages (over all producers); `None` = until `duration`.
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub partitions: i32,
    pub replication_factor: Option<i16>,
    pub producers: usize,
    pub acks: i16,
    pub compression: Compression,
    /// Messages per second over all producers; 0 = as fast as possible.
    pub rate_per_sec: u64,
    pub linger_ms: u64,
    pub batch_max_bytes: usize,
    pub max_in_flight: usize,
    pub idempotence: bool,
}

impl ProduceSettings {
    fn params(&self) -> BTreeMap<String, serde_json::Value> {
        BTreeMap::from([
            ("topic".to_string(), json!(self.topic)),
            ("message_bytes".to_string(), json!(self.message_bytes)),
            ("count".to_string(), json!(self.count)),
            (
                "duration_secs".to_string(),
                json!(self.duration.map(|d| d.as_secs_f64())),
            ),
            ("partitions".to_string(), json!(self.partitions)),
            ("producers".to_string(), json!(self.producers)),
            ("acks".to_string(), json!(self.acks)),
            (
                "compression".to_string(),
                json!(compression_name(self.compression)),
            ),
            ("rate_per_sec".to_string(), json!(self.rate_per_sec)),
            ("linger_ms".to_string(), json!(self.linger_ms)),
            ("batch_max_bytes".to_string(), json!(self.batch_max_bytes)),
            ("max_in_flight".to_string(), json!(self.max_in_flight)),
            ("idempotence".to_string(), json!(self.idempotence)),
        ])
    }

    fn producer_config(&self) -> ProducerConfig {
        ProducerConfig {
            acks: self.acks,
            linger_ms: self.linger_ms,
            batch_max_bytes: self.batch_max_bytes,
            compression: self.compression,
            idempotence: self.idempotence,
            max_in_flight: self.max_in_flight,
            request_max_bytes: self.batch_max_bytes.max(1024 * 1024),
            buffer_max_bytes: (self.batch_max_bytes * 64).max(32 * 1024 * 1024),
            ..ProducerConfig::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if self.count.is_none() && self.duration.is_none() {
            return Err(ClientError::InvalidArgument(
                "give --count or --duration-secs".into(),
            ));
        }
        if self.producers == 0 || self.message_bytes == 0 || self.partitions <= 0 {
            return Err(ClientError::InvalidArgument(
                "producers, message size and partitions must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// Consumer-side settings of `bench consume` and `bench e2e`.
#[derive(Debug, Clone)]
pub struct ConsumeSettings {
    pub topic: String,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub consumers: usize,
    pub fetch_max_bytes: i32,
    pub partition_fetch_max_bytes: i32,
}

impl ConsumeSettings {
    fn consumer_config(&self) -> ConsumerConfig {
        ConsumerConfig {
            fetch_max_bytes: self.fetch_max_bytes,
            partition_fetch_max_bytes: self.partition_fetch_max_bytes,
            max_poll_records: 1_000_000,
            fetch_max_wait_ms: 100,
            ..ConsumerConfig::default()
        }
    }
}

/// Creates the topic when it does not exist; an existing topic is used as it is.
pub async fn ensure_topic(
    client: &Client,
    topic: &str,
    partitions: i32,
    replication_factor: Option<i16>,
) -> Result<i32> {
    match client.topic(topic).await {
        Ok(info) => {
            let existing = i32::try_from(info.partitions.len()).unwrap_or(i32::MAX);
            if existing != partitions {
                eprintln!(
                    "note: topic '{topic}' exists with {existing} partitions; using it as it is"
                );
            }
            Ok(existing)
        }
        Err(ClientError::UnknownTopic(_)) => {
            let admin = Admin::new(client.clone());
            admin
                .create_topic(&NewTopic {
                    name: topic.to_string(),
                    partitions: Some(partitions),
                    replication_factor,
                    configs: Vec::new(),
                })
                .await?;
            client.topic(topic).await?;
            Ok(partitions)
        }
        Err(other) => Err(other),
    }
}

/// A payload of random capital letters, as Kafka's ProducerPerformance sends.
fn payload(message_bytes: usize) -> Bytes {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = BytesMut::with_capacity(message_bytes);
    for _ in 0..message_bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.put_u8(b'A' + (state % 26) as u8);
    }
    out.freeze()
}

/// Splits `total` into `parts` near-equal shares.
pub fn split(total: u64, parts: usize) -> Vec<u64> {
    let parts_u64 = parts.max(1) as u64;
    (0..parts_u64)
        .map(|i| total / parts_u64 + u64::from(i < total % parts_u64))
        .collect()
}

/// What one producer task's delivery callbacks record (one lock per acknowledgement).
#[derive(Default)]
struct AckStats {
    latencies: LatencyRecorder,
    last_ack: Option<Instant>,
}

/// Shared state of one producer task's callbacks.
struct ProducerTaskShared {
    stats: Mutex<AckStats>,
    counters: Arc<Counters>,
}

/// Messages per producer task and the end time of the run.
struct ProducePlan {
    share: Option<u64>,
    deadline: Option<Instant>,
    rate_per_sec: f64,
}

/// One producer task: sends its share (or until the deadline), paced to its rate.
/// A running producer task: its latencies and when it finished sending.
type ProducerHandle = tokio::task::JoinHandle<Result<(LatencyRecorder, Option<Instant>)>>;

/// Starts `settings.producers` producer tasks, splitting the message count and the target rate
/// evenly between them; each waits at `barrier` before it starts sending.
fn spawn_producers(
    client_config: &ClientConfig,
    settings: &ProduceSettings,
    barrier: &Arc<Barrier>,
    counters: &Arc<Counters>,
    stamp_from: Option<Instant>,
) -> Vec<ProducerHandle> {
    let shares = settings.count.map(|count| split(count, settings.producers));
    let rate_per_task = settings.rate_per_sec as f64 / settings.producers as f64;
    (0..settings.producers)
        .map(|index| {
            let share = shares.as_ref().map(|s| s[index]);
            let duration = settings.duration;
            let plan_of = move |start: Instant| ProducePlan {
                share,
                deadline: duration.map(|d| start + d),
                rate_per_sec: rate_per_task,
            };
            tokio::spawn(producer_task(
                client_config.clone(),
                settings.clone(),
                plan_of,
                barrier.clone(),
                counters.clone(),
                stamp_from,
            ))
        })
        .collect()
}

async fn producer_task(
    client_config: ClientConfig,
    settings: ProduceSettings,
    plan_of: impl FnOnce(Instant) -> ProducePlan + Send,
    barrier: Arc<Barrier>,
    counters: Arc<Counters>,
    stamp_from: Option<Instant>,
) -> Result<(LatencyRecorder, Option<Instant>)> {
    let setup = async {
        let client = Client::connect(client_config).await?;
        client.topic(&settings.topic).await?;
        Producer::new(client, settings.producer_config()).await
    };
    let producer = setup.await;
    barrier.wait().await;
    let producer = producer?;
    let start = Instant::now();
    let plan = plan_of(start);
    let shared = Arc::new(ProducerTaskShared {
        stats: Mutex::new(AckStats::default()),
        counters,
    });
    let topic: Arc<str> = Arc::from(settings.topic.as_str());
    let template = payload(settings.message_bytes);
    let message_bytes = settings.message_bytes as u64;
    let mut sent: u64 = 0;
    loop {
        if plan.share.is_some_and(|share| sent >= share)
            || plan.deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        if plan.rate_per_sec > 0.0 {
            let due = start + Duration::from_secs_f64(sent as f64 / plan.rate_per_sec);
            if due > Instant::now() + Duration::from_millis(1) {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let sent_at = Instant::now();
        let value = match stamp_from {
            None => template.clone(),
            Some(anchor) => {
                let mut stamped = BytesMut::from(&template[..]);
                let nanos =
                    u64::try_from(sent_at.duration_since(anchor).as_nanos()).unwrap_or(u64::MAX);
                stamped[..E2E_TIMESTAMP_BYTES].copy_from_slice(&nanos.to_be_bytes());
                stamped.freeze()
            }
        };
        let record = ProducerRecord {
            topic: topic.clone(),
            partition: None,
            key: None,
            value: Some(value),
            headers: Vec::new(),
            timestamp_ms: None,
        };
        let callback_shared = shared.clone();
        let callback: Callback = Box::new(move |result| match result {
            Ok(_) => {
                let now = Instant::now();
                let mut stats = callback_shared
                    .stats
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                stats.latencies.record(now - sent_at);
                stats.last_ack = Some(now);
                drop(stats);
                callback_shared.counters.add(1, message_bytes);
            }
            Err(_) => {
                callback_shared
                    .counters
                    .errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        producer.send_with_callback(record, callback).await?;
        sent += 1;
    }
    producer.close().await;
    let stats = std::mem::take(&mut *shared.stats.lock().unwrap_or_else(PoisonError::into_inner));
    let (latencies, last_ack) = (stats.latencies, stats.last_ack);
    Ok((latencies, last_ack))
}

/// `strom bench produce`.
pub async fn run_produce(
    client_config: ClientConfig,
    settings: ProduceSettings,
    name: &str,
    progress: bool,
) -> Result<WorkloadResult> {
    settings.validate()?;
    let client = Client::connect(client_config.clone()).await?;
    ensure_topic(
        &client,
        &settings.topic,
        settings.partitions,
        settings.replication_factor,
    )
    .await?;
    let counters = Arc::new(Counters::default());
    let barrier = Arc::new(Barrier::new(settings.producers + 1));
    let tasks = spawn_producers(&client_config, &settings, &barrier, &counters, None);
    barrier.wait().await;
    let start = Instant::now();
    let bar = Progress::start(
        "produce",
        settings.count,
        settings.duration,
        counters.clone(),
        progress,
    );
    let mut latencies = LatencyRecorder::new();
    let mut end = start;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok((recorder, last_ack))) => {
                latencies.merge(&recorder);
                end = end.max(last_ack.unwrap_or(start));
            }
            Ok(Err(error)) => first_error = first_error.or(Some(error)),
            Err(join) => {
                first_error = first_error.or(Some(ClientError::Protocol {
                    addr: "bench".into(),
                    reason: join.to_string(),
                }))
            }
        }
    }
    bar.finish();
    if let Some(error) = first_error {
        return Err(error);
    }
    if settings.acks == 0 {
        end = Instant::now();
    }
    let seconds = end.duration_since(start).as_secs_f64();
    let totals = Totals {
        messages: counters.messages(),
        bytes: counters.bytes(),
        errors: counters.errors(),
        duration_secs: seconds,
    };
    Ok(WorkloadResult::new(
        name,
        "produce",
        settings.params(),
        totals,
        "send-to-ack",
        latencies.summary(),
    ))
}

/// Partitions split over consumer tasks, round robin.
fn spread(partitions: &[i32], consumers: usize) -> Vec<Vec<i32>> {
    let slots = consumers.max(1);
    let mut out = vec![Vec::new(); slots];
    for (index, &partition) in partitions.iter().enumerate() {
        out[index % slots].push(partition);
    }
    out.retain(|p| !p.is_empty());
    out
}

/// What a consumer task reads until.
#[derive(Clone)]
struct ConsumeStop {
    /// Stop when the total over all tasks reaches this.
    total: Option<u64>,
    /// Read for this long (from the shared start).
    duration: Option<Duration>,
    /// Stop when every assigned partition reached these offsets (the log end at start).
    end_offsets: Option<BTreeMap<i32, i64>>,
    /// In e2e runs: set once producers are done; consumers then drain for a bounded time.
    producers_done: Option<Arc<tokio::sync::watch::Receiver<Option<u64>>>>,
}

/// The partitions one consumer task reads, from where, and until when.
struct ConsumerPlan {
    partitions: Vec<i32>,
    start_at: StartOffset,
    stop: ConsumeStop,
}

async fn consumer_task(
    client_config: ClientConfig,
    settings: ConsumeSettings,
    plan: ConsumerPlan,
    barrier: Arc<Barrier>,
    counters: Arc<Counters>,
    stamp_from: Option<Instant>,
) -> Result<(LatencyRecorder, Instant)> {
    let ConsumerPlan {
        partitions,
        start_at,
        stop,
    } = plan;
    let setup = async {
        let client = Client::connect(client_config).await?;
        let mut consumer = Consumer::new(client, settings.consumer_config());
        let assignment: Vec<(String, i32, StartOffset)> = partitions
            .iter()
            .map(|&p| (settings.topic.clone(), p, start_at))
            .collect();
        consumer.assign(&assignment).await?;
        Ok::<Consumer, ClientError>(consumer)
    };
    let consumer = setup.await;
    barrier.wait().await;
    let mut consumer = consumer?;
    let deadline = stop.duration.map(|d| Instant::now() + d);
    let mut latencies = LatencyRecorder::new();
    let mut last_record = Instant::now();
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if stop.total.is_some_and(|total| counters.messages() >= total)
            || deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        if let Some(ends) = &stop.end_offsets {
            let positions = consumer.positions();
            if ends.iter().all(|(p, end)| {
                positions
                    .get(&(settings.topic.clone(), *p))
                    .is_some_and(|pos| pos >= end)
            }) {
                break;
            }
        }
        if let Some(done) = &stop.producers_done {
            if let Some(produced) = *done.borrow() {
                if counters.messages() >= produced {
                    break;
                }
                let deadline =
                    *drain_deadline.get_or_insert_with(|| Instant::now() + E2E_DRAIN_TIMEOUT);
                if Instant::now() >= deadline {
                    break;
                }
            }
        } else if last_record.elapsed() >= CONSUME_IDLE_TIMEOUT {
            break;
        }
        let polled_at = Instant::now();
        let records = consumer.poll(POLL_TIMEOUT).await?;
        if records.is_empty() {
            continue;
        }
        last_record = Instant::now();
        let mut bytes = 0u64;
        match stamp_from {
            None => latencies.record(last_record - polled_at),
            Some(anchor) => {
                let now_nanos = u64::try_from(anchor.elapsed().as_nanos()).unwrap_or(u64::MAX);
                for record in &records {
                    if let Some(value) = record
                        .value
                        .as_ref()
                        .filter(|v| v.len() >= E2E_TIMESTAMP_BYTES)
                    {
                        let mut stamp = [0u8; E2E_TIMESTAMP_BYTES];
                        stamp.copy_from_slice(&value[..E2E_TIMESTAMP_BYTES]);
                        latencies.record_micros(
                            now_nanos.saturating_sub(u64::from_be_bytes(stamp)) / 1000,
                        );
                    }
                }
            }
        }
        for record in &records {
            bytes += record.value.as_ref().map_or(0, |v| v.len() as u64)
                + record.key.as_ref().map_or(0, |k| k.len() as u64);
        }
        counters.add(records.len() as u64, bytes);
    }
    Ok((latencies, last_record))
}

/// `strom bench consume`: reads the topic from the beginning.
pub async fn run_consume(
    client_config: ClientConfig,
    settings: ConsumeSettings,
    name: &str,
    progress: bool,
) -> Result<WorkloadResult> {
    if settings.consumers == 0 {
        return Err(ClientError::InvalidArgument(
            "consumers must be positive".into(),
        ));
    }
    let client = Client::connect(client_config.clone()).await?;
    let info = client.topic(&settings.topic).await?;
    let partitions: Vec<i32> = info.partitions.iter().map(|p| p.id).collect();
    let admin = Admin::new(client.clone());
    let earliest = admin
        .list_offsets(&settings.topic, &partitions, OffsetSpec::Earliest)
        .await?;
    let latest = admin
        .list_offsets(&settings.topic, &partitions, OffsetSpec::Latest)
        .await?;
    let available: u64 = partitions
        .iter()
        .map(|p| {
            u64::try_from(
                latest.get(p).copied().unwrap_or(0) - earliest.get(p).copied().unwrap_or(0),
            )
            .unwrap_or(0)
        })
        .sum();
    if settings.duration.is_none() && available == 0 {
        return Err(ClientError::InvalidArgument(format!(
            "topic '{}' has no messages; run `strom bench produce` first",
            settings.topic
        )));
    }
    let total = match (settings.count, settings.duration) {
        (Some(count), None) => Some(count.min(available)),
        (count, _) => count,
    };
    let groups = spread(&partitions, settings.consumers);
    let counters = Arc::new(Counters::default());
    let barrier = Arc::new(Barrier::new(groups.len() + 1));
    let mut tasks = Vec::new();
    for group in groups {
        let stop = ConsumeStop {
            total,
            duration: settings.duration,
            end_offsets: if settings.duration.is_none() {
                Some(
                    group
                        .iter()
                        .map(|p| (*p, latest.get(p).copied().unwrap_or(0)))
                        .collect(),
                )
            } else {
                None
            },
            producers_done: None,
        };
        tasks.push(tokio::spawn(consumer_task(
            client_config.clone(),
            settings.clone(),
            ConsumerPlan {
                partitions: group,
                start_at: StartOffset::Earliest,
                stop,
            },
            barrier.clone(),
            counters.clone(),
            None,
        )));
    }
    barrier.wait().await;
    let start = Instant::now();
    let bar = Progress::start(
        "consume",
        total,
        settings.duration,
        counters.clone(),
        progress,
    );
    let mut latencies = LatencyRecorder::new();
    let mut end = start;
    let mut first_error = None;
    let collected = collect_tasks(tasks).await;
    for outcome in collected {
        match outcome {
            Ok((recorder, last)) => {
                latencies.merge(&recorder);
                end = end.max(last);
            }
            Err(error) => first_error = first_error.or(Some(error)),
        }
    }
    bar.finish();
    if let Some(error) = first_error {
        return Err(error);
    }
    let seconds = end.duration_since(start).as_secs_f64();
    let params = BTreeMap::from([
        ("topic".to_string(), json!(settings.topic)),
        ("count".to_string(), json!(settings.count)),
        (
            "duration_secs".to_string(),
            json!(settings.duration.map(|d| d.as_secs_f64())),
        ),
        ("consumers".to_string(), json!(settings.consumers)),
        ("partitions".to_string(), json!(partitions.len())),
        (
            "fetch_max_bytes".to_string(),
            json!(settings.fetch_max_bytes),
        ),
        (
            "partition_fetch_max_bytes".to_string(),
            json!(settings.partition_fetch_max_bytes),
        ),
    ]);
    let totals = Totals {
        messages: counters.messages(),
        bytes: counters.bytes(),
        errors: counters.errors(),
        duration_secs: seconds,
    };
    Ok(WorkloadResult::new(
        name,
        "consume",
        params,
        totals,
        "poll-wait",
        latencies.summary(),
    ))
}

/// Awaits consumer tasks (each checks its own stop conditions between short polls).
async fn collect_tasks(
    tasks: Vec<tokio::task::JoinHandle<Result<(LatencyRecorder, Instant)>>>,
) -> Vec<Result<(LatencyRecorder, Instant)>> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(match task.await {
            Ok(outcome) => outcome,
            Err(join) => Err(ClientError::Protocol {
                addr: "bench".into(),
                reason: join.to_string(),
            }),
        });
    }
    out
}

/// `strom bench e2e`: producers and consumers at once; latency from send to receipt.
pub async fn run_e2e(
    client_config: ClientConfig,
    produce: ProduceSettings,
    consumers: usize,
    consume: ConsumeSettings,
    name: &str,
    progress: bool,
) -> Result<WorkloadResult> {
    produce.validate()?;
    if produce.message_bytes < E2E_TIMESTAMP_BYTES {
        return Err(ClientError::InvalidArgument(format!("end-to-end messages carry a timestamp: --message-bytes must be at least {E2E_TIMESTAMP_BYTES}")));
    }
    if consumers == 0 {
        return Err(ClientError::InvalidArgument(
            "consumers must be positive".into(),
        ));
    }
    let client = Client::connect(client_config.clone()).await?;
    let partition_count = ensure_topic(
        &client,
        &produce.topic,
        produce.partitions,
        produce.replication_factor,
    )
    .await?;
    let partitions: Vec<i32> = (0..partition_count).collect();
    let groups = spread(&partitions, consumers);
    let anchor = Instant::now();
    let produced = Arc::new(Counters::default());
    let consumed = Arc::new(Counters::default());
    let barrier = Arc::new(Barrier::new(produce.producers + groups.len() + 1));
    let (done_tx, done_rx) = tokio::sync::watch::channel(None);
    let done_rx = Arc::new(done_rx);
    let mut consumer_tasks = Vec::new();
    for group in groups {
        let stop = ConsumeStop {
            total: None,
            duration: None,
            end_offsets: None,
            producers_done: Some(done_rx.clone()),
        };
        consumer_tasks.push(tokio::spawn(consumer_task(
            client_config.clone(),
            consume.clone(),
            ConsumerPlan {
                partitions: group,
                start_at: StartOffset::Latest,
                stop,
            },
            barrier.clone(),
            consumed.clone(),
            Some(anchor),
        )));
    }
    let producer_tasks =
        spawn_producers(&client_config, &produce, &barrier, &produced, Some(anchor));
    barrier.wait().await;
    let start = Instant::now();
    let bar = Progress::start(
        "e2e",
        produce.count,
        produce.duration,
        consumed.clone(),
        progress,
    );
    let mut first_error = None;
    for task in producer_tasks {
        match task.await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => first_error = first_error.or(Some(error)),
            Err(join) => {
                first_error = first_error.or(Some(ClientError::Protocol {
                    addr: "bench".into(),
                    reason: join.to_string(),
                }))
            }
        }
    }
    let _ = done_tx.send(Some(produced.messages()));
    let mut latencies = LatencyRecorder::new();
    let mut end = start;
    for outcome in collect_tasks(consumer_tasks).await {
        match outcome {
            Ok((recorder, last)) => {
                latencies.merge(&recorder);
                end = end.max(last);
            }
            Err(error) => first_error = first_error.or(Some(error)),
        }
    }
    bar.finish();
    if let Some(error) = first_error {
        return Err(error);
    }
    let mut params = produce.params();
    params.insert("consumers".to_string(), json!(consumers));
    params.insert("produced".to_string(), json!(produced.messages()));
    let missing = produced.messages().saturating_sub(consumed.messages());
    params.insert("missing".to_string(), json!(missing));
    let seconds = end.duration_since(start).as_secs_f64();
    let totals = Totals {
        messages: consumed.messages(),
        bytes: consumed.bytes(),
        errors: produced.errors() + missing,
        duration_secs: seconds,
    };
    Ok(WorkloadResult::new(
        name,
        "e2e",
        params,
        totals,
        "produce-to-consume",
        latencies.summary(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split(10, 3).iter().sum::<u64>(), 10);
    }

    #[test]
    fn partitions_spread_round_robin() {
        assert_eq!(spread(&[0, 1, 2, 3, 4], 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(spread(&[0], 3), vec![vec![0]]);
    }

    #[test]
    fn payload_is_letters_of_the_requested_size() {
        let p = payload(1000);
        assert_eq!(p.len(), 1000);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        assert_eq!(p, payload(1000));
    }
}
