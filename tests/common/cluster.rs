//! A cluster of real `strom` brokers on a real ZooKeeper, for the issue-9 cluster tests.
//!
//! `Cluster::start(n, opts)` starts ZooKeeper (Debian's `zookeeper` package, through
//! `strom_tools::zookeeper_process`) on a free port and `n` brokers with `broker.id` 1..=n, each a
//! [`Broker`] of the shared harness (own port, own log dir, log printed when the test fails), and
//! waits until every broker lists all of them in Metadata.
//!
//! Observations go through two independent channels, so a test can cross-check them:
//! - the Kafka protocol ([`fetch_metadata`], [`describe_cluster`], [`elect_preferred_leaders`]), what a
//!   client sees;
//! - ZooKeeper itself ([`ZkReader`]), the znodes' Kafka 2.8 JSON and their versions.
//!
//! Probes that may hit a broker in the middle of a failover return `Result` instead of panicking;
//! [`wait_for`] polls them until a condition holds and reports the last observation on timeout.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, ElectLeadersRequest, ElectLeadersResponse,
    MetadataRequest, MetadataResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use strom_server::coordination::{
    Coordination, CoordinationError, MultiOp, Stat, ZooKeeperSettings,
};
use strom_tools::zookeeper_process::ZooKeeperProcess;

use super::kafka_wire::request_frame;
use super::{Broker, BrokerOpts};

