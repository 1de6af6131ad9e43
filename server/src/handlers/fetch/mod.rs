//! Fetch (key 1, v4–v16): read whole batches from each partition's owner shard and send them
//! with zero-copy file ranges; long-poll up to `max_wait_ms` until `min_bytes` are available.
//! Fetch sessions (KIP-227) are not kept: the response's session id is 0, which tells clients to
//! send full fetches.

mod encode;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchRequest;
use strom_engine::log::{FileRange, Progress};
use tokio::sync::watch;

use super::error_codes::{code, engine_error_code, NONE};
use super::{RequestContext, ResponseFuture};
use crate::broker::shard::ShardState;
use crate::network::Response;
use encode::{encode_fetch_response, PartitionOut, TopicOut};

/// Longest long-poll a client may ask for; clients use 500 ms by default.
const MAX_WAIT_MS_LIMIT: i32 = 60_000;
/// Partitions one fetch may name (bounds the work and the response).
const PARTITIONS_PER_FETCH_MAX: usize = 10_000;

struct PartitionRead {
    error_code: i16,
    high_watermark: i64,
    log_start_offset: i64,
    records: Option<FileRange>,
    progress: Option<watch::Receiver<Progress>>,
}

impl PartitionRead {
    fn error(error_code: i16) -> Self {
        PartitionRead {
            error_code,
            high_watermark: -1,
            log_start_offset: -1,
            records: None,
            progress: None,
        }
    }
}

struct WantedPartition {
    index: i32,
    fetch_offset: i64,
    partition_max_bytes: usize,
    current_leader_epoch: i32,
}

struct WantedTopic {
    name: Option<String>,
    topic_id: uuid::Uuid,
    partitions: Vec<WantedPartition>,
}

/// Reads a partition on its owner shard: whole batches from `wanted.fetch_offset`, about
/// `max_bytes` (at least one batch), or with `max_bytes` 0 only its watermarks.
async fn read_partition(
    shard: &Rc<ShardState>,
    topic: &str,
    wanted: &WantedPartition,
    max_bytes: usize,
) -> PartitionRead {
    let owner = shard.owner_of(topic, wanted.index);
    let topic = topic.to_string();
    let (index, fetch_offset, current_epoch) = (
        wanted.index,
        wanted.fetch_offset,
        wanted.current_leader_epoch,
    );
    let outcome = shard
        .router
        .submit_to(owner, move |state: Rc<ShardState>| async move {
            let Some(partition) = state.partition(&topic, index) else {
                return PartitionRead::error(code(ResponseError::UnknownTopicOrPartition));
            };
            if let Err(error) = partition.check_leader_epoch(current_epoch) {
                return PartitionRead::error(code(error));
            }
            let high_watermark = partition.high_watermark();
            let log_start_offset = partition.log.log_start_offset();
            let progress = Some(partition.log.subscribe());
            if max_bytes == 0 {
                // The response is already full: report the partition's state without records.
                return PartitionRead {
                    error_code: NONE,
                    high_watermark,
                    log_start_offset,
                    records: None,
                    progress,
                };
            }
            match partition
                .log
                .read(fetch_offset, max_bytes, high_watermark)
                .await
            {
                Ok(records) => PartitionRead {
                    error_code: NONE,
                    high_watermark,
                    log_start_offset,
                    records,
                    progress,
                },
                Err(error) => PartitionRead {
                    error_code: engine_error_code(&error),
                    high_watermark,
                    log_start_offset,
                    records: None,
                    progress,
                },
            }
        })
        .await;
    outcome.unwrap_or_else(|_| PartitionRead::error(code(ResponseError::NotLeaderOrFollower)))
}

