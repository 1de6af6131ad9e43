//! Starting and stopping a broker process.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use strom_engine::log::LogDirClose;
use strom_engine::runtime::{ShardSet, ShardSetConfig};

use super::context::BrokerContext;
use super::log_dirs::LogDirs;
use super::producer_ids::ProducerIdAllocator;
use super::shard::ShardState;
use crate::admin_http::{AdminServer, AdminState};
use crate::config::BrokerConfig;
use crate::handlers::now_ms;
use crate::network::{bind_reuseport, run_listener};

const PID_FILE: &str = "strom.pid";
const LOCK_FILE: &str = ".lock";
/// How long `strom broker stop` waits for the broker to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("log dir {0} is in use by another broker")]
    DirInUse(PathBuf),
    #[error("{0}")]
    Config(String),
    #[error("coordination store: {0}")]
    Coordination(String),
    #[error("log dir: {0}")]
    LogDir(strom_engine::Error),
    #[error("no broker is running with log dir {0} (no {PID_FILE})")]
    NotRunning(PathBuf),
    #[error("broker (pid {0}) did not stop within {1:?}")]
    StopTimedOut(i32, Duration),
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BrokerError {
    let context = context.into();
    move |source| BrokerError::Io { context, source }
}

/// Takes an exclusive lock on the log dir for the life of the process.
fn lock_log_dir(log_dir: &Path) -> Result<std::fs::File, BrokerError> {
    let path = log_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(format!("open {}", path.display())))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(BrokerError::DirInUse(log_dir.to_path_buf()));
    }
    Ok(file)
}

/// Blocks SIGTERM and SIGINT in this thread (and the shard threads it starts), so they can be
/// received synchronously with `sigwait` for a clean shutdown.
fn block_shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a zeroed local set; pthread_sigmask on the current thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Whether SIGTERM or SIGINT arrived (consumed), without waiting.
fn signal_pending(set: &libc::sigset_t) -> bool {
    let no_wait = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `set` was initialised by block_shutdown_signals; a null siginfo is allowed.
    unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &no_wait) > 0 }
}

fn wait_for_shutdown_signal(set: &libc::sigset_t) -> i32 {
    let mut signal: libc::c_int = 0;
    // SAFETY: `set` was initialised by block_shutdown_signals.
    unsafe { libc::sigwait(set, &mut signal) };
    signal
}

fn listen_address(config: &BrokerConfig) -> Result<SocketAddr, BrokerError> {
    let text = config.listener.bind_address();
    text.to_socket_addrs()
        .map_err(io_error(format!("resolve listener {text}")))?
        .next()
        .ok_or_else(|| BrokerError::Config(format!("listener {text} resolves to no address")))
}

/// Checks that nobody listens on `address` yet and resolves port 0 to a real port. Every shard
/// binds the port with SO_REUSEPORT, which would silently let a second broker share it; a plain
/// bind fails with "address in use" instead, as Kafka would.
fn probe_listen_address(address: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let probe =
        std::net::TcpListener::bind(address).map_err(io_error(format!("listen on {address}")))?;
    probe
        .local_addr()
        .map_err(io_error(format!("listen on {address}")))
}

/// Starts the admin HTTP listener on `address` (`admin.listeners`): a port already taken is an
/// error at start, as for the Kafka listener.
fn start_admin(address: &str, state: Arc<AdminState>) -> Result<AdminServer, BrokerError> {
    let context = || format!("listen on admin.listeners http://{address}");
    let resolved = address
        .to_socket_addrs()
        .map_err(io_error(context()))?
        .next()
        .ok_or_else(|| {
            BrokerError::Config(format!("admin.listeners {address} resolves to no address"))
        })?;
    let server = AdminServer::start(resolved, state).map_err(io_error(context()))?;
    tracing::info!(address = %server.address(), "admin listener started");
    Ok(server)
}

