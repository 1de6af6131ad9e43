//! Shared steps of the topic handlers: opening a new topic's partitions on their owner shards,
//! auto-creating topics, and running work on a partition's owner shard.

use std::future::Future;
use std::rc::Rc;

use crate::broker::metadata_cache::MetadataUpdate;
use crate::broker::partition::Partition;
use crate::broker::shard::ShardState;
use crate::broker::topics::{TopicError, TopicMetadata};

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

/// Sends a control-plane change to every shard's metadata cache and waits until all have it,
/// so a client that hears "created" can use the topic through any connection.
pub async fn publish_metadata(shard: &Rc<ShardState>, update: MetadataUpdate) {
    let deliveries: Vec<_> = (0..shard.router.shard_count())
        .map(|target| {
            let update = update.clone();
            shard.run_on(target, move |state: Rc<ShardState>| async move {
                state.apply_metadata(&update);
            })
        })
        .collect();
    for outcome in strom_engine::runtime::join_all(deliveries).await {
        if let Err(error) = outcome {
            tracing::warn!(%error, "could not update a shard's metadata cache");
        }
    }
}

/// Opens partitions `from..topic.partitions` of a topic on their owner shards.
pub async fn open_partitions(
    shard: &Rc<ShardState>,
    topic: &TopicMetadata,
    from: i32,
) -> Result<(), String> {
    for index in from..topic.partitions {
        let owner = shard.owner_of(&topic.name, index);
        let metadata = topic.clone();
        shard
            .run_on(owner, move |state: Rc<ShardState>| async move {
                state
                    .open_partition(&metadata, index)
                    .await
                    .map(|_| ())
                    .map_err(|error| error.to_string())
            })
            .await
            .map_err(|error| error.to_string())??;
    }
    Ok(())
}

/// Creates a topic and opens its partitions. If opening fails the topic stays registered (as
/// in Kafka, where a topic exists once its metadata does) and the error is reported.
pub async fn create_topic(
    shard: &Rc<ShardState>,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    configs: std::collections::BTreeMap<String, String>,
    validate_only: bool,
) -> Result<TopicMetadata, TopicError> {
    let (metadata, update) =
        shard
            .broker
            .topics
            .create(name, partitions, replication_factor, configs, validate_only)?;
    if let Some(update) = update {
        // Partitions open before the shards learn of the topic, so a request routed by the new
        // metadata finds its partition.
        let opened = open_partitions(shard, &metadata, 0).await;
        publish_metadata(shard, update).await;
        opened.map_err(TopicError::Store)?;
        tracing::info!(topic = name, partitions, "created topic");
        notify_partitions_changed(shard, vec![name.to_string()]).await;
    }
    Ok(metadata)
}

/// Tells every group coordinator that these topics' partitions changed (created, grown,
/// deleted): groups subscribed to them rebalance.
pub async fn notify_partitions_changed(shard: &Rc<ShardState>, topics: Vec<String>) {
    for target in 0..shard.router.shard_count() {
        let topics = topics.clone();
        let outcome = shard
            .router
            .submit_to(target, move |state: Rc<ShardState>| async move {
                state.groups.broadcast(super::now_ms(), || {
                    crate::group::Input::PartitionsChanged(topics.clone())
                });
            })
            .await;
        if let Err(error) = outcome {
            tracing::warn!(%error, "could not notify group coordinators of a partition change");
        }
    }
}

/// Auto-creation on Metadata (auto.create.topics.enable): the broker's default partition count
/// and replication factor.
pub async fn auto_create_topic(
    shard: &Rc<ShardState>,
    name: &str,
) -> Result<TopicMetadata, TopicError> {
    let config = &shard.broker.config;
    match create_topic(
        shard,
        name,
        config.num_partitions,
        config.default_replication_factor,
        Default::default(),
        false,
    )
    .await
    {
        Err(TopicError::AlreadyExists(_)) => shard
            .broker
            .topics
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string())),
        other => other,
    }
}

/// Deletes a topic and its partitions' data.
pub async fn delete_topic(shard: &Rc<ShardState>, name: &str) -> Result<TopicMetadata, TopicError> {
    if name == crate::broker::group_placement::OFFSETS_TOPIC {
        return Err(TopicError::InvalidName {
            name: name.to_string(),
            reason: "internal topics cannot be deleted",
        });
    }
    let (metadata, update) = shard.broker.topics.delete(name)?;
    // Shards stop routing to the topic before its partitions go.
    publish_metadata(shard, update).await;
    for index in 0..metadata.partitions {
        let owner = shard.owner_of(name, index);
        let topic = name.to_string();
        let outcome = shard
            .run_on(owner, move |state: Rc<ShardState>| async move {
                state.remove_partition(&topic, index, true).await
            })
            .await;
        if let Err(error) = outcome {
            tracing::warn!(topic = name, index, %error, "could not remove a deleted topic's partition");
        }
    }
    tracing::info!(topic = name, "deleted topic");
    notify_partitions_changed(shard, vec![name.to_string()]).await;
    Ok(metadata)
}
