//! A partition as this broker serves it: the engine's log, the leader epoch, and the
//! idempotent-producer state. Lives on exactly one shard (its owner, see `placement`).
//!
//! Single replica for now: the log's writer moves the high watermark to the log end after every
//! write. Replication will set it from followers' fetch positions instead.
//!
//! Appends take no lock: the sequence check, the offset assignment and the producer-state record
//! of an idempotent batch run in one step that never suspends, on the one shard thread that owns
//! the partition, so nothing can come between them.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strom_engine::batch::BatchHeader;
use strom_engine::log::{
    AppendReceipt, LogConfig, PartitionLog, ShutdownScope, ValidatedRecordSet, WaitOffset,
};

use super::producer_state::{ProducerStateTable, SequenceDecision, SequenceError};

/// Told of every replica fetch a leader serves: the follower's id, its fetch offset (its log end
/// offset, or its durable end under `log.durability=sync`) and the time. The replication logic
/// (the leader's follower tracking) sets it when the broker takes up a leadership; the fetch
/// handler calls it through [`Partition::on_replica_fetch`], on the partition's owner shard.
pub trait ReplicaFetchObserver {
    fn on_replica_fetch(
        &self,
        partition: &Partition,
        follower_id: i32,
        fetch_offset: i64,
        now_ms: i64,
    );
}

const PRODUCER_SNAPSHOT_FILE: &str = "producer-state-snapshot.json";

/// Why an append was refused; the produce handler maps each to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Engine(#[from] strom_engine::Error),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("a produce request must carry exactly one record batch per partition, got {0}")]
    BatchCount(usize),
    #[error("transactional batches are not supported")]
    Transactional,
    #[error("this broker is not the partition's leader")]
    NotLeader,
}

/// What an accepted append returns before it is written.
#[derive(Debug)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub log_start_offset: i64,
    /// Resolves when the append meets the requested acks; `None` for a duplicate (already
    /// stored) batch.
    pub wait: Option<WaitOffset>,
}

/// How long the producer waits: written (`acks=1`) or durable per policy (`acks=all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckLevel {
    None,
    Leader,
    All,
}

#[derive(Serialize, Deserialize)]
struct ProducerSnapshot {
    /// The table holds every batch below this offset.
    next_offset: i64,
    table: ProducerStateTable,
}

pub struct Partition {
    pub topic: Rc<str>,
    pub index: i32,
    pub topic_id: uuid::Uuid,
    pub dir: PathBuf,
    pub log: Rc<PartitionLog>,
    /// The leader epoch of the latest leadership decision this replica applied.
    pub leader_epoch: Cell<i32>,
    /// Whether this broker leads the partition (in that epoch). Only a leader takes produces
    /// and serves consumers; set by the control plane when the controller's decision arrives.
    is_leader: Cell<bool>,
    producers: RefCell<ProducerStateTable>,
    /// Who learns of replica fetches while this broker leads the partition (see
    /// [`ReplicaFetchObserver`]); `None`: nobody tracks followers (yet).
    replica_fetch_observer: RefCell<Option<Rc<dyn ReplicaFetchObserver>>>,
    /// The producer snapshot file's bytes as this process last read or wrote them: a close
    /// whose snapshot encodes to the same bytes skips rewriting it. (With 10,000 idle
    /// partitions, the create and rename of every snapshot was most of a clean stop.)
    snapshot_on_disk: RefCell<Option<Vec<u8>>>,
}

/// `<log dir>/<topic>-<partition>`, Kafka's layout.
pub fn partition_dir(log_dir: &Path, topic: &str, index: i32) -> PathBuf {
    log_dir.join(format!("{topic}-{index}"))
}

impl Partition {
    /// Opens a partition after the broker started (a new topic or partition): its log belongs
    /// to the broker's log dir, whose clean-shutdown marker says nothing about it, so it is
    /// recovered from its own checkpoints if it has data.
    pub async fn open(
        dir: PathBuf,
        topic: Rc<str>,
        index: i32,
        topic_id: uuid::Uuid,
        config: LogConfig,
    ) -> Result<Rc<Self>, strom_engine::Error> {
        let scope = ShutdownScope::LogDir {
            dir_was_clean: false,
        };
        Self::open_in(dir, topic, index, topic_id, config, scope).await
    }

