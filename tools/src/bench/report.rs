//! Bench results: the end-of-run table and the `--json` file (read back by `bench compare`).

use std::collections::BTreeMap;
use std::path::Path;

use comfy_table::{presets, CellAlignment, Table};
use serde::{Deserialize, Serialize};

use super::stats::LatencySummary;

/// Version of the JSON layout, bumped on incompatible change.
pub const REPORT_FORMAT_VERSION: u32 = 1;
/// Bytes in the MB of `mb_per_sec`: 2^20, as Kafka's perf tools count.
pub const MB_BYTES: f64 = 1024.0 * 1024.0;

/// One workload's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// What `bench compare` matches results by (defaults to the workload kind).
    pub name: String,
    /// `produce`, `consume` or `e2e`.
    pub workload: String,
    /// The settings the run used (message size, partitions, acks...).
    pub params: BTreeMap<String, serde_json::Value>,
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    pub duration_secs: f64,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
    /// What the latency measures: `send-to-ack`, `poll-wait` or `produce-to-consume`.
    pub latency_kind: String,
    pub latency: LatencySummary,
}

/// What a workload counted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub messages: u64,
    pub bytes: u64,
    pub errors: u64,
    pub duration_secs: f64,
}

impl WorkloadResult {
    pub fn new(
        name: &str,
        workload: &str,
        params: BTreeMap<String, serde_json::Value>,
        totals: Totals,
        latency_kind: &str,
        latency: LatencySummary,
    ) -> WorkloadResult {
        let Totals {
            messages,
            bytes,
            errors,
            duration_secs,
        } = totals;
        let seconds = duration_secs.max(1e-9);
        WorkloadResult {
            name: name.to_string(),
            workload: workload.to_string(),
            params,
            messages,
            bytes,
            errors,
            duration_secs,
            msgs_per_sec: messages as f64 / seconds,
            mb_per_sec: bytes as f64 / MB_BYTES / seconds,
            latency_kind: latency_kind.to_string(),
            latency,
        }
    }
}

/// A `--json` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub format_version: u32,
    pub results: Vec<WorkloadResult>,
}

impl BenchReport {
    pub fn new(results: Vec<WorkloadResult>) -> BenchReport {
        BenchReport {
            format_version: REPORT_FORMAT_VERSION,
            results,
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| format!("cannot serialize the report: {e}"))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    pub fn read(path: &Path) -> Result<BenchReport, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let report: BenchReport = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a strom bench report: {e}", path.display()))?;
        if report.format_version != REPORT_FORMAT_VERSION {
            return Err(format!(
                "{} has report format {}, this strom reads format {REPORT_FORMAT_VERSION}",
                path.display(),
                report.format_version
            ));
        }
        Ok(report)
    }
}

fn fmt_ms(value: f64) -> String {
    format!("{value:.3}")
}

/// The end-of-run table.
pub fn render_table(results: &[WorkloadResult]) -> String {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "workload", "messages", "MB", "secs", "msg/s", "MB/s", "latency", "p50 ms", "p99 ms",
        "p99.9 ms", "max ms", "errors",
    ]);
    for result in results {
        table.add_row(vec![
            result.name.clone(),
            result.messages.to_string(),
            format!("{:.1}", result.bytes as f64 / MB_BYTES),
            format!("{:.2}", result.duration_secs),
            format!("{:.0}", result.msgs_per_sec),
            format!("{:.2}", result.mb_per_sec),
            result.latency_kind.clone(),
            fmt_ms(result.latency.p50_ms),
            fmt_ms(result.latency.p99_ms),
            fmt_ms(result.latency.p999_ms),
            fmt_ms(result.latency.max_ms),
            result.errors.to_string(),
        ]);
    }
    for index in [1, 2, 3, 4, 5, 7, 8, 9, 10, 11] {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample(name: &str, msgs_per_sec: f64, p99_ms: f64) -> WorkloadResult {
        let mut result = WorkloadResult::new(
            name,
            "produce",
            BTreeMap::from([("message_bytes".to_string(), serde_json::json!(100))]),
            Totals {
                messages: 1000,
                bytes: 100_000,
                errors: 0,
                duration_secs: 1000.0 / msgs_per_sec,
            },
            "send-to-ack",
            LatencySummary {
                count: 1000,
                mean_ms: 1.0,
                p50_ms: 1.0,
                p99_ms,
                p999_ms: p99_ms * 2.0,
                max_ms: p99_ms * 3.0,
            },
        );
        result.msgs_per_sec = msgs_per_sec;
        result
    }

    #[test]
    fn throughput_is_derived_from_counts_and_time() {
        let totals = Totals {
            messages: 2_000,
            bytes: 2 * 1024 * 1024,
            errors: 0,
            duration_secs: 2.0,
        };
        let result = WorkloadResult::new(
            "p",
            "produce",
            BTreeMap::new(),
            totals,
            "send-to-ack",
            LatencySummary::default(),
        );
        assert!((result.msgs_per_sec - 1000.0).abs() < 1e-9);
        assert!((result.mb_per_sec - 1.0).abs() < 1e-9);
    }

    #[test]
    fn json_round_trips_and_rejects_other_formats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.json");
        let report = BenchReport::new(vec![sample("produce", 1000.0, 2.0)]);
        report.write(&path).expect("write");
        assert_eq!(BenchReport::read(&path).expect("read"), report);
        std::fs::write(&path, r#"{"format_version": 99, "results": []}"#).expect("write");
        assert!(BenchReport::read(&path)
            .expect_err("must fail")
            .contains("format 99"));
        std::fs::write(&path, "not json").expect("write");
        assert!(BenchReport::read(&path)
            .expect_err("must fail")
            .contains("not a strom bench report"));
    }

    #[test]
    fn table_lists_every_figure() {
        let table = render_table(&[sample("produce-100B", 123_456.0, 4.5)]);
        for needle in [
            "produce-100B",
            "123456",
            "p99.9 ms",
            "4.500",
            "9.000",
            "13.500",
        ] {
            assert!(table.contains(needle), "{needle} missing from\n{table}");
        }
    }
}
