use kafka_protocol::messages::fetch_response::EpochEndOffset;

use super::*;

fn target(topic: &str, index: i32, fetch_offset: i64) -> FetchTarget {
    FetchTarget {
        topic: Rc::from(topic),
        index,
        fetch_offset,
        log_start_offset: 0,
        current_leader_epoch: 7,
        last_fetched_epoch: 6,
    }
}

#[test]
fn a_replica_fetch_names_the_follower_and_carries_its_positions_and_epochs() {
    let config = FetcherConfig::new(2);
    let request = build_fetch_request(
        &config,
        &[target("a", 0, 10), target("a", 3, 20), target("b", 1, 5)],
    );
    assert_eq!(request.replica_id, BrokerId(2));
    assert_eq!(request.max_wait_ms, REPLICA_FETCH_WAIT_MAX_MS);
    assert_eq!(request.min_bytes, REPLICA_FETCH_MIN_BYTES);
    assert_eq!(request.max_bytes, REPLICA_FETCH_RESPONSE_MAX_BYTES);
    assert_eq!(request.isolation_level, 0);
    let names: Vec<&str> = request.topics.iter().map(|t| t.topic.as_str()).collect();
    assert_eq!(names, ["a", "b"], "one entry per topic");
    let second = &request.topics[0].partitions[1];
    assert_eq!(
        (
            second.partition,
            second.fetch_offset,
            second.current_leader_epoch,
            second.last_fetched_epoch
        ),
        (3, 20, 7, 6)
    );
    assert_eq!(second.partition_max_bytes, REPLICA_FETCH_MAX_BYTES);
}

#[test]
fn an_epoch_request_asks_per_partition_for_the_given_epoch() {
    let request = build_epoch_request(
        2,
        [("a", 0, 7, 5), ("a", 1, 7, 6), ("b", 0, 3, 3)].into_iter(),
    );
    assert_eq!(request.replica_id, BrokerId(2));
    assert_eq!(request.topics.len(), 2);
    let asked = &request.topics[0].partitions[1];
    assert_eq!(
        (
            asked.partition,
            asked.current_leader_epoch,
            asked.leader_epoch
        ),
        (1, 7, 6)
    );
}

fn batch(base_offset: i64, records: i32) -> Vec<u8> {
    strom_engine::batch::build::build_batch(base_offset, records, 8, 1_000, -1, -1, -1)
}

#[test]
fn a_trailing_partial_batch_is_cut_off() {
    let mut records = batch(0, 2);
    let first_len = records.len();
    records.extend_from_slice(&batch(2, 1));
    let whole_len = records.len();
    records.extend_from_slice(&batch(3, 1)[..20]);
    let records = Bytes::from(records);
    assert_eq!(whole_batches(records.clone()).len(), whole_len);
    assert_eq!(
        whole_batches(records.slice(..first_len + 5)).len(),
        first_len
    );
    assert!(whole_batches(records.slice(..7)).is_empty());
}

fn data(error: Option<ResponseError>) -> PartitionData {
    PartitionData::default()
        .with_error_code(error.map_or(0, |error| error.code()))
        .with_high_watermark(12)
        .with_records(Some(Bytes::from(batch(10, 2))))
}

#[test]
fn partition_errors_pause_retry_or_recheck() {
    for error in [
        ResponseError::NotLeaderOrFollower,
        ResponseError::FencedLeaderEpoch,
    ] {
        assert_eq!(
            classify_partition(&data(Some(error))),
            PartitionOutcome::Pause {
                error_code: error.code()
            },
            "{error:?} waits for new metadata"
        );
    }
    for error in [
        ResponseError::UnknownLeaderEpoch,
        ResponseError::UnknownTopicOrPartition,
        ResponseError::KafkaStorageError,
    ] {
        assert_eq!(
            classify_partition(&data(Some(error))),
            PartitionOutcome::Retry {
                error_code: error.code()
            },
            "{error:?} is retried after the backoff"
        );
    }
    assert_eq!(
        classify_partition(&data(Some(ResponseError::OffsetOutOfRange))),
        PartitionOutcome::OutOfRange
    );
}

