//! Response builders that respect each API version's encoding rules, so
//! every response the coordinator emits encodes at its request's version.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{GroupId, HeartbeatResponse, JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

/// Kafka's encoding of "no error".
pub(crate) const NONE: i16 = 0;

/// The code of `error`, or 0.
pub(crate) fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(NONE, |e| e.code())
}

pub(crate) fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

pub(crate) fn group_id(value: &str) -> GroupId {
    GroupId(str_bytes(value))
}

/// A successful JoinGroup answer.
pub(crate) struct JoinAnswer<'a> {
    pub member_id: &'a str,
    pub generation_id: i32,
    pub protocol_type: Option<&'a str>,
    pub protocol_name: Option<&'a str>,
    pub leader: &'a str,
    pub skip_assignment: bool,
    /// Non-empty only for the leader.
    pub members: Vec<JoinGroupResponseMember>,
}

/// JoinGroup's protocol name is non-nullable before v7; Kafka sends "" there.
fn protocol_name_for(version: i16, name: Option<&str>) -> Option<StrBytes> {
    match name {
        Some(name) => Some(str_bytes(name)),
        None if version < 7 => Some(StrBytes::default()),
        None => None,
    }
}

pub(crate) fn join_ok(version: i16, answer: JoinAnswer<'_>) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    response.error_code = NONE;
    response.generation_id = answer.generation_id;
    response.protocol_type = answer.protocol_type.map(str_bytes);
    response.protocol_name = protocol_name_for(version, answer.protocol_name);
    response.leader = str_bytes(answer.leader);
    // skip_assignment exists from v9 only; callers set it only then.
    assert!(!answer.skip_assignment || version >= 9);
    response.skip_assignment = answer.skip_assignment;
    response.member_id = str_bytes(answer.member_id);
    response.members = answer.members;
    response
}

pub(crate) fn join_error(version: i16, error: ResponseError, member_id: &str) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default();
    response.error_code = error.code();
    response.generation_id = -1;
    response.protocol_type = None;
    response.protocol_name = protocol_name_for(version, None);
    response.leader = StrBytes::default();
    response.member_id = str_bytes(member_id);
    response
}

/// One entry of the leader's member list.
pub(crate) fn join_member(
    member_id: &str,
    group_instance_id: Option<&str>,
    metadata: Bytes,
) -> JoinGroupResponseMember {
    let mut member = JoinGroupResponseMember::default();
    member.member_id = str_bytes(member_id);
    member.group_instance_id = group_instance_id.map(str_bytes);
    member.metadata = metadata;
    member
}

pub(crate) fn sync_ok(
    protocol_type: Option<&str>,
    protocol_name: Option<&str>,
    assignment: Bytes,
) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default();
    response.protocol_type = protocol_type.map(str_bytes);
    response.protocol_name = protocol_name.map(str_bytes);
    response.assignment = assignment;
    response
}

pub(crate) fn sync_error(error: ResponseError) -> SyncGroupResponse {
    let mut response = SyncGroupResponse::default();
    response.error_code = error.code();
    response
}

pub(crate) fn heartbeat(error: Option<ResponseError>) -> HeartbeatResponse {
    let mut response = HeartbeatResponse::default();
    response.error_code = code(error);
    response
}
