//! Two client libraries in one consumer group: kafka-python (KafkaConsumer, RangePartitionAssignor)
//! and confluent-kafka (librdkafka, partition.assignment.strategy=range) both join with protocol
//! type "consumer" and the common "range" assignor, split a 6-partition topic 3/3 and together read
//! every message once. Each library is the group leader once (the leader decodes the other's
//! subscription and runs the assignor): first kafka-python (it joins first), then confluent-kafka
//! (after the kafka-python member leaves and a new one joins).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;

const PARTITIONS: u32 = 6;
const QUIET: Duration = Duration::from_millis(1_500);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The running members hold 3 partitions each, between them all 6.
fn assert_split(members: &[GroupMember], when: &str) {
    let running: Vec<&GroupMember> = members.iter().filter(|m| m.is_running()).collect();
    let views: Vec<(String, Vec<i32>)> = running
        .iter()
        .map(|m| (m.name.clone(), m.assignment.clone().unwrap_or_default()))
        .collect();
    assert_eq!(running.len(), 2, "{when}: {views:?}");
    let union: BTreeSet<i32> = views.iter().flat_map(|(_, a)| a.iter().copied()).collect();
    assert!(
        views.iter().all(|(_, a)| a.len() == 3) && union.len() == PARTITIONS as usize,
        "{when}: the range assignor splits 6 partitions 3/3 between the two members: {views:?}"
    );
}

/// Produces `count` messages and waits until the running members have read them all; each member
/// may only read partitions it is assigned.
fn produce_and_consume(
    broker: &Broker,
    topic: &str,
    members: &mut [GroupMember],
    start: u64,
    count: u64,
) -> Vec<Produced> {
    let before: Vec<usize> = members.iter().map(|m| m.messages.len()).collect();
    let produced = group_produce(broker, topic, PARTITIONS, start, count, false, &[]);
    let wanted: BTreeSet<(i32, i64)> = produced.iter().map(|m| (m.partition, m.offset)).collect();
    wait_for_members(
        members,
        Duration::from_secs(60),
        "the members to read the new messages",
        |ms| {
            let got: BTreeSet<(i32, i64)> = ms
                .iter()
                .flat_map(|m| m.messages.iter().map(|&(p, o, _)| (p, o)))
                .collect();
            wanted.is_subset(&got)
        },
    );
    for (m, skip) in members.iter().zip(before) {
        if !m.is_running() {
            continue;
        }
        let assignment = m.assignment.clone().unwrap_or_default();
        let foreign: Vec<_> = m.messages[skip..]
            .iter()
            .filter(|(p, _, _)| !assignment.contains(p))
            .collect();
        assert!(
            foreign.is_empty(),
            "{} read partitions outside its assignment {assignment:?}: {foreign:?}",
            m.name
        );
    }
    produced
}

#[test]
fn kafka_python_and_confluent_consumers_split_one_group() {
    let broker = Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0));
    let topic = unique_topic("groups-mixed");
    let group = format!("{topic}-group");
    let dir = tempfile::tempdir().expect("temporary directory");
    group_produce(&broker, &topic, PARTITIONS, 0, 0, true, &[]);
    let opts = [
        "--commit",
        "manual",
        "--session-timeout-ms",
        "6000",
        "--heartbeat-interval-ms",
        "500",
    ];
    let spawn = |client, name: &str| {
        GroupMember::spawn(client, name, &broker, &topic, &group, dir.path(), &opts)
    };

    // kafka-python joins first and leads; then confluent-kafka joins.
    let mut members = vec![spawn(GroupClient::KafkaPython, "kafka-python-1")];
    wait_for_members(
        &mut members,
        SETTLE_TIMEOUT,
        "kafka-python to get all 6 partitions",
        |ms| {
            ms[0]
                .assignment
                .as_ref()
                .is_some_and(|a| a.len() == PARTITIONS as usize)
        },
    );
    members.push(spawn(GroupClient::Confluent, "confluent-1"));
    wait_for_settled_assignment(
        &mut members,
        SETTLE_TIMEOUT,
        QUIET,
        "kafka-python and confluent-kafka to share the group",
        |ms| ms.len() == 2,
    );
    assert_split(&members, "kafka-python leader");
    assert_group_matches_members(&broker, &group, &topic, &members);
    let mut produced = produce_and_consume(&broker, &topic, &mut members, 0, 600);

    // kafka-python leaves; confluent-kafka gets everything, then leads when kafka-python rejoins.
    members[0].stop();
    members[0].finish_ok();
    wait_for_settled_assignment(
        &mut members,
        SETTLE_TIMEOUT,
        QUIET,
        "confluent-kafka alone",
        |ms| {
            ms.len() == 1
                && ms[0]
                    .assignment
                    .as_ref()
                    .is_some_and(|a| a.len() == PARTITIONS as usize)
        },
    );
    members.push(spawn(GroupClient::KafkaPython, "kafka-python-2"));
    wait_for_settled_assignment(
        &mut members,
        SETTLE_TIMEOUT,
        QUIET,
        "kafka-python to join confluent-kafka's group",
        |ms| {
            ms.len() == 2
                && ms
                    .iter()
                    .all(|m| !m.assignment.as_ref().unwrap().is_empty())
        },
    );
    assert_split(&members, "confluent-kafka leader");
    assert_group_matches_members(&broker, &group, &topic, &members);
    produced.extend(produce_and_consume(&broker, &topic, &mut members, 600, 600));

    for m in members.iter().filter(|m| m.is_running()) {
        m.stop();
    }
    for m in members.iter_mut().filter(|m| m.is_running()) {
        m.finish_ok();
    }

    // Every message read exactly once, by whichever member owned its partition.
    let id_at: BTreeMap<(i32, i64), u64> = produced
        .iter()
        .map(|m| ((m.partition, m.offset), m.id))
        .collect();
    let mut readers: BTreeMap<(i32, i64), Vec<&str>> = BTreeMap::new();
    for m in &members {
        for &(p, o, id) in &m.messages {
            assert_eq!(
                id_at.get(&(p, o)),
                Some(&id),
                "{} read message {id} at {p}@{o}",
                m.name
            );
            readers.entry((p, o)).or_default().push(&m.name);
        }
    }
    let twice: Vec<_> = readers.iter().filter(|(_, r)| r.len() > 1).collect();
    assert!(twice.is_empty(), "read more than once: {twice:?}");
    assert_eq!(readers.len(), produced.len(), "messages read by the group");

    let offsets = &group_admin(&broker, &[&format!("offsets={group}:{topic}:{PARTITIONS}")])[0];
    for p in 0..PARTITIONS {
        assert_eq!(
            offsets["offsets"][p.to_string()],
            200,
            "committed offset of partition {p}: {offsets}"
        );
    }
}
