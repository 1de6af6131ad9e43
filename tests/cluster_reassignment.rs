//! Issue 12, partition reassignment (KIP-455) on a live cluster: four `strom` brokers on a real
//! ZooKeeper, a topic on brokers [1, 2, 3] with min.insync.replicas=2 under an idempotent
//! acks=all confluent-kafka producer. AlterPartitionReassignments (sent to the controller over
//! the wire: the installed confluent-kafka has no `alter_partition_reassignments`) moves every
//! partition to [2, 3, 4]; the test waits until ListPartitionReassignments is empty, Metadata on
//! every broker shows replicas [2, 3, 4] with the ISR within them, the topic znode carries no
//! adding/removing replicas, and broker 1's replica directories are gone. Then every
//! acknowledged record reads back exactly once, at its acknowledged offset, in order.
//!
//! A second test cancels a reassignment that cannot complete (its new replica's broker is
//! frozen): the partition reverts to its original replicas. A third restarts the controller
//! mid-reassignment: the new one lists it from the znodes and completes it.

mod common;
mod replication_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::cluster::{exchange, json_ids, wait_for, Cluster, NONE};
use common::{python_client_background, unique_topic, BrokerOpts};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use replication_support::*;

const PARTITIONS: i32 = 3;
const TARGET: [i32; 3] = [2, 3, 4];
/// How long the producer must keep being acknowledged (progress, not speed).
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a reassignment may take: the new replica copies a few thousand small records.
const REASSIGNMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// (topic, partition) -> (replicas, adding, removing) of the ongoing reassignments.
type Ongoing = BTreeMap<(String, i32), (Vec<i32>, Vec<i32>, Vec<i32>)>;

/// AlterPartitionReassignments v0 through `addr`: per partition of `topic` the target replicas
/// (`None` cancels). Returns the top-level error code and each partition's.
fn alter_reassignments(
    addr: SocketAddr,
    topic: &str,
    targets: &[(i32, Option<Vec<i32>>)],
) -> Result<(i16, Vec<(i32, i16)>), String> {
    let partitions = targets
        .iter()
        .map(|(p, replicas)| {
            ReassignablePartition::default()
                .with_partition_index(*p)
                .with_replicas(
                    replicas
                        .as_ref()
                        .map(|r| r.iter().copied().map(BrokerId).collect()),
                )
        })
        .collect();
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(partitions)]);
    let response: AlterPartitionReassignmentsResponse =
        exchange(addr, ApiKey::AlterPartitionReassignments, 0, &request)?;
    let results = response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    Ok((response.error_code, results))
}

/// ListPartitionReassignments v0 (all topics) through `addr`.
fn list_reassignments(addr: SocketAddr) -> Result<Ongoing, String> {
    let response: ListPartitionReassignmentsResponse = exchange(
        addr,
        ApiKey::ListPartitionReassignments,
        0,
        &ListPartitionReassignmentsRequest::default().with_timeout_ms(10_000),
    )?;
    if response.error_code != NONE {
        return Err(format!(
            "ListPartitionReassignments error {}",
            response.error_code
        ));
    }
    let ids = |list: &[BrokerId]| list.iter().map(|b| b.0).collect::<Vec<i32>>();
    Ok(response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    (t.name.to_string(), p.partition_index),
                    (
                        ids(&p.replicas),
                        ids(&p.adding_replicas),
                        ids(&p.removing_replicas),
                    ),
                )
            })
        })
        .collect())
}

fn controller(cluster: &mut Cluster) -> i32 {
    cluster.wait_controller(SLACK, None)
}

