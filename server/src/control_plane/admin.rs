//! Admin requests the shards hand to the control plane: topic creation (CreateTopics,
//! auto-creation, `__consumer_offsets`), partition creation, topic deletion, leader elections,
//! and producer-id blocks. Any broker writes the topic znodes, as Kafka 2.8's brokers did; the
//! controller then elects leaders. A request is answered once this broker's own view shows the
//! outcome (so the client can use the topic through this broker at once), or when its timeout
//! passes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::runtime::ControlLoop;
use super::{AlterIsrError, ControlRequest, IsrChange};
use crate::broker::config_ops::{apply_change_with, ConfigChange};
use crate::broker::dynamic_config::{validate_dynamic_configs, DEFAULT_ENTITY};
use crate::broker::group_placement::OFFSETS_TOPIC;
use crate::broker::topic_config::validate_topic_configs;
use crate::broker::topics::{validate_new_topic, TopicError, TopicMetadata};
use crate::cluster::assignment;
use crate::cluster::znodes::{self, PartitionState, ProducerIdBlock, TopicAssignment, TopicConfig};
use crate::coordination::{CoordinationError, MultiOp, NodeKind};

/// Ids reserved per write of `/latest_producer_id_block` (Kafka's block size).
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Waiting admin requests; beyond this a request is refused rather than queued.
const WAITERS_MAX: usize = 10_000;
/// Read-modify-write attempts of a topic's config znode when other brokers write it meanwhile.
const CONFIG_WRITE_ATTEMPTS_MAX: usize = 5;
/// How long a config change waits for this broker's view to show it before answering anyway
/// (the znode is written by then; the view follows within a watch round trip).
const CONFIG_VISIBLE_WAIT_MS: u64 = 5_000;
/// Segment size of `__consumer_offsets` (Kafka's offsets.topic.segment.bytes default).
const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "104857600";

/// A topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Explicit replica assignment (CreateTopics `assignments`): (partition, replicas).
    pub assignment: Option<Vec<(i32, Vec<i32>)>>,
    pub configs: BTreeMap<String, String>,
}

/// A request waiting for the view to show its outcome.
pub struct Waiter {
    deadline: Instant,
    outcome: PendingOutcome,
}

impl Waiter {
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

pub enum PendingOutcome {
    Created {
        name: String,
        /// What was written (leaders not elected yet).
        written: TopicMetadata,
        reply: oneshot::Sender<Result<TopicMetadata, TopicError>>,
    },
    Grown {
        name: String,
        old: i32,
        new_total: i32,
        reply: oneshot::Sender<Result<i32, TopicError>>,
    },
    Deleted {
        name: String,
        deleted: TopicMetadata,
        reply: oneshot::Sender<Result<TopicMetadata, TopicError>>,
    },
    /// A topic's config overrides were written; answered once this broker's view has them, so
    /// a DescribeConfigs through this broker right after shows them.
    ConfigsChanged {
        name: String,
        configs: BTreeMap<String, String>,
        reply: oneshot::Sender<Result<BTreeMap<String, String>, TopicError>>,
    },
    /// A broker entity's dynamic configs were written; answered once this broker applies them
    /// (at once for another broker's entity).
    BrokerConfigsChanged {
        entity: String,
        configs: BTreeMap<String, String>,
        reply: oneshot::Sender<Result<BTreeMap<String, String>, TopicError>>,
    },
}

impl PendingOutcome {
    /// Answers if the view shows the outcome; gives itself back otherwise.
    fn try_answer(self, control: &ControlLoop) -> Option<Self> {
        match self {
            PendingOutcome::Created {
                name,
                written,
                reply,
            } => match control.view.get(&name) {
                Some(topic) if topic.id == written.id && topic.all_partitions_led() => {
                    let _ = reply.send(Ok(topic));
                    None
                }
                _ => Some(PendingOutcome::Created {
                    name,
                    written,
                    reply,
                }),
            },
            PendingOutcome::Grown {
                name,
                old,
                new_total,
                reply,
            } => match control.view.get(&name) {
                Some(topic) if topic.partitions >= new_total && topic.all_partitions_led() => {
                    let _ = reply.send(Ok(old));
                    None
                }
                _ => Some(PendingOutcome::Grown {
                    name,
                    old,
                    new_total,
                    reply,
                }),
            },
            PendingOutcome::Deleted {
                name,
                deleted,
                reply,
            } => match control.view.get(&name) {
                Some(topic) if topic.id == deleted.id => Some(PendingOutcome::Deleted {
                    name,
                    deleted,
                    reply,
                }),
                _ => {
                    let _ = reply.send(Ok(deleted));
                    None
                }
            },
            PendingOutcome::ConfigsChanged {
                name,
                configs,
                reply,
            } => match control.view.get(&name) {
                // Gone meanwhile: nothing more to wait for.
                Some(topic) if topic.configs != configs => Some(PendingOutcome::ConfigsChanged {
                    name,
                    configs,
                    reply,
                }),
                _ => {
                    let _ = reply.send(Ok(configs));
                    None
                }
            },
            PendingOutcome::BrokerConfigsChanged {
                entity,
                configs,
                reply,
            } => {
                let applied = control
                    .view
                    .dynamic_broker_configs()
                    .map(|(dynamic, _)| dynamic);
                let visible = if entity == DEFAULT_ENTITY {
                    applied.is_some_and(|dynamic| dynamic.cluster_default == configs)
                } else if entity == control.config.broker_id.to_string() {
                    applied.is_some_and(|dynamic| dynamic.this_broker == configs)
                } else {
                    true
                };
                if visible {
                    let _ = reply.send(Ok(configs));
                    None
                } else {
                    Some(PendingOutcome::BrokerConfigsChanged {
                        entity,
                        configs,
                        reply,
                    })
                }
            }
        }
    }

