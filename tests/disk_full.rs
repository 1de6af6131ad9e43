//! Issue 11, "Disk full": one of the broker's two log dirs is a small tmpfs the test mounts.
//! Producing to a partition there until it is full must show:
//! - producers get KAFKA_STORAGE_ERROR (56), not a hang or a dropped connection;
//! - the broker keeps serving reads of that partition, and reads and writes of the partition in
//!   the other (roomy) log dir;
//! - nothing is left torn: the partition's size equals its segment files, every acknowledged
//!   record reads back and nothing else, also after a restart;
//! - once space returns (DeleteRecords, then the tmpfs remounted bigger) appends resume without
//!   a restart.
//!
//! Needs root (to mount); skipped with a message otherwise. Prints the broker's RSS before and
//! after the flood of refused produces.

mod common;
mod tools_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::kafka_wire::Connection;
use common::*;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_engine::batch::build::build_batch;
use tools_support::*;

const KAFKA_STORAGE_ERROR: i16 = 56;
/// Bytes of the one record in each produced batch: ~130 fill the 8 MiB tmpfs.
const RECORD_VALUE_BYTES: usize = 60_000;

/// A tmpfs mounted on a fresh directory; unmounted on drop (after the broker that used it is
/// gone: declare it before the broker).
struct SmallFileSystem {
    _parent: tempfile::TempDir,
    path: PathBuf,
}

impl SmallFileSystem {
    fn mount(size: &str) -> Option<SmallFileSystem> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: the disk-full test mounts a tmpfs, which needs root");
            return None;
        }
        let parent = tempfile::tempdir().expect("tempdir");
        let path = parent.path().join("small");
        std::fs::create_dir(&path).expect("mkdir");
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &path,
        );
        Some(SmallFileSystem {
            _parent: parent,
            path,
        })
    }

    fn resize(&self, size: &str) {
        mount(&["-o", &format!("remount,size={size}")], &self.path);
    }
}

fn mount(args: &[&str], path: &Path) {
    let status = Command::new("mount")
        .args(args)
        .arg(path)
        .status()
        .expect("run mount");
    assert!(status.success(), "mount {args:?} {}", path.display());
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn record(index: i64) -> Vec<u8> {
    // One record per batch; the timestamp tells the batches apart.
    build_batch(
        0,
        1,
        RECORD_VALUE_BYTES,
        1_700_000_000_000 + index,
        -1,
        -1,
        -1,
    )
}

/// Offsets and value sizes read back from `topic`-0 with kcat.
fn read_back(broker: &Broker, topic: &str) -> Vec<(i64, usize)> {
    let out = kcat(
        &[
            "-C",
            "-b",
            &broker.bootstrap(),
            "-t",
            topic,
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%o %S\n",
        ],
        None,
        Duration::from_secs(60),
    );
    out.assert_success();
    out.stdout_str()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (offset, size) = line.split_once(' ').expect("offset and size");
            (offset.parse().expect("offset"), size.parse().expect("size"))
        })
        .collect()
}

fn partition_size(broker: &Broker, topic: &str) -> i64 {
    let mut connection = Connection::open(broker);
    let response: DescribeLogDirsResponse = connection.call(
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    );
    response
        .results
        .iter()
        .flat_map(|result| &result.topics)
        .filter(|t| t.name.0.as_str() == topic)
        .flat_map(|t| &t.partitions)
        .map(|p| p.partition_size)
        .next()
        .expect("the partition is described")
}

fn segment_file_bytes(partition_dir: &Path) -> i64 {
    std::fs::read_dir(partition_dir)
        .expect("list partition dir")
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
        .map(|entry| entry.metadata().expect("stat").len() as i64)
        .sum()
}

fn expected(acknowledged: i64) -> Vec<(i64, usize)> {
    expected_from(0, acknowledged)
}

/// The records at `log_start..end`, as `read_back` returns them.
fn expected_from(log_start: i64, end: i64) -> Vec<(i64, usize)> {
    (log_start..end)
        .map(|offset| (offset, RECORD_VALUE_BYTES))
        .collect()
}

/// DeleteRecords of `topic`-0 below `offset`; returns (error code, low watermark).
fn delete_records(connection: &mut Connection, topic: &str, offset: i64) -> (i16, i64) {
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    let response: DeleteRecordsResponse = connection.call(ApiKey::DeleteRecords, 1, &request);
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.low_watermark)
}

/// Produces to `topic`-0 from offset `next` until the broker answers an error; returns the
/// next offset and the error code.
fn produce_until_refused(connection: &mut Connection, topic: &str, mut next: i64) -> (i64, i16) {
    let bound = next + 1_000;
    loop {
        let (error_code, base_offset) = connection.produce(topic, 0, record(next));
        if error_code != 0 {
            return (next, error_code);
        }
        assert_eq!(base_offset, next, "offsets follow each other");
        next += 1;
        assert!(next < bound, "the file system must fill up");
    }
}

