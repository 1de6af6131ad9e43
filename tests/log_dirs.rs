//! Issue 12, "DescribeLogDirs and multiple log.dirs": a broker with two log dirs spreads new
//! partitions over both (each in exactly one), DescribeLogDirs (on the wire and through
//! `strom topic describe --log-dirs`) reports every replica in the dir that holds it with its
//! size as on disk, a restart (clean or `kill -9`) opens each partition where it is, and a
//! partition found in two dirs stops the start with a clear error.
//!
//! (confluent-kafka's Python AdminClient has no describe_log_dirs, so the wire check uses the
//! tests' own Kafka connection.)

mod common;
mod tools_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::kafka_wire::Connection;
use common::*;
use kafka_protocol::messages::{ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse};
use strom_engine::batch::build::build_batch;
use tools_support::*;

/// (topic, partition) → (log dir, size in bytes).
type Placement = BTreeMap<(String, i32), (String, i64)>;

/// Partition directories on disk: (topic, partition) → the dirs holding it.
fn partitions_on_disk(dirs: &[PathBuf]) -> BTreeMap<(String, i32), Vec<PathBuf>> {
    let mut found: BTreeMap<(String, i32), Vec<PathBuf>> = BTreeMap::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).expect("list log dir").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.path().is_dir() || name.starts_with("__") || name.ends_with("-delete") {
                continue;
            }
            let Some((topic, index)) = name.rsplit_once('-') else {
                continue;
            };
            let Ok(index) = index.parse::<i32>() else {
                continue;
            };
            found
                .entry((topic.to_string(), index))
                .or_default()
                .push(dir.clone());
        }
    }
    found
}

/// Bytes of the segment files (`*.log`) of a partition directory: what its size must be.
fn segment_bytes(partition_dir: &Path) -> i64 {
    std::fs::read_dir(partition_dir)
        .expect("list partition dir")
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
        .map(|entry| entry.metadata().expect("stat").len() as i64)
        .sum()
}

fn describe_log_dirs(broker: &Broker, version: i16) -> DescribeLogDirsResponse {
    let mut connection = Connection::open(broker);
    connection.call(
        ApiKey::DescribeLogDirs,
        version,
        &DescribeLogDirsRequest::default().with_topics(None),
    )
}

/// What DescribeLogDirs says about `topics`, as a placement; also checks the per-dir fields.
fn placement_from_wire(
    response: &DescribeLogDirsResponse,
    version: i16,
    topics: &[&str],
) -> Placement {
    assert_eq!(response.error_code, 0);
    let mut placement = Placement::new();
    for result in &response.results {
        assert_eq!(result.error_code, 0, "dir {} online", result.log_dir);
        if version >= 4 {
            assert!(result.total_bytes > 0, "total bytes of {}", result.log_dir);
            assert!(
                result.usable_bytes > 0 && result.usable_bytes <= result.total_bytes,
                "usable bytes of {}",
                result.log_dir
            );
        }
        for topic in &result.topics {
            if !topics.contains(&topic.name.0.as_str()) {
                continue;
            }
            for partition in &topic.partitions {
                assert!(!partition.is_future_key);
                assert_eq!(partition.offset_lag, 0, "a leader has no lag");
                let previous = placement.insert(
                    (topic.name.0.to_string(), partition.partition_index),
                    (result.log_dir.to_string(), partition.partition_size),
                );
                assert!(previous.is_none(), "a replica is listed in one dir only");
            }
        }
    }
    placement
}

/// The placement on disk with sizes from the segment files, for the given topics.
fn placement_on_disk(dirs: &[PathBuf], topics: &[&str]) -> Placement {
    partitions_on_disk(dirs)
        .into_iter()
        .filter(|((topic, _), _)| topics.contains(&topic.as_str()))
        .map(|((topic, index), holders)| {
            assert_eq!(holders.len(), 1, "{topic}-{index} is in exactly one dir");
            let dir = &holders[0];
            let size = segment_bytes(&dir.join(format!("{topic}-{index}")));
            ((topic, index), (dir.display().to_string(), size))
        })
        .collect()
}

fn produce_some(broker: &Broker, topic: &str, partitions: i32) {
    let mut connection = Connection::open(broker);
    for index in 0..partitions {
        // A different amount per partition, so sizes cannot match by accident.
        for round in 0..=index {
            let batch = build_batch(
                0,
                3 + round,
                100 + 50 * index as usize,
                1_700_000_000_000,
                -1,
                -1,
                -1,
            );
            let (error_code, _) = connection.produce(topic, index, batch);
            assert_eq!(error_code, 0, "produce to {topic}-{index}");
        }
    }
}

