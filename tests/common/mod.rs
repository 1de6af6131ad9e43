//! Shared harness for Strom's integration tests.
//!
//! Every test starts the real `strom` binary as a child process on a free loopback port with its own
//! temporary `log.dirs`, and drives it with real Kafka clients (kcat, confluent-kafka, kafka-python,
//! kafkajs) or hand-written protocol frames.
//!
//! Rules this harness enforces so the suite never hangs and never passes by accident:
//! - every child process (broker or client) has a deadline and is killed when it passes;
//! - children die with the test process (`PR_SET_PDEATHSIG`), so a killed test leaks nothing;
//! - a missing client tool or module is a test *failure* with a hint, never a skip;
//! - when a test panics, the broker's stderr is printed so the failure can be diagnosed from CI logs.
//!
//! Environment knobs (all optional):
//! - `STROM_TEST_BIN`: broker binary to run instead of the one Cargo built (e.g. a release build);
//! - `STROM_TEST_PYTHON`: Python interpreter for the client scripts (default `python3`);
//! - `STROM_TEST_KEEP_DIRS`: keep the broker's temporary directory of a failed test for inspection.

// Each test binary compiles this module and uses a different subset of it.
#![allow(dead_code)]

pub mod cluster;
pub mod kafka_wire;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a starting broker may take to accept TCP connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a broker may take to exit after SIGTERM / `strom broker stop`.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Default deadline for one client command (kcat, a Python or node script).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// How many bytes of the broker's log to print when a test fails.
const LOG_TAIL_BYTES: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Broker
// ---------------------------------------------------------------------------------------------

/// Broker settings beyond the two the harness always sets (`listeners` and `log.dirs`).
#[derive(Clone, Debug, Default)]
pub struct BrokerOpts {
    overrides: Vec<(String, String)>,
    /// Log dirs after the harness's own (`log.dirs=<own>,<these>`); the test owns them.
    extra_log_dirs: Vec<PathBuf>,
}

impl BrokerOpts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `--override key=value`. Setting `listeners` or `log.dirs` here is a test bug: the harness
    /// owns them (it needs the port and directory to restart the same broker).
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        assert!(
            key != "listeners" && key != "log.dirs",
            "the harness sets {key} itself"
        );
        self.overrides.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds log dirs after the harness's own (`log.dirs` lists them in this order).
    pub fn extra_log_dirs(mut self, dirs: &[PathBuf]) -> Self {
        self.extra_log_dirs.extend(dirs.iter().cloned());
        self
    }

    /// The value the last `set` of `key` gave, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.overrides
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A running `strom broker start` child process with its own port and data directory.
///
/// Dropping it kills the process (SIGKILL) and removes the directory; if the test is panicking it
/// first prints the broker's log.
pub struct Broker {
    /// Holds the temporary directory alive; `None` only after Drop decided to keep it.
    dir: Option<tempfile::TempDir>,
    log_dirs: PathBuf,
    /// stdout and stderr of every start of this broker, appended in order.
    log_path: PathBuf,
    port: u16,
    opts: BrokerOpts,
    child: Option<Child>,
    /// Number of processes started so far (1 after `start`); only used to label the log.
    starts: u32,
}

/// Why one attempt to start the broker process did not produce a ready broker.
enum StartFailure {
    /// The process exited before accepting connections.
    Exited(ExitStatus),
    /// Another process also (or only) listens on the port: a port clash. strom binds with
    /// SO_REUSEPORT, so two brokers of the same user could otherwise share one port.
    PortTakenByOther,
    /// The process neither exited nor became ready before the deadline.
    NotReady,
}

impl Broker {
    /// Starts a broker on a free port with a fresh data directory and waits until it is ready.
    ///
    /// Picking a port by binding port 0 and releasing it can race with another test (or a client's
    /// ephemeral port), so a start that fails with "address in use", or that finds the port held by
    /// another process, is retried on a new port.
    pub fn start(opts: BrokerOpts) -> Broker {
        Self::start_with_log_dirs(opts, None)
    }

    /// [`Broker::start`] with `log.dirs` at `log_dirs` (e.g. on a filesystem the test mounted)
    /// instead of inside the broker's temporary directory, which still holds the broker's log.
    pub fn start_on(opts: BrokerOpts, log_dirs: &Path) -> Broker {
        Self::start_with_log_dirs(opts, Some(log_dirs.to_path_buf()))
    }

