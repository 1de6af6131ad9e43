//! Replication behaviour of the partition log against real files: replicated appends, the
//! leader-epoch cache and its checkpoint, and the replica owner's high watermark.

use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use super::leader_epoch::LEADER_EPOCH_CHECKPOINT_FILE;
use super::tests::{append_history, batch, compacted, read_all, run, settle, small_segments};
use super::*;
use crate::batch::build::build_batch;
use crate::batch::BatchHeader;

/// A producer's batch of `count` 1-record-per-offset records with a producer id.
fn producer_batch(count: i32, producer_id: i64, base_sequence: i32) -> Bytes {
    Bytes::from(build_batch(
        0,
        count,
        40,
        1_000,
        producer_id,
        0,
        base_sequence,
    ))
}

async fn open(dir: &Path, config: LogConfig) -> Rc<PartitionLog> {
    PartitionLog::open(dir, config).await.expect("open").0
}

async fn append_at_epoch(log: &PartitionLog, bytes: Bytes, leader_epoch: i32) {
    let receipt = log.append(bytes, leader_epoch).await.expect("append");
    receipt.written().wait().await.expect("written");
}

/// A follower's append of `batches` (as the leader stores them), sent as one record set.
fn replicate(follower: &PartitionLog, batches: &[Vec<u8>]) -> Result<AppendReceipt> {
    let bytes = Bytes::from(batches.concat());
    let validated = follower.validate_replicated_record_set(&bytes)?;
    follower.append_replicated_now(bytes, validated)
}

fn checkpoint_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)).expect("epoch checkpoint")
}

fn header(bytes: &[u8]) -> BatchHeader {
    BatchHeader::parse(bytes).expect("stored batch header")
}

#[test]
fn replicated_batches_are_stored_byte_for_byte_with_the_leaders_offsets_and_epochs() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let leader = open(leader_dir.path(), small_segments()).await;
        for index in 0..5 {
            append_at_epoch(&leader, producer_batch(2, 7, index * 2), 1).await;
        }
        leader.start_leader_epoch(3).expect("new epoch");
        for index in 0..5 {
            append_at_epoch(&leader, producer_batch(3, 8, index * 3), 3).await;
        }
        for index in 0..30 {
            append_at_epoch(&leader, producer_batch(4, 9, index * 4), 4).await;
        }
        assert!(
            leader.segment_count() > 2,
            "the copy must cross segment rolls"
        );
        let leader_batches = read_all(&leader).await;

        let follower = open(follower_dir.path(), small_segments()).await;
        for chunk in leader_batches.chunks(7) {
            let receipt = replicate(&follower, chunk).expect("replicated append");
            assert_eq!(receipt.base_offset, header(&chunk[0]).base_offset);
            let last = header(chunk.last().expect("chunk")).last_offset();
            assert_eq!(receipt.last_offset, last);
            receipt.written().wait().await.expect("written");
        }
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        let follower_batches = read_all(&follower).await;
        assert_eq!(follower_batches, leader_batches, "stored byte for byte");
        let first = header(&follower_batches[0]);
        assert_eq!((first.producer_id, first.partition_leader_epoch), (7, 1));
        assert_eq!(
            follower.leader_epoch_entries(),
            leader.leader_epoch_entries()
        );
        assert_eq!(
            follower.leader_epoch_entries(),
            vec![(1, 0), (3, 10), (4, 25)]
        );

        // After a restart (recovery re-checks every batch) the follower holds the same.
        follower.close().await.expect("close");
        let follower = open(follower_dir.path(), small_segments()).await;
        assert_eq!(read_all(&follower).await, leader_batches);
        assert_eq!(
            follower.leader_epoch_entries(),
            vec![(1, 0), (3, 10), (4, 25)]
        );
        follower.close().await.expect("close");
        leader.close().await.expect("close");
    });
}

