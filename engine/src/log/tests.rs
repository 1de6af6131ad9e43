//! Behaviour of the partition log against real files and the real io_uring runtime.

use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use proptest::prelude::*;

use super::segment::{segment_path, LOG_SUFFIX};
use super::*;
use crate::batch::{split_record_set, BatchHeader};

fn run<F: Future>(future: F) -> F::Output {
    crate::io::start_runtime(256, future)
}

fn batch(count: i32, value_bytes: usize, timestamp_ms: i64) -> Bytes {
    Bytes::from(crate::batch::build::build_batch(
        0,
        count,
        value_bytes,
        timestamp_ms,
        -1,
        -1,
        -1,
    ))
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// The batch as stored: the producer's bytes with the broker's base offset.
fn stored(original: &Bytes, base_offset: i64) -> Vec<u8> {
    let mut bytes = original.to_vec();
    bytes[..8].copy_from_slice(&base_offset.to_be_bytes());
    bytes
}

/// Reads every batch from the log start to the end, in order.
async fn read_all(log: &PartitionLog) -> Vec<Vec<u8>> {
    let mut batches = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(range) = log.read(offset, 1 << 20, i64::MAX).await.expect("read") {
        let bytes = range.read_to_vec().await.expect("read range");
        for batch_range in split_record_set(&bytes).expect("whole batches") {
            batches.push(bytes[batch_range].to_vec());
        }
        offset = range.next_offset;
    }
    batches
}

async fn append_written(log: &PartitionLog, bytes: Bytes) -> AppendReceipt {
    let receipt = log.append(bytes, 0).await.expect("append");
    AppendReceipt {
        base_offset: receipt.base_offset,
        last_offset: receipt.last_offset,
        written: {
            receipt.written.wait().await.expect("written");
            log.progress_waiter(receipt.last_offset + 1, false)
        },
        durable: receipt.durable,
    }
}

impl PartitionLog {
    fn progress_waiter(&self, target_offset: i64, durable: bool) -> WaitOffset {
        WaitOffset::for_test(self.progress.subscribe(), target_offset, durable)
    }
}

#[test]
fn appends_get_consecutive_offsets_and_reads_return_the_holding_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (log, report) = PartitionLog::open(dir.path(), small_segments())
            .await
            .expect("open");
        assert!(!report.clean_shutdown);
        let mut expected = Vec::new();
        for index in 0..40 {
            let original = batch(1 + index % 4, 50, 1_000 + i64::from(index));
            let receipt = append_written(&log, original.clone()).await;
            expected.push((
                receipt.base_offset,
                receipt.last_offset,
                stored(&original, receipt.base_offset),
            ));
        }
        assert!(log.segment_count() > 1, "4 KiB segments must have rolled");
        assert_eq!(log.log_end_offset(), expected.last().map_or(0, |e| e.1 + 1));
        // Every offset reads back starting with the batch that holds it.
        for (base, last, bytes) in &expected {
            for offset in *base..=*last {
                let range = log
                    .read(offset, 1, i64::MAX)
                    .await
                    .expect("read")
                    .expect("data");
                assert_eq!(range.first_offset, *base, "offset {offset}");
                let got = range.read_to_vec().await.expect("bytes");
                assert_eq!(
                    &got, bytes,
                    "a 1-byte read returns exactly the holding batch"
                );
            }
        }
        let all: Vec<Vec<u8>> = expected.iter().map(|e| e.2.clone()).collect();
        assert_eq!(read_all(&log).await, all);
        // Reading at the end is empty; past it is out of range.
        assert!(log
            .read(log.log_end_offset(), 100, i64::MAX)
            .await
            .expect("read")
            .is_none());
        assert!(matches!(
            log.read(log.log_end_offset() + 1, 100, i64::MAX).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        // An upper bound (high watermark) stops reads.
        let bounded = log.read(0, 1 << 20, 3).await.expect("read").expect("data");
        assert!(bounded.next_offset <= 3 || bounded.first_offset == 0);
        log.close().await.expect("close");
    });
}

#[test]
fn invalid_input_is_rejected_and_leaves_the_log_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = LogConfig {
            max_message_bytes: 2000,
            ..LogConfig::default()
        };
        let (log, _) = PartitionLog::open(dir.path(), config).await.expect("open");
        append_written(&log, batch(2, 10, 0)).await;
        let mut corrupt = batch(1, 10, 0).to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(
            matches!(log.append(Bytes::from(corrupt), 0).await, Err(Error::InvalidBatch(e)) if e.is_corrupt())
        );
        assert!(matches!(
            log.append(batch(1, 3000, 0), 0).await,
            Err(Error::MessageTooLarge { .. })
        ));
        // A valid batch followed by garbage is rejected whole.
        let mut mixed = batch(1, 10, 0).to_vec();
        mixed.extend([0u8; 7]);
        assert!(log.append(Bytes::from(mixed), 0).await.is_err());
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(log.next_offset(), 2);
        assert_eq!(read_all(&log).await.len(), 1);
        log.close().await.expect("close");
    });
}

