//! One test (or a few) per controller duty, with the time passed in.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::*;
use crate::cluster::{TopicPartition, NO_LEADER};

type ElectResults = Vec<(TopicPartition, Result<i32, ResponseError>)>;

const EPOCH: i32 = 5;
const EPOCH_ZK_VERSION: i32 = 4;
const T0: i64 = 1_700_000_000_000;

fn live(ids: &[i32]) -> BTreeMap<i32, i64> {
    ids.iter().map(|&b| (b, 100 + i64::from(b))).collect()
}

fn record(id: u128, assignment: Vec<Vec<i32>>) -> TopicRecord {
    TopicRecord {
        id: Uuid::from_u128(id),
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

fn tp(topic: &str, partition: i32) -> TopicPartition {
    (topic.to_owned(), partition)
}

/// A controller in tests: checks the invariants after every event.
struct Harness {
    c: Controller,
}

impl Harness {
    fn elect(
        config: ControllerConfig,
        brokers: &[i32],
        topics: Vec<(&str, TopicRecord)>,
    ) -> (Self, Vec<Action>) {
        let mut h = Self {
            c: Controller::new(config),
        };
        let actions = h.handle(
            Event::Elected {
                controller_epoch: EPOCH,
                controller_epoch_zk_version: EPOCH_ZK_VERSION,
                brokers: live(brokers),
                topics: topics.into_iter().map(|(n, r)| (n.to_owned(), r)).collect(),
                deleting: BTreeSet::new(),
                shutting_down: BTreeMap::new(),
            },
            T0,
        );
        (h, actions)
    }

    fn handle(&mut self, event: Event, now_ms: i64) -> Vec<Action> {
        let actions = self.c.handle(event, now_ms);
        if let Err(e) = self.c.check_invariants() {
            panic!("invariant broken: {e}");
        }
        actions
    }

    fn brokers(&mut self, ids: &[i32]) -> Vec<Action> {
        self.handle(Event::BrokersChanged { brokers: live(ids) }, T0)
    }

    fn state(&self, topic: &str, p: i32) -> PartitionState {
        self.c
            .partition_state(topic, p)
            .cloned()
            .expect("partition has a state")
    }
}

fn writes(actions: &[Action]) -> Vec<StateWrite> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::WriteStates {
                controller_epoch_zk_version,
                writes,
            } => {
                assert_eq!(*controller_epoch_zk_version, EPOCH_ZK_VERSION);
                Some(writes.clone())
            }
            _ => None,
        })
        .flatten()
        .collect()
}

fn write_of(actions: &[Action], topic: &str, p: i32) -> Option<StateWrite> {
    writes(actions)
        .into_iter()
        .find(|w| w.topic == topic && w.partition == p)
}

/// Elected over `brokers`, with topic `t` created (states written).
fn with_topic(config: ControllerConfig, brokers: &[i32], assignment: Vec<Vec<i32>>) -> Harness {
    let (mut h, _) = Harness::elect(config, brokers, vec![]);
    let actions = h.handle(
        Event::TopicChanged {
            name: "t".into(),
            record: record(1, assignment),
        },
        T0,
    );
    assert!(!writes(&actions).is_empty());
    h
}

#[test]
fn inactive_controller_ignores_events() {
    let mut c = Controller::new(ControllerConfig::default());
    assert!(c.handle(Event::Tick, T0).is_empty());
    assert!(c
        .handle(
            Event::BrokersChanged {
                brokers: live(&[1])
            },
            T0
        )
        .is_empty());
    assert!(!c.is_active());
    assert_eq!(c.next_deadline_ms(), None);
}

#[test]
fn new_topic_gets_first_live_replica_as_leader() {
    let (mut h, actions) = Harness::elect(ControllerConfig::default(), &[1, 2, 3], vec![]);
    assert!(actions.is_empty());
    let actions = h.handle(
        Event::TopicChanged {
            name: "t".into(),
            record: record(1, vec![vec![1, 2], vec![2, 3], vec![3, 1]]),
        },
        T0,
    );
    let got = writes(&actions);
    assert_eq!(got.len(), 3);
    for (p, leader, isr) in [(0, 1, vec![1, 2]), (1, 2, vec![2, 3]), (2, 3, vec![3, 1])] {
        let w = &got[p];
        assert_eq!((w.topic.as_str(), w.partition), ("t", p as i32));
        assert_eq!(w.expected_zk_version, -1, "created");
        assert_eq!(
            w.state,
            PartitionState {
                leader,
                leader_epoch: 0,
                isr,
                controller_epoch: EPOCH,
                zk_version: 0
            }
        );
    }
}

