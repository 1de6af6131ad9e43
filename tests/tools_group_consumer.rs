//! The `strom-tools` group consumer against a real broker: members share partitions and take
//! over when one leaves, a poll loop slower than max.poll.interval.ms leaves the group (as
//! Kafka's consumer does) and rejoins on the next poll, and auto-commit / commit_sync / close.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use strom_tools::client::admin::{NewTopic, OffsetSpec};
use strom_tools::client::consumer::OffsetReset;
use strom_tools::client::group_consumer::{GroupConfig, GroupConsumer};
use strom_tools::client::producer::{Producer, ProducerConfig, ProducerRecord};
use strom_tools::client::{Admin, Client, ClientConfig};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn broker() -> Broker {
    Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0))
}

async fn client(broker: &Broker) -> Client {
    Client::connect(ClientConfig::new(&broker.bootstrap()).expect("config"))
        .await
        .expect("connect")
}

/// Creates the topic and writes `count` keyed records.
async fn setup(broker: &Broker, topic: &str, partitions: i32, count: usize) {
    let client = client(broker).await;
    Admin::new(client.clone())
        .create_topic(&NewTopic {
            name: topic.to_string(),
            partitions: Some(partitions),
            ..NewTopic::default()
        })
        .await
        .expect("create topic");
    let producer = Producer::new(client, ProducerConfig::default())
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record = ProducerRecord {
            topic: topic.into(),
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            ..ProducerRecord::default()
        };
        deliveries.push(producer.send(record).await.expect("send"));
    }
    for delivery in deliveries {
        delivery.wait().await.expect("delivered");
    }
    producer.close().await;
}

fn group_config(group: &str) -> GroupConfig {
    let mut config = GroupConfig::new(group);
    config.session_timeout_ms = 6_000;
    config.heartbeat_interval_ms = 200;
    config.max_poll_interval_ms = 10_000;
    config.auto_commit_interval_ms = 200;
    config.consumer.offset_reset = OffsetReset::Earliest;
    config
}

/// What a member running in its own task has seen.
#[derive(Default)]
struct Seen {
    assignment: Vec<(String, i32)>,
    records: BTreeSet<(i32, i64)>,
}

/// Polls in a loop until `stop` is set, then closes the consumer.
fn spawn_member(
    mut consumer: GroupConsumer,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<Mutex<bool>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !*stop.lock().expect("lock") {
            let records = consumer
                .poll(Duration::from_millis(100))
                .await
                .expect("poll");
            let mut seen = seen.lock().expect("lock");
            seen.assignment = consumer.assignment();
            seen.records
                .extend(records.iter().map(|r| (r.partition, r.offset)));
        }
        consumer.close().await.expect("close");
    })
}

async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn members_share_partitions_and_take_over() {
    let broker = broker();
    let topic = unique_topic("tools-gc-share");
    let group = unique_topic("tools-gc");
    runtime().block_on(async {
        setup(&broker, &topic, 4, 400).await;
        let client = client(&broker).await;
        let mut first = GroupConsumer::new(client.clone(), group_config(&group)).expect("consumer");
        first.subscribe(std::slice::from_ref(&topic));
        let mut second =
            GroupConsumer::new(client.clone(), group_config(&group)).expect("consumer");
        second.subscribe(std::slice::from_ref(&topic));
        let (seen_a, seen_b) = (
            Arc::new(Mutex::new(Seen::default())),
            Arc::new(Mutex::new(Seen::default())),
        );
        let (stop_a, stop_b) = (Arc::new(Mutex::new(false)), Arc::new(Mutex::new(false)));
        let a = spawn_member(first, seen_a.clone(), stop_a.clone());
        wait_until(
            "the first member to own all partitions",
            Duration::from_secs(30),
            || seen_a.lock().expect("lock").assignment.len() == 4,
        )
        .await;
        let b = spawn_member(second, seen_b.clone(), stop_b.clone());
        wait_until("a 2/2 split", Duration::from_secs(30), || {
            let (a, b) = (seen_a.lock().expect("lock"), seen_b.lock().expect("lock"));
            let union: BTreeSet<_> = a.assignment.iter().chain(b.assignment.iter()).collect();
            a.assignment.len() == 2 && b.assignment.len() == 2 && union.len() == 4
        })
        .await;
        let admin = Admin::new(client.clone());
        let description = admin.describe_group(&group).await.expect("describe");
        assert_eq!(description.state, "Stable");
        assert_eq!(description.members.len(), 2);
        // The second member leaves: the first takes everything back.
        *stop_b.lock().expect("lock") = true;
        b.await.expect("member b");
        wait_until(
            "the first member to own all partitions again",
            Duration::from_secs(30),
            || seen_a.lock().expect("lock").assignment.len() == 4,
        )
        .await;
        wait_until("every record consumed", Duration::from_secs(30), || {
            let (a, b) = (seen_a.lock().expect("lock"), seen_b.lock().expect("lock"));
            a.records.union(&b.records).count() == 400
        })
        .await;
        *stop_a.lock().expect("lock") = true;
        a.await.expect("member a");
        let description = admin.describe_group(&group).await.expect("describe");
        assert_eq!(description.state, "Empty", "close() leaves the group");
        // Auto-commit and close committed every position.
        let committed = admin
            .committed_offsets(&group, None)
            .await
            .expect("committed");
        let ends = admin
            .list_offsets(&topic, &[], OffsetSpec::Latest)
            .await
            .expect("ends");
        let expected: BTreeMap<(String, i32), i64> = ends
            .into_iter()
            .map(|(p, o)| ((topic.clone(), p), o))
            .collect();
        assert_eq!(committed, expected);
    });
}