    /// Opens the partition's log (recovering it if needed) and rebuilds producer state. At
    /// start, `scope` is the log dir's (`LogDir::scope`), which tells whether the last shutdown
    /// was clean.
    pub async fn open_in(
        dir: PathBuf,
        topic: Rc<str>,
        index: i32,
        topic_id: uuid::Uuid,
        config: LogConfig,
        scope: ShutdownScope,
    ) -> Result<Rc<Self>, strom_engine::Error> {
        let (log, report) = PartitionLog::open_in(&dir, config, scope).await?;
        if report.bytes_truncated > 0 || report.indexes_rebuilt > 0 {
            tracing::warn!(%topic, index, ?report, "partition recovered");
        }
        let (producers, snapshot_on_disk) = Self::rebuild_producer_state(&dir, &log).await?;
        // No followers: everything written is committed.
        log.set_high_watermark_follows_log_end(true);
        Ok(Rc::new(Partition {
            topic,
            index,
            topic_id,
            dir,
            log,
            leader_epoch: Cell::new(-1),
            is_leader: Cell::new(false),
            producers: RefCell::new(producers),
            replica_fetch_observer: RefCell::new(None),
            snapshot_on_disk: RefCell::new(snapshot_on_disk),
        }))
    }

    /// Rebuilds the table from the snapshot and the batches after it; also returns the snapshot
    /// file's bytes when they parsed.
    async fn rebuild_producer_state(
        dir: &Path,
        log: &PartitionLog,
    ) -> Result<(ProducerStateTable, Option<Vec<u8>>), strom_engine::Error> {
        let snapshot_bytes = std::fs::read(dir.join(PRODUCER_SNAPSHOT_FILE)).ok();
        let snapshot: Option<ProducerSnapshot> = snapshot_bytes
            .as_deref()
            .and_then(|bytes| serde_json::from_slice(bytes).ok());
        let snapshot_bytes = snapshot_bytes.filter(|_| snapshot.is_some());
        let (mut table, from_offset) = match snapshot {
            Some(snapshot) if snapshot.next_offset <= log.log_end_offset() => {
                (snapshot.table, snapshot.next_offset)
            }
            _ => (ProducerStateTable::default(), log.log_start_offset()),
        };
        log.for_each_batch_header(from_offset, |header| {
            if header.has_producer_id() && header.next_offset() > from_offset {
                table.record(header, header.base_offset);
            }
        })
        .await?;
        Ok((table, snapshot_bytes))
    }

    /// Applies a leadership decision of the controller. Only a decision with a newer leader epoch
    /// than the one applied is taken (it returns true); an older or repeated one is stale and
    /// ignored, so each decision is acted on once, and a leadership given up with
    /// [`Self::resign_leadership`] comes back only with a new election.
    pub fn apply_leadership(&self, leader_epoch: i32, is_leader: bool) -> bool {
        if leader_epoch <= self.leader_epoch.get() {
            return false;
        }
        self.leader_epoch.set(leader_epoch);
        self.is_leader.set(is_leader);
        true
    }

    /// Stops leading without a new epoch: the broker lost its coordination session and cannot
    /// vouch for its leadership any more.
    pub fn resign_leadership(&self) {
        self.is_leader.set(false);
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.get()
    }

    /// Checks that this broker leads the partition and the leader epoch a client believes
    /// current (-1: no check). Returns the partition's epoch, or the Kafka error: not the leader
    /// (NOT_LEADER_OR_FOLLOWER), a client ahead (UNKNOWN_LEADER_EPOCH: this broker has not
    /// caught up) or behind (FENCED_LEADER_EPOCH: the client must refresh metadata).
    pub fn check_leader_epoch(
        &self,
        client_epoch: i32,
    ) -> Result<i32, kafka_protocol::error::ResponseError> {
        if !self.is_leader.get() {
            return Err(kafka_protocol::error::ResponseError::NotLeaderOrFollower);
        }
        let epoch = self.leader_epoch.get();
        match client_epoch {
            _ if client_epoch < 0 || client_epoch == epoch => Ok(epoch),
            _ if client_epoch > epoch => {
                Err(kafka_protocol::error::ResponseError::UnknownLeaderEpoch)
            }
            _ => Err(kafka_protocol::error::ResponseError::FencedLeaderEpoch),
        }
    }

