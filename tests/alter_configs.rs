//! Issue 12, topic configs at run time, and `compression.type`:
//! - confluent-kafka's `incremental_alter_configs` and `alter_configs` and `strom topic
//!   alter-config` change a topic's configs on a live broker: DescribeConfigs shows the new value
//!   with source DYNAMIC_TOPIC_CONFIG; an invalid value or unknown key gets INVALID_CONFIG and
//!   changes nothing, an unknown topic UNKNOWN_TOPIC_OR_PARTITION, `validate_only` changes
//!   nothing; a shorter `retention.ms` deletes the old segments at the next retention check;
//! - on a 3-broker cluster a change made through one broker applies on the leader elsewhere
//!   (`min.insync.replicas` raised above the ISR: acks=all gets NOT_ENOUGH_REPLICAS) and
//!   survives that leader's restart;
//! - a topic with `compression.type=lz4` stores the batches a gzip producer sends as lz4 (the
//!   codec bits of the batches Fetch returns), every record intact; a `producer` topic keeps gzip;
//! - a dynamic broker config (`log.retention.ms` on broker 0, `log.roll.ms` on the cluster-wide
//!   default) applies to topics without an override, shows as DYNAMIC_BROKER_CONFIG /
//!   DYNAMIC_DEFAULT_BROKER_CONFIG, refuses invalid values (INVALID_CONFIG) and keys that cannot
//!   change at run time (INVALID_REQUEST), and survives a restart.

mod common;
mod replication_support;
mod tools_support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::kafka_wire::Connection;
use common::{args, python_client, unique_topic, Broker, BrokerOpts, CLIENT_TIMEOUT};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, FetchRequest, FetchResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_engine::batch::build::build_batch;
use tools_support::strom;

/// How often the broker under test checks retention: short, so deletion is seen quickly.
const RETENTION_CHECK_INTERVAL_MS: u64 = 200;
/// Upper bound on waiting for something the broker does at its next retention check, on a
/// loaded 2-core machine.
const RETENTION_WAIT: Duration = Duration::from_secs(20);

fn segment_count(partition_dir: &Path) -> usize {
    std::fs::read_dir(partition_dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
                .count()
        })
        .unwrap_or(0)
}

