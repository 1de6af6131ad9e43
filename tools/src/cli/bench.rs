//! `strom bench produce|consume|e2e|suite|compare`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use kafka_protocol::records::Compression;

use super::{parse_acks, BenchArgs, CliError, Output, EXIT_REGRESSION};
use crate::bench::broker_process::BrokerProcess;
use crate::bench::compare::{compare, parse_tolerance};
use crate::bench::report::{render_table, BenchReport, WorkloadResult};
use crate::bench::suite::{render_suite_table, run_suite, CpuProbe, NoProbe, SuiteSettings};
use crate::bench::workload::{run_consume, run_e2e, run_produce, ConsumeSettings, ProduceSettings};
use crate::client::records::parse_compression;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Produce messages as fast as possible (or at --rate); latency is send to acknowledgement.
    Produce(BenchProduceArgs),
    /// Read a topic from the beginning; latency is the wait of each poll that returned data.
    Consume(BenchConsumeArgs),
    /// Produce and consume at once; latency is from send to receipt by a consumer.
    E2e(BenchE2eArgs),
    /// Run the standard workloads (produce 100 B / 1 KiB / 10 KiB, consume them, produce
    /// latency at 2,000 and 20,000 msg/s) against a broker it starts itself, or --brokers.
    Suite(BenchSuiteArgs),
    /// Compare two --json reports; exits with code 3 when throughput fell or p50/p99/p99.9
    /// latency rose by more than the tolerance.
    Compare(CompareArgs),
}

/// What every bench run reports.
#[derive(Args, Debug, Clone)]
pub struct ReportFlags {
    /// Also write the figures to this JSON file (read by `strom bench compare`).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Name of the result in the report (what `bench compare` matches); default: the workload.
    #[arg(long)]
    pub name: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ProduceFlags {
    #[arg(long, default_value = "strom-bench")]
    pub topic: String,
    /// Bytes of each message's value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=16 * 1024 * 1024))]
    pub message_bytes: u64,
    /// Messages to send over all producers (default 1000000 unless --duration-secs is given).
    #[arg(long, conflicts_with = "duration_secs", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Send for this many seconds instead of a count.
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// Producer tasks, each with its own connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub producers: u64,
    /// all (-1), 1 or 0.
    #[arg(long, default_value = "1", value_parser = parse_acks)]
    pub acks: i16,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = |s: &str| parse_compression(s).map_err(|e| e.to_string()))]
    pub compression: Compression,
    /// Target messages per second over all producers (0 = unlimited).
    #[arg(long = "rate", default_value_t = 0)]
    pub rate_per_sec: u64,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Batch size in bytes (Kafka's batch.size).
    #[arg(long, default_value_t = 256 * 1024, value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    pub batch_bytes: u64,
    /// Produce requests in flight per connection.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub max_in_flight: u64,
    /// Idempotent producers (requires --acks all).
    #[arg(long)]
    pub idempotence: bool,
}