#[test]
fn clean_close_reopens_without_scanning_and_rebuilds_a_lost_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let expected = run(async {
        let (log, _) = PartitionLog::open(dir.path(), small_segments())
            .await
            .expect("open");
        for index in 0..80 {
            append_written(&log, batch(3, 40, i64::from(index))).await;
        }
        let all = read_all(&log).await;
        log.close().await.expect("close");
        all
    });
    run(async {
        let (log, report) = PartitionLog::open(dir.path(), small_segments())
            .await
            .expect("reopen");
        assert!(report.clean_shutdown);
        assert_eq!(report.segments_recovered, 0);
        assert_eq!(read_all(&log).await, expected);
        log.close().await.expect("close");
    });
    // Lose one index and corrupt another: both are rebuilt, never trusted.
    let bases: Vec<i64> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|e| super::segment::parse_log_file_name(e.ok()?.file_name().to_str()?))
        .collect();
    assert!(bases.len() >= 3);
    std::fs::remove_file(segment_path(dir.path(), bases[0], "index")).expect("remove index");
    std::fs::write(segment_path(dir.path(), bases[1], "index"), [0xff; 16]).expect("corrupt index");
    run(async {
        let (log, report) = PartitionLog::open(dir.path(), small_segments())
            .await
            .expect("reopen");
        assert_eq!(report.indexes_rebuilt, 2);
        assert_eq!(read_all(&log).await, expected);
        for offset in 0..log.log_end_offset() {
            let range = log
                .read(offset, 1, i64::MAX)
                .await
                .expect("read")
                .expect("data");
            assert!(range.first_offset <= offset && offset < range.next_offset);
        }
        log.close().await.expect("close");
    });
}

#[test]
fn sync_durability_groups_concurrent_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = LogConfig {
            durability: Durability::Sync,
            ..LogConfig::default()
        };
        let (log, _) = PartitionLog::open(dir.path(), config).await.expect("open");
        let mut waiters = Vec::new();
        for _ in 0..64 {
            let receipt = log.append(batch(1, 100, 0), 0).await.expect("append");
            waiters.push(crate::io::spawn_local(receipt.durable.wait()));
        }
        for waiter in waiters {
            waiter.await.expect("task").expect("durable");
        }
        assert_eq!(log.durable_offset(), 64);
        log.close().await.expect("close");
    });
}

#[test]
fn truncate_to_removes_whole_batches_and_appends_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (log, _) = PartitionLog::open(dir.path(), small_segments())
            .await
            .expect("open");
        for _ in 0..30 {
            append_written(&log, batch(3, 40, 0)).await;
        }
        let before = read_all(&log).await;
        // Offset 31 is inside the batch [30, 32]: that batch goes too.
        assert_eq!(log.truncate_to(31).await.expect("truncate"), 30);
        assert_eq!(log.log_end_offset(), 30);
        assert_eq!(read_all(&log).await, before[..10].to_vec());
        let receipt = append_written(&log, batch(2, 40, 0)).await;
        assert_eq!(receipt.base_offset, 30);
        // Truncating below the start empties the log.
        assert_eq!(log.truncate_to(0).await.expect("truncate"), 0);
        assert_eq!(read_all(&log).await.len(), 0);
        log.close().await.expect("close");
    });
}

