//! Admin APIs through a real client (confluent-kafka's AdminClient): CreateTopics with configs
//! (and its errors), DescribeConfigs, DeleteRecords, CreatePartitions, DescribeCluster and
//! DeleteTopics.

mod common;

use common::{args, python_client, unique_topic, Broker, BrokerOpts, CLIENT_TIMEOUT};

#[test]
fn admin_client_manages_topics_configs_and_records() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("admin");
    let out = python_client(
        "admin_apis.py",
        &args(["--bootstrap", &broker.bootstrap(), "--topic", &topic]),
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let seen = out.result_json();
    assert_eq!(seen["recreate_error"], "TOPIC_ALREADY_EXISTS", "{seen}");
    assert_eq!(seen["bad_config_error"], "INVALID_CONFIG", "{seen}");
    assert_eq!(
        seen["retention_ms"], "123456",
        "the topic override is described: {seen}"
    );
    assert_eq!(seen["retention_ms_is_default"], false, "{seen}");
    assert_eq!(seen["segment_bytes_is_default"], true, "{seen}");
    assert_eq!(
        seen["unclean_leader_election"], "true",
        "unclean.leader.election.enable is a topic config CreateTopics takes: {seen}"
    );
    assert_eq!(
        seen["low_watermark"], 4,
        "DeleteRecords moved the log start: {seen}"
    );
    assert_eq!(
        seen["partitions_after_grow"], 5,
        "CreatePartitions grew the topic: {seen}"
    );
    assert_eq!(
        seen["cluster_nodes"], 1,
        "DescribeCluster lists this broker: {seen}"
    );
    assert_eq!(seen["deleted"], true, "DeleteTopics removed it: {seen}");
}
