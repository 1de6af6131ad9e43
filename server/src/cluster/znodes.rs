//! Kafka 2.8's ZooKeeper layout: the paths and the JSON in each znode.
//!
//! Paths are relative to the chroot of `zookeeper.connect`. Every codec is a
//! typed struct with `encode` (the bytes Kafka 2.8 writes) and `decode(path,
//! data)`. Decoding accepts what Kafka 2.8 (and older versions still found in
//! long-lived clusters) writes, ignores fields it does not know, and returns a
//! [`ZnodeError`] naming the path and the reason for anything else: znode
//! contents come from the network and may have been written by any tool.
//!
//! Topic names need no escaping in paths: Kafka restricts them to
//! `[a-zA-Z0-9._-]`, which the topic-creation path validates.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The ephemeral znode of the active controller.
pub const CONTROLLER_PATH: &str = "/controller";
/// The controller epoch, a plain integer; its znode version guards every
/// controller write.
pub const CONTROLLER_EPOCH_PATH: &str = "/controller_epoch";
/// Parent of the ephemeral broker registrations.
pub const BROKER_IDS_PATH: &str = "/brokers/ids";
/// Parent of the topic assignments.
pub const BROKER_TOPICS_PATH: &str = "/brokers/topics";
/// Parent of the topic deletion requests.
pub const DELETE_TOPICS_PATH: &str = "/admin/delete_topics";
/// Parent of Strom's controlled-shutdown requests (not in Kafka: Kafka 2.8
/// sends a ControlledShutdown request to the controller instead).
pub const CONTROLLED_SHUTDOWN_PATH: &str = "/admin/controlled_shutdown";
/// The last block of producer ids handed out.
pub const LATEST_PRODUCER_ID_BLOCK_PATH: &str = "/latest_producer_id_block";
/// The cluster id.
pub const CLUSTER_ID_PATH: &str = "/cluster/id";
/// Parent of the per-topic configuration overrides.
pub const CONFIG_TOPICS_PATH: &str = "/config/topics";
/// Parent of the dynamic broker configs: `<default>` (every broker) and `<id>` (one broker),
/// each `{"version":1,"config":{...}}` like a topic's.
pub const CONFIG_BROKERS_PATH: &str = "/config/brokers";

/// Parent of the leaders' ISR change notifications (persistent sequential
/// children named `isr_change_<seq>`).
pub const ISR_CHANGE_NOTIFICATION_PATH: &str = "/isr_change_notification";
/// The path prefix a leader creates a sequential ISR change notification with.
pub const ISR_CHANGE_NOTIFICATION_PREFIX: &str = "/isr_change_notification/isr_change_";
/// Parent of the config change notifications (persistent sequential children
/// named `config_change_<seq>`).
pub const CONFIG_CHANGES_PATH: &str = "/config/changes";
/// The path prefix a config change notification is created with.
pub const CONFIG_CHANGE_PREFIX: &str = "/config/changes/config_change_";

/// `/brokers/ids/<id>`.
pub fn broker_path(broker_id: i32) -> String {
    format!("{BROKER_IDS_PATH}/{broker_id}")
}

/// `/brokers/topics/<topic>`.
pub fn topic_path(topic: &str) -> String {
    format!("{BROKER_TOPICS_PATH}/{topic}")
}

/// `/brokers/topics/<topic>/partitions`.
pub fn partitions_path(topic: &str) -> String {
    format!("{BROKER_TOPICS_PATH}/{topic}/partitions")
}

/// `/brokers/topics/<topic>/partitions/<partition>`.
pub fn partition_path(topic: &str, partition: i32) -> String {
    format!("{BROKER_TOPICS_PATH}/{topic}/partitions/{partition}")
}

/// `/brokers/topics/<topic>/partitions/<partition>/state`.
pub fn partition_state_path(topic: &str, partition: i32) -> String {
    format!("{BROKER_TOPICS_PATH}/{topic}/partitions/{partition}/state")
}

