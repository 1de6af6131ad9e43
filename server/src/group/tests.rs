//! Scenario tests for the coordinator, driven through [`GroupCoordinator::handle`]
//! with a fake clock and a seeded member id generator.
//!
//! The harness checks on every step that each request is answered at most
//! once, that every response encodes at its request's version, and that
//! every group's invariants hold; [`Harness::finish`] checks that every
//! request was answered exactly once.

use std::collections::{BTreeMap, HashMap};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::offsets::offsets_snapshot;
use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 20_000;
const T0: i64 = 1_700_000_000_000;

// Kafka error codes the tests expect.
const NONE: i16 = 0;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const NOT_COORDINATOR: i16 = 16;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const INVALID_REQUEST: i16 = 42;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_MAX_SIZE_REACHED: i16 = 81;
const FENCED_INSTANCE_ID: i16 = 82;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn gid(value: &str) -> GroupId {
    GroupId(s(value))
}

/// A consumer subscription (ConsumerProtocolSubscription v1) to `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let mut value = ConsumerProtocolSubscription::default();
    value.topics = topics.iter().map(|t| s(t)).collect();
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&1i16.to_be_bytes());
    value.encode(&mut buf, 1).expect("subscription encodes");
    buf.freeze()
}

/// Topic → partition → (offset, metadata), as OffsetFetch returned them.
type FetchedOffsets = BTreeMap<String, BTreeMap<i32, (i64, String)>>;

fn test_config() -> GroupConfig {
    GroupConfig {
        offsets_retention_ms: 60_000,
        offsets_retention_check_interval_ms: 5_000,
        ..GroupConfig::default()
    }
}

/// Drives a coordinator and keeps what a runtime would: the log and the answers.
struct Harness {
    coordinator: Option<GroupCoordinator>,
    now_ms: i64,
    next_token: u64,
    /// API key and version of every request sent, by token.
    requests: HashMap<RequestToken, (&'static str, i16)>,
    answers: HashMap<RequestToken, Response>,
    /// Everything appended to `__consumer_offsets`, in order.
    log: Vec<Record>,
    /// Responses released by appends, to check ordering.
    answered_after_append: Vec<RequestToken>,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(test_config())
    }

    fn with_config(config: GroupConfig) -> Self {
        let mut coordinator = GroupCoordinator::new(config, 42).expect("valid config");
        let actions = coordinator.finish_loading(T0);
        assert!(actions.is_empty());
        Self {
            coordinator: Some(coordinator),
            now_ms: T0,
            next_token: 1,
            requests: HashMap::new(),
            answers: HashMap::new(),
            log: Vec::new(),
            answered_after_append: Vec::new(),
        }
    }

    fn coordinator(&self) -> &GroupCoordinator {
        self.coordinator.as_ref().expect("not unloaded")
    }

    fn context(&mut self, api: &'static str, version: i16, client_id: &str) -> RequestContext {
        let token = RequestToken(self.next_token);
        self.next_token += 1;
        self.requests.insert(token, (api, version));
        RequestContext {
            token,
            api_version: version,
            client_id: client_id.to_owned(),
            client_host: "/127.0.0.1".to_owned(),
        }
    }

    fn handle(&mut self, input: Input) -> Vec<Action> {
        let now_ms = self.now_ms;
        let actions = self
            .coordinator
            .as_mut()
            .expect("not unloaded")
            .handle(now_ms, input);
        self.absorb(actions.clone());
        actions
    }

