//! `strom cluster info` against a real broker, and `strom cluster up` with a real ZooKeeper
//! (Debian's `zookeeper` package).

mod common;
mod tools_support;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use tools_support::*;

#[test]
fn cluster_info_lists_brokers_controller_and_topics() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("tools-cluster");
    create_topic(&broker, &topic, 4);
    let out = strom(&broker, &["cluster", "info"]);
    out.assert_success();
    let text = out.stdout_str();
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with("Cluster ID: ") && l.len() > "Cluster ID: ".len()),
        "{text}"
    );
    assert!(text.contains("Controller: "), "{text}");
    assert!(text.contains("Brokers: 1"), "{text}");
    let broker_row = table_rows(&out)
        .into_iter()
        .find(|r| r.get(1) == Some(&broker.bootstrap()))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        broker_row.last().map(String::as_str),
        Some("controller"),
        "{text}"
    );
    assert!(text.contains("Topics: 1 (4 partitions)"), "{text}");
}

#[test]
fn cluster_info_json_has_brokers_controller_topics_and_no_unhealthy_partitions() {
    let broker = Broker::start(BrokerOpts::new());
    let topic = unique_topic("tools-cluster-json");
    create_topic(&broker, &topic, 3);
    let out = strom(&broker, &["cluster", "info", "--json"]);
    out.assert_success();
    let info: serde_json::Value = serde_json::from_str(&out.stdout_str())
        .unwrap_or_else(|e| panic!("{e}: {}", out.stdout_str()));
    let brokers = info["brokers"].as_array().expect("brokers array");
    assert_eq!(brokers.len(), 1, "{info}");
    assert_eq!(brokers[0]["port"], i64::from(broker.port()), "{info}");
    assert_eq!(brokers[0]["is_controller"], true, "{info}");
    assert_eq!(info["controller_id"], brokers[0]["id"], "{info}");
    assert!(
        info["cluster_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{info}"
    );
    assert_eq!(info["topics"], 1, "{info}");
    assert_eq!(info["partitions"], 3, "{info}");
    assert_eq!(info["offline_partitions"], serde_json::json!([]), "{info}");
    assert_eq!(
        info["under_replicated_partitions"],
        serde_json::json!([]),
        "{info}"
    );
}

// ---------------------------------------------------------------------------------------------
// strom cluster up
// ---------------------------------------------------------------------------------------------

/// Longest a `cluster up` run may live in a test (start, checks, stop).
const CLUSTER_UP_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest wait for `cluster up` to print the bootstrap line (a JVM and brokers starting).
const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// One row of the brokers table `cluster up` prints.
#[derive(Debug)]
struct UpBroker {
    id: i32,
    address: String,
    /// Its admin listener, `http://127.0.0.1:PORT`.
    admin: String,
    pid: i32,
    log_dir: PathBuf,
}

/// A running `strom cluster up`, with what it printed once ready.
struct LocalCluster {
    process: Background,
    dir: tempfile::TempDir,
    zookeeper: String,
    bootstrap: String,
    brokers: Vec<UpBroker>,
}

impl LocalCluster {
    fn start(brokers: u16, extra: &[&str]) -> LocalCluster {
        let dir = tempfile::Builder::new()
            .prefix("strom-cluster-up-")
            .tempdir()
            .expect("tempdir");
        let base_port = free_consecutive_ports(brokers).to_string();
        let count = brokers.to_string();
        let dir_arg = dir.path().to_str().expect("utf-8 temp path").to_owned();
        let mut args = vec![
            "cluster",
            "up",
            "--brokers",
            &count,
            "--dir",
            &dir_arg,
            "--base-port",
            &base_port,
        ];
        args.extend_from_slice(extra);
        let mut process = strom_raw_background(&args, CLUSTER_UP_TIMEOUT);
        let zookeeper = process
            .wait_for_line(CLUSTER_READY_TIMEOUT, |l| l.starts_with("ZooKeeper: "))
            .split_whitespace()
            .nth(1)
            .expect("ZooKeeper address")
            .to_owned();
        let bootstrap = process
            .wait_for_line(CLUSTER_READY_TIMEOUT, |l| l.starts_with("Bootstrap: "))
            .trim_start_matches("Bootstrap: ")
            .to_owned();
        let mut rows = Vec::new();
        process.wait_for_line(CLUSTER_READY_TIMEOUT, |l| l.trim_start().starts_with("ID"));
        loop {
            let line = process.wait_for_line(CLUSTER_READY_TIMEOUT, |_| true);
            if line.starts_with("Broker output:") {
                break;
            }
            let cells: Vec<&str> = line.split_whitespace().collect();
            if let [id, address, admin, pid, log_dir] = cells[..] {
                rows.push(UpBroker {
                    id: id.parse().expect("broker id"),
                    address: address.to_owned(),
                    admin: admin.to_owned(),
                    pid: pid.parse().expect("pid"),
                    log_dir: PathBuf::from(log_dir),
                });
            }
        }
        LocalCluster {
            process,
            dir,
            zookeeper,
            bootstrap,
            brokers: rows,
        }
    }

    /// Ctrl-C, then everything `cluster up` printed.
    fn stop_with_sigint(self) -> (CmdOutput, tempfile::TempDir) {
        self.process.signal(libc::SIGINT);
        (self.process.finish(), self.dir)
    }
}

/// A base port whose next `count` ports were free a moment ago.
fn free_consecutive_ports(count: u16) -> u16 {
    for _ in 0..50 {
        let base = pick_free_port();
        let all_free = (0..count).all(|offset| {
            base.checked_add(offset)
                .is_some_and(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        });
        if all_free {
            return base;
        }
    }
    panic!("no {count} consecutive free ports found");
}

/// The status code of `GET path` on `address` (HTTP/1.1, one request), `None` when it fails.
fn http_get_status(address: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

fn process_exists(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn cluster_up_starts_a_broker_on_zookeeper_and_stops_it_on_ctrl_c() {
    let cluster = LocalCluster::start(1, &[]);
    assert_eq!(cluster.brokers.len(), 1, "{:?}", cluster.brokers);
    let broker = &cluster.brokers[0];
    assert_eq!(broker.id, 1);
    assert_eq!(cluster.bootstrap, broker.address);
    assert_eq!(broker.log_dir, cluster.dir.path().join("broker-1"));
    assert!(process_exists(broker.pid), "broker pid {} runs", broker.pid);
    let properties = std::fs::read_to_string(cluster.dir.path().join("broker-1.properties"))
        .expect("broker-1.properties");
    assert!(properties.contains("broker.id=1\n"), "{properties}");
    assert!(
        properties.contains(&format!("zookeeper.connect={}\n", cluster.zookeeper)),
        "{properties}"
    );

    // Its admin listener answers the liveness probe at the printed address.
    let admin = broker
        .admin
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("admin listener {:?}", broker.admin));
    assert!(
        properties.contains(&format!("admin.listeners=http://{admin}\n")),
        "{properties}"
    );
    assert_eq!(http_get_status(admin, "/v1/status/live"), Some(200));

    // The broker answers clients at the printed bootstrap address.
    let info = strom_raw(&["cluster", "info", "--brokers", &cluster.bootstrap]);
    info.assert_success();
    let text = info.stdout_str();
    assert!(text.contains("Brokers: 1"), "{text}");
    assert!(
        table_rows(&info)
            .iter()
            .any(|row| row.first().map(String::as_str) == Some("1")
                && row.get(1) == Some(&cluster.bootstrap)),
        "{text}"
    );

    let pid = broker.pid;
    let zookeeper = cluster.zookeeper.clone();
    let (out, dir) = cluster.stop_with_sigint();
    out.assert_success();
    let stderr = out.stderr_str();
    assert!(
        stderr.contains("broker 1 stopped (exit code 0)"),
        "the broker stops cleanly on SIGTERM: {stderr}"
    );
    assert!(!process_exists(pid), "broker {pid} was waited for");
    assert!(
        TcpStream::connect(&zookeeper).is_err(),
        "ZooKeeper on {zookeeper} was stopped"
    );
    assert!(
        dir.path().join("broker-1.log").exists(),
        "broker output goes to DIR/broker-1.log"
    );
}

#[test]
fn cluster_up_reports_a_broker_that_exits_and_stops_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base_port = free_consecutive_ports(2).to_string();
    let out = strom_raw(&[
        "cluster",
        "up",
        "--brokers",
        "2",
        "--dir",
        dir.path().to_str().expect("utf-8 temp path"),
        "--base-port",
        &base_port,
        "--override",
        "no.such.key=1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr_str());
    let stderr = out.stderr_str();
    assert!(
        stderr.contains("exited (exit code 1); last lines of"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown config key \"no.such.key\""),
        "the broker's own error is shown: {stderr}"
    );
    assert!(
        stderr
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("error: broker ")),
        "{stderr}"
    );
}

#[test]
fn cluster_up_keeps_the_other_brokers_when_one_dies_after_the_start() {
    let cluster = LocalCluster::start(2, &[]);
    assert_eq!(cluster.brokers.len(), 2, "{:?}", cluster.brokers);
    let victim = cluster.brokers[1].pid;
    // SAFETY: kill(2) on a broker this test's `cluster up` started and still runs.
    assert_eq!(unsafe { libc::kill(victim, libc::SIGKILL) }, 0);
    // `cluster up` polls its brokers a few times a second; give it time to notice.
    std::thread::sleep(Duration::from_secs(2));
    let survivor = cluster.brokers[0].address.clone();
    strom_raw(&["cluster", "info", "--brokers", &survivor]).assert_success();
    let (out, _dir) = cluster.stop_with_sigint();
    out.assert_success();
    let stderr = out.stderr_str();
    assert!(
        stderr.contains("broker 2 exited (killed by signal 9)")
            && stderr.contains("the other brokers keep running"),
        "{stderr}"
    );
    assert!(
        stderr.contains("broker 1 stopped (exit code 0)"),
        "{stderr}"
    );
}

#[test]
fn cluster_up_refuses_keys_it_owns_and_taken_ports() {
    let out = strom_raw(&["cluster", "up", "--override", "broker.id=7"]);
    assert_one_line_error(&out, 1, "broker.id is set by `strom cluster up`");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = strom_raw(&[
        "cluster",
        "up",
        "--brokers",
        "1",
        "--dir",
        dir.path().to_str().expect("utf-8 temp path"),
        "--base-port",
        &port,
    ]);
    assert_one_line_error(&out, 1, &format!("port {port} for a broker is not free"));
}

/// Brokers started by `cluster up` register in its ZooKeeper and form one cluster: every broker
/// is listed, one is the controller, and an RF=3 topic gets replicas on all three.
#[test]
fn cluster_up_with_three_brokers_forms_one_cluster() {
    let cluster = LocalCluster::start(3, &[]);
    let ids: Vec<i32> = cluster.brokers.iter().map(|b| b.id).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let info = strom_raw(&["cluster", "info", "--brokers", &cluster.bootstrap]);
    info.assert_success();
    let text = info.stdout_str();
    assert!(
        text.contains("Brokers: 3"),
        "every broker sees all three: {text}"
    );
    for broker in &cluster.brokers {
        assert!(text.contains(&broker.address), "{text}");
    }
    let topic = unique_topic("cluster-up");
    strom_raw(&[
        "topic",
        "create",
        &topic,
        "--partitions",
        "3",
        "--replication-factor",
        "3",
        "--brokers",
        &cluster.bootstrap,
    ])
    .assert_success();
    let described = strom_raw(&["topic", "describe", &topic, "--brokers", &cluster.bootstrap]);
    described.assert_success();
    let text = described.stdout_str();
    let mut leaders = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| l.contains("Partition:")) {
        let field = |name: &str| {
            line.split('\t')
                .find_map(|cell| cell.trim().strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line}"))
                .trim()
                .to_owned()
        };
        let mut replicas: Vec<String> = field("Replicas:").split(',').map(str::to_owned).collect();
        replicas.sort();
        assert_eq!(replicas, ["1", "2", "3"], "three distinct replicas: {text}");
        leaders.insert(field("Leader:"));
    }
    assert_eq!(leaders.len(), 3, "leaders spread over the brokers: {text}");
    let info = strom_raw(&["cluster", "info", "--json", "--brokers", &cluster.bootstrap]);
    info.assert_success();
    let info: serde_json::Value = serde_json::from_str(&info.stdout_str()).expect("json");
    assert!(
        (1..=3).contains(&info["controller_id"].as_i64().unwrap_or(-1)),
        "a controller is elected: {info}"
    );
    let (out, _dir) = cluster.stop_with_sigint();
    out.assert_success();
}

/// A broker killed with SIGKILL leaves the ISRs of an RF=3 topic once its ZooKeeper session
/// expires, and `cluster info` lists those partitions as under-replicated.
#[test]
fn cluster_info_lists_under_replicated_partitions_after_a_broker_dies() {
    let cluster = LocalCluster::start(3, &["--override", "zookeeper.session.timeout.ms=6000"]);
    let topic = unique_topic("cluster-info-urp");
    strom_raw(&[
        "topic",
        "create",
        &topic,
        "--partitions",
        "3",
        "--replication-factor",
        "3",
        "--brokers",
        &cluster.bootstrap,
    ])
    .assert_success();
    let victim = &cluster.brokers[2];
    // SAFETY: kill(2) on a broker this test's `cluster up` started and still runs.
    unsafe { libc::kill(victim.pid, libc::SIGKILL) };
    let survivor = cluster.brokers[0].address.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = strom_raw(&["cluster", "info", "--json", "--brokers", &survivor]);
        out.assert_success();
        let info: serde_json::Value = serde_json::from_str(&out.stdout_str()).expect("json");
        let under = info["under_replicated_partitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let of_topic: Vec<_> = under
            .iter()
            .filter(|p| p["topic"] == topic.as_str())
            .collect();
        if of_topic.len() == 3 {
            for partition in of_topic {
                assert!(
                    !partition["isr"]
                        .as_array()
                        .expect("isr")
                        .contains(&serde_json::json!(victim.id)),
                    "{partition}"
                );
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no under-replicated partitions: {info}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (out, _dir) = cluster.stop_with_sigint();
    out.assert_success();
}

/// A partition whose only replica's broker died has no leader: `cluster info` lists it as
/// offline, with its replicas and the dead broker among the offline replicas.
#[test]
fn cluster_info_lists_offline_partitions_after_their_only_replica_dies() {
    let cluster = LocalCluster::start(3, &["--override", "zookeeper.session.timeout.ms=6000"]);
    let topic = unique_topic("cluster-info-offline");
    strom_raw(&[
        "topic",
        "create",
        &topic,
        "--partitions",
        "3",
        "--replication-factor",
        "1",
        "--brokers",
        &cluster.bootstrap,
    ])
    .assert_success();
    let victim = &cluster.brokers[2];
    // SAFETY: kill(2) on a broker this test's `cluster up` started and still runs.
    unsafe { libc::kill(victim.pid, libc::SIGKILL) };
    let survivor = cluster.brokers[0].address.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = strom_raw(&["cluster", "info", "--json", "--brokers", &survivor]);
        out.assert_success();
        let info: serde_json::Value = serde_json::from_str(&out.stdout_str()).expect("json");
        let offline = info["offline_partitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let of_topic: Vec<_> = offline
            .iter()
            .filter(|p| p["topic"] == topic.as_str())
            .collect();
        if !of_topic.is_empty() {
            // Rack-unaware assignment puts exactly one of the 3 single-replica partitions on
            // each broker.
            assert_eq!(of_topic.len(), 1, "{info}");
            let partition = of_topic[0];
            assert_eq!(partition["leader"], -1, "{partition}");
            assert_eq!(
                partition["replicas"],
                serde_json::json!([victim.id]),
                "{partition}"
            );
            assert_eq!(
                partition["offline_replicas"],
                serde_json::json!([victim.id]),
                "{partition}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no offline partition: {info}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (out, _dir) = cluster.stop_with_sigint();
    out.assert_success();
}
