//! kafka-python 3.x against a real strom process. kafka-python auto-detects the broker version from
//! the ApiVersions table and is idempotent by default, so this also checks that strom's advertised
//! ranges look like a real Kafka release (>= 0.11, or idempotence and headers are switched off).
//! The client side is tests/clients/kafka_python_roundtrip.py.

mod common;

use common::*;

const COUNT: u64 = 1_000;

fn roundtrip(compression: &str) {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic(&format!("kafka-python-{compression}"));
    let out = python_client(
        "kafka_python_roundtrip.py",
        &args([
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            &topic,
            "--count",
            &COUNT.to_string(),
            "--partitions",
            "3",
            "--compression",
            compression,
        ]),
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let result = out.result_json();
    assert_no_errors(&result);
    assert_eq!(
        json_u64(&result, "delivered"),
        COUNT,
        "acknowledged sends: {result}"
    );
    assert_eq!(
        json_u64(&result, "consumed"),
        COUNT,
        "verified consumed messages: {result}"
    );

    let version: Vec<u64> = result["api_version"]
        .as_array()
        .unwrap_or_else(|| panic!("no api_version in result: {result}"))
        .iter()
        .map(|v| v.as_u64().expect("api_version component"))
        .collect();
    assert!(
        version >= vec![0, 11],
        "kafka-python guessed broker version {version:?} from ApiVersions; headers and idempotence \
         need >= 0.11 (advertise ranges of a real Kafka release)"
    );
    assert_eq!(
        result["idempotent"], true,
        "kafka-python 3 is idempotent by default and only turns it off for brokers it thinks are \
         too old: {result}"
    );
}

#[test]
fn kafka_python_roundtrip_uncompressed() {
    roundtrip("none");
}

#[test]
fn kafka_python_roundtrip_gzip() {
    roundtrip("gzip");
}