/// `/config/topics/<topic>`.
pub fn topic_config_path(topic: &str) -> String {
    format!("{CONFIG_TOPICS_PATH}/{topic}")
}

/// `/config/brokers/<entity>` (`<default>` or a broker id).
pub fn broker_config_path(entity: &str) -> String {
    format!("{CONFIG_BROKERS_PATH}/{entity}")
}

/// `/admin/delete_topics/<topic>`.
pub fn delete_topic_path(topic: &str) -> String {
    format!("{DELETE_TOPICS_PATH}/{topic}")
}

/// `/admin/controlled_shutdown/<id>`.
pub fn controlled_shutdown_path(broker_id: i32) -> String {
    format!("{CONTROLLED_SHUTDOWN_PATH}/{broker_id}")
}

/// The broker id of `/brokers/ids/<id>`.
pub fn parse_broker_path(path: &str) -> Option<i32> {
    parse_id(child_of(path, BROKER_IDS_PATH)?)
}

/// The topic of `/brokers/topics/<topic>` (not of anything below it).
pub fn parse_topic_path(path: &str) -> Option<&str> {
    child_of(path, BROKER_TOPICS_PATH)
}

/// The topic and partition of `/brokers/topics/<topic>/partitions/<p>/state`.
pub fn parse_partition_state_path(path: &str) -> Option<(&str, i32)> {
    let rest = path.strip_prefix(BROKER_TOPICS_PATH)?.strip_prefix('/')?;
    let rest = rest.strip_suffix("/state")?;
    let (topic, partition) = rest.split_once("/partitions/")?;
    if topic.is_empty() || topic.contains('/') {
        return None;
    }
    Some((topic, parse_id(partition)?))
}

/// The topic of `/config/topics/<topic>`.
pub fn parse_topic_config_path(path: &str) -> Option<&str> {
    child_of(path, CONFIG_TOPICS_PATH)
}

/// The topic of `/admin/delete_topics/<topic>`.
pub fn parse_delete_topic_path(path: &str) -> Option<&str> {
    child_of(path, DELETE_TOPICS_PATH)
}

/// The broker id of `/admin/controlled_shutdown/<id>`.
pub fn parse_controlled_shutdown_path(path: &str) -> Option<i32> {
    parse_id(child_of(path, CONTROLLED_SHUTDOWN_PATH)?)
}

/// The single path component under `parent`, if `path` is a direct child.
fn child_of<'a>(path: &'a str, parent: &str) -> Option<&'a str> {
    let name = path.strip_prefix(parent)?.strip_prefix('/')?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// A non-negative decimal id, as Kafka writes broker ids and partitions.
fn parse_id(text: &str) -> Option<i32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A znode whose contents could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("znode {path}: {reason}")]
pub struct ZnodeError {
    /// The znode's path.
    pub path: String,
    /// What was wrong with it.
    pub reason: String,
}

