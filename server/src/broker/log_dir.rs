//! Opening a shard's partitions at start and closing them at stop, several at a time, each
//! under the [`LogDir`] of the log dir it lives in (which keeps the one clean-shutdown marker
//! for all the partitions there; see `log_dirs`).
//!
//! Every failure to open or close a partition is reported to its log dir with
//! [`LogDir::mark_unclean`], so the marker is never written over a partition whose state on
//! disk was not closed cleanly in this run.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use strom_engine::runtime::ShardId;

use super::context::BrokerContext;
use super::partition::Partition;
use super::placement::owner_shard;
use super::topic_config::log_config;

/// Partitions a shard opens (or closes) at once. Their work is mostly small synchronous file
/// operations with a few io_uring reads and waits in between (index check, writer drain);
/// running several at once overlaps those waits. It bounds the memory of opens in flight.
pub const PARTITIONS_IN_FLIGHT_MAX: usize = 32;

/// Runs `work` on every item on the current shard, at most `limit` at a time; returns once all
/// are done.
async fn for_each_bounded<T, F, Fut>(items: Vec<T>, limit: usize, work: F)
where
    T: 'static,
    F: Fn(T) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let workers_count = limit.max(1).min(items.len());
    let queue = Rc::new(RefCell::new(VecDeque::from(items)));
    let work = Rc::new(work);
    let workers: Vec<_> = (0..workers_count)
        .map(|_| {
            let queue = queue.clone();
            let work = work.clone();
            strom_engine::io::spawn_local(async move {
                loop {
                    let next = queue.borrow_mut().pop_front();
                    match next {
                        Some(item) => work(item).await,
                        None => return,
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        if let Err(error) = worker.await {
            tracing::error!(%error, "a partition open/close worker failed");
        }
    }
}

/// Opens every partition assigned to this broker that `shard` owns (by the current shard
/// count: ownership may differ from the last run), each in the log dir it was found in (or,
/// new here, placed by `log_dirs`). A partition that fails to open stays offline and marks its
/// log dir unclean.
pub async fn open_owned_partitions(
    shard: ShardId,
    broker: Arc<BrokerContext>,
) -> Vec<Rc<Partition>> {
    let mut owned = Vec::new();
    let broker_id = broker.config.broker_id;
    for topic in broker.topics.list() {
        let topic = Rc::new(topic);
        for (state, index) in topic.partition_states.iter().zip(0..) {
            if state.replicas.contains(&broker_id)
                && owner_shard(&topic.name, index, broker.shard_count) == shard
            {
                owned.push((topic.clone(), index));
            }
        }
    }
    let opened = Rc::new(RefCell::new(Vec::with_capacity(owned.len())));
    let sink = opened.clone();
    for_each_bounded(owned, PARTITIONS_IN_FLIGHT_MAX, move |(topic, index)| {
        let broker = broker.clone();
        let sink = sink.clone();
        async move {
            let (dir_index, dir) = broker.log_dirs.place(&topic.name, index);
            let log_dir = broker.log_dirs.dir(dir_index).clone();
            let config = log_config(&broker.config, &topic.configs);
            let name: Rc<str> = Rc::from(topic.name.as_str());
            match Partition::open_in(dir, name, index, topic.id, config, log_dir.scope()).await {
                Ok(partition) => {
                    super::shard::restore_high_watermark(&broker, &topic, &partition);
                    sink.borrow_mut().push(partition)
                }
                Err(error) => {
                    log_dir.mark_unclean();
                    tracing::error!(topic = %topic.name, index, %error, "could not open partition; it stays offline");
                }
            }
        }
    })
    .await;
    opened.take()
}

/// Closes `partitions` cleanly, several at a time; a failure marks the partition's log dir
/// unclean.
pub async fn close_partitions(partitions: Vec<Rc<Partition>>, broker: Arc<BrokerContext>) {
    for_each_bounded(partitions, PARTITIONS_IN_FLIGHT_MAX, move |partition| {
        let broker = broker.clone();
        async move {
            if let Err(error) = partition.close().await {
                match broker.log_dirs.dir_index_of(&partition.topic, partition.index) {
                    Some(dir_index) => broker.log_dirs.dir(dir_index).mark_unclean(),
                    // Not placed (cannot happen for an open partition): every dir recovers.
                    None => broker.log_dirs.dirs().iter().for_each(|dir| dir.mark_unclean()),
                }
                tracing::error!(topic = %partition.topic, index = partition.index, %error, "clean close failed");
            }
        }
    })
    .await;
}

/// Removes replica directories this broker should no longer have: partitions of topics that
/// were deleted (or moved away) while it was down, and deletions a crash interrupted
/// (`*-delete`). Runs once at start, before any partition opens, and only with a loaded view
/// (a view without any topic is not trusted to say that everything is gone). Returns how many
/// directories it removed.
pub fn remove_stray_replicas(
    log_dir: &std::path::Path,
    view: &super::topics::TopicRegistry,
    broker_id: i32,
) -> usize {
    let topics = view.list();
    if topics.is_empty() {
        return 0;
    }
    let assigned = |name: &str, index: i32| {
        topics.iter().any(|topic| {
            topic.name == name
                && topic
                    .partition(index)
                    .is_some_and(|state| state.replicas.contains(&broker_id))
        })
    };
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            continue;
        }
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        let stray = if name.ends_with("-delete") && name.contains('.') {
            true
        } else {
            match name.rsplit_once('-') {
                Some((topic, index)) => match index.parse::<i32>() {
                    Ok(index)
                        if super::topics::validate_topic_name(topic).is_ok() && index >= 0 =>
                    {
                        !assigned(topic, index)
                    }
                    _ => false,
                },
                None => false,
            }
        };
        if !stray {
            continue;
        }
        tracing::warn!(dir = name, "removing a replica this broker no longer holds (topic deleted or moved while it was down)");
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => removed += 1,
            Err(error) => tracing::warn!(dir = name, %error, "could not remove a stray replica"),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::topics::{PartitionView, TopicMetadata, TopicRegistry};

    #[test]
    fn only_replicas_no_longer_held_are_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in [
            "t-0",
            "t-1",
            "gone-0",
            "t-0.0123abcd-delete",
            "__coordination",
        ] {
            std::fs::create_dir(dir.path().join(name)).expect("mkdir");
        }
        std::fs::write(dir.path().join("meta.properties"), "broker.id=1\n").expect("write");
        let view = TopicRegistry::new();
        let mut states = vec![PartitionView::unelected(vec![1, 2])];
        states.push(PartitionView::unelected(vec![2, 3]));
        view.apply_topic(
            "t",
            Some(TopicMetadata {
                name: "t".into(),
                id: uuid::Uuid::new_v4(),
                partitions: 2,
                replication_factor: 2,
                configs: Default::default(),
                partition_states: states,
            }),
        );
        assert_eq!(remove_stray_replicas(dir.path(), &view, 1), 3);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["__coordination", "meta.properties", "t-0"]);
        // An empty view is not trusted to say that everything is gone.
        assert_eq!(
            remove_stray_replicas(dir.path(), &TopicRegistry::new(), 1),
            0
        );
    }
}
