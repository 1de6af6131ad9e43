//! Partition reassignment on the controller state machine: the steps in
//! order, the invariants after every step (the harness checks the
//! controller's own after every event), cancellation, refusals, failed writes
//! and a controller failover mid-reassignment.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::*;
use crate::cluster::znodes::TopicAssignment;
use crate::cluster::TopicPartition;

const EPOCH: i32 = 7;
const EPOCH_ZK_VERSION: i32 = 6;
const T0: i64 = 1_700_000_000_000;

fn live(ids: &[i32]) -> BTreeMap<i32, i64> {
    ids.iter().map(|&b| (b, 100 + i64::from(b))).collect()
}

fn record(assignment: Vec<Vec<i32>>) -> TopicRecord {
    TopicRecord {
        id: Uuid::from_u128(9),
        states: vec![None; assignment.len()],
        assignment,
        unclean_leader_election: None,
        zk_version: 0,
        adding_replicas: BTreeMap::new(),
        removing_replicas: BTreeMap::new(),
    }
}

fn state(leader: i32, leader_epoch: i32, isr: &[i32], zk_version: i32) -> PartitionState {
    PartitionState {
        leader,
        leader_epoch,
        isr: isr.to_vec(),
        controller_epoch: EPOCH - 1,
        zk_version,
    }
}

/// A partition (by topic name) and its target replicas (`None`: cancel).
type Change<'a> = ((&'a str, i32), Option<Vec<i32>>);

struct Harness {
    c: Controller,
}

impl Harness {
    fn elect(brokers: &[i32], topics: Vec<(&str, TopicRecord)>) -> (Self, Vec<Action>) {
        let mut h = Self {
            c: Controller::new(ControllerConfig::default()),
        };
        let actions = h.handle(Event::Elected {
            controller_epoch: EPOCH,
            controller_epoch_zk_version: EPOCH_ZK_VERSION,
            brokers: live(brokers),
            topics: topics.into_iter().map(|(n, r)| (n.to_owned(), r)).collect(),
            deleting: BTreeSet::new(),
            shutting_down: BTreeMap::new(),
        });
        (h, actions)
    }

    /// Elected over brokers 1..=4 with topic `t` on [1, 2, 3], led by 1 in
    /// epoch 3 with the whole ISR, its state znode at version 5.
    fn on_123() -> Self {
        let mut t = record(vec![vec![1, 2, 3]]);
        t.states = vec![Some(state(1, 3, &[1, 2, 3], 5))];
        let (h, actions) = Self::elect(&[1, 2, 3, 4], vec![("t", t)]);
        assert!(actions.is_empty(), "nothing to do: {actions:?}");
        h
    }

    fn handle(&mut self, event: Event) -> Vec<Action> {
        let actions = self.c.handle(event, T0);
        if let Err(e) = self.c.check_invariants() {
            panic!("invariant broken: {e}");
        }
        actions
    }

    fn alter(&mut self, changes: Vec<Change<'_>>) -> Vec<Action> {
        self.handle(Event::AlterReassignments {
            request: 1,
            changes: changes
                .into_iter()
                .map(|((t, p), target)| ((t.to_owned(), p), target))
                .collect(),
        })
    }

    /// The leader changed the ISR (its own conditional write) and the
    /// controller read it back.
    fn leader_sets_isr(&mut self, isr: &[i32]) -> Vec<Action> {
        let current = self.c.partition_state("t", 0).cloned().expect("has state");
        let new = PartitionState {
            isr: isr.to_vec(),
            zk_version: current.zk_version + 1,
            ..current
        };
        self.handle(Event::PartitionStateRead {
            topic: "t".into(),
            partition: 0,
            state: Some(new),
            after_failed_write: false,
        })
    }

    fn state(&self) -> PartitionState {
        self.c.partition_state("t", 0).cloned().expect("has state")
    }
}

/// The one topic write of `actions`: its znode, expected version and states.
fn topic_write(actions: &[Action]) -> (TopicAssignment, i32, Vec<StateWrite>) {
    let found: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::WriteTopic {
                controller_epoch_zk_version,
                assignment,
                states,
            } => {
                assert_eq!(
                    *controller_epoch_zk_version, EPOCH_ZK_VERSION,
                    "written under this controller's epoch"
                );
                Some((
                    assignment.assignment.clone(),
                    assignment.expected_zk_version,
                    states.clone(),
                ))
            }
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "one topic write in {actions:?}");
    found.into_iter().next().expect("one")
}

