//! OffsetCommit requests Kafka refuses, written as raw frames (no client would send them): a group
//! member joined by hand (JoinGroup v1 + SyncGroup v0 over a socket) commits with a stale
//! generation, as an unknown member, with generation -1 while the group has members, for a group
//! that does not exist, with metadata over `offset.metadata.max.bytes` (4096), and for a partition or
//! a topic that does not exist (UNKNOWN_TOPIC_OR_PARTITION for it, the rest stored). Each is tried at
//! OffsetCommit v2 and v7 (the last non-flexible version) and must get Kafka's error code; after
//! each the member's heartbeat still succeeds and the committed offsets (OffsetFetch v1) are
//! unchanged. Finally the member leaves and a confluent-kafka consumer of the same group resumes
//! exactly at the offsets the valid commits stored.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

const IO_TIMEOUT: Duration = Duration::from_secs(15);
const PARTITIONS: u32 = 3;

const OFFSET_COMMIT: i16 = 8;
const OFFSET_FETCH: i16 = 9;
const JOIN_GROUP: i16 = 11;
const HEARTBEAT: i16 = 12;
const LEAVE_GROUP: i16 = 13;
const SYNC_GROUP: i16 = 14;

const NONE: i16 = 0;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// The OffsetCommit versions every case is tried at: v2 (retention time, no leader epoch) and v7
/// (throttle time, leader epoch, group instance id; the last version before flexible encoding).
const COMMIT_VERSIONS: [i16; 2] = [2, 7];

// ---- a minimal Kafka protocol codec (non-flexible versions only) --------------------------------

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn i16(mut self, v: i16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn str(self, s: &str) -> Self {
        let mut w = self.i16(s.len() as i16);
        w.0.extend_from_slice(s.as_bytes());
        w
    }
    fn null_str(self) -> Self {
        self.i16(-1)
    }
    fn bytes(self, b: &[u8]) -> Self {
        let mut w = self.i32(b.len() as i32);
        w.0.extend_from_slice(b);
        w
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

struct R<'a> {
    buf: &'a [u8],
    what: String,
}

impl R<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        assert!(
            self.buf.len() >= n,
            "{}: response ends early ({} bytes left, {n} needed)",
            self.what,
            self.buf.len()
        );
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        head
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    fn str(&mut self) -> String {
        self.null_str()
            .unwrap_or_else(|| panic!("{}: null string", self.what))
    }
    fn null_str(&mut self) -> Option<String> {
        let len = self.i16();
        (len >= 0).then(|| String::from_utf8(self.take(len as usize).to_vec()).unwrap())
    }
    fn bytes(&mut self) -> Vec<u8> {
        let len = self.i32();
        assert!(len >= 0, "{}: null bytes", self.what);
        self.take(len as usize).to_vec()
    }
    fn array_len(&mut self) -> usize {
        let len = self.i32();
        assert!(
            (0..10_000).contains(&len),
            "{}: array length {len}",
            self.what
        );
        len as usize
    }
    fn end(&self) {
        assert!(
            self.buf.is_empty(),
            "{}: {} unread bytes at the end",
            self.what,
            self.buf.len()
        );
    }
}

struct Conn {
    stream: TcpStream,
    correlation_id: i32,
    /// The response bytes of the last call (a response body borrows them).
    last: Vec<u8>,
}

impl Conn {
    fn open(broker: &Broker) -> Conn {
        let stream = TcpStream::connect(broker.addr()).expect("connect to broker");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Conn {
            stream,
            correlation_id: 0,
            last: Vec::new(),
        }
    }

    /// Sends one request (header v1) and returns a reader over the response body (header v0).
    fn call(&mut self, api_key: i16, version: i16, body: W, what: &str) -> R<'_> {
        self.correlation_id += 1;
        let request = W::default()
            .i16(api_key)
            .i16(version)
            .i32(self.correlation_id)
            .str("strom-groups-bad-commits")
            .raw(&body.0);
        let mut frame = (request.0.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&request.0);
        self.stream
            .write_all(&frame)
            .unwrap_or_else(|e| panic!("{what}: write request: {e}"));
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .unwrap_or_else(|e| panic!("{what}: no response from the broker: {e}"));
        let size = i32::from_be_bytes(size);
        assert!((4..1 << 24).contains(&size), "{what}: response size {size}");
        self.last = vec![0; size as usize];
        self.stream
            .read_exact(&mut self.last)
            .unwrap_or_else(|e| panic!("{what}: truncated response: {e}"));
        let mut r = R {
            buf: &self.last,
            what: what.to_string(),
        };
        assert_eq!(r.i32(), self.correlation_id, "{what}: correlation id");
        r
    }
}