/// Produces `batches` batches of 5 records of 300 bytes each (larger than the 1024-byte segments
/// of the topics below, so each batch rolls a segment).
fn produce_batches(connection: &mut Connection, topic: &str, batches: usize) {
    for _ in 0..batches {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let (error, _) = connection.produce(topic, 0, build_batch(0, 5, 300, now_ms, -1, -1, -1));
        assert_eq!(error, 0, "produce to {topic}");
    }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `Config: key=value (source)` line of `strom topic describe --all-configs`.
fn described_config(broker: &Broker, topic: &str, key: &str) -> String {
    let out = strom(broker, &["topic", "describe", topic, "--all-configs"]);
    out.assert_success();
    out.stdout_str()
        .lines()
        .find(|line| line.trim_start().starts_with(&format!("Config: {key}=")))
        .unwrap_or_else(|| panic!("no {key} in {}", out.stdout_str()))
        .trim()
        .to_string()
}

#[test]
fn topic_configs_change_at_run_time_through_confluent_kafka_and_strom() {
    let broker = Broker::start(BrokerOpts::new().set(
        "log.retention.check.interval.ms",
        RETENTION_CHECK_INTERVAL_MS,
    ));
    let topic = unique_topic("alter-configs");
    strom(
        &broker,
        &[
            "topic",
            "create",
            &topic,
            "--partitions",
            "1",
            "--config",
            "segment.bytes=1024",
            "--config",
            "retention.ms=3600000",
        ],
    )
    .assert_success();
    let partition_dir = broker.log_dirs().join(format!("{topic}-0"));
    let mut connection = Connection::open(&broker);
    produce_batches(&mut connection, &topic, 4);
    assert!(segment_count(&partition_dir) >= 4, "one segment per batch");

    // confluent-kafka: refused changes change nothing, then retention.ms=1000 applies.
    let out = python_client(
        "alter_configs.py",
        &args([
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            &topic,
            "--retention-ms",
            "1000",
        ]),
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let seen = out.result_json();
    assert_eq!(seen["before"]["value"], "3600000", "{seen}");
    assert_eq!(seen["invalid_error"], "INVALID_CONFIG", "{seen}");
    assert_eq!(seen["unknown_key_error"], "INVALID_CONFIG", "{seen}");
    assert_eq!(
        seen["unknown_topic_error"], "UNKNOWN_TOPIC_OR_PART",
        "{seen}"
    );
    assert_eq!(
        seen["validate_only_error"],
        serde_json::Value::Null,
        "{seen}"
    );
    assert_eq!(
        seen["after_refused"]["retention.ms"]["value"], "3600000",
        "neither the refused changes nor validate_only changed retention.ms: {seen}"
    );
    assert_eq!(
        seen["after_refused"]["segment.ms"]["source"], "DEFAULT_CONFIG",
        "the valid half of a refused change is not applied either: {seen}"
    );
    assert_eq!(seen["set_error"], serde_json::Value::Null, "{seen}");
    assert_eq!(seen["after_set"]["retention.ms"]["value"], "1000", "{seen}");
    assert_eq!(
        seen["after_set"]["retention.ms"]["source"], "DYNAMIC_TOPIC_CONFIG",
        "{seen}"
    );
    assert_eq!(seen["after_set"]["retention.ms"]["is_default"], false);
    assert_eq!(
        seen["after_set"]["max.message.bytes"]["value"], "200000",
        "{seen}"
    );
    assert_eq!(seen["delete_error"], serde_json::Value::Null, "{seen}");
    assert_eq!(seen["after_delete"]["value"], "1048588", "{seen}");
    assert_eq!(seen["after_delete"]["source"], "DEFAULT_CONFIG", "{seen}");
    assert_eq!(seen["legacy_error"], serde_json::Value::Null, "{seen}");
    assert_eq!(
        seen["after_legacy"]["segment.bytes"]["value"], "1024",
        "{seen}"
    );
    assert_eq!(
        seen["after_legacy"]["retention.ms"]["source"], "DEFAULT_CONFIG",
        "AlterConfigs replaced every override: {seen}"
    );
    assert_eq!(seen["restore_error"], serde_json::Value::Null, "{seen}");
    // The old segments go at a retention check; only the active one stays.
    wait_until(
        "the old segments to be deleted after retention.ms=1000",
        RETENTION_WAIT,
        || segment_count(&partition_dir) == 1,
    );

    // strom: a long retention keeps new segments; shortening it again deletes them.
    let out = strom(
        &broker,
        &[
            "topic",
            "alter-config",
            &topic,
            "--set",
            "retention.ms=3600000",
        ],
    );
    out.assert_success();
    produce_batches(&mut connection, &topic, 3);
    std::thread::sleep(Duration::from_millis(RETENTION_CHECK_INTERVAL_MS * 5));
    assert!(
        segment_count(&partition_dir) >= 3,
        "retention.ms=3600000 keeps them"
    );
    assert_eq!(
        described_config(&broker, &topic, "retention.ms"),
        "Config: retention.ms=3600000\t(topic)"
    );
    strom(
        &broker,
        &[
            "topic",
            "alter-config",
            &topic,
            "--set",
            "retention.ms=1000",
            "--set",
            "segment.ms=600000",
        ],
    )
    .assert_success();
    wait_until(
        "the old segments to be deleted after strom set retention.ms=1000",
        RETENTION_WAIT,
        || segment_count(&partition_dir) == 1,
    );
    strom(
        &broker,
        &["topic", "alter-config", &topic, "--delete", "segment.ms"],
    )
    .assert_success();
    assert_eq!(
        described_config(&broker, &topic, "segment.ms"),
        "Config: segment.ms=604800000\t(default)"
    );
    // An invalid value through strom: a one-line INVALID_CONFIG error, nothing changed.
    let refused = strom(
        &broker,
        &[
            "topic",
            "alter-config",
            &topic,
            "--set",
            "retention.ms=soon",
        ],
    );
    assert!(!refused.status.success(), "{}", refused.stdout_str());
    assert!(
        refused.stderr_str().contains("INVALID_CONFIG"),
        "{}",
        refused.stderr_str()
    );
    assert_eq!(
        described_config(&broker, &topic, "retention.ms"),
        "Config: retention.ms=1000\t(topic)"
    );
}

fn fetch_batch_codecs(broker: &Broker, topic: &str) -> Vec<i16> {
    let mut connection = Connection::open(broker);
    let request = FetchRequest::default()
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(16 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(16 << 20)])]);
    let response: FetchResponse = connection.call(ApiKey::Fetch, 12, &request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0, "fetch {topic}");
    let records = partition.records.clone().unwrap_or_default();
    // Walk the batches: base offset (8), length (4), then the rest; attributes at byte 21.
    let mut codecs = Vec::new();
    let mut at = 0;
    while at + 23 <= records.len() {
        let length = i32::from_be_bytes(records[at + 8..at + 12].try_into().expect("4 bytes"));
        let attributes = i16::from_be_bytes([records[at + 21], records[at + 22]]);
        codecs.push(attributes & 0x7);
        at += 12 + length as usize;
    }
    assert!(!codecs.is_empty(), "no batches in {topic}");
    codecs
}

