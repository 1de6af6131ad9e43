//! Random runs of the controller against a model of ZooKeeper.
//!
//! The model keeps what the znodes would hold: live brokers with their epochs,
//! topics with assignments and partition state znodes (with versions), pending
//! deletion and controlled-shutdown requests, and `/controller_epoch` with its
//! version. It plays the runtime: it feeds events, executes the controller's
//! actions as `multi`s (the `/controller_epoch` check first, then every
//! expected version), and feeds back failures as the runtime must
//! (`Fenced`, or one `PartitionStateRead` per partition of the failed write),
//! until nothing is left to do. It also plays partition leaders changing
//! their ISR behind the controller's back, and controller failovers that
//! leave a deposed controller behind.
//!
//! Checked on every accepted write: a partition's leader epoch never
//! decreases and never repeats with a different leader; only the controller
//! holding the current epoch gets writes accepted, stamped with that epoch.
//! Checked after every step, once all feedback is processed, for every
//! partition of a topic not being deleted: the ISR is non-empty, within the
//! assignment, without duplicates; the leader is -1 or an assigned, live ISR
//! member; a leaderless partition has no replica that may lead (live, not
//! shutting down, in the ISR, or anywhere in the assignment when unclean
//! election is allowed); a partition without state has no replica that may
//! lead. ("Live" is the model's truth, which the controller hears about in the
//! same step, so no state may predate a death once the step is done.) The
//! controller's own `check_invariants` holds after every event.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::cluster::assignment;
use crate::cluster::NO_LEADER;

const BROKER_IDS: std::ops::RangeInclusive<i32> = 1..=5;
/// A step whose feedback does not settle within this many events is a livelock.
const EVENTS_PER_STEP_MAX: usize = 10_000;

