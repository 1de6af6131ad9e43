//! Issue 10, groups across failover: three `strom` brokers on a real ZooKeeper with
//! offsets.topic.replication.factor=3, so `__consumer_offsets` is replicated. A confluent-kafka
//! group member reads part of a topic and commits; the group coordinator's broker is killed
//! (`kill -9`); FindCoordinator names another broker, the committed offsets are still there, and
//! the group goes on from them: every record is consumed exactly once over the two runs.

mod common;
mod replication_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{exchange, wait_for, Cluster, NONE};
use common::{python_client, unique_topic, BrokerOpts, CLIENT_TIMEOUT};
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use replication_support::*;

const PARTITIONS: i32 = 2;
const PER_PARTITION: u64 = 50;
const FIRST_RUN: u64 = 60;

/// FindCoordinator v3 for `group` through the broker at `addr`: the coordinator's id, or the
/// error (COORDINATOR_NOT_AVAILABLE while `__consumer_offsets` is being created or moved).
fn find_coordinator(addr: SocketAddr, group: &str) -> Result<i32, String> {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let response: FindCoordinatorResponse = exchange(addr, ApiKey::FindCoordinator, 3, &request)?;
    if response.error_code == NONE {
        Ok(response.node_id.0)
    } else {
        Err(format!("FindCoordinator error {}", response.error_code))
    }
}

/// Keys read by a group-consume run, and the offsets it committed.
fn group_consume(bootstrap: &str, topic: &str, group: &str, count: u64) -> Vec<(i32, i64, u64)> {
    let out = run_client(&[
        "group-consume".into(),
        bootstrap.into(),
        topic.into(),
        group.into(),
        count.to_string(),
    ]);
    let result = out.result_json();
    result["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records in {result}"))
        .iter()
        .map(|r| {
            (
                r[0].as_i64().expect("partition") as i32,
                r[1].as_i64().expect("offset"),
                r[2].as_str()
                    .and_then(|k| k.parse().ok())
                    .expect("numeric key"),
            )
        })
        .collect()
}

/// The group's committed offsets as its coordinator answers (`None` if the client failed, e.g.
/// while the new coordinator loads).
fn committed(bootstrap: &str, topic: &str, group: &str) -> Result<serde_json::Value, String> {
    let out = python_client(
        SCRIPT,
        &[
            "committed".into(),
            bootstrap.into(),
            topic.into(),
            group.into(),
            PARTITIONS.to_string(),
        ],
        CLIENT_TIMEOUT,
    );
    if out.status.success() {
        Ok(out.result_json()["committed"].clone())
    } else {
        Err(out.stderr_str())
    }
}

#[test]
fn committed_offsets_survive_the_coordinators_death_and_the_group_goes_on() {
    let opts = BrokerOpts::new()
        .set("auto.leader.rebalance.enable", "false")
        .set("offsets.topic.replication.factor", 3)
        .set("offsets.topic.num.partitions", 3)
        .set("replica.lag.time.max.ms", LAG_TIME_MAX_MS);
    let mut cluster = Cluster::start(3, opts);
    let topic = unique_topic("repl-groups");
    let group = format!("{topic}-group");
    cluster.create_topic(1, &topic, PARTITIONS, 3, &[]);
    for p in 0..PARTITIONS {
        let first = p as u64 * 1000;
        let (acked, errors) = produce(
            &cluster.bootstrap(1),
            &topic,
            p,
            "all",
            PER_PARTITION,
            first,
        );
        assert_eq!(
            (acked.len() as u64, errors.len()),
            (PER_PARTITION, 0),
            "{errors:?}"
        );
    }

    let coordinator = wait_for(Duration::from_secs(30), "a group coordinator", || {
        find_coordinator(cluster.addr(1), &group)
    });
    let first = group_consume(&cluster.bootstrap_all(), &topic, &group, FIRST_RUN);
    assert_eq!(first.len() as u64, FIRST_RUN);
    let committed_before = committed(&cluster.bootstrap_all(), &topic, &group)
        .unwrap_or_else(|e| panic!("committed offsets before the failover: {e}"));
    let read_before: u64 = committed_before
        .as_object()
        .expect("committed object")
        .values()
        .map(|o| o.as_u64().expect("offset"))
        .sum();
    assert_eq!(
        read_before, FIRST_RUN,
        "commits cover the first run: {committed_before}"
    );
    // The offsets partition is replicated to every broker before its leader dies.
    let offsets_partitions = cluster
        .metadata(1, Some(&["__consumer_offsets"]))
        .topic("__consumer_offsets")
        .expect("__consumer_offsets exists")
        .partitions
        .len() as i32;
    for p in 0..offsets_partitions {
        wait_isr(&mut cluster, 1, "__consumer_offsets", p, &[1, 2, 3], SLACK);
    }

    cluster.broker(coordinator).kill9();
    let survivors = others(coordinator);
    let survivor_bootstrap = survivors
        .iter()
        .map(|id| cluster.bootstrap(*id))
        .collect::<Vec<_>>()
        .join(",");
    let new_coordinator = wait_for(
        cluster.session_timeout() + SLACK,
        "another broker to coordinate the group",
        || match find_coordinator(cluster.addr(survivors[0]), &group)? {
            id if id == coordinator => Err(format!("still broker {id}")),
            id => Ok(id),
        },
    );
    assert!(survivors.contains(&new_coordinator));
    let committed_after = wait_for(
        Duration::from_secs(30),
        "the new coordinator to answer the committed offsets",
        || committed(&survivor_bootstrap, &topic, &group),
    );
    assert_eq!(
        committed_after, committed_before,
        "commits survive the coordinator"
    );

    let second = group_consume(
        &survivor_bootstrap,
        &topic,
        &group,
        2 * PER_PARTITION - FIRST_RUN,
    );
    let mut keys = BTreeSet::new();
    for (p, o, key) in first.iter().chain(&second) {
        assert!(keys.insert(*key), "record {key} ({p}@{o}) consumed twice");
    }
    let expected: BTreeSet<u64> = (0..PARTITIONS as u64)
        .flat_map(|p| (p * 1000)..(p * 1000 + PER_PARTITION))
        .collect();
    assert_eq!(keys, expected, "every record consumed exactly once");
}
