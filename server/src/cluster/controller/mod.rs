//! The controller as a pure state machine.
//!
//! One broker at a time is controller (it created `/controller`). It is the
//! only writer of partition state znodes. The runtime reads znodes and feeds
//! [`Event`]s to [`Controller::handle`] with the current time; it carries out
//! the [`Action`]s returned, in order, each ZooKeeper write in a `multi` that
//! first checks the version of `/controller_epoch`, so a deposed controller's
//! writes fail. The controller does no I/O and reads no clock.
//!
//! Duties (Kafka 2.8's `KafkaController`, simplified):
//! - New topics and partitions: the first live replica leads, the live
//!   replicas form the ISR (leader epoch 0).
//! - A broker dies: partitions it led get a new leader from the ISR (or from
//!   any live replica if unclean election is allowed: topic config over the
//!   broker default), or none; it leaves every ISR, except that an ISR is
//!   never emptied. A broker whose epoch changed (it restarted) counts as a
//!   death then a join.
//! - A broker joins: partitions without a leader that it may lead get one.
//! - Topic deletion: [`Action::DeleteTopic`] at once; no elections for a
//!   topic being deleted.
//! - Preferred-leader election on request ([`Event::ElectLeaders`]) and, on
//!   [`Event::Tick`], for brokers whose share of preferred partitions led
//!   elsewhere exceeds `leader.imbalance.per.broker.percentage`.
//! - Controlled shutdown: the broker's leaderships move to other ISR members,
//!   it leaves the ISRs it shares, and that broker epoch is not elected again.
//! - Partition reassignment (AlterPartitionReassignments, KIP-455): the one
//!   writer of a topic znode's replicas besides topic creation and growth;
//!   see [`reassignment`].
//!
//! Every election bumps the partition's leader epoch; every write stamps the
//! controller epoch. ISR-only changes keep the leader epoch (Kafka 2.8 bumps
//! it there too; brokers here watch the znode, so they need no epoch to notice).
//!
//! Where Strom differs from Kafka: a controlled shutdown request is a znode,
//! not a request to the controller; deletion does not wait for replicas to
//! stop (brokers delete their files when they see the topic gone).

mod api;
mod brokers;
mod invariants;
mod leaders;
mod reassignment;
mod state;
mod topics;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod reassignment_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use api::{
    Action, AssignmentWrite, ControllerConfig, ElectionKind, Event, OngoingReassignment,
    ReassignmentChange, StateWrite, TopicRecord,
};

pub use crate::cluster::znodes::PartitionState;
use state::{Liveness, Step, Topic};

/// At most this many state writes go in one ZooKeeper `multi`: a state znode
/// write is ~200 bytes with its path, so this stays far below ZooKeeper's
/// 1 MB `jute.maxbuffer` for a request.
pub const STATE_WRITES_PER_MULTI_MAX: usize = 500;

/// How long a [`Action::DeleteTopic`] may go without its
/// [`Event::TopicDeleted`] before it is sent again (on a Tick).
pub const DELETE_TOPIC_RETRY_MS: i64 = 10_000;

/// The controller state machine. Inactive until [`Event::Elected`]; inactive
/// again after it resigns.
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    active: Option<Active>,
}

/// The state of an elected controller.
#[derive(Debug)]
struct Active {
    epoch: i32,
    epoch_zk_version: i32,
    live: Liveness,
    topics: BTreeMap<String, Topic>,
    next_rebalance_check_ms: i64,
}

impl Controller {
    pub fn new(config: ControllerConfig) -> Self {
        Self {
            config,
            active: None,
        }
    }

    /// Whether this controller is elected (and has not resigned).
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// The controller epoch it writes with, while active.
    pub fn controller_epoch(&self) -> Option<i32> {
        self.active.as_ref().map(|a| a.epoch)
    }

    /// The state the controller believes partition `topic`-`partition` has.
    pub fn partition_state(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        let topic = self.active.as_ref()?.topics.get(topic)?;
        topic.states.get(usize::try_from(partition).ok()?)?.as_ref()
    }

    /// Every ongoing partition reassignment (ListPartitionReassignments);
    /// empty when not active.
    pub fn reassignments(&self) -> Vec<OngoingReassignment> {
        self.active
            .as_ref()
            .map(Active::reassignments)
            .unwrap_or_default()
    }

    /// The replicas (RS) of a partition as the controller holds them.
    pub fn replicas(&self, topic: &str, partition: i32) -> Option<&[i32]> {
        let topic = self.active.as_ref()?.topics.get(topic)?;
        topic
            .assignment
            .get(usize::try_from(partition).ok()?)
            .map(Vec::as_slice)
    }

