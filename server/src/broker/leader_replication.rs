//! A replicated partition while this broker leads it: the pure
//! [`LeaderState`](crate::replication::LeaderState) fed with replica fetches, the leader's own
//! progress and a timer, and its actions carried out — the high watermark set on the log (which
//! wakes consumers and `acks=all` produces), ISR changes written through the control plane over
//! the state znode version the leader last saw.
//!
//! Lives on the partition's owner shard. A partition with one replica has none of this: its high
//! watermark follows its log end as before.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::{oneshot, watch};

use super::partition::Partition;
use super::topics::{PartitionView, TopicRegistry};
use crate::control_plane::{ControlPlane, IsrChange};
/// A Kafka error code (0: none).
pub type ErrorCode = i16;
const NONE: ErrorCode = 0;

fn code(error: ResponseError) -> ErrorCode {
    error.code()
}

use crate::replication::{
    AcksAllProgress, IsrWriteFailed, LeaderAction, LeaderConfig, LeaderStart, LeaderState,
    NotEnoughReplicas,
};

pub struct LeaderReplication {
    state: RefCell<LeaderState>,
    partition: Weak<Partition>,
    control: ControlPlane,
    /// The broker's view of the cluster, to re-read the partition's state after a lost race.
    view: Arc<TopicRegistry>,
    /// Bumped on every committed ISR change and when this leadership ends, so waiting `acks=all`
    /// produces look again.
    events: watch::Sender<u64>,
    stopped: Cell<bool>,
}

impl LeaderReplication {
    /// Takes up the leadership of a replicated partition in `view`'s epoch: records the epoch's
    /// start in the log, stops the high watermark following the log end, and starts the task
    /// that feeds the leader's progress and the ISR timer to the state.
    pub fn start(
        partition: &Rc<Partition>,
        state_view: &PartitionView,
        broker_id: i32,
        replica_lag_time_max_ms: u64,
        control: ControlPlane,
        view: Arc<TopicRegistry>,
        now_ms: i64,
    ) -> Result<Rc<Self>, String> {
        let log = &partition.log;
        log.start_leader_epoch(state_view.leader_epoch)
            .map_err(|error| error.to_string())?;
        log.set_high_watermark_follows_log_end(false);
        let config = LeaderConfig {
            replica_lag_time_max_ms: i64::try_from(replica_lag_time_max_ms).unwrap_or(i64::MAX),
        };
        let tick_interval_ms = config.tick_interval_ms();
        let start = LeaderStart {
            leader: broker_id,
            leader_epoch: state_view.leader_epoch,
            epoch_start_offset: log.next_offset(),
            replicas: state_view.replicas.clone(),
            isr: state_view.isr.clone(),
            isr_zk_version: state_view.zk_version,
            high_watermark: log.high_watermark(),
            log_end_offset: log.durable_end_offset(),
        };
        let state = LeaderState::new(start, config, now_ms).map_err(|error| error.to_string())?;
        let (events, _) = watch::channel(0);
        let replication = Rc::new(LeaderReplication {
            state: RefCell::new(state),
            partition: Rc::downgrade(partition),
            control,
            view,
            events,
            stopped: Cell::new(false),
        });
        strom_engine::io::spawn_local(run(
            replication.clone(),
            partition.clone(),
            Duration::from_millis(u64::try_from(tick_interval_ms).unwrap_or(1)),
        ));
        Ok(replication)
    }

