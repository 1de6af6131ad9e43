//! The broker's control plane: one thread per broker that owns the coordination session
//! (embedded store or ZooKeeper), registers the broker, stands for controller, runs the
//! controller when elected, and keeps the broker's view of the cluster (topics, assignments,
//! leaderships, live brokers) in step with the znodes, publishing every change to the shards.
//!
//! Shard threads never call the coordination store: they send a [`ControlRequest`] through a
//! bounded channel and await the reply. The thread runs a current-thread tokio runtime; it owns
//! the clock for the controller state machine (`cluster::controller`), which itself does no I/O.
//!
//! How brokers learn the controller's decisions: by watching the znodes. The controller is the
//! single writer of partition-state znodes; every broker follows `/brokers` with a persistent
//! recursive watch and applies a partition's state only when its leader epoch is newer than the
//! one it applied (see `Partition::apply_leadership`), so each decision is acted on once and a
//! stale one is ignored.

mod admin;
mod controller_driver;
mod registration;
mod runtime;
mod view_reader;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::broker::config_ops::ConfigChange;
use crate::broker::shard::Router;
use crate::broker::topics::{TopicError, TopicMetadata, TopicRegistry};
use crate::config::BrokerConfig;

pub use crate::cluster::controller::{OngoingReassignment, ReassignmentChange};
pub use crate::cluster::znodes::ProducerIdBlock;
pub use admin::NewTopic;
pub use controller_driver::ReassignmentResults;

/// Requests waiting for the control plane; a full queue answers the client with a retriable
/// error instead of growing without bound.
const REQUESTS_QUEUED_MAX: usize = 1024;

/// What a shard asks of the control plane.
pub enum ControlRequest {
    CreateTopic {
        topic: NewTopic,
        validate_only: bool,
        timeout_ms: u64,
        reply: oneshot::Sender<Result<TopicMetadata, TopicError>>,
    },
    CreatePartitions {
        name: String,
        new_total: i32,
        assignment: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        timeout_ms: u64,
        reply: oneshot::Sender<Result<i32, TopicError>>,
    },
    DeleteTopic {
        name: String,
        timeout_ms: u64,
        reply: oneshot::Sender<Result<TopicMetadata, TopicError>>,
    },
    /// IncrementalAlterConfigs / AlterConfigs of one topic: replies with the overrides as
    /// written (or as they would be, with `validate_only`).
    AlterTopicConfigs {
        name: String,
        change: ConfigChange,
        validate_only: bool,
        reply: oneshot::Sender<Result<BTreeMap<String, String>, TopicError>>,
    },
    /// IncrementalAlterConfigs / AlterConfigs of a broker entity (`<default>` or an id):
    /// replies with its dynamic configs as written.
    AlterBrokerConfigs {
        entity: String,
        change: ConfigChange,
        validate_only: bool,
        reply: oneshot::Sender<Result<BTreeMap<String, String>, TopicError>>,
    },
    ElectLeaders {
        preferred: bool,
        partitions: Option<Vec<(String, i32)>>,
        reply: oneshot::Sender<Result<ElectionResults, TopicError>>,
    },
    /// AlterPartitionReassignments: per partition the target replicas, or `None` to cancel.
    AlterReassignments {
        changes: Vec<ReassignmentChange>,
        reply: oneshot::Sender<Result<ReassignmentResults, TopicError>>,
    },
    /// ListPartitionReassignments: the controller's ongoing reassignments.
    ListReassignments {
        reply: oneshot::Sender<Result<Vec<OngoingReassignment>, TopicError>>,
    },
    /// A leader's ISR change, written over the state znode version it last saw.
    AlterIsr {
        change: IsrChange,
        reply: oneshot::Sender<Result<i32, AlterIsrError>>,
    },
    /// Creates `__consumer_offsets` if it is missing and enough brokers are live.
    EnsureOffsetsTopic,
    ReserveProducerIds {
        reply: oneshot::Sender<Result<ProducerIdBlock, TopicError>>,
    },
    /// The shards are running: start publishing the view to them.
    Attach(Router),
    /// Controlled shutdown: move this broker's leaderships away, then reply.
    ControlledShutdown {
        timeout_ms: u64,
        reply: oneshot::Sender<ControlledShutdownOutcome>,
    },
    /// Close the session (this broker's ephemeral znodes go) and end the thread.
    Stop,
}

