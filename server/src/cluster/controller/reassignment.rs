//! Partition reassignment (KIP-455, as Kafka 2.8's ZooKeeper controller runs
//! it).
//!
//! A reassignment of partition `p` from its original replicas (ORS) to target
//! replicas (TRS) goes in two steps, each one write of the topic znode with
//! the partition's state in the same `multi`:
//!
//! 1. Start: the replicas become RS = TRS + ORS (target first, so the target's
//!    first replica is the preferred leader), `adding_replicas` = RS - ORS,
//!    `removing_replicas` = RS - TRS; the leader epoch is bumped (same leader,
//!    same ISR) so every replica learns the new replica set: a broker opens
//!    and follows a replica newly assigned to it, and the leader counts it
//!    towards the ISR once it caught up.
//! 2. Complete, once every target replica is in the ISR (checked whenever the
//!    partition is reconciled: the leader's ISR change read back, brokers
//!    joining, a new controller): the leader stays if it is a target replica,
//!    else the first target replica in the ISR that can lead takes over; the
//!    ISR keeps only target replicas; the replicas become TRS with nothing
//!    adding or removing; a new leader epoch. Brokers delete the replicas no
//!    longer assigned to them when they see it.
//!
//! A cancellation is a reassignment to ORS: RS becomes ORS at once, and the
//! replicas that were being added leave (the ISR too). The state lives in the
//! topic znode, so a new controller resumes where the last one stopped.

use kafka_protocol::error::ResponseError;

use super::api::{Action, OngoingReassignment, ReassignmentChange, TopicRecord};
use super::state::{reconcile, without, Liveness, Step, Topic};
use super::Active;
use crate::cluster::election::BrokerStatus;
use crate::cluster::{TopicPartition, NO_LEADER};

/// Completes partition `p`'s reassignment if every target replica is in the
/// ISR and one of them can lead.
pub(super) fn complete(live: &Liveness, step: &mut Step, name: &str, topic: &mut Topic, p: usize) {
    if topic.deleting() || !topic.reassigning(p) {
        return;
    }
    let Some(state) = topic.states[p].clone() else {
        return;
    };
    let target = topic.target(p);
    if !target.iter().all(|b| state.isr.contains(b)) {
        return;
    }
    let can_lead = |b: i32| live.status(b) == BrokerStatus::Online;
    let leader = if state.leader != NO_LEADER
        && target.contains(&state.leader)
        && live.status(state.leader) != BrokerStatus::Offline
    {
        state.leader
    } else {
        match target.iter().copied().find(|b| can_lead(*b)) {
            Some(leader) => leader,
            // No target replica can lead yet: wait (a later reconcile retries).
            None => return,
        }
    };
    // Invariant: every target replica is in the ISR here, so the shrunk ISR
    // is exactly the target's members, in ISR order, and holds the leader.
    let isr: Vec<i32> = state
        .isr
        .iter()
        .copied()
        .filter(|b| target.contains(b))
        .collect();
    debug_assert!(isr.contains(&leader), "the new leader is in the ISR");
    topic.set_replicas(step, name, p, target, Vec::new(), Vec::new());
    topic.write(step, name, p, leader, isr, true);
}

/// The replicas (RS) partition `p` has while being reassigned to `target`:
/// the target first (its first replica is the preferred leader), then the
/// original replicas not in it.
fn replicas_towards(topic: &Topic, p: usize, target: &[i32]) -> Vec<i32> {
    let original = topic.original(p);
    let mut replicas: Vec<i32> = target.to_vec();
    replicas.extend(original.iter().copied().filter(|b| !target.contains(b)));
    replicas
}

/// Whether reassigning partition `p` to `target` keeps an ISR member among
/// its replicas (a cancellation when only added replicas are in sync would
/// not: Kafka would leave the partition leaderless; Strom refuses).
fn keeps_an_isr_member(topic: &Topic, p: usize, target: &[i32]) -> bool {
    let replicas = replicas_towards(topic, p, target);
    topic.states[p]
        .as_ref()
        .is_none_or(|s| s.isr.iter().any(|b| replicas.contains(b)))
}

/// Starts (or changes, or cancels: `target` = ORS) partition `p`'s
/// reassignment to `target`, then completes it at once if it already can.
/// The caller checked [`keeps_an_isr_member`].
fn reassign(
    live: &Liveness,
    default_unclean: bool,
    step: &mut Step,
    name: &str,
    topic: &mut Topic,
    p: usize,
    target: &[i32],
) {
    let original = topic.original(p);
    let replicas = replicas_towards(topic, p, target);
    let adding = without(&replicas, &original);
    let removing = without(&replicas, target);
    if replicas == topic.assignment[p] && adding == topic.adding[p] && removing == topic.removing[p]
    {
        reconcile(live, default_unclean, step, name, topic, p);
        return;
    }
    topic.set_replicas(step, name, p, replicas.clone(), adding, removing);
    if let Some(state) = topic.states[p].clone() {
        // Replicas dropped from RS (a cancelled reassignment's added ones)
        // leave the ISR; a new leader epoch tells every replica its new
        // replica set.
        let isr: Vec<i32> = state
            .isr
            .iter()
            .copied()
            .filter(|b| replicas.contains(b))
            .collect();
        assert!(!isr.is_empty(), "checked by keeps_an_isr_member");
        topic.write(step, name, p, state.leader, isr, true);
    }
    // A leader outside RS is elected anew here; then the reassignment
    // completes if its target is in the ISR already.
    reconcile(live, default_unclean, step, name, topic, p);
}

