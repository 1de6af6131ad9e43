//! kcat (Debian's 1.7.1, built on librdkafka 2.0.2) against a real strom process: metadata listing,
//! a 10,000-message keyed produce with headers into an auto-created multi-partition topic, a full
//! consume back from the beginning checked byte for byte and in order, and every compression codec.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use serde_json::Value;

const PARTITIONS: usize = 4;
const MESSAGES: usize = 10_000;
/// Distinct keys: fewer than messages so keys repeat and per-key partition placement is checked.
const KEYS: usize = 100;
/// The same headers go on every message (kcat's -H applies to all), in this order.
const HEADERS: [(&str, &str); 4] = [
    ("source", "kcat"),
    ("unicode", "ü€𝄞"),
    ("dup", "1"),
    ("dup", "2"),
];

fn broker_with_auto_create() -> Broker {
    Broker::start(
        BrokerOpts::new()
            .set("auto.create.topics.enable", "true")
            .set("num.partitions", PARTITIONS),
    )
}

fn key_of(i: usize) -> String {
    format!("key-{}", i % KEYS)
}

/// Values carry their index, contain the key delimiter ':' (kcat splits at the first one only),
/// multi-byte UTF-8, and vary in length up to ~20 KB; never a newline (kcat's message delimiter).
fn value_of(i: usize) -> String {
    let filler = if i.is_multiple_of(1000) {
        "0123456789abcdef".repeat(1250)
    } else {
        "ü€x:".repeat(i % 50)
    };
    format!("value-{i}:{filler}")
}

fn index_of_value(payload: &str) -> usize {
    payload
        .strip_prefix("value-")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("consumed payload does not come from this test: {payload:.80}"))
}

fn produce_input(count: usize) -> Vec<u8> {
    let mut input = String::new();
    for i in 0..count {
        input.push_str(&key_of(i));
        input.push(':');
        input.push_str(&value_of(i));
        input.push('\n');
    }
    input.into_bytes()
}

fn kcat_consume_all(bootstrap: &str, topic: &str) -> Vec<Value> {
    let out = kcat(
        &[
            "-C",
            "-b",
            bootstrap,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-J",
            "-q",
            // Verify every batch's CRC: catches stored or served corruption.
            "-X",
            "check.crcs=true",
        ],
        None,
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    out.json_lines()
}

fn str_field<'a>(record: &'a Value, field: &str) -> &'a str {
    record
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("kcat record has no string field `{field}`: {record}"))
}

fn int_field(record: &Value, field: &str) -> i64 {
    record
        .get(field)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("kcat record has no integer field `{field}`: {record}"))
}

#[test]
fn metadata_lists_the_broker_at_its_listener_address() {
    let broker = broker_with_auto_create();
    let boot = broker.bootstrap();
    let out = kcat(&["-L", "-J", "-b", &boot], None, CLIENT_TIMEOUT);
    out.assert_success();
    let metadata = out.result_json();
    let brokers = metadata["brokers"]
        .as_array()
        .unwrap_or_else(|| panic!("kcat -L -J printed no broker list: {metadata}"));
    assert_eq!(
        brokers.len(),
        1,
        "a single strom process must list exactly one broker: {metadata}"
    );
    assert_eq!(
        brokers[0]["name"].as_str(),
        Some(boot.as_str()),
        "the broker must advertise the address it listens on (clients connect to it): {metadata}"
    );
    assert!(
        brokers[0]["id"].as_i64().is_some_and(|id| id >= 0),
        "broker id must be a non-negative node id: {metadata}"
    );
}

