//! The `strom` command's user commands: topic, produce, consume, group, cluster, bench.
//!
//! The root binary flattens [`ToolsCommand`] into its own command enum and calls [`run`].
//! Every failure ends as one line `error: ...` on stderr and exit code 1 (bench compare exits
//! with [`EXIT_REGRESSION`] when it finds a regression).

mod bench;
mod cluster;
mod cluster_up;
mod consume;
mod group;
mod produce;
mod reassign;
mod reassign_plan;
mod topic;

use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::client::{Client, ClientConfig, ClientError};

pub use bench::BenchCommand;
pub use cluster::ClusterCommand;
pub use consume::ConsumeArgs;
pub use group::GroupCommand;
pub use produce::ProduceArgs;
pub use topic::TopicCommand;

/// Exit code of `strom bench compare` when a figure regressed past the tolerance.
pub const EXIT_REGRESSION: u8 = 3;

/// Options every tools command takes.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Bootstrap brokers, host:port[,host:port...].
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:9092",
        env = "STROM_BROKERS",
        value_name = "HOST:PORT,..."
    )]
    pub brokers: String,
    /// Longest wait for one broker response, in milliseconds.
    #[arg(long, global = true, default_value_t = 30_000, value_name = "MS")]
    pub request_timeout_ms: u64,
}

impl ConnectArgs {
    pub fn client_config(&self) -> Result<ClientConfig, CliError> {
        let mut config = ClientConfig::new(&self.brokers)?;
        config.connection.request_timeout_ms = self.request_timeout_ms;
        config.connection.client_id = "strom-cli".to_string();
        Ok(config)
    }

    pub async fn connect(&self) -> Result<Client, CliError> {
        Ok(Client::connect(self.client_config()?).await?)
    }
}

/// The tools' subcommands, flattened into the root `strom` command.
#[derive(Subcommand, Debug)]
pub enum ToolsCommand {
    /// Create, list, describe, delete topics and add partitions.
    Topic(TopicArgs),
    /// Console producer: one record per line of stdin.
    Produce(ProduceArgs),
    /// Console consumer: print records to stdout.
    Consume(ConsumeArgs),
    /// List, describe, reset offsets of and delete consumer groups.
    Group(GroupArgs),
    /// Describe the cluster, or start a local one.
    Cluster(ClusterArgs),
    /// Benchmark produce, consume and end-to-end throughput and latency; compare results.
    Bench(BenchArgs),
    /// A FUSE filesystem that can lose power (keeps unsynced writes in memory and drops them on
    /// SIGUSR1), for the broker-level power-loss test (tests/power_loss.rs).
    #[command(hide = true)]
    TestFs(crate::powerloss_fs::TestFsArgs),
}

#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: GroupCommand,
}

/// `strom cluster`: unlike the other commands, the connection options belong to `info` only,
/// because `cluster up` has its own `--brokers N` (how many to start).
#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// A command's failure, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(String),
}

/// Runs a tools command on its own runtime; returns the process exit code.
pub fn run(command: ToolsCommand) -> ExitCode {
    // The test filesystem blocks its control signals before any thread starts: it runs without
    // the tools' runtime.
    if let ToolsCommand::TestFs(args) = &command {
        return crate::powerloss_fs::run(args);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match command {
            ToolsCommand::Topic(args) => topic::run(args).await,
            ToolsCommand::Produce(args) => produce::run(args).await,
            ToolsCommand::Consume(args) => consume::run(args).await,
            ToolsCommand::Group(args) => group::run(args).await,
            ToolsCommand::Cluster(args) => cluster::run(args).await,
            ToolsCommand::Bench(args) => bench::run(args).await,
            ToolsCommand::TestFs(_) => unreachable!("test-fs runs before the runtime starts"),
        }
    });
    // Background tasks (heartbeats, prefetches) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", one_line(&error.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// Prints a command-line parse error as one line, `error: ... (see --help)`, and returns exit
/// code 2. Help and version requests print as usual. For the root binary's `try_parse`.
pub fn report_parse_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    eprintln!(
        "error: {} (see --help)",
        parse_error_line(&error.render().to_string())
    );
    ExitCode::from(2)
}

/// The message of a rendered clap error without its usage and tips, on one line.
fn parse_error_line(rendered: &str) -> String {
    let message = rendered.split("\n\n").next().unwrap_or(rendered);
    one_line(message.trim().trim_start_matches("error:"))
}

/// Collapses whitespace runs (newlines included) so an error stays on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses `key=value`.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("'{text}' is not key=value")),
    }
}

/// Parses acks as Kafka spells them: `all`, `-1`, `0`, `1`.
pub fn parse_acks(text: &str) -> Result<i16, String> {
    match text {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        other => Err(format!("acks must be all, -1, 0 or 1 (got '{other}')")),
    }
}

/// Writes to stdout; a closed pipe (`strom consume | head`) ends output quietly.
pub(crate) struct Output {
    out: std::io::BufWriter<std::io::Stdout>,
    closed: bool,
}

impl Output {
    pub fn new() -> Output {
        Output {
            out: std::io::BufWriter::new(std::io::stdout()),
            closed: false,
        }
    }

