//! The broker's metrics in the Prometheus text format, encoded by the `prometheus-client` crate
//! from one [`BrokerSnapshot`] (every shard's [`ShardSnapshot`], summed here).
//!
//! Names follow Kafka's where Kafka has the metric (`BytesInPerSec` becomes
//! `strom_bytes_in_total`, `UnderReplicatedPartitions` `strom_under_replicated_partitions`),
//! with the `strom_` prefix; the process's own follow Prometheus's (`process_*`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::gather::ShardSnapshot;
use super::histogram::HistogramSnapshot;
use super::process::ProcessStats;

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Everything a scrape shows.
#[derive(Debug, Clone, Default)]
pub struct BrokerSnapshot {
    pub shards: Vec<ShardSnapshot>,
    pub process: ProcessStats,
    /// Partition leaderships the controller on this broker wrote.
    pub leader_elections: u64,
}

/// Encodes `snapshot` in the Prometheus text format (0.0.4).
pub fn encode(snapshot: BrokerSnapshot) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

fn api_name(api_key: i16) -> String {
    ApiKey::try_from(api_key).map_or_else(|()| api_key.to_string(), |api| format!("{api:?}"))
}

fn error_name(error_code: i16) -> String {
    ResponseError::try_from_code(error_code)
        .map_or_else(|| error_code.to_string(), |error| format!("{error:?}"))
}

/// Writes one family of counters or gauges: `series` of (labels, value).
fn family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (L, f64)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in series {
        let mut sample = metric.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => sample.encode_counter::<NoLabelSet, f64, f64>(&value, None)?,
            _ => sample.encode_gauge(&value)?,
        }
    }
    Ok(())
}

/// Writes one metric without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    value: f64,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    match metric_type {
        MetricType::Counter => metric.encode_counter::<NoLabelSet, f64, f64>(&value, None),
        _ => metric.encode_gauge(&value),
    }
}

/// Writes one family of histograms.
fn histograms<'a, L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (L, &'a HistogramSnapshot)>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, histogram) in series {
        let mut sample = metric.encode_family(&labels)?;
        sample.encode_histogram::<NoLabelSet>(
            histogram.sum_seconds(),
            histogram.count(),
            &histogram.buckets_seconds(),
            None,
        )?;
    }
    Ok(())
}

#[allow(
    clippy::cast_precision_loss,
    reason = "counters shown as Prometheus floats"
)]
fn float(value: u64) -> f64 {
    value as f64
}

#[allow(
    clippy::cast_precision_loss,
    reason = "offsets shown as Prometheus floats"
)]
fn signed(value: i64) -> f64 {
    value as f64
}

type PartitionKey = (String, i32);

#[derive(Default)]
struct Traffic {
    bytes_in: u64,
    messages_in: u64,
    bytes_out: u64,
    messages_out: u64,
}

#[derive(Default)]
struct ApiTotals {
    requests: u64,
    queue_time: HistogramSnapshot,
    handle_time: HistogramSnapshot,
    send_time: HistogramSnapshot,
}

impl BrokerSnapshot {
    fn traffic(&self) -> BTreeMap<PartitionKey, Traffic> {
        let mut traffic: BTreeMap<PartitionKey, Traffic> = BTreeMap::new();
        for sample in self.shards.iter().flat_map(|shard| &shard.traffic) {
            let total = traffic
                .entry((sample.topic.clone(), sample.partition))
                .or_default();
            total.bytes_in += sample.bytes_in;
            total.messages_in += sample.messages_in;
            total.bytes_out += sample.bytes_out;
            total.messages_out += sample.messages_out;
        }
        traffic
    }

    fn apis(&self) -> BTreeMap<i16, ApiTotals> {
        let mut apis: BTreeMap<i16, ApiTotals> = BTreeMap::new();
        for api in self.shards.iter().flat_map(|shard| &shard.requests.apis) {
            let total = apis.entry(api.api_key).or_default();
            total.requests += api.requests;
            total.queue_time.merge(&api.queue_time);
            total.handle_time.merge(&api.handle_time);
            total.send_time.merge(&api.send_time);
        }
        apis
    }

    fn errors(&self) -> BTreeMap<(i16, i16), u64> {
        let mut errors = BTreeMap::new();
        for error in self.shards.iter().flat_map(|shard| &shard.requests.errors) {
            *errors.entry((error.api_key, error.error_code)).or_default() += error.count;
        }
        errors
    }