impl ZnodeError {
    fn new(path: &str, reason: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

fn decode_json<T: DeserializeOwned>(path: &str, data: &[u8]) -> Result<T, ZnodeError> {
    serde_json::from_slice(data).map_err(|e| ZnodeError::new(path, format!("bad JSON: {e}")))
}

fn encode_json<T: Serialize>(value: &T) -> Bytes {
    // Serializing these plain structs (string keys, numbers, strings) cannot fail.
    Bytes::from(serde_json::to_vec(value).expect("znode structs serialize to JSON"))
}

fn check_version(
    path: &str,
    version: i64,
    supported: std::ops::RangeInclusive<i64>,
) -> Result<(), ZnodeError> {
    if supported.contains(&version) {
        Ok(())
    } else {
        Err(ZnodeError::new(
            path,
            format!("unsupported version {version}"),
        ))
    }
}

/// Kafka writes some numbers (timestamps, producer id bounds) as JSON strings
/// and a few versions as strings; this reads either form.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(i64),
    String(String),
}

impl NumberOrString {
    fn to_i64(&self, path: &str, field: &str) -> Result<i64, ZnodeError> {
        match self {
            Self::Number(n) => Ok(*n),
            Self::String(s) => s
                .trim()
                .parse()
                .map_err(|_| ZnodeError::new(path, format!("{field} is not an integer: {s:?}"))),
        }
    }
}

// ---------------------------------------------------------------------------
// Topic ids

const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A topic id as Kafka prints it: its 16 bytes in URL-safe base64 without
/// padding (22 characters).
pub fn topic_id_to_string(id: Uuid) -> String {
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1; // 3 bytes -> 4 chars, 1 byte -> 2 chars
        for i in 0..chars {
            out.push(BASE64_URL[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Parses a topic id: Kafka's URL-safe base64 (22 characters, `==` padding
/// tolerated) or a UUID in hex (hyphenated or not).
pub fn parse_topic_id(text: &str) -> Result<Uuid, String> {
    let base64 = text.strip_suffix("==").unwrap_or(text);
    if base64.len() == 22 {
        return decode_base64_uuid(base64);
    }
    Uuid::try_parse(text).map_err(|e| format!("bad topic id {text:?}: {e}"))
}

fn decode_base64_uuid(text: &str) -> Result<Uuid, String> {
    let mut bits: u128 = 0;
    for (i, c) in text.bytes().enumerate() {
        let v = BASE64_URL.iter().position(|&b| b == c).ok_or_else(|| {
            format!(
                "bad topic id {text:?}: {:?} is not URL-safe base64",
                c as char
            )
        })?;
        if i == 21 {
            // The last character carries the final 2 bits; the other 4 must be zero.
            if v & 0xF != 0 {
                return Err(format!("bad topic id {text:?}: non-canonical base64"));
            }
            bits = (bits << 2) | (v as u128 >> 4);
        } else {
            bits = (bits << 6) | v as u128;
        }
    }
    Ok(Uuid::from_u128(bits))
}

fn serialize_topic_id<S: serde::Serializer>(id: &Option<Uuid>, s: S) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_str(&topic_id_to_string(*id)),
        None => s.serialize_none(),
    }
}

// ---------------------------------------------------------------------------
// /brokers/ids/<id>

/// One listener of a broker: `LISTENER://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The listener name (`PLAINTEXT`).
    pub listener: String,
    /// Host name or address; an IPv6 address without brackets.
    pub host: String,
    pub port: i32,
}

impl Endpoint {
    /// `LISTENER://host:port`, IPv6 hosts in brackets.
    pub fn to_uri(&self) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]:{}", self.listener, self.host, self.port)
        } else {
            format!("{}://{}:{}", self.listener, self.host, self.port)
        }
    }

    /// Parses `LISTENER://host:port` (`[v6]:port` accepted; empty host allowed,
    /// as Kafka allows it to mean all interfaces).
    pub fn parse(uri: &str) -> Result<Self, String> {
        let (listener, address) = uri
            .split_once("://")
            .ok_or_else(|| format!("endpoint {uri:?} has no ://"))?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("endpoint {uri:?} has no port"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: i32 = port
            .parse()
            .map_err(|_| format!("endpoint {uri:?} has a bad port"))?;
        if listener.is_empty() || !(0..=65535).contains(&port) {
            return Err(format!("endpoint {uri:?} is malformed"));
        }
        Ok(Self {
            listener: listener.to_owned(),
            host: host.to_owned(),
            port,
        })
    }
}

/// The version range of a supported feature (KIP-584), as brokers advertise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureRange {
    pub min_version: i16,
    pub max_version: i16,
}

