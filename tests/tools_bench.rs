//! `strom bench produce|consume|e2e` against a real broker (small runs), their `--json` reports,
//! and `strom bench compare` as the throughput regression check.

mod common;
mod tools_support;

use std::path::Path;

use common::*;
use serde_json::Value;
use tools_support::*;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report written"))
        .expect("report is JSON")
}

fn first_result(report: &Value) -> &Value {
    assert_eq!(report["format_version"], 1, "{report}");
    &report["results"][0]
}

fn assert_sane(result: &Value, workload: &str, messages: u64) {
    assert_eq!(result["workload"], workload, "{result}");
    assert_eq!(result["messages"].as_u64(), Some(messages), "{result}");
    assert_eq!(result["errors"].as_u64(), Some(0), "{result}");
    assert!(
        result["msgs_per_sec"].as_f64().is_some_and(|v| v > 0.0),
        "{result}"
    );
    assert!(
        result["mb_per_sec"].as_f64().is_some_and(|v| v > 0.0),
        "{result}"
    );
    let latency = &result["latency"];
    let p50 = latency["p50_ms"].as_f64().expect("p50");
    let p99 = latency["p99_ms"].as_f64().expect("p99");
    let p999 = latency["p999_ms"].as_f64().expect("p99.9");
    let max = latency["max_ms"].as_f64().expect("max");
    assert!(
        0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max * 1.001,
        "{latency}"
    );
}

#[test]
fn bench_workloads_and_regression_check() {
    let broker = Broker::start(BrokerOpts::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let produce_json = dir.path().join("produce.json");
    let consume_json = dir.path().join("consume.json");
    let e2e_json = dir.path().join("e2e.json");
    let topic = unique_topic("tools-bench");

    let out = strom(
        &broker,
        &[
            "bench",
            "produce",
            "--topic",
            &topic,
            "--message-bytes",
            "100",
            "--count",
            "20000",
            "--partitions",
            "3",
            "--producers",
            "2",
            "--acks",
            "1",
            "--compression",
            "lz4",
            "--no-progress",
            "--json",
            produce_json.to_str().expect("path"),
        ],
    );
    out.assert_success();
    for column in ["msg/s", "MB/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms"] {
        assert!(
            out.stdout_str().contains(column),
            "the table shows {column}: {}",
            out.stdout_str()
        );
    }
    let produce = read_json(&produce_json);
    assert_sane(first_result(&produce), "produce", 20_000);
    assert_eq!(first_result(&produce)["params"]["compression"], "lz4");
    // The messages are really there: kcat counts them.
    let counted = kcat(
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
            "-f",
            "%o\\n",
        ],
        None,
        TOOL_TIMEOUT,
    );
    counted.assert_success();
    assert_eq!(lines(&counted).len(), 20_000);

    let out = strom(
        &broker,
        &[
            "bench",
            "consume",
            "--topic",
            &topic,
            "--consumers",
            "2",
            "--no-progress",
            "--json",
            consume_json.to_str().expect("path"),
        ],
    );
    out.assert_success();
    assert_sane(first_result(&read_json(&consume_json)), "consume", 20_000);

    let e2e_topic = unique_topic("tools-bench-e2e");
    let out = strom(
        &broker,
        &[
            "bench",
            "e2e",
            "--topic",
            &e2e_topic,
            "--count",
            "5000",
            "--rate",
            "5000",
            "--consumers",
            "1",
            "--no-progress",
            "--json",
            e2e_json.to_str().expect("path"),
        ],
    );
    out.assert_success();
    let e2e = read_json(&e2e_json);
    assert_sane(first_result(&e2e), "e2e", 5000);
    // Paced at 5000 msg/s, 5000 messages take about a second.
    let seconds = first_result(&e2e)["duration_secs"]
        .as_f64()
        .expect("duration");
    assert!((0.8..5.0).contains(&seconds), "rate limiting: {seconds} s");

    // compare: the same report passes; a 50% throughput drop or doubled latency fails with exit 3.
    let produce_path = produce_json.to_str().expect("path");
    let same = strom_raw(&[
        "bench",
        "compare",
        produce_path,
        produce_path,
        "--tolerance",
        "10%",
    ]);
    same.assert_success();
    assert!(
        same.stdout_str().contains("no regression"),
        "{}",
        same.stdout_str()
    );

    let mut slower = produce.clone();
    let result = &mut slower["results"][0];
    result["msgs_per_sec"] = Value::from(result["msgs_per_sec"].as_f64().expect("msg/s") * 0.5);
    let slower_path = dir.path().join("slower.json");
    std::fs::write(&slower_path, slower.to_string()).expect("write");
    let regressed = strom_raw(&[
        "bench",
        "compare",
        produce_path,
        slower_path.to_str().expect("path"),
        "--tolerance",
        "10%",
    ]);
    assert_eq!(
        regressed.status.code(),
        Some(3),
        "{}",
        regressed.stdout_str()
    );
    assert!(
        regressed.stdout_str().contains("REGRESSED")
            && regressed.stdout_str().contains("REGRESSION"),
        "{}",
        regressed.stdout_str()
    );
    // ... but passes with a tolerance above the drop.
    strom_raw(&[
        "bench",
        "compare",
        produce_path,
        slower_path.to_str().expect("path"),
        "--tolerance",
        "60%",
    ])
    .assert_success();

    let mut laggier = produce.clone();
    let result = &mut laggier["results"][0];
    result["latency"]["p99_ms"] =
        Value::from(result["latency"]["p99_ms"].as_f64().expect("p99") * 2.0 + 1.0);
    let laggier_path = dir.path().join("laggier.json");
    std::fs::write(&laggier_path, laggier.to_string()).expect("write");
    let regressed = strom_raw(&[
        "bench",
        "compare",
        produce_path,
        laggier_path.to_str().expect("path"),
    ]);
    assert_eq!(
        regressed.status.code(),
        Some(3),
        "{}",
        regressed.stdout_str()
    );

    // A result missing from the current report is a regression too.
    let consume_path = consume_json.to_str().expect("path");
    let missing = strom_raw(&["bench", "compare", produce_path, consume_path]);
    assert_eq!(missing.status.code(), Some(3), "{}", missing.stdout_str());
    assert!(missing
        .stdout_str()
        .contains("result 'produce' is in the baseline but not in the current report"));
}

#[test]
fn bench_by_duration() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("tools-bench-duration");
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("r.json");
    let out = strom(
        &broker,
        &[
            "bench",
            "produce",
            "--topic",
            &topic,
            "--duration-secs",
            "1.5",
            "--message-bytes",
            "1024",
            "--acks",
            "all",
            "--name",
            "produce-1k",
            "--no-progress",
            "--json",
            report.to_str().expect("path"),
        ],
    );
    out.assert_success();
    let report = read_json(&report);
    let result = first_result(&report);
    assert_eq!(result["name"], "produce-1k");
    let seconds = result["duration_secs"].as_f64().expect("duration");
    assert!(
        (1.4..4.0).contains(&seconds),
        "ran for the duration: {seconds}"
    );
    let messages = result["messages"].as_u64().expect("messages");
    assert!(messages > 0);
    assert_sane(result, "produce", messages);
    let bytes = result["bytes"].as_u64().expect("bytes");
    assert_eq!(bytes, messages * 1024);
}