#[test]
fn delete_records_and_retention_remove_old_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = LogConfig {
            retention_bytes: Some(8192),
            retention_ms: Some(60_000),
            ..small_segments()
        };
        let (log, _) = PartitionLog::open(dir.path(), config).await.expect("open");
        for index in 0..60 {
            append_written(&log, batch(2, 100, 1_000 + index)).await;
        }
        let segments_before = log.segment_count();
        assert!(log.size_bytes() > 8192);
        let outcome = log.enforce_retention(1_000).expect("retention");
        assert!(outcome.segments_deleted > 0);
        assert!(
            log.size_bytes() < 8192 + 4096,
            "at most one segment over the limit remains"
        );
        assert_eq!(
            log.segment_count(),
            segments_before - outcome.segments_deleted
        );
        assert!(log.log_start_offset() > 0);
        assert!(matches!(
            log.read(0, 10, i64::MAX).await,
            Err(Error::OffsetOutOfRange { .. })
        ));
        // Time-based: everything but the active segment is older than a minute at t = 10 min.
        log.enforce_retention(600_000).expect("retention");
        assert_eq!(log.segment_count(), 1);

        let start = log.log_start_offset();
        let end = log.log_end_offset();
        // The high watermark is the replica owner's to set; DeleteRecords may not pass it.
        assert!(matches!(
            log.delete_records_before(end - 1),
            Err(Error::OffsetOutOfRange { .. })
        ));
        log.set_high_watermark(end);
        assert_eq!(
            log.delete_records_before(end - 1).expect("delete records"),
            end - 1
        );
        assert!(log.log_start_offset() > start);
        assert!(matches!(
            log.delete_records_before(end + 5),
            Err(Error::OffsetOutOfRange { .. })
        ));
        log.close().await.expect("close");
    });
    run(async {
        let (log, _) = PartitionLog::open(dir.path(), small_segments())
            .await
            .expect("reopen");
        assert_eq!(
            log.log_start_offset(),
            log.log_end_offset() - 1,
            "log start survives restart"
        );
        log.close().await.expect("close");
    });
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (log, _) = PartitionLog::open(dir.path(), small_segments())
            .await
            .expect("open");
        // Batch i has 4 records with timestamps 1000*i + 0..3, offsets 4i..4i+3.
        for index in 0..40i64 {
            append_written(&log, batch(4, 30, 1_000 * index)).await;
        }
        let found = log
            .offset_for_timestamp(5_002)
            .await
            .expect("lookup")
            .expect("some");
        assert_eq!(
            found,
            TimestampLookup {
                offset: 22,
                timestamp_ms: 5_002
            }
        );
        let found = log
            .offset_for_timestamp(5_010)
            .await
            .expect("lookup")
            .expect("some");
        assert_eq!(found.offset, 24);
        assert_eq!(
            log.offset_for_timestamp(0)
                .await
                .expect("lookup")
                .map(|f| f.offset),
            Some(0)
        );
        assert_eq!(
            log.offset_for_timestamp(10_000_000).await.expect("lookup"),
            None
        );
        log.close().await.expect("close");
    });
}

#[test]
fn splice_and_copy_move_the_same_bytes_to_a_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (log, _) = PartitionLog::open(dir.path(), LogConfig::default())
            .await
            .expect("open");
        for _ in 0..50 {
            append_written(&log, batch(10, 1000, 0)).await;
        }
        let range = log
            .read(0, 1 << 30, i64::MAX)
            .await
            .expect("read")
            .expect("data");
        let expected = range.read_to_vec().await.expect("bytes");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr");
        let reader = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().expect("accept");
            let mut received = Vec::new();
            std::io::Read::read_to_end(&mut socket, &mut received).expect("read");
            received
        });
        let socket = Rc::new(
            crate::io::TcpStream::connect(address)
                .await
                .expect("connect"),
        );
        let pipe = crate::io::Pipe::new().expect("pipe");
        let pipe = crate::io::splice_to_socket(
            pipe,
            &range.file,
            range.position,
            range.len_bytes,
            &socket,
        )
        .await
        .expect("splice");
        crate::io::copy_to_socket(&range.file, range.position, range.len_bytes, &socket)
            .await
            .expect("copy");
        drop(pipe);
        drop(socket);
        let received = reader.join().expect("reader");
        assert_eq!(received.len(), 2 * expected.len());
        assert_eq!(&received[..expected.len()], &expected[..], "splice path");
        assert_eq!(&received[expected.len()..], &expected[..], "copy path");
        log.close().await.expect("close");
    });
}

