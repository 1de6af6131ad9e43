//! Issue 10, the wire: a follower broker copies its leader's log through Fetch as a replica. Two
//! `strom` brokers on a real ZooKeeper, an RF=2 topic led by broker 1; records produced to the
//! leader (idempotent, so batches carry producer ids and sequences) reach broker 2's replica
//! byte for byte (the leader's offsets, epochs and producer fields kept), with the same leader
//! epoch history.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cluster::{wait_for, Cluster};
use common::{run, strom_bin, unique_topic, BrokerOpts};

const FIRST_SEGMENT: &str = "00000000000000000000.log";
const EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

fn read(dir: &Path, file: &str) -> Result<Vec<u8>, String> {
    std::fs::read(dir.join(file)).map_err(|e| format!("{}: {e}", dir.join(file).display()))
}

fn produce(cluster: &Cluster, leader: i32, topic: &str, count: usize) {
    let input: String = (0..count).map(|i| format!("record-{i}\n")).collect();
    let mut cmd = Command::new(strom_bin());
    cmd.args([
        "produce",
        topic,
        "--idempotence",
        "--acks",
        "all",
        "--brokers",
        &cluster.bootstrap(leader),
    ]);
    let out = run(cmd, Some(input.into_bytes()), Duration::from_secs(60));
    out.assert_success();
}

#[test]
fn a_follower_holds_the_leaders_batches_byte_for_byte() {
    let mut cluster = Cluster::start(2, BrokerOpts::new());
    let topic = unique_topic("repl-follow");
    cluster.create_topic_assigned(1, &topic, &[vec![1, 2]], &[]);
    let leader = cluster
        .partition(1, &topic, 0)
        .expect("partition metadata")
        .leader;
    let follower = if leader == 1 { 2 } else { 1 };

    // Two rounds: the follower is already fetching (long-polling) when the second one lands.
    produce(&cluster, leader, &topic, 500);
    produce(&cluster, leader, &topic, 300);

    let leader_dir = cluster.replica_dir(leader, &topic, 0);
    let follower_dir = cluster.replica_dir(follower, &topic, 0);
    let leader_log = read(&leader_dir, FIRST_SEGMENT).expect("leader's segment");
    assert!(!leader_log.is_empty(), "the leader stored the records");
    wait_for(
        Duration::from_secs(30),
        "the follower to hold the leader's segment bytes",
        || {
            let copy = read(&follower_dir, FIRST_SEGMENT)?;
            if copy == leader_log {
                Ok(())
            } else {
                Err(format!(
                    "follower has {} bytes of the leader's {}",
                    copy.len(),
                    leader_log.len()
                ))
            }
        },
    );
    // The same epoch history (KIP-101): the follower learnt it from the batches it copied.
    wait_for(
        Duration::from_secs(10),
        "the follower's leader-epoch checkpoint to match the leader's",
        || {
            let (ours, theirs) = (
                read(&follower_dir, EPOCH_CHECKPOINT)?,
                read(&leader_dir, EPOCH_CHECKPOINT)?,
            );
            if ours == theirs {
                Ok(())
            } else {
                Err(format!(
                    "follower {:?}, leader {:?}",
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&theirs)
                ))
            }
        },
    );
}
