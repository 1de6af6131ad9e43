//! Issue 9: failures in a 3-broker cluster on a real ZooKeeper.
//! - `kill -9` of a leader's broker: its partitions move to the next live ISR replica in
//!   assigned-replica order with a bumped leader epoch, within the session timeout plus a few
//!   seconds; it leaves every ISR; restarted, it is a follower;
//! - `kill -9` of the controller: another broker becomes controller with a higher epoch;
//! - a controller frozen (SIGSTOP) past its session is deposed; when it wakes up it stands down,
//!   and nothing it writes late survives: every state znode keeps the new controller's epoch;
//! - a broker frozen past its session rejoins under a new broker epoch and no longer leads.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{
    elect_preferred_leaders, wait_for, Cluster, PartitionMeta, ELECTION_NOT_NEEDED, NONE,
    NOT_LEADER_OR_FOLLOWER,
};
use common::kafka_wire::Connection;
use common::{unique_topic, BrokerOpts};
use strom_server::coordination::{CoordinationError, MultiOp};

/// "A few seconds" on top of the session timeout for a failover: the controller's reaction and
/// the brokers' reading of its decision, on a loaded CI machine.
const FAILOVER_SLACK: Duration = Duration::from_secs(8);

/// The leader the controller must pick when `dead` dies: the first replica in assigned order
/// that is not `dead` and was in the ISR.
fn next_leader(before: &PartitionMeta, dead: i32) -> i32 {
    *before
        .replicas
        .iter()
        .find(|r| **r != dead && before.isr.contains(r))
        .expect("another ISR member")
}

