//! Power loss at the broker level: a real broker with its log dir on `strom test-fs` (a FUSE
//! filesystem that keeps every unsynced write and directory change in memory and drops them
//! on command), killed with SIGKILL while a producer is running, then the filesystem "loses
//! power", is mounted again over what the simulated disk kept, and the broker restarts on it.
//!
//! - `log.durability=sync`: every record acknowledged (acks=all) before the power loss reads
//!   back byte for byte, at its acknowledged offset.
//! - `log.durability=none`: the test shows the difference: acknowledged records are lost (at
//!   least one; so this test can tell a kept promise from a broken one), yet what remains is a
//!   valid prefix of what was produced (no corrupt record, no gap), and the broker takes new
//!   appends right after it.
//! - `log.durability=interval`: at most an unsynced tail is lost (the same prefix check).
//!
//! In every case nothing appears that was not produced. Each test runs `DEFAULT_ROUNDS` power
//! losses on the same log (`STROM_POWER_LOSS_ROUNDS=50 cargo test --test power_loss` for more).
//! Needs root and /dev/fuse (mounting is a direct mount(2) as root); elsewhere the tests print
//! why and pass without running.

mod common;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::kafka_wire::{request_frame, Connection};
use common::{strom_bin, unique_topic, Background, Broker, BrokerOpts, CLIENT_TIMEOUT};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use strom_engine::batch::build::build_keyed_batch;

/// In each round the broker is killed once this many more records are acknowledged (one more
/// may be in flight).
const ACKED_PER_ROUND: u64 = 300;
/// Power losses per test; `STROM_POWER_LOSS_ROUNDS` runs more (e.g. 50 for a long run).
const DEFAULT_ROUNDS: u64 = 3;
/// The producer never sends more than this (a bound on the loop, far above what it reaches).
const MAX_RECORDS: u64 = 100_000;
/// Small segments, so the run rolls several: under `none` the engine still syncs a segment when
/// it seals it, so a prefix survives and the lost tail is what was never synced.
const SEGMENT_BYTES: u64 = 16 * 1024;
/// How long the filesystem process may live (a bound; each test takes seconds).
const FS_DEADLINE: Duration = Duration::from_secs(600);

/// Why power-loss tests cannot run here, if they cannot.
fn fuse_unavailable() -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: mounting the test filesystem needs root".into());
    }
    if let Err(error) = OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        return Some(format!("/dev/fuse cannot be opened: {error}"));
    }
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems
        .lines()
        .any(|line| line.trim_end().ends_with("\tfuse"))
    {
        return Some("the kernel has no fuse filesystem".into());
    }
    None
}

/// A mounted `strom test-fs`. Dropping it kills the process and detaches the mount, so a failing
/// test leaves no mount behind.
struct TestFs {
    process: Option<Background>,
    mount: PathBuf,
}

impl TestFs {
    fn mount(backing: &Path, mount: &Path) -> TestFs {
        let mut cmd = Command::new(strom_bin());
        cmd.arg("test-fs")
            .arg("--backing")
            .arg(backing)
            .arg("--mount")
            .arg(mount);
        let mut process = Background::spawn(cmd, None, FS_DEADLINE);
        process.wait_for_line(Duration::from_secs(20), |line| {
            line.contains("\"event\":\"mounted\"")
        });
        TestFs {
            process: Some(process),
            mount: mount.to_path_buf(),
        }
    }

    /// Power loss: unsynced data and directory operations are dropped; the filesystem unmounts.
    /// Returns its report (`files`, `bytes`, `namespace_ops` dropped).
    fn lose_power(mut self) -> serde_json::Value {
        let process = self.process.take().expect("the filesystem is running");
        process.signal(libc::SIGUSR1);
        let out = process.finish();
        out.assert_success();
        let report = out.result_json();
        assert_eq!(report["event"], "power_lost", "{report}");
        assert_eq!(
            report["failed_undo_steps"], 0,
            "every unsynced directory operation must undo cleanly: {report}"
        );
        report
    }
}

