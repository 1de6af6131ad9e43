//! A standalone ZooKeeper server as a child process, for tests and for
//! `strom cluster up`: Debian's `zookeeper` package jars run by `java`, data
//! and log in a directory of ours, no root and no `/etc` changes.
//!
//! `start` writes `zoo.cfg`, launches the JVM, and returns once the server
//! answers the `ruok` four-letter command with `imok`. Dropping the handle
//! kills the process, so a panicking test never leaves a ZooKeeper behind.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

/// Debian's ZooKeeper server jar (package `zookeeper`).
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// The rest of the class path: logging (ZooKeeper 3.8 on Debian logs through
/// slf4j to log4j 1.2) and Debian's `log4j.properties`. Missing entries are
/// left out; only the server jar is required.
const CLASS_PATH_EXTRA: [&str; 4] = [
    "/usr/share/java/zookeeper-jute.jar",
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
    "/etc/zookeeper/conf",
];

/// How long a JVM may take to start answering. ZooKeeper is ready in about a
/// second on an idle machine; a busy CI machine with parallel builds can be
/// ten times slower.
pub const ZOOKEEPER_READY_TIMEOUT_MS: u64 = 60_000;

/// Grace period for a stopped server to exit before it is killed.
const STOP_GRACE_MS: u64 = 5_000;

/// Pause between readiness probes.
const PROBE_INTERVAL_MS: u64 = 50;

/// Bound on one `ruok` exchange, so a wedged server cannot stall a probe.
const PROBE_IO_TIMEOUT_MS: u64 = 1_000;

/// Heap for the JVM: a test ZooKeeper holds a few thousand small znodes.
const JVM_MAX_HEAP: &str = "-Xmx256m";

/// ZooKeeper's tick (ms). Session timeouts are negotiated into
/// [2 ticks, maxSessionTimeout]; a short tick lets tests use 1-2 s sessions.
const TICK_TIME_MS: u64 = 500;

/// Upper bound on negotiated session timeouts (ZooKeeper's default would be
/// 20 ticks = 10 s, below Kafka's default of 18 s).
const MAX_SESSION_TIMEOUT_MS: u64 = 60_000;

/// Bytes of the server's output quoted in errors.
const LOG_TAIL_BYTES: u64 = 4_096;

/// Why a ZooKeeper could not be started or stopped.
#[derive(Debug, Error)]
pub enum ZooKeeperError {
    /// No `java` on `PATH`.
    #[error("cannot run ZooKeeper: `java` is not on PATH (install a Java runtime, e.g. apt-get install default-jre-headless)")]
    JavaMissing,
    /// Debian's ZooKeeper jar is not installed.
    #[error("cannot run ZooKeeper: {path} is missing (install Debian's zookeeper package: apt-get install zookeeper)")]
    JarMissing {
        /// The jar looked for.
        path: PathBuf,
    },
    /// A file or process operation failed.
    #[error("ZooKeeper: {operation}: {source}")]
    Io {
        /// What was being done.
        operation: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server exited before it answered.
    #[error("ZooKeeper exited during startup ({status}); its output ends with:\n{log_tail}")]
    Exited {
        /// How it exited.
        status: ExitStatus,
        /// The end of its output.
        log_tail: String,
    },
    /// The server did not answer `ruok` in time (it was killed).
    #[error("ZooKeeper on port {port} did not answer `ruok` within {timeout_ms} ms; its output ends with:\n{log_tail}")]
    NotReady {
        /// Its client port.
        port: u16,
        /// The bound.
        timeout_ms: u64,
        /// The end of its output.
        log_tail: String,
    },
}

fn io_error(operation: impl Into<String>) -> impl FnOnce(std::io::Error) -> ZooKeeperError {
    let operation = operation.into();
    move |source| ZooKeeperError::Io { operation, source }
}

/// A running standalone ZooKeeper (on 127.0.0.1 unless started with [`Self::start_on`]).
/// Killed when dropped.
#[derive(Debug)]
pub struct ZooKeeperProcess {
    /// `None` after `kill`, until `restart`.
    child: Option<Child>,
    data_dir: PathBuf,
    /// The address the client port listens on.
    address: Ipv4Addr,
    port: u16,
    java: PathBuf,
}

impl ZooKeeperProcess {
    /// Starts ZooKeeper with its data and output in `data_dir` (created if
    /// missing; a previous run's data there is kept) on `port` (`0`: a free
    /// port), and waits until it answers `ruok`.
    pub fn start(data_dir: &Path, port: u16) -> Result<Self, ZooKeeperError> {
        Self::start_on(data_dir, Ipv4Addr::LOCALHOST, port)
    }

