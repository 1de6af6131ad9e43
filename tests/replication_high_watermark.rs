//! Issue 10, the high watermark: three `strom` brokers on a real ZooKeeper, an RF=3 topic, a
//! confluent-kafka consumer reading from the beginning.
//! - a consumer never sees a record above the high watermark: with both followers frozen, acks=1
//!   records the leader accepted are not shown to any consumer (ListOffsets(latest) stays at the
//!   high watermark) until the followers copy them;
//! - a record a consumer saw is never lost by a later failover: read, kill the leader, read again
//!   from the new leader: the same records at the same offsets;
//! - nor does the end of the log a client was shown move back: right after the failover the new
//!   leader answers ListOffsets(latest) with OFFSET_NOT_AVAILABLE while its high watermark is
//!   still the stale one it had as a follower (KIP-207), never with a smaller offset.
//!
//! replica.lag.time.max.ms is long here (the followers must stay in the ISR while frozen, or the
//! leader alone would move the high watermark), and the freeze is shorter than the ZooKeeper
//! session.

mod common;
mod replication_support;

use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{exchange, wait_for, Cluster, NONE};
use common::{unique_topic, BrokerOpts};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use replication_support::*;

/// Kafka's OFFSET_NOT_AVAILABLE: a new leader's high watermark has not reached its epoch's
/// start yet.
const OFFSET_NOT_AVAILABLE: i16 = 78;
const LONG_LAG_TIME_MAX_MS: u64 = 20_000;

/// ListOffsets v4 (latest, read_uncommitted) of one partition as a consumer asks it: (error code,
/// offset).
fn list_latest(addr: SocketAddr, topic: &str, partition: i32) -> Result<(i16, i64), String> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_current_leader_epoch(-1)
                .with_timestamp(-1)])]);
    let response: ListOffsetsResponse = exchange(addr, ApiKey::ListOffsets, 4, &request)?;
    response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| (p.error_code, p.offset))
        .ok_or_else(|| "ListOffsets answered no partition".to_string())
}
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
    // The leader dies right after acknowledging acks=all records (their acknowledgement means
    // its high watermark passed 80), so the followers, whose fetches moved it there, have most
    // likely not yet been told the new high watermark.
    let before = leader_of(&cluster, leader, &topic, 0);
    let (acked, errors) = produce(&bootstrap, &topic, 0, "all", 10, 3000);
    cluster.broker(leader).kill9();
    assert_eq!((acked.len(), errors.len()), (10, 0), "{errors:?}");
    assert_eq!(acked.last().map(|a| a.2), Some(79));
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
    // Until the surviving follower has fetched from it, the new leader's high watermark may be
    // the older one it had as a follower (it learns the leader's at its next fetch). It must not
    // show that to clients: a consumer would see the end of the log move back (Kafka answers
    // OFFSET_NOT_AVAILABLE until the high watermark reaches the new epoch's start, KIP-207).
    let new_leader_addr = cluster.addr(after.leader);
    let mut answers = Vec::new();
    wait_for(
        Duration::from_secs(20),
        "the new leader's ListOffsets(latest) to pass what the consumer saw",
        || {
            let answer = list_latest(new_leader_addr, &topic, 0)?;
            answers.push(answer);
            match answer {
                (NONE, offset) if offset >= 80 => Ok(()),
                other => Err(format!("answered {other:?}")),
            }
        },
    );
    eprintln!("new leader's ListOffsets(latest) answers after the failover: {answers:?}");
    assert!(
        answers.iter().all(
            |&(error, offset)| error == OFFSET_NOT_AVAILABLE || (error == NONE && offset >= 80)
        ),
        "the new leader never shows a log end below what consumers saw: {answers:?}"
    );
    let again = wait_for(
        Duration::from_secs(20),
        "the new leader to serve what the consumer saw",
        || {
            let (records, high) = consume_all(&cluster.bootstrap(after.leader), &topic);
            if high.get(&0) >= Some(&80) {
                Ok(records)
            } else {
                Err(format!("high watermark {high:?}"))
            }
        },
    );
    assert_intact(&again);
    assert_eq!(
        &again[..70],
        &seen[..],
        "the same records at the same offsets after failover"
    );
    let keys: Vec<u64> = again[70..]
        .iter()
        .map(|r| r.2.parse().expect("seq"))
        .collect();
    assert_eq!(
        keys,
        (3000..3010).collect::<Vec<u64>>(),
        "and the acks=all ones"
    );
}
