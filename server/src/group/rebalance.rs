//! The rebalance protocol shared by every API: starting a rebalance,
//! completing the join phase, handing out assignments, removing members, and
//! the three per-group deadlines (session, join phase, pending sync).

use kafka_protocol::error::ResponseError;

use super::classic_group::{GroupState, InitialRebalance};
use super::records::{group_metadata_key, Record};
use super::responses::{self, JoinAnswer};
use super::timers::TimerKey;
use super::{GroupCtx, RequestToken, Response};

impl GroupCtx<'_> {
    pub(crate) fn now_ms(&self) -> i64 {
        self.fx.now_ms
    }

    fn heartbeat_key(&self, member_id: &str) -> TimerKey {
        TimerKey::Heartbeat {
            group: self.group.group_id.clone(),
            member: member_id.to_owned(),
        }
    }

    fn join_key(&self) -> TimerKey {
        TimerKey::Join {
            group: self.group.group_id.clone(),
        }
    }

    fn sync_key(&self) -> TimerKey {
        TimerKey::Sync {
            group: self.group.group_id.clone(),
        }
    }

    /// (Re)starts `member_id`'s session deadline.
    pub(crate) fn schedule_heartbeat(&mut self, member_id: &str, timeout_ms: i32) {
        let key = self.heartbeat_key(member_id);
        self.fx.schedule_in(key, timeout_ms.into());
    }

    /// Restarts a member's session with its own session timeout.
    pub(crate) fn reschedule_member_heartbeat(&mut self, member_id: &str) {
        if let Some(timeout_ms) = self
            .group
            .members
            .get(member_id)
            .map(|m| m.session_timeout_ms)
        {
            self.schedule_heartbeat(member_id, timeout_ms);
        }
    }

    pub(crate) fn cancel_heartbeat(&mut self, member_id: &str) {
        let key = self.heartbeat_key(member_id);
        self.fx.cancel(&key);
    }

    /// Appends the group's metadata record, then sends `then`.
    pub(crate) fn append_group_metadata(&mut self, then: Vec<(RequestToken, Response)>) {
        let record = Record {
            key: group_metadata_key(&self.group.group_id),
            value: Some(self.group.metadata_value().encode()),
        };
        self.fx.append(vec![record], then);
    }

    /// Removes a member, answering anything it has parked with
    /// UNKNOWN_MEMBER_ID, and stops its session. Also removes a pending
    /// member. Kafka leaves a removed member's parked SyncGroup unanswered;
    /// Strom answers it so no request is left dangling.
    pub(crate) fn remove_member(&mut self, member_id: &str) {
        self.cancel_heartbeat(member_id);
        let Some(member) = self.group.remove(member_id) else {
            return;
        };
        if let Some(parked) = member.awaiting_join {
            let response =
                responses::join_error(parked.api_version, ResponseError::UnknownMemberId, "");
            self.fx.respond(parked.token, Response::JoinGroup(response));
        }
        if let Some(parked) = member.awaiting_sync {
            let response = responses::sync_error(ResponseError::UnknownMemberId);
            self.fx.respond(parked.token, Response::SyncGroup(response));
        }
    }

    /// Kafka's `removeMemberAndUpdateClassicGroup`: remove, then rebalance or
    /// finish the join phase that may have been waiting only for this member.
    pub(crate) fn remove_member_and_update_group(&mut self, member_id: &str) {
        self.remove_member(member_id);
        match self.group.state() {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join();
            }
            GroupState::PreparingRebalance if self.group.has_all_members_joined() => {
                self.complete_join();
            }
            _ => {}
        }
    }

    pub(crate) fn maybe_prepare_rebalance_or_complete_join(&mut self) {
        if self.group.can_rebalance() {
            self.prepare_rebalance();
        } else {
            self.maybe_complete_join_phase();
        }
    }

    /// Moves the group to PreparingRebalance. Members parked in SyncGroup
    /// are told REBALANCE_IN_PROGRESS. A new (Empty) group waits the
    /// initial rebalance delay; otherwise the join phase ends when every
    /// member has rejoined or the rebalance timeout passes.
    pub(crate) fn prepare_rebalance(&mut self) {
        if self.group.is(GroupState::CompletingRebalance) {
            self.reset_and_propagate_assignment_with_error(ResponseError::RebalanceInProgress);
        }
        self.remove_sync_expiration();

        let is_initial_rebalance = self.group.is(GroupState::Empty);
        if is_initial_rebalance {
            let delay_ms = i64::from(self.config.initial_rebalance_delay_ms);
            let remaining_ms = (i64::from(self.group.rebalance_timeout_ms()) - delay_ms).max(0);
            self.group.initial_rebalance = Some(InitialRebalance {
                delay_ms,
                remaining_ms,
            });
            self.group.new_member_added = false;
            let key = self.join_key();
            self.fx.schedule_in(key, delay_ms);
        }
        let now_ms = self.now_ms();
        self.group
            .transition_to(GroupState::PreparingRebalance, now_ms);
        if !is_initial_rebalance {
            self.maybe_complete_join_else_schedule();
        }
    }

    fn maybe_complete_join_else_schedule(&mut self) {
        if self.group.has_all_members_joined() {
            self.complete_join();
        } else {
            self.group.initial_rebalance = None;
            let key = self.join_key();
            let timeout_ms = self.group.rebalance_timeout_ms().into();
            self.fx.schedule_in(key, timeout_ms);
        }
    }

    /// Completes the join phase early if every member is back, except during
    /// the initial rebalance, which always waits out its delay.
    pub(crate) fn maybe_complete_join_phase(&mut self) {
        if self.group.is(GroupState::PreparingRebalance)
            && self.group.previous_state() != GroupState::Empty
            && self.group.has_all_members_joined()
        {
            self.complete_join();
        }
    }

    /// The join-phase deadline: extend the initial delay if members are
    /// still arriving, else complete the join phase.
    pub(crate) fn on_join_deadline(&mut self) {
        if !self.group.is(GroupState::PreparingRebalance) {
            return;
        }
        match self.group.initial_rebalance.take() {
            Some(initial) if self.group.new_member_added && initial.remaining_ms != 0 => {
                self.group.new_member_added = false;
                let delay_ms =
                    i64::from(self.config.initial_rebalance_delay_ms).min(initial.remaining_ms);
                let remaining_ms = (initial.remaining_ms - initial.delay_ms).max(0);
                self.group.initial_rebalance = Some(InitialRebalance {
                    delay_ms,
                    remaining_ms,
                });
                let key = self.join_key();
                self.fx.schedule_in(key, delay_ms);
            }
            _ => self.complete_join(),
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped (static
    /// ones are kept), the generation advances, the protocol is chosen and
    /// every parked JoinGroup is answered; only the leader's answer lists the
    /// members. With no member left the group becomes Empty and its metadata
    /// is written.
    pub(crate) fn complete_join(&mut self) {
        assert!(
            self.group.is(GroupState::PreparingRebalance),
            "group {} completing a join phase in {:?}",
            self.group.group_id,
            self.group.state()
        );
        let key = self.join_key();
        self.fx.cancel(&key);
        self.group.initial_rebalance = None;

        let not_rejoined: Vec<String> = self
            .group
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in not_rejoined {
            self.remove_member(&member_id);
        }

        if !self.group.maybe_elect_new_joined_leader() && !self.group.members.is_empty() {
            // Only static members that have not rejoined are left: wait
            // another rebalance timeout (their sessions expire meanwhile).
            let timeout_ms = self.group.rebalance_timeout_ms().into();
            self.fx.schedule_in(key, timeout_ms);
            return;
        }

        let now_ms = self.now_ms();
        self.group.init_next_generation(now_ms);
        if self.group.is(GroupState::Empty) {
            self.append_group_metadata(Vec::new());
            return;
        }

        let leader = self.group.leader_id.clone().unwrap_or_default();
        let protocol_name = self.group.protocol_name.clone().unwrap_or_default();
        let member_ids: Vec<String> = self.group.members.keys().cloned().collect();
        for member_id in member_ids {
            let is_leader = member_id == leader;
            let members = if is_leader {
                self.leader_member_list(&protocol_name)
            } else {
                Vec::new()
            };
            let member = self
                .group
                .members
                .get_mut(&member_id)
                .expect("member listed above");
            member.is_new = false;
            let parked = member.awaiting_join.take();
            let session_timeout_ms = member.session_timeout_ms;
            if let Some(parked) = parked {
                let response = responses::join_ok(
                    parked.api_version,
                    JoinAnswer {
                        member_id: &member_id,
                        generation_id: self.group.generation_id,
                        protocol_type: self.group.protocol_type.as_deref(),
                        protocol_name: Some(&protocol_name),
                        leader: &leader,
                        skip_assignment: false,
                        members,
                    },
                );
                self.fx.respond(parked.token, Response::JoinGroup(response));
            }
            self.schedule_heartbeat(&member_id, session_timeout_ms);
            self.group.pending_sync.insert(member_id);
        }
        self.group.sync_timer_generation = Some(self.group.generation_id);
        let key = self.sync_key();
        let timeout_ms = self.group.rebalance_timeout_ms().into();
        self.fx.schedule_in(key, timeout_ms);
    }

    /// Every member with its metadata for `protocol`, for the leader.
    pub(crate) fn leader_member_list(
        &self,
        protocol: &str,
    ) -> Vec<kafka_protocol::messages::join_group_response::JoinGroupResponseMember> {
        self.group
            .members
            .values()
            .map(|m| {
                responses::join_member(
                    &m.member_id,
                    m.group_instance_id.as_deref(),
                    m.metadata(protocol),
                )
            })
            .collect()
    }

    /// Answers every parked SyncGroup: with the member's assignment when
    /// `error` is `None`, else with `error`. Each answered member's session
    /// restarts. Returns the answers for the caller to send.
    pub(crate) fn propagate_assignment(
        &mut self,
        error: Option<ResponseError>,
    ) -> Vec<(RequestToken, Response)> {
        let mut answers = Vec::new();
        let member_ids: Vec<String> = self.group.members.keys().cloned().collect();
        for member_id in member_ids {
            let member = self
                .group
                .members
                .get_mut(&member_id)
                .expect("member listed above");
            let Some(parked) = member.awaiting_sync.take() else {
                continue;
            };
            let response = match error {
                None => responses::sync_ok(
                    self.group.protocol_type.as_deref(),
                    self.group.protocol_name.as_deref(),
                    member.assignment.clone(),
                ),
                Some(error) => responses::sync_error(error),
            };
            answers.push((parked.token, Response::SyncGroup(response)));
            self.reschedule_member_heartbeat(&member_id);
        }
        answers
    }

    /// Clears every assignment and answers parked SyncGroups with `error`.
    pub(crate) fn reset_and_propagate_assignment_with_error(&mut self, error: ResponseError) {
        assert!(self.group.is(GroupState::CompletingRebalance));
        for member in self.group.members.values_mut() {
            member.assignment = bytes::Bytes::new();
        }
        for (token, response) in self.propagate_assignment(Some(error)) {
            self.fx.respond(token, response);
        }
    }

    fn remove_sync_expiration(&mut self) {
        self.group.pending_sync.clear();
        self.group.sync_timer_generation = None;
        let key = self.sync_key();
        self.fx.cancel(&key);
    }

    /// Records that `member_id` sent SyncGroup; stops the pending-sync
    /// deadline once everyone has.
    pub(crate) fn remove_pending_sync_member(&mut self, member_id: &str) {
        self.group.pending_sync.remove(member_id);
        if self.group.pending_sync.is_empty() {
            self.group.sync_timer_generation = None;
            let key = self.sync_key();
            self.fx.cancel(&key);
        }
    }

    /// Members that never sent SyncGroup for this generation are removed and
    /// the group rebalances.
    pub(crate) fn on_sync_deadline(&mut self) {
        if self.group.sync_timer_generation.take() != Some(self.group.generation_id) {
            return;
        }
        let state = self.group.state();
        if (state == GroupState::CompletingRebalance || state == GroupState::Stable)
            && !self.group.pending_sync.is_empty()
        {
            let late: Vec<String> = self.group.pending_sync.iter().cloned().collect();
            for member_id in late {
                self.remove_member(&member_id);
            }
            self.prepare_rebalance();
        }
    }

    /// A session deadline: a pending member that never joined goes; a
    /// member that is not parked in JoinGroup or SyncGroup (or is new) is
    /// removed and the group rebalances.
    pub(crate) fn on_heartbeat_deadline(&mut self, member_id: &str) {
        if self.group.pending_members.contains(member_id) {
            self.group.remove(member_id);
            if self.group.is(GroupState::PreparingRebalance) && self.group.has_all_members_joined()
            {
                self.complete_join();
            }
            return;
        }
        let Some(member) = self.group.members.get(member_id) else {
            return;
        };
        if member.has_satisfied_heartbeat() {
            return;
        }
        self.remove_member_and_update_group(member_id);
    }
}
