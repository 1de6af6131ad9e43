//! One `strom broker start` child of `strom cluster up`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use super::plan::BrokerPlan;

/// How much of a broker's output file is read to show its last lines: enough for a panic
/// message or a config error with context, without reading a long log whole.
const TAIL_READ_BYTES: u64 = 16 * 1024;

/// A running broker process.
pub struct BrokerProcess {
    pub plan: BrokerPlan,
    child: Child,
    /// Its exit status once reaped.
    exited: Option<ExitStatus>,
    /// Whether its exiting on its own (not stopped by `cluster up`) was reported already.
    pub exit_reported: bool,
}

impl BrokerProcess {
    /// Starts `strom_exe broker start --config <its properties> [--override ...]` with stdout
    /// and stderr appended to its output file.
    ///
    /// Must be called from a thread that lives as long as the cluster (the main thread): the
    /// child is asked to receive SIGTERM when that thread ends (`PR_SET_PDEATHSIG`), so a
    /// `cluster up` that is killed outright does not leave brokers running. The child gets its
    /// own process group, so a Ctrl-C in the terminal reaches only `cluster up`, which stops
    /// the brokers in order (brokers first, ZooKeeper last).
    pub fn spawn(
        strom_exe: &Path,
        plan: &BrokerPlan,
        overrides: &[String],
    ) -> std::io::Result<Self> {
        let output = File::create(&plan.output_path)?;
        let mut command = Command::new(strom_exe);
        command
            .args(["broker", "start", "--config"])
            .arg(&plan.config_path);
        for text in overrides {
            command.arg("--override").arg(text);
        }
        command
            // The output is a file: no terminal colour codes in it.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .process_group(0);
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2),
        // which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        Ok(Self {
            plan: plan.clone(),
            child,
            exited: None,
            exit_reported: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended (reaping it), `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            // An error here means the child was already reaped, which only this type does.
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    /// Sends `signal` unless the process has already been reaped (its pid may be reused).
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.exit_status().is_some() {
            return;
        }
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        // SAFETY: kill(2) on our own child, which is not reaped yet (checked above), so the pid
        // still names it.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// The last `count` lines of its output file.
    pub fn last_output_lines(&self, count: usize) -> Vec<String> {
        read_tail(&self.plan.output_path)
            .map(|text| last_lines(&text, count))
            .unwrap_or_default()
    }
}

/// How an exit status reads to a person: `exit code 1` or `killed by signal 9`.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

fn read_tail(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(TAIL_READ_BYTES)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `count` non-empty lines of `text`, in order.
pub fn last_lines(text: &str, count: usize) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .rev()
        .filter(|line| !line.trim().is_empty())
        .take(count)
        .map(str::to_owned)
        .collect();
    lines.reverse();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_order_and_skips_blank_lines() {
        assert_eq!(last_lines("a\nb\n\nc\n\n", 2), vec!["b", "c"]);
        assert_eq!(last_lines("a\n", 5), vec!["a"]);
        assert!(last_lines("", 3).is_empty());
    }

    #[test]
    fn exits_are_described_by_code_or_signal() {
        assert_eq!(describe_exit(ExitStatus::from_raw(1 << 8)), "exit code 1");
        assert_eq!(describe_exit(ExitStatus::from_raw(9)), "killed by signal 9");
    }
}
