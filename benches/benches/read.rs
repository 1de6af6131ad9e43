//! Moving 1 MiB log ranges to a loopback TCP socket: zero-copy `splice_to_socket` against the
//! copying `copy_to_socket`, with std `sendfile(2)` and `pread`+`write` of the same ranges as the
//! machine's limits in the same run. A receiver thread drains the socket.
//!
//! The log is pre-filled with 256 MiB of ~16 KiB batches (cached: just written). Each
//! iteration is `PartitionLog::read(offset, 1 MiB)` (finding the range: 64 whole batches) and
//! the transfer of that range; offsets walk the log sequentially and wrap around.
//! `engine_read_lookup_only` runs just the `read` calls: the cost of finding the ranges.
//!
//! Beside criterion's figures the bench prints CPU time per GB: of the sending thread
//! (getrusage RUSAGE_THREAD) and of the whole process minus the receiver thread, which includes
//! io_uring's io-wq workers (where splice runs) — on loopback the zero-copy win is CPU.

use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strom_benches::{
    batch_16k, bench_base, bench_dir, build_log, cpu_s_per_gb, criterion_config, open_log,
    pin_current_thread, process_cpu, thread_cpu, unpin_current_thread, Tally, RING_ENTRIES,
};
use strom_engine::io::{copy_to_socket, splice_to_socket, start_runtime, Pipe, TcpStream};
use strom_engine::log::LogConfig;

/// Batches in the log: 256 MiB of ~16 KiB batches, a whole number of 1 MiB ranges.
const BATCHES: u64 = 16 * 1024;
const RANGE_BYTES: usize = 1 << 20;

/// A thread that accepts one connection and reads it to the end.
struct Receiver {
    addr: SocketAddr,
    thread: JoinHandle<(u64, Duration)>,
}

impl Receiver {
    fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let thread = std::thread::spawn(move || {
            // Sender on CPU 0 (see `read_benches`), receiver on CPU 1, as the machine limits
            // were measured.
            pin_current_thread(1);
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; 256 << 10];
            let mut total = 0u64;
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(read) => total += read as u64,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(error) => panic!("receiver: {error}"),
                }
            }
            (total, thread_cpu())
        });
        Receiver { addr, thread }
    }

    fn join(self) -> (u64, Duration) {
        self.thread.join().expect("receiver thread")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Splice,
    Copy,
    /// Only `PartitionLog::read`: the cost of finding the range (index + header scan).
    LookupOnly,
}

/// Where the next range starts: ranges are `range_bytes` of whole batches, in order.
struct Ranges {
    range_bytes: u64,
    count: u64,
    next: u64,
}

impl Ranges {
    fn next_position(&mut self) -> u64 {
        let position = self.next * self.range_bytes;
        self.next = (self.next + 1) % self.count;
        position
    }
}

