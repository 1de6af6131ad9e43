//! The classic consumer-group coordinator as a pure state machine.
//!
//! A [`GroupCoordinator`] owns the groups of one `__consumer_offsets`
//! partition. It does no I/O and reads no clock: the runtime feeds it
//! requests and the current time ([`GroupCoordinator::handle`]) and carries
//! out the [`Action`]s it returns, in order:
//!
//! - [`Action::Respond`]: send a response now. JoinGroup and SyncGroup are
//!   often answered later than they arrive (after other members rejoin or the
//!   leader assigns), so every request carries a [`RequestToken`] that comes
//!   back with its response. Every request is answered exactly once.
//! - [`Action::Append`]: append records to the partition, then send the
//!   responses that wait on them (an offset commit is acknowledged only once
//!   its record is durable).
//!
//! Deadlines (session timeouts, rebalance timeouts, the initial rebalance
//! delay, pending SyncGroups, offset expiry) live inside the coordinator;
//! [`GroupCoordinator::next_deadline_ms`] tells the runtime when to call
//! [`GroupCoordinator::tick`]. Time is wall-clock milliseconds since the Unix
//! epoch (commit timestamps are persisted); a time earlier than one already
//! seen is treated as the later one.
//!
//! At startup the runtime replays the partition's records into a new
//! coordinator ([`GroupCoordinator::replay`], then
//! [`GroupCoordinator::finish_loading`]); until then every request is
//! answered with COORDINATOR_LOAD_IN_PROGRESS. The record formats are
//! Kafka's and are described in [`records`].
//!
//! The rules follow Kafka's `GroupMetadataManager` and `ClassicGroup`
//! (Kafka 3.9/4.0) and keep its error codes. Where Strom differs:
//! - Everything is bounded ([`GroupConfig`]): groups per coordinator,
//!   members per group (1000), offsets per group, metadata, assignment and
//!   record sizes.
//! - A parked JoinGroup or SyncGroup superseded by a newer one from the same
//!   member is answered (REBALANCE_IN_PROGRESS), and a removed member's
//!   parked SyncGroup too (UNKNOWN_MEMBER_ID); Kafka drops them unanswered.
//! - [`Input::PartitionsChanged`] rebalances subscribed groups; Kafka leaves
//!   that to the leader noticing the metadata change.
//! - No record is written when a group is created; a group that was never
//!   written and holds nothing disappears without a tombstone.

mod admin;
mod api;
mod classic_group;
mod config;
mod heartbeat;
mod ids;
mod join;
mod leave;
mod load;
mod member;
mod offsets;
mod rebalance;
pub mod records;
mod responses;
mod subscription;
mod sync;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

pub use api::{Action, Input, RequestContext, RequestToken, Response};
pub use classic_group::GroupState;
pub use config::{GroupConfig, GroupConfigError, ID_BYTES_MAX, TOPIC_NAME_BYTES_MAX};
pub use records::{Record, RecordError};
pub use subscription::CONSUMER_PROTOCOL_TYPE;

use classic_group::ClassicGroup;
use ids::MemberIdGenerator;
use timers::{TimerKey, Timers};

/// The group coordinator for one `__consumer_offsets` partition.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: BTreeMap<String, ClassicGroup>,
    fx: Effects,
    loading: bool,
}

/// Everything a handler may touch besides the groups: time, deadlines, the
/// actions being produced and the member id generator.
#[derive(Debug)]
pub(crate) struct Effects {
    now_ms: i64,
    timers: Timers,
    actions: Vec<Action>,
    ids: MemberIdGenerator,
}

impl Effects {
    fn respond(&mut self, token: RequestToken, response: Response) {
        self.actions.push(Action::Respond { token, response });
    }

    fn append(&mut self, records: Vec<Record>, then: Vec<(RequestToken, Response)>) {
        if records.is_empty() {
            for (token, response) in then {
                self.respond(token, response);
            }
        } else {
            self.actions.push(Action::Append { records, then });
        }
    }

