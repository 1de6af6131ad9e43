//! `strom bench-request-path` (hidden): a fixed produce and fetch workload driven in-process
//! through the broker's request path, for the instruction-count regression test
//! (`tests/instruction_count.rs`), which runs it under valgrind's callgrind.
//!
//! What is measured: real Produce and Fetch request frames handed to
//! `strom_server::handlers::dispatch` on a one-shard broker (the real `ShardState` and storage
//! engine, writing real segment files through io_uring in a temporary log dir), each response
//! awaited before the next request is dispatched. Not measured: process and broker start, topic
//! creation, building the request frames (done beforehand), and checking the responses (done
//! afterwards). The connection's socket reads and writes are not in the path either: a response
//! is taken as the handler returns it (file ranges are not spliced to a socket; that is kernel
//! work callgrind cannot count anyway).
//!
//! Determinism, so the count only changes when the code does: the same frames every run (fixed
//! topic name, record contents and timestamps, no producer id, correlation ids counting from
//! 0), one request in flight at a time, a warm-up before the measurement so one-time costs
//! (first allocations, lazy statics, code first run) stay outside it.
//!
//! Markers: callgrind client requests zero the counters before each phase and dump them after
//! it (`desc: Trigger: Client Request: produce` / `fetch` in the dump files). Natively the
//! markers do nothing and the command is an ordinary (slow-to-start) run of the same workload.

use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use clap::Args;
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic, fetch_request::FetchPartition,
    fetch_request::FetchTopic, produce_request::PartitionProduceData,
    produce_request::TopicProduceData, ApiKey, CreateTopicsRequest, CreateTopicsResponse,
    FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use strom_engine::runtime::{ShardSet, ShardSetConfig};
use strom_server::broker::context::BrokerContext;
use strom_server::broker::log_dirs::LogDirs;
use strom_server::broker::producer_ids::ProducerIdAllocator;
use strom_server::broker::shard::ShardState;
use strom_server::config::BrokerConfig;
use strom_server::network::{Chunk, Response};

use crate::callgrind;

/// The topic the workload writes (one partition).
const TOPIC: &str = "request-path";
/// Every record's timestamp (CreateTime), fixed so that batches are the same bytes every run.
const RECORD_TIMESTAMP_MS: i64 = 1_700_000_000_000;
/// Versions a current client sends (the tools' client caps Produce and Fetch at 12: topics by
/// name).
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 5;
/// Produce acks=1: acknowledged once the batch is written to the segment (page cache).
const ACKS: i16 = 1;
/// The peer address handlers see.
const PEER: &str = "127.0.0.1:1";
/// Bounds of the settings, so a typo cannot ask for gigabytes of frames in memory.
const MESSAGES_MAX: u64 = 10_000_000;
const VALUE_BYTES_MAX: usize = 1 << 20;

#[derive(Args, Debug, Clone)]
pub struct RequestPathArgs {
    /// Messages produced and then fetched in the measured phases.
    #[arg(long, default_value_t = 20_000)]
    pub messages: u64,
    /// Records per produce request (one batch each); also what one fetch returns.
    #[arg(long, default_value_t = 50)]
    pub records_per_batch: u32,
    /// Bytes of each record's value (records have no key).
    #[arg(long, default_value_t = 1024)]
    pub value_bytes: usize,
    /// Produce and fetch requests run before the measurement.
    #[arg(long, default_value_t = 20)]
    pub warmup_batches: u32,
    /// Log dir of the in-process broker (default: a new directory under the temp dir, removed
    /// at the end).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
}

/// What the run did; printed as one JSON line on stdout for the measuring test.
#[derive(Debug, serde::Serialize)]
struct Summary {
    produce_messages: u64,
    produce_requests: u64,
    fetch_messages: u64,
    fetch_requests: u64,
    bytes_per_batch: usize,
    /// `debug` or `release`: instruction counts only compare within one profile.
    profile: &'static str,
    on_valgrind: bool,
}

/// Every request frame of the run, built before the measurement.
struct Frames {
    warmup_produce: Vec<Bytes>,
    produce: Vec<Bytes>,
    warmup_fetch: Vec<Bytes>,
    fetch: Vec<Bytes>,
}

