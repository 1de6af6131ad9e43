//! What every shard of a broker shares: configuration and the control plane (topic registry,
//! producer-id allocation, the coordination store). Read-mostly; never on the data path.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use super::producer_ids::ProducerIdAllocator;
use super::topics::TopicRegistry;
use crate::config::BrokerConfig;
use crate::coordination::{CoordinationError, CoordinationStore, CreateMode};

const CLUSTER_ID_PATH: &str = "/cluster";
const CLUSTER_ID_NODE: &str = "/cluster/id";

pub struct BrokerContext {
    pub config: BrokerConfig,
    pub log_dir: PathBuf,
    pub store: Arc<CoordinationStore>,
    pub topics: TopicRegistry,
    pub producer_ids: ProducerIdAllocator,
    pub cluster_id: String,
    pub shard_count: usize,
}

/// The cluster id, made once and kept in the coordination store (Kafka's `/cluster/id`).
pub fn load_or_create_cluster_id(store: &CoordinationStore) -> Result<String, CoordinationError> {
    match store.create(CLUSTER_ID_PATH, Bytes::new(), CreateMode::Persistent) {
        Ok(_) | Err(CoordinationError::NodeExists { .. }) => {}
        Err(error) => return Err(error),
    }
    match store.get(CLUSTER_ID_NODE) {
        Ok((data, _)) => Ok(String::from_utf8_lossy(&data).into_owned()),
        Err(CoordinationError::NoNode { .. }) => {
            // Kafka's cluster ids are 22-character base64 UUIDs; a hex UUID reads as well.
            let id = uuid::Uuid::new_v4().simple().to_string();
            store.create(
                CLUSTER_ID_NODE,
                Bytes::from(id.clone()),
                CreateMode::Persistent,
            )?;
            Ok(id)
        }
        Err(error) => Err(error),
    }
}
