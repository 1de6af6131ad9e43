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
fn the_broker_defaults_are_kafkas() {
    let broker = crate::config::BrokerConfig::default();
    let mut expected = FetcherConfig::new(broker.broker_id);
    assert_eq!(FetcherConfig::from_broker(&broker), expected);
    let tuned = crate::config::BrokerConfig::load(
        None,
        &[
            "replica.fetch.wait.max.ms=50",
            "replica.fetch.max.bytes=4096",
            "num.replica.fetchers=3",
        ],
    )
    .expect("valid");
    expected.max_wait_ms = 50;
    expected.partition_max_bytes = 4096;
    expected.fetchers_per_leader = 3;
    let tuned = FetcherConfig::from_broker(&tuned);
    assert_eq!(tuned, expected);
    let slots: std::collections::BTreeSet<u32> = (0..30)
        .map(|index| tuned.fetcher_slot("orders", index))
        .collect();
    assert_eq!(
        slots.into_iter().collect::<Vec<_>>(),
        [0, 1, 2],
        "a leader's partitions spread over its fetchers"
    );
    assert_eq!(
        tuned.fetcher_slot("orders", 7),
        tuned.fetcher_slot("orders", 7),
        "a partition's fetcher is fixed"
    );
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
        .with_log_start_offset(3)
        .with_records(Some(Bytes::from(batch(10, 2))))
}

#[test]
fn partition_errors_pause_retry_or_recheck() {
    let error = ResponseError::FencedLeaderEpoch;
    assert_eq!(
        classify_partition(&data(Some(error))),
        PartitionOutcome::Pause {
            error_code: error.code()
        },
        "{error:?} waits for new metadata"
    );
    // NOT_LEADER_OR_FOLLOWER is retried: the follower may have read the new leadership from the
    // store before the leader applied it, and no later metadata change need come to un-pause it.
    for error in [
        ResponseError::NotLeaderOrFollower,
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
        classify_partition(&data(Some(ResponseError::OffsetOutOfRange)).with_log_start_offset(40)),
        PartitionOutcome::OutOfRange {
            leader_log_start_offset: 40
        },
        "the leader's log start tells a follower behind it from one ahead of its log end"
    );
}

