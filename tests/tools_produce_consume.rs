//! `strom produce` and `strom consume` against a real broker, cross-checked both ways with kcat:
//! kcat reads what the console producer wrote (keys, values, headers, partitioning), and the
//! console consumer reads what kcat wrote.

mod common;
mod tools_support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tools_support::*;

const KCAT_TIMEOUT: Duration = Duration::from_secs(60);

/// `key-i:value-i` lines; values contain the separator (only the first one splits) and UTF-8.
fn keyed_input(count: usize) -> String {
    (0..count)
        .map(|i| format!("key-{}:value-{i}:ü€{}\n", i % 7, "x".repeat(i % 40)))
        .collect()
}

fn consume_json(broker: &Broker, args: &[&str]) -> Vec<Value> {
    let out = strom(broker, args);
    out.assert_success();
    out.json_lines()
}

#[test]
fn console_round_trip_with_keys_and_headers() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("tools-console");
    create_topic(&broker, &topic, 3);
    let count = 200;
    let produced = strom_stdin(
        &broker,
        &[
            "produce",
            &topic,
            "--key-separator",
            ":",
            "--header",
            "source=strom",
            "--header",
            "n=1",
            "--acks",
            "all",
        ],
        &keyed_input(count),
    );
    produced.assert_success();
    assert!(
        produced
            .stderr_str()
            .contains(&format!("produced {count} records to {topic}")),
        "{}",
        produced.stderr_str()
    );

    let records = consume_json(
        &broker,
        &[
            "consume",
            &topic,
            "--from-beginning",
            "-n",
            &count.to_string(),
            "--json",
        ],
    );
    assert_eq!(records.len(), count);
    let mut partition_of_key: BTreeMap<String, i64> = BTreeMap::new();
    let mut seen = vec![false; count];
    for record in &records {
        let key = record["key"].as_str().expect("key").to_string();
        let value = record["value"].as_str().expect("value");
        let index: usize = value
            .strip_prefix("value-")
            .and_then(|v| v.split(':').next())
            .and_then(|n| n.parse().ok())
            .expect("index");
        assert_eq!(key, format!("key-{}", index % 7));
        assert_eq!(value, format!("value-{index}:ü€{}", "x".repeat(index % 40)));
        assert_eq!(record["headers"]["source"], "strom");
        assert_eq!(record["headers"]["n"], "1");
        let partition = record["partition"].as_i64().expect("partition");
        assert_eq!(
            *partition_of_key.entry(key).or_insert(partition),
            partition,
            "one key, one partition"
        );
        seen[index] = true;
    }
    assert!(seen.iter().all(|s| *s), "every record came back");

    // kcat reads the same records with the same keys, headers and partitions.
    let out = kcat(
        &[
            "-b",
            &broker.bootstrap(),
            "-C",
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-J",
            "-q",
        ],
        None,
        KCAT_TIMEOUT,
    );
    out.assert_success();
    let kcat_records = out.json_lines();
    assert_eq!(kcat_records.len(), count);
    for record in &kcat_records {
        let key = record["key"].as_str().expect("kcat key");
        assert_eq!(
            Some(&record["partition"].as_i64().expect("partition")),
            partition_of_key.get(key),
            "{record}"
        );
        let headers = record["headers"].as_array().expect("kcat headers");
        assert_eq!(
            headers,
            &vec![
                Value::from("source"),
                Value::from("strom"),
                Value::from("n"),
                Value::from("1")
            ]
        );
    }

    // Key partitioning matches Kafka's default partitioner (murmur2), as librdkafka's
    // murmur2_random partitioner computes it: kcat -p -1 with that partitioner puts key-3 where
    // strom did.
    let out = kcat(
        &[
            "-b",
            &broker.bootstrap(),
            "-P",
            "-t",
            &topic,
            "-K",
            ":",
            "-X",
            "topic.partitioner=murmur2_random",
        ],
        Some(b"key-3:from-kcat\n".to_vec()),
        KCAT_TIMEOUT,
    );
    out.assert_success();
    let all = consume_json(
        &broker,
        &[
            "consume",
            &topic,
            "--from-beginning",
            "-n",
            &(count + 1).to_string(),
            "--json",
        ],
    );
    let from_kcat = all
        .iter()
        .find(|r| r["value"] == "from-kcat")
        .expect("the console consumer reads kcat's record");
    assert_eq!(
        from_kcat["partition"].as_i64(),
        partition_of_key.get("key-3").copied()
    );
}

