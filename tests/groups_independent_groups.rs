//! Two consumer groups on one topic are independent: each receives every message, each member gets
//! every partition (the groups' memberships do not mix), and one group's commits do not move the
//! other's position. confluent-kafka consumers (tests/clients/group_consumer.py consume).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;

const PARTITIONS: u32 = 3;

/// (partition, offset) of each message `member` read, checking it read each once and the id the
/// producer's acknowledgement put there.
fn read_once(member: &GroupMember, produced: &[Produced]) -> BTreeSet<(i32, i64)> {
    let id_at: BTreeMap<(i32, i64), u64> = produced
        .iter()
        .map(|m| ((m.partition, m.offset), m.id))
        .collect();
    let mut read = BTreeSet::new();
    for &(p, o, id) in &member.messages {
        assert!(read.insert((p, o)), "{} read {p}@{o} twice", member.name);
        assert_eq!(
            id_at.get(&(p, o)),
            Some(&id),
            "{} read message {id} at {p}@{o}",
            member.name
        );
    }
    read
}

fn positions(produced: &[Produced]) -> BTreeSet<(i32, i64)> {
    produced.iter().map(|m| (m.partition, m.offset)).collect()
}

#[test]
fn two_groups_each_receive_every_message() {
    let broker = Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0));
    let topic = unique_topic("groups-independent");
    let (g1, g2) = (format!("{topic}-one"), format!("{topic}-two"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let first = group_produce(&broker, &topic, PARTITIONS, 0, 150, true, &[]);

    // Both groups at once, one member each: each member must own all 3 partitions.
    let consume = |name: &str, group: &str, expect: usize| {
        GroupMember::spawn(
            GroupClient::Confluent,
            name,
            &broker,
            &topic,
            group,
            dir.path(),
            &["--commit", "manual", "--expect", &expect.to_string()],
        )
    };
    let mut members = vec![consume("one-a", &g1, 150), consume("two-a", &g2, 150)];
    wait_for_members(
        &mut members,
        Duration::from_secs(60),
        "both groups to finish",
        |ms| {
            ms.iter()
                .all(|m| m.result.is_some() || m.messages.len() >= 150)
        },
    );
    for m in members.iter_mut() {
        m.finish_ok();
        let assigned: Vec<Vec<i32>> = m
            .events
            .iter()
            .filter(|e| e["event"] == "assigned")
            .map(|e| serde_json::from_value(e["partitions"].clone()).unwrap())
            .collect();
        assert_eq!(
            assigned.last(),
            Some(&vec![0, 1, 2]),
            "{}: the only member of its group must get every partition (assignments {assigned:?})",
            m.name
        );
        assert_eq!(
            read_once(m, &first),
            positions(&first),
            "{} must read every message",
            m.name
        );
    }

    // More messages; group one reads and commits them first, then group two must still get them.
    let second = group_produce(&broker, &topic, PARTITIONS, 150, 60, false, &[]);
    for group in [&g1, &g2] {
        let mut m = consume(&format!("{group}-b"), group, 60);
        m.finish_ok();
        assert_eq!(
            read_once(&m, &second),
            positions(&second),
            "{group} must resume at its own committed offsets and read exactly the new messages"
        );
    }

    let answers = group_admin(
        &broker,
        &[
            &format!("offsets={g1}:{topic}:{PARTITIONS}"),
            &format!("offsets={g2}:{topic}:{PARTITIONS}"),
        ],
    );
    for answer in &answers {
        for p in 0..PARTITIONS {
            assert_eq!(
                answer["offsets"][p.to_string()],
                70,
                "each group committed every partition's end (70): {answer}"
            );
        }
    }
}