    fn absorb(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Respond { token, response } => self.answer(token, response),
                Action::Append { records, then } => {
                    assert!(!records.is_empty(), "empty append");
                    self.log.extend(records);
                    for (token, response) in then {
                        self.answered_after_append.push(token);
                        self.answer(token, response);
                    }
                }
            }
        }
        if let Some(coordinator) = &self.coordinator {
            for group in coordinator.groups.values() {
                group.check_invariants();
            }
        }
    }

    fn answer(&mut self, token: RequestToken, response: Response) {
        let (api, version) = *self.requests.get(&token).expect("answer to a known token");
        let mut buf = BytesMut::new();
        let encoded = match &response {
            Response::JoinGroup(r) => r.encode(&mut buf, version),
            Response::SyncGroup(r) => r.encode(&mut buf, version),
            Response::Heartbeat(r) => r.encode(&mut buf, version),
            Response::LeaveGroup(r) => r.encode(&mut buf, version),
            Response::OffsetCommit(r) => r.encode(&mut buf, version),
            Response::OffsetFetch(r) => r.encode(&mut buf, version),
            Response::OffsetDelete(r) => r.encode(&mut buf, version),
            Response::DescribeGroups(r) => r.encode(&mut buf, version),
            Response::ListGroups(r) => r.encode(&mut buf, version),
            Response::DeleteGroups(r) => r.encode(&mut buf, version),
        };
        assert!(
            encoded.is_ok(),
            "{api} v{version} response does not encode: {encoded:?}\n{response:?}"
        );
        let previous = self.answers.insert(token, response);
        assert!(previous.is_none(), "{api} {token:?} answered twice");
    }

    /// Moves the clock and runs what is due.
    fn advance(&mut self, ms: i64) -> Vec<Action> {
        self.now_ms += ms;
        self.handle(Input::Tick)
    }

    fn is_answered(&self, token: RequestToken) -> bool {
        self.answers.contains_key(&token)
    }

    fn join_response(&self, token: RequestToken) -> &JoinGroupResponse {
        match self.answers.get(&token) {
            Some(Response::JoinGroup(r)) => r,
            other => panic!("no JoinGroup answer for {token:?}: {other:?}"),
        }
    }

    fn sync_response(&self, token: RequestToken) -> &SyncGroupResponse {
        match self.answers.get(&token) {
            Some(Response::SyncGroup(r)) => r,
            other => panic!("no SyncGroup answer for {token:?}: {other:?}"),
        }
    }

    fn state(&self, group: &str) -> Option<GroupState> {
        self.coordinator().group_state(group)
    }

    // ------------------------------------------------------------ requests

    #[allow(clippy::too_many_arguments)]
    fn join_with(
        &mut self,
        version: i16,
        group: &str,
        client_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        session_timeout_ms: i32,
        protocol_type: &str,
        protocols: &[(&str, Bytes)],
    ) -> RequestToken {
        let ctx = self.context("JoinGroup", version, client_id);
        let token = ctx.token;
        let mut request = JoinGroupRequest::default();
        request.group_id = gid(group);
        request.session_timeout_ms = session_timeout_ms;
        request.rebalance_timeout_ms = REBALANCE_MS;
        request.member_id = s(member_id);
        request.group_instance_id = instance_id.map(s);
        request.protocol_type = s(protocol_type);
        request.protocols = protocols
            .iter()
            .map(|(name, metadata)| {
                let mut protocol = JoinGroupRequestProtocol::default();
                protocol.name = s(name);
                protocol.metadata = metadata.clone();
                protocol
            })
            .collect();
        self.handle(Input::JoinGroup(ctx, request));
        token
    }

    /// A v7 consumer JoinGroup offering "range" with a subscription to `topics`.
    fn join(&mut self, group: &str, member_id: &str, topics: &[&str]) -> RequestToken {
        self.join_with(
            7,
            group,
            "client",
            member_id,
            None,
            SESSION_MS,
            "consumer",
            &[("range", subscription(topics))],
        )
    }

    /// The MEMBER_ID_REQUIRED round trip: returns the id handed out.
    fn new_member_id(&mut self, group: &str, topics: &[&str]) -> String {
        let token = self.join(group, "", topics);
        let response = self.join_response(token);
        assert_eq!(response.error_code, MEMBER_ID_REQUIRED);
        response.member_id.to_string()
    }

    fn sync(
        &mut self,
        version: i16,
        group: &str,
        member_id: &str,
        generation: i32,
        assignments: &[(&str, &'static [u8])],
    ) -> RequestToken {
        let ctx = self.context("SyncGroup", version, "client");
        let token = ctx.token;
        let mut request = SyncGroupRequest::default();
        request.group_id = gid(group);
        request.generation_id = generation;
        request.member_id = s(member_id);
        if version >= 5 {
            request.protocol_type = Some(s("consumer"));
            request.protocol_name = Some(s("range"));
        }
        request.assignments = assignments
            .iter()
            .map(|(member, assignment)| {
                let mut out = SyncGroupRequestAssignment::default();
                out.member_id = s(member);
                out.assignment = Bytes::from_static(assignment);
                out
            })
            .collect();
        self.handle(Input::SyncGroup(ctx, request));
        token
    }

    fn heartbeat_with(
        &mut self,
        version: i16,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let ctx = self.context("Heartbeat", version, "client");
        let token = ctx.token;
        let mut request = HeartbeatRequest::default();
        request.group_id = gid(group);
        request.member_id = s(member_id);
        request.group_instance_id = instance_id.map(s);
        request.generation_id = generation;
        self.handle(Input::Heartbeat(ctx, request));
        match self.answers.get(&token) {
            Some(Response::Heartbeat(r)) => r.error_code,
            other => panic!("no heartbeat answer: {other:?}"),
        }
    }

    fn heartbeat(&mut self, group: &str, member_id: &str, generation: i32) -> i16 {
        self.heartbeat_with(4, group, member_id, None, generation)
    }

    fn leave(&mut self, group: &str, members: &[(&str, Option<&str>)]) -> Vec<i16> {
        let ctx = self.context("LeaveGroup", 5, "client");
        let token = ctx.token;
        let mut request = LeaveGroupRequest::default();
        request.group_id = gid(group);
        request.members = members
            .iter()
            .map(|(member_id, instance_id)| {
                let mut identity = MemberIdentity::default();
                identity.member_id = s(member_id);
                identity.group_instance_id = instance_id.map(s);
                identity
            })
            .collect();
        self.handle(Input::LeaveGroup(ctx, request));
        match self.answers.get(&token) {
            // A group-level error stands for every member.
            Some(Response::LeaveGroup(r)) if r.error_code != NONE => vec![r.error_code],
            Some(Response::LeaveGroup(r)) => r.members.iter().map(|m| m.error_code).collect(),
            other => panic!("no leave answer: {other:?}"),
        }
    }

    /// Commits `offsets` (topic, partition, offset, metadata); returns the
    /// per-partition error codes in order, and whether the answer waited
    /// for an append.
    fn commit_with(
        &mut self,
        version: i16,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: &[(&str, i32, i64, &str)],
    ) -> (Vec<i16>, bool) {
        let ctx = self.context("OffsetCommit", version, "client");
        let token = ctx.token;
        let mut request = OffsetCommitRequest::default();
        request.group_id = gid(group);
        request.generation_id_or_member_epoch = generation;
        request.member_id = s(member_id);
        request.topics = offsets
            .iter()
            .map(|(topic, partition, offset, metadata)| {
                let mut p = OffsetCommitRequestPartition::default();
                p.partition_index = *partition;
                p.committed_offset = *offset;
                p.committed_metadata = Some(s(metadata));
                let mut t = OffsetCommitRequestTopic::default();
                t.name = TopicName(s(topic));
                t.partitions = vec![p];
                t
            })
            .collect();
        let released_before = self.answered_after_append.len();
        self.handle(Input::OffsetCommit(ctx, request));
        let after_append = self.answered_after_append[released_before..].contains(&token);
        match self.answers.get(&token) {
            Some(Response::OffsetCommit(r)) => (
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                    .collect(),
                after_append,
            ),
            other => panic!("no commit answer: {other:?}"),
        }
    }

    fn commit(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: &[(&str, i32, i64, &str)],
    ) -> Vec<i16> {
        self.commit_with(8, group, member_id, generation, offsets).0
    }

    /// OffsetFetch v7 for `partitions` (all committed when `None`):
    /// (group error, topic → partition → (offset, metadata)).
    fn fetch(&mut self, group: &str, partitions: Option<&[(&str, i32)]>) -> (i16, FetchedOffsets) {
        let ctx = self.context("OffsetFetch", 7, "client");
        let token = ctx.token;
        let mut request = OffsetFetchRequest::default();
        request.group_id = gid(group);
        request.topics = partitions.map(|partitions| {
            partitions
                .iter()
                .map(|(topic, partition)| {
                    let mut t = OffsetFetchRequestTopic::default();
                    t.name = TopicName(s(topic));
                    t.partition_indexes = vec![*partition];
                    t
                })
                .collect()
        });
        self.handle(Input::OffsetFetch(ctx, request));
        match self.answers.get(&token) {
            Some(Response::OffsetFetch(r)) => {
                let mut out = FetchedOffsets::new();
                for topic in &r.topics {
                    for p in &topic.partitions {
                        out.entry(topic.name.to_string()).or_default().insert(
                            p.partition_index,
                            (
                                p.committed_offset,
                                p.metadata.as_deref().unwrap_or_default().to_owned(),
                            ),
                        );
                    }
                }
                (r.error_code, out)
            }
            other => panic!("no fetch answer: {other:?}"),
        }
    }

    fn committed(&mut self, group: &str, topic: &str, partition: i32) -> i64 {
        let (_, offsets) = self.fetch(group, Some(&[(topic, partition)]));
        offsets[topic][&partition].0
    }

    fn describe(&mut self, version: i16, group: &str) -> (i16, String, Vec<String>) {
        let ctx = self.context("DescribeGroups", version, "client");
        let token = ctx.token;
        let mut request = DescribeGroupsRequest::default();
        request.groups = vec![gid(group)];
        self.handle(Input::DescribeGroups(ctx, request));
        match self.answers.get(&token) {
            Some(Response::DescribeGroups(r)) => {
                let g = &r.groups[0];
                (
                    g.error_code,
                    g.group_state.to_string(),
                    g.members.iter().map(|m| m.member_id.to_string()).collect(),
                )
            }
            other => panic!("no describe answer: {other:?}"),
        }
    }

    fn delete_groups(&mut self, groups: &[&str]) -> Vec<i16> {
        let ctx = self.context("DeleteGroups", 2, "client");
        let token = ctx.token;
        let mut request = DeleteGroupsRequest::default();
        request.groups_names = groups.iter().map(|g| gid(g)).collect();
        self.handle(Input::DeleteGroups(ctx, request));
        match self.answers.get(&token) {
            Some(Response::DeleteGroups(r)) => r.results.iter().map(|r| r.error_code).collect(),
            other => panic!("no delete answer: {other:?}"),
        }
    }

    /// Forms a Stable group: each client joins (MEMBER_ID_REQUIRED first),
    /// the initial delay passes, followers sync, the leader assigns
    /// `assign-<i>` to member i. Returns member ids; the first leads.
    fn stable_group(&mut self, group: &str, members: usize, topics: &[&str]) -> Vec<String> {
        let ids: Vec<String> = (0..members)
            .map(|_| self.new_member_id(group, topics))
            .collect();
        let tokens: Vec<RequestToken> = ids.iter().map(|id| self.join(group, id, topics)).collect();
        self.advance(6_000);
        let generation = self.join_response(tokens[0]).generation_id;
        for (id, token) in ids.iter().zip(&tokens) {
            let response = self.join_response(*token);
            assert_eq!(response.error_code, NONE);
            assert_eq!(response.member_id.as_str(), id);
        }
        const ASSIGNMENTS: [&[u8]; 4] = [b"assign-0", b"assign-1", b"assign-2", b"assign-3"];
        let assignments: Vec<(&str, &'static [u8])> = ids
            .iter()
            .zip(ASSIGNMENTS)
            .map(|(id, a)| (id.as_str(), a))
            .collect();
        for id in &ids[1..] {
            self.sync(3, group, id, generation, &[]);
        }
        let leader = ids[0].clone();
        self.sync(3, group, &leader, generation, &assignments);
        assert_eq!(self.state(group), Some(GroupState::Stable));
        ids
    }

    /// Unloads the coordinator and checks that every request got exactly one answer.
    fn finish(mut self) {
        let actions = self.coordinator.take().expect("not unloaded").unload();
        self.absorb(actions);
        let unanswered: Vec<_> = self
            .requests
            .keys()
            .filter(|t| !self.answers.contains_key(t))
            .collect();
        assert!(unanswered.is_empty(), "never answered: {unanswered:?}");
    }
}

// ---------------------------------------------------------------- rebalancing

#[test]
fn three_members_form_one_generation_and_sync_distributes_assignments() {
    let mut h = Harness::new();
    let ids: Vec<String> = (0..3).map(|_| h.new_member_id("g", &["orders"])).collect();
    let tokens: Vec<_> = ids.iter().map(|id| h.join("g", id, &["orders"])).collect();
    assert!(
        tokens.iter().all(|t| !h.is_answered(*t)),
        "joins are held open"
    );
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));

    // The initial delay (3 s) is extended once because members kept arriving.
    h.advance(3_000);
    assert!(!h.is_answered(tokens[0]));
    h.advance(3_000);
    let responses: Vec<_> = tokens.iter().map(|t| h.join_response(*t).clone()).collect();
    for (id, response) in ids.iter().zip(&responses) {
        assert_eq!(response.error_code, NONE);
        assert_eq!(response.generation_id, 1);
        assert_eq!(response.protocol_name.as_deref(), Some("range"));
        assert_eq!(response.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(response.leader.as_str(), ids[0], "first joined leads");
        assert_eq!(response.member_id.as_str(), id);
    }
    let listed: Vec<&str> = responses[0]
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(responses[0]
        .members
        .iter()
        .all(|m| m.metadata == subscription(&["orders"])));
    assert!(responses[1].members.is_empty() && responses[2].members.is_empty());
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));

    // Followers wait for the leader; the leader leaves member 2 out.
    let follower_1 = h.sync(5, "g", &ids[1], 1, &[]);
    let follower_2 = h.sync(5, "g", &ids[2], 1, &[]);
    assert!(!h.is_answered(follower_1) && !h.is_answered(follower_2));
    let log_before = h.log.len();
    let leader = h.sync(5, "g", &ids[0], 1, &[(&ids[0], b"A"), (&ids[1], b"B")]);
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    assert_eq!(h.log.len(), log_before + 1, "group metadata is persisted");
    for token in [leader, follower_1, follower_2] {
        assert!(
            h.answered_after_append.contains(&token),
            "answered after the append"
        );
    }
    assert_eq!(&h.sync_response(leader).assignment[..], b"A");
    assert_eq!(&h.sync_response(follower_1).assignment[..], b"B");
    assert!(h.sync_response(follower_2).assignment.is_empty());
    assert_eq!(
        h.sync_response(follower_1).protocol_name.as_deref(),
        Some("range")
    );
    // A late SyncGroup in Stable gets the stored assignment at once.
    let late = h.sync(5, "g", &ids[1], 1, &[]);
    assert_eq!(&h.sync_response(late).assignment[..], b"B");
    h.finish();
}

