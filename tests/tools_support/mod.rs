//! Helpers for the tests of the `strom` user tools (tests/tools_*.rs): run a tools command
//! against a broker and check its output and its one-line errors.

#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use crate::common::{run, strom_bin, Background, Broker, CmdOutput};

/// Deadline of one tools command.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// `strom ARGS... --brokers BROKER` with empty stdin.
pub fn strom(broker: &Broker, args: &[&str]) -> CmdOutput {
    strom_stdin(broker, args, "")
}

/// `strom ARGS... --brokers BROKER` with `stdin`.
pub fn strom_stdin(broker: &Broker, args: &[&str], stdin: &str) -> CmdOutput {
    let mut cmd = strom_command(args);
    cmd.args(["--brokers", &broker.bootstrap()]);
    run(cmd, Some(stdin.as_bytes().to_vec()), TOOL_TIMEOUT)
}

/// `strom ARGS...` as given (no --brokers added).
pub fn strom_raw(args: &[&str]) -> CmdOutput {
    run(strom_command(args), Some(Vec::new()), TOOL_TIMEOUT)
}

/// `strom ARGS... --brokers BROKER` running in the background.
pub fn strom_background(broker: &Broker, args: &[&str], timeout: Duration) -> Background {
    let mut cmd = strom_command(args);
    cmd.args(["--brokers", &broker.bootstrap()]);
    Background::spawn(cmd, None, timeout)
}

/// `strom ARGS...` as given (no --brokers added), running in the background.
pub fn strom_raw_background(args: &[&str], timeout: Duration) -> Background {
    Background::spawn(strom_command(args), None, timeout)
}

fn strom_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(strom_bin());
    cmd.args(args)
        .env_remove("STROM_BROKERS")
        .env("RUST_BACKTRACE", "1");
    cmd
}

/// Asserts the command failed with exit code `code` and printed exactly one stderr line,
/// `error: ...` containing `needle`, and no panic or backtrace.
pub fn assert_one_line_error(out: &CmdOutput, code: i32, needle: &str) {
    let stderr = out.stderr_str();
    assert_eq!(
        out.status.code(),
        Some(code),
        "`{}` should exit with {code}\nstdout: {}\nstderr: {stderr}",
        out.what,
        out.stdout_str()
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "`{}` should print one error line, printed:\n{stderr}",
        out.what
    );
    assert!(lines[0].starts_with("error: "), "`{}`: {stderr}", out.what);
    assert!(
        lines[0].contains(needle),
        "`{}`: expected '{needle}' in: {stderr}",
        out.what
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "`{}`: {stderr}",
        out.what
    );
}

/// Creates a topic with the tools and checks it worked.
pub fn create_topic(broker: &Broker, topic: &str, partitions: u32) {
    let partitions = partitions.to_string();
    strom(
        broker,
        &["topic", "create", topic, "--partitions", &partitions],
    )
    .assert_success();
}

/// Non-empty stdout lines.
pub fn lines(out: &CmdOutput) -> Vec<String> {
    out.stdout_str()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Rows of a whitespace-aligned table printed by the tools (header included), split into cells.
pub fn table_rows(out: &CmdOutput) -> Vec<Vec<String>> {
    lines(out)
        .iter()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}
