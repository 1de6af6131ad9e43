//! The control-plane loop: joins the cluster, then reacts to znode changes, session events,
//! requests from the shards, and the controller's timer, one at a time on one thread.
//!
//! Changes are batched: every event waiting in the watch queues marks what it touched as dirty,
//! then one pass re-reads those znodes, feeds the controller (when this broker is it), updates
//! the view, publishes it to the shards, and answers the requests whose outcome is now visible.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::admin::{self, Waiter};
use super::controller_driver::ControllerDriver;
use super::registration;
use super::view_reader::{self, StoredTopic};
use super::{ControlRequest, ControlledShutdownOutcome};
use crate::broker::dynamic_config::{effective_config, DynamicBrokerConfigs, DEFAULT_ENTITY};
use crate::broker::metadata_cache::MetadataUpdate;
use crate::broker::shard::{Router, ShardState};
use crate::broker::topics::TopicRegistry;
use crate::cluster::znodes::{self, BrokerRegistration};
use crate::config::BrokerConfig;
use crate::coordination::{
    Coordination, CoordinationError, SessionEvent, TreeEvent, TreeEventKind, TreeWatch,
};

/// How often a controlled shutdown re-checks its progress while it waits.
const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// Watch events handled in one pass before the dirty znodes are re-read.
const EVENTS_PER_PASS_MAX: usize = 10_000;

pub(super) fn now_ms() -> i64 {
    crate::handlers::now_ms()
}

/// What the last events touched, re-read in the next pass.
#[derive(Default)]
struct Dirty {
    everything: bool,
    brokers: bool,
    controller: bool,
    admin: bool,
    /// `/config/brokers`: the dynamic broker configs.
    broker_configs: bool,
    topics: BTreeSet<String>,
    states: BTreeSet<(String, i32)>,
}

impl Dirty {
    fn is_empty(&self) -> bool {
        !self.everything
            && !self.brokers
            && !self.controller
            && !self.admin
            && !self.broker_configs
            && self.topics.is_empty()
            && self.states.is_empty()
    }

    fn mark(&mut self, event: &TreeEvent) {
        if event.kind == TreeEventKind::Resync {
            self.everything = true;
            return;
        }
        let path = event.path.as_str();
        if let Some((topic, index)) = znodes::parse_partition_state_path(path) {
            self.states.insert((topic.to_string(), index));
        } else if let Some(topic) = znodes::parse_topic_path(path) {
            self.topics.insert(topic.to_string());
        } else if let Some(topic) = znodes::parse_topic_config_path(path) {
            // A config change (IncrementalAlterConfigs through any broker): re-read the topic,
            // configs included, so the shards apply it without a restart.
            self.topics.insert(topic.to_string());
        } else if path == znodes::BROKER_IDS_PATH || znodes::parse_broker_path(path).is_some() {
            self.brokers = true;
        } else if path == znodes::CONTROLLER_PATH {
            self.controller = true;
        } else if path.starts_with("/admin") {
            self.admin = true;
        } else if path.starts_with(znodes::CONFIG_BROKERS_PATH) {
            self.broker_configs = true;
        }
    }
}

/// Everything the control plane knows and does, owned by its one thread.
pub(super) struct ControlLoop {
    pub config: BrokerConfig,
    pub log_dir: PathBuf,
    pub coordination: Coordination,
    pub broker_epoch: i64,
    pub view: Arc<TopicRegistry>,
    router: Option<Router>,
    /// The store's topics as last read.
    pub topics: BTreeMap<String, StoredTopic>,
    pub brokers: BTreeMap<i32, (BrokerRegistration, i64)>,
    pub controller_id: i32,
    pub controller: Option<ControllerDriver>,
    pub waiters: Vec<Waiter>,
    watches: Vec<TreeWatch>,
    shutdown: Option<(Instant, oneshot::Sender<ControlledShutdownOutcome>)>,
    /// Updates made while no shards were attached; they get a full sync on attach.
    unpublished: bool,
    /// When the store connection was lost, while it stays lost. After a whole session timeout
    /// without it, ZooKeeper has expired (or is about to expire) the session and the controller
    /// may have moved this broker's leaderships: the broker can no longer vouch for its ISR, so
    /// it stops leading as on expiry, without waiting to hear "expired" on a reconnect that a
    /// network partition may delay for ever (no split brain: acks=all is refused, not
    /// acknowledged by a deposed leader).
    disconnected_since: Option<Instant>,
}