fn no_topic_write(actions: &[Action]) -> bool {
    !actions
        .iter()
        .any(|a| matches!(a, Action::WriteTopic { .. }))
}

fn answer(actions: &[Action]) -> Vec<(TopicPartition, Result<(), ResponseError>)> {
    actions
        .iter()
        .find_map(|a| match a {
            Action::AlterReassignmentsDone { results, .. } => Some(results.clone()),
            _ => None,
        })
        .expect("answered")
}

fn map(entries: &[(i32, &[i32])]) -> BTreeMap<i32, Vec<i32>> {
    entries.iter().map(|(p, l)| (*p, l.to_vec())).collect()
}

#[test]
fn reassignment_steps_in_order() {
    let mut h = Harness::on_123();

    // Start: RS = TRS + ORS, adding 4, removing 1, a new leader epoch for the
    // same leader and ISR, written with the topic znode in one multi.
    let actions = h.alter(vec![(("t", 0), Some(vec![2, 3, 4]))]);
    let (znode, expected, states) = topic_write(&actions);
    assert_eq!(znode.partitions, vec![vec![2, 3, 4, 1]]);
    assert_eq!(znode.adding_replicas, map(&[(0, &[4])]));
    assert_eq!(znode.removing_replicas, map(&[(0, &[1])]));
    assert_eq!(znode.topic_id, Some(Uuid::from_u128(9)));
    assert_eq!(expected, 0);
    assert_eq!(states.len(), 1);
    assert_eq!(
        (
            states[0].state.leader,
            states[0].state.leader_epoch,
            &states[0].state.isr
        ),
        (1, 4, &vec![1, 2, 3])
    );
    assert_eq!(answer(&actions), vec![(("t".into(), 0), Ok(()))]);
    assert_eq!(
        h.c.reassignments(),
        vec![OngoingReassignment {
            topic: "t".into(),
            partition: 0,
            replicas: vec![2, 3, 4, 1],
            adding: vec![4],
            removing: vec![1],
        }]
    );

    // A follower drops out and back: not all of the target in the ISR yet.
    assert!(no_topic_write(&h.leader_sets_isr(&[1, 2])));
    assert!(no_topic_write(&h.leader_sets_isr(&[1, 2, 3])));
    assert_eq!(h.c.reassignments().len(), 1);

    // The new replica caught up: the leader (being removed) hands over to
    // the first target replica in the ISR, the ISR and replicas shrink to
    // the target, a new leader epoch; all in one multi.
    let before = h.state();
    let actions = h.leader_sets_isr(&[1, 2, 3, 4]);
    let (znode, expected, states) = topic_write(&actions);
    assert_eq!(znode.partitions, vec![vec![2, 3, 4]]);
    assert!(znode.adding_replicas.is_empty() && znode.removing_replicas.is_empty());
    assert_eq!(expected, 1, "over the controller's own first write");
    assert_eq!(states.len(), 1);
    let s = &states[0].state;
    assert_eq!((s.leader, &s.isr), (2, &vec![2, 3, 4]));
    assert_eq!(s.leader_epoch, before.leader_epoch + 1);
    assert_eq!(states[0].expected_zk_version, before.zk_version + 1);
    assert!(h.c.reassignments().is_empty());
    assert_eq!(h.c.replicas("t", 0), Some(&[2, 3, 4][..]));
}

#[test]
fn leader_in_the_target_keeps_leading() {
    let mut h = Harness::on_123();
    h.alter(vec![(("t", 0), Some(vec![1, 4]))]);
    let actions = h.leader_sets_isr(&[1, 2, 3, 4]);
    let (znode, _, states) = topic_write(&actions);
    assert_eq!(znode.partitions, vec![vec![1, 4]]);
    assert_eq!(
        (states[0].state.leader, &states[0].state.isr),
        (1, &vec![1, 4])
    );
    assert_eq!(
        states[0].state.leader_epoch, 5,
        "3, +1 at the start, +1 at the end"
    );
}

#[test]
fn a_target_already_in_sync_completes_at_once() {
    let mut h = Harness::on_123();
    let actions = h.alter(vec![(("t", 0), Some(vec![3, 2]))]);
    let (znode, expected, states) = topic_write(&actions);
    assert_eq!(znode.partitions, vec![vec![3, 2]]);
    assert!(znode.adding_replicas.is_empty() && znode.removing_replicas.is_empty());
    assert_eq!(expected, 0, "one write for both steps");
    assert_eq!(
        states[0].state.leader, 3,
        "1 leaves; 3 is the target's first"
    );
    assert_eq!(states[0].state.isr, vec![2, 3]);
    assert!(h.c.reassignments().is_empty());
}