#[test]
fn a_killed_leader_is_replaced_in_replica_order_and_returns_as_follower() {
    let opts = BrokerOpts::new().set("auto.leader.rebalance.enable", "false");
    let mut cluster = Cluster::start(3, opts);
    let topic = unique_topic("failover");
    cluster.create_topic(1, &topic, 6, 3, &[]);
    let controller = cluster.wait_controller(Duration::from_secs(10), None);
    // The victim leads partitions but is not the controller (that case is the next test).
    let victim = if controller == 3 { 2 } else { 3 };
    let observer = controller;
    let before = cluster.metadata(observer, Some(&[&topic]));
    let before = before.topic(&topic).expect("topic").partitions.clone();
    let led: Vec<i32> = before
        .iter()
        .filter(|(_, p)| p.leader == victim)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(
        led.len(),
        2,
        "the victim leads 2 of 6 partitions: {before:?}"
    );

    cluster.broker(victim).kill9();
    let killed_at = Instant::now();
    let after = wait_for(
        cluster.session_timeout() + FAILOVER_SLACK,
        "the victim's leaderships to move and it to leave every ISR",
        || {
            let md = common::cluster::fetch_metadata(cluster.addr(observer), Some(&[&topic]))?;
            let parts = md.topic(&topic)?.partitions.clone();
            let settled = parts
                .values()
                .all(|p| p.leader != victim && !p.isr.contains(&victim));
            if settled && !md.brokers.contains_key(&victim) {
                Ok(parts)
            } else {
                Err(format!("{parts:?}"))
            }
        },
    );
    eprintln!("leader failover took {:?}", killed_at.elapsed());

    let (controller_epoch, _) = cluster.controller_epoch_in_zk();
    for (index, old) in &before {
        let new = &after[index];
        assert_eq!(
            new.replicas, old.replicas,
            "assignment unchanged for {index}"
        );
        assert!(
            new.offline.contains(&victim),
            "{index}: the dead replica is offline: {new:?}"
        );
        let expected_isr: Vec<i32> = old.isr.iter().copied().filter(|b| *b != victim).collect();
        assert_eq!(
            new.isr, expected_isr,
            "{index} leaves the victim out of the ISR"
        );
        if led.contains(index) {
            assert_eq!(
                new.leader,
                next_leader(old, victim),
                "{index}: {old:?} -> {new:?}"
            );
            assert!(
                new.leader_epoch > old.leader_epoch,
                "{index}: epoch bumped: {old:?} -> {new:?}"
            );
        } else {
            assert_eq!(new.leader, old.leader, "{index} keeps its leader");
        }
    }
    // ZooKeeper agrees, and the new states carry the current controller's epoch.
    for (index, (leader, leader_epoch, isr, epoch)) in
        cluster.states_in_zk(&topic, 6).into_iter().enumerate()
    {
        let seen = &after[&(index as i32)];
        assert_eq!(
            (leader, leader_epoch, &isr),
            (seen.leader, seen.leader_epoch, &seen.isr)
        );
        assert_eq!(epoch, controller_epoch, "partition {index}");
    }
    // Every live broker converged on the same view.
    for id in cluster.live_ids() {
        let md = cluster.metadata(id, Some(&[&topic]));
        assert_eq!(
            md.topic(&topic).expect("topic").partitions,
            after,
            "broker {id}"
        );
    }

    // Restarted, the victim is a live follower: listed again, not offline, leading nothing.
    cluster.broker(victim).restart();
    let returned = wait_for(Duration::from_secs(20), "the victim to rejoin", || {
        let md = common::cluster::fetch_metadata(cluster.addr(observer), Some(&[&topic]))?;
        let parts = md.topic(&topic)?.partitions.clone();
        if md.brokers.contains_key(&victim) && parts.values().all(|p| p.offline.is_empty()) {
            Ok(parts)
        } else {
            Err(format!("brokers {:?}, {parts:?}", md.brokers.keys()))
        }
    });
    for (index, p) in &returned {
        assert_ne!(
            p.leader, victim,
            "{index}: a returning broker is a follower"
        );
        assert_eq!(
            p.leader, after[index].leader,
            "{index}: no leader change on a join"
        );
        assert_eq!(
            p.leader_epoch, after[index].leader_epoch,
            "{index}: epoch unchanged"
        );
    }
    // The returning follower catches up from the leaders and rejoins every ISR it belongs to.
    let caught_up = wait_for(
        Duration::from_secs(30),
        "the victim to rejoin the ISRs",
        || {
            let md = common::cluster::fetch_metadata(cluster.addr(observer), Some(&[&topic]))?;
            let parts = md.topic(&topic)?.partitions.clone();
            if parts.values().all(|p| p.isr.contains(&victim)) {
                Ok(parts)
            } else {
                Err(format!("{parts:?}"))
            }
        },
    );

    // Preferred-leader election: partitions whose preferred replica leads need none; the
    // victim's preferred partitions go back to it now that it is in sync.
    let (top, results) =
        elect_preferred_leaders(cluster.addr(observer), &topic, 6).expect("ElectLeaders");
    assert_eq!(top, NONE);
    let results: BTreeMap<i32, i16> = results.into_iter().collect();
    for (index, p) in &caught_up {
        let expected = if p.replicas[0] == victim {
            NONE
        } else {
            ELECTION_NOT_NEEDED
        };
        assert_eq!(
            results.get(index),
            Some(&expected),
            "{index}: {p:?}; {results:?}"
        );
    }
    let rebalanced = wait_for(Duration::from_secs(10), "preferred leaders back", || {
        let md = common::cluster::fetch_metadata(cluster.addr(observer), Some(&[&topic]))?;
        let parts = md.topic(&topic)?.partitions.clone();
        if parts.values().all(|p| p.leader == p.replicas[0]) {
            Ok(parts)
        } else {
            Err(format!("{parts:?}"))
        }
    });
    for (index, p) in &rebalanced {
        if p.replicas[0] == victim {
            assert!(
                p.leader_epoch > returned[index].leader_epoch,
                "{index}: a preferred election is a new epoch: {p:?}"
            );
        }
    }
}