    /// When the runtime should feed the next [`Event::Tick`] (ms since the
    /// Unix epoch); `None` if nothing is scheduled.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        let active = self.active.as_ref()?;
        let rebalance = self
            .config
            .auto_leader_rebalance_enable
            .then_some(active.next_rebalance_check_ms);
        let retries = active
            .topics
            .values()
            .filter_map(|t| t.deletion_retry_at_ms);
        rebalance.into_iter().chain(retries).min()
    }

    /// Reacts to one event at time `now_ms`; returns what the runtime must do,
    /// in order (see [`Action`]).
    pub fn handle(&mut self, event: Event, now_ms: i64) -> Vec<Action> {
        if let Event::Elected {
            controller_epoch,
            controller_epoch_zk_version,
            brokers,
            topics,
            deleting,
            shutting_down,
        } = event
        {
            let mut live = Liveness {
                brokers,
                shutting_down,
                restarted: Default::default(),
            };
            live.forget_stale_shutdowns();
            let active = Active {
                epoch: controller_epoch,
                epoch_zk_version: controller_epoch_zk_version,
                live,
                topics: topics
                    .into_iter()
                    .map(|(name, record)| (name, Topic::from_record(record)))
                    .collect(),
                next_rebalance_check_ms: now_ms
                    .saturating_add(self.config.leader_imbalance_check_interval_ms.max(1)),
            };
            let active = self.active.insert(active);
            let mut step = Step::new(now_ms, active.epoch);
            active.elected(&self.config, &mut step, deleting);
            return step.into_actions(active.epoch_zk_version);
        }
        let Some(active) = self.active.as_mut() else {
            // Not the controller: events are stale leftovers.
            return Vec::new();
        };
        if !matches!(
            event,
            Event::PartitionStateRead {
                after_failed_write: true,
                ..
            } | Event::TopicReadBack { .. }
        ) {
            // The previous step's writes are settled (see `Liveness::restarted`).
            active.live.restarted.clear();
        }
        let mut step = Step::new(now_ms, active.epoch);
        let resign = match event {
            Event::Elected { .. } => unreachable!("handled above"),
            Event::Fenced => true,
            Event::BrokersChanged { brokers } => {
                active.brokers_changed(&self.config, &mut step, brokers);
                false
            }
            Event::TopicChanged { name, record } => {
                active.topic_changed(&self.config, &mut step, name, record);
                false
            }
            Event::TopicDeletionRequested { name } => {
                active.deletion_requested(&mut step, name);
                false
            }
            Event::TopicDeleted { name } => {
                active.topics.remove(&name);
                false
            }
            Event::PartitionStateRead {
                topic,
                partition,
                state,
                after_failed_write: _,
            } => active.state_read(&self.config, &mut step, &topic, partition, state),
            Event::ControlledShutdown {
                broker,
                broker_epoch,
            } => {
                active.controlled_shutdown(&mut step, broker, broker_epoch);
                false
            }
            Event::ElectLeaders {
                request,
                kind,
                partitions,
            } => {
                active.elect_leaders(&mut step, request, kind, partitions);
                false
            }
            Event::Tick => {
                active.tick(&self.config, &mut step);
                false
            }
            Event::AlterReassignments { request, changes } => {
                active.alter_reassignments(
                    self.config.unclean_leader_election_enable,
                    &mut step,
                    request,
                    changes,
                );
                false
            }
            Event::TopicReadBack { name, record } => {
                active.topic_read_back(
                    self.config.unclean_leader_election_enable,
                    &mut step,
                    &name,
                    record,
                );
                false
            }
        };
        if resign {
            self.active = None;
            return vec![Action::Resign];
        }
        // Any ISR change this step made (a controlled shutdown, an election)
        // may have brought a reassignment's target into the ISR.
        active.complete_reassignments(&mut step);
        step.into_actions(active.epoch_zk_version)
    }

    /// Checks the controller's invariants; tests call it after every step.
    /// For every partition of a topic not being deleted: no state only when
    /// no replica may lead; the leader is -1 or a live ISR member in the
    /// assignment; a leaderless partition has no replica that could lead it;
    /// a state written in this controller's epoch has a non-empty ISR within
    /// the assignment; no state carries a newer controller epoch.
    pub fn check_invariants(&self) -> Result<(), String> {
        match &self.active {
            Some(active) => active.check_invariants(&self.config),
            None => Ok(()),
        }
    }
}