#[test]
fn a_fourth_member_triggers_a_rebalance() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 3, &["orders"]);
    let newcomer = h.new_member_id("g", &["orders"]);
    assert_eq!(
        h.state("g"),
        Some(GroupState::Stable),
        "a pending id alone does not rebalance"
    );
    let newcomer_join = h.join("g", &newcomer, &["orders"]);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat("g", &ids[1], 1), REBALANCE_IN_PROGRESS);

    let rejoins: Vec<_> = ids.iter().map(|id| h.join("g", id, &["orders"])).collect();
    // Everyone is back: the join phase completes without waiting.
    let response = h.join_response(newcomer_join).clone();
    assert_eq!(response.generation_id, 2);
    assert_eq!(h.join_response(rejoins[0]).members.len(), 4);
    assert_eq!(h.join_response(rejoins[0]).leader.as_str(), ids[0]);
    assert_eq!(h.coordinator().group_members("g").len(), 4);
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    h.finish();
}

#[test]
fn leaving_triggers_a_rebalance() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 3, &["orders"]);
    assert_eq!(h.leave("g", &[(&ids[2], None)]), vec![NONE]);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(h.leave("g", &[(&ids[2], None)]), vec![UNKNOWN_MEMBER_ID]);
    let a = h.join("g", &ids[0], &["orders"]);
    let b = h.join("g", &ids[1], &["orders"]);
    assert_eq!(h.join_response(a).generation_id, 2);
    assert_eq!(h.join_response(b).generation_id, 2);
    assert_eq!(h.join_response(a).members.len(), 2);
    h.finish();
}

#[test]
fn the_last_member_leaving_empties_the_group_and_persists_it() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 1, &["orders"]);
    let log_before = h.log.len();
    assert_eq!(h.leave("g", &[(&ids[0], None)]), vec![NONE]);
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    assert_eq!(h.coordinator().group_generation("g"), Some(2));
    assert_eq!(h.log.len(), log_before + 1);
    h.finish();
}

#[test]
fn session_expiry_removes_a_member_and_rebalances() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 3, &["orders"]);
    h.advance(6_000);
    assert_eq!(h.heartbeat("g", &ids[0], 1), NONE);
    assert_eq!(h.heartbeat("g", &ids[1], 1), NONE);
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    // Member 2 last heard from at sync time; its session ends 10 s later.
    h.advance(4_001);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        h.coordinator().group_members("g"),
        vec![ids[0].clone(), ids[1].clone()]
    );
    assert_eq!(h.heartbeat("g", &ids[2], 1), UNKNOWN_MEMBER_ID);
    let a = h.join("g", &ids[0], &["orders"]);
    h.join("g", &ids[1], &["orders"]);
    assert_eq!(h.join_response(a).generation_id, 2);
    assert_eq!(h.join_response(a).members.len(), 2);
    h.finish();
}

