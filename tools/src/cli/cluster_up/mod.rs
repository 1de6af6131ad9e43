//! `strom cluster up`: a local cluster for trying Strom out. Starts a ZooKeeper server from the
//! machine's install, then N brokers (`strom broker start`, this same executable) with ids
//! 1..=N on consecutive ports, waits until each answers ApiVersions, prints the bootstrap
//! string and the brokers, and on Ctrl-C (SIGINT) or SIGTERM stops the brokers with SIGTERM
//! (so they can hand their leaderships over while ZooKeeper is still up), then ZooKeeper.
//!
//! A broker that exits while the cluster starts stops everything (its last output lines are
//! shown); one that exits later is reported and the others keep running, so `kill -9` of a
//! broker tries out failover. When every broker has exited, `cluster up` ends.
//!
//! Layout of `--dir` (kept between runs, so topics survive a restart):
//! `zookeeper/` (ZooKeeper's data), `broker-<id>/` (log dir), `broker-<id>.properties` (its
//! config, rewritten at each start) and `broker-<id>.log` (its stdout and stderr).
//!
//! Process spawning and ZooKeeper's start are blocking calls made directly in this command's
//! future, which the tools runtime polls on the main thread (`block_on`): the brokers' parent-
//! death signal is tied to the spawning thread, and the main thread lives as long as the cluster.

mod broker_process;
mod plan;

use std::io::IsTerminal;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use comfy_table::{presets, Table};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::{CliError, Output};
use crate::client::connection::{Connection, ConnectionConfig};
use crate::zookeeper_process::ZooKeeperProcess;
use broker_process::{describe_exit, BrokerProcess};
use plan::{check_override, ClusterPlan};

/// Lines of a failed broker's output shown on the terminal.
const FAILURE_TAIL_LINES: usize = 20;
/// Pause between checks that the brokers are still running (and, while starting, between
/// readiness probes of a broker that is not listening yet).
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// A readiness probe's connect and ApiVersions deadline; a starting broker answers at once or
/// is not listening yet.
const PROBE_TIMEOUT_MS: u64 = 2_000;
/// Spinner redraw period.
const SPINNER_TICK: Duration = Duration::from_millis(120);

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Number of brokers; their ids are 1..=N.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub brokers: u16,
    /// Folder for ZooKeeper's data and the brokers' log dirs, configs and output (created if
    /// missing; kept between runs).
    #[arg(long, default_value = "strom-cluster", value_name = "DIR")]
    pub dir: PathBuf,
    /// Port of broker 1; broker i listens on base-port + i - 1 (127.0.0.1).
    #[arg(long, default_value_t = 9092, value_name = "P")]
    pub base_port: u16,
    /// ZooKeeper's client port (127.0.0.1); 0 picks a free port.
    #[arg(long, default_value_t = 0, value_name = "Z")]
    pub zookeeper_port: u16,
    /// Shard threads (num.shards) of each broker.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub shards_per_broker: u16,
    /// A broker property for every broker: --override key=value (repeatable).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Longest wait for every broker to answer, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub start_timeout_secs: u64,
    /// Longest wait for the brokers to exit after SIGTERM before they are killed, in seconds
    /// (a broker's controlled shutdown takes up to controlled.shutdown.timeout.ms).
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub stop_timeout_secs: u64,
}