    /// As [`Self::start`], listening on `address` (e.g. a bridge address that brokers in other
    /// network namespaces reach, for the network-partition tests).
    pub fn start_on(data_dir: &Path, address: Ipv4Addr, port: u16) -> Result<Self, ZooKeeperError> {
        let java = check_prerequisites(find_java(), Path::new(ZOOKEEPER_JAR))?;
        let port = if port == 0 { free_port(address)? } else { port };
        let mut process = Self {
            child: None,
            data_dir: data_dir.to_owned(),
            address,
            port,
            java,
        };
        process.write_config()?;
        process.launch()?;
        Ok(process)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ADDRESS:PORT` (`127.0.0.1:PORT` by default), for `zookeeper.connect`.
    pub fn connect_string(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    /// The directory holding `zoo.cfg`, the data and the server's output.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server gracefully (SIGTERM, then SIGKILL after a grace
    /// period) and waits for it to exit.
    pub fn stop(mut self) -> Result<(), ZooKeeperError> {
        self.stop_child()
    }

    /// Kills the server with SIGKILL, as a crash would (fault tests). Its
    /// data stays; [`Self::restart`] brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: the point is that it is not running.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data (after [`Self::kill`],
    /// or stopping it gracefully first if it is running).
    pub fn restart(&mut self) -> Result<(), ZooKeeperError> {
        self.stop_child()?;
        self.launch()
    }

    fn config_path(&self) -> PathBuf {
        self.data_dir.join("zoo.cfg")
    }

    fn output_path(&self) -> PathBuf {
        self.data_dir.join("zookeeper.out")
    }

    fn write_config(&self) -> Result<(), ZooKeeperError> {
        let data = self.data_dir.join("data");
        std::fs::create_dir_all(&data).map_err(io_error(format!("creating {}", data.display())))?;
        // The admin server is off because it binds 8080 (shared by every
        // instance); the four-letter commands are how readiness is probed.
        let config = format!(
            "tickTime={TICK_TIME_MS}\n\
             dataDir={data}\n\
             clientPort={port}\n\
             clientPortAddress={address}\n\
             maxSessionTimeout={MAX_SESSION_TIMEOUT_MS}\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=ruok,srvr,stat,mntr\n",
            data = data.display(),
            port = self.port,
            address = self.address,
        );
        let path = self.config_path();
        std::fs::write(&path, config).map_err(io_error(format!("writing {}", path.display())))
    }

    fn class_path() -> String {
        std::iter::once(ZOOKEEPER_JAR)
            .chain(
                CLASS_PATH_EXTRA
                    .into_iter()
                    .filter(|entry| Path::new(entry).exists()),
            )
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Spawns the JVM and waits for `imok`; on failure nothing is left running.
    fn launch(&mut self) -> Result<(), ZooKeeperError> {
        let output_path = self.output_path();
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&output_path)
            .map_err(io_error(format!("opening {}", output_path.display())))?;
        let errors = output
            .try_clone()
            .map_err(io_error("duplicating the output file"))?;
        let output_start = output
            .metadata()
            .map_err(io_error("reading the output file's size"))?
            .len();
        let mut command = Command::new(&self.java);
        command
            .arg(JVM_MAX_HEAP)
            .arg(format!("-Dzookeeper.log.dir={}", self.data_dir.display()))
            .arg("-Dzookeeper.root.logger=WARN,CONSOLE")
            .arg("-cp")
            .arg(Self::class_path())
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            // Its own process group, so a terminal's Ctrl-C reaches only its owner: `strom
            // cluster up` stops the brokers first, and they need ZooKeeper to hand over.
            .process_group(0);
        // SAFETY: runs in the child between fork and exec and only calls prctl(2), which is
        // async-signal-safe. Out of its owner's process group, the server must still die with
        // the thread that started it (a killed test or `cluster up`).
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(io_error(format!("running {}", self.java.display())))?;
        self.child = Some(child);
        match self.wait_ready(output_start) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.kill();
                Err(error)
            }
        }
    }

    fn wait_ready(&mut self, output_start: u64) -> Result<(), ZooKeeperError> {
        let deadline = Instant::now() + Duration::from_millis(ZOOKEEPER_READY_TIMEOUT_MS);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child
                    .try_wait()
                    .map_err(io_error("checking on the ZooKeeper process"))?
                {
                    self.child = None;
                    return Err(ZooKeeperError::Exited {
                        status,
                        log_tail: self.log_tail(output_start),
                    });
                }
            }
            if four_letter_at(self.address, self.port, "ruok").is_ok_and(|answer| answer == "imok")
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ZooKeeperError::NotReady {
                    port: self.port,
                    timeout_ms: ZOOKEEPER_READY_TIMEOUT_MS,
                    log_tail: self.log_tail(output_start),
                });
            }
            std::thread::sleep(Duration::from_millis(PROBE_INTERVAL_MS));
        }
    }

    /// The end of what this launch wrote, for error messages.
    fn log_tail(&self, output_start: u64) -> String {
        let read = || -> std::io::Result<String> {
            let mut file = std::fs::File::open(self.output_path())?;
            let end = file.metadata()?.len();
            let from = output_start.max(end.saturating_sub(LOG_TAIL_BYTES));
            file.seek(SeekFrom::Start(from))?;
            let mut bytes = Vec::new();
            file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        read().unwrap_or_else(|error| format!("(output unreadable: {error})"))
    }

    fn stop_child(&mut self) -> Result<(), ZooKeeperError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = libc::pid_t::try_from(child.id()).map_err(|_| ZooKeeperError::Io {
            operation: "stopping ZooKeeper".to_owned(),
            source: std::io::Error::other("process id out of range"),
        })?;
        // SAFETY: kill(2) on our own child's pid, which we have not waited
        // for yet, so it cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_millis(STOP_GRACE_MS);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(PROBE_INTERVAL_MS));
                }
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    return child
                        .wait()
                        .map(|_| ())
                        .map_err(io_error("waiting for ZooKeeper to exit"));
                }
            }
        }
    }
}