#[test]
fn the_rebalance_timeout_drops_members_that_do_not_rejoin() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 3, &["orders"]);
    // The leader rejoins with a new subscription: a rebalance starts.
    let a = h.join("g", &ids[0], &["orders", "payments"]);
    let b = h.join("g", &ids[1], &["orders"]);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    // Member 2 keeps heartbeating but never rejoins.
    for _ in 0..3 {
        h.advance(5_000);
        assert_eq!(h.heartbeat("g", &ids[2], 1), REBALANCE_IN_PROGRESS);
    }
    assert!(!h.is_answered(a));
    h.advance(5_000); // 20 s: the rebalance timeout.
    assert_eq!(h.join_response(a).generation_id, 2);
    assert_eq!(h.join_response(b).generation_id, 2);
    assert_eq!(
        h.coordinator().group_members("g"),
        vec![ids[0].clone(), ids[1].clone()]
    );
    assert_eq!(h.heartbeat("g", &ids[2], 2), UNKNOWN_MEMBER_ID);
    h.finish();
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let mut h = Harness::new();
    let ids: Vec<String> = (0..2).map(|_| h.new_member_id("g", &["t"])).collect();
    for id in &ids {
        h.join("g", id, &["t"]);
    }
    h.advance(6_000);
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    // Both keep their sessions alive but only the follower syncs.
    let follower = h.sync(3, "g", &ids[1], 1, &[]);
    for _ in 0..4 {
        h.advance(5_000);
        h.heartbeat("g", &ids[1], 1);
        h.heartbeat("g", &ids[0], 1);
    }
    assert_eq!(h.sync_response(follower).error_code, REBALANCE_IN_PROGRESS);
    assert_eq!(h.coordinator().group_members("g"), vec![ids[1].clone()]);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    h.finish();
}

#[test]
fn member_id_required_flow() {
    let mut h = Harness::new();
    let token = h.join("g", "", &["t"]);
    let response = h.join_response(token).clone();
    assert_eq!(response.error_code, MEMBER_ID_REQUIRED);
    // Deterministic: the same seed gives the same id.
    let mut generator = super::ids::MemberIdGenerator::new(42);
    assert_eq!(
        response.member_id.to_string(),
        generator.member_id("client")
    );
    assert_eq!(h.state("g"), Some(GroupState::Empty));

    // Joining with the id is parked; a made-up id is refused.
    let parked = h.join("g", response.member_id.as_str(), &["t"]);
    assert!(!h.is_answered(parked));
    let bogus = h.join("g", "client-made-up", &["t"]);
    assert_eq!(h.join_response(bogus).error_code, UNKNOWN_MEMBER_ID);

    // A pending id that is never used expires with its session timeout.
    let lapsed = h.new_member_id("g", &["t"]);
    h.advance(i64::from(SESSION_MS) + 1);
    let late = h.join("g", &lapsed, &["t"]);
    assert_eq!(h.join_response(late).error_code, UNKNOWN_MEMBER_ID);

    // v3 clients get no MEMBER_ID_REQUIRED round trip.
    let old = h.join_with(
        3,
        "g2",
        "old",
        "",
        None,
        SESSION_MS,
        "consumer",
        &[("range", subscription(&["t"]))],
    );
    assert!(!h.is_answered(old));
    h.advance(3_000);
    assert_eq!(h.join_response(old).error_code, NONE);
    assert!(h.join_response(old).member_id.starts_with("old-"));
    h.finish();
}

#[test]
fn a_static_member_rejoining_a_stable_group_fences_its_old_id_without_rebalancing() {
    let mut h = Harness::new();
    let meta = subscription(&["orders"]);
    let protocols = [("range", meta.clone())];
    let j1 = h.join_with(
        5,
        "g",
        "c",
        "",
        Some("i1"),
        SESSION_MS,
        "consumer",
        &protocols,
    );
    let j2 = h.join_with(
        5,
        "g",
        "c",
        "",
        Some("i2"),
        SESSION_MS,
        "consumer",
        &protocols,
    );
    h.advance(6_000);
    let id1 = h.join_response(j1).member_id.to_string();
    let id2 = h.join_response(j2).member_id.to_string();
    assert!(id1.starts_with("i1-") && id2.starts_with("i2-"));
    h.sync(3, "g", &id2, 1, &[]);
    h.sync(3, "g", &id1, 1, &[(&id1, b"one"), (&id2, b"two")]);
    assert_eq!(h.state("g"), Some(GroupState::Stable));

    // i2 restarts and rejoins without its member id, same metadata.
    let log_before = h.log.len();
    let rejoin = h.join_with(
        5,
        "g",
        "c",
        "",
        Some("i2"),
        SESSION_MS,
        "consumer",
        &protocols,
    );
    let response = h.join_response(rejoin).clone();
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.generation_id, 1, "no rebalance");
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    assert!(
        h.answered_after_append.contains(&rejoin),
        "answered once persisted"
    );
    assert_eq!(h.log.len(), log_before + 1);
    let new_id = response.member_id.to_string();
    assert_ne!(new_id, id2);
    let sync = h.sync(3, "g", &new_id, 1, &[]);
    assert_eq!(
        &h.sync_response(sync).assignment[..],
        b"two",
        "assignment kept"
    );

    // The old id is fenced.
    assert_eq!(
        h.heartbeat_with(3, "g", &id2, Some("i2"), 1),
        FENCED_INSTANCE_ID
    );
    assert_eq!(h.heartbeat_with(3, "g", &new_id, Some("i2"), 1), NONE);
    assert_eq!(h.heartbeat_with(0, "g", &id2, None, 1), UNKNOWN_MEMBER_ID);
    h.finish();
}

#[test]
fn a_static_member_rejoining_during_sync_fences_the_parked_old_request() {
    let mut h = Harness::new();
    let protocols = [("range", subscription(&["orders"]))];
    let j1 = h.join_with(
        5,
        "g",
        "c",
        "",
        Some("i1"),
        SESSION_MS,
        "consumer",
        &protocols,
    );
    let j2 = h.join_with(
        5,
        "g",
        "c",
        "",
        Some("i2"),
        SESSION_MS,
        "consumer",
        &protocols,
    );
    h.advance(6_000);
    let id2 = h.join_response(j2).member_id.to_string();
    let parked = h.sync(3, "g", &id2, 1, &[]);
    assert!(!h.is_answered(parked));
    let rejoin = h.join_with(
        5,
        "g",
        "c",
        "",
        Some("i2"),
        SESSION_MS,
        "consumer",
        &protocols,
    );
    assert_eq!(h.sync_response(parked).error_code, FENCED_INSTANCE_ID);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert!(!h.is_answered(rejoin));
    let id1 = h.join_response(j1).member_id.to_string();
    h.join_with(
        5,
        "g",
        "c",
        &id1,
        Some("i1"),
        SESSION_MS,
        "consumer",
        &protocols,
    );
    assert_eq!(h.join_response(rejoin).generation_id, 2);
    h.finish();
}

