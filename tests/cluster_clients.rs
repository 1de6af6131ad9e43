//! Issue 9: real clients against a 3-broker cluster on a real ZooKeeper.
//! - confluent-kafka's and kafka-python's AdminClient create topics and see the same brokers,
//!   controller, leaders, replicas and ISR as Metadata on the wire;
//! - a kafka-python producer whose metadata went stale (a leader moved) gets
//!   NOT_LEADER_OR_FOLLOWER, refreshes, and every message lands and reads back;
//! - a request to a replica that does not lead answers NOT_LEADER_OR_FOLLOWER.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::cluster::{wait_for, Cluster, NOT_LEADER_OR_FOLLOWER};
use common::kafka_wire::Connection;
use common::{
    args, json_u64, python_client, python_client_background, unique_topic, BrokerOpts,
    CLIENT_TIMEOUT,
};

/// A client's view as cluster_clients.py prints it, in the wire's terms.
fn client_partitions(
    view: &serde_json::Value,
    topic: &str,
) -> BTreeMap<i32, (i32, Vec<i32>, Vec<i32>)> {
    let ids = |v: &serde_json::Value| -> Vec<i32> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|b| b.as_i64().expect("id") as i32)
            .collect()
    };
    view["topics"][topic]
        .as_object()
        .unwrap_or_else(|| panic!("no {topic} in {view}"))
        .iter()
        .map(|(p, m)| {
            (
                p.parse().expect("partition"),
                (
                    m["leader"].as_i64().expect("leader") as i32,
                    ids(&m["replicas"]),
                    ids(&m["isr"]),
                ),
            )
        })
        .collect()
}

#[test]
fn admin_clients_see_what_the_cluster_says() {
    let mut cluster = Cluster::start(3, BrokerOpts::new());
    let topic = unique_topic("admin");
    let out = python_client(
        "cluster_clients.py",
        &args([
            "admin",
            "--bootstrap",
            &cluster.bootstrap(2),
            "--topic",
            &topic,
            "--partitions",
            "6",
            "--rf",
            "3",
        ]),
        CLIENT_TIMEOUT,
    );
    out.assert_success();
    let result = out.result_json();
    let kp_topic = format!("{topic}-kp");
    let controller = cluster.wait_controller(Duration::from_secs(10), None);
    let expected_brokers: Vec<serde_json::Value> = cluster
        .ids()
        .into_iter()
        .map(|id| serde_json::json!([id, "127.0.0.1", cluster.broker(id).port()]))
        .collect();
    for client in ["confluent", "kafka_python"] {
        let view = &result[client];
        assert_eq!(
            view["brokers"],
            serde_json::Value::from(expected_brokers.clone()),
            "{client}: {view}"
        );
        assert_eq!(view["controller"], controller, "{client}: {view}");
        for t in [&topic, &kp_topic] {
            let md = cluster.metadata(1, Some(&[t]));
            let wire: BTreeMap<i32, (i32, Vec<i32>, Vec<i32>)> = md
                .topic(t)
                .expect("topic")
                .partitions
                .iter()
                .map(|(p, m)| (*p, (m.leader, m.replicas.clone(), m.isr.clone())))
                .collect();
            assert_eq!(client_partitions(view, t), wire, "{client} on {t}");
            assert_eq!(wire.len(), 6);
            assert!(
                wire.values().all(|(_, replicas, _)| replicas.len() == 3),
                "{wire:?}"
            );
            assert_eq!(
                md.leader_counts(t),
                BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
                "{client} created {t} with leaders spread"
            );
        }
    }
}

#[test]
fn a_producer_with_stale_metadata_follows_the_moved_leader() {
    let mut cluster = Cluster::start(
        3,
        BrokerOpts::new().set("auto.leader.rebalance.enable", "false"),
    );
    let topic = unique_topic("stale");
    cluster.create_topic(1, &topic, 3, 3, &[]);
    let controller = cluster.wait_controller(Duration::from_secs(10), None);
    let victim = if controller == 3 { 2 } else { 3 };
    let md = cluster.metadata(1, Some(&[&topic]));
    let (moved, led) = md
        .topic(&topic)
        .expect("topic")
        .partitions
        .iter()
        .find(|(_, p)| p.leader == victim)
        .map(|(i, p)| (*i, p.clone()))
        .expect("the victim leads a partition");

    // On the wire: a replica that does not lead refuses a produce with NOT_LEADER_OR_FOLLOWER.
    let follower = *led
        .replicas
        .iter()
        .find(|r| **r != victim)
        .expect("a follower");
    let follower_broker = cluster.broker(follower);
    let (code, _) = Connection::open(follower_broker).produce(&topic, moved, one_record_batch());
    assert_eq!(
        code, NOT_LEADER_OR_FOLLOWER,
        "produce to follower {follower} of {topic}-{moved}"
    );

    let scratch = tempfile::tempdir().expect("temporary directory");
    let go_file = scratch.path().join("go");
    let mut producer = python_client_background(
        "cluster_clients.py",
        &args([
            "stale-producer",
            "--bootstrap",
            &cluster.bootstrap(controller),
            "--topic",
            &topic,
            "--count",
            "20",
            "--go-file",
            &go_file.display().to_string(),
        ]),
        CLIENT_TIMEOUT,
    );
    producer.wait_for_line(Duration::from_secs(60), |line| line.contains("\"ready\""));

    // Move the leadership away and bring the old leader back as a follower on the same address:
    // the producer's cached metadata still names it.
    cluster.broker(victim).kill9();
    cluster.wait_partition(
        controller,
        &topic,
        moved,
        cluster.session_timeout() + Duration::from_secs(10),
        "the leadership to move",
        |p| p.leader >= 0 && p.leader != victim,
    );
    cluster.broker(victim).restart();
    wait_for(
        Duration::from_secs(20),
        "the old leader to be back as a follower",
        || {
            let p = cluster.partition(victim, &topic, moved)?;
            if p.leader != victim && p.leader >= 0 && p.offline.is_empty() {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        },
    );
    std::fs::write(&go_file, b"go").expect("write go file");
    let out = producer.finish();
    out.assert_success();
    let result = out.result_json();
    common::assert_no_errors(&result);
    assert_eq!(json_u64(&result, "acked"), 60, "{result}");
    assert_eq!(json_u64(&result, "consumed"), 60, "{result}");
}

/// One record batch (magic 2) of one small record.
fn one_record_batch() -> Vec<u8> {
    strom_engine::batch::build::build_batch(0, 1, 10, 1_700_000_000_000, -1, -1, -1)
}