/// The session timeout the cluster tests use unless a test overrides it: short, so a killed broker
/// is noticed in seconds, yet long enough for a loaded 2-core CI machine not to expire live
/// sessions.
pub const TEST_SESSION_TIMEOUT_MS: u64 = 6000;
/// How long a fresh cluster may take until every broker sees every other.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of one protocol request of a probe.
const PROBE_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two probes of [`wait_for`].
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Largest response a probe accepts (a test cluster's metadata is a few KiB).
const RESPONSE_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Kafka's error codes the tests look for.
pub const NONE: i16 = 0;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const ELECTION_NOT_NEEDED: i16 = 84;

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

/// A ZooKeeper and `n` brokers. Brokers are addressed by their `broker.id` (1..=n). Dropping it
/// kills every broker (printing their logs if the test failed) and then ZooKeeper.
pub struct Cluster {
    /// Index `id - 1`. Declared before `zookeeper` so brokers die first on drop.
    brokers: Vec<Broker>,
    zookeeper: Option<ZooKeeperProcess>,
    zk_dir: tempfile::TempDir,
    opts: BrokerOpts,
    session_timeout_ms: u64,
    reader: Option<ZkReader>,
}

impl Cluster {
    /// Starts ZooKeeper and `brokers` brokers sharing `opts` (plus `broker.id`, `zookeeper.connect`
    /// and, unless `opts` sets it, `zookeeper.session.timeout.ms` = [`TEST_SESSION_TIMEOUT_MS`]),
    /// then waits until each broker's Metadata lists all of them.
    pub fn start(brokers: usize, opts: BrokerOpts) -> Cluster {
        let mut cluster = Cluster::start_zookeeper(opts);
        for id in 1..=brokers as i32 {
            cluster.add_broker(id);
        }
        cluster.wait_formed(FORM_TIMEOUT);
        cluster
    }

    /// ZooKeeper alone; add brokers with [`Cluster::add_broker`].
    pub fn start_zookeeper(opts: BrokerOpts) -> Cluster {
        let zk_dir = tempfile::Builder::new()
            .prefix("strom-zk-")
            .tempdir()
            .expect("create ZooKeeper's temporary directory");
        let zookeeper = ZooKeeperProcess::start(zk_dir.path(), 0)
            .unwrap_or_else(|e| panic!("start ZooKeeper (the cluster tests need it): {e}"));
        let session_timeout_ms = opts
            .get("zookeeper.session.timeout.ms")
            .map(|v| v.parse().expect("numeric zookeeper.session.timeout.ms"))
            .unwrap_or(TEST_SESSION_TIMEOUT_MS);
        Cluster {
            brokers: Vec::new(),
            zookeeper: Some(zookeeper),
            zk_dir,
            opts,
            session_timeout_ms,
            reader: None,
        }
    }

    /// `zookeeper.connect` of this cluster.
    pub fn zookeeper_connect(&self) -> String {
        self.zookeeper
            .as_ref()
            .expect("ZooKeeper is running")
            .connect_string()
    }

    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }

    /// The options broker `id` starts with.
    pub fn broker_opts(&self, id: i32) -> BrokerOpts {
        let mut opts = self
            .opts
            .clone()
            .set("broker.id", id)
            .set("zookeeper.connect", self.zookeeper_connect());
        if self.opts.get("zookeeper.session.timeout.ms").is_none() {
            opts = opts.set("zookeeper.session.timeout.ms", self.session_timeout_ms);
        }
        opts
    }

    /// Starts the next broker; ids must be added in order 1, 2, ...
    pub fn add_broker(&mut self, id: i32) {
        assert_eq!(
            id as usize,
            self.brokers.len() + 1,
            "brokers are added in id order"
        );
        let broker = Broker::start(self.broker_opts(id));
        self.brokers.push(broker);
    }

    /// Waits until every running broker lists exactly the running brokers in Metadata and names
    /// one of them as controller.
    pub fn wait_formed(&mut self, timeout: Duration) {
        let live = self.live_ids();
        let addrs: Vec<(i32, SocketAddr)> = live.iter().map(|id| (*id, self.addr(*id))).collect();
        wait_for(timeout, "every broker to see the whole cluster", || {
            for (id, addr) in &addrs {
                let md = fetch_metadata(*addr, Some(&[]))?;
                let seen: Vec<i32> = md.brokers.keys().copied().collect();
                if seen != live || !live.contains(&md.controller_id) {
                    return Err(format!(
                        "broker {id} sees brokers {seen:?} and controller {}",
                        md.controller_id
                    ));
                }
            }
            Ok(())
        });
    }

    pub fn broker(&mut self, id: i32) -> &mut Broker {
        let index = usize::try_from(id - 1).expect("broker ids start at 1");
        &mut self.brokers[index]
    }

    pub fn ids(&self) -> Vec<i32> {
        (1..=self.brokers.len() as i32).collect()
    }

    /// Ids of brokers whose process runs (a SIGSTOPped one counts as running).
    pub fn live_ids(&mut self) -> Vec<i32> {
        self.ids()
            .into_iter()
            .filter(|id| self.broker(*id).is_running())
            .collect()
    }

    pub fn addr(&self, id: i32) -> SocketAddr {
        self.brokers[(id - 1) as usize].addr()
    }

    pub fn bootstrap(&self, id: i32) -> String {
        self.brokers[(id - 1) as usize].bootstrap()
    }

    /// Bootstrap string naming every broker.
    pub fn bootstrap_all(&self) -> String {
        self.brokers
            .iter()
            .map(Broker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn log_dir(&self, id: i32) -> &Path {
        self.brokers[(id - 1) as usize].log_dirs()
    }

    /// Metadata of `topics` (`None`: all) as broker `id` answers it; panics if it cannot answer.
    pub fn metadata(&self, id: i32, topics: Option<&[&str]>) -> ClusterMetadata {
        fetch_metadata(self.addr(id), topics)
            .unwrap_or_else(|e| panic!("Metadata from broker {id}: {e}"))
    }

    /// Broker `id`'s view of one partition (`Err` while it does not know it).
    pub fn partition(&self, id: i32, topic: &str, partition: i32) -> Result<PartitionMeta, String> {
        let md = fetch_metadata(self.addr(id), Some(&[topic]))?;
        md.partition(topic, partition)
    }

    /// Creates `topic` through broker `id` with CreateTopics and waits until every running broker's
    /// Metadata shows a leader for each partition.
    pub fn create_topic(
        &mut self,
        id: i32,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(&str, &str)],
    ) {
        let code = create_topic(
            self.addr(id),
            topic,
            partitions,
            replication_factor,
            configs,
        )
        .unwrap_or_else(|e| panic!("CreateTopics {topic} through broker {id}: {e}"));
        assert_eq!(code, NONE, "CreateTopics {topic} through broker {id}");
        self.wait_topic_ready(topic, partitions, Duration::from_secs(20));
    }

    /// Like [`Cluster::create_topic`] with an explicit replica assignment.
    pub fn create_topic_assigned(
        &mut self,
        id: i32,
        topic: &str,
        assignment: &[Vec<i32>],
        configs: &[(&str, &str)],
    ) {
        let code = create_topic_assigned(self.addr(id), topic, 0, 0, assignment, configs)
            .unwrap_or_else(|e| panic!("CreateTopics {topic} through broker {id}: {e}"));
        assert_eq!(code, NONE, "CreateTopics {topic} through broker {id}");
        self.wait_topic_ready(topic, assignment.len() as i32, Duration::from_secs(20));
    }

    /// The controller every running broker agrees on (and `/controller` names), waiting up to
    /// `timeout` for them to agree on one that is not `not` (which is not asked: it may be
    /// dead or frozen).
    pub fn wait_controller(&mut self, timeout: Duration, not: Option<i32>) -> i32 {
        let live: Vec<i32> = self
            .live_ids()
            .into_iter()
            .filter(|id| Some(*id) != not)
            .collect();
        let addrs: Vec<(i32, SocketAddr)> = live.iter().map(|id| (*id, self.addr(*id))).collect();
        let reader = self.zk();
        wait_for(timeout, "the brokers to agree on a new controller", || {
            let in_zk = reader
                .get_json("/controller")
                .and_then(|(json, _)| json["brokerid"].as_i64())
                .map(|id| id as i32);
            let Some(controller) = in_zk.filter(|c| Some(*c) != not && live.contains(c)) else {
                return Err(format!("/controller names {in_zk:?}"));
            };
            for (id, addr) in &addrs {
                let md = fetch_metadata(*addr, Some(&[]))?;
                if md.controller_id != controller {
                    return Err(format!(
                        "broker {id} names controller {} while /controller names {controller}",
                        md.controller_id
                    ));
                }
            }
            Ok(controller)
        })
    }

    /// Every partition state znode of `topic` (`partitions` of them) as (leader, leader_epoch,
    /// isr, controller_epoch).
    pub fn states_in_zk(&mut self, topic: &str, partitions: i32) -> Vec<(i32, i32, Vec<i32>, i32)> {
        (0..partitions)
            .map(|p| {
                let state = self
                    .zk()
                    .partition_state(topic, p)
                    .unwrap_or_else(|| panic!("no state znode for {topic}-{p}"));
                (
                    state["leader"].as_i64().expect("leader") as i32,
                    state["leader_epoch"].as_i64().expect("leader_epoch") as i32,
                    json_ids(&state["isr"], "isr"),
                    state["controller_epoch"]
                        .as_i64()
                        .expect("controller_epoch") as i32,
                )
            })
            .collect()
    }

    /// Waits until every running broker shows `partitions` partitions of `topic`, each with a
    /// leader.
    pub fn wait_topic_ready(&mut self, topic: &str, partitions: i32, timeout: Duration) {
        let addrs: Vec<(i32, SocketAddr)> = self
            .live_ids()
            .into_iter()
            .map(|id| (id, self.addr(id)))
            .collect();
        wait_for(
            timeout,
            &format!("{topic} to have leaders everywhere"),
            || {
                for (id, addr) in &addrs {
                    let md = fetch_metadata(*addr, Some(&[topic]))?;
                    let t = md.topic(topic)?;
                    if t.partitions.len() != partitions as usize
                        || t.partitions.values().any(|p| p.leader < 0)
                    {
                        return Err(format!("broker {id} shows {t:?}"));
                    }
                }
                Ok(())
            },
        );
    }

    /// Waits until broker `observer` shows `topic`-`partition` satisfying `pred`; returns it.
    pub fn wait_partition(
        &self,
        observer: i32,
        topic: &str,
        partition: i32,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&PartitionMeta) -> bool,
    ) -> PartitionMeta {
        let addr = self.addr(observer);
        wait_for(timeout, what, || {
            let md = fetch_metadata(addr, Some(&[topic]))?;
            let p = md.partition(topic, partition)?;
            if pred(&p) {
                Ok(p)
            } else {
                Err(format!(
                    "broker {observer} shows {topic}-{partition}: {p:?}"
                ))
            }
        })
    }

    /// The controller id in ZooKeeper's `/controller`, if any.
    pub fn controller_in_zk(&mut self) -> Option<i32> {
        let (json, _) = self.zk().get_json("/controller")?;
        json["brokerid"].as_i64().map(|id| id as i32)
    }

    /// `/controller_epoch`'s value and znode version.
    pub fn controller_epoch_in_zk(&mut self) -> (i32, i32) {
        let (json, stat) = self
            .zk()
            .get_json("/controller_epoch")
            .expect("/controller_epoch exists");
        let epoch = json.as_i64().expect("/controller_epoch holds a number") as i32;
        (epoch, stat.version)
    }

    /// A ZooKeeper client of the test's own (opened on first use).
    pub fn zk(&mut self) -> &ZkReader {
        if self.reader.is_none() {
            self.reader = Some(ZkReader::connect(&self.zookeeper_connect()));
        }
        self.reader.as_ref().expect("just opened")
    }

    /// Sends `signal` to broker `id` without waiting (SIGSTOP / SIGCONT).
    pub fn signal(&mut self, id: i32, signal: libc::c_int) {
        self.broker(id).signal(signal);
    }

    /// Where broker `id` would keep `topic`-`partition`'s files.
    pub fn replica_dir(&self, id: i32, topic: &str, partition: i32) -> PathBuf {
        self.log_dir(id).join(format!("{topic}-{partition}"))
    }

    /// Directory of ZooKeeper's data and log (kept alive with the cluster).
    pub fn zookeeper_dir(&self) -> &Path {
        self.zk_dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Close our session before ZooKeeper goes, so the client does not spin reconnecting.
        self.reader = None;
        // Brokers first (each prints its log if the test failed), then ZooKeeper.
        self.brokers.clear();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.zk_dir.path().join("zookeeper.log"))
                .unwrap_or_default();
            eprintln!(
                "===== ZooKeeper log, last 8 KiB:\n{}\n===== end of ZooKeeper log",
                super::tail(&log, 8 * 1024)
            );
        }
        if let Some(zookeeper) = self.zookeeper.take() {
            if let Err(error) = zookeeper.stop() {
                eprintln!("ZooKeeper did not stop cleanly: {error}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Polling
// ---------------------------------------------------------------------------------------------

/// Polls `probe` every 100 ms until it returns `Ok`, and returns that value. Panics after
/// `timeout` with `what` and the last `Err` (the observation that did not satisfy the test).
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) => {
                if Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
                }
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol probes
// ---------------------------------------------------------------------------------------------

/// What a broker's Metadata (v12) says.
#[derive(Clone, Debug)]
pub struct ClusterMetadata {
    /// broker id -> (host, port)
    pub brokers: BTreeMap<i32, (String, i32)>,
    pub controller_id: i32,
    pub cluster_id: Option<String>,
    pub topics: BTreeMap<String, TopicMeta>,
}

#[derive(Clone, Debug)]
pub struct TopicMeta {
    pub error_code: i16,
    pub partitions: BTreeMap<i32, PartitionMeta>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionMeta {
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

impl ClusterMetadata {
    pub fn topic(&self, topic: &str) -> Result<&TopicMeta, String> {
        let t = self
            .topics
            .get(topic)
            .ok_or_else(|| format!("no topic {topic} in {:?}", self.topics.keys()))?;
        if t.error_code != NONE && t.error_code != LEADER_NOT_AVAILABLE {
            return Err(format!("topic {topic} has error {}", t.error_code));
        }
        Ok(t)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Result<PartitionMeta, String> {
        self.topic(topic)?
            .partitions
            .get(&partition)
            .cloned()
            .ok_or_else(|| format!("no partition {topic}-{partition}"))
    }

    /// How many partitions of `topic` each broker leads.
    pub fn leader_counts(&self, topic: &str) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        if let Some(t) = self.topics.get(topic) {
            for p in t.partitions.values() {
                *counts.entry(p.leader).or_insert(0) += 1;
            }
        }
        counts
    }
}

/// One request/response exchange on a fresh connection, every step bounded by
/// [`PROBE_IO_TIMEOUT`]; errors are returned (the broker may be down mid-failover).
pub fn exchange<Req, Resp>(
    addr: SocketAddr,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> Result<Resp, String>
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    exchange_with_timeout(addr, api, version, request, PROBE_IO_TIMEOUT)
}

fn exchange_with_timeout<Req, Resp>(
    addr: SocketAddr,
    api: ApiKey,
    version: i16,
    request: &Req,
    io_timeout: Duration,
) -> Result<Resp, String>
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    let io = |e: std::io::Error| format!("{api:?} to {addr}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_IO_TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(io_timeout)).map_err(io)?;
    stream.set_write_timeout(Some(io_timeout)).map_err(io)?;
    let correlation_id = 7;
    stream
        .write_all(&request_frame(api, version, correlation_id, request))
        .map_err(io)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(io)?;
    let size = usize::try_from(i32::from_be_bytes(size)).map_err(|e| format!("{api:?}: {e}"))?;
    if size > RESPONSE_MAX_BYTES {
        return Err(format!("{api:?} response of {size} bytes"));
    }
    let mut body = vec![0u8; size];
    stream.read_exact(&mut body).map_err(io)?;
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, Resp::header_version(version))
        .map_err(|e| format!("{api:?} response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!("{api:?}: wrong correlation id"));
    }
    Resp::decode(&mut body, version).map_err(|e| format!("{api:?} response: {e}"))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Metadata v12 of `topics` (`None`: all topics; `Some(&[])`: brokers only).
pub fn fetch_metadata(
    addr: SocketAddr,
    topics: Option<&[&str]>,
) -> Result<ClusterMetadata, String> {
    let request = MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse = exchange(addr, ApiKey::Metadata, 12, &request)?;
    let brokers = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, (b.host.to_string(), b.port)))
        .collect();
    let topics = response
        .topics
        .iter()
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.to_string();
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        PartitionMeta {
                            error_code: p.error_code,
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                            offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                        },
                    )
                })
                .collect();
            Some((
                name,
                TopicMeta {
                    error_code: t.error_code,
                    partitions,
                },
            ))
        })
        .collect();
    Ok(ClusterMetadata {
        brokers,
        controller_id: response.controller_id.0,
        cluster_id: response.cluster_id.map(|s| s.to_string()),
        topics,
    })
}

