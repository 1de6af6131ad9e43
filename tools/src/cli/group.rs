//! `strom group list|describe|reset-offsets|delete`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use clap::{ArgGroup, Subcommand};
use comfy_table::{presets, Table};

use super::{CliError, GroupArgs, Output};
use crate::client::admin::{OffsetSpec, TopicPartition};
use crate::client::{Admin, ClientError};

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups with their state.
    List,
    /// Show a group's state, members, assignments, committed offsets and lag.
    Describe { group: String },
    /// Set a group's committed offsets (the group must have no active members). Prints the plan;
    /// applies it only with --execute.
    #[command(group(ArgGroup::new("target").required(true).multiple(false)))]
    ResetOffsets {
        group: String,
        /// Topic whose offsets to reset.
        #[arg(long, short = 't')]
        topic: String,
        /// Only these partitions (default: all).
        #[arg(long, short = 'p', value_delimiter = ',')]
        partition: Vec<i32>,
        #[arg(long, group = "target")]
        to_earliest: bool,
        #[arg(long, group = "target")]
        to_latest: bool,
        #[arg(long, group = "target", value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// Move the committed offset by N (negative moves back).
        #[arg(long, group = "target", value_name = "N", allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// The first offset at or after this time (ms since the epoch).
        #[arg(long, group = "target", value_name = "MS")]
        to_timestamp: Option<i64>,
        /// Apply the plan (without it, only print it).
        #[arg(long)]
        execute: bool,
    },
    /// Delete a group (it must have no active members).
    Delete { group: String },
}

fn plain_table(header: Vec<&str>) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(header);
    table
}

