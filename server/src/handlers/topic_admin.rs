//! Shared steps of the topic handlers: topic changes through the control plane (which writes
//! the znodes, waits for the controller, and publishes the result to every shard), and running
//! work on a partition's owner shard.

use std::future::Future;
use std::rc::Rc;

use crate::broker::partition::Partition;
use crate::broker::shard::ShardState;
use crate::broker::topics::{TopicError, TopicMetadata};
use crate::control_plane::NewTopic;

/// Runs `work` on the shard that owns `topic`-`index`, with the partition. `None` if this
/// broker does not have the partition (unknown topic or partition) or the shard stopped.
pub async fn on_partition_owner<R, F, Fut>(
    shard: &Rc<ShardState>,
    topic: &str,
    index: i32,
    work: F,
) -> Option<R>
where
    R: Send + 'static,
    F: FnOnce(Rc<Partition>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
{
    let owner = shard.owner_of(topic, index);
    let topic = topic.to_string();
    shard
        .run_on(owner, move |state: Rc<ShardState>| async move {
            match state.partition(&topic, index) {
                Some(partition) => Some(work(partition).await),
                None => None,
            }
        })
        .await
        .ok()
        .flatten()
}

/// How long a topic change made for a client that gave no timeout waits for the controller
/// (auto-creation on Metadata, Kafka's default request timeout).
pub const DEFAULT_TOPIC_TIMEOUT_MS: u64 = 30_000;

/// A request's `timeout_ms` as a wait: negative means "do not wait", as 0 does.
pub fn request_timeout_ms(timeout_ms: i32) -> u64 {
    u64::try_from(timeout_ms).unwrap_or(0)
}

/// Creates a topic through the control plane and waits (up to `timeout_ms`) until its
/// partitions have leaders in this broker's view.
pub async fn create_topic(
    shard: &Rc<ShardState>,
    topic: NewTopic,
    validate_only: bool,
    timeout_ms: u64,
) -> Result<TopicMetadata, TopicError> {
    shard
        .broker
        .control
        .create_topic(topic, validate_only, timeout_ms)
        .await
}

/// Auto-creation on Metadata (auto.create.topics.enable): the broker's default partition count
/// and replication factor.
pub async fn auto_create_topic(
    shard: &Rc<ShardState>,
    name: &str,
) -> Result<TopicMetadata, TopicError> {
    let config = &shard.broker.config;
    let topic = NewTopic {
        name: name.to_string(),
        partitions: config.num_partitions,
        replication_factor: config.default_replication_factor,
        assignment: None,
        configs: Default::default(),
    };
    match create_topic(shard, topic, false, DEFAULT_TOPIC_TIMEOUT_MS).await {
        Err(TopicError::AlreadyExists(_)) => shard
            .broker
            .topics
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string())),
        other => other,
    }
}

/// Deletes a topic: the controller removes it and every broker its replicas' files. Waits (up
/// to `timeout_ms`) until this broker's view no longer has it.
pub async fn delete_topic(
    shard: &Rc<ShardState>,
    name: &str,
    timeout_ms: u64,
) -> Result<TopicMetadata, TopicError> {
    shard
        .broker
        .control
        .delete_topic(name.to_string(), timeout_ms)
        .await
}
