//! The admin HTTP listener of a live broker: `/metrics` scraped while confluent-kafka produces
//! and consumes (tests/clients/admin_metrics.py), parsed with Prometheus's own text-format parser
//! (the Python `prometheus-client` package). The counters must move by exactly what was produced
//! and consumed, a group's lag must equal the messages it did not consume, and the readiness and
//! liveness probes must answer 200. A taken admin port refuses the start.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const COUNT: u64 = 1_000;
/// Messages the lagging group consumes (and commits) of the `COUNT`.
const LAG_CONSUMED: u64 = 300;

/// The broker's log without terminal colour codes.
fn plain_log(broker: &Broker) -> String {
    let log = broker.log();
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte.
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// `http://host:port` of the broker's admin listener, from its start-up log line.
fn admin_url(broker: &Broker) -> String {
    let log = plain_log(broker);
    let line = log
        .lines()
        .rev()
        .find(|line| line.contains("admin listener started"))
        .unwrap_or_else(|| panic!("no admin listener line in the broker log:\n{log}"));
    let address = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("address="))
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    format!("http://{address}")
}

fn number(result: &serde_json::Value, field: &str) -> f64 {
    result[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing in {result}"))
}

#[test]
fn metrics_follow_produce_and_consume_and_the_probes_answer() {
    // Port 0: the kernel picks a free one, so this test runs beside any other broker.
    let broker = Broker::start(BrokerOpts::new().set("admin.listeners", "http://127.0.0.1:0"));
    let admin = admin_url(&broker);
    let topic = unique_topic("admin-metrics");
    let out = python_client(
        "admin_metrics.py",
        &args([
            "--bootstrap",
            &broker.bootstrap(),
            "--admin",
            &admin,
            "--topic",
            &topic,
            "--count",
            &COUNT.to_string(),
            "--lag-count",
            &LAG_CONSUMED.to_string(),
        ]),
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let result = out.result_json();
    assert_eq!(result["error_count"], 0, "client errors: {result}");

    // The probes.
    assert_eq!(
        result["ready_statuses"].as_array().and_then(|s| s.last()),
        Some(&serde_json::json!(200)),
        "readiness must turn 200: {result}"
    );
    assert_eq!(result["live_status"], 200, "{result}");
    assert!(
        result["content_type"]
            .as_str()
            .is_some_and(|content_type| content_type.starts_with("text/plain; version=0.0.4")),
        "Prometheus text format: {result}"
    );

    // Everything produced was counted in, to the record and to the byte the log holds.
    assert_eq!(json_u64(&result, "delivered"), COUNT, "{result}");
    assert_eq!(number(&result, "messages_in"), COUNT as f64, "{result}");
    let bytes_in = number(&result, "bytes_in");
    assert!(
        bytes_in > (COUNT * 100) as f64,
        "each value is 100 bytes: {result}"
    );
    assert_eq!(
        bytes_in,
        number(&result, "log_size_bytes"),
        "bytes in must equal the new topic's log size: {result}"
    );
    assert_eq!(number(&result, "log_end_offset"), COUNT as f64, "{result}");
    let produce_requests = number(&result, "produce_requests");
    assert!(produce_requests >= 1.0, "{result}");
    assert_eq!(
        number(&result, "produce_handle_time_count"),
        produce_requests,
        "every produce request's handle time is observed: {result}"
    );
    assert_eq!(number(&result, "produce_errors"), 0.0, "{result}");

    // Everything consumed was counted out: the same records and bytes.
    assert_eq!(json_u64(&result, "consumed"), COUNT, "{result}");
    assert_eq!(number(&result, "messages_out"), COUNT as f64, "{result}");
    assert_eq!(number(&result, "bytes_out"), bytes_in, "{result}");
    assert!(number(&result, "fetch_requests") >= 1.0, "{result}");

    // Group lag: the reader consumed (and committed) everything; the laggard did not.
    assert_eq!(number(&result, "reader_lag"), 0.0, "{result}");
    assert_eq!(json_u64(&result, "lag_consumed"), LAG_CONSUMED, "{result}");
    assert_eq!(number(&result, "laggard_partitions"), 2.0, "{result}");
    assert_eq!(
        number(&result, "laggard_committed"),
        LAG_CONSUMED as f64,
        "{result}"
    );
    assert_eq!(
        number(&result, "laggard_lag"),
        (COUNT - LAG_CONSUMED) as f64,
        "lag must equal the messages the group did not consume: {result}"
    );

    // The process and io gauges are there and plausible.
    assert!(number(&result, "open_fds") > 0.0, "{result}");
    assert!(number(&result, "resident_memory_bytes") > 0.0, "{result}");
    assert!(number(&result, "io_uring_submissions") > 0.0, "{result}");

    // Every family the README lists parsed, with its type.
    let families: std::collections::BTreeMap<String, String> = result["families"]
        .as_array()
        .expect("families")
        .iter()
        .filter_map(|pair| Some((pair[0].as_str()?.to_string(), pair[1].as_str()?.to_string())))
        .collect();
    for (name, kind) in [
        ("strom_requests", "counter"),
        ("strom_errors", "counter"),
        ("strom_request_queue_time_seconds", "histogram"),
        ("strom_request_handle_time_seconds", "histogram"),
        ("strom_response_send_time_seconds", "histogram"),
        ("strom_bytes_in", "counter"),
        ("strom_bytes_out", "counter"),
        ("strom_messages_in", "counter"),
        ("strom_messages_out", "counter"),
        ("strom_log_end_offset", "gauge"),
        ("strom_high_watermark", "gauge"),
        ("strom_log_size_bytes", "gauge"),
        ("strom_log_segments", "gauge"),
        ("strom_under_replicated_partitions", "gauge"),
        ("strom_under_min_isr_partitions", "gauge"),
        ("strom_offline_partitions", "gauge"),
        ("strom_isr_shrinks", "counter"),
        ("strom_isr_expands", "counter"),
        ("strom_active_controller", "gauge"),
        ("strom_leader_elections", "counter"),
        ("strom_consumer_group_lag", "gauge"),
        ("strom_connections", "gauge"),
        ("strom_io_uring_submissions", "counter"),
        ("strom_fsyncs", "counter"),
        ("process_cpu_seconds", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
    ] {
        assert_eq!(
            families.get(name).map(String::as_str),
            Some(kind),
            "family {name} ({kind}) in {families:?}"
        );
    }
}

#[test]
fn a_taken_admin_port_refuses_to_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to take");
    let port = taken.local_addr().expect("local_addr").port();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut cmd = Command::new(strom_bin());
    cmd.args(["broker", "start", "--override"])
        .arg(format!(
            "listeners=PLAINTEXT://127.0.0.1:{}",
            pick_free_port()
        ))
        .arg("--override")
        .arg(format!("log.dirs={}", dir.path().display()))
        .arg("--override")
        .arg(format!("admin.listeners=http://127.0.0.1:{port}"));
    let out = run(cmd, None, Duration::from_secs(60));
    assert!(
        !out.status.success(),
        "a broker whose admin port is taken must not start:\n{}{}",
        out.stdout_str(),
        out.stderr_str()
    );
    let said = format!("{}{}", out.stdout_str(), out.stderr_str());
    assert!(
        said.contains(&format!("admin.listeners http://127.0.0.1:{port}"))
            && said.to_lowercase().contains("address already in use"),
        "the error must name the admin listener and the cause:\n{said}"
    );
    drop(taken);
}