/// A broker's registration: the ephemeral `/brokers/ids/<id>`. Its creation
/// zxid is the broker epoch (not stored in the JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// Host of the PLAINTEXT listener (legacy field; `None` when there is none).
    pub host: Option<String>,
    /// Port of the PLAINTEXT listener (legacy field; -1 when there is none).
    pub port: i32,
    pub endpoints: Vec<Endpoint>,
    /// Listener name -> security protocol.
    pub listener_security_protocol_map: BTreeMap<String, String>,
    pub jmx_port: i32,
    /// When the broker registered, ms since the Unix epoch.
    pub timestamp_ms: i64,
    pub rack: Option<String>,
    pub features: BTreeMap<String, FeatureRange>,
}

#[derive(Deserialize)]
struct BrokerJson {
    version: i64,
    #[serde(default)]
    host: Option<String>,
    #[serde(default = "minus_one")]
    port: i32,
    #[serde(default)]
    endpoints: Option<Vec<String>>,
    #[serde(default)]
    listener_security_protocol_map: Option<BTreeMap<String, String>>,
    #[serde(default = "minus_one")]
    jmx_port: i32,
    timestamp: NumberOrString,
    #[serde(default)]
    rack: Option<String>,
    #[serde(default)]
    features: BTreeMap<String, FeatureRange>,
}

fn minus_one() -> i32 {
    -1
}

impl BrokerRegistration {
    /// Kafka 2.8's registration JSON (version 5, with features).
    pub fn encode(&self) -> Bytes {
        #[derive(Serialize)]
        struct Json<'a> {
            // Version 5 always writes the features object, even empty.
            features: &'a BTreeMap<String, FeatureRange>,
            listener_security_protocol_map: &'a BTreeMap<String, String>,
            endpoints: Vec<String>,
            jmx_port: i32,
            port: i32,
            host: &'a Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            rack: &'a Option<String>,
            version: i32,
            timestamp: String,
        }
        encode_json(&Json {
            features: &self.features,
            listener_security_protocol_map: &self.listener_security_protocol_map,
            endpoints: self.endpoints.iter().map(Endpoint::to_uri).collect(),
            jmx_port: self.jmx_port,
            port: self.port,
            host: &self.host,
            rack: &self.rack,
            version: 5,
            timestamp: self.timestamp_ms.to_string(),
        })
    }

    /// Decodes versions 1–5. Versions before 2 have no endpoints list; the
    /// legacy host/port become a PLAINTEXT endpoint.
    pub fn decode(path: &str, data: &[u8]) -> Result<Self, ZnodeError> {
        let json: BrokerJson = decode_json(path, data)?;
        check_version(path, json.version, 1..=5)?;
        let timestamp_ms = json.timestamp.to_i64(path, "timestamp")?;
        let endpoints = match json.endpoints {
            Some(uris) => uris
                .iter()
                .map(|uri| Endpoint::parse(uri).map_err(|e| ZnodeError::new(path, e)))
                .collect::<Result<Vec<_>, _>>()?,
            None => match &json.host {
                // The same port range an endpoint URI may carry.
                Some(host) if (0..=65535).contains(&json.port) => vec![Endpoint {
                    listener: "PLAINTEXT".into(),
                    host: host.clone(),
                    port: json.port,
                }],
                _ => return Err(ZnodeError::new(path, "no endpoints and no host/port")),
            },
        };
        if endpoints.is_empty() {
            return Err(ZnodeError::new(path, "no endpoints"));
        }
        let listener_security_protocol_map =
            json.listener_security_protocol_map.unwrap_or_else(|| {
                // Before version 4 every listener was named after its protocol.
                endpoints
                    .iter()
                    .map(|e| (e.listener.clone(), e.listener.clone()))
                    .collect()
            });
        Ok(Self {
            host: json.host,
            port: json.port,
            endpoints,
            listener_security_protocol_map,
            jmx_port: json.jmx_port,
            timestamp_ms,
            rack: json.rack,
            features: json.features,
        })
    }

    /// The endpoint of listener `name`, if the broker has one.
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.listener == listener)
    }
}

