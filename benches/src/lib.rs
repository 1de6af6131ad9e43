//! Helpers shared by Strom's criterion benchmarks (`benches/benches/*.rs`).
//!
//! Every engine call must run inside [`strom_engine::io::start_runtime`] (io_uring is per
//! thread), and criterion's async support does not know tokio-uring: the benches use
//! `iter_custom`, start one runtime per sample and time the work themselves.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::Criterion;
use strom_engine::log::{LogConfig, PartitionLog};

/// Submission-queue entries of the rings the benches start.
pub const RING_ENTRIES: u32 = 256;

/// Default criterion settings: the machine has 2 cores shared with other builds, so keep runs
/// short. Command-line flags (`--warm-up-time`, `--measurement-time`, `--sample-size`) override.
pub fn criterion_config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10)
        .without_plots()
}

const TMPFS_MAGIC: i64 = 0x0102_1994;
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// The filesystem type of `path` (statfs `f_type`), or `None` if statfs failed.
pub fn fs_type(path: &Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let mut raw = path.as_os_str().as_bytes().to_vec();
    raw.push(0);
    // SAFETY: an all-zero statfs is a valid value for statfs(2) to overwrite.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `raw` is NUL-terminated and `stat` is a valid statfs to fill.
    let rc = unsafe { libc::statfs(raw.as_ptr().cast(), &mut stat) };
    #[allow(
        clippy::unnecessary_cast,
        reason = "f_type's width differs between targets"
    )]
    (rc == 0).then_some(stat.f_type as i64)
}

/// Whether `path` lives in memory (tmpfs/ramfs) rather than on a disk.
pub fn is_memory_fs(path: &Path) -> bool {
    matches!(fs_type(path), Some(TMPFS_MAGIC | RAMFS_MAGIC))
}

/// Where benchmark data goes: `$STROM_BENCH_DIR`, else the system temp dir if it is on a real
/// disk, else `fallback` (pass `env!("CARGO_TARGET_TMPDIR")`, which is under `target/`).
pub fn bench_base(fallback: &str) -> PathBuf {
    let candidate = std::env::var_os("STROM_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let base = if is_memory_fs(&candidate) {
        PathBuf::from(fallback)
    } else {
        candidate
    };
    std::fs::create_dir_all(&base).expect("create bench base dir");
    assert!(
        !is_memory_fs(&base),
        "{} is tmpfs/ramfs: set STROM_BENCH_DIR to a directory on disk",
        base.display()
    );
    eprintln!(
        "bench data under {} (statfs f_type {:#x})",
        base.display(),
        fs_type(&base).unwrap_or(-1)
    );
    base
}

/// A fresh directory under `base`, deleted when dropped.
pub fn bench_dir(base: &Path) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strom-bench-")
        .tempdir_in(base)
        .expect("create bench dir")
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(0))
}

/// A producer's batch of `count` records with `value_bytes`-byte values, built once: cloning
/// the `Bytes` for each append is a refcount bump.
pub fn batch(count: i32, value_bytes: usize) -> Bytes {
    Bytes::from(strom_engine::batch::build::build_batch(
        0,
        count,
        value_bytes,
        now_ms(),
        -1,
        -1,
        -1,
    ))
}

/// The append benches' batch: 16 records of 1000-byte values, about 16 KiB.
pub fn batch_16k() -> Bytes {
    batch(16, 1000)
}

/// Appends `batch` `count` times and waits until the last one is written.
pub async fn fill_log(log: &PartitionLog, batch: &Bytes, count: u64) {
    let mut last = None;
    for _ in 0..count {
        last = Some(log.append(batch.clone(), 0).await.expect("append"));
    }
    if let Some(receipt) = last {
        receipt.written().wait().await.expect("written");
    }
}