pub fn run(args: &RequestPathArgs) -> Result<(), String> {
    if args.records_per_batch == 0
        || args.value_bytes == 0
        || args.value_bytes > VALUE_BYTES_MAX
        || args.messages == 0
        || args.messages > MESSAGES_MAX
    {
        return Err(format!(
            "--messages (1..={MESSAGES_MAX}), --records-per-batch and --value-bytes (1..={VALUE_BYTES_MAX}) must be positive"
        ));
    }
    if !args
        .messages
        .is_multiple_of(u64::from(args.records_per_batch))
    {
        return Err("--messages must be a multiple of --records-per-batch".into());
    }
    let (log_dir, remove_after) = match &args.log_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("strom-request-path-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&log_dir).map_err(|e| format!("create {}: {e}", log_dir.display()))?;
    let outcome = run_in(args, &log_dir);
    if remove_after {
        let _ = std::fs::remove_dir_all(&log_dir);
    }
    let summary = outcome?;
    let line = serde_json::to_string(&summary).map_err(|e| e.to_string())?;
    println!("{line}");
    Ok(())
}

/// Starts a one-shard broker in this process (as `broker::run` does, without listeners or
/// background loops), runs the workload on its shard, and stops it cleanly.
fn run_in(args: &RequestPathArgs, log_dir: &Path) -> Result<Summary, String> {
    let overrides = [
        format!("log.dirs={}", log_dir.display()),
        "num.shards=1".to_string(),
        "auto.create.topics.enable=false".to_string(),
    ];
    let config = BrokerConfig::load(None, &overrides).map_err(|e| e.to_string())?;
    // The broker's own control plane on the embedded store, as `strom broker` runs it.
    let started = strom_server::control_plane::start(&config, log_dir, &|| false)?;
    let control = started.control.clone();
    let log_dirs = LogDirs::open(&[log_dir.to_path_buf()])?;
    let (config_max_connections, config_max_connections_per_ip) =
        (config.max_connections, config.max_connections_per_ip);
    let context = Arc::new(BrokerContext {
        producer_ids: ProducerIdAllocator::new(control.clone()),
        config,
        log_dir: log_dir.to_path_buf(),
        log_dirs,
        topics: started.view,
        control: control.clone(),
        cluster_id: started.cluster_id,
        shard_count: 1,
        checkpointed_high_watermarks: Default::default(),
        connections: Arc::new(strom_server::network::ConnectionLimits::new(
            config_max_connections,
            config_max_connections_per_ip,
        )),
    });
    let shard_config = ShardSetConfig {
        shard_count: 1,
        pin_threads: false,
        ..ShardSetConfig::default()
    };
    let shards = ShardSet::start(&shard_config, move |id, router| {
        let context = context.clone();
        async move { ShardState::start(id, router, context).await }
    })
    .map_err(|e| format!("start the shard: {e}"))?;
    control.attach(shards.router().clone());

    let frames = build_frames(args)?;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let workload_args = args.clone();
    shards
        .router()
        .try_post_to(0, move |state: Rc<ShardState>| async move {
            let outcome = workload(&state, &workload_args, frames).await;
            state.shutdown().await;
            let _ = done_tx.send(outcome);
        })
        .map_err(|e| e.to_string())?;
    let outcome = done_rx
        .recv()
        .unwrap_or_else(|_| Err("the shard stopped before the workload finished".into()));
    shards.stop();
    control.stop_blocking();
    let _ = started.thread.join();
    outcome
}

fn peer() -> SocketAddr {
    PEER.parse().expect("PEER is a valid socket address")
}

/// Encodes a request frame as a client sends it, without the 4-byte size prefix (which the
/// connection strips before `dispatch`).
fn request_frame<R: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Bytes, String> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("request-path-bench")));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, R::header_version(version))
        .map_err(|e| format!("encode {api:?} header: {e}"))?;
    body.encode(&mut out, version)
        .map_err(|e| format!("encode {api:?} v{version}: {e}"))?;
    Ok(out.freeze())
}

/// The batch every produce request carries: no producer id, fixed values and timestamps.
fn batch(args: &RequestPathArgs) -> Bytes {
    let count = i32::try_from(args.records_per_batch).unwrap_or(i32::MAX);
    Bytes::from(strom_engine::batch::build::build_batch(
        0,
        count,
        args.value_bytes,
        RECORD_TIMESTAMP_MS,
        -1,
        -1,
        -1,
    ))
}

