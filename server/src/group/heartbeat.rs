//! Heartbeat (API 12, v0–4): keeps a member's session alive and tells it
//! when to rejoin.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::HeartbeatRequest;

use super::classic_group::GroupState;
use super::responses;
use super::{GroupCoordinator, RequestContext, Response};

impl GroupCoordinator {
    pub(crate) fn heartbeat(&mut self, ctx: &RequestContext, request: &HeartbeatRequest) {
        let error = self.heartbeat_error(ctx, request);
        let response = responses::heartbeat(error);
        self.fx.respond(ctx.token, Response::Heartbeat(response));
    }

    /// Validates member and generation; the session restarts unless the
    /// group is Empty. PreparingRebalance answers REBALANCE_IN_PROGRESS (the
    /// member must rejoin); CompletingRebalance and Stable answer OK.
    fn heartbeat_error(
        &mut self,
        ctx: &RequestContext,
        request: &HeartbeatRequest,
    ) -> Option<ResponseError> {
        let Some(mut group_ctx) = self.group_ctx(request.group_id.as_str()) else {
            return Some(ResponseError::UnknownMemberId);
        };
        let member_id = request.member_id.as_str();
        let instance_id = if ctx.api_version >= 3 {
            request.group_instance_id.as_deref()
        } else {
            None
        };
        if let Err(error) = group_ctx.validate_member(member_id, instance_id) {
            return Some(error);
        }
        if request.generation_id != group_ctx.group.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
        match group_ctx.group.state() {
            GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                group_ctx.reschedule_member_heartbeat(member_id);
                Some(ResponseError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                group_ctx.reschedule_member_heartbeat(member_id);
                None
            }
        }
    }
}
