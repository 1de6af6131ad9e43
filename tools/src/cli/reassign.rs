//! `strom topic reassign` and `strom cluster rebalance`: plans in kafka-reassign-partitions'
//! JSON (see `reassign_plan`), carried out with AlterPartitionReassignments on the controller
//! and followed with ListPartitionReassignments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::reassign_plan::{self, CurrentPartition, Plan};
use super::{CliError, Output};
use crate::client::{reassignment, Admin};

/// Exit code of `--verify` while some partition is still moving (0 once all are complete).
const EXIT_ONGOING: u8 = 2;

#[derive(Args, Debug)]
pub struct ReassignArgs {
    /// Write a plan moving `--topics` onto `--broker-list` to FILE (and print it).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["execute", "verify", "cancel"], requires_all = ["topics", "broker_list"])]
    pub plan: Option<PathBuf>,
    /// Topics to plan for, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub topics: Vec<String>,
    /// Broker ids to move the topics onto, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub broker_list: Vec<i32>,
    /// Start the reassignments of plan FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["verify", "cancel"])]
    pub execute: Option<PathBuf>,
    /// Tell, per partition of plan FILE, whether its reassignment is ongoing or complete.
    #[arg(long, value_name = "FILE", conflicts_with = "cancel")]
    pub verify: Option<PathBuf>,
    /// Cancel the ongoing reassignments of plan FILE (back to the original replicas).
    #[arg(long, value_name = "FILE")]
    pub cancel: Option<PathBuf>,
}

pub async fn run(
    admin: &Admin,
    args: ReassignArgs,
    out: &mut Output,
) -> Result<ExitCode, CliError> {
    if let Some(file) = &args.plan {
        let mut current = Vec::new();
        for name in &args.topics {
            current.extend(current_partitions(admin, name).await?);
        }
        let plan =
            reassign_plan::move_onto(&current, &args.broker_list).map_err(CliError::Usage)?;
        let json = plan.to_json();
        std::fs::write(file, format!("{json}\n"))
            .map_err(|error| CliError::Io(format!("write {}: {error}", file.display())))?;
        out.line(&json)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(file) = &args.execute {
        let plan = read_plan(file)?;
        return execute(admin, &plan, out).await;
    }
    if let Some(file) = &args.verify {
        let plan = read_plan(file)?;
        let ongoing = reassignment::list(admin.client()).await?;
        let mut all_done = true;
        for p in &plan.partitions {
            let key = (p.topic.clone(), p.partition);
            if let Some(o) = ongoing.get(&key) {
                all_done = false;
                out.line(&format!(
                    "{}-{}: ongoing (replicas {:?}, adding {:?}, removing {:?})",
                    p.topic, p.partition, o.replicas, o.adding, o.removing
                ))?;
                continue;
            }
            let topic = admin.describe_topic(&p.topic).await?;
            let replicas = topic.partition(p.partition).map(|q| q.replicas.clone());
            if replicas.as_ref() == Some(&p.replicas) {
                out.line(&format!("{}-{}: complete", p.topic, p.partition))?;
            } else {
                all_done = false;
                out.line(&format!(
                    "{}-{}: not reassigned (replicas {:?}, plan {:?})",
                    p.topic, p.partition, replicas, p.replicas
                ))?;
            }
        }
        return Ok(if all_done {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_ONGOING)
        });
    }
    if let Some(file) = &args.cancel {
        let plan = read_plan(file)?;
        let changes: Vec<_> = plan
            .partitions
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), None))
            .collect();
        let results = reassignment::alter(admin.client(), &changes).await?;
        return report(results, "cancelled", out);
    }
    Err(CliError::Usage(
        "one of --plan, --execute, --verify or --cancel is required".into(),
    ))
}

/// Starts the reassignments of `plan`; exit code 1 if any partition was refused.
pub async fn execute(admin: &Admin, plan: &Plan, out: &mut Output) -> Result<ExitCode, CliError> {
    let changes: Vec<_> = plan
        .partitions
        .iter()
        .map(|p| ((p.topic.clone(), p.partition), Some(p.replicas.clone())))
        .collect();
    let results = reassignment::alter(admin.client(), &changes).await?;
    report(results, "reassignment started", out)
}

fn report(
    results: reassignment::AlterResults,
    done: &str,
    out: &mut Output,
) -> Result<ExitCode, CliError> {
    let mut failed = false;
    for ((topic, partition), result) in results {
        match result {
            Ok(()) => {
                out.line(&format!("{topic}-{partition}: {done}"))?;
            }
            Err(error) => {
                failed = true;
                out.line(&format!("{topic}-{partition}: {error}"))?;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn read_plan(file: &PathBuf) -> Result<Plan, CliError> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| CliError::Io(format!("read {}: {error}", file.display())))?;
    Plan::parse(&text).map_err(|error| CliError::Usage(format!("{}: {error}", file.display())))
}

async fn current_partitions(admin: &Admin, name: &str) -> Result<Vec<CurrentPartition>, CliError> {
    let topic = admin.describe_topic(name).await?;
    Ok(topic
        .partitions
        .iter()
        .map(|p| CurrentPartition {
            topic: topic.name.clone(),
            partition: p.id,
            replicas: p.replicas.clone(),
        })
        .collect())
}

/// `strom cluster rebalance`: the plan spreading every topic's replicas and preferred leaders
/// evenly over the live brokers; printed, and started with `--execute`.
pub async fn rebalance(
    admin: &Admin,
    execute_it: bool,
    out: &mut Output,
) -> Result<ExitCode, CliError> {
    let info = admin.cluster_info().await?;
    let live: Vec<i32> = info.brokers.iter().map(|b| b.id).collect();
    let current: Vec<CurrentPartition> = info
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| CurrentPartition {
                topic: topic.name.clone(),
                partition: p.id,
                replicas: p.replicas.clone(),
            })
        })
        .collect();
    let plan = reassign_plan::rebalance(&current, &live);
    out.line(&plan.to_json())?;
    if execute_it && !plan.partitions.is_empty() {
        return execute(admin, &plan, out).await;
    }
    Ok(ExitCode::SUCCESS)
}