/// Waits until every live broker's Metadata shows `replicas` for every partition of `topic`
/// with its ISR within them and a leader among them, and the topic znode agrees with no
/// reassignment recorded.
fn wait_replicas(cluster: &mut Cluster, topic: &str, replicas: &[i32], timeout: Duration) {
    let live = cluster.live_ids();
    let addrs: Vec<(i32, SocketAddr)> = live.iter().map(|id| (*id, cluster.addr(*id))).collect();
    let reader = cluster.zk();
    wait_for(
        timeout,
        &format!("{topic} on {replicas:?} everywhere"),
        || {
            for (id, addr) in &addrs {
                let md = common::cluster::fetch_metadata(*addr, Some(&[topic]))?;
                for p in 0..PARTITIONS {
                    let meta = md.partition(topic, p)?;
                    let mut seen = meta.replicas.clone();
                    seen.sort_unstable();
                    if seen != replicas
                        || !meta.isr.iter().all(|b| replicas.contains(b))
                        || !replicas.contains(&meta.leader)
                    {
                        return Err(format!("broker {id} shows {topic}-{p} as {meta:?}"));
                    }
                }
            }
            let (znode, _) = reader
                .get_json(&format!("/brokers/topics/{topic}"))
                .ok_or("no topic znode")?;
            for p in 0..PARTITIONS {
                let mut stored = json_ids(&znode["partitions"][p.to_string()], "replicas");
                stored.sort_unstable();
                if stored != replicas {
                    return Err(format!("the topic znode says {znode}"));
                }
            }
            let empty = |key: &str| znode[key].as_object().is_none_or(|m| m.is_empty());
            if !empty("adding_replicas") || !empty("removing_replicas") {
                return Err(format!(
                    "the topic znode still records a reassignment: {znode}"
                ));
            }
            Ok(())
        },
    );
}

/// Reads the producer's progress lines until `acked` exceeds `beyond`; returns the count.
fn wait_acked_beyond(producer: &mut common::Background, beyond: u64) -> u64 {
    let line = producer.wait_for_line(PROGRESS_TIMEOUT, |line| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["acked"].as_u64())
            .is_some_and(|acked| acked > beyond)
    });
    let value: serde_json::Value = serde_json::from_str(&line).expect("progress line");
    value["acked"].as_u64().expect("acked count")
}

fn opts() -> BrokerOpts {
    BrokerOpts::new()
        .set("auto.leader.rebalance.enable", "false")
        .set("replica.lag.time.max.ms", LAG_TIME_MAX_MS)
}