#[derive(Debug, Clone)]
enum Op {
    Join(i32),
    Die(i32),
    Bounce(i32),
    CreateTopic {
        partitions: i32,
        replication_factor: i32,
        start: usize,
        shift: usize,
        unclean: Option<bool>,
    },
    AddPartitions {
        topic: usize,
        added: i32,
    },
    DeleteTopic {
        topic: usize,
        first_attempt_fails: bool,
    },
    ControlledShutdown {
        broker: i32,
        stale: bool,
    },
    Elect {
        preferred: bool,
        all: bool,
        topic: usize,
        partition: i32,
    },
    Tick {
        advance_ms: i64,
    },
    IsrChange {
        topic: usize,
        partition: usize,
        expand: bool,
        notify: bool,
    },
    Reassign {
        topic: usize,
        partition: usize,
        /// Target: `replicas` brokers from `start` (wrapping over 1..=5);
        /// `None` cancels.
        target: Option<(i32, i32)>,
    },
    Failover,
    DeposedActs {
        which: usize,
        event: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let broker = BROKER_IDS;
    prop_oneof![
        3 => broker.clone().prop_map(Op::Join),
        3 => broker.clone().prop_map(Op::Die),
        2 => broker.clone().prop_map(Op::Bounce),
        3 => (1i32..5, 1i32..4, 0usize..5, 0usize..5, proptest::option::of(any::<bool>())).prop_map(
            |(partitions, replication_factor, start, shift, unclean)| Op::CreateTopic {
                partitions,
                replication_factor,
                start,
                shift,
                unclean
            }
        ),
        1 => (0usize..8, 1i32..3).prop_map(|(topic, added)| Op::AddPartitions { topic, added }),
        1 => (0usize..8, any::<bool>()).prop_map(|(topic, first_attempt_fails)| Op::DeleteTopic { topic, first_attempt_fails }),
        2 => (broker.clone(), proptest::bool::weighted(0.2)).prop_map(|(broker, stale)| Op::ControlledShutdown { broker, stale }),
        2 => (any::<bool>(), any::<bool>(), 0usize..8, 0i32..5).prop_map(|(preferred, all, topic, partition)| Op::Elect {
            preferred,
            all,
            topic,
            partition
        }),
        2 => (0i64..3_000).prop_map(|advance_ms| Op::Tick { advance_ms }),
        3 => (0usize..8, 0usize..5, any::<bool>(), any::<bool>()).prop_map(|(topic, partition, expand, notify)| Op::IsrChange {
            topic,
            partition,
            expand,
            notify
        }),
        3 => (0usize..8, 0usize..5, proptest::option::weighted(0.8, (0i32..5, 1i32..4))).prop_map(|(topic, partition, target)| Op::Reassign {
            topic,
            partition,
            target
        }),
        1 => Just(Op::Failover),
        1 => (0usize..4, 0u8..3).prop_map(|(which, event)| Op::DeposedActs { which, event }),
    ]
}

#[derive(Debug, Clone)]
struct ZkTopic {
    id: Uuid,
    assignment: Vec<Vec<i32>>,
    unclean: Option<bool>,
    states: Vec<Option<PartitionState>>,
    /// The topic znode's version and its ongoing reassignments (per
    /// partition, empty: none).
    zk_version: i32,
    adding: Vec<Vec<i32>>,
    removing: Vec<Vec<i32>>,
}

/// The znode's partition -> list map of per-partition lists (empty ones left out).
fn per_partition_map(lists: &[Vec<i32>]) -> BTreeMap<i32, Vec<i32>> {
    lists
        .iter()
        .enumerate()
        .filter(|(_, list)| !list.is_empty())
        .map(|(p, list)| (p as i32, list.clone()))
        .collect()
}

/// Leader epochs seen per partition (topic id, partition): epoch -> leader.
type EpochHistory = BTreeMap<(Uuid, usize), BTreeMap<i32, i32>>;

struct Model {
    config: ControllerConfig,
    now_ms: i64,
    next_zxid: i64,
    next_topic: u128,
    // ZooKeeper
    controller_epoch: i32,
    controller_epoch_zk_version: i32,
    brokers: BTreeMap<i32, i64>,
    topics: BTreeMap<String, ZkTopic>,
    deleting: BTreeSet<String>,
    shutting_down: BTreeMap<i32, i64>,
    history: EpochHistory,
    // Runtime
    controllers: Vec<Controller>,
    /// Topics whose next DeleteTopic is lost (a failed ZooKeeper call).
    lose_next_delete: BTreeSet<String>,
    /// Partitions whose ISR a leader changed without the controller hearing
    /// of it yet (its notification is late); cleared by the controller's next
    /// write there, which saw the change (its version check passed).
    unnotified: BTreeSet<(String, usize)>,
}

impl Model {
    fn new(config: ControllerConfig) -> Self {
        let mut model = Self {
            config,
            now_ms: 1_000_000,
            next_zxid: 1,
            next_topic: 1,
            controller_epoch: 0,
            controller_epoch_zk_version: -1,
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            deleting: BTreeSet::new(),
            shutting_down: BTreeMap::new(),
            history: BTreeMap::new(),
            controllers: Vec::new(),
            lose_next_delete: BTreeSet::new(),
            unnotified: BTreeSet::new(),
        };
        for b in 1..=3 {
            let epoch = model.zxid();
            model.brokers.insert(b, epoch);
        }
        model.failover();
        model
    }

    fn zxid(&mut self) -> i64 {
        self.next_zxid += 1;
        self.next_zxid
    }

    fn current(&self) -> usize {
        self.controllers.len() - 1
    }

    fn read(&self, topic: &str, p: i32) -> Option<PartitionState> {
        let t = self.topics.get(topic)?;
        t.states.get(usize::try_from(p).ok()?).cloned().flatten()
    }

    fn record(topic: &ZkTopic) -> TopicRecord {
        TopicRecord {
            id: topic.id,
            assignment: topic.assignment.clone(),
            unclean_leader_election: topic.unclean,
            states: topic.states.clone(),
            zk_version: topic.zk_version,
            adding_replicas: per_partition_map(&topic.adding),
            removing_replicas: per_partition_map(&topic.removing),
        }
    }