// ---- the group APIs this test speaks ------------------------------------------------------------

struct Joined {
    generation: i32,
    member_id: String,
    leader: String,
}

/// ConsumerProtocolSubscription v0: version, topics, null user data.
fn subscription(topic: &str) -> Vec<u8> {
    W::default().i16(0).i32(1).str(topic).i32(-1).0
}

/// ConsumerProtocolAssignment v0: version, [topic, partitions], null user data.
fn assignment(topic: &str) -> Vec<u8> {
    let mut w = W::default().i16(0).i32(1).str(topic).i32(PARTITIONS as i32);
    for p in 0..PARTITIONS as i32 {
        w = w.i32(p);
    }
    w.i32(-1).0
}

/// JoinGroup v1 with the "consumer" protocol type and one "range" protocol.
fn join_group(conn: &mut Conn, group: &str, member_id: &str, topic: &str) -> Joined {
    let body = W::default()
        .str(group)
        .i32(30_000) // session timeout
        .i32(30_000) // rebalance timeout
        .str(member_id)
        .str("consumer")
        .i32(1)
        .str("range")
        .bytes(&subscription(topic));
    let mut r = conn.call(JOIN_GROUP, 1, body, "JoinGroup v1");
    let error = r.i16();
    assert_eq!(
        error, NONE,
        "JoinGroup v1 (member {member_id:?}) error code"
    );
    let generation = r.i32();
    assert_eq!(r.str(), "range", "JoinGroup v1: chosen protocol");
    let leader = r.str();
    let member_id = r.str();
    for _ in 0..r.array_len() {
        r.str();
        r.bytes();
    }
    r.end();
    Joined {
        generation,
        member_id,
        leader,
    }
}

/// SyncGroup v0 as the leader, assigning every partition to itself; checks it gets that back.
fn sync_group(conn: &mut Conn, group: &str, joined: &Joined, topic: &str) {
    let body = W::default()
        .str(group)
        .i32(joined.generation)
        .str(&joined.member_id)
        .i32(1)
        .str(&joined.member_id)
        .bytes(&assignment(topic));
    let mut r = conn.call(SYNC_GROUP, 0, body, "SyncGroup v0");
    assert_eq!(r.i16(), NONE, "SyncGroup v0 error code");
    assert_eq!(
        r.bytes(),
        assignment(topic),
        "SyncGroup v0: the member's assignment"
    );
    r.end();
}

fn heartbeat(conn: &mut Conn, group: &str, generation: i32, member_id: &str) -> i16 {
    let body = W::default().str(group).i32(generation).str(member_id);
    let mut r = conn.call(HEARTBEAT, 0, body, "Heartbeat v0");
    let error = r.i16();
    r.end();
    error
}

fn leave_group(conn: &mut Conn, group: &str, member_id: &str) -> i16 {
    let body = W::default().str(group).str(member_id);
    let mut r = conn.call(LEAVE_GROUP, 0, body, "LeaveGroup v0");
    let error = r.i16();
    r.end();
    error
}

/// OffsetCommit at `version` (2 or 7) of `(partition, offset, metadata)` for `topic`; returns each
/// partition's error code, in request order.
fn offset_commit(
    conn: &mut Conn,
    version: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    topic: &str,
    offsets: &[(i32, i64, &str)],
) -> Vec<i16> {
    let mut w = W::default().str(group).i32(generation).str(member_id);
    w = match version {
        2 => w.i64(-1),    // retention_time_ms: the broker's default
        7 => w.null_str(), // group_instance_id
        _ => unreachable!(),
    };
    w = w.i32(1).str(topic).i32(offsets.len() as i32);
    for &(partition, offset, metadata) in offsets {
        w = w.i32(partition).i64(offset);
        if version >= 6 {
            w = w.i32(-1); // committed_leader_epoch
        }
        w = w.str(metadata);
    }
    let what = format!("OffsetCommit v{version}");
    let mut r = conn.call(OFFSET_COMMIT, version, w, &what);
    if version >= 3 {
        r.i32(); // throttle_time_ms
    }
    assert_eq!(r.array_len(), 1, "{what}: topics in the response");
    assert_eq!(r.str(), topic, "{what}: topic");
    let count = r.array_len();
    let mut errors = Vec::new();
    for &(partition, _, _) in offsets.iter().take(count) {
        assert_eq!(r.i32(), partition, "{what}: partition order");
        errors.push(r.i16());
    }
    assert_eq!(count, offsets.len(), "{what}: partitions in the response");
    r.end();
    errors
}