#[test]
fn reassignment_from_123_to_234_under_load_loses_nothing() {
    let mut cluster = Cluster::start(4, opts());
    let topic = unique_topic("reassign");
    // Each of 1, 2, 3 leads one partition; the one 1 leads must change leader.
    cluster.create_topic_assigned(
        1,
        &topic,
        &[vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]],
        &[("min.insync.replicas", "2")],
    );
    for p in 0..PARTITIONS {
        wait_isr(&mut cluster, 1, &topic, p, &[1, 2, 3], SLACK);
    }

    let stop_file = tempfile::NamedTempFile::new().expect("temp file");
    let stop_path = stop_file.path().to_path_buf();
    drop(stop_file); // the producer stops when the file exists
    let mut producer = python_client_background(
        SCRIPT,
        &[
            "produce-continuous".into(),
            cluster.bootstrap_all(),
            topic.clone(),
            stop_path.display().to_string(),
        ],
        Duration::from_secs(240),
    );
    let mut acked = wait_acked_beyond(&mut producer, 500);

    // A broker other than the controller refuses: only the controller reassigns.
    let controller = controller(&mut cluster);
    let other = (1..=4).find(|b| *b != controller).expect("four brokers");
    let (error, _) =
        alter_reassignments(cluster.addr(other), &topic, &[(0, Some(TARGET.to_vec()))])
            .expect("AlterPartitionReassignments");
    assert_eq!(error, 41, "NOT_CONTROLLER from broker {other}");

    let targets: Vec<(i32, Option<Vec<i32>>)> = (0..PARTITIONS)
        .map(|p| (p, Some(TARGET.to_vec())))
        .collect();
    let started = Instant::now();
    let (error, results) =
        alter_reassignments(cluster.addr(controller), &topic, &targets).expect("reassign");
    assert_eq!(error, NONE);
    assert_eq!(
        results,
        (0..PARTITIONS).map(|p| (p, NONE)).collect::<Vec<_>>()
    );
    eprintln!(
        "reassignment started: {:?}",
        list_reassignments(cluster.addr(controller))
    );

    let addr = cluster.addr(controller);
    wait_for(
        REASSIGNMENT_TIMEOUT,
        "the reassignments to complete",
        || {
            let ongoing = list_reassignments(addr)?;
            for ((t, p), (replicas, adding, removing)) in &ongoing {
                // While it runs: RS = target + original, adding 4, removing 1.
                let mut rs = replicas.clone();
                rs.sort_unstable();
                assert_eq!(
                    (t, rs, adding, removing),
                    (&topic, vec![1, 2, 3, 4], &vec![4], &vec![1]),
                    "{p}"
                );
            }
            if ongoing.is_empty() {
                Ok(())
            } else {
                Err(format!("ongoing: {ongoing:?}"))
            }
        },
    );
    eprintln!(
        "reassignment of {PARTITIONS} partitions ({acked} records acknowledged before it) complete after {:?}",
        started.elapsed()
    );
    wait_replicas(&mut cluster, &topic, &TARGET, SLACK);
    for p in 0..PARTITIONS {
        wait_isr(&mut cluster, 4, &topic, p, &TARGET, SLACK + SLACK);
    }
    wait_for(SLACK, "broker 1 to delete its replicas", || {
        let left: Vec<_> = (0..PARTITIONS)
            .map(|p| cluster.replica_dir(1, &topic, p))
            .filter(|dir| dir.exists())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still there: {left:?}"))
        }
    });
    for p in 0..PARTITIONS {
        assert!(
            cluster.replica_dir(4, &topic, p).exists(),
            "broker 4 holds {topic}-{p}"
        );
    }

    // The producer goes on with the new replicas (acks=all, two in sync at least).
    acked = wait_acked_beyond(&mut producer, acked + 300);
    eprintln!("{acked} records acknowledged; stopping the producer");
    std::fs::write(&stop_path, b"stop").expect("write the stop file");
    let out = producer.finish();
    out.assert_success();
    let _ = std::fs::remove_file(&stop_path);
    let result = out.result_json();
    let acked = acked_with_offsets(&result);
    assert_eq!(
        result["unflushed"].as_u64(),
        Some(0),
        "every record got a delivery report: {}",
        result["errors"]
    );
    eprintln!(
        "{} acknowledged, {} failed delivery reports: {}",
        acked.len(),
        result["failed"],
        result["errors"]
    );

    let (records, high) = consume_all(&cluster.bootstrap(2), &topic);
    assert_intact(&records);
    let mut seen = BTreeSet::new();
    let mut by_partition: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    for (p, o, key, _) in &records {
        let seq: u64 = key.parse().expect("numeric key");
        assert!(seen.insert(seq), "sequence {seq} read twice ({p}@{o})");
        by_partition.entry(*p).or_default().push((*o, seq));
    }
    for (p, read) in &by_partition {
        let offsets: Vec<i64> = read.iter().map(|r| r.0).collect();
        let expected: Vec<i64> = (0..high[p]).collect();
        assert_eq!(
            offsets, expected,
            "partition {p}: offsets up to the high watermark"
        );
        assert!(
            read.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {p}: records out of order"
        );
    }
    let at: BTreeMap<(i32, i64), u64> = by_partition
        .iter()
        .flat_map(|(p, read)| read.iter().map(move |(o, seq)| ((*p, *o), *seq)))
        .collect();
    let mut without_offset = 0;
    for (seq, p, o) in &acked {
        match o {
            Some(o) => assert_eq!(
                at.get(&(*p, *o)),
                Some(seq),
                "acknowledged record {seq} at {p}@{o} is read back there"
            ),
            None => {
                without_offset += 1;
                assert!(seen.contains(seq), "acknowledged record {seq} is read back");
            }
        }
    }
    eprintln!(
        "{} records read back; {without_offset} acknowledged without an offset",
        records.len()
    );
}

/// The producer's acknowledged records: (sequence, partition, offset). librdkafka reports a
/// record its idempotent retry found already written (OUT_OF_ORDER_SEQUENCE_NUMBER below what
/// the broker acknowledged, after a leadership change) as delivered without an offset; such a
/// record must still be read back exactly once.
fn acked_with_offsets(result: &serde_json::Value) -> Vec<(u64, i32, Option<i64>)> {
    result["acked"]
        .as_array()
        .unwrap_or_else(|| panic!("no acked list in {result}"))
        .iter()
        .map(|entry| {
            let seq = entry[0].as_u64().expect("numeric sequence");
            let partition = entry[1].as_i64().expect("numeric partition") as i32;
            (seq, partition, entry[2].as_i64())
        })
        .collect()
}

