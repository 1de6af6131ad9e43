//! Per-partition log configuration, with Kafka's topic-config names in the docs.

/// When an appended batch counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Page cache only, as Kafka by default: acknowledged once written; a machine crash may lose
    /// the tail, a process crash does not.
    None,
    /// Flush every `flush_ms`: durable at the next flush after it was written.
    Interval { flush_ms: u64 },
    /// Group commit: one fdatasync per dirty segment per round; every append waiting on that round
    /// is durable when it completes.
    Sync,
}

/// `cleanup.policy`: what happens to old data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Delete whole old segments by `retention.ms` / `retention.bytes`.
    #[default]
    Delete,
    /// Keep the latest record per key ([`super::PartitionLog::compact`]); time and size
    /// retention do not apply (segments wholly below the log start still go).
    Compact,
}

/// Kafka's default `delete.retention.ms` (one day).
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// Configuration of one partition log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before one would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a segment whose first batch is older than this.
    pub segment_ms: i64,
    /// `segment.index.bytes`: roll when the offset index reaches this size.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of log between two offset-index entries.
    pub index_interval_bytes: u64,
    /// `retention.ms`: delete segments whose newest record is older; `None` keeps them forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: delete the oldest segments while the log is larger; `None` = no limit.
    pub retention_bytes: Option<u64>,
    /// `max.message.bytes`: largest batch accepted.
    pub max_message_bytes: usize,
    /// When appends become durable.
    pub durability: Durability,
    /// `cleanup.policy`: delete old segments, or compact the log by key.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: on a compacted log, how long a tombstone (a record with a null
    /// value) that is the latest for its key is kept, counted from the largest timestamp of its
    /// segment, so consumers get to see the delete.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: a compaction pass runs only when the bytes not yet compacted
    /// are at least this share of the compactable bytes (or a kept tombstone has expired).
    pub min_cleanable_dirty_ratio: f64,
    /// Write appends with `pwritev(2)` on the shard thread rather than through io_uring.
    /// Measured (benches/RESULTS.md): a buffered ext4 write cannot be done without blocking, so
    /// io_uring hands each one to a worker thread, and that hand-off cost ~40% of the produce
    /// path's CPU; a page-cache write inline is a memcpy. The price: when the kernel throttles
    /// writers for dirty pages, the shard thread waits instead of a worker.
    pub write_inline: bool,
}

/// Kafka's default `max.message.bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            durability: Durability::None,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            min_cleanable_dirty_ratio: 0.5,
            write_inline: true,
        }
    }
}

impl LogConfig {
    /// Checks relationships between the values that the log relies on.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 1024 {
            return Err(format!(
                "segment.bytes {} is below 1024",
                self.segment_bytes
            ));
        }
        if self.segment_bytes > u64::from(u32::MAX) {
            // Index positions are 32-bit, as in Kafka.
            return Err(format!(
                "segment.bytes {} exceeds {}",
                self.segment_bytes,
                u32::MAX
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err("index.interval.bytes must be positive".into());
        }
        if self.segment_index_bytes < 8 {
            return Err("segment.index.bytes must hold at least one entry".into());
        }
        if self.segment_ms <= 0 {
            return Err("segment.ms must be positive".into());
        }
        if self.delete_retention_ms < 0 {
            return Err("delete.retention.ms must not be negative".into());
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(format!(
                "min.cleanable.dirty.ratio {} is not within [0, 1]",
                self.min_cleanable_dirty_ratio
            ));
        }
        if let Durability::Interval { flush_ms: 0 } = self.durability {
            return Err("flush.ms must be positive".into());
        }
        Ok(())
    }
}