impl Drop for TestFs {
    fn drop(&mut self) {
        drop(self.process.take());
        if let Ok(path) = std::ffi::CString::new(self.mount.as_os_str().as_encoded_bytes()) {
            // SAFETY: umount2(2) with a valid C string; failure (not mounted) is fine.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// The record produced at `offset` in `round`: distinct per (round, offset), so a record read
/// back is checked against the one produced there, and a lost record produced again in a later
/// round is told apart from the lost one resurfacing.
fn record(round: u64, offset: u64) -> (Vec<u8>, Vec<u8>) {
    let key = format!("key-{offset}").into_bytes();
    let value: Vec<u8> = format!("value-{round}-{offset}-")
        .into_bytes()
        .into_iter()
        .chain(
            (0..200 + offset % 64).map(|i| (i as u8).wrapping_mul(31).wrapping_add(offset as u8)),
        )
        .collect();
    (key, value)
}

fn batch(key: &[u8], value: &[u8]) -> Vec<u8> {
    build_keyed_batch(&[(Some(key), Some(value))], 1_700_000_000_000)
}

/// One acks=all produce of one record on `stream`; `Err` once the broker is gone.
fn produce_one(
    stream: &mut TcpStream,
    topic: &str,
    correlation_id: i32,
    records: Vec<u8>,
) -> std::io::Result<(i16, i64)> {
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(records)))])]);
    stream.write_all(&request_frame(ApiKey::Produce, 9, correlation_id, &request))?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
    stream.read_exact(&mut body)?;
    let mut body = Bytes::from(body);
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let header = ResponseHeader::decode(&mut body, ProduceResponse::header_version(9))
        .map_err(|_| bad("response header"))?;
    assert_eq!(header.correlation_id, correlation_id, "responses in order");
    let response = ProduceResponse::decode(&mut body, 9).map_err(|_| bad("produce response"))?;
    let partition = &response.responses[0].partition_responses[0];
    Ok((partition.error_code, partition.base_offset))
}

/// What one round's producer did before the broker died.
struct Produced {
    /// Records sent (acknowledged or not), the first at the round's start offset.
    sent: Vec<(Vec<u8>, Vec<u8>)>,
    /// How many of them were acknowledged (always the first ones: one request at a time).
    acked: u64,
}

/// Produces `record(round, start)`, `record(round, start + 1)`, ... one request at a time until
/// the broker goes away; each must be acknowledged at its own offset.
fn produce_until_broker_dies(
    addr: String,
    topic: String,
    round: u64,
    start: u64,
    acked: Arc<AtomicU64>,
) -> Produced {
    let mut stream = TcpStream::connect(&addr).expect("connect the producer");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut produced = Produced {
        sent: Vec::new(),
        acked: 0,
    };
    for offset in start..start + MAX_RECORDS {
        let (key, value) = record(round, offset);
        let records = batch(&key, &value);
        produced.sent.push((key, value));
        let correlation_id = (offset % i32::MAX as u64) as i32;
        match produce_one(&mut stream, &topic, correlation_id, records) {
            Ok((0, acked_offset)) => {
                assert_eq!(acked_offset, offset as i64, "acknowledged at its offset");
                produced.acked += 1;
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Ok((error, _)) => panic!("produce at offset {offset} failed with error {error}"),
            Err(_) => break, // the broker was killed
        }
    }
    produced
}

type Records = Vec<(i64, Vec<u8>, Vec<u8>)>;

/// Every record of partition 0, in offset order: (offset, key, value). Each batch's CRC is
/// checked by the decoder, so a corrupt record fails the test.
fn read_partition(broker: &Broker, topic: &str) -> Records {
    let mut connection = Connection::open(broker);
    let mut records = Vec::new();
    let mut next_offset = 0i64;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "reading {topic} took too long");
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(next_offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let response: FetchResponse = connection.call(ApiKey::Fetch, 12, &request);
        let partition = &response.responses[0].partitions[0];
        if partition.error_code != 0 {
            // Still opening after the restart: try again.
            thread::sleep(Duration::from_millis(100));
            continue;
        }
        if next_offset >= partition.high_watermark {
            return records;
        }
        let mut data = partition.records.clone().unwrap_or_default();
        let mut progressed = false;
        // Whole batches only: a response may end in a partial one.
        while data.len() >= 12 {
            let batch_len = i32::from_be_bytes(data[8..12].try_into().expect("4 bytes")) as usize;
            if data.len() < 12 + batch_len {
                break;
            }
            let mut one = data.split_to(12 + batch_len);
            let set = RecordBatchDecoder::decode(&mut one)
                .unwrap_or_else(|error| panic!("corrupt batch at offset {next_offset}: {error}"));
            for record in set.records {
                records.push((
                    record.offset,
                    record.key.map(|key| key.to_vec()).unwrap_or_default(),
                    record.value.map(|value| value.to_vec()).unwrap_or_default(),
                ));
                next_offset = record.offset + 1;
                progressed = true;
            }
        }
        assert!(
            progressed,
            "fetch at {next_offset} below the high watermark returned nothing"
        );
    }
}

/// What survived, checked against what may be there (`expected[i]` was produced at offset i):
/// offsets 0..n with no gap, each record byte for byte the one produced at its offset, nothing
/// past what was sent. Returns n.
fn check_valid_prefix(records: &Records, expected: &[(Vec<u8>, Vec<u8>)], when: &str) -> u64 {
    for (position, (offset, key, value)) in records.iter().enumerate() {
        assert_eq!(
            *offset, position as i64,
            "{when}: gap in the log: record {position} has offset {offset}"
        );
        let (want_key, want_value) = expected.get(position).unwrap_or_else(|| {
            panic!("{when}: offset {offset} holds a record that was never produced")
        });
        assert!(
            key == want_key && value == want_value,
            "{when}: the record at offset {offset} is not the one produced there"
        );
    }
    records.len() as u64
}

