//! The one place where typed errors become Kafka error codes. Every `match` is exhaustive with
//! no catch-all arm, so a new error variant forces a decision here.

use kafka_protocol::error::ResponseError;
use strom_engine::Error as EngineError;

use crate::broker::partition::AppendError;
use crate::broker::producer_state::SequenceError;
use crate::broker::recompress::RecompressError;
use crate::broker::topics::TopicError;

/// A Kafka error code (0 = none).
pub type ErrorCode = i16;

pub const NONE: ErrorCode = 0;

pub fn code(error: ResponseError) -> ErrorCode {
    error.code()
}

pub fn engine_error_code(error: &EngineError) -> ErrorCode {
    match error {
        EngineError::InvalidBatch(batch) if batch.is_corrupt() => {
            code(ResponseError::CorruptMessage)
        }
        EngineError::InvalidBatch(_) => code(ResponseError::InvalidRecord),
        EngineError::MessageTooLarge { .. } => code(ResponseError::MessageTooLarge),
        EngineError::OffsetOutOfRange { .. } => code(ResponseError::OffsetOutOfRange),
        EngineError::Closed
        | EngineError::NoSpace { .. }
        | EngineError::Io { .. }
        | EngineError::Corrupt { .. } => code(ResponseError::KafkaStorageError),
        EngineError::ShardStopped(_) => code(ResponseError::NotLeaderOrFollower),
        EngineError::ReplicaOffsetMismatch { .. } => code(ResponseError::UnknownServerError),
    }
}

/// The error for a request about a partition whose leader is `leader`, sent to `this_broker`
/// (`None`: this broker leads it). Clients refresh metadata and retry on both.
pub fn leadership_error(leader: i32, this_broker: i32) -> Option<ErrorCode> {
    if leader == this_broker {
        None
    } else if leader == crate::broker::topics::NO_LEADER {
        Some(code(ResponseError::LeaderNotAvailable))
    } else {
        Some(code(ResponseError::NotLeaderOrFollower))
    }
}

pub fn append_error_code(error: &AppendError) -> ErrorCode {
    match error {
        AppendError::Engine(engine) => engine_error_code(engine),
        AppendError::Sequence(SequenceError::InvalidProducerEpoch { .. }) => {
            code(ResponseError::InvalidProducerEpoch)
        }
        AppendError::Sequence(SequenceError::OutOfOrderSequence { .. }) => {
            code(ResponseError::OutOfOrderSequenceNumber)
        }
        AppendError::BatchCount(_) => code(ResponseError::InvalidRecord),
        AppendError::Recompress(error) => recompress_error_code(error),
        AppendError::Transactional => code(ResponseError::TransactionalIdAuthorizationFailed),
        AppendError::NotLeader => code(ResponseError::NotLeaderOrFollower),
        AppendError::NotEnoughReplicas(_) => code(ResponseError::NotEnoughReplicas),
    }
}

fn recompress_error_code(error: &RecompressError) -> ErrorCode {
    match error {
        RecompressError::PlainTooLarge(_) | RecompressError::TooLarge(_) => {
            code(ResponseError::MessageTooLarge)
        }
        RecompressError::Truncated
        | RecompressError::Magic(_)
        | RecompressError::UnknownCodec(_)
        | RecompressError::Decompress(_)
        | RecompressError::Compress(_) => code(ResponseError::CorruptMessage),
    }
}

pub fn topic_error_code(error: &TopicError) -> ErrorCode {
    match error {
        TopicError::AlreadyExists(_) => code(ResponseError::TopicAlreadyExists),
        TopicError::Unknown(_) => code(ResponseError::UnknownTopicOrPartition),
        TopicError::InvalidName { .. } => code(ResponseError::InvalidTopicException),
        TopicError::InvalidPartitions(_) => code(ResponseError::InvalidPartitions),
        TopicError::InvalidReplicationFactor { .. } => {
            code(ResponseError::InvalidReplicationFactor)
        }
        TopicError::InvalidConfig { .. } => code(ResponseError::InvalidConfig),
        TopicError::InvalidRequest(_) => code(ResponseError::InvalidRequest),
        TopicError::InvalidReplicaAssignment(_) => code(ResponseError::InvalidReplicaAssignment),
        // Kafka answers a create of a topic marked for deletion this way too.
        TopicError::BeingDeleted(_) => code(ResponseError::TopicAlreadyExists),
        TopicError::NotController => code(ResponseError::NotController),
        TopicError::TimedOut(_) => code(ResponseError::RequestTimedOut),
        TopicError::Store(_) => code(ResponseError::KafkaStorageError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_engine::batch::BatchError;

    /// Pins the mapping to the numbers clients see.
    #[test]
    fn codes_match_kafka() {
        let cases: Vec<(ErrorCode, i16)> = vec![
            (
                engine_error_code(&EngineError::InvalidBatch(BatchError::CrcMismatch {
                    expected: 1,
                    actual: 2,
                })),
                2,
            ),
            (
                engine_error_code(&EngineError::InvalidBatch(BatchError::UnsupportedMagic(1))),
                87,
            ),
            (
                engine_error_code(&EngineError::MessageTooLarge {
                    size_bytes: 2,
                    max_bytes: 1,
                }),
                10,
            ),
            (
                engine_error_code(&EngineError::OffsetOutOfRange {
                    offset: 0,
                    log_start_offset: 0,
                    log_end_offset: 0,
                }),
                1,
            ),
            (engine_error_code(&EngineError::Closed), 56),
            (
                engine_error_code(&EngineError::NoSpace {
                    dir: String::from("d"),
                }),
                56,
            ),
            (
                append_error_code(&AppendError::Sequence(SequenceError::OutOfOrderSequence {
                    expected: 0,
                    got: 1,
                })),
                45,
            ),
            (
                append_error_code(&AppendError::Sequence(
                    SequenceError::InvalidProducerEpoch { current: 1, got: 0 },
                )),
                47,
            ),
            (append_error_code(&AppendError::BatchCount(2)), 87),
            (topic_error_code(&TopicError::AlreadyExists("t".into())), 36),
            (topic_error_code(&TopicError::Unknown("t".into())), 3),
            (
                topic_error_code(&TopicError::InvalidName {
                    name: "a b".into(),
                    reason: "",
                }),
                17,
            ),
            (topic_error_code(&TopicError::InvalidPartitions(0)), 37),
            (
                topic_error_code(&TopicError::InvalidReplicationFactor {
                    requested: 3,
                    brokers: 1,
                }),
                38,
            ),
            (
                topic_error_code(&TopicError::InvalidConfig {
                    key: String::new(),
                    value: String::new(),
                    reason: String::new(),
                }),
                40,
            ),
        ];
        for (index, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, want, "case {index}");
        }
    }
}
