//! A local Apache ZooKeeper server as a child process, from the machine's install (Debian's
//! `zookeeper` package: `/usr/share/java/zookeeper.jar`), for `strom cluster up` and tests.
//!
//! STAND-IN: branch cluster-coord owns this file and writes the real one with the same API
//! (`start`, `port`, `connect_string`, `stop`, Drop kills it). This minimal version exists only so
//! `strom cluster up` builds and can be tested before that branch lands; on merge, take
//! cluster-coord's version of this file.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's package installs ZooKeeper's jar (its manifest names the dependencies).
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// How long a starting server may take to answer `ruok`: a JVM start on a loaded 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

/// Why ZooKeeper could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ZooKeeperError {
    #[error("ZooKeeper is not installed ({ZOOKEEPER_JAR} missing; on Debian: apt-get install zookeeper)")]
    NotInstalled,
    #[error("cannot start ZooKeeper: {0}")]
    Io(#[from] std::io::Error),
    #[error("ZooKeeper exited during start ({status}); see {log}")]
    Exited { status: String, log: PathBuf },
    #[error("ZooKeeper did not answer on port {port} within {seconds} s; see {log}")]
    Timeout {
        port: u16,
        seconds: u64,
        log: PathBuf,
    },
}

/// A running ZooKeeper server; dropping it kills the process.
pub struct ZooKeeperProcess {
    child: Option<Child>,
    port: u16,
}

impl ZooKeeperProcess {
    /// Starts a standalone server with its data (and `zookeeper.log`) in `data_dir` on
    /// 127.0.0.1:`port` (0: a free port) and waits until it answers.
    pub fn start(data_dir: &Path, port: u16) -> Result<Self, ZooKeeperError> {
        if !Path::new(ZOOKEEPER_JAR).exists() {
            return Err(ZooKeeperError::NotInstalled);
        }
        fs::create_dir_all(data_dir)?;
        let data_dir = data_dir.canonicalize()?;
        let port = if port == 0 {
            TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
        } else {
            port
        };
        let config_path = data_dir.join("zoo.cfg");
        fs::write(
            &config_path,
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr\n",
                data_dir.display()
            ),
        )?;
        let log_path = data_dir.join("zookeeper.log");
        let log = fs::File::create(&log_path)?;
        let child = Command::new("java")
            .arg("-cp")
            .arg(ZOOKEEPER_JAR)
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut server = Self {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = server.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    server.child = None;
                    return Err(ZooKeeperError::Exited {
                        status: status.to_string(),
                        log: log_path,
                    });
                }
            }
            if answers_ruok(port) {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(ZooKeeperError::Timeout {
                    port,
                    seconds: START_TIMEOUT.as_secs(),
                    log: log_path,
                });
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, for `zookeeper.connect`.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ZooKeeperProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// ZooKeeper's `ruok` four-letter command answers `imok` once the server serves.
fn answers_ruok(port: u16) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"ruok")?;
        let mut answer = [0u8; 4];
        stream.read_exact(&mut answer)?;
        Ok(&answer == b"imok")
    };
    probe().unwrap_or(false)
}