    fn topic_name(&self, index: usize) -> Option<String> {
        let names: Vec<&String> = self.topics.keys().collect();
        (!names.is_empty()).then(|| names[index % names.len()].clone())
    }

    fn failover(&mut self) {
        self.controller_epoch += 1;
        self.controller_epoch_zk_version += 1;
        self.controllers.push(Controller::new(self.config.clone()));
        let event = Event::Elected {
            controller_epoch: self.controller_epoch,
            controller_epoch_zk_version: self.controller_epoch_zk_version,
            brokers: self.brokers.clone(),
            topics: self
                .topics
                .iter()
                .map(|(n, t)| (n.clone(), Self::record(t)))
                .collect(),
            deleting: self.deleting.clone(),
            shutting_down: self.shutting_down.clone(),
        };
        self.deliver(self.current(), event);
    }

    /// Feeds `event` to controller `index` and runs the runtime loop until
    /// every action is done and every failure fed back.
    fn deliver(&mut self, index: usize, event: Event) {
        let mut queue = VecDeque::from([(index, event)]);
        let mut handled = 0;
        while let Some((index, event)) = queue.pop_front() {
            handled += 1;
            assert!(handled <= EVENTS_PER_STEP_MAX, "feedback does not settle");
            let actions = self.controllers[index].handle(event, self.now_ms);
            if let Err(e) = self.controllers[index].check_invariants() {
                panic!("controller {index} invariant: {e}");
            }
            for action in actions {
                self.execute(index, action, &mut queue);
            }
        }
    }