    fn start_with_log_dirs(opts: BrokerOpts, log_dirs: Option<PathBuf>) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("strom-test-")
            .tempdir()
            .expect("create temporary directory for the broker");
        let log_dirs = log_dirs.unwrap_or_else(|| dir.path().join("data"));
        fs::create_dir_all(&log_dirs).expect("create log.dirs");
        let log_path = dir.path().join("broker.log");
        let mut broker = Broker {
            dir: Some(dir),
            log_dirs,
            log_path,
            port: 0,
            opts,
            child: None,
            starts: 0,
        };

        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            broker.port = pick_free_port();
            match broker.launch(READY_TIMEOUT) {
                Ok(()) => return broker,
                Err(StartFailure::Exited(status)) if broker.log_says_address_in_use() => {
                    eprintln!(
                        "strom exited ({status}) because port {} was taken; retrying on another \
                         port (attempt {attempt}/{ATTEMPTS})",
                        broker.port
                    );
                }
                Err(StartFailure::PortTakenByOther) => {
                    eprintln!(
                        "another process answered on port {}; retrying on another port \
                         (attempt {attempt}/{ATTEMPTS})",
                        broker.port
                    );
                }
                Err(failure) => broker.fail_start(failure),
            }
        }
        panic!("could not start strom on a free port after {ATTEMPTS} attempts; see its log above");
    }

    /// `127.0.0.1:PORT`, for clients' bootstrap servers.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The broker's `log.dirs`.
    pub fn log_dirs(&self) -> &Path {
        &self.log_dirs
    }

    /// Everything the broker wrote to stdout and stderr so far (all starts).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait on broker").is_none(),
            None => false,
        }
    }

    /// Sends SIGTERM, waits for the exit and asserts a clean shutdown (exit code 0).
    pub fn stop_clean(&mut self) {
        self.signal(libc::SIGTERM);
        let status = self.wait_for_exit("SIGTERM");
        assert!(
            status.code() == Some(0),
            "strom must exit with code 0 after SIGTERM (clean shutdown), got {status}"
        );
    }

    /// Sends SIGINT, waits for the exit and asserts a clean shutdown (exit code 0).
    pub fn stop_with_sigint(&mut self) {
        self.signal(libc::SIGINT);
        let status = self.wait_for_exit("SIGINT");
        assert!(
            status.code() == Some(0),
            "strom must exit with code 0 after SIGINT (clean shutdown), got {status}"
        );
    }

    /// Stops the broker with `strom broker stop --override log.dirs=DIR` (which finds it through
    /// its pid file) and asserts that both the stop command and the broker exit with code 0.
    pub fn stop_with_cli(&mut self) {
        assert!(
            self.is_running(),
            "stop_with_cli: the broker is not running"
        );
        let mut cmd = Command::new(strom_bin());
        cmd.args(["broker", "stop", "--override"])
            .arg(format!("log.dirs={}", self.log_dirs.display()));
        // Reap the broker while the stop command runs (a stop command that waits for the pid to
        // disappear would otherwise wait on our unreaped zombie), and report a stop command that
        // fails while the broker keeps running.
        let mut running_stop = Some(Background::spawn(cmd, None, STOP_TIMEOUT));
        let mut finished_stop = None;
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                break status;
            }
            if running_stop.as_mut().is_some_and(Background::has_exited) {
                let out = running_stop.take().unwrap().finish();
                if !out.status.success() {
                    self.kill_quietly();
                    out.assert_success();
                }
                finished_stop = Some(out);
            }
            if Instant::now() >= deadline {
                self.kill_quietly();
                panic!("strom did not exit within {STOP_TIMEOUT:?} after `strom broker stop`");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let out = finished_stop.unwrap_or_else(|| running_stop.take().unwrap().finish());
        out.assert_success();
        assert!(
            status.code() == Some(0),
            "strom must exit with code 0 when stopped by `strom broker stop`, got {status}"
        );
    }

    /// Kills the broker with SIGKILL (no chance to flush anything) and reaps it.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let status = self.wait_for_exit("SIGKILL");
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "strom should have died from SIGKILL, got {status}"
        );
    }

    /// Starts the broker again on the same port and data directory. A running broker is first
    /// stopped cleanly (SIGTERM, exit code 0 asserted); after `kill9` it is simply started.
    pub fn restart(&mut self) {
        if self.is_running() {
            self.stop_clean();
        }
        self.child = None;
        // The old process's listening socket is gone, but give the port back a few chances: a
        // client's ephemeral port can briefly occupy it.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.launch(remaining) {
                Ok(()) => return,
                Err(StartFailure::Exited(_))
                    if self.log_says_address_in_use() && Instant::now() < deadline =>
                {
                    thread::sleep(Duration::from_millis(250));
                }
                Err(StartFailure::PortTakenByOther) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(250));
                }
                Err(failure) => self.fail_start(failure),
            }
        }
    }

    /// Spawns the process and waits until it accepts connections on its port.
    fn launch(&mut self, ready_timeout: Duration) -> Result<(), StartFailure> {
        self.starts += 1;
        let mut args: Vec<String> = vec!["broker".into(), "start".into()];
        let mut overrides = vec![
            (
                "listeners".to_string(),
                format!("PLAINTEXT://127.0.0.1:{}", self.port),
            ),
            (
                "log.dirs".to_string(),
                std::iter::once(&self.log_dirs)
                    .chain(&self.opts.extra_log_dirs)
                    .map(|dir| dir.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            // Off unless a test asks for it (many test brokers run at once and would all
            // want the default port); a test's own `admin.listeners` comes later and wins.
            ("admin.listeners".to_string(), String::new()),
        ];
        overrides.extend(self.opts.overrides.iter().cloned());
        for (key, value) in &overrides {
            args.push("--override".into());
            args.push(format!("{key}={value}"));
        }

        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open broker log file");
        writeln!(
            log,
            "===== harness: start #{} of {} {}",
            self.starts,
            strom_bin().display(),
            args.join(" ")
        )
        .expect("write broker log");
        let log_for_stdout = log.try_clone().expect("clone log file handle");

        let mut cmd = Command::new(strom_bin());
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log)
            .env("RUST_BACKTRACE", "1");
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", strom_bin().display()));
        let pid = child.id();
        self.child = Some(child);

        let deadline = Instant::now() + ready_timeout;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                return Err(StartFailure::Exited(status));
            }
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                if listener_owned_by(pid, self.port) {
                    return Ok(());
                }
                self.kill_quietly();
                return Err(StartFailure::PortTakenByOther);
            }
            if Instant::now() >= deadline {
                return Err(StartFailure::NotReady);
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    fn fail_start(&mut self, failure: StartFailure) -> ! {
        let why = match failure {
            StartFailure::Exited(status) => {
                format!("exited with {status} before accepting connections")
            }
            StartFailure::PortTakenByOther => "found its port taken by another process".into(),
            StartFailure::NotReady => format!(
                "did not accept connections on {} within {READY_TIMEOUT:?}",
                self.bootstrap()
            ),
        };
        self.kill_quietly();
        // Drop prints the log, since we are about to panic.
        panic!("strom broker {why} (start #{})", self.starts);
    }

    fn log_says_address_in_use(&self) -> bool {
        let log = self.log().to_lowercase();
        // Only look at the latest start's output.
        let latest = log.rsplit("===== harness: start #").next().unwrap_or("");
        latest.contains("address already in use") || latest.contains("addrinuse")
    }

    fn signal(&mut self, signal: libc::c_int) {
        assert!(self.is_running(), "cannot signal strom: it is not running");
        let pid = self.pid() as libc::pid_t;
        // SAFETY: plain kill(2) on our own, not yet reaped, child.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
    }

    fn wait_for_exit(&mut self, after: &str) -> ExitStatus {
        let child = self.child.as_mut().expect("broker is not running");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait on broker") {
                self.child = None;
                return status;
            }
            if Instant::now() >= deadline {
                self.kill_quietly();
                panic!("strom did not exit within {STOP_TIMEOUT:?} after {after}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_quietly(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill_quietly();
        if thread::panicking() {
            eprintln!(
                "===== strom broker log ({}), last {} KiB:\n{}\n===== end of strom broker log",
                self.log_path.display(),
                LOG_TAIL_BYTES / 1024,
                tail(&self.log(), LOG_TAIL_BYTES)
            );
            if std::env::var_os("STROM_TEST_KEEP_DIRS").is_some() {
                if let Some(dir) = self.dir.take() {
                    eprintln!("keeping broker directory {}", dir.keep().display());
                }
            }
        }
    }
}

/// The broker binary: the one Cargo built for this test run unless `STROM_TEST_BIN` names another.
pub fn strom_bin() -> PathBuf {
    match std::env::var_os("STROM_TEST_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_strom")),
    }
}