/// One round's outcome.
struct Round {
    /// Acknowledged records in the log before the power loss (all rounds so far).
    acked_end: u64,
    /// Records read back after it.
    survived: u64,
    /// The filesystem's report of what the power loss dropped.
    report: serde_json::Value,
}

/// A broker on the power-loss filesystem. Fields drop in order: the broker stops before its
/// filesystem unmounts and before the directories go.
struct PowerLossRig {
    broker: Broker,
    fs: Option<TestFs>,
    mount: tempfile::TempDir,
    backing: tempfile::TempDir,
    durability: &'static str,
    topic: String,
    /// What may be in the log: `expected[i]` was produced at offset i.
    expected: Vec<(Vec<u8>, Vec<u8>)>,
}

impl PowerLossRig {
    fn start(durability: &'static str) -> Option<PowerLossRig> {
        Self::start_with(durability, BrokerOpts::new())
    }

    /// [`PowerLossRig::start`] with more broker settings.
    fn start_with(durability: &'static str, opts: BrokerOpts) -> Option<PowerLossRig> {
        if let Some(reason) = fuse_unavailable() {
            eprintln!("SKIPPED power-loss test ({durability}): {reason}");
            return None;
        }
        let backing = tempfile::tempdir().expect("backing dir");
        let mount = tempfile::tempdir().expect("mount point");
        let fs = TestFs::mount(backing.path(), mount.path());
        let broker = Broker::start_on(
            opts.set("log.durability", durability)
                .set("offsets.topic.num.partitions", 1)
                .set("num.shards", 1),
            &mount.path().join("data"),
        );
        let topic = unique_topic(&format!("power-loss-{durability}"));
        let mut create = Command::new(strom_bin());
        create
            .args(["topic", "create", &topic, "--partitions", "1", "--config"])
            .arg(format!("segment.bytes={SEGMENT_BYTES}"))
            .args(["--brokers", &broker.bootstrap()]);
        common::run(create, None, CLIENT_TIMEOUT).assert_success();
        Some(PowerLossRig {
            broker,
            fs: Some(fs),
            mount,
            backing,
            durability,
            topic,
            expected: Vec::new(),
        })
    }