#[test]
fn a_killed_controller_is_replaced_with_a_higher_epoch() {
    let mut cluster = Cluster::start(3, BrokerOpts::new());
    let topic = unique_topic("ctrl-kill");
    cluster.create_topic(1, &topic, 3, 3, &[]);
    let old = cluster.wait_controller(Duration::from_secs(10), None);
    let (old_epoch, _) = cluster.controller_epoch_in_zk();
    let led_before = cluster.metadata(old, Some(&[&topic])).leader_counts(&topic);

    cluster.broker(old).kill9();
    let killed_at = Instant::now();
    let new = cluster.wait_controller(cluster.session_timeout() + FAILOVER_SLACK, Some(old));
    eprintln!("controller failover took {:?}", killed_at.elapsed());
    assert_ne!(new, old);
    let (new_epoch, _) = cluster.controller_epoch_in_zk();
    assert!(
        new_epoch > old_epoch,
        "controller epoch {old_epoch} -> {new_epoch}"
    );

    // The new controller handled the old one's death: its partitions have new leaders, written
    // under the new epoch.
    assert_eq!(led_before.get(&old), Some(&1), "{led_before:?}");
    let parts = wait_for(
        Duration::from_secs(10),
        "the dead controller's partitions to move",
        || {
            let md = common::cluster::fetch_metadata(cluster.addr(new), Some(&[&topic]))?;
            let parts = md.topic(&topic)?.partitions.clone();
            if parts
                .values()
                .all(|p| p.leader >= 0 && p.leader != old && !p.isr.contains(&old))
            {
                Ok(parts)
            } else {
                Err(format!("{parts:?}"))
            }
        },
    );
    let states = cluster.states_in_zk(&topic, 3);
    for (index, (leader, _, _, epoch)) in states.iter().enumerate() {
        assert_eq!(*leader, parts[&(index as i32)].leader);
        assert_eq!(
            *epoch, new_epoch,
            "partition {index} was rewritten by the new controller"
        );
    }
}

