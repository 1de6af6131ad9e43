//! Issue 10, the ISR: three `strom` brokers on a real ZooKeeper, an RF=3 topic with
//! min.insync.replicas=2, confluent-kafka producers.
//! - a follower frozen with SIGSTOP leaves the ISR after replica.lag.time.max.ms (Metadata and the
//!   state znode show it), acks=all still succeeds with two in sync, and after SIGCONT the
//!   follower catches up and rejoins the ISR;
//! - with both followers frozen only the leader is in sync: acks=all is refused with
//!   NOT_ENOUGH_REPLICAS, acks=1 still succeeds.
//!
//! The ZooKeeper session outlives the freezes (20 s), so the ISR shrink seen here is the leader's
//! own decision (a lagging follower), not the controller reacting to a lost session.

mod common;
mod replication_support;

use std::time::Duration;

use common::{unique_topic, BrokerOpts};
use replication_support::*;

const SESSION_TIMEOUT_MS: u64 = 20_000;

fn opts() -> BrokerOpts {
    BrokerOpts::new()
        .set("auto.leader.rebalance.enable", "false")
        .set("replica.lag.time.max.ms", LAG_TIME_MAX_MS)
        .set("zookeeper.session.timeout.ms", SESSION_TIMEOUT_MS)
}

fn lag_wait() -> Duration {
    Duration::from_millis(LAG_TIME_MAX_MS) + SLACK
}

#[test]
fn a_frozen_follower_leaves_the_isr_and_rejoins_after_catching_up() {
    let mut cluster = common::cluster::Cluster::start(3, opts());
    let topic = unique_topic("repl-isr");
    cluster.create_topic_assigned(1, &topic, &[vec![1, 2, 3]], &[("min.insync.replicas", "2")]);
    let leader = leader_of(&cluster, 1, &topic, 0).leader;
    let followers = others(leader);
    wait_isr(&mut cluster, leader, &topic, 0, &[1, 2, 3], SLACK);
    let bootstrap = cluster.bootstrap(leader);
    let (acked, errors) = produce(&bootstrap, &topic, 0, "all", 100, 0);
    assert_eq!((acked.len(), errors.len()), (100, 0), "{errors:?}");

    let frozen = followers[0];
    cluster.signal(frozen, libc::SIGSTOP);
    // Writes while it is frozen: it falls behind the leader's log end.
    let (acked, errors) = produce(&bootstrap, &topic, 0, "all", 100, 100);
    let in_sync: Vec<i32> = (1..=3).filter(|b| *b != frozen).collect();
    let shrunk = wait_isr(&mut cluster, leader, &topic, 0, &in_sync, lag_wait());
    assert_eq!(shrunk.leader, leader, "the leader stays: {shrunk:?}");
    // The acks=all produce either waited for the shrink or completed before the follower was
    // frozen mid-fetch; either way every record is acknowledged, and none failed.
    assert_eq!((acked.len(), errors.len()), (100, 0), "{errors:?}");
    // With two in sync (>= min.insync.replicas) acks=all succeeds at once.
    let (acked, errors) = produce(&bootstrap, &topic, 0, "all", 100, 200);
    assert_eq!((acked.len(), errors.len()), (100, 0), "{errors:?}");
    assert_eq!(
        acked.last().map(|a| a.2),
        Some(299),
        "offsets run on: {acked:?}"
    );

    cluster.signal(frozen, libc::SIGCONT);
    wait_isr(&mut cluster, leader, &topic, 0, &[1, 2, 3], lag_wait());
    // Back in sync; acks=all keeps working and the leader's log holds every record in order.
    let (acked, errors) = produce(&bootstrap, &topic, 0, "all", 50, 300);
    assert_eq!((acked.len(), errors.len()), (50, 0), "{errors:?}");
    let (records, high) = consume_all(&bootstrap, &topic);
    assert_eq!(high.get(&0), Some(&350));
    assert_intact(&records);
    let keys: Vec<u64> = records.iter().map(|r| r.2.parse().expect("seq")).collect();
    assert_eq!(keys, (0..350).collect::<Vec<u64>>());
}

#[test]
fn with_only_the_leader_in_sync_acks_all_is_refused_and_acks_1_succeeds() {
    let mut cluster = common::cluster::Cluster::start(3, opts());
    let topic = unique_topic("repl-minisr");
    cluster.create_topic_assigned(1, &topic, &[vec![1, 2, 3]], &[("min.insync.replicas", "2")]);
    let leader = leader_of(&cluster, 1, &topic, 0).leader;
    wait_isr(&mut cluster, leader, &topic, 0, &[1, 2, 3], SLACK);
    let bootstrap = cluster.bootstrap(leader);
    let (acked, errors) = produce(&bootstrap, &topic, 0, "all", 20, 0);
    assert_eq!((acked.len(), errors.len()), (20, 0), "{errors:?}");

    for follower in others(leader) {
        cluster.signal(follower, libc::SIGSTOP);
    }
    // A write the followers do not fetch, so they are not caught up and leave the ISR.
    let (acked, errors) = produce(&bootstrap, &topic, 0, "1", 1, 20);
    assert_eq!((acked.len(), errors.len()), (1, 0), "{errors:?}");
    wait_isr(&mut cluster, leader, &topic, 0, &[leader], lag_wait());

    let (acked, errors) = produce(&bootstrap, &topic, 0, "all", 10, 100);
    assert!(acked.is_empty(), "acks=all with an ISR of one: {acked:?}");
    assert_eq!(
        errors.get("NOT_ENOUGH_REPLICAS"),
        Some(&10),
        "every acks=all record is refused with NOT_ENOUGH_REPLICAS: {errors:?}"
    );
    let (acked, errors) = produce(&bootstrap, &topic, 0, "1", 10, 200);
    assert_eq!((acked.len(), errors.len()), (10, 0), "acks=1: {errors:?}");

    for follower in others(leader) {
        cluster.signal(follower, libc::SIGCONT);
    }
    wait_isr(&mut cluster, leader, &topic, 0, &[1, 2, 3], lag_wait());
    let (acked, errors) = produce(&bootstrap, &topic, 0, "all", 10, 300);
    assert_eq!((acked.len(), errors.len()), (10, 0), "{errors:?}");
    // The refused records were never appended: the log holds 20 + 1 + 10 + 10 records.
    let (records, _) = consume_all(&bootstrap, &topic);
    assert_intact(&records);
    let keys: Vec<u64> = records.iter().map(|r| r.2.parse().expect("seq")).collect();
    let expected: Vec<u64> = (0..21).chain(200..210).chain(300..310).collect();
    assert_eq!(keys, expected);
}
