//! confluent-kafka (Python, librdkafka 2.x) against a real strom process: a full round trip with
//! every compression codec, an idempotent producer, and offsets_for_times (ListOffsets by time).
//! The client side lives in tests/clients/confluent_roundtrip.py, which verifies every key, value,
//! header and timestamp byte for byte and reports a JSON result that these tests check.

mod common;

use common::*;

const COUNT: u64 = 2_000;
const PARTITIONS: u64 = 3;

/// Runs the script's `roundtrip` on a fresh broker and checks its report.
fn roundtrip(compression: &str, idempotence: bool) -> serde_json::Value {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic(&format!("confluent-{compression}"));
    let mut script_args = args([
        "roundtrip",
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
    ]);
    if idempotence {
        script_args.push("--idempotence".into());
    }
    let out = python_client("confluent_roundtrip.py", &script_args, CLIENT_TIMEOUT);
    out.assert_success();
    let result = out.result_json();
    assert_no_errors(&result);
    assert_eq!(
        json_u64(&result, "delivered"),
        COUNT,
        "acknowledged messages: {result}"
    );
    assert_eq!(
        json_u64(&result, "consumed"),
        COUNT,
        "verified consumed messages: {result}"
    );
    let per_partition = result["per_partition"].as_object().expect("per_partition");
    assert_eq!(
        per_partition.len() as u64,
        PARTITIONS,
        "keyed messages must land in every partition: {result}"
    );
    result
}

/// The script counts messages per codec from librdkafka's own produce log; most must use the codec
/// (librdkafka leaves a batch uncompressed when compressing does not shrink it).
fn assert_codec_used(result: &serde_json::Value, codec: &str) {
    let used = result["messages_by_codec"][codec].as_u64().unwrap_or(0);
    assert!(
        used * 10 >= COUNT * 9,
        "only {used} of {COUNT} messages were produced with {codec}: {result}"
    );
}

#[test]
fn roundtrip_uncompressed() {
    let result = roundtrip("none", false);
    assert_codec_used(&result, "uncompressed");
}

#[test]
fn roundtrip_gzip() {
    let result = roundtrip("gzip", false);
    assert_codec_used(&result, "gzip");
}

#[test]
fn roundtrip_snappy() {
    let result = roundtrip("snappy", false);
    assert_codec_used(&result, "snappy");
}

#[test]
fn roundtrip_lz4() {
    let result = roundtrip("lz4", false);
    assert_codec_used(&result, "lz4");
}

#[test]
fn roundtrip_zstd() {
    let result = roundtrip("zstd", false);
    assert_codec_used(&result, "zstd");
}

/// enable.idempotence=true: InitProducerId, then sequence numbers on every batch; the script checks
/// offsets are dense and in production order (no duplicates, no gaps).
#[test]
fn idempotent_producer_roundtrip() {
    let result = roundtrip("none", true);
    assert_eq!(
        result["idempotence"], true,
        "script ran without idempotence: {result}"
    );
}

/// ListOffsets by timestamp: earliest offset whose timestamp is >= the target, -1 past the end,
/// checked for targets before, on, between and after the produced timestamps in every partition.
#[test]
fn offsets_for_times_finds_the_first_offset_at_or_after_a_timestamp() {
    const MESSAGES: u64 = 600;
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("confluent-offsets-for-times");
    let out = python_client(
        "confluent_roundtrip.py",
        &args([
            "offsets-for-times",
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            &topic,
            "--count",
            &MESSAGES.to_string(),
            "--partitions",
            &PARTITIONS.to_string(),
        ]),
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let result = out.result_json();
    assert_no_errors(&result);
    assert_eq!(
        json_u64(&result, "consumed"),
        MESSAGES,
        "verified messages: {result}"
    );
    assert!(
        json_u64(&result, "queries_checked") >= 10 * PARTITIONS,
        "too few offsets_for_times answers were checked: {result}"
    );
}
