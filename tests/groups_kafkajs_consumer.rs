//! kafkajs 2.2.4 (consumer with groupId) as a group consumer: it joins, gets every partition, reads
//! every message once and commits (`commitOffsets`); its own `admin.fetchOffsets` and confluent-kafka's
//! AdminClient both see the commits, and a later kafkajs consumer of the group resumes there and
//! reads only the new messages. The client side is tests/clients/kafkajs_group.js.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

const PARTITIONS: u32 = 3;

fn end_offsets(produced: &[Produced]) -> BTreeMap<String, i64> {
    let mut end = BTreeMap::new();
    for m in produced {
        let e = end.entry(m.partition.to_string()).or_insert(0);
        *e = (*e).max(m.offset + 1);
    }
    end
}

/// Runs kafkajs_group.js until it has read `produced.len()` messages; checks it read exactly
/// `produced` and that its own fetchOffsets shows `committed`.
fn consume_exactly(
    broker: &Broker,
    topic: &str,
    group: &str,
    produced: &[Produced],
    committed: &BTreeMap<String, i64>,
) {
    let out = node_client(
        "kafkajs_group.js",
        &args([
            "consume",
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            topic,
            "--group",
            group,
            "--expect",
            &produced.len().to_string(),
            "--timeout",
            "90",
        ]),
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let lines = out.json_lines();
    let result = lines.last().unwrap();
    assert_no_errors(result);

    let assigned: Vec<Vec<i64>> = lines
        .iter()
        .filter(|e| e["event"] == "assigned")
        .map(|e| serde_json::from_value(e["partitions"].clone()).unwrap())
        .collect();
    assert_eq!(
        assigned.last(),
        Some(&vec![0, 1, 2]),
        "the group's only member gets every partition (GROUP_JOIN events: {assigned:?})"
    );
    let id_at: BTreeMap<(i64, i64), u64> = produced
        .iter()
        .map(|m| ((m.partition as i64, m.offset), m.id))
        .collect();
    let mut read = BTreeSet::new();
    for e in lines.iter().filter(|e| e["event"] == "msg") {
        let (p, o, id) = (
            e["p"].as_i64().unwrap(),
            e["o"].as_i64().unwrap(),
            e["id"].as_u64().unwrap(),
        );
        assert!(read.insert((p, o)), "kafkajs read {p}@{o} twice");
        assert_eq!(
            id_at.get(&(p, o)),
            Some(&id),
            "kafkajs read message {id} at {p}@{o}"
        );
    }
    assert_eq!(read.len(), produced.len(), "messages read by kafkajs");
    let fetched: BTreeMap<String, i64> =
        serde_json::from_value(result["committed"].clone()).unwrap();
    assert_eq!(
        &fetched, committed,
        "kafkajs admin.fetchOffsets after commitOffsets: {result}"
    );
}

fn broker_offsets(broker: &Broker, group: &str, topic: &str) -> BTreeMap<String, i64> {
    let answer = &group_admin(broker, &[&format!("offsets={group}:{topic}:{PARTITIONS}")])[0];
    serde_json::from_value(answer["offsets"].clone()).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[test]
fn kafkajs_group_consumer_reads_everything_and_commits() {
    let broker = Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0));
    let topic = unique_topic("groups-kafkajs");
    let group = format!("{topic}-group");
    let mut produced = group_produce(&broker, &topic, PARTITIONS, 0, 300, true, &[]);

    consume_exactly(&broker, &topic, &group, &produced, &end_offsets(&produced));
    assert_eq!(
        broker_offsets(&broker, &group, &topic),
        end_offsets(&produced),
        "offsets committed by kafkajs, read by confluent-kafka"
    );

    let more = group_produce(&broker, &topic, PARTITIONS, 300, 30, false, &[]);
    produced.extend(more.iter().copied());
    consume_exactly(&broker, &topic, &group, &more, &end_offsets(&produced));
}