#[test]
fn new_partition_skips_dead_replicas_and_waits_when_none_is_live() {
    let (mut h, _) = Harness::elect(ControllerConfig::default(), &[2], vec![]);
    let actions = h.handle(
        Event::TopicChanged {
            name: "t".into(),
            record: record(1, vec![vec![1, 2], vec![1, 3]]),
        },
        T0,
    );
    let w = write_of(&actions, "t", 0).expect("partition 0 elected");
    assert_eq!((w.state.leader, w.state.isr.clone()), (2, vec![2]));
    assert!(
        write_of(&actions, "t", 1).is_none(),
        "no live replica: no state yet"
    );
    assert!(h.c.partition_state("t", 1).is_none());

    let actions = h.brokers(&[2, 3]);
    let w = write_of(&actions, "t", 1).expect("elected once broker 3 is live");
    assert_eq!((w.state.leader, w.expected_zk_version), (3, -1));
}

#[test]
fn added_partitions_are_elected_and_existing_ones_untouched() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2], vec![vec![1, 2]]);
    let mut grown = record(1, vec![vec![1, 2], vec![2, 1]]);
    // The runtime read partition 0's state before the controller's write landed.
    grown.states[0] = None;
    let actions = h.handle(
        Event::TopicChanged {
            name: "t".into(),
            record: grown,
        },
        T0,
    );
    let got = writes(&actions);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].partition, got[0].state.leader), (1, 2));
    assert_eq!(h.state("t", 0).leader, 1);
}

#[test]
fn recreated_topic_with_new_id_starts_over() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2], vec![vec![1, 2]]);
    let actions = h.handle(
        Event::TopicChanged {
            name: "t".into(),
            record: record(2, vec![vec![2, 1]]),
        },
        T0,
    );
    let w = write_of(&actions, "t", 0).expect("new topic elected");
    assert_eq!((w.state.leader, w.expected_zk_version), (2, -1));
}

#[test]
fn leader_death_moves_leadership_in_assignment_order() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2, 3], vec![vec![1, 2, 3]]);
    let actions = h.brokers(&[2, 3]);
    let w = write_of(&actions, "t", 0).expect("re-elected");
    assert_eq!(w.expected_zk_version, 0);
    assert_eq!(
        w.state,
        PartitionState {
            leader: 2,
            leader_epoch: 1,
            isr: vec![2, 3],
            controller_epoch: EPOCH,
            zk_version: 1
        }
    );
}

#[test]
fn follower_death_shrinks_isr_without_new_leader_epoch() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2, 3], vec![vec![1, 2, 3]]);
    let actions = h.brokers(&[1, 3]);
    let w = write_of(&actions, "t", 0).expect("ISR shrunk");
    assert_eq!(
        (w.state.leader, w.state.leader_epoch, w.state.isr.clone()),
        (1, 0, vec![1, 3])
    );
}

#[test]
fn last_isr_member_death_leaves_partition_offline_until_it_returns() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2], vec![vec![1, 2]]);
    h.brokers(&[1]); // 2 leaves the ISR
    let actions = h.brokers(&[2]);
    let w = write_of(&actions, "t", 0).expect("leader gone");
    assert_eq!(
        (w.state.leader, w.state.isr.clone(), w.state.leader_epoch),
        (NO_LEADER, vec![1], 1)
    );

    // Broker 2 is live but out of the ISR: clean election cannot use it.
    assert!(writes(&h.brokers(&[2])).is_empty());
    let actions = h.brokers(&[1, 2]);
    let w = write_of(&actions, "t", 0).expect("ISR member back");
    assert_eq!(
        (w.state.leader, w.state.isr.clone(), w.state.leader_epoch),
        (1, vec![1], 2)
    );
}