pub async fn run(args: UpArgs) -> Result<ExitCode, CliError> {
    for text in &args.overrides {
        check_override(text).map_err(CliError::Usage)?;
    }
    std::fs::create_dir_all(&args.dir)
        .map_err(|error| CliError::Io(format!("cannot create {}: {error}", args.dir.display())))?;
    let dir = args
        .dir
        .canonicalize()
        .map_err(|error| CliError::Io(format!("cannot resolve {}: {error}", args.dir.display())))?;
    let plan = ClusterPlan::new(
        &dir,
        args.brokers,
        args.base_port,
        args.zookeeper_port,
        args.shards_per_broker,
    )
    .map_err(CliError::Usage)?;
    check_ports_free(&plan)?;
    let mut plan = plan;
    for broker in &mut plan.brokers {
        broker.admin_port = free_port()?;
    }
    let strom_exe = std::env::current_exe()
        .map_err(|error| CliError::Io(format!("cannot find the strom executable: {error}")))?;
    // Installed before anything starts, so a Ctrl-C during the start stops what is running
    // instead of killing this process and orphaning it.
    let mut signals = StopSignals::new()?;
    let progress = Progress::new();

    progress.working(format!(
        "starting ZooKeeper (data in {})",
        plan.zookeeper_dir.display()
    ));
    let started = Instant::now();
    let zookeeper = ZooKeeperProcess::start(&plan.zookeeper_dir, plan.zookeeper_port)
        .map_err(|error| CliError::Io(error.to_string()))?;
    progress.done(format!(
        "ZooKeeper ready on {} ({})",
        zookeeper.connect_string(),
        seconds_since(started)
    ));
    if signals.received() {
        progress.finish();
        stop_zookeeper(zookeeper);
        return Ok(ExitCode::SUCCESS);
    }

    let mut cluster = Cluster {
        brokers: Vec::with_capacity(plan.brokers.len()),
        progress,
    };
    if let Err(error) = cluster.spawn_brokers(
        &strom_exe,
        &plan,
        &zookeeper.connect_string(),
        &args.overrides,
    ) {
        // The spawn error is the one to report; the stop's outcome adds nothing to it.
        let _ = cluster.stop(&mut signals, args.stop_timeout_secs).await;
        stop_zookeeper(zookeeper);
        return Err(error);
    }
    let deadline = Instant::now() + Duration::from_secs(args.start_timeout_secs);
    match cluster.wait_ready(&mut signals, deadline).await {
        Ok(true) => {}
        Ok(false) => {
            // Interrupted while starting.
            let clean = cluster.stop(&mut signals, args.stop_timeout_secs).await;
            stop_zookeeper(zookeeper);
            return clean.map(|()| ExitCode::SUCCESS);
        }
        Err(error) => {
            let _ = cluster.stop(&mut signals, args.stop_timeout_secs).await;
            stop_zookeeper(zookeeper);
            return Err(error);
        }
    }
    cluster.progress.finish();
    print_cluster(&plan, &zookeeper, &cluster.brokers)?;

    let failure = cluster.supervise(&mut signals).await;
    let stopped = cluster.stop(&mut signals, args.stop_timeout_secs).await;
    stop_zookeeper(zookeeper);
    eprintln!("cluster stopped");
    match failure {
        Some(error) => Err(error),
        None => stopped.map(|()| ExitCode::SUCCESS),
    }
}

/// The brokers `cluster up` started.
struct Cluster {
    brokers: Vec<BrokerProcess>,
    progress: Progress,
}

impl Cluster {
    fn spawn_brokers(
        &mut self,
        strom_exe: &Path,
        plan: &ClusterPlan,
        zookeeper_connect: &str,
        overrides: &[String],
    ) -> Result<(), CliError> {
        self.progress
            .working(format!("starting {} brokers", plan.brokers.len()));
        for broker in &plan.brokers {
            let io_error = |what: &str, path: &Path, error: std::io::Error| {
                CliError::Io(format!("cannot {what} {}: {error}", path.display()))
            };
            std::fs::create_dir_all(&broker.log_dir)
                .map_err(|error| io_error("create", &broker.log_dir, error))?;
            std::fs::write(
                &broker.config_path,
                broker.properties(zookeeper_connect, plan),
            )
            .map_err(|error| io_error("write", &broker.config_path, error))?;
            let process = BrokerProcess::spawn(strom_exe, broker, overrides).map_err(|error| {
                CliError::Io(format!(
                    "cannot start broker {} ({}): {error}",
                    broker.id,
                    strom_exe.display()
                ))
            })?;
            self.brokers.push(process);
        }
        Ok(())
    }

