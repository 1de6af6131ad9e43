//! Runs the controller state machine (`cluster::controller`) on this broker while it holds
//! `/controller`: wins the election, bumps `/controller_epoch`, turns what the control loop
//! read into the machine's events, and carries out its actions as ZooKeeper transactions that
//! all begin with a version check of `/controller_epoch`, so a deposed controller cannot write.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::runtime::{now_ms, ControlLoop};
use super::{view_reader, ElectionResults};
use crate::broker::topics::TopicError;
use crate::cluster::controller::{
    Action, AssignmentWrite, Controller, ControllerConfig, ElectionKind, Event,
    OngoingReassignment, ReassignmentChange, StateWrite, TopicRecord,
};
use crate::cluster::znodes::{self, ControlledShutdownRequest, ControllerZnode};
use crate::cluster::TopicPartition;
use crate::coordination::{CoordinationError, MultiOp, NodeKind};

/// Events one input may cause through failed writes read back; beyond this the controller
/// resigns instead of spinning.
const FEEDBACK_EVENTS_MAX: usize = 10_000;
/// ElectLeaders requests waiting for the machine's answer; beyond this they are refused.
const ELECTIONS_WAITING_MAX: usize = 1024;
/// AlterPartitionReassignments requests waiting for the machine's answer; beyond this they are
/// refused.
const REASSIGNMENTS_WAITING_MAX: usize = 1024;

/// Per partition: success, or the Kafka error code and message.
pub type ReassignmentResults = Vec<((String, i32), Result<(), (i16, String)>)>;

pub(super) struct ControllerDriver {
    machine: Controller,
    epoch: i32,
    /// The version `/controller_epoch` got when this broker bumped it; every write checks it.
    epoch_version: i32,
    /// Set when a newer controller fenced this one; the driver is then dropped.
    resigned: bool,
    /// ElectLeaders requests by their token.
    elections: BTreeMap<u64, oneshot::Sender<Result<ElectionResults, TopicError>>>,
    next_request: u64,
    /// AlterPartitionReassignments requests by their token.
    reassignments: BTreeMap<u64, oneshot::Sender<Result<ReassignmentResults, TopicError>>>,
    /// Controlled-shutdown requests already fed (broker -> epoch).
    shutdowns_seen: BTreeMap<i32, i64>,
    deletions_seen: BTreeSet<String>,
}

fn controller_config(control: &ControlLoop) -> ControllerConfig {
    let config = &control.config;
    ControllerConfig {
        unclean_leader_election_enable: config.unclean_leader_election_enable,
        auto_leader_rebalance_enable: config.auto_leader_rebalance_enable,
        leader_imbalance_check_interval_ms: i64::try_from(
            config
                .leader_imbalance_check_interval_seconds
                .saturating_mul(1000),
        )
        .unwrap_or(i64::MAX),
        leader_imbalance_per_broker_percentage: config.leader_imbalance_per_broker_percentage,
    }
}

fn record_of(control: &ControlLoop, name: &str) -> Option<TopicRecord> {
    control.topics.get(name).map(record_from)
}

fn record_from(topic: &view_reader::StoredTopic) -> TopicRecord {
    TopicRecord {
        id: topic.id,
        assignment: topic.assignment.clone(),
        unclean_leader_election: topic
            .configs
            .get(znodes::UNCLEAN_LEADER_ELECTION_ENABLE)
            .and_then(|value| value.parse().ok()),
        states: topic.states.clone(),
        zk_version: topic.zk_version,
        adding_replicas: topic.adding_replicas.clone(),
        removing_replicas: topic.removing_replicas.clone(),
    }
}

fn broker_epochs(control: &ControlLoop) -> BTreeMap<i32, i64> {
    control
        .brokers
        .iter()
        .map(|(id, (_, epoch))| (*id, *epoch))
        .collect()
}

