//! LeaveGroup (API 13, v0–5): one member (v0–2) or a batch with
//! per-member errors (v3+); static members may be removed by instance id
//! alone (admin tools).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::classic_group::GroupState;
use super::responses::{code, str_bytes};
use super::{GroupCoordinator, GroupCtx, RequestContext, Response};

impl GroupCoordinator {
    pub(crate) fn leave_group(&mut self, ctx: &RequestContext, request: &LeaveGroupRequest) {
        let version = ctx.api_version;
        let group_id = request.group_id.as_str();
        // (member id, instance id) to remove.
        let identities: Vec<(String, Option<String>)> = if version >= 3 {
            request
                .members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|id| id.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(request.member_id.to_string(), None)]
        };
        let mut response = LeaveGroupResponse::default();
        match self.group_ctx(group_id) {
            None => response.error_code = ResponseError::UnknownMemberId.code(),
            Some(mut group_ctx) => {
                let results = group_ctx.leave(&identities);
                if version >= 3 {
                    response.members = identities
                        .iter()
                        .zip(&results)
                        .map(|((member_id, instance_id), error)| {
                            let mut member = MemberResponse::default();
                            member.member_id = str_bytes(member_id);
                            member.group_instance_id = instance_id.as_deref().map(str_bytes);
                            member.error_code = code(*error);
                            member
                        })
                        .collect();
                } else {
                    response.error_code = code(results.first().copied().flatten());
                }
            }
        }
        self.drop_if_disposable(group_id);
        self.fx.respond(ctx.token, Response::LeaveGroup(response));
    }
}

impl GroupCtx<'_> {
    /// Removes each identity; returns an error (or `None`) per identity.
    fn leave(&mut self, identities: &[(String, Option<String>)]) -> Vec<Option<ResponseError>> {
        let mut results = Vec::with_capacity(identities.len());
        for (member_id, instance_id) in identities {
            let result = if member_id.is_empty() {
                // By instance id only.
                match instance_id
                    .as_ref()
                    .and_then(|id| self.group.static_members.get(id).cloned())
                {
                    Some(static_member_id) => {
                        self.remove_member(&static_member_id);
                        None
                    }
                    None => Some(ResponseError::UnknownMemberId),
                }
            } else if self.group.pending_members.contains(member_id) {
                self.remove_member(member_id);
                None
            } else {
                match self.validate_member(member_id, instance_id.as_deref()) {
                    Ok(()) => {
                        self.remove_member(member_id);
                        None
                    }
                    Err(error) => Some(error),
                }
            };
            results.push(result);
        }
        if results.iter().any(Option::is_none) {
            match self.group.state() {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join();
                }
                GroupState::PreparingRebalance => self.maybe_complete_join_phase(),
                GroupState::Empty | GroupState::Dead => {}
            }
        }
        results
    }
}