/// DescribeCluster v0: (controller id, broker ids, cluster id).
pub fn describe_cluster(addr: SocketAddr) -> Result<(i32, Vec<i32>, String), String> {
    let response: DescribeClusterResponse = exchange(
        addr,
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    )?;
    if response.error_code != NONE {
        return Err(format!("DescribeCluster error {}", response.error_code));
    }
    let mut ids: Vec<i32> = response.brokers.iter().map(|b| b.broker_id.0).collect();
    ids.sort_unstable();
    Ok((
        response.controller_id.0,
        ids,
        response.cluster_id.to_string(),
    ))
}

/// CreateTopics v7 of one topic; returns its error code.
pub fn create_topic(
    addr: SocketAddr,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(&str, &str)],
) -> Result<i16, String> {
    create_topic_assigned(addr, topic, partitions, replication_factor, &[], configs)
}

/// CreateTopics v7 of one topic with an explicit replica assignment (partition `i` on
/// `assignment[i]`; empty: let the broker assign, then `partitions` and `replication_factor`
/// apply). Returns its error code.
pub fn create_topic_assigned(
    addr: SocketAddr,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    assignment: &[Vec<i32>],
    configs: &[(&str, &str)],
) -> Result<i16, String> {
    use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
    use kafka_protocol::messages::BrokerId;
    let (partitions, replication_factor) = if assignment.is_empty() {
        (partitions, replication_factor)
    } else {
        (-1, -1)
    };
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(15_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_assignments(
                assignment
                    .iter()
                    .enumerate()
                    .map(|(index, brokers)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(index as i32)
                            .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect(),
            )
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            )]);
    let response: CreateTopicsResponse = exchange_with_timeout(
        addr,
        ApiKey::CreateTopics,
        7,
        &request,
        Duration::from_secs(20),
    )?;
    response
        .topics
        .first()
        .map(|t| t.error_code)
        .ok_or_else(|| "CreateTopics answered no topic".to_string())
}

