//! What a scrape asks of each shard: its counters and the state of the partitions and groups
//! it owns, read on the shard's own thread (the scraper sends this as a message) and sent back
//! as plain data.

use strom_engine::io::IoStats;

use super::shard::{shard_events, RequestPathSnapshot, ShardEvents};
use crate::broker::group_placement::OFFSETS_TOPIC;
use crate::broker::shard::ShardState;
use crate::broker::topics::NO_LEADER;

/// Bytes and records through one partition, as one shard counted them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficSample {
    pub topic: String,
    pub partition: i32,
    pub bytes_in: u64,
    pub messages_in: u64,
    pub bytes_out: u64,
    pub messages_out: u64,
}

/// One replica this shard holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionGauges {
    pub topic: String,
    pub partition: i32,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub segments: usize,
    /// This broker leads it.
    pub leader: bool,
    /// Led here, with fewer in-sync replicas than assigned ones.
    pub under_replicated: bool,
    /// Led here, with fewer in-sync replicas than `min.insync.replicas`.
    pub under_min_isr: bool,
}

/// A group's committed offset for one partition, held by a coordinator on this shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The cluster as this broker sees it (gathered from one shard only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterGauges {
    pub active_controller: bool,
    /// Partitions without a leader; only the controller reports them (as Kafka does), so a
    /// sum over brokers counts each once.
    pub offline_partitions: u64,
}

/// Everything one shard reports to a scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub requests: RequestPathSnapshot,
    pub traffic: Vec<TrafficSample>,
    pub io: IoStats,
    pub events: ShardEvents,
    pub partitions: Vec<PartitionGauges>,
    pub committed_offsets: Vec<CommittedOffset>,
    pub cluster: Option<ClusterGauges>,
}

/// Reads `state`'s metrics; run it on `state`'s shard. `with_cluster`: also report the cluster
/// gauges (one shard per scrape does).
pub fn gather(state: &ShardState, with_cluster: bool) -> ShardSnapshot {
    let requests = state.metrics.snapshot();
    let partitions = state
        .partitions()
        .into_iter()
        .map(|partition| {
            let leader = partition.is_leader();
            let (assigned, in_sync) = state
                .metadata
                .topic(&partition.topic)
                .and_then(|topic| {
                    topic
                        .partition(partition.index)
                        .map(|view| (view.replicas.len(), view.isr.len()))
                })
                .unwrap_or((0, 0));
            // The leader's own ISR is fresher than the one read back from the store.
            let in_sync = partition
                .leader_replication()
                .map_or(in_sync, |replication| replication.isr().len());
            PartitionGauges {
                topic: partition.topic.to_string(),
                partition: partition.index,
                log_end_offset: partition.log.log_end_offset(),
                high_watermark: partition.high_watermark(),
                size_bytes: partition.log.size_bytes(),
                segments: partition.log.segment_count(),
                leader,
                under_replicated: leader && in_sync < assigned,
                under_min_isr: leader && assigned > 1 && in_sync < partition.min_insync_replicas(),
            }
        })
        .collect();
    let cluster = with_cluster.then(|| cluster_gauges(state));
    ShardSnapshot {
        shard: state.id,
        requests,
        traffic: traffic(state),
        io: strom_engine::io::shard_io_stats(),
        events: shard_events(),
        partitions,
        committed_offsets: state
            .groups
            .committed_offsets()
            .into_iter()
            .filter(|offset| offset.topic != OFFSETS_TOPIC)
            .collect(),
        cluster,
    }
}

/// Produce traffic of the partitions this shard owns, and consumer traffic through this shard's
/// connections.
fn traffic(state: &ShardState) -> Vec<TrafficSample> {
    let produced = state
        .partitions()
        .into_iter()
        .filter(|partition| partition.produced.bytes() > 0)
        .map(|partition| TrafficSample {
            topic: partition.topic.to_string(),
            partition: partition.index,
            bytes_in: partition.produced.bytes(),
            messages_in: partition.produced.records(),
            bytes_out: 0,
            messages_out: 0,
        });
    let consumed = state.metadata.topics().into_iter().flat_map(|topic| {
        topic
            .consumed
            .iter()
            .zip(0i32..)
            .filter(|(counter, _)| counter.bytes() > 0)
            .map(|(counter, partition)| TrafficSample {
                topic: topic.name.to_string(),
                partition,
                bytes_in: 0,
                messages_in: 0,
                bytes_out: counter.bytes(),
                messages_out: counter.records(),
            })
            .collect::<Vec<_>>()
    });
    produced.chain(consumed).collect()
}

fn cluster_gauges(state: &ShardState) -> ClusterGauges {
    {
        let members = state.metadata.members();
        let active_controller = members.controller_id == state.broker.config.broker_id;
        let offline_partitions = if active_controller {
            state
                .metadata
                .topics()
                .iter()
                .flat_map(|topic| topic.metadata.partition_states.iter())
                .filter(|view| view.leader == NO_LEADER)
                .count() as u64
        } else {
            0
        };
        ClusterGauges {
            active_controller,
            offline_partitions,
        }
    }
}

/// Whether this shard serves: not stopping, and every group coordinator it holds has loaded.
pub fn shard_ready(state: &ShardState) -> bool {
    !state.stopping.get() && state.groups.all_loaded()
}
