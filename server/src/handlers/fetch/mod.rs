//! Fetch (key 1, v4–v16): read whole batches from each partition's owner shard and send them
//! with zero-copy file ranges; long-poll up to `max_wait_ms` until `min_bytes` are available.
//! Fetch sessions (KIP-227) are not kept: the response's session id is 0, which tells clients to
//! send full fetches.
//!
//! Routing: topics are resolved (by name, or by id from v13) in this shard's metadata cache, the
//! partitions grouped by owner shard, and each owner reads all of its partitions in one message
//! (a direct call for this shard), the owners concurrently. A long poll sleeps until a
//! partition's high watermark moves (not on every write or sync), then reads again.
//!
//! Replica fetches: a fetch whose replica id is >= 0 (`replica_id` before v15, `replica_state`
//! from v15) comes from a follower broker. It reads up to the log end offset instead of the high
//! watermark (isolation does not apply), long-polls on the log end, gets a `diverging_epoch`
//! (v12+, KIP-320) when its last fetched epoch does not end where the leader's does at or after
//! its fetch offset, and reports its fetch offset to the partition's replica-fetch observer (the
//! leader's follower tracking).

mod encode;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FetchRequest;
use kafka_protocol::protocol::StrBytes;
use strom_engine::log::{FileRange, Progress};
use strom_engine::runtime::join_all;
use tokio::sync::watch;

use super::error_codes::{code, engine_error_code, leadership_error, NONE};
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
    /// Replica fetches only (see [`diverging_epoch`]).
    diverging_epoch: Option<(i32, i64)>,
    /// Changes when what this fetch may read grows: the high watermark for consumers, the log
    /// end for replicas (asked for on the first read only).
    changes: Option<ReadableEnd>,
}

impl PartitionRead {
    fn error(error_code: i16) -> Self {
        PartitionRead {
            error_code,
            high_watermark: -1,
            log_start_offset: -1,
            records: None,
            diverging_epoch: None,
            changes: None,
        }
    }
}

/// What a long poll waits on: the high watermark (consumers) or the log's progress (replicas,
/// which read up to the log end).
enum ReadableEnd {
    HighWatermark(watch::Receiver<i64>),
    LogEnd(watch::Receiver<Progress>),
}

impl ReadableEnd {
    async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        match self {
            ReadableEnd::HighWatermark(receiver) => receiver.changed().await,
            ReadableEnd::LogEnd(receiver) => receiver.changed().await,
        }
    }
}

/// A follower's fetch, as the leader's read needs it.
#[derive(Clone, Copy)]
struct ReplicaFetch {
    follower_id: i32,
    /// The epoch of the follower's last batch (-1: none, or a version before v12).
    last_fetched_epoch: i32,
}

/// KIP-320, the rule of `replication::truncation::diverging_epoch` on the engine's epoch lookup
/// (no copy of the epoch list per fetch): the follower's log diverges from the leader's when the
/// leader's copy of the follower's last fetched epoch is older (the leader never had that epoch)
/// or ends before the follower's fetch offset; `Ok(Some(answer))` tells it where to truncate.
/// An epoch the leader cannot place at all is OFFSET_OUT_OF_RANGE (`Err`), as in Kafka.
/// `end_offset_for_epoch` answers (the largest epoch <= asked, its end offset), (-1, -1) when
/// unknown.
fn diverging_epoch(
    last_fetched_epoch: i32,
    fetch_offset: i64,
    end_offset_for_epoch: impl FnOnce(i32) -> (i32, i64),
) -> Result<Option<(i32, i64)>, ResponseError> {
    if last_fetched_epoch < 0 {
        return Ok(None);
    }
    let (epoch, end_offset) = end_offset_for_epoch(last_fetched_epoch);
    if epoch < 0 || end_offset < 0 {
        return Err(ResponseError::OffsetOutOfRange);
    }
    Ok((epoch < last_fetched_epoch || end_offset < fetch_offset).then_some((epoch, end_offset)))
}