/// A leader's new ISR for one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic: String,
    pub partition: i32,
    /// The leader and its epoch: written unchanged, with the new ISR.
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// The state znode version the leader last saw.
    pub expected_zk_version: i32,
}

/// Why an ISR change was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlterIsrError {
    /// The state znode moved on (a new leader, or the controller removed a dead broker): the
    /// leader waits for the new state instead of retrying blindly.
    #[error("the partition state changed since the leader read it")]
    Stale,
    #[error("coordination store: {0}")]
    Store(String),
}

/// Per partition: the new leader, or the Kafka error code and message of why none was elected.
pub type ElectionResults = BTreeMap<(String, i32), Result<i32, (i16, String)>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlledShutdownOutcome {
    /// Every leadership that could move has moved; `remaining` partitions had no other ISR
    /// member to take over.
    Done {
        remaining: usize,
    },
    TimedOut {
        remaining: usize,
    },
    /// Single broker or disabled: nothing to move.
    Skipped,
}

/// The shards' handle on the control plane.
#[derive(Clone)]
pub struct ControlPlane {
    requests: mpsc::Sender<ControlRequest>,
}

/// What the broker needs from the control plane before its shards start.
pub struct Started {
    pub control: ControlPlane,
    pub view: Arc<TopicRegistry>,
    pub cluster_id: String,
    pub thread: std::thread::JoinHandle<()>,
}

impl ControlPlane {
    async fn ask<R>(
        &self,
        make: impl FnOnce(oneshot::Sender<R>) -> ControlRequest,
    ) -> Result<R, TopicError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .try_send(make(reply))
            .map_err(|_| TopicError::Store("the control plane is busy or stopped".into()))?;
        answer
            .await
            .map_err(|_| TopicError::Store("the control plane stopped".into()))
    }

    pub async fn create_topic(
        &self,
        topic: NewTopic,
        validate_only: bool,
        timeout_ms: u64,
    ) -> Result<TopicMetadata, TopicError> {
        self.ask(|reply| ControlRequest::CreateTopic {
            topic,
            validate_only,
            timeout_ms,
            reply,
        })
        .await?
    }

    /// Grows a topic; returns the old partition count.
    pub async fn create_partitions(
        &self,
        name: String,
        new_total: i32,
        assignment: Option<Vec<Vec<i32>>>,
        validate_only: bool,
        timeout_ms: u64,
    ) -> Result<i32, TopicError> {
        self.ask(|reply| ControlRequest::CreatePartitions {
            name,
            new_total,
            assignment,
            validate_only,
            timeout_ms,
            reply,
        })
        .await?
    }

    pub async fn delete_topic(
        &self,
        name: String,
        timeout_ms: u64,
    ) -> Result<TopicMetadata, TopicError> {
        self.ask(|reply| ControlRequest::DeleteTopic {
            name,
            timeout_ms,
            reply,
        })
        .await?
    }

    /// Changes a topic's config overrides in `/config/topics/<t>` (any broker may write them;
    /// every broker holding a replica applies them from its watch). Returns once this broker's
    /// view shows the new overrides (or after a short bound: the write is done by then).
    pub async fn alter_topic_configs(
        &self,
        name: String,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<BTreeMap<String, String>, TopicError> {
        self.ask(|reply| ControlRequest::AlterTopicConfigs {
            name,
            change,
            validate_only,
            reply,
        })
        .await?
    }

    /// Changes the dynamic configs of a broker entity in `/config/brokers/<entity>`; every
    /// broker it concerns applies them from its watch.
    pub async fn alter_broker_configs(
        &self,
        entity: String,
        change: ConfigChange,
        validate_only: bool,
    ) -> Result<BTreeMap<String, String>, TopicError> {
        self.ask(|reply| ControlRequest::AlterBrokerConfigs {
            entity,
            change,
            validate_only,
            reply,
        })
        .await?
    }

    /// Runs a leader election on the controller (this broker must be it: NotController
    /// otherwise). `partitions: None` means every partition.
    pub async fn elect_leaders(
        &self,
        preferred: bool,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<ElectionResults, TopicError> {
        self.ask(|reply| ControlRequest::ElectLeaders {
            preferred,
            partitions,
            reply,
        })
        .await?
    }

    /// Starts, changes or cancels (`None`) partition reassignments on the controller (this
    /// broker must be it: NotController otherwise).
    pub async fn alter_reassignments(
        &self,
        changes: Vec<ReassignmentChange>,
    ) -> Result<ReassignmentResults, TopicError> {
        self.ask(|reply| ControlRequest::AlterReassignments { changes, reply })
            .await?
    }

    /// The ongoing reassignments as the controller holds them (NotController elsewhere).
    pub async fn list_reassignments(&self) -> Result<Vec<OngoingReassignment>, TopicError> {
        self.ask(|reply| ControlRequest::ListReassignments { reply })
            .await?
    }

    /// Writes a leader's ISR change; returns the state znode's new version.
    pub async fn alter_isr(&self, change: IsrChange) -> Result<i32, AlterIsrError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .try_send(ControlRequest::AlterIsr { change, reply })
            .map_err(|_| AlterIsrError::Store("the control plane is busy or stopped".into()))?;
        answer
            .await
            .map_err(|_| AlterIsrError::Store("the control plane stopped".into()))?
    }

    pub async fn reserve_producer_ids(&self) -> Result<ProducerIdBlock, TopicError> {
        self.ask(|reply| ControlRequest::ReserveProducerIds { reply })
            .await?
    }

    /// Asks for `__consumer_offsets` to be created if it is missing; does not wait.
    pub fn ensure_offsets_topic(&self) {
        let _ = self.requests.try_send(ControlRequest::EnsureOffsetsTopic);
    }

    /// Hands the running shards to the control plane, which then publishes every change.
    pub fn attach(&self, router: Router) {
        if self
            .requests
            .try_send(ControlRequest::Attach(router))
            .is_err()
        {
            tracing::error!("could not attach the shards to the control plane");
        }
    }

    /// Blocks the calling (non-shard) thread until this broker's leaderships moved away, or
    /// the timeout.
    pub fn controlled_shutdown_blocking(&self, timeout_ms: u64) -> ControlledShutdownOutcome {
        let (reply, answer) = oneshot::channel();
        if self
            .requests
            .blocking_send(ControlRequest::ControlledShutdown { timeout_ms, reply })
            .is_err()
        {
            return ControlledShutdownOutcome::Skipped;
        }
        answer
            .blocking_recv()
            .unwrap_or(ControlledShutdownOutcome::Skipped)
    }

    /// Ends the session and the control-plane thread (blocking; not on a shard thread).
    pub fn stop_blocking(&self) {
        let _ = self.requests.blocking_send(ControlRequest::Stop);
    }
}

