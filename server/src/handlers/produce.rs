//! Produce (key 0, v3–v11; v0–v2 are advertised for old librdkafka's feature detection and
//! answered with UNSUPPORTED_VERSION, as Kafka 4 does).
//!
//! Ordering: every partition's append is queued on its owner shard before `handle` returns,
//! so a connection's produce requests reach each partition in request order (idempotent
//! producers pipeline up to 5). Waiting for acks happens in the returned future.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use strom_engine::log::WaitOffset;

use super::error_codes::{append_error_code, code, ErrorCode, NONE};
use super::{RequestContext, ResponseFuture};
use crate::broker::group_placement::OFFSETS_TOPIC;
use crate::broker::partition::AckLevel;
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
        wait: Option<WaitOffset>,
    },
}

struct PartitionResult {
    index: i32,
    queued: Queued,
}

async fn queue_append(
    shard: &Rc<ShardState>,
    topic: &str,
    index: i32,
    records: Bytes,
    acks: AckLevel,
) -> Queued {
    let owner = shard.owner_of(topic, index);
    let topic = topic.to_string();
    let outcome = shard
        .router
        .submit_to(owner, move |state: Rc<ShardState>| async move {
            let Some(partition) = state.partition(&topic, index) else {
                return Queued::Failed(code(ResponseError::UnknownTopicOrPartition));
            };
            match partition.append(records, acks).await {
                Ok(outcome) => Queued::Accepted {
                    base_offset: outcome.base_offset,
                    log_start_offset: outcome.log_start_offset,
                    wait: outcome.wait,
                },
                Err(error) => {
                    tracing::info!(topic = %partition.topic, index, %error, "append refused");
                    Queued::Failed(append_error_code(&error))
                }
            }
        })
        .await;
    outcome.unwrap_or(Queued::Failed(code(ResponseError::NotLeaderOrFollower)))
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
    let mut results: Vec<(String, Vec<PartitionResult>)> =
        Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let name = topic.name.to_string();
        let known = ctx.shard.broker.topics.get(&name);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for partition in topic.partition_data {
            let queued = match (&refuse_all, &known, partition.records) {
                (Some(error), _, _) => Queued::Failed(*error),
                (None, None, _) => Queued::Failed(code(ResponseError::UnknownTopicOrPartition)),
                // Only the group coordinator writes the internal topic, as in Kafka.
                (None, Some(_), _) if name == OFFSETS_TOPIC => {
                    Queued::Failed(code(ResponseError::InvalidTopicException))
                }
                (None, Some(metadata), _)
                    if partition.index < 0 || partition.index >= metadata.partitions =>
                {
                    Queued::Failed(code(ResponseError::UnknownTopicOrPartition))
                }
                (None, Some(_), None) => Queued::Failed(code(ResponseError::CorruptMessage)),
                (None, Some(_), Some(records)) => {
                    queue_append(&ctx.shard, &name, partition.index, records, acks).await
                }
            };
            if let Queued::Failed(error_code) = &queued {
                tracing::warn!(peer = %ctx.peer, topic = %name, partition = partition.index, error_code, "produce refused");
            }
            partitions.push(PartitionResult {
                index: partition.index,
                queued,
            });
        }
        results.push((name, partitions));
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
    results: Vec<(String, Vec<PartitionResult>)>,
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
                        Some(wait) => match tokio::time::timeout_at(deadline, wait.wait()).await {
                            Ok(Ok(())) => NONE,
                            Ok(Err(_)) => code(ResponseError::KafkaStorageError),
                            Err(_) => code(ResponseError::RequestTimedOut),
                        },
                    };
                    (
                        error,
                        if error == NONE { base_offset } else { -1 },
                        log_start_offset,
                    )
                }
            };
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
                .with_name(TopicName(name.into()))
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