/// How the owner shard finds a partition's topic.
#[derive(Clone)]
enum TopicKey {
    Name(StrBytes),
    Id(uuid::Uuid),
}

/// One partition's read, as sent to its owner shard.
#[derive(Clone)]
struct ReadWork {
    /// The partition's position in the request (and the response).
    slot: usize,
    topic: TopicKey,
    index: i32,
    fetch_offset: i64,
    max_bytes: usize,
    current_leader_epoch: i32,
    /// `Some` for a follower's fetch.
    replica: Option<ReplicaFetch>,
}

/// A partition of the request, in request order.
struct WantedPartition {
    index: i32,
    partition_max_bytes: usize,
    /// Owner shard, or the error that answers the partition without reading.
    route: Result<usize, i16>,
    work: ReadWork,
}

struct WantedTopic {
    name: String,
    topic_id: uuid::Uuid,
    /// This shard's consumer-traffic counters of the topic (`None`: unknown topic).
    consumed: Option<crate::metrics::TopicConsumed>,
    partitions: Vec<WantedPartition>,
}

/// Reads a partition on its owner shard: whole batches from `work.fetch_offset`, about
/// `work.max_bytes` (at least one batch).
async fn read_partition(state: &ShardState, work: &ReadWork, subscribe: bool) -> PartitionRead {
    let partition = match &work.topic {
        TopicKey::Name(name) => state.partition(name.as_str(), work.index),
        TopicKey::Id(id) => state
            .metadata
            .topic_by_id(*id)
            .and_then(|topic| state.partition(&topic.name, work.index)),
    };
    let Some(partition) = partition else {
        return PartitionRead::error(code(ResponseError::UnknownTopicOrPartition));
    };
    if let Err(error) = partition.check_leader_epoch(work.current_leader_epoch) {
        return PartitionRead::error(code(error));
    }
    // The bound is read and the subscription taken in one step, so a move after this read
    // always wakes the long poll.
    let high_watermark = partition.high_watermark();
    let log_start_offset = partition.log.log_start_offset();
    let log_end_offset = partition.log.log_end_offset();
    let (read_up_to, changes) = match work.replica {
        None => (
            high_watermark,
            subscribe.then(|| ReadableEnd::HighWatermark(partition.log.subscribe_high_watermark())),
        ),
        Some(_) => (
            log_end_offset,
            subscribe.then(|| ReadableEnd::LogEnd(partition.log.subscribe())),
        ),
    };
    if let Some(replica) = work.replica {
        let diverging =
            match diverging_epoch(replica.last_fetched_epoch, work.fetch_offset, |epoch| {
                partition.log.end_offset_for_epoch(epoch)
            }) {
                Ok(diverging) => diverging,
                Err(error) => return PartitionRead::error(code(error)),
            };
        if diverging.is_some() {
            // The follower truncates first; its fetch offset is no log end of ours to count.
            return PartitionRead {
                error_code: NONE,
                high_watermark,
                log_start_offset,
                records: None,
                diverging_epoch: diverging,
                changes,
            };
        }
    }
    let (error_code, records) = match partition
        .log
        .read(work.fetch_offset, work.max_bytes, read_up_to)
        .await
    {
        Ok(records) => (NONE, records),
        Err(error) => (engine_error_code(&error), None),
    };
    if let (Some(replica), true) = (work.replica, error_code == NONE && subscribe) {
        // Once per fetch request (its first read), with the offset the follower has reached.
        partition.on_replica_fetch(
            replica.follower_id,
            work.fetch_offset,
            log_end_offset,
            super::now_ms(),
        );
    }
    // A replica's fetch may have just moved the high watermark: send the follower the moved one,
    // not the one read before (it would lag a whole fetch behind).
    let high_watermark = match work.replica {
        Some(_) => partition.high_watermark(),
        None => high_watermark,
    };
    PartitionRead {
        error_code,
        high_watermark,
        log_start_offset,
        records,
        diverging_epoch: None,
        changes,
    }
}