    /// A request with no time to wait (timeout 0): Kafka answers at once that the change was
    /// made; it completes in the background.
    fn answer_now(self) {
        match self {
            PendingOutcome::Created { written, reply, .. } => {
                let _ = reply.send(Ok(written));
            }
            PendingOutcome::Grown { old, reply, .. } => {
                let _ = reply.send(Ok(old));
            }
            PendingOutcome::Deleted { deleted, reply, .. } => {
                let _ = reply.send(Ok(deleted));
            }
            PendingOutcome::ConfigsChanged { configs, reply, .. }
            | PendingOutcome::BrokerConfigsChanged { configs, reply, .. } => {
                let _ = reply.send(Ok(configs));
            }
        }
    }

    /// Kafka answers REQUEST_TIMED_OUT when the change was made but not yet visible.
    fn time_out(self) {
        let error = |name: &str| {
            TopicError::TimedOut(format!("{name}: the controller has not finished yet"))
        };
        match self {
            PendingOutcome::Created { name, reply, .. } => {
                let _ = reply.send(Err(error(&name)));
            }
            PendingOutcome::Grown { name, reply, .. } => {
                let _ = reply.send(Err(error(&name)));
            }
            PendingOutcome::Deleted { name, reply, .. } => {
                let _ = reply.send(Err(error(&name)));
            }
            // The write succeeded; only this broker's view lags. Kafka answers once the
            // znode is written, so this is a success too.
            PendingOutcome::ConfigsChanged { configs, reply, .. }
            | PendingOutcome::BrokerConfigsChanged { configs, reply, .. } => {
                let _ = reply.send(Ok(configs));
            }
        }
    }
}

fn store_error(error: CoordinationError) -> TopicError {
    TopicError::Store(error.to_string())
}

fn wait(control: &mut ControlLoop, timeout_ms: u64, outcome: PendingOutcome) {
    // Already visible (e.g. the view moved while the write was in flight).
    let Some(outcome) = outcome.try_answer(control) else {
        return;
    };
    if timeout_ms == 0 {
        outcome.answer_now();
        return;
    }
    if control.waiters.len() >= WAITERS_MAX {
        outcome.time_out();
        return;
    }
    control.waiters.push(Waiter {
        deadline: Instant::now() + Duration::from_millis(timeout_ms),
        outcome,
    });
}

/// Answers every waiting request whose outcome the view now shows.
pub(super) fn answer_waiters(control: &mut ControlLoop) {
    let waiters = std::mem::take(&mut control.waiters);
    for waiter in waiters {
        if let Some(outcome) = waiter.outcome.try_answer(control) {
            control.waiters.push(Waiter {
                deadline: waiter.deadline,
                outcome,
            });
        }
    }
}

/// Times out waiting requests whose deadline passed.
pub(super) fn expire_waiters(control: &mut ControlLoop) {
    let now = Instant::now();
    let (expired, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut control.waiters)
        .into_iter()
        .partition(|waiter| waiter.deadline <= now);
    control.waiters = waiting;
    for waiter in expired {
        waiter.outcome.time_out();
    }
}

pub(super) async fn handle(control: &mut ControlLoop, request: ControlRequest) {
    match request {
        ControlRequest::CreateTopic {
            topic,
            validate_only,
            timeout_ms,
            reply,
        } => match create_topic(control, &topic, validate_only).await {
            Ok(validated) if validate_only => {
                let _ = reply.send(Ok(validated));
            }
            Ok(written) => wait(
                control,
                timeout_ms,
                PendingOutcome::Created {
                    name: topic.name,
                    written,
                    reply,
                },
            ),
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        },
        ControlRequest::CreatePartitions {
            name,
            new_total,
            assignment,
            validate_only,
            timeout_ms,
            reply,
        } => match create_partitions(control, &name, new_total, assignment, validate_only).await {
            Ok(old) if validate_only => {
                let _ = reply.send(Ok(old));
            }
            Ok(old) => wait(
                control,
                timeout_ms,
                PendingOutcome::Grown {
                    name,
                    old,
                    new_total,
                    reply,
                },
            ),
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        },
        ControlRequest::DeleteTopic {
            name,
            timeout_ms,
            reply,
        } => match delete_topic(control, &name).await {
            Ok(deleted) => wait(
                control,
                timeout_ms,
                PendingOutcome::Deleted {
                    name,
                    deleted,
                    reply,
                },
            ),
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        },
        ControlRequest::AlterTopicConfigs {
            name,
            change,
            validate_only,
            reply,
        } => match alter_topic_configs(control, &name, &change, validate_only).await {
            Ok(configs) if validate_only => {
                let _ = reply.send(Ok(configs));
            }
            Ok(configs) => wait(
                control,
                CONFIG_VISIBLE_WAIT_MS,
                PendingOutcome::ConfigsChanged {
                    name,
                    configs,
                    reply,
                },
            ),
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        },
        ControlRequest::AlterBrokerConfigs {
            entity,
            change,
            validate_only,
            reply,
        } => match alter_broker_configs(control, &entity, &change, validate_only).await {
            Ok(configs) if validate_only => {
                let _ = reply.send(Ok(configs));
            }
            Ok(configs) => wait(
                control,
                CONFIG_VISIBLE_WAIT_MS,
                PendingOutcome::BrokerConfigsChanged {
                    entity,
                    configs,
                    reply,
                },
            ),
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        },
        ControlRequest::ElectLeaders {
            preferred,
            partitions,
            reply,
        } => {
            super::controller_driver::ControllerDriver::elect_leaders(
                control, preferred, partitions, reply,
            )
            .await;
        }
        ControlRequest::AlterReassignments { changes, reply } => {
            super::controller_driver::ControllerDriver::alter_reassignments(
                control, changes, reply,
            )
            .await;
        }
        ControlRequest::ListReassignments { reply } => {
            let _ =
                reply.send(super::controller_driver::ControllerDriver::list_reassignments(control));
        }
        ControlRequest::AlterIsr { change, reply } => {
            let _ = reply.send(alter_isr(control, &change).await);
        }
        ControlRequest::EnsureOffsetsTopic => ensure_offsets_topic(control).await,
        ControlRequest::ReserveProducerIds { reply } => {
            let _ = reply.send(reserve_producer_ids(control).await);
        }
        ControlRequest::Attach(_)
        | ControlRequest::ControlledShutdown { .. }
        | ControlRequest::Stop => {
            unreachable!("handled by the control loop")
        }
    }
}

/// Reads a topic's overrides, applies `change`, validates the result and (unless
/// `validate_only`) writes it (see [`alter_config_znode`]). Returns the overrides as written.
async fn alter_topic_configs(
    control: &mut ControlLoop,
    name: &str,
    change: &ConfigChange,
    validate_only: bool,
) -> Result<BTreeMap<String, String>, TopicError> {
    let path = znodes::topic_config_path(name);
    let topic = name.to_string();
    alter_config_znode(
        control,
        &path,
        change,
        validate_only,
        &|control: &ControlLoop| {
            if control.topics.contains_key(&topic) {
                Ok(())
            } else {
                Err(TopicError::Unknown(topic.clone()))
            }
        },
        &validate_topic_configs,
    )
    .await
}

/// The dynamic configs of a broker entity (`<default>` or an id), changed like a topic's.
async fn alter_broker_configs(
    control: &mut ControlLoop,
    entity: &str,
    change: &ConfigChange,
    validate_only: bool,
) -> Result<BTreeMap<String, String>, TopicError> {
    let path = znodes::broker_config_path(entity);
    let static_config = control.config.clone();
    alter_config_znode(
        control,
        &path,
        change,
        validate_only,
        &|_: &ControlLoop| Ok(()),
        &|configs: &BTreeMap<String, String>| validate_dynamic_configs(&static_config, configs),
    )
    .await
}

/// Checks a config znode's whole new content.
type ConfigValidator<'a> = dyn Fn(&BTreeMap<String, String>) -> Result<(), TopicError> + 'a;

/// Reads a config znode (`{"version":1,"config":{...}}`), applies `change`, validates the result
/// and (unless `validate_only`) writes it over the version it read, retrying when another broker
/// wrote in between. `exists` says whether the entity is there to be configured.
async fn alter_config_znode(
    control: &mut ControlLoop,
    path: &str,
    change: &ConfigChange,
    validate_only: bool,
    exists: &dyn Fn(&ControlLoop) -> Result<(), TopicError>,
    validate: &ConfigValidator<'_>,
) -> Result<BTreeMap<String, String>, TopicError> {
    for _ in 0..CONFIG_WRITE_ATTEMPTS_MAX {
        exists(control)?;
        let (current, version) = match control.coordination.get(path).await {
            Ok((data, stat)) => {
                let current = TopicConfig::decode(path, &data)
                    .map(|config| config.config)
                    .unwrap_or_else(|error| {
                        tracing::warn!(%error, "replacing unreadable configs");
                        BTreeMap::new()
                    });
                (current, Some(stat.version))
            }
            Err(CoordinationError::NoNode { .. }) => (BTreeMap::new(), None),
            Err(error) => return Err(store_error(error)),
        };
        let next = apply_change_with(&current, change, validate)?;
        if validate_only {
            return Ok(next);
        }
        let data = TopicConfig {
            config: next.clone(),
        }
        .encode();
        let written = match version {
            Some(version) => control
                .coordination
                .set(path, data, Some(version))
                .await
                .map(|_| ()),
            None => control
                .coordination
                .create(path, data, NodeKind::Persistent)
                .await
                .map(|_| ()),
        };
        match written {
            Ok(()) => {
                tracing::info!(path, configs = ?next, "configs changed");
                return Ok(next);
            }
            // Another broker changed them since the read: apply the change to theirs.
            Err(CoordinationError::BadVersion { .. } | CoordinationError::NodeExists { .. }) => {}
            Err(error) => return Err(store_error(error)),
        }
    }
    Err(TopicError::Store(format!(
        "{path}: configs kept changing under {CONFIG_WRITE_ATTEMPTS_MAX} attempts"
    )))
}

/// Live broker ids, sorted.
fn live_brokers(control: &ControlLoop) -> Vec<i32> {
    control.brokers.keys().copied().collect()
}

/// Validates, assigns replicas and (unless `validate_only`) writes the topic's znodes.
/// Returns the topic as written, leaders not yet elected.
async fn create_topic(
    control: &mut ControlLoop,
    topic: &NewTopic,
    validate_only: bool,
) -> Result<TopicMetadata, TopicError> {
    let live = live_brokers(control);
    let (partitions, replication_factor) = match &topic.assignment {
        Some(explicit) => (
            i32::try_from(explicit.len()).unwrap_or(i32::MAX),
            explicit.first().map_or(0, |(_, replicas)| {
                i16::try_from(replicas.len()).unwrap_or(i16::MAX)
            }),
        ),
        None => (topic.partitions, topic.replication_factor),
    };
    validate_new_topic(
        &topic.name,
        partitions,
        replication_factor,
        if topic.assignment.is_some() {
            usize::MAX
        } else {
            live.len()
        },
        &topic.configs,
    )?;
    if control.topics.contains_key(&topic.name) {
        return Err(TopicError::AlreadyExists(topic.name.clone()));
    }
    let replicas = match &topic.assignment {
        Some(explicit) => assignment::validate_explicit_assignment(explicit, &live)
            .map_err(|error| topic_error_from_assignment(error, replication_factor, &live))?,
        None => {
            let (start, shift) = random_start_and_shift(live.len());
            assignment::assign_replicas(
                &live,
                partitions,
                i32::from(replication_factor),
                start,
                shift,
            )
            .map_err(|error| topic_error_from_assignment(error, replication_factor, &live))?
        }
    };
    let id = uuid::Uuid::new_v4();
    let stored = super::view_reader::StoredTopic {
        id,
        assignment: replicas.clone(),
        configs: topic.configs.clone(),
        states: vec![None; replicas.len()],
        zk_version: 0,
        adding_replicas: BTreeMap::new(),
        removing_replicas: BTreeMap::new(),
    };
    let written = stored.to_metadata(&topic.name);
    if validate_only {
        return Ok(written);
    }
    if control
        .coordination
        .exists(&znodes::delete_topic_path(&topic.name))
        .await
        .map_err(store_error)?
        .is_some()
    {
        return Err(TopicError::BeingDeleted(topic.name.clone()));
    }
    let assignment_znode = TopicAssignment {
        topic_id: Some(id),
        partitions: replicas,
        adding_replicas: BTreeMap::new(),
        removing_replicas: BTreeMap::new(),
    };
    let config_znode = TopicConfig {
        config: topic.configs.clone(),
    };
    // Configs first, in the same transaction: a broker that sees the topic sees its configs.
    let config_path = znodes::topic_config_path(&topic.name);
    let mut ops = Vec::new();
    match control
        .coordination
        .exists(&config_path)
        .await
        .map_err(store_error)?
    {
        // Left over from a topic deleted before its configs were (an older version).
        Some(stat) => ops.push(MultiOp::Set {
            path: config_path,
            data: config_znode.encode(),
            version: Some(stat.version),
        }),
        None => ops.push(MultiOp::Create {
            path: config_path,
            data: config_znode.encode(),
            kind: NodeKind::Persistent,
        }),
    }
    ops.push(MultiOp::Create {
        path: znodes::topic_path(&topic.name),
        data: assignment_znode.encode(),
        kind: NodeKind::Persistent,
    });
    match control.coordination.multi(ops).await {
        Ok(()) => {
            tracing::info!(topic = %topic.name, partitions, replication_factor, "created topic");
            Ok(written)
        }
        Err(CoordinationError::NodeExists { .. }) => {
            Err(TopicError::AlreadyExists(topic.name.clone()))
        }
        Err(error) => Err(store_error(error)),
    }
}

fn topic_error_from_assignment(
    error: assignment::AssignmentError,
    replication_factor: i16,
    live: &[i32],
) -> TopicError {
    match error {
        assignment::AssignmentError::InvalidReplicationFactor(_) => {
            TopicError::InvalidReplicationFactor {
                requested: replication_factor,
                brokers: i32::try_from(live.len()).unwrap_or(i32::MAX),
            }
        }
        assignment::AssignmentError::InvalidPartitions(reason) => {
            TopicError::InvalidReplicaAssignment(reason)
        }
        assignment::AssignmentError::InvalidReplicaAssignment(reason) => {
            TopicError::InvalidReplicaAssignment(reason)
        }
    }
}

/// Kafka's random start index and shift for the rack-unaware assignment.
fn random_start_and_shift(brokers: usize) -> (usize, usize) {
    if brokers == 0 {
        return (0, 0);
    }
    // A v4 uuid is 122 random bits: enough for two indexes, without another dependency.
    let random = uuid::Uuid::new_v4().as_u128();
    let brokers_u128 = brokers as u128;
    (
        usize::try_from(random % brokers_u128).unwrap_or(0),
        usize::try_from((random >> 64) % brokers_u128).unwrap_or(0),
    )
}

/// Extends a topic's assignment to `new_total` partitions with a versioned write.
async fn create_partitions(
    control: &mut ControlLoop,
    name: &str,
    new_total: i32,
    explicit: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<i32, TopicError> {
    let path = znodes::topic_path(name);
    let (data, stat) = match control.coordination.get(&path).await {
        Ok(found) => found,
        Err(CoordinationError::NoNode { .. }) => return Err(TopicError::Unknown(name.into())),
        Err(error) => return Err(store_error(error)),
    };
    let mut current = TopicAssignment::decode(&path, &data)
        .map_err(|error| TopicError::Store(error.to_string()))?;
    let old = i32::try_from(current.partitions.len()).unwrap_or(i32::MAX);
    if new_total <= old || new_total > crate::broker::topics::PARTITIONS_PER_TOPIC_MAX {
        return Err(TopicError::InvalidPartitions(new_total));
    }
    let live = live_brokers(control);
    let added =
        assignment::extend_assignment(&current.partitions, &live, new_total, explicit.as_deref())
            .map_err(|error| match error {
            assignment::AssignmentError::InvalidPartitions(_) => {
                TopicError::InvalidPartitions(new_total)
            }
            other => TopicError::InvalidReplicaAssignment(other.to_string()),
        })?;
    if validate_only {
        return Ok(old);
    }
    current.partitions.extend(added);
    match control
        .coordination
        .set(&path, current.encode(), Some(stat.version))
        .await
    {
        Ok(_) => {
            tracing::info!(topic = name, old, new_total, "added partitions");
            Ok(old)
        }
        Err(CoordinationError::BadVersion { .. }) => Err(TopicError::Store(format!(
            "{name} changed while partitions were being added; retry"
        ))),
        Err(error) => Err(store_error(error)),
    }
}

/// Marks a topic for deletion; the controller carries it out.
async fn delete_topic(control: &mut ControlLoop, name: &str) -> Result<TopicMetadata, TopicError> {
    if name == OFFSETS_TOPIC {
        return Err(TopicError::InvalidName {
            name: name.to_string(),
            reason: "internal topics cannot be deleted",
        });
    }
    let Some(topic) = control.view.get(name) else {
        return Err(TopicError::Unknown(name.to_string()));
    };
    match control
        .coordination
        .create(
            &znodes::delete_topic_path(name),
            bytes::Bytes::new(),
            NodeKind::Persistent,
        )
        .await
    {
        Ok(_) | Err(CoordinationError::NodeExists { .. }) => {
            tracing::info!(topic = name, "marked topic for deletion");
            Ok(topic)
        }
        Err(error) => Err(store_error(error)),
    }
}

/// Writes a leader's new ISR over the state version it saw (Kafka 2.8's leaders write ISR
/// changes to the state znode themselves, conditionally). The controller and every broker learn
/// of it through their watches.
async fn alter_isr(control: &mut ControlLoop, change: &IsrChange) -> Result<i32, AlterIsrError> {
    let controller_epoch = control
        .topics
        .get(&change.topic)
        .and_then(|topic| {
            usize::try_from(change.partition)
                .ok()
                .and_then(|p| topic.states.get(p))
        })
        .and_then(Option::as_ref)
        .filter(|state| state.leader == change.leader && state.leader_epoch == change.leader_epoch)
        .map(|state| state.controller_epoch)
        .ok_or(AlterIsrError::Stale)?;
    let state = PartitionState {
        leader: change.leader,
        leader_epoch: change.leader_epoch,
        isr: change.isr.clone(),
        controller_epoch,
        zk_version: change.expected_zk_version + 1,
    };
    match control
        .coordination
        .set(
            &znodes::partition_state_path(&change.topic, change.partition),
            state.encode(),
            Some(change.expected_zk_version),
        )
        .await
    {
        Ok(stat) => {
            tracing::info!(topic = %change.topic, partition = change.partition, isr = ?change.isr, "ISR changed");
            Ok(stat.version)
        }
        Err(CoordinationError::BadVersion { .. } | CoordinationError::NoNode { .. }) => {
            Err(AlterIsrError::Stale)
        }
        Err(error) => Err(AlterIsrError::Store(error.to_string())),
    }
}

/// Creates `__consumer_offsets` when it is missing and enough brokers are live for its
/// replication factor (as Kafka does on the first FindCoordinator).
pub(super) async fn ensure_offsets_topic(control: &mut ControlLoop) {
    if control.topics.contains_key(OFFSETS_TOPIC) {
        return;
    }
    // A single broker on its embedded store has no one to replicate to.
    let replication_factor = if control.config.zookeeper_connect.is_none() {
        1
    } else {
        control.config.offsets_topic_replication_factor
    };
    if control.brokers.len() < usize::try_from(replication_factor).unwrap_or(usize::MAX) {
        tracing::debug!(
            live = control.brokers.len(),
            replication_factor,
            "not creating {OFFSETS_TOPIC} yet: fewer live brokers than offsets.topic.replication.factor"
        );
        return;
    }
    // Offsets must never expire with time or size: the topic is kept small by compaction
    // (the latest record per key), as Kafka's is.
    let configs = BTreeMap::from([
        (
            "segment.bytes".to_string(),
            OFFSETS_TOPIC_SEGMENT_BYTES.to_string(),
        ),
        ("retention.ms".to_string(), "-1".to_string()),
        ("retention.bytes".to_string(), "-1".to_string()),
        ("cleanup.policy".to_string(), "compact".to_string()),
    ]);
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: control.config.offsets_topic_num_partitions,
        replication_factor,
        assignment: None,
        configs,
    };
    match create_topic(control, &topic, false).await {
        Ok(_) | Err(TopicError::AlreadyExists(_)) => {}
        Err(error) => tracing::warn!(%error, "could not create {OFFSETS_TOPIC}"),
    }
}

/// Reserves the next block of producer ids with a versioned write, so two brokers never get
/// the same block. Also reads the plain-number format earlier Strom versions wrote.
async fn reserve_producer_ids(control: &mut ControlLoop) -> Result<ProducerIdBlock, TopicError> {
    let path = znodes::LATEST_PRODUCER_ID_BLOCK_PATH;
    let broker = control.config.broker_id;
    loop {
        match control.coordination.get(path).await {
            Ok((data, stat)) => {
                let next_start = match ProducerIdBlock::decode(path, &data) {
                    Ok(block) => block.block_end + 1,
                    Err(error) => std::str::from_utf8(&data)
                        .ok()
                        .and_then(|text| text.trim().parse::<i64>().ok())
                        .ok_or_else(|| TopicError::Store(error.to_string()))?,
                };
                let block = ProducerIdBlock {
                    broker,
                    block_start: next_start,
                    block_end: next_start + PRODUCER_ID_BLOCK_SIZE - 1,
                };
                match control
                    .coordination
                    .set(path, block.encode(), Some(stat.version))
                    .await
                {
                    Ok(_) => return Ok(block),
                    Err(CoordinationError::BadVersion { .. }) => continue,
                    Err(error) => return Err(store_error(error)),
                }
            }
            Err(CoordinationError::NoNode { .. }) => {
                let block = ProducerIdBlock {
                    broker,
                    block_start: 0,
                    block_end: PRODUCER_ID_BLOCK_SIZE - 1,
                };
                match control
                    .coordination
                    .create(path, block.encode(), NodeKind::Persistent)
                    .await
                {
                    Ok(_) => return Ok(block),
                    Err(CoordinationError::NodeExists { .. }) => continue,
                    Err(error) => return Err(store_error(error)),
                }
            }
            Err(error) => return Err(store_error(error)),
        }
    }
}