#[test]
fn cancellation_reverts_to_the_original_replicas() {
    let mut h = Harness::on_123();
    h.alter(vec![(("t", 0), Some(vec![2, 3, 4]))]);
    // 4 even joined the ISR of a reassignment that cannot complete (3 died).
    h.handle(Event::BrokersChanged {
        brokers: live(&[1, 2, 4]),
    });
    let actions = h.leader_sets_isr(&[1, 2, 4]);
    assert!(no_topic_write(&actions), "3 is out of the ISR");

    let actions = h.alter(vec![(("t", 0), None)]);
    let (znode, expected, states) = topic_write(&actions);
    // The original replicas in RS order, as Kafka's `originalReplicas` (RS - adding).
    assert_eq!(znode.partitions, vec![vec![2, 3, 1]]);
    assert!(znode.adding_replicas.is_empty() && znode.removing_replicas.is_empty());
    assert_eq!(expected, 1);
    assert_eq!(states[0].state.leader, 1);
    assert_eq!(
        states[0].state.isr,
        vec![1, 2],
        "the added replica leaves the ISR"
    );
    assert_eq!(answer(&actions), vec![(("t".into(), 0), Ok(()))]);
    assert!(h.c.reassignments().is_empty());

    // Nothing left to cancel.
    let actions = h.alter(vec![(("t", 0), None)]);
    assert!(no_topic_write(&actions));
    assert_eq!(
        answer(&actions),
        vec![(
            ("t".into(), 0),
            Err(ResponseError::NoReassignmentInProgress)
        )]
    );
}

#[test]
fn cancelling_when_an_added_replica_leads_elects_an_original_one() {
    // A reassignment from [1, 2] to [4, 3] whose added replica ended up
    // leading (3 is out of the ISR, so it has not completed), then cancelled.
    let ongoing = |isr: &[i32]| {
        let mut t = record(vec![vec![4, 3, 1, 2]]);
        t.zk_version = 3;
        t.adding_replicas = map(&[(0, &[4, 3])]);
        t.removing_replicas = map(&[(0, &[1, 2])]);
        t.states = vec![Some(state(4, 8, isr, 9))];
        t
    };
    let (mut h, actions) = Harness::elect(&[1, 3, 4], vec![("t", ongoing(&[4, 1]))]);
    assert!(no_topic_write(&actions), "3 is not in the ISR");
    let actions = h.alter(vec![(("t", 0), None)]);
    let (znode, expected, states) = topic_write(&actions);
    assert_eq!(znode.partitions, vec![vec![1, 2]]);
    assert_eq!(expected, 3);
    let s = &states[0].state;
    assert_eq!((s.leader, &s.isr), (1, &vec![1]), "4 is out; 1 takes over");
    assert!(s.leader_epoch > 8);

    // With no original replica in sync, a cancellation would leave the
    // partition without an in-sync replica: refused.
    let (mut h, _) = Harness::elect(&[1, 3, 4], vec![("t", ongoing(&[4]))]);
    let actions = h.alter(vec![(("t", 0), None)]);
    assert!(no_topic_write(&actions));
    assert_eq!(
        answer(&actions),
        vec![(
            ("t".into(), 0),
            Err(ResponseError::InvalidReplicaAssignment)
        )]
    );
    assert_eq!(h.c.reassignments().len(), 1, "still going");
}

#[test]
fn refusals() {
    let mut h = Harness::on_123();
    let actions = h.alter(vec![
        (("nope", 0), Some(vec![1])),
        (("t", 1), Some(vec![1])),
        (("t", -1), Some(vec![1])),
        (("t", 0), Some(vec![])),
        (("t", 0), Some(vec![2, 2])),
        (("t", 0), Some(vec![2, 9])),
    ]);
    assert!(no_topic_write(&actions));
    let errors: Vec<_> = answer(&actions).into_iter().map(|(_, r)| r).collect();
    use ResponseError::*;
    assert_eq!(
        errors,
        vec![
            Err(UnknownTopicOrPartition),
            Err(UnknownTopicOrPartition),
            Err(UnknownTopicOrPartition),
            Err(InvalidReplicaAssignment),
            Err(InvalidReplicaAssignment),
            Err(InvalidReplicaAssignment),
        ]
    );
    // The same target as now: accepted, nothing to write.
    let actions = h.alter(vec![(("t", 0), Some(vec![1, 2, 3]))]);
    assert!(no_topic_write(&actions));
    assert_eq!(answer(&actions), vec![(("t".into(), 0), Ok(()))]);
}

