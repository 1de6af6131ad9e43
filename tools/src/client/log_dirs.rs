//! DescribeLogDirs (`kafka-log-dirs --describe`): every broker's log dirs and the partition
//! replicas in each, with sizes, offset lags and the file systems' total and usable bytes.

use kafka_protocol::messages::{ApiKey, DescribeLogDirsRequest};
use serde::Serialize;

use super::admin::Admin;
use super::errors::{ClientError, Result};

/// One partition replica in a log dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogDirReplica {
    pub topic: String,
    pub partition: i32,
    pub size_bytes: i64,
    pub offset_lag: i64,
    pub is_future: bool,
}

/// One log dir of one broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogDirInfo {
    pub log_dir: String,
    /// The dir's Kafka error code (0: online).
    pub error_code: i16,
    /// The file system's size and usable bytes (-1: not reported, before v4).
    pub total_bytes: i64,
    pub usable_bytes: i64,
    pub replicas: Vec<LogDirReplica>,
}

/// One broker's log dirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerLogDirs {
    pub broker: i32,
    pub log_dirs: Vec<LogDirInfo>,
}

impl Admin {
    /// Every broker's log dirs; with `topics`, only replicas of those topics are listed.
    pub async fn describe_log_dirs(&self, topics: &[String]) -> Result<Vec<BrokerLogDirs>> {
        let metadata = self.client().refresh_metadata(None).await?;
        let mut brokers = Vec::new();
        for &broker in metadata.brokers.keys() {
            let connection = self.client().broker_connection(broker).await?;
            if !connection.versions().offers(ApiKey::DescribeLogDirs) {
                return Err(ClientError::ApiNotOffered {
                    api: "DescribeLogDirs".into(),
                    addr: connection.addr().to_string(),
                });
            }
            // `null` topics: every replica (the filter is applied here, by name).
            let response = connection
                .send(&DescribeLogDirsRequest::default().with_topics(None))
                .await?;
            if response.error_code != 0 {
                return Err(ClientError::kafka(
                    format!("log dirs of broker {broker}"),
                    response.error_code,
                    None,
                ));
            }
            let mut log_dirs: Vec<LogDirInfo> = response
                .results
                .into_iter()
                .map(|result| {
                    let mut replicas: Vec<LogDirReplica> = result
                        .topics
                        .into_iter()
                        .filter(|topic| {
                            topics.is_empty() || topics.iter().any(|t| *t == *topic.name.0)
                        })
                        .flat_map(|topic| {
                            let name = topic.name.0.to_string();
                            topic
                                .partitions
                                .into_iter()
                                .map(move |partition| LogDirReplica {
                                    topic: name.clone(),
                                    partition: partition.partition_index,
                                    size_bytes: partition.partition_size,
                                    offset_lag: partition.offset_lag,
                                    is_future: partition.is_future_key,
                                })
                        })
                        .collect();
                    replicas.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                    LogDirInfo {
                        log_dir: result.log_dir.to_string(),
                        error_code: result.error_code,
                        total_bytes: result.total_bytes,
                        usable_bytes: result.usable_bytes,
                        replicas,
                    }
                })
                .collect();
            log_dirs.sort_by(|a, b| a.log_dir.cmp(&b.log_dir));
            brokers.push(BrokerLogDirs { broker, log_dirs });
        }
        Ok(brokers)
    }
}