#[test]
fn records_and_the_high_watermark_or_a_diverging_epoch_are_read() {
    assert_eq!(
        classify_partition(&data(None)),
        PartitionOutcome::Data {
            records: Bytes::from(batch(10, 2)),
            high_watermark: 12,
            leader_log_start_offset: 3
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
            high_watermark: 12,
            leader_log_start_offset: 3
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

mod with_a_fake_leader {
    use std::cell::RefCell;

    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::fetch_response::FetchableTopicResponse;
    use kafka_protocol::messages::offset_for_leader_epoch_response::{
        EpochEndOffset as EpochAnswer, OffsetForLeaderTopicResult,
    };
    use kafka_protocol::messages::{
        ApiKey, FetchResponse, OffsetForLeaderEpochResponse, ResponseHeader,
    };
    use kafka_protocol::protocol::{
        decode_request_header_from_buffer, Decodable, Encodable, HeaderVersion,
    };
    use strom_engine::log::LogConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A batch of two records at `base_offset` as a leader stored it in `leader_epoch`.
    fn stored_batch(base_offset: i64, leader_epoch: i32, value_bytes: usize) -> Vec<u8> {
        let mut batch =
            strom_engine::batch::build::build_batch(base_offset, 2, value_bytes, 1_000, -1, -1, -1);
        batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
        batch
    }

    fn frame<T: Encodable + HeaderVersion>(correlation_id: i32, version: i16, body: &T) -> Vec<u8> {
        let mut out = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut out, T::header_version(version))
            .expect("header");
        body.encode(&mut out, version).expect("body");
        let mut framed = Vec::with_capacity(out.len() + 4);
        framed.put_i32(i32::try_from(out.len()).expect("small"));
        framed.extend_from_slice(&out);
        framed
    }

    /// Serves one follower connection: OffsetForLeaderEpoch from `epochs` (the first `refusals`
    /// answered NOT_LEADER_OR_FOLLOWER, as a leader still behind on the metadata answers), Fetch
    /// from `batches` ((base offset, bytes), contiguous) with `high_watermark`; logs what it was
    /// asked.
    async fn serve(
        listener: tokio::net::TcpListener,
        mut refusals: usize,
        epochs: Vec<(i32, i64)>,
        batches: Vec<(i64, Vec<u8>)>,
        log_end: i64,
        high_watermark: i64,
        asked: Rc<RefCell<Vec<String>>>,
    ) {
        let (mut socket, _) = listener.accept().await.expect("accept");
        loop {
            let mut prefix = [0u8; 4];
            if socket.read_exact(&mut prefix).await.is_err() {
                return;
            }
            let mut request = vec![0u8; i32::from_be_bytes(prefix) as usize];
            socket.read_exact(&mut request).await.expect("request");
            let mut request = Bytes::from(request);
            let header = decode_request_header_from_buffer(&mut request).expect("header");
            let version = header.request_api_version;
            let answer = if header.request_api_key == ApiKey::OffsetForLeaderEpoch as i16 {
                let ask = OffsetForLeaderEpochRequest::decode(&mut request, version).expect("ask");
                let partition = &ask.topics[0].partitions[0];
                asked.borrow_mut().push(format!(
                    "epochs replica={} epoch={}",
                    ask.replica_id.0, partition.leader_epoch
                ));
                let (epoch, end_offset) =
                    strom_engine_like_end_offset(&epochs, log_end, partition.leader_epoch);
                let error_code = if refusals > 0 {
                    refusals -= 1;
                    ResponseError::NotLeaderOrFollower.code()
                } else {
                    0
                };
                frame(
                    header.correlation_id,
                    version,
                    &OffsetForLeaderEpochResponse::default().with_topics(vec![
                        OffsetForLeaderTopicResult::default()
                            .with_topic(ask.topics[0].topic.clone())
                            .with_partitions(vec![EpochAnswer::default()
                                .with_partition(partition.partition)
                                .with_error_code(error_code)
                                .with_leader_epoch(epoch)
                                .with_end_offset(end_offset)]),
                    ]),
                )
            } else {
                let fetch = FetchRequest::decode(&mut request, version).expect("fetch");
                let partition = &fetch.topics[0].partitions[0];
                asked.borrow_mut().push(format!(
                    "fetch replica={} offset={} epoch={}",
                    fetch.replica_id.0, partition.fetch_offset, partition.current_leader_epoch
                ));
                // The leader's divergence check (KIP-320), as the fetch handler makes it.
                let diverging = crate::replication::diverging_epoch(
                    &epochs,
                    log_end,
                    partition.fetch_offset,
                    partition.last_fetched_epoch,
                )
                .expect("a known epoch");
                let records: Vec<u8> = match diverging {
                    Some(_) => Vec::new(),
                    None => batches
                        .iter()
                        .filter(|(base, _)| *base >= partition.fetch_offset)
                        .flat_map(|(_, bytes)| bytes.iter().copied())
                        .collect(),
                };
                if records.is_empty() && diverging.is_none() {
                    // Nothing new: hold the fetch as a leader would.
                    tokio::time::sleep(Duration::from_millis(
                        u64::try_from(fetch.max_wait_ms).unwrap_or(0),
                    ))
                    .await;
                }
                frame(
                    header.correlation_id,
                    version,
                    &FetchResponse::default().with_responses(vec![
                        FetchableTopicResponse::default()
                            .with_topic(fetch.topics[0].topic.clone())
                            .with_partitions(vec![PartitionData::default()
                                .with_partition_index(partition.partition)
                                .with_high_watermark(high_watermark)
                                .with_diverging_epoch(diverging.map_or_else(
                                    EpochEndOffset::default,
                                    |answer| {
                                        EpochEndOffset::default()
                                            .with_epoch(answer.epoch)
                                            .with_end_offset(answer.end_offset)
                                    },
                                ))
                                .with_records(Some(Bytes::from(records)))]),
                    ]),
                )
            };
            if socket.write_all(&answer).await.is_err() {
                return;
            }
        }
    }

    fn strom_engine_like_end_offset(epochs: &[(i32, i64)], log_end: i64, asked: i32) -> (i32, i64) {
        let answer = crate::replication::end_offset_for_epoch(epochs, log_end, asked);
        (answer.epoch, answer.end_offset)
    }

    /// A follower whose log diverged (it wrote offsets 2..4 in epoch 1, which the leader never
    /// had) asks the leader where epoch 1 ends (again after the leader first refuses), truncates
    /// there, fetches the leader's epoch-2
    /// batches as they are, and takes the leader's high watermark.
    #[test]
    fn a_divergent_follower_truncates_then_copies_the_leaders_batches() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("t-0");
        strom_engine::io::start_runtime(64, async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let shared_prefix = stored_batch(0, 1, 8);
            let leader_batches = vec![
                (0, shared_prefix.clone()),
                (2, stored_batch(2, 2, 16)),
                (4, stored_batch(4, 2, 24)),
            ];
            let asked = Rc::new(RefCell::new(Vec::new()));
            strom_engine::io::spawn_local(serve(
                listener,
                1,
                vec![(1, 0), (2, 2)],
                leader_batches.clone(),
                6,
                5,
                asked.clone(),
            ));

            let partition = Partition::open(
                dir,
                Rc::from("t"),
                0,
                uuid::Uuid::nil(),
                LogConfig::default(),
            )
            .await
            .expect("open");
            assert!(partition.apply_leadership(2, false));
            let mut divergent = shared_prefix;
            divergent.extend_from_slice(&stored_batch(2, 1, 99));
            partition
                .append_replicated(Bytes::from(divergent))
                .expect("the follower's own history")
                .written()
                .wait()
                .await
                .expect("written");

            let mut config = FetcherConfig::new(2);
            config.max_wait_ms = 20;
            config.backoff_ms = 20;
            let fetchers = FetcherSet::new(config);
            let leader = BrokerEndpoint {
                id: 1,
                host: "127.0.0.1".into(),
                port,
                epoch: 0,
            };
            fetchers.follow(partition.clone(), leader, 2);
            assert_eq!(fetchers.fetcher_ids(), vec![(1, 0)]);
            for _ in 0..500 {
                if partition.log.log_end_offset() == 6 && partition.high_watermark() == 5 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(
                partition.log.log_end_offset(),
                6,
                "first requests: {:?}",
                asked.borrow().iter().take(6).collect::<Vec<_>>()
            );
            assert_eq!(partition.high_watermark(), 5, "the leader's high watermark");
            assert_eq!(fetchers.followed("t", 0), Some((1, Phase::Fetching)));

            let copy = partition
                .log
                .read(0, 1 << 20, 6)
                .await
                .expect("read")
                .expect("records")
                .read_to_vec()
                .await
                .expect("bytes");
            let expected: Vec<u8> = leader_batches.into_iter().flat_map(|(_, b)| b).collect();
            assert!(copy == expected, "the follower holds the leader's bytes");
            assert_eq!(partition.log.leader_epoch_entries(), vec![(1, 0), (2, 2)]);

            let asked = asked.borrow().clone();
            assert_eq!(
                asked[..2],
                ["epochs replica=2 epoch=1", "epochs replica=2 epoch=1"],
                "truncation first, asked again after a refusal: {asked:?}"
            );
            assert_eq!(
                asked[2], "fetch replica=2 offset=2 epoch=2",
                "then a fetch from the truncation point: {asked:?}"
            );

            fetchers.unfollow("t", 0);
            assert!(
                fetchers.fetcher_ids().is_empty(),
                "the last partition stops the fetcher"
            );
            assert_eq!(fetchers.followed("t", 0), None);
            partition.close().await.expect("close");
        });
    }

    /// A follower that led an epoch and lost it before writing anything holds that epoch at
    /// its log end; the leader never had it. The truncation point is the log end itself, and
    /// the empty epoch must still go (else every fetch names it and the leader answers a
    /// diverging epoch forever): afterwards the follower copies on and ends with the leader's
    /// epoch history.
    #[test]
    fn an_epoch_led_without_a_write_is_dropped_at_the_log_end() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("t-0");
        strom_engine::io::start_runtime(64, async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let shared_history = [stored_batch(0, 1, 8), stored_batch(2, 2, 8)];
            let leader_batches = vec![
                (0, shared_history[0].clone()),
                (2, shared_history[1].clone()),
                (4, stored_batch(4, 4, 8)),
            ];
            let asked = Rc::new(RefCell::new(Vec::new()));
            strom_engine::io::spawn_local(serve(
                listener,
                0,
                vec![(1, 0), (2, 2), (4, 4)],
                leader_batches.clone(),
                6,
                6,
                asked.clone(),
            ));

            let partition = Partition::open(
                dir,
                Rc::from("t"),
                0,
                uuid::Uuid::nil(),
                LogConfig::default(),
            )
            .await
            .expect("open");
            assert!(partition.apply_leadership(2, false));
            partition
                .append_replicated(Bytes::from(shared_history.concat()))
                .expect("the shared history")
                .written()
                .wait()
                .await
                .expect("written");
            // It led epoch 3 and lost it before its first write.
            partition.log.start_leader_epoch(3).expect("epoch 3");
            assert_eq!(
                partition.log.leader_epoch_entries(),
                vec![(1, 0), (2, 2), (3, 4)]
            );
            assert!(partition.apply_leadership(4, false));

            let mut config = FetcherConfig::new(2);
            config.max_wait_ms = 20;
            config.backoff_ms = 20;
            let fetchers = FetcherSet::new(config);
            let leader = BrokerEndpoint {
                id: 1,
                host: "127.0.0.1".into(),
                port,
                epoch: 0,
            };
            fetchers.follow(partition.clone(), leader, 4);
            for _ in 0..500 {
                if partition.log.log_end_offset() == 6 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(
                partition.log.log_end_offset(),
                6,
                "first requests: {:?}",
                asked.borrow().iter().take(6).collect::<Vec<_>>()
            );
            assert_eq!(
                partition.log.leader_epoch_entries(),
                vec![(1, 0), (2, 2), (4, 4)],
                "the leader's history, without the empty epoch 3"
            );
            let asked = asked.borrow().clone();
            assert_eq!(asked[0], "epochs replica=2 epoch=3", "{asked:?}");
            assert_eq!(asked[1], "fetch replica=2 offset=4 epoch=4", "{asked:?}");
            fetchers.unfollow("t", 0);
            partition.close().await.expect("close");
        });
    }
}