#[test]
fn a_new_controller_resumes_from_the_znodes() {
    // The old controller wrote the first step and died; meanwhile the leader
    // took 4 into the ISR.
    let ongoing = |isr: &[i32]| {
        let mut t = record(vec![vec![2, 3, 4, 1]]);
        t.zk_version = 1;
        t.adding_replicas = map(&[(0, &[4])]);
        t.removing_replicas = map(&[(0, &[1])]);
        t.states = vec![Some(state(1, 4, isr, 6))];
        t
    };
    let (h, actions) = Harness::elect(&[1, 2, 3, 4], vec![("t", ongoing(&[1, 2, 3]))]);
    assert!(actions.is_empty(), "not in sync yet: {actions:?}");
    assert_eq!(h.c.reassignments().len(), 1, "listed by the new controller");

    let (_, actions) = Harness::elect(&[1, 2, 3, 4], vec![("t", ongoing(&[1, 2, 3, 4]))]);
    let (znode, expected, states) = topic_write(&actions);
    assert_eq!(znode.partitions, vec![vec![2, 3, 4]]);
    assert_eq!(expected, 1);
    assert_eq!(
        (
            states[0].state.leader,
            states[0].state.leader_epoch,
            states[0].state.controller_epoch
        ),
        (2, 5, EPOCH)
    );
}

#[test]
fn leader_death_mid_reassignment_then_completion() {
    let mut h = Harness::on_123();
    h.alter(vec![(("t", 0), Some(vec![2, 3, 4]))]);
    let actions = h.handle(Event::BrokersChanged {
        brokers: live(&[2, 3, 4]),
    });
    assert!(no_topic_write(&actions));
    let s = h.state();
    assert_eq!((s.leader, &s.isr), (2, &vec![2, 3]));
    // 4 catches up with the new leader: complete; 1 (dead) is dropped.
    let actions = h.leader_sets_isr(&[2, 3, 4]);
    let (znode, _, states) = topic_write(&actions);
    assert_eq!(znode.partitions, vec![vec![2, 3, 4]]);
    assert_eq!(states[0].state.leader, 2);
}

#[test]
fn a_failed_topic_write_is_redone_over_what_was_read_back() {
    let mut h = Harness::on_123();
    h.alter(vec![(("t", 0), Some(vec![2, 3, 4]))]);
    // The write lost a race with CreatePartitions (version 1, a partition
    // more); nothing of it landed.
    let mut back = record(vec![vec![1, 2, 3], vec![2, 3, 4]]);
    back.zk_version = 1;
    back.states = vec![Some(state(1, 3, &[1, 2, 3], 5)), None];
    let actions = h.handle(Event::TopicReadBack {
        name: "t".into(),
        record: Some(back),
    });
    let (znode, expected, states) = topic_write(&actions);
    assert_eq!(znode.partitions, vec![vec![2, 3, 4, 1], vec![2, 3, 4]]);
    assert_eq!(znode.adding_replicas, map(&[(0, &[4])]));
    assert_eq!(expected, 1);
    let partitions: Vec<i32> = states.iter().map(|w| w.partition).collect();
    assert_eq!(
        partitions,
        vec![0, 1],
        "the epoch bump and the new partition's first state"
    );
    assert_eq!(states[0].state.leader_epoch, 4);
    assert_eq!(h.c.reassignments().len(), 1);
}

#[test]
fn a_stale_topic_record_does_not_undo_the_controllers_write() {
    let mut h = Harness::on_123();
    h.alter(vec![(("t", 0), Some(vec![2, 3, 4]))]);
    // A record read before the controller's write, fed after it.
    let mut old = record(vec![vec![1, 2, 3]]);
    old.states = vec![Some(state(1, 3, &[1, 2, 3], 5))];
    let actions = h.handle(Event::TopicChanged {
        name: "t".into(),
        record: old,
    });
    assert!(no_topic_write(&actions));
    assert_eq!(h.c.replicas("t", 0), Some(&[2, 3, 4, 1][..]));
    assert_eq!(h.c.reassignments().len(), 1);
}

#[test]
fn a_deposed_controller_resigns_on_its_topic_write() {
    let mut h = Harness::on_123();
    h.alter(vec![(("t", 0), Some(vec![2, 3, 4]))]);
    let actions = h.handle(Event::Fenced);
    assert_eq!(actions, vec![Action::Resign]);
    assert!(h.c.reassignments().is_empty(), "inactive");
}