/// Runs a broker until SIGTERM or SIGINT, then shuts it down cleanly.
pub fn run(config: BrokerConfig) -> Result<(), BrokerError> {
    let Some(log_dir) = config.log_dirs.first() else {
        return Err(BrokerError::Config("log.dirs names no directory".into()));
    };
    let log_dir = log_dir.clone();
    let mut _locks = Vec::with_capacity(config.log_dirs.len());
    for dir in &config.log_dirs {
        std::fs::create_dir_all(dir)
            .map_err(io_error(format!("create log dir {}", dir.display())))?;
        _locks.push(lock_log_dir(dir)?);
    }
    let address = probe_listen_address(listen_address(&config)?)?;
    // Serves liveness (and readiness: not yet) while the broker recovers and registers.
    let admin_state = Arc::new(AdminState::default());
    let admin = match &config.admin_listener {
        Some(admin_address) => Some(start_admin(admin_address, admin_state.clone())?),
        None => None,
    };
    // Written before the port accepts connections, so `strom broker stop` works as soon as a
    // client can connect.
    let _pid_file = PidFile::write(&log_dir)?;
    let signals = block_shutdown_signals();
    // Before any partition opens: notes whether each dir's last stop was clean and removes its
    // marker durably, so nothing appended in this run can be covered by it; and refuses a
    // partition found in two dirs.
    let log_dirs = LogDirs::open(&config.log_dirs).map_err(BrokerError::Config)?;
    for (dir, path) in log_dirs.dirs().iter().zip(&config.log_dirs) {
        tracing::info!(log_dir = %path.display(), clean = dir.was_clean(), "previous shutdown");
    }

    // Joins the cluster (or opens the embedded store): registered, the view loaded, and the
    // first elections made, before any shard opens a partition.
    let started = crate::control_plane::start(&config, &log_dir, &|| signal_pending(&signals))
        .map_err(BrokerError::Coordination)?;
    let control = started.control.clone();
    for dir in &config.log_dirs {
        super::log_dir::remove_stray_replicas(dir, &started.view, config.broker_id);
    }
    if let Err(error) = log_dirs.rescan() {
        control.stop_blocking();
        let _ = started.thread.join();
        return Err(BrokerError::Config(error));
    }
    let checkpointed_high_watermarks = read_high_watermark_checkpoints(&config.log_dirs);
    let shard_config = ShardSetConfig {
        shard_count: config.num_shards,
        ..ShardSetConfig::default()
    };
    let shard_count = if config.num_shards == 0 {
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    } else {
        config.num_shards
    };
    let shard_config = ShardSetConfig {
        shard_count,
        ..shard_config
    };
    let retention_interval = Duration::from_millis(config.log_retention_check_interval_ms.max(1));
    let connections = Arc::new(crate::network::ConnectionLimits::new(
        config.max_connections,
        config.max_connections_per_ip,
    ));
    let context = Arc::new(BrokerContext {
        producer_ids: ProducerIdAllocator::new(control.clone()),
        connections,
        config,
        log_dir: log_dir.clone(),
        log_dirs,
        topics: started.view,
        control: control.clone(),
        cluster_id: started.cluster_id,
        shard_count,
        checkpointed_high_watermarks,
    });

    let init_context = context.clone();
    let opening = std::time::Instant::now();
    let shards = ShardSet::start(&shard_config, move |id, router| {
        let context = init_context.clone();
        async move { ShardState::start(id, router, context).await }
    })
    .map_err(io_error("start shards"))?;
    // From here on every change the control plane sees reaches the shards: before any listener
    // accepts a request, so a topic created through one is in every shard's cache when the
    // creation is answered.
    control.attach(shards.router().clone());
    admin_state.attach(shards.router().clone());

    // Every shard listens on the same port; the kernel spreads connections across them.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    for shard in 0..shards.shard_count() {
        let ready_tx = ready_tx.clone();
        shards
            .router()
            .try_post_to(shard, move |state: Rc<ShardState>| async move {
                match bind_reuseport(address) {
                    Ok(listener) => {
                        strom_engine::io::spawn_local(run_listener(state.clone(), listener));
                        strom_engine::io::spawn_local(group_tick_loop(state.clone()));
                        if shard == 0 {
                            strom_engine::io::spawn_local(high_watermark_checkpoint_loop(
                                state.clone(),
                            ));
                        }
                        strom_engine::io::spawn_local(retention_loop(state, retention_interval));
                        let _ = ready_tx.send(Ok(()));
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(format!("bind {address}: {error}")));
                    }
                }
            })
            .map_err(|error| BrokerError::Config(error.to_string()))?;
    }
    drop(ready_tx);
    let mut failure = None;
    for outcome in ready_rx.iter().take(shards.shard_count()) {
        if let Err(error) = outcome {
            failure = Some(error);
        }
    }
    if let Some(error) = failure {
        shutdown(shards, &context);
        control.stop_blocking();
        let _ = started.thread.join();
        return Err(BrokerError::Config(error));
    }

    let open_ms = opening.elapsed().as_millis();
    let log_dirs_text = context
        .config
        .log_dirs
        .iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    tracing::info!(%address, shards = shard_count, open_ms, log_dirs = %log_dirs_text, cluster_id = %context.cluster_id, "strom broker started");
    admin_state.set_serving(true);

    let signal = wait_for_shutdown_signal(&signals);
    tracing::info!(signal, "shutting down");
    admin_state.set_serving(false);
    if context.config.controlled_shutdown_enable {
        let outcome =
            control.controlled_shutdown_blocking(context.config.controlled_shutdown_timeout_ms);
        tracing::info!(?outcome, "controlled shutdown");
    }
    // Before the shards stop: a scrape then never waits on a shard that is gone.
    if let Some(admin) = admin {
        admin.stop();
    }
    shutdown(shards, &context);
    control.stop_blocking();
    let _ = started.thread.join();
    Ok(())
}

