//! JoinGroup (API 11, v0–9).
//!
//! v4+ members without an id get one with MEMBER_ID_REQUIRED and must join
//! again with it; v5+ static members (group.instance.id) keep their place
//! across restarts: a known instance id replaces the old member id, which is
//! fenced with FENCED_INSTANCE_ID.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::JoinGroupRequest;

use super::classic_group::{ClassicGroup, GroupState};
use super::config::ID_BYTES_MAX;
use super::member::{protocols_bytes, Member, ParkedRequest, Protocol};
use super::responses::{self, JoinAnswer};
use super::{GroupCoordinator, GroupCtx, RequestContext, Response};

/// The parts of a JoinGroup request the rules use, validated and copied
/// out of the request frame.
struct JoinArgs {
    parked: ParkedRequest,
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<Protocol>,
}

impl JoinArgs {
    fn protocol_names(&self) -> Vec<&str> {
        self.protocols.iter().map(|p| p.name.as_str()).collect()
    }
}

impl GroupCoordinator {
    pub(crate) fn join_group(&mut self, ctx: &RequestContext, request: &JoinGroupRequest) {
        let version = ctx.api_version;
        let reply = |coordinator: &mut Self, error: ResponseError| {
            let response = responses::join_error(version, error, request.member_id.as_str());
            coordinator
                .fx
                .respond(ctx.token, Response::JoinGroup(response));
        };
        let group_id = request.group_id.as_str();
        if group_id.is_empty() || group_id.len() > ID_BYTES_MAX {
            return reply(self, ResponseError::InvalidGroupId);
        }
        let session_timeout_ms = request.session_timeout_ms;
        if session_timeout_ms < self.config.min_session_timeout_ms
            || session_timeout_ms > self.config.max_session_timeout_ms
        {
            return reply(self, ResponseError::InvalidSessionTimeout);
        }
        let Some(args) = self.join_args(ctx, request) else {
            return reply(self, ResponseError::InvalidRequest);
        };

        if !self.groups.contains_key(group_id) {
            if !args.member_id.is_empty() {
                return reply(self, ResponseError::UnknownMemberId);
            }
            if self.groups.len() >= self.config.groups_max {
                return reply(self, ResponseError::CoordinatorNotAvailable);
            }
            self.groups
                .insert(group_id.to_owned(), ClassicGroup::new(group_id.to_owned()));
        }
        let mut group_ctx = self
            .group_ctx(group_id)
            .expect("group exists or was created");
        group_ctx.join(args);
        self.drop_if_disposable(group_id);
    }

    /// Copies the request's fields out, or `None` if a size bound is broken.
    fn join_args(&self, ctx: &RequestContext, request: &JoinGroupRequest) -> Option<JoinArgs> {
        let version = ctx.api_version;
        // Instance ids exist from v5; the decoder leaves them unset before.
        let group_instance_id = if version >= 5 {
            request.group_instance_id.as_ref().map(|id| id.to_string())
        } else {
            None
        };
        // v0 has no rebalance timeout: the session timeout serves as both.
        let rebalance_timeout_ms = if version == 0 || request.rebalance_timeout_ms <= 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        };
        let ids_fit = [
            request.member_id.len(),
            request.protocol_type.len(),
            ctx.client_id.len(),
            ctx.client_host.len(),
            group_instance_id.as_deref().map_or(0, str::len),
        ]
        .iter()
        .all(|&len| len <= ID_BYTES_MAX);
        if !ids_fit
            || request.protocols.len() > self.config.member_protocols_max
            || request
                .protocols
                .iter()
                .any(|p| p.name.len() > ID_BYTES_MAX)
        {
            return None;
        }
        let protocols: Vec<Protocol> = request
            .protocols
            .iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                // Copied, so the stored metadata does not pin the request frame.
                metadata: Bytes::copy_from_slice(&p.metadata),
            })
            .collect();
        if protocols_bytes(&protocols) > self.config.member_metadata_bytes_max {
            return None;
        }
        Some(JoinArgs {
            parked: ParkedRequest {
                token: ctx.token,
                api_version: version,
            },
            member_id: request.member_id.to_string(),
            group_instance_id,
            client_id: ctx.client_id.clone(),
            client_host: ctx.client_host.clone(),
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms,
            protocol_type: request.protocol_type.to_string(),
            protocols,
        })
    }
}