#[test]
fn two_deaths_at_once_keep_one_isr_member() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2, 3], vec![vec![1, 2, 3]]);
    let actions = h.brokers(&[3]);
    let w = write_of(&actions, "t", 0).expect("re-elected");
    assert_eq!((w.state.leader, w.state.isr.clone()), (3, vec![3]));
    let actions = h.brokers(&[]);
    let w = write_of(&actions, "t", 0).expect("offline");
    assert_eq!((w.state.leader, w.state.isr.clone()), (NO_LEADER, vec![3]));
}

#[test]
fn bounced_leader_loses_leadership_to_isr_member() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2], vec![vec![1, 2]]);
    let mut restarted = live(&[1, 2]);
    restarted.insert(1, 999);
    let actions = h.handle(Event::BrokersChanged { brokers: restarted }, T0);
    let w = write_of(&actions, "t", 0).expect("re-elected");
    assert_eq!(
        (w.state.leader, w.state.isr.clone(), w.state.leader_epoch),
        (2, vec![2], 1)
    );
}

#[test]
fn bounced_sole_replica_leads_again_under_a_new_epoch() {
    let mut h = with_topic(ControllerConfig::default(), &[1], vec![vec![1]]);
    let mut restarted = live(&[1]);
    restarted.insert(1, 999);
    let actions = h.handle(Event::BrokersChanged { brokers: restarted }, T0);
    let got = writes(&actions);
    assert_eq!(got.len(), 1, "death and join make one write");
    assert_eq!(got[0].expected_zk_version, 0);
    assert_eq!((got[0].state.leader, got[0].state.zk_version), (1, 1));
    assert!(
        got[0].state.leader_epoch > 0,
        "the new incarnation gets a new epoch"
    );
}

#[test]
fn unclean_election_follows_topic_config_over_default() {
    let default_clean = ControllerConfig::default();
    let mut h = with_topic(default_clean.clone(), &[1, 2], vec![vec![1, 2]]);
    h.brokers(&[1]);
    h.brokers(&[]);
    // Without unclean election, live replica 2 (not in ISR) may not lead.
    assert!(writes(&h.brokers(&[2])).is_empty());
    let mut unclean = record(1, vec![vec![1, 2]]);
    unclean.unclean_leader_election = Some(true);
    let actions = h.handle(
        Event::TopicChanged {
            name: "t".into(),
            record: unclean,
        },
        T0,
    );
    let w = write_of(&actions, "t", 0).expect("unclean election");
    assert_eq!((w.state.leader, w.state.isr.clone()), (2, vec![2]));

    let default_unclean = ControllerConfig {
        unclean_leader_election_enable: true,
        ..ControllerConfig::default()
    };
    let (mut h, _) = Harness::elect(default_unclean, &[1, 2], vec![]);
    let mut clean = record(1, vec![vec![1, 2]]);
    clean.unclean_leader_election = Some(false);
    clean.states[0] = Some(state(1, 3, &[1], 7));
    h.handle(
        Event::TopicChanged {
            name: "t".into(),
            record: clean,
        },
        T0,
    );
    let actions = h.brokers(&[2]);
    let w = write_of(&actions, "t", 0).expect("leader gone");
    assert_eq!(w.state.leader, NO_LEADER, "topic override forbids unclean");
}

#[test]
fn deletion_is_immediate_retried_and_stops_elections() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2], vec![vec![1, 2]]);
    let actions = h.handle(Event::TopicDeletionRequested { name: "t".into() }, T0);
    assert_eq!(
        actions,
        vec![Action::DeleteTopic {
            name: "t".into(),
            controller_epoch_zk_version: EPOCH_ZK_VERSION
        }]
    );
    assert!(
        writes(&h.brokers(&[2])).is_empty(),
        "no election for a topic being deleted"
    );
    assert_eq!(h.c.next_deadline_ms(), Some(T0 + DELETE_TOPIC_RETRY_MS));
    assert!(h
        .handle(Event::Tick, T0 + DELETE_TOPIC_RETRY_MS - 1)
        .is_empty());
    let retry = h.handle(Event::Tick, T0 + DELETE_TOPIC_RETRY_MS);
    assert!(matches!(&retry[..], [Action::DeleteTopic { name, .. }] if name == "t"));
    h.handle(Event::TopicDeleted { name: "t".into() }, T0);
    assert!(h.c.partition_state("t", 0).is_none());
    let actions = h.handle(
        Event::ElectLeaders {
            request: 1,
            kind: ElectionKind::Preferred,
            partitions: Some(vec![tp("t", 0)]),
        },
        T0,
    );
    assert_eq!(
        actions,
        vec![Action::ElectLeadersDone {
            request: 1,
            results: vec![(tp("t", 0), Err(ResponseError::UnknownTopicOrPartition))]
        }]
    );
}