/// Closes every partition cleanly on its shard (all shards at once), stops the shards, then
/// closes each log dir: one file-system sync and one clean-shutdown marker per dir, written only
/// if every partition in it closed.
fn shutdown(shards: ShardSet<ShardState>, context: &Arc<BrokerContext>) {
    let started = std::time::Instant::now();
    // The high watermarks as they stand, so the next start exposes no more than was confirmed.
    let (hw_tx, hw_rx) = std::sync::mpsc::channel();
    let mut asked_for_hw = 0;
    for shard in 0..shards.shard_count() {
        let hw_tx = hw_tx.clone();
        let posted = shards
            .router()
            .try_post_to(shard, move |state: Rc<ShardState>| async move {
                let _ = hw_tx.send(state.high_watermarks());
            });
        asked_for_hw += usize::from(posted.is_ok());
    }
    drop(hw_tx);
    let high_watermarks: strom_engine::log::PartitionOffsets =
        hw_rx.iter().take(asked_for_hw).flatten().collect();
    write_high_watermark_checkpoints(&context.log_dirs, &high_watermarks);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let mut asked = 0;
    for shard in 0..shards.shard_count() {
        let done_tx = done_tx.clone();
        let posted = shards
            .router()
            .try_post_to(shard, move |state: Rc<ShardState>| async move {
                state.shutdown().await;
                let _ = done_tx.send(());
            });
        asked += usize::from(posted.is_ok());
    }
    drop(done_tx);
    let mut done = 0;
    for _ in 0..asked {
        if done_rx.recv().is_err() {
            break;
        }
        done += 1;
    }
    if done < shards.shard_count() {
        tracing::error!(
            done,
            shards = shards.shard_count(),
            "not every shard closed its partitions"
        );
        for dir in context.log_dirs.dirs() {
            dir.mark_unclean();
        }
    }
    shards.stop();
    let closed_ms = started.elapsed().as_millis();
    let marked: Vec<_> = context
        .log_dirs
        .dirs()
        .iter()
        .map(|dir| (dir.root().display().to_string(), dir.close()))
        .collect();
    tracing::info!(
        closed_ms,
        synced_ms = started.elapsed().as_millis() - closed_ms,
        "partitions closed, log dirs synced"
    );
    for (log_dir, marked) in marked {
        match marked {
            Ok(LogDirClose::MarkedClean) => tracing::info!(%log_dir, "stopped cleanly"),
            Ok(LogDirClose::LeftUnclean) => {
                tracing::warn!(%log_dir, "stopped; some partitions did not close cleanly and will be recovered")
            }
            Err(error) => {
                tracing::error!(%log_dir, %error, "could not sync the log dir; the next start recovers it")
            }
        }
    }
}

/// How often group deadlines (session and rebalance timeouts) are checked.
const GROUP_TICK_INTERVAL: Duration = Duration::from_millis(100);

async fn group_tick_loop(state: Rc<ShardState>) {
    while !state.stopping.get() {
        tokio::time::sleep(GROUP_TICK_INTERVAL).await;
        state.groups.tick(now_ms());
    }
}