/// Reads every partition of `work` (all owned by `state`'s shard).
async fn read_on_owner(
    state: Rc<ShardState>,
    work: Vec<ReadWork>,
    subscribe: bool,
) -> Vec<(usize, PartitionRead)> {
    let reads: Vec<_> = work
        .iter()
        .map(|item| read_partition(&state, item, subscribe))
        .collect();
    let results = join_all(reads).await;
    work.iter().map(|item| item.slot).zip(results).collect()
}

/// Waits until any of `receivers` reports a change (what the fetch may read grew) or one closed.
async fn any_change(receivers: &mut [ReadableEnd]) {
    if receivers.is_empty() {
        return std::future::pending().await;
    }
    type ChangeWait<'a> = Pin<Box<dyn Future<Output = Result<(), watch::error::RecvError>> + 'a>>;
    let mut waits: Vec<ChangeWait<'_>> = receivers
        .iter_mut()
        .map(|receiver| Box::pin(receiver.changed()) as ChangeWait<'_>)
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

/// The follower broker a fetch comes from, if it is a replica fetch.
fn replica_id(request: &FetchRequest, version: i16) -> Option<i32> {
    let id = if version >= 15 {
        request.replica_state.replica_id.0
    } else {
        request.replica_id.0
    };
    (id >= 0).then_some(id)
}

/// Resolves the request's topics in this shard's metadata cache and routes each partition.
fn resolve_topics(ctx: &RequestContext, request: &FetchRequest) -> Vec<WantedTopic> {
    let version = ctx.version();
    let follower_id = replica_id(request, version);
    let shard_count = ctx.shard.broker.shard_count;
    let broker_id = ctx.shard.broker.config.broker_id;
    let unknown_topic = code(if version >= 13 {
        ResponseError::UnknownTopicId
    } else {
        ResponseError::UnknownTopicOrPartition
    });
    let mut slot = 0;
    request
        .topics
        .iter()
        .map(|topic| {
            let (cached, key) = if version >= 13 {
                (
                    ctx.shard.metadata.topic_by_id(topic.topic_id),
                    TopicKey::Id(topic.topic_id),
                )
            } else {
                (
                    ctx.shard.metadata.topic(topic.topic.as_str()),
                    TopicKey::Name(topic.topic.0.clone()),
                )
            };
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let route = match &cached {
                        None => Err(unknown_topic),
                        Some(cached) if !cached.has_partition(partition.partition) => {
                            Err(code(ResponseError::UnknownTopicOrPartition))
                        }
                        Some(cached) => {
                            match leadership_error(cached.leader_of(partition.partition), broker_id)
                            {
                                Some(error) => Err(error),
                                None => Ok(cached.owner_of(partition.partition, shard_count)),
                            }
                        }
                    };
                    let partition_max_bytes =
                        usize::try_from(partition.partition_max_bytes).unwrap_or(0);
                    let wanted = WantedPartition {
                        index: partition.partition,
                        partition_max_bytes,
                        route,
                        work: ReadWork {
                            slot,
                            topic: key.clone(),
                            index: partition.partition,
                            fetch_offset: partition.fetch_offset,
                            max_bytes: partition_max_bytes,
                            current_leader_epoch: partition.current_leader_epoch,
                            replica: follower_id.map(|follower_id| ReplicaFetch {
                                follower_id,
                                last_fetched_epoch: partition.last_fetched_epoch,
                            }),
                        },
                    };
                    slot += 1;
                    wanted
                })
                .collect();
            WantedTopic {
                name: match &cached {
                    Some(cached) => cached.name.to_string(),
                    None => topic.topic.to_string(),
                },
                topic_id: topic.topic_id,
                consumed: cached.as_ref().map(|cached| cached.consumed.clone()),
                partitions,
            }
        })
        .collect()
}

