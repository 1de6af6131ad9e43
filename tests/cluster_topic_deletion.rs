//! Issue 9: deleting a topic in a 3-broker cluster on a real ZooKeeper removes every replica's
//! files on every broker and every znode of the topic, and leaves other topics alone.

mod common;

use std::time::Duration;

use common::cluster::{delete_topic, wait_for, Cluster, NONE};
use common::kafka_wire::Connection;
use common::{unique_topic, BrokerOpts};

#[test]
fn deleting_a_topic_removes_every_replica_on_every_broker() {
    let mut cluster = Cluster::start(3, BrokerOpts::new());
    let doomed = unique_topic("doomed");
    let kept = unique_topic("kept");
    cluster.create_topic(1, &doomed, 4, 3, &[]);
    cluster.create_topic(1, &kept, 2, 2, &[]);

    // Data in every partition, through each partition's leader.
    let md = cluster.metadata(1, Some(&[&doomed]));
    for (index, p) in &md.topic(&doomed).expect("topic").partitions {
        let leader = cluster.broker(p.leader);
        let batch =
            strom_engine::batch::build::build_batch(0, 5, 100, 1_700_000_000_000, -1, -1, -1);
        let (code, _) = Connection::open(leader).produce(&doomed, *index, batch);
        assert_eq!(
            code, NONE,
            "produce to {doomed}-{index} on its leader {}",
            p.leader
        );
    }
    for id in cluster.ids() {
        for index in 0..4 {
            assert!(
                cluster.replica_dir(id, &doomed, index).is_dir(),
                "broker {id} holds {doomed}-{index}"
            );
        }
    }
    let kept_dirs: Vec<_> = cluster
        .ids()
        .into_iter()
        .flat_map(|id| (0..2).map(move |p| (id, p)))
        .filter(|(id, p)| cluster.replica_dir(*id, &kept, *p).is_dir())
        .collect();
    assert_eq!(
        kept_dirs.len(),
        4,
        "RF=2 x 2 partitions of {kept}: {kept_dirs:?}"
    );

    let code = delete_topic(cluster.addr(2), &doomed).expect("DeleteTopics");
    assert_eq!(code, NONE, "DeleteTopics {doomed}");

    wait_for(
        Duration::from_secs(20),
        "every replica directory to go",
        || {
            let left: Vec<_> = cluster
                .ids()
                .into_iter()
                .flat_map(|id| (0..4).map(move |p| (id, p)))
                .filter(|(id, p)| cluster.replica_dir(*id, &doomed, *p).exists())
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("still on disk (broker, partition): {left:?}"))
            }
        },
    );
    for id in cluster.ids() {
        let md = cluster.metadata(id, None);
        assert!(
            !md.topics.contains_key(&doomed),
            "broker {id} still lists {doomed}"
        );
        assert!(md.topics.contains_key(&kept), "broker {id} lost {kept}");
    }
    for path in [
        format!("/brokers/topics/{doomed}"),
        format!("/config/topics/{doomed}"),
        format!("/admin/delete_topics/{doomed}"),
    ] {
        wait_for(
            Duration::from_secs(10),
            &format!("{path} to go"),
            || match cluster.zk().get(&path) {
                None => Ok(()),
                Some(_) => Err(format!("{path} exists")),
            },
        );
    }
    for (id, p) in kept_dirs {
        assert!(
            cluster.replica_dir(id, &kept, p).is_dir(),
            "broker {id} lost {kept}-{p}"
        );
    }
}
