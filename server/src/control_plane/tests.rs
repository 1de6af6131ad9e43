//! The control plane on the embedded store, in-process: a single broker that is its own
//! controller, driven through the same handle the shards use.

use std::collections::BTreeMap;

use super::{start, ControlledShutdownOutcome, NewTopic, Started};
use crate::broker::topics::{TopicError, NO_LEADER};
use crate::config::BrokerConfig;

fn started(dir: &std::path::Path) -> Started {
    let overrides = [
        format!("log.dirs={}", dir.display()),
        "broker.id=7".to_string(),
        "offsets.topic.num.partitions=3".to_string(),
    ];
    let config = BrokerConfig::load(None, &overrides).expect("config");
    start(&config, dir, &|| false).expect("control plane starts")
}

fn new_topic(name: &str, partitions: i32, replication_factor: i16) -> NewTopic {
    NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor,
        assignment: None,
        configs: BTreeMap::new(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_single_broker_is_its_own_controller_and_elects_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let started = started(dir.path());
    // The offsets topic exists, led, before the shards would start.
    let offsets = started
        .view
        .get(crate::broker::group_placement::OFFSETS_TOPIC)
        .expect("__consumer_offsets created at start");
    assert!(offsets.all_partitions_led());
    assert_eq!(started.view.members().controller_id, 7);
    assert_eq!(
        started
            .view
            .members()
            .brokers
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        [7]
    );

    let control = started.control.clone();
    runtime().block_on(async {
        let created = control
            .create_topic(new_topic("orders", 3, 1), false, 10_000)
            .await
            .expect("created");
        assert_eq!(created.partitions, 3);
        for state in &created.partition_states {
            assert_eq!(
                (state.leader, state.leader_epoch, state.isr.as_slice()),
                (7, 0, &[7][..])
            );
            assert_eq!(state.replicas, [7]);
        }
        assert!(matches!(
            control
                .create_topic(new_topic("orders", 1, 1), false, 10_000)
                .await,
            Err(TopicError::AlreadyExists(_))
        ));
        assert!(matches!(
            control
                .create_topic(new_topic("wide", 1, 2), false, 10_000)
                .await,
            Err(TopicError::InvalidReplicationFactor {
                requested: 2,
                brokers: 1
            })
        ));
        // validate_only writes nothing.
        control
            .create_topic(new_topic("dry", 2, 1), true, 10_000)
            .await
            .expect("validates");
        assert!(started.view.get("dry").is_none());

        assert_eq!(
            control
                .create_partitions("orders".into(), 5, None, false, 10_000)
                .await
                .expect("grown"),
            3
        );
        let grown = started.view.get("orders").expect("orders");
        assert_eq!(grown.partitions, 5);
        assert!(grown.all_partitions_led());

        // Preferred election where the preferred replica already leads.
        let results = control
            .elect_leaders(true, Some(vec![("orders".into(), 0)]))
            .await
            .expect("controller answers");
        assert!(matches!(
            results.get(&("orders".to_string(), 0)),
            Some(Err(_))
        ));

        let first = control.reserve_producer_ids().await.expect("block");
        let second = control.reserve_producer_ids().await.expect("block");
        assert!(
            second.block_start > first.block_end,
            "{first:?} then {second:?}"
        );

        control
            .delete_topic("orders".into(), 10_000)
            .await
            .expect("deleted");
        assert!(started.view.get("orders").is_none());
        assert!(matches!(
            control.delete_topic("orders".into(), 10_000).await,
            Err(TopicError::Unknown(_))
        ));
    });
    // Alone, a broker has no one to hand its leaderships to.
    assert_eq!(
        control.controlled_shutdown_blocking(1_000),
        ControlledShutdownOutcome::Skipped
    );
    control.stop_blocking();
    started.thread.join().expect("control thread ends");
}

#[test]
fn the_view_survives_a_restart_on_the_same_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = started(dir.path());
    let created = runtime()
        .block_on(
            first
                .control
                .create_topic(new_topic("kept", 2, 1), false, 10_000),
        )
        .expect("created");
    first.control.stop_blocking();
    first.thread.join().expect("control thread ends");

    let second = started(dir.path());
    let reloaded = second.view.get("kept").expect("topic reloaded");
    assert_eq!(reloaded.id, created.id);
    assert!(reloaded
        .partition_states
        .iter()
        .all(|state| state.leader == 7 && state.leader != NO_LEADER));
    assert_eq!(second.cluster_id, first.cluster_id);
    second.control.stop_blocking();
    second.thread.join().expect("control thread ends");
}
