//! `strom topic reassign --plan/--execute/--verify` and `strom cluster rebalance` against a real
//! three-broker cluster on ZooKeeper.

mod common;
mod tools_support;

use std::time::Duration;

use common::cluster::{wait_for, Cluster};
use common::{unique_topic, BrokerOpts};
use tools_support::*;

const SLACK: Duration = Duration::from_secs(30);

fn sorted_replicas(cluster: &Cluster, topic: &str, partition: i32) -> Result<Vec<i32>, String> {
    let mut replicas = cluster.partition(1, topic, partition)?.replicas;
    replicas.sort_unstable();
    Ok(replicas)
}

#[test]
fn plan_execute_verify_then_rebalance() {
    let mut cluster = Cluster::start(3, BrokerOpts::new());
    let topic = unique_topic("tools-reassign");
    cluster.create_topic_assigned(1, &topic, &[vec![1, 2], vec![2, 1]], &[]);
    let bootstrap = cluster.bootstrap_all();
    let dir = tempfile::tempdir().expect("temp dir");
    let plan_path = dir.path().join("plan.json");
    let plan_file = plan_path.to_str().expect("utf-8 path");

    let out = strom_raw(&[
        "topic",
        "reassign",
        "--brokers",
        &bootstrap,
        "--plan",
        plan_file,
        "--topics",
        &topic,
        "--broker-list",
        "2,3",
    ]);
    out.assert_success();
    let plan: serde_json::Value =
        serde_json::from_str(out.stdout_str().trim()).expect("the plan is JSON");
    assert_eq!(plan["version"], 1);
    let partitions = plan["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 2, "{plan}");
    for p in partitions {
        let mut replicas: Vec<i64> = p["replicas"]
            .as_array()
            .expect("replicas")
            .iter()
            .map(|b| b.as_i64().expect("id"))
            .collect();
        replicas.sort_unstable();
        assert_eq!(replicas, vec![2, 3], "{plan}");
    }
    let written = std::fs::read_to_string(&plan_path).expect("plan file");
    assert_eq!(written.trim(), out.stdout_str().trim());

    strom_raw(&[
        "topic",
        "reassign",
        "--brokers",
        &bootstrap,
        "--execute",
        plan_file,
    ])
    .assert_success();
    wait_for(SLACK, "--verify to report every partition complete", || {
        let out = strom_raw(&[
            "topic",
            "reassign",
            "--brokers",
            &bootstrap,
            "--verify",
            plan_file,
        ]);
        match out.status.code() {
            Some(0) => Ok(()),
            Some(2) => Err(out.stdout_str()),
            other => panic!("--verify exited with {other:?}: {}", out.stderr_str()),
        }
    });
    for p in 0..2 {
        wait_for(SLACK, "broker 1 to see the new replicas", || {
            let replicas = sorted_replicas(&cluster, &topic, p)?;
            if replicas == vec![2, 3] {
                Ok(())
            } else {
                Err(format!("{topic}-{p} on {replicas:?}"))
            }
        });
    }

    // Broker 1 now holds nothing: rebalance spreads the topic over all three again.
    let out = strom_raw(&["cluster", "rebalance", "--brokers", &bootstrap, "--execute"]);
    out.assert_success();
    let first_line = out
        .stdout_str()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let proposed: serde_json::Value = serde_json::from_str(&first_line).expect("plan JSON");
    assert!(
        !proposed["partitions"]
            .as_array()
            .expect("partitions")
            .is_empty(),
        "{proposed}"
    );
    wait_for(
        SLACK,
        "a balanced cluster (an empty rebalance plan)",
        || {
            let out = strom_raw(&["cluster", "rebalance", "--brokers", &bootstrap]);
            out.assert_success();
            let plan: serde_json::Value =
                serde_json::from_str(out.stdout_str().trim()).map_err(|e| e.to_string())?;
            let in_use: std::collections::BTreeSet<i32> = (0..2)
                .flat_map(|p| sorted_replicas(&cluster, &topic, p).unwrap_or_default())
                .collect();
            if plan["partitions"].as_array().is_some_and(|p| p.is_empty()) && in_use.contains(&1) {
                Ok(())
            } else {
                Err(format!("plan {plan}; replicas on {in_use:?}"))
            }
        },
    );
}
