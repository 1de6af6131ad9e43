//! Adding partitions to a topic a group is subscribed to (AdminClient.create_partitions) triggers a
//! rebalance that assigns the new partitions: the confluent-kafka consumer's on_assign sees them and
//! it consumes what is produced to them. The consumer keeps librdkafka's default 5-minute metadata
//! refresh, so within the test's deadline only the coordinator's rebalance can tell it.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn new_partitions_of_a_subscribed_topic_get_assigned_and_consumed() {
    let broker = Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0));
    let topic = unique_topic("groups-add-partitions");
    let group = format!("{topic}-group");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut produced = group_produce(&broker, &topic, 2, 0, 20, true, &[]);

    let mut members = vec![GroupMember::spawn(
        GroupClient::Confluent,
        "consumer",
        &broker,
        &topic,
        &group,
        dir.path(),
        &["--commit", "manual", "--commit-every", "10"],
    )];
    wait_for_members(
        &mut members,
        Duration::from_secs(30),
        "the consumer to get partitions 0 and 1 and read the first 20 messages",
        |ms| ms[0].assignment == Some(vec![0, 1]) && ms[0].messages.len() >= 20,
    );

    let answer = &group_admin(&broker, &[&format!("create-partitions={topic}:4")])[0];
    assert_eq!(answer["total"], 4, "{answer}");
    let grown_at = Instant::now();
    wait_for_members(
        &mut members,
        Duration::from_secs(30),
        "the rebalance to assign partitions 2 and 3 (on_assign with [0, 1, 2, 3])",
        |ms| ms[0].assignment == Some(vec![0, 1, 2, 3]),
    );
    eprintln!(
        "new partitions assigned {:?} after create_partitions",
        grown_at.elapsed()
    );
    assert_group_matches_members(&broker, &group, &topic, &members);

    // Messages to the new partitions (and the old ones) reach the consumer.
    produced.extend(group_produce(
        &broker,
        &topic,
        4,
        20,
        40,
        false,
        &[2, 3, 0, 1],
    ));
    let wanted: BTreeSet<(i32, i64)> = produced.iter().map(|m| (m.partition, m.offset)).collect();
    wait_for_members(
        &mut members,
        Duration::from_secs(30),
        "the consumer to read the messages in the new partitions",
        |ms| {
            let got: BTreeSet<(i32, i64)> =
                ms[0].messages.iter().map(|&(p, o, _)| (p, o)).collect();
            wanted.is_subset(&got)
        },
    );
    members[0].stop();
    members[0].finish_ok();
    let read: Vec<(i32, i64)> = members[0]
        .messages
        .iter()
        .map(|&(p, o, _)| (p, o))
        .collect();
    assert_eq!(
        read.len(),
        wanted.len(),
        "messages read, each once: {read:?}"
    );
    for p in [2, 3] {
        assert_eq!(
            read.iter().filter(|(q, _)| *q == p).count(),
            10,
            "messages read from new partition {p}"
        );
    }
    let offsets = &group_admin(&broker, &[&format!("offsets={group}:{topic}:4")])[0];
    for (p, end) in [(0, 20), (1, 20), (2, 10), (3, 10)] {
        assert_eq!(
            offsets["offsets"][p.to_string()],
            end,
            "committed offset of partition {p}: {offsets}"
        );
    }
}