/// DeleteTopics v5 of one topic; returns its error code.
pub fn delete_topic(addr: SocketAddr, topic: &str) -> Result<i16, String> {
    let request = DeleteTopicsRequest::default()
        .with_timeout_ms(15_000)
        .with_topic_names(vec![topic_name(topic)]);
    let response: DeleteTopicsResponse = exchange_with_timeout(
        addr,
        ApiKey::DeleteTopics,
        5,
        &request,
        Duration::from_secs(20),
    )?;
    response
        .responses
        .first()
        .map(|t| t.error_code)
        .ok_or_else(|| "DeleteTopics answered no topic".to_string())
}

/// ElectLeaders v2 (preferred) for every partition of `topic` in `0..partitions`; returns the
/// top-level error and each partition's (index, error code).
pub fn elect_preferred_leaders(
    addr: SocketAddr,
    topic: &str,
    partitions: i32,
) -> Result<(i16, Vec<(i32, i16)>), String> {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    let request = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(15_000)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(topic_name(topic))
            .with_partitions((0..partitions).collect())]));
    let response: ElectLeadersResponse = exchange_with_timeout(
        addr,
        ApiKey::ElectLeaders,
        2,
        &request,
        Duration::from_secs(20),
    )?;
    let results = response
        .replica_election_results
        .iter()
        .flat_map(|t| t.partition_result.iter())
        .map(|p| (p.partition_id, p.error_code))
        .collect();
    Ok((response.error_code, results))
}