#[test]
fn a_cancelled_reassignment_reverts_to_the_original_replicas() {
    let mut cluster = Cluster::start(4, opts());
    let topic = unique_topic("reassign-cancel");
    cluster.create_topic_assigned(
        1,
        &topic,
        &[vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]],
        &[("min.insync.replicas", "2")],
    );
    for p in 0..PARTITIONS {
        wait_isr(&mut cluster, 1, &topic, p, &[1, 2, 3], SLACK);
    }
    let mut controller = controller(&mut cluster);
    if controller == 4 {
        // Broker 4 is frozen below: hand the controller role elsewhere first.
        cluster.broker(4).restart();
        cluster.wait_formed(SLACK + SLACK);
        controller = cluster.wait_controller(SLACK + SLACK, Some(4));
    }
    // Broker 4 stays registered for a session timeout but copies nothing: the reassignment
    // cannot complete.
    cluster.signal(4, libc::SIGSTOP);
    let targets: Vec<(i32, Option<Vec<i32>>)> = (0..PARTITIONS)
        .map(|p| (p, Some(TARGET.to_vec())))
        .collect();
    let (error, results) =
        alter_reassignments(cluster.addr(controller), &topic, &targets).expect("reassign");
    assert_eq!(error, NONE);
    assert_eq!(
        results,
        (0..PARTITIONS).map(|p| (p, NONE)).collect::<Vec<_>>()
    );
    let ongoing = list_reassignments(cluster.addr(controller)).expect("list");
    assert_eq!(ongoing.len(), PARTITIONS as usize, "{ongoing:?}");

    let cancel: Vec<(i32, Option<Vec<i32>>)> = (0..PARTITIONS).map(|p| (p, None)).collect();
    let (error, results) =
        alter_reassignments(cluster.addr(controller), &topic, &cancel).expect("cancel");
    assert_eq!(error, NONE);
    assert_eq!(
        results,
        (0..PARTITIONS).map(|p| (p, NONE)).collect::<Vec<_>>()
    );
    assert!(list_reassignments(cluster.addr(controller))
        .expect("list")
        .is_empty());
    // Nothing left to cancel: NO_REASSIGNMENT_IN_PROGRESS (85).
    let (_, results) =
        alter_reassignments(cluster.addr(controller), &topic, &[(0, None)]).expect("cancel");
    assert_eq!(results, vec![(0, 85)]);

    cluster.signal(4, libc::SIGCONT);
    wait_replicas(&mut cluster, &topic, &[1, 2, 3], SLACK + SLACK);
    for p in 0..PARTITIONS {
        wait_isr(&mut cluster, 1, &topic, p, &[1, 2, 3], SLACK);
    }
    wait_for(SLACK + SLACK, "broker 4 to hold none of the topic", || {
        let left: Vec<_> = (0..PARTITIONS)
            .map(|p| cluster.replica_dir(4, &topic, p))
            .filter(|dir| dir.exists())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still there: {left:?}"))
        }
    });
}

#[test]
fn a_new_controller_finishes_a_reassignment_the_old_one_started() {
    let mut cluster = Cluster::start(4, opts());
    let topic = unique_topic("reassign-failover");
    cluster.create_topic_assigned(
        1,
        &topic,
        &[vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]],
        &[("min.insync.replicas", "2")],
    );
    for p in 0..PARTITIONS {
        wait_isr(&mut cluster, 1, &topic, p, &[1, 2, 3], SLACK);
    }
    let mut old = controller(&mut cluster);
    if old == 4 {
        cluster.broker(4).restart();
        cluster.wait_formed(SLACK + SLACK);
        old = cluster.wait_controller(SLACK + SLACK, Some(4));
    }
    // The new replica's broker is frozen: the reassignment stays ongoing while the controller
    // that started it goes away.
    cluster.signal(4, libc::SIGSTOP);
    let targets: Vec<(i32, Option<Vec<i32>>)> = (0..PARTITIONS)
        .map(|p| (p, Some(TARGET.to_vec())))
        .collect();
    let (error, _) = alter_reassignments(cluster.addr(old), &topic, &targets).expect("reassign");
    assert_eq!(error, NONE);
    cluster.broker(old).restart();
    let new = cluster.wait_controller(SLACK + SLACK + SLACK, Some(4));
    eprintln!("controller {old} restarted; {new} took over");
    let ongoing = list_reassignments(cluster.addr(new)).expect("list");
    assert_eq!(
        ongoing.len(),
        PARTITIONS as usize,
        "resumed from the znodes: {ongoing:?}"
    );

    cluster.signal(4, libc::SIGCONT);
    let addr = cluster.addr(new);
    wait_for(
        REASSIGNMENT_TIMEOUT,
        "the new controller to complete them",
        || {
            let ongoing = list_reassignments(addr)?;
            if ongoing.is_empty() {
                Ok(())
            } else {
                Err(format!("ongoing: {ongoing:?}"))
            }
        },
    );
    wait_replicas(&mut cluster, &topic, &TARGET, SLACK + SLACK);
}
