//! A classic-protocol group consumer (JoinGroup / SyncGroup / Heartbeat / LeaveGroup with the
//! "consumer" embedded protocol) on top of [`Consumer`].
//!
//! It honours Kafka's consumer settings:
//! - `session_timeout_ms` and `max_poll_interval_ms` (sent as the rebalance timeout) in JoinGroup;
//! - `heartbeat_interval_ms`: a background task heartbeats while the member is stable, and marks
//!   the member for rejoining on REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID;
//! - `max_poll_interval_ms`: when `poll` is not called for that long, the heartbeat task sends
//!   LeaveGroup and the member leaves (as Kafka's consumer does); the next `poll` rejoins;
//! - `enable_auto_commit` / `auto_commit_interval_ms`: positions are committed from `poll`
//!   every interval, before a rebalance, and on `close`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinHandle;

use super::admin::{commit, fetch_committed, find_coordinator_addr};
use super::assignor::{
    decode_assignment, decode_subscription, encode_assignment, encode_subscription, Assignor,
};
use super::cluster::Client;
use super::connection::Connection;
use super::consumer::{Consumer, ConsumerConfig, OffsetReset, StartOffset, TopicPartition};
use super::errors::{ClientError, KafkaCode, Result};
use super::records::ConsumerRecord;

/// Extra time a JoinGroup may be held beyond the rebalance timeout (Kafka's clients use 5 s).
const JOIN_EXTRA_TIMEOUT_MS: u64 = 5_000;
/// Rounds of JoinGroup/SyncGroup one `poll` tries before giving up with an error.
const JOIN_ATTEMPTS_MAX: u32 = 20;

#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub group_id: String,
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: u64,
    pub max_poll_interval_ms: u64,
    pub enable_auto_commit: bool,
    pub auto_commit_interval_ms: u64,
    /// Offered in JoinGroup in this order of preference.
    pub assignors: Vec<Assignor>,
    /// Fetch settings; `offset_reset` applies to partitions without a committed offset.
    pub consumer: ConsumerConfig,
}

impl GroupConfig {
    pub fn new(group_id: &str) -> GroupConfig {
        GroupConfig {
            group_id: group_id.to_string(),
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            max_poll_interval_ms: 300_000,
            enable_auto_commit: true,
            auto_commit_interval_ms: 5_000,
            assignors: vec![Assignor::Range, Assignor::RoundRobin],
            consumer: ConsumerConfig {
                offset_reset: OffsetReset::Latest,
                ..ConsumerConfig::default()
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    Unjoined,
    Stable,
}

/// State shared by `poll` and the heartbeat task.
struct Membership {
    member_id: String,
    generation_id: i32,
    state: MemberState,
    rejoin_needed: bool,
    last_poll: Instant,
    coordinator: Option<Arc<Connection>>,
    /// Why the member last left the group on its own (poll interval exceeded), until read.
    left_reason: Option<String>,
}

fn lock(membership: &Mutex<Membership>) -> MutexGuard<'_, Membership> {
    membership.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct GroupConsumer {
    client: Client,
    config: GroupConfig,
    topics: Vec<String>,
    consumer: Consumer,
    membership: Arc<Mutex<Membership>>,
    heartbeat: Option<JoinHandle<()>>,
    last_commit: Instant,
    /// Positions as of the last successful commit, to skip commits that change nothing.
    committed: BTreeMap<TopicPartition, i64>,
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        if let Some(handle) = self.heartbeat.take() {
            handle.abort();
        }
    }
}

impl GroupConsumer {
    pub fn new(client: Client, config: GroupConfig) -> Result<GroupConsumer> {
        if config.group_id.is_empty() {
            return Err(ClientError::InvalidArgument(
                "group id must not be empty".into(),
            ));
        }
        if config.heartbeat_interval_ms == 0
            || config.heartbeat_interval_ms >= u64::try_from(config.session_timeout_ms).unwrap_or(0)
        {
            return Err(ClientError::InvalidArgument(
                "heartbeat.interval.ms must be positive and below session.timeout.ms".into(),
            ));
        }
        if config.assignors.is_empty() {
            return Err(ClientError::InvalidArgument(
                "at least one assignor is needed".into(),
            ));
        }
        let consumer = Consumer::new(client.clone(), config.consumer.clone());
        Ok(GroupConsumer {
            client,
            config,
            topics: Vec::new(),
            consumer,
            membership: Arc::new(Mutex::new(Membership {
                member_id: String::new(),
                generation_id: -1,
                state: MemberState::Unjoined,
                rejoin_needed: true,
                last_poll: Instant::now(),
                coordinator: None,
                left_reason: None,
            })),
            heartbeat: None,
            last_commit: Instant::now(),
            committed: BTreeMap::new(),
        })
    }

    /// Subscribes to topics; the group rebalances at the next `poll`.
    pub fn subscribe(&mut self, topics: &[String]) {
        let mut topics = topics.to_vec();
        topics.sort();
        topics.dedup();
        self.topics = topics;
        lock(&self.membership).rejoin_needed = true;
    }

    /// The partitions currently assigned to this member.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.consumer.assignment()
    }

    pub fn member_id(&self) -> String {
        lock(&self.membership).member_id.clone()
    }

    pub fn generation_id(&self) -> i32 {
        lock(&self.membership).generation_id
    }

    /// Why the member last left the group on its own, if it did since the last call.
    pub fn take_left_reason(&mut self) -> Option<String> {
        lock(&self.membership).left_reason.take()
    }

    /// Next offsets to consume per assigned partition.
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.consumer.positions()
    }