#[test]
fn records_and_the_high_watermark_or_a_diverging_epoch_are_read() {
    assert_eq!(
        classify_partition(&data(None)),
        PartitionOutcome::Data {
            records: Bytes::from(batch(10, 2)),
            high_watermark: 12
        }
    );
    let diverging =
        data(None).with_diverging_epoch(EpochEndOffset::default().with_epoch(4).with_end_offset(9));
    assert_eq!(
        classify_partition(&diverging),
        PartitionOutcome::Diverging {
            epoch: 4,
            end_offset: 9,
            high_watermark: 12
        },
        "a diverging epoch wins over records"
    );
    let empty = data(None).with_records(None);
    assert_eq!(
        classify_partition(&empty),
        PartitionOutcome::Data {
            records: Bytes::new(),
            high_watermark: 12
        }
    );
}

/// Drives the follower's loop (ask about its latest epoch, truncate and ask again as the decision
/// says) against a model leader answering as the engine's epoch cache does, until it decides
/// where to truncate; returns that offset and how many questions it took.
fn drive(
    local: &[(i32, i64)],
    local_leo: i64,
    local_hw: i64,
    leader: &[(i32, i64)],
    leader_leo: i64,
) -> (i64, usize) {
    let mut local = local.to_vec();
    let mut local_leo = local_leo;
    let mut ask = next_epoch_to_ask(Phase::Truncating { ask_epoch: None }, &local).expect("epochs");
    for questions in 1..=10 {
        let answer = crate::replication::end_offset_for_epoch(leader, leader_leo, ask);
        match truncation_point(&local, local_leo, local_hw, answer) {
            TruncationDecision::TruncateTo(offset) => return (offset, questions),
            TruncationDecision::AskAgain { truncate_to, epoch } => {
                assert!(epoch < ask, "each question is about an older epoch");
                local_leo = local_leo.min(truncate_to);
                local.retain(|&(_, start)| start < local_leo);
                assert_eq!(
                    next_epoch_to_ask(
                        Phase::Truncating {
                            ask_epoch: Some(epoch)
                        },
                        &local
                    ),
                    Some(epoch)
                );
                ask = epoch;
            }
        }
    }
    panic!("the truncation loop did not end");
}

#[test]
fn the_truncation_loop_finds_where_the_logs_diverge() {
    // Same history, follower behind: nothing to cut.
    assert_eq!(
        drive(&[(0, 0), (2, 10)], 15, 12, &[(0, 0), (2, 10), (3, 20)], 30),
        (15, 1)
    );
    // The follower led epoch 2 and wrote past what the new leader kept of it (KIP-101).
    assert_eq!(
        drive(&[(0, 0), (2, 10)], 25, 12, &[(0, 0), (2, 10), (3, 18)], 30),
        (18, 1)
    );
    // The follower holds an epoch the leader never had (KIP-279): it drops that epoch and asks
    // about the older one they share.
    assert_eq!(
        drive(
            &[(0, 0), (1, 10), (4, 12)],
            20,
            11,
            &[(0, 0), (1, 10), (3, 11), (5, 15)],
            30
        ),
        (11, 2)
    );
    // The leader's copy of the shared epoch ended earlier.
    assert_eq!(
        drive(&[(1, 0), (2, 10)], 20, 5, &[(1, 0), (3, 8)], 30),
        (8, 1)
    );
}

#[test]
fn an_empty_log_has_nothing_to_ask() {
    assert_eq!(
        next_epoch_to_ask(Phase::Truncating { ask_epoch: None }, &[]),
        None
    );
    assert_eq!(
        next_epoch_to_ask(Phase::Truncating { ask_epoch: Some(3) }, &[(5, 0)]),
        Some(3),
        "an answer's epoch is asked next"
    );
}
