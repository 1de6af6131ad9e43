//! `strom topic create|list|describe|delete|add-partitions|alter-config|reassign`.

use std::process::ExitCode;

use clap::Subcommand;

use super::{parse_key_value, CliError, Output, TopicArgs};
use crate::client::admin::NewTopic;
use crate::client::log_dirs::BrokerLogDirs;
use crate::client::{Admin, ClientError, KafkaCode};

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p', value_parser = clap::value_parser!(i32).range(1..))]
        partitions: Option<i32>,
        /// Replicas per partition (default: the broker's default.replication.factor).
        #[arg(long, short = 'r', value_parser = clap::value_parser!(i16).range(1..))]
        replication_factor: Option<i16>,
        /// A topic config, e.g. retention.ms=60000 (repeatable).
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Succeed when the topic already exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topic names.
    List {
        /// Also list internal topics.
        #[arg(long)]
        internal: bool,
        /// One line per topic with partition count and replication factor.
        #[arg(long, short = 'l')]
        long: bool,
    },
    /// Show partitions, leaders, replicas and configs of a topic; with --log-dirs, every
    /// broker's log dirs and the replicas in them (kafka-log-dirs --describe).
    Describe {
        /// The topic (optional with --log-dirs: then every topic).
        #[arg(required_unless_present = "log_dirs")]
        name: Option<String>,
        /// Show every config, not only the ones set on the topic.
        #[arg(long)]
        all_configs: bool,
        /// Show each broker's log dirs: replicas with size and offset lag, and the file
        /// system's total and usable bytes.
        #[arg(long)]
        log_dirs: bool,
        /// With --log-dirs: print JSON (kafka-log-dirs' layout, plus totalBytes/usableBytes).
        #[arg(long, requires = "log_dirs")]
        json: bool,
    },
    /// Delete a topic.
    Delete {
        name: String,
        /// Succeed when the topic does not exist.
        #[arg(long)]
        if_exists: bool,
    },
    /// Grow a topic to a larger number of partitions.
    AddPartitions {
        name: String,
        /// The new total number of partitions.
        #[arg(long, short = 'p', value_parser = clap::value_parser!(i32).range(1..))]
        partitions: i32,
    },
    /// Change a topic's configs at run time (every broker applies them without a restart).
    AlterConfig {
        name: String,
        /// Set a config, e.g. retention.ms=3600000 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Remove a config set on the topic: the broker's value applies again (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Move partitions to other brokers (kafka-reassign-partitions): `--plan FILE --topics
    /// t1,t2 --broker-list 2,3,4` writes (and prints) a plan, `--execute FILE` starts it,
    /// `--verify FILE` tells per partition whether it is complete, `--cancel FILE` reverts the
    /// ongoing ones to their original replicas.
    Reassign(super::reassign::ReassignArgs),
}

/// `--log-dirs --json`: kafka-log-dirs' `{"version":1,"brokers":[...]}`.
#[derive(serde::Serialize)]
struct LogDirsJson<'a> {
    version: u32,
    brokers: &'a [BrokerLogDirs],
}