/// A port that was free a moment ago (bind port 0, read it, release it).
pub fn pick_free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Whether every socket listening on 127.0.0.1:`port` (or 0.0.0.0:`port`) belongs to `pid`, from
/// /proc/net/tcp and /proc/PID/fd. Guards against port clashes: another process's listener
/// answering our readiness probe, or (since strom's shards bind with SO_REUSEPORT, which lets
/// processes of the same user share a port) another test's broker on the same port. Without /proc
/// (not Linux) it trusts the probe.
fn listener_owned_by(pid: u32, port: u16) -> bool {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return true;
    };
    let wanted_ports = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    // Columns: sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    let listen_inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let is_listen = cols.get(3) == Some(&"0A");
            let local = cols.get(1)?;
            (is_listen && wanted_ports.iter().any(|p| p == local))
                .then(|| cols.get(9).map(|s| s.to_string()))
                .flatten()
        })
        .collect();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let own_sockets: Vec<String> = fds
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .collect();
    !listen_inodes.is_empty()
        && listen_inodes
            .iter()
            .all(|inode| own_sockets.contains(&format!("socket:[{inode}]")))
}

/// Makes the child receive SIGKILL when the thread that spawned it dies, so a test killed by a
/// timeout (or a crashing test binary) does not leave brokers and clients running.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec and only calls the async-signal-safe prctl(2).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn tail(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

