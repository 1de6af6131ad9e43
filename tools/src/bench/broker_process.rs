//! A broker the bench suite starts for itself: this same `strom` binary's `broker start` on a
//! free loopback port with a fresh log dir under the temp dir, and its CPU time read from
//! `/proc/<pid>/stat`.
//!
//! Dropping a [`BrokerProcess`] kills the broker if it still runs and removes its directory, so
//! a failed suite leaves nothing behind; [`BrokerProcess::stop`] stops it cleanly first.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{Client, ClientConfig};

/// How long a starting broker may take to answer a metadata request.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between readiness probes.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a clean stop may take before the broker is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes of the broker's log shown when it fails to start.
const LOG_TAIL_BYTES: usize = 4096;
/// Clock ticks per second of `/proc/<pid>/stat` times: USER_HZ, which Linux fixes at 100 on
/// every architecture the broker runs on (x86-64, arm64), whatever the kernel's HZ.
const USER_HZ: f64 = 100.0;

pub struct BrokerProcess {
    child: Option<Child>,
    dir: PathBuf,
    log_dir: PathBuf,
    log_path: PathBuf,
    bootstrap: String,
}

/// A fresh directory for one suite's broker, unique per process and start time.
fn fresh_dir() -> Result<PathBuf, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir =
        std::env::temp_dir().join(format!("strom-bench-suite-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// A port nobody listens on right now (the broker binds it a moment later; a clash shows as
/// the broker exiting with "address in use", reported with its log).
fn free_port() -> Result<u16, String> {
    let probe = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("find a free port: {e}"))?;
    probe
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("find a free port: {e}"))
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(LOG_TAIL_BYTES);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

impl BrokerProcess {
    /// Starts `strom broker start` (this executable) with `overrides` (`key=value`) and waits
    /// until it answers a metadata request.
    pub async fn start(overrides: &[String]) -> Result<BrokerProcess, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find the strom executable: {e}"))?;
        let dir = fresh_dir()?;
        let log_dir = dir.join("data");
        let log_path = dir.join("broker.log");
        let port = free_port()?;
        let bootstrap = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("create {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let mut command = Command::new(exe);
        command
            .args(["broker", "start", "--override"])
            .arg(format!("listeners=PLAINTEXT://{bootstrap}"))
            .arg("--override")
            .arg(format!("log.dirs={}", log_dir.display()))
            // No admin listener unless asked for (`--broker-override admin.listeners=...`):
            // benchmarks may run beside other brokers, which would hold the default port.
            .arg("--override")
            .arg("admin.listeners=");
        for item in overrides {
            command.arg("--override").arg(item);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .env("STROM_LOG", "warn")
            .spawn()
            .map_err(|e| format!("start the broker: {e}"))?;
        let mut broker = BrokerProcess {
            child: Some(child),
            dir,
            log_dir,
            log_path,
            bootstrap,
        };
        broker.wait_until_ready().await?;
        Ok(broker)
    }

    async fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut config = ClientConfig::new(&self.bootstrap).map_err(|e| e.to_string())?;
        config.retries_max = 0;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "the broker exited ({status}) before it served; its log:\n{}",
                        tail(&self.log_path)
                    ));
                }
            }
            // Connecting loads the cluster's metadata: the broker serves requests.
            if Client::connect(config.clone()).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the broker did not serve within {READY_TIMEOUT:?}; its log:\n{}",
                    tail(&self.log_path)
                ));
            }
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// User plus system CPU seconds the broker used so far (all its threads, io_uring workers
    /// included), or `None` when it cannot be read.
    pub fn cpu_secs(&self) -> Option<f64> {
        let pid = self.pid()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / USER_HZ)
    }

    /// Stops the broker cleanly (`strom broker stop`, i.e. SIGTERM and a wait), killing it if
    /// that fails, and removes its directory (on drop).
    pub fn stop(mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // The stop command waits until the pid is gone, and an exited child stays a zombie
        // until it is reaped: reap it here while the stop command runs.
        let mut stop_command = std::env::current_exe().ok().and_then(|exe| {
            Command::new(exe)
                .args(["broker", "stop", "--override"])
                .arg(format!("log.dirs={}", self.log_dir.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        });
        let deadline = Instant::now() + STOP_TIMEOUT;
        let outcome = loop {
            if let Ok(Some(_)) = child.try_wait() {
                break Ok(());
            }
            let stop_failed = match stop_command.as_mut().map(Child::try_wait) {
                None | Some(Err(_)) => true,
                Some(Ok(Some(status))) => !status.success(),
                Some(Ok(None)) => false,
            };
            if stop_failed || Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "the broker did not stop cleanly; killed it. Its log:\n{}",
                    tail(&self.log_path)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(mut command) = stop_command {
            let _ = command.wait();
        }
        outcome
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, in clock ticks. The command
/// name (field 2) is in parentheses and may hold spaces, so fields are counted after its `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        let stat = "4242 (strom (x) y) S 1 4242 4242 0 -1 4194560 5000 0 0 0 \
                    1234 567 0 0 20 0 3 0 100 1000000 2000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_cpu_ticks("4242 (strom) S 1"), None);
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_process_has_cpu_time() {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("procfs");
        assert!(parse_cpu_ticks(&stat).is_some(), "{stat}");
    }
}