    /// What consumers may read up to (single replica: the log end, moved by the log's writer).
    pub fn high_watermark(&self) -> i64 {
        self.log.high_watermark()
    }

    /// Validates and queues a produce's record set. Returns once it is queued (in order with
    /// other appends to this partition); the outcome's `wait` resolves when `acks` is met.
    pub async fn append(
        &self,
        records: Bytes,
        acks: AckLevel,
    ) -> Result<AppendOutcome, AppendError> {
        // Validate first (CRC included): a damaged copy of a stored batch is corrupt, not a
        // duplicate to acknowledge.
        let validated = self.log.validate_record_set(&records)?;
        let header: BatchHeader = match validated.headers() {
            [header] => *header,
            headers => return Err(AppendError::BatchCount(headers.len())),
        };
        if header.is_transactional() {
            return Err(AppendError::Transactional);
        }
        if !self.is_leader.get() {
            return Err(AppendError::NotLeader);
        }
        // Wait for room in the write queue first: from here until the batch is queued nothing
        // suspends, so no other append to this partition can slip between the sequence check
        // and the append (see the module comment).
        self.log.wait_for_queue_room().await?;
        // Leadership may have moved while this append waited for room.
        if !self.is_leader.get() {
            return Err(AppendError::NotLeader);
        }
        if header.has_producer_id() {
            if let SequenceDecision::Duplicate { first_offset, .. } =
                self.producers.borrow().check(&header)?
            {
                return Ok(AppendOutcome {
                    base_offset: first_offset,
                    log_start_offset: self.log.log_start_offset(),
                    wait: None,
                });
            }
        }
        let receipt = self
            .log
            .append_validated_now(records, validated, self.leader_epoch.get())?;
        if header.has_producer_id() {
            self.producers
                .borrow_mut()
                .record(&header, receipt.base_offset);
        }
        let base_offset = receipt.base_offset;
        let wait = receipt.into_wait(acks == AckLevel::All);
        Ok(AppendOutcome {
            base_offset,
            log_start_offset: self.log.log_start_offset(),
            wait: Some(wait),
        })
    }

    /// Sets (or clears) who learns of replica fetches (see [`ReplicaFetchObserver`]).
    pub fn set_replica_fetch_observer(&self, observer: Option<Rc<dyn ReplicaFetchObserver>>) {
        *self.replica_fetch_observer.borrow_mut() = observer;
    }

    /// A follower fetched from this leader at `fetch_offset`: tells the observer, if any. Called
    /// by the fetch handler on the owner shard after it checked leadership and epoch.
    pub fn on_replica_fetch(&self, follower_id: i32, fetch_offset: i64, now_ms: i64) {
        // Cloned out so the observer may set a new observer (e.g. on a leadership change).
        let observer = self.replica_fetch_observer.borrow().clone();
        if let Some(observer) = observer {
            observer.on_replica_fetch(self, follower_id, fetch_offset, now_ms);
        }
    }

    /// Appends batches fetched from the leader as they are (offsets, leader epochs, producer ids
    /// kept; CRCs checked), and records their producer ids and sequences so that, should this
    /// replica become leader, a producer's retry gets its original offsets back (never a
    /// duplicate). The first batch must start at the log's next offset. Refused on the leader.
    /// Never suspends between the check and the append (see the module comment); the caller
    /// bounds the queue with `log.wait_for_queue_room` first.
    pub fn append_replicated(&self, records: Bytes) -> Result<AppendReceipt, AppendError> {
        if self.is_leader.get() {
            return Err(AppendError::NotLeader);
        }
        let validated = self.log.validate_record_set(&records)?;
        let headers: Vec<BatchHeader> = validated.headers().to_vec();
        let receipt = append_replicated_batches(&self.log, records, validated)?;
        let mut producers = self.producers.borrow_mut();
        for header in headers.iter().filter(|header| header.has_producer_id()) {
            producers.record(header, header.base_offset);
        }
        Ok(receipt)
    }

