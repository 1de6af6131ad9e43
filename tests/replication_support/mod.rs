//! Shared pieces of the issue-10 replication tests (tests/replication_*.rs): the confluent-kafka
//! client script tests/clients/replication_clients.py, and waits on a partition's leader and ISR
//! as Metadata and ZooKeeper show them.
//!
//! Every record the scripts write has key "SEQ" and value "v-SEQ", so what a consumer reads can be
//! matched with what a producer's delivery reports acknowledged.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::cluster::{json_ids, wait_for, Cluster, PartitionMeta};
use crate::common::{python_client, CmdOutput, CLIENT_TIMEOUT};

pub const SCRIPT: &str = "replication_clients.py";
/// `replica.lag.time.max.ms` of the tests that wait for a follower to leave the ISR: short, so
/// the tests stay short.
pub const LAG_TIME_MAX_MS: u64 = 3000;
/// Slack on top of a deadline the broker promises (session timeout, lag time) for a loaded
/// 2-core CI machine.
pub const SLACK: Duration = Duration::from_secs(10);

/// One record a producer's delivery report acknowledged: (sequence, partition, offset).
pub type Acked = (u64, i32, i64);
/// One record a consumer read: (partition, offset, key, value).
pub type Read = (i32, i64, String, String);

pub fn run_client(args: &[String]) -> CmdOutput {
    let out = python_client(SCRIPT, args, CLIENT_TIMEOUT);
    out.assert_success();
    out
}

fn as_i64(value: &serde_json::Value, what: &str) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("{what} is not an integer: {value}"))
}

/// The `acked` list of a producer result.
pub fn parse_acked(result: &serde_json::Value) -> Vec<Acked> {
    result["acked"]
        .as_array()
        .unwrap_or_else(|| panic!("no acked list in {result}"))
        .iter()
        .map(|a| {
            (
                as_i64(&a[0], "seq") as u64,
                as_i64(&a[1], "partition") as i32,
                as_i64(&a[2], "offset"),
            )
        })
        .collect()
}

/// What a plain producer (`retries=0`) got for `count` records to `partition` with `acks`:
/// the acknowledged records and the errors by name.
pub fn produce(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    acks: &str,
    count: u64,
    first_seq: u64,
) -> (Vec<Acked>, BTreeMap<String, u64>) {
    let out = run_client(&[
        "produce".into(),
        bootstrap.into(),
        topic.into(),
        partition.to_string(),
        acks.into(),
        count.to_string(),
        first_seq.to_string(),
    ]);
    let result = out.result_json();
    let errors = result["errors"]
        .as_object()
        .unwrap_or_else(|| panic!("no errors object in {result}"))
        .iter()
        .map(|(name, n)| (name.clone(), as_i64(n, "error count") as u64))
        .collect();
    (parse_acked(&result), errors)
}

/// Every record of `topic` from the beginning up to each partition's high watermark (what the
/// broker answers ListOffsets(latest) with), and those high watermarks.
pub fn consume_all(bootstrap: &str, topic: &str) -> (Vec<Read>, BTreeMap<i32, i64>) {
    let out = run_client(&["consume".into(), bootstrap.into(), topic.into()]);
    let result = out.result_json();
    let records = result["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records in {result}"))
        .iter()
        .map(|r| {
            (
                as_i64(&r[0], "partition") as i32,
                as_i64(&r[1], "offset"),
                r[2].as_str().expect("key").to_string(),
                r[3].as_str().expect("value").to_string(),
            )
        })
        .collect();
    let high = result["high_watermarks"]
        .as_object()
        .unwrap_or_else(|| panic!("no high_watermarks in {result}"))
        .iter()
        .map(|(p, o)| (p.parse().expect("partition"), as_i64(o, "high watermark")))
        .collect();
    (records, high)
}

/// Asserts each record's value matches its key ("v-SEQ" for key "SEQ").
pub fn assert_intact(records: &[Read]) {
    for (p, o, key, value) in records {
        assert_eq!(
            value,
            &format!("v-{key}"),
            "record {p}@{o} carries key {key} with value {value}"
        );
    }
}

/// The ISR of `topic`-`partition` in its ZooKeeper state znode.
pub fn isr_in_zk(cluster: &mut Cluster, topic: &str, partition: i32) -> Vec<i32> {
    let state = cluster
        .zk()
        .partition_state(topic, partition)
        .unwrap_or_else(|| panic!("no state znode for {topic}-{partition}"));
    json_ids(&state["isr"], "isr")
}

/// Waits until broker `observer`'s Metadata and the state znode both show `isr` (sorted) for
/// `topic`-`partition`; returns the Metadata view.
pub fn wait_isr(
    cluster: &mut Cluster,
    observer: i32,
    topic: &str,
    partition: i32,
    isr: &[i32],
    timeout: Duration,
) -> PartitionMeta {
    let mut want = isr.to_vec();
    want.sort_unstable();
    let addr = cluster.addr(observer);
    wait_for(
        timeout,
        &format!("{topic}-{partition}'s ISR to be {want:?}"),
        || {
            let md = crate::common::cluster::fetch_metadata(addr, Some(&[topic]))?;
            let p = md.partition(topic, partition)?;
            let mut seen = p.isr.clone();
            seen.sort_unstable();
            let mut in_zk = isr_in_zk(cluster, topic, partition);
            in_zk.sort_unstable();
            if seen == want && in_zk == want {
                Ok(p)
            } else {
                Err(format!(
                    "broker {observer} shows {p:?}; the state znode's ISR is {in_zk:?}"
                ))
            }
        },
    )
}

/// Waits until broker `observer` names a leader of `topic`-`partition` other than `not`, with
/// that broker in the ISR; returns the Metadata view.
pub fn wait_new_leader(
    cluster: &Cluster,
    observer: i32,
    topic: &str,
    partition: i32,
    not: i32,
    timeout: Duration,
) -> PartitionMeta {
    cluster.wait_partition(
        observer,
        topic,
        partition,
        timeout,
        &format!("a leader of {topic}-{partition} other than broker {not}"),
        |p| p.leader >= 0 && p.leader != not && p.isr.contains(&p.leader),
    )
}

/// The leader of `topic`-`partition` as broker `observer` sees it.
pub fn leader_of(cluster: &Cluster, observer: i32, topic: &str, partition: i32) -> PartitionMeta {
    cluster
        .partition(observer, topic, partition)
        .unwrap_or_else(|e| panic!("{topic}-{partition} on broker {observer}: {e}"))
}

/// Broker ids of a 3-broker cluster other than `id`.
pub fn others(id: i32) -> Vec<i32> {
    (1..=3).filter(|b| *b != id).collect()
}

/// Kafka's default `replica.fetch.wait.max.ms`, which the brokers under test keep.
pub const REPLICA_FETCH_WAIT_MAX: Duration = Duration::from_millis(500);

/// After SIGSTOP of a follower: waits until the long-poll fetch it had at the leader when it
/// froze has been answered (empty, at `replica.fetch.wait.max.ms`). A record appended before that
/// would be sent to the frozen follower's socket and copied the moment it is thawed; after it,
/// the frozen follower has no fetch outstanding and copies nothing.
pub fn let_pending_fetches_expire() {
    std::thread::sleep(REPLICA_FETCH_WAIT_MAX * 3);
}