impl ControllerDriver {
    /// Tries to become controller: create the ephemeral `/controller`, then bump
    /// `/controller_epoch`. `None` if another broker won.
    pub(super) async fn try_become(control: &mut ControlLoop) -> Option<Self> {
        let me = control.config.broker_id;
        let znode = ControllerZnode {
            broker_id: me,
            timestamp_ms: now_ms(),
        };
        match control
            .coordination
            .create(znodes::CONTROLLER_PATH, znode.encode(), NodeKind::Ephemeral)
            .await
        {
            Ok(_) => {}
            Err(CoordinationError::NodeExists { .. }) => return None,
            Err(error) => {
                tracing::warn!(%error, "could not stand for controller");
                return None;
            }
        }
        let (epoch, epoch_version) = match bump_controller_epoch(control).await {
            Ok(found) => found,
            Err(error) => {
                tracing::error!(%error, "won /controller but could not bump /controller_epoch; resigning");
                let _ = control
                    .coordination
                    .delete(znodes::CONTROLLER_PATH, None)
                    .await;
                return None;
            }
        };
        tracing::info!(controller_epoch = epoch, "this broker is the controller");
        Some(ControllerDriver {
            machine: Controller::new(controller_config(control)),
            epoch,
            epoch_version,
            elections: BTreeMap::new(),
            reassignments: BTreeMap::new(),
            next_request: 0,
            shutdowns_seen: BTreeMap::new(),
            deletions_seen: BTreeSet::new(),
            resigned: false,
        })
    }

    /// Feeds the machine the whole cluster as read, right after the election.
    pub(super) async fn on_elected(control: &mut ControlLoop) {
        let Some(mut driver) = control.controller.take() else {
            return;
        };
        let topics: BTreeMap<String, TopicRecord> = control
            .topics
            .keys()
            .filter_map(|name| record_of(control, name).map(|record| (name.clone(), record)))
            .collect();
        let deleting = view_reader::read_deleting(&control.coordination)
            .await
            .unwrap_or_default();
        let shutting_down = read_shutdown_requests(control).await;
        driver.deletions_seen = deleting.clone();
        driver.shutdowns_seen = shutting_down.clone();
        let event = Event::Elected {
            controller_epoch: driver.epoch,
            controller_epoch_zk_version: driver.epoch_version,
            brokers: broker_epochs(control),
            topics,
            deleting,
            shutting_down,
        };
        driver.feed(control, event).await;
        if !driver.resigned {
            control.controller = Some(driver);
        }
    }

    /// Feeds what the last pass of the control loop re-read.
    pub(super) async fn on_changes(
        control: &mut ControlLoop,
        brokers_changed: bool,
        topics_changed: &BTreeSet<String>,
        states_changed: &BTreeSet<(String, i32)>,
        admin_changed: bool,
    ) {
        let Some(mut driver) = control.controller.take() else {
            return;
        };
        if brokers_changed {
            let event = Event::BrokersChanged {
                brokers: broker_epochs(control),
            };
            driver.feed(control, event).await;
        }
        for name in topics_changed {
            let event = match record_of(control, name) {
                Some(record) => Event::TopicChanged {
                    name: name.clone(),
                    record,
                },
                None => Event::TopicDeleted { name: name.clone() },
            };
            driver.feed(control, event).await;
        }
        for (name, index) in states_changed {
            let state = control
                .topics
                .get(name)
                .and_then(|topic| {
                    usize::try_from(*index)
                        .ok()
                        .and_then(|i| topic.states.get(i))
                })
                .cloned()
                .flatten();
            let event = Event::PartitionStateRead {
                topic: name.clone(),
                partition: *index,
                state,
                after_failed_write: false,
            };
            driver.feed(control, event).await;
        }
        if admin_changed {
            let deleting = view_reader::read_deleting(&control.coordination)
                .await
                .unwrap_or_default();
            for name in deleting.difference(&driver.deletions_seen.clone()) {
                driver
                    .feed(
                        control,
                        Event::TopicDeletionRequested { name: name.clone() },
                    )
                    .await;
            }
            driver.deletions_seen = deleting;
            let requests = read_shutdown_requests(control).await;
            for (broker, broker_epoch) in &requests {
                if driver.shutdowns_seen.get(broker) != Some(broker_epoch) {
                    driver
                        .feed(
                            control,
                            Event::ControlledShutdown {
                                broker: *broker,
                                broker_epoch: *broker_epoch,
                            },
                        )
                        .await;
                }
            }
            driver.shutdowns_seen = requests;
        }
        if !driver.resigned {
            control.controller = Some(driver);
        }
    }

