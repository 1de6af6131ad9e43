//! Produce (key 0, v3–v11; v0–v2 are advertised for old librdkafka's feature detection and
//! answered with UNSUPPORTED_VERSION, as Kafka 4 does).
//!
//! Ordering: every partition's append is queued on its owner shard before `handle` returns,
//! so a connection's produce requests reach each partition in request order (idempotent
//! producers pipeline up to 5). Waiting for acks happens in the returned future.
//!
//! Routing: the topics are looked up in this shard's metadata cache (no lock), the partitions
//! grouped by owner shard, and each owner gets one message carrying all of its partitions; the
//! owners work concurrently, and the partitions this shard owns are appended by a direct call.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};

use super::error_codes::{append_error_code, code, leadership_error, ErrorCode, NONE};
use super::{refusal_log, RequestContext, ResponseFuture};
use crate::broker::partition::{AckLevel, AckWait};
use crate::broker::shard::ShardState;
use crate::network::Response;
use crate::protocol::frame::encode_raw_response_frame;

/// Longest a producer may ask the broker to wait for acks.
const PRODUCE_TIMEOUT_MS_LIMIT: i32 = 300_000;

enum Queued {
    Failed(ErrorCode),
    /// Appended (or a duplicate): base offset, log start, and what to wait for.
    Accepted {
        base_offset: i64,
        log_start_offset: i64,
        wait: Option<AckWait>,
    },
}

struct PartitionResult {
    index: i32,
    queued: Queued,
}

/// One partition's record set on its way to the owner shard.
struct AppendWork {
    /// Where the partition's result goes in the response (its position in the request).
    slot: usize,
    topic: TopicName,
    index: i32,
    records: Bytes,
}

/// Appends every partition of `work` (all owned by `state`'s shard) in request order. Each
/// append is queued before the next starts, so this shard sees a connection's produces in order.
async fn append_on_owner(
    state: Rc<ShardState>,
    work: Vec<AppendWork>,
    acks: AckLevel,
) -> Vec<(usize, Queued)> {
    let mut results = Vec::with_capacity(work.len());
    for item in work {
        let bytes = item.records.len();
        let queued = match state.partition(item.topic.as_str(), item.index) {
            None => Queued::Failed(code(ResponseError::UnknownTopicOrPartition)),
            Some(partition) => match partition.append(item.records, acks).await {
                Ok(outcome) => {
                    if outcome.records_appended > 0 {
                        partition.produced.add(bytes, outcome.records_appended);
                    }
                    Queued::Accepted {
                        base_offset: outcome.base_offset,
                        log_start_offset: outcome.log_start_offset,
                        wait: outcome.wait,
                    }
                }
                Err(error) => {
                    let error_code = append_error_code(&error);
                    if let Some(suppressed) = refusal_log::admit(("append refused", error_code)) {
                        tracing::info!(topic = %partition.topic, index = item.index, %error, suppressed, "append refused");
                    }
                    Queued::Failed(error_code)
                }
            },
        };
        results.push((item.slot, queued));
    }
    results
}

