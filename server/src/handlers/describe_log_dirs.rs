//! DescribeLogDirs (key 35, v1–v4): per log dir of this broker, each partition replica in it
//! with its size in bytes and offset lag, and (v4) the file system's total and usable bytes.
//!
//! As Kafka: the offset lag is `max(0, high watermark - log end offset)` (0 for a leader, whose
//! log end is never behind its high watermark); `is_future_key` is always false (Strom does not
//! move replicas between dirs); a request naming topics gets only those (`null`: all).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::error_codes::NONE;
use super::{RequestContext, ResponseFuture};

/// One replica as its shard reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaReport {
    pub topic: String,
    pub index: i32,
    pub size_bytes: i64,
    pub offset_lag: i64,
}

/// One log dir: its path, where its replicas are, and its file system's size (`None` when
/// `statvfs` failed: -1 is sent, Kafka's "unknown").
#[derive(Debug, Clone)]
pub struct DirReport {
    pub path: String,
    pub space: Option<strom_engine::log::FileSystemSpace>,
}

/// Which replicas a request asks about: `None` is every one.
pub type Wanted = Option<HashSet<(String, i32)>>;

pub fn wanted(request: &DescribeLogDirsRequest) -> Wanted {
    request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(move |&index| (topic.topic.0.to_string(), index))
            })
            .collect()
    })
}

/// Builds the response: `replicas[i]` are the replicas dir `i` holds.
pub fn build_response(
    dirs: &[DirReport],
    replicas: Vec<Vec<ReplicaReport>>,
    wanted: &Wanted,
) -> DescribeLogDirsResponse {
    let results = dirs
        .iter()
        .zip(replicas)
        .map(|(dir, replicas)| {
            let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
            for replica in replicas {
                let asked = wanted
                    .as_ref()
                    .is_none_or(|set| set.contains(&(replica.topic.clone(), replica.index)));
                if !asked {
                    continue;
                }
                topics.entry(replica.topic).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(replica.index)
                        .with_partition_size(replica.size_bytes)
                        .with_offset_lag(replica.offset_lag)
                        .with_is_future_key(false),
                );
            }
            let topics = topics
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|partition| partition.partition_index);
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(name.into()))
                        .with_partitions(partitions)
                })
                .collect();
            let (total_bytes, usable_bytes) = dir.space.map_or((-1, -1), |space| {
                (
                    i64::try_from(space.total_bytes).unwrap_or(i64::MAX),
                    i64::try_from(space.usable_bytes).unwrap_or(i64::MAX),
                )
            });
            DescribeLogDirsResult::default()
                .with_error_code(NONE)
                .with_log_dir(dir.path.clone().into())
                .with_topics(topics)
                .with_total_bytes(total_bytes)
                .with_usable_bytes(usable_bytes)
        })
        .collect();
    DescribeLogDirsResponse::default()
        .with_error_code(NONE)
        .with_results(results)
}

pub async fn handle(ctx: RequestContext, request: DescribeLogDirsRequest) -> ResponseFuture {
    Box::pin(async move {
        let wanted = wanted(&request);
        // Each shard reports the replicas it owns (sizes and offsets live on the owner).
        let asks: Vec<_> = (0..ctx.shard.router.shard_count())
            .map(|shard| {
                ctx.shard.run_on(shard, |state| async move {
                    state
                        .partitions()
                        .into_iter()
                        .map(|partition| ReplicaReport {
                            topic: partition.topic.to_string(),
                            index: partition.index,
                            size_bytes: i64::try_from(partition.log.size_bytes())
                                .unwrap_or(i64::MAX),
                            offset_lag: (partition.log.high_watermark()
                                - partition.log.log_end_offset())
                            .max(0),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let reports: Vec<ReplicaReport> = strom_engine::runtime::join_all(asks)
            .await
            .into_iter()
            // A stopped shard: the broker is going down; its replicas are left out.
            .flat_map(Result::unwrap_or_default)
            .collect();
        let log_dirs = &ctx.shard.broker.log_dirs;
        let mut by_dir = vec![Vec::new(); log_dirs.len()];
        for report in reports {
            if let Some(dir_index) = log_dirs.dir_index_of(&report.topic, report.index) {
                by_dir[dir_index].push(report);
            }
        }
        let dirs: Vec<DirReport> = log_dirs
            .paths()
            .into_iter()
            .map(|path| DirReport {
                space: strom_engine::log::file_system_space(&path).ok(),
                path: path.display().to_string(),
            })
            .collect();
        ctx.respond(&build_response(&dirs, by_dir, &wanted))
    })
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;

    use super::*;

    fn replica(topic: &str, index: i32, size_bytes: i64) -> ReplicaReport {
        ReplicaReport {
            topic: topic.into(),
            index,
            size_bytes,
            offset_lag: 0,
        }
    }

    #[test]
    fn replicas_are_grouped_per_dir_and_topic_and_filtered_by_the_request() {
        let dirs = vec![
            DirReport {
                path: "/a".into(),
                space: Some(strom_engine::log::FileSystemSpace {
                    total_bytes: 100,
                    usable_bytes: 40,
                }),
            },
            DirReport {
                path: "/b".into(),
                space: None,
            },
        ];
        let replicas = vec![
            vec![replica("t", 1, 10), replica("t", 0, 5), replica("u", 0, 7)],
            vec![replica("t", 2, 3)],
        ];
        let all = build_response(&dirs, replicas.clone(), &None);
        assert_eq!(all.results.len(), 2);
        let a = &all.results[0];
        assert_eq!((a.total_bytes, a.usable_bytes), (100, 40));
        assert_eq!(a.topics.len(), 2);
        let t: Vec<(i32, i64)> = a.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.partition_size))
            .collect();
        assert_eq!(t, vec![(0, 5), (1, 10)]);
        assert_eq!(all.results[1].total_bytes, -1);

        let request = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(TopicName("t".to_string().into()))
                .with_partitions(vec![2]),
        ]));
        let some = build_response(&dirs, replicas, &wanted(&request));
        assert!(some.results[0].topics.is_empty());
        assert_eq!(some.results[1].topics[0].partitions[0].partition_index, 2);
    }
}
