//! What every shard of a broker shares: configuration, the broker's view of the cluster, and
//! the handle on the control plane (topic changes, elections, producer-id blocks). Read-mostly;
//! never on the data path.

use std::path::PathBuf;
use std::sync::Arc;

use super::log_dirs::LogDirs;
use super::producer_ids::ProducerIdAllocator;
use super::topics::TopicRegistry;
use crate::config::BrokerConfig;
use crate::control_plane::ControlPlane;
use crate::network::ConnectionLimits;

pub struct BrokerContext {
    pub config: BrokerConfig,
    /// The first log dir: the embedded coordination store and the pid file live there.
    pub log_dir: PathBuf,
    /// Every log dir, and which one holds each partition.
    pub log_dirs: LogDirs,
    /// The cluster as the control plane last read it (the shards' caches follow it).
    pub topics: Arc<TopicRegistry>,
    pub control: ControlPlane,
    pub producer_ids: ProducerIdAllocator,
    pub cluster_id: String,
    pub shard_count: usize,
    /// The high watermarks the log dirs' `replication-offset-checkpoint`s held at start: a
    /// replicated partition opens with its high watermark there, not at its log end (which may
    /// hold records its leader never confirmed).
    pub checkpointed_high_watermarks: strom_engine::log::PartitionOffsets,
    /// `max.connections` and `max.connections.per.ip`, counted over every shard's listener.
    pub connections: Arc<ConnectionLimits>,
}

impl BrokerContext {
    /// The configuration with the dynamic broker configs (`/config/brokers`) applied: what
    /// topic configs fall back to. Not for the data path (it takes the view's lock).
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        self.topics
            .dynamic_broker_configs()
            .map(|(_, effective)| effective)
            .unwrap_or_else(|| Arc::new(self.config.clone()))
    }

    /// The dynamic broker configs this broker applies (empty when none are set).
    pub fn dynamic_broker_configs(&self) -> super::dynamic_config::DynamicBrokerConfigs {
        self.topics
            .dynamic_broker_configs()
            .map(|(dynamic, _)| dynamic)
            .unwrap_or_default()
    }
}