#[test]
fn a_full_log_dir_refuses_produces_with_storage_error_serves_reads_and_recovers_when_space_returns()
{
    let Some(small) = SmallFileSystem::mount("8m") else {
        return;
    };
    let mut broker = Broker::start(
        BrokerOpts::new()
            .set("num.shards", 1)
            .set("log.segment.bytes", 1 << 20)
            .extra_log_dirs(std::slice::from_ref(&small.path)),
    );
    // Placement by fewest partitions, the first dir on a tie: `roomy` goes to the harness's
    // dir, `full` to the tmpfs.
    create_topic(&broker, "roomy", 1);
    create_topic(&broker, "full", 1);
    let full_dir = small.path.join("full-0");
    assert!(full_dir.is_dir(), "`full` lives on the tmpfs");
    assert!(broker.log_dirs().join("roomy-0").is_dir());

    let rss_before_kib = rss_kib(broker.pid());
    let mut connection = Connection::open(&broker);
    let mut acknowledged = 0i64;
    let started = Instant::now();
    let error_code = loop {
        let (error_code, base_offset) = connection.produce("full", 0, record(acknowledged));
        if error_code != 0 {
            break error_code;
        }
        assert_eq!(base_offset, acknowledged, "offsets follow each other");
        acknowledged += 1;
        assert!(acknowledged < 1_000, "8 MiB must fill up");
    };
    assert_eq!(
        error_code, KAFKA_STORAGE_ERROR,
        "a full disk answers KAFKA_STORAGE_ERROR"
    );
    assert!(
        acknowledged > 50,
        "most of the 8 MiB was used: {acknowledged} records"
    );
    // More produces on the same connection: refused again, answered, connection kept.
    for attempt in 0..200 {
        let (error_code, _) = connection.produce("full", 0, record(10_000 + attempt));
        assert_eq!(error_code, KAFKA_STORAGE_ERROR, "attempt {attempt}");
    }
    let rss_after_kib = rss_kib(broker.pid());
    eprintln!(
        "disk full after {acknowledged} records ({:?}); broker RSS {rss_before_kib} KiB before, {rss_after_kib} KiB after 200 refused produces",
        started.elapsed()
    );

    let log = broker.log();
    assert!(
        log.contains("file system full: undoing unwritten appends"),
        "the write that hit ENOSPC was undone"
    );
    assert!(!log.contains("is now offline"), "no log went offline");

    // The other log dir's partition takes writes; both read back.
    for index in 0..5 {
        let (error_code, base_offset) = connection.produce("roomy", 0, record(index));
        assert_eq!(
            (error_code, base_offset),
            (0, index),
            "the roomy dir takes writes"
        );
    }
    assert_eq!(read_back(&broker, "roomy"), expected(5));
    assert_eq!(
        read_back(&broker, "full"),
        expected(acknowledged),
        "every acknowledged record, and nothing else"
    );
    assert_eq!(
        partition_size(&broker, "full"),
        segment_file_bytes(&full_dir),
        "no torn tail: the segment files hold exactly the log"
    );

    // Space returns through DeleteRecords: the segments below the new log start go, and
    // appends resume on the same broker. Then the disk fills up again.
    let log_start = acknowledged / 2;
    assert_eq!(
        delete_records(&mut connection, "full", log_start),
        (0, log_start),
        "DeleteRecords works on a full disk"
    );
    let (error_code, base_offset) = connection.produce("full", 0, record(acknowledged));
    assert_eq!(
        (error_code, base_offset),
        (0, acknowledged),
        "appends resume once DeleteRecords freed segments"
    );
    acknowledged += 1;
    let (next, error_code) = produce_until_refused(&mut connection, "full", acknowledged);
    assert_eq!(error_code, KAFKA_STORAGE_ERROR, "full again");
    assert!(next > acknowledged + 10, "the freed segments were reused");
    acknowledged = next;
    assert_eq!(
        read_back(&broker, "full"),
        expected_from(log_start, acknowledged)
    );
    assert_eq!(
        partition_size(&broker, "full"),
        segment_file_bytes(&full_dir)
    );

    // Space returns with a bigger file system: appends resume on the same broker.
    small.resize("64m");
    let (error_code, base_offset) = connection.produce("full", 0, record(acknowledged));
    assert_eq!(
        (error_code, base_offset),
        (0, acknowledged),
        "appends resume once there is room"
    );
    acknowledged += 1;
    for _ in 0..20 {
        let (error_code, base_offset) = connection.produce("full", 0, record(acknowledged));
        assert_eq!((error_code, base_offset), (0, acknowledged));
        acknowledged += 1;
    }
    assert_eq!(
        read_back(&broker, "full"),
        expected_from(log_start, acknowledged)
    );

    // After a crash and after a clean restart: the same records, recovered without a cut.
    drop(connection);
    broker.kill9();
    broker.restart();
    assert_eq!(
        read_back(&broker, "full"),
        expected_from(log_start, acknowledged),
        "after kill -9"
    );
    assert_eq!(
        partition_size(&broker, "full"),
        segment_file_bytes(&full_dir)
    );
    broker.restart();
    assert_eq!(
        read_back(&broker, "full"),
        expected_from(log_start, acknowledged),
        "after a clean restart"
    );
    assert_eq!(read_back(&broker, "roomy"), expected(5));
}