/// Waits until any of `receivers` reports a change (new data written) or they all closed.
async fn any_progress(receivers: &mut [watch::Receiver<Progress>]) {
    if receivers.is_empty() {
        return std::future::pending().await;
    }
    type ChangeWait<'a> = Pin<Box<dyn Future<Output = Result<(), watch::error::RecvError>> + 'a>>;
    let mut waits: Vec<ChangeWait<'_>> = receivers
        .iter_mut()
        .map(|receiver| Box::pin(receiver.changed()) as Pin<Box<dyn Future<Output = _>>>)
        .collect();
    std::future::poll_fn(move |cx| {
        for wait in &mut waits {
            if wait.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await;
}

pub async fn handle(ctx: RequestContext, request: FetchRequest) -> ResponseFuture {
    Box::pin(fetch(ctx, request))
}

fn resolve_topics(ctx: &RequestContext, request: &FetchRequest) -> Vec<WantedTopic> {
    request
        .topics
        .iter()
        .map(|topic| {
            let name = if ctx.version() >= 13 {
                ctx.shard
                    .broker
                    .topics
                    .get_by_id(topic.topic_id)
                    .map(|metadata| metadata.name)
            } else {
                Some(topic.topic.to_string())
            };
            WantedTopic {
                name,
                topic_id: topic.topic_id,
                partitions: topic
                    .partitions
                    .iter()
                    .map(|partition| WantedPartition {
                        index: partition.partition,
                        fetch_offset: partition.fetch_offset,
                        partition_max_bytes: usize::try_from(partition.partition_max_bytes)
                            .unwrap_or(0),
                        current_leader_epoch: partition.current_leader_epoch,
                    })
                    .collect(),
            }
        })
        .collect()
}

async fn fetch(ctx: RequestContext, request: FetchRequest) -> Response {
    let version = ctx.version();
    let partition_count: usize = request
        .topics
        .iter()
        .map(|topic| topic.partitions.len())
        .sum();
    if partition_count > PARTITIONS_PER_FETCH_MAX {
        return Response::Close(format!("fetch names {partition_count} partitions"));
    }
    let wanted = resolve_topics(&ctx, &request);
    let max_wait = Duration::from_millis(
        u64::try_from(request.max_wait_ms.clamp(0, MAX_WAIT_MS_LIMIT)).unwrap_or(0),
    );
    let deadline = Instant::now() + max_wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let response_max_bytes = usize::try_from(request.max_bytes)
        .ok()
        .filter(|&bytes| bytes > 0)
        .unwrap_or(usize::MAX);
    let unknown_topic = if version >= 13 {
        ResponseError::UnknownTopicId
    } else {
        ResponseError::UnknownTopicOrPartition
    };

    loop {
        let mut topics_out = Vec::with_capacity(wanted.len());
        let mut receivers = Vec::new();
        let mut total_bytes = 0usize;
        let mut any_error = false;
        for topic in &wanted {
            let mut partitions_out = Vec::with_capacity(topic.partitions.len());
            for partition in &topic.partitions {
                let read = match &topic.name {
                    None => PartitionRead::error(code(unknown_topic)),
                    Some(name) => {
                        let remaining = response_max_bytes.saturating_sub(total_bytes);
                        if remaining == 0 && total_bytes > 0 {
                            // The response is full: later partitions get their watermarks but no
                            // records this time (max_bytes 0 reads nothing).
                            read_partition(&ctx.shard, name, partition, 0).await
                        } else {
                            // At least one whole batch is returned even when it is larger than the
                            // limits (KIP-74), so a large batch never stalls a consumer.
                            read_partition(
                                &ctx.shard,
                                name,
                                partition,
                                partition.partition_max_bytes.min(remaining.max(1)),
                            )
                            .await
                        }
                    }
                };
                any_error |= read.error_code != NONE;
                total_bytes += read.records.as_ref().map_or(0, |range| range.len_bytes);
                if let Some(receiver) = read.progress {
                    receivers.push(receiver);
                }
                partitions_out.push(PartitionOut {
                    partition_index: partition.index,
                    error_code: read.error_code,
                    high_watermark: read.high_watermark,
                    last_stable_offset: read.high_watermark,
                    log_start_offset: read.log_start_offset,
                    records: read.records,
                });
            }
            topics_out.push(TopicOut {
                name: topic.name.clone().unwrap_or_default(),
                topic_id: topic.topic_id,
                partitions: partitions_out,
            });
        }
        let now = Instant::now();
        let enough = if min_bytes == 0 {
            true
        } else {
            total_bytes >= min_bytes
        };
        if enough || any_error || now >= deadline || ctx.shard.stopping.get() {
            return Response::Frame(encode_fetch_response(
                ctx.header.correlation_id,
                version,
                NONE,
                topics_out,
            ));
        }
        // Long poll: wait for new data in any partition, or the deadline.
        drop(topics_out);
        tokio::select! {
            () = any_progress(&mut receivers) => {}
            () = tokio::time::sleep(deadline - now) => {}
        }
    }
}
