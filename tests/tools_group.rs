//! `strom consume --group` and `strom group list|describe|reset-offsets|delete` against a real
//! broker: committed offsets, lag, members and assignments, resets, and deletion.

mod common;
mod tools_support;

use std::time::{Duration, Instant};

use common::*;
use tools_support::*;

fn broker() -> Broker {
    Broker::start(BrokerOpts::new().set("group.initial.rebalance.delay.ms", 0))
}

/// (partition, current offset, log end offset, lag) rows of `group describe`.
fn offset_rows(out: &CmdOutput, topic: &str) -> Vec<(i32, String, i64, String)> {
    table_rows(out)
        .into_iter()
        .filter(|row| row.first().map(String::as_str) == Some(topic))
        .map(|row| {
            (
                row[1].parse().expect("partition"),
                row[2].clone(),
                row[3].parse().expect("log end offset"),
                row[4].clone(),
            )
        })
        .collect()
}

fn total_lag(out: &CmdOutput, topic: &str) -> i64 {
    offset_rows(out, topic)
        .iter()
        .map(|(_, _, _, lag)| lag.parse::<i64>().expect("lag"))
        .sum()
}

#[test]
fn group_commands() {
    let broker = broker();
    let topic = unique_topic("tools-group");
    let group = unique_topic("tools-g");
    create_topic(&broker, &topic, 2);
    let input: String = (0..10).map(|i| format!("k{i}:v{i}\n")).collect();
    strom_stdin(
        &broker,
        &["produce", &topic, "--key-separator", ":"],
        &input,
    )
    .assert_success();

    // A group consumer reads everything and commits on close.
    let out = strom(
        &broker,
        &[
            "consume",
            &topic,
            "--group",
            &group,
            "--from-beginning",
            "-n",
            "10",
        ],
    );
    out.assert_success();
    assert_eq!(lines(&out).len(), 10);

    let listed = strom(&broker, &["group", "list"]);
    listed.assert_success();
    let row = table_rows(&listed)
        .into_iter()
        .find(|r| r[0] == group)
        .unwrap_or_else(|| panic!("{}", listed.stdout_str()));
    assert_eq!(row[1..], ["Empty".to_string(), "consumer".to_string()]);

    let described = strom(&broker, &["group", "describe", &group]);
    described.assert_success();
    assert!(
        described
            .stdout_str()
            .starts_with(&format!("Group {group} is Empty with 0 members")),
        "{}",
        described.stdout_str()
    );
    let rows = offset_rows(&described, &topic);
    assert_eq!(rows.len(), 2, "{}", described.stdout_str());
    assert_eq!(rows.iter().map(|r| r.2).sum::<i64>(), 10);
    assert_eq!(total_lag(&described, &topic), 0);

    // New records show up as lag.
    strom_stdin(&broker, &["produce", &topic], "a\nb\nc\nd\ne\n").assert_success();
    assert_eq!(
        total_lag(&strom(&broker, &["group", "describe", &group]), &topic),
        5
    );

    // A second session resumes from the committed offsets.
    let out = strom(&broker, &["consume", &topic, "--group", &group, "-n", "5"]);
    out.assert_success();
    let mut resumed = lines(&out);
    resumed.sort();
    assert_eq!(resumed, vec!["a", "b", "c", "d", "e"]);

    // Reset: a dry run changes nothing; --execute does.
    let dry = strom(
        &broker,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
        ],
    );
    dry.assert_success();
    assert!(dry.stdout_str().contains("dry run"));
    assert_eq!(
        total_lag(&strom(&broker, &["group", "describe", &group]), &topic),
        0
    );
    strom(
        &broker,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
            "--execute",
        ],
    )
    .assert_success();
    assert_eq!(
        total_lag(&strom(&broker, &["group", "describe", &group]), &topic),
        15
    );
    strom(
        &broker,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-latest",
            "--execute",
        ],
    )
    .assert_success();
    strom(
        &broker,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--shift-by",
            "-2",
            "--execute",
        ],
    )
    .assert_success();
    let described = strom(&broker, &["group", "describe", &group]);
    let lags: Vec<String> = offset_rows(&described, &topic)
        .into_iter()
        .map(|r| r.3)
        .collect();
    assert_eq!(lags, vec!["2", "2"], "{}", described.stdout_str());
    strom(
        &broker,
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--partition",
            "0",
            "--to-offset",
            "1",
            "--execute",
        ],
    )
    .assert_success();
    let rows = offset_rows(&strom(&broker, &["group", "describe", &group]), &topic);
    assert_eq!(rows[0].1, "1");

    // With an active member: describe shows it and its assignment; resets and deletes are refused.
    let member = strom_background(
        &broker,
        &[
            "consume",
            &topic,
            "--group",
            &group,
            "--timeout-ms",
            "60000",
        ],
        Duration::from_secs(90),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let described = loop {
        let out = strom(&broker, &["group", "describe", &group]);
        if out.stdout_str().contains("is Stable with 1 members") {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "the member never became stable: {}",
            out.stdout_str()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let text = described.stdout_str();
    assert!(
        text.contains(&format!("{topic}-0,{topic}-1")),
        "assignment listed: {text}"
    );
    assert!(text.contains("strom-cli"), "client id listed: {text}");
    assert!(text.contains("assignor 'range'"), "{text}");
    assert_one_line_error(
        &strom(
            &broker,
            &[
                "group",
                "reset-offsets",
                &group,
                "--topic",
                &topic,
                "--to-earliest",
                "--execute",
            ],
        ),
        1,
        "stop its consumers",
    );
    assert_one_line_error(
        &strom(&broker, &["group", "delete", &group]),
        1,
        "NON_EMPTY_GROUP",
    );
    member.signal(libc::SIGINT);
    let out = member.finish();
    out.assert_success();

    // After the member left, the group can go.
    strom(&broker, &["group", "delete", &group]).assert_success();
    let listed = strom(&broker, &["group", "list"]);
    assert!(
        !table_rows(&listed).iter().any(|r| r[0] == group),
        "{}",
        listed.stdout_str()
    );
}

#[test]
fn kcat_group_is_described() {
    // A group run by librdkafka (kcat -G) shows up in `strom group describe` with its members'
    // assignments, decoded from the consumer protocol.
    let broker = broker();
    let topic = unique_topic("tools-kcat-group");
    let group = unique_topic("tools-kg");
    create_topic(&broker, &topic, 3);
    strom_stdin(&broker, &["produce", &topic], "1\n2\n3\n").assert_success();
    let mut cmd = std::process::Command::new(require_tool("kcat"));
    cmd.args([
        "-b",
        &broker.bootstrap(),
        "-G",
        &group,
        "-X",
        "auto.offset.reset=earliest",
        "-q",
        &topic,
    ]);
    let kcat_member = Background::spawn(cmd, None, Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let out = strom(&broker, &["group", "describe", &group]);
        let text = out.stdout_str();
        if text.contains("is Stable with 1 members")
            && text.contains(&format!("{topic}-0,{topic}-1,{topic}-2"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kcat's group never showed as stable with its assignment: {text}\n{}",
            out.stderr_str()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(kcat_member);
}

#[test]
fn max_messages_in_a_group_commits_only_what_was_printed() {
    // One poll returns more records than -n allows; the rest must be read by the next session.
    let broker = broker();
    let topic = unique_topic("tools-group-n");
    let group = unique_topic("tools-gn");
    create_topic(&broker, &topic, 1);
    let input: String = (0..6).map(|i| format!("v{i}\n")).collect();
    strom_stdin(&broker, &["produce", &topic], &input).assert_success();
    let mut read = Vec::new();
    for _ in 0..3 {
        let out = strom(
            &broker,
            &[
                "consume",
                &topic,
                "--group",
                &group,
                "--from-beginning",
                "-n",
                "2",
                "--timeout-ms",
                "10000",
            ],
        );
        out.assert_success();
        read.extend(lines(&out));
    }
    assert_eq!(read, vec!["v0", "v1", "v2", "v3", "v4", "v5"]);
}