    fn execute(&mut self, index: usize, action: Action, queue: &mut VecDeque<(usize, Event)>) {
        match action {
            Action::WriteStates {
                controller_epoch_zk_version,
                writes,
            } => {
                assert!(writes.len() <= STATE_WRITES_PER_MULTI_MAX);
                if controller_epoch_zk_version != self.controller_epoch_zk_version {
                    queue.push_back((index, Event::Fenced));
                    return;
                }
                assert_eq!(
                    index,
                    self.current(),
                    "a deposed controller passed the epoch check"
                );
                let all_match = writes.iter().all(|w| {
                    let exists = self
                        .topics
                        .get(&w.topic)
                        .is_some_and(|t| (w.partition as usize) < t.states.len());
                    let current = self.read(&w.topic, w.partition);
                    exists && current.map_or(-1, |s| s.zk_version) == w.expected_zk_version
                });
                if !all_match {
                    for w in writes {
                        let state = self.read(&w.topic, w.partition);
                        queue.push_back((
                            index,
                            Event::PartitionStateRead {
                                after_failed_write: true,
                                topic: w.topic,
                                partition: w.partition,
                                state,
                            },
                        ));
                    }
                    return;
                }
                for w in writes {
                    assert_eq!(
                        w.state.controller_epoch, self.controller_epoch,
                        "stamped with the current epoch"
                    );
                    assert_eq!(w.state.zk_version, w.expected_zk_version + 1);
                    self.unnotified
                        .remove(&(w.topic.clone(), w.partition as usize));
                    self.apply(&w.topic, w.partition as usize, w.state);
                }
            }
            Action::WriteTopic {
                controller_epoch_zk_version,
                assignment,
                states,
            } => {
                assert!(states.len() <= STATE_WRITES_PER_MULTI_MAX);
                assert!(states.iter().all(|w| w.topic == assignment.topic));
                if controller_epoch_zk_version != self.controller_epoch_zk_version {
                    queue.push_back((index, Event::Fenced));
                    return;
                }
                assert_eq!(
                    index,
                    self.current(),
                    "a deposed controller passed the epoch check"
                );
                let name = assignment.topic.clone();
                let topic_matches = self
                    .topics
                    .get(&name)
                    .is_some_and(|t| t.zk_version == assignment.expected_zk_version);
                let states_match = states.iter().all(|w| {
                    let current = self.read(&w.topic, w.partition);
                    current.map_or(-1, |s| s.zk_version) == w.expected_zk_version
                });
                if !topic_matches || !states_match {
                    let record = self.topics.get(&name).map(Self::record);
                    queue.push_back((index, Event::TopicReadBack { name, record }));
                    return;
                }
                let t = self.topics.get_mut(&name).expect("checked to exist");
                let old = t.clone();
                let new = &assignment.assignment;
                assert_eq!(new.topic_id, Some(t.id), "the topic keeps its id");
                assert_eq!(
                    new.partitions.len(),
                    t.assignment.len(),
                    "no partition lost"
                );
                t.assignment.clone_from(&new.partitions);
                t.adding = (0..t.assignment.len())
                    .map(|p| {
                        new.adding_replicas
                            .get(&(p as i32))
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect();
                t.removing = (0..t.assignment.len())
                    .map(|p| {
                        new.removing_replicas
                            .get(&(p as i32))
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect();
                t.zk_version += 1;
                for w in states {
                    assert_eq!(w.state.controller_epoch, self.controller_epoch);
                    self.unnotified
                        .remove(&(w.topic.clone(), w.partition as usize));
                    self.apply(&w.topic, w.partition as usize, w.state);
                }
                // A completed reassignment (its removing replicas dropped)
                // had every target replica in the ISR it wrote.
                let t = &self.topics[&name];
                for p in 0..t.assignment.len() {
                    let completed = !old.removing[p].is_empty()
                        && t.removing[p].is_empty()
                        && t.adding[p].is_empty()
                        && old.assignment[p]
                            .iter()
                            .filter(|b| !old.removing[p].contains(b))
                            .copied()
                            .collect::<Vec<_>>()
                            == t.assignment[p];
                    if completed {
                        let s = t.states[p]
                            .as_ref()
                            .expect("a completed partition has a state");
                        assert!(
                            t.assignment[p].iter().all(|b| s.isr.contains(b)),
                            "{name}-{p}: shrunk to {:?} with ISR {:?}",
                            t.assignment[p],
                            s.isr
                        );
                    }
                }
            }
            Action::AlterReassignmentsDone { results, .. } => {
                for ((topic, p), result) in results {
                    if let (Ok(()), Some(t)) = (result, self.topics.get(&topic)) {
                        assert!((p as usize) < t.assignment.len());
                    }
                }
            }
            Action::DeleteTopic {
                name,
                controller_epoch_zk_version,
            } => {
                if controller_epoch_zk_version != self.controller_epoch_zk_version {
                    queue.push_back((index, Event::Fenced));
                    return;
                }
                if self.lose_next_delete.remove(&name) {
                    return;
                }
                self.topics.remove(&name);
                self.deleting.remove(&name);
                queue.push_back((index, Event::TopicDeleted { name }));
            }
            Action::ElectLeadersDone { results, .. } => {
                for ((topic, p), result) in results {
                    if let (Ok(leader), Some(t)) = (result, self.topics.get(&topic)) {
                        assert!(
                            t.assignment[p as usize].contains(&leader),
                            "elected {leader} outside AR"
                        );
                    }
                }
            }
            Action::ControlledShutdownDone { broker, result, .. } => {
                if let Ok(remaining) = result {
                    for (topic, p) in remaining {
                        let leader = self.controllers[index]
                            .partition_state(&topic, p)
                            .map(|s| s.leader);
                        assert_eq!(
                            leader,
                            Some(broker),
                            "reported leadership {topic}-{p} not held"
                        );
                    }
                }
            }
            Action::Resign => {
                assert!(!self.controllers[index].is_active());
                assert_ne!(index, self.current(), "the current controller resigned");
            }
        }
    }

    /// Writes a state znode (after its version check passed) and checks the
    /// leader epoch history.
    fn apply(&mut self, topic: &str, p: usize, state: PartitionState) {
        let t = self.topics.get_mut(topic).expect("checked to exist");
        let history = self.history.entry((t.id, p)).or_default();
        if let Some((&last_epoch, _)) = history.last_key_value() {
            assert!(
                state.leader_epoch >= last_epoch,
                "{topic}-{p}: leader epoch went back from {last_epoch} to {}",
                state.leader_epoch
            );
        }
        if let Some(&leader) = history.get(&state.leader_epoch) {
            assert_eq!(
                leader, state.leader,
                "{topic}-{p}: leader epoch {} reused by another leader",
                state.leader_epoch
            );
        }
        history.insert(state.leader_epoch, state.leader);
        t.states[p] = Some(state);
    }

    fn brokers_changed(&mut self) {
        let live = &self.brokers;
        self.shutting_down.retain(|b, e| live.get(b) == Some(e));
        let event = Event::BrokersChanged {
            brokers: self.brokers.clone(),
        };
        self.deliver(self.current(), event);
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Join(b) => {
                if !self.brokers.contains_key(&b) {
                    let epoch = self.zxid();
                    self.brokers.insert(b, epoch);
                    self.brokers_changed();
                }
            }
            Op::Die(b) => {
                if self.brokers.remove(&b).is_some() {
                    self.brokers_changed();
                }
            }
            Op::Bounce(b) => {
                if self.brokers.contains_key(&b) {
                    let led_before = self.led_by(b);
                    let epoch = self.zxid();
                    self.brokers.insert(b, epoch);
                    self.brokers_changed();
                    // It does not stay in an ISR its previous incarnation was
                    // in (where the controller knew that ISR).
                    for (name, t) in self
                        .topics
                        .iter()
                        .filter(|(name, _)| !self.deleting.contains(*name))
                    {
                        for (p, s) in t.states.iter().enumerate() {
                            if self.unnotified.contains(&(name.clone(), p)) {
                                continue;
                            }
                            if let Some(s) = s.as_ref().filter(|s| s.isr.contains(&b)) {
                                assert!(
                                    s.leader == b || s.isr == vec![b],
                                    "{name}-{p}: restarted broker {b} kept in ISR {:?} led by {}",
                                    s.isr,
                                    s.leader
                                );
                            }
                        }
                    }
                    // It may lead again, but never under an epoch its previous
                    // incarnation led in.
                    for ((topic, p), before) in led_before {
                        if let Some(after) = self.read(&topic, p) {
                            assert!(
                                after.leader != b || after.leader_epoch > before,
                                "{topic}-{p}: broker {b} restarted and leads in the same epoch {before}"
                            );
                        }
                    }
                }
            }
            Op::CreateTopic {
                partitions,
                replication_factor,
                start,
                shift,
                unclean,
            } => {
                let live: Vec<i32> = self.brokers.keys().copied().collect();
                let Ok(assignment) = assignment::assign_replicas(
                    &live,
                    partitions,
                    replication_factor,
                    start,
                    shift,
                ) else {
                    return;
                };
                let name = format!("t{}", self.next_topic);
                let topic = ZkTopic {
                    id: Uuid::from_u128(self.next_topic),
                    states: vec![None; assignment.len()],
                    zk_version: 0,
                    adding: vec![Vec::new(); assignment.len()],
                    removing: vec![Vec::new(); assignment.len()],
                    assignment,
                    unclean,
                };
                self.next_topic += 1;
                let record = Self::record(&topic);
                self.topics.insert(name.clone(), topic);
                self.deliver(self.current(), Event::TopicChanged { name, record });
            }
            Op::AddPartitions { topic, added } => {
                let Some(name) = self.topic_name(topic) else {
                    return;
                };
                let live: Vec<i32> = self.brokers.keys().copied().collect();
                let t = self.topics.get_mut(&name).expect("named from the map");
                let new_count = t.assignment.len() as i32 + added;
                let Ok(new) = assignment::extend_assignment(&t.assignment, &live, new_count, None)
                else {
                    return;
                };
                t.states.resize(t.states.len() + new.len(), None);
                t.adding.resize(t.states.len(), Vec::new());
                t.removing.resize(t.states.len(), Vec::new());
                t.assignment.extend(new);
                t.zk_version += 1;
                let record = Self::record(t);
                self.deliver(self.current(), Event::TopicChanged { name, record });
            }
            Op::DeleteTopic {
                topic,
                first_attempt_fails,
            } => {
                let Some(name) = self.topic_name(topic) else {
                    return;
                };
                self.deleting.insert(name.clone());
                if first_attempt_fails {
                    self.lose_next_delete.insert(name.clone());
                }
                self.deliver(self.current(), Event::TopicDeletionRequested { name });
            }
            Op::ControlledShutdown { broker, stale } => {
                let Some(&epoch) = self.brokers.get(&broker) else {
                    return;
                };
                let broker_epoch = if stale { epoch - 1 } else { epoch };
                if !stale {
                    self.shutting_down.insert(broker, epoch);
                }
                self.deliver(
                    self.current(),
                    Event::ControlledShutdown {
                        broker,
                        broker_epoch,
                    },
                );
            }
            Op::Elect {
                preferred,
                all,
                topic,
                partition,
            } => {
                let kind = if preferred {
                    ElectionKind::Preferred
                } else {
                    ElectionKind::Unclean
                };
                let partitions = if all {
                    None
                } else {
                    let name = self.topic_name(topic).unwrap_or_else(|| "missing".into());
                    Some(vec![(name, partition)])
                };
                self.deliver(
                    self.current(),
                    Event::ElectLeaders {
                        request: 1,
                        kind,
                        partitions,
                    },
                );
            }
            Op::Tick { advance_ms } => {
                self.now_ms += advance_ms;
                self.deliver(self.current(), Event::Tick);
            }
            Op::IsrChange {
                topic,
                partition,
                expand,
                notify,
            } => self.leader_changes_isr(topic, partition, expand, notify),
            Op::Reassign {
                topic,
                partition,
                target,
            } => {
                let Some(name) = self.topic_name(topic) else {
                    return;
                };
                let p = partition % self.topics[&name].assignment.len();
                let target = target.map(|(start, replicas)| {
                    (0..replicas)
                        .map(|i| (start + i) % 5 + 1)
                        .collect::<Vec<i32>>()
                });
                self.deliver(
                    self.current(),
                    Event::AlterReassignments {
                        request: 3,
                        changes: vec![((name, p as i32), target)],
                    },
                );
            }
            Op::Failover => self.failover(),
            Op::DeposedActs { which, event } => {
                let deposed = self.current();
                if deposed == 0 {
                    return;
                }
                let index = which % deposed;
                let event = match event {
                    0 => Event::BrokersChanged {
                        brokers: self.brokers.clone(),
                    },
                    1 => Event::ElectLeaders {
                        request: 2,
                        kind: ElectionKind::Preferred,
                        partitions: None,
                    },
                    _ => Event::Tick,
                };
                self.deliver(index, event);
            }
        }
    }

    /// The leader of a partition shrinks its ISR to itself or adds every live
    /// assigned replica, with a conditional write of its own (it keeps the
    /// leader epoch and the controller epoch), and maybe tells the controller.
    fn leader_changes_isr(&mut self, topic: usize, partition: usize, expand: bool, notify: bool) {
        let Some(name) = self.topic_name(topic) else {
            return;
        };
        if self.deleting.contains(&name) {
            return;
        }
        let t = &self.topics[&name];
        let p = partition % t.assignment.len();
        let Some(state) = t.states[p].clone() else {
            return;
        };
        if state.leader == NO_LEADER || !self.brokers.contains_key(&state.leader) {
            return;
        }
        let isr: Vec<i32> = if expand {
            let mut isr = state.isr.clone();
            for &b in &t.assignment[p] {
                if self.brokers.contains_key(&b) && !isr.contains(&b) {
                    isr.push(b);
                }
            }
            isr
        } else {
            vec![state.leader]
        };
        if isr == state.isr {
            return;
        }
        let new = PartitionState {
            isr,
            zk_version: state.zk_version + 1,
            ..state
        };
        self.apply(&name, p, new.clone());
        if !notify {
            self.unnotified.insert((name, p));
        } else {
            self.unnotified.remove(&(name.clone(), p));
            let event = Event::PartitionStateRead {
                after_failed_write: false,
                topic: name,
                partition: p as i32,
                state: Some(new),
            };
            self.deliver(self.current(), event);
        }
    }

    /// Partitions `broker` leads in ZooKeeper, with their leader epochs
    /// (topics being deleted aside: they get no elections).
    fn led_by(&self, broker: i32) -> Vec<((String, i32), i32)> {
        let mut led = Vec::new();
        for (name, t) in self
            .topics
            .iter()
            .filter(|(name, _)| !self.deleting.contains(*name))
        {
            for (p, s) in t.states.iter().enumerate() {
                if let Some(s) = s.as_ref().filter(|s| s.leader == broker) {
                    led.push(((name.clone(), p as i32), s.leader_epoch));
                }
            }
        }
        led
    }

    fn can_lead(&self, broker: i32) -> bool {
        self.brokers
            .get(&broker)
            .is_some_and(|e| self.shutting_down.get(&broker) != Some(e))
    }

    /// The checks on ZooKeeper's contents once a step has settled.
    fn check(&self) -> Result<(), String> {
        if !self.controllers[self.current()].is_active() {
            return Err("the current controller is not active".into());
        }
        for (name, t) in &self.topics {
            if self.deleting.contains(name) {
                continue;
            }
            let unclean = t
                .unclean
                .unwrap_or(self.config.unclean_leader_election_enable);
            for (p, (ar, state)) in t.assignment.iter().zip(&t.states).enumerate() {
                let tp = format!("{name}-{p}");
                let (adding, removing) = (&t.adding[p], &t.removing[p]);
                if !adding.iter().chain(removing).all(|b| ar.contains(b))
                    || adding.iter().any(|b| removing.contains(b))
                    || ar.iter().all(|b| removing.contains(b))
                {
                    return Err(format!(
                        "{tp}: replicas {ar:?}, adding {adding:?}, removing {removing:?}"
                    ));
                }
                let Some(s) = state else {
                    if ar.iter().any(|&b| self.can_lead(b)) {
                        return Err(format!(
                            "{tp} has no state but a replica that may lead: AR {ar:?}"
                        ));
                    }
                    continue;
                };
                let distinct: BTreeSet<i32> = s.isr.iter().copied().collect();
                if s.isr.is_empty()
                    || distinct.len() != s.isr.len()
                    || !s.isr.iter().all(|b| ar.contains(b))
                {
                    return Err(format!("{tp}: bad ISR {:?} for AR {ar:?}", s.isr));
                }
                if s.controller_epoch > self.controller_epoch {
                    return Err(format!("{tp}: controller epoch from the future"));
                }
                if s.leader != NO_LEADER {
                    if !ar.contains(&s.leader)
                        || !self.brokers.contains_key(&s.leader)
                        || !s.isr.contains(&s.leader)
                    {
                        return Err(format!(
                            "{tp}: leader {} invalid (ISR {:?}, AR {ar:?}, live {:?})",
                            s.leader, s.isr, self.brokers
                        ));
                    }
                } else {
                    let clean = s.isr.iter().any(|&b| self.can_lead(b));
                    let any = ar.iter().any(|&b| self.can_lead(b));
                    if clean || (unclean && any) {
                        return Err(format!(
                            "{tp}: offline though electable (ISR {:?}, AR {ar:?}, live {:?})",
                            s.isr, self.brokers
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn controller_keeps_zookeeper_consistent(
        unclean_default in any::<bool>(),
        rebalance in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let config = ControllerConfig {
            unclean_leader_election_enable: unclean_default,
            auto_leader_rebalance_enable: rebalance,
            leader_imbalance_check_interval_ms: 1_000,
            leader_imbalance_per_broker_percentage: 10,
        };
        let mut model = Model::new(config);
        for op in ops {
            let description = format!("{op:?}");
            model.step(op);
            if let Err(e) = model.check() {
                return Err(TestCaseError::fail(format!("after {description}: {e}")));
            }
        }
    }
}

/// The model itself must be able to catch a broken controller: a write that
/// reuses a leader epoch for another leader is caught.
#[test]
#[should_panic(expected = "reused by another leader")]
fn model_catches_a_reused_leader_epoch() {
    let mut model = Model::new(ControllerConfig::default());
    model.step(Op::CreateTopic {
        partitions: 1,
        replication_factor: 2,
        start: 0,
        shift: 0,
        unclean: None,
    });
    let name = model.topic_name(0).expect("created");
    let mut state = model.read(&name, 0).expect("elected");
    state.leader = if state.leader == 1 { 2 } else { 1 };
    model.apply(&name, 0, state);
}

/// A deposed controller's writes are refused and it resigns.
#[test]
fn deposed_controller_is_fenced() {
    let mut model = Model::new(ControllerConfig::default());
    model.step(Op::CreateTopic {
        partitions: 2,
        replication_factor: 2,
        start: 0,
        shift: 0,
        unclean: None,
    });
    model.step(Op::Failover);
    // The deposed controller hears of a death before the new one does.
    let before = model
        .topics
        .clone()
        .into_iter()
        .map(|(n, t)| (n, t.states))
        .collect::<Vec<_>>();
    model.brokers.remove(&1);
    model.deliver(
        0,
        Event::BrokersChanged {
            brokers: model.brokers.clone(),
        },
    );
    assert!(!model.controllers[0].is_active(), "fenced and resigned");
    let after = model
        .topics
        .clone()
        .into_iter()
        .map(|(n, t)| (n, t.states))
        .collect::<Vec<_>>();
    assert_eq!(before, after, "none of its writes landed");
    model.brokers_changed();
    model
        .check()
        .expect("the new controller repaired everything");
}

/// The model drives a reassignment to completion the way the runtime does:
/// the start is written, the leader takes the new replica into the ISR, the
/// controller completes it; ZooKeeper then holds the target alone.
#[test]
fn reassignment_completes_in_the_model() {
    let mut model = Model::new(ControllerConfig::default());
    model.step(Op::Join(4));
    model.step(Op::CreateTopic {
        partitions: 1,
        replication_factor: 3,
        start: 0,
        shift: 0,
        unclean: None,
    });
    let name = model.topic_name(0).expect("created");
    let before = model.topics[&name].assignment[0].clone();
    let target: Vec<i32> = (1..=4)
        .filter(|b| !before.contains(b))
        .chain(before[1..].iter().copied())
        .collect();
    model.deliver(
        model.current(),
        Event::AlterReassignments {
            request: 9,
            changes: vec![((name.clone(), 0), Some(target.clone()))],
        },
    );
    assert_eq!(model.topics[&name].adding[0].len(), 1, "started");
    model.check().expect("consistent while ongoing");
    model.step(Op::IsrChange {
        topic: 0,
        partition: 0,
        expand: true,
        notify: true,
    });
    model.check().expect("consistent once complete");
    let t = &model.topics[&name];
    assert_eq!(t.assignment[0], target);
    assert!(t.adding[0].is_empty() && t.removing[0].is_empty());
    let s = t.states[0].as_ref().expect("state");
    assert!(target.contains(&s.leader));
    assert!(s.isr.iter().all(|b| target.contains(b)));
}