    pub(super) async fn on_tick(control: &mut ControlLoop) {
        let Some(mut driver) = control.controller.take() else {
            return;
        };
        let due = driver
            .machine
            .next_deadline_ms()
            .is_some_and(|deadline| deadline <= now_ms());
        if due {
            driver.feed(control, Event::Tick).await;
        }
        if !driver.resigned {
            control.controller = Some(driver);
        }
    }

    pub(super) fn next_deadline_ms(&self) -> Option<i64> {
        self.machine.next_deadline_ms()
    }

    /// ElectLeaders: only the controller runs elections (Kafka routes the request to it).
    pub(super) async fn elect_leaders(
        control: &mut ControlLoop,
        preferred: bool,
        partitions: Option<Vec<TopicPartition>>,
        reply: oneshot::Sender<Result<ElectionResults, TopicError>>,
    ) {
        let Some(mut driver) = control.controller.take() else {
            let _ = reply.send(Err(TopicError::NotController));
            return;
        };
        if driver.elections.len() >= ELECTIONS_WAITING_MAX {
            let _ = reply.send(Err(TopicError::Store("too many elections waiting".into())));
            control.controller = Some(driver);
            return;
        }
        let request = driver.next_request;
        driver.next_request += 1;
        driver.elections.insert(request, reply);
        let kind = if preferred {
            ElectionKind::Preferred
        } else {
            ElectionKind::Unclean
        };
        driver
            .feed(
                control,
                Event::ElectLeaders {
                    request,
                    kind,
                    partitions,
                },
            )
            .await;
        if !driver.resigned {
            control.controller = Some(driver);
        }
    }

    /// AlterPartitionReassignments: only the controller runs them (Kafka routes the request to
    /// it). Per partition the target replicas, or `None` to cancel.
    pub(super) async fn alter_reassignments(
        control: &mut ControlLoop,
        changes: Vec<ReassignmentChange>,
        reply: oneshot::Sender<Result<ReassignmentResults, TopicError>>,
    ) {
        let Some(mut driver) = control.controller.take() else {
            let _ = reply.send(Err(TopicError::NotController));
            return;
        };
        if driver.reassignments.len() >= REASSIGNMENTS_WAITING_MAX {
            let _ = reply.send(Err(TopicError::Store(
                "too many reassignment requests waiting".into(),
            )));
            control.controller = Some(driver);
            return;
        }
        let request = driver.next_request;
        driver.next_request += 1;
        driver.reassignments.insert(request, reply);
        driver
            .feed(control, Event::AlterReassignments { request, changes })
            .await;
        if !driver.resigned {
            control.controller = Some(driver);
        }
    }

    /// ListPartitionReassignments: the controller's ongoing reassignments (NotController on
    /// another broker, as Kafka answers).
    pub(super) fn list_reassignments(
        control: &ControlLoop,
    ) -> Result<Vec<OngoingReassignment>, TopicError> {
        control
            .controller
            .as_ref()
            .map(|driver| driver.machine.reassignments())
            .ok_or(TopicError::NotController)
    }

    /// Steps down on purpose (the broker is stopping): deletes `/controller` if it is ours.
    pub(super) async fn resign(self, coordination: &crate::coordination::Coordination) {
        let _ = coordination.delete(znodes::CONTROLLER_PATH, None).await;
    }