    /// Every group's lag per partition: the high watermark of a replica on this broker minus
    /// the committed offset (partitions with no replica here are left out).
    fn lags(&self) -> Vec<(String, String, i32, i64, i64)> {
        let high_watermarks: HashMap<(&str, i32), i64> = self
            .shards
            .iter()
            .flat_map(|shard| &shard.partitions)
            .map(|partition| {
                (
                    (partition.topic.as_str(), partition.partition),
                    partition.high_watermark,
                )
            })
            .collect();
        let mut lags: Vec<_> = self
            .shards
            .iter()
            .flat_map(|shard| &shard.committed_offsets)
            .filter_map(|committed| {
                let high_watermark =
                    high_watermarks.get(&(committed.topic.as_str(), committed.partition))?;
                Some((
                    committed.group.clone(),
                    committed.topic.clone(),
                    committed.partition,
                    committed.offset,
                    (high_watermark - committed.offset).max(0),
                ))
            })
            .collect();
        lags.sort();
        lags
    }

    fn encode_requests(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let apis = self.apis();
        family(
            encoder,
            "strom_requests",
            "Requests received, by api (Kafka's RequestsPerSec)",
            MetricType::Counter,
            apis.iter()
                .map(|(&key, api)| ([("request", api_name(key))], float(api.requests))),
        )?;
        histograms(
            encoder,
            "strom_request_queue_time_seconds",
            "Time a request waited in its connection's queue before dispatch (Kafka's RequestQueueTimeMs)",
            apis.iter()
                .map(|(&key, api)| ([("request", api_name(key))], &api.queue_time)),
        )?;
        histograms(
            encoder,
            "strom_request_handle_time_seconds",
            "Time from dispatch to a ready response (Kafka's LocalTimeMs plus RemoteTimeMs)",
            apis.iter()
                .map(|(&key, api)| ([("request", api_name(key))], &api.handle_time)),
        )?;
        histograms(
            encoder,
            "strom_response_send_time_seconds",
            "Time from a ready response to its bytes written (Kafka's ResponseSendTimeMs)",
            apis.iter()
                .map(|(&key, api)| ([("request", api_name(key))], &api.send_time)),
        )?;
        family(
            encoder,
            "strom_errors",
            "Responses (or partitions of one) with an error, by api and Kafka error (Kafka's ErrorsPerSec)",
            MetricType::Counter,
            self.errors()
                .into_iter()
                .map(|((api_key, error_code), count)| {
                    (
                        [
                            ("request", api_name(api_key)),
                            ("error", error_name(error_code)),
                            ("error_code", error_code.to_string()),
                        ],
                        float(count),
                    )
                }),
        )?;
        family(
            encoder,
            "strom_connections",
            "Open client connections, by shard",
            MetricType::Gauge,
            self.shards.iter().map(|shard| {
                (
                    [("shard", shard.shard.to_string())],
                    float(shard.requests.connections),
                )
            }),
        )
    }

    fn encode_traffic(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let traffic = self.traffic();
        let labels = |(topic, partition): &PartitionKey| {
            [
                ("topic", topic.clone()),
                ("partition", partition.to_string()),
            ]
        };
        type Pick = fn(&Traffic) -> u64;
        let counters: [(&str, &str, Pick); 4] = [
            (
                "strom_bytes_in",
                "Record bytes appended by producers (Kafka's BytesInPerSec)",
                |t| t.bytes_in,
            ),
            (
                "strom_messages_in",
                "Records appended by producers (Kafka's MessagesInPerSec)",
                |t| t.messages_in,
            ),
            (
                "strom_bytes_out",
                "Record bytes sent to consumers (Kafka's BytesOutPerSec)",
                |t| t.bytes_out,
            ),
            (
                "strom_messages_out",
                "Records in the batches sent to consumers",
                |t| t.messages_out,
            ),
        ];
        for (name, help, pick) in counters {
            family(
                encoder,
                name,
                help,
                MetricType::Counter,
                traffic
                    .iter()
                    .map(|(key, total)| (labels(key), float(pick(total)))),
            )?;
        }
        single(
            encoder,
            "strom_replication_bytes_out",
            "Record bytes sent to follower replicas (Kafka's ReplicationBytesOutPerSec)",
            MetricType::Counter,
            float(
                self.shards
                    .iter()
                    .map(|shard| shard.requests.replication_bytes_out)
                    .sum(),
            ),
        )
    }