pub(super) async fn run(
    config: BrokerConfig,
    log_dir: PathBuf,
    view: Arc<TopicRegistry>,
    mut requests: mpsc::Receiver<ControlRequest>,
    ready: std::sync::mpsc::Sender<Result<String, String>>,
) {
    let Some((mut control, cluster_id)) =
        join(&config, &log_dir, view, &mut requests, &ready).await
    else {
        return;
    };
    let _ = ready.send(Ok(cluster_id));
    control.serve(&mut requests).await;
}

/// Connects (retrying while ZooKeeper is unreachable), checks the cluster id, registers, loads
/// the view and stands for controller. `None` when start failed (reported on `ready`) or the
/// broker was told to stop.
async fn join(
    config: &BrokerConfig,
    log_dir: &std::path::Path,
    view: Arc<TopicRegistry>,
    requests: &mut mpsc::Receiver<ControlRequest>,
    ready: &std::sync::mpsc::Sender<Result<String, String>>,
) -> Option<(ControlLoop, String)> {
    let fail = |error: String| {
        let _ = ready.send(Err(error));
        None
    };
    let coordination = loop {
        match registration::connect(config, log_dir).await {
            Ok(coordination) => break coordination,
            Err(error) if config.zookeeper_connect.is_some() => {
                tracing::warn!(zookeeper = ?config.zookeeper_connect, %error, "cannot reach ZooKeeper; this broker serves nothing until it can, retrying");
                if matches!(requests.try_recv(), Ok(ControlRequest::Stop)) {
                    return None;
                }
                tokio::time::sleep(registration::CONNECT_RETRY_BACKOFF).await;
            }
            Err(error) => return fail(format!("coordination store: {error}")),
        }
    };
    if let Err(error) = registration::ensure_base_paths(&coordination).await {
        return fail(format!("coordination store: {error}"));
    }
    let cluster_id = match registration::cluster_id(&coordination, config, log_dir).await {
        Ok(id) => id,
        Err(error) => return fail(error),
    };
    let broker_epoch = match register_with_patience(&coordination, config).await {
        Ok(epoch) => epoch,
        Err(error) => return fail(error),
    };
    let mut control = ControlLoop {
        config: config.clone(),
        log_dir: log_dir.to_path_buf(),
        coordination,
        broker_epoch,
        view,
        router: None,
        topics: BTreeMap::new(),
        brokers: BTreeMap::new(),
        controller_id: crate::broker::topics::NO_LEADER,
        controller: None,
        waiters: Vec::new(),
        watches: Vec::new(),
        shutdown: None,
        unpublished: false,
        disconnected_since: None,
    };
    if let Err(error) = control.start_session_work().await {
        return fail(format!("load the cluster metadata: {error}"));
    }
    if config.zookeeper_connect.is_none() {
        // A single broker keeps `__consumer_offsets` ready from the start, as before clusters.
        admin::ensure_offsets_topic(&mut control).await;
        control.settle().await;
    }
    tracing::info!(
        broker_id = config.broker_id,
        broker_epoch,
        controller = control.controller_id,
        topics = control.topics.len(),
        "joined the cluster"
    );
    Some((control, cluster_id))
}

/// Registers, waiting up to one session timeout while the id is held: a broker restarted
/// right after a crash finds its old registration until ZooKeeper expires that session.
async fn register_with_patience(
    coordination: &Coordination,
    config: &BrokerConfig,
) -> Result<i64, String> {
    let deadline = Instant::now() + Duration::from_millis(config.zookeeper_session_timeout_ms);
    loop {
        match registration::register(coordination, config, now_ms()).await {
            Ok(epoch) => return Ok(epoch),
            Err(error) if Instant::now() < deadline && config.zookeeper_connect.is_some() => {
                tracing::warn!(%error, "waiting for the broker id to be free");
                tokio::time::sleep(registration::CONNECT_RETRY_BACKOFF).await;
            }
            Err(error) => return Err(error),
        }
    }
}

