//! What goes into a [`super::Controller`] and what comes out.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::cluster::znodes::{PartitionState, TopicAssignment};
use crate::cluster::TopicPartition;

/// The broker settings the controller needs (parsed by the broker's config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `unclean.leader.election.enable`: the default for topics without an override.
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms.
    pub leader_imbalance_check_interval_ms: i64,
    /// `leader.imbalance.per.broker.percentage`: a broker whose preferred
    /// partitions are led elsewhere more than this share is rebalanced.
    pub leader_imbalance_per_broker_percentage: u32,
}

impl Default for ControllerConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        Self {
            unclean_leader_election_enable: false,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
        }
    }
}

/// A topic as the runtime read it from ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    /// From `/brokers/topics/<t>`; a different id under the same name is a
    /// different topic (deleted and created again).
    pub id: Uuid,
    /// Assigned replicas of partition `i` at index `i`, preferred leader first.
    pub assignment: Vec<Vec<i32>>,
    /// The topic's `unclean.leader.election.enable` override, if any.
    pub unclean_leader_election: Option<bool>,
    /// The state znode of each partition (same length as `assignment`);
    /// `None` where it does not exist yet.
    pub states: Vec<Option<PartitionState>>,
    /// The version of `/brokers/topics/<t>` this record was read at: the
    /// controller writes the assignment (reassignments) over it, and ignores
    /// a record older than its own last write.
    pub zk_version: i32,
    /// Partition -> replicas being added by an ongoing reassignment (KIP-455's
    /// `adding_replicas` in the topic znode).
    pub adding_replicas: BTreeMap<i32, Vec<i32>>,
    /// Partition -> replicas being removed by an ongoing reassignment.
    pub removing_replicas: BTreeMap<i32, Vec<i32>>,
}

/// Which election ElectLeaders asks for (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionKind {
    /// Move leadership to the first assigned replica.
    Preferred,
    /// Elect a leader for a partition without one, even out of the ISR.
    Unclean,
}

/// Everything the controller reacts to. The runtime builds these from znodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// This broker became controller: it incremented `/controller_epoch` to
    /// `controller_epoch`, whose znode now has version
    /// `controller_epoch_zk_version`, then read the cluster.
    Elected {
        controller_epoch: i32,
        controller_epoch_zk_version: i32,
        /// Live brokers: id -> broker epoch (czxid of `/brokers/ids/<id>`).
        brokers: BTreeMap<i32, i64>,
        topics: BTreeMap<String, TopicRecord>,
        /// Children of `/admin/delete_topics`.
        deleting: BTreeSet<String>,
        /// Children of `/admin/controlled_shutdown`: id -> broker epoch.
        shutting_down: BTreeMap<i32, i64>,
    },
    /// The live brokers changed: id -> broker epoch. A broker whose epoch
    /// changed restarted (or re-registered after its session expired): it
    /// counts as a death followed by a join.
    BrokersChanged { brokers: BTreeMap<i32, i64> },
    /// A topic was created, or its assignment or config changed (partitions
    /// added). The record's states are what the runtime read.
    TopicChanged { name: String, record: TopicRecord },
    /// `/admin/delete_topics/<name>` appeared.
    TopicDeletionRequested { name: String },
    /// A [`Action::DeleteTopic`] completed, or `/brokers/topics/<name>` is gone.
    TopicDeleted { name: String },
    /// The current state znode of a partition (`None`: it does not exist).
    /// Fed after a [`Action::WriteStates`] failed, for every partition of
    /// that write (`after_failed_write`), and when a leader changed the ISR
    /// (`/isr_change_notification`, or a watch on the state znode).
    PartitionStateRead {
        topic: String,
        partition: i32,
        state: Option<PartitionState>,
        /// Read back because the controller's own write failed: the
        /// controller re-applies what that write meant.
        after_failed_write: bool,
    },
    /// A write's check of `/controller_epoch` failed: a newer controller exists.
    Fenced,
    /// `/admin/controlled_shutdown/<broker>` appeared (or changed).
    ControlledShutdown { broker: i32, broker_epoch: i64 },
    /// An ElectLeaders request; `partitions: None` means every partition.
    ElectLeaders {
        request: u64,
        kind: ElectionKind,
        partitions: Option<Vec<TopicPartition>>,
    },
    /// Time passed; see [`super::Controller::next_deadline_ms`].
    Tick,
    /// AlterPartitionReassignments: per partition the target replicas, or
    /// `None` to cancel an ongoing reassignment (revert to the original
    /// replicas).
    AlterReassignments {
        request: u64,
        changes: Vec<ReassignmentChange>,
    },
    /// The topic as read back after a [`Action::WriteTopic`] failed (`None`:
    /// it is gone). The controller adopts it, then redoes what its write
    /// meant for each partition whose replicas differ.
    TopicReadBack {
        name: String,
        record: Option<TopicRecord>,
    },
}