// ---------------------------------------------------------------------------
// /brokers/topics/<t>

/// A topic's replica assignment: `/brokers/topics/<t>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicAssignment {
    /// `None` only for topics created before Kafka 2.8 (versions 1–2).
    pub topic_id: Option<Uuid>,
    /// Assigned replicas (AR) of partition `i` at index `i`, preferred leader first.
    pub partitions: Vec<Vec<i32>>,
    /// An ongoing reassignment (KIP-455): per partition the replicas being added and
    /// removed; written by the controller (`cluster::controller::reassignment`).
    pub adding_replicas: BTreeMap<i32, Vec<i32>>,
    pub removing_replicas: BTreeMap<i32, Vec<i32>>,
}

#[derive(Serialize, Deserialize)]
struct TopicJson {
    version: i64,
    #[serde(serialize_with = "serialize_topic_id", skip_deserializing, default)]
    topic_id: Option<Uuid>,
    #[serde(rename = "topic_id", skip_serializing, default)]
    topic_id_text: Option<String>,
    partitions: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    adding_replicas: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    removing_replicas: BTreeMap<String, Vec<i32>>,
}

fn partition_keys(
    path: &str,
    map: BTreeMap<String, Vec<i32>>,
) -> Result<BTreeMap<i32, Vec<i32>>, ZnodeError> {
    let mut out = BTreeMap::new();
    for (key, replicas) in map {
        let p = parse_id(&key)
            .ok_or_else(|| ZnodeError::new(path, format!("bad partition {key:?}")))?;
        if let Some(b) = replicas.iter().find(|&&b| b < 0) {
            return Err(ZnodeError::new(
                path,
                format!("partition {p} has broker id {b}"),
            ));
        }
        out.insert(p, replicas);
    }
    Ok(out)
}

fn string_keys(map: &BTreeMap<i32, Vec<i32>>) -> BTreeMap<String, Vec<i32>> {
    map.iter()
        .map(|(p, r)| (p.to_string(), r.clone()))
        .collect()
}

impl TopicAssignment {
    /// Kafka 2.8's topic JSON (version 3, with the topic id).
    pub fn encode(&self) -> Bytes {
        encode_json(&TopicJson {
            version: 3,
            topic_id: self.topic_id,
            topic_id_text: None,
            partitions: self
                .partitions
                .iter()
                .enumerate()
                .map(|(p, r)| (p.to_string(), r.clone()))
                .collect(),
            adding_replicas: string_keys(&self.adding_replicas),
            removing_replicas: string_keys(&self.removing_replicas),
        })
    }

    /// Decodes versions 1–3. Partitions must be numbered 0..n, each with at
    /// least one replica and no broker twice.
    pub fn decode(path: &str, data: &[u8]) -> Result<Self, ZnodeError> {
        let json: TopicJson = decode_json(path, data)?;
        check_version(path, json.version, 1..=3)?;
        let topic_id = json
            .topic_id_text
            .map(|text| parse_topic_id(&text).map_err(|e| ZnodeError::new(path, e)))
            .transpose()?;
        let by_index = partition_keys(path, json.partitions)?;
        let mut partitions = Vec::with_capacity(by_index.len());
        for (expected, (p, replicas)) in by_index.into_iter().enumerate() {
            if usize::try_from(p).ok() != Some(expected) {
                return Err(ZnodeError::new(
                    path,
                    format!("partition {expected} is missing"),
                ));
            }
            if replicas.is_empty() {
                return Err(ZnodeError::new(
                    path,
                    format!("partition {p} has no replicas"),
                ));
            }
            let mut sorted = replicas.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return Err(ZnodeError::new(
                    path,
                    format!("partition {p} lists a broker twice"),
                ));
            }
            partitions.push(replicas);
        }
        if partitions.is_empty() {
            return Err(ZnodeError::new(path, "no partitions"));
        }
        Ok(Self {
            topic_id,
            partitions,
            adding_replicas: partition_keys(path, json.adding_replicas)?,
            removing_replicas: partition_keys(path, json.removing_replicas)?,
        })
    }
}