#[test]
fn heartbeat_errors_in_each_state() {
    let mut h = Harness::new();
    assert_eq!(h.heartbeat("nope", "m", 0), UNKNOWN_MEMBER_ID);

    let ids: Vec<String> = (0..2).map(|_| h.new_member_id("g", &["t"])).collect();
    for id in &ids {
        h.join("g", id, &["t"]);
    }
    // PreparingRebalance.
    assert_eq!(h.heartbeat("g", &ids[0], 0), REBALANCE_IN_PROGRESS);
    h.advance(6_000);
    // CompletingRebalance: OK (clients heartbeat while waiting for SyncGroup).
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(h.heartbeat("g", &ids[0], 1), NONE);
    assert_eq!(h.heartbeat("g", &ids[0], 0), ILLEGAL_GENERATION);
    assert_eq!(h.heartbeat("g", "stranger", 1), UNKNOWN_MEMBER_ID);
    h.sync(3, "g", &ids[1], 1, &[]);
    h.sync(3, "g", &ids[0], 1, &[]);
    // Stable.
    assert_eq!(h.heartbeat("g", &ids[1], 1), NONE);
    assert_eq!(h.heartbeat("g", &ids[1], 2), ILLEGAL_GENERATION);
    // Empty.
    h.leave("g", &[(&ids[0], None), (&ids[1], None)]);
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    assert_eq!(h.heartbeat("g", &ids[0], 2), UNKNOWN_MEMBER_ID);
    h.finish();
}

#[test]
fn sync_errors() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 2, &["t"]);
    let token = h.sync(5, "g", &ids[0], 7, &[]);
    assert_eq!(h.sync_response(token).error_code, ILLEGAL_GENERATION);
    let token = h.sync(5, "g", "who", 1, &[]);
    assert_eq!(h.sync_response(token).error_code, UNKNOWN_MEMBER_ID);
    let token = h.sync(3, "absent", "who", 1, &[]);
    assert_eq!(h.sync_response(token).error_code, UNKNOWN_MEMBER_ID);
    let ctx = h.context("SyncGroup", 5, "client");
    let token = ctx.token;
    let mut request = SyncGroupRequest::default();
    request.group_id = gid("g");
    request.generation_id = 1;
    request.member_id = s(&ids[1]);
    request.protocol_type = Some(s("consumer"));
    request.protocol_name = Some(s("roundrobin"));
    h.handle(Input::SyncGroup(ctx, request));
    assert_eq!(
        h.sync_response(token).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    // A rejoin puts the group in PreparingRebalance.
    h.join("g", &ids[0], &["t", "u"]);
    let token = h.sync(5, "g", &ids[1], 1, &[]);
    assert_eq!(h.sync_response(token).error_code, REBALANCE_IN_PROGRESS);
    h.finish();
}

#[test]
fn join_validation_errors() {
    let mut h = Harness::with_config(GroupConfig {
        group_max_size: 2,
        ..test_config()
    });
    let consumer = [("range", subscription(&["t"]))];
    let short = h.join_with(7, "g", "c", "", None, 5_000, "consumer", &consumer);
    assert_eq!(h.join_response(short).error_code, INVALID_SESSION_TIMEOUT);
    let huge = [("range", Bytes::from(vec![0u8; 2 * 1024 * 1024]))];
    let oversized = h.join_with(7, "g", "c", "", None, SESSION_MS, "consumer", &huge);
    assert_eq!(h.join_response(oversized).error_code, INVALID_REQUEST);
    assert_eq!(
        h.coordinator().group_count(),
        0,
        "refused joins leave no group behind"
    );

    h.stable_group("g", 1, &["t"]);
    let connect = h.join_with(7, "g", "c", "", None, SESSION_MS, "connect", &consumer);
    assert_eq!(
        h.join_response(connect).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let other = [("roundrobin", subscription(&["t"]))];
    let no_common = h.join_with(7, "g", "c", "", None, SESSION_MS, "consumer", &other);
    assert_eq!(
        h.join_response(no_common).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    assert_eq!(h.state("g"), Some(GroupState::Stable));

    let ids = h.stable_group("full", 2, &["t"]);
    let third = h.join("full", "", &["t"]);
    assert_eq!(h.join_response(third).error_code, GROUP_MAX_SIZE_REACHED);
    assert_eq!(h.coordinator().group_members("full"), ids);
    h.finish();
}

#[test]
fn partitions_changed_rebalances_only_subscribing_groups() {
    let mut h = Harness::new();
    h.stable_group("orders-app", 2, &["orders"]);
    h.stable_group("payments-app", 1, &["payments"]);
    h.handle(Input::PartitionsChanged(vec!["orders".to_owned()]));
    assert_eq!(h.state("orders-app"), Some(GroupState::PreparingRebalance));
    assert_eq!(h.state("payments-app"), Some(GroupState::Stable));
    h.handle(Input::PartitionsChanged(vec!["unrelated".to_owned()]));
    assert_eq!(h.state("payments-app"), Some(GroupState::Stable));
    h.finish();
}

// ---------------------------------------------------------------- offsets

#[test]
fn commit_validation_follows_kafka() {
    let mut h = Harness::new();
    // Admin / manual-assignment commit to a group that does not exist yet.
    assert_eq!(h.commit("simple", "", -1, &[("t", 0, 5, "")]), vec![NONE]);
    assert_eq!(h.state("simple"), Some(GroupState::Empty));
    assert_eq!(h.committed("simple", "t", 0), 5);
    // Generation >= 0 to an unknown group.
    assert_eq!(
        h.commit_with(8, "ghost", "m", 1, &[("t", 0, 1, "")]).0,
        vec![ILLEGAL_GENERATION]
    );
    assert_eq!(
        h.commit_with(9, "ghost", "m", 1, &[("t", 0, 1, "")]).0,
        vec![GROUP_ID_NOT_FOUND]
    );
    assert_eq!(h.state("ghost"), None);

    let ids = h.stable_group("g", 2, &["t"]);
    assert_eq!(
        h.commit("g", &ids[0], 0, &[("t", 0, 1, "")]),
        vec![ILLEGAL_GENERATION]
    );
    assert_eq!(
        h.commit("g", "stranger", 1, &[("t", 0, 1, "")]),
        vec![UNKNOWN_MEMBER_ID]
    );
    assert_eq!(
        h.commit("g", "", -1, &[("t", 0, 1, "")]),
        vec![UNKNOWN_MEMBER_ID]
    );
    let (errors, after_append) = h.commit_with(8, "g", &ids[0], 1, &[("t", 0, 10, "m")]);
    assert_eq!(errors, vec![NONE]);
    assert!(
        after_append,
        "a commit is acknowledged only after its append"
    );

    // PreparingRebalance: the current generation may still commit.
    h.join("g", &ids[0], &["t", "u"]);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(h.commit("g", &ids[1], 1, &[("t", 1, 11, "")]), vec![NONE]);
    // CompletingRebalance: REBALANCE_IN_PROGRESS.
    h.join("g", &ids[1], &["t"]);
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(
        h.commit("g", &ids[1], 2, &[("t", 1, 12, "")]),
        vec![REBALANCE_IN_PROGRESS]
    );
    assert_eq!(h.committed("g", "t", 0), 10);
    assert_eq!(h.committed("g", "t", 1), 11);

    // Once Empty, admin commits are accepted again.
    h.leave("g", &[(&ids[0], None), (&ids[1], None)]);
    assert_eq!(h.commit("g", "", -1, &[("t", 0, 99, "")]), vec![NONE]);
    assert_eq!(h.committed("g", "t", 0), 99);
    h.finish();
}

#[test]
fn oversized_offset_metadata_is_rejected_per_partition() {
    let mut h = Harness::new();
    let long = "x".repeat(4_097);
    let errors = h.commit("g", "", -1, &[("t", 0, 1, &long), ("t", 1, 2, "ok")]);
    assert_eq!(errors, vec![OFFSET_METADATA_TOO_LARGE, NONE]);
    assert_eq!(h.committed("g", "t", 0), -1);
    let (_, offsets) = h.fetch("g", Some(&[("t", 1)]));
    assert_eq!(offsets["t"][&1], (2, "ok".to_owned()));
    let exactly = "y".repeat(4_096);
    assert_eq!(h.commit("g", "", -1, &[("t", 0, 3, &exactly)]), vec![NONE]);
    h.finish();
}

#[test]
fn offsets_and_groups_survive_replay_of_the_emitted_records() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 2, &["orders"]);
    h.commit(
        "g",
        &ids[0],
        1,
        &[("orders", 0, 100, "a"), ("orders", 1, 200, "b")],
    );
    h.commit("g", &ids[1], 1, &[("orders", 0, 150, "c")]);
    h.commit("simple", "", -1, &[("other", 3, 7, "")]);
    h.commit("gone", "", -1, &[("other", 0, 1, "")]);
    assert_eq!(h.delete_groups(&["gone"]), vec![NONE]);

    let mut fresh = GroupCoordinator::new(test_config(), 7).expect("valid config");
    let before = fresh.handle(h.now_ms, Input::Tick);
    assert!(before.is_empty() && fresh.is_loading());
    fresh.load(h.now_ms, h.log.clone()).expect("log replays");

    assert_eq!(offsets_snapshot(&fresh), offsets_snapshot(h.coordinator()));
    assert_eq!(fresh.group_state("g"), Some(GroupState::Stable));
    assert_eq!(fresh.group_generation("g"), Some(1));
    assert_eq!(fresh.group_members("g"), ids);
    assert_eq!(fresh.group_state("gone"), None);
    let loaded = &fresh.groups["g"];
    assert_eq!(&loaded.members[&ids[1]].assignment[..], b"assign-1");
    assert_eq!(
        loaded.offset("orders", 0).map(|o| o.metadata.as_str()),
        Some("c")
    );

    // Loaded members keep their sessions: a heartbeat works, silence expires.
    let mut h2 = Harness::new();
    h2.coordinator = Some(fresh);
    assert_eq!(h2.heartbeat("g", &ids[0], 1), NONE);
    assert_eq!(h2.committed("g", "orders", 1), 200);
    h2.finish();
    h.finish();
}

