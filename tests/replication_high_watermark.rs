//! Issue 10, the high watermark: three `strom` brokers on a real ZooKeeper, an RF=3 topic, a
//! confluent-kafka consumer reading from the beginning.
//! - a consumer never sees a record above the high watermark: with both followers frozen, acks=1
//!   records the leader accepted are not shown to any consumer (ListOffsets(latest) stays at the
//!   high watermark) until the followers copy them;
//! - a record a consumer saw is never lost by a later failover: read, kill the leader, read again
//!   from the new leader: the same records at the same offsets.
//!
//! replica.lag.time.max.ms is long here (the followers must stay in the ISR while frozen, or the
//! leader alone would move the high watermark), and the freeze is shorter than the ZooKeeper
//! session.

mod common;
mod replication_support;

use std::time::Duration;

use common::cluster::{wait_for, Cluster};
use common::{unique_topic, BrokerOpts};
use replication_support::*;

const LONG_LAG_TIME_MAX_MS: u64 = 20_000;
const SESSION_TIMEOUT_MS: u64 = 12_000;

#[test]
fn consumers_see_only_records_below_the_high_watermark_and_keep_them_across_failover() {
    let opts = BrokerOpts::new()
        .set("auto.leader.rebalance.enable", "false")
        .set("replica.lag.time.max.ms", LONG_LAG_TIME_MAX_MS)
        .set("zookeeper.session.timeout.ms", SESSION_TIMEOUT_MS);
    let mut cluster = Cluster::start(3, opts);
    let topic = unique_topic("repl-hw");
    cluster.create_topic_assigned(1, &topic, &[vec![1, 2, 3]], &[("min.insync.replicas", "2")]);
    let leader = leader_of(&cluster, 1, &topic, 0).leader;
    wait_isr(&mut cluster, leader, &topic, 0, &[1, 2, 3], SLACK);
    let bootstrap = cluster.bootstrap(leader);
    let (acked, errors) = produce(&bootstrap, &topic, 0, "all", 50, 0);
    assert_eq!((acked.len(), errors.len()), (50, 0), "{errors:?}");

    let followers = others(leader);
    for follower in &followers {
        cluster.signal(*follower, libc::SIGSTOP);
    }
    let_pending_fetches_expire();
    let (acked, errors) = produce(&bootstrap, &topic, 0, "1", 20, 1000);
    assert_eq!(
        (acked.len(), errors.len()),
        (20, 0),
        "acks=1 to the leader: {errors:?}"
    );
    assert_eq!(
        acked.first().map(|a| a.2),
        Some(50),
        "appended at the log end"
    );
    // Not replicated, so not committed: no consumer is shown them.
    let (records, high) = consume_all(&bootstrap, &topic);
    let frozen_still = isr_in_zk(&mut cluster, &topic, 0).len() == 3;
    for follower in &followers {
        cluster.signal(*follower, libc::SIGCONT);
    }
    assert!(frozen_still, "the followers stayed in the ISR while frozen");
    assert_eq!(
        high.get(&0),
        Some(&50),
        "the high watermark stays below the acks=1 records"
    );
    assert_intact(&records);
    let keys: Vec<u64> = records.iter().map(|r| r.2.parse().expect("seq")).collect();
    assert_eq!(
        keys,
        (0..50).collect::<Vec<u64>>(),
        "only committed records"
    );

    // Thawed, the followers copy them and the high watermark passes them.
    let seen = wait_for(
        Duration::from_secs(30),
        "the acks=1 records to become visible",
        || {
            let (records, high) = consume_all(&bootstrap, &topic);
            if high.get(&0) == Some(&70) {
                Ok(records)
            } else {
                Err(format!("high watermark {high:?}"))
            }
        },
    );
    assert_intact(&seen);
    assert_eq!(seen.len(), 70);

    // What a consumer saw survives the leader's death: the new leader serves the same records.
    let before = leader_of(&cluster, leader, &topic, 0);
    cluster.broker(leader).kill9();
    let observer = followers[0];
    let after = wait_new_leader(
        &cluster,
        observer,
        &topic,
        0,
        leader,
        cluster.session_timeout() + SLACK,
    );
    assert!(
        after.leader_epoch > before.leader_epoch,
        "{before:?} -> {after:?}"
    );
    // The new leader's high watermark passes the records once the surviving follower has
    // fetched from it (until then it may be the follower's older one).
    let again = wait_for(
        Duration::from_secs(20),
        "the new leader to serve what the consumer saw",
        || {
            let (records, high) = consume_all(&cluster.bootstrap(after.leader), &topic);
            if high.get(&0) >= Some(&70) {
                Ok(records)
            } else {
                Err(format!("high watermark {high:?}"))
            }
        },
    );
    assert_eq!(
        again, seen,
        "the same records at the same offsets after failover"
    );
}
