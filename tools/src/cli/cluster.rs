//! `strom cluster info` and `strom cluster up` (in `cluster_up`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::{presets, Table};

use super::cluster_up::{self, UpArgs};
use super::{CliError, ClusterArgs, ConnectArgs, Output};
use crate::client::Admin;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Cluster id, controller, brokers and a summary of topics.
    Info(InfoArgs),
    /// Start a local cluster: a ZooKeeper and N brokers; Ctrl-C stops them all.
    Up(UpArgs),
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub async fn run(args: ClusterArgs) -> Result<ExitCode, CliError> {
    match args.command {
        ClusterCommand::Info(args) => info(args).await,
        ClusterCommand::Up(args) => cluster_up::run(args).await,
    }
}

async fn info(args: InfoArgs) -> Result<ExitCode, CliError> {
    let client = args.connect.connect().await?;
    let admin = Admin::new(client);
    let mut out = Output::new();
    let info = admin.cluster_info().await?;
    out.line(&format!(
        "Cluster ID: {}",
        info.cluster_id.as_deref().unwrap_or("(none)")
    ))?;
    out.line(&format!(
        "Controller: {}",
        if info.controller_id >= 0 {
            info.controller_id.to_string()
        } else {
            "(none)".into()
        }
    ))?;
    out.line(&format!("Brokers: {}", info.brokers.len()))?;
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
    out.line(&brokers.to_string())?;
    let user_topics: Vec<_> = info.topics.iter().filter(|t| !t.is_internal).collect();
    let internal = info.topics.len() - user_topics.len();
    let partitions: usize = user_topics.iter().map(|t| t.partitions.len()).sum();
    let leaderless: usize = info
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.leader < 0)
        .count();
    let under_replicated: usize = info
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter(|p| p.isr.len() < p.replicas.len())
        .count();
    out.line(&format!(
        "Topics: {} ({} partitions), internal topics: {}, partitions without leader: {}, under-replicated: {}",
        user_topics.len(),
        partitions,
        internal,
        leaderless,
        under_replicated
    ))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
