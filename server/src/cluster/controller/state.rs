//! The controller's view of the cluster and the one place that changes a
//! partition's state ([`Topic::write`]) and re-checks it ([`reconcile`]).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::api::{Action, AssignmentWrite, StateWrite, TopicRecord};
use super::STATE_WRITES_PER_MULTI_MAX;
use crate::cluster::election::{self, BrokerStatus};
use crate::cluster::znodes::{PartitionState, TopicAssignment};
use crate::cluster::NO_LEADER;

/// Which brokers are alive, and which of them asked for a controlled shutdown.
#[derive(Debug, Clone, Default)]
pub(crate) struct Liveness {
    /// Live brokers: id -> broker epoch.
    pub brokers: BTreeMap<i32, i64>,
    /// Brokers shutting down: id -> the epoch that asked. Invariant: every
    /// entry matches the live epoch of that broker (a restarted broker is no
    /// longer shutting down).
    pub shutting_down: BTreeMap<i32, i64>,
    /// Brokers the last BrokersChanged reported restarted (new epoch). Kept
    /// only while the failures of that step's writes are fed back (cleared by
    /// any event but a PartitionStateRead after a failed write): an ISR read
    /// back then that lists one of them names its previous incarnation,
    /// which the failed write had removed.
    pub restarted: BTreeSet<i32>,
}

impl Liveness {
    pub fn status(&self, broker: i32) -> BrokerStatus {
        match self.brokers.get(&broker) {
            None => BrokerStatus::Offline,
            Some(epoch) if self.shutting_down.get(&broker) == Some(epoch) => {
                BrokerStatus::ShuttingDown
            }
            Some(_) => BrokerStatus::Online,
        }
    }

    /// Drops shutdown requests of brokers that died or restarted.
    pub fn forget_stale_shutdowns(&mut self) {
        let brokers = &self.brokers;
        self.shutting_down
            .retain(|id, epoch| brokers.get(id) == Some(epoch));
    }
}

/// One topic as the controller knows it.
#[derive(Debug, Clone)]
pub(crate) struct Topic {
    pub id: Uuid,
    pub assignment: Vec<Vec<i32>>,
    pub unclean: Option<bool>,
    /// Same length as `assignment`.
    pub states: Vec<Option<PartitionState>>,
    /// Per partition (same length): the highest leader epoch whose leader the
    /// controller saw die (-1: none). A state read back with a leader epoch
    /// at or below it predates that death even if its leader is registered
    /// again (it restarted): it is elected anew, never trusted.
    pub dead_leader_epochs: Vec<i32>,
    /// Deletion requested: when to send DeleteTopic again if it has not
    /// completed. A topic being deleted gets no elections.
    pub deletion_retry_at_ms: Option<i64>,
    /// The version of `/brokers/topics/<t>` as of the controller's last read
    /// or write of it.
    pub zk_version: i32,
    /// Per partition (same length as `assignment`): replicas an ongoing
    /// reassignment adds (empty: none). Invariant: within `assignment[p]`,
    /// disjoint from `removing[p]`.
    pub adding: Vec<Vec<i32>>,
    /// Per partition: replicas an ongoing reassignment removes (empty: none).
    pub removing: Vec<Vec<i32>>,
}

impl Topic {
    pub fn from_record(record: TopicRecord) -> Self {
        let mut states = record.states;
        states.resize(record.assignment.len(), None);
        let count = record.assignment.len();
        Self {
            id: record.id,
            dead_leader_epochs: vec![-1; count],
            adding: per_partition(&record.adding_replicas, count),
            removing: per_partition(&record.removing_replicas, count),
            assignment: record.assignment,
            unclean: record.unclean_leader_election,
            states,
            deletion_retry_at_ms: None,
            zk_version: record.zk_version,
        }
    }

    /// Whether partition `p` is being reassigned.
    pub fn reassigning(&self, p: usize) -> bool {
        !self.adding[p].is_empty() || !self.removing[p].is_empty()
    }

    /// The replicas partition `p` ends with: RS minus the removing ones.
    pub fn target(&self, p: usize) -> Vec<i32> {
        without(&self.assignment[p], &self.removing[p])
    }

    /// The replicas partition `p` had before its reassignment: RS minus the
    /// adding ones.
    pub fn original(&self, p: usize) -> Vec<i32> {
        without(&self.assignment[p], &self.adding[p])
    }

    /// Sets partition `p`'s replicas (RS) and reassignment, and queues the
    /// write of the topic znode. Like [`Self::write`], the controller assumes
    /// it succeeds.
    pub fn set_replicas(
        &mut self,
        step: &mut Step,
        name: &str,
        p: usize,
        replicas: Vec<i32>,
        adding: Vec<i32>,
        removing: Vec<i32>,
    ) {
        self.assignment[p] = replicas;
        self.adding[p] = adding;
        self.removing[p] = removing;
        let expected_zk_version = step
            .assignments
            .get(name)
            .map_or(self.zk_version, |w| w.expected_zk_version);
        self.zk_version = expected_zk_version.saturating_add(1);
        step.assignments.insert(
            name.to_owned(),
            AssignmentWrite {
                topic: name.to_owned(),
                assignment: self.znode(),
                expected_zk_version,
            },
        );
    }

