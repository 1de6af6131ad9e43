//! Issue 10, failover that loses nothing: an idempotent acks=all confluent-kafka producer writes
//! continuously to an RF=3, min.insync.replicas=2 topic on three `strom` brokers while the test
//! `kill -9`s the broker leading partition 0, waits for a new leader, restarts the broker, waits
//! for it to rejoin the ISR, and repeats. Afterwards every acknowledged record is read back
//! exactly once, at the offset its delivery report named, and in order within its partition;
//! nothing is duplicated (idempotence across failover).
//!
//! Rounds: 3 (CI); `STROM_REPLICATION_ROUNDS=20` for the nightly-style run.

mod common;
mod replication_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{python_client_background, unique_topic, BrokerOpts};
use replication_support::*;

const CI_ROUNDS: u32 = 3;
const PARTITIONS: i32 = 3;
/// How long the producer must keep being acknowledged between two kills (progress, not speed).
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);

fn rounds() -> u32 {
    std::env::var("STROM_REPLICATION_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("STROM_REPLICATION_ROUNDS is a number"))
        .unwrap_or(CI_ROUNDS)
}

/// Reads the producer's progress lines until `acked` exceeds `beyond`; returns the count.
fn wait_acked_beyond(producer: &mut common::Background, beyond: u64) -> u64 {
    let line = producer.wait_for_line(PROGRESS_TIMEOUT, |line| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["acked"].as_u64())
            .is_some_and(|acked| acked > beyond)
    });
    let value: serde_json::Value = serde_json::from_str(&line).expect("progress line");
    value["acked"].as_u64().expect("acked count")
}

#[test]
fn acknowledged_records_survive_repeated_leader_kills_exactly_once_and_in_order() {
    let opts = BrokerOpts::new()
        .set("auto.leader.rebalance.enable", "false")
        .set("replica.lag.time.max.ms", LAG_TIME_MAX_MS);
    let mut cluster = Cluster::start(3, opts);
    let topic = unique_topic("repl-failover");
    cluster.create_topic(1, &topic, PARTITIONS, 3, &[("min.insync.replicas", "2")]);
    for p in 0..PARTITIONS {
        wait_isr(&mut cluster, 1, &topic, p, &[1, 2, 3], SLACK);
    }

    let stop_file = tempfile::NamedTempFile::new().expect("temp file");
    let stop_path = stop_file.path().to_path_buf();
    drop(stop_file); // the producer stops when the file exists
    let rounds = rounds();
    let mut producer = python_client_background(
        SCRIPT,
        &[
            "produce-continuous".into(),
            cluster.bootstrap_all(),
            topic.clone(),
            stop_path.display().to_string(),
        ],
        Duration::from_secs(120 + 60 * u64::from(rounds)),
    );
    let mut acked = wait_acked_beyond(&mut producer, 0);

    let mut failover_times = Vec::new();
    for round in 1..=rounds {
        let before =
            cluster.wait_partition(1, &topic, 0, SLACK, "broker 1 to see the full ISR", |p| {
                p.leader >= 0 && p.isr.len() == 3
            });
        let victim = before.leader;
        let observer = others(victim)[0];
        cluster.broker(victim).kill9();
        let killed_at = Instant::now();
        let after = wait_new_leader(
            &cluster,
            observer,
            &topic,
            0,
            victim,
            cluster.session_timeout() + SLACK,
        );
        failover_times.push(killed_at.elapsed());
        assert!(
            after.leader_epoch > before.leader_epoch,
            "round {round}: {before:?} -> {after:?}"
        );
        // The producer goes on through the new leader (acks=all with two in sync).
        acked = wait_acked_beyond(&mut producer, acked + 100);
        cluster.broker(victim).restart();
        for p in 0..PARTITIONS {
            wait_isr(
                &mut cluster,
                observer,
                &topic,
                p,
                &[1, 2, 3],
                Duration::from_millis(LAG_TIME_MAX_MS) + SLACK + SLACK,
            );
        }
        acked = wait_acked_beyond(&mut producer, acked + 100);
        eprintln!("round {round}: broker {victim} killed, {acked} records acknowledged so far");
    }
    eprintln!("time to a new leader per round: {failover_times:?}");

    std::fs::write(&stop_path, b"stop").expect("write the stop file");
    let out = producer.finish();
    out.assert_success();
    let _ = std::fs::remove_file(&stop_path);
    let result = out.result_json();
    let acked = parse_acked(&result);
    assert_eq!(
        result["unflushed"].as_u64(),
        Some(0),
        "every record got a delivery report: {}",
        result["errors"]
    );
    assert!(
        acked.len() as u64 >= 200 * u64::from(rounds),
        "the producer made progress: {} acknowledged",
        acked.len()
    );
    eprintln!(
        "{} acknowledged, {} failed delivery reports: {}",
        acked.len(),
        result["failed"],
        result["errors"]
    );

    let (records, high) = consume_all(&cluster.bootstrap_all(), &topic);
    assert_intact(&records);
    // Read back: no sequence twice, ever (idempotence), and offsets dense from 0 in each
    // partition up to the high watermark (nothing lost below what a consumer was shown).
    let mut seen = BTreeSet::new();
    let mut by_partition: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    for (p, o, key, _) in &records {
        let seq: u64 = key.parse().expect("numeric key");
        assert!(seen.insert(seq), "sequence {seq} read twice ({p}@{o})");
        by_partition.entry(*p).or_default().push((*o, seq));
    }
    for (p, read) in &by_partition {
        let offsets: Vec<i64> = read.iter().map(|r| r.0).collect();
        let expected: Vec<i64> = (0..high[p]).collect();
        assert_eq!(
            offsets, expected,
            "partition {p}: offsets up to the high watermark"
        );
        // In order: within a partition the producer's sequence numbers only grow.
        assert!(
            read.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {p}: records out of order"
        );
    }
    // Nothing but what was sent: a record read back without a delivery report can only be one
    // whose report was a failure (sent, maybe written, never acknowledged).
    let failed = result["failed"].as_u64().expect("failed count") as usize;
    assert!(
        records.len() <= acked.len() + failed,
        "{} records read, {} acknowledged, {failed} failed",
        records.len(),
        acked.len()
    );
    let at: BTreeMap<(i32, i64), u64> = by_partition
        .iter()
        .flat_map(|(p, read)| read.iter().map(move |(o, seq)| ((*p, *o), *seq)))
        .collect();
    for (seq, p, o) in &acked {
        assert_eq!(
            at.get(&(*p, *o)),
            Some(seq),
            "acknowledged record {seq} at {p}@{o} is read back there"
        );
    }
}
