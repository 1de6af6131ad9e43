//! `strom cluster info`, `strom cluster rebalance` (in `reassign`) and `strom cluster up` (in
//! `cluster_up`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::{presets, Table};
use serde::Serialize;

use super::cluster_up::{self, UpArgs};
use super::{CliError, ClusterArgs, ConnectArgs, Output};
use crate::client::admin::{ClusterInfo, PartitionReplicas};
use crate::client::Admin;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers, a summary of topics, and the partitions that are
    /// offline (no leader) or under-replicated (ISR smaller than replicas).
    Info(InfoArgs),
    /// Start a local cluster: a ZooKeeper and N brokers; Ctrl-C stops them all.
    Up(UpArgs),
    /// Propose (print) a reassignment plan spreading replicas and preferred leaders evenly over
    /// the live brokers, e.g. after a broker joined; `--execute` starts it.
    Rebalance(RebalanceArgs),
}

#[derive(Args, Debug)]
pub struct RebalanceArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Start the proposed reassignments.
    #[arg(long)]
    pub execute: bool,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ClusterArgs) -> Result<ExitCode, CliError> {
    match args.command {
        ClusterCommand::Info(args) => info(args).await,
        ClusterCommand::Up(args) => cluster_up::run(args).await,
        ClusterCommand::Rebalance(args) => {
            let admin = Admin::new(args.connect.connect().await?);
            let mut out = Output::new();
            let code = super::reassign::rebalance(&admin, args.execute, &mut out).await?;
            out.flush()?;
            Ok(code)
        }
    }
}