    /// Hands one event to the machine and carries out what it asks, feeding back the outcome
    /// of failed writes until it asks nothing more.
    async fn feed(&mut self, control: &mut ControlLoop, event: Event) {
        let mut events = std::collections::VecDeque::from([event]);
        let mut handled = 0;
        while let Some(event) = events.pop_front() {
            if self.resigned {
                return;
            }
            handled += 1;
            if handled > FEEDBACK_EVENTS_MAX {
                // Writes that keep failing and being read back: a store in trouble. Step down
                // rather than spin; another broker (or this one, later) takes over.
                tracing::error!(handled, "controller feedback does not settle; resigning");
                self.resigned = true;
                return;
            }
            let actions = self.machine.handle(event, now_ms());
            debug_assert!(
                self.machine.check_invariants().is_ok(),
                "controller invariant broken: {:?}",
                self.machine.check_invariants()
            );
            for action in actions {
                events.extend(self.execute(control, action).await);
            }
        }
    }

    /// Carries out one action; returns the events its outcome produces.
    async fn execute(&mut self, control: &mut ControlLoop, action: Action) -> Vec<Event> {
        match action {
            Action::WriteStates {
                controller_epoch_zk_version,
                writes,
            } => write_states(control, controller_epoch_zk_version, writes).await,
            Action::WriteTopic {
                controller_epoch_zk_version,
                assignment,
                states,
            } => write_topic(control, controller_epoch_zk_version, assignment, states).await,
            Action::AlterReassignmentsDone { request, results } => {
                answer_per_partition(self.reassignments.remove(&request), results);
                Vec::new()
            }
            Action::DeleteTopic {
                name,
                controller_epoch_zk_version,
            } => delete_topic(control, &name, controller_epoch_zk_version).await,
            Action::ElectLeadersDone { request, results } => {
                answer_per_partition(self.elections.remove(&request), results);
                Vec::new()
            }
            Action::ControlledShutdownDone {
                broker,
                broker_epoch,
                result,
            } => {
                match &result {
                    Ok(remaining) => tracing::info!(
                        broker,
                        broker_epoch,
                        remaining = remaining.len(),
                        "controlled shutdown: leaderships moved"
                    ),
                    Err(error) => {
                        tracing::warn!(broker, broker_epoch, ?error, "controlled shutdown refused")
                    }
                }
                // The request is done: remove it so a later one of the same broker is seen.
                let _ = control
                    .coordination
                    .delete(&znodes::controlled_shutdown_path(broker), None)
                    .await;
                Vec::new()
            }
            Action::Resign => {
                tracing::warn!("a newer controller exists; this broker stops acting as controller");
                self.resigned = true;
                for (_, reply) in std::mem::take(&mut self.elections) {
                    let _ = reply.send(Err(TopicError::NotController));
                }
                for (_, reply) in std::mem::take(&mut self.reassignments) {
                    let _ = reply.send(Err(TopicError::NotController));
                }
                Vec::new()
            }
        }
    }
}

/// Reads `/controller_epoch` and writes epoch + 1 with a version check (creating it with 1 on
/// a fresh cluster). Returns the new epoch and the znode's new version.
async fn bump_controller_epoch(control: &ControlLoop) -> Result<(i32, i32), String> {
    let path = znodes::CONTROLLER_EPOCH_PATH;
    match control.coordination.get(path).await {
        Ok((data, stat)) => {
            let epoch = znodes::decode_controller_epoch(path, &data).map_err(|e| e.to_string())?;
            let next = epoch + 1;
            let written = control
                .coordination
                .set(
                    path,
                    znodes::encode_controller_epoch(next),
                    Some(stat.version),
                )
                .await
                .map_err(|error| format!("write {path}: {error}"))?;
            Ok((next, written.version))
        }
        Err(CoordinationError::NoNode { .. }) => {
            let written = control
                .coordination
                .create(
                    path,
                    znodes::encode_controller_epoch(1),
                    NodeKind::Persistent,
                )
                .await
                .map_err(|error| format!("create {path}: {error}"))?;
            Ok((1, written.version))
        }
        Err(error) => Err(format!("read {path}: {error}")),
    }
}

