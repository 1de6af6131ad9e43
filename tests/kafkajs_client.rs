//! kafkajs 2.2.4 (tests/clients/node_modules) against a real strom process. kafkajs speaks older
//! protocol versions than the other clients (Metadata <= 6, Produce <= 7, Fetch <= 11,
//! ListOffsets <= 3, ApiVersions v2 -> v1 -> v0). The client side is tests/clients/kafkajs_roundtrip.js.

mod common;

use common::*;

const COUNT: u64 = 1_000;
const PARTITIONS: u64 = 3;

fn run_kafkajs(mode: &str, compression: &str) -> serde_json::Value {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic(&format!("kafkajs-{mode}-{compression}"));
    let out = node_client(
        "kafkajs_roundtrip.js",
        &args([
            mode,
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            &topic,
            "--count",
            &COUNT.to_string(),
            "--partitions",
            &PARTITIONS.to_string(),
            "--compression",
            compression,
        ]),
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let result = out.result_json();
    assert_no_errors(&result);
    assert_eq!(
        json_u64(&result, "produced"),
        COUNT,
        "produced messages: {result}"
    );
    result
}

/// createTopics, producer.send with acks=-1 (base offsets checked), fetchTopicMetadata,
/// fetchTopicOffsets, then kafkajs's own Fetch request and decoder read everything back (kafkajs
/// has no group-less consumer, so the script uses its internal broker.fetch).
#[test]
fn kafkajs_produce_list_offsets_and_fetch() {
    let result = run_kafkajs("produce-fetch", "none");
    assert_eq!(
        json_u64(&result, "fetched"),
        COUNT,
        "verified fetched messages: {result}"
    );
}

#[test]
fn kafkajs_gzip_produce_and_fetch() {
    let result = run_kafkajs("produce-fetch", "gzip");
    assert_eq!(
        json_u64(&result, "fetched"),
        COUNT,
        "verified fetched messages: {result}"
    );
}

/// kafkajs's real consumer only works in a group: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
/// OffsetFetch/OffsetCommit, LeaveGroup.
#[test]
fn kafkajs_group_consumer_reads_everything() {
    let result = run_kafkajs("group-consume", "none");
    assert_eq!(
        json_u64(&result, "consumed"),
        COUNT,
        "verified consumed messages: {result}"
    );
}
