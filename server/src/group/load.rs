//! Rebuilding a coordinator from its `__consumer_offsets` partition, and
//! what it answers until then.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{LeaveGroupResponse, OffsetDeleteResponse};

use super::classic_group::{ClassicGroup, GroupState};
use super::member::{Member, Protocol};
use super::offsets::{commit_response, committed_from};
use super::records::{decode_key, GroupMetadataValue, OffsetCommitValue, RecordKey};
use super::responses;
use super::timers::TimerKey;
use super::{Action, GroupCoordinator, Input, Record, RecordError, Response};

impl GroupCoordinator {
    /// Applies one record of the partition, in log order. Records of kinds
    /// this coordinator does not use are skipped; a record of a known kind
    /// that does not decode is an error (the log is corrupt or newer).
    /// Limits on groups and offsets do not apply: the log is the truth.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), RecordError> {
        assert!(self.loading, "replay after finish_loading");
        match decode_key(key)? {
            RecordKey::OffsetCommit {
                group,
                topic,
                partition,
            } => match value {
                Some(value) => {
                    let value = OffsetCommitValue::decode(value)?;
                    self.groups
                        .entry(group.clone())
                        .or_insert_with(|| ClassicGroup::new(group))
                        .put_offset(&topic, partition, committed_from(value));
                }
                None => {
                    if let Some(entry) = self.groups.get_mut(&group) {
                        entry.remove_offset(&topic, partition);
                        if entry.is_disposable() {
                            self.groups.remove(&group);
                        }
                    }
                }
            },
            RecordKey::GroupMetadata { group } => match value {
                Some(value) => {
                    let value = GroupMetadataValue::decode(value)?;
                    let offsets = self
                        .groups
                        .remove(&group)
                        .map(|g| g.offsets)
                        .unwrap_or_default();
                    let mut restored = restore_group(group.clone(), value);
                    restored.offsets = offsets;
                    self.groups.insert(group, restored);
                }
                None => {
                    // The group is gone; offsets not yet tombstoned stay
                    // with a bare (simple) group.
                    if let Some(old) = self.groups.remove(&group) {
                        if !old.offsets.is_empty() {
                            let mut simple = ClassicGroup::new(group.clone());
                            simple.offsets = old.offsets;
                            self.groups.insert(group, simple);
                        }
                    }
                }
            },
            RecordKey::Other { .. } => {}
        }
        Ok(())
    }

    /// Replays `records` and finishes loading at `now_ms`.
    pub fn load(
        &mut self,
        now_ms: i64,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<Vec<Action>, RecordError> {
        for record in records {
            self.replay(&record.key, record.value.as_deref())?;
        }
        Ok(self.finish_loading(now_ms))
    }

    /// Ends loading: every loaded member's session starts now, expiry is
    /// scheduled, and requests are served from here on.
    pub fn finish_loading(&mut self, now_ms: i64) -> Vec<Action> {
        assert!(self.loading, "finish_loading called twice");
        self.loading = false;
        self.fx.now_ms = self.fx.now_ms.max(now_ms);
        let group_ids: Vec<String> = self.groups.keys().cloned().collect();
        for group_id in group_ids {
            let max_size = self.config.group_max_size;
            let mut ctx = self.group_ctx(&group_id).expect("listed group");
            let sessions: Vec<(String, i32)> = ctx
                .group
                .members
                .values()
                .map(|m| (m.member_id.clone(), m.session_timeout_ms))
                .collect();
            for (member_id, session_timeout_ms) in sessions {
                ctx.schedule_heartbeat(&member_id, session_timeout_ms);
            }
            // A group larger than the (possibly lowered) cap rebalances, as
            // in Kafka; the join phase then admits at most the cap.
            if ctx.group.members.len() > max_size {
                ctx.prepare_rebalance();
            }
        }
        let interval_ms = self.config.offsets_retention_check_interval_ms;
        self.fx.schedule_in(TimerKey::Cleanup, interval_ms);
        std::mem::take(&mut self.fx.actions)
    }

    /// Answers any request with COORDINATOR_LOAD_IN_PROGRESS.
    pub(crate) fn reject_while_loading(&mut self, input: Input) {
        let error = ResponseError::CoordinatorLoadInProgress;
        match input {
            Input::JoinGroup(ctx, request) => {
                let response =
                    responses::join_error(ctx.api_version, error, request.member_id.as_str());
                self.fx.respond(ctx.token, Response::JoinGroup(response));
            }
            Input::SyncGroup(ctx, _) => {
                let response = responses::sync_error(error);
                self.fx.respond(ctx.token, Response::SyncGroup(response));
            }
            Input::Heartbeat(ctx, _) => {
                let response = responses::heartbeat(Some(error));
                self.fx.respond(ctx.token, Response::Heartbeat(response));
            }
            Input::LeaveGroup(ctx, _) => {
                let mut response = LeaveGroupResponse::default();
                response.error_code = error.code();
                self.fx.respond(ctx.token, Response::LeaveGroup(response));
            }
            Input::OffsetCommit(ctx, request) => {
                let errors = request
                    .topics
                    .iter()
                    .map(|t| vec![Some(error); t.partitions.len()])
                    .collect();
                let response = commit_response(&request, errors);
                self.fx.respond(ctx.token, Response::OffsetCommit(response));
            }
            Input::OffsetFetch(ctx, request) => self.offset_fetch(&ctx, &request, Some(error)),
            Input::OffsetDelete(ctx, _) => {
                let mut response = OffsetDeleteResponse::default();
                response.error_code = error.code();
                self.fx.respond(ctx.token, Response::OffsetDelete(response));
            }
            Input::DescribeGroups(ctx, request) => {
                self.describe_groups(&ctx, &request, Some(error));
            }
            Input::ListGroups(ctx, request) => self.list_groups(&ctx, &request, Some(error)),
            Input::DeleteGroups(ctx, request) => self.delete_groups(&ctx, &request, Some(error)),
            // Loaded groups are re-checked by their members' next rejoin.
            Input::PartitionsChanged(_) | Input::Tick => {}
        }
    }
}