async fn info(args: InfoArgs) -> Result<ExitCode, CliError> {
    let client = args.connect.connect().await?;
    let admin = Admin::new(client);
    let info = admin.cluster_info().await?;
    let mut out = Output::new();
    if args.json {
        let json = serde_json::to_string_pretty(&info_json(&info))
            .map_err(|error| CliError::Io(format!("cannot encode JSON: {error}")))?;
        out.line(&json)?;
    } else {
        out.write(info_text(&info).as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `cluster info` as text: id, controller, brokers, a topic summary, then the partitions that
/// are offline or under-replicated (only when there are some).
fn info_text(info: &ClusterInfo) -> String {
    let mut text = String::new();
    let mut line = |line: &str| {
        text.push_str(line);
        text.push('\n');
    };
    line(&format!(
        "Cluster ID: {}",
        info.cluster_id.as_deref().unwrap_or("(none)")
    ));
    line(&format!(
        "Controller: {}",
        if info.controller_id >= 0 {
            info.controller_id.to_string()
        } else {
            "(none)".into()
        }
    ));
    line(&format!("Brokers: {}", info.brokers.len()));
    let mut brokers = Table::new();
    brokers.load_preset(presets::NOTHING);
    brokers.set_header(vec!["  ID", "ADDRESS", "RACK", "ROLE"]);
    for broker in &info.brokers {
        brokers.add_row(vec![
            format!("  {}", broker.id),
            broker.addr(),
            broker.rack.clone().unwrap_or_else(|| "-".into()),
            if broker.id == info.controller_id {
                "controller".into()
            } else {
                String::new()
            },
        ]);
    }
    line(&brokers.to_string());
    let summary = TopicSummary::of(info);
    let offline = info.offline_partitions();
    let under_replicated = info.under_replicated_partitions();
    line(&format!(
        "Topics: {} ({} partitions), internal topics: {}, partitions without leader: {}, under-replicated: {}",
        summary.topics,
        summary.partitions,
        summary.internal_topics,
        offline.len(),
        under_replicated.len()
    ));
    for (title, partitions) in [
        ("Offline partitions (no leader)", &offline),
        (
            "Under-replicated partitions (ISR smaller than replicas)",
            &under_replicated,
        ),
    ] {
        if partitions.is_empty() {
            continue;
        }
        line(&format!("{title}: {}", partitions.len()));
        line(&partitions_table(partitions));
    }
    text
}

fn partitions_table(partitions: &[PartitionReplicas]) -> String {
    let ids = |ids: &[i32]| {
        if ids.is_empty() {
            "-".to_owned()
        } else {
            ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
        }
    };
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(vec![
        "  TOPIC",
        "PARTITION",
        "LEADER",
        "REPLICAS",
        "ISR",
        "OFFLINE",
    ]);
    for partition in partitions {
        table.add_row(vec![
            format!("  {}", partition.topic),
            partition.partition.to_string(),
            partition.leader.to_string(),
            ids(&partition.replicas),
            ids(&partition.isr),
            ids(&partition.offline_replicas),
        ]);
    }
    table.to_string()
}

/// User topics (and their partitions) and internal topics.
struct TopicSummary {
    topics: usize,
    partitions: usize,
    internal_topics: usize,
}

impl TopicSummary {
    fn of(info: &ClusterInfo) -> Self {
        let user_topics: Vec<_> = info.topics.iter().filter(|t| !t.is_internal).collect();
        Self {
            topics: user_topics.len(),
            partitions: user_topics.iter().map(|t| t.partitions.len()).sum(),
            internal_topics: info.topics.len() - user_topics.len(),
        }
    }
}

#[derive(Serialize)]
struct InfoJson<'a> {
    cluster_id: Option<&'a str>,
    /// -1 when no controller is known.
    controller_id: i32,
    brokers: Vec<BrokerJson<'a>>,
    /// User topics.
    topics: usize,
    /// Partitions of user topics.
    partitions: usize,
    internal_topics: usize,
    offline_partitions: Vec<PartitionReplicas>,
    under_replicated_partitions: Vec<PartitionReplicas>,
}

#[derive(Serialize)]
struct BrokerJson<'a> {
    id: i32,
    host: &'a str,
    port: i32,
    rack: Option<&'a str>,
    is_controller: bool,
}

fn info_json(info: &ClusterInfo) -> InfoJson<'_> {
    let summary = TopicSummary::of(info);
    InfoJson {
        cluster_id: info.cluster_id.as_deref(),
        controller_id: info.controller_id,
        brokers: info
            .brokers
            .iter()
            .map(|broker| BrokerJson {
                id: broker.id,
                host: &broker.host,
                port: broker.port,
                rack: broker.rack.as_deref(),
                is_controller: broker.id == info.controller_id,
            })
            .collect(),
        topics: summary.topics,
        partitions: summary.partitions,
        internal_topics: summary.internal_topics,
        offline_partitions: info.offline_partitions(),
        under_replicated_partitions: info.under_replicated_partitions(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::cluster::{BrokerInfo, PartitionInfo, TopicInfo};

    fn sample() -> ClusterInfo {
        let partition = |id, leader, replicas: &[i32], isr: &[i32]| PartitionInfo {
            id,
            error_code: 0,
            leader,
            leader_epoch: 2,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            offline: Vec::new(),
        };
        ClusterInfo {
            cluster_id: Some("c1".into()),
            controller_id: 2,
            brokers: [1, 2]
                .into_iter()
                .map(|id| BrokerInfo {
                    id,
                    host: "127.0.0.1".into(),
                    port: 9091 + id,
                    rack: None,
                })
                .collect(),
            topics: vec![TopicInfo {
                name: "orders".into(),
                id: uuid::Uuid::nil(),
                is_internal: false,
                partitions: vec![
                    partition(0, 1, &[1, 2], &[1, 2]),
                    partition(1, -1, &[2, 3], &[3]),
                    partition(2, 2, &[2, 3], &[2]),
                ],
            }],
        }
    }

    #[test]
    fn text_lists_offline_and_under_replicated_partitions() {
        let text = info_text(&sample());
        assert!(
            text.contains("partitions without leader: 1, under-replicated: 2"),
            "{text}"
        );
        let offline = text
            .split("Offline partitions (no leader): 1")
            .nth(1)
            .expect("offline section");
        let row: Vec<&str> = offline
            .lines()
            .find(|l| l.trim_start().starts_with("orders"))
            .expect("offline row")
            .split_whitespace()
            .collect();
        assert_eq!(row, ["orders", "1", "-1", "2,3", "3", "-"], "{text}");
        assert!(
            text.contains("Under-replicated partitions (ISR smaller than replicas): 2"),
            "{text}"
        );
    }

    #[test]
    fn text_has_no_partition_sections_when_all_is_well() {
        let mut info = sample();
        info.topics[0].partitions.truncate(1);
        let text = info_text(&info);
        assert!(!text.contains("Offline partitions"), "{text}");
        assert!(!text.contains("Under-replicated partitions"), "{text}");
    }

    #[test]
    fn json_carries_brokers_controller_and_problem_partitions() {
        let json = serde_json::to_value(info_json(&sample())).expect("json");
        assert_eq!(json["cluster_id"], "c1");
        assert_eq!(json["controller_id"], 2);
        assert_eq!(json["brokers"][1]["id"], 2);
        assert_eq!(json["brokers"][1]["is_controller"], true);
        assert_eq!(json["brokers"][0]["port"], 9092);
        assert_eq!(json["topics"], 1);
        assert_eq!(json["partitions"], 3);
        assert_eq!(json["offline_partitions"][0]["partition"], 1);
        assert_eq!(json["offline_partitions"][0]["leader"], -1);
        assert_eq!(
            json["offline_partitions"][0]["replicas"],
            serde_json::json!([2, 3])
        );
        assert_eq!(
            json["under_replicated_partitions"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            json["under_replicated_partitions"][1]["isr"],
            serde_json::json!([2])
        );
    }
}
