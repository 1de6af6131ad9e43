//! Produce requests a well-behaved client would never send — a bad CRC, an old message format,
//! an unknown topic or partition, a batch over message.max.bytes, two batches in one partition,
//! an invalid topic name — and the idempotent-producer rules (a retried batch is acknowledged
//! with its original offset and not stored twice; gaps and stale epochs are refused). Each gets
//! the error code Kafka returns, and a normal client still works afterwards.
//!
//! Requests are encoded with the `kafka-protocol` crate around record batches built (and then
//! damaged) by hand, and sent over a plain socket.

mod common;

use common::kafka_wire::Connection;
use common::{kcat, unique_topic, Broker, BrokerOpts, CLIENT_TIMEOUT};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_engine::batch::build::build_batch;

const MAX_MESSAGE_BYTES: usize = 10_000;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_RECORD: i16 = 87;

fn batch(records: i32, value_bytes: usize) -> Vec<u8> {
    build_batch(0, records, value_bytes, 1_700_000_000_000, -1, -1, -1)
}

fn idempotent_batch(producer_id: i64, epoch: i16, base_sequence: i32, records: i32) -> Vec<u8> {
    build_batch(
        0,
        records,
        20,
        1_700_000_000_000,
        producer_id,
        epoch,
        base_sequence,
    )
}

/// Reads the topic back with kcat and returns how many records it holds.
fn record_count(broker: &Broker, topic: &str) -> usize {
    let out = kcat(
        &[
            "-C",
            "-b",
            &broker.bootstrap(),
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-J",
            "-q",
        ],
        None,
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    out.json_lines().len()
}

fn broker() -> Broker {
    Broker::start(
        BrokerOpts::new()
            .set("message.max.bytes", MAX_MESSAGE_BYTES)
            .set("num.partitions", 2)
            .set("auto.create.topics.enable", "true"),
    )
}

#[test]
fn malformed_batches_get_kafkas_error_codes_and_store_nothing() {
    let broker = broker();
    let topic = unique_topic("produce-errors");
    let mut connection = Connection::open(&broker);
    // Create the topic through the client path (metadata auto-create via kcat).
    kcat(
        &["-P", "-b", &broker.bootstrap(), "-t", &topic, "-p", "0"],
        Some(b"seed\n".to_vec()),
        CLIENT_TIMEOUT,
    )
    .assert_success();

    let mut bad_crc = batch(3, 50);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert_eq!(
        connection.produce(&topic, 0, bad_crc).0,
        CORRUPT_MESSAGE,
        "a flipped byte fails the CRC"
    );

    let mut old_magic = batch(1, 10);
    old_magic[16] = 1;
    assert_eq!(
        connection.produce(&topic, 0, old_magic).0,
        INVALID_RECORD,
        "only RecordBatch v2 is accepted with Produce v3+"
    );

    let mut truncated = batch(2, 30);
    truncated.truncate(truncated.len() - 5);
    assert_eq!(
        connection.produce(&topic, 0, truncated).0,
        CORRUPT_MESSAGE,
        "a batch shorter than its length"
    );

    assert_eq!(
        connection
            .produce(&topic, 0, batch(1, MAX_MESSAGE_BYTES + 100))
            .0,
        MESSAGE_TOO_LARGE,
        "a batch over message.max.bytes"
    );

    let mut two_batches = batch(1, 10);
    two_batches.extend(batch(1, 10));
    assert_eq!(
        connection.produce(&topic, 0, two_batches).0,
        INVALID_RECORD,
        "one batch per partition per request"
    );

    assert_eq!(
        connection
            .produce(&unique_topic("no-such-topic"), 0, batch(1, 10))
            .0,
        UNKNOWN_TOPIC_OR_PARTITION,
        "unknown topic"
    );
    assert_eq!(
        connection.produce(&topic, 7, batch(1, 10)).0,
        UNKNOWN_TOPIC_OR_PARTITION,
        "unknown partition"
    );

    let create = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("bad topic name!")))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let created: CreateTopicsResponse = connection.call(ApiKey::CreateTopics, 5, &create);
    assert_eq!(
        created.topics[0].error_code, INVALID_TOPIC_EXCEPTION,
        "invalid topic name"
    );

    // Nothing of the above was stored, the same connection still works, and so do clients.
    let (error, offset) = connection.produce(&topic, 0, batch(2, 10));
    assert_eq!(
        (error, offset),
        (0, 1),
        "a good batch after the bad ones lands right after the seed record"
    );
    assert_eq!(
        record_count(&broker, &topic),
        3,
        "the seed record and the good batch's two records, nothing else"
    );
}

#[test]
fn idempotent_producer_retries_are_deduplicated_and_gaps_refused() {
    let broker = broker();
    let topic = unique_topic("idempotence");
    kcat(
        &["-P", "-b", &broker.bootstrap(), "-t", &topic, "-p", "0"],
        Some(b"seed\n".to_vec()),
        CLIENT_TIMEOUT,
    )
    .assert_success();
    let mut connection = Connection::open(&broker);
    let producer_id = 4242;

    assert_eq!(
        connection.produce(&topic, 0, idempotent_batch(producer_id, 0, 0, 3)),
        (0, 1)
    );
    assert_eq!(
        connection.produce(&topic, 0, idempotent_batch(producer_id, 0, 3, 2)),
        (0, 4)
    );
    // A retry of the first batch: acknowledged with its original offset, not stored again.
    assert_eq!(
        connection.produce(&topic, 0, idempotent_batch(producer_id, 0, 0, 3)),
        (0, 1),
        "duplicate acknowledged at its first offset"
    );
    // A damaged copy of a stored batch is corrupt, not a duplicate to acknowledge.
    let mut damaged_retry = idempotent_batch(producer_id, 0, 0, 3);
    let last = damaged_retry.len() - 1;
    damaged_retry[last] ^= 0xff;
    assert_eq!(
        connection.produce(&topic, 0, damaged_retry).0,
        CORRUPT_MESSAGE,
        "CRC is checked before sequences"
    );
    // A gap in sequences.
    assert_eq!(
        connection
            .produce(&topic, 0, idempotent_batch(producer_id, 0, 9, 1))
            .0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    // A newer epoch fences the older one.
    assert_eq!(
        connection.produce(&topic, 0, idempotent_batch(producer_id, 1, 0, 1)),
        (0, 6)
    );
    assert_eq!(
        connection
            .produce(&topic, 0, idempotent_batch(producer_id, 0, 5, 1))
            .0,
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        record_count(&broker, &topic),
        7,
        "seed + 3 + 2 + 1 records: the duplicate was not stored"
    );

    // The sequence state survives a restart: the retry is still recognised afterwards.
    let mut broker = broker;
    drop(connection);
    broker.restart();
    let mut connection = Connection::open(&broker);
    assert_eq!(
        connection.produce(&topic, 0, idempotent_batch(producer_id, 1, 0, 1)),
        (0, 6),
        "duplicate recognised after restart"
    );
    assert_eq!(
        connection.produce(&topic, 0, idempotent_batch(producer_id, 1, 1, 1)),
        (0, 7),
        "next sequence continues after restart"
    );
}