/// Starts the control-plane thread and waits until the broker is registered and its view is
/// loaded (and, if it became controller, the first elections are written), so shards start
/// with leaderships they can act on. `interrupted` is polled while waiting (a ZooKeeper that is
/// down makes the start retry until it answers or the broker is told to stop).
pub fn start(
    config: &BrokerConfig,
    log_dir: &Path,
    interrupted: &dyn Fn() -> bool,
) -> Result<Started, String> {
    let (requests, receiver) = mpsc::channel(REQUESTS_QUEUED_MAX);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let view = Arc::new(TopicRegistry::new());
    let thread_view = view.clone();
    let thread_config = config.clone();
    let thread_log_dir = log_dir.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("strom-control".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready_tx.send(Err(format!("control-plane runtime: {error}")));
                    return;
                }
            };
            runtime.block_on(runtime::run(
                thread_config,
                thread_log_dir,
                thread_view,
                receiver,
                ready_tx,
            ));
        })
        .map_err(|error| format!("start the control-plane thread: {error}"))?;
    let control = ControlPlane { requests };
    loop {
        match ready_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(cluster_id)) => {
                return Ok(Started {
                    control,
                    view,
                    cluster_id,
                    thread,
                })
            }
            Ok(Err(error)) => {
                let _ = thread.join();
                return Err(error);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if interrupted() {
                    control.stop_blocking();
                    return Err("stopped while joining the cluster".into());
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
                return Err("the control plane stopped during start".into());
            }
        }
    }
}

#[cfg(test)]
mod tests;