    fn encode_logs(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut partitions: Vec<_> = self
            .shards
            .iter()
            .flat_map(|shard| &shard.partitions)
            .collect();
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        let labels = |topic: &str, partition: i32| {
            [
                ("topic", topic.to_string()),
                ("partition", partition.to_string()),
            ]
        };
        family(
            encoder,
            "strom_log_end_offset",
            "Offset after the last record of each replica on this broker (Kafka's LogEndOffset)",
            MetricType::Gauge,
            partitions
                .iter()
                .map(|p| (labels(&p.topic, p.partition), signed(p.log_end_offset))),
        )?;
        family(
            encoder,
            "strom_high_watermark",
            "High watermark of each replica on this broker",
            MetricType::Gauge,
            partitions
                .iter()
                .map(|p| (labels(&p.topic, p.partition), signed(p.high_watermark))),
        )?;
        family(
            encoder,
            "strom_log_size_bytes",
            "Bytes of each replica's segments (Kafka's Log Size)",
            MetricType::Gauge,
            partitions
                .iter()
                .map(|p| (labels(&p.topic, p.partition), float(p.size_bytes))),
        )?;
        family(
            encoder,
            "strom_log_segments",
            "Segments of each replica (Kafka's NumLogSegments)",
            MetricType::Gauge,
            partitions
                .iter()
                .map(|p| (labels(&p.topic, p.partition), float(p.segments as u64))),
        )?;
        let count = |pick: fn(&&&super::gather::PartitionGauges) -> bool| {
            float(partitions.iter().filter(pick).count() as u64)
        };
        let gauges: [(&str, &str, f64); 3] = [
            (
                "strom_leader_partitions",
                "Partitions this broker leads (Kafka's LeaderCount)",
                count(|p| p.leader),
            ),
            (
                "strom_under_replicated_partitions",
                "Partitions led here with fewer in-sync replicas than replicas (Kafka's UnderReplicatedPartitions)",
                count(|p| p.under_replicated),
            ),
            (
                "strom_under_min_isr_partitions",
                "Partitions led here with fewer in-sync replicas than min.insync.replicas (Kafka's UnderMinIsrPartitionCount)",
                count(|p| p.under_min_isr),
            ),
        ];
        for (name, help, value) in gauges {
            single(encoder, name, help, MetricType::Gauge, value)?;
        }
        Ok(())
    }

    fn encode_cluster(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let cluster = self
            .shards
            .iter()
            .find_map(|shard| shard.cluster)
            .unwrap_or_default();
        let events = self
            .shards
            .iter()
            .fold((0, 0), |(shrinks, expands), shard| {
                (
                    shrinks + shard.events.isr_shrinks,
                    expands + shard.events.isr_expands,
                )
            });
        single(
            encoder,
            "strom_isr_shrinks",
            "ISR shrinks written by leaders on this broker (Kafka's IsrShrinksPerSec)",
            MetricType::Counter,
            float(events.0),
        )?;
        single(
            encoder,
            "strom_isr_expands",
            "ISR expansions written by leaders on this broker (Kafka's IsrExpandsPerSec)",
            MetricType::Counter,
            float(events.1),
        )?;
        single(
            encoder,
            "strom_active_controller",
            "1 on the broker that is the controller (Kafka's ActiveControllerCount)",
            MetricType::Gauge,
            float(u64::from(cluster.active_controller)),
        )?;
        single(
            encoder,
            "strom_offline_partitions",
            "Partitions without a leader, reported by the controller (Kafka's OfflinePartitionsCount)",
            MetricType::Gauge,
            float(cluster.offline_partitions),
        )?;
        single(
            encoder,
            "strom_leader_elections",
            "Partition leaderships written by the controller while on this broker (Kafka's LeaderElectionRateAndTimeMs count)",
            MetricType::Counter,
            float(self.leader_elections),
        )
    }

    fn encode_groups(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let lags = self.lags();
        let labels = |group: &str, topic: &str, partition: i32| {
            [
                ("group", group.to_string()),
                ("topic", topic.to_string()),
                ("partition", partition.to_string()),
            ]
        };
        family(
            encoder,
            "strom_consumer_group_committed_offset",
            "Offset committed by each group coordinated here, per partition",
            MetricType::Gauge,
            lags.iter().map(|(group, topic, partition, offset, _)| {
                (labels(group, topic, *partition), signed(*offset))
            }),
        )?;
        family(
            encoder,
            "strom_consumer_group_lag",
            "High watermark minus the committed offset, per group and partition (records not yet consumed)",
            MetricType::Gauge,
            lags.iter().map(|(group, topic, partition, _, lag)| {
                (labels(group, topic, *partition), signed(*lag))
            }),
        )
    }