// ---------------------------------------------------------------------------------------------
// ZooKeeper, read directly
// ---------------------------------------------------------------------------------------------

/// A ZooKeeper session of the test's own, through Strom's `Coordination` client, to read the
/// znodes the brokers wrote. Its runtime has a worker thread so the session keeps pinging between
/// calls.
pub struct ZkReader {
    client: Coordination,
    runtime: tokio::runtime::Runtime,
}

impl ZkReader {
    pub fn connect(connect: &str) -> ZkReader {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime for the ZooKeeper reader");
        let settings = ZooKeeperSettings {
            connect: connect.to_string(),
            session_timeout_ms: 30_000,
            connection_timeout_ms: 10_000,
        };
        let client = runtime
            .block_on(Coordination::connect_zookeeper(&settings))
            .unwrap_or_else(|e| panic!("test's own ZooKeeper session to {connect}: {e}"));
        ZkReader { client, runtime }
    }

    /// A znode's data and stat, `None` if it does not exist.
    pub fn get(&self, path: &str) -> Option<(Bytes, Stat)> {
        match self.runtime.block_on(self.client.get(path)) {
            Ok(found) => Some(found),
            Err(CoordinationError::NoNode { .. }) => None,
            Err(e) => panic!("read {path} from ZooKeeper: {e}"),
        }
    }