/// Keeps the response within `response_max_bytes`, partitions in request order: each keeps its
/// records while they fit; the first one that does not is read again with what is left (at least
/// one batch, as Kafka returns, KIP-74); those after a full response keep only their watermarks.
async fn fit_response(
    shard: &Rc<ShardState>,
    wanted: &[WantedTopic],
    reads: &mut [Option<PartitionRead>],
    response_max_bytes: usize,
) -> usize {
    let mut total_bytes = 0usize;
    let partitions = wanted.iter().flat_map(|topic| topic.partitions.iter());
    for (partition, read) in partitions.zip(reads.iter_mut()) {
        let Some(read) = read else { continue };
        let Some(len_bytes) = read.records.as_ref().map(|range| range.len_bytes) else {
            continue;
        };
        let remaining = response_max_bytes.saturating_sub(total_bytes);
        if total_bytes == 0 || len_bytes <= remaining {
            total_bytes += len_bytes;
            continue;
        }
        read.records = None;
        if remaining == 0 {
            continue;
        }
        let Ok(owner) = partition.route else { continue };
        let mut work = partition.work.clone();
        work.max_bytes = partition.partition_max_bytes.min(remaining);
        let reread = shard
            .run_on(owner, move |state| async move {
                read_partition(&state, &work, false).await
            })
            .await;
        if let Ok(reread) = reread {
            if reread.error_code == NONE {
                total_bytes += reread.records.as_ref().map_or(0, |range| range.len_bytes);
                read.records = reread.records;
                read.high_watermark = reread.high_watermark;
                read.log_start_offset = reread.log_start_offset;
            }
        }
    }
    total_bytes
}