    /// Waits until every broker answers ApiVersions. `Ok(false)`: a stop signal came first.
    async fn wait_ready(
        &mut self,
        signals: &mut StopSignals,
        deadline: Instant,
    ) -> Result<bool, CliError> {
        let started = Instant::now();
        let probe_config = ConnectionConfig {
            client_id: "strom-cluster-up".to_owned(),
            connect_timeout_ms: PROBE_TIMEOUT_MS,
            request_timeout_ms: PROBE_TIMEOUT_MS,
            ..ConnectionConfig::default()
        };
        let mut ready = vec![false; self.brokers.len()];
        while ready.iter().any(|ready| !ready) {
            if let Some(error) = self.first_exited() {
                return Err(error);
            }
            for (index, broker) in self.brokers.iter().enumerate() {
                if ready[index] {
                    continue;
                }
                let address = broker.plan.address();
                self.progress.working(format!(
                    "waiting for broker {} on {address}",
                    broker.plan.id
                ));
                let probe = tokio::select! {
                    probe = Connection::connect(&address, &probe_config) => probe,
                    _ = signals.recv() => return Ok(false),
                };
                if probe.is_ok() {
                    ready[index] = true;
                    self.progress.done(format!(
                        "broker {} ready on {address} (pid {}, {})",
                        broker.plan.id,
                        broker.pid(),
                        seconds_since(started)
                    ));
                }
            }
            if ready.iter().all(|ready| *ready) {
                break;
            }
            if Instant::now() >= deadline {
                let waiting: Vec<String> = self
                    .brokers
                    .iter()
                    .zip(&ready)
                    .filter(|(_, ready)| !**ready)
                    .map(|(broker, _)| broker.plan.id.to_string())
                    .collect();
                return Err(CliError::Io(format!(
                    "broker(s) {} did not answer within {} s; see their output in {}",
                    waiting.join(", "),
                    deadline.saturating_duration_since(started).as_secs(),
                    self.brokers[0]
                        .plan
                        .output_path
                        .with_file_name("broker-<id>.log")
                        .display()
                )));
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = signals.recv() => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Runs until a stop signal (`None`) or until every broker has exited (an error). A broker
    /// that exits while others run is reported and the rest keep running: killing a broker is how
    /// one tries out leader failover on a local cluster.
    async fn supervise(&mut self, signals: &mut StopSignals) -> Option<CliError> {
        loop {
            while let Some(broker) = self.next_unreported_exit() {
                eprintln!(
                    "{}\nthe other brokers keep running",
                    exit_report(&mut self.brokers[broker])
                );
            }
            if self.brokers.iter().all(|broker| broker.exit_reported) {
                return Some(CliError::Io(
                    "every broker exited; stopped the cluster".to_owned(),
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                name = signals.recv() => {
                    eprintln!("{name}: stopping the cluster");
                    return None;
                }
            }
        }
    }

    /// While starting: a broker that exited means the cluster cannot come up. Prints its last
    /// output lines and returns the error.
    fn first_exited(&mut self) -> Option<CliError> {
        let index = self.next_unreported_exit()?;
        let broker = &mut self.brokers[index];
        let report = exit_report(broker);
        self.progress.done(report);
        self.progress.finish();
        let status = broker.exit_status().map(describe_exit).unwrap_or_default();
        Some(CliError::Io(format!(
            "broker {} exited early ({status}); stopped the cluster",
            broker.plan.id
        )))
    }

    /// The index of a broker that exited and was not reported yet, marking it reported.
    fn next_unreported_exit(&mut self) -> Option<usize> {
        let index = self
            .brokers
            .iter_mut()
            .position(|broker| !broker.exit_reported && broker.exit_status().is_some())?;
        self.brokers[index].exit_reported = true;
        Some(index)
    }

    /// Stops every broker with SIGTERM and waits for them; a second signal or the timeout
    /// kills the rest (SIGKILL). `Err` names the brokers that did not exit cleanly.
    async fn stop(&mut self, signals: &mut StopSignals, timeout_secs: u64) -> Result<(), CliError> {
        self.progress.finish();
        for broker in &mut self.brokers {
            broker.signal(libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(timeout_secs);
        let mut killed = false;
        while self
            .brokers
            .iter_mut()
            .any(|broker| broker.exit_status().is_none())
        {
            if Instant::now() >= deadline && !killed {
                eprintln!("brokers still running after {timeout_secs} s: killing them");
                self.kill_all();
                killed = true;
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                name = signals.recv(), if !killed => {
                    eprintln!("{name} again: killing the brokers");
                    self.kill_all();
                    killed = true;
                }
            }
        }
        let unclean: Vec<String> = self
            .brokers
            .iter_mut()
            // Those that exited on their own were reported when they did.
            .filter(|broker| !broker.exit_reported)
            .filter_map(|broker| {
                let status = broker.exit_status()?;
                eprintln!(
                    "broker {} stopped ({})",
                    broker.plan.id,
                    describe_exit(status)
                );
                (!status.success())
                    .then(|| format!("{} ({})", broker.plan.id, describe_exit(status)))
            })
            .collect();
        if unclean.is_empty() {
            Ok(())
        } else {
            Err(CliError::Io(format!(
                "broker(s) {} did not stop cleanly; see broker-<id>.log",
                unclean.join(", ")
            )))
        }
    }

    fn kill_all(&mut self) {
        for broker in &mut self.brokers {
            broker.signal(libc::SIGKILL);
        }
    }
}

/// Stops ZooKeeper after the brokers; a failure to stop it is reported, not fatal (the brokers
/// are already down and Drop kills it).
fn stop_zookeeper(zookeeper: ZooKeeperProcess) {
    if let Err(error) = zookeeper.stop() {
        eprintln!("{error}");
    }
}

/// `broker N exited (how); last lines of FILE:` and those lines, indented.
fn exit_report(broker: &mut BrokerProcess) -> String {
    let status = broker.exit_status().map(describe_exit).unwrap_or_default();
    let mut report = format!(
        "broker {} exited ({status}); last lines of {}:",
        broker.plan.id,
        broker.plan.output_path.display()
    );
    for line in broker.last_output_lines(FAILURE_TAIL_LINES) {
        report.push_str("\n  ");
        report.push_str(&line);
    }
    report
}

/// Refuses ports another process listens on. Strom's shards bind with SO_REUSEPORT, so a second
/// broker on a taken port could start and share it silently with the first; a plain bind here
/// fails instead.
fn check_ports_free(plan: &ClusterPlan) -> Result<(), CliError> {
    let zookeeper = (plan.zookeeper_port != 0).then_some(("ZooKeeper", plan.zookeeper_port));
    let brokers = plan.brokers.iter().map(|broker| ("a broker", broker.port));
    for (who, port) in zookeeper.into_iter().chain(brokers) {
        if let Err(error) = TcpListener::bind(("127.0.0.1", port)) {
            return Err(CliError::Usage(format!(
                "port {port} for {who} is not free ({error}); choose other ports \
                 (--base-port, --zookeeper-port) or stop what uses it"
            )));
        }
    }
    Ok(())
}

/// A port nobody listens on now, for a broker's admin listener (picked by the kernel, so brokers
/// of several local clusters never ask for the same one).
fn free_port() -> Result<u16, CliError> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| CliError::Io(format!("cannot find a free port: {error}")))
}

fn print_cluster(
    plan: &ClusterPlan,
    zookeeper: &ZooKeeperProcess,
    brokers: &[BrokerProcess],
) -> Result<(), CliError> {
    let mut out = Output::new();
    out.line(&format!(
        "ZooKeeper: {} (data in {})",
        zookeeper.connect_string(),
        plan.zookeeper_dir.display()
    ))?;
    out.line(&format!("Bootstrap: {}", plan.bootstrap()))?;
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(vec!["  ID", "ADDRESS", "ADMIN", "PID", "LOG DIR"]);
    for broker in brokers {
        table.add_row(vec![
            format!("  {}", broker.plan.id),
            broker.plan.address(),
            broker.plan.admin_listener(),
            broker.pid().to_string(),
            broker.plan.log_dir.display().to_string(),
        ]);
    }
    out.line(&table.to_string())?;
    out.line(&format!(
        "Broker output: {}/broker-<id>.log. Press Ctrl-C to stop the cluster.",
        plan.dir.display()
    ))?;
    out.flush()
}

/// SIGINT (Ctrl-C) and SIGTERM, either of which stops the cluster.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn new() -> Result<Self, CliError> {
        let install = |kind: SignalKind| {
            signal(kind)
                .map_err(|error| CliError::Io(format!("cannot install a signal handler: {error}")))
        };
        Ok(Self {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    /// Waits for the next signal and names it.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    /// Whether a signal arrived already (consuming it), without waiting.
    fn received(&mut self) -> bool {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        self.interrupt.poll_recv(&mut context).is_ready()
            || self.terminate.poll_recv(&mut context).is_ready()
    }
}

/// Progress on stderr: a spinner with the current step when stderr is a terminal, plain lines
/// for the finished steps always.
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(SPINNER_TICK);
            bar
        } else {
            ProgressBar::hidden()
        };
        Self { bar }
    }

    /// Shows the step in progress.
    fn working(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Prints a finished step (above the spinner).
    fn done(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn seconds_since(start: Instant) -> String {
    format!("{:.1} s", start.elapsed().as_secs_f64())
}
