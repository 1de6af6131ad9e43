//! Opening a shard's partitions at start and closing them at stop, several at a time, under the
//! broker's one [`LogDir`] (which keeps the single clean-shutdown marker for all of them).
//!
//! Every failure to open or close a partition is reported to the log dir with
//! [`LogDir::mark_unclean`], so the marker is never written over a partition whose state on
//! disk was not closed cleanly in this run.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use strom_engine::log::LogDir;
use strom_engine::runtime::ShardId;

use super::context::BrokerContext;
use super::partition::{partition_dir, Partition};
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
/// count: ownership may differ from the last run). A partition that fails to open stays offline and marks the log dir
/// unclean.
pub async fn open_owned_partitions(
    shard: ShardId,
    broker: Arc<BrokerContext>,
    log_dir: Arc<LogDir>,
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
    let scope = log_dir.scope();
    for_each_bounded(owned, PARTITIONS_IN_FLIGHT_MAX, move |(topic, index)| {
        let broker = broker.clone();
        let log_dir = log_dir.clone();
        let sink = sink.clone();
        async move {
            let dir = partition_dir(&broker.log_dir, &topic.name, index);
            let config = log_config(&broker.config, &topic.configs);
            let name: Rc<str> = Rc::from(topic.name.as_str());
            match Partition::open_in(dir, name, index, topic.id, config, scope).await {
                Ok(partition) => sink.borrow_mut().push(partition),
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

/// Closes `partitions` cleanly, several at a time; a failure marks the log dir unclean.
pub async fn close_partitions(partitions: Vec<Rc<Partition>>, log_dir: Arc<LogDir>) {
    for_each_bounded(partitions, PARTITIONS_IN_FLIGHT_MAX, move |partition| {
        let log_dir = log_dir.clone();
        async move {
            if let Err(error) = partition.close().await {
                log_dir.mark_unclean();
                tracing::error!(topic = %partition.topic, index = partition.index, %error, "clean close failed");
            }
        }
    })
    .await;
}