// ---------------------------------------------------------------------------------------------
// External commands with deadlines
// ---------------------------------------------------------------------------------------------

/// What a finished external command did.
pub struct CmdOutput {
    /// Human-readable command line, for failure messages.
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl CmdOutput {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Panics with the command, its exit status and both outputs unless it exited with code 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "`{}` failed with {} after {:?}\n--- stdout (tail):\n{}\n--- stderr (tail):\n{}",
            self.what,
            self.status,
            self.elapsed,
            tail(&self.stdout_str(), 16 * 1024),
            tail(&self.stderr_str(), 16 * 1024),
        );
        self
    }

    /// Each non-empty stdout line parsed as JSON (kcat -J, -L -J).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout_str()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!(
                        "`{}` printed a line that is not JSON ({e}): {line}",
                        self.what
                    )
                })
            })
            .collect()
    }

    /// The last non-empty stdout line parsed as JSON: the result object every client script in
    /// tests/clients/ prints last.
    pub fn result_json(&self) -> serde_json::Value {
        let stdout = self.stdout_str();
        let line = stdout
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "`{}` printed no result line\n--- stderr (tail):\n{}",
                    self.what,
                    tail(&self.stderr_str(), 16 * 1024)
                )
            });
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "`{}`: last stdout line is not JSON ({e}): {line}\n--- stderr (tail):\n{}",
                self.what,
                tail(&self.stderr_str(), 16 * 1024)
            )
        })
    }
}

/// A child process whose stdout is read line by line while it runs (for progress reports), with a
/// hard deadline. Dropping it kills the process group.
pub struct Background {
    what: String,
    child: Option<Child>,
    started: Instant,
    deadline: Instant,
    lines: Receiver<Vec<u8>>,
    /// Every stdout line received so far, including the newline.
    stdout: Vec<u8>,
    stdout_done: bool,
    stderr_reader: Option<JoinHandle<Vec<u8>>>,
    stdin_writer: Option<JoinHandle<()>>,
}