impl GroupCtx<'_> {
    fn reply_join_error(&mut self, args: &JoinArgs, error: ResponseError, member_id: &str) {
        let response = responses::join_error(args.parked.api_version, error, member_id);
        self.fx
            .respond(args.parked.token, Response::JoinGroup(response));
    }

    fn join(&mut self, args: JoinArgs) {
        if !self.accept_joining_member(&args.member_id) {
            // Kafka drops a member the full group cannot take back.
            self.remove_member(&args.member_id);
            return self.reply_join_error(&args, ResponseError::GroupMaxSizeReached, "");
        }
        if !self.fits_metadata_budget(&args) {
            return self.reply_join_error(&args, ResponseError::GroupMaxSizeReached, "");
        }
        if args.member_id.is_empty() {
            self.join_new_member(args);
        } else {
            self.join_existing_member(args);
        }
    }

    /// Kafka's `acceptJoiningMember`: bounded by `group_max_size`, counting
    /// members parked in JoinGroup during a rebalance and all members otherwise.
    fn accept_joining_member(&self, member_id: &str) -> bool {
        let max = self.config.group_max_size;
        let group = &*self.group;
        match group.state() {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                group
                    .members
                    .get(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || group.awaiting_join_count() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                group.members.contains_key(member_id) || group.members.len() < max
            }
        }
    }

    /// Whether the group's metadata, with this member's replaced by the
    /// request's, stays within `group_metadata_bytes_max`.
    fn fits_metadata_budget(&self, args: &JoinArgs) -> bool {
        let replaced_id = match &args.group_instance_id {
            Some(instance_id) if args.member_id.is_empty() => {
                self.group.static_members.get(instance_id).cloned()
            }
            _ => Some(args.member_id.clone()),
        };
        let replaced_bytes = replaced_id
            .and_then(|id| self.group.members.get(&id))
            .map_or(0, Member::metadata_bytes);
        let total = self.group.metadata_bytes() - replaced_bytes + protocols_bytes(&args.protocols);
        total <= self.config.group_metadata_bytes_max
    }

    fn join_new_member(&mut self, args: JoinArgs) {
        if !self
            .group
            .supports_protocols(&args.protocol_type, &args.protocol_names())
        {
            return self.reply_join_error(&args, ResponseError::InconsistentGroupProtocol, "");
        }
        let prefix = args.group_instance_id.as_deref().unwrap_or(&args.client_id);
        let new_member_id = self.fx.ids.member_id(prefix);
        if let Some(instance_id) = args.group_instance_id.clone() {
            match self.group.static_members.get(&instance_id).cloned() {
                Some(old_member_id) => self.update_static_member_then_rebalance_or_complete_join(
                    args,
                    &instance_id,
                    &old_member_id,
                    new_member_id,
                ),
                None => self.add_member_then_rebalance_or_complete_join(args, new_member_id),
            }
        } else if args.parked.api_version >= 4 {
            if self.group.pending_members.len() >= self.config.group_max_size {
                return self.reply_join_error(&args, ResponseError::GroupMaxSizeReached, "");
            }
            self.group.pending_members.insert(new_member_id.clone());
            self.schedule_heartbeat(&new_member_id, args.session_timeout_ms);
            self.reply_join_error(&args, ResponseError::MemberIdRequired, &new_member_id);
        } else {
            self.add_member_then_rebalance_or_complete_join(args, new_member_id);
        }
    }

    fn join_existing_member(&mut self, args: JoinArgs) {
        let member_id = args.member_id.clone();
        if !self
            .group
            .supports_protocols(&args.protocol_type, &args.protocol_names())
        {
            return self.reply_join_error(
                &args,
                ResponseError::InconsistentGroupProtocol,
                &member_id,
            );
        }
        if self.group.pending_members.contains(&member_id) {
            // Pending ids are only handed to dynamic members.
            if args.group_instance_id.is_some() {
                return self.reply_join_error(&args, ResponseError::UnknownMemberId, &member_id);
            }
            return self.add_member_then_rebalance_or_complete_join(args, member_id);
        }
        if let Err(error) = self.validate_member(&member_id, args.group_instance_id.as_deref()) {
            return self.reply_join_error(&args, error, &member_id);
        }
        let member = &self.group.members[&member_id];
        let unchanged = member.matches(&args.protocols);
        match self.group.state() {
            GroupState::PreparingRebalance => {
                self.update_member_then_rebalance_or_complete_join(args);
            }
            GroupState::CompletingRebalance if unchanged => {
                // A retry of a JoinGroup whose answer was lost: answer again.
                let is_leader = self.group.is_leader(&member_id);
                self.reply_current_generation(&args, is_leader);
            }
            GroupState::Stable if unchanged && !self.group.is_leader(&member_id) => {
                self.reply_current_generation(&args, false);
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                // Changed metadata, or the leader asking for a new assignment.
                self.update_member_then_rebalance_or_complete_join(args);
            }
            GroupState::Empty | GroupState::Dead => {
                self.reply_join_error(&args, ResponseError::UnknownMemberId, &member_id);
            }
        }
    }

    /// Answers with the current generation (the member list only for the leader).
    fn reply_current_generation(&mut self, args: &JoinArgs, with_members: bool) {
        let protocol_name = self.group.protocol_name.clone();
        let members = if with_members {
            self.leader_member_list(protocol_name.as_deref().unwrap_or_default())
        } else {
            Vec::new()
        };
        let response = responses::join_ok(
            args.parked.api_version,
            JoinAnswer {
                member_id: &args.member_id,
                generation_id: self.group.generation_id,
                protocol_type: self.group.protocol_type.as_deref(),
                protocol_name: protocol_name.as_deref(),
                leader: self.group.leader_id.as_deref().unwrap_or_default(),
                skip_assignment: false,
                members,
            },
        );
        self.fx
            .respond(args.parked.token, Response::JoinGroup(response));
    }

    /// Kafka's `validateMember`: the instance id, if given, must map to this
    /// member id (else FENCED_INSTANCE_ID), and the member must exist.
    pub(crate) fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance_id) = group_instance_id {
            match self.group.static_members.get(instance_id) {
                None => return Err(ResponseError::UnknownMemberId),
                Some(existing) if existing != member_id => {
                    return Err(ResponseError::FencedInstanceId)
                }
                Some(_) => {}
            }
        }
        if self.group.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(ResponseError::UnknownMemberId)
        }
    }

    fn add_member_then_rebalance_or_complete_join(&mut self, args: JoinArgs, member_id: String) {
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: args.group_instance_id,
            client_id: args.client_id,
            client_host: args.client_host,
            rebalance_timeout_ms: args.rebalance_timeout_ms,
            session_timeout_ms: args.session_timeout_ms,
            protocol_type: args.protocol_type,
            protocols: args.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(args.parked),
            awaiting_sync: None,
            is_new: true,
        };
        if self.group.is(GroupState::PreparingRebalance)
            && self.group.previous_state() == GroupState::Empty
        {
            self.group.new_member_added = true;
        }
        self.group.add(member);
        // A new member cannot heartbeat while parked; its JoinGroup expires
        // after this instead (the client retries if it is still there).
        let timeout_ms = self.config.new_member_join_timeout_ms;
        self.schedule_heartbeat(&member_id, timeout_ms);
        self.maybe_prepare_rebalance_or_complete_join();
    }

    fn update_member_then_rebalance_or_complete_join(&mut self, args: JoinArgs) {
        let member = self
            .group
            .members
            .get_mut(&args.member_id)
            .expect("validated member");
        member.protocols = args.protocols;
        member.rebalance_timeout_ms = args.rebalance_timeout_ms;
        member.session_timeout_ms = args.session_timeout_ms;
        if let Some(superseded) = member.awaiting_join.replace(args.parked) {
            // Kafka drops the older parked request silently; Strom answers it
            // so the runtime never holds a token forever.
            let response = responses::join_error(
                superseded.api_version,
                ResponseError::RebalanceInProgress,
                &args.member_id,
            );
            self.fx
                .respond(superseded.token, Response::JoinGroup(response));
        }
        self.maybe_prepare_rebalance_or_complete_join();
    }

    /// A known instance id joined without a member id: it takes over the
    /// old member's place under a new id, the old id is fenced. A Stable
    /// group whose chosen protocol stays the same keeps its assignment and
    /// does not rebalance (Kafka's rule, which ignores other metadata
    /// changes so that restarted static consumers do not rebalance).
    fn update_static_member_then_rebalance_or_complete_join(
        &mut self,
        args: JoinArgs,
        instance_id: &str,
        old_member_id: &str,
        new_member_id: String,
    ) {
        let current_leader = self.group.leader_id.clone().unwrap_or_default();
        let old = self
            .group
            .replace_static_member(instance_id, old_member_id, &new_member_id);
        if let Some(parked) = old.awaiting_join {
            let response = responses::join_error(
                parked.api_version,
                ResponseError::FencedInstanceId,
                old_member_id,
            );
            self.fx.respond(parked.token, Response::JoinGroup(response));
        }
        if let Some(parked) = old.awaiting_sync {
            let response = responses::sync_error(ResponseError::FencedInstanceId);
            self.fx.respond(parked.token, Response::SyncGroup(response));
        }
        self.cancel_heartbeat(old_member_id);
        self.schedule_heartbeat(&new_member_id, old.session_timeout_ms);

        let version = args.parked.api_version;
        let member = self
            .group
            .members
            .get_mut(&new_member_id)
            .expect("member just inserted");
        member.protocols = args.protocols;
        member.rebalance_timeout_ms = args.rebalance_timeout_ms;
        member.session_timeout_ms = args.session_timeout_ms;
        member.awaiting_join = Some(args.parked);

        match self.group.state() {
            GroupState::Stable => {
                if self.group.select_protocol() != self.group.protocol_name {
                    return self.maybe_prepare_rebalance_or_complete_join();
                }
                self.group.subscribed_topics = self.group.compute_subscribed_topics();
                let member = self
                    .group
                    .members
                    .get_mut(&new_member_id)
                    .expect("member just inserted");
                let parked = member.awaiting_join.take().expect("parked above");
                let is_leader = self.group.is_leader(&new_member_id);
                let protocol_name = self.group.protocol_name.clone();
                let response = if version >= 9 {
                    // The leader may skip assigning: it gets the member list
                    // and is told the current assignment stands.
                    let members = if is_leader {
                        self.leader_member_list(protocol_name.as_deref().unwrap_or_default())
                    } else {
                        Vec::new()
                    };
                    responses::join_ok(
                        version,
                        JoinAnswer {
                            member_id: &new_member_id,
                            generation_id: self.group.generation_id,
                            protocol_type: self.group.protocol_type.as_deref(),
                            protocol_name: protocol_name.as_deref(),
                            leader: self.group.leader_id.as_deref().unwrap_or_default(),
                            skip_assignment: is_leader,
                            members,
                        },
                    )
                } else {
                    // Older clients see the previous leader id, so a
                    // returning leader acts as a follower and keeps the
                    // current assignment.
                    responses::join_ok(
                        version,
                        JoinAnswer {
                            member_id: &new_member_id,
                            generation_id: self.group.generation_id,
                            protocol_type: self.group.protocol_type.as_deref(),
                            protocol_name: protocol_name.as_deref(),
                            leader: &current_leader,
                            skip_assignment: false,
                            members: Vec::new(),
                        },
                    )
                };
                self.append_group_metadata(vec![(parked.token, Response::JoinGroup(response))]);
            }
            GroupState::CompletingRebalance => {
                // The leader may be assigning with the old id: start over.
                self.prepare_rebalance();
            }
            GroupState::PreparingRebalance => self.maybe_complete_join_phase(),
            GroupState::Empty | GroupState::Dead => {
                unreachable!("static member {instance_id} in a group without members")
            }
        }
    }
}
