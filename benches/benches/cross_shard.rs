//! Round-trip cost of `ShardRouter::submit_to`: from a task on shard 0, submit an empty task
//! to shard 1 and await its reply, in a loop (`to_other_shard`), against submitting to shard 0
//! itself (`to_same_shard`). Two shards, pinned to CPUs 0 and 1 (the engine's default).
//!
//! Baseline in the same run: `raw_std_mpsc_pingpong`, a round trip between two plain threads
//! over two `std::sync::mpsc` channels (the OS's wake-up and hand-off cost between cores,
//! without any runtime).

use std::rc::Rc;
use std::sync::mpsc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strom_benches::{criterion_config, RING_ENTRIES};
use strom_engine::io::start_runtime;
use strom_engine::runtime::{ShardId, ShardRouter, ShardSet, ShardSetConfig};

fn submit_loop(router: &ShardRouter<()>, from: ShardId, to: ShardId, iters: u64) -> u64 {
    let inner = router.clone();
    let nanos = start_runtime(RING_ENTRIES, async {
        router
            .submit_to(from, move |_state: Rc<()>| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    inner
                        .submit_to(to, |_state: Rc<()>| async {})
                        .await
                        .expect("shard running");
                }
                start.elapsed().as_nanos()
            })
            .await
            .expect("shard running")
    });
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

fn cross_shard_benches(c: &mut Criterion) {
    let config = ShardSetConfig {
        shard_count: 2,
        pin_threads: true,
        ring_entries: RING_ENTRIES,
    };
    let set = ShardSet::start(&config, |_shard, _router| async {}).expect("start shards");
    let router = set.router().clone();

    let mut group = c.benchmark_group("cross_shard");
    group.throughput(Throughput::Elements(1));
    group.bench_function("to_other_shard", |b| {
        b.iter_custom(|iters| std::time::Duration::from_nanos(submit_loop(&router, 0, 1, iters)))
    });
    group.bench_function("to_same_shard", |b| {
        b.iter_custom(|iters| std::time::Duration::from_nanos(submit_loop(&router, 0, 0, iters)))
    });

    let (to_echo, echo_in) = mpsc::channel::<u64>();
    let (echo_out, from_echo) = mpsc::channel::<u64>();
    let echo = std::thread::spawn(move || {
        strom_benches::pin_current_thread(1);
        while let Ok(value) = echo_in.recv() {
            if echo_out.send(value).is_err() {
                break;
            }
        }
    });
    group.bench_function("raw_std_mpsc_pingpong", |b| {
        strom_benches::pin_current_thread(0);
        b.iter(|| {
            to_echo.send(1).expect("echo thread");
            from_echo.recv().expect("echo thread")
        });
        strom_benches::unpin_current_thread();
    });
    group.finish();
    drop(to_echo);
    echo.join().expect("echo thread");
    drop(router);
    set.join();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = cross_shard_benches
}
criterion_main!(benches);