#[test]
fn gaps_and_overlaps_are_refused_and_leave_the_log_untouched() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let compacted_dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let leader = open(leader_dir.path(), LogConfig::default()).await;
        for _ in 0..3 {
            append_at_epoch(&leader, batch(2, 10, 1_000), 0).await;
        }
        let batches = read_all(&leader).await;
        let (b0, b1, b2) = (&batches[0], &batches[1], &batches[2]);

        let follower = open(follower_dir.path(), LogConfig::default()).await;
        replicate(&follower, std::slice::from_ref(b0)).expect("first batch");
        let refused = |outcome: Result<AppendReceipt>| match outcome {
            Err(Error::ReplicaOffsetMismatch { expected, found }) => (expected, found),
            other => panic!("expected a mismatch, got {other:?}"),
        };
        assert_eq!(
            refused(replicate(&follower, std::slice::from_ref(b0))),
            (2, 0),
            "overlap"
        );
        assert_eq!(
            refused(replicate(&follower, std::slice::from_ref(b2))),
            (2, 4),
            "gap"
        );
        assert_eq!(
            refused(replicate(&follower, &[b1.clone(), b1.clone()])),
            (4, 2),
            "an overlap inside the record set"
        );
        assert_eq!(
            refused(replicate(&follower, &[b1.clone(), b0.clone()])),
            (4, 0)
        );
        // Nothing of a refused record set was appended.
        assert_eq!(follower.next_offset(), 2);
        replicate(&follower, &[b1.clone(), b2.clone()])
            .expect("contiguous")
            .written()
            .wait()
            .await
            .expect("written");
        assert_eq!(read_all(&follower).await, batches);

        // Compaction on a leader removes whole batches: a compacted log accepts a gap, never an
        // overlap.
        let follower = open(compacted_dir.path(), compacted(0)).await;
        replicate(&follower, std::slice::from_ref(b0)).expect("first batch");
        replicate(&follower, std::slice::from_ref(b2)).expect("a gap left by compaction");
        assert_eq!(
            refused(replicate(&follower, std::slice::from_ref(b1))),
            (6, 2)
        );
        assert_eq!(follower.next_offset(), 6);
        leader.close().await.expect("close");
    });
}

#[test]
fn a_compacted_leaders_batches_replicate_as_they_are() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let leader = open(leader_dir.path(), compacted(0)).await;
        append_history(&leader, 120).await;
        settle(&leader).await;
        assert!(leader.compact(1_000_000).await.expect("compact").ran);
        let leader_batches = read_all(&leader).await;
        let thinned = leader_batches
            .iter()
            .map(|bytes| header(bytes))
            .filter(|header| header.record_count < header.last_offset_delta + 1)
            .count();
        assert!(
            thinned > 0,
            "compaction must have removed records from batches"
        );
        // Such batches are not what a producer sends ...
        let thinned_batch = leader_batches
            .iter()
            .find(|bytes| {
                let header = header(bytes);
                header.record_count < header.last_offset_delta + 1
            })
            .expect("a thinned batch");
        assert!(leader
            .validate_record_set(&Bytes::from(thinned_batch.clone()))
            .is_err());
        // ... but a follower copies them.
        let follower = open(follower_dir.path(), compacted(0)).await;
        for chunk in leader_batches.chunks(10) {
            replicate(&follower, chunk)
                .expect("replicated append")
                .written()
                .wait()
                .await
                .expect("written");
        }
        assert_eq!(read_all(&follower).await, leader_batches);
        leader.close().await.expect("close");
        follower.close().await.expect("close");
    });
}

#[test]
fn the_epoch_cache_follows_appends_truncation_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let log = open(dir.path(), LogConfig::default()).await;
        assert_eq!(log.latest_leader_epoch(), None);
        assert_eq!(log.end_offset_for_epoch(0), (-1, -1));
        append_at_epoch(&log, batch(2, 10, 1_000), 0).await;
        append_at_epoch(&log, batch(2, 10, 1_000), 0).await;
        log.start_leader_epoch(2).expect("epoch 2");
        assert_eq!(log.leader_epoch_entries(), vec![(0, 0), (2, 4)]);
        log.start_leader_epoch(1)
            .expect("an older epoch is ignored");
        append_at_epoch(&log, batch(2, 10, 1_000), 2).await;
        append_at_epoch(&log, batch(2, 10, 1_000), 2).await;
        append_at_epoch(&log, batch(2, 10, 1_000), 5).await;
        assert_eq!(log.leader_epoch_entries(), vec![(0, 0), (2, 4), (5, 8)]);
        assert_eq!(log.latest_leader_epoch(), Some(5));
        assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n2 4\n5 8\n");
        assert_eq!(log.end_offset_for_epoch(5), (5, 10));
        assert_eq!(log.end_offset_for_epoch(2), (2, 8));
        assert_eq!(log.end_offset_for_epoch(3), (2, 8));
        assert_eq!(log.end_offset_for_epoch(6), (-1, -1));

        // Truncation drops the epochs that start at or after the new end, in the file too.
        assert_eq!(log.truncate_to(8).await.expect("truncate"), 8);
        assert_eq!(log.leader_epoch_entries(), vec![(0, 0), (2, 4)]);
        assert_eq!(log.end_offset_for_epoch(2), (2, 8));
        assert_eq!(checkpoint_text(dir.path()), "0\n2\n0 0\n2 4\n");
        // Offset 5 is inside the batch 4..=5, which goes whole: epoch 2 had nothing else.
        assert_eq!(log.truncate_to(5).await.expect("truncate"), 4);
        assert_eq!(log.leader_epoch_entries(), vec![(0, 0)]);

        // A restart keeps the cache, including an epoch started at the end with no data yet.
        log.start_leader_epoch(7).expect("epoch 7");
        log.close().await.expect("close");
        let log = open(dir.path(), LogConfig::default()).await;
        assert_eq!(log.leader_epoch_entries(), vec![(0, 0), (7, 4)]);
        assert_eq!(log.end_offset_for_epoch(0), (0, 4));
        append_at_epoch(&log, batch(1, 10, 1_000), 7).await;
        assert_eq!(log.leader_epoch_entries(), vec![(0, 0), (7, 4)]);
        log.close().await.expect("close");
    });
}

