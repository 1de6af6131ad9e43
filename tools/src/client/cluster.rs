//! The cluster view: bootstrap, metadata cache and a pool of one connection per broker.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::connection::{Connection, ConnectionConfig};
use super::errors::{ClientError, KafkaCode, Result};

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` addresses tried in order until one answers.
    pub bootstrap: Vec<String>,
    pub connection: ConnectionConfig,
    /// How many times an operation retries after a retriable error (leader moved, coordinator
    /// loading), with `retry_backoff_ms` between tries.
    pub retries_max: u32,
    pub retry_backoff_ms: u64,
}

impl ClientConfig {
    /// Parses `host:port,host:port`.
    pub fn new(brokers: &str) -> Result<ClientConfig> {
        Ok(ClientConfig {
            bootstrap: parse_brokers(brokers)?,
            connection: ConnectionConfig::default(),
            retries_max: 10,
            retry_backoff_ms: 100,
        })
    }
}

/// Splits and checks a `--brokers` list.
pub fn parse_brokers(brokers: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in brokers.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((host, port)) = entry.rsplit_once(':') else {
            return Err(ClientError::InvalidArgument(format!(
                "broker address '{entry}' must be host:port"
            )));
        };
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(ClientError::InvalidArgument(format!(
                "broker address '{entry}' must be host:port with a port in 1-65535"
            )));
        }
        out.push(entry.to_string());
    }
    if out.is_empty() {
        return Err(ClientError::InvalidArgument(
            "no broker address given".into(),
        ));
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerInfo {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub id: i32,
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub is_internal: bool,
    /// Sorted by partition id.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    pub fn partition(&self, id: i32) -> Option<&PartitionInfo> {
        self.partitions.iter().find(|p| p.id == id)
    }
}

/// A snapshot of what the cluster said in its last Metadata responses.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
}

impl ClusterMetadata {
    fn merge(&mut self, response: MetadataResponse, all_topics: bool) -> Vec<(String, i16)> {
        self.cluster_id = response.cluster_id.map(|id| id.to_string());
        self.controller_id = response.controller_id.0;
        self.brokers = response
            .brokers
            .into_iter()
            .map(|b| {
                (
                    b.node_id.0,
                    BrokerInfo {
                        id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.map(|r| r.to_string()),
                    },
                )
            })
            .collect();
        if all_topics {
            self.topics.clear();
        }
        let mut errors = Vec::new();
        for topic in response.topics {
            let Some(name) = topic.name.map(|n| n.0.to_string()) else {
                continue;
            };
            if topic.error_code != 0 {
                self.topics.remove(&name);
                errors.push((name, topic.error_code));
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = topic
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    id: p.partition_index,
                    error_code: p.error_code,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.into_iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.into_iter().map(|b| b.0).collect(),
                    offline: p.offline_replicas.into_iter().map(|b| b.0).collect(),
                })
                .collect();
            partitions.sort_by_key(|p| p.id);
            self.topics.insert(
                name.clone(),
                TopicInfo {
                    name,
                    id: topic.topic_id,
                    is_internal: topic.is_internal,
                    partitions,
                },
            );
        }
        errors
    }
}

struct ClientInner {
    config: ClientConfig,
    /// One connection per address; replaced when it fails.
    connections: tokio::sync::Mutex<HashMap<String, Arc<Connection>>>,
    metadata: RwLock<Arc<ClusterMetadata>>,
}

/// A handle to the cluster, cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl Client {
    /// Connects to the first reachable bootstrap broker and loads cluster metadata (brokers only).
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        let client = Client {
            inner: Arc::new(ClientInner {
                config,
                connections: tokio::sync::Mutex::new(HashMap::new()),
                metadata: RwLock::new(Arc::new(ClusterMetadata::default())),
            }),
        };
        client.refresh_metadata(Some(&[])).await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The last metadata seen.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.inner
            .metadata
            .read()
            .map_or_else(|p| p.into_inner().clone(), |m| m.clone())
    }

    /// A connection to `addr`, opened if there is none or the old one failed.
    pub async fn connection_to(&self, addr: &str) -> Result<Arc<Connection>> {
        let mut connections = self.inner.connections.lock().await;
        if let Some(existing) = connections.get(addr) {
            if !existing.is_closed() {
                return Ok(existing.clone());
            }
        }
        let connection = Connection::connect(addr, &self.inner.config.connection).await?;
        connections.insert(addr.to_string(), connection.clone());
        Ok(connection)
    }

    /// A dedicated connection to `addr`, not shared with the pool (for workloads that must not
    /// queue behind each other, e.g. one per benchmark producer).
    pub async fn new_connection_to(&self, addr: &str) -> Result<Arc<Connection>> {
        Connection::connect(addr, &self.inner.config.connection).await
    }

    /// Any live connection: an open one, else the known brokers, else the bootstrap list.
    pub async fn any_connection(&self) -> Result<Arc<Connection>> {
        {
            let connections = self.inner.connections.lock().await;
            if let Some(live) = connections.values().find(|c| !c.is_closed()) {
                return Ok(live.clone());
            }
        }
        let mut candidates: Vec<String> = self
            .metadata()
            .brokers
            .values()
            .map(BrokerInfo::addr)
            .collect();
        for addr in &self.inner.config.bootstrap {
            if !candidates.contains(addr) {
                candidates.push(addr.clone());
            }
        }
        let mut last = String::from("no address to try");
        for addr in &candidates {
            match self.connection_to(addr).await {
                Ok(connection) => return Ok(connection),
                Err(error) => last = error.to_string(),
            }
        }
        Err(ClientError::NoBrokerReachable {
            brokers: candidates.join(","),
            last,
        })
    }

    /// The address of a broker by id.
    pub fn broker_addr(&self, broker_id: i32) -> Option<String> {
        self.metadata()
            .brokers
            .get(&broker_id)
            .map(BrokerInfo::addr)
    }

    /// The connection to broker `broker_id` (refreshing metadata once if the id is unknown).
    pub async fn broker_connection(&self, broker_id: i32) -> Result<Arc<Connection>> {
        if self.broker_addr(broker_id).is_none() {
            self.refresh_metadata(Some(&[])).await?;
        }
        let addr = self
            .broker_addr(broker_id)
            .ok_or_else(|| ClientError::Protocol {
                addr: "cluster".into(),
                reason: format!("broker {broker_id} is not in the cluster metadata"),
            })?;
        self.connection_to(&addr).await
    }

    /// Asks for metadata: `None` = every topic, `Some(list)` = those topics (an empty list
    /// fetches brokers only). Returns the updated snapshot; topic errors are left to the caller
    /// (see [`Client::topic`]).
    pub async fn refresh_metadata(
        &self,
        topics: Option<&[String]>,
    ) -> Result<Arc<ClusterMetadata>> {
        self.refresh_metadata_with_errors(topics)
            .await
            .map(|(metadata, _)| metadata)
    }

    async fn refresh_metadata_with_errors(
        &self,
        topics: Option<&[String]>,
    ) -> Result<(Arc<ClusterMetadata>, Vec<(String, i16)>)> {
        let mut last_error = None;
        for _attempt in 0..2 {
            let connection = self.any_connection().await?;
            let version = connection.version::<MetadataRequest>()?;
            let mut request = MetadataRequest::default();
            request.topics = match topics {
                None if version == 0 => Some(Vec::new()),
                None => None,
                Some(names) => Some(
                    names
                        .iter()
                        .map(|name| {
                            let mut topic = MetadataRequestTopic::default();
                            topic.name = Some(TopicName(StrBytes::from_string(name.clone())));
                            topic
                        })
                        .collect(),
                ),
            };
            if version == 0 && topics.is_some_and(<[String]>::is_empty) {
                // v0 has no way to ask for brokers only: an empty list means every topic.
                request.topics = Some(Vec::new());
            }
            if version >= 4 {
                request.allow_auto_topic_creation = false;
            }
            match connection.send_version(&request, version).await {
                Ok(response) => {
                    let mut guard = self
                        .inner
                        .metadata
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let mut next = (**guard).clone();
                    let errors = next.merge(response, topics.is_none());
                    let next = Arc::new(next);
                    *guard = next.clone();
                    return Ok((next, errors));
                }
                Err(error) if error.is_retriable() => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(ClientError::Closed("client")))
    }

    /// Metadata of one topic, fetched now; `UnknownTopic` if the cluster does not have it.
    /// Retries while partitions have no leader yet (a topic just created).
    pub async fn topic(&self, name: &str) -> Result<TopicInfo> {
        let names = [name.to_string()];
        let mut tries = 0;
        loop {
            tries += 1;
            let (metadata, errors) = self.refresh_metadata_with_errors(Some(&names)).await?;
            let error = errors
                .iter()
                .find(|(topic, _)| topic == name)
                .map(|(_, code)| *code);
            match (metadata.topics.get(name), error) {
                (Some(topic), None)
                    if topic.partitions.iter().all(|p| p.leader >= 0)
                        || tries > self.inner.config.retries_max =>
                {
                    return Ok(topic.clone())
                }
                (_, Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION)) | (None, None) => {
                    return Err(ClientError::UnknownTopic(name.to_string()))
                }
                (_, Some(code))
                    if !KafkaCode(code).is_retriable() || tries > self.inner.config.retries_max =>
                {
                    return Err(ClientError::kafka(
                        format!("metadata of topic '{name}'"),
                        code,
                        None,
                    ))
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(self.inner.config.retry_backoff_ms))
                        .await
                }
            }
        }
    }

    /// The connection to the leader of a partition, per the cached metadata.
    pub async fn leader_connection(&self, topic: &str, partition: i32) -> Result<Arc<Connection>> {
        let leader = self.leader_of(topic, partition)?;
        self.broker_connection(leader).await
    }

    /// The leader id of a partition per the cached metadata.
    pub fn leader_of(&self, topic: &str, partition: i32) -> Result<i32> {
        let metadata = self.metadata();
        let info = metadata
            .topics
            .get(topic)
            .ok_or_else(|| ClientError::UnknownTopic(topic.to_string()))?;
        let partition_info =
            info.partition(partition)
                .ok_or_else(|| ClientError::UnknownPartition {
                    topic: topic.to_string(),
                    partition,
                })?;
        if partition_info.leader < 0 {
            return Err(ClientError::NoLeader {
                topic: topic.to_string(),
                partition,
            });
        }
        Ok(partition_info.leader)
    }

    /// Sleeps the retry backoff.
    pub async fn backoff(&self) {
        tokio::time::sleep(Duration::from_millis(self.inner.config.retry_backoff_ms)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists_parse() {
        assert_eq!(
            parse_brokers("127.0.0.1:9092").ok(),
            Some(vec!["127.0.0.1:9092".to_string()])
        );
        assert_eq!(
            parse_brokers("a:1, b:2,").ok(),
            Some(vec!["a:1".to_string(), "b:2".to_string()])
        );
        for bad in ["", "localhost", "a:0", "a:99999", ":9092", "a:x"] {
            let error = parse_brokers(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!error.is_empty(), "{bad:?} must be rejected");
        }
    }
}
