//! Issue 9: three `strom` brokers on a real ZooKeeper form one cluster, agree on it, write Kafka
//! 2.8's znodes, and place an RF=3 topic on distinct brokers with leaders spread. Also the two
//! refusals at start: a `broker.id` held by a live broker, and a log dir of another cluster.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::cluster::{describe_cluster, json_ids, Cluster};
use common::{run, strom_bin, unique_topic, BrokerOpts};

#[test]
fn three_brokers_form_a_cluster_and_spread_an_rf3_topic() {
    let mut cluster = Cluster::start(3, BrokerOpts::new());
    let ids = cluster.ids();

    // Every broker lists the same three brokers (at their ports) and the same controller, through
    // Metadata and DescribeCluster.
    let controller = cluster.metadata(1, Some(&[])).controller_id;
    assert!(
        ids.contains(&controller),
        "controller {controller} is not a broker"
    );
    let (cluster_id_json, _) = cluster.zk().get_json("/cluster/id").expect("/cluster/id");
    let cluster_id = cluster_id_json["id"]
        .as_str()
        .expect("/cluster/id has an id")
        .to_string();
    for id in &ids {
        let md = cluster.metadata(*id, Some(&[]));
        let expected: BTreeMap<i32, (String, i32)> = ids
            .iter()
            .map(|b| {
                (
                    *b,
                    (
                        "127.0.0.1".to_string(),
                        i32::from(cluster.broker(*b).port()),
                    ),
                )
            })
            .collect();
        assert_eq!(md.brokers, expected, "Metadata brokers from broker {id}");
        assert_eq!(
            md.controller_id, controller,
            "Metadata controller from broker {id}"
        );
        assert_eq!(md.cluster_id.as_deref(), Some(cluster_id.as_str()));
        let (dc_controller, dc_brokers, dc_cluster) =
            describe_cluster(cluster.addr(*id)).expect("DescribeCluster");
        assert_eq!(
            (dc_controller, dc_brokers, dc_cluster),
            (controller, ids.clone(), cluster_id.clone())
        );
    }

    // ZooKeeper holds Kafka 2.8's registration of each broker, ephemeral, with its endpoint.
    assert_eq!(cluster.zk().children("/brokers/ids"), vec!["1", "2", "3"]);
    for id in &ids {
        let port = cluster.broker(*id).port();
        let (json, stat) = cluster
            .zk()
            .get_json(&format!("/brokers/ids/{id}"))
            .expect("registration");
        assert!(
            stat.ephemeral_owner.is_some(),
            "/brokers/ids/{id} must be ephemeral"
        );
        assert_eq!(
            json["endpoints"],
            serde_json::json!([format!("PLAINTEXT://127.0.0.1:{port}")]),
            "{json}"
        );
        assert_eq!(json["host"], "127.0.0.1", "{json}");
        assert_eq!(json["port"], i64::from(port), "{json}");
        assert_eq!(json["version"], 5, "{json}");
        let timestamp: i64 = json["timestamp"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("timestamp is a decimal string in {json}"));
        assert!(timestamp > 1_600_000_000_000, "timestamp in ms: {json}");
    }

    // One controller: the ephemeral /controller names the broker Metadata names, and
    // /controller_epoch has been bumped by its election.
    let (json, stat) = cluster.zk().get_json("/controller").expect("/controller");
    assert!(
        stat.ephemeral_owner.is_some(),
        "/controller must be ephemeral"
    );
    assert_eq!(json["brokerid"], controller, "{json}");
    assert_eq!(json["version"], 1, "{json}");
    let (controller_epoch, _) = cluster.controller_epoch_in_zk();
    assert!(controller_epoch >= 1, "controller epoch {controller_epoch}");

    // An RF=3 topic of 6 partitions created through a broker that is (usually) not the
    // controller.
    let topic = unique_topic("rf3");
    let via = if controller == 2 { 3 } else { 2 };
    cluster.create_topic(via, &topic, 6, 3, &[]);
    let md = cluster.metadata(1, Some(&[&topic]));
    let partitions = &md.topic(&topic).expect("topic").partitions;
    assert_eq!(partitions.len(), 6);
    for (index, p) in partitions {
        let distinct: BTreeSet<i32> = p.replicas.iter().copied().collect();
        assert_eq!(
            distinct,
            BTreeSet::from([1, 2, 3]),
            "partition {index}: {p:?}"
        );
        assert_eq!(
            p.leader, p.replicas[0],
            "the preferred replica leads {index}: {p:?}"
        );
        let isr: BTreeSet<i32> = p.isr.iter().copied().collect();
        assert_eq!(
            isr, distinct,
            "a new partition's ISR is every live replica: {p:?}"
        );
        assert!(p.offline.is_empty(), "{p:?}");
    }
    assert_eq!(
        md.leader_counts(&topic),
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "leaders spread evenly: {partitions:?}"
    );
    // Followers spread too: no two partitions with the same leader have the same replica list
    // (the rack-unaware algorithm shifts followers).
    let lists: BTreeSet<&Vec<i32>> = partitions.values().map(|p| &p.replicas).collect();
    assert_eq!(lists.len(), 6, "replica lists: {partitions:?}");

    // Every broker shows the same partitions.
    for id in &ids {
        let other = cluster.metadata(*id, Some(&[&topic]));
        assert_eq!(
            &other.topic(&topic).expect("topic").partitions,
            partitions,
            "broker {id}"
        );
    }

    // The assignment and state znodes carry Kafka 2.8's JSON, matching Metadata.
    let (assignment, _) = cluster
        .zk()
        .get_json(&format!("/brokers/topics/{topic}"))
        .expect("assignment znode");
    assert_eq!(assignment["version"], 3, "{assignment}");
    assert!(
        assignment["topic_id"]
            .as_str()
            .is_some_and(|id| id.len() == 22),
        "base64 topic id: {assignment}"
    );
    for (index, p) in partitions {
        assert_eq!(
            json_ids(&assignment["partitions"][index.to_string()], "assignment"),
            p.replicas,
            "{assignment}"
        );
        let state = cluster
            .zk()
            .partition_state(&topic, *index)
            .expect("state znode");
        assert_eq!(state["version"], 1, "{state}");
        assert_eq!(state["leader"], p.leader, "{state}");
        assert_eq!(state["leader_epoch"], p.leader_epoch, "{state}");
        assert_eq!(json_ids(&state["isr"], "isr"), p.isr, "{state}");
        assert_eq!(state["controller_epoch"], controller_epoch, "{state}");
    }
    let (config, _) = cluster
        .zk()
        .get_json(&format!("/config/topics/{topic}"))
        .expect("config znode");
    assert_eq!(config["version"], 1, "{config}");
    assert!(config["config"].is_object(), "{config}");

    // Each broker opened exactly the replicas assigned to it: all six here.
    for id in &ids {
        for index in 0..6 {
            assert!(
                cluster.replica_dir(*id, &topic, index).is_dir(),
                "broker {id} has no directory for {topic}-{index}"
            );
        }
    }
}