// ---------------------------------------------------------------------------
// /brokers/topics/<t>/partitions/<p>/state

/// A partition's leader and ISR: `/brokers/topics/<t>/partitions/<p>/state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// The leader's broker id, or [`super::NO_LEADER`].
    pub leader: i32,
    pub leader_epoch: i32,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// The epoch of the controller that last elected a leader or changed the ISR.
    pub controller_epoch: i32,
    /// The znode's version (not in the JSON): every writer's expected version.
    /// -1 when the znode does not exist yet.
    pub zk_version: i32,
}

#[derive(Serialize, Deserialize)]
struct PartitionStateJson {
    controller_epoch: i32,
    leader: i32,
    version: i64,
    leader_epoch: i32,
    isr: Vec<i32>,
}

impl PartitionState {
    /// Kafka 2.8's state JSON (version 1). `zk_version` is not part of it.
    pub fn encode(&self) -> Bytes {
        encode_json(&PartitionStateJson {
            controller_epoch: self.controller_epoch,
            leader: self.leader,
            version: 1,
            leader_epoch: self.leader_epoch,
            isr: self.isr.clone(),
        })
    }

    /// Decodes a state read with znode version `zk_version`. Accepts versions
    /// 1–2 (Kafka 3.2 added `leader_recovery_state`, ignored here). An empty
    /// ISR is accepted (Kafka never writes one, but the controller must be able
    /// to repair whatever it finds).
    pub fn decode(path: &str, data: &[u8], zk_version: i32) -> Result<Self, ZnodeError> {
        let json: PartitionStateJson = decode_json(path, data)?;
        check_version(path, json.version, 1..=2)?;
        if json.leader < super::NO_LEADER {
            return Err(ZnodeError::new(path, format!("bad leader {}", json.leader)));
        }
        if let Some(b) = json.isr.iter().find(|&&b| b < 0) {
            return Err(ZnodeError::new(path, format!("bad ISR member {b}")));
        }
        if json.leader_epoch < 0 || json.controller_epoch < 0 {
            return Err(ZnodeError::new(path, "negative epoch"));
        }
        Ok(Self {
            leader: json.leader,
            leader_epoch: json.leader_epoch,
            isr: json.isr,
            controller_epoch: json.controller_epoch,
            zk_version,
        })
    }
}

// ---------------------------------------------------------------------------
// /controller and /controller_epoch

/// The active controller: ephemeral `/controller`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerZnode {
    pub broker_id: i32,
    /// When it became controller, ms since the Unix epoch.
    pub timestamp_ms: i64,
}

#[derive(Deserialize)]
struct ControllerJson {
    version: i64,
    brokerid: i32,
    #[serde(default)]
    timestamp: Option<NumberOrString>,
}

impl ControllerZnode {
    pub fn encode(&self) -> Bytes {
        #[derive(Serialize)]
        struct Json {
            version: i32,
            brokerid: i32,
            timestamp: String,
        }
        encode_json(&Json {
            version: 1,
            brokerid: self.broker_id,
            timestamp: self.timestamp_ms.to_string(),
        })
    }

    pub fn decode(path: &str, data: &[u8]) -> Result<Self, ZnodeError> {
        let json: ControllerJson = decode_json(path, data)?;
        check_version(path, json.version, 1..=1)?;
        if json.brokerid < 0 {
            return Err(ZnodeError::new(
                path,
                format!("bad broker id {}", json.brokerid),
            ));
        }
        let timestamp_ms = match json.timestamp {
            Some(t) => t.to_i64(path, "timestamp")?,
            None => 0,
        };
        Ok(Self {
            broker_id: json.brokerid,
            timestamp_ms,
        })
    }
}