#[test]
fn deletion_of_an_unknown_topic_is_passed_on_once() {
    let (mut h, _) = Harness::elect(ControllerConfig::default(), &[1], vec![]);
    let actions = h.handle(Event::TopicDeletionRequested { name: "x".into() }, T0);
    assert!(matches!(&actions[..], [Action::DeleteTopic { name, .. }] if name == "x"));
    assert!(h.handle(Event::Tick, T0 + DELETE_TOPIC_RETRY_MS).is_empty());
}

fn elect(
    h: &mut Harness,
    kind: ElectionKind,
    partitions: Option<Vec<TopicPartition>>,
) -> (Vec<StateWrite>, ElectResults) {
    let actions = h.handle(
        Event::ElectLeaders {
            request: 7,
            kind,
            partitions,
        },
        T0,
    );
    let results = actions
        .iter()
        .find_map(|a| match a {
            Action::ElectLeadersDone {
                request: 7,
                results,
            } => Some(results.clone()),
            _ => None,
        })
        .expect("ElectLeaders is answered");
    assert!(
        matches!(actions.last(), Some(Action::ElectLeadersDone { .. })),
        "answer after writes"
    );
    (writes(&actions), results)
}

#[test]
fn preferred_election_results_and_errors() {
    let mut h = with_topic(
        ControllerConfig::default(),
        &[1, 2, 3],
        vec![vec![1, 2], vec![2, 3], vec![3, 1]],
    );
    // 1 restarts: partition 0 moves to 2; 1 is then out of every ISR.
    let mut restarted = live(&[1, 2, 3]);
    restarted.insert(1, 555);
    h.handle(
        Event::BrokersChanged {
            brokers: restarted.clone(),
        },
        T0,
    );
    assert_eq!(h.state("t", 0).leader, 2);
    let (w, results) = elect(
        &mut h,
        ElectionKind::Preferred,
        Some(vec![tp("t", 0), tp("t", 1), tp("t", 9), tp("u", 0)]),
    );
    assert!(w.is_empty());
    assert_eq!(
        results,
        vec![
            (tp("t", 0), Err(ResponseError::PreferredLeaderNotAvailable)),
            (tp("t", 1), Err(ResponseError::ElectionNotNeeded)),
            (tp("t", 9), Err(ResponseError::UnknownTopicOrPartition)),
            (tp("u", 0), Err(ResponseError::UnknownTopicOrPartition)),
        ]
    );
    // The leader re-admits 1 into the ISR (its own write, read back by the controller).
    let current = h.state("t", 0);
    let mut expanded = current.clone();
    expanded.isr = vec![2, 1];
    expanded.zk_version += 1;
    let actions = h.handle(
        Event::PartitionStateRead {
            after_failed_write: false,
            topic: "t".into(),
            partition: 0,
            state: Some(expanded.clone()),
        },
        T0,
    );
    assert!(writes(&actions).is_empty());
    let (w, results) = elect(&mut h, ElectionKind::Preferred, None);
    assert_eq!(
        results,
        vec![
            (tp("t", 0), Ok(1)),
            (tp("t", 1), Err(ResponseError::ElectionNotNeeded)),
            (tp("t", 2), Err(ResponseError::ElectionNotNeeded)),
        ]
    );
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].expected_zk_version, expanded.zk_version);
    assert_eq!(
        (
            w[0].state.leader,
            w[0].state.leader_epoch,
            w[0].state.isr.clone()
        ),
        (1, expanded.leader_epoch + 1, vec![2, 1])
    );
}

