//! `strom topic create|list|describe|add-partitions|delete` against a real broker, cross-checked
//! with kcat's metadata listing.

mod common;
mod tools_support;

use std::time::Duration;

use common::*;
use tools_support::*;

fn kcat_partition_count(broker: &Broker, topic: &str) -> usize {
    let out = kcat(
        &["-b", &broker.bootstrap(), "-L", "-J", "-t", topic],
        None,
        Duration::from_secs(30),
    );
    out.assert_success();
    let metadata = out.result_json();
    let topics = metadata["topics"]
        .as_array()
        .expect("kcat -L -J lists topics");
    let entry = topics
        .iter()
        .find(|t| t["topic"] == topic)
        .unwrap_or_else(|| panic!("kcat does not see {topic}: {metadata}"));
    entry["partitions"].as_array().map_or(0, Vec::len)
}

#[test]
fn topic_lifecycle() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("tools-topic");

    let created = strom(
        &broker,
        &[
            "topic",
            "create",
            &topic,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=3600000",
        ],
    );
    created.assert_success();
    assert!(
        created.stdout_str().contains(&format!(
            "created topic {topic} (3 partitions, replication factor 1)"
        )),
        "{}",
        created.stdout_str()
    );

    let listed = strom(&broker, &["topic", "list"]);
    listed.assert_success();
    assert!(lines(&listed).contains(&topic), "{}", listed.stdout_str());
    let long = strom(&broker, &["topic", "list", "--long"]);
    assert!(
        long.stdout_str()
            .contains(&format!("{topic}\tpartitions=3\treplication=1")),
        "{}",
        long.stdout_str()
    );

    let described = strom(&broker, &["topic", "describe", &topic]);
    described.assert_success();
    let text = described.stdout_str();
    assert!(
        text.contains(&format!("Topic: {topic}\t"))
            && text.contains("PartitionCount: 3\tReplicationFactor: 1"),
        "{text}"
    );
    assert!(
        text.contains("retention.ms=3600000"),
        "the topic's own config is shown: {text}"
    );
    for partition in 0..3 {
        assert!(
            text.contains(&format!("\tPartition: {partition}\tLeader: ")),
            "{text}"
        );
    }
    assert_eq!(kcat_partition_count(&broker, &topic), 3);

    assert_one_line_error(
        &strom(&broker, &["topic", "create", &topic, "--partitions", "1"]),
        1,
        "TOPIC_ALREADY_EXISTS",
    );
    strom(&broker, &["topic", "create", &topic, "--if-not-exists"]).assert_success();

    strom(
        &broker,
        &["topic", "add-partitions", &topic, "--partitions", "5"],
    )
    .assert_success();
    let described = strom(&broker, &["topic", "describe", &topic]).stdout_str();
    assert!(described.contains("PartitionCount: 5"), "{described}");
    assert_eq!(
        kcat_partition_count(&broker, &topic),
        5,
        "an independent client sees the new partitions"
    );
    assert_one_line_error(
        &strom(
            &broker,
            &["topic", "add-partitions", &topic, "--partitions", "2"],
        ),
        1,
        "must be larger",
    );

    strom(&broker, &["topic", "delete", &topic]).assert_success();
    let listed = strom(&broker, &["topic", "list"]);
    assert!(!lines(&listed).contains(&topic), "{}", listed.stdout_str());
    assert_one_line_error(
        &strom(&broker, &["topic", "describe", &topic]),
        1,
        &format!("unknown topic '{topic}'"),
    );
    assert_one_line_error(
        &strom(&broker, &["topic", "delete", &topic]),
        1,
        &format!("unknown topic '{topic}'"),
    );
    strom(&broker, &["topic", "delete", &topic, "--if-exists"]).assert_success();
}

#[test]
fn create_with_broker_defaults() {
    let broker = Broker::start(BrokerOpts::new().set("num.partitions", 2));
    let topic = unique_topic("tools-defaults");
    let created = strom(&broker, &["topic", "create", &topic]);
    created.assert_success();
    assert!(
        created.stdout_str().contains("(2 partitions"),
        "{}",
        created.stdout_str()
    );
    assert_eq!(kcat_partition_count(&broker, &topic), 2);
}