/// Appends `sizes` batches, drops the log without closing (a crash), then damages the last
/// segment: cut at `cut_fraction` of its length and optionally flip a byte before the cut.
/// Recovery must keep exactly the batches wholly before the damage, and appends must continue.
fn crash_and_damage(
    sizes: &[(i32, usize)],
    cut_fraction: f64,
    flip: Option<f64>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let originals: Vec<Bytes> = sizes
        .iter()
        .enumerate()
        .map(|(i, &(count, value))| batch(count, value, i as i64))
        .collect();
    let stored_batches: Vec<(i64, Vec<u8>)> = run(async {
        let (log, _) = PartitionLog::open(dir.path(), small_segments())
            .await
            .expect("open");
        let mut out = Vec::new();
        let mut receipts = Vec::new();
        for original in &originals {
            receipts.push(log.append(original.clone(), 0).await.expect("append"));
        }
        for (receipt, original) in receipts.into_iter().zip(&originals) {
            let base = receipt.base_offset;
            receipt.written.wait().await.expect("written");
            out.push((base, stored(original, base)));
        }
        out
        // The log is dropped here without close: no clean-shutdown marker.
    });
    let last_base = *super::segment::parse_log_file_name_list(dir.path())
        .last()
        .expect("segments");
    let last_path = segment_path(dir.path(), last_base, LOG_SUFFIX);
    let mut bytes = std::fs::read(&last_path).expect("read segment");
    let cut = ((bytes.len() as f64) * cut_fraction) as usize;
    bytes.truncate(cut);
    let flipped_at = flip
        .filter(|_| cut > 0)
        .map(|fraction| ((cut as f64) * fraction) as usize % cut.max(1));
    if let Some(at) = flipped_at {
        bytes[at] ^= 0x5a;
    }
    std::fs::write(&last_path, &bytes).expect("write damaged");

    // Which batches must survive: all before the last segment; in it, those that end at or
    // before the cut and before the flipped byte's batch.
    let mut expected: Vec<Vec<u8>> = stored_batches
        .iter()
        .filter(|(base, _)| *base < last_base)
        .map(|(_, b)| b.clone())
        .collect();
    let mut position = 0usize;
    for (base, batch_bytes) in stored_batches.iter().filter(|(base, _)| *base >= last_base) {
        let _ = base;
        let end = position + batch_bytes.len();
        let damaged = flipped_at.is_some_and(|at| {
            at < end && at >= position && !flip_is_harmless(batch_bytes, at - position)
        });
        if end > cut || damaged {
            break;
        }
        expected.push(batch_bytes.clone());
        position = end;
    }

    run(async {
        let (log, report) = PartitionLog::open(dir.path(), small_segments())
            .await
            .expect("reopen");
        prop_assert!(!report.clean_shutdown);
        let recovered = read_all(&log).await;
        prop_assert_eq!(recovered.len(), expected.len());
        prop_assert!(
            recovered == expected,
            "recovered batches are not the expected prefix"
        );
        let end = log.log_end_offset();
        let receipt = log
            .append(batch(2, 10, 0), 0)
            .await
            .expect("append after recovery");
        prop_assert_eq!(receipt.base_offset, end);
        receipt.written.wait().await.expect("written");
        let tail = log
            .read(end, 1000, i64::MAX)
            .await
            .expect("read")
            .expect("data");
        let header = BatchHeader::parse(&tail.read_to_vec().await.expect("bytes")).expect("header");
        prop_assert_eq!(header.base_offset, end);
        log.close().await.expect("close");
        Ok(())
    })
}

/// Flipping a byte of the base offset, length-excluded prefix fields that recovery does not
/// check (the partition leader epoch) does not make a batch invalid.
fn flip_is_harmless(_batch: &[u8], at_in_batch: usize) -> bool {
    (12..16).contains(&at_in_batch)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn recovery_keeps_exactly_a_prefix(
        sizes in proptest::collection::vec((1i32..6, 1usize..300), 1..40),
        cut_fraction in 0.0f64..=1.0,
        flip in proptest::option::of(0.0f64..1.0),
    ) {
        crash_and_damage(&sizes, cut_fraction, flip)?;
    }
}

#[test]
fn recovery_at_every_byte_of_a_small_tail() {
    // Exhaustive over cut positions for one fixed log: every kind of byte position (inside the
    // log overhead, the header, the records, exactly on a boundary).
    let sizes = [(2, 20), (1, 5), (3, 40)];
    let total: usize = sizes
        .iter()
        .map(|&(count, value)| batch(count, value, 0).len())
        .sum();
    for cut in 0..=total {
        crash_and_damage(&sizes, cut as f64 / total as f64, None).expect("prefix after cut");
    }
}

#[test]
fn a_crash_mid_segment_with_many_segments_recovers_only_the_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (log, _) = PartitionLog::open(dir.path(), small_segments())
            .await
            .expect("open");
        for _ in 0..100 {
            append_written(&log, batch(1, 200, 0)).await;
        }
        // Let the syncer seal rolled segments and move the recovery point.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    });
    run(async {
        let (log, report) = PartitionLog::open(dir.path(), small_segments())
            .await
            .expect("reopen");
        assert!(!report.clean_shutdown);
        assert!(
            report.segments_recovered <= 2,
            "only segments after the recovery point are scanned: {report:?}"
        );
        assert_eq!(log.log_end_offset(), 100);
        log.close().await.expect("close");
    });
}