impl Background {
    /// Spawns `cmd` in its own process group with piped stdout/stderr; `stdin` bytes (if any) are
    /// written by a helper thread and the pipe closed. The process is killed at `timeout`.
    pub fn spawn(mut cmd: Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Background {
        let what = describe(&cmd);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: on timeout we kill the command and anything it started.
        .process_group(0);
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
        let started = Instant::now();

        let stdin_writer = stdin.map(|bytes| {
            let mut pipe = child.stdin.take().unwrap();
            // A broken pipe (the command exited early) is reported through its exit status.
            thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            })
        });
        let (tx, lines) = mpsc::channel();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || loop {
            let mut line = Vec::new();
            match stdout.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr_reader = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });

        Background {
            what,
            child: Some(child),
            started,
            deadline: started + timeout,
            lines,
            stdout: Vec::new(),
            stdout_done: false,
            stderr_reader: Some(stderr_reader),
            stdin_writer,
        }
    }

    /// The process id (it leads its own process group).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("process already finished").id()
    }

    /// Sends `signal` to the process itself (not its group), e.g. SIGKILL to simulate a crash.
    /// `finish` still collects what it printed before dying.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: plain kill(2) on our own, not yet reaped, child.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}) on `{}`: {}",
            self.what,
            std::io::Error::last_os_error()
        );
    }

    /// The stdout lines (without line ends) that arrived since the last call, waiting at most
    /// `wait` for the first one. Never panics: an exited process just yields no more lines. The
    /// lines are also kept for `finish`.
    pub fn new_lines(&mut self, wait: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        let mut first = true;
        while !self.stdout_done {
            let received = if first {
                first = false;
                self.lines.recv_timeout(wait)
            } else {
                self.lines.try_recv().map_err(|e| match e {
                    mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                    mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            };
            match received {
                Ok(line) => {
                    self.stdout.extend_from_slice(&line);
                    lines.push(String::from_utf8_lossy(&line).trim_end().to_string());
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => self.stdout_done = true,
            }
        }
        lines
    }

    /// Waits (at most `timeout`, and never past the process's deadline) for a stdout line for which
    /// `pred` is true, and returns it. Panics if the process ends or time runs out first.
    pub fn wait_for_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let until = (Instant::now() + timeout).min(self.deadline);
        loop {
            let now = Instant::now();
            if now >= until {
                break;
            }
            match self.lines.recv_timeout(until - now) {
                Ok(line) => {
                    self.stdout.extend_from_slice(&line);
                    let text = String::from_utf8_lossy(&line).trim_end().to_string();
                    if pred(&text) {
                        return text;
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    self.stdout_done = true;
                    break;
                }
            }
        }
        let why = if self.stdout_done {
            "closed its stdout"
        } else {
            "timed out"
        };
        // Give an exiting process a moment for its exit status, then kill it.
        let out = self.finish_inner(Duration::from_secs(2), false);
        panic!(
            "waiting for a line from `{}`: it {why} first (exit status {})\n--- stdout (tail):\n{}\n\
             --- stderr (tail):\n{}",
            out.what,
            out.status,
            tail(&out.stdout_str(), 16 * 1024),
            tail(&out.stderr_str(), 16 * 1024)
        );
    }

    /// Whether the process has exited (without collecting its output).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_some(),
            None => true,
        }
    }

    /// Waits for the process to exit (killing it at its deadline, which is a test failure) and
    /// returns everything it printed.
    pub fn finish(mut self) -> CmdOutput {
        let grace = self.deadline.saturating_duration_since(Instant::now());
        self.finish_inner(grace, true)
    }

    /// Waits up to `wait_at_most` for the exit, then kills the process group; with
    /// `panic_on_kill`, having to kill it is a test failure.
    fn finish_inner(&mut self, wait_at_most: Duration, panic_on_kill: bool) -> CmdOutput {
        let mut child = self.child.take().expect("finish called twice");
        let until = Instant::now() + wait_at_most;
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= until {
                timed_out = true;
                kill_group(&child);
                break child.wait().expect("wait after kill");
            }
            thread::sleep(Duration::from_millis(20));
        };
        // Collect the rest of stdout. The reader ends at EOF; bound the wait in case a grandchild
        // still holds the pipe open.
        let drain_until = Instant::now() + Duration::from_secs(5);
        while !self.stdout_done {
            let now = Instant::now();
            if now >= drain_until {
                break;
            }
            match self.lines.recv_timeout(drain_until - now) {
                Ok(line) => self.stdout.extend_from_slice(&line),
                Err(RecvTimeoutError::Disconnected) => self.stdout_done = true,
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        let stderr = if self.stdout_done {
            self.stderr_reader
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default()
        } else {
            b"(stderr not collected: the output pipes stayed open)".to_vec()
        };
        if let Some(h) = self.stdin_writer.take() {
            if self.stdout_done {
                let _ = h.join();
            }
        }
        let out = CmdOutput {
            what: self.what.clone(),
            status,
            stdout: std::mem::take(&mut self.stdout),
            stderr,
            elapsed: self.started.elapsed(),
        };
        if timed_out && panic_on_kill {
            panic!(
                "`{}` did not finish within its deadline ({:?}) and was killed\n--- stdout (tail):\n\
                 {}\n--- stderr (tail):\n{}",
                out.what,
                self.deadline - self.started,
                tail(&out.stdout_str(), 16 * 1024),
                tail(&out.stderr_str(), 16 * 1024)
            );
        }
        out
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                kill_group(&child);
            }
            let _ = child.wait();
        }
    }
}

