//! Consumer-group rebalancing with confluent-kafka (librdkafka, range assignor, eager protocol),
//! every consumer its own process (tests/clients/group_consumer.py consume):
//!
//! 1. 3 consumers on a 6-partition topic get 2 partitions each, all 6 between them;
//! 2. 4 more join: 7 members for 6 partitions, every partition assigned exactly once, one member
//!    idle;
//! 3. one consumer is SIGKILLed while it consumes (no LeaveGroup, no final commit): after
//!    session.timeout.ms the coordinator expires it and its partition moves to an idle member;
//!    every produced message is consumed, and the only messages consumed twice are the killed
//!    consumer's uncommitted tail.
//!
//! After each settled rebalance the clients' view of the assignment is compared with the broker's
//! (DescribeGroups: state Stable, same members, same assignment).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;

const PARTITIONS: u32 = 6;
const SESSION_TIMEOUT: Duration = Duration::from_millis(6_000);
/// How long no member's assignment may change before a rebalance counts as finished (the
/// consumers heartbeat every 500 ms, so a rebalance reaches everyone well within this).
const QUIET: Duration = Duration::from_millis(1_500);
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

fn all_partitions() -> BTreeSet<i32> {
    (0..PARTITIONS as i32).collect()
}

/// Every running member's assignment, for assertions.
fn assignments(members: &[GroupMember]) -> Vec<(String, Vec<i32>)> {
    members
        .iter()
        .filter(|m| m.is_running())
        .map(|m| (m.name.clone(), m.assignment.clone().unwrap_or_default()))
        .collect()
}

/// Asserts every partition is assigned to exactly one running member.
fn assert_each_partition_once(members: &[GroupMember], when: &str) {
    let mut owners: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (name, partitions) in assignments(members) {
        for p in partitions {
            owners.entry(p).or_default().push(name.clone());
        }
    }
    let assigned: BTreeSet<i32> = owners.keys().copied().collect();
    assert_eq!(
        assigned,
        all_partitions(),
        "{when}: every partition must be assigned; assignments {:?}",
        assignments(members)
    );
    let doubled: Vec<_> = owners.iter().filter(|(_, o)| o.len() > 1).collect();
    assert!(
        doubled.is_empty(),
        "{when}: partitions assigned to more than one member: {doubled:?}"
    );
}

