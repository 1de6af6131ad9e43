//! Measures how long leader failover and controller failover take in a 3-broker cluster on a
//! real ZooKeeper with `zookeeper.session.timeout.ms=6000` (issue 9's closing note). A
//! measurement, not a test: it asserts only that every failover happened, and is ignored by
//! default. Run it with benches/cluster-failover.sh, or:
//!
//! ```text
//! cargo build --bin strom
//! cargo test -p strom --test cluster_failover_timing -- --ignored --nocapture
//! ```
//!
//! `STROM_FAILOVER_RUNS` (default 20) sets the number of runs of each kind. It prints one line
//! `FAILOVER_TIMING_JSON {...}` and a table.
//!
//! - Leader failover: `kill -9` of a broker leading a partition (not the controller) until a
//!   surviving broker's Metadata names the new leader. A fresh RF=3 topic per run.
//! - ISR rejoin: from the restart of that broker until Metadata lists it in the partition's ISR
//!   again (process start, registration, truncation, catching up).
//! - Controller failover: `kill -9` of the controller until every surviving broker's Metadata
//!   and `/controller` name the same new controller.
//!
//! After each run the killed broker is restarted and the next run waits until everyone sees it.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{fetch_metadata, Cluster};
use common::{unique_topic, BrokerOpts};

const SESSION_TIMEOUT_MS: u64 = 6000;
/// Probe interval while a failover is in progress: the resolution of the measurement.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);
/// A failover that takes longer than this is a failure, not a measurement.
const FAILOVER_LIMIT: Duration = Duration::from_secs(60);

/// Polls `done` every [`PROBE_INTERVAL`] and returns the time since `from` when it first held.
fn measure(from: Instant, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    loop {
        if done() {
            return from.elapsed();
        }
        assert!(
            from.elapsed() < FAILOVER_LIMIT,
            "{what} did not happen within {FAILOVER_LIMIT:?}"
        );
        std::thread::sleep(PROBE_INTERVAL);
    }
}

fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

struct Summary {
    runs: Vec<f64>,
}

impl Summary {
    fn median(&self) -> f64 {
        let mut sorted = self.runs.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        }
    }

    fn max(&self) -> f64 {
        self.runs.iter().copied().fold(f64::MIN, f64::max)
    }

    fn min(&self) -> f64 {
        self.runs.iter().copied().fold(f64::MAX, f64::min)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "runs": self.runs.len(),
            "median_s": (self.median() * 1000.0).round() / 1000.0,
            "max_s": self.max(),
            "min_s": self.min(),
            "all_s": self.runs,
        })
    }
}

fn restart_and_rejoin(cluster: &mut Cluster, id: i32) {
    cluster.broker(id).restart();
    cluster.wait_formed(Duration::from_secs(30));
}

#[test]
#[ignore = "a measurement of about 6 minutes; run by benches/cluster-failover.sh"]
fn failover_timing() {
    let runs: usize = std::env::var("STROM_FAILOVER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let opts = BrokerOpts::new()
        .set("zookeeper.session.timeout.ms", SESSION_TIMEOUT_MS)
        .set("auto.leader.rebalance.enable", "false");
    let mut cluster = Cluster::start(3, opts);

    let mut leader = Summary { runs: Vec::new() };
    let mut rejoin = Summary { runs: Vec::new() };
    for run in 0..runs {
        let controller = cluster.wait_controller(Duration::from_secs(30), None);
        let topic = unique_topic("timing");
        cluster.create_topic(controller, &topic, 3, 3, &[]);
        let md = cluster.metadata(controller, Some(&[&topic]));
        let (partition, victim) = md
            .topic(&topic)
            .expect("topic")
            .partitions
            .iter()
            .find(|(_, p)| p.leader != controller)
            .map(|(i, p)| (*i, p.leader))
            .expect("a partition led by a broker that is not the controller");
        let observer = controller;
        let addr = cluster.addr(observer);
        cluster.broker(victim).kill9();
        let killed = Instant::now();
        let took = measure(killed, "leader failover", || {
            fetch_metadata(addr, Some(&[&topic]))
                .and_then(|md| md.partition(&topic, partition))
                .is_ok_and(|p| p.leader >= 0 && p.leader != victim)
        });
        eprintln!(
            "leader failover {}/{runs}: {:.3} s (broker {victim})",
            run + 1,
            took.as_secs_f64()
        );
        leader.runs.push(seconds(took));
        let restarted = Instant::now();
        cluster.broker(victim).restart();
        let rejoined = measure(restarted, "ISR rejoin", || {
            fetch_metadata(addr, Some(&[&topic]))
                .and_then(|md| md.partition(&topic, partition))
                .is_ok_and(|p| p.isr.contains(&victim))
        });
        eprintln!(
            "ISR rejoin {}/{runs}: {:.3} s (broker {victim})",
            run + 1,
            rejoined.as_secs_f64()
        );
        rejoin.runs.push(seconds(rejoined));
        cluster.wait_formed(Duration::from_secs(30));
    }

    let mut controller_runs = Summary { runs: Vec::new() };
    for run in 0..runs {
        let old = cluster.wait_controller(Duration::from_secs(30), None);
        let survivors: Vec<_> = cluster
            .ids()
            .into_iter()
            .filter(|id| *id != old)
            .map(|id| cluster.addr(id))
            .collect();
        cluster.broker(old).kill9();
        let killed = Instant::now();
        let took = measure(killed, "controller failover", || {
            let views: Vec<i32> = survivors
                .iter()
                .filter_map(|addr| fetch_metadata(*addr, Some(&[])).ok())
                .map(|md| md.controller_id)
                .collect();
            views.len() == survivors.len()
                && views.iter().all(|c| *c == views[0] && *c >= 0 && *c != old)
        });
        let new = cluster.controller_in_zk();
        eprintln!(
            "controller failover {}/{runs}: {:.3} s (broker {old} -> {new:?})",
            run + 1,
            took.as_secs_f64()
        );
        controller_runs.runs.push(seconds(took));
        restart_and_rejoin(&mut cluster, old);
    }

    let json = serde_json::json!({
        "zookeeper_session_timeout_ms": SESSION_TIMEOUT_MS,
        "brokers": 3,
        "leader_failover": leader.json(),
        "isr_rejoin": rejoin.json(),
        "controller_failover": controller_runs.json(),
    });
    // On a line of its own (the harness prints "test ... " without a newline before it).
    println!("\nFAILOVER_TIMING_JSON {json}");
    println!();
    println!("| failover   | runs | median (s) | max (s) | min (s) |");
    println!("|------------|------|------------|---------|---------|");
    for (name, s) in [
        ("leader", &leader),
        ("ISR rejoin", &rejoin),
        ("controller", &controller_runs),
    ] {
        println!(
            "| {name:<10} | {:>4} | {:>10.3} | {:>7.3} | {:>7.3} |",
            s.runs.len(),
            s.median(),
            s.max(),
            s.min()
        );
    }
}
