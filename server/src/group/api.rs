//! What goes into a [`super::GroupCoordinator`] and what comes out.

use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};

use super::records::Record;

/// Names one request for the runtime: the coordinator hands it back with the
/// response, possibly much later (JoinGroup and SyncGroup are held open).
/// Opaque to the coordinator; the runtime keeps whatever it needs (connection,
/// correlation id) under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestToken(pub u64);

/// Who sent a request and at which version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// Returned with the response.
    pub token: RequestToken,
    /// The request's API version; the response is shaped for it.
    pub api_version: i16,
    /// The client id from the request header (empty if null).
    pub client_id: String,
    /// The client's address as Kafka prints it (`/127.0.0.1`).
    pub client_host: String,
}

/// Everything a coordinator reacts to.
#[derive(Debug, Clone)]
pub enum Input {
    /// JoinGroup (API 11) v0–9.
    JoinGroup(RequestContext, JoinGroupRequest),
    /// SyncGroup (API 14) v0–5.
    SyncGroup(RequestContext, SyncGroupRequest),
    /// Heartbeat (API 12) v0–4.
    Heartbeat(RequestContext, HeartbeatRequest),
    /// LeaveGroup (API 13) v0–5.
    LeaveGroup(RequestContext, LeaveGroupRequest),
    /// OffsetCommit (API 8) v2–9.
    OffsetCommit(RequestContext, OffsetCommitRequest),
    /// OffsetFetch (API 9) v1–9.
    OffsetFetch(RequestContext, OffsetFetchRequest),
    /// OffsetDelete (API 47) v0.
    OffsetDelete(RequestContext, OffsetDeleteRequest),
    /// DescribeGroups (API 15) v0–6.
    DescribeGroups(RequestContext, DescribeGroupsRequest),
    /// ListGroups (API 16) v0–5.
    ListGroups(RequestContext, ListGroupsRequest),
    /// DeleteGroups (API 42) v0–2.
    DeleteGroups(RequestContext, DeleteGroupsRequest),
    /// Topics whose partition count changed (or that were created or
    /// deleted): groups subscribed to any of them rebalance.
    PartitionsChanged(Vec<String>),
    /// Time passed: run every deadline due by `now_ms`.
    Tick,
}

/// A response, ready to encode at its request's version.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    JoinGroup(JoinGroupResponse),
    SyncGroup(SyncGroupResponse),
    Heartbeat(HeartbeatResponse),
    LeaveGroup(LeaveGroupResponse),
    OffsetCommit(OffsetCommitResponse),
    OffsetFetch(OffsetFetchResponse),
    OffsetDelete(OffsetDeleteResponse),
    DescribeGroups(DescribeGroupsResponse),
    ListGroups(ListGroupsResponse),
    DeleteGroups(DeleteGroupsResponse),
}

/// What the runtime must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send `response` for `token` now.
    Respond {
        token: RequestToken,
        response: Response,
    },
    /// Append `records` to this coordinator's `__consumer_offsets` partition,
    /// in order and after every earlier `Append`; once they are durable, send
    /// each response in `then`. `then` may be empty (expiry, a group becoming
    /// Empty).
    ///
    /// The coordinator has already applied the records to its own state. If
    /// the append fails the coordinator's state is ahead of the log: the
    /// runtime must discard the coordinator ([`super::GroupCoordinator::unload`])
    /// and load it again from the log.
    Append {
        records: Vec<Record>,
        then: Vec<(RequestToken, Response)>,
    },
}