    /// Produces until ACKED_PER_ROUND more records are acknowledged, kills the broker (a
    /// produce in flight), cuts the power, mounts the filesystem again, restarts the broker and
    /// checks that what survived is a valid prefix.
    fn power_loss_round(&mut self, round: u64) -> Round {
        let start = self.expected.len() as u64;
        let acked = Arc::new(AtomicU64::new(0));
        let producer = {
            let (addr, topic, acked) = (self.broker.bootstrap(), self.topic.clone(), acked.clone());
            thread::spawn(move || produce_until_broker_dies(addr, topic, round, start, acked))
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while acked.load(Ordering::SeqCst) < ACKED_PER_ROUND {
            assert!(
                !producer.is_finished(),
                "the producer stopped before the power loss"
            );
            assert!(Instant::now() < deadline, "producing took too long");
            thread::sleep(Duration::from_millis(5));
        }
        self.broker.kill9();
        let produced = producer.join().expect("the producer thread");
        let report = self.fs.take().expect("mounted").lose_power();
        let acked_end = start + produced.acked;
        self.expected.extend(produced.sent);

        // "Reboot": the same disk, a fresh filesystem, the same broker.
        self.fs = Some(TestFs::mount(self.backing.path(), self.mount.path()));
        self.broker.restart();
        let records = read_partition(&self.broker, &self.topic);
        let when = format!("{} round {round}", self.durability);
        let survived = check_valid_prefix(&records, &self.expected, &when);
        // The next round produces after what survived.
        self.expected.truncate(survived as usize);
        eprintln!(
            "{when}: {acked_end} acknowledged, {survived} survived; the power loss dropped {report}"
        );
        Round {
            acked_end,
            survived,
            report,
        }
    }

    /// The restarted broker appends right after what survived, and the new record reads back.
    fn takes_new_appends(&mut self) {
        let offset = self.expected.len() as u64;
        let (key, value) = record(u64::MAX, offset);
        let mut connection = Connection::open(&self.broker);
        let (error, acked_offset) = connection.produce(&self.topic, 0, batch(&key, &value));
        assert_eq!(error, 0, "produce after the power loss");
        assert_eq!(
            acked_offset, offset as i64,
            "the next append follows the surviving prefix, with no gap"
        );
        self.expected.push((key, value));
        let records = read_partition(&self.broker, &self.topic);
        let read = check_valid_prefix(&records, &self.expected, "after the power losses");
        assert_eq!(read, offset + 1, "the new record reads back");
    }
}

fn rounds() -> u64 {
    std::env::var("STROM_POWER_LOSS_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS)
}

#[test]
fn sync_durability_keeps_every_acknowledged_record_through_power_loss() {
    let Some(mut rig) = PowerLossRig::start("sync") else {
        return;
    };
    for round in 0..rounds() {
        let Round {
            acked_end,
            survived,
            ..
        } = rig.power_loss_round(round);
        assert!(
            survived >= acked_end,
            "sync round {round}: {} acknowledged records were lost in the power loss \
             ({survived} of {acked_end} left)",
            acked_end - survived
        );
    }
    rig.takes_new_appends();
}

#[test]
fn none_durability_loses_an_unsynced_tail_but_never_corrupts() {
    let Some(mut rig) = PowerLossRig::start("none") else {
        return;
    };
    for round in 0..rounds() {
        let Round {
            acked_end,
            survived,
            report,
        } = rig.power_loss_round(round);
        // Under `none` the active segment is never synced, and the last acknowledged record is
        // always in it: a power loss always costs something.
        assert!(
            survived < acked_end,
            "none round {round}: nothing acknowledged was lost, so this test could not tell \
             `none` from `sync` (filesystem report {report})"
        );
        assert!(
            report["bytes"].as_u64().unwrap_or(0) > 0,
            "the power loss dropped unsynced bytes: {report}"
        );
    }
    rig.takes_new_appends();
}

#[test]
fn interval_durability_loses_at_most_an_unsynced_tail() {
    // Synced every 5 ms: what a power loss keeps depends on timing, so only the promise that
    // holds for every durability is checked (inside each round): a valid prefix, no corrupt
    // record, no gap, nothing never produced; and appends go on after it.
    let Some(mut rig) = PowerLossRig::start_with(
        "interval",
        BrokerOpts::new().set("log.flush.interval.ms", 5),
    ) else {
        return;
    };
    for round in 0..rounds() {
        rig.power_loss_round(round);
    }
    rig.takes_new_appends();
}

/// The filesystem itself, through a real mount: after a power loss exactly what was synced is
/// left, for data (fsync of the file) and for names (fsync of the directory).
#[test]
fn the_filesystem_keeps_exactly_what_was_synced() {
    if let Some(reason) = fuse_unavailable() {
        eprintln!("SKIPPED power-loss filesystem test: {reason}");
        return;
    }
    use std::fs::{self, File};
    let backing = tempfile::tempdir().expect("backing dir");
    let mount = tempfile::tempdir().expect("mount point");
    let fs = TestFs::mount(backing.path(), mount.path());
    let at = |name: &str| mount.path().join(name);
    let sync_dir = || File::open(mount.path()).and_then(|dir| dir.sync_all());

    // Synced data and names survive; a later unsynced append does not.
    let mut kept = File::create(at("kept")).expect("create kept");
    kept.write_all(b"synced").expect("write");
    kept.sync_data().expect("fdatasync");
    sync_dir().expect("sync dir");
    kept.write_all(b"+unsynced").expect("append");
    drop(kept);
    // A removal and a rename made durable by a directory sync.
    fs::write(at("doomed"), b"x").expect("create doomed");
    fs::write(at("moved"), b"m").expect("create moved");
    File::open(at("moved"))
        .and_then(|file| file.sync_all())
        .expect("sync moved");
    sync_dir().expect("sync dir");
    fs::remove_file(at("doomed")).expect("remove doomed");
    fs::rename(at("moved"), at("moved-durably")).expect("rename");
    sync_dir().expect("sync dir");
    // Names changed after the last directory sync: all undone.
    fs::write(at("created-late"), b"late").expect("create late");
    File::open(at("created-late"))
        .and_then(|file| file.sync_all())
        .expect("a file's own fsync does not make its name durable");
    fs::rename(at("moved-durably"), at("moved-late")).expect("rename late");
    fs::remove_file(at("kept")).expect("remove late");
    fs::create_dir(at("dir-late")).expect("mkdir late");
    // Reads see the unsynced state before the power loss.
    assert_eq!(fs::read(at("moved-late")).expect("read"), b"m");
    assert!(!at("kept").exists());

    let report = fs.lose_power();
    assert_eq!(report["namespace_ops"], 4, "{report}");
    let mut left: Vec<String> = fs::read_dir(backing.path())
        .expect("list backing")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| !name.starts_with(".strom-powerloss"))
        .collect();
    left.sort();
    assert_eq!(left, ["kept", "moved-durably"]);
    assert_eq!(
        fs::read(backing.path().join("kept")).expect("kept"),
        b"synced"
    );
    assert_eq!(
        fs::read(backing.path().join("moved-durably")).expect("moved"),
        b"m"
    );
}
