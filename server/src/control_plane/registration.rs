//! Joining the cluster: the coordination session, the cluster id (and the log dir's
//! `meta.properties`, which ties a log dir to one cluster and one broker id), and the broker's
//! ephemeral registration, whose creation transaction id is its broker epoch.

use std::path::Path;
use std::time::Duration;

use crate::cluster::znodes::{self, BrokerRegistration, Endpoint};
use crate::config::BrokerConfig;
use crate::coordination::{
    Coordination, CoordinationError, CoordinationStore, NodeKind, ZooKeeperSettings,
};

/// Where the embedded store keeps its snapshot, inside the log dir.
pub const EMBEDDED_STORE_DIR: &str = "__coordination";
/// Kafka's file tying a log dir to a cluster and a broker id.
const META_PROPERTIES: &str = "meta.properties";
/// Wait between attempts to reach a ZooKeeper that does not answer.
pub const CONNECT_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// The persistent paths every broker expects.
const BASE_PATHS: [&str; 7] = [
    znodes::BROKER_IDS_PATH,
    znodes::BROKER_TOPICS_PATH,
    znodes::CONFIG_TOPICS_PATH,
    znodes::CONFIG_BROKERS_PATH,
    znodes::DELETE_TOPICS_PATH,
    znodes::CONTROLLED_SHUTDOWN_PATH,
    "/cluster",
];

/// Opens the session: the embedded store in the log dir without `zookeeper.connect`,
/// otherwise ZooKeeper (the chroot is created if missing). One attempt; the caller retries.
pub async fn connect(
    config: &BrokerConfig,
    log_dir: &Path,
) -> Result<Coordination, CoordinationError> {
    match &config.zookeeper_connect {
        None => {
            let store = CoordinationStore::open(log_dir.join(EMBEDDED_STORE_DIR))?;
            Coordination::embedded(std::sync::Arc::new(store))
        }
        Some(connect) => {
            Coordination::connect_zookeeper(&ZooKeeperSettings {
                connect: connect.clone(),
                session_timeout_ms: config.zookeeper_session_timeout_ms,
                connection_timeout_ms: config.zookeeper_connection_timeout_ms,
            })
            .await
        }
    }
}

/// Creates the persistent paths the cluster needs (idempotent).
pub async fn ensure_base_paths(coordination: &Coordination) -> Result<(), CoordinationError> {
    for path in BASE_PATHS {
        coordination.ensure_path(path).await?;
    }
    Ok(())
}

/// The cluster id: read from `/cluster/id`, or made and written by the first broker. Checked
/// against the log dir's `meta.properties`: a log dir that belongs to another cluster or another
/// broker id refuses to start (its data would otherwise be mixed into the wrong cluster).
pub async fn cluster_id(
    coordination: &Coordination,
    config: &BrokerConfig,
    log_dir: &Path,
) -> Result<String, String> {
    let stored = read_cluster_id(coordination).await?;
    let id = match stored {
        Some(id) => id,
        None => {
            let fresh = znodes::topic_id_to_string(uuid::Uuid::new_v4());
            match coordination
                .create(
                    znodes::CLUSTER_ID_PATH,
                    znodes::encode_cluster_id(&fresh),
                    NodeKind::Persistent,
                )
                .await
            {
                Ok(_) => fresh,
                // Another broker made it first.
                Err(CoordinationError::NodeExists { .. }) => {
                    read_cluster_id(coordination)
                        .await?
                        .ok_or("the cluster id vanished while it was being read")?
                }
                Err(error) => return Err(format!("create {}: {error}", znodes::CLUSTER_ID_PATH)),
            }
        }
    };
    // Every log dir has its own (Kafka's layout), so none can be moved to another broker.
    check_meta_properties(log_dir, &id, config.broker_id)?;
    for other in config
        .log_dirs
        .iter()
        .filter(|dir| dir.as_path() != log_dir)
    {
        check_meta_properties(other, &id, config.broker_id)?;
    }
    Ok(id)
}