/// Creates a log in `dir` holding `count` copies of `batch`, and closes it cleanly (synced, with
/// index files and the clean-shutdown marker). Returns the log end offset.
pub fn build_log(dir: &Path, config: &LogConfig, batch: &Bytes, count: u64) -> i64 {
    strom_engine::io::start_runtime(RING_ENTRIES, async {
        let (log, _) = PartitionLog::open(dir, config.clone())
            .await
            .expect("open log");
        fill_log(&log, batch, count).await;
        let end = log.log_end_offset();
        log.close().await.expect("close log");
        end
    })
}

/// Opens the log in `dir` (on the current runtime).
pub async fn open_log(dir: &Path, config: &LogConfig) -> Rc<PartitionLog> {
    PartitionLog::open(dir, config.clone())
        .await
        .expect("open log")
        .0
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage(2) to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid rusage to fill.
    let rc = unsafe { libc::getrusage(who, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let micros = |tv: libc::timeval| {
        Duration::from_secs(u64::try_from(tv.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(tv.tv_usec).unwrap_or(0))
    };
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

/// User + system CPU time of the calling thread (getrusage RUSAGE_THREAD).
pub fn thread_cpu() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}

/// User + system CPU time of the whole process, including io_uring's io-wq worker threads.
pub fn process_cpu() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

/// Pins the calling thread to `cpu`; returns false (and leaves it unpinned) if that fails or
/// the CPU is not available.
pub fn pin_current_thread(cpu: usize) -> bool {
    if cpu >= std::thread::available_parallelism().map_or(1, |n| n.get()) {
        return false;
    }
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below the number of CPUs, within cpu_set_t's capacity.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
}

/// Undoes [`pin_current_thread`]: allows every CPU again.
pub fn unpin_current_thread() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in 0..cpus {
        // SAFETY: `cpu` is below the number of CPUs, within cpu_set_t's capacity.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
}

/// xorshift64*: a tiny deterministic generator for random offsets (no dependency needed).
#[derive(Debug, Clone)]
pub struct XorShift64(u64);

impl XorShift64 {
    pub fn new(seed: u64) -> Self {
        XorShift64(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough value in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// CPU seconds per GB moved, for the notes printed beside criterion's figures.
pub fn cpu_s_per_gb(cpu: Duration, bytes: u64) -> f64 {
    if bytes == 0 {
        return 0.0;
    }
    cpu.as_secs_f64() / (bytes as f64 / 1e9)
}

/// Accumulates time and bytes over every sample of a bench so a bench can print extra figures
/// (CPU per byte, ratios) once at the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub wall: Duration,
    pub thread_cpu: Duration,
    pub process_cpu: Duration,
    pub other_cpu: Duration,
    pub bytes: u64,
    pub ops: u64,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.wall += other.wall;
        self.thread_cpu += other.thread_cpu;
        self.process_cpu += other.process_cpu;
        self.other_cpu += other.other_cpu;
        self.bytes += other.bytes;
        self.ops += other.ops;
    }

    pub fn gb_per_s(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs == 0.0 {
            return 0.0;
        }
        self.bytes as f64 / 1e9 / secs
    }

    pub fn ops_per_s(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs == 0.0 {
            return 0.0;
        }
        self.ops as f64 / secs
    }
}

/// Wall and CPU time (this thread's, and the whole process's) since it was started.
#[derive(Debug, Clone, Copy)]
pub struct CpuClock {
    start: Instant,
    thread: Duration,
    process: Duration,
}

impl CpuClock {
    pub fn start() -> Self {
        CpuClock {
            thread: thread_cpu(),
            process: process_cpu(),
            start: Instant::now(),
        }
    }

    /// What the timed work cost, as a [`Tally`] of `bytes` and `ops`.
    pub fn stop(&self, bytes: u64, ops: u64) -> Tally {
        let wall = self.start.elapsed();
        Tally {
            wall,
            thread_cpu: thread_cpu().saturating_sub(self.thread),
            process_cpu: process_cpu().saturating_sub(self.process),
            other_cpu: Duration::ZERO,
            bytes,
            ops,
        }
    }
}