fn engine_sample(
    dir: &Path,
    config: &LogConfig,
    method: Method,
    iters: u64,
    tally: &RefCell<Tally>,
) -> Duration {
    start_runtime(RING_ENTRIES, async {
        let log = open_log(dir, config).await;
        let end = log.log_end_offset();
        let receiver = Receiver::spawn();
        let socket = Rc::new(TcpStream::connect(receiver.addr).await.expect("connect"));
        let mut pipe = Some(Pipe::new().expect("pipe"));
        let mut offset = 0i64;
        let mut sent = 0u64;
        let (thread0, process0) = (thread_cpu(), process_cpu());
        let start = Instant::now();
        for _ in 0..iters {
            let range = log
                .read(offset, RANGE_BYTES, i64::MAX)
                .await
                .expect("read")
                .expect("a range");
            match method {
                Method::Splice => {
                    let taken = pipe.take().expect("pipe");
                    pipe = Some(
                        splice_to_socket(
                            taken,
                            &range.file,
                            range.position,
                            range.len_bytes,
                            &socket,
                        )
                        .await
                        .expect("splice"),
                    );
                }
                Method::Copy => {
                    copy_to_socket(&range.file, range.position, range.len_bytes, &socket)
                        .await
                        .expect("copy");
                }
                Method::LookupOnly => {
                    std::hint::black_box(&range);
                }
            }
            sent += range.len_bytes as u64;
            offset = if range.next_offset >= end {
                0
            } else {
                range.next_offset
            };
        }
        socket
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        let (received, receiver_cpu) = receiver.join();
        let elapsed = start.elapsed();
        let (thread1, process1) = (thread_cpu(), process_cpu());
        if method != Method::LookupOnly {
            assert_eq!(received, sent, "receiver got every byte");
        }
        tally.borrow_mut().add(Tally {
            wall: elapsed,
            thread_cpu: thread1.saturating_sub(thread0),
            process_cpu: process1.saturating_sub(process0),
            other_cpu: receiver_cpu,
            bytes: sent,
            ops: iters,
        });
        // A clean close, so the next sample's open needs no recovery scan.
        log.close().await.expect("close");
        elapsed
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RawMethod {
    Sendfile,
    ReadWrite,
}

fn raw_sample(
    segment: &Path,
    method: RawMethod,
    ranges: &mut Ranges,
    iters: u64,
    tally: &RefCell<Tally>,
) -> Duration {
    let file = File::open(segment).expect("open segment");
    let receiver = Receiver::spawn();
    let mut socket = std::net::TcpStream::connect(receiver.addr).expect("connect");
    let len = usize::try_from(ranges.range_bytes).expect("range fits usize");
    let mut buf = vec![0u8; len];
    let mut sent = 0u64;
    let (thread0, process0) = (thread_cpu(), process_cpu());
    let start = Instant::now();
    for _ in 0..iters {
        let position = ranges.next_position();
        match method {
            RawMethod::Sendfile => {
                let mut offset = libc::off_t::try_from(position).expect("offset fits off_t");
                let mut remaining = len;
                while remaining > 0 {
                    // SAFETY: both descriptors are open; `offset` is a valid off_t to update.
                    let moved = unsafe {
                        libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut offset, remaining)
                    };
                    assert!(moved > 0, "sendfile: {}", std::io::Error::last_os_error());
                    remaining -= moved.unsigned_abs();
                }
            }
            RawMethod::ReadWrite => {
                file.read_exact_at(&mut buf, position).expect("pread");
                socket.write_all(&buf).expect("write");
            }
        }
        sent += len as u64;
    }
    socket
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let (received, receiver_cpu) = receiver.join();
    let elapsed = start.elapsed();
    let (thread1, process1) = (thread_cpu(), process_cpu());
    assert_eq!(received, sent, "receiver got every byte");
    tally.borrow_mut().add(Tally {
        wall: elapsed,
        thread_cpu: thread1.saturating_sub(thread0),
        process_cpu: process1.saturating_sub(process0),
        other_cpu: receiver_cpu,
        bytes: sent,
        ops: iters,
    });
    elapsed
}

fn print_cpu(name: &str, tally: &Tally) {
    let sender_process = tally.process_cpu.saturating_sub(tally.other_cpu);
    eprintln!(
        "read/{name}: {:.2} GB/s over {:.1} s measured; CPU s per GB: sending thread {:.3}, \
         process minus receiver (incl. io-wq) {:.3}, receiver {:.3}",
        tally.gb_per_s(),
        tally.wall.as_secs_f64(),
        cpu_s_per_gb(tally.thread_cpu, tally.bytes),
        cpu_s_per_gb(sender_process, tally.bytes),
        cpu_s_per_gb(tally.other_cpu, tally.bytes),
    );
}

fn read_benches(c: &mut Criterion) {
    let base = bench_base(env!("CARGO_TARGET_TMPDIR"));
    let dir = bench_dir(&base);
    let config = LogConfig::default();
    let batch = batch_16k();
    let end = build_log(dir.path(), &config, &batch, BATCHES);
    assert_eq!(
        u64::try_from(end).ok(),
        Some(BATCHES * 16),
        "log end offset"
    );

    // The range a 1 MiB read returns: whole batches, the same length everywhere in this log.
    let range_bytes = start_runtime(RING_ENTRIES, async {
        let log = open_log(dir.path(), &config).await;
        let range = log
            .read(0, RANGE_BYTES, i64::MAX)
            .await
            .expect("read")
            .expect("a range");
        log.close().await.expect("close");
        range.len_bytes as u64
    });
    let log_bytes = BATCHES * batch.len() as u64;
    assert_eq!(log_bytes % range_bytes, 0, "ranges tile the log");
    eprintln!(
        "read: log of {} MiB, ranges of {range_bytes} bytes ({} batches)",
        log_bytes >> 20,
        range_bytes / batch.len() as u64
    );
    let segment = dir.path().join(format!("{:020}.log", 0));
    // Warm the page cache (it was just written, so this is normally a no-op).
    std::fs::read(&segment).expect("read segment");

    let pinned = pin_current_thread(0);
    eprintln!("read: sender pinned to CPU 0: {pinned}; receiver to CPU 1");

    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(range_bytes));
    let tallies: Vec<(&str, RefCell<Tally>)> = [
        "raw_sendfile",
        "raw_pread_write",
        "engine_splice",
        "engine_copy",
        "engine_read_lookup_only",
    ]
    .into_iter()
    .map(|name| (name, RefCell::new(Tally::default())))
    .collect();
    let mut ranges = Ranges {
        range_bytes,
        count: log_bytes / range_bytes,
        next: 0,
    };
    group.bench_function("raw_sendfile", |b| {
        b.iter_custom(|iters| {
            raw_sample(
                &segment,
                RawMethod::Sendfile,
                &mut ranges,
                iters,
                &tallies[0].1,
            )
        })
    });
    group.bench_function("raw_pread_write", |b| {
        b.iter_custom(|iters| {
            raw_sample(
                &segment,
                RawMethod::ReadWrite,
                &mut ranges,
                iters,
                &tallies[1].1,
            )
        })
    });
    group.bench_function("engine_splice", |b| {
        b.iter_custom(|iters| {
            engine_sample(dir.path(), &config, Method::Splice, iters, &tallies[2].1)
        })
    });
    group.bench_function("engine_copy", |b| {
        b.iter_custom(|iters| {
            engine_sample(dir.path(), &config, Method::Copy, iters, &tallies[3].1)
        })
    });
    group.bench_function("engine_read_lookup_only", |b| {
        b.iter_custom(|iters| {
            engine_sample(
                dir.path(),
                &config,
                Method::LookupOnly,
                iters,
                &tallies[4].1,
            )
        })
    });
    group.finish();
    unpin_current_thread();
    for (name, tally) in &tallies {
        print_cpu(name, &tally.borrow());
    }
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = read_benches
}
criterion_main!(benches);