/// A group as its metadata record describes it: Stable with its members,
/// or Empty.
fn restore_group(group_id: String, value: GroupMetadataValue) -> ClassicGroup {
    let mut group = ClassicGroup::new(group_id);
    group.generation_id = value.generation;
    let recorded_protocol_type = Some(value.protocol_type.clone()).filter(|t| !t.is_empty());
    group.protocol_name = value.protocol.clone();
    group.state_timestamp_ms = Some(value.current_state_timestamp_ms).filter(|&ts| ts >= 0);
    let protocol_type = value.protocol_type;
    for member in value.members {
        if group.members.contains_key(&member.member_id) {
            continue; // A corrupt record naming a member twice.
        }
        let protocols = value
            .protocol
            .iter()
            .map(|name| Protocol {
                name: name.clone(),
                metadata: member.subscription.clone(),
            })
            .collect();
        let member = Member {
            member_id: member.member_id,
            group_instance_id: member.group_instance_id,
            client_id: member.client_id,
            client_host: member.client_host,
            rebalance_timeout_ms: member.rebalance_timeout_ms,
            session_timeout_ms: member.session_timeout_ms,
            protocol_type: protocol_type.clone(),
            protocols,
            assignment: member.assignment,
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
        };
        if member
            .group_instance_id
            .as_ref()
            .is_some_and(|id| group.static_members.contains_key(id))
        {
            continue; // Two members with one instance id: keep the first.
        }
        group.add(member);
    }
    // `add` set the type from the first member; the record's is the same,
    // but "" means none.
    group.protocol_type = recorded_protocol_type;
    // `add` made the first member leader; prefer the recorded leader.
    if let Some(leader) = value.leader.filter(|l| group.members.contains_key(l)) {
        group.leader_id = Some(leader);
    }
    let state = if group.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    group.restore_state(state);
    group.subscribed_topics = group.compute_subscribed_topics();
    group
}
