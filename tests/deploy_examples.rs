//! The example configuration in deploy/ is what a broker accepts: every
//! broker-<id>.properties loads with the broker's own config parser, names its own id and log
//! dir, and all of them join the same ZooKeeper ensemble and chroot.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use strom_server::config::BrokerConfig;
use strom_server::coordination::parse_connect_string;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

#[test]
fn example_broker_properties_load_and_form_one_cluster() {
    let configs: Vec<BrokerConfig> = (1..=3)
        .map(|id| {
            let path = deploy_dir().join(format!("broker-{id}.properties"));
            let config = BrokerConfig::load(Some(&path), &[] as &[&str])
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            assert_eq!(config.broker_id, id, "{}", path.display());
            assert_eq!(
                config.log_dirs,
                vec![PathBuf::from(format!("/var/lib/strom/broker-{id}"))]
            );
            assert!(config.advertised_listener.is_routable());
            config
        })
        .collect();
    let connects: BTreeSet<_> = configs
        .iter()
        .map(|config| config.zookeeper_connect.clone())
        .collect();
    assert_eq!(connects.len(), 1, "one ensemble for all: {connects:?}");
    let connect = configs[0]
        .zookeeper_connect
        .as_deref()
        .expect("cluster mode");
    let parsed = parse_connect_string(connect).expect("valid connect string");
    assert_eq!(parsed.servers.len(), 3);
    assert_eq!(parsed.chroot.as_deref(), Some("/strom"));
    for config in &configs {
        assert_eq!(config.default_replication_factor, 3);
        assert_eq!(config.offsets_topic_replication_factor, 3);
        assert!(!config.unclean_leader_election_enable);
        assert!(config.controlled_shutdown_enable);
    }
}

#[test]
fn systemd_stop_timeout_exceeds_the_controlled_shutdown_bound() {
    let unit = std::fs::read_to_string(deploy_dir().join("strom@.service")).expect("unit");
    let stop_secs: u64 = unit
        .lines()
        .find_map(|line| line.strip_prefix("TimeoutStopSec="))
        .and_then(|value| value.trim().parse().ok())
        .expect("TimeoutStopSec in seconds");
    let path = deploy_dir().join("broker-1.properties");
    let config = BrokerConfig::load(Some(&path), &[] as &[&str]).expect("valid");
    assert!(
        stop_secs * 1000 > config.controlled_shutdown_timeout_ms,
        "systemd must not kill a broker still handing its leaderships over"
    );
    assert!(
        unit.contains("--config /etc/strom/broker-%i.properties"),
        "{unit}"
    );
}

/// The ZooKeeper unit runs Debian's package: every class path entry it names is where the
/// `zookeeper` package (which the test setup installs) puts it.
#[test]
fn zookeeper_unit_names_debian_package_paths() {
    let unit = std::fs::read_to_string(deploy_dir().join("zookeeper.service")).expect("unit");
    let class_path = unit
        .split_whitespace()
        .skip_while(|word| *word != "-cp")
        .nth(1)
        .expect("-cp in ExecStart");
    for entry in class_path.split(':') {
        assert!(
            Path::new(entry).exists(),
            "{entry} (from zookeeper.service) is missing: is Debian's zookeeper package installed?"
        );
    }
    assert!(unit
        .contains("org.apache.zookeeper.server.quorum.QuorumPeerMain /etc/zookeeper/conf/zoo.cfg"));
}
