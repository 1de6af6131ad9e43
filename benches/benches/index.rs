//! Offset lookup latency: `PartitionLog::read(offset, 1, i64::MAX)` at random offsets of a log
//! of many segments — binary search over segment base offsets, the segment's sparse offset
//! index, then the header scan from the index entry to the batch holding the offset.
//!
//! The log: 128 segments of 1 MiB (`segment.bytes` = 1 MiB), batches of 8 × 100-byte records
//! (~0.9 KiB), an index entry every 4096 bytes (Kafka's default), all in the page cache.
//!
//! `OffsetIndex` is crate-private, so its floor lookup cannot be timed alone. Two floors are
//! measured instead: `inmem_floor_replica` (the same `BTreeMap` range + `partition_point`
//! steps on data of the same shape, i.e. a copy of the algorithm, not the engine's code) and
//! `uring_read_16KiB` (one io_uring read of 16 KiB from a cached segment, the size of the header
//! scan's read), plus `pread_16KiB`, the same read with std `pread`.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use strom_benches::{
    batch, bench_base, bench_dir, build_log, criterion_config, open_log, XorShift64, RING_ENTRIES,
};
use strom_engine::io::{start_runtime, SharedFile};
use strom_engine::log::LogConfig;

const SEGMENT_BYTES: u64 = 1 << 20;
const SEGMENTS: u64 = 128;
const SCAN_READ_BYTES: usize = 16 << 10;

fn index_benches(c: &mut Criterion) {
    let base = bench_base(env!("CARGO_TARGET_TMPDIR"));
    let dir = bench_dir(&base);
    let config = LogConfig {
        segment_bytes: SEGMENT_BYTES,
        ..LogConfig::default()
    };
    let small = batch(8, 100);
    let batches_per_segment = SEGMENT_BYTES / small.len() as u64;
    let end = build_log(dir.path(), &config, &small, batches_per_segment * SEGMENTS);
    let (segments, index_entries) = start_runtime(RING_ENTRIES, async {
        let log = open_log(dir.path(), &config).await;
        let segments = log.segment_count();
        log.close().await.expect("close");
        (segments, log.size_bytes() / config.index_interval_bytes)
    });
    eprintln!(
        "index: {segments} segments, log end offset {end}, batches of {} bytes, ~{} index \
         entries per segment",
        small.len(),
        index_entries / segments as u64
    );
    let end = u64::try_from(end).expect("positive end offset");
    let first_segment = dir.path().join(format!("{:020}.log", 0));

    let mut group = c.benchmark_group("index");
    group.bench_function("engine_read_random_offset", |b| {
        let mut rng = XorShift64::new(0x5eed);
        b.iter_custom(|iters| {
            start_runtime(RING_ENTRIES, async {
                let log = open_log(dir.path(), &config).await;
                let start = Instant::now();
                for _ in 0..iters {
                    let offset = i64::try_from(rng.below(end)).expect("offset fits i64");
                    let range = log.read(offset, 1, i64::MAX).await.expect("read");
                    let range = range.expect("a batch holds every offset");
                    debug_assert!(range.first_offset <= offset && offset < range.next_offset);
                    std::hint::black_box(range);
                }
                let elapsed = start.elapsed();
                log.close().await.expect("close");
                elapsed
            })
        })
    });

    // Same shape as the engine's state: base offset → sorted (relative offset, position).
    let per_segment = usize::try_from(index_entries / segments as u64)
        .unwrap_or(1)
        .max(1);
    let offsets_per_segment = end / SEGMENTS;
    let replica: BTreeMap<i64, Vec<(u32, u32)>> = (0..SEGMENTS)
        .map(|segment| {
            let entries = (0..per_segment)
                .map(|entry| {
                    let step = offsets_per_segment / per_segment as u64;
                    (
                        u32::try_from(entry as u64 * step).unwrap_or(u32::MAX),
                        u32::try_from(entry * 4096).unwrap_or(u32::MAX),
                    )
                })
                .collect();
            (
                i64::try_from(segment * offsets_per_segment).unwrap_or(i64::MAX),
                entries,
            )
        })
        .collect();
    group.bench_function("inmem_floor_replica", |b| {
        let mut rng = XorShift64::new(0x5eed);
        b.iter(|| {
            let offset = i64::try_from(rng.below(end)).unwrap_or(0);
            let (&base, entries) = replica.range(..=offset).next_back().expect("segment");
            let relative = u32::try_from(offset - base).unwrap_or(u32::MAX);
            let after = entries.partition_point(|entry| entry.0 <= relative);
            std::hint::black_box(after.checked_sub(1).and_then(|at| entries.get(at)).copied())
        })
    });

    let max_position = std::fs::metadata(&first_segment)
        .expect("stat segment")
        .len()
        - SCAN_READ_BYTES as u64;
    group.bench_function("uring_read_16KiB", |b| {
        let mut rng = XorShift64::new(0x5eed);
        b.iter_custom(|iters| {
            let file = SharedFile::new(File::open(&first_segment).expect("open segment"));
            start_runtime(RING_ENTRIES, async {
                let start = Instant::now();
                for _ in 0..iters {
                    let bytes = file
                        .read_exact_at(rng.below(max_position), SCAN_READ_BYTES)
                        .await
                        .expect("read");
                    std::hint::black_box(bytes);
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("pread_16KiB", |b| {
        let mut rng = XorShift64::new(0x5eed);
        let file = File::open(&first_segment).expect("open segment");
        let mut buf = vec![0u8; SCAN_READ_BYTES];
        b.iter(|| {
            file.read_exact_at(&mut buf, rng.below(max_position))
                .expect("pread");
            std::hint::black_box(&buf);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = index_benches
}
criterion_main!(benches);
