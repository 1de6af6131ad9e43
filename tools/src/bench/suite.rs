//! `strom bench suite`: the standard workloads of the throughput regression check, in one run.
//!
//! The workloads are those the project measures its broker by (issue 8's table), each on one
//! partition: produce 100 B / 1 KiB with acks=1 and 10 KiB with acks=all; consume each of those
//! topics from the beginning; produce latency of 1 KiB messages at 2,000 and 20,000 msg/s.
//! Message counts scale with `scale` (1.0 runs in about a minute here with a release build). When the suite
//! started the broker itself it also reports the broker's CPU seconds per GB moved, from the
//! broker process's CPU time before and after each workload.

use std::time::Duration;

use comfy_table::{presets, CellAlignment, Table};
use kafka_protocol::records::Compression;
use serde_json::json;

use super::report::{WorkloadResult, MB_BYTES};
use super::workload::{run_consume, run_produce, ConsumeSettings, ProduceSettings};
use crate::client::{ClientConfig, ClientError, Result};

/// Bytes in the GB of "CPU seconds per GB": 10^9, as the table counts.
const GB_BYTES: f64 = 1e9;
/// The `params` keys the suite adds to each result (the JSON layout is `bench compare`'s).
pub const PARAM_BROKER_CPU_SECS: &str = "broker_cpu_secs";
pub const PARAM_BROKER_CPU_SECS_PER_GB: &str = "broker_cpu_secs_per_gb";
/// Producer linger of the throughput workloads (librdkafka's default) and of the latency ones
/// (send at once: the latency is the broker's, not the batching's).
const THROUGHPUT_LINGER_MS: u64 = 5;
const LATENCY_LINGER_MS: u64 = 0;