fn produce_gzip(broker: &Broker, topic: &str, count: usize) -> serde_json::Value {
    let out = python_client(
        "compressed_produce.py",
        &args([
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            topic,
            "--codec",
            "gzip",
            "--count",
            &count.to_string(),
        ]),
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let seen = out.result_json();
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["acked"], count, "{seen}");
    let records = seen["records"].as_array().expect("records");
    assert_eq!(records.len(), count, "every record read back");
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record["offset"], index, "{record}");
        assert_eq!(record["key"], format!("k{index}"));
        assert_eq!(record["value"], format!("value-{index} ").repeat(20));
        assert_eq!(
            record["headers"],
            serde_json::json!([["seq", index.to_string()], ["seq", "again"]]),
            "headers, duplicates included, survive"
        );
    }
    seen
}

#[test]
fn a_topic_codec_recompresses_batches_that_arrive_in_another() {
    const GZIP: i16 = 1;
    const LZ4: i16 = 3;
    let broker = Broker::start(BrokerOpts::new());
    let lz4_topic = unique_topic("lz4-topic");
    strom(
        &broker,
        &[
            "topic",
            "create",
            &lz4_topic,
            "--partitions",
            "1",
            "--config",
            "compression.type=lz4",
        ],
    )
    .assert_success();
    produce_gzip(&broker, &lz4_topic, 500);
    let codecs = fetch_batch_codecs(&broker, &lz4_topic);
    assert!(
        codecs.iter().all(|codec| *codec == LZ4),
        "every stored batch is lz4: {codecs:?}"
    );

    let producer_topic = unique_topic("producer-topic");
    strom(
        &broker,
        &["topic", "create", &producer_topic, "--partitions", "1"],
    )
    .assert_success();
    produce_gzip(&broker, &producer_topic, 100);
    let codecs = fetch_batch_codecs(&broker, &producer_topic);
    assert!(
        codecs.iter().all(|codec| *codec == GZIP),
        "compression.type=producer stores what the producer sent: {codecs:?}"
    );
}