    /// Moves an assigned partition's position (what the next commit stores), e.g. back to the
    /// first record of a poll that the caller did not process.
    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        self.consumer.seek(topic, partition, offset);
    }

    /// Whether every assigned partition has been read to its high watermark.
    pub fn at_end(&self) -> bool {
        self.consumer.at_end()
    }

    /// Joins (or rejoins) the group when needed, auto-commits when due, then returns records.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        if self.topics.is_empty() {
            return Err(ClientError::InvalidArgument("poll before subscribe".into()));
        }
        let (needs_join, was_stable) = {
            let mut membership = lock(&self.membership);
            membership.last_poll = Instant::now();
            (
                membership.rejoin_needed || membership.state != MemberState::Stable,
                membership.state == MemberState::Stable,
            )
        };
        if needs_join {
            if was_stable && self.config.enable_auto_commit {
                // Commit what was consumed before the partitions may move (best effort: the
                // generation may already be gone).
                let _ = self.commit_positions().await;
            }
            self.join().await?;
        }
        if self.config.enable_auto_commit
            && self.last_commit.elapsed()
                >= Duration::from_millis(self.config.auto_commit_interval_ms)
        {
            self.last_commit = Instant::now();
            match self.commit_positions().await {
                Ok(()) => {}
                Err(error) if is_membership_error(&error) => {
                    lock(&self.membership).rejoin_needed = true
                }
                Err(error) if error.is_retriable() => lock(&self.membership).coordinator = None,
                Err(error) => return Err(error),
            }
        }
        let records = self.consumer.poll(timeout).await?;
        lock(&self.membership).last_poll = Instant::now();
        Ok(records)
    }

    /// Commits the current positions now.
    pub async fn commit_sync(&mut self) -> Result<()> {
        self.commit_positions().await
    }

    async fn commit_positions(&mut self) -> Result<()> {
        let positions = self.consumer.positions();
        let changed: BTreeMap<TopicPartition, i64> = positions
            .into_iter()
            .filter(|(tp, offset)| self.committed.get(tp) != Some(offset))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let (generation_id, member_id) = {
            let membership = lock(&self.membership);
            if membership.state != MemberState::Stable {
                return Err(ClientError::LeftGroup {
                    group: self.config.group_id.clone(),
                    reason: "not a member of a stable group".into(),
                });
            }
            (membership.generation_id, membership.member_id.clone())
        };
        let coordinator = self.coordinator().await?;
        commit(
            &coordinator,
            &self.config.group_id,
            generation_id,
            &member_id,
            &changed,
        )
        .await?;
        self.committed.extend(changed);
        Ok(())
    }

    async fn coordinator(&self) -> Result<Arc<Connection>> {
        let known = lock(&self.membership).coordinator.clone();
        if let Some(connection) = known {
            if !connection.is_closed() {
                return Ok(connection);
            }
        }
        // A connection of its own: the coordinator holds a JoinGroup open until every member
        // rejoins, and Kafka brokers answer one connection's requests in order, so a shared
        // connection would queue other members' heartbeats (and this one's fetches) behind it.
        let addr = find_coordinator_addr(&self.client, &self.config.group_id).await?;
        let connection = self.client.new_connection_to(&addr).await?;
        lock(&self.membership).coordinator = Some(connection.clone());
        Ok(connection)
    }

    /// JoinGroup + SyncGroup until the member is stable, then fetches committed offsets and
    /// assigns the partitions.
    async fn join(&mut self) -> Result<()> {
        {
            let mut membership = lock(&self.membership);
            membership.state = MemberState::Unjoined;
            membership.rejoin_needed = false;
        }
        let group = self.config.group_id.clone();
        let subscription = encode_subscription(&self.topics)?;
        let join_timeout =
            Duration::from_millis(self.config.max_poll_interval_ms + JOIN_EXTRA_TIMEOUT_MS);
        let mut last_error = None;
        for _attempt in 0..JOIN_ATTEMPTS_MAX {
            let coordinator = match self.coordinator().await {
                Ok(connection) => connection,
                Err(error) if error.is_retriable() => {
                    last_error = Some(error);
                    self.client.backoff().await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let member_id = lock(&self.membership).member_id.clone();
            let version = coordinator.version::<JoinGroupRequest>()?;
            let mut request = JoinGroupRequest::default();
            request.group_id = GroupId(StrBytes::from_string(group.clone()));
            request.session_timeout_ms = self.config.session_timeout_ms;
            if version >= 1 {
                request.rebalance_timeout_ms =
                    i32::try_from(self.config.max_poll_interval_ms).unwrap_or(i32::MAX);
            }
            request.member_id = StrBytes::from_string(member_id.clone());
            request.protocol_type = StrBytes::from_static_str("consumer");
            request.protocols = self
                .config
                .assignors
                .iter()
                .map(|assignor| {
                    let mut protocol = JoinGroupRequestProtocol::default();
                    protocol.name = StrBytes::from_static_str(assignor.name());
                    protocol.metadata = subscription.clone();
                    protocol
                })
                .collect();
            let response = match coordinator.enqueue(&request, version, true).await {
                Ok(future) => future.with_timeout(join_timeout).wait().await,
                Err(error) => Err(error),
            };
            let response = match response {
                Ok(Some(response)) => response,
                Ok(None) => {
                    return Err(ClientError::Protocol {
                        addr: coordinator.addr().into(),
                        reason: "missing JoinGroup response".into(),
                    })
                }
                Err(error) if error.is_retriable() => {
                    lock(&self.membership).coordinator = None;
                    last_error = Some(error);
                    self.client.backoff().await;
                    continue;
                }
                Err(error) => return Err(error),
            };
            match response.error_code {
                0 => {}
                KafkaCode::MEMBER_ID_REQUIRED => {
                    lock(&self.membership).member_id = response.member_id.to_string();
                    continue;
                }
                KafkaCode::UNKNOWN_MEMBER_ID => {
                    lock(&self.membership).member_id.clear();
                    continue;
                }
                code => {
                    let error = ClientError::kafka(format!("join group '{group}'"), code, None);
                    if code == KafkaCode::NOT_COORDINATOR
                        || code == KafkaCode::COORDINATOR_NOT_AVAILABLE
                    {
                        lock(&self.membership).coordinator = None;
                    }
                    if error.is_retriable() || code == KafkaCode::REBALANCE_IN_PROGRESS {
                        last_error = Some(error);
                        self.client.backoff().await;
                        continue;
                    }
                    return Err(error);
                }
            }
            let generation_id = response.generation_id;
            let member_id = response.member_id.to_string();
            let protocol_name = response
                .protocol_name
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            {
                let mut membership = lock(&self.membership);
                membership.member_id = member_id.clone();
                membership.generation_id = generation_id;
            }
            let assignments = if response.leader.as_str() == member_id {
                self.assign_as_leader(&protocol_name, &response.members)
                    .await?
            } else {
                Vec::new()
            };
            let sync_version = coordinator.version::<SyncGroupRequest>()?;
            let mut sync = SyncGroupRequest::default();
            sync.group_id = GroupId(StrBytes::from_string(group.clone()));
            sync.generation_id = generation_id;
            sync.member_id = StrBytes::from_string(member_id.clone());
            if sync_version >= 5 {
                sync.protocol_type = Some(StrBytes::from_static_str("consumer"));
                sync.protocol_name = Some(StrBytes::from_string(protocol_name.clone()));
            }
            sync.assignments = assignments;
            let sync_response = match coordinator.enqueue(&sync, sync_version, true).await {
                Ok(future) => future.with_timeout(join_timeout).wait().await,
                Err(error) => Err(error),
            };
            let sync_response = match sync_response {
                Ok(Some(response)) => response,
                Ok(None) => {
                    return Err(ClientError::Protocol {
                        addr: coordinator.addr().into(),
                        reason: "missing SyncGroup response".into(),
                    })
                }
                Err(error) if error.is_retriable() => {
                    lock(&self.membership).coordinator = None;
                    last_error = Some(error);
                    continue;
                }
                Err(error) => return Err(error),
            };
            match sync_response.error_code {
                0 => {}
                code @ (KafkaCode::REBALANCE_IN_PROGRESS | KafkaCode::ILLEGAL_GENERATION) => {
                    last_error = Some(ClientError::kafka(
                        format!("sync group '{group}'"),
                        code,
                        None,
                    ));
                    continue;
                }
                KafkaCode::UNKNOWN_MEMBER_ID => {
                    lock(&self.membership).member_id.clear();
                    continue;
                }
                code => {
                    return Err(ClientError::kafka(
                        format!("sync group '{group}'"),
                        code,
                        None,
                    ))
                }
            }
            let partitions = decode_assignment(&sync_response.assignment)?;
            self.take_assignment(&coordinator, &partitions).await?;
            {
                let mut membership = lock(&self.membership);
                membership.state = MemberState::Stable;
                membership.last_poll = Instant::now();
            }
            self.ensure_heartbeat();
            return Ok(());
        }
        Err(last_error.unwrap_or_else(|| ClientError::LeftGroup {
            group,
            reason: format!("could not join after {JOIN_ATTEMPTS_MAX} attempts"),
        }))
    }

    /// Runs the chosen assignor over the members' subscriptions.
    async fn assign_as_leader(
        &self,
        protocol_name: &str,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let assignor = Assignor::from_name(protocol_name).ok_or_else(|| ClientError::Protocol {
            addr: "group coordinator".into(),
            reason: format!("coordinator chose unknown assignor '{protocol_name}'"),
        })?;
        let mut subscriptions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut all_topics: Vec<String> = Vec::new();
        for member in members {
            let topics = decode_subscription(&member.metadata)?;
            all_topics.extend(topics.iter().cloned());
            subscriptions.insert(member.member_id.to_string(), topics);
        }
        all_topics.sort();
        all_topics.dedup();
        let metadata = self.client.refresh_metadata(Some(&all_topics)).await?;
        let partition_counts: BTreeMap<String, i32> = all_topics
            .iter()
            .filter_map(|t| {
                metadata
                    .topics
                    .get(t)
                    .map(|info| (t.clone(), i32::try_from(info.partitions.len()).unwrap_or(0)))
            })
            .collect();
        let plan = assignor.assign(&subscriptions, &partition_counts);
        let mut out = Vec::new();
        for (member_id, partitions) in plan {
            let mut assignment = SyncGroupRequestAssignment::default();
            assignment.member_id = StrBytes::from_string(member_id);
            assignment.assignment = encode_assignment(&partitions)?;
            out.push(assignment);
        }
        Ok(out)
    }

    /// Starts consuming the assigned partitions from their committed offsets.
    async fn take_assignment(
        &mut self,
        coordinator: &Connection,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        let committed = if partitions.is_empty() {
            BTreeMap::new()
        } else {
            fetch_committed(coordinator, &self.config.group_id, Some(partitions)).await?
        };
        let reset = match self.config.consumer.offset_reset {
            OffsetReset::Earliest => StartOffset::Earliest,
            OffsetReset::Latest => StartOffset::Latest,
            OffsetReset::None => StartOffset::Offset(-1),
        };
        let mut assignment = Vec::new();
        for (topic, partition) in partitions {
            let start = match committed.get(&(topic.clone(), *partition)) {
                Some(&offset) => StartOffset::Offset(offset),
                None if self.config.consumer.offset_reset == OffsetReset::None => {
                    return Err(ClientError::InvalidArgument(format!(
                        "no committed offset for {topic}-{partition} in group '{}' and offset reset is none",
                        self.config.group_id
                    )))
                }
                None => reset,
            };
            assignment.push((topic.clone(), *partition, start));
        }
        self.consumer.assign(&assignment).await?;
        self.committed = committed;
        Ok(())
    }

    fn ensure_heartbeat(&mut self) {
        if self.heartbeat.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let membership = self.membership.clone();
        let group = self.config.group_id.clone();
        let interval = Duration::from_millis(self.config.heartbeat_interval_ms);
        let max_poll_interval = Duration::from_millis(self.config.max_poll_interval_ms);
        self.heartbeat = Some(tokio::spawn(heartbeat_loop(
            membership,
            group,
            interval,
            max_poll_interval,
        )));
    }

    /// Commits (with auto-commit on), leaves the group and stops heartbeating.
    pub async fn close(mut self) -> Result<()> {
        let mut outcome = Ok(());
        if self.config.enable_auto_commit && lock(&self.membership).state == MemberState::Stable {
            outcome = self.commit_positions().await;
        }
        if let Some(handle) = self.heartbeat.take() {
            handle.abort();
        }
        let (member_id, coordinator, stable) = {
            let membership = lock(&self.membership);
            (
                membership.member_id.clone(),
                membership.coordinator.clone(),
                membership.state == MemberState::Stable,
            )
        };
        if stable && !member_id.is_empty() {
            if let Some(coordinator) = coordinator {
                let _ = leave_group(
                    &coordinator,
                    &self.config.group_id,
                    &member_id,
                    "the consumer is being closed",
                )
                .await;
            }
        }
        outcome
    }
}

fn is_membership_error(error: &ClientError) -> bool {
    matches!(
        error.code(),
        Some(
            KafkaCode::REBALANCE_IN_PROGRESS
                | KafkaCode::ILLEGAL_GENERATION
                | KafkaCode::UNKNOWN_MEMBER_ID
                | KafkaCode::FENCED_INSTANCE_ID
        )
    ) || matches!(error, ClientError::LeftGroup { .. })
}

async fn leave_group(
    coordinator: &Connection,
    group: &str,
    member_id: &str,
    reason: &str,
) -> Result<()> {
    let version = coordinator.version::<LeaveGroupRequest>()?;
    let mut request = LeaveGroupRequest::default();
    request.group_id = GroupId(StrBytes::from_string(group.to_string()));
    if version >= 3 {
        let mut member = MemberIdentity::default();
        member.member_id = StrBytes::from_string(member_id.to_string());
        if version >= 5 {
            member.reason = Some(StrBytes::from_string(reason.to_string()));
        }
        request.members = vec![member];
    } else {
        request.member_id = StrBytes::from_string(member_id.to_string());
    }
    let response = coordinator.send_version(&request, version).await?;
    if response.error_code != 0 && response.error_code != KafkaCode::UNKNOWN_MEMBER_ID {
        return Err(ClientError::kafka(
            format!("leave group '{group}'"),
            response.error_code,
            None,
        ));
    }
    Ok(())
}

/// Heartbeats while the member is stable; leaves the group when `poll` has not been called
/// within `max_poll_interval`.
async fn heartbeat_loop(
    membership: Arc<Mutex<Membership>>,
    group: String,
    interval: Duration,
    max_poll_interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let (state, generation_id, member_id, coordinator, last_poll) = {
            let m = lock(&membership);
            (
                m.state,
                m.generation_id,
                m.member_id.clone(),
                m.coordinator.clone(),
                m.last_poll,
            )
        };
        if state != MemberState::Stable {
            continue;
        }
        let Some(coordinator) = coordinator else {
            lock(&membership).rejoin_needed = true;
            continue;
        };
        if last_poll.elapsed() > max_poll_interval {
            let reason = format!(
                "poll() was not called for {} ms, more than max.poll.interval.ms ({} ms)",
                last_poll.elapsed().as_millis(),
                max_poll_interval.as_millis()
            );
            let _ = leave_group(&coordinator, &group, &member_id, &reason).await;
            let mut m = lock(&membership);
            m.state = MemberState::Unjoined;
            m.member_id.clear();
            m.generation_id = -1;
            m.rejoin_needed = true;
            m.left_reason = Some(reason);
            continue;
        }
        let mut request = HeartbeatRequest::default();
        request.group_id = GroupId(StrBytes::from_string(group.clone()));
        request.generation_id = generation_id;
        request.member_id = StrBytes::from_string(member_id.clone());
        let outcome = coordinator.send(&request).await;
        let mut m = lock(&membership);
        if m.generation_id != generation_id || m.state != MemberState::Stable {
            continue; // the member rejoined meanwhile; this answer is stale
        }
        match outcome.map(|r| r.error_code) {
            Ok(0) => {}
            Ok(KafkaCode::REBALANCE_IN_PROGRESS | KafkaCode::ILLEGAL_GENERATION) => {
                m.rejoin_needed = true
            }
            Ok(KafkaCode::UNKNOWN_MEMBER_ID | KafkaCode::FENCED_INSTANCE_ID) => {
                m.member_id.clear();
                m.rejoin_needed = true;
            }
            Ok(KafkaCode::NOT_COORDINATOR | KafkaCode::COORDINATOR_NOT_AVAILABLE) | Err(_) => {
                m.coordinator = None;
                m.rejoin_needed = true;
            }
            Ok(_) => {}
        }
    }
}
