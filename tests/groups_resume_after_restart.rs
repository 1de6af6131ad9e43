//! Committed offsets survive a broker restart (they live in `__consumer_offsets`, replayed at
//! start): a confluent-kafka consumer reads part of a topic and commits, every consumer stops, the
//! broker restarts, and a new consumer in the same group resumes exactly at the committed offsets.
//!
//! - manual commits (`commit(asynchronous=False)` every 50 messages) with an uncommitted tail of 20
//!   messages: the new consumer re-reads exactly that tail and nothing else;
//! - `enable.auto.commit` with `auto.commit.interval.ms=100`: once the auto-committer has caught up,
//!   the new consumer re-reads nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;

const PARTITIONS: u32 = 3;
const COUNT: u64 = 300;
/// What the first consumer reads before it stops.
const FIRST_READS: u64 = 170;

fn offsets_map(value: &serde_json::Value) -> BTreeMap<i32, i64> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an offsets object: {value}"))
        .iter()
        .map(|(p, o)| (p.parse().unwrap(), o.as_i64().unwrap()))
        .collect()
}

/// Next offset per partition after the first `n` of `messages`.
fn positions_after(messages: &[(i32, i64, u64)], n: usize) -> BTreeMap<i32, i64> {
    let mut positions = BTreeMap::new();
    for &(p, o, _) in &messages[..n] {
        positions.insert(p, o + 1);
    }
    positions
}

/// Runs one consumer of `group` to completion with `opts` and returns it.
fn run_consumer(
    broker: &Broker,
    topic: &str,
    group: &str,
    name: &str,
    opts: &[&str],
) -> GroupMember {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut member = GroupMember::spawn(
        GroupClient::Confluent,
        name,
        broker,
        topic,
        group,
        dir.path(),
        opts,
    );
    member.finish_ok();
    member
}

/// The committed offsets the broker reports for `group` (OffsetFetch through the AdminClient);
/// partitions without a committed offset (-1001, "invalid") are left out.
fn broker_offsets(broker: &Broker, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let answer = &group_admin(broker, &[&format!("offsets={group}:{topic}:{PARTITIONS}")])[0];
    let mut offsets = offsets_map(&answer["offsets"]);
    offsets.retain(|_, o| *o >= 0);
    offsets
}

/// Restarts the broker, then a second consumer must read exactly the messages at or after
/// `committed` in each partition; returns the (partition, offset) pairs it read.
fn resume_after_restart(
    broker: &mut Broker,
    topic: &str,
    group: &str,
    produced: &[Produced],
    committed: &BTreeMap<i32, i64>,
) -> BTreeSet<(i32, i64)> {
    broker.restart();
    assert_eq!(
        &broker_offsets(broker, group, topic),
        committed,
        "committed offsets after the restart (left) differ from those committed before (right)"
    );
    let expected: BTreeSet<(i32, i64)> = produced
        .iter()
        .map(|m| (m.partition, m.offset))
        .filter(|(p, o)| *o >= committed.get(p).copied().unwrap_or(0))
        .collect();
    let second = run_consumer(
        broker,
        topic,
        group,
        "second",
        &[
            "--commit",
            "manual",
            "--expect",
            &expected.len().to_string(),
        ],
    );
    let read: Vec<(i32, i64)> = second.messages.iter().map(|&(p, o, _)| (p, o)).collect();
    let read_set: BTreeSet<(i32, i64)> = read.iter().copied().collect();
    assert_eq!(
        read.len(),
        read_set.len(),
        "the second consumer read a message twice"
    );
    let first_offsets: BTreeMap<i32, i64> = read.iter().fold(BTreeMap::new(), |mut m, &(p, o)| {
        m.entry(p).or_insert(o);
        m
    });
    assert_eq!(
        read_set, expected,
        "after the restart the consumer must resume at the committed offsets {committed:?}; it \
         started at {first_offsets:?}"
    );
    // It committed everything in turn.
    let end: BTreeMap<i32, i64> = (0..PARTITIONS as i32)
        .map(|p| {
            (
                p,
                produced.iter().filter(|m| m.partition == p).count() as i64,
            )
        })
        .collect();
    assert_eq!(
        broker_offsets(broker, group, topic),
        end,
        "offsets after reading everything"
    );
    read_set
}

#[test]
fn manual_commits_survive_a_restart_and_resume_exactly() {
    let mut broker = Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0));
    let topic = unique_topic("groups-resume-manual");
    let group = format!("{topic}-group");
    let produced = group_produce(&broker, &topic, PARTITIONS, 0, COUNT, true, &[]);

    // Commits after messages 50, 100 and 150, then reads 20 more and closes without committing.
    let first = run_consumer(
        &broker,
        &topic,
        &group,
        "first",
        &[
            "--commit",
            "manual",
            "--commit-every",
            "50",
            "--max-messages",
            &FIRST_READS.to_string(),
            "--no-final-commit",
        ],
    );
    assert_eq!(first.messages.len() as u64, FIRST_READS);
    let committed = positions_after(&first.messages, 150);
    assert_eq!(
        first.committed, committed,
        "commit(asynchronous=False) after message 150 must commit the position after it"
    );
    let fetched = offsets_map(&first.result.as_ref().unwrap()["committed"]);
    assert_eq!(
        fetched, committed,
        "the consumer's own OffsetFetch (committed()) before it stopped"
    );

    let second = resume_after_restart(&mut broker, &topic, &group, &produced, &committed);
    let tail: BTreeSet<(i32, i64)> = first.messages[150..]
        .iter()
        .map(|&(p, o, _)| (p, o))
        .collect();
    let read_twice: BTreeSet<(i32, i64)> = first
        .messages
        .iter()
        .map(|&(p, o, _)| (p, o))
        .filter(|k| second.contains(k))
        .collect();
    assert_eq!(
        read_twice, tail,
        "exactly the uncommitted tail (the 20 messages after the last commit) is read again"
    );
}

#[test]
fn auto_commits_survive_a_restart_and_resume_exactly() {
    let mut broker = Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0));
    let topic = unique_topic("groups-resume-auto");
    let group = format!("{topic}-group");
    let produced = group_produce(&broker, &topic, PARTITIONS, 0, COUNT, true, &[]);

    // enable.auto.commit: the script stops after 170 messages, waits until committed() (OffsetFetch)
    // shows its positions (or 5 s pass), then closes.
    let first = run_consumer(
        &broker,
        &topic,
        &group,
        "first",
        &[
            "--commit",
            "auto",
            "--auto-commit-interval-ms",
            "100",
            "--max-messages",
            &FIRST_READS.to_string(),
        ],
    );
    assert_eq!(first.messages.len() as u64, FIRST_READS);
    let positions = positions_after(&first.messages, FIRST_READS as usize);
    let result = first.result.as_ref().unwrap();
    assert_eq!(
        offsets_map(&result["committed"]),
        positions,
        "the auto-committer must have committed every consumed message's position: {result}"
    );

    let second = resume_after_restart(&mut broker, &topic, &group, &produced, &positions);
    let read_twice: Vec<(i32, i64)> = first
        .messages
        .iter()
        .map(|&(p, o, _)| (p, o))
        .filter(|k| second.contains(k))
        .collect();
    assert!(
        read_twice.is_empty(),
        "read again after an auto commit: {read_twice:?}"
    );
}