#[test]
fn unclean_election_on_request() {
    let mut h = with_topic(
        ControllerConfig::default(),
        &[1, 2],
        vec![vec![1, 2], vec![2, 1]],
    );
    h.brokers(&[1]);
    h.brokers(&[]);
    // Partition 0: ISR [1], leader -1. Partition 1: ISR [1], leader -1.
    let (w, results) = elect(&mut h, ElectionKind::Unclean, Some(vec![tp("t", 0)]));
    assert!(w.is_empty());
    assert_eq!(
        results,
        vec![(tp("t", 0), Err(ResponseError::EligibleLeadersNotAvailable))]
    );
    h.brokers(&[2]);
    let (w, results) = elect(
        &mut h,
        ElectionKind::Unclean,
        Some(vec![tp("t", 0), tp("t", 1)]),
    );
    assert_eq!(results, vec![(tp("t", 0), Ok(2)), (tp("t", 1), Ok(2))]);
    assert!(w.iter().all(|w| w.state.isr == vec![2]));
    let (_, results) = elect(&mut h, ElectionKind::Unclean, Some(vec![tp("t", 0)]));
    assert_eq!(
        results,
        vec![(tp("t", 0), Err(ResponseError::ElectionNotNeeded))]
    );
}

/// Topic `t` with 4 partitions preferring 1, 2, 1, 2 over brokers 1 and 2;
/// broker 1 restarted and came back into the ISRs, so 2 leads everything.
fn imbalanced(config: ControllerConfig) -> Harness {
    let mut h = with_topic(
        config,
        &[1, 2],
        vec![vec![1, 2], vec![2, 1], vec![1, 2], vec![2, 1]],
    );
    let mut restarted = live(&[1, 2]);
    restarted.insert(1, 777);
    h.handle(Event::BrokersChanged { brokers: restarted }, T0);
    for p in 0..4 {
        let mut s = h.state("t", p);
        assert_eq!(s.leader, 2);
        s.isr = vec![2, 1];
        s.zk_version += 1;
        h.handle(
            Event::PartitionStateRead {
                after_failed_write: false,
                topic: "t".into(),
                partition: p,
                state: Some(s),
            },
            T0,
        );
    }
    h
}

#[test]
fn auto_rebalance_runs_on_tick_after_the_interval() {
    let config = ControllerConfig::default();
    let interval = config.leader_imbalance_check_interval_ms;
    let mut h = imbalanced(config);
    assert_eq!(h.c.next_deadline_ms(), Some(T0 + interval));
    assert!(h.handle(Event::Tick, T0 + interval - 1).is_empty());
    let actions = h.handle(Event::Tick, T0 + interval);
    let got = writes(&actions);
    assert_eq!(
        got.iter()
            .map(|w| (w.partition, w.state.leader))
            .collect::<Vec<_>>(),
        vec![(0, 1), (2, 1)]
    );
    assert_eq!(h.c.next_deadline_ms(), Some(T0 + 2 * interval));
}

#[test]
fn auto_rebalance_respects_switch_and_threshold() {
    let off = ControllerConfig {
        auto_leader_rebalance_enable: false,
        ..ControllerConfig::default()
    };
    let mut h = imbalanced(off);
    assert_eq!(h.c.next_deadline_ms(), None);
    assert!(h.handle(Event::Tick, T0 + 10 * 300_000).is_empty());

    // Broker 1 prefers 2 partitions, both led elsewhere: 100% imbalance; a
    // threshold of 100% is not exceeded.
    let lenient = ControllerConfig {
        leader_imbalance_per_broker_percentage: 100,
        ..ControllerConfig::default()
    };
    let mut h = imbalanced(lenient);
    assert!(h.handle(Event::Tick, T0 + 300_000).is_empty());
}