/// SIGKILL to the child's whole process group (it leads its own group, see `Background::spawn`).
fn kill_group(child: &Child) {
    // SAFETY: kill(2) on the process group our un-reaped child leads.
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion with `stdin` and a deadline; a command still running at the deadline is
/// killed and the test fails. Does not check the exit status: call `assert_success`.
pub fn run(cmd: Command, stdin: Option<Vec<u8>>, timeout: Duration) -> CmdOutput {
    Background::spawn(cmd, stdin, timeout).finish()
}

// ---------------------------------------------------------------------------------------------
// Real clients
// ---------------------------------------------------------------------------------------------

/// tests/clients/, where the client scripts and their node_modules live.
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Full path of `tool` on PATH; panics (a failure, not a skip) if it is missing.
pub fn require_tool(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` is not on PATH. The integration tests need it and do not skip: install the \
                 test dependencies with .ci/install-test-deps (CI runs it)"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs kcat with `args` (e.g. `["-b", &boot, "-L", "-J"]`) and optional stdin.
pub fn kcat(args: &[&str], stdin: Option<Vec<u8>>, timeout: Duration) -> CmdOutput {
    let mut cmd = Command::new(require_tool("kcat"));
    cmd.args(args);
    run(cmd, stdin, timeout)
}

fn python_command(script: &str, args: &[String]) -> Command {
    let interpreter = std::env::var("STROM_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    require_tool(&interpreter);
    let script_path = clients_dir().join(script);
    assert!(
        script_path.is_file(),
        "missing client script {}",
        script_path.display()
    );
    let mut cmd = Command::new(interpreter);
    // -u: unbuffered, so progress lines arrive while the script runs.
    cmd.arg("-u")
        .arg(script_path)
        .args(args)
        .current_dir(clients_dir())
        // Keep the source tree free of __pycache__ directories.
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// Runs `python3 tests/clients/SCRIPT ARGS...`. The scripts exit non-zero (with a hint on stderr)
/// when their Python module is missing, so a missing module fails the test.
pub fn python_client(script: &str, args: &[String], timeout: Duration) -> CmdOutput {
    run(python_command(script, args), None, timeout)
}

/// Like `python_client`, but returns while the script runs so the test can act on its progress
/// lines (e.g. restart the broker midway).
pub fn python_client_background(script: &str, args: &[String], timeout: Duration) -> Background {
    Background::spawn(python_command(script, args), None, timeout)
}

/// Runs `node tests/clients/SCRIPT ARGS...` with tests/clients/node_modules.
pub fn node_client(script: &str, args: &[String], timeout: Duration) -> CmdOutput {
    let node = require_tool("node");
    let kafkajs = clients_dir().join("node_modules/kafkajs/package.json");
    assert!(
        kafkajs.is_file(),
        "kafkajs is not installed in tests/clients/node_modules. The integration tests need it and \
         do not skip: run .ci/install-test-deps (CI runs it)"
    );
    let mut cmd = Command::new(node);
    cmd.arg(clients_dir().join(script))
        .args(args)
        .current_dir(clients_dir())
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1");
    run(cmd, None, timeout)
}

/// Converts `&str`-ish arguments for the client helpers.
pub fn args<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A topic name unique to this test, so a shared broker never mixes data between tests.
pub fn unique_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Reads a JSON number field of a client script's result, with a clear failure message.
pub fn json_u64(value: &serde_json::Value, field: &str) -> u64 {
    value
        .get(field)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("result has no unsigned integer field `{field}`: {value}"))
}

/// Asserts a client script's result reports no verification errors, printing them if it does.
pub fn assert_no_errors(result: &serde_json::Value) {
    let errors = result.get("errors").unwrap_or_else(|| {
        panic!("result has no `errors` field (the script's contract requires one): {result}")
    });
    assert_eq!(
        errors.as_array().map(Vec::len),
        Some(0),
        "the client reported errors: {errors}"
    );
}

// ---------------------------------------------------------------------------------------------
// Consumer groups (tests/groups_*.rs)
// ---------------------------------------------------------------------------------------------

/// One message written by `group_consumer.py produce`: its index and where it landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Produced {
    pub id: u64,
    pub partition: i32,
    pub offset: i64,
}

/// Produces messages `start..start + count` of `topic` (make_message(topic, i) from testdata.py)
/// with confluent-kafka, acks=all, message i to `to[i % to.len()]` (every partition when `to` is
/// empty). With `create`, creates the topic with `partitions` partitions first. Returns where each
/// message landed, after checking all were acknowledged.
pub fn group_produce(
    broker: &Broker,
    topic: &str,
    partitions: u32,
    start: u64,
    count: u64,
    create: bool,
    to: &[i32],
) -> Vec<Produced> {
    let mut script_args = args([
        "produce",
        "--bootstrap",
        &broker.bootstrap(),
        "--topic",
        topic,
        "--partitions",
        &partitions.to_string(),
        "--start",
        &start.to_string(),
        "--count",
        &count.to_string(),
    ]);
    if create {
        script_args.push("--create".into());
    }
    if !to.is_empty() {
        script_args.push("--to-partitions".into());
        script_args.push(to.iter().map(i32::to_string).collect::<Vec<_>>().join(","));
    }
    let out = python_client("group_consumer.py", &script_args, CLIENT_TIMEOUT);
    out.assert_success();
    let result = out.result_json();
    assert_no_errors(&result);
    let produced: Vec<Produced> = result["positions"]
        .as_array()
        .unwrap_or_else(|| panic!("produce result has no positions: {result}"))
        .iter()
        .map(|row| Produced {
            id: row[0].as_u64().expect("id"),
            partition: row[1].as_i64().expect("partition") as i32,
            offset: row[2].as_i64().expect("offset"),
        })
        .collect();
    assert_eq!(
        produced.len() as u64,
        count,
        "acknowledged messages: {result}"
    );
    produced
}

/// Runs `group_consumer.py admin OPS...` (list, describe=G,..., offsets=G:T:N, delete=G,...,
/// create-partitions=T:N) and returns one JSON object per op, in order.
pub fn group_admin(broker: &Broker, ops: &[&str]) -> Vec<serde_json::Value> {
    let mut script_args = args(["admin", "--bootstrap", &broker.bootstrap()]);
    script_args.extend(ops.iter().map(|op| op.to_string()));
    let out = python_client("group_consumer.py", &script_args, CLIENT_TIMEOUT);
    out.assert_success();
    assert_no_errors(&out.result_json());
    let mut lines = out.json_lines();
    lines.pop();
    assert_eq!(lines.len(), ops.len(), "one answer per admin op: {lines:?}");
    lines
}

/// Which client library a `GroupMember` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupClient {
    /// tests/clients/group_consumer.py consume (confluent-kafka / librdkafka).
    Confluent,
    /// tests/clients/kafka_python_group.py consume.
    KafkaPython,
}

/// A group consumer running as its own process, whose JSON event lines (see
/// tests/clients/group_consumer.py) are read as they arrive. It stops when its stop file appears
/// (`stop`), on its own stop condition, or when killed.
pub struct GroupMember {
    pub name: String,
    proc: Option<Background>,
    stop_file: PathBuf,
    /// Every event line so far, parsed.
    pub events: Vec<serde_json::Value>,
    /// The current assignment (eager protocol: the latest `assigned`), `None` after `revoked`
    /// and before the first `assigned`.
    pub assignment: Option<Vec<i32>>,
    /// Member id reported with the latest assignment.
    pub member_id: String,
    /// When the assignment last changed (assigned or revoked).
    pub changed_at: Instant,
    /// (partition, offset, id) of every message consumed, in order.
    pub messages: Vec<(i32, i64, u64)>,
    /// Latest committed offset per partition this consumer reported.
    pub committed: BTreeMap<i32, i64>,
    /// The result line, once the process has finished.
    pub result: Option<serde_json::Value>,
    pub killed: bool,
}

impl GroupMember {
    /// Starts a consumer of `topic` in `group`; `extra` are more script options (e.g.
    /// `["--commit", "auto"]`). `dir` holds the stop file.
    pub fn spawn(
        client: GroupClient,
        name: &str,
        broker: &Broker,
        topic: &str,
        group: &str,
        dir: &Path,
        extra: &[&str],
    ) -> GroupMember {
        let stop_file = dir.join(format!("stop-{name}"));
        let script = match client {
            GroupClient::Confluent => "group_consumer.py",
            GroupClient::KafkaPython => "kafka_python_group.py",
        };
        let mut script_args = args([
            "consume",
            "--bootstrap",
            &broker.bootstrap(),
            "--topic",
            topic,
            "--group",
            group,
            "--client-id",
            name,
            "--stop-file",
            &stop_file.display().to_string(),
        ]);
        script_args.extend(extra.iter().map(|s| s.to_string()));
        if !extra.contains(&"--timeout") {
            script_args.extend(args(["--timeout", "90"]));
        }
        GroupMember {
            name: name.to_string(),
            proc: Some(python_client_background(
                script,
                &script_args,
                CLIENT_TIMEOUT,
            )),
            stop_file,
            events: Vec::new(),
            assignment: None,
            member_id: String::new(),
            changed_at: Instant::now(),
            messages: Vec::new(),
            committed: Default::default(),
            result: None,
            killed: false,
        }
    }

    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }

    /// Reads the lines that arrived (waiting at most `wait` for the first).
    pub fn pump(&mut self, wait: Duration) {
        let Some(proc) = self.proc.as_mut() else {
            return;
        };
        for line in proc.new_lines(wait) {
            self.absorb(&line);
        }
    }

    fn absorb(&mut self, line: &str) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        match event["event"].as_str() {
            Some("assigned") => {
                let partitions = event["partitions"]
                    .as_array()
                    .map(|a| a.iter().map(|p| p.as_i64().unwrap() as i32).collect())
                    .unwrap_or_default();
                self.assignment = Some(partitions);
                self.member_id = event["member"].as_str().unwrap_or_default().to_string();
                self.changed_at = Instant::now();
            }
            Some("revoked") | Some("lost") => {
                self.assignment = None;
                self.changed_at = Instant::now();
            }
            Some("msg") => self.messages.push((
                event["p"].as_i64().unwrap() as i32,
                event["o"].as_i64().unwrap(),
                event["id"].as_u64().unwrap_or(u64::MAX),
            )),
            Some("committed") => {
                if let Some(offsets) = event["offsets"].as_object() {
                    for (p, o) in offsets {
                        self.committed
                            .insert(p.parse().unwrap(), o.as_i64().unwrap());
                    }
                }
            }
            Some(_) => {}
            None => {
                if event.get("mode").is_some() {
                    self.result = Some(event.clone());
                }
            }
        }
        self.events.push(event);
    }

    /// Asks the consumer to stop (it commits first when its mode says so).
    pub fn stop(&self) {
        fs::write(&self.stop_file, b"stop").expect("write stop file");
    }

    /// SIGKILLs the consumer: no LeaveGroup, no commit; the group only notices by session timeout.
    pub fn kill9(&mut self) {
        self.pump(Duration::ZERO);
        let proc = self.proc.take().expect("consumer already finished");
        proc.signal(libc::SIGKILL);
        let out = proc.finish();
        self.absorb_rest(&out);
        self.killed = true;
        self.assignment = None;
    }

    /// Waits for the process to exit and absorbs the rest of its output; returns its output.
    pub fn finish(&mut self) -> CmdOutput {
        self.pump(Duration::ZERO);
        let proc = self.proc.take().expect("consumer already finished");
        let out = proc.finish();
        self.absorb_rest(&out);
        out
    }

    /// `finish`, then asserts a clean exit and an error-free result.
    pub fn finish_ok(&mut self) -> serde_json::Value {
        let out = self.finish();
        out.assert_success();
        let result = out.result_json();
        assert_no_errors(&result);
        result
    }

    fn absorb_rest(&mut self, out: &CmdOutput) {
        // `events` holds the parsed prefix of stdout; parse what came after it.
        let seen = self.events.len();
        let lines: Vec<String> = out
            .stdout_str()
            .lines()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
            .map(str::to_string)
            .collect();
        for line in lines.iter().skip(seen) {
            self.absorb(line);
        }
    }

    /// One-line summary for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "{}: running={} killed={} assignment={:?} member={} consumed={} committed={:?}",
            self.name,
            self.is_running(),
            self.killed,
            self.assignment,
            self.member_id,
            self.messages.len(),
            self.committed
        )
    }
}

/// Pumps every running member until `pred` holds, panicking with every member's state after
/// `timeout`.
pub fn wait_for_members(
    members: &mut [GroupMember],
    timeout: Duration,
    what: &str,
    pred: impl Fn(&[GroupMember]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        for m in members.iter_mut() {
            m.pump(Duration::from_millis(10));
        }
        if pred(members) {
            return;
        }
        if Instant::now() >= deadline {
            let states: Vec<String> = members.iter().map(GroupMember::describe).collect();
            panic!(
                "timed out after {timeout:?} waiting for {what}; members:\n{}",
                states.join("\n")
            );
        }
    }
}

/// Waits until every running member has an assignment, `pred` holds for those assignments, and no
/// assignment changed for `quiet` (so the rebalance is over, not half-propagated).
pub fn wait_for_settled_assignment(
    members: &mut [GroupMember],
    timeout: Duration,
    quiet: Duration,
    what: &str,
    pred: impl Fn(&[&GroupMember]) -> bool,
) {
    wait_for_members(members, timeout, what, |ms| {
        let running: Vec<&GroupMember> = ms.iter().filter(|m| m.is_running()).collect();
        running.iter().all(|m| m.assignment.is_some())
            && running.iter().all(|m| m.changed_at.elapsed() >= quiet)
            && pred(&running)
    });
}

/// After a rebalance settled, the broker's view (DescribeGroups) must match the clients': Stable,
/// the range assignor, exactly the running members, each with the assignment its client reported.
pub fn assert_group_matches_members(
    broker: &Broker,
    group: &str,
    topic: &str,
    members: &[GroupMember],
) {
    let answer = &group_admin(broker, &[&format!("describe={group}")])[0];
    let described = &answer["groups"][group];
    assert_eq!(
        described["state"], "STABLE",
        "DescribeGroups after the rebalance settled: {described}"
    );
    assert_eq!(described["assignor"], "range", "{described}");
    let broker_view: BTreeMap<String, Vec<i32>> = described["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members in {described}"))
        .iter()
        .map(|m| {
            let partitions = m["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|tp| {
                    assert_eq!(tp[0], topic, "assignment of another topic: {m}");
                    tp[1].as_i64().unwrap() as i32
                })
                .collect();
            (m["member_id"].as_str().unwrap().to_string(), partitions)
        })
        .collect();
    let client_view: BTreeMap<String, Vec<i32>> = members
        .iter()
        .filter(|m| m.is_running())
        .map(|m| {
            (
                m.member_id.clone(),
                m.assignment.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        broker_view, client_view,
        "DescribeGroups (left) and the consumers' on_assign (right) disagree"
    );
}
