//! Append throughput of `PartitionLog` against the raw limits measured in the same run.
//!
//! Group `append` (bytes/s, ~16 KiB batches of 16 × 1000-byte records):
//! - `raw_buffered_write`: std `write(2)` of the same 16 KiB blocks to a new file (the
//!   buffered-write bandwidth the engine is compared with);
//! - `raw_buffered_writev_64`: the same blocks, 64 per `writev(2)` (1 MiB per call): what a
//!   writer that coalesces appends, as the engine's does, can reach;
//! - `engine_durability_none`: `PartitionLog::append` with `Durability::None`, timed until the
//!   last batch is written.
//!
//! Group `append_sync` (appends/s, each one durable before it counts):
//! - `raw_write_fdatasync_serial`: write 16 KiB + `fdatasync`, one after the other;
//! - `raw_group_commit_16`: write 16 × 16 KiB then one `fdatasync` (ideal group commit of 16);
//! - `engine_sync_serial`: one writer, `Durability::Sync`, awaiting `durable` after each append;
//! - `engine_sync_16_writers`: 16 local tasks doing the same concurrently (group commit);
//! - `engine_sync_64_writers`: 64 tasks, to show how the rate grows with the group.
//!
//! The Sync benches print the mean number of appends made durable per sync round (distinct
//! values of the durable offset seen by a watcher task).
//!
//! Last, `paired_ratios` measures the two goal ratios (engine none / raw write; engine sync with
//! 16 writers / raw serial fdatasync) in alternating 400 ms bursts, so that each engine figure
//! is compared with a raw one taken under the same disk conditions, and prints the medians
//! (skipped when `STROM_BENCH_SKIP_PAIRED` is set).
//!
//! Each sample uses a new file or log in a new directory on disk (not tmpfs), deleted after.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strom_benches::{
    batch_16k, bench_base, bench_dir, cpu_s_per_gb, criterion_config, open_log, CpuClock, Tally,
    RING_ENTRIES,
};
use strom_engine::io::{spawn_local, start_runtime};
use strom_engine::log::{Durability, LogConfig};

/// Concurrent writers in the group-commit bench.
const WRITERS: u64 = 16;

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        ..LogConfig::default()
    }
}

fn raw_write(
    base: &Path,
    batch: &Bytes,
    iters: u64,
    sync_every: Option<u64>,
    tally: &RefCell<Tally>,
) -> Duration {
    let dir = bench_dir(base);
    let mut file = File::create(dir.path().join("raw.log")).expect("create raw file");
    let clock = CpuClock::start();
    for index in 0..iters {
        file.write_all(batch).expect("write");
        if let Some(every) = sync_every {
            if (index + 1) % every == 0 || index + 1 == iters {
                file.sync_data().expect("fdatasync");
            }
        }
    }
    let spent = clock.stop(iters * batch.len() as u64, iters);
    tally.borrow_mut().add(spent);
    spent.wall
}

fn raw_writev(
    base: &Path,
    batch: &Bytes,
    iters: u64,
    per_call: u64,
    tally: &RefCell<Tally>,
) -> Duration {
    let dir = bench_dir(base);
    let file = File::create(dir.path().join("raw.log")).expect("create raw file");
    let iovecs: Vec<libc::iovec> = (0..per_call)
        .map(|_| libc::iovec {
            iov_base: batch.as_ptr() as *mut libc::c_void,
            iov_len: batch.len(),
        })
        .collect();
    let clock = CpuClock::start();
    let mut remaining = iters;
    while remaining > 0 {
        let blocks = remaining.min(per_call);
        let count = libc::c_int::try_from(blocks).expect("iovec count fits c_int");
        let want = blocks as usize * batch.len();
        // SAFETY: the iovecs point into `batch`, alive for the call; the descriptor is open.
        let written = unsafe { libc::writev(file.as_raw_fd(), iovecs.as_ptr(), count) };
        // A short write to a regular file means the disk is full: fail loudly.
        assert_eq!(
            usize::try_from(written).ok(),
            Some(want),
            "writev: {}",
            std::io::Error::last_os_error()
        );
        remaining -= blocks;
    }
    let spent = clock.stop(iters * batch.len() as u64, iters);
    tally.borrow_mut().add(spent);
    spent.wall
}

fn engine_none(base: &Path, batch: &Bytes, iters: u64, tally: &RefCell<Tally>) -> Duration {
    let dir = bench_dir(base);
    start_runtime(RING_ENTRIES, async {
        let log = open_log(dir.path(), &config(Durability::None)).await;
        let clock = CpuClock::start();
        strom_benches::fill_log(&log, batch, iters).await;
        let spent = clock.stop(iters * batch.len() as u64, iters);
        tally.borrow_mut().add(spent);
        let elapsed = spent.wall;
        // Dropped without close(): closing would fdatasync everything, which is not measured
        // here and would only slow the run down.
        drop(log);
        elapsed
    })
}

