//! Issue 10, the leader's log start on its followers: three `strom` brokers on a real ZooKeeper,
//! an RF=3 topic, confluent-kafka clients.
//! - records the leader deleted (DeleteRecords) stay deleted on its followers, so they do not
//!   come back when a follower takes over;
//! - a follower that was down while the leader deleted records it never copied (its log ends
//!   below the leader's log start) starts its log over at the leader's log start, catches up and
//!   rejoins the ISR instead of asking for the missing range forever; once it leads, it serves
//!   exactly the records above that start.

mod common;
mod replication_support;

use std::time::Duration;

use common::cluster::{exchange, Cluster};
use common::{unique_topic, BrokerOpts};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use replication_support::*;

/// DeleteRecords of `topic`-0 below `offset`, sent to `leader`; returns (error code, low watermark).
fn delete_records_before(cluster: &Cluster, leader: i32, topic: &str, offset: i64) -> (i16, i64) {
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])])
        .with_timeout_ms(10_000);
    let response: DeleteRecordsResponse =
        exchange(cluster.addr(leader), ApiKey::DeleteRecords, 2, &request)
            .unwrap_or_else(|e| panic!("DeleteRecords: {e}"));
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.low_watermark)
}

/// Waits until `topic`'s partition 0 is led by `leader` (seen by `observer`).
fn wait_leader(cluster: &Cluster, observer: i32, topic: &str, leader: i32) {
    cluster.wait_partition(
        observer,
        topic,
        0,
        cluster.session_timeout() + SLACK,
        &format!("broker {leader} to lead {topic}-0"),
        |p| p.leader == leader,
    );
}

#[test]
fn a_follower_behind_the_leaders_log_start_starts_over_there_and_deleted_records_stay_deleted() {
    let opts = BrokerOpts::new()
        .set("auto.leader.rebalance.enable", "false")
        .set("replica.lag.time.max.ms", LAG_TIME_MAX_MS);
    let mut cluster = Cluster::start(3, opts);
    let topic = unique_topic("repl-log-start");
    // Replica order 1, 2, 3: broker 1 leads, and 2 then 3 take over as the others die.
    cluster.create_topic_assigned(1, &topic, &[vec![1, 2, 3]], &[]);
    wait_isr(&mut cluster, 1, &topic, 0, &[1, 2, 3], SLACK);
    let (acked, errors) = produce(&cluster.bootstrap(1), &topic, 0, "all", 100, 0);
    assert_eq!((acked.len(), errors.len()), (100, 0), "{errors:?}");

    // Broker 3 goes away holding offsets 0..100; 200 more records are written without it.
    cluster.broker(3).kill9();
    let shrink_timeout = cluster.session_timeout() + SLACK;
    wait_isr(&mut cluster, 1, &topic, 0, &[1, 2], shrink_timeout);
    let (acked, errors) = produce(&cluster.bootstrap(1), &topic, 0, "all", 200, 100);
    assert_eq!((acked.len(), errors.len()), (200, 0), "{errors:?}");

    // The leader deletes everything below 250: offsets 100..250 never reached broker 3.
    assert_eq!(delete_records_before(&cluster, 1, &topic, 250), (0, 250));

    // Broker 3 comes back with a log ending at 100, below the leader's log start of 250.
    cluster.broker(3).restart();
    wait_isr(
        &mut cluster,
        1,
        &topic,
        0,
        &[1, 2, 3],
        Duration::from_millis(LAG_TIME_MAX_MS) + SLACK + SLACK,
    );
    let (acked, errors) = produce(&cluster.bootstrap(1), &topic, 0, "all", 50, 300);
    assert_eq!((acked.len(), errors.len()), (50, 0), "{errors:?}");
    wait_isr(&mut cluster, 1, &topic, 0, &[1, 2, 3], SLACK);

    // Broker 2 takes over: the records deleted on broker 1 are gone there too.
    cluster.broker(1).kill9();
    wait_leader(&cluster, 2, &topic, 2);
    let (records, high) = consume_all(&cluster.bootstrap(2), &topic);
    assert_eq!(high.get(&0), Some(&350));
    assert_eq!(
        records.first().map(|r| r.1),
        Some(250),
        "the deleted records do not come back on the new leader"
    );
    assert_intact(&records);
    let offsets: Vec<i64> = records.iter().map(|r| r.1).collect();
    assert_eq!(offsets, (250..350).collect::<Vec<i64>>());

    // Broker 3 takes over: it serves exactly the records from the leader's old log start on.
    cluster.broker(2).kill9();
    wait_leader(&cluster, 3, &topic, 3);
    let (records, high) = consume_all(&cluster.bootstrap(3), &topic);
    assert_eq!(high.get(&0), Some(&350));
    assert_intact(&records);
    let offsets: Vec<i64> = records.iter().map(|r| r.1).collect();
    assert_eq!(
        offsets,
        (250..350).collect::<Vec<i64>>(),
        "broker 3 started over at 250 and copied everything from there"
    );
    let keys: Vec<u64> = records.iter().map(|r| r.2.parse().expect("seq")).collect();
    assert_eq!(keys, (250..350).collect::<Vec<u64>>());
}