#[test]
fn output_formats_partitions_and_offsets() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("tools-format");
    create_topic(&broker, &topic, 2);
    let input: String = (0..10).map(|i| format!("v{i}\n")).collect();
    strom_stdin(
        &broker,
        &["produce", &topic, "--partition", "1", "--header", "h=x"],
        &input,
    )
    .assert_success();

    // Default: values only, one per line.
    let out = strom(
        &broker,
        &["consume", &topic, "--from-beginning", "-n", "10"],
    );
    out.assert_success();
    assert_eq!(
        lines(&out),
        (0..10).map(|i| format!("v{i}")).collect::<Vec<_>>()
    );
    assert!(out.stderr_str().contains("consumed 10 messages"));

    // Every field, Kafka console-consumer style.
    let out = strom(
        &broker,
        &[
            "consume",
            &topic,
            "--from-beginning",
            "-n",
            "1",
            "--print-key",
            "--print-headers",
            "--print-timestamp",
            "--print-offset",
        ],
    );
    out.assert_success();
    let line = lines(&out).remove(0);
    let fields: Vec<&str> = line.split('\t').collect();
    assert!(fields[0].starts_with("CreateTime:"), "{line}");
    assert_eq!(
        &fields[1..],
        &["Partition:1", "Offset:0", "h=x", "null", "v0"],
        "{line}"
    );

    // A kcat-style template, from an offset of one partition.
    let out = strom(
        &broker,
        &[
            "consume",
            &topic,
            "--partition",
            "1",
            "--offset",
            "7",
            "--format",
            "%p/%o=%v\\n",
            "-e",
        ],
    );
    out.assert_success();
    assert_eq!(lines(&out), vec!["1/7=v7", "1/8=v8", "1/9=v9"]);

    // --exit-at-end on an empty partition ends at once with nothing.
    let out = strom(
        &broker,
        &[
            "consume",
            &topic,
            "--partition",
            "0",
            "--from-beginning",
            "-e",
        ],
    );
    out.assert_success();
    assert!(lines(&out).is_empty());

    // kcat-written records read by strom.
    let out = kcat(
        &[
            "-b",
            &broker.bootstrap(),
            "-P",
            "-t",
            &topic,
            "-p",
            "0",
            "-K",
            "=",
            "-H",
            "via=kcat",
        ],
        Some(b"a=1\nb=2\n".to_vec()),
        KCAT_TIMEOUT,
    );
    out.assert_success();
    let records = consume_json(
        &broker,
        &[
            "consume",
            &topic,
            "--partition",
            "0",
            "--from-beginning",
            "-e",
            "--json",
        ],
    );
    let pairs: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or("").to_string(),
                r["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string())
        ]
    );
    assert_eq!(records[0]["headers"]["via"], "kcat");
}

#[test]
fn compression_and_acks() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("tools-codecs");
    create_topic(&broker, &topic, 1);
    let mut expected = Vec::new();
    for (codec, acks) in [
        ("none", "0"),
        ("gzip", "1"),
        ("snappy", "all"),
        ("lz4", "1"),
        ("zstd", "all"),
    ] {
        let input: String = (0..50)
            .map(|i| format!("{codec}-{acks}-{i}-{}\n", "payload".repeat(20)))
            .collect();
        expected.extend(input.lines().map(str::to_string));
        strom_stdin(
            &broker,
            &["produce", &topic, "--compression", codec, "--acks", acks],
            &input,
        )
        .assert_success();
    }
    // acks=0 gives no acknowledgement: wait until everything is readable.
    let out = strom(
        &broker,
        &[
            "consume",
            &topic,
            "--from-beginning",
            "-n",
            &expected.len().to_string(),
            "--timeout-ms",
            "20000",
        ],
    );
    out.assert_success();
    assert_eq!(
        lines(&out),
        expected,
        "strom reads every codec back in order"
    );
    let out = kcat(
        &[
            "-b",
            &broker.bootstrap(),
            "-C",
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        None,
        KCAT_TIMEOUT,
    );
    out.assert_success();
    assert_eq!(
        lines(&out),
        expected,
        "kcat decodes every codec strom wrote"
    );
}

#[test]
fn consume_waits_for_new_records_and_idempotent_produce() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("tools-tail");
    create_topic(&broker, &topic, 2);
    strom_stdin(&broker, &["produce", &topic], "old\n").assert_success();
    // Without --from-beginning only new records are read.
    let mut tail = strom_background(
        &broker,
        &["consume", &topic, "-n", "2"],
        Duration::from_secs(60),
    );
    std::thread::sleep(Duration::from_secs(2));
    strom_stdin(
        &broker,
        &["produce", &topic, "--idempotence", "--acks", "all"],
        "new-1\nnew-2\n",
    )
    .assert_success();
    let first = tail.wait_for_line(Duration::from_secs(30), |l| !l.is_empty());
    assert!(first.starts_with("new-"), "{first}");
    let out = tail.finish();
    out.assert_success();
    let mut got = lines(&out);
    got.sort();
    assert_eq!(got, vec!["new-1", "new-2"]);
}
