//! What the produce and fetch paths rely on: the high watermark as a log keeps it (clamped to
//! the log, moved by the writer when it follows the log end, announced to subscribers only when
//! it really moves: a long-polling fetch must not wake for a write's fsync), appends that queue
//! without suspending, and the two write paths (inline and io_uring) storing the same bytes.

use bytes::Bytes;

use super::*;

fn run<F: std::future::Future>(future: F) -> F::Output {
    crate::io::start_runtime(256, future)
}

fn batch(count: i32) -> Bytes {
    Bytes::from(crate::batch::build::build_batch(
        0, count, 100, 1_000, -1, -1, -1,
    ))
}

fn sync_config() -> LogConfig {
    LogConfig {
        durability: Durability::Sync,
        ..LogConfig::default()
    }
}

#[test]
fn a_following_high_watermark_moves_with_writes_and_not_with_syncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (log, _) = PartitionLog::open(dir.path(), sync_config())
            .await
            .expect("open");
        log.set_high_watermark_follows_log_end(true);
        let mut changes = log.subscribe_high_watermark();
        let receipt = log.append(batch(3), 0).await.expect("append");
        receipt.durable().wait().await.expect("durable");
        // The write moved the watermark: exactly one change, to the log end.
        assert!(changes.has_changed().expect("open"));
        assert_eq!(*changes.borrow_and_update(), 3);
        assert_eq!(log.high_watermark(), log.log_end_offset());
        // The sync that made it durable came after the write and did not announce anything.
        assert_eq!(log.durable_offset(), 3);
        assert!(!changes.has_changed().expect("open"));
        // Setting the same value again is no change either.
        log.set_high_watermark(3);
        assert!(!changes.has_changed().expect("open"));
        log.close().await.expect("close");
    });
}

#[test]
fn a_high_watermark_set_by_its_owner_stays_within_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (log, _) = PartitionLog::open(dir.path(), LogConfig::default())
            .await
            .expect("open");
        let mut changes = log.subscribe_high_watermark();
        let receipt = log.append(batch(5), 0).await.expect("append");
        receipt.written().wait().await.expect("written");
        // Not following: the writer leaves it alone.
        assert_eq!(log.high_watermark(), 0);
        assert!(!changes.has_changed().expect("open"));
        log.set_high_watermark(2);
        assert_eq!(*changes.borrow_and_update(), 2);
        log.set_high_watermark(1);
        assert_eq!(log.high_watermark(), 2, "it never goes back");
        assert!(
            !changes.has_changed().expect("open"),
            "and nothing is announced"
        );
        log.set_high_watermark(99);
        assert_eq!(log.high_watermark(), 5, "clamped to the log end");
        // Restoring it (from the replication checkpoint) may lower it, within the log.
        log.reset_high_watermark(-4);
        assert_eq!(log.high_watermark(), 0, "clamped to the log start");
        log.reset_high_watermark(3);
        assert_eq!(log.high_watermark(), 3);
        // Truncation below the watermark lowers it and announces it.
        log.set_high_watermark(5);
        changes.borrow_and_update();
        let second = log.append(batch(1), 0).await.expect("append");
        second.written().wait().await.expect("written");
        log.truncate_to(5).await.expect("truncate");
        assert!(!changes.has_changed().expect("open"), "the cut is above it");
        log.truncate_to(0).await.expect("truncate");
        assert!(changes.has_changed().expect("open"));
        assert_eq!(*changes.borrow_and_update(), 0);
        log.close().await.expect("close");
    });
}

#[test]
fn an_append_that_does_not_wait_is_queued_before_it_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (log, _) = PartitionLog::open(dir.path(), LogConfig::default())
            .await
            .expect("open");
        let bytes = batch(2);
        let validated = log.validate_record_set(&bytes).expect("valid");
        log.wait_for_queue_room().await.expect("room");
        let receipt = log
            .append_validated_now(bytes, validated, 0)
            .expect("append");
        // Offsets are assigned at once, before the writer has run.
        assert_eq!((receipt.base_offset, receipt.last_offset), (0, 1));
        assert_eq!(log.next_offset(), 2);
        receipt.written().wait().await.expect("written");
        log.close().await.expect("close");
        // A closed log refuses without suspending.
        assert!(log.wait_for_queue_room().await.is_err());
    });
}

#[test]
fn inline_and_io_uring_writes_store_the_same_log() {
    let mut logs = Vec::new();
    for write_inline in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            write_inline,
            segment_bytes: 64 << 10,
            ..LogConfig::default()
        };
        let bytes = run(async {
            let (log, _) = PartitionLog::open(dir.path(), config).await.expect("open");
            let mut last = None;
            // Enough batches for several write rounds and segment rolls.
            for index in 0..600 {
                last = Some(log.append(batch(1 + index % 7), 3).await.expect("append"));
            }
            last.expect("appended")
                .written()
                .wait()
                .await
                .expect("written");
            let mut stored = Vec::new();
            let mut offset = 0;
            while let Some(range) = log.read(offset, 1 << 20, i64::MAX).await.expect("read") {
                stored.extend(range.read_to_vec().await.expect("range"));
                offset = range.next_offset;
            }
            assert_eq!(offset, log.log_end_offset());
            log.close().await.expect("close");
            stored
        });
        logs.push(bytes);
    }
    assert!(!logs[0].is_empty());
    assert!(
        logs[0] == logs[1],
        "the two write paths stored different bytes"
    );
}
