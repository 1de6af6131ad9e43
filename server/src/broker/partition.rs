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
use strom_engine::log::{AppendReceipt, LogConfig, PartitionLog, ShutdownScope, WaitOffset};

use super::leader_replication::LeaderReplication;
use super::producer_state::{ProducerStateTable, SequenceDecision, SequenceError};
use super::recompress::recompress;
use super::topic_config::{Codec, TopicCompression};

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
    #[error("batch not recompressed to the topic's codec: {0}")]
    Recompress(#[from] super::recompress::RecompressError),
    #[error("transactional batches are not supported")]
    Transactional,
    #[error("this broker is not the partition's leader")]
    NotLeader,
    #[error("{0}")]
    NotEnoughReplicas(#[from] crate::replication::NotEnoughReplicas),
}

/// What an accepted append returns before it is written.
#[derive(Debug)]
pub struct AppendOutcome {
    pub base_offset: i64,
    pub log_start_offset: i64,
    /// Records appended (0 for a duplicate), for the metrics.
    pub records_appended: u64,
    /// Resolves when the append meets the requested acks; `None` for a duplicate (already
    /// stored) batch.
    pub wait: Option<AckWait>,
}

/// What an append's acknowledgement waits for. `Send`: the produce completes on the
/// connection's shard, not necessarily the partition's.
#[derive(Debug)]
pub enum AckWait {
    /// Written (or durable per the log's policy) on this broker.
    Local(WaitOffset),
    /// `acks=all` on a replicated partition: the high watermark passed the batch; resolves with
    /// the produce's error code (see `LeaderReplication::wait_acks_all`).
    Replicated(tokio::sync::oneshot::Receiver<i16>),
}

/// How long a replicated `acks=all` append is followed on the leader at most; the produce's own
/// timeout is applied where the response is completed.
const ACKS_ALL_FOLLOW_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

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
    /// Follower tracking, the ISR and the high watermark while this broker leads a replicated
    /// partition (`None` when following, or with a single replica).
    leader_replication: RefCell<Option<Rc<LeaderReplication>>>,
    /// The topic's `min.insync.replicas` (over the broker default) for `acks=all`.
    min_insync_replicas: Cell<usize>,
    /// The topic's `compression.type`: a batch in another codec is recompressed on append.
    compression: Cell<TopicCompression>,
    /// Bytes and records producers appended here (the metrics; see `metrics::traffic`).
    pub produced: crate::metrics::TrafficCounter,
    producers: RefCell<ProducerStateTable>,
    /// The producer snapshot file's bytes as this process last read or wrote them: a close
    /// whose snapshot encodes to the same bytes skips rewriting it. (With 10,000 idle
    /// partitions, the create and rename of every snapshot was most of a clean stop.)
    snapshot_on_disk: RefCell<Option<Vec<u8>>>,
    /// The log's write-abort count (`PartitionLog::write_aborts`) the producer table was last
    /// brought in line with: a full disk undoes appends whose sequences the table recorded.
    aborts_seen: Cell<u64>,
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
            leader_replication: RefCell::new(None),
            min_insync_replicas: Cell::new(1),
            compression: Cell::new(TopicCompression::Producer),
            produced: crate::metrics::TrafficCounter::default(),
            producers: RefCell::new(producers),
            snapshot_on_disk: RefCell::new(snapshot_on_disk),
            aborts_seen: Cell::new(0),
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
        self.set_leader_replication(None);
    }

    /// Sets (or ends) the replication state of this leadership; the one it replaces is stopped,
    /// which answers its waiting `acks=all` produces NOT_LEADER_OR_FOLLOWER.
    pub fn set_leader_replication(&self, replication: Option<Rc<LeaderReplication>>) {
        let old = std::mem::replace(&mut *self.leader_replication.borrow_mut(), replication);
        if let Some(old) = old {
            old.stop();
        }
    }

    pub fn leader_replication(&self) -> Option<Rc<LeaderReplication>> {
        self.leader_replication.borrow().clone()
    }

    /// Applies the topic's configs (at open, and when they change at run time): the log's
    /// retention, segments, durability and size limit, `min.insync.replicas` and
    /// `compression.type`. A log config the engine refuses keeps the old one (logged).
    pub fn apply_topic_configs(
        &self,
        config: LogConfig,
        min_insync_replicas: usize,
        compression: TopicCompression,
    ) {
        if let Err(error) = self.log.set_config(config) {
            tracing::error!(topic = %self.topic, index = self.index, %error, "topic config not applied");
        }
        self.set_min_insync_replicas(min_insync_replicas);
        self.compression.set(compression);
    }

    pub fn compression(&self) -> TopicCompression {
        self.compression.get()
    }

    pub fn set_min_insync_replicas(&self, min_insync_replicas: usize) {
        self.min_insync_replicas.set(min_insync_replicas.max(1));
    }

    /// The topic's `min.insync.replicas` (over the broker default) as last applied.
    pub fn min_insync_replicas(&self) -> usize {
        self.min_insync_replicas.get()
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
        let mut validated = self.log.validate_record_set(&records)?;
        let mut records = records;
        let header: BatchHeader = match validated.headers() {
            [header] => *header,
            headers => return Err(AppendError::BatchCount(headers.len())),
        };
        // A topic with a codec of its own recompresses batches in another one (Kafka's
        // `compression.type`); batches already in it, and `producer` topics, stay zero-copy.
        if let TopicCompression::Codec(codec) = self.compression.get() {
            if Codec::from_attributes(header.attributes) != Some(codec) {
                records = recompress(&records, codec)?;
                validated = self.log.validate_record_set(&records)?;
            }
        }
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
        // acks=all on a replicated partition: refused before it is appended when the ISR is
        // too small (NOT_ENOUGH_REPLICAS); acks=1 and acks=0 are not affected.
        // Only `acks=all` needs the replication state: `acks=0/1` appends skip the lookup.
        let replication = match acks {
            AckLevel::All => self.leader_replication(),
            AckLevel::None | AckLevel::Leader => None,
        };
        if let Some(replication) = &replication {
            replication.check_acks_all(self.min_insync_replicas.get())?;
        }
        if header.has_producer_id() {
            self.forget_undone_batches();
            if let SequenceDecision::Duplicate { first_offset, .. } =
                self.producers.borrow().check(&header)?
            {
                return Ok(AppendOutcome {
                    base_offset: first_offset,
                    log_start_offset: self.log.log_start_offset(),
                    records_appended: 0,
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
        let wait = match &replication {
            Some(replication) => {
                let required_offset = base_offset + i64::from(header.last_offset_delta) + 1;
                AckWait::Replicated(replication.wait_acks_all(
                    required_offset,
                    self.min_insync_replicas.get(),
                    ACKS_ALL_FOLLOW_LIMIT,
                ))
            }
            None => AckWait::Local(receipt.into_wait(acks == AckLevel::All)),
        };
        Ok(AppendOutcome {
            base_offset,
            log_start_offset: self.log.log_start_offset(),
            records_appended: u64::try_from(header.record_count).unwrap_or(0),
            wait: Some(wait),
        })
    }

    /// After the log undid appends for lack of space, forgets the producer batches it undid:
    /// a producer's retry of one of them must be appended again, not acknowledged as a
    /// duplicate of a batch that is not there. Nothing suspends between this and the check.
    fn forget_undone_batches(&self) {
        let aborts = self.log.write_aborts();
        if aborts != self.aborts_seen.get() {
            self.producers
                .borrow_mut()
                .truncate_to(self.log.next_offset());
            self.aborts_seen.set(aborts);
        }
    }

    /// A follower fetched from this leader at `fetch_offset` (its log end, or its durable end
    /// under `log.durability=sync`) while the leader's log ended at `leader_log_end_offset`:
    /// the leader state counts it (catching up, ISR expansion, the high watermark). Called by
    /// the fetch handler on the owner shard, for fetches answered with records or an empty set
    /// (not a diverging epoch or an error).
    pub fn on_replica_fetch(
        &self,
        follower_id: i32,
        fetch_offset: i64,
        leader_log_end_offset: i64,
        now_ms: i64,
    ) {
        if let Some(replication) = self.leader_replication() {
            replication.on_replica_fetch(follower_id, fetch_offset, leader_log_end_offset, now_ms);
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
        let validated = self.log.validate_replicated_record_set(&records)?;
        let headers: Vec<BatchHeader> = validated.headers().to_vec();
        self.forget_undone_batches();
        let receipt = self.log.append_replicated_now(records, validated)?;
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

    /// Drops the whole log and starts it empty at `offset` (a follower whose log ends below
    /// its leader's log start). Producer state goes with the batches it was built from.
    pub async fn truncate_fully_and_start_at(
        &self,
        offset: i64,
    ) -> Result<i64, strom_engine::Error> {
        let start = self.log.truncate_fully_and_start_at(offset).await?;
        self.producers.borrow_mut().truncate_to(0);
        Ok(start)
    }
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

    /// A batch as a leader stored it: at `base_offset`, stamped with `leader_epoch` (bytes 12..16,
    /// outside the CRC).
    fn leader_batch(base_offset: i64, leader_epoch: i32, producer_id: i64, sequence: i32) -> Bytes {
        let mut batch = strom_engine::batch::build::build_batch(
            base_offset,
            2,
            8,
            1_000,
            producer_id,
            0,
            sequence,
        );
        batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
        Bytes::from(batch)
    }

    /// Issue 10, idempotent producers across failover: a follower records the producer ids and
    /// sequences of the batches it replicates, so once it leads, a producer's retry of a batch
    /// it copied is acknowledged with the original offsets instead of stored twice.
    #[test]
    fn a_follower_that_becomes_leader_knows_the_replicated_producer_sequences() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("t-0");
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
            assert!(
                partition.apply_leadership(3, false),
                "a follower in epoch 3"
            );
            let first = partition
                .append_replicated(leader_batch(0, 3, 77, 0))
                .expect("replicated append");
            let second = partition
                .append_replicated(leader_batch(2, 3, 77, 2))
                .expect("replicated append");
            assert_eq!(
                (first.base_offset, second.last_offset),
                (0, 3),
                "the leader's offsets"
            );
            second.written().wait().await.expect("written");
            assert_eq!(partition.log.leader_epoch_entries(), vec![(3, 0)]);
            assert!(
                partition
                    .append_replicated(leader_batch(7, 3, 77, 4))
                    .is_err(),
                "a gap is refused"
            );

            assert!(partition.apply_leadership(4, true), "leader in epoch 4");
            // The producer retries its second batch against the new leader.
            let retry = partition
                .append(leader_batch(0, -1, 77, 2), AckLevel::Leader)
                .await
                .expect("a duplicate is acknowledged");
            assert_eq!(retry.base_offset, 2, "the original offset");
            assert!(retry.wait.is_none(), "nothing appended");
            assert_eq!(partition.log.next_offset(), 4);
            assert!(
                matches!(
                    partition.append_replicated(leader_batch(4, 4, 77, 4)),
                    Err(AppendError::NotLeader)
                ),
                "a leader takes no replicated appends"
            );
            partition.close().await.expect("close");
        });
    }

    /// Issue 11, disk full: a batch whose write a full disk undid was recorded in the producer
    /// table when it was appended; the producer's retry of it must be appended again once
    /// there is room, not acknowledged as a duplicate of a batch that is not in the log.
    #[test]
    fn a_retry_of_a_batch_a_full_disk_undid_is_appended_again() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: mounting a small tmpfs needs root");
            return;
        }
        let root = tempfile::tempdir().expect("tempdir");
        let small = root.path().join("small");
        std::fs::create_dir(&small).expect("mkdir");
        let mount = |args: &[&str]| {
            let status = std::process::Command::new("mount")
                .args(args)
                .arg(&small)
                .status()
                .expect("run mount");
            assert!(status.success(), "mount {args:?}");
        };
        mount(&["-t", "tmpfs", "-o", "size=512k", "tmpfs"]);
        /// Unmounts on drop, also when an assertion fails.
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(self.0).status();
            }
        }
        let _unmount = Unmount(&small);
        let batch = |sequence: i32| {
            Bytes::from(strom_engine::batch::build::build_batch(
                0, 1, 40_000, 1_000, 9, 0, sequence,
            ))
        };
        let dir = small.join("t-0");
        strom_engine::io::start_runtime(64, async {
            let partition = Partition::open(
                dir,
                Rc::from("t"),
                0,
                uuid::Uuid::nil(),
                LogConfig::default(),
            )
            .await
            .expect("open");
            assert!(partition.apply_leadership(1, true));
            let mut sequence = 0;
            loop {
                let outcome = partition
                    .append(batch(sequence), AckLevel::Leader)
                    .await
                    .expect("the first refusal comes from the write, not up front");
                let Some(AckWait::Local(wait)) = outcome.wait else {
                    panic!("sequence {sequence} was appended, not a duplicate");
                };
                match wait.wait().await {
                    Ok(()) => sequence += 1,
                    Err(error) => {
                        assert!(error.is_no_space(), "{error}");
                        break;
                    }
                }
                assert!(sequence < 100, "512 KiB must fill up");
            }
            let stored = partition.log.log_end_offset();
            assert_eq!(stored, i64::from(sequence), "one record per stored batch");
            mount(&["-o", "remount,size=4m"]);
            let retry = partition
                .append(batch(sequence), AckLevel::Leader)
                .await
                .expect("the retry is taken");
            assert_eq!(retry.base_offset, stored, "appended at the log end");
            let Some(AckWait::Local(wait)) = retry.wait else {
                panic!("the retry must be appended, not acknowledged as a duplicate");
            };
            wait.wait().await.expect("written");
            assert_eq!(partition.log.log_end_offset(), stored + 1);
            // And the next one follows in sequence.
            let next = partition
                .append(batch(sequence + 1), AckLevel::Leader)
                .await
                .expect("in sequence");
            assert_eq!(next.base_offset, stored + 1);
            partition.close().await.expect("close");
        });
    }
}