/// `--log-dirs` as text: a line per log dir, then a line per replica in it.
fn log_dirs_table(brokers: &[BrokerLogDirs]) -> Vec<String> {
    let mut lines = Vec::new();
    for broker in brokers {
        for dir in &broker.log_dirs {
            let bytes = |value: i64| {
                if value < 0 {
                    "unknown".to_string()
                } else {
                    value.to_string()
                }
            };
            lines.push(format!(
                "Broker: {}\tLogDir: {}\tError: {}\tTotalBytes: {}\tUsableBytes: {}\tReplicas: {}",
                broker.broker,
                dir.log_dir,
                KafkaCode(dir.error_code),
                bytes(dir.total_bytes),
                bytes(dir.usable_bytes),
                dir.replicas.len()
            ));
            for replica in &dir.replicas {
                lines.push(format!(
                    "\tTopic: {}\tPartition: {}\tSize: {}\tOffsetLag: {}\tIsFuture: {}",
                    replica.topic,
                    replica.partition,
                    replica.size_bytes,
                    replica.offset_lag,
                    replica.is_future
                ));
            }
        }
    }
    lines
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn run(args: TopicArgs) -> Result<ExitCode, CliError> {
    let client = args.connect.connect().await?;
    let admin = Admin::new(client);
    let mut out = Output::new();
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            if_not_exists,
        } => {
            let spec = NewTopic {
                name: name.clone(),
                partitions,
                replication_factor,
                configs,
            };
            match admin.create_topic(&spec).await {
                Ok(created) => {
                    out.line(&format!(
                        "created topic {} ({} partitions, replication factor {})",
                        created.name, created.partitions, created.replication_factor
                    ))?;
                }
                Err(error)
                    if if_not_exists && error.code() == Some(KafkaCode::TOPIC_ALREADY_EXISTS) =>
                {
                    out.line(&format!("topic {name} already exists"))?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        TopicCommand::List { internal, long } => {
            for topic in admin.list_topics(internal).await? {
                if long {
                    let replication = topic.partitions.first().map_or(0, |p| p.replicas.len());
                    out.line(&format!(
                        "{}\tpartitions={}\treplication={}",
                        topic.name,
                        topic.partitions.len(),
                        replication
                    ))?;
                } else {
                    out.line(&topic.name)?;
                }
            }
        }
        TopicCommand::Describe {
            name,
            log_dirs: true,
            json,
            ..
        } => {
            let topics: Vec<String> = name.into_iter().collect();
            let brokers = admin.describe_log_dirs(&topics).await?;
            if json {
                let text = serde_json::to_string_pretty(&LogDirsJson {
                    version: 1,
                    brokers: &brokers,
                })
                .map_err(|error| CliError::Io(format!("cannot encode JSON: {error}")))?;
                out.line(&text)?;
            } else {
                for line in log_dirs_table(&brokers) {
                    out.line(&line)?;
                }
            }
        }
        TopicCommand::Describe {
            name, all_configs, ..
        } => {
            let name = name.unwrap_or_default();
            let topic = admin.describe_topic(&name).await?;
            let configs = admin.topic_configs(&name).await.unwrap_or_default();
            let replication = topic.partitions.first().map_or(0, |p| p.replicas.len());
            let set: Vec<String> = configs
                .iter()
                .filter(|c| !c.is_default)
                .map(|c| {
                    format!(
                        "{}={}",
                        c.name,
                        if c.is_sensitive {
                            "(sensitive)"
                        } else {
                            c.value.as_deref().unwrap_or("")
                        }
                    )
                })
                .collect();
            out.line(&format!(
                "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                topic.name,
                topic.id,
                topic.partitions.len(),
                replication,
                set.join(",")
            ))?;
            for partition in &topic.partitions {
                let mut line = format!(
                    "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                    topic.name,
                    partition.id,
                    if partition.leader >= 0 {
                        partition.leader.to_string()
                    } else {
                        "none".to_string()
                    },
                    join_ids(&partition.replicas),
                    join_ids(&partition.isr)
                );
                if !partition.offline.is_empty() {
                    line.push_str(&format!("\tOffline: {}", join_ids(&partition.offline)));
                }
                out.line(&line)?;
            }
            if all_configs {
                for config in &configs {
                    let value = if config.is_sensitive {
                        "(sensitive)".to_string()
                    } else {
                        config.value.clone().unwrap_or_default()
                    };
                    out.line(&format!(
                        "\tConfig: {}={}\t({}{})",
                        config.name,
                        value,
                        config.source,
                        if config.read_only { ", read-only" } else { "" }
                    ))?;
                }
            }
        }
        TopicCommand::Delete { name, if_exists } => match admin.delete_topic(&name).await {
            Ok(()) => {
                out.line(&format!("deleted topic {name}"))?;
            }
            Err(ClientError::UnknownTopic(_)) if if_exists => {
                out.line(&format!("topic {name} does not exist"))?;
            }
            Err(error) => return Err(error.into()),
        },
        TopicCommand::AddPartitions { name, partitions } => {
            admin.create_partitions(&name, partitions).await?;
            out.line(&format!("topic {name} now has {partitions} partitions"))?;
        }
        TopicCommand::AlterConfig { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                return Err(ClientError::InvalidArgument(
                    "nothing to change: give --set KEY=VALUE or --delete KEY".into(),
                )
                .into());
            }
            admin.alter_topic_configs(&name, &set, &delete).await?;
            for (key, value) in &set {
                out.line(&format!("topic {name}: {key}={value}"))?;
            }
            for key in &delete {
                out.line(&format!(
                    "topic {name}: {key} removed (broker value applies)"
                ))?;
            }
        }
        TopicCommand::Reassign(reassign) => {
            let code = super::reassign::run(&admin, reassign, &mut out).await?;
            out.flush()?;
            return Ok(code);
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
