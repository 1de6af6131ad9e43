//! Partition reassignment on the controller: AlterPartitionReassignments and
//! ListPartitionReassignments (KIP-455).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::Client;
use super::connection::Connection;
use super::errors::{ClientError, Result};

/// How long the controller may take to answer.
const REASSIGNMENT_TIMEOUT_MS: i32 = 30_000;

/// An ongoing reassignment: replicas (original and target), adding, removing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ongoing {
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// A partition and its target replicas (`None`: cancel its reassignment).
pub type Change = ((String, i32), Option<Vec<i32>>);

/// Per partition, success or the error the controller gave.
pub type AlterResults = Vec<((String, i32), std::result::Result<(), String>)>;

async fn controller(client: &Client) -> Result<Arc<Connection>> {
    let metadata = client.refresh_metadata(Some(&[])).await?;
    if metadata.controller_id < 0 {
        return Err(ClientError::InvalidArgument(
            "the cluster has no controller right now".into(),
        ));
    }
    client.broker_connection(metadata.controller_id).await
}

/// Starts (target replicas) or cancels (`None`) the reassignment of each partition.
pub async fn alter(client: &Client, changes: &[Change]) -> Result<AlterResults> {
    let connection = controller(client).await?;
    let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for ((topic, partition), replicas) in changes {
        by_topic.entry(topic).or_default().push(
            ReassignablePartition::default()
                .with_partition_index(*partition)
                .with_replicas(
                    replicas
                        .as_ref()
                        .map(|r| r.iter().copied().map(BrokerId).collect()),
                ),
        );
    }
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(REASSIGNMENT_TIMEOUT_MS)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    ReassignableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = connection.send_version(&request, 0).await?;
    if response.error_code != 0 {
        return Err(ClientError::kafka(
            "reassign partitions".to_string(),
            response.error_code,
            response.error_message.map(|m| m.to_string()),
        ));
    }
    Ok(response
        .responses
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |p| {
                let result = if p.error_code == 0 {
                    Ok(())
                } else {
                    let message = p
                        .error_message
                        .as_ref()
                        .map_or_else(|| format!("error {}", p.error_code), |m| m.to_string());
                    Err(message)
                };
                ((topic.name.to_string(), p.partition_index), result)
            })
        })
        .collect())
}

/// Every ongoing reassignment, by topic and partition.
pub async fn list(client: &Client) -> Result<BTreeMap<(String, i32), Ongoing>> {
    let connection = controller(client).await?;
    let request =
        ListPartitionReassignmentsRequest::default().with_timeout_ms(REASSIGNMENT_TIMEOUT_MS);
    let response = connection.send_version(&request, 0).await?;
    if response.error_code != 0 {
        return Err(ClientError::kafka(
            "list reassignments".to_string(),
            response.error_code,
            response.error_message.map(|m| m.to_string()),
        ));
    }
    let ids = |list: &[BrokerId]| list.iter().map(|b| b.0).collect::<Vec<i32>>();
    Ok(response
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |p| {
                (
                    (topic.name.to_string(), p.partition_index),
                    Ongoing {
                        replicas: ids(&p.replicas),
                        adding: ids(&p.adding_replicas),
                        removing: ids(&p.removing_replicas),
                    },
                )
            })
        })
        .collect())
}