async fn read_shutdown_requests(control: &ControlLoop) -> BTreeMap<i32, i64> {
    let mut requests = BTreeMap::new();
    let Ok(children) = control
        .coordination
        .children(znodes::CONTROLLED_SHUTDOWN_PATH)
        .await
    else {
        return requests;
    };
    for child in children {
        let Ok(broker) = child.parse::<i32>() else {
            continue;
        };
        let path = znodes::controlled_shutdown_path(broker);
        if let Ok((data, _)) = control.coordination.get(&path).await {
            match ControlledShutdownRequest::decode(&path, &data) {
                Ok(request) => {
                    requests.insert(broker, request.broker_epoch);
                }
                Err(error) => tracing::warn!(%error, "ignoring a controlled-shutdown request"),
            }
        }
    }
    requests
}

/// One guarded transaction writing partition states. On a failed version check of a state,
/// the current states are read back for the machine; on a failed epoch check, it is fenced.
async fn write_states(
    control: &mut ControlLoop,
    controller_epoch_zk_version: i32,
    writes: Vec<StateWrite>,
) -> Vec<Event> {
    let mut ops = vec![MultiOp::Check {
        path: znodes::CONTROLLER_EPOCH_PATH.to_string(),
        version: controller_epoch_zk_version,
    }];
    // A state znode's parents must exist before it can be created: create the missing ones in
    // the same transaction (one listing per topic), not one write each, so a topic with
    // thousands of partitions costs one transaction per batch.
    ops.extend(missing_parents(control, &writes).await);
    ops.extend(writes.iter().map(state_write_op));
    match control.coordination.multi(ops).await {
        Ok(()) => {
            for write in &writes {
                tracing::debug!(topic = %write.topic, partition = write.partition, leader = write.state.leader, leader_epoch = write.state.leader_epoch, isr = ?write.state.isr, "partition state written");
            }
            crate::metrics::count_leader_elections(
                writes
                    .iter()
                    .filter(|write| write.state.leader != crate::broker::topics::NO_LEADER)
                    .count() as u64,
            );
            Vec::new()
        }
        Err(error) if fenced(&error) => {
            tracing::warn!(%error, "controller write refused: /controller_epoch moved on");
            vec![Event::Fenced]
        }
        Err(error) if session_lost(&error) => {
            // Without the session this broker cannot vouch for being controller: step down;
            // the control loop stands again once it has a session.
            tracing::warn!(%error, "controller write failed without a session; resigning");
            vec![Event::Fenced]
        }
        Err(error) => {
            tracing::info!(%error, writes = writes.len(), "partition state write lost a race; reading them back");
            let mut events = Vec::with_capacity(writes.len());
            let mut gone_topics = BTreeSet::new();
            for write in writes {
                if gone_topics.contains(&write.topic) {
                    continue;
                }
                let topic_exists = control
                    .coordination
                    .exists(&znodes::topic_path(&write.topic))
                    .await
                    .map_or(true, |stat| stat.is_some());
                if !topic_exists {
                    gone_topics.insert(write.topic.clone());
                    events.push(Event::TopicDeleted {
                        name: write.topic.clone(),
                    });
                    continue;
                }
                let state = match view_reader::read_partition_state(
                    &control.coordination,
                    &write.topic,
                    write.partition,
                )
                .await
                {
                    Ok(state) => state,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read states back; resigning");
                        return vec![Event::Fenced];
                    }
                };
                events.push(Event::PartitionStateRead {
                    topic: write.topic,
                    partition: write.partition,
                    state,
                    after_failed_write: true,
                });
            }
            events
        }
    }
}