/// Runs `strom broker start` expecting it to refuse to start; returns what it printed.
fn start_expecting_refusal(args: &[String], timeout: Duration) -> String {
    let mut cmd = Command::new(strom_bin());
    cmd.args(["broker", "start"]);
    for arg in args {
        cmd.arg("--override").arg(arg);
    }
    let out = run(cmd, None, timeout);
    assert!(
        !out.status.success(),
        "strom must refuse to start, but exited with {}\n{}{}",
        out.status,
        out.stdout_str(),
        out.stderr_str()
    );
    format!("{}{}", out.stdout_str(), out.stderr_str())
}

#[test]
fn a_taken_broker_id_and_a_foreign_log_dir_refuse_to_start() {
    let mut cluster = Cluster::start(1, BrokerOpts::new());
    let scratch = tempfile::tempdir().expect("temporary directory");
    let port = common::pick_free_port();

    // broker.id 1 is held by the live broker: the newcomer waits out one session timeout (a
    // restarted broker's own old registration would vanish by then), then refuses.
    let fresh_dir = scratch.path().join("fresh");
    std::fs::create_dir_all(&fresh_dir).expect("create log dir");
    let connect = cluster.zookeeper_connect();
    let opts = |log_dir: &std::path::Path, id: i32| -> Vec<String> {
        vec![
            format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
            // Off: a refused start must fail for the reason under test, not the admin port.
            "admin.listeners=".to_string(),
            format!("log.dirs={}", log_dir.display()),
            format!("broker.id={id}"),
            format!("zookeeper.connect={connect}"),
            "zookeeper.session.timeout.ms=6000".to_string(),
        ]
    };
    let output = start_expecting_refusal(&opts(&fresh_dir, 1), Duration::from_secs(40));
    assert!(
        output.contains("broker.id 1 is already registered by a live broker"),
        "the refusal names the reason:\n{output}"
    );
    // The live broker was not disturbed.
    let (json, _) = cluster
        .zk()
        .get_json("/brokers/ids/1")
        .expect("registration");
    assert_eq!(json["port"], i64::from(cluster.broker(1).port()));
    assert!(cluster.broker(1).is_running());

    // A log dir whose meta.properties names another cluster.
    let foreign_dir = scratch.path().join("foreign");
    std::fs::create_dir_all(&foreign_dir).expect("create log dir");
    std::fs::write(
        foreign_dir.join("meta.properties"),
        "version=0\nbroker.id=2\ncluster.id=AnotherClusterIdAAAAAA\n",
    )
    .expect("write meta.properties");
    let output = start_expecting_refusal(&opts(&foreign_dir, 2), Duration::from_secs(40));
    assert!(
        output.contains("belongs to cluster AnotherClusterIdAAAAAA"),
        "the refusal names the reason:\n{output}"
    );
    assert_eq!(
        cluster.zk().children("/brokers/ids"),
        vec!["1"],
        "nothing registered"
    );
}