#[test]
fn slow_poll_loop_leaves_the_group_and_rejoins() {
    let broker = broker();
    let topic = unique_topic("tools-gc-slow");
    let group = unique_topic("tools-gc-slow");
    runtime().block_on(async {
        setup(&broker, &topic, 2, 10).await;
        let client = client(&broker).await;
        let admin = Admin::new(client.clone());
        let mut config = group_config(&group);
        config.max_poll_interval_ms = 2_000;
        let mut consumer = GroupConsumer::new(client, config).expect("consumer");
        consumer.subscribe(std::slice::from_ref(&topic));
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while got < 10 {
            got += consumer
                .poll(Duration::from_millis(200))
                .await
                .expect("poll")
                .len();
            assert!(Instant::now() < deadline, "only {got} of 10 records");
        }
        let generation = consumer.generation_id();
        assert_eq!(
            admin
                .describe_group(&group)
                .await
                .expect("describe")
                .members
                .len(),
            1
        );
        consumer.commit_sync().await.expect("commit");
        // Stop polling for longer than max.poll.interval.ms (heartbeats keep running).
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        let description = admin.describe_group(&group).await.expect("describe");
        assert_eq!(
            description.members.len(),
            0,
            "the member left: {description:?}"
        );
        let reason = consumer
            .take_left_reason()
            .expect("the consumer says why it left");
        assert!(reason.contains("max.poll.interval.ms"), "{reason}");
        // The next poll rejoins, in a new generation, and resumes from the committed offsets.
        let records = consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll");
        assert!(
            records.is_empty(),
            "nothing is read twice after the commit: {records:?}"
        );
        assert!(consumer.generation_id() > generation);
        assert_eq!(
            admin
                .describe_group(&group)
                .await
                .expect("describe")
                .members
                .len(),
            1
        );
        consumer.close().await.expect("close");
    });
}

#[test]
fn manual_commits_without_auto_commit() {
    let broker = broker();
    let topic = unique_topic("tools-gc-manual");
    let group = unique_topic("tools-gc-manual");
    runtime().block_on(async {
        setup(&broker, &topic, 1, 20).await;
        let client = client(&broker).await;
        let admin = Admin::new(client.clone());
        let mut config = group_config(&group);
        config.enable_auto_commit = false;
        let mut consumer = GroupConsumer::new(client, config).expect("consumer");
        consumer.subscribe(std::slice::from_ref(&topic));
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        while got < 20 {
            got += consumer
                .poll(Duration::from_millis(200))
                .await
                .expect("poll")
                .len();
            assert!(Instant::now() < deadline);
        }
        // Well past the auto-commit interval: nothing is committed without auto-commit.
        for _ in 0..5 {
            consumer
                .poll(Duration::from_millis(100))
                .await
                .expect("poll");
        }
        assert!(admin
            .committed_offsets(&group, None)
            .await
            .expect("committed")
            .is_empty());
        consumer.commit_sync().await.expect("commit");
        let committed = admin
            .committed_offsets(&group, None)
            .await
            .expect("committed");
        assert_eq!(committed.get(&(topic.clone(), 0)), Some(&20));
        consumer.close().await.expect("close");
    });
}
