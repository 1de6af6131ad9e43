//! What `strom cluster up` will start: broker ids, ports, directories and each broker's
//! `server.properties`. Pure (no I/O), so the layout is tested without starting anything.

use std::path::{Path, PathBuf};

/// Most brokers one `cluster up` starts: a local cluster shares one machine, and each broker
/// has at least one shard thread.
pub const MAX_BROKERS: u16 = 32;

/// Keys `cluster up` sets for every broker itself; an `--override` of one would break the
/// layout (two brokers with one id, port or log dir) or detach a broker from the cluster.
pub const RESERVED_KEYS: &[&str] = &[
    "broker.id",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
    "zookeeper.connect",
];

/// Replication factor of `__consumer_offsets` in a local cluster: every broker up to Kafka's
/// default of 3, so committed offsets survive losing a broker once replication exists.
const OFFSETS_REPLICATION_FACTOR_MAX: u16 = 3;

/// One broker of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerPlan {
    /// `broker.id`, 1-based.
    pub id: i32,
    /// Listener port on 127.0.0.1.
    pub port: u16,
    /// Port of its admin HTTP listener (`/metrics`, readiness) on 127.0.0.1; 0 (the plan's
    /// default) turns it off. `cluster up` gives each broker a free one.
    pub admin_port: u16,
    /// `log.dirs`: `DIR/broker-<id>`.
    pub log_dir: PathBuf,
    /// Its properties file: `DIR/broker-<id>.properties`.
    pub config_path: PathBuf,
    /// Where its stdout and stderr go: `DIR/broker-<id>.log`.
    pub output_path: PathBuf,
}

impl BrokerPlan {
    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `admin.listeners` value: its admin port, or empty (off).
    pub fn admin_listener(&self) -> String {
        match self.admin_port {
            0 => String::new(),
            port => format!("http://127.0.0.1:{port}"),
        }
    }

    /// The broker's `server.properties`, given ZooKeeper's connect string.
    pub fn properties(&self, zookeeper_connect: &str, plan: &ClusterPlan) -> String {
        let offsets_replication_factor = plan
            .brokers
            .len()
            .min(OFFSETS_REPLICATION_FACTOR_MAX.into());
        format!(
            "# Written by `strom cluster up` at every start; edit the command line instead\n\
             # (--override KEY=VALUE applies to every broker).\n\
             broker.id={id}\n\
             listeners=PLAINTEXT://127.0.0.1:{port}\n\
             admin.listeners={admin}\n\
             log.dirs={log_dir}\n\
             zookeeper.connect={zookeeper_connect}\n\
             num.shards={shards}\n\
             offsets.topic.replication.factor={offsets_replication_factor}\n",
            id = self.id,
            port = self.port,
            admin = self.admin_listener(),
            log_dir = self.log_dir.display(),
            shards = plan.shards_per_broker,
        )
    }
}

/// The whole local cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPlan {
    /// The cluster's folder (absolute).
    pub dir: PathBuf,
    /// ZooKeeper's data folder: `DIR/zookeeper`.
    pub zookeeper_dir: PathBuf,
    /// ZooKeeper's client port; 0 asks for a free one.
    pub zookeeper_port: u16,
    /// `num.shards` of each broker.
    pub shards_per_broker: u16,
    /// Brokers 1..=N on consecutive ports.
    pub brokers: Vec<BrokerPlan>,
}

impl ClusterPlan {
    /// Lays out `brokers` brokers in `dir` (absolute) from `base_port` on. The error says
    /// which argument is wrong.
    pub fn new(
        dir: &Path,
        brokers: u16,
        base_port: u16,
        zookeeper_port: u16,
        shards_per_broker: u16,
    ) -> Result<Self, String> {
        if brokers == 0 || brokers > MAX_BROKERS {
            return Err(format!("--brokers must be between 1 and {MAX_BROKERS}"));
        }
        if shards_per_broker == 0 {
            return Err("--shards-per-broker must be at least 1".to_owned());
        }
        if base_port == 0 {
            return Err("--base-port must be a port number, not 0".to_owned());
        }
        let last_port = u32::from(base_port) + u32::from(brokers) - 1;
        if last_port > u32::from(u16::MAX) {
            return Err(format!(
                "--base-port {base_port} leaves no room for {brokers} consecutive ports"
            ));
        }
        if zookeeper_port != 0 && (base_port..=base_port + (brokers - 1)).contains(&zookeeper_port)
        {
            return Err(format!(
                "--zookeeper-port {zookeeper_port} is one of the brokers' ports \
                 {base_port}..={last_port}"
            ));
        }
        let brokers = (1..=brokers)
            .map(|id| BrokerPlan {
                id: i32::from(id),
                port: base_port + (id - 1),
                admin_port: 0,
                log_dir: dir.join(format!("broker-{id}")),
                config_path: dir.join(format!("broker-{id}.properties")),
                output_path: dir.join(format!("broker-{id}.log")),
            })
            .collect();
        Ok(Self {
            dir: dir.to_owned(),
            zookeeper_dir: dir.join("zookeeper"),
            zookeeper_port,
            shards_per_broker,
            brokers,
        })
    }