/// A partition and the target replicas it is to be reassigned to (`None`: cancel its
/// reassignment).
pub type ReassignmentChange = (TopicPartition, Option<Vec<i32>>);

/// One write of a topic's assignment znode, `/brokers/topics/<t>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentWrite {
    pub topic: String,
    /// The whole znode: replicas (RS = original + target during a
    /// reassignment), adding and removing replicas, the topic id.
    pub assignment: TopicAssignment,
    /// `Set` with this version.
    pub expected_zk_version: i32,
}

/// An ongoing reassignment, as ListPartitionReassignments shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// RS: the original and the target replicas.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// One partition state znode to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    pub topic: String,
    pub partition: i32,
    /// The new contents; `state.zk_version` is the version the znode will have
    /// once written (`expected_zk_version + 1`, or 0 for a create).
    pub state: PartitionState,
    /// `Set` with this version, or `Create` (parents included) when -1.
    pub expected_zk_version: i32,
}

/// What the runtime must do, in the order given. Execute all the actions of
/// one `handle` call (and feed back the results of failed writes) before
/// feeding the next event: the controller assumes its writes succeed, and a
/// later write is based on an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// One ZooKeeper `multi`: `Check("/controller_epoch",
    /// controller_epoch_zk_version)` then one op per state: `Set` with the
    /// expected version, or for -1 a `Create` (preceded in the same multi by
    /// `Create`s of `/brokers/topics/<t>/partitions` and `.../<p>` where
    /// missing; never create `/brokers/topics/<t>` itself). At most
    /// [`super::STATE_WRITES_PER_MULTI_MAX`] states.
    ///
    /// All or nothing. If the epoch check fails, feed [`Event::Fenced`]. If
    /// another op fails (BadVersion, NodeExists, NoNode), or the outcome is
    /// unknown (connection loss, timeout), read every partition of this write
    /// and feed one [`Event::PartitionStateRead`] each; but for a topic whose
    /// `/brokers/topics/<t>` is gone, feed [`Event::TopicDeleted`] instead.
    WriteStates {
        controller_epoch_zk_version: i32,
        writes: Vec<StateWrite>,
    },
    /// Delete the topic: `/brokers/topics/<name>` and everything below,
    /// `/config/topics/<name>`, then `/admin/delete_topics/<name>`, guarded by
    /// the same `/controller_epoch` check; then feed [`Event::TopicDeleted`].
    /// Repeated on a later Tick if no TopicDeleted came.
    DeleteTopic {
        name: String,
        controller_epoch_zk_version: i32,
    },
    /// The answer to [`Event::ElectLeaders`]: per partition the leader the
    /// controller decided on (its write comes earlier in the same list; if
    /// that write fails the partition is decided again from the state read
    /// back, like any other), or the error Kafka gives (ELECTION_NOT_NEEDED,
    /// PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE,
    /// UNKNOWN_TOPIC_OR_PARTITION). In the order asked.
    ElectLeadersDone {
        request: u64,
        results: Vec<(TopicPartition, Result<i32, ResponseError>)>,
    },
    /// The answer to [`Event::ControlledShutdown`]: the partitions the broker
    /// still leads (no other replica could take over), or STALE_BROKER_EPOCH
    /// when the request came from an older incarnation of the broker.
    ControlledShutdownDone {
        broker: i32,
        broker_epoch: i64,
        result: Result<Vec<TopicPartition>, ResponseError>,
    },
    /// A newer controller exists: stop acting as controller (the state machine
    /// ignores every event until the next `Elected`).
    Resign,
    /// One ZooKeeper `multi`: `Check("/controller_epoch", ..)`, `Set` of
    /// `/brokers/topics/<t>` at the expected version, then the states (as in
    /// [`Action::WriteStates`]; they belong to the same topic and carry the
    /// leader epoch that tells the replicas their new replica set, so they
    /// must never be seen without the assignment). All or nothing. If the
    /// epoch check fails feed [`Event::Fenced`]; if anything else fails, read
    /// the topic and feed [`Event::TopicReadBack`].
    WriteTopic {
        controller_epoch_zk_version: i32,
        assignment: AssignmentWrite,
        states: Vec<StateWrite>,
    },
    /// The answer to [`Event::AlterReassignments`], in the order asked: per
    /// partition success (its writes come earlier in the same list) or
    /// Kafka's error (UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT,
    /// NO_REASSIGNMENT_IN_PROGRESS).
    AlterReassignmentsDone {
        request: u64,
        results: Vec<(TopicPartition, Result<(), ResponseError>)>,
    },
}
