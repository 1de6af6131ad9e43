//! Crash-recovery scan speed: `PartitionLog::open` of a ~512 MiB log that was not closed
//! (no clean-shutdown marker) and whose `recovery-point-offset-checkpoint` was deleted, so every
//! segment is scanned: read, CRC-32C checked, indexes rebuilt. The log is in the page cache (it
//! was just written), so this is the cached-scan rate (`OpenReport::bytes_scanned` per second).
//!
//! Baselines in the same run, over the same segment files: `raw_read_1MiB` (std `read` in 1 MiB
//! chunks: page-cache bandwidth) and `raw_read_crc32c` (the same plus CRC-32C of every byte: the
//! work recovery cannot skip).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strom_benches::{batch_16k, bench_base, bench_dir, criterion_config, RING_ENTRIES};
use strom_engine::io::start_runtime;
use strom_engine::log::{LogConfig, PartitionLog};

/// ~512 MiB of ~16 KiB batches.
const BATCHES: u64 = 32 * 1024;
/// Four segments of 128 MiB.
const SEGMENT_BYTES: u64 = 128 << 20;
const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: SEGMENT_BYTES,
        ..LogConfig::default()
    }
}

/// Makes the next open a full recovery scan.
fn forget_checkpoints(dir: &Path) {
    for name in [RECOVERY_POINT_FILE, CLEAN_SHUTDOWN_FILE] {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => panic!("remove {name}: {error}"),
        }
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "log").then_some(path)
        })
        .collect();
    files.sort();
    files
}

fn raw_scan(files: &[PathBuf], crc: bool) -> u64 {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut digest = 0u32;
    for path in files {
        let mut file = File::open(path).expect("open segment");
        loop {
            let read = file.read(&mut buf).expect("read");
            if read == 0 {
                break;
            }
            if crc {
                digest = crc32c::crc32c_append(digest, &buf[..read]);
            }
            total += read as u64;
        }
    }
    std::hint::black_box(digest);
    total
}

fn recovery_benches(c: &mut Criterion) {
    let base = bench_base(env!("CARGO_TARGET_TMPDIR"));
    let dir = bench_dir(&base);
    let batch = batch_16k();
    // Write the log and drop it without close(): no clean-shutdown marker.
    start_runtime(RING_ENTRIES, async {
        let (log, _) = PartitionLog::open(dir.path(), config())
            .await
            .expect("open");
        strom_benches::fill_log(&log, &batch, BATCHES).await;
    });
    forget_checkpoints(dir.path());
    let files = segment_files(dir.path());
    let log_bytes: u64 = files
        .iter()
        .map(|path| std::fs::metadata(path).expect("stat").len())
        .sum();
    assert_eq!(
        log_bytes,
        BATCHES * batch.len() as u64,
        "every batch written"
    );
    eprintln!(
        "recovery: {} MiB in {} segments",
        log_bytes >> 20,
        files.len()
    );
    // Warm the page cache (normally a no-op: it was just written).
    raw_scan(&files, false);

    let mut group = c.benchmark_group("recovery");
    group.throughput(Throughput::Bytes(log_bytes));
    group.bench_function("raw_read_1MiB", |b| {
        b.iter(|| assert_eq!(raw_scan(&files, false), log_bytes))
    });
    group.bench_function("raw_read_crc32c", |b| {
        b.iter(|| assert_eq!(raw_scan(&files, true), log_bytes))
    });
    let mut reported = false;
    group.bench_function("engine_open_full_scan", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                forget_checkpoints(dir.path());
                let (elapsed, report) = start_runtime(RING_ENTRIES, async {
                    let start = Instant::now();
                    let (log, report) = PartitionLog::open(dir.path(), config())
                        .await
                        .expect("open");
                    let elapsed = start.elapsed();
                    // Dropped without close(): the next open recovers again.
                    drop(log);
                    (elapsed, report)
                });
                assert!(!report.clean_shutdown, "open must not see a clean shutdown");
                assert_eq!(report.bytes_scanned, log_bytes, "every segment scanned");
                assert_eq!(report.bytes_truncated, 0, "nothing torn");
                if !reported {
                    eprintln!("recovery: {report:?}");
                    reported = true;
                }
                total += elapsed;
            }
            total
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = recovery_benches
}
criterion_main!(benches);
