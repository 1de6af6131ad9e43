//! DescribeGroups (API 15, v0–6), ListGroups (API 16, v0–5) and
//! DeleteGroups (API 42, v0–2).
//!
//! A coordinator answers for the groups it holds. The runtime splits a
//! request naming groups of several `__consumer_offsets` partitions and
//! merges the answers (ListGroups: the union over every partition).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::classic_group::GroupState;
use super::records::{group_metadata_key, offset_commit_key, Record};
use super::responses::{code, str_bytes};
use super::{GroupCoordinator, RequestContext, Response};

/// The group type ListGroups v5 reports for classic groups.
const CLASSIC_GROUP_TYPE: &str = "classic";

impl GroupCoordinator {
    /// Describes each group; with `error` (loading) every group carries it.
    pub(crate) fn describe_groups(
        &mut self,
        ctx: &RequestContext,
        request: &DescribeGroupsRequest,
        error: Option<ResponseError>,
    ) {
        let mut response = DescribeGroupsResponse::default();
        response.groups = request
            .groups
            .iter()
            .map(|group_id| {
                let mut out = DescribedGroup::default();
                out.group_id = group_id.clone();
                if let Some(error) = error {
                    out.error_code = error.code();
                    return out;
                }
                let Some(group) = self.groups.get(group_id.as_str()) else {
                    if ctx.api_version >= 6 {
                        // KIP-1043: v6 reports unknown groups as an error.
                        out.error_code = ResponseError::GroupIdNotFound.code();
                        out.error_message = Some(str_bytes(&format!(
                            "Group {} not found.",
                            group_id.as_str()
                        )));
                    }
                    out.group_state = str_bytes(GroupState::Dead.name());
                    return out;
                };
                out.group_state = str_bytes(group.state().name());
                out.protocol_type = str_bytes(group.protocol_type.as_deref().unwrap_or_default());
                // Metadata is shown only once the group is Stable (Kafka).
                let protocol = group
                    .protocol_name
                    .as_deref()
                    .filter(|_| group.is(GroupState::Stable));
                out.protocol_data = str_bytes(protocol.unwrap_or_default());
                out.members = group
                    .members
                    .values()
                    .map(|m| {
                        let mut member = DescribedGroupMember::default();
                        member.member_id = str_bytes(&m.member_id);
                        member.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
                        member.client_id = str_bytes(&m.client_id);
                        member.client_host = str_bytes(&m.client_host);
                        member.member_metadata =
                            protocol.map(|p| m.metadata(p)).unwrap_or_default();
                        member.member_assignment = m.assignment.clone();
                        member
                    })
                    .collect();
                out
            })
            .collect();
        self.fx
            .respond(ctx.token, Response::DescribeGroups(response));
    }

    /// Lists groups, filtered by state (v4+) and type (v5+), both
    /// case-insensitively as Kafka does.
    pub(crate) fn list_groups(
        &mut self,
        ctx: &RequestContext,
        request: &ListGroupsRequest,
        error: Option<ResponseError>,
    ) {
        let mut response = ListGroupsResponse::default();
        response.error_code = code(error);
        let matches = |filter: &[StrBytes], value: &str| {
            filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
        };
        let states: &[StrBytes] = if ctx.api_version >= 4 {
            &request.states_filter
        } else {
            &[]
        };
        let types: &[StrBytes] = if ctx.api_version >= 5 {
            &request.types_filter
        } else {
            &[]
        };
        if error.is_none() && matches(types, CLASSIC_GROUP_TYPE) {
            response.groups = self
                .groups
                .values()
                .filter(|g| matches(states, g.state().name()))
                .map(|g| {
                    let mut out = ListedGroup::default();
                    out.group_id = super::responses::group_id(&g.group_id);
                    out.protocol_type = str_bytes(g.protocol_type.as_deref().unwrap_or_default());
                    out.group_state = str_bytes(g.state().name());
                    out.group_type = str_bytes(CLASSIC_GROUP_TYPE);
                    out
                })
                .collect();
        }
        self.fx.respond(ctx.token, Response::ListGroups(response));
    }

    /// Deletes Empty groups with their offsets (tombstones for each offset,
    /// then the group); answered once the tombstones are durable.
    pub(crate) fn delete_groups(
        &mut self,
        ctx: &RequestContext,
        request: &DeleteGroupsRequest,
        error: Option<ResponseError>,
    ) {
        let mut records = Vec::new();
        let mut response = DeleteGroupsResponse::default();
        for group_id in &request.groups_names {
            let id = group_id.as_str();
            let result = match self.groups.get(id) {
                _ if error.is_some() => error,
                _ if id.is_empty() => Some(ResponseError::InvalidGroupId),
                None => Some(ResponseError::GroupIdNotFound),
                Some(group) if !group.is(GroupState::Empty) => Some(ResponseError::NonEmptyGroup),
                Some(group) => {
                    for (topic, partitions) in &group.offsets {
                        for &partition in partitions.keys() {
                            records.push(Record {
                                key: offset_commit_key(id, topic, partition),
                                value: None,
                            });
                        }
                    }
                    records.push(Record {
                        key: group_metadata_key(id),
                        value: None,
                    });
                    self.remove_group(id);
                    None
                }
            };
            let mut out = DeletableGroupResult::default();
            out.group_id = group_id.clone();
            out.error_code = code(result);
            response.results.push(out);
        }
        self.fx
            .append(records, vec![(ctx.token, Response::DeleteGroups(response))]);
    }
}