/// OffsetFetch v1 of every partition: (offset, metadata length; -1 for null metadata).
fn offset_fetch(conn: &mut Conn, group: &str, topic: &str) -> Vec<(i64, i64)> {
    let mut w = W::default()
        .str(group)
        .i32(1)
        .str(topic)
        .i32(PARTITIONS as i32);
    for p in 0..PARTITIONS as i32 {
        w = w.i32(p);
    }
    let mut r = conn.call(OFFSET_FETCH, 1, w, "OffsetFetch v1");
    assert_eq!(r.array_len(), 1, "OffsetFetch v1: topics");
    assert_eq!(r.str(), topic);
    let count = r.array_len();
    assert_eq!(count, PARTITIONS as usize, "OffsetFetch v1: partitions");
    let mut result = Vec::new();
    for p in 0..PARTITIONS as i32 {
        assert_eq!(r.i32(), p, "OffsetFetch v1: partition order");
        let offset = r.i64();
        let metadata = r.null_str().map_or(-1, |m| m.len() as i64);
        assert_eq!(r.i16(), NONE, "OffsetFetch v1: partition {p} error code");
        result.push((offset, metadata));
    }
    r.end();
    result
}

// ---- the test -----------------------------------------------------------------------------------

/// One refused (or partly refused) OffsetCommit and the per-partition error codes Kafka gives it.
struct Case<'a> {
    what: &'a str,
    group: String,
    generation: i32,
    member: String,
    /// (partition, offset, metadata)
    offsets: Vec<(i32, i64, &'a str)>,
    expected: Vec<i16>,
}