    /// The topic znode as the controller holds it.
    pub fn znode(&self) -> TopicAssignment {
        let by_partition = |lists: &[Vec<i32>]| -> BTreeMap<i32, Vec<i32>> {
            lists
                .iter()
                .enumerate()
                .filter(|(_, list)| !list.is_empty())
                .map(|(p, list)| {
                    (
                        i32::try_from(p).expect("partition counts fit in i32"),
                        list.clone(),
                    )
                })
                .collect()
        };
        TopicAssignment {
            topic_id: Some(self.id),
            partitions: self.assignment.clone(),
            adding_replicas: by_partition(&self.adding),
            removing_replicas: by_partition(&self.removing),
        }
    }

    /// Takes the assignment (and states, where the controller has none) of a
    /// newer record of the same topic.
    ///
    /// A record older than the controller's own last write of the topic
    /// znode (read before it, fed after it) keeps the controller's replicas.
    pub fn update(&mut self, record: TopicRecord) {
        let count = record.assignment.len();
        let mut incoming = record.states;
        incoming.resize(count, None);
        self.states.resize(count, None);
        for (mine, theirs) in self.states.iter_mut().zip(incoming) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
        self.dead_leader_epochs.resize(count, -1);
        self.unclean = record.unclean_leader_election;
        if record.zk_version >= self.zk_version || count > self.assignment.len() {
            self.adding = per_partition(&record.adding_replicas, count);
            self.removing = per_partition(&record.removing_replicas, count);
            self.assignment = record.assignment;
            self.zk_version = record.zk_version;
        }
    }

    pub fn deleting(&self) -> bool {
        self.deletion_retry_at_ms.is_some()
    }

    /// Sets partition `p`'s leader and ISR, bumping the leader epoch when
    /// `new_leader_epoch` (every election, even of the same broker), and queues
    /// the write. The controller's state is updated at once: it assumes the
    /// write succeeds (a failed one comes back as a PartitionStateRead).
    pub fn write(
        &mut self,
        step: &mut Step,
        name: &str,
        p: usize,
        leader: i32,
        isr: Vec<i32>,
        new_leader_epoch: bool,
    ) {
        let (current_zk_version, leader_epoch) = match &self.states[p] {
            Some(s) if new_leader_epoch => (s.zk_version, s.leader_epoch.saturating_add(1)),
            Some(s) => (s.zk_version, s.leader_epoch),
            None => (-1, 0),
        };
        // A new leadership always goes above every epoch seen to die, even
        // when the state znode vanished and is created again.
        let leader_epoch = if new_leader_epoch || self.states[p].is_none() {
            leader_epoch.max(self.dead_leader_epochs[p].saturating_add(1))
        } else {
            leader_epoch
        };
        let partition = i32::try_from(p).expect("partition counts fit in i32");
        let key = (name.to_owned(), partition);
        // Several changes to one partition in one step make one write, checked
        // against the version before the step.
        let expected_zk_version = step
            .writes
            .get(&key)
            .map_or(current_zk_version, |w| w.expected_zk_version);
        let state = PartitionState {
            leader,
            leader_epoch,
            isr,
            controller_epoch: step.controller_epoch,
            zk_version: expected_zk_version.saturating_add(1).max(0),
        };
        self.states[p] = Some(state.clone());
        step.writes.insert(
            key,
            StateWrite {
                topic: name.to_owned(),
                partition,
                state,
                expected_zk_version,
            },
        );
    }
}

