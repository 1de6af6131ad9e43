//! kafka-python 3 (KafkaConsumer with group_id, range assignor) as a group consumer: it joins, gets
//! every partition, reads every message once, commits (manual `commit()`), and a later consumer of
//! the group resumes at those offsets; the second one uses `enable_auto_commit`, whose commit on
//! close must land too. Offsets are read back with confluent-kafka's AdminClient (OffsetFetch from
//! another client). The client side is tests/clients/kafka_python_group.py.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

const PARTITIONS: u32 = 3;

/// Runs a kafka-python consumer of `group` until it has read `expect` messages; checks it read
/// exactly `produced` (each once, each at its acknowledged position) and returns its result.
fn consume_exactly(
    broker: &Broker,
    topic: &str,
    group: &str,
    name: &str,
    commit: &str,
    produced: &[Produced],
) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut member = GroupMember::spawn(
        GroupClient::KafkaPython,
        name,
        broker,
        topic,
        group,
        dir.path(),
        &["--commit", commit, "--expect", &produced.len().to_string()],
    );
    let result = member.finish_ok();
    let last_assignment: Vec<i64> = member
        .events
        .iter()
        .rev()
        .find(|e| e["event"] == "assigned")
        .and_then(|e| serde_json::from_value(e["partitions"].clone()).ok())
        .unwrap_or_default();
    assert_eq!(
        last_assignment,
        vec![0, 1, 2],
        "{name}: the group's only member gets every partition"
    );

    let id_at: BTreeMap<(i32, i64), u64> = produced
        .iter()
        .map(|m| ((m.partition, m.offset), m.id))
        .collect();
    let mut read = BTreeSet::new();
    for &(p, o, id) in &member.messages {
        assert!(read.insert((p, o)), "{name} read {p}@{o} twice");
        assert_eq!(
            id_at.get(&(p, o)),
            Some(&id),
            "{name} read message {id} at {p}@{o}"
        );
    }
    assert_eq!(
        read.len(),
        produced.len(),
        "{name} read {} of {} messages",
        read.len(),
        produced.len()
    );
    result
}

fn end_offsets(produced: &[Produced]) -> BTreeMap<String, i64> {
    let mut end = BTreeMap::new();
    for m in produced {
        let e = end.entry(m.partition.to_string()).or_insert(0);
        *e = (*e).max(m.offset + 1);
    }
    end
}

fn broker_offsets(broker: &Broker, group: &str, topic: &str) -> BTreeMap<String, i64> {
    let answer = &group_admin(broker, &[&format!("offsets={group}:{topic}:{PARTITIONS}")])[0];
    serde_json::from_value(answer["offsets"].clone()).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[test]
fn kafka_python_group_consumer_reads_everything_and_commits() {
    let broker = Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0));
    let topic = unique_topic("groups-kafka-python");
    let group = format!("{topic}-group");
    let mut produced = group_produce(&broker, &topic, PARTITIONS, 0, 300, true, &[]);

    let result = consume_exactly(
        &broker,
        &topic,
        &group,
        "kafka-python-1",
        "manual",
        &produced,
    );
    let end = end_offsets(&produced);
    let client_committed: BTreeMap<String, i64> =
        serde_json::from_value(result["committed"].clone()).unwrap();
    assert_eq!(
        client_committed, end,
        "kafka-python's committed() after commit(): {result}"
    );
    assert_eq!(
        broker_offsets(&broker, &group, &topic),
        end,
        "offsets committed by kafka-python"
    );

    // 30 more: a new consumer resumes at the commits, reads only those, and auto-commits on close.
    let more = group_produce(&broker, &topic, PARTITIONS, 300, 30, false, &[]);
    consume_exactly(&broker, &topic, &group, "kafka-python-2", "auto", &more);
    produced.extend(more);
    assert_eq!(
        broker_offsets(&broker, &group, &topic),
        end_offsets(&produced),
        "offsets after kafka-python's auto commit on close"
    );
}