pub async fn handle(ctx: RequestContext, request: ProduceRequest) -> ResponseFuture {
    let acks = match request.acks {
        0 => Some(AckLevel::None),
        1 => Some(AckLevel::Leader),
        -1 => Some(AckLevel::All),
        _ => None,
    };
    let refuse_all = if acks.is_none() {
        Some(code(ResponseError::InvalidRequiredAcks))
    } else if request.transactional_id.is_some() {
        Some(code(ResponseError::TransactionalIdAuthorizationFailed))
    } else {
        None
    };
    let acks = acks.unwrap_or(AckLevel::Leader);
    let shard_count = ctx.shard.broker.shard_count;
    let broker_id = ctx.shard.broker.config.broker_id;
    let mut work_by_owner: Vec<Vec<AppendWork>> = (0..shard_count).map(|_| Vec::new()).collect();
    let mut results: Vec<(TopicName, Vec<PartitionResult>)> =
        Vec::with_capacity(request.topic_data.len());
    // Slot → (topic position, partition position) in `results`.
    let mut slots: Vec<(usize, usize)> = Vec::new();
    for topic in request.topic_data {
        let known = ctx.shard.metadata.topic(topic.name.as_str());
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for partition in topic.partition_data {
            // Where the records go (owner shard), or the error that answers the partition.
            let route = match (refuse_all, &known, partition.records) {
                (Some(error), _, _) => Err(error),
                (None, None, _) => Err(code(ResponseError::UnknownTopicOrPartition)),
                // Only the group coordinator writes the internal topic, as in Kafka.
                (None, Some(cached), _) if cached.is_internal => {
                    Err(code(ResponseError::InvalidTopicException))
                }
                (None, Some(cached), _) if !cached.has_partition(partition.index) => {
                    Err(code(ResponseError::UnknownTopicOrPartition))
                }
                (None, Some(cached), records) => {
                    match (
                        leadership_error(cached.leader_of(partition.index), broker_id),
                        records,
                    ) {
                        (Some(error), _) => Err(error),
                        (None, None) => Err(code(ResponseError::CorruptMessage)),
                        (None, Some(records)) => {
                            Ok((cached.owner_of(partition.index, shard_count), records))
                        }
                    }
                }
            };
            let queued = match route {
                Err(error_code) => {
                    if let Some(suppressed) = refusal_log::admit(("produce refused", error_code)) {
                        tracing::warn!(peer = %ctx.peer, topic = %topic.name.as_str(), partition = partition.index, error_code, suppressed, "produce refused");
                    }
                    Queued::Failed(error_code)
                }
                Ok((owner, records)) => {
                    work_by_owner[owner].push(AppendWork {
                        slot: slots.len(),
                        topic: topic.name.clone(),
                        index: partition.index,
                        records,
                    });
                    slots.push((results.len(), partitions.len()));
                    // Replaced by the owner's answer below.
                    Queued::Failed(code(ResponseError::UnknownServerError))
                }
            };
            partitions.push(PartitionResult {
                index: partition.index,
                queued,
            });
        }
        results.push((topic.name, partitions));
    }
    if !slots.is_empty() {
        let queued_by_slot = ctx
            .shard
            .run_on_owners(
                work_by_owner,
                |item| item.slot,
                move |state, work| append_on_owner(state, work, acks),
                || Queued::Failed(code(ResponseError::NotLeaderOrFollower)),
            )
            .await;
        for (slot, queued) in queued_by_slot {
            let (topic_position, partition_position) = slots[slot];
            let (topic, partitions) = &mut results[topic_position];
            let result = &mut partitions[partition_position];
            if let Queued::Failed(error_code) = &queued {
                if let Some(suppressed) = refusal_log::admit(("produce refused", *error_code)) {
                    tracing::warn!(peer = %ctx.peer, topic = %topic.as_str(), partition = result.index, error_code, suppressed, "produce refused");
                }
            }
            result.queued = queued;
        }
    }
    let timeout = Duration::from_millis(
        u64::try_from(request.timeout_ms.clamp(0, PRODUCE_TIMEOUT_MS_LIMIT)).unwrap_or(0),
    );
    Box::pin(complete(ctx, acks, timeout, results))
}