    /// Ends this leadership: waiting produces are answered NOT_LEADER_OR_FOLLOWER and the task
    /// stops.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.events.send_modify(|count| *count += 1);
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.get()
    }

    pub fn leader_epoch(&self) -> i32 {
        self.state.borrow().leader_epoch()
    }

    /// The ISR as committed in the store (what `min.insync.replicas` counts).
    pub fn isr(&self) -> Vec<i32> {
        self.state.borrow().isr().to_vec()
    }

    /// A follower fetched at `fetch_offset` (its log end, or its durable end under `sync`) while
    /// the leader's log ended at `leader_log_end_offset` (as of the read it was served).
    pub fn on_replica_fetch(
        self: &Rc<Self>,
        follower: i32,
        fetch_offset: i64,
        leader_log_end_offset: i64,
        now_ms: i64,
    ) {
        let Some(partition) = self.partition.upgrade() else {
            return;
        };
        // Under `sync`, only what is durable here counts towards the high watermark.
        let leader_end = leader_log_end_offset.min(partition.log.durable_end_offset());
        let outcome =
            self.state
                .borrow_mut()
                .on_follower_fetch(follower, fetch_offset, leader_end, now_ms);
        match outcome {
            Ok(actions) => self.execute(&partition, actions),
            Err(error) => {
                tracing::debug!(topic = %partition.topic, index = partition.index, follower, %error, "replica fetch ignored")
            }
        }
    }

    /// The state znode changed within this leader epoch (this leader's own ISR write read back,
    /// or the controller removing a dead broker): adopt its ISR if it is newer.
    pub fn on_state_from_store(self: &Rc<Self>, view: &PartitionView, now_ms: i64) {
        let Some(partition) = self.partition.upgrade() else {
            return;
        };
        let outcome =
            self.state
                .borrow_mut()
                .isr_from_store(view.isr.clone(), view.zk_version, now_ms);
        match outcome {
            Ok(actions) => self.execute(&partition, actions),
            Err(error) => {
                tracing::warn!(topic = %partition.topic, index = partition.index, %error, "ignoring a partition state this leader cannot take")
            }
        }
    }

    /// Feeds the partition's state as the broker's view has it now, if it still names this
    /// leader and epoch (otherwise a new leadership is on its way and this one ends).
    fn reread_state(self: &Rc<Self>, partition: &Rc<Partition>, now_ms: i64) {
        let Some(topic) = self.view.get(&partition.topic) else {
            return;
        };
        let Some(state) = topic.partition(partition.index) else {
            return;
        };
        let (leader, leader_epoch) = {
            let current = self.state.borrow();
            (current.leader(), current.leader_epoch())
        };
        if state.leader == leader && state.leader_epoch == leader_epoch {
            self.on_state_from_store(state, now_ms);
        }
    }

    /// Before an `acks=all` append: the committed ISR must have `min.insync.replicas` members.
    pub fn check_acks_all(&self, min_insync_replicas: usize) -> Result<(), NotEnoughReplicas> {
        self.state.borrow().can_accept_acks_all(min_insync_replicas)
    }

    /// After an `acks=all` append ending before `required_offset`: resolves with the produce's
    /// error code once the high watermark passes it (NONE), the ISR shrank below the minimum
    /// meanwhile (NOT_ENOUGH_REPLICAS_AFTER_APPEND), this leadership ended
    /// (NOT_LEADER_OR_FOLLOWER), or `timeout` passed (REQUEST_TIMED_OUT).
    pub fn wait_acks_all(
        self: &Rc<Self>,
        required_offset: i64,
        min_insync_replicas: usize,
        timeout: Duration,
    ) -> oneshot::Receiver<ErrorCode> {
        let (reply, answer) = oneshot::channel();
        let Some(partition) = self.partition.upgrade() else {
            let _ = reply.send(code(ResponseError::NotLeaderOrFollower));
            return answer;
        };
        let replication = self.clone();
        let mut high_watermark = partition.log.subscribe_high_watermark();
        let mut events = self.events.subscribe();
        strom_engine::io::spawn_local(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let outcome = loop {
                if replication.stopped.get() {
                    break code(ResponseError::NotLeaderOrFollower);
                }
                match replication
                    .state
                    .borrow()
                    .acks_all_progress(required_offset, min_insync_replicas)
                {
                    AcksAllProgress::Done => break NONE,
                    AcksAllProgress::NotEnoughReplicasAfterAppend => {
                        break code(ResponseError::NotEnoughReplicasAfterAppend)
                    }
                    AcksAllProgress::Waiting => {}
                }
                let changed = tokio::select! {
                    changed = high_watermark.changed() => changed.is_ok(),
                    changed = events.changed() => changed.is_ok(),
                    () = tokio::time::sleep_until(deadline) => break code(ResponseError::RequestTimedOut),
                };
                if !changed {
                    break code(ResponseError::NotLeaderOrFollower);
                }
            };
            let _ = reply.send(outcome);
        });
        answer
    }

    fn execute(self: &Rc<Self>, partition: &Rc<Partition>, actions: Vec<LeaderAction>) {
        for action in actions {
            match action {
                LeaderAction::HighWatermark(offset) => partition.log.set_high_watermark(offset),
                LeaderAction::IsrChanged { isr, zk_version } => {
                    tracing::debug!(topic = %partition.topic, index = partition.index, ?isr, zk_version, "ISR committed");
                    self.events.send_modify(|count| *count += 1);
                }
                LeaderAction::ProposeIsr {
                    isr,
                    expected_zk_version,
                } => self.propose_isr(partition, isr, expected_zk_version),
            }
        }
    }

    /// Writes an ISR change through the control plane and feeds back the outcome.
    fn propose_isr(
        self: &Rc<Self>,
        partition: &Rc<Partition>,
        isr: Vec<i32>,
        expected_zk_version: i32,
    ) {
        let (leader, leader_epoch) = {
            let state = self.state.borrow();
            (state.leader(), state.leader_epoch())
        };
        let change = IsrChange {
            topic: partition.topic.to_string(),
            partition: partition.index,
            leader,
            leader_epoch,
            isr,
            expected_zk_version,
        };
        let replication = self.clone();
        let partition = partition.clone();
        let (isr_len_before, isr_len_after) = (self.isr().len(), change.isr.len());
        strom_engine::io::spawn_local(async move {
            let written = replication.control.alter_isr(change).await;
            if replication.stopped.get() {
                return;
            }
            let result = match written {
                Ok(zk_version) => {
                    crate::metrics::count_isr_change(isr_len_before, isr_len_after);
                    Ok(zk_version)
                }
                Err(error) => {
                    tracing::info!(topic = %partition.topic, index = partition.index, %error, "ISR change not written");
                    Err(IsrWriteFailed)
                }
            };
            let failed = result.is_err();
            let now_ms = crate::handlers::now_ms();
            let actions =
                replication
                    .state
                    .borrow_mut()
                    .isr_write_done(expected_zk_version, result, now_ms);
            replication.execute(&partition, actions);
            if failed {
                // The state moved on under this leader: take what the store now says (a later
                // change reaches `on_state_from_store` through the metadata as well).
                replication.reread_state(&partition, now_ms);
            }
        });
    }
}

/// Feeds the leader's own progress (durable under `sync`, written otherwise) and the ISR timer
/// to the state until the leadership ends.
async fn run(
    replication: Rc<LeaderReplication>,
    partition: Rc<Partition>,
    tick_interval: Duration,
) {
    let mut progress = partition.log.subscribe();
    let mut events = replication.events.subscribe();
    let mut tick = tokio::time::interval(tick_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ticked = tokio::select! {
            changed = progress.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
            _ = tick.tick() => true,
            changed = events.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
        };
        if replication.stopped.get() {
            return;
        }
        let now_ms = crate::handlers::now_ms();
        let leader_end = partition.log.durable_end_offset();
        let actions = if ticked {
            replication.state.borrow_mut().tick(leader_end, now_ms)
        } else {
            replication
                .state
                .borrow_mut()
                .on_leader_append(leader_end, now_ms)
        };
        replication.execute(&partition, actions);
    }
}