#[test]
fn requests_while_loading_get_coordinator_load_in_progress() {
    let mut coordinator = GroupCoordinator::new(test_config(), 1).expect("valid config");
    let mut request = HeartbeatRequest::default();
    request.group_id = gid("g");
    let ctx = RequestContext {
        token: RequestToken(9),
        api_version: 4,
        client_id: String::new(),
        client_host: String::new(),
    };
    let actions = coordinator.handle(T0, Input::Heartbeat(ctx, request));
    match &actions[..] {
        [Action::Respond {
            token: RequestToken(9),
            response: Response::Heartbeat(r),
        }] => assert_eq!(r.error_code, COORDINATOR_LOAD_IN_PROGRESS),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(coordinator.next_deadline_ms(), None);
    coordinator.finish_loading(T0);
    assert_eq!(
        coordinator.next_deadline_ms(),
        Some(T0 + 5_000),
        "expiry is scheduled"
    );
}

#[test]
fn offsets_of_an_empty_group_expire_after_retention() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 1, &["orders"]);
    h.commit("g", &ids[0], 1, &[("orders", 0, 42, "")]);
    // Offsets of an active group do not expire, however old.
    for _ in 0..24 {
        h.advance(5_000);
        assert_eq!(h.heartbeat("g", &ids[0], 1), NONE);
    }
    assert_eq!(h.committed("g", "orders", 0), 42);

    h.leave("g", &[(&ids[0], None)]);
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    h.advance(55_000);
    assert_eq!(
        h.committed("g", "orders", 0),
        42,
        "retention counts from becoming Empty"
    );
    let log_before = h.log.len();
    h.advance(10_000);
    assert_eq!(h.committed("g", "orders", 0), -1);
    assert_eq!(h.state("g"), None, "the emptied group is deleted");
    let tombstones = &h.log[log_before..];
    assert_eq!(tombstones.len(), 2, "offset then group tombstone");
    assert!(tombstones.iter().all(|r| r.value.is_none()));
    assert_eq!(h.describe(5, "g").1, "Dead");

    // A simple group's offsets expire by commit time.
    h.commit("simple", "", -1, &[("t", 0, 1, "")]);
    h.advance(30_000);
    h.commit("simple", "", -1, &[("t", 1, 2, "")]);
    h.advance(35_000);
    assert_eq!(h.committed("simple", "t", 0), -1);
    assert_eq!(h.committed("simple", "t", 1), 2);
    h.finish();
}

#[test]
fn offset_delete_refuses_subscribed_topics() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 1, &["orders"]);
    h.commit("g", &ids[0], 1, &[("orders", 0, 1, ""), ("old", 0, 2, "")]);
    let ctx = h.context("OffsetDelete", 0, "admin");
    let token = ctx.token;
    let mut request = OffsetDeleteRequest::default();
    request.group_id = gid("g");
    request.topics = ["orders", "old"]
        .iter()
        .map(|name| {
            let mut partition = OffsetDeleteRequestPartition::default();
            partition.partition_index = 0;
            let mut topic = OffsetDeleteRequestTopic::default();
            topic.name = TopicName(s(name));
            topic.partitions = vec![partition];
            topic
        })
        .collect();
    h.handle(Input::OffsetDelete(ctx, request));
    let Some(Response::OffsetDelete(response)) = h.answers.get(&token) else {
        panic!("no OffsetDelete answer");
    };
    assert_eq!(response.error_code, NONE);
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        GROUP_SUBSCRIBED_TO_TOPIC
    );
    assert_eq!(response.topics[1].partitions[0].error_code, NONE);
    assert!(h.answered_after_append.contains(&token));
    assert_eq!(h.committed("g", "orders", 0), 1);
    assert_eq!(h.committed("g", "old", 0), -1);
    h.finish();
}

#[test]
fn offset_fetch_v8_answers_per_group() {
    let mut h = Harness::new();
    h.commit("a", "", -1, &[("t", 0, 5, "")]);
    let ctx = h.context("OffsetFetch", 8, "client");
    let token = ctx.token;
    let mut request = OffsetFetchRequest::default();
    request.groups = ["a", "b"]
        .iter()
        .map(|g| {
            let mut group = OffsetFetchRequestGroup::default();
            group.group_id = gid(g);
            let mut topic = OffsetFetchRequestTopics::default();
            topic.name = TopicName(s("t"));
            topic.partition_indexes = vec![0];
            group.topics = Some(vec![topic]);
            group
        })
        .collect();
    h.handle(Input::OffsetFetch(ctx, request));
    let Some(Response::OffsetFetch(response)) = h.answers.get(&token) else {
        panic!("no OffsetFetch answer");
    };
    let offsets: Vec<i64> = response
        .groups
        .iter()
        .map(|g| g.topics[0].partitions[0].committed_offset)
        .collect();
    assert_eq!(offsets, vec![5, -1]);
    h.finish();
}

