//! A `strom` broker running inside a network namespace of [`super::net::Network`]; it can be
//! killed, paused, resumed and restarted on the same data.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{die_with_parent, strom_bin};

/// The Kafka port every broker listens on (each has its own address, so they can share it).
pub const BROKER_PORT: u16 = 9092;
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct BrokerNode {
    pub id: u8,
    namespace: String,
    address: SocketAddr,
    log_dir: PathBuf,
    log_path: PathBuf,
    overrides: Vec<(String, String)>,
    child: Option<Child>,
    paused: bool,
    starts: u32,
}

impl BrokerNode {
    /// Starts broker `id` in `namespace`, listening on `address`, and waits until it accepts
    /// connections.
    pub fn start(
        id: u8,
        namespace: String,
        address: SocketAddr,
        dir: &Path,
        overrides: Vec<(String, String)>,
    ) -> BrokerNode {
        let log_dir = dir.join(format!("broker-{id}"));
        std::fs::create_dir_all(&log_dir).expect("create the broker's log dir");
        let mut node = BrokerNode {
            id,
            namespace,
            address,
            log_path: dir.join(format!("broker-{id}.log")),
            log_dir,
            overrides,
            child: None,
            paused: false,
            starts: 0,
        };
        node.launch();
        node
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn launch(&mut self) {
        self.starts += 1;
        let mut args: Vec<String> = vec![
            "netns".into(),
            "exec".into(),
            self.namespace.clone(),
            strom_bin().display().to_string(),
            "broker".into(),
            "start".into(),
        ];
        let mut overrides = vec![
            ("broker.id".to_string(), self.id.to_string()),
            (
                "listeners".to_string(),
                format!("PLAINTEXT://{}", self.address),
            ),
            ("log.dirs".to_string(), self.log_dir.display().to_string()),
        ];
        overrides.extend(self.overrides.iter().cloned());
        for (key, value) in overrides {
            args.push("--override".into());
            args.push(format!("{key}={value}"));
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open the broker log");
        writeln!(
            log,
            "===== nemesis: start #{} of broker {}",
            self.starts, self.id
        )
        .expect("write the broker log");
        let stdout = log.try_clone().expect("clone the log handle");
        // `ip netns exec` enters the namespace and execs strom: the child is the broker itself.
        let mut command = Command::new("ip");
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .env("RUST_BACKTRACE", "1");
        die_with_parent(&mut command);
        let child = command.spawn().expect("spawn ip netns exec strom");
        self.child = Some(child);
        self.paused = false;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "broker {} exited with {status} while starting; its log:\n{}",
                    self.id,
                    self.log_tail()
                );
            }
            if TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "broker {} did not listen on {} within {READY_TIMEOUT:?}; its log:\n{}",
                self.id,
                self.address,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("the broker is running");
        // SAFETY: kill(2) on our own child, not yet reaped, so its pid cannot be reused.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", child.id());
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = true;
    }

    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// Starts it again on the same data (after `kill9`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart after kill9");
        self.launch();
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let start = log.len().saturating_sub(16 * 1024);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        log[start..].to_string()
    }
}

impl Drop for BrokerNode {
    fn drop(&mut self) {
        if self.paused {
            self.resume();
        }
        self.kill9();
    }
}
