//! Fetch's byte limits, seen on the wire: a response stops after `max_bytes` (but always holds
//! at least one whole batch, KIP-74), and partitions left out for lack of room still report
//! their real high watermark and log start offset, with empty (not null) records.

mod common;

use common::kafka_wire::Connection;
use common::{kcat, unique_topic, Broker, BrokerOpts, CLIENT_TIMEOUT};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_engine::batch::build::build_batch;

const RECORDS_PER_PARTITION: i32 = 5;

fn fetch(
    connection: &mut Connection,
    topic: &str,
    partitions: i32,
    max_bytes: i32,
) -> FetchResponse {
    let request = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                (0..partitions)
                    .map(|index| {
                        FetchPartition::default()
                            .with_partition(index)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )]);
    connection.call(ApiKey::Fetch, 12, &request)
}

#[test]
fn a_full_response_still_reports_every_partitions_watermarks() {
    let broker = Broker::start(
        BrokerOpts::new()
            .set("num.partitions", 3)
            .set("auto.create.topics.enable", "true"),
    );
    let topic = unique_topic("fetch-limits");
    kcat(
        &["-P", "-b", &broker.bootstrap(), "-t", &topic, "-p", "0"],
        Some(b"seed\n".to_vec()),
        CLIENT_TIMEOUT,
    )
    .assert_success();
    let mut connection = Connection::open(&broker);
    for partition in 0..3 {
        let batch = build_batch(0, RECORDS_PER_PARTITION, 200, 1_700_000_000_000, -1, -1, -1);
        let (error, _) = connection.produce(&topic, partition, batch);
        assert_eq!(error, 0, "produce to partition {partition}");
    }
    let batch_bytes = build_batch(0, RECORDS_PER_PARTITION, 200, 0, -1, -1, -1).len();

    // A limit of one byte: the first partition's first batch still comes back whole.
    let response = fetch(&mut connection, &topic, 3, 1);
    let partitions = &response.responses[0].partitions;
    assert_eq!(partitions.len(), 3);
    let first = partitions[0]
        .records
        .as_ref()
        .map_or(0, |records| records.len());
    assert!(first > 0, "at least one batch even over max_bytes");
    for later in &partitions[1..] {
        assert_eq!(later.error_code, 0);
        assert_eq!(
            later.records.as_ref().map(|records| records.len()),
            Some(0),
            "no room left: empty, not null"
        );
        assert_eq!(
            later.high_watermark,
            i64::from(RECORDS_PER_PARTITION),
            "the real high watermark of partition {}",
            later.partition_index
        );
        assert_eq!(
            later.log_start_offset, 0,
            "the real log start of partition {}",
            later.partition_index
        );
    }

    // Room for everything: every partition's data comes back.
    let response = fetch(&mut connection, &topic, 3, 1 << 20);
    let sizes: Vec<usize> = response.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .collect();
    assert_eq!(sizes[1], batch_bytes, "partition 1 holds one batch");
    assert_eq!(sizes[2], batch_bytes, "partition 2 holds one batch");
    assert!(
        sizes[0] > batch_bytes,
        "partition 0 holds the seed and the batch"
    );
}