/// Counts what one partition of a fetch response carries: records to a consumer or a follower,
/// or an error.
fn count_read(
    shard: &ShardState,
    topic: &WantedTopic,
    index: i32,
    read: &PartitionRead,
    from_replica: bool,
) {
    shard.metrics.on_error(
        kafka_protocol::messages::ApiKey::Fetch as i16,
        read.error_code,
    );
    let Some(range) = &read.records else { return };
    if from_replica {
        shard.metrics.on_replicated(range.len_bytes);
        return;
    }
    let counter = topic
        .consumed
        .as_ref()
        .and_then(|consumed| consumed.get(usize::try_from(index).ok()?));
    if let Some(counter) = counter {
        // Whole batches are sent: the records in them, from the first batch's base offset.
        let records = u64::try_from(range.next_offset - range.first_offset).unwrap_or(0);
        counter.add(range.len_bytes, records);
    }
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
    let from_replica = replica_id(&request, version).is_some();
    let max_wait = Duration::from_millis(
        u64::try_from(request.max_wait_ms.clamp(0, MAX_WAIT_MS_LIMIT)).unwrap_or(0),
    );
    let deadline = Instant::now() + max_wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let response_max_bytes = usize::try_from(request.max_bytes)
        .ok()
        .filter(|&bytes| bytes > 0)
        .unwrap_or(usize::MAX);

    let mut work_by_owner: Vec<Vec<ReadWork>> = (0..ctx.shard.broker.shard_count)
        .map(|_| Vec::new())
        .collect();
    for partition in wanted.iter().flat_map(|topic| topic.partitions.iter()) {
        if let Ok(owner) = partition.route {
            let mut work = partition.work.clone();
            work.max_bytes = partition.partition_max_bytes.min(response_max_bytes);
            work_by_owner[owner].push(work);
        }
    }
    let mut readable_end_changes: Vec<ReadableEnd> = Vec::new();
    let mut first_round = true;
    loop {
        let mut reads: Vec<Option<PartitionRead>> = (0..partition_count).map(|_| None).collect();
        let subscribe = first_round;
        let reads_by_slot = ctx
            .shard
            .run_on_owners(
                work_by_owner.clone(),
                |item| item.slot,
                move |state, work| read_on_owner(state, work, subscribe),
                || PartitionRead::error(code(ResponseError::NotLeaderOrFollower)),
            )
            .await;
        for (slot, mut read) in reads_by_slot {
            readable_end_changes.extend(read.changes.take());
            reads[slot] = Some(read);
        }
        first_round = false;
        let total_bytes = fit_response(&ctx.shard, &wanted, &mut reads, response_max_bytes).await;
        let any_error = wanted
            .iter()
            .flat_map(|topic| topic.partitions.iter())
            .zip(&reads)
            .any(|(partition, read)| {
                partition.route.is_err()
                    || read.as_ref().is_some_and(|read| read.error_code != NONE)
            });
        // A follower told to truncate must hear it now, not after the long poll.
        let any_diverging = reads
            .iter()
            .flatten()
            .any(|read| read.diverging_epoch.is_some());
        let now = Instant::now();
        let enough = min_bytes == 0 || total_bytes >= min_bytes;
        if enough || any_error || any_diverging || now >= deadline || ctx.shard.stopping.get() {
            let mut reads = reads.into_iter();
            let topics_out = wanted
                .iter()
                .map(|topic| TopicOut {
                    name: topic.name.clone(),
                    topic_id: topic.topic_id,
                    partitions: topic
                        .partitions
                        .iter()
                        .map(|partition| {
                            let read = match (reads.next().flatten(), partition.route) {
                                (Some(read), _) => read,
                                (None, Err(error_code)) => PartitionRead::error(error_code),
                                (None, Ok(_)) => {
                                    PartitionRead::error(code(ResponseError::UnknownServerError))
                                }
                            };
                            count_read(&ctx.shard, topic, partition.index, &read, from_replica);
                            PartitionOut {
                                partition_index: partition.index,
                                error_code: read.error_code,
                                high_watermark: read.high_watermark,
                                last_stable_offset: read.high_watermark,
                                log_start_offset: read.log_start_offset,
                                records: read.records,
                                diverging_epoch: read.diverging_epoch,
                            }
                        })
                        .collect(),
                })
                .collect();
            return Response::Frame(encode_fetch_response(
                ctx.header.correlation_id,
                version,
                NONE,
                topics_out,
            ));
        }
        // Long poll: wait until a high watermark (a replica's: a log end) moves, or the deadline.
        drop(reads);
        tokio::select! {
            () = any_change(&mut readable_end_changes) => {}
            () = tokio::time::sleep(deadline - now) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::truncation;

    /// The handler's check on the engine's lookup agrees with the replication logic's rule on
    /// the epoch list, for every last fetched epoch and fetch offset around a leader's history.
    #[test]
    fn the_diverging_epoch_follows_the_replication_rule() {
        let leader_epochs = [(1, 0), (3, 10), (4, 25)];
        let leader_leo = 40;
        for last_fetched_epoch in -1..=6 {
            for fetch_offset in [0, 5, 10, 11, 25, 30, 40] {
                let ours = diverging_epoch(last_fetched_epoch, fetch_offset, |epoch| {
                    let answer =
                        truncation::end_offset_for_epoch(&leader_epochs, leader_leo, epoch);
                    (answer.epoch, answer.end_offset)
                });
                let rule = truncation::diverging_epoch(
                    &leader_epochs,
                    leader_leo,
                    fetch_offset,
                    last_fetched_epoch,
                );
                let rule = rule
                    .map(|answer| answer.map(|answer| (answer.epoch, answer.end_offset)))
                    .map_err(|_| ResponseError::OffsetOutOfRange);
                assert_eq!(
                    ours, rule,
                    "last fetched epoch {last_fetched_epoch}, fetch offset {fetch_offset}"
                );
            }
        }
        // A follower that wrote past the end of epoch 3 as the leader kept it truncates.
        assert_eq!(
            diverging_epoch(3, 30, |_| (3, 25)),
            Ok(Some((3, 25))),
            "the leader's epoch 3 ends before the follower's fetch offset"
        );
        assert_eq!(diverging_epoch(-1, 30, |_| unreachable!()), Ok(None));
    }
}