fn produce_frame(correlation_id: i32, records: &Bytes) -> Result<Bytes, String> {
    let partition = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(records.clone()));
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_partition_data(vec![partition]);
    let request = ProduceRequest::default()
        .with_acks(ACKS)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic]);
    request_frame(ApiKey::Produce, PRODUCE_VERSION, correlation_id, &request)
}

/// A fetch of the batch at `offset`, as a consumer at the log end asks for it: no long poll
/// (the data is there), at most one batch's bytes.
fn fetch_frame(correlation_id: i32, offset: i64, batch_bytes: usize) -> Result<Bytes, String> {
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_current_leader_epoch(-1)
        .with_log_start_offset(-1)
        .with_partition_max_bytes(i32::try_from(batch_bytes).unwrap_or(i32::MAX));
    let topic = FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_partitions(vec![partition]);
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 * 1024 * 1024)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![topic]);
    request_frame(ApiKey::Fetch, FETCH_VERSION, correlation_id, &request)
}

fn build_frames(args: &RequestPathArgs) -> Result<Frames, String> {
    let records = batch(args);
    let per_batch = i64::from(args.records_per_batch);
    let warmup = i64::from(args.warmup_batches);
    let measured = i64::try_from(args.messages).unwrap_or(i64::MAX) / per_batch;
    let mut correlation_id = 0i32;
    let mut next = || {
        correlation_id += 1;
        correlation_id
    };
    let mut frames = Frames {
        warmup_produce: Vec::new(),
        produce: Vec::new(),
        warmup_fetch: Vec::new(),
        fetch: Vec::new(),
    };
    for _ in 0..warmup {
        frames.warmup_produce.push(produce_frame(next(), &records)?);
    }
    for index in 0..warmup {
        frames
            .warmup_fetch
            .push(fetch_frame(next(), index * per_batch, records.len())?);
    }
    for _ in 0..measured {
        frames.produce.push(produce_frame(next(), &records)?);
    }
    for index in warmup..warmup + measured {
        frames
            .fetch
            .push(fetch_frame(next(), index * per_batch, records.len())?);
    }
    Ok(frames)
}

fn create_topic_frame() -> Result<Bytes, String> {
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_num_partitions(1)
        .with_replication_factor(1);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    request_frame(ApiKey::CreateTopics, CREATE_TOPICS_VERSION, 0, &request)
}

/// Dispatches each frame and awaits its response before the next: the measured loop.
/// `inline(never)` keeps it a function of its own in profiles of this command.
#[inline(never)]
async fn drive(shard: &Rc<ShardState>, frames: Vec<Bytes>) -> Vec<Response> {
    let peer = peer();
    let mut responses = Vec::with_capacity(frames.len());
    for frame in frames {
        let pending = strom_server::handlers::dispatch(shard, frame, peer).await;
        responses.push(pending.await);
    }
    responses
}

async fn workload(
    shard: &Rc<ShardState>,
    args: &RequestPathArgs,
    frames: Frames,
) -> Result<Summary, String> {
    let created = drive(shard, vec![create_topic_frame()?]).await;
    check_created(&created)?;
    let batch_bytes = batch(args).len();
    let produce_requests = frames.produce.len() as u64;
    let fetch_requests = frames.fetch.len() as u64;
    let warmup_batches = frames.warmup_produce.len() as i64;

    callgrind::start_instrumentation();
    let warmup_produced = drive(shard, frames.warmup_produce).await;
    let warmup_fetched = drive(shard, frames.warmup_fetch).await;
    callgrind::zero_stats();
    let produced = drive(shard, frames.produce).await;
    callgrind::dump_stats_at(c"produce");
    let fetched = drive(shard, frames.fetch).await;
    callgrind::dump_stats_at(c"fetch");
    callgrind::stop_instrumentation();

    let per_batch = i64::from(args.records_per_batch);
    check_produced(&warmup_produced, 0, per_batch)?;
    check_produced(&produced, warmup_batches * per_batch, per_batch)?;
    let expected = batch(args);
    check_fetched(&warmup_fetched, 0, per_batch, &expected)?;
    check_fetched(&fetched, warmup_batches * per_batch, per_batch, &expected)?;
    Ok(Summary {
        produce_messages: args.messages,
        produce_requests,
        fetch_messages: fetch_requests * u64::from(args.records_per_batch),
        fetch_requests,
        bytes_per_batch: batch_bytes,
        profile: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        on_valgrind: callgrind::running_on_valgrind(),
    })
}