#[test]
fn a_config_change_through_one_broker_applies_on_the_others_and_survives_restart() {
    let mut cluster = common::cluster::Cluster::start(
        3,
        BrokerOpts::new().set("auto.leader.rebalance.enable", "false"),
    );
    let topic = unique_topic("alter-cluster");
    cluster.create_topic_assigned(1, &topic, &[vec![1, 2, 3]], &[]);
    let leader = replication_support::leader_of(&cluster, 1, &topic, 0).leader;
    replication_support::wait_isr(
        &mut cluster,
        leader,
        &topic,
        0,
        &[1, 2, 3],
        replication_support::SLACK,
    );
    let bootstrap = cluster.bootstrap(leader);
    let (acked, errors) = replication_support::produce(&bootstrap, &topic, 0, "all", 10, 0);
    assert_eq!((acked.len(), errors.len()), (10, 0), "{errors:?}");

    // Through a broker that does not lead the partition: more in-sync replicas than exist.
    let other = replication_support::others(leader)[0];
    strom(
        cluster.broker(other),
        &[
            "topic",
            "alter-config",
            &topic,
            "--set",
            "min.insync.replicas=4",
        ],
    )
    .assert_success();
    let refused_on = |cluster: &common::cluster::Cluster, leader: i32| {
        let (acked, errors) =
            replication_support::produce(&cluster.bootstrap(leader), &topic, 0, "all", 5, 100);
        (acked.len(), errors.get("NOT_ENOUGH_REPLICAS").copied())
    };
    // The leader applies it from its watch; give the watch a moment on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = refused_on(&cluster, leader);
        if seen == (0, Some(5)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acks=all still accepted on leader {leader}: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The override is in the store: it holds after the leader restarts.
    cluster.broker(leader).restart();
    let new_leader = cluster
        .wait_partition(
            other,
            &topic,
            0,
            Duration::from_secs(60),
            "a leader with every replica in sync",
            |p| p.leader >= 0 && p.isr.len() == 3,
        )
        .leader;
    assert_eq!(
        refused_on(&cluster, new_leader),
        (0, Some(5)),
        "min.insync.replicas=4 holds after the restart (leader {new_leader})"
    );

    // Back to the broker default: acks=all succeeds again.
    strom(
        cluster.broker(leader),
        &[
            "topic",
            "alter-config",
            &topic,
            "--delete",
            "min.insync.replicas",
        ],
    )
    .assert_success();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (acked, errors) =
            replication_support::produce(&cluster.bootstrap(new_leader), &topic, 0, "all", 5, 200);
        if acked.len() == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acks=all still refused: {errors:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn alter_broker_configs(broker: &Broker, topic: &str, extra: &[&str]) -> serde_json::Value {
    let mut arguments = args([
        "--bootstrap",
        &broker.bootstrap(),
        "--broker",
        "0",
        "--topic",
        topic,
    ]);
    arguments.extend(extra.iter().map(|arg| arg.to_string()));
    let out = python_client("alter_broker_configs.py", &arguments, CLIENT_TIMEOUT);
    out.assert_success();
    out.result_json()
}

#[test]
fn a_dynamic_broker_default_applies_to_topics_without_an_override_and_survives_restart() {
    let mut broker = Broker::start(BrokerOpts::new().set(
        "log.retention.check.interval.ms",
        RETENTION_CHECK_INTERVAL_MS,
    ));
    let topic = unique_topic("dynamic-broker");
    strom(
        &broker,
        &[
            "topic",
            "create",
            &topic,
            "--partitions",
            "1",
            "--config",
            "segment.bytes=1024",
        ],
    )
    .assert_success();
    let partition_dir = broker.log_dirs().join(format!("{topic}-0"));
    let mut connection = Connection::open(&broker);
    produce_batches(&mut connection, &topic, 4);
    assert!(segment_count(&partition_dir) >= 4, "one segment per batch");

    let seen = alter_broker_configs(
        &broker,
        &topic,
        &["--try-refused", "--set", "log.retention.ms=1000"],
    );
    assert_eq!(seen["invalid_error"], "INVALID_CONFIG", "{seen}");
    assert_eq!(
        seen["static_key_error"], "INVALID_REQUEST",
        "num.partitions cannot change at run time: {seen}"
    );
    assert_eq!(seen["set_error"], serde_json::Value::Null, "{seen}");
    assert_eq!(
        seen["broker_retention"],
        serde_json::json!({"value": "1000", "source": "DYNAMIC_BROKER_CONFIG", "read_only": false}),
        "{seen}"
    );
    assert_eq!(
        seen["topic_retention"],
        serde_json::json!({"value": "1000", "source": "DYNAMIC_BROKER_CONFIG", "read_only": false}),
        "the topic falls back to the dynamic broker value: {seen}"
    );
    wait_until(
        "the old segments to be deleted after log.retention.ms=1000",
        RETENTION_WAIT,
        || segment_count(&partition_dir) == 1,
    );

    // The dynamic value is in the store: it holds after a restart.
    drop(connection);
    broker.restart();
    let seen = alter_broker_configs(&broker, &topic, &[]);
    assert_eq!(
        seen["topic_retention"]["value"], "1000",
        "after the restart: {seen}"
    );
    assert_eq!(
        seen["topic_retention"]["source"], "DYNAMIC_BROKER_CONFIG",
        "{seen}"
    );

    // The cluster-wide default (the empty broker name; librdkafka cannot name it, so on the
    // wire): a topic without an override falls back to it.
    let mut connection = Connection::open(&broker);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_static_str("log.roll.ms"))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_static_str("600000")))]),
    ]);
    let response: IncrementalAlterConfigsResponse =
        connection.call(ApiKey::IncrementalAlterConfigs, 0, &request);
    assert_eq!(response.responses[0].error_code, 0, "{response:?}");
    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.clone()))
            .with_configuration_keys(Some(vec![StrBytes::from_static_str("segment.ms")]))]);
    let response: DescribeConfigsResponse = connection.call(ApiKey::DescribeConfigs, 1, &request);
    let segment_ms = &response.results[0].configs[0];
    assert_eq!(
        segment_ms.value.as_ref().map(|v| v.as_str()),
        Some("600000"),
        "{response:?}"
    );
    assert_eq!(
        segment_ms.config_source, 3,
        "DYNAMIC_DEFAULT_BROKER_CONFIG: {response:?}"
    );
}