async fn complete(
    ctx: RequestContext,
    acks: AckLevel,
    timeout: Duration,
    results: Vec<(TopicName, Vec<PartitionResult>)>,
) -> Response {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut responses = Vec::with_capacity(results.len());
    for (name, partitions) in results {
        let mut partition_responses = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let (error_code, base_offset, log_start_offset) = match partition.queued {
                Queued::Failed(error) => (error, -1, -1),
                Queued::Accepted {
                    base_offset,
                    log_start_offset,
                    wait,
                } => {
                    let error = match wait {
                        None => NONE,
                        Some(_) if acks == AckLevel::None => NONE,
                        Some(AckWait::Local(wait)) => {
                            match tokio::time::timeout_at(deadline, wait.wait()).await {
                                Ok(Ok(())) => NONE,
                                Ok(Err(_)) => code(ResponseError::KafkaStorageError),
                                Err(_) => code(ResponseError::RequestTimedOut),
                            }
                        }
                        Some(AckWait::Replicated(replicated)) => {
                            match tokio::time::timeout_at(deadline, replicated).await {
                                Ok(Ok(error_code)) => error_code,
                                // The leader's waiter ended without an answer: it stopped leading.
                                Ok(Err(_)) => code(ResponseError::NotLeaderOrFollower),
                                Err(_) => code(ResponseError::RequestTimedOut),
                            }
                        }
                    };
                    (
                        error,
                        if error == NONE { base_offset } else { -1 },
                        log_start_offset,
                    )
                }
            };
            ctx.shard
                .metrics
                .on_error(ApiKey::Produce as i16, error_code);
            partition_responses.push(
                PartitionProduceResponse::default()
                    .with_index(partition.index)
                    .with_error_code(error_code)
                    .with_base_offset(base_offset)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(if ctx.version() >= 5 {
                        log_start_offset
                    } else {
                        -1
                    }),
            );
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partition_responses),
        );
    }
    if acks == AckLevel::None {
        // acks=0: the producer reads no response.
        return Response::NoResponse;
    }
    ctx.respond(&ProduceResponse::default().with_responses(responses))
}

fn read_string(body: &mut Bytes) -> Option<Bytes> {
    if body.remaining() < 2 {
        return None;
    }
    let len = usize::try_from(body.get_i16()).ok()?;
    (body.remaining() >= len).then(|| body.split_to(len))
}

/// Answers Produce v0–v2 (which `kafka-protocol` cannot decode) with UNSUPPORTED_VERSION for every
/// partition, in the old response layout. acks=0 gets no response, as for any produce.
pub fn unsupported_old_version(ctx: &RequestContext, frame: &Bytes, api: ApiKey) -> Response {
    if api != ApiKey::Produce {
        return Response::Close(format!("{api:?} v{} is not served", ctx.version()));
    }
    let version = ctx.version();
    let mut body = frame.slice(ctx.header.body_offset.min(frame.len())..);
    type OldProduce = (i16, Vec<(Bytes, Vec<i32>)>);
    let parsed = (|| -> Option<OldProduce> {
        if body.remaining() < 10 {
            return None;
        }
        let acks = body.get_i16();
        let _timeout_ms = body.get_i32();
        let topic_count = usize::try_from(body.get_i32()).ok()?;
        let mut topics = Vec::new();
        for _ in 0..topic_count {
            let name = read_string(&mut body)?;
            if body.remaining() < 4 {
                return None;
            }
            let partition_count = usize::try_from(body.get_i32()).ok()?;
            let mut partitions = Vec::new();
            for _ in 0..partition_count {
                if body.remaining() < 8 {
                    return None;
                }
                partitions.push(body.get_i32());
                let records_len = body.get_i32();
                let skip = usize::try_from(records_len).unwrap_or(0);
                if body.remaining() < skip {
                    return None;
                }
                body.advance(skip);
            }
            topics.push((name, partitions));
        }
        Some((acks, topics))
    })();
    let Some((acks, topics)) = parsed else {
        return Response::Close(format!("malformed Produce v{version} request"));
    };
    tracing::warn!(peer = %ctx.peer, version, "Produce v0-v2 is not supported; the client must use v3+ (RecordBatch v2)");
    if acks == 0 {
        return Response::NoResponse;
    }
    let unsupported = code(ResponseError::UnsupportedVersion);
    let mut out = BytesMut::new();
    out.put_i32(i32::try_from(topics.len()).unwrap_or(0));
    for (name, partitions) in topics {
        out.put_i16(i16::try_from(name.len()).unwrap_or(0));
        out.put_slice(&name);
        out.put_i32(i32::try_from(partitions.len()).unwrap_or(0));
        for index in partitions {
            out.put_i32(index);
            out.put_i16(unsupported);
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1); // log_append_time
            }
        }
    }
    if version >= 1 {
        out.put_i32(0); // throttle_time_ms
    }
    let mut frame_out = BytesMut::new();
    match encode_raw_response_frame(&mut frame_out, ctx.header.correlation_id, 0, &out) {
        Ok(()) => Response::bytes(frame_out.freeze()),
        Err(error) => Response::Close(error.to_string()),
    }
}