#[test]
fn controlled_shutdown_moves_leaderships_and_reports_the_rest() {
    let mut h = with_topic(
        ControllerConfig::default(),
        &[1, 2, 3],
        vec![vec![1, 2, 3], vec![2, 1], vec![1]],
    );
    let epoch_1 = live(&[1])[&1];
    let actions = h.handle(
        Event::ControlledShutdown {
            broker: 1,
            broker_epoch: epoch_1,
        },
        T0,
    );
    let got = writes(&actions);
    let by_p: BTreeMap<i32, &StateWrite> = got.iter().map(|w| (w.partition, w)).collect();
    assert_eq!(
        (
            by_p[&0].state.leader,
            by_p[&0].state.isr.clone(),
            by_p[&0].state.leader_epoch
        ),
        (2, vec![2, 3], 1)
    );
    assert_eq!(
        (
            by_p[&1].state.leader,
            by_p[&1].state.isr.clone(),
            by_p[&1].state.leader_epoch
        ),
        (2, vec![2], 0)
    );
    assert!(!by_p.contains_key(&2), "RF 1: nowhere to move");
    assert_eq!(
        actions.last(),
        Some(&Action::ControlledShutdownDone {
            broker: 1,
            broker_epoch: epoch_1,
            result: Ok(vec![tp("t", 2)])
        })
    );

    // Broker 1 (still alive) is not elected while shutting down.
    let (w, results) = elect(&mut h, ElectionKind::Preferred, Some(vec![tp("t", 0)]));
    assert!(w.is_empty());
    assert_eq!(
        results,
        vec![(tp("t", 0), Err(ResponseError::PreferredLeaderNotAvailable))]
    );

    // A stale request is refused.
    let actions = h.handle(
        Event::ControlledShutdown {
            broker: 2,
            broker_epoch: 1,
        },
        T0,
    );
    assert_eq!(
        actions,
        vec![Action::ControlledShutdownDone {
            broker: 2,
            broker_epoch: 1,
            result: Err(ResponseError::StaleBrokerEpoch)
        }]
    );

    // Once 1 restarts it may lead again: partition 2 (RF 1) is re-elected.
    let mut restarted = live(&[1, 2, 3]);
    restarted.insert(1, 4242);
    let actions = h.handle(Event::BrokersChanged { brokers: restarted }, T0);
    let w = write_of(&actions, "t", 2).expect("re-elected under the new epoch");
    assert_eq!(w.state.leader, 1);
}

#[test]
fn shutting_down_broker_is_skipped_when_another_leader_dies() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2, 3], vec![vec![2, 1, 3]]);
    let epoch_1 = live(&[1])[&1];
    // 1 asks to shut down while being a follower: it leaves the ISR.
    let actions = h.handle(
        Event::ControlledShutdown {
            broker: 1,
            broker_epoch: epoch_1,
        },
        T0,
    );
    assert_eq!(
        write_of(&actions, "t", 0).map(|w| w.state.isr),
        Some(vec![2, 3])
    );
    let actions = h.brokers(&[1, 3]);
    assert_eq!(write_of(&actions, "t", 0).map(|w| w.state.leader), Some(3));
}

#[test]
fn failed_write_is_repaired_from_the_state_read_back() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2, 3], vec![vec![1, 2, 3]]);
    // The leader shrank the ISR to [1] behind the controller's back (version 1).
    // Then 1 dies: the controller's write (expecting version 0) fails.
    let actions = h.brokers(&[2, 3]);
    assert_eq!(
        write_of(&actions, "t", 0).map(|w| w.expected_zk_version),
        Some(0)
    );
    let real = PartitionState {
        leader: 1,
        leader_epoch: 0,
        isr: vec![1],
        controller_epoch: EPOCH,
        zk_version: 1,
    };
    let actions = h.handle(
        Event::PartitionStateRead {
            after_failed_write: true,
            topic: "t".into(),
            partition: 0,
            state: Some(real),
        },
        T0,
    );
    let w = write_of(&actions, "t", 0).expect("re-elected from the real state");
    assert_eq!(w.expected_zk_version, 1);
    assert_eq!(
        (w.state.leader, w.state.isr.clone(), w.state.leader_epoch),
        (NO_LEADER, vec![1], 1)
    );
}

#[test]
fn missing_state_read_back_is_created_again() {
    let mut h = with_topic(ControllerConfig::default(), &[1], vec![vec![1]]);
    let actions = h.handle(
        Event::PartitionStateRead {
            after_failed_write: true,
            topic: "t".into(),
            partition: 0,
            state: None,
        },
        T0,
    );
    assert_eq!(
        write_of(&actions, "t", 0).map(|w| w.expected_zk_version),
        Some(-1)
    );
    // Unknown topics and partitions are ignored.
    assert!(h
        .handle(
            Event::PartitionStateRead {
                after_failed_write: true,
                topic: "t".into(),
                partition: 3,
                state: None
            },
            T0
        )
        .is_empty());
    assert!(h
        .handle(
            Event::PartitionStateRead {
                after_failed_write: true,
                topic: "u".into(),
                partition: 0,
                state: None
            },
            T0
        )
        .is_empty());
}