#[test]
fn a_missing_corrupt_or_disagreeing_checkpoint_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
    run(async {
        let log = open(dir.path(), small_segments()).await;
        append_at_epoch(&log, batch(2, 10, 1_000), 1).await;
        for _ in 0..20 {
            append_at_epoch(&log, batch(2, 200, 1_000), 3).await;
        }
        assert!(log.segment_count() > 1);
        let expected = vec![(1, 0), (3, 2)];
        assert_eq!(log.leader_epoch_entries(), expected);
        log.close().await.expect("close");
        let expected_text = "0\n2\n1 0\n3 2\n";

        for (case, damage) in [
            ("missing", None),
            ("garbage", Some("not a checkpoint")),
            ("bad count", Some("0\n5\n1 0\n3 2\n")),
            ("entry past the end", Some("0\n3\n1 0\n3 2\n9 1000\n")),
            ("wrong epoch for the last batch", Some("0\n1\n1 0\n")),
            (
                "epoch started after the last batch",
                Some("0\n2\n1 0\n3 41\n"),
            ),
            (
                "epoch started inside the last batch",
                Some("0\n3\n1 0\n3 2\n4 41\n"),
            ),
        ] {
            match damage {
                None => std::fs::remove_file(&path).expect("remove"),
                Some(text) => std::fs::write(&path, text).expect("write"),
            }
            let log = open(dir.path(), small_segments()).await;
            assert_eq!(log.leader_epoch_entries(), expected, "{case}");
            assert_eq!(checkpoint_text(dir.path()), expected_text, "{case}");
            log.close().await.expect("close");
        }
    });
}

#[test]
fn truncating_at_the_log_end_drops_an_epoch_that_holds_no_records() {
    // A leader records its epoch's start at the log end, then dies before its first write; as
    // a follower it truncates to its log end (nothing to cut), and that empty epoch must go:
    // the new leader never knew it, and every fetch naming it would be told it diverges.
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let log = open(dir.path(), LogConfig::default()).await;
        append_at_epoch(&log, batch(3, 10, 1_000), 0).await;
        log.start_leader_epoch(1).expect("epoch 1");
        assert_eq!(log.leader_epoch_entries(), vec![(0, 0), (1, 3)]);
        assert_eq!(log.truncate_to(3).await.expect("truncate"), 3);
        assert_eq!(log.leader_epoch_entries(), vec![(0, 0)]);
        assert_eq!(checkpoint_text(dir.path()), "0\n1\n0 0\n");
        assert_eq!(log.log_end_offset(), 3);
        // Beyond the log end it is the same; an epoch with records stays.
        assert_eq!(log.truncate_to(10).await.expect("truncate"), 3);
        assert_eq!(log.leader_epoch_entries(), vec![(0, 0)]);
        log.close().await.expect("close");
    });
}

#[test]
fn a_moving_log_start_trims_the_epochs_and_full_truncation_clears_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let log = open(dir.path(), LogConfig::default()).await;
        append_at_epoch(&log, batch(2, 10, 1_000), 1).await;
        append_at_epoch(&log, batch(2, 10, 1_000), 2).await;
        append_at_epoch(&log, batch(2, 10, 1_000), 4).await;
        log.set_high_watermark(6);
        assert_eq!(log.delete_records_before(3).expect("delete records"), 3);
        assert_eq!(log.leader_epoch_entries(), vec![(2, 3), (4, 4)]);
        assert_eq!(checkpoint_text(dir.path()), "0\n2\n2 3\n4 4\n");
        // Truncating to the log start (or below) empties the log and the cache.
        assert_eq!(log.truncate_to(3).await.expect("truncate"), 3);
        assert_eq!(log.leader_epoch_entries(), Vec::<(i32, i64)>::new());
        assert_eq!(checkpoint_text(dir.path()), "0\n0\n");
        log.close().await.expect("close");
        let log = open(dir.path(), LogConfig::default()).await;
        assert_eq!(log.latest_leader_epoch(), None);
        log.close().await.expect("close");
    });
}