impl ControlLoop {
    /// Sets the watches, reads everything, and stands for controller. Run at start and after a
    /// session expired (with the new session).
    async fn start_session_work(&mut self) -> Result<(), CoordinationError> {
        self.watches.clear();
        for path in [
            znodes::BROKER_IDS_PATH,
            znodes::BROKER_TOPICS_PATH,
            znodes::CONTROLLER_PATH,
            "/admin",
            znodes::CONFIG_TOPICS_PATH,
            znodes::CONFIG_BROKERS_PATH,
        ] {
            self.watches.push(self.coordination.watch_tree(path).await?);
        }
        let mut dirty = Dirty {
            everything: true,
            ..Dirty::default()
        };
        self.refresh(&mut dirty).await?;
        Ok(())
    }

    /// Runs passes until no watch event is waiting: at start, so shards begin with the
    /// controller's first decisions.
    async fn settle(&mut self) {
        for _ in 0..100 {
            let mut dirty = Dirty::default();
            self.drain_watches(&mut dirty);
            if dirty.is_empty() {
                // Give the store a moment to deliver events of our own last writes.
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.drain_watches(&mut dirty);
                if dirty.is_empty() {
                    return;
                }
            }
            if let Err(error) = self.refresh(&mut dirty).await {
                tracing::warn!(%error, "could not read the cluster metadata");
                return;
            }
        }
    }

    fn drain_watches(&mut self, dirty: &mut Dirty) {
        let mut handled = 0;
        for watch in &mut self.watches {
            while handled < EVENTS_PER_PASS_MAX {
                match watch.try_next() {
                    Some(event) => {
                        dirty.mark(&event);
                        handled += 1;
                    }
                    None => break,
                }
            }
        }
    }

    async fn serve(&mut self, requests: &mut mpsc::Receiver<ControlRequest>) {
        let mut session = self.coordination.session_events();
        loop {
            // Wake only for a deadline (a waiting request, a controlled shutdown, the
            // controller's timer): an idle control plane costs the shards nothing.
            let next_deadline = self.next_deadline();
            let mut dirty = Dirty::default();
            tokio::select! {
                request = requests.recv() => match request {
                    None | Some(ControlRequest::Stop) => break,
                    Some(request) => self.handle_request(request).await,
                },
                event = next_event(&mut self.watches) => match event {
                    Some(event) => dirty.mark(&event),
                    None => dirty.everything = true,
                },
                event = session.next() => match event {
                    Some(SessionEvent::Expired) | None => {
                        self.session_expired().await;
                        session = self.coordination.session_events();
                        continue;
                    }
                    Some(event) => {
                        tracing::info!(?event, "coordination session");
                        self.disconnected_since = match event {
                            SessionEvent::Disconnected => {
                                self.disconnected_since.or(Some(Instant::now()))
                            }
                            _ => None,
                        };
                    }
                },
                () = sleep_until(next_deadline) => {
                    if self.disconnected_too_long() {
                        tracing::error!(
                            session_timeout_ms = self.config.zookeeper_session_timeout_ms,
                            "cut off from the coordination store for a whole session timeout"
                        );
                        self.disconnected_since = None;
                        self.session_expired().await;
                        session = self.coordination.session_events();
                        continue;
                    }
                    self.on_tick().await;
                }
            }
            self.drain_watches(&mut dirty);
            if !dirty.is_empty() {
                if let Err(error) = self.refresh(&mut dirty).await {
                    tracing::warn!(%error, "could not read the cluster metadata; will retry");
                    tokio::time::sleep(registration::CONNECT_RETRY_BACKOFF).await;
                    // Read everything again on the next pass.
                    self.watches.clear();
                    if let Err(error) = self.start_session_work().await {
                        tracing::warn!(%error, "still cannot read the cluster metadata");
                    }
                }
            }
        }
        self.stop().await;
    }

    async fn stop(&mut self) {
        if let Some(driver) = self.controller.take() {
            driver.resign(&self.coordination).await;
        }
        self.coordination.close().await;
        tracing::info!("left the cluster");
    }