/// Per partition (`count` of them), the list `map` has for it, else empty.
fn per_partition(map: &BTreeMap<i32, Vec<i32>>, count: usize) -> Vec<Vec<i32>> {
    (0..count)
        .map(|p| {
            i32::try_from(p)
                .ok()
                .and_then(|p| map.get(&p))
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

/// `list` without the members of `drop`, in order.
pub(crate) fn without(list: &[i32], drop: &[i32]) -> Vec<i32> {
    list.iter().copied().filter(|b| !drop.contains(b)).collect()
}

/// What one `handle` call produces.
#[derive(Debug)]
pub(crate) struct Step {
    pub now_ms: i64,
    pub controller_epoch: i32,
    pub writes: BTreeMap<(String, i32), StateWrite>,
    /// Topic znodes to write, each with its topic's states in one `multi`.
    pub assignments: BTreeMap<String, AssignmentWrite>,
    pub deletes: Vec<String>,
    pub replies: Vec<Action>,
}

impl Step {
    pub fn new(now_ms: i64, controller_epoch: i32) -> Self {
        Self {
            now_ms,
            controller_epoch,
            writes: BTreeMap::new(),
            assignments: BTreeMap::new(),
            deletes: Vec::new(),
            replies: Vec::new(),
        }
    }

    /// The actions, in the order the runtime must run them: topic znodes with
    /// their states, then the other state writes (answers report their
    /// outcome), then deletions, then answers.
    pub fn into_actions(self, controller_epoch_zk_version: i32) -> Vec<Action> {
        let mut actions = Vec::new();
        let (mut with_topic, writes): (Vec<StateWrite>, Vec<StateWrite>) = self
            .writes
            .into_values()
            .partition(|w| self.assignments.contains_key(&w.topic));
        for (name, assignment) in self.assignments {
            // The first states of the topic go with its znode; any beyond one
            // multi's worth follow it (after it: a replica never sees a new
            // epoch before the replica set it stands for).
            let take = with_topic
                .iter()
                .filter(|w| w.topic == name)
                .count()
                .min(STATE_WRITES_PER_MULTI_MAX);
            let (mine, rest): (Vec<StateWrite>, Vec<StateWrite>) =
                with_topic.into_iter().partition(|w| w.topic == name);
            let mut mine = mine.into_iter();
            let states: Vec<StateWrite> = mine.by_ref().take(take).collect();
            with_topic = rest;
            with_topic.extend(mine);
            actions.push(Action::WriteTopic {
                controller_epoch_zk_version,
                assignment,
                states,
            });
        }
        let writes: Vec<StateWrite> = with_topic.into_iter().chain(writes).collect();
        for chunk in writes.chunks(STATE_WRITES_PER_MULTI_MAX) {
            actions.push(Action::WriteStates {
                controller_epoch_zk_version,
                writes: chunk.to_vec(),
            });
        }
        for name in self.deletes {
            actions.push(Action::DeleteTopic {
                name,
                controller_epoch_zk_version,
            });
        }
        actions.extend(self.replies);
        actions
    }
}

/// Brings partition `p` of `topic` in line with the live brokers: a new
/// partition gets its first leader; a partition whose leader is gone (or
/// invalid) gets a new one or none; dead brokers leave the ISR (never
/// emptying it); a reassignment whose target replicas are all in the ISR
/// completes. Does nothing for a topic being deleted.
pub(crate) fn reconcile(
    live: &Liveness,
    default_unclean: bool,
    step: &mut Step,
    name: &str,
    topic: &mut Topic,
    p: usize,
) {
    reconcile_leadership(live, default_unclean, step, name, topic, p);
    super::reassignment::complete(live, step, name, topic, p);
}

/// The leadership part of [`reconcile`].
fn reconcile_leadership(
    live: &Liveness,
    default_unclean: bool,
    step: &mut Step,
    name: &str,
    topic: &mut Topic,
    p: usize,
) {
    if topic.deleting() {
        return;
    }
    let status = |b| live.status(b);
    let assignment = &topic.assignment[p];
    match &topic.states[p] {
        None => {
            if let Some(e) = election::new_partition(assignment, status) {
                topic.write(step, name, p, e.leader, e.isr, false);
            }
        }
        Some(s) => {
            let leader_alive = s.leader != NO_LEADER
                && status(s.leader) != BrokerStatus::Offline
                && s.leader_epoch > topic.dead_leader_epochs[p];
            // Members that restarted in the broker change this read-back
            // follows are their previous incarnations (see
            // `Liveness::restarted`): out, unless nobody else is left.
            let mut isr: Vec<i32> = s
                .isr
                .iter()
                .copied()
                .filter(|b| (leader_alive && *b == s.leader) || !live.restarted.contains(b))
                .collect();
            if isr.is_empty() {
                isr.clone_from(&s.isr);
            }
            let leader_valid =
                leader_alive && isr.contains(&s.leader) && assignment.contains(&s.leader);
            if leader_valid && status(s.leader) == BrokerStatus::ShuttingDown {
                // A controlled shutdown whose write failed, or that found no
                // other ISR member then: move the leadership if possible now.
                if let Some(e) = election::controlled_shutdown(assignment, &isr, status) {
                    topic.write(step, name, p, e.leader, e.isr, true);
                    return;
                }
            }
            if leader_valid {
                let leader = s.leader;
                let isr = election::shrink_isr(&isr, leader, status);
                if isr != s.isr {
                    topic.write(step, name, p, leader, isr, false);
                }
            } else {
                if s.leader != NO_LEADER && !leader_alive {
                    topic.dead_leader_epochs[p] = topic.dead_leader_epochs[p].max(s.leader_epoch);
                }
                let unclean = topic.unclean.unwrap_or(default_unclean);
                let e = election::offline_partition(assignment, &isr, s.leader, unclean, status);
                // Any change of leadership, even to none, is a new epoch.
                let new_epoch = e.leader != NO_LEADER || s.leader != NO_LEADER;
                if new_epoch || e.isr != s.isr {
                    topic.write(step, name, p, e.leader, e.isr, new_epoch);
                }
            }
        }
    }
}

/// [`reconcile`] for every partition of every topic.
pub(crate) fn reconcile_all(
    live: &Liveness,
    default_unclean: bool,
    step: &mut Step,
    topics: &mut BTreeMap<String, Topic>,
) {
    for (name, topic) in topics.iter_mut() {
        for p in 0..topic.assignment.len() {
            reconcile(live, default_unclean, step, name, topic, p);
        }
    }
}