#[test]
fn the_replica_owners_high_watermark_is_clamped_and_only_truncation_lowers_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let log = open(dir.path(), LogConfig::default()).await;
        log.set_high_watermark_follows_log_end(false);
        for _ in 0..5 {
            append_at_epoch(&log, batch(1, 10, 1_000), 0).await;
        }
        assert_eq!(log.high_watermark(), 0, "set by the owner only");
        log.set_high_watermark(3);
        assert_eq!(log.high_watermark(), 3);
        log.set_high_watermark(2);
        assert_eq!(
            log.high_watermark(),
            3,
            "a stale value does not move it back"
        );
        log.set_high_watermark(99);
        assert_eq!(log.high_watermark(), 5, "not past the log end");
        assert_eq!(log.truncate_to(2).await.expect("truncate"), 2);
        assert_eq!(log.high_watermark(), 2, "truncation below it lowers it");
        log.set_high_watermark(1);
        assert_eq!(log.high_watermark(), 2);
        log.set_high_watermark(4);
        assert_eq!(log.high_watermark(), 2, "the new log end bounds it");
        log.close().await.expect("close");
    });
}

#[test]
fn durable_end_offset_follows_the_durability_policy() {
    let sync_dir = tempfile::tempdir().expect("tempdir");
    let interval_dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let log = open(
            sync_dir.path(),
            LogConfig {
                durability: Durability::Sync,
                ..LogConfig::default()
            },
        )
        .await;
        let receipt = log.append(batch(3, 10, 1_000), 0).await.expect("append");
        receipt.durable().wait().await.expect("durable");
        assert_eq!(log.durable_end_offset(), 3);
        assert_eq!(log.durable_end_offset(), log.log_end_offset());
        log.close().await.expect("close");

        // Under a long flush interval a written batch is not durable yet.
        let log = open(
            interval_dir.path(),
            LogConfig {
                durability: Durability::Interval {
                    flush_ms: 3_600_000,
                },
                ..LogConfig::default()
            },
        )
        .await;
        append_at_epoch(&log, batch(3, 10, 1_000), 0).await;
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(log.durable_end_offset(), 0);
        log.close().await.expect("close");
    });
}

#[test]
fn a_follower_behind_the_leaders_log_start_starts_over_at_it_and_replicates_on() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let leader = open(leader_dir.path(), small_segments()).await;
        for index in 0..40 {
            append_at_epoch(&leader, producer_batch(2, 7, index * 2), 1).await;
        }
        let leader_batches = read_all(&leader).await;
        let follower = open(follower_dir.path(), small_segments()).await;
        replicate(&follower, &leader_batches[..3])
            .expect("replicated append")
            .written()
            .wait()
            .await
            .expect("written");
        assert_eq!(follower.log_end_offset(), 6);

        // The leader deletes records the follower never copied: offset 6 is gone for good.
        leader.set_high_watermark(leader.log_end_offset());
        let leader_start = leader.delete_records_before(50).expect("delete records");
        assert_eq!(leader_start, 50);

        let start = follower
            .truncate_fully_and_start_at(leader_start)
            .await
            .expect("start over");
        assert_eq!(start, 50);
        assert_eq!(follower.log_start_offset(), 50);
        assert_eq!(follower.log_end_offset(), 50);
        assert_eq!(follower.high_watermark(), 50);
        assert!(follower.leader_epoch_entries().is_empty());

        // Replication goes on from the leader's log start, and the epochs come back with it.
        let rest: Vec<Vec<u8>> = leader_batches
            .iter()
            .filter(|batch| header(batch).base_offset >= 50)
            .cloned()
            .collect();
        replicate(&follower, &rest)
            .expect("replicated append from the new start")
            .written()
            .wait()
            .await
            .expect("written");
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(follower.leader_epoch_entries(), vec![(1, 50)]);
        follower.close().await.expect("close");

        // The fresh start survives a restart.
        let reopened = open(follower_dir.path(), small_segments()).await;
        assert_eq!(reopened.log_start_offset(), 50);
        assert_eq!(reopened.log_end_offset(), leader.log_end_offset());
        assert_eq!(read_all(&reopened).await, rest);
    });
}