// ---------------------------------------------------------------- admin

#[test]
fn delete_groups_only_deletes_empty_groups() {
    let mut h = Harness::new();
    let ids = h.stable_group("busy", 1, &["t"]);
    h.commit("idle", "", -1, &[("t", 0, 1, ""), ("t", 1, 2, "")]);
    let log_before = h.log.len();
    assert_eq!(
        h.delete_groups(&["busy", "idle", "unknown"]),
        vec![NON_EMPTY_GROUP, NONE, GROUP_ID_NOT_FOUND]
    );
    assert_eq!(
        h.log.len(),
        log_before + 3,
        "two offset tombstones and a group tombstone"
    );
    assert_eq!(h.state("idle"), None);
    assert_eq!(h.committed("idle", "t", 0), -1);
    assert_eq!(h.state("busy"), Some(GroupState::Stable));
    assert_eq!(h.describe(5, "busy").2, ids);
    h.finish();
}

#[test]
fn describe_and_list_groups() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 2, &["t"]);
    h.commit("simple", "", -1, &[("t", 0, 1, "")]);
    assert_eq!(h.describe(5, "g"), (NONE, "Stable".to_owned(), ids));
    assert_eq!(h.describe(5, "missing"), (NONE, "Dead".to_owned(), vec![]));
    assert_eq!(h.describe(6, "missing").0, GROUP_ID_NOT_FOUND);

    let mut list = |states: &[&str], version: i16| {
        let ctx = h.context("ListGroups", version, "admin");
        let token = ctx.token;
        let mut request = ListGroupsRequest::default();
        if version >= 4 {
            request.states_filter = states.iter().map(|st| s(st)).collect();
        }
        h.handle(Input::ListGroups(ctx, request));
        let Some(Response::ListGroups(response)) = h.answers.get(&token) else {
            panic!("no ListGroups answer");
        };
        response
            .groups
            .iter()
            .map(|g| g.group_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(list(&[], 3), vec!["g", "simple"]);
    assert_eq!(list(&["empty"], 4), vec!["simple"]);
    assert_eq!(list(&["Stable", "Dead"], 5), vec!["g"]);
    h.finish();
}

#[test]
fn unload_answers_parked_requests_with_not_coordinator() {
    let mut h = Harness::new();
    let id = h.new_member_id("g", &["t"]);
    let parked = h.join("g", &id, &["t"]);
    let actions = h.coordinator.take().expect("loaded").unload();
    h.absorb(actions);
    assert_eq!(h.join_response(parked).error_code, NOT_COORDINATOR);
    assert!(h.requests.keys().all(|t| h.answers.contains_key(t)));
}

#[test]
fn next_deadline_tracks_the_earliest_timer() {
    let mut h = Harness::new();
    let id = h.new_member_id("g", &["t"]);
    // The expiry check (5 s) comes before the pending member's session
    // (10 s); once it joins, the initial rebalance delay (3 s) is first.
    assert_eq!(h.coordinator().next_deadline_ms(), Some(T0 + 5_000));
    h.join("g", &id, &["t"]);
    assert_eq!(h.coordinator().next_deadline_ms(), Some(T0 + 3_000));
    let group_timer = h
        .coordinator()
        .fx
        .timers
        .deadline_of(&super::timers::TimerKey::Join {
            group: "g".to_owned(),
        });
    assert_eq!(group_timer, Some(T0 + 3_000));
    h.finish();
}

// ---------------------------------------------------------------- versions

#[test]
fn old_protocol_versions_get_answers_in_their_own_shape() {
    let mut h = Harness::new();
    let protocols = [("range", subscription(&["t"]))];
    // v0: no MEMBER_ID_REQUIRED, and the session timeout is the rebalance timeout.
    let join = h.join_with(0, "g", "old", "", None, SESSION_MS, "consumer", &protocols);
    h.advance(3_000);
    let response = h.join_response(join).clone();
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
    let id = response.member_id.to_string();
    assert_eq!(
        h.coordinator().groups["g"].rebalance_timeout_ms(),
        SESSION_MS
    );

    // An error at v0 still carries a (non-null) protocol name.
    let bad = h.join_with(0, "g", "old", "", None, SESSION_MS, "other", &protocols);
    assert_eq!(h.join_response(bad).error_code, INCONSISTENT_GROUP_PROTOCOL);
    assert_eq!(h.join_response(bad).protocol_name.as_deref(), Some(""));

    let sync = h.sync(0, "g", &id, 1, &[(&id, b"x")]);
    assert_eq!(&h.sync_response(sync).assignment[..], b"x");
    assert_eq!(h.heartbeat_with(0, "g", &id, None, 1), NONE);

    // OffsetCommit v2 with a retention time writes an expiring value (v1).
    let ctx = h.context("OffsetCommit", 2, "old");
    let mut request = OffsetCommitRequest::default();
    request.group_id = gid("g");
    request.generation_id_or_member_epoch = 1;
    request.member_id = s(&id);
    request.retention_time_ms = 1_000;
    let mut partition = OffsetCommitRequestPartition::default();
    partition.committed_offset = 8;
    let mut topic = OffsetCommitRequestTopic::default();
    topic.name = TopicName(s("unsubscribed"));
    topic.partitions = vec![partition];
    request.topics = vec![topic];
    h.handle(Input::OffsetCommit(ctx, request));
    let value = h
        .log
        .last()
        .and_then(|r| r.value.clone())
        .expect("commit record");
    assert_eq!(
        &value[..2],
        &[0, 1],
        "OffsetCommitValue v1 carries the expiry"
    );
    assert_eq!(h.committed("g", "unsubscribed", 0), 8);
    // In a Stable consumer group, offsets of topics it does not subscribe
    // to expire, here by the commit's own expiry (1 s), not by retention.
    h.advance(5_000);
    assert_eq!(h.heartbeat_with(0, "g", &id, None, 1), NONE);
    assert_eq!(h.committed("g", "unsubscribed", 0), -1);

    // LeaveGroup v0: one member, a top-level error.
    let ctx = h.context("LeaveGroup", 0, "old");
    let token = ctx.token;
    let mut request = LeaveGroupRequest::default();
    request.group_id = gid("g");
    request.member_id = s(&id);
    h.handle(Input::LeaveGroup(ctx, request));
    let Some(Response::LeaveGroup(response)) = h.answers.get(&token) else {
        panic!("no LeaveGroup answer");
    };
    assert_eq!(response.error_code, NONE);
    assert!(response.members.is_empty());
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    assert_eq!(h.describe(0, "g").1, "Empty");
    h.finish();
}

#[test]
fn a_returning_static_leader_keeps_the_assignment_on_every_version() {
    for version in [5, 9] {
        let mut h = Harness::new();
        let protocols = [("range", subscription(&["orders"]))];
        let j1 = h.join_with(
            version,
            "g",
            "c",
            "",
            Some("i1"),
            SESSION_MS,
            "consumer",
            &protocols,
        );
        let j2 = h.join_with(
            version,
            "g",
            "c",
            "",
            Some("i2"),
            SESSION_MS,
            "consumer",
            &protocols,
        );
        h.advance(6_000);
        let leader = h.join_response(j1).member_id.to_string();
        let follower = h.join_response(j2).member_id.to_string();
        assert_eq!(h.join_response(j1).leader.as_str(), leader);
        h.sync(version.min(5), "g", &follower, 1, &[]);
        h.sync(
            version.min(5),
            "g",
            &leader,
            1,
            &[(&leader, b"L"), (&follower, b"F")],
        );

        let rejoin = h.join_with(
            version,
            "g",
            "c",
            "",
            Some("i1"),
            SESSION_MS,
            "consumer",
            &protocols,
        );
        let response = h.join_response(rejoin).clone();
        let new_leader = response.member_id.to_string();
        assert_eq!(h.state("g"), Some(GroupState::Stable), "v{version}");
        if version >= 9 {
            // Told it leads, with the members, and that assigning is not needed.
            assert!(response.skip_assignment);
            assert_eq!(response.leader.as_str(), new_leader);
            assert_eq!(response.members.len(), 2);
        } else {
            // Shown the old leader id, so it acts as a follower.
            assert!(!response.skip_assignment);
            assert_eq!(response.leader.as_str(), leader);
            assert!(response.members.is_empty());
        }
        let sync = h.sync(version.min(5), "g", &new_leader, 1, &[]);
        assert_eq!(&h.sync_response(sync).assignment[..], b"L");
        h.finish();
    }
}

// ---------------------------------------------------------------- random runs

/// One step of a random run.
#[derive(Debug, Clone)]
enum Step {
    /// A new dynamic member asks for an id (or joins with one it got).
    JoinNew,
    /// A known member id (by index) rejoins, with changed metadata or not.
    Rejoin {
        member: usize,
        changed: bool,
    },
    /// A static member (instance 0–2) joins without a member id.
    JoinStatic {
        instance: usize,
    },
    Sync {
        member: usize,
    },
    /// The current leader (if any) sends its assignment.
    LeaderSync,
    Heartbeat {
        member: usize,
    },
    Leave {
        member: usize,
    },
    Commit {
        member: usize,
    },
    Advance {
        ms: i64,
    },
    PartitionsChanged,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        2 => Just(Step::JoinNew),
        3 => (0..8usize, any::<bool>()).prop_map(|(member, changed)| Step::Rejoin { member, changed }),
        1 => (0..3usize).prop_map(|instance| Step::JoinStatic { instance }),
        2 => (0..8usize).prop_map(|member| Step::Sync { member }),
        3 => Just(Step::LeaderSync),
        2 => (0..8usize).prop_map(|member| Step::Heartbeat { member }),
        1 => (0..8usize).prop_map(|member| Step::Leave { member }),
        1 => (0..8usize).prop_map(|member| Step::Commit { member }),
        2 => (0..12_000i64).prop_map(|ms| Step::Advance { ms }),
        1 => Just(Step::PartitionsChanged),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Whatever clients do, invariants hold after every step, a group's
    /// generation never goes back, the log replays to the same state, every response encodes, and every request is
    /// answered exactly once (parked ones by unload).
    #[test]
    fn random_runs_keep_the_invariants(steps in proptest::collection::vec(step(), 1..120)) {
        let mut h = Harness::new();
        let mut ids: Vec<String> = Vec::new();
        let mut last_generation = 0;
        for step in steps {
            let generation = h.coordinator().group_generation("g").unwrap_or(0);
            let log_before = h.log.len();
            let member = |index: usize| ids.get(index % ids.len().max(1)).cloned().unwrap_or_default();
            let token = match step {
                Step::JoinNew => Some(h.join("g", "", &["t"])),
                Step::Rejoin { member: m, changed } => {
                    let topics: &[&str] = if changed { &["t", "u"] } else { &["t"] };
                    Some(h.join("g", &member(m), topics))
                }
                Step::JoinStatic { instance } => {
                    let instance = format!("instance-{instance}");
                    let protocols = [("range", subscription(&["t"]))];
                    Some(h.join_with(5, "g", "c", "", Some(&instance), SESSION_MS, "consumer", &protocols))
                }
                Step::Sync { member: m } => {
                    let id = member(m);
                    Some(h.sync(5, "g", &id, generation, &[(id.as_str(), b"a")]))
                }
                Step::LeaderSync => {
                    let leader = h.coordinator().groups.get("g").and_then(|g| g.leader_id.clone());
                    leader.map(|id| {
                        let members = h.coordinator().group_members("g");
                        let assignments: Vec<(&str, &'static [u8])> =
                            members.iter().map(|m| (m.as_str(), &b"a"[..])).collect();
                        h.sync(5, "g", &id, generation, &assignments)
                    })
                }
                Step::Heartbeat { member: m } => {
                    h.heartbeat("g", &member(m), generation);
                    None
                }
                Step::Leave { member: m } => {
                    h.leave("g", &[(&member(m), None)]);
                    None
                }
                Step::Commit { member: m } => {
                    h.commit("g", &member(m), generation, &[("t", 0, 1, "")]);
                    None
                }
                Step::Advance { ms } => {
                    h.advance(ms);
                    None
                }
                Step::PartitionsChanged => {
                    h.handle(Input::PartitionsChanged(vec!["t".to_owned()]));
                    None
                }
            };
            // Learn member ids from any JoinGroup answer.
            for response in h.answers.values() {
                if let Response::JoinGroup(r) = response {
                    let id = r.member_id.to_string();
                    if !id.is_empty() && !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
            let _ = token;
            // A group deleted by expiry (a tombstone in the log) may come
            // back from generation 0.
            let generation = h.coordinator().group_generation("g").unwrap_or(0);
            let tombstones = h.log[log_before..]
                .iter()
                .filter(|r| r.value.is_none() && r.key == super::records::group_metadata_key("g"))
                .count();
            proptest::prop_assert!(tombstones > 0 || generation >= last_generation);
            last_generation = generation;
        }

        // The log rebuilds what was made durable: all offsets, and a
        // Stable or Empty group exactly (other states are mid-rebalance).
        let mut replayed = GroupCoordinator::new(test_config(), 1).expect("valid config");
        replayed.load(h.now_ms, h.log.clone()).expect("log replays");
        proptest::prop_assert_eq!(offsets_snapshot(&replayed), offsets_snapshot(h.coordinator()));
        let state = h.state("g");
        if state == Some(GroupState::Stable)
            || (state == Some(GroupState::Empty) && h.coordinator().group_generation("g") > Some(0))
        {
            proptest::prop_assert_eq!(replayed.group_state("g"), state);
            proptest::prop_assert_eq!(replayed.group_generation("g"), h.coordinator().group_generation("g"));
            proptest::prop_assert_eq!(replayed.group_members("g"), h.coordinator().group_members("g"));
        }
        h.finish();
    }

    /// Decoders never panic on arbitrary bytes.
    #[test]
    fn decoders_survive_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
        let _ = super::records::decode_key(&bytes);
        let _ = super::records::GroupMetadataValue::decode(&bytes);
        let _ = super::records::OffsetCommitValue::decode(&bytes);
        let _ = super::subscription::subscribed_topics(&bytes);
    }
}
