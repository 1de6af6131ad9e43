//! Issue 9: leader elections that depend on configuration, in a 3-broker cluster on a real
//! ZooKeeper.
//! - `unclean.leader.election.enable`: when the only ISR member is dead and only an out-of-sync
//!   replica comes back, off leaves the partition offline (leader -1, LEADER_NOT_AVAILABLE), on
//!   (topic config) elects the out-of-sync replica;
//! - SIGTERM (controlled shutdown): the broker's leaderships move to other ISR members before it
//!   exits.

mod common;

use std::time::Duration;

use common::cluster::{wait_for, Cluster, LEADER_NOT_AVAILABLE, NONE};
use common::{unique_topic, BrokerOpts};

#[test]
fn unclean_election_off_leaves_a_partition_offline_and_on_elects_the_out_of_sync_replica() {
    let mut cluster = Cluster::start(3, BrokerOpts::new());
    let controller = cluster.wait_controller(Duration::from_secs(10), None);
    // The two replicas live on the brokers that are not the controller, so the controller
    // survives and decides. `leader` leads; `follower` is the one that falls out of sync.
    let others: Vec<i32> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != controller)
        .collect();
    let (leader, follower) = (others[0], others[1]);
    let clean = unique_topic("clean");
    let unclean = unique_topic("unclean");
    cluster.create_topic_assigned(controller, &clean, &[vec![leader, follower]], &[]);
    cluster.create_topic_assigned(
        controller,
        &unclean,
        &[vec![leader, follower]],
        &[("unclean.leader.election.enable", "true")],
    );
    let (config, _) = cluster
        .zk()
        .get_json(&format!("/config/topics/{unclean}"))
        .expect("config znode");
    assert_eq!(
        config["config"]["unclean.leader.election.enable"], "true",
        "{config}"
    );

    // The follower dies: it leaves the ISR, the leader stays.
    cluster.broker(follower).kill9();
    let timeout = cluster.session_timeout() + Duration::from_secs(10);
    for topic in [&clean, &unclean] {
        let p = cluster.wait_partition(
            controller,
            topic,
            0,
            timeout,
            "the follower to leave the ISR",
            |p| p.isr == vec![leader],
        );
        assert_eq!(p.leader, leader);
    }
    let epoch_before = cluster
        .partition(controller, &unclean, 0)
        .expect("partition")
        .leader_epoch;

    // The leader dies too: no live ISR member, so both partitions go offline (Kafka keeps the
    // last ISR member recorded).
    cluster.broker(leader).kill9();
    for topic in [&clean, &unclean] {
        let p = cluster.wait_partition(
            controller,
            topic,
            0,
            timeout,
            "the partition to go offline",
            |p| p.leader == -1,
        );
        assert_eq!(
            p.isr,
            vec![leader],
            "{topic}: the ISR keeps its last member"
        );
        assert_eq!(p.error_code, LEADER_NOT_AVAILABLE, "{topic}: {p:?}");
    }

    // Only the out-of-sync replica returns.
    cluster.broker(follower).restart();
    let elected = cluster.wait_partition(
        controller,
        &unclean,
        0,
        Duration::from_secs(20),
        "the out-of-sync replica to be elected (unclean election on)",
        |p| p.leader == follower,
    );
    assert_eq!(elected.isr, vec![follower], "{elected:?}");
    assert_eq!(elected.error_code, NONE);
    assert!(elected.leader_epoch > epoch_before, "{elected:?}");
    let state = cluster.zk().partition_state(&unclean, 0).expect("state");
    assert_eq!(state["leader"], follower, "{state}");

    // Unclean election off: the partition stays offline, everywhere, even after the controller
    // has handled the follower's return (the unclean topic's election proves it has).
    for observer in [controller, follower] {
        let p = wait_for(
            Duration::from_secs(10),
            "the returned broker's view",
            || cluster.partition(observer, &clean, 0),
        );
        assert_eq!(p.leader, -1, "broker {observer}: {p:?}");
        assert_eq!(
            p.error_code, LEADER_NOT_AVAILABLE,
            "broker {observer}: {p:?}"
        );
        assert_eq!(p.isr, vec![leader], "broker {observer}: {p:?}");
    }
    let state = cluster.zk().partition_state(&clean, 0).expect("state");
    assert_eq!(state["leader"], -1, "{state}");
}

#[test]
fn sigterm_moves_leaderships_before_the_broker_exits() {
    let opts = BrokerOpts::new().set("auto.leader.rebalance.enable", "false");
    let mut cluster = Cluster::start(3, opts);
    let topic = unique_topic("ctrl-shutdown");
    cluster.create_topic(1, &topic, 6, 3, &[]);
    let controller = cluster.wait_controller(Duration::from_secs(10), None);
    let victim = if controller == 3 { 2 } else { 3 };
    let before = cluster.metadata(controller, Some(&[&topic]));
    let before = before.topic(&topic).expect("topic").partitions.clone();
    assert_eq!(before.values().filter(|p| p.leader == victim).count(), 2);

    // SIGTERM: exit code 0, and by the time the process is gone its leaderships have moved.
    cluster.broker(victim).stop_clean();
    let states = cluster.states_in_zk(&topic, 6);
    for (index, (leader, leader_epoch, isr, _)) in states.iter().enumerate() {
        let old = &before[&(index as i32)];
        assert_ne!(
            *leader, victim,
            "{index}: still led by the stopped broker: {states:?}"
        );
        assert!(
            !isr.contains(&victim),
            "{index}: the stopped broker left the ISR: {states:?}"
        );
        if old.leader == victim {
            let expected = *old
                .replicas
                .iter()
                .find(|r| **r != victim)
                .expect("another replica");
            assert_eq!(
                *leader, expected,
                "{index}: first other ISR member in replica order"
            );
            assert!(*leader_epoch > old.leader_epoch, "{index}: epoch bumped");
        } else {
            assert_eq!(*leader, old.leader, "{index}: untouched");
        }
    }
    // The remaining brokers serve the new leaders right away: within the moment their watches
    // take, far below a session timeout.
    for observer in cluster.live_ids() {
        wait_for(Duration::from_secs(2), "the survivors' Metadata", || {
            let md = common::cluster::fetch_metadata(cluster.addr(observer), Some(&[&topic]))?;
            let leaders: Vec<i32> = md
                .topic(&topic)?
                .partitions
                .values()
                .map(|p| p.leader)
                .collect();
            let expected: Vec<i32> = states.iter().map(|s| s.0).collect();
            if leaders == expected {
                Ok(())
            } else {
                Err(format!(
                    "broker {observer} shows leaders {leaders:?}, ZooKeeper {expected:?}"
                ))
            }
        });
    }
    let log = cluster.broker(victim).log();
    assert!(
        log.contains("controlled shutdown"),
        "the broker logged its controlled shutdown:\n{log}"
    );
}