    /// A znode's data parsed as JSON (panics on invalid JSON: the brokers must write JSON).
    pub fn get_json(&self, path: &str) -> Option<(serde_json::Value, Stat)> {
        let (data, stat) = self.get(path)?;
        let json = serde_json::from_slice(&data).unwrap_or_else(|e| {
            panic!(
                "{path} is not JSON ({e}): {}",
                String::from_utf8_lossy(&data)
            )
        });
        Some((json, stat))
    }

    /// Children's names, sorted; empty if the node does not exist.
    pub fn children(&self, path: &str) -> Vec<String> {
        match self.runtime.block_on(self.client.children(path)) {
            Ok(mut names) => {
                names.sort();
                names
            }
            Err(CoordinationError::NoNode { .. }) => Vec::new(),
            Err(e) => panic!("list {path} in ZooKeeper: {e}"),
        }
    }

    /// Runs a `multi` with the test's own session (to replay what a broker would write).
    pub fn multi(&self, ops: Vec<MultiOp>) -> Result<(), CoordinationError> {
        self.runtime.block_on(self.client.multi(ops))
    }

    /// `/brokers/topics/<t>/partitions/<p>/state` as JSON.
    pub fn partition_state(&self, topic: &str, partition: i32) -> Option<serde_json::Value> {
        self.get_json(&format!(
            "/brokers/topics/{topic}/partitions/{partition}/state"
        ))
        .map(|(json, _)| json)
    }
}

impl Drop for ZkReader {
    fn drop(&mut self) {
        self.runtime.block_on(self.client.close());
    }
}

/// A JSON array of integers as a Vec (panics, naming `what`, on anything else).
pub fn json_ids(value: &serde_json::Value, what: &str) -> Vec<i32> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {value}"))
        .iter()
        .map(|v| {
            v.as_i64()
                .unwrap_or_else(|| panic!("{what} has a non-integer: {value}")) as i32
        })
        .collect()
}