async fn read_cluster_id(coordination: &Coordination) -> Result<Option<String>, String> {
    match coordination.get(znodes::CLUSTER_ID_PATH).await {
        Ok((data, _)) => znodes::decode_cluster_id(znodes::CLUSTER_ID_PATH, &data)
            .map(Some)
            .map_err(|error| error.to_string()),
        Err(CoordinationError::NoNode { .. }) => Ok(None),
        Err(error) => Err(format!("read {}: {error}", znodes::CLUSTER_ID_PATH)),
    }
}

/// Reads `meta.properties` (writing it on first start) and refuses a log dir of another
/// cluster or broker.
fn check_meta_properties(log_dir: &Path, cluster_id: &str, broker_id: i32) -> Result<(), String> {
    let path = log_dir.join(META_PROPERTIES);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let value = |key: &str| {
                text.lines()
                    .filter_map(|line| line.split_once('='))
                    .find(|(name, _)| name.trim() == key)
                    .map(|(_, value)| value.trim().to_string())
            };
            if let Some(found) = value("cluster.id") {
                if found != cluster_id {
                    return Err(format!(
                        "log dir {} belongs to cluster {found}, but the coordination store holds \
                         cluster {cluster_id}: refusing to mix them (wrong zookeeper.connect \
                         chroot, or a log dir from another cluster)",
                        log_dir.display()
                    ));
                }
            }
            if let Some(found) = value("broker.id") {
                if found != broker_id.to_string() {
                    return Err(format!(
                        "log dir {} belongs to broker.id {found}, not {broker_id}",
                        log_dir.display()
                    ));
                }
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let text = format!(
                "# Written by Strom: ties this log dir to one cluster and broker.\n\
                 version=0\nbroker.id={broker_id}\ncluster.id={cluster_id}\n"
            );
            let temporary = path.with_extension("tmp");
            std::fs::write(&temporary, text)
                .and_then(|()| std::fs::rename(&temporary, &path))
                .map_err(|error| format!("write {}: {error}", path.display()))
        }
        Err(error) => Err(format!("read {}: {error}", path.display())),
    }
}

/// Registers this broker: the ephemeral `/brokers/ids/<id>`. Returns its broker epoch (the
/// node's creation transaction id). A live broker holding the id is a clear error.
pub async fn register(
    coordination: &Coordination,
    config: &BrokerConfig,
    now_ms: i64,
) -> Result<i64, String> {
    let advertised = &config.advertised_listener;
    let registration = BrokerRegistration {
        host: Some(advertised.host.clone()),
        port: i32::from(advertised.port),
        endpoints: vec![Endpoint {
            listener: "PLAINTEXT".into(),
            host: advertised.host.clone(),
            port: i32::from(advertised.port),
        }],
        listener_security_protocol_map: [("PLAINTEXT".to_string(), "PLAINTEXT".to_string())]
            .into_iter()
            .collect(),
        jmx_port: -1,
        timestamp_ms: now_ms,
        rack: None,
        features: Default::default(),
    };
    let path = znodes::broker_path(config.broker_id);
    match coordination
        .create(&path, registration.encode(), NodeKind::Ephemeral)
        .await
    {
        Ok(stat) => Ok(stat.created_txid as i64),
        Err(CoordinationError::NodeExists { .. }) => {
            // Ours from a session that is still ending (a quick restart): ZooKeeper removes it
            // when that session expires. Anyone else's: refuse.
            let owner = coordination
                .exists(&path)
                .await
                .ok()
                .flatten()
                .and_then(|stat| stat.ephemeral_owner);
            Err(format!(
                "broker.id {} is already registered by a live broker (session {}); \
                 give this broker another broker.id, or wait zookeeper.session.timeout.ms for \
                 the old session of this one to expire",
                config.broker_id,
                owner.map_or_else(|| "unknown".to_string(), |owner| owner.to_string())
            ))
        }
        Err(error) => Err(format!("register {path}: {error}")),
    }
}
