//! `strom`: run a broker, and (from `strom-tools`) manage topics, produce, consume, inspect
//! groups and benchmark.

mod allocator;
mod callgrind;
mod request_path_bench;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use strom_server::config::{BrokerConfig, LogFormat};

/// See `allocator`: claimed array sizes in malformed requests must not abort the broker.
#[global_allocator]
static ALLOCATOR: allocator::ReserveLargeAllocations = allocator::ReserveLargeAllocations;

#[derive(Parser)]
#[command(
    name = "strom",
    version,
    about = "Strom: a Kafka-compatible streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run or stop a broker.
    #[command(subcommand)]
    Broker(BrokerCommand),
    /// The user tools (topic, produce, consume, group, cluster, bench), from `strom-tools`.
    #[command(flatten)]
    Tools(strom_tools::cli::ToolsCommand),
    /// A fixed produce and fetch workload through the broker's request path, in-process, for
    /// the instruction-count regression test (tests/instruction_count.rs runs it under
    /// callgrind).
    #[command(hide = true)]
    BenchRequestPath(request_path_bench::RequestPathArgs),
}

#[derive(Subcommand)]
enum BrokerCommand {
    /// Start a broker in the foreground (stops cleanly on SIGTERM or Ctrl-C).
    Start(BrokerConfigArgs),
    /// Stop the broker that uses this configuration's log dir.
    Stop(BrokerConfigArgs),
}

#[derive(Args)]
struct BrokerConfigArgs {
    /// A server.properties file (Kafka property names). Without one, a single broker on
    /// 127.0.0.1:9092 with data in ./data.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a property: --override key=value (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

impl BrokerConfigArgs {
    fn load(&self) -> Result<BrokerConfig, String> {
        BrokerConfig::load(self.config.as_deref(), &self.overrides)
            .map_err(|error| error.to_string())
    }
}

/// Logs go to stderr: as text, coloured only when stderr is a terminal (a log file or journald
/// gets no escape codes), or as one JSON object per line (`log.format=json`) for log shippers.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("STROM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

fn run_broker(command: &BrokerCommand) -> Result<(), String> {
    match command {
        BrokerCommand::Start(args) => {
            let config = args.load()?;
            init_logging(config.log_format);
            // What this broker runs with beyond the defaults, so a log shows it.
            tracing::info!(
                settings = ?config.explicit_settings,
                "configuration: the keys set in the properties file or by --override; every other key has its default"
            );
            strom_server::broker::run(config).map_err(|error| error.to_string())
        }
        BrokerCommand::Stop(args) => {
            let config = args.load()?;
            init_logging(config.log_format);
            let log_dir = config
                .log_dirs
                .first()
                .cloned()
                .unwrap_or_else(|| PathBuf::from("./data"));
            let pid = strom_server::broker::stop_running_broker(&log_dir)
                .map_err(|error| error.to_string())?;
            eprintln!("stopped broker (pid {pid})");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // One-line errors for bad arguments (help and version print as usual).
        Err(error) => return strom_tools::cli::report_parse_error(&error),
    };
    let command = match cli.command {
        // The tools build their own runtime and print their own one-line errors.
        Command::Tools(tools) => return strom_tools::cli::run(tools),
        Command::Broker(command) => command,
        Command::BenchRequestPath(args) => {
            return match request_path_bench::run(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let outcome = run_broker(&command);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