    /// Schedules `key` `delay_ms` from now; at least 1 ms ahead, so a tick
    /// never runs a deadline it has just set.
    fn schedule_in(&mut self, key: TimerKey, delay_ms: i64) {
        let deadline_ms = self.now_ms.saturating_add(delay_ms.max(1));
        self.timers.schedule(key, deadline_ms);
    }

    fn cancel(&mut self, key: &TimerKey) {
        self.timers.cancel(key);
    }
}

/// One group plus what its rules need; the rebalance logic lives on this.
pub(crate) struct GroupCtx<'a> {
    group: &'a mut ClassicGroup,
    fx: &'a mut Effects,
    config: &'a GroupConfig,
}

impl GroupCoordinator {
    /// A coordinator that is loading: replay the partition's records with
    /// [`Self::replay`], then call [`Self::finish_loading`]. `member_id_seed`
    /// seeds the member id generator; use a random value in production and a
    /// fixed one in tests.
    pub fn new(config: GroupConfig, member_id_seed: u64) -> Result<Self, GroupConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            groups: BTreeMap::new(),
            fx: Effects {
                now_ms: 0,
                timers: Timers::default(),
                actions: Vec::new(),
                ids: MemberIdGenerator::new(member_id_seed),
            },
            loading: true,
        })
    }

    /// Whether requests are still refused with COORDINATOR_LOAD_IN_PROGRESS.
    pub fn is_loading(&self) -> bool {
        self.loading
    }

    /// Reacts to `input` at `now_ms`. Deadlines already due run first, so a
    /// late tick cannot reorder events.
    pub fn handle(&mut self, now_ms: i64, input: Input) -> Vec<Action> {
        self.fx.now_ms = self.fx.now_ms.max(now_ms);
        if self.loading {
            self.reject_while_loading(input);
            return std::mem::take(&mut self.fx.actions);
        }
        self.run_due_timers();
        match input {
            Input::JoinGroup(ctx, request) => self.join_group(&ctx, &request),
            Input::SyncGroup(ctx, request) => self.sync_group(&ctx, &request),
            Input::Heartbeat(ctx, request) => self.heartbeat(&ctx, &request),
            Input::LeaveGroup(ctx, request) => self.leave_group(&ctx, &request),
            Input::OffsetCommit(ctx, request) => self.offset_commit(&ctx, &request),
            Input::OffsetFetch(ctx, request) => self.offset_fetch(&ctx, &request, None),
            Input::OffsetDelete(ctx, request) => self.offset_delete(&ctx, &request),
            Input::DescribeGroups(ctx, request) => self.describe_groups(&ctx, &request, None),
            Input::ListGroups(ctx, request) => self.list_groups(&ctx, &request, None),
            Input::DeleteGroups(ctx, request) => self.delete_groups(&ctx, &request, None),
            Input::PartitionsChanged(topics) => self.partitions_changed(&topics),
            Input::Tick => {}
        }
        std::mem::take(&mut self.fx.actions)
    }

    /// Runs every deadline due by `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Action> {
        self.handle(now_ms, Input::Tick)
    }

    /// When [`Self::tick`] must next be called, if ever.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.fx.timers.next_deadline_ms()
    }

    /// Gives the partition up (it moved, or an append failed): every parked
    /// JoinGroup and SyncGroup is answered with NOT_COORDINATOR so the
    /// clients find the new coordinator.
    pub fn unload(mut self) -> Vec<Action> {
        for group in self.groups.values_mut() {
            for member in group.members.values_mut() {
                if let Some(parked) = member.awaiting_join.take() {
                    let response = responses::join_error(
                        parked.api_version,
                        ResponseError::NotCoordinator,
                        &member.member_id,
                    );
                    self.fx.respond(parked.token, Response::JoinGroup(response));
                }
                if let Some(parked) = member.awaiting_sync.take() {
                    let response = responses::sync_error(ResponseError::NotCoordinator);
                    self.fx.respond(parked.token, Response::SyncGroup(response));
                }
            }
        }
        self.fx.timers.clear();
        std::mem::take(&mut self.fx.actions)
    }

    /// The state of `group_id`, or `None` if this coordinator does not hold it.
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(ClassicGroup::state)
    }

    /// The generation of `group_id`.
    pub fn group_generation(&self, group_id: &str) -> Option<i32> {
        self.groups.get(group_id).map(|g| g.generation_id)
    }

    /// Member ids of `group_id`, in join order.
    pub fn group_members(&self, group_id: &str) -> Vec<String> {
        self.groups
            .get(group_id)
            .map(|g| g.members.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Every committed offset held: `(group, topic, partition, offset)` (for the lag metrics).
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        self.groups
            .iter()
            .flat_map(|(group_id, group)| {
                group.offsets.iter().flat_map(move |(topic, partitions)| {
                    partitions.iter().map(move |(&partition, committed)| {
                        (group_id.clone(), topic.clone(), partition, committed.offset)
                    })
                })
            })
            .collect()
    }

    /// Groups held.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    fn group_ctx(&mut self, group_id: &str) -> Option<GroupCtx<'_>> {
        let group = self.groups.get_mut(group_id)?;
        Some(GroupCtx {
            group,
            fx: &mut self.fx,
            config: &self.config,
        })
    }

    /// Removes a group that was never written and holds nothing.
    fn drop_if_disposable(&mut self, group_id: &str) {
        if self
            .groups
            .get(group_id)
            .is_some_and(ClassicGroup::is_disposable)
        {
            self.remove_group(group_id);
        }
    }

    /// Forgets a group and its deadlines (the caller writes any tombstones).
    fn remove_group(&mut self, group_id: &str) {
        let Some(group) = self.groups.remove(group_id) else {
            return;
        };
        assert!(
            group
                .members
                .values()
                .all(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none()),
            "group {group_id} removed with parked requests"
        );
        for member_id in group.members.keys().chain(group.pending_members.iter()) {
            self.fx.cancel(&TimerKey::Heartbeat {
                group: group_id.to_owned(),
                member: member_id.clone(),
            });
        }
        self.fx.cancel(&TimerKey::Join {
            group: group_id.to_owned(),
        });
        self.fx.cancel(&TimerKey::Sync {
            group: group_id.to_owned(),
        });
    }

    /// Runs due deadlines in deadline order, each at its own deadline (as
    /// if the runtime had ticked on time), so a late tick changes nothing:
    /// a deadline a handler sets that is also due runs in the same pass.
    fn run_due_timers(&mut self) {
        let now_ms = self.fx.now_ms;
        while let Some((deadline_ms, key)) = self.fx.timers.pop_due(now_ms) {
            self.fx.now_ms = deadline_ms;
            match key {
                TimerKey::Heartbeat { group, member } => {
                    if let Some(mut ctx) = self.group_ctx(&group) {
                        ctx.on_heartbeat_deadline(&member);
                    }
                    self.drop_if_disposable(&group);
                }
                TimerKey::Join { group } => {
                    if let Some(mut ctx) = self.group_ctx(&group) {
                        ctx.on_join_deadline();
                    }
                }
                TimerKey::Sync { group } => {
                    if let Some(mut ctx) = self.group_ctx(&group) {
                        ctx.on_sync_deadline();
                    }
                }
                TimerKey::Cleanup => self.cleanup_expired(),
            }
        }
        self.fx.now_ms = now_ms;
    }

    /// Groups subscribed to any of `topics` rebalance (their assignment was
    /// computed for other partition counts).
    fn partitions_changed(&mut self, topics: &[String]) {
        let ids: Vec<String> = self
            .groups
            .values()
            .filter(|g| {
                (g.is(GroupState::Stable) || g.is(GroupState::CompletingRebalance))
                    && topics.iter().any(|t| g.is_subscribed_to_topic(t))
            })
            .map(|g| g.group_id.clone())
            .collect();
        for group_id in ids {
            if let Some(mut ctx) = self.group_ctx(&group_id) {
                ctx.maybe_prepare_rebalance_or_complete_join();
            }
        }
    }
}
