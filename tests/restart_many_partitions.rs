//! A broker with many partitions stops cleanly (one clean-shutdown marker for the whole log dir),
//! starts again, and every partition takes a produce whose offset continues from before the
//! restart; everything reads back.
//!
//! `STROM_RESTART_TOPICS` and `STROM_RESTART_PARTITIONS_PER_TOPIC` scale it up for a manual run
//! (e.g. 10 × 1000); it prints how long the stop and the start took, but asserts no timing.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use strom_tools::client::admin::NewTopic;
use strom_tools::client::consumer::{Consumer, ConsumerConfig, StartOffset};
use strom_tools::client::producer::{Producer, ProducerConfig, ProducerRecord};
use strom_tools::client::{Admin, Client, ClientConfig};

const TOPICS_DEFAULT: usize = 3;
const PARTITIONS_PER_TOPIC_DEFAULT: i32 = 500;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn client(broker: &Broker) -> Client {
    Client::connect(ClientConfig::new(&broker.bootstrap()).expect("config"))
        .await
        .expect("connect")
}

fn value(topic: &str, partition: i32, round: u32) -> Bytes {
    Bytes::from(format!("{topic}/{partition}/round-{round}"))
}

/// Produces one record to every partition; returns the offset each got.
async fn produce_to_every_partition(
    broker: &Broker,
    topics: &[String],
    partitions: i32,
    round: u32,
) -> BTreeMap<(String, i32), i64> {
    let producer = Producer::new(client(broker).await, ProducerConfig::default())
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for topic in topics {
        for partition in 0..partitions {
            let record = ProducerRecord {
                topic: topic.as_str().into(),
                partition: Some(partition),
                value: Some(value(topic, partition, round)),
                ..ProducerRecord::default()
            };
            let delivery = producer.send(record).await.expect("send");
            deliveries.push(((topic.clone(), partition), delivery));
        }
    }
    let mut offsets = BTreeMap::new();
    for (key, delivery) in deliveries {
        let metadata = delivery
            .wait()
            .await
            .unwrap_or_else(|error| panic!("produce to {key:?} in round {round}: {error}"));
        offsets.insert(key, metadata.offset);
    }
    producer.close().await;
    offsets
}

/// Reads every partition from the start until `per_partition` records came from each.
async fn read_everything(
    broker: &Broker,
    topics: &[String],
    partitions: i32,
    per_partition: usize,
) -> BTreeMap<(String, i32), Vec<(i64, Bytes)>> {
    let mut consumer = Consumer::new(client(broker).await, ConsumerConfig::default());
    let assignment: Vec<(String, i32, StartOffset)> = topics
        .iter()
        .flat_map(|topic| (0..partitions).map(move |p| (topic.clone(), p, StartOffset::Earliest)))
        .collect();
    consumer.assign(&assignment).await.expect("assign");
    let expected_total = assignment.len() * per_partition;
    let mut read: BTreeMap<(String, i32), Vec<(i64, Bytes)>> = BTreeMap::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while total < expected_total {
        assert!(
            Instant::now() < deadline,
            "read only {total} of {expected_total} records"
        );
        for record in consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll")
        {
            read.entry((record.topic.to_string(), record.partition))
                .or_default()
                .push((record.offset, record.value.unwrap_or_default()));
            total += 1;
        }
    }
    read
}

#[test]
fn every_partition_takes_a_produce_after_a_clean_restart() {
    let topic_count = env_or("STROM_RESTART_TOPICS", TOPICS_DEFAULT);
    let partitions = env_or(
        "STROM_RESTART_PARTITIONS_PER_TOPIC",
        PARTITIONS_PER_TOPIC_DEFAULT,
    );
    let mut broker = Broker::start(BrokerOpts::new());
    let topics: Vec<String> = (0..topic_count)
        .map(|_| unique_topic("many-partitions"))
        .collect();
    let rt = runtime();
    let before = rt.block_on(async {
        let admin = Admin::new(client(&broker).await);
        for topic in &topics {
            admin
                .create_topic(&NewTopic {
                    name: topic.clone(),
                    partitions: Some(partitions),
                    ..NewTopic::default()
                })
                .await
                .expect("create topic");
        }
        produce_to_every_partition(&broker, &topics, partitions, 0).await
    });
    assert!(
        before.values().all(|&offset| offset == 0),
        "the first record of each partition is at offset 0"
    );

    let stop_started = Instant::now();
    broker.stop_clean();
    let stop_took = stop_started.elapsed();
    assert!(
        broker.log_dirs().join(".clean-shutdown").exists(),
        "a clean stop leaves one marker for the log dir"
    );
    let start_started = Instant::now();
    broker.restart();
    let start_took = start_started.elapsed();
    eprintln!(
        "{} partitions: clean stop {stop_took:?}, start until the port accepts {start_took:?}",
        topics.len() * partitions as usize
    );
    assert!(
        !broker.log_dirs().join(".clean-shutdown").exists(),
        "the marker is removed at start"
    );

    rt.block_on(async {
        let after = produce_to_every_partition(&broker, &topics, partitions, 1).await;
        assert_eq!(after.len(), topics.len() * partitions as usize);
        for (key, offset) in &after {
            assert_eq!(*offset, 1, "{key:?}: offsets continue after the restart");
        }
        let read = read_everything(&broker, &topics, partitions, 2).await;
        assert_eq!(read.len(), topics.len() * partitions as usize);
        for ((topic, partition), records) in &read {
            assert_eq!(
                records,
                &vec![
                    (0, value(topic, *partition, 0)),
                    (1, value(topic, *partition, 1))
                ],
                "{topic}/{partition}"
            );
        }
    });
    broker.stop_clean();
}
