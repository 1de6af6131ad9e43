//! What every shard of a broker shares: configuration, the broker's view of the cluster, and
//! the handle on the control plane (topic changes, elections, producer-id blocks). Read-mostly;
//! never on the data path.

use std::path::PathBuf;
use std::sync::Arc;

use super::producer_ids::ProducerIdAllocator;
use super::topics::TopicRegistry;
use crate::config::BrokerConfig;
use crate::control_plane::ControlPlane;
use crate::network::ConnectionLimits;

pub struct BrokerContext {
    pub config: BrokerConfig,
    pub log_dir: PathBuf,
    /// The cluster as the control plane last read it (the shards' caches follow it).
    pub topics: Arc<TopicRegistry>,
    pub control: ControlPlane,
    pub producer_ids: ProducerIdAllocator,
    pub cluster_id: String,
    pub shard_count: usize,
    /// The high watermarks the log dir's `replication-offset-checkpoint` held at start: a
    /// replicated partition opens with its high watermark there, not at its log end (which may
    /// hold records its leader never confirmed).
    pub checkpointed_high_watermarks: strom_engine::log::PartitionOffsets,
    /// `max.connections` and `max.connections.per.ip`, counted over every shard's listener.
    pub connections: Arc<ConnectionLimits>,
}