#[test]
fn a_frozen_controller_is_deposed_and_its_late_writes_are_refused() {
    let mut cluster = Cluster::start(3, BrokerOpts::new());
    let topic = unique_topic("ctrl-frozen");
    cluster.create_topic(1, &topic, 3, 3, &[]);
    let old = cluster.wait_controller(Duration::from_secs(10), None);
    let (old_epoch, old_epoch_version) = cluster.controller_epoch_in_zk();

    // Frozen past its session timeout: ZooKeeper expires its session, another broker wins
    // /controller, bumps the epoch, and moves the frozen broker's leaderships away.
    cluster.signal(old, libc::SIGSTOP);
    let new = cluster.wait_controller(cluster.session_timeout() + FAILOVER_SLACK, Some(old));
    let (new_epoch, new_epoch_version) = cluster.controller_epoch_in_zk();
    assert!(
        new_epoch > old_epoch,
        "controller epoch {old_epoch} -> {new_epoch}"
    );
    wait_for(
        Duration::from_secs(10),
        "the new controller's state writes",
        || {
            let states = cluster_states(&mut cluster, &topic);
            if states.iter().all(|(leader, _, isr, epoch)| {
                *leader != old && !isr.contains(&old) && *epoch == new_epoch
            }) {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    );
    let written = cluster.states_in_zk(&topic, 3);

    // Woken up, the old controller still believes it is controller until it hears from
    // ZooKeeper; it must stand down (its session expired) and rejoin as a plain broker.
    cluster.signal(old, libc::SIGCONT);
    wait_for(
        Duration::from_secs(20),
        "the deposed controller to stand down",
        || {
            let log = cluster.broker(old).log();
            if log.contains("coordination session expired") || log.contains("resigning") {
                Ok(())
            } else {
                Err("no resignation in its log yet".to_string())
            }
        },
    );
    wait_for(
        Duration::from_secs(20),
        "the deposed controller to rejoin",
        || {
            let md = common::cluster::fetch_metadata(cluster.addr(new), Some(&[]))?;
            let own = common::cluster::fetch_metadata(cluster.addr(old), Some(&[]))?;
            if md.brokers.contains_key(&old) && own.controller_id == new {
                Ok(())
            } else {
                Err(format!(
                    "controller's view has brokers {:?}; the old one names controller {}",
                    md.brokers.keys(),
                    own.controller_id
                ))
            }
        },
    );
    // The fence itself: the old controller's write, replayed exactly as its driver makes every
    // write (a multi that first checks /controller_epoch at the version it won), is refused now
    // that the epoch moved on, and changes nothing.
    let stale_state = serde_json::json!({
        "controller_epoch": old_epoch, "leader": old, "version": 1, "leader_epoch": 999, "isr": [old]
    });
    let refused = cluster.zk().multi(vec![
        MultiOp::Check {
            path: "/controller_epoch".into(),
            version: old_epoch_version,
        },
        MultiOp::Set {
            path: format!("/brokers/topics/{topic}/partitions/0/state"),
            data: serde_json::to_vec(&stale_state).expect("json").into(),
            version: None,
        },
    ]);
    assert!(
        matches!(refused, Err(CoordinationError::BadVersion { .. })),
        "a write conditional on the old controller epoch must fail: {refused:?}"
    );

    // Give a late write every chance to land, then check that none did: the epoch znode is
    // untouched, /controller is still the new one, and every state znode is exactly what the
    // new controller wrote (a write by the old controller would carry the old epoch).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        cluster.controller_epoch_in_zk(),
        (new_epoch, new_epoch_version)
    );
    assert_eq!(cluster.controller_in_zk(), Some(new));
    // Leaders, leader epochs and controller epochs are the new controller's (the ISR may have
    // grown since: leaders write ISR changes themselves, keeping the controller epoch).
    let decisions = |states: Vec<(i32, i32, Vec<i32>, i32)>| -> Vec<(i32, i32, i32)> {
        states
            .into_iter()
            .map(|(leader, epoch, _isr, controller_epoch)| (leader, epoch, controller_epoch))
            .collect()
    };
    assert_eq!(
        decisions(cluster.states_in_zk(&topic, 3)),
        decisions(written)
    );
    let log = cluster.broker(old).log();
    for line in log.lines().filter(|l| {
        l.contains("expired")
            || l.contains("refused")
            || l.contains("resign")
            || l.contains("controller")
    }) {
        eprintln!("deposed controller: {line}");
    }
    assert_eq!(
        log.matches("this broker is the controller").count(),
        1,
        "the deposed controller must not win again while the new one lives:\n{log}"
    );
}

fn cluster_states(cluster: &mut Cluster, topic: &str) -> Vec<(i32, i32, Vec<i32>, i32)> {
    cluster.states_in_zk(topic, 3)
}

#[test]
fn a_frozen_broker_rejoins_with_a_new_epoch_and_stops_leading() {
    let opts = BrokerOpts::new().set("auto.leader.rebalance.enable", "false");
    let mut cluster = Cluster::start(3, opts);
    let topic = unique_topic("frozen-broker");
    cluster.create_topic(1, &topic, 3, 3, &[]);
    let controller = cluster.wait_controller(Duration::from_secs(10), None);
    let victim = if controller == 3 { 2 } else { 3 };
    let md = cluster.metadata(controller, Some(&[&topic]));
    let (partition, old) = md
        .topic(&topic)
        .expect("topic")
        .partitions
        .iter()
        .find(|(_, p)| p.leader == victim)
        .map(|(i, p)| (*i, p.clone()))
        .expect("the victim leads a partition");
    let registration = format!("/brokers/ids/{victim}");
    let (_, stat) = cluster.zk().get(&registration).expect("registration");
    let epoch_before = stat.created_txid;

    // Frozen past its session timeout: the cluster moves on without it.
    cluster.signal(victim, libc::SIGSTOP);
    let moved = cluster.wait_partition(
        controller,
        &topic,
        partition,
        cluster.session_timeout() + FAILOVER_SLACK,
        "the frozen broker's leadership to move",
        |p| p.leader >= 0 && p.leader != victim,
    );
    assert_eq!(moved.leader, next_leader(&old, victim));

    // Woken up, it finds its session expired, registers again under a new broker epoch, and
    // takes the cluster's current state: it no longer leads the partition it led.
    cluster.signal(victim, libc::SIGCONT);
    let epoch_after = wait_for(
        Duration::from_secs(20),
        "a new registration",
        || match cluster.zk().get(&registration) {
            Some((_, stat)) if stat.created_txid > epoch_before => Ok(stat.created_txid),
            other => Err(format!(
                "{registration}: {:?}",
                other.map(|(_, s)| s.created_txid)
            )),
        },
    );
    assert!(epoch_after > epoch_before);
    wait_for(
        Duration::from_secs(20),
        "the rejoined broker's own view",
        || {
            let p = cluster.partition(victim, &topic, partition)?;
            if p.leader == moved.leader && p.leader_epoch == moved.leader_epoch {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        },
    );
    let batch = strom_engine::batch::build::build_batch(0, 1, 10, 1_700_000_000_000, -1, -1, -1);
    let (code, _) = Connection::open(cluster.broker(victim)).produce(&topic, partition, batch);
    assert_eq!(
        code, NOT_LEADER_OR_FOLLOWER,
        "the old leader refuses produce after rejoining"
    );
    let log = cluster.broker(victim).log();
    assert!(log.contains("coordination session expired"), "{log}");
}