    /// The session is gone: ZooKeeper has removed this broker's registration (and the
    /// controller znode if it held it), and the controller may already have moved its
    /// leaderships. Stop leading at once, then join again with a new session and broker epoch.
    async fn session_expired(&mut self) {
        tracing::error!("coordination session expired: giving up every leadership and rejoining");
        self.controller = None;
        self.resign_leaderships_on_shards().await;
        loop {
            match registration::connect(&self.config, &self.log_dir).await {
                Ok(coordination) => {
                    self.coordination = coordination;
                    match register_with_patience(&self.coordination, &self.config).await {
                        Ok(epoch) => self.broker_epoch = epoch,
                        Err(error) => {
                            tracing::error!(%error, "could not register again; retrying");
                            tokio::time::sleep(registration::CONNECT_RETRY_BACKOFF).await;
                            continue;
                        }
                    }
                    match self.start_session_work().await {
                        Ok(()) => break,
                        Err(error) => tracing::warn!(%error, "could not reload after rejoining"),
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot reach ZooKeeper; retrying"),
            }
            tokio::time::sleep(registration::CONNECT_RETRY_BACKOFF).await;
        }
        tracing::info!(broker_epoch = self.broker_epoch, "rejoined the cluster");
    }

    async fn resign_leaderships_on_shards(&self) {
        let Some(router) = &self.router else { return };
        for shard in 0..router.shard_count() {
            let _ = router
                .submit_to(shard, |state: std::rc::Rc<ShardState>| async move {
                    state.resign_all_leaderships();
                })
                .await;
        }
    }

    /// Re-reads what `dirty` names, feeds the controller, updates the view and the shards, and
    /// answers requests whose outcome is now visible.
    async fn refresh(&mut self, dirty: &mut Dirty) -> Result<(), CoordinationError> {
        let dirty = std::mem::take(dirty);
        let mut updates: Vec<MetadataUpdate> = Vec::new();
        let mut changed_topics: BTreeSet<String> = BTreeSet::new();
        let mut changed_states: BTreeSet<(String, i32)> = BTreeSet::new();
        let everything = dirty.everything;
        if everything || dirty.brokers || dirty.controller {
            if everything || dirty.brokers {
                self.brokers = view_reader::read_brokers(&self.coordination).await?;
            }
            self.controller_id = view_reader::read_controller(&self.coordination).await?;
            let members = view_reader::members(&self.brokers, self.controller_id);
            updates.extend(self.view.apply_members(members));
        }
        if everything || dirty.broker_configs {
            self.refresh_broker_configs().await?;
        }
        if everything {
            let names = view_reader::read_topic_names(&self.coordination).await?;
            let gone: Vec<String> = self
                .topics
                .keys()
                .filter(|name| !names.contains(*name))
                .cloned()
                .collect();
            for name in gone.into_iter().chain(names) {
                changed_topics.insert(name);
            }
        } else {
            changed_topics.extend(dirty.topics);
        }
        for name in &changed_topics {
            match view_reader::read_topic(&self.coordination, name).await? {
                Some(topic) => {
                    self.topics.insert(name.clone(), topic);
                }
                None => {
                    self.topics.remove(name);
                }
            }
        }
        for (name, index) in dirty.states {
            if changed_topics.contains(&name) {
                // Read with its topic just now; still a state change the controller must hear
                // of (a leader's ISR change landing next to a topic znode write, as in a
                // reassignment: the topic record alone does not override its states).
                changed_states.insert((name, index));
                continue;
            }
            let Some(topic) = self.topics.get_mut(&name) else {
                continue;
            };
            let Some(slot) = usize::try_from(index)
                .ok()
                .and_then(|index| topic.states.get_mut(index))
            else {
                continue;
            };
            *slot = view_reader::read_partition_state(&self.coordination, &name, index).await?;
            changed_states.insert((name, index));
        }
        for name in changed_topics
            .iter()
            .chain(changed_states.iter().map(|(name, _)| name))
            .collect::<BTreeSet<_>>()
        {
            let metadata = self.topics.get(name).map(|topic| topic.to_metadata(name));
            updates.extend(self.view.apply_topic(name, metadata));
        }
        self.publish(updates).await;

        // The controller: stand for it when there is none; feed it what changed.
        if self.controller_id == self.config.broker_id && self.controller.is_none() {
            // This broker's session holds /controller but it stepped down (fenced, or its
            // store failed under it): give the znode up so a fresh election happens.
            tracing::warn!("holding /controller without acting as controller; giving it up");
            if let Err(error) = self
                .coordination
                .delete(znodes::CONTROLLER_PATH, None)
                .await
            {
                tracing::warn!(%error, "could not give up /controller");
            }
        } else if self.controller_id == crate::broker::topics::NO_LEADER
            && self.controller.is_none()
        {
            self.stand_for_controller().await;
        } else if self.controller_id != self.config.broker_id && self.controller.is_some() {
            tracing::warn!(
                controller = self.controller_id,
                "another broker is controller now; resigning"
            );
            self.controller = None;
        }
        if self.controller.is_some() {
            let admin_changed = everything || dirty.admin;
            let brokers_changed = everything || dirty.brokers;
            ControllerDriver::on_changes(
                self,
                brokers_changed,
                &changed_topics,
                &changed_states,
                admin_changed,
            )
            .await;
        }
        admin::answer_waiters(self);
        self.check_shutdown_progress();
        Ok(())
    }

    /// Re-reads the dynamic broker configs (`/config/brokers/<default>` and this broker's);
    /// when they changed, records them in the view and has every shard re-apply its topics'
    /// configs, which fall back to them.
    async fn refresh_broker_configs(&mut self) -> Result<(), CoordinationError> {
        let dynamic = DynamicBrokerConfigs {
            cluster_default: view_reader::read_config_znode(
                &self.coordination,
                &znodes::broker_config_path(DEFAULT_ENTITY),
            )
            .await?,
            this_broker: view_reader::read_config_znode(
                &self.coordination,
                &znodes::broker_config_path(&self.config.broker_id.to_string()),
            )
            .await?,
        };
        let effective = effective_config(&self.config, &dynamic);
        if !self
            .view
            .set_dynamic_broker_configs(dynamic.clone(), effective)
        {
            return Ok(());
        }
        tracing::info!(
            cluster_default = ?dynamic.cluster_default,
            this_broker = ?dynamic.this_broker,
            "dynamic broker configs applied"
        );
        if let Some(router) = &self.router {
            let deliveries: Vec<_> = (0..router.shard_count())
                .map(|shard| {
                    router.submit_to(shard, |state: std::rc::Rc<ShardState>| async move {
                        state.reapply_all_topic_configs();
                    })
                })
                .collect();
            for outcome in strom_engine::runtime::join_all(deliveries).await {
                if let Err(error) = outcome {
                    tracing::warn!(%error, "could not apply the dynamic broker configs on a shard");
                }
            }
        }
        Ok(())
    }

    async fn stand_for_controller(&mut self) {
        if let Some(driver) = ControllerDriver::try_become(self).await {
            self.controller_id = self.config.broker_id;
            self.controller = Some(driver);
            let members = view_reader::members(&self.brokers, self.controller_id);
            let updates: Vec<_> = self.view.apply_members(members).into_iter().collect();
            self.publish(updates).await;
            ControllerDriver::on_elected(self).await;
        }
    }

    /// The earliest moment something is due, if anything is.
    fn next_deadline(&self) -> Option<Instant> {
        let now_wall_ms = now_ms();
        let controller = self
            .controller
            .as_ref()
            .and_then(ControllerDriver::next_deadline_ms)
            .map(|deadline_ms| {
                let wait_ms = u64::try_from(deadline_ms.saturating_sub(now_wall_ms)).unwrap_or(0);
                Instant::now() + Duration::from_millis(wait_ms)
            });
        let waiters = self.waiters.iter().map(Waiter::deadline).min();
        // A controlled shutdown re-checks its progress on its own timer too.
        let shutdown = self
            .shutdown
            .as_ref()
            .map(|(deadline, _)| (*deadline).min(Instant::now() + TICK_INTERVAL));
        [controller, waiters, shutdown, self.presumed_expired_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// When a lost store connection counts as an expired session.
    fn presumed_expired_at(&self) -> Option<Instant> {
        self.disconnected_since
            .map(|since| since + Duration::from_millis(self.config.zookeeper_session_timeout_ms))
    }

    fn disconnected_too_long(&self) -> bool {
        self.presumed_expired_at()
            .is_some_and(|at| Instant::now() >= at)
    }

    async fn on_tick(&mut self) {
        admin::expire_waiters(self);
        if self.controller.is_some() {
            ControllerDriver::on_tick(self).await;
        }
        self.check_shutdown_progress();
    }

    /// Sends updates to every shard (once attached), in order, and waits until all have them.
    pub(super) async fn publish(&mut self, updates: Vec<MetadataUpdate>) {
        if updates.is_empty() {
            return;
        }
        let Some(router) = &self.router else {
            self.unpublished = true;
            return;
        };
        for update in updates {
            let deliveries: Vec<_> = (0..router.shard_count())
                .map(|shard| {
                    let update = update.clone();
                    router.submit_to(shard, move |state: std::rc::Rc<ShardState>| async move {
                        state.apply_metadata(&update).await;
                    })
                })
                .collect();
            for outcome in strom_engine::runtime::join_all(deliveries).await {
                if let Err(error) = outcome {
                    tracing::warn!(%error, "could not update a shard's metadata");
                }
            }
        }
    }

    async fn handle_request(&mut self, request: ControlRequest) {
        match request {
            ControlRequest::Attach(router) => {
                self.router = Some(router);
                if std::mem::take(&mut self.unpublished) {
                    // The shards may have started from an older snapshot: a gap makes each
                    // reload. The update is recorded in the view (its version bumped), so the
                    // next real change does not reuse this version and get dropped as stale
                    // by shards that already applied this one.
                    let update = self.view.republish_members();
                    self.publish(vec![update]).await;
                }
            }
            ControlRequest::ControlledShutdown { timeout_ms, reply } => {
                self.begin_controlled_shutdown(timeout_ms, reply).await;
            }
            ControlRequest::Stop => {}
            other => admin::handle(self, other).await,
        }
    }

    async fn begin_controlled_shutdown(
        &mut self,
        timeout_ms: u64,
        reply: oneshot::Sender<ControlledShutdownOutcome>,
    ) {
        let others_live = self.brokers.keys().any(|id| *id != self.config.broker_id);
        if !self.config.controlled_shutdown_enable || !others_live {
            let _ = reply.send(ControlledShutdownOutcome::Skipped);
            return;
        }
        tracing::info!(
            timeout_ms,
            "controlled shutdown: asking the controller to move this broker's leaderships"
        );
        let request = znodes::ControlledShutdownRequest {
            broker_epoch: self.broker_epoch,
        };
        let path = znodes::controlled_shutdown_path(self.config.broker_id);
        let written = match self
            .coordination
            .create(
                &path,
                request.encode(),
                crate::coordination::NodeKind::Persistent,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(CoordinationError::NodeExists { .. }) => self
                .coordination
                .set(&path, request.encode(), None)
                .await
                .map(|_| ()),
            Err(error) => Err(error),
        };
        if let Err(error) = written {
            tracing::warn!(%error, "could not ask for a controlled shutdown");
            let _ = reply.send(ControlledShutdownOutcome::Skipped);
            return;
        }
        self.shutdown = Some((Instant::now() + Duration::from_millis(timeout_ms), reply));
        self.check_shutdown_progress();
    }

    /// Partitions this broker leads that another live ISR member could take over.
    pub(super) fn movable_leaderships(&self) -> usize {
        let me = self.config.broker_id;
        self.topics
            .values()
            .flat_map(|topic| topic.states.iter().flatten())
            .filter(|state| {
                state.leader == me
                    && state
                        .isr
                        .iter()
                        .any(|member| *member != me && self.brokers.contains_key(member))
            })
            .count()
    }

    fn led_partitions(&self) -> usize {
        let me = self.config.broker_id;
        self.topics
            .values()
            .flat_map(|topic| topic.states.iter().flatten())
            .filter(|state| state.leader == me)
            .count()
    }

    fn check_shutdown_progress(&mut self) {
        let Some((deadline, _)) = &self.shutdown else {
            return;
        };
        let movable = self.movable_leaderships();
        let timed_out = Instant::now() >= *deadline;
        if movable == 0 || timed_out {
            let remaining = self.led_partitions();
            if let Some((_, reply)) = self.shutdown.take() {
                let outcome = if movable == 0 {
                    ControlledShutdownOutcome::Done { remaining }
                } else {
                    ControlledShutdownOutcome::TimedOut { remaining }
                };
                let _ = reply.send(outcome);
            }
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// The next event of any watch (`None` when one ended: the session is going).
async fn next_event(watches: &mut [TreeWatch]) -> Option<TreeEvent> {
    if watches.is_empty() {
        std::future::pending::<()>().await;
    }
    let futures: Vec<_> = watches
        .iter_mut()
        .map(|watch| Box::pin(watch.next()))
        .collect();
    select_all(futures).await
}

/// Polls every future and returns the output of the first to finish.
async fn select_all<F: std::future::Future + Unpin>(mut futures: Vec<F>) -> F::Output {
    std::future::poll_fn(move |context| {
        for future in &mut futures {
            if let std::task::Poll::Ready(output) = std::pin::Pin::new(future).poll(context) {
                return std::task::Poll::Ready(output);
            }
        }
        std::task::Poll::Pending
    })
    .await
}
