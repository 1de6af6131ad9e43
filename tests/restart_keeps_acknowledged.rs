//! Acknowledged (acks=all) messages survive broker restarts: a clean restart (SIGTERM) while a
//! producer is running, and `kill -9` while a producer is running under `log.durability=sync`.
//!
//! The producer (tests/clients/confluent_roundtrip.py produce-tracked) paces its sends, prints
//! progress lines and records every acknowledged (message, partition, offset); librdkafka retries
//! through the outage. The verifier (verify-acked) then checks every acknowledged message is at its
//! acknowledged partition and offset with the exact bytes produced, and nothing is corrupt.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const COUNT: u64 = 3_000;
const RATE_PER_SEC: u64 = 1_000;
/// The broker is restarted (or killed) once this many messages are acknowledged.
const DISRUPT_AFTER_ACKED: u64 = 1_000;

/// Starts the tracked producer, waits for `DISRUPT_AFTER_ACKED` acknowledgements, runs `disrupt`
/// on the broker while the producer keeps going, and checks the producer got everything acked.
fn produce_through(
    broker: &mut Broker,
    topic: &str,
    acked_file: &Path,
    disrupt: impl FnOnce(&mut Broker),
) {
    let mut producer = python_client_background(
        "confluent_roundtrip.py",
        &args([
            "produce-tracked",
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            topic,
            "--count",
            &COUNT.to_string(),
            "--partitions",
            "3",
            "--rate",
            &RATE_PER_SEC.to_string(),
            "--acked-file",
            acked_file.to_str().unwrap(),
            "--create",
        ]),
        Duration::from_secs(240),
    );
    producer.wait_for_line(Duration::from_secs(60), |line| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["progress"]["acked"].as_u64())
            .is_some_and(|acked| acked >= DISRUPT_AFTER_ACKED)
    });
    disrupt(broker);
    let out = producer.finish();
    out.assert_success();
    let result = out.result_json();
    assert_no_errors(&result);
    // With a 90 s message timeout librdkafka retries through a restart of a few seconds, so every
    // message must end up acknowledged.
    assert_eq!(
        json_u64(&result, "acked"),
        COUNT,
        "every message must be acknowledged once the broker is back: {result}"
    );
}

/// Every acknowledged message is at its acknowledged partition/offset with its exact bytes.
fn verify_acked(broker: &Broker, topic: &str, acked_file: &Path, when: &str) {
    let out = python_client(
        "confluent_roundtrip.py",
        &args([
            "verify-acked",
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            topic,
            "--partitions",
            "3",
            "--acked-file",
            acked_file.to_str().unwrap(),
        ]),
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let result = out.result_json();
    assert_no_errors(&result);
    assert_eq!(
        json_u64(&result, "acked"),
        COUNT,
        "{when}: acknowledged messages checked: {result}"
    );
    assert_eq!(
        json_u64(&result, "lost"),
        0,
        "{when}: acknowledged messages lost: {result}"
    );
    assert_eq!(
        json_u64(&result, "distinct_ids"),
        COUNT,
        "{when}: every produced message must be readable: {result}"
    );
}

#[test]
fn clean_restart_midway_keeps_every_acknowledged_message() {
    let mut broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("restart-clean");
    let scratch = tempfile::tempdir().expect("scratch dir");
    let acked_file = scratch.path().join("acked.json");

    // restart() asserts the SIGTERM shutdown exits 0, then starts on the same port and log.dirs.
    produce_through(&mut broker, &topic, &acked_file, Broker::restart);
    verify_acked(
        &broker,
        &topic,
        &acked_file,
        "after a clean restart during production",
    );

    // Everything, including what was written after the first restart, survives another one.
    broker.restart();
    verify_acked(&broker, &topic, &acked_file, "after a second clean restart");
}

#[test]
fn kill9_under_sync_durability_keeps_every_acknowledged_message() {
    let mut broker = Broker::start(BrokerOpts::new().set("log.durability", "sync"));
    let topic = unique_topic("restart-kill9");
    let scratch = tempfile::tempdir().expect("scratch dir");
    let acked_file = scratch.path().join("acked.json");

    // Killed with requests in flight: whatever was acknowledged before the kill must be on disk.
    produce_through(&mut broker, &topic, &acked_file, |broker| {
        broker.kill9();
        broker.restart();
    });
    verify_acked(
        &broker,
        &topic,
        &acked_file,
        "after kill -9 during production",
    );

    // And a kill -9 after everything was acknowledged loses nothing either.
    broker.kill9();
    broker.restart();
    verify_acked(
        &broker,
        &topic,
        &acked_file,
        "after kill -9 once production had finished",
    );
}