    fn encode_io_and_process(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let shard_label = |shard: &ShardSnapshot| [("shard", shard.shard.to_string())];
        family(
            encoder,
            "strom_io_uring_submissions",
            "io_uring operations submitted by each shard (file reads and writes, fsyncs, socket writes, splices)",
            MetricType::Counter,
            self.shards
                .iter()
                .map(|shard| (shard_label(shard), float(shard.io.submissions))),
        )?;
        family(
            encoder,
            "strom_fsyncs",
            "fdatasync operations submitted by each shard",
            MetricType::Counter,
            self.shards
                .iter()
                .map(|shard| (shard_label(shard), float(shard.io.fsyncs))),
        )?;
        single(
            encoder,
            "process_cpu_seconds",
            "User and system CPU time of the broker process",
            MetricType::Counter,
            self.process.cpu_seconds,
        )?;
        single(
            encoder,
            "process_resident_memory_bytes",
            "Resident memory of the broker process",
            MetricType::Gauge,
            float(self.process.resident_memory_bytes),
        )?;
        single(
            encoder,
            "process_open_fds",
            "Open file descriptors of the broker process (segments, sockets, rings)",
            MetricType::Gauge,
            float(self.process.open_files),
        )
    }
}

impl Collector for BrokerSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.encode_requests(&mut encoder)?;
        self.encode_traffic(&mut encoder)?;
        self.encode_logs(&mut encoder)?;
        self.encode_cluster(&mut encoder)?;
        self.encode_groups(&mut encoder)?;
        self.encode_io_and_process(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::gather::TrafficSample;
    use crate::metrics::gather::{CommittedOffset, PartitionGauges};
    use crate::metrics::shard::{ApiSnapshot, RequestPathSnapshot};

    fn shard(id: usize, bytes_in: u64, high_watermark: i64) -> ShardSnapshot {
        ShardSnapshot {
            shard: id,
            requests: RequestPathSnapshot {
                apis: vec![ApiSnapshot {
                    api_key: 0,
                    requests: 2,
                    queue_time: HistogramSnapshot::default(),
                    handle_time: HistogramSnapshot::default(),
                    send_time: HistogramSnapshot::default(),
                }],
                errors: Vec::new(),
                connections: 1,
                replication_bytes_out: 0,
            },
            traffic: vec![TrafficSample {
                topic: "orders".into(),
                partition: 0,
                bytes_in,
                messages_in: 1,
                bytes_out: 0,
                messages_out: 0,
            }],
            partitions: vec![PartitionGauges {
                topic: "orders".into(),
                partition: id as i32,
                log_end_offset: high_watermark,
                high_watermark,
                size_bytes: 10,
                segments: 1,
                leader: true,
                under_replicated: false,
                under_min_isr: false,
            }],
            committed_offsets: vec![CommittedOffset {
                group: "billing".into(),
                topic: "orders".into(),
                partition: id as i32,
                offset: 3,
            }],
            ..ShardSnapshot::default()
        }
    }

    #[test]
    fn shards_are_summed_and_lag_is_high_watermark_minus_committed() {
        let text = encode(BrokerSnapshot {
            shards: vec![shard(0, 100, 10), shard(1, 50, 3)],
            ..BrokerSnapshot::default()
        })
        .expect("encode");
        assert!(
            text.contains("# TYPE strom_bytes_in_total counter"),
            "{text}"
        );
        assert!(
            text.contains("strom_bytes_in_total{topic=\"orders\",partition=\"0\"} 150"),
            "{text}"
        );
        assert!(
            text.contains("strom_requests_total{request=\"Produce\"} 4"),
            "{text}"
        );
        assert!(
            text.contains(
                "strom_consumer_group_lag{group=\"billing\",topic=\"orders\",partition=\"0\"} 7"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "strom_consumer_group_lag{group=\"billing\",topic=\"orders\",partition=\"1\"} 0"
            ),
            "{text}"
        );
        assert!(text.contains("strom_leader_partitions 2"), "{text}");
        assert!(
            text.contains(
                "strom_request_queue_time_seconds_bucket{request=\"Produce\",le=\"+Inf\"} 0"
            ),
            "{text}"
        );
    }

    #[test]
    fn names_of_apis_and_errors() {
        assert_eq!(api_name(1), "Fetch");
        assert_eq!(api_name(999), "999");
        assert_eq!(error_name(6), "NotLeaderOrFollower");
    }
}
