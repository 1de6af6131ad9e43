//! Every tools command answers an unreachable broker, an unknown topic and bad arguments with one
//! `error: ...` line on stderr and a non-zero exit code, never a panic or backtrace.

mod common;
mod tools_support;

use common::*;
use tools_support::*;

#[test]
fn unreachable_broker() {
    // A port nobody listens on.
    let dead = format!("127.0.0.1:{}", pick_free_port());
    let commands: Vec<Vec<&str>> = vec![
        vec!["topic", "list"],
        vec!["topic", "create", "t"],
        vec!["produce", "t"],
        vec!["consume", "t"],
        vec!["group", "list"],
        vec!["group", "describe", "g"],
        vec!["cluster", "info"],
        vec!["bench", "produce", "--count", "10", "--no-progress"],
        vec!["bench", "consume", "--no-progress"],
    ];
    for command in commands {
        let mut args = command.clone();
        args.extend(["--brokers", dead.as_str()]);
        let out = strom_raw(&args);
        assert_one_line_error(&out, 1, &format!("cannot connect to broker {dead}"));
    }
}

#[test]
fn unknown_topic() {
    let broker = Broker::start(BrokerOpts::new());
    let missing = unique_topic("no-such-topic");
    let needle = format!("unknown topic '{missing}'");
    for command in [
        vec!["produce", missing.as_str()],
        vec!["consume", missing.as_str(), "-n", "1"],
        vec!["topic", "describe", missing.as_str()],
        vec!["topic", "delete", missing.as_str()],
        vec![
            "topic",
            "add-partitions",
            missing.as_str(),
            "--partitions",
            "3",
        ],
        vec![
            "bench",
            "consume",
            "--topic",
            missing.as_str(),
            "--no-progress",
        ],
        vec![
            "group",
            "reset-offsets",
            "g",
            "--topic",
            missing.as_str(),
            "--to-earliest",
        ],
    ] {
        let out = strom_stdin(&broker, &command, "a line\n");
        assert_one_line_error(&out, 1, &needle);
    }
    // A partition the topic does not have.
    let topic = unique_topic("tools-errors");
    create_topic(&broker, &topic, 1);
    assert_one_line_error(
        &strom_stdin(&broker, &["produce", &topic, "--partition", "7"], "x\n"),
        1,
        "has no partition 7",
    );
    assert_one_line_error(
        &strom(&broker, &["consume", &topic, "--partition", "7", "-n", "1"]),
        1,
        "has no partition 7",
    );
    // A line without the key separator.
    assert_one_line_error(
        &strom_stdin(
            &broker,
            &["produce", &topic, "--key-separator", ":"],
            "k:v\nnokey\n",
        ),
        1,
        "line 2 has no key separator",
    );
}

#[test]
fn bad_arguments() {
    // Checked by the tools themselves (exit 1).
    assert_one_line_error(
        &strom_raw(&["topic", "list", "--brokers", "localhost"]),
        1,
        "must be host:port",
    );
    assert_one_line_error(
        &strom_raw(&["topic", "list", "--brokers", "localhost:0"]),
        1,
        "port in 1-65535",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().expect("utf8 path");
    assert_one_line_error(
        &strom_raw(&["bench", "compare", missing, missing]),
        1,
        "cannot read",
    );
    // Rejected by the argument parser (exit 2, one line).
    for args in [
        vec!["topic", "create"],
        vec!["topic", "create", "t", "--partitions", "0"],
        vec!["topic", "create", "t", "--config", "novalue"],
        vec!["produce", "t", "--acks", "7"],
        vec!["consume", "t", "-n", "0"],
        vec!["consume", "t", "--group", "g", "--partition", "1"],
        vec!["group", "reset-offsets", "g", "--topic", "t"],
        vec!["bench", "produce", "--compression", "brotli"],
        vec!["bench", "compare", "only-one.json"],
        vec![
            "bench",
            "compare",
            "a.json",
            "b.json",
            "--tolerance",
            "lots",
        ],
        vec!["no-such-command"],
    ] {
        let out = strom_raw(&args);
        assert_one_line_error(&out, 2, "");
    }
}
