//! SyncGroup (API 14, v0–5): followers wait for the leader's assignment;
//! the leader's SyncGroup makes the group Stable and is persisted before
//! anyone is answered.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::SyncGroupRequest;

use super::classic_group::GroupState;
use super::member::ParkedRequest;
use super::responses;
use super::{GroupCoordinator, GroupCtx, RequestContext, Response};

impl GroupCoordinator {
    pub(crate) fn sync_group(&mut self, ctx: &RequestContext, request: &SyncGroupRequest) {
        let group_id = request.group_id.as_str();
        let reply = |coordinator: &mut Self, error: ResponseError| {
            let response = responses::sync_error(error);
            coordinator
                .fx
                .respond(ctx.token, Response::SyncGroup(response));
        };
        let Some(mut group_ctx) = self.group_ctx(group_id) else {
            return reply(self, ResponseError::UnknownMemberId);
        };
        if let Err(error) = group_ctx.sync(ctx, request) {
            reply(self, error);
        }
    }
}

/// An assignment is inconsistent if both sides name a protocol and they differ.
fn is_inconsistent(requested: Option<&str>, current: Option<&str>) -> bool {
    matches!((requested, current), (Some(r), Some(c)) if r != c)
}

impl GroupCtx<'_> {
    /// Handles a SyncGroup; `Err` is an immediate error answer.
    fn sync(
        &mut self,
        ctx: &RequestContext,
        request: &SyncGroupRequest,
    ) -> Result<(), ResponseError> {
        if self.group.is(GroupState::Empty) {
            return Err(ResponseError::UnknownMemberId);
        }
        let member_id = request.member_id.as_str();
        let instance_id = if ctx.api_version >= 3 {
            request.group_instance_id.as_deref()
        } else {
            None
        };
        self.validate_member(member_id, instance_id)?;
        if request.generation_id != self.group.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
        if is_inconsistent(
            request.protocol_type.as_deref(),
            self.group.protocol_type.as_deref(),
        ) || is_inconsistent(
            request.protocol_name.as_deref(),
            self.group.protocol_name.as_deref(),
        ) {
            return Err(ResponseError::InconsistentGroupProtocol);
        }
        match self.group.state() {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                let is_leader = self.group.is_leader(member_id);
                if is_leader
                    && request
                        .assignments
                        .iter()
                        .any(|a| a.assignment.len() > self.config.member_assignment_bytes_max)
                {
                    return Err(ResponseError::InvalidRequest);
                }
                self.park_sync(member_id, ctx);
                self.remove_pending_sync_member(member_id);
                if is_leader {
                    self.apply_leader_assignment(request);
                }
                Ok(())
            }
            GroupState::Stable => {
                self.remove_pending_sync_member(member_id);
                let response = responses::sync_ok(
                    self.group.protocol_type.as_deref(),
                    self.group.protocol_name.as_deref(),
                    self.group.assignment_of(member_id),
                );
                self.fx.respond(ctx.token, Response::SyncGroup(response));
                Ok(())
            }
            GroupState::Empty | GroupState::Dead => Err(ResponseError::UnknownMemberId),
        }
    }

    fn park_sync(&mut self, member_id: &str, ctx: &RequestContext) {
        let member = self
            .group
            .members
            .get_mut(member_id)
            .expect("validated member");
        let parked = ParkedRequest {
            token: ctx.token,
            api_version: ctx.api_version,
        };
        if let Some(superseded) = member.awaiting_sync.replace(parked) {
            let response = responses::sync_error(ResponseError::RebalanceInProgress);
            self.fx
                .respond(superseded.token, Response::SyncGroup(response));
        }
    }

    /// The leader's assignment: members it left out get an empty one. The
    /// group becomes Stable and its metadata is appended; every parked
    /// SyncGroup is answered once that record is durable. An assignment too
    /// large to write fails the generation like a failed append in Kafka.
    fn apply_leader_assignment(&mut self, request: &SyncGroupRequest) {
        let assignments: HashMap<&str, &Bytes> = request
            .assignments
            .iter()
            .map(|a| (a.member_id.as_str(), &a.assignment))
            .collect();
        for member in self.group.members.values_mut() {
            member.assignment = assignments
                .get(member.member_id.as_str())
                .map(|bytes| Bytes::copy_from_slice(bytes))
                .unwrap_or_default();
        }
        if self.group.metadata_value().encoded_size() > self.config.group_record_bytes_max {
            self.reset_and_propagate_assignment_with_error(ResponseError::UnknownServerError);
            self.maybe_prepare_rebalance_or_complete_join();
            return;
        }
        let now_ms = self.now_ms();
        self.group.transition_to(GroupState::Stable, now_ms);
        let answers = self.propagate_assignment(None);
        self.append_group_metadata(answers);
    }
}