/// A response's whole frame (size prefix included), file ranges read back from the segment.
fn frame_bytes(response: &Response) -> Result<Bytes, String> {
    let chunks = match response {
        Response::Frame(chunks) => chunks,
        Response::NoResponse => return Err("no response".into()),
        Response::Close(reason) => return Err(format!("the broker closed: {reason}")),
    };
    let mut out = BytesMut::new();
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(bytes) => out.extend_from_slice(bytes),
            Chunk::File(range) => {
                let mut buffer = vec![0u8; range.len_bytes];
                range
                    .file
                    .std()
                    .read_exact_at(&mut buffer, range.position)
                    .map_err(|e| format!("read a fetched file range: {e}"))?;
                out.extend_from_slice(&buffer);
            }
        }
    }
    Ok(out.freeze())
}

/// Decodes a response frame of `api` at `version`.
fn decode_response<T: Decodable>(
    response: &Response,
    api: ApiKey,
    version: i16,
) -> Result<T, String> {
    let mut frame = frame_bytes(response)?;
    if frame.len() < 4 {
        return Err(format!("{api:?} response of {} bytes", frame.len()));
    }
    let _size = frame.split_to(4);
    ResponseHeader::decode(&mut frame, api.response_header_version(version))
        .map_err(|e| format!("{api:?} response header: {e}"))?;
    T::decode(&mut frame, version).map_err(|e| format!("{api:?} v{version} response: {e}"))
}

fn check_created(responses: &[Response]) -> Result<(), String> {
    for response in responses {
        let decoded: CreateTopicsResponse =
            decode_response(response, ApiKey::CreateTopics, CREATE_TOPICS_VERSION)?;
        for topic in decoded.topics {
            if topic.error_code != 0 {
                return Err(format!("creating {TOPIC}: error code {}", topic.error_code));
            }
        }
    }
    Ok(())
}

fn check_produced(responses: &[Response], first_offset: i64, per_batch: i64) -> Result<(), String> {
    for (index, response) in responses.iter().enumerate() {
        let decoded: ProduceResponse = decode_response(response, ApiKey::Produce, PRODUCE_VERSION)?;
        let partition = decoded
            .responses
            .first()
            .and_then(|topic| topic.partition_responses.first())
            .ok_or("a produce response without its partition")?;
        let expected = first_offset + index as i64 * per_batch;
        if partition.error_code != 0 || partition.base_offset != expected {
            return Err(format!(
                "produce {index}: error code {}, base offset {} (expected {expected})",
                partition.error_code, partition.base_offset
            ));
        }
    }
    Ok(())
}

/// Bytes of a batch before its CRC-covered part that the broker rewrites: base offset, batch
/// length, partition leader epoch, magic, CRC.
const BATCH_REWRITTEN_PREFIX_BYTES: usize = 21;

fn check_fetched(
    responses: &[Response],
    first_offset: i64,
    per_batch: i64,
    expected: &Bytes,
) -> Result<(), String> {
    for (index, response) in responses.iter().enumerate() {
        let decoded: FetchResponse = decode_response(response, ApiKey::Fetch, FETCH_VERSION)?;
        let partition = decoded
            .responses
            .first()
            .and_then(|topic| topic.partitions.first())
            .ok_or("a fetch response without its partition")?;
        let records = partition.records.clone().unwrap_or_default();
        let offset = first_offset + index as i64 * per_batch;
        let base_offset = records
            .get(..8)
            .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")));
        if partition.error_code != 0
            || records.len() != expected.len()
            || base_offset != Some(offset)
            || records[BATCH_REWRITTEN_PREFIX_BYTES..] != expected[BATCH_REWRITTEN_PREFIX_BYTES..]
        {
            return Err(format!(
                "fetch at {offset}: error code {}, {} bytes (expected {} bytes of the batch at {offset})",
                partition.error_code,
                records.len(),
                expected.len()
            ));
        }
    }
    Ok(())
}