    /// `host:port,...` of every broker, for clients' bootstrap servers.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(BrokerPlan::address)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Refuses an `--override` of a key `cluster up` owns.
pub fn check_override(text: &str) -> Result<(), String> {
    let key = text.split_once('=').map_or(text, |(key, _)| key).trim();
    if RESERVED_KEYS.contains(&key) {
        return Err(format!(
            "--override {key} is set by `strom cluster up` for each broker and cannot be overridden"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(brokers: u16, base_port: u16) -> Result<ClusterPlan, String> {
        ClusterPlan::new(Path::new("/c"), brokers, base_port, 0, 2)
    }

    #[test]
    fn brokers_get_ids_from_one_consecutive_ports_and_their_own_files() {
        let plan = plan(3, 9092).expect("valid");
        let ids: Vec<i32> = plan.brokers.iter().map(|b| b.id).collect();
        let ports: Vec<u16> = plan.brokers.iter().map(|b| b.port).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(ports, vec![9092, 9093, 9094]);
        assert_eq!(plan.brokers[1].log_dir, PathBuf::from("/c/broker-2"));
        assert_eq!(
            plan.brokers[1].config_path,
            PathBuf::from("/c/broker-2.properties")
        );
        assert_eq!(
            plan.brokers[1].output_path,
            PathBuf::from("/c/broker-2.log")
        );
        assert_eq!(plan.zookeeper_dir, PathBuf::from("/c/zookeeper"));
        assert_eq!(
            plan.bootstrap(),
            "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
        );
    }

    #[test]
    fn properties_name_the_broker_and_the_zookeeper() {
        let plan = plan(3, 9092).expect("valid");
        let mut plan = plan;
        plan.brokers[2].admin_port = 19644;
        let text = plan.brokers[2].properties("127.0.0.1:2181", &plan);
        for line in [
            "broker.id=3",
            "admin.listeners=http://127.0.0.1:19644",
            "listeners=PLAINTEXT://127.0.0.1:9094",
            "log.dirs=/c/broker-3",
            "zookeeper.connect=127.0.0.1:2181",
            "num.shards=2",
            "offsets.topic.replication.factor=3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        let single = ClusterPlan::new(Path::new("/c"), 1, 9092, 0, 1).expect("valid");
        let text = single.brokers[0].properties("z:1", &single);
        assert!(
            text.contains("offsets.topic.replication.factor=1\n"),
            "{text}"
        );
        assert!(
            text.contains("admin.listeners=\n"),
            "no admin port: off\n{text}"
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(plan(0, 9092).is_err());
        assert!(plan(MAX_BROKERS + 1, 9092).is_err());
        assert!(plan(MAX_BROKERS, 9092).is_ok());
        assert!(plan(1, 0).is_err());
        assert!(plan(2, u16::MAX).is_err());
        assert!(plan(1, u16::MAX).is_ok());
        assert!(ClusterPlan::new(Path::new("/c"), 1, 9092, 0, 0).is_err());
        let clash = ClusterPlan::new(Path::new("/c"), 3, 9092, 9094, 1).expect_err("clash");
        assert!(clash.contains("--zookeeper-port"), "{clash}");
        assert!(ClusterPlan::new(Path::new("/c"), 3, 9092, 9095, 1).is_ok());
    }

    #[test]
    fn overrides_of_keys_cluster_up_owns_are_refused() {
        assert!(check_override("num.partitions=3").is_ok());
        for text in [
            "broker.id=5",
            " log.dirs = /x",
            "zookeeper.connect=h:1",
            "listeners",
        ] {
            assert!(check_override(text).is_err(), "{text}");
        }
    }
}