/// `/controller_epoch`'s contents: the epoch as decimal text.
pub fn encode_controller_epoch(epoch: i32) -> Bytes {
    Bytes::from(epoch.to_string())
}

/// Parses `/controller_epoch` (surrounding whitespace tolerated).
pub fn decode_controller_epoch(path: &str, data: &[u8]) -> Result<i32, ZnodeError> {
    let text = std::str::from_utf8(data).map_err(|_| ZnodeError::new(path, "not UTF-8"))?;
    match text.trim().parse::<i32>() {
        Ok(epoch) if epoch >= 0 => Ok(epoch),
        _ => Err(ZnodeError::new(
            path,
            format!("not a controller epoch: {text:?}"),
        )),
    }
}

// ---------------------------------------------------------------------------
// /config/topics/<t>

/// Name of the topic config that allows unclean leader election.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// A topic's configuration overrides: `/config/topics/<t>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicConfig {
    pub config: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct TopicConfigJson {
    version: i64,
    config: BTreeMap<String, String>,
}

impl TopicConfig {
    pub fn encode(&self) -> Bytes {
        encode_json(&TopicConfigJson {
            version: 1,
            config: self.config.clone(),
        })
    }

    pub fn decode(path: &str, data: &[u8]) -> Result<Self, ZnodeError> {
        let json: TopicConfigJson = decode_json(path, data)?;
        check_version(path, json.version, 1..=1)?;
        Ok(Self {
            config: json.config,
        })
    }

    /// The topic's `unclean.leader.election.enable` override; `None` when
    /// absent or not a boolean (Kafka rejects such a value at write time, so
    /// the broker default applies).
    pub fn unclean_leader_election(&self) -> Option<bool> {
        match self.config.get(UNCLEAN_LEADER_ELECTION_ENABLE)?.trim() {
            v if v.eq_ignore_ascii_case("true") => Some(true),
            v if v.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// /cluster/id

/// `/cluster/id`: `{"version":"1","id":"<base64 uuid>"}` (Kafka writes the
/// version as a string).
pub fn encode_cluster_id(cluster_id: &str) -> Bytes {
    #[derive(Serialize)]
    struct Json<'a> {
        version: &'a str,
        id: &'a str,
    }
    encode_json(&Json {
        version: "1",
        id: cluster_id,
    })
}

pub fn decode_cluster_id(path: &str, data: &[u8]) -> Result<String, ZnodeError> {
    #[derive(Deserialize)]
    struct ClusterIdJson {
        version: NumberOrString,
        id: String,
    }
    let json: ClusterIdJson = decode_json(path, data)?;
    check_version(path, json.version.to_i64(path, "version")?, 1..=1)?;
    if json.id.is_empty() {
        return Err(ZnodeError::new(path, "empty cluster id"));
    }
    Ok(json.id)
}

// ---------------------------------------------------------------------------
// /admin/controlled_shutdown/<id>

/// A broker's request to have its leaderships moved away before it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlledShutdownRequest {
    /// The requesting broker's epoch; a request from an older incarnation is stale.
    pub broker_epoch: i64,
}

impl ControlledShutdownRequest {
    pub fn encode(&self) -> Bytes {
        #[derive(Serialize)]
        struct Json {
            version: i32,
            broker_epoch: i64,
        }
        encode_json(&Json {
            version: 1,
            broker_epoch: self.broker_epoch,
        })
    }

    pub fn decode(path: &str, data: &[u8]) -> Result<Self, ZnodeError> {
        #[derive(Deserialize)]
        struct Json {
            version: i64,
            broker_epoch: i64,
        }
        let json: Json = decode_json(path, data)?;
        check_version(path, json.version, 1..=1)?;
        Ok(Self {
            broker_epoch: json.broker_epoch,
        })
    }
}

// ---------------------------------------------------------------------------
// /latest_producer_id_block

/// The last block of producer ids a broker took: `/latest_producer_id_block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdBlock {
    pub broker: i32,
    /// First and last id of the block, inclusive.
    pub block_start: i64,
    pub block_end: i64,
}