/// One guarded transaction writing a topic's assignment znode and states of its partitions (a
/// reassignment step). On any failure but a fenced epoch, the topic is read back for the machine.
async fn write_topic(
    control: &mut ControlLoop,
    controller_epoch_zk_version: i32,
    assignment: AssignmentWrite,
    states: Vec<StateWrite>,
) -> Vec<Event> {
    let mut ops = vec![
        MultiOp::Check {
            path: znodes::CONTROLLER_EPOCH_PATH.to_string(),
            version: controller_epoch_zk_version,
        },
        MultiOp::Set {
            path: znodes::topic_path(&assignment.topic),
            data: assignment.assignment.encode(),
            version: Some(assignment.expected_zk_version),
        },
    ];
    ops.extend(missing_parents(control, &states).await);
    ops.extend(states.iter().map(state_write_op));
    match control.coordination.multi(ops).await {
        Ok(()) => {
            tracing::info!(topic = %assignment.topic, replicas = ?assignment.assignment.partitions, adding = ?assignment.assignment.adding_replicas, removing = ?assignment.assignment.removing_replicas, "topic assignment written");
            Vec::new()
        }
        Err(error) if fenced(&error) => {
            tracing::warn!(%error, "controller write refused: /controller_epoch moved on");
            vec![Event::Fenced]
        }
        Err(error) if session_lost(&error) => {
            tracing::warn!(%error, "controller write failed without a session; resigning");
            vec![Event::Fenced]
        }
        Err(error) => {
            tracing::info!(%error, topic = %assignment.topic, "topic assignment write lost a race; reading it back");
            match view_reader::read_topic(&control.coordination, &assignment.topic).await {
                Ok(stored) => vec![Event::TopicReadBack {
                    record: stored.as_ref().map(record_from),
                    name: assignment.topic,
                }],
                Err(error) => {
                    tracing::warn!(%error, "cannot read the topic back; resigning");
                    vec![Event::Fenced]
                }
            }
        }
    }
}

/// Creates for the `/brokers/topics/<t>/partitions[/<p>]` nodes that the state creates in
/// `writes` need and that do not exist yet.
/// Answers a per-partition admin request (ElectLeaders, AlterPartitionReassignments) whose
/// caller may still wait: each partition's error as the (code, message) the handler sends.
fn answer_per_partition<T, Collected>(
    reply: Option<oneshot::Sender<Result<Collected, TopicError>>>,
    results: Vec<(
        (String, i32),
        Result<T, kafka_protocol::error::ResponseError>,
    )>,
) where
    Collected: FromIterator<((String, i32), Result<T, (i16, String)>)>,
{
    if let Some(reply) = reply {
        let results = results
            .into_iter()
            .map(|(partition, result)| {
                (
                    partition,
                    result.map_err(|error| (error.code(), error.to_string())),
                )
            })
            .collect();
        let _ = reply.send(Ok(results));
    }
}

/// The transaction step that writes one partition state: a create where none exists yet
/// (`expected_zk_version` < 0), else a set conditional on the version the controller read.
fn state_write_op(write: &StateWrite) -> MultiOp {
    let path = znodes::partition_state_path(&write.topic, write.partition);
    if write.expected_zk_version < 0 {
        MultiOp::Create {
            path,
            data: write.state.encode(),
            kind: NodeKind::Persistent,
        }
    } else {
        MultiOp::Set {
            path,
            data: write.state.encode(),
            version: Some(write.expected_zk_version),
        }
    }
}