impl Active {
    /// [`complete`] for every partition the step writes.
    pub(super) fn complete_reassignments(&mut self, step: &mut Step) {
        let written: Vec<TopicPartition> = step.writes.keys().cloned().collect();
        for (name, partition) in written {
            let Some(topic) = self.topics.get_mut(&name) else {
                continue;
            };
            if let Some(p) = usize::try_from(partition)
                .ok()
                .filter(|&p| p < topic.assignment.len())
            {
                complete(&self.live, step, &name, topic, p);
            }
        }
    }

    /// AlterPartitionReassignments: validates every change, starts or cancels
    /// each, and answers per partition.
    pub(super) fn alter_reassignments(
        &mut self,
        default_unclean: bool,
        step: &mut Step,
        request: u64,
        changes: Vec<ReassignmentChange>,
    ) {
        let mut results = Vec::with_capacity(changes.len());
        for ((name, partition), target) in changes {
            let result = self.alter_one(default_unclean, step, &name, partition, target);
            results.push(((name, partition), result));
        }
        step.replies
            .push(Action::AlterReassignmentsDone { request, results });
    }

    fn alter_one(
        &mut self,
        default_unclean: bool,
        step: &mut Step,
        name: &str,
        partition: i32,
        target: Option<Vec<i32>>,
    ) -> Result<(), ResponseError> {
        let topic = self
            .topics
            .get_mut(name)
            .filter(|t| !t.deleting())
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        let p = usize::try_from(partition)
            .ok()
            .filter(|&p| p < topic.assignment.len())
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        let target = match target {
            None if !topic.reassigning(p) => return Err(ResponseError::NoReassignmentInProgress),
            None => topic.original(p),
            Some(target) => {
                let mut distinct = target.clone();
                distinct.sort_unstable();
                distinct.dedup();
                // Kafka's checks: non-empty, no broker twice, every broker
                // registered (a reassignment to a broker that does not exist
                // could never complete).
                if target.is_empty()
                    || distinct.len() != target.len()
                    || !target.iter().all(|b| self.live.brokers.contains_key(b))
                {
                    return Err(ResponseError::InvalidReplicaAssignment);
                }
                target
            }
        };
        if !keeps_an_isr_member(topic, p, &target) {
            return Err(ResponseError::InvalidReplicaAssignment);
        }
        reassign(&self.live, default_unclean, step, name, topic, p, &target);
        Ok(())
    }

    /// The topic as read back after the controller's write of it failed:
    /// adopt it, then redo what the controller meant where the stored
    /// replicas differ from its own (a reassignment started, completed or
    /// cancelled), and reconcile every partition.
    pub(super) fn topic_read_back(
        &mut self,
        default_unclean: bool,
        step: &mut Step,
        name: &str,
        record: Option<TopicRecord>,
    ) {
        let Some(record) = record else {
            self.topics.remove(name);
            return;
        };
        let Some(mine) = self.topics.get(name).filter(|t| t.id == record.id).cloned() else {
            self.topics
                .insert(name.to_owned(), Topic::from_record(record));
            let topic = self.topics.get_mut(name).expect("just inserted");
            for p in 0..topic.assignment.len() {
                reconcile(&self.live, default_unclean, step, name, topic, p);
            }
            return;
        };
        let mut stored = Topic::from_record(record);
        stored.deletion_retry_at_ms = mine.deletion_retry_at_ms;
        for (p, dead) in mine.dead_leader_epochs.iter().enumerate() {
            if let Some(slot) = stored.dead_leader_epochs.get_mut(p) {
                *slot = *dead;
            }
        }
        let topic = self.topics.insert(name.to_owned(), stored);
        debug_assert!(topic.is_some(), "the topic was known");
        let topic = self.topics.get_mut(name).expect("just inserted");
        for p in 0..topic.assignment.len() {
            let meant = mine.assignment.get(p).map(|replicas| {
                (
                    replicas.clone(),
                    mine.adding[p].clone(),
                    mine.removing[p].clone(),
                )
            });
            let stored = (
                topic.assignment[p].clone(),
                topic.adding[p].clone(),
                topic.removing[p].clone(),
            );
            match meant {
                Some(meant) if meant != stored && !topic.deleting() => {
                    let target = without(&meant.0, &meant.2);
                    if keeps_an_isr_member(topic, p, &target) {
                        reassign(&self.live, default_unclean, step, name, topic, p, &target);
                    } else {
                        reconcile(&self.live, default_unclean, step, name, topic, p);
                    }
                }
                _ => reconcile(&self.live, default_unclean, step, name, topic, p),
            }
        }
    }

    /// Every ongoing reassignment (of topics not being deleted), by topic and
    /// partition.
    pub(super) fn reassignments(&self) -> Vec<OngoingReassignment> {
        let mut out = Vec::new();
        for (name, topic) in self.topics.iter().filter(|(_, t)| !t.deleting()) {
            for p in 0..topic.assignment.len() {
                if topic.reassigning(p) {
                    out.push(OngoingReassignment {
                        topic: name.clone(),
                        partition: i32::try_from(p).expect("partition counts fit in i32"),
                        replicas: topic.assignment[p].clone(),
                        adding: topic.adding[p].clone(),
                        removing: topic.removing[p].clone(),
                    });
                }
            }
        }
        out
    }
}