#[test]
fn deposed_controller_resigns() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2], vec![vec![1, 2]]);
    assert_eq!(h.handle(Event::Fenced, T0), vec![Action::Resign]);
    assert!(!h.c.is_active());
    assert!(
        h.brokers(&[2]).is_empty(),
        "a resigned controller does nothing"
    );

    let mut h = with_topic(ControllerConfig::default(), &[1, 2], vec![vec![1, 2]]);
    let mut newer = h.state("t", 0);
    newer.controller_epoch = EPOCH + 1;
    let actions = h.handle(
        Event::PartitionStateRead {
            after_failed_write: true,
            topic: "t".into(),
            partition: 0,
            state: Some(newer),
        },
        T0,
    );
    assert_eq!(actions, vec![Action::Resign]);
    assert_eq!(h.c.controller_epoch(), None);
}

#[test]
fn many_writes_are_split_into_bounded_multis() {
    let partitions = STATE_WRITES_PER_MULTI_MAX * 2 + 1;
    let (mut h, _) = Harness::elect(ControllerConfig::default(), &[1], vec![]);
    let actions = h.handle(
        Event::TopicChanged {
            name: "t".into(),
            record: record(1, vec![vec![1]; partitions]),
        },
        T0,
    );
    let sizes: Vec<usize> = actions
        .iter()
        .map(|a| match a {
            Action::WriteStates { writes, .. } => writes.len(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        sizes,
        vec![STATE_WRITES_PER_MULTI_MAX, STATE_WRITES_PER_MULTI_MAX, 1]
    );
}

#[test]
fn election_takes_over_where_the_previous_controller_left() {
    let mut offline = record(1, vec![vec![1, 2, 3], vec![2, 1], vec![1, 2]]);
    offline.states = vec![
        Some(state(3, 4, &[3], 9)),    // led by a dead broker, alone in the ISR
        Some(state(2, 1, &[2, 1], 2)), // fine
        None,                          // never elected
    ];
    let (mut h, actions) =
        Harness::elect(ControllerConfig::default(), &[1, 2], vec![("t", offline)]);
    let got = writes(&actions);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (
            got[0].partition,
            got[0].expected_zk_version,
            got[0].state.leader,
            got[0].state.leader_epoch
        ),
        (0, 9, NO_LEADER, 5)
    );
    assert_eq!(
        (
            got[1].partition,
            got[1].expected_zk_version,
            got[1].state.leader
        ),
        (2, -1, 1)
    );

    let mut c = Controller::new(ControllerConfig::default());
    let epoch_2 = live(&[2])[&2];
    let actions = c.handle(
        Event::Elected {
            controller_epoch: EPOCH,
            controller_epoch_zk_version: EPOCH_ZK_VERSION,
            brokers: live(&[1, 2]),
            topics: [("t".to_owned(), record(1, vec![vec![2, 1]]))].into(),
            deleting: ["gone".to_owned()].into(),
            shutting_down: [(2, epoch_2), (1, 1)].into(),
        },
        T0,
    );
    c.check_invariants().expect("invariants hold");
    let w = writes(&actions);
    assert_eq!(
        (w[0].state.leader, w[0].state.isr.clone()),
        (1, vec![1]),
        "2 is shutting down"
    );
    assert!(actions.contains(&Action::DeleteTopic {
        name: "gone".into(),
        controller_epoch_zk_version: EPOCH_ZK_VERSION
    }));
    assert!(actions.contains(&Action::ControlledShutdownDone {
        broker: 2,
        broker_epoch: epoch_2,
        result: Ok(vec![])
    }));
    h.brokers(&[1, 2]);
}

#[test]
fn restarted_leader_read_back_after_a_failed_write_is_not_trusted() {
    // Found by the model: the leader shrank the ISR to itself (unseen), then
    // restarted; the controller's election of 3 failed on the version check,
    // and the state read back names the restarted broker as leader in its
    // old epoch.
    let mut h = with_topic(ControllerConfig::default(), &[1, 2, 3], vec![vec![2, 3]]);
    let mut restarted = live(&[1, 2, 3]);
    restarted.insert(2, 999);
    let actions = h.handle(Event::BrokersChanged { brokers: restarted }, T0);
    assert_eq!(write_of(&actions, "t", 0).map(|w| w.state.leader), Some(3));
    let real = PartitionState {
        leader: 2,
        leader_epoch: 0,
        isr: vec![2],
        controller_epoch: EPOCH,
        zk_version: 1,
    };
    let actions = h.handle(
        Event::PartitionStateRead {
            after_failed_write: true,
            topic: "t".into(),
            partition: 0,
            state: Some(real),
        },
        T0,
    );
    let w = write_of(&actions, "t", 0).expect("elected again");
    assert_eq!(w.expected_zk_version, 1);
    assert_eq!(
        (w.state.leader, w.state.leader_epoch),
        (2, 1),
        "the new incarnation, in a new epoch"
    );
}

#[test]
fn controlled_shutdown_whose_write_failed_is_redone_on_read_back() {
    let mut h = with_topic(ControllerConfig::default(), &[1, 2], vec![vec![1, 2]]);
    let epoch_1 = live(&[1])[&1];
    let actions = h.handle(
        Event::ControlledShutdown {
            broker: 1,
            broker_epoch: epoch_1,
        },
        T0,
    );
    assert_eq!(write_of(&actions, "t", 0).map(|w| w.state.leader), Some(2));
    // The write failed: the leader had re-written the ISR (version 1).
    let real = PartitionState {
        leader: 1,
        leader_epoch: 0,
        isr: vec![1, 2],
        controller_epoch: EPOCH,
        zk_version: 1,
    };
    let actions = h.handle(
        Event::PartitionStateRead {
            after_failed_write: true,
            topic: "t".into(),
            partition: 0,
            state: Some(real),
        },
        T0,
    );
    let w = write_of(&actions, "t", 0).expect("moved again");
    assert_eq!(
        (
            w.expected_zk_version,
            w.state.leader,
            w.state.isr.clone(),
            w.state.leader_epoch
        ),
        (1, 2, vec![2], 1)
    );
}

#[test]
fn restarted_follower_in_an_isr_read_back_is_removed_again() {
    // 2 restarts; the controller removes it from the ISR, but the write fails
    // (the leader had just written the ISR). The ISR read back lists 2's
    // previous incarnation: it goes again. A later ISR change by the leader
    // (not a read-back) that lists 2 is accepted.
    let mut h = with_topic(ControllerConfig::default(), &[1, 2, 3], vec![vec![1, 2, 3]]);
    let mut restarted = live(&[1, 2, 3]);
    restarted.insert(2, 999);
    let actions = h.handle(Event::BrokersChanged { brokers: restarted }, T0);
    assert_eq!(
        write_of(&actions, "t", 0).map(|w| w.state.isr),
        Some(vec![1, 3])
    );
    let read_back = PartitionState {
        leader: 1,
        leader_epoch: 0,
        isr: vec![1, 2],
        controller_epoch: EPOCH,
        zk_version: 1,
    };
    let actions = h.handle(
        Event::PartitionStateRead {
            topic: "t".into(),
            partition: 0,
            state: Some(read_back),
            after_failed_write: true,
        },
        T0,
    );
    let w = write_of(&actions, "t", 0).expect("2 removed again");
    assert_eq!(
        (
            w.expected_zk_version,
            w.state.leader,
            w.state.isr.clone(),
            w.state.leader_epoch
        ),
        (1, 1, vec![1], 0)
    );

    h.handle(Event::Tick, T0);
    let readmitted = PartitionState {
        leader: 1,
        leader_epoch: 0,
        isr: vec![1, 2],
        controller_epoch: EPOCH,
        zk_version: 3,
    };
    let actions = h.handle(
        Event::PartitionStateRead {
            topic: "t".into(),
            partition: 0,
            state: Some(readmitted),
            after_failed_write: false,
        },
        T0,
    );
    assert!(writes(&actions).is_empty());
    assert_eq!(h.state("t", 0).isr, vec![1, 2]);
}