/// Offsets to commit for a reset, clamped to the partition's [earliest, latest] as Kafka does.
pub(crate) fn plan_reset(
    partitions: &[i32],
    earliest: &BTreeMap<i32, i64>,
    latest: &BTreeMap<i32, i64>,
    committed: &BTreeMap<i32, i64>,
    target: ResetTarget,
    by_time: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, i64> {
    let mut plan = BTreeMap::new();
    for &partition in partitions {
        let low = earliest.get(&partition).copied().unwrap_or(0);
        let high = latest.get(&partition).copied().unwrap_or(low).max(low);
        let wanted = match target {
            ResetTarget::Earliest => low,
            ResetTarget::Latest => high,
            ResetTarget::Offset(offset) => offset,
            ResetTarget::Shift(delta) => committed
                .get(&partition)
                .copied()
                .unwrap_or(low)
                .saturating_add(delta),
            ResetTarget::Timestamp => by_time
                .get(&partition)
                .copied()
                .filter(|o| *o >= 0)
                .unwrap_or(high),
        };
        plan.insert(partition, wanted.clamp(low, high));
    }
    plan
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetTarget {
    Earliest,
    Latest,
    Offset(i64),
    Shift(i64),
    Timestamp,
}

pub async fn run(args: GroupArgs) -> Result<ExitCode, CliError> {
    let client = args.connect.connect().await?;
    let admin = Admin::new(client);
    let mut out = Output::new();
    match args.command {
        GroupCommand::List => {
            let mut table = plain_table(vec!["GROUP", "STATE", "PROTOCOL-TYPE"]);
            for group in admin.list_groups().await? {
                table.add_row(vec![
                    group.group_id,
                    if group.state.is_empty() {
                        "-".into()
                    } else {
                        group.state
                    },
                    group.protocol_type,
                ]);
            }
            out.line(&table.to_string())?;
        }
        GroupCommand::Describe { group } => describe(&admin, &group, &mut out).await?,
        GroupCommand::ResetOffsets {
            group,
            topic,
            partition,
            to_earliest,
            to_latest,
            to_offset,
            shift_by,
            to_timestamp,
            execute,
        } => {
            let target = match (to_earliest, to_latest, to_offset, shift_by, to_timestamp) {
                (true, ..) => ResetTarget::Earliest,
                (_, true, ..) => ResetTarget::Latest,
                (_, _, Some(offset), ..) => ResetTarget::Offset(offset),
                (_, _, _, Some(delta), _) => ResetTarget::Shift(delta),
                (.., Some(_)) => ResetTarget::Timestamp,
                _ => return Err(CliError::Usage("give one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-timestamp".into())),
            };
            let description = admin.describe_group(&group).await?;
            if execute && !matches!(description.state.as_str(), "Empty" | "Dead" | "") {
                return Err(CliError::Usage(format!(
                    "group '{group}' is {} with {} members; stop its consumers before resetting offsets",
                    description.state,
                    description.members.len()
                )));
            }
            let info = admin.describe_topic(&topic).await?;
            let partitions: Vec<i32> = if partition.is_empty() {
                info.partitions.iter().map(|p| p.id).collect()
            } else {
                partition
            };
            for p in &partitions {
                if info.partition(*p).is_none() {
                    return Err(ClientError::UnknownPartition {
                        topic: topic.clone(),
                        partition: *p,
                    }
                    .into());
                }
            }
            let earliest = admin
                .list_offsets(&topic, &partitions, OffsetSpec::Earliest)
                .await?;
            let latest = admin
                .list_offsets(&topic, &partitions, OffsetSpec::Latest)
                .await?;
            let by_time = match to_timestamp {
                Some(ms) => {
                    admin
                        .list_offsets(&topic, &partitions, OffsetSpec::Timestamp(ms))
                        .await?
                }
                None => BTreeMap::new(),
            };
            let tps: Vec<TopicPartition> = partitions.iter().map(|p| (topic.clone(), *p)).collect();
            let committed_all = admin.committed_offsets(&group, Some(&tps)).await?;
            let committed: BTreeMap<i32, i64> =
                committed_all.iter().map(|((_, p), o)| (*p, *o)).collect();
            let plan = plan_reset(
                &partitions,
                &earliest,
                &latest,
                &committed,
                target,
                &by_time,
            );
            let mut table = plain_table(vec![
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "NEW-OFFSET",
            ]);
            for (p, offset) in &plan {
                let current = committed
                    .get(p)
                    .map_or("-".to_string(), ToString::to_string);
                table.add_row(vec![
                    group.clone(),
                    topic.clone(),
                    p.to_string(),
                    current,
                    offset.to_string(),
                ]);
            }
            out.line(&table.to_string())?;
            if execute {
                let offsets: BTreeMap<TopicPartition, i64> = plan
                    .iter()
                    .map(|(p, o)| ((topic.clone(), *p), *o))
                    .collect();
                admin.commit_offsets(&group, &offsets).await?;
                out.line(&format!(
                    "reset offsets of group {group} for {} partitions of {topic}",
                    plan.len()
                ))?;
            } else {
                out.line("dry run: add --execute to apply")?;
            }
        }
        GroupCommand::Delete { group } => {
            admin.delete_group(&group).await?;
            out.line(&format!("deleted group {group}"))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn describe(admin: &Admin, group: &str, out: &mut Output) -> Result<(), CliError> {
    let description = admin.describe_group(group).await?;
    if description.state == "Dead" {
        return Err(CliError::Usage(format!("group '{group}' does not exist")));
    }
    let committed = admin.committed_offsets(group, None).await?;
    out.line(&format!(
        "Group {} is {} with {} members (protocol type '{}', assignor '{}'), coordinator {}",
        description.group_id,
        if description.state.is_empty() {
            "in an unknown state"
        } else {
            &description.state
        },
        description.members.len(),
        description.protocol_type,
        if description.protocol.is_empty() {
            "-"
        } else {
            &description.protocol
        },
        description.coordinator
    ))?;
    // Partitions to show: committed ones plus assigned ones.
    let mut owners: BTreeMap<TopicPartition, (String, String, String)> = BTreeMap::new();
    for member in &description.members {
        for tp in &member.assignment {
            owners.insert(
                tp.clone(),
                (
                    member.member_id.clone(),
                    member.client_host.clone(),
                    member.client_id.clone(),
                ),
            );
        }
    }
    let mut partitions: BTreeSet<TopicPartition> = committed.keys().cloned().collect();
    partitions.extend(owners.keys().cloned());
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &partitions {
        by_topic.entry(topic.clone()).or_default().push(*partition);
    }
    let mut end_offsets: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for (topic, ids) in &by_topic {
        if let Ok(latest) = admin.list_offsets(topic, ids, OffsetSpec::Latest).await {
            for (p, o) in latest {
                end_offsets.insert((topic.clone(), p), o);
            }
        }
    }
    let mut table = plain_table(vec![
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    let dash = || "-".to_string();
    for tp in &partitions {
        let current = committed.get(tp).copied();
        let end = end_offsets.get(tp).copied();
        let lag = match (current, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            (None, Some(_)) => dash(),
            _ => dash(),
        };
        let (member, host, client) = owners
            .get(tp)
            .cloned()
            .unwrap_or_else(|| (dash(), dash(), dash()));
        table.add_row(vec![
            tp.0.clone(),
            tp.1.to_string(),
            current.map_or_else(dash, |c| c.to_string()),
            end.map_or_else(dash, |e| e.to_string()),
            lag,
            member,
            host,
            client,
        ]);
    }
    out.line("")?;
    out.line(&table.to_string())?;
    if !description.members.is_empty() {
        let mut members = plain_table(vec![
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
            "#PARTITIONS",
            "ASSIGNMENT",
        ]);
        for member in &description.members {
            let assignment = member
                .assignment
                .iter()
                .map(|(t, p)| format!("{t}-{p}"))
                .collect::<Vec<_>>()
                .join(",");
            members.add_row(vec![
                member.member_id.clone(),
                member.client_host.clone(),
                member.client_id.clone(),
                member.assignment.len().to_string(),
                if assignment.is_empty() {
                    "-".into()
                } else {
                    assignment
                },
            ]);
        }
        out.line("")?;
        out.line(&members.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_clamped_to_the_log() {
        let partitions = [0, 1];
        let earliest = BTreeMap::from([(0, 10), (1, 0)]);
        let latest = BTreeMap::from([(0, 100), (1, 5)]);
        let committed = BTreeMap::from([(0, 50)]);
        let none = BTreeMap::new();
        assert_eq!(
            plan_reset(
                &partitions,
                &earliest,
                &latest,
                &committed,
                ResetTarget::Earliest,
                &none
            ),
            BTreeMap::from([(0, 10), (1, 0)])
        );
        assert_eq!(
            plan_reset(
                &partitions,
                &earliest,
                &latest,
                &committed,
                ResetTarget::Latest,
                &none
            ),
            BTreeMap::from([(0, 100), (1, 5)])
        );
        assert_eq!(
            plan_reset(
                &partitions,
                &earliest,
                &latest,
                &committed,
                ResetTarget::Offset(3),
                &none
            ),
            BTreeMap::from([(0, 10), (1, 3)])
        );
        assert_eq!(
            plan_reset(
                &partitions,
                &earliest,
                &latest,
                &committed,
                ResetTarget::Shift(-45),
                &none
            ),
            BTreeMap::from([(0, 10), (1, 0)])
        );
        assert_eq!(
            plan_reset(
                &partitions,
                &earliest,
                &latest,
                &committed,
                ResetTarget::Shift(20),
                &none
            ),
            BTreeMap::from([(0, 70), (1, 5)])
        );
        let by_time = BTreeMap::from([(0, 42), (1, -1)]);
        assert_eq!(
            plan_reset(
                &partitions,
                &earliest,
                &latest,
                &committed,
                ResetTarget::Timestamp,
                &by_time
            ),
            BTreeMap::from([(0, 42), (1, 5)])
        );
    }
}