#[test]
fn ten_thousand_keyed_messages_with_headers_round_trip_in_order() {
    let broker = broker_with_auto_create();
    let boot = broker.bootstrap();
    let topic = unique_topic("kcat-roundtrip");

    let mut produce_args = vec!["-P", "-b", &boot, "-t", &topic, "-K:", "-X", "acks=all"];
    let header_args: Vec<String> = HEADERS.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for header in &header_args {
        produce_args.extend(["-H", header.as_str()]);
    }
    kcat(&produce_args, Some(produce_input(MESSAGES)), CLIENT_TIMEOUT).assert_success();

    // The topic was auto-created by the producer's metadata request with num.partitions partitions.
    let out = kcat(
        &["-L", "-J", "-b", &boot, "-t", &topic],
        None,
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let metadata = out.result_json();
    let partitions = metadata["topics"][0]["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no partitions for {topic} in metadata: {metadata}"));
    assert_eq!(
        partitions.len(),
        PARTITIONS,
        "auto-created topic must get num.partitions={PARTITIONS} partitions: {metadata}"
    );
    let broker_id = metadata["brokers"][0]["id"].as_i64();
    for p in partitions {
        assert_eq!(
            p["leader"].as_i64(),
            broker_id,
            "every partition must be led by the only broker: {p}"
        );
    }

    let records = kcat_consume_all(&boot, &topic);
    assert_eq!(
        records.len(),
        MESSAGES,
        "consumed {} records, produced {MESSAGES}",
        records.len()
    );

    let expected_headers: Vec<Value> = HEADERS
        .iter()
        .flat_map(|(k, v)| [Value::from(*k), Value::from(*v)])
        .collect();
    let mut seen = vec![false; MESSAGES];
    let mut next_offset: BTreeMap<i64, i64> = BTreeMap::new();
    let mut last_index: HashMap<i64, usize> = HashMap::new();
    let mut partition_of_key: HashMap<String, i64> = HashMap::new();
    for record in &records {
        assert_eq!(
            str_field(record, "topic"),
            topic,
            "record from another topic: {record}"
        );
        let partition = int_field(record, "partition");
        let offset = int_field(record, "offset");
        let payload = str_field(record, "payload");
        let i = index_of_value(payload);
        let at = format!("{topic}/{partition}@{offset} (message {i})");

        assert!(
            i < MESSAGES && !seen[i],
            "{at}: duplicate or out-of-range message"
        );
        seen[i] = true;
        assert_eq!(
            payload,
            value_of(i),
            "{at}: payload differs from what was produced"
        );
        assert_eq!(str_field(record, "key"), key_of(i), "{at}: key differs");
        assert_eq!(
            record["headers"].as_array(),
            Some(&expected_headers),
            "{at}: headers differ (names, values, order and duplicates must be kept)"
        );
        assert_eq!(
            str_field(record, "tstype"),
            "create",
            "{at}: producer timestamps must be kept as CreateTime"
        );

        // Offsets of a fresh partition are dense from 0 and read in order.
        let expected_offset = next_offset.entry(partition).or_insert(0);
        assert_eq!(
            offset, *expected_offset,
            "{at}: offsets must be dense and in order"
        );
        *expected_offset += 1;
        // One producer, no retries on a healthy local broker: each partition keeps production order.
        if let Some(prev) = last_index.insert(partition, i) {
            assert!(
                prev < i,
                "{at}: follows message {prev} in the same partition (reordered)"
            );
        }
        // Same key, same partition: the key-hash partitioner needs stable partition counts.
        let first = *partition_of_key.entry(key_of(i)).or_insert(partition);
        assert_eq!(
            first,
            partition,
            "{at}: key {} split across partitions",
            key_of(i)
        );
    }
    assert!(
        seen.iter().all(|&s| s),
        "every produced message must be consumed"
    );
    assert_eq!(
        next_offset.len(),
        PARTITIONS,
        "{KEYS} keys must spread over all {PARTITIONS} partitions, got {next_offset:?}"
    );
}

/// Debian's librdkafka 2.0.2 enables compression only if the broker's advertised Produce range
/// includes v0 (and zstd needs v7); otherwise it silently sends uncompressed batches. This checks
/// from librdkafka's own debug log that each codec is really used, and that the data reads back.
#[test]
fn every_compression_codec_is_really_used_and_reads_back() {
    const COUNT: usize = 1_000;
    let broker = broker_with_auto_create();
    let boot = broker.bootstrap();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = unique_topic(&format!("kcat-{codec}"));
        let codec_setting = format!("compression.codec={codec}");
        let out = kcat(
            &[
                "-P",
                "-b",
                &boot,
                "-t",
                &topic,
                "-K:",
                "-X",
                &codec_setting,
                "-X",
                "linger.ms=20",
                "-d",
                "msg",
            ],
            Some(produce_input(COUNT)),
            CLIENT_TIMEOUT,
        );
        out.assert_success();
        // librdkafka's msg debug line per request: "Produce MessageSet with N message(s) (...,
        // ApiVersion V, MsgVersion 2, ..., CODEC)".
        let mut by_codec: BTreeMap<String, usize> = BTreeMap::new();
        for line in out.stderr_str().lines() {
            if let Some(rest) = line.split("Produce MessageSet with ").nth(1) {
                let n: usize = rest
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let used = rest
                    .trim_end()
                    .trim_end_matches(')')
                    .rsplit(", ")
                    .next()
                    .unwrap_or("");
                *by_codec.entry(used.to_string()).or_default() += n;
            }
        }
        let compressed = by_codec.get(codec).copied().unwrap_or(0);
        // librdkafka sends a batch uncompressed when compression does not shrink it, so most, not
        // all, messages must go compressed.
        assert!(
            compressed * 10 >= COUNT * 9,
            "kcat sent only {compressed} of {COUNT} messages with {codec} (messages per codec: \
             {by_codec:?}); does the broker advertise Produce v0..v7+ so librdkafka 2.0.2 enables it?"
        );

        let records = kcat_consume_all(&boot, &topic);
        let mut indices: Vec<usize> = records
            .iter()
            .map(|r| {
                let payload = str_field(r, "payload");
                let i = index_of_value(payload);
                assert_eq!(
                    payload,
                    value_of(i),
                    "{codec}: payload of message {i} differs"
                );
                assert_eq!(
                    str_field(r, "key"),
                    key_of(i),
                    "{codec}: key of message {i} differs"
                );
                i
            })
            .collect();
        indices.sort_unstable();
        assert_eq!(
            indices,
            (0..COUNT).collect::<Vec<_>>(),
            "{codec}: every message must read back exactly once"
        );
    }
}