impl ProducerIdBlock {
    pub fn encode(&self) -> Bytes {
        #[derive(Serialize)]
        struct Json {
            version: i32,
            broker: i32,
            block_start: String,
            block_end: String,
        }
        encode_json(&Json {
            version: 1,
            broker: self.broker,
            block_start: self.block_start.to_string(),
            block_end: self.block_end.to_string(),
        })
    }

    pub fn decode(path: &str, data: &[u8]) -> Result<Self, ZnodeError> {
        #[derive(Deserialize)]
        struct Json {
            version: i64,
            broker: i32,
            block_start: NumberOrString,
            block_end: NumberOrString,
        }
        let json: Json = decode_json(path, data)?;
        check_version(path, json.version, 1..=1)?;
        let block_start = json.block_start.to_i64(path, "block_start")?;
        let block_end = json.block_end.to_i64(path, "block_end")?;
        if block_start < 0 || block_end < block_start {
            return Err(ZnodeError::new(path, "bad producer id block bounds"));
        }
        Ok(Self {
            broker: json.broker,
            block_start,
            block_end,
        })
    }
}

// ---------------------------------------------------------------------------
// /isr_change_notification/isr_change_<seq>

/// A leader's note that it changed the ISR of these partitions (the
/// controller reads their states back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChangeNotification {
    pub partitions: Vec<super::TopicPartition>,
}

#[derive(Serialize, Deserialize)]
struct TopicPartitionJson {
    topic: String,
    partition: i32,
}

impl IsrChangeNotification {
    pub fn encode(&self) -> Bytes {
        #[derive(Serialize)]
        struct Json {
            version: i32,
            partitions: Vec<TopicPartitionJson>,
        }
        encode_json(&Json {
            version: 1,
            partitions: self
                .partitions
                .iter()
                .map(|(topic, partition)| TopicPartitionJson {
                    topic: topic.clone(),
                    partition: *partition,
                })
                .collect(),
        })
    }

    pub fn decode(path: &str, data: &[u8]) -> Result<Self, ZnodeError> {
        #[derive(Deserialize)]
        struct Json {
            version: i64,
            partitions: Vec<TopicPartitionJson>,
        }
        let json: Json = decode_json(path, data)?;
        check_version(path, json.version, 1..=1)?;
        if let Some(bad) = json
            .partitions
            .iter()
            .find(|tp| tp.partition < 0 || tp.topic.is_empty())
        {
            return Err(ZnodeError::new(
                path,
                format!("bad partition {}-{}", bad.topic, bad.partition),
            ));
        }
        Ok(Self {
            partitions: json
                .partitions
                .into_iter()
                .map(|tp| (tp.topic, tp.partition))
                .collect(),
        })
    }
}

// ---------------------------------------------------------------------------
// /config/changes/config_change_<seq>

/// Tells every broker to reload the config of one entity, e.g. `topics/<t>`.
pub fn encode_config_change(entity_path: &str) -> Bytes {
    #[derive(Serialize)]
    struct Json<'a> {
        version: i32,
        entity_path: &'a str,
    }
    encode_json(&Json {
        version: 2,
        entity_path,
    })
}

/// The entity path of a config change notification (version 2 only; Kafka
/// stopped writing version 1 in 2.0).
pub fn decode_config_change(path: &str, data: &[u8]) -> Result<String, ZnodeError> {
    #[derive(Deserialize)]
    struct Json {
        version: i64,
        entity_path: String,
    }
    let json: Json = decode_json(path, data)?;
    check_version(path, json.version, 2..=2)?;
    if json.entity_path.is_empty() {
        return Err(ZnodeError::new(path, "empty entity_path"));
    }
    Ok(json.entity_path)
}

#[cfg(test)]
mod tests;