/// What one standard workload does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SuiteKind {
    Produce {
        message_bytes: usize,
        acks: i16,
        /// Messages per second; 0 = as fast as possible.
        rate_per_sec: u64,
    },
    /// Reads the topic written by the named produce workload, from the beginning.
    Consume { topic_of: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuiteWorkload {
    /// The result's name in the report (what `bench compare` matches).
    pub name: &'static str,
    pub kind: SuiteKind,
    /// Messages at scale 1.0.
    pub messages: u64,
}

/// The standard workloads, in the order they run (a consume follows the produce it reads).
pub const STANDARD_WORKLOADS: [SuiteWorkload; 8] = [
    SuiteWorkload {
        name: "produce-100B-acks1",
        kind: SuiteKind::Produce {
            message_bytes: 100,
            acks: 1,
            rate_per_sec: 0,
        },
        messages: 4_000_000,
    },
    SuiteWorkload {
        name: "produce-1KiB-acks1",
        kind: SuiteKind::Produce {
            message_bytes: 1024,
            acks: 1,
            rate_per_sec: 0,
        },
        messages: 2_000_000,
    },
    SuiteWorkload {
        name: "produce-10KiB-acksall",
        kind: SuiteKind::Produce {
            message_bytes: 10 * 1024,
            acks: -1,
            rate_per_sec: 0,
        },
        messages: 200_000,
    },
    SuiteWorkload {
        name: "consume-100B",
        kind: SuiteKind::Consume {
            topic_of: "produce-100B-acks1",
        },
        messages: 4_000_000,
    },
    SuiteWorkload {
        name: "consume-1KiB",
        kind: SuiteKind::Consume {
            topic_of: "produce-1KiB-acks1",
        },
        messages: 2_000_000,
    },
    SuiteWorkload {
        name: "consume-10KiB",
        kind: SuiteKind::Consume {
            topic_of: "produce-10KiB-acksall",
        },
        messages: 200_000,
    },
    SuiteWorkload {
        name: "latency-1KiB-at-2000",
        kind: SuiteKind::Produce {
            message_bytes: 1024,
            acks: 1,
            rate_per_sec: 2_000,
        },
        // Fifteen seconds at the rate.
        messages: 30_000,
    },
    SuiteWorkload {
        name: "latency-1KiB-at-20000",
        kind: SuiteKind::Produce {
            message_bytes: 1024,
            acks: 1,
            rate_per_sec: 20_000,
        },
        // Ten seconds at the rate.
        messages: 200_000,
    },
];

/// How the suite runs.
#[derive(Debug, Clone)]
pub struct SuiteSettings {
    /// Multiplies every workload's message count (at least one message each).
    pub scale: f64,
    /// Prefix of the topics; each run adds a unique suffix so a shared broker's old data is
    /// never read back.
    pub topic_prefix: String,
    pub progress: bool,
}

/// The messages a workload sends or reads at `scale`.
pub fn scaled(messages: u64, scale: f64) -> u64 {
    ((messages as f64 * scale).round() as u64).max(1)
}

/// Topic name of a workload's data in one run.
pub fn topic_name(prefix: &str, run_id: &str, workload: &str) -> String {
    format!("{prefix}-{workload}-{run_id}")
}

/// The broker's CPU time, when the suite can see the broker process.
pub trait CpuProbe {
    fn cpu_secs(&self) -> Option<f64>;
}

impl CpuProbe for super::broker_process::BrokerProcess {
    fn cpu_secs(&self) -> Option<f64> {
        super::broker_process::BrokerProcess::cpu_secs(self)
    }
}

/// No broker process to look at (`--brokers`).
pub struct NoProbe;

impl CpuProbe for NoProbe {
    fn cpu_secs(&self) -> Option<f64> {
        None
    }
}

fn produce_settings(
    topic: String,
    message_bytes: usize,
    acks: i16,
    rate: u64,
    count: u64,
) -> ProduceSettings {
    ProduceSettings {
        topic,
        message_bytes,
        count: Some(count),
        duration: None,
        partitions: 1,
        replication_factor: None,
        producers: 1,
        acks,
        compression: Compression::None,
        rate_per_sec: rate,
        linger_ms: if rate > 0 {
            LATENCY_LINGER_MS
        } else {
            THROUGHPUT_LINGER_MS
        },
        batch_max_bytes: 256 * 1024,
        max_in_flight: 5,
        idempotence: false,
    }
}

fn consume_settings(topic: String, count: u64) -> ConsumeSettings {
    ConsumeSettings {
        topic,
        count: Some(count),
        duration: None,
        consumers: 1,
        fetch_max_bytes: 50 * 1024 * 1024,
        partition_fetch_max_bytes: 1024 * 1024,
    }
}

/// Runs every standard workload in order against `client_config`'s brokers.
pub async fn run_suite(
    client_config: &ClientConfig,
    settings: &SuiteSettings,
    probe: &dyn CpuProbe,
) -> Result<Vec<WorkloadResult>> {
    if !(settings.scale.is_finite() && settings.scale > 0.0) {
        return Err(ClientError::InvalidArgument(format!(
            "--scale must be positive (got {})",
            settings.scale
        )));
    }
    let run_id = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let mut results = Vec::with_capacity(STANDARD_WORKLOADS.len());
    for workload in STANDARD_WORKLOADS {
        let count = scaled(workload.messages, settings.scale);
        let cpu_before = probe.cpu_secs();
        let mut result = match workload.kind {
            SuiteKind::Produce {
                message_bytes,
                acks,
                rate_per_sec,
            } => {
                let topic = topic_name(&settings.topic_prefix, &run_id, workload.name);
                let produce = produce_settings(topic, message_bytes, acks, rate_per_sec, count);
                run_produce(
                    client_config.clone(),
                    produce,
                    workload.name,
                    settings.progress,
                )
                .await?
            }
            SuiteKind::Consume { topic_of } => {
                let topic = topic_name(&settings.topic_prefix, &run_id, topic_of);
                run_consume(
                    client_config.clone(),
                    consume_settings(topic, count),
                    workload.name,
                    settings.progress,
                )
                .await?
            }
        };
        if let (Some(before), Some(after)) = (cpu_before, probe.cpu_secs()) {
            let cpu = (after - before).max(0.0);
            result
                .params
                .insert(PARAM_BROKER_CPU_SECS.to_string(), json!(cpu));
            if result.bytes > 0 {
                result.params.insert(
                    PARAM_BROKER_CPU_SECS_PER_GB.to_string(),
                    json!(cpu / (result.bytes as f64 / GB_BYTES)),
                );
            }
        }
        result
            .params
            .insert("suite_scale".to_string(), json!(settings.scale));
        results.push(result);
        // Let the broker settle (acks=1 writes, page-cache writeback) between workloads.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(results)
}

fn fmt_ms(ms: f64) -> String {
    format!("{ms:.3}")
}

/// The suite's table: throughput, latency percentiles and broker CPU per GB.
pub fn render_suite_table(results: &[WorkloadResult]) -> String {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(vec![
        "workload",
        "messages",
        "msg/s",
        "MB/s",
        "latency",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "broker CPU-s/GB",
        "errors",
    ]);
    for result in results {
        let cpu_per_gb = result
            .params
            .get(PARAM_BROKER_CPU_SECS_PER_GB)
            .and_then(serde_json::Value::as_f64)
            .map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        table.add_row(vec![
            result.name.clone(),
            result.messages.to_string(),
            format!("{:.0}", result.msgs_per_sec),
            format!("{:.1}", result.mb_per_sec),
            result.latency_kind.clone(),
            fmt_ms(result.latency.p50_ms),
            fmt_ms(result.latency.p99_ms),
            fmt_ms(result.latency.p999_ms),
            cpu_per_gb,
            result.errors.to_string(),
        ]);
    }
    for index in [1, 2, 3, 5, 6, 7, 8, 9] {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = table.to_string();
    out.push_str(&format!(
        "\nMB = {} bytes; CPU-s/GB: broker user+system CPU seconds per 10^9 payload bytes",
        MB_BYTES as u64
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::Totals;
    use crate::bench::stats::LatencySummary;
    use std::collections::BTreeMap;

    #[test]
    fn scaling_keeps_at_least_one_message() {
        assert_eq!(scaled(4_000_000, 1.0), 4_000_000);
        assert_eq!(scaled(4_000_000, 0.001), 4_000);
        assert_eq!(scaled(20_000, 0.000_001), 1);
    }

    #[test]
    fn consumes_read_topics_written_earlier_in_the_suite() {
        for (position, workload) in STANDARD_WORKLOADS.iter().enumerate() {
            if let SuiteKind::Consume { topic_of } = workload.kind {
                let producer = STANDARD_WORKLOADS[..position]
                    .iter()
                    .find(|w| w.name == topic_of)
                    .unwrap_or_else(|| {
                        panic!("{} reads {topic_of}, not produced before it", workload.name)
                    });
                assert!(matches!(
                    producer.kind,
                    SuiteKind::Produce {
                        rate_per_sec: 0,
                        ..
                    }
                ));
                assert_eq!(
                    producer.messages, workload.messages,
                    "{} reads all of it",
                    workload.name
                );
            }
        }
    }

    #[test]
    fn names_are_unique_and_topics_valid() {
        let mut names: Vec<&str> = STANDARD_WORKLOADS.iter().map(|w| w.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), STANDARD_WORKLOADS.len());
        for name in names {
            let topic = topic_name("strom-suite", "123-456", name);
            assert!(
                topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "{topic} is not a valid topic name"
            );
        }
    }

    #[test]
    fn table_shows_cpu_per_gb_when_known() {
        let mut with_cpu = WorkloadResult::new(
            "produce-1KiB-acks1",
            "produce",
            BTreeMap::new(),
            Totals {
                messages: 1000,
                bytes: 1_024_000,
                errors: 0,
                duration_secs: 1.0,
            },
            "send-to-ack",
            LatencySummary::default(),
        );
        with_cpu
            .params
            .insert(PARAM_BROKER_CPU_SECS_PER_GB.to_string(), json!(1.234));
        let mut without = with_cpu.clone();
        without.name = "consume-1KiB".into();
        without.params.clear();
        let table = render_suite_table(&[with_cpu, without]);
        assert!(table.contains("1.23"), "{table}");
        assert!(table.contains("broker CPU-s/GB"), "{table}");
        let consume_row = table
            .lines()
            .find(|l| l.contains("consume-1KiB"))
            .expect("row");
        assert!(consume_row.contains(" - "), "{consume_row}");
    }
}