impl ProduceFlags {
    fn settings(&self) -> Result<ProduceSettings, CliError> {
        let duration = match self.duration_secs {
            Some(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
            Some(secs) => {
                return Err(CliError::Usage(format!(
                    "--duration-secs must be positive (got {secs})"
                )))
            }
            None => None,
        };
        let count = match (self.count, duration) {
            (None, None) => Some(1_000_000),
            (count, _) => count,
        };
        Ok(ProduceSettings {
            topic: self.topic.clone(),
            message_bytes: usize::try_from(self.message_bytes).unwrap_or(usize::MAX),
            count,
            duration,
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            producers: usize::try_from(self.producers).unwrap_or(1),
            acks: self.acks,
            compression: self.compression,
            rate_per_sec: self.rate_per_sec,
            linger_ms: self.linger_ms,
            batch_max_bytes: usize::try_from(self.batch_bytes).unwrap_or(usize::MAX),
            max_in_flight: usize::try_from(self.max_in_flight).unwrap_or(5),
            idempotence: self.idempotence,
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct FetchFlags {
    /// Bytes per fetch response, at most.
    #[arg(long, default_value_t = 50 * 1024 * 1024, value_parser = clap::value_parser!(i32).range(1024..))]
    pub fetch_max_bytes: i32,
    /// Bytes per partition per fetch, at most.
    #[arg(long, default_value_t = 1024 * 1024, value_parser = clap::value_parser!(i32).range(1024..))]
    pub partition_fetch_max_bytes: i32,
}

#[derive(Args, Debug)]
pub struct BenchProduceArgs {
    #[command(flatten)]
    pub produce: ProduceFlags,
    #[command(flatten)]
    pub report: ReportFlags,
}

#[derive(Args, Debug)]
pub struct BenchConsumeArgs {
    #[arg(long, default_value = "strom-bench")]
    pub topic: String,
    /// Messages to read over all consumers (default: everything in the topic at the start).
    #[arg(long, conflicts_with = "duration_secs", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Read for this many seconds instead (waiting for new messages).
    #[arg(long)]
    pub duration_secs: Option<f64>,
    /// Consumer tasks; the topic's partitions are spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub consumers: u64,
    #[command(flatten)]
    pub fetch: FetchFlags,
    #[command(flatten)]
    pub report: ReportFlags,
}

#[derive(Args, Debug)]
pub struct BenchE2eArgs {
    #[command(flatten)]
    pub produce: ProduceFlags,
    /// Consumer tasks; the topic's partitions are spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub consumers: u64,
    #[command(flatten)]
    pub fetch: FetchFlags,
    #[command(flatten)]
    pub report: ReportFlags,
}

#[derive(Args, Debug)]
pub struct BenchSuiteArgs {
    /// Multiplies every workload's message count: 1.0 takes about a minute here (release
    /// build, 4.4 GB written to the temp dir), 0.01 a few seconds.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Start a broker (this binary's `broker start`, temporary log dir, free port) and measure
    /// its CPU; the default unless --brokers or STROM_BROKERS is given.
    #[arg(long)]
    pub own_broker: bool,
    /// `key=value` passed to the started broker as --override (repeatable).
    #[arg(long = "broker-override", value_name = "KEY=VALUE")]
    pub broker_overrides: Vec<String>,
    /// Prefix of the topics the suite creates (each run adds a unique suffix).
    #[arg(long, default_value = "strom-suite")]
    pub topic_prefix: String,
    /// Also write the figures to this JSON file (read by `strom bench compare`).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The reference report (--json of an earlier run).
    pub baseline: PathBuf,
    /// The report to judge.
    pub current: PathBuf,
    /// Allowed change before a figure counts as regressed, e.g. 10%.
    #[arg(long, default_value = "10%", value_parser = parse_tolerance)]
    pub tolerance: f64,
}

fn finish(result: WorkloadResult, report: &ReportFlags) -> Result<ExitCode, CliError> {
    let mut out = Output::new();
    out.line(&render_table(std::slice::from_ref(&result)))?;
    out.flush()?;
    if let Some(path) = &report.json {
        BenchReport::new(vec![result])
            .write(path)
            .map_err(CliError::Io)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn positive_duration(secs: Option<f64>) -> Result<Option<Duration>, CliError> {
    match secs {
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(CliError::Usage(format!(
            "--duration-secs must be positive (got {s})"
        ))),
        None => Ok(None),
    }
}

/// Whether the user named brokers (`--brokers` or STROM_BROKERS) rather than leaving the
/// default: clap's derive does not tell a default from a given value, so look at the command
/// line and the environment themselves.
fn brokers_given() -> bool {
    std::env::var_os("STROM_BROKERS").is_some()
        || std::env::args().any(|arg| arg == "--brokers" || arg.starts_with("--brokers="))
}

/// `strom bench suite`: against the given brokers, or a broker started (and stopped) here.
async fn suite(
    args: BenchSuiteArgs,
    brokers_given: bool,
    connect: &super::ConnectArgs,
) -> Result<ExitCode, CliError> {
    let settings = SuiteSettings {
        scale: args.scale,
        topic_prefix: args.topic_prefix.clone(),
        progress: !args.no_progress,
    };
    let own = args.own_broker || !brokers_given;
    let (results, broker) = if own {
        let broker = BrokerProcess::start(&args.broker_overrides)
            .await
            .map_err(CliError::Io)?;
        let mut config = crate::client::ClientConfig::new(broker.bootstrap())?;
        config.connection.request_timeout_ms = connect.request_timeout_ms;
        config.connection.client_id = "strom-bench-suite".to_string();
        let results = run_suite(&config, &settings, &broker as &dyn CpuProbe).await;
        (results, Some(broker))
    } else {
        (
            run_suite(&connect.client_config()?, &settings, &NoProbe).await,
            None,
        )
    };
    let stopped = broker.map(BrokerProcess::stop);
    let results = results?;
    let mut out = Output::new();
    out.line(&render_suite_table(&results))?;
    out.flush()?;
    if let Some(path) = &args.json {
        BenchReport::new(results)
            .write(path)
            .map_err(CliError::Io)?;
    }
    if let Some(Err(error)) = stopped {
        return Err(CliError::Io(error));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(args: BenchArgs) -> Result<ExitCode, CliError> {
    match args.command {
        BenchCommand::Suite(suite_args) => suite(suite_args, brokers_given(), &args.connect).await,
        BenchCommand::Compare(compare_args) => {
            let baseline = BenchReport::read(&compare_args.baseline).map_err(CliError::Io)?;
            let current = BenchReport::read(&compare_args.current).map_err(CliError::Io)?;
            let comparison = compare(&baseline, &current, compare_args.tolerance);
            let mut out = Output::new();
            out.line(&comparison.render(compare_args.tolerance))?;
            out.flush()?;
            Ok(if comparison.regressed() {
                ExitCode::from(EXIT_REGRESSION)
            } else {
                ExitCode::SUCCESS
            })
        }
        BenchCommand::Produce(produce) => {
            let config = args.connect.client_config()?;
            let settings = produce.produce.settings()?;
            let name = produce
                .report
                .name
                .clone()
                .unwrap_or_else(|| "produce".into());
            let result = run_produce(config, settings, &name, !produce.report.no_progress).await?;
            finish(result, &produce.report)
        }
        BenchCommand::Consume(consume) => {
            let config = args.connect.client_config()?;
            let settings = ConsumeSettings {
                topic: consume.topic.clone(),
                count: consume.count,
                duration: positive_duration(consume.duration_secs)?,
                consumers: usize::try_from(consume.consumers).unwrap_or(1),
                fetch_max_bytes: consume.fetch.fetch_max_bytes,
                partition_fetch_max_bytes: consume.fetch.partition_fetch_max_bytes,
            };
            let name = consume
                .report
                .name
                .clone()
                .unwrap_or_else(|| "consume".into());
            let result = run_consume(config, settings, &name, !consume.report.no_progress).await?;
            finish(result, &consume.report)
        }
        BenchCommand::E2e(e2e) => {
            let config = args.connect.client_config()?;
            let produce = e2e.produce.settings()?;
            let consume = ConsumeSettings {
                topic: produce.topic.clone(),
                count: None,
                duration: None,
                consumers: usize::try_from(e2e.consumers).unwrap_or(1),
                fetch_max_bytes: e2e.fetch.fetch_max_bytes,
                partition_fetch_max_bytes: e2e.fetch.partition_fetch_max_bytes,
            };
            let name = e2e.report.name.clone().unwrap_or_else(|| "e2e".into());
            let consumers = consume.consumers;
            let result = run_e2e(
                config,
                produce,
                consumers,
                consume,
                &name,
                !e2e.report.no_progress,
            )
            .await?;
            finish(result, &e2e.report)
        }
    }
}