#[test]
fn members_share_partitions_and_a_killed_members_partitions_move_to_the_others() {
    let broker = Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0));
    let topic = unique_topic("groups-rebalance");
    let group = format!("{topic}-group");
    let dir = tempfile::tempdir().expect("temporary directory");
    // Members commit every 10 messages, on revocation and when they stop. c1 commits only on
    // revocation and when it stops: killed while it reads the second batch, it leaves a known
    // uncommitted tail (everything it read since its last revocation).
    let spawn = |name: &str| {
        let every = if name == "c1" { "1000000" } else { "10" };
        GroupMember::spawn(
            GroupClient::Confluent,
            name,
            &broker,
            &topic,
            &group,
            dir.path(),
            &[
                "--commit",
                "manual",
                "--commit-every",
                every,
                "--session-timeout-ms",
                "6000",
                "--heartbeat-interval-ms",
                "500",
            ],
        )
    };

    // 100 messages per partition before anyone joins.
    let mut produced = group_produce(&broker, &topic, PARTITIONS, 0, 600, true, &[]);

    // ---- 3 members: 2 partitions each ----
    let mut members: Vec<GroupMember> = (1..=3).map(|i| spawn(&format!("c{i}"))).collect();
    wait_for_settled_assignment(
        &mut members,
        SETTLE_TIMEOUT,
        QUIET,
        "3 members assigned",
        |_| true,
    );
    for (name, partitions) in assignments(&members) {
        assert_eq!(
            partitions.len(),
            2,
            "{name}: 3 members on 6 partitions get 2 each; assignments {:?}",
            assignments(&members)
        );
    }
    assert_each_partition_once(&members, "3 members");
    assert_group_matches_members(&broker, &group, &topic, &members);

    // ---- 7 members: one partition each for six of them, one idle ----
    members.extend((4..=7).map(|i| spawn(&format!("c{i}"))));
    wait_for_settled_assignment(
        &mut members,
        SETTLE_TIMEOUT,
        QUIET,
        "7 members assigned",
        |_| true,
    );
    assert_each_partition_once(&members, "7 members");
    let sizes: Vec<usize> = assignments(&members).iter().map(|(_, p)| p.len()).collect();
    assert_eq!(
        (
            sizes.iter().filter(|&&n| n == 1).count(),
            sizes.iter().filter(|&&n| n == 0).count()
        ),
        (6, 1),
        "7 members on 6 partitions: six with one partition, exactly one idle; assignments {:?}",
        assignments(&members)
    );
    assert_group_matches_members(&broker, &group, &topic, &members);

    // ---- kill one member with a partition while it consumes: c1 unless it is the idle one ----
    let has_partition = |m: &GroupMember| m.assignment.as_ref().is_some_and(|a| !a.is_empty());
    let victim = if has_partition(&members[0]) {
        0
    } else {
        members.iter().position(has_partition).unwrap()
    };
    let victim_partitions = members[victim].assignment.clone().unwrap();
    // 50 more per partition; kill the victim as soon as it has read one of them.
    produced.extend(group_produce(
        &broker,
        &topic,
        PARTITIONS,
        600,
        300,
        false,
        &[],
    ));
    wait_for_members(
        &mut members,
        Duration::from_secs(30),
        "the victim to consume a message of the second batch",
        |ms| ms[victim].messages.iter().any(|&(_, o, _)| o >= 100),
    );
    members[victim].kill9();
    let killed_at = Instant::now();
    let victim_name = members[victim].name.clone();
    // Messages for the victim's partition now wait for the coordinator to notice.
    produced.extend(group_produce(
        &broker,
        &topic,
        PARTITIONS,
        900,
        300,
        false,
        &[],
    ));

    wait_for_settled_assignment(
        &mut members,
        SESSION_TIMEOUT + SETTLE_TIMEOUT,
        QUIET,
        "the killed member's partitions to be reassigned to the survivors",
        |running| {
            running
                .iter()
                .flat_map(|m| m.assignment.clone().unwrap_or_default())
                .collect::<BTreeSet<i32>>()
                == all_partitions()
        },
    );
    let moved_after = killed_at.elapsed();
    assert_each_partition_once(&members, "after the kill");
    for (name, partitions) in assignments(&members) {
        assert_eq!(
            partitions.len(),
            1,
            "{name}: 6 survivors on 6 partitions get one each; assignments {:?}",
            assignments(&members)
        );
    }
    // Kafka does not drop a member when its connection closes: only the session timeout (6 s,
    // counted from the last heartbeat, at most 0.5 s before the kill) expires it.
    assert!(
        moved_after >= Duration::from_millis(5_000),
        "the killed member's partitions {victim_partitions:?} moved {moved_after:?} after the kill, \
         before session.timeout.ms could have expired"
    );
    assert_group_matches_members(&broker, &group, &topic, &members);

    // ---- everything produced gets consumed ----
    let wanted: BTreeSet<(i32, i64)> = produced.iter().map(|m| (m.partition, m.offset)).collect();
    wait_for_members(
        &mut members,
        Duration::from_secs(60),
        "every produced message to be consumed",
        |ms| {
            let got: BTreeSet<(i32, i64)> = ms
                .iter()
                .flat_map(|m| m.messages.iter().map(|&(p, o, _)| (p, o)))
                .collect();
            wanted.is_subset(&got)
        },
    );
    for m in &members {
        if m.is_running() {
            m.stop();
        }
    }
    for m in members.iter_mut().filter(|m| m.is_running()) {
        m.finish_ok();
    }

    let id_at: BTreeMap<(i32, i64), u64> = produced
        .iter()
        .map(|m| ((m.partition, m.offset), m.id))
        .collect();
    let mut seen: BTreeMap<(i32, i64), Vec<String>> = BTreeMap::new();
    for m in &members {
        for &(p, o, id) in &m.messages {
            assert_eq!(
                id_at.get(&(p, o)),
                Some(&id),
                "{} consumed message {id} at {p}@{o}, where the producer's acknowledgement says \
                 message {:?}",
                m.name,
                id_at.get(&(p, o))
            );
            seen.entry((p, o)).or_default().push(m.name.clone());
        }
    }
    let missing: Vec<_> = wanted.iter().filter(|k| !seen.contains_key(k)).collect();
    assert!(missing.is_empty(), "never consumed: {missing:?}");

    // Only the killed member's uncommitted tail may be read twice: by the victim, then once more
    // by the member that took its partition over, from the last offset the victim committed.
    let victim_member = &members[victim];
    let uncommitted_tail: BTreeSet<(i32, i64)> = victim_member
        .messages
        .iter()
        .map(|&(p, o, _)| (p, o))
        .filter(|(p, o)| {
            victim_partitions.contains(p)
                && *o >= victim_member.committed.get(p).copied().unwrap_or(0)
        })
        .collect();
    let mut redelivered = BTreeSet::new();
    for ((p, o), by) in &seen {
        if by.len() == 1 {
            continue;
        }
        let committed = victim_member.committed.get(p).copied().unwrap_or(0);
        let allowed = by.len() == 2
            && by.contains(&victim_name)
            && victim_partitions.contains(p)
            && *o >= committed;
        assert!(
            allowed,
            "{p}@{o} consumed by {by:?}; duplicates are only allowed for the killed member \
             {victim_name}'s uncommitted tail (partitions {victim_partitions:?}, last commit \
             {:?})",
            victim_member.committed
        );
        redelivered.insert((*p, *o));
    }
    eprintln!(
        "partitions {victim_partitions:?} moved {moved_after:?} after the kill; {} messages of \
         {victim_name}'s uncommitted tail were redelivered",
        redelivered.len()
    );
    if victim == 0 {
        // c1 committed nothing after its last revocation, so its new owner starts there and
        // re-reads exactly what c1 had read since: the whole uncommitted tail, nothing else.
        assert!(
            !uncommitted_tail.is_empty(),
            "c1 was killed after reading messages it did not commit"
        );
        assert_eq!(
            redelivered, uncommitted_tail,
            "messages read twice (left) must be exactly c1's uncommitted tail (right)"
        );
    }

    // The survivors committed everything before leaving.
    let offsets = &group_admin(&broker, &[&format!("offsets={group}:{topic}:{PARTITIONS}")])[0];
    for p in 0..PARTITIONS {
        assert_eq!(
            offsets["offsets"][p.to_string()],
            200,
            "committed offset of partition {p} after everything was consumed: {offsets}"
        );
    }
}