/// Every log dir's `replication-offset-checkpoint`, merged (a partition is in one dir only).
fn read_high_watermark_checkpoints(log_dirs: &[PathBuf]) -> strom_engine::log::PartitionOffsets {
    let mut merged = strom_engine::log::PartitionOffsets::new();
    for log_dir in log_dirs {
        let path = log_dir.join(strom_engine::log::REPLICATION_OFFSET_CHECKPOINT_FILE);
        match strom_engine::log::OffsetCheckpointFile::read(&path) {
            Ok(offsets) => merged.extend(offsets),
            // Replicated partitions then open with their high watermark at their log start,
            // and learn it again from their leader (or, leading, from their followers).
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "unreadable high watermark checkpoint; ignoring it")
            }
        }
    }
    merged
}

/// Writes each log dir's `replication-offset-checkpoint` with the high watermarks of the
/// partitions it holds (as Kafka keeps one per dir).
fn write_high_watermark_checkpoints(
    log_dirs: &LogDirs,
    offsets: &strom_engine::log::PartitionOffsets,
) {
    let mut by_dir = vec![strom_engine::log::PartitionOffsets::new(); log_dirs.len()];
    for ((topic, index), offset) in offsets {
        if let Some(dir_index) = log_dirs.dir_index_of(topic, *index) {
            by_dir[dir_index].insert((topic.clone(), *index), *offset);
        }
    }
    for (dir_index, offsets) in by_dir.iter().enumerate() {
        let path = log_dirs
            .path(dir_index)
            .join(strom_engine::log::REPLICATION_OFFSET_CHECKPOINT_FILE);
        if let Err(error) = strom_engine::log::OffsetCheckpointFile::write(&path, offsets) {
            tracing::warn!(path = %path.display(), %error, "could not write the high watermark checkpoint");
        }
    }
}

/// Writes every partition's high watermark to its log dir's `replication-offset-checkpoint`
/// every `replica.high.watermark.checkpoint.interval.ms` (run on shard 0, gathering the other
/// shards' by message).
async fn high_watermark_checkpoint_loop(state: Rc<ShardState>) {
    let interval = Duration::from_millis(
        state
            .broker
            .config
            .replica_high_watermark_checkpoint_interval_ms,
    );
    loop {
        tokio::time::sleep(interval).await;
        if state.stopping.get() {
            return;
        }
        let mut offsets = strom_engine::log::PartitionOffsets::new();
        for shard in 0..state.router.shard_count() {
            match state
                .run_on(shard, |other: Rc<ShardState>| async move {
                    other.high_watermarks()
                })
                .await
            {
                Ok(found) => offsets.extend(found),
                // A shard stopped: the broker is going down and writes its own at shutdown.
                Err(_) => return,
            }
        }
        // Small files, written rarely and off the data path: a blocking write is acceptable
        // here, as for the other checkpoints the shards write.
        write_high_watermark_checkpoints(&state.broker.log_dirs, &offsets);
    }
}

async fn retention_loop(state: Rc<ShardState>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        if state.stopping.get() {
            return;
        }
        state.enforce_retention(now_ms()).await;
    }
}

/// The pid file of a running broker; removed when the broker returns (also on a failed start).
struct PidFile(PathBuf);

impl PidFile {
    fn write(log_dir: &Path) -> Result<Self, BrokerError> {
        let path = log_dir.join(PID_FILE);
        let mut file =
            std::fs::File::create(&path).map_err(io_error(format!("create {}", path.display())))?;
        writeln!(file, "{}", std::process::id())
            .map_err(io_error(format!("write {}", path.display())))?;
        Ok(PidFile(path))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `strom broker stop`: signals the broker using `log_dir` and waits for it to exit.
pub fn stop_running_broker(log_dir: &Path) -> Result<i32, BrokerError> {
    let path = log_dir.join(PID_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|_| BrokerError::NotRunning(log_dir.to_path_buf()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| BrokerError::Config(format!("{} does not hold a pid", path.display())))?;
    // SAFETY: kill(2) with a pid read from our pid file.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        let _ = std::fs::remove_file(&path);
        return Err(BrokerError::NotRunning(log_dir.to_path_buf()));
    }
    let deadline = std::time::Instant::now() + STOP_TIMEOUT;
    // SAFETY: signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        if std::time::Instant::now() >= deadline {
            return Err(BrokerError::StopTimedOut(pid, STOP_TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(pid)
}