    /// Closes the log cleanly and snapshots producer state so the next start skips the scan.
    /// The snapshot is not synced here: the log dir's close syncs the file system once before
    /// it marks the shutdown clean, and a snapshot that does not parse is ignored on open.
    pub async fn close(&self) -> Result<(), strom_engine::Error> {
        self.log.close().await?;
        let snapshot = ProducerSnapshot {
            next_offset: self.log.log_end_offset(),
            table: self.producers.borrow().clone(),
        };
        match serde_json::to_vec(&snapshot) {
            Ok(bytes) if self.snapshot_on_disk.borrow().as_ref() == Some(&bytes) => {}
            Ok(bytes) => {
                let temp = self.dir.join(format!("{PRODUCER_SNAPSHOT_FILE}.tmp"));
                match std::fs::write(&temp, &bytes)
                    .and_then(|()| std::fs::rename(&temp, self.dir.join(PRODUCER_SNAPSHOT_FILE)))
                {
                    Ok(()) => *self.snapshot_on_disk.borrow_mut() = Some(bytes),
                    Err(error) => {
                        tracing::warn!(dir = %self.dir.display(), %error, "could not write producer snapshot; the next start scans the log")
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not encode producer snapshot"),
        }
        Ok(())
    }

    /// Truncation (followers, later) must forget producer batches past the cut.
    pub async fn truncate_to(&self, offset: i64) -> Result<i64, strom_engine::Error> {
        let end = self.log.truncate_to(offset).await?;
        self.producers.borrow_mut().truncate_to(end);
        Ok(end)
    }
}

/// Appends replicated batches keeping the leader's offsets and epochs.
///
/// Interim until the engine's `append_replicated_now` lands: the engine's ordinary append assigns
/// the next offset and patches in one leader epoch, which leaves the leader's bytes unchanged
/// exactly when each batch starts at the log's next offset and carries that epoch. So the batches
/// are checked to be contiguous from the next offset and appended in runs of one epoch.
fn append_replicated_batches(
    log: &PartitionLog,
    records: Bytes,
    validated: ValidatedRecordSet,
) -> Result<AppendReceipt, strom_engine::Error> {
    let headers = validated.headers();
    let mut expected = log.next_offset();
    for header in headers {
        if header.base_offset != expected {
            return Err(strom_engine::Error::OffsetOutOfRange {
                offset: header.base_offset,
                log_start_offset: log.log_start_offset(),
                log_end_offset: expected,
            });
        }
        expected = header.base_offset + i64::from(header.last_offset_delta) + 1;
    }
    let Some(first) = headers.first() else {
        return log.append_validated_now(records, validated, -1);
    };
    if headers
        .iter()
        .all(|header| header.partition_leader_epoch == first.partition_leader_epoch)
    {
        let epoch = first.partition_leader_epoch;
        return log.append_validated_now(records, validated, epoch);
    }
    // Mixed epochs: one append per batch (each validated again, a cost paid only at an epoch
    // boundary).
    let mut receipt = None;
    let mut position = 0usize;
    for header in headers {
        let len = header.total_bytes();
        let batch = records.slice(position..position + len);
        position += len;
        let one = log.validate_record_set(&batch)?;
        let appended = log.append_validated_now(batch, one, header.partition_leader_epoch)?;
        receipt = Some(appended);
    }
    Ok(receipt.expect("at least one batch"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn snapshot_inode(dir: &Path) -> u64 {
        std::fs::metadata(dir.join(PRODUCER_SNAPSHOT_FILE))
            .expect("snapshot written")
            .ino()
    }

    #[test]
    fn an_unchanged_producer_snapshot_is_not_rewritten() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("t-0");
        let open_and_close = || {
            let dir = dir.clone();
            strom_engine::io::start_runtime(64, async move {
                let partition = Partition::open(
                    dir,
                    Rc::from("t"),
                    0,
                    uuid::Uuid::nil(),
                    LogConfig::default(),
                )
                .await
                .expect("open");
                partition.close().await.expect("close");
            });
        };
        open_and_close();
        let first = snapshot_inode(&dir);
        open_and_close();
        assert_eq!(
            snapshot_inode(&dir),
            first,
            "the same snapshot is not written again (a rewrite renames a new file over it)"
        );
        // A snapshot that does not parse is replaced.
        std::fs::write(dir.join(PRODUCER_SNAPSHOT_FILE), b"{").expect("damage");
        open_and_close();
        let bytes = std::fs::read(dir.join(PRODUCER_SNAPSHOT_FILE)).expect("read");
        assert!(serde_json::from_slice::<ProducerSnapshot>(&bytes).is_ok());
    }
}