    /// Writes bytes; returns false once the reader went away.
    pub fn write(&mut self, bytes: &[u8]) -> Result<bool, CliError> {
        use std::io::Write;
        if self.closed {
            return Ok(false);
        }
        match self.out.write_all(bytes) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(false)
            }
            Err(error) => Err(CliError::Io(format!("cannot write to stdout: {error}"))),
        }
    }

    pub fn line(&mut self, text: &str) -> Result<bool, CliError> {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        self.write(&bytes)
    }

    pub fn flush(&mut self) -> Result<(), CliError> {
        use std::io::Write;
        match self.out.flush() {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(error) => Err(CliError::Io(format!("cannot write to stdout: {error}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Mirrors how the root binary embeds the tools.
    #[derive(Parser, Debug)]
    struct TestCli {
        #[command(subcommand)]
        command: ToolsCommand,
    }

    fn parse(args: &[&str]) -> Result<ToolsCommand, String> {
        let mut full = vec!["strom"];
        full.extend_from_slice(args);
        TestCli::try_parse_from(full)
            .map(|cli| cli.command)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn clap_definitions_are_consistent() {
        use clap::CommandFactory;
        TestCli::command().debug_assert();
    }

    #[test]
    fn brokers_default_and_go_anywhere() {
        match parse(&["topic", "list"]) {
            Ok(ToolsCommand::Topic(args)) => assert_eq!(args.connect.brokers, "127.0.0.1:9092"),
            other => panic!("{other:?}"),
        }
        for args in [
            &["topic", "--brokers", "h:1", "list"][..],
            &["topic", "list", "--brokers", "h:1"][..],
        ] {
            match parse(args) {
                Ok(ToolsCommand::Topic(args)) => assert_eq!(args.connect.brokers, "h:1"),
                other => panic!("{other:?}"),
            }
        }
        match parse(&["produce", "t", "--brokers", "h:2"]) {
            Ok(ToolsCommand::Produce(args)) => assert_eq!(args.connect.brokers, "h:2"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_arguments_are_rejected() {
        assert!(parse(&["topic", "create"]).is_err(), "name is required");
        assert!(parse(&["produce", "t", "--acks", "2"]).is_err());
        assert!(parse(&["topic", "create", "t", "--config", "novalue"]).is_err());
        assert!(parse(&["consume", "t", "-n", "-1"]).is_err());
        assert!(
            parse(&["group", "reset-offsets", "g", "--topic", "t"]).is_err(),
            "a target is required"
        );
        assert!(parse(&[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-earliest",
            "--to-latest"
        ])
        .is_err());
        assert!(parse(&["bench", "produce", "--compression", "brotli"]).is_err());
        assert!(parse(&["bench", "compare", "a.json"]).is_err());
        assert!(parse(&["cluster", "up", "--brokers", "three"]).is_err());
        assert!(parse(&["cluster", "up", "--base-port", "70000"]).is_err());
    }

    #[test]
    fn commands_parse() {
        for args in [
            &[
                "topic",
                "create",
                "t",
                "--partitions",
                "3",
                "--replication-factor",
                "1",
                "--config",
                "retention.ms=1000",
            ][..],
            &["topic", "describe", "t"][..],
            &["topic", "delete", "t"][..],
            &["topic", "add-partitions", "t", "--partitions", "6"][..],
            &[
                "produce",
                "t",
                "--key-separator",
                ":",
                "--header",
                "a=b",
                "--acks",
                "all",
            ][..],
            &[
                "consume",
                "t",
                "--from-beginning",
                "-n",
                "5",
                "--print-key",
                "--print-headers",
                "--print-timestamp",
                "--print-offset",
            ][..],
            &["consume", "t", "--group", "g"][..],
            &["consume", "t", "--partition", "0,1", "--offset", "5"][..],
            &["group", "list"][..],
            &["group", "describe", "g"][..],
            &[
                "group",
                "reset-offsets",
                "g",
                "--topic",
                "t",
                "--to-offset",
                "3",
                "--execute",
            ][..],
            &["group", "delete", "g"][..],
            &["cluster", "info"][..],
            &["cluster", "info", "--json", "--brokers", "h:1"][..],
            &["cluster", "up"][..],
            &[
                "cluster",
                "up",
                "--brokers",
                "3",
                "--dir",
                "d",
                "--base-port",
                "19092",
                "--zookeeper-port",
                "12181",
                "--shards-per-broker",
                "2",
                "--override",
                "num.partitions=3",
            ][..],
            &[
                "bench",
                "produce",
                "--message-bytes",
                "100",
                "--count",
                "1000",
                "--partitions",
                "2",
                "--producers",
                "2",
                "--acks",
                "1",
                "--compression",
                "lz4",
                "--rate",
                "500",
                "--json",
                "x.json",
            ][..],
            &["bench", "consume", "--count", "1000", "--consumers", "2"][..],
            &["bench", "e2e", "--duration-secs", "5", "--consumers", "1"][..],
            &["bench", "compare", "a.json", "b.json", "--tolerance", "10%"][..],
        ] {
            assert!(parse(args).is_ok(), "{args:?}: {:?}", parse(args).err());
        }
    }

    #[test]
    fn parse_errors_become_one_line() {
        let error =
            TestCli::try_parse_from(["strom", "topic", "create"]).expect_err("missing name");
        let line = parse_error_line(&error.render().to_string());
        assert_eq!(
            line,
            "the following required arguments were not provided: <NAME>"
        );
        let error = TestCli::try_parse_from(["strom", "produce", "t", "--acks", "7"])
            .expect_err("bad acks");
        let line = parse_error_line(&error.render().to_string());
        assert!(
            line.starts_with("invalid value '7' for '--acks <ACKS>'"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("=b").is_err());
        assert_eq!(parse_acks("all"), Ok(-1));
        assert!(parse_acks("2").is_err());
        assert_eq!(one_line("a\n  b\tc"), "a b c");
    }
}