#[derive(Default)]
struct SyncTally {
    ops: u64,
    rounds: u64,
}

fn engine_sync(
    base: &Path,
    batch: &Bytes,
    iters: u64,
    writers: u64,
    tally: &RefCell<SyncTally>,
) -> Duration {
    let dir = bench_dir(base);
    start_runtime(RING_ENTRIES, async {
        let log = open_log(dir.path(), &config(Durability::Sync)).await;
        let mut progress = log.subscribe();
        let rounds = Rc::new(Cell::new(0u64));
        let counter = Rc::clone(&rounds);
        let watcher = spawn_local(async move {
            let mut durable = progress.borrow().durable_offset;
            while progress.changed().await.is_ok() {
                let now = progress.borrow().durable_offset;
                if now != durable {
                    counter.set(counter.get() + 1);
                    durable = now;
                }
            }
        });
        let start = Instant::now();
        let mut tasks = Vec::new();
        for writer in 0..writers {
            let appends = iters / writers + u64::from(writer < iters % writers);
            let log = Rc::clone(&log);
            let batch = batch.clone();
            tasks.push(spawn_local(async move {
                for _ in 0..appends {
                    let receipt = log.append(batch.clone(), 0).await.expect("append");
                    receipt.durable().wait().await.expect("durable");
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer task");
        }
        let elapsed = start.elapsed();
        watcher.abort();
        let mut tally = tally.borrow_mut();
        tally.ops += iters;
        tally.rounds += rounds.get();
        elapsed
    })
}

/// How long each burst of the paired comparison runs.
const BURST: Duration = Duration::from_millis(400);
/// Bursts of each kind in the paired comparison.
const PAIRS: usize = 8;

/// Appends (or raw writes) done in one time-boxed burst, and the time they took.
struct Burst {
    count: u64,
    elapsed: Duration,
}

impl Burst {
    fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

fn raw_burst(base: &Path, batch: &Bytes, sync: bool) -> Burst {
    let dir = bench_dir(base);
    let mut file = File::create(dir.path().join("raw.log")).expect("create raw file");
    let start = Instant::now();
    let mut count = 0;
    while start.elapsed() < BURST {
        file.write_all(batch).expect("write");
        if sync {
            file.sync_data().expect("fdatasync");
        }
        count += 1;
    }
    Burst {
        count,
        elapsed: start.elapsed(),
    }
}

fn engine_burst(base: &Path, batch: &Bytes, durability: Durability, writers: u64) -> Burst {
    let dir = bench_dir(base);
    start_runtime(RING_ENTRIES, async {
        let log = open_log(dir.path(), &config(durability)).await;
        let count = Rc::new(Cell::new(0u64));
        let start = Instant::now();
        let deadline = start + BURST;
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let (log, batch, count) = (Rc::clone(&log), batch.clone(), Rc::clone(&count));
            tasks.push(spawn_local(async move {
                let mut last = None;
                while Instant::now() < deadline {
                    let receipt = log.append(batch.clone(), 0).await.expect("append");
                    count.set(count.get() + 1);
                    if durability == Durability::None {
                        last = Some(receipt);
                    } else {
                        receipt.durable().wait().await.expect("durable");
                    }
                }
                if let Some(receipt) = last {
                    receipt.written().wait().await.expect("written");
                }
            }));
        }
        for task in tasks {
            task.await.expect("writer task");
        }
        Burst {
            count: count.get(),
            elapsed: start.elapsed(),
        }
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The goals are ratios, and this machine's disk is shared: its fdatasync time moves by 10x
/// between minutes. So besides criterion's figures, measure the ratios in alternating short
/// bursts, each engine burst next to the raw burst it is compared with.
fn paired_ratios(base: &Path, batch: &Bytes) {
    let mb = |burst: &Burst| burst.rate() * batch.len() as f64 / 1e6;
    let mut write_ratios = Vec::new();
    let mut sync_ratios = Vec::new();
    let mut group_ratios = Vec::new();
    for pair in 0..PAIRS {
        // Alternate which side goes first, so neither always runs on the other's leftovers
        // (writeback, a cooled cache).
        let (raw, engine, raw_sync, serial, grouped);
        if pair % 2 == 0 {
            raw = raw_burst(base, batch, false);
            engine = engine_burst(base, batch, Durability::None, 1);
            raw_sync = raw_burst(base, batch, true);
            serial = engine_burst(base, batch, Durability::Sync, 1);
            grouped = engine_burst(base, batch, Durability::Sync, WRITERS);
        } else {
            grouped = engine_burst(base, batch, Durability::Sync, WRITERS);
            serial = engine_burst(base, batch, Durability::Sync, 1);
            raw_sync = raw_burst(base, batch, true);
            engine = engine_burst(base, batch, Durability::None, 1);
            raw = raw_burst(base, batch, false);
        }
        eprintln!(
            "paired {pair} ({}): raw write {:.0} MB/s, engine none {:.0} MB/s ({:.2}x); raw \
             write+fdatasync {:.0}/s, engine sync serial {:.0}/s, engine sync {WRITERS} writers \
             {:.0}/s ({:.1}x raw serial, {:.1}x engine serial)",
            if pair % 2 == 0 {
                "raw first"
            } else {
                "engine first"
            },
            mb(&raw),
            mb(&engine),
            engine.rate() / raw.rate(),
            raw_sync.rate(),
            serial.rate(),
            grouped.rate(),
            grouped.rate() / raw_sync.rate(),
            grouped.rate() / serial.rate(),
        );
        write_ratios.push(engine.rate() / raw.rate());
        sync_ratios.push(grouped.rate() / raw_sync.rate());
        group_ratios.push(grouped.rate() / serial.rate());
    }
    eprintln!(
        "paired medians over {PAIRS} pairs of {} ms bursts: engine none / raw write {:.2}x; \
         engine sync {WRITERS} writers / raw serial fdatasync {:.1}x; / engine sync serial {:.1}x",
        BURST.as_millis(),
        median(write_ratios),
        median(sync_ratios),
        median(group_ratios),
    );
}

fn append_benches(c: &mut Criterion) {
    let base = bench_base(env!("CARGO_TARGET_TMPDIR"));
    let batch = batch_16k();
    let len = batch.len() as u64;
    eprintln!("append: batch of {len} bytes (16 records x 1000-byte values)");

    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(len));
    let cpu: Vec<(&str, RefCell<Tally>)> = [
        "raw_buffered_write",
        "raw_buffered_writev_64",
        "engine_durability_none",
    ]
    .into_iter()
    .map(|name| (name, RefCell::new(Tally::default())))
    .collect();
    group.bench_function(cpu[0].0, |b| {
        b.iter_custom(|iters| raw_write(&base, &batch, iters, None, &cpu[0].1))
    });
    group.bench_function(cpu[1].0, |b| {
        b.iter_custom(|iters| raw_writev(&base, &batch, iters, 64, &cpu[1].1))
    });
    group.bench_function(cpu[2].0, |b| {
        b.iter_custom(|iters| engine_none(&base, &batch, iters, &cpu[2].1))
    });
    group.finish();
    for (name, tally) in &cpu {
        let tally = tally.borrow();
        eprintln!(
            "append/{name}: {:.2} GB/s over {:.1} s; CPU s per GB: calling thread {:.3}, \
             whole process (incl. io-wq workers) {:.3}",
            tally.gb_per_s(),
            tally.wall.as_secs_f64(),
            cpu_s_per_gb(tally.thread_cpu, tally.bytes),
            cpu_s_per_gb(tally.process_cpu, tally.bytes),
        );
    }

    let ignored = RefCell::new(Tally::default());
    let mut group = c.benchmark_group("append_sync");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_write_fdatasync_serial", |b| {
        b.iter_custom(|iters| raw_write(&base, &batch, iters, Some(1), &ignored))
    });
    group.bench_function("raw_group_commit_16", |b| {
        b.iter_custom(|iters| raw_write(&base, &batch, iters, Some(WRITERS), &ignored))
    });
    let tallies: Vec<(u64, RefCell<SyncTally>)> = [1, WRITERS, 64]
        .into_iter()
        .map(|writers| (writers, RefCell::new(SyncTally::default())))
        .collect();
    for (writers, tally) in &tallies {
        let name = if *writers == 1 {
            "engine_sync_serial".to_string()
        } else {
            format!("engine_sync_{writers}_writers")
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| engine_sync(&base, &batch, iters, *writers, tally))
        });
    }
    group.finish();
    for (writers, tally) in &tallies {
        let tally = tally.borrow();
        eprintln!(
            "append_sync: {writers} writer(s): {} appends in {} sync rounds, {:.2} appends per \
             round",
            tally.ops,
            tally.rounds,
            tally.ops as f64 / tally.rounds.max(1) as f64
        );
    }
    if std::env::var_os("STROM_BENCH_SKIP_PAIRED").is_none() {
        paired_ratios(&base, &batch);
    }
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = append_benches
}
criterion_main!(benches);