#[test]
fn partitions_spread_over_two_log_dirs_are_described_and_stay_put_across_restarts() {
    let second = tempfile::tempdir().expect("second log dir");
    let second_dir = second.path().join("second");
    let mut broker = Broker::start(
        BrokerOpts::new()
            .set("num.shards", 2)
            .extra_log_dirs(std::slice::from_ref(&second_dir)),
    );
    let dirs = vec![broker.log_dirs().to_path_buf(), second_dir.clone()];
    create_topic(&broker, "alpha", 5);
    create_topic(&broker, "beta", 3);
    produce_some(&broker, "alpha", 5);
    produce_some(&broker, "beta", 3);

    let on_disk = placement_on_disk(&dirs, &["alpha", "beta"]);
    assert_eq!(
        on_disk.len(),
        8,
        "every partition has a directory: {on_disk:?}"
    );
    let per_dir: Vec<usize> = dirs
        .iter()
        .map(|dir| {
            let dir = dir.display().to_string();
            on_disk
                .values()
                .filter(|(holder, _)| *holder == dir)
                .count()
        })
        .collect();
    assert_eq!(
        per_dir,
        vec![4, 4],
        "the fewest-partitions rule spreads 8 evenly"
    );

    for version in [1, 4] {
        let response = describe_log_dirs(&broker, version);
        let paths: Vec<String> = response
            .results
            .iter()
            .map(|r| r.log_dir.to_string())
            .collect();
        assert_eq!(
            paths,
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>(),
            "one result per log dir, in config order"
        );
        assert_eq!(
            placement_from_wire(&response, version, &["alpha", "beta"]),
            on_disk,
            "v{version}"
        );
    }

    // The CLI, as JSON and as a table.
    let out = strom(&broker, &["topic", "describe", "--log-dirs", "--json"]);
    out.assert_success();
    let json: serde_json::Value = serde_json::from_str(&out.stdout_str()).expect("JSON");
    let mut from_cli = Placement::new();
    for broker_entry in json["brokers"].as_array().expect("brokers") {
        for dir in broker_entry["logDirs"].as_array().expect("logDirs") {
            assert!(dir["totalBytes"].as_i64().expect("totalBytes") > 0);
            for replica in dir["replicas"].as_array().expect("replicas") {
                if replica["topic"] == "__consumer_offsets" {
                    continue;
                }
                from_cli.insert(
                    (
                        replica["topic"].as_str().expect("topic").to_string(),
                        replica["partition"].as_i64().expect("partition") as i32,
                    ),
                    (
                        dir["logDir"].as_str().expect("logDir").to_string(),
                        replica["sizeBytes"].as_i64().expect("sizeBytes"),
                    ),
                );
            }
        }
    }
    assert_eq!(from_cli, on_disk, "strom topic describe --log-dirs --json");
    let table = strom(&broker, &["topic", "describe", "beta", "--log-dirs"]);
    table.assert_success();
    let text = table.stdout_str();
    for dir in &dirs {
        assert!(
            text.contains(&format!("LogDir: {}", dir.display())),
            "{text}"
        );
    }
    assert_eq!(text.matches("\tTopic: beta\t").count(), 3, "{text}");
    assert!(
        !text.contains("alpha") && !text.contains("__consumer_offsets"),
        "only the topic asked for: {text}"
    );

    // A clean restart, then a crash and restart: each partition opens where it is.
    for crash in [false, true] {
        if crash {
            broker.kill9();
        }
        broker.restart();
        let after = placement_from_wire(&describe_log_dirs(&broker, 4), 4, &["alpha", "beta"]);
        assert_eq!(after, on_disk, "after a restart (crash: {crash})");
        assert_eq!(placement_on_disk(&dirs, &["alpha", "beta"]), on_disk);
    }

    // A new topic after the restart still fills the dirs evenly.
    create_topic(&broker, "gamma", 2);
    let with_gamma = placement_on_disk(&dirs, &["gamma"]);
    let gamma_dirs: Vec<&String> = with_gamma.values().map(|(dir, _)| dir).collect();
    assert_eq!(with_gamma.len(), 2);
    assert_ne!(
        gamma_dirs[0], gamma_dirs[1],
        "one new partition in each dir"
    );

    // Both dirs carry the broker's identity and checkpoints.
    broker.stop_clean();
    for dir in &dirs {
        assert!(dir.join("meta.properties").exists(), "{}", dir.display());
        assert!(dir.join(".clean-shutdown").exists(), "{}", dir.display());
    }

    // A partition in both dirs: the broker refuses to start and says which.
    let (topic, index) = on_disk.keys().next().expect("a partition").clone();
    let (holder, _) = &on_disk[&(topic.clone(), index)];
    let other = dirs
        .iter()
        .find(|dir| dir.display().to_string() != *holder)
        .expect("the other dir");
    std::fs::create_dir(other.join(format!("{topic}-{index}"))).expect("make a duplicate");
    let mut start = Command::new(strom_bin());
    start.args([
        "broker",
        "start",
        "--override",
        &format!("listeners=PLAINTEXT://127.0.0.1:{}", pick_free_port()),
        "--override",
        &format!("log.dirs={},{}", dirs[0].display(), dirs[1].display()),
    ]);
    let out = run(start, None, Duration::from_secs(60));
    assert!(!out.status.success(), "the start must fail");
    let stderr = out.stderr_str() + &out.stdout_str();
    assert!(
        stderr.contains(&format!("{topic}-{index}")) && stderr.contains("two log dirs"),
        "the error names the partition: {stderr}"
    );
}