impl Drop for ZooKeeperProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a four-letter command and returns the answer.
pub fn four_letter(port: u16, command: &str) -> std::io::Result<String> {
    four_letter_at(Ipv4Addr::LOCALHOST, port, command)
}

/// Sends a four-letter command to the server at `address`:`port` and returns the answer.
pub fn four_letter_at(address: Ipv4Addr, port: u16, command: &str) -> std::io::Result<String> {
    let address = SocketAddr::from((address, port));
    let io_timeout = Duration::from_millis(PROBE_IO_TIMEOUT_MS);
    let mut stream = TcpStream::connect_timeout(&address, io_timeout)?;
    stream.set_read_timeout(Some(io_timeout))?;
    stream.set_write_timeout(Some(io_timeout))?;
    stream.write_all(command.as_bytes())?;
    let mut answer = String::new();
    // The server closes the connection after answering; the answer is tiny.
    stream.take(64 * 1024).read_to_string(&mut answer)?;
    Ok(answer)
}

/// A port nothing listens on right now (the OS picks it).
fn free_port(address: Ipv4Addr) -> Result<u16, ZooKeeperError> {
    let listener = TcpListener::bind((address, 0)).map_err(io_error("finding a free port"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(io_error("finding a free port"))
}

/// The java to run, or which prerequisite is missing.
fn check_prerequisites(java: Option<PathBuf>, jar: &Path) -> Result<PathBuf, ZooKeeperError> {
    let java = java.ok_or(ZooKeeperError::JavaMissing)?;
    if !jar.is_file() {
        return Err(ZooKeeperError::JarMissing {
            path: jar.to_owned(),
        });
    }
    Ok(java)
}

fn find_java() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("java"))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_prerequisites_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jar = dir.path().join("zookeeper.jar");
        let error = check_prerequisites(None, &jar).expect_err("no java");
        assert!(matches!(error, ZooKeeperError::JavaMissing));
        assert!(error.to_string().contains("java"), "{error}");
        let error =
            check_prerequisites(Some(PathBuf::from("/bin/java")), &jar).expect_err("no jar");
        assert!(matches!(error, ZooKeeperError::JarMissing { .. }));
        assert!(
            error.to_string().contains("apt-get install zookeeper"),
            "{error}"
        );
        std::fs::write(&jar, b"").expect("write");
        assert_eq!(
            check_prerequisites(Some(PathBuf::from("/bin/java")), &jar).expect("both present"),
            PathBuf::from("/bin/java")
        );
    }

    #[test]
    fn four_letter_to_a_closed_port_is_an_error() {
        let port = free_port(Ipv4Addr::LOCALHOST).expect("free port");
        assert!(four_letter(port, "ruok").is_err());
    }
}
