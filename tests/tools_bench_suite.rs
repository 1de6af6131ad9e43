//! `strom bench suite` at a tiny scale: it starts its own broker, runs every standard workload,
//! prints the table and writes a report that `strom bench compare` reads.

mod common;
mod tools_support;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;
use tools_support::*;

/// The suite starts a broker and runs eight workloads; at scale 0.001 that takes seconds.
const SUITE_TIMEOUT: Duration = Duration::from_secs(180);

const WORKLOADS: [&str; 8] = [
    "produce-100B-acks1",
    "produce-1KiB-acks1",
    "produce-10KiB-acksall",
    "consume-100B",
    "consume-1KiB",
    "consume-10KiB",
    "latency-1KiB-at-2000",
    "latency-1KiB-at-20000",
];

#[test]
fn suite_runs_every_standard_workload_on_its_own_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report_path = dir.path().join("suite.json");
    let mut cmd = Command::new(strom_bin());
    cmd.args([
        "bench",
        "suite",
        "--scale",
        "0.001",
        "--no-progress",
        "--json",
    ])
    .arg(&report_path)
    .env_remove("STROM_BROKERS");
    let out = run(cmd, Some(Vec::new()), SUITE_TIMEOUT);
    out.assert_success();
    let table = out.stdout_str();
    for needle in WORKLOADS
        .iter()
        .copied()
        .chain(["msg/s", "MB/s", "p99.9 ms", "broker CPU-s/GB"])
    {
        assert!(table.contains(needle), "{needle} missing from\n{table}");
    }

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report written"))
            .expect("report is JSON");
    assert_eq!(report["format_version"], 1, "{report}");
    let results = report["results"].as_array().expect("results");
    let names: Vec<&str> = results.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, WORKLOADS, "{report}");
    for result in results {
        assert!(
            result["msgs_per_sec"].as_f64().is_some_and(|v| v > 0.0)
                && result["mb_per_sec"].as_f64().is_some_and(|v| v > 0.0),
            "{result}"
        );
        assert!(
            result["messages"].as_u64().is_some_and(|m| m > 0),
            "{result}"
        );
        assert_eq!(result["errors"].as_u64(), Some(0), "{result}");
        assert_eq!(result["params"]["partitions"].as_u64(), Some(1), "{result}");
        // The suite started the broker, so it read the broker's CPU time around each workload.
        assert!(
            result["params"]["broker_cpu_secs"]
                .as_f64()
                .is_some_and(|v| v >= 0.0),
            "{result}"
        );
    }
    // Each consume read everything its produce wrote.
    let messages = |name: &str| {
        results
            .iter()
            .find(|r| r["name"] == name)
            .and_then(|r| r["messages"].as_u64())
            .expect("messages")
    };
    assert_eq!(messages("consume-100B"), messages("produce-100B-acks1"));
    assert_eq!(messages("consume-10KiB"), messages("produce-10KiB-acksall"));
    assert_eq!(messages("produce-100B-acks1"), 4000);

    // The report is what `bench compare` reads: against itself it is no regression.
    let path = report_path.to_str().expect("path");
    let same = strom_raw(&["bench", "compare", path, path, "--tolerance", "10%"]);
    same.assert_success();
    assert!(
        same.stdout_str().contains("no regression"),
        "{}",
        same.stdout_str()
    );
}
