//! Issue 10, divergent logs (KIP-101/279): three `strom` brokers on a real ZooKeeper, an RF=3
//! topic. The leader accepts acks=1 records its frozen followers never copy and then dies
//! (`kill -9`); a follower becomes leader in a new epoch and takes new writes at the same
//! offsets. Restarted, the old leader comes back as a follower and truncates its unreplicated
//! records (never keeping them, never simply cutting to its high watermark): its log ends up
//! byte for byte the new leader's, and its leader-epoch-checkpoint file matches the new leader's
//! history.
//!
//! replica.lag.time.max.ms is long so the frozen followers stay in the ISR (an ISR of the dead
//! leader alone would leave the partition offline).

mod common;
mod replication_support;

use std::path::Path;
use std::time::Duration;

use common::cluster::{wait_for, Cluster};
use common::{unique_topic, BrokerOpts};
use replication_support::*;

const LONG_LAG_TIME_MAX_MS: u64 = 20_000;
/// Longer than the followers' freeze (a lost session would take them out of the ISR).
const SESSION_TIMEOUT_MS: u64 = 10_000;
const EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
const FIRST_SEGMENT: &str = "00000000000000000000.log";

fn read(dir: &Path, file: &str) -> Result<Vec<u8>, String> {
    std::fs::read(dir.join(file)).map_err(|e| format!("{}: {e}", dir.join(file).display()))
}

/// `(epoch, start offset)` lines of a leader-epoch-checkpoint file (version 0, count, entries).
fn epoch_entries(bytes: &[u8]) -> Vec<(i32, i64)> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("0"), "checkpoint version: {text:?}");
    let count: usize = lines
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("checkpoint count: {text:?}"));
    let entries: Vec<(i32, i64)> = lines
        .map(|line| {
            let mut parts = line.split_whitespace();
            let epoch = parts.next().and_then(|p| p.parse().ok());
            let offset = parts.next().and_then(|p| p.parse().ok());
            (epoch.expect("epoch"), offset.expect("start offset"))
        })
        .collect();
    assert_eq!(entries.len(), count, "checkpoint entries: {text:?}");
    entries
}

#[test]
fn a_dead_leaders_unreplicated_records_are_truncated_when_it_returns() {
    let opts = BrokerOpts::new()
        .set("auto.leader.rebalance.enable", "false")
        .set("replica.lag.time.max.ms", LONG_LAG_TIME_MAX_MS)
        .set("zookeeper.session.timeout.ms", SESSION_TIMEOUT_MS);
    let mut cluster = Cluster::start(3, opts);
    let topic = unique_topic("repl-diverge");
    cluster.create_topic_assigned(1, &topic, &[vec![1, 2, 3]], &[("min.insync.replicas", "2")]);
    let old_leader = leader_of(&cluster, 1, &topic, 0).leader;
    wait_isr(&mut cluster, old_leader, &topic, 0, &[1, 2, 3], SLACK);
    let (acked, errors) = produce(&cluster.bootstrap(old_leader), &topic, 0, "all", 40, 0);
    assert_eq!((acked.len(), errors.len()), (40, 0), "{errors:?}");
    let before = leader_of(&cluster, old_leader, &topic, 0);

    // Records only the old leader holds: its followers are frozen while it takes them.
    let followers = others(old_leader);
    for follower in &followers {
        cluster.signal(*follower, libc::SIGSTOP);
    }
    let_pending_fetches_expire();
    let (acked, errors) = produce(&cluster.bootstrap(old_leader), &topic, 0, "1", 25, 500);
    cluster.broker(old_leader).kill9();
    for follower in &followers {
        cluster.signal(*follower, libc::SIGCONT);
    }
    assert_eq!((acked.len(), errors.len()), (25, 0), "acks=1: {errors:?}");
    assert_eq!(
        acked.last().map(|a| a.2),
        Some(64),
        "offsets 40..65 on the old leader"
    );

    let observer = followers[0];
    let after = wait_new_leader(
        &cluster,
        observer,
        &topic,
        0,
        old_leader,
        cluster.session_timeout() + SLACK,
    );
    assert!(
        after.leader_epoch > before.leader_epoch,
        "{before:?} -> {after:?}"
    );
    let new_leader = after.leader;
    // The new epoch's writes take the offsets the old leader used for its lost records.
    let (acked, errors) = produce(&cluster.bootstrap(new_leader), &topic, 0, "all", 10, 2000);
    assert_eq!((acked.len(), errors.len()), (10, 0), "{errors:?}");
    assert_eq!(
        acked.first().map(|a| a.2),
        Some(40),
        "the new epoch starts at 40"
    );

    cluster.broker(old_leader).restart();
    wait_isr(
        &mut cluster,
        new_leader,
        &topic,
        0,
        &[1, 2, 3],
        Duration::from_secs(30),
    );
    let old_dir = cluster.replica_dir(old_leader, &topic, 0);
    let new_dir = cluster.replica_dir(new_leader, &topic, 0);
    // The old leader's log is now the new leader's, byte for byte.
    let leader_log = read(&new_dir, FIRST_SEGMENT).expect("new leader's segment");
    wait_for(
        Duration::from_secs(20),
        "the old leader to hold the new leader's segment bytes",
        || {
            let copy = read(&old_dir, FIRST_SEGMENT)?;
            if copy == leader_log {
                Ok(())
            } else {
                Err(format!(
                    "old leader has {} bytes, new leader {}",
                    copy.len(),
                    leader_log.len()
                ))
            }
        },
    );
    // Its epoch history is the new leader's: the epoch it wrote 40..65 in now starts nothing
    // past 40, and the new epoch starts at 40.
    let theirs = epoch_entries(&read(&new_dir, EPOCH_CHECKPOINT).expect("new leader's epochs"));
    let ours = wait_for(
        Duration::from_secs(10),
        "the old leader's leader-epoch-checkpoint to match the new leader's",
        || {
            let ours = epoch_entries(&read(&old_dir, EPOCH_CHECKPOINT)?);
            if ours == theirs {
                Ok(ours)
            } else {
                Err(format!("old leader {ours:?}, new leader {theirs:?}"))
            }
        },
    );
    assert_eq!(
        ours.last(),
        Some(&(after.leader_epoch, 40)),
        "the new epoch starts where the divergence began"
    );

    let (records, high) = consume_all(&cluster.bootstrap(new_leader), &topic);
    assert_eq!(high.get(&0), Some(&50));
    assert_intact(&records);
    let keys: Vec<u64> = records.iter().map(|r| r.2.parse().expect("seq")).collect();
    let expected: Vec<u64> = (0..40).chain(2000..2010).collect();
    assert_eq!(
        keys, expected,
        "none of the unreplicated acks=1 records survive"
    );
}