async fn missing_parents(control: &ControlLoop, writes: &[StateWrite]) -> Vec<MultiOp> {
    let mut ops = Vec::new();
    let mut listed: BTreeMap<&str, Option<BTreeSet<String>>> = BTreeMap::new();
    for write in writes.iter().filter(|write| write.expected_zk_version < 0) {
        let children = match listed.get(write.topic.as_str()) {
            Some(children) => children.clone(),
            None => {
                let children = match control
                    .coordination
                    .children(&znodes::partitions_path(&write.topic))
                    .await
                {
                    Ok(children) => Some(children.into_iter().collect::<BTreeSet<_>>()),
                    Err(_) => None,
                };
                if children.is_none() {
                    ops.push(MultiOp::Create {
                        path: znodes::partitions_path(&write.topic),
                        data: Bytes::new(),
                        kind: NodeKind::Persistent,
                    });
                }
                listed.insert(
                    write.topic.as_str(),
                    Some(children.clone().unwrap_or_default()),
                );
                children
            }
        };
        let partition = write.partition.to_string();
        if !children.is_some_and(|children| children.contains(&partition)) {
            ops.push(MultiOp::Create {
                path: znodes::partition_path(&write.topic, write.partition),
                data: Bytes::new(),
                kind: NodeKind::Persistent,
            });
        }
    }
    ops
}

/// The path a failed operation names.
fn error_path(error: &CoordinationError) -> Option<&str> {
    match error {
        CoordinationError::BadVersion { path, .. }
        | CoordinationError::NoNode { path }
        | CoordinationError::NodeExists { path }
        | CoordinationError::NotEmpty { path, .. } => Some(path),
        _ => None,
    }
}

/// Whether an operation failed because the session is gone or unreachable (as opposed to a
/// version check or a missing node): the outcome of a write is then unknown.
fn session_lost(error: &CoordinationError) -> bool {
    matches!(
        error,
        CoordinationError::SessionExpired
            | CoordinationError::ConnectionLoss
            | CoordinationError::Closed
            | CoordinationError::Timeout { .. }
    )
}

/// Whether a failed transaction failed because `/controller_epoch` moved (a newer controller).
fn fenced(error: &CoordinationError) -> bool {
    error_path(error) == Some(znodes::CONTROLLER_EPOCH_PATH)
}

/// Deletes a topic's znodes in one guarded transaction (children first), then the deletion
/// request.
async fn delete_topic(control: &mut ControlLoop, name: &str, epoch_version: i32) -> Vec<Event> {
    let mut paths = Vec::new();
    let topic_path = znodes::topic_path(name);
    collect_subtree(&control.coordination, &topic_path, &mut paths).await;
    let mut ops = vec![MultiOp::Check {
        path: znodes::CONTROLLER_EPOCH_PATH.to_string(),
        version: epoch_version,
    }];
    // Deepest first, so every node is empty when deleted.
    for path in paths.iter().rev() {
        ops.push(MultiOp::Delete {
            path: path.clone(),
            version: None,
        });
    }
    let config_path = znodes::topic_config_path(name);
    if let Ok(Some(_)) = control.coordination.exists(&config_path).await {
        ops.push(MultiOp::Delete {
            path: config_path,
            version: None,
        });
    }
    let request_path = znodes::delete_topic_path(name);
    if let Ok(Some(_)) = control.coordination.exists(&request_path).await {
        ops.push(MultiOp::Delete {
            path: request_path,
            version: None,
        });
    }
    match control.coordination.multi(ops).await {
        Ok(()) => {
            tracing::info!(topic = name, "deleted topic");
            vec![Event::TopicDeleted {
                name: name.to_string(),
            }]
        }
        Err(error) if fenced(&error) || session_lost(&error) => vec![Event::Fenced],
        Err(error) => {
            // Retried on a later tick by the machine.
            tracing::warn!(topic = name, %error, "topic deletion did not complete; will retry");
            Vec::new()
        }
    }
}

/// `path` and every node below it, parents before children.
async fn collect_subtree(
    coordination: &crate::coordination::Coordination,
    path: &str,
    out: &mut Vec<String>,
) {
    let mut pending = vec![path.to_string()];
    while let Some(next) = pending.pop() {
        match coordination.children(&next).await {
            Ok(children) => {
                out.push(next.clone());
                pending.extend(children.into_iter().map(|child| format!("{next}/{child}")));
            }
            Err(_) => continue,
        }
    }
    out.sort_by_key(|path| path.matches('/').count());
}