#[test]
fn refused_offset_commits_get_kafkas_errors_and_leave_the_group_working() {
    let broker = Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0));
    let topic = unique_topic("groups-bad-commits");
    let group = format!("{topic}-group");
    let produced = group_produce(&broker, &topic, PARTITIONS, 0, 30, true, &[]);
    let mut conn = Conn::open(&broker);

    // A member that owns every partition; a valid commit at each version.
    let first = join_group(&mut conn, &group, "", &topic);
    assert_eq!(first.leader, first.member_id, "the only member leads");
    sync_group(&mut conn, &group, &first, &topic);
    for version in COMMIT_VERSIONS {
        let errors = offset_commit(
            &mut conn,
            version,
            &group,
            first.generation,
            &first.member_id,
            &topic,
            &[(0, 1, "")],
        );
        assert_eq!(
            errors,
            [NONE],
            "a member's commit with its generation at v{version}"
        );
    }

    // The leader rejoins: a new generation, so `first.generation` is stale.
    let joined = join_group(&mut conn, &group, &first.member_id, &topic);
    assert_eq!(
        joined.member_id, first.member_id,
        "a rejoining member keeps its id"
    );
    assert_eq!(
        joined.generation,
        first.generation + 1,
        "a leader rejoining a Stable group starts a new generation"
    );
    sync_group(&mut conn, &group, &joined, &topic);
    let (generation, member) = (joined.generation, joined.member_id.clone());
    // Kafka answers "no offset" with offset -1 and empty (not null) metadata.
    let mut committed = vec![(1, 0), (-1, 0), (-1, 0)];
    assert_eq!(offset_fetch(&mut conn, &group, &topic), committed);

    let oversized = "x".repeat(4097);
    let at_limit = "y".repeat(4096);
    let cases = vec![
        Case {
            what: "stale generation",
            group: group.clone(),
            generation: first.generation,
            member: member.clone(),
            offsets: vec![(0, 5, "")],
            expected: vec![ILLEGAL_GENERATION],
        },
        Case {
            what: "unknown member id",
            group: group.clone(),
            generation,
            member: "strom-no-such-member".into(),
            offsets: vec![(0, 5, "")],
            expected: vec![UNKNOWN_MEMBER_ID],
        },
        Case {
            // Kafka: with members in the group, only members may commit (UNKNOWN_MEMBER_ID).
            what: "generation -1 and no member id while the group has a member",
            group: group.clone(),
            generation: -1,
            member: String::new(),
            offsets: vec![(0, 5, "")],
            expected: vec![UNKNOWN_MEMBER_ID],
        },
        Case {
            // Kafka: the member is validated, then its generation does not match.
            what: "generation -1 with the member's id",
            group: group.clone(),
            generation: -1,
            member: member.clone(),
            offsets: vec![(0, 5, "")],
            expected: vec![ILLEGAL_GENERATION],
        },
        Case {
            // Kafka before OffsetCommit v9: ILLEGAL_GENERATION (v9+: GROUP_ID_NOT_FOUND).
            what: "a generation for a group that does not exist",
            group: format!("{group}-missing"),
            generation: 3,
            member: "strom-no-such-member".into(),
            offsets: vec![(0, 5, "")],
            expected: vec![ILLEGAL_GENERATION],
        },
        Case {
            // Per partition: 4097 bytes of metadata are refused, 4096 accepted.
            what: "metadata over offset.metadata.max.bytes",
            group: group.clone(),
            generation,
            member: member.clone(),
            offsets: vec![(0, 5, oversized.as_str()), (1, 6, at_limit.as_str())],
            expected: vec![OFFSET_METADATA_TOO_LARGE, NONE],
        },
        Case {
            // Kafka: a partition the topic does not have is refused, the others are stored.
            what: "a partition index the topic does not have",
            group: group.clone(),
            generation,
            member: member.clone(),
            offsets: vec![(PARTITIONS as i32 + 5, 9, ""), (2, 7, "")],
            expected: vec![UNKNOWN_TOPIC_OR_PARTITION, NONE],
        },
    ];
    for Case {
        what,
        group: case_group,
        generation: case_generation,
        member: case_member,
        offsets,
        expected,
    } in &cases
    {
        for version in COMMIT_VERSIONS {
            let errors = offset_commit(
                &mut conn,
                version,
                case_group,
                *case_generation,
                case_member,
                &topic,
                offsets,
            );
            assert_eq!(
                &errors, expected,
                "OffsetCommit v{version}, {what} (generation {case_generation}, member \
                 {case_member:?}): per-partition error codes"
            );
            assert_eq!(
                heartbeat(&mut conn, &group, generation, &member),
                NONE,
                "the member's heartbeat after OffsetCommit v{version} with {what}"
            );
            for (&(p, offset, metadata), &error) in offsets.iter().zip(expected.iter()) {
                if error == NONE && case_group == &group {
                    committed[p as usize] = (offset, metadata.len() as i64);
                }
            }
            assert_eq!(
                offset_fetch(&mut conn, &group, &topic),
                committed,
                "committed (offset, metadata length) per partition after OffsetCommit \
                 v{version} with {what}: only accepted partitions may change"
            );
        }
    }

    // A topic that does not exist: refused, and nothing is stored for it.
    let missing_topic = format!("{topic}-missing");
    for version in COMMIT_VERSIONS {
        let errors = offset_commit(
            &mut conn,
            version,
            &group,
            generation,
            &member,
            &missing_topic,
            &[(0, 11, ""), (1, 12, "")],
        );
        assert_eq!(
            errors,
            [UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_OR_PARTITION],
            "OffsetCommit v{version} to a topic that does not exist"
        );
    }
    assert_eq!(
        offset_fetch(&mut conn, &group, &missing_topic),
        vec![(-1, 0); PARTITIONS as usize],
        "no offset was stored for the topic that does not exist"
    );
    assert_eq!(offset_fetch(&mut conn, &group, &topic), committed);

    // The member still commits normally, then leaves.
    let errors = offset_commit(
        &mut conn,
        7,
        &group,
        generation,
        &member,
        &topic,
        &[(0, 3, ""), (2, 4, "")],
    );
    assert_eq!(
        errors,
        [NONE, NONE],
        "a valid commit after the refused ones"
    );
    assert_eq!(
        leave_group(&mut conn, &group, &member),
        NONE,
        "LeaveGroup v0"
    );

    // A real consumer joins the group and resumes at 3, 6 and 4.
    let start = [3, 6, 4];
    let expected: BTreeSet<(i32, i64)> = produced
        .iter()
        .map(|m| (m.partition, m.offset))
        .filter(|&(p, o)| o >= start[p as usize])
        .collect();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut consumer = GroupMember::spawn(
        GroupClient::Confluent,
        "consumer",
        &broker,
        &topic,
        &group,
        dir.path(),
        &[
            "--commit",
            "manual",
            "--expect",
            &expected.len().to_string(),
        ],
    );
    consumer.finish_ok();
    let read: BTreeSet<(i32, i64)> = consumer.messages.iter().map(|&(p, o, _)| (p, o)).collect();
    assert_eq!(
        read.len(),
        consumer.messages.len(),
        "the consumer read a message twice"
    );
    assert_eq!(
        read, expected,
        "a consumer of the group resumes at the committed offsets {start:?}"
    );
}
