//! The instruction-count regression test of the broker's request path.
//!
//! Wall-clock throughput is noise on shared machines; the number of instructions a fixed
//! workload executes is not. This test runs `strom bench-request-path` (a fixed produce and
//! fetch workload dispatched in-process through `strom_server::handlers::dispatch` on a
//! one-shard broker with the real storage engine; see src/request_path_bench.rs) under
//! valgrind's callgrind, which counts the instructions of each phase between client-request
//! markers, and fails when instructions per message of produce or fetch exceed the committed
//! baseline (tests/baselines/instruction_count.json) by more than its margin.
//!
//! The baseline belongs to the debug build of `strom` (what CI builds). Updating it is a
//! deliberate act, with the reason in the commit message:
//!
//! ```sh
//! cargo build --bin strom && STROM_UPDATE_INSTRUCTION_BASELINE=1 cargo test --test instruction_count
//! ```
//!
//! Needs valgrind (Debian package `valgrind`, installed by .ci/install-test-deps); without it the
//! test fails (it never skips).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{require_tool, run, strom_bin};
use serde_json::{json, Value};

/// Environment variable that turns the test into the baseline's update.
const UPDATE_ENV: &str = "STROM_UPDATE_INSTRUCTION_BASELINE";
/// Deadline of the callgrind run (it takes well under a minute on CI's machines).
const CALLGRIND_TIMEOUT: Duration = Duration::from_secs(600);
/// The phases the driver marks, in the dump files' `Trigger: Client Request: <phase>` lines.
const PHASES: [&str; 2] = ["produce", "fetch"];

fn baseline_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/baselines/instruction_count.json")
}

/// The workload of the baseline: the same flags every run.
struct Workload {
    messages: u64,
    records_per_batch: u64,
    value_bytes: u64,
    warmup_batches: u64,
}

impl Workload {
    fn from_baseline(baseline: &Value) -> Workload {
        let field = |name: &str| {
            baseline["workload"][name]
                .as_u64()
                .unwrap_or_else(|| panic!("baseline workload.{name} missing: {baseline}"))
        };
        Workload {
            messages: field("messages"),
            records_per_batch: field("records_per_batch"),
            value_bytes: field("value_bytes"),
            warmup_batches: field("warmup_batches"),
        }
    }

    fn args(&self, log_dir: &Path) -> Vec<String> {
        vec![
            "bench-request-path".into(),
            "--messages".into(),
            self.messages.to_string(),
            "--records-per-batch".into(),
            self.records_per_batch.to_string(),
            "--value-bytes".into(),
            self.value_bytes.to_string(),
            "--warmup-batches".into(),
            self.warmup_batches.to_string(),
            "--log-dir".into(),
            log_dir.display().to_string(),
        ]
    }
}

/// One callgrind run's figures.
struct Measured {
    /// Phase → instructions (Ir) in the phase.
    instructions: BTreeMap<String, u64>,
    /// Phase → messages the phase moved.
    messages: BTreeMap<String, u64>,
    profile: String,
}

impl Measured {
    fn per_message(&self, phase: &str) -> f64 {
        self.instructions[phase] as f64 / self.messages[phase] as f64
    }
}

/// `(trigger, instructions)` of one callgrind dump file: its `desc: Trigger: ...` text and its
/// `summary:` (the counter callgrind keeps; `totals:` as a fallback) of the first event, Ir.
fn parse_dump(text: &str) -> Option<(String, u64)> {
    let mut trigger = None;
    let mut totals = None;
    let mut summary = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("desc: Trigger: ") {
            trigger = Some(rest.trim().to_string());
        } else if let Some(rest) = line.strip_prefix("totals:") {
            totals = rest.split_whitespace().next()?.parse().ok();
        } else if let Some(rest) = line.strip_prefix("summary:") {
            summary = rest.split_whitespace().next()?.parse().ok();
        }
    }
    Some((trigger?, summary.or(totals)?))
}

fn measure(workload: &Workload) -> Measured {
    let valgrind = require_tool("valgrind");
    let dir = tempfile::tempdir().expect("tempdir");
    let log_dir = dir.path().join("log");
    let out_file = dir.path().join("callgrind.out");
    let mut cmd = Command::new(valgrind);
    cmd.arg("--tool=callgrind")
        // Process and broker start run uninstrumented (fast); the driver starts
        // instrumentation for its workload and zeroes/dumps the counters around each phase.
        .arg("--instr-atstart=no")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg("--dump-instr=no")
        .arg("--dump-line=no")
        .arg(strom_bin())
        .args(workload.args(&log_dir))
        .env("STROM_LOG", "warn");
    let out = run(cmd, Some(Vec::new()), CALLGRIND_TIMEOUT);
    out.assert_success();
    let summary: Value = out
        .stdout_str()
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no summary line from the driver:\n{}", out.stdout_str()));
    assert_eq!(
        summary["on_valgrind"], true,
        "the driver's client requests did not reach valgrind (not x86-64?): {summary}"
    );

    let mut instructions = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path()).expect("read the output dir") {
        let path = entry.expect("dir entry").path();
        let is_dump = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("callgrind.out"));
        if !is_dump {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a callgrind dump");
        if let Some((trigger, count)) = parse_dump(&text) {
            if let Some(phase) = trigger.strip_prefix("Client Request: ") {
                instructions.insert(phase.to_string(), count);
            }
        }
    }
    let messages = BTreeMap::from([
        (
            "produce".to_string(),
            summary["produce_messages"]
                .as_u64()
                .expect("produce_messages"),
        ),
        (
            "fetch".to_string(),
            summary["fetch_messages"].as_u64().expect("fetch_messages"),
        ),
    ]);
    for phase in PHASES {
        assert!(
            instructions.get(phase).is_some_and(|&n| n > 0),
            "no instruction count for phase {phase} in the callgrind dumps: {instructions:?}"
        );
        assert!(messages[phase] > 0, "{summary}");
    }
    Measured {
        instructions,
        messages,
        profile: summary["profile"].as_str().expect("profile").to_string(),
    }
}

fn write_baseline(baseline: &Value, measured: &Measured) {
    let mut updated = baseline.clone();
    updated["profile"] = json!(measured.profile);
    for phase in PHASES {
        // One decimal: the count is per message of thousands, finer digits are noise.
        let per_message = (measured.per_message(phase) * 10.0).round() / 10.0;
        updated["instructions_per_message"][phase] = json!(per_message);
    }
    let text = serde_json::to_string_pretty(&updated).expect("serialize the baseline") + "\n";
    std::fs::write(baseline_path(), text).expect("write the baseline");
}

#[test]
fn request_path_instructions_per_message_stay_within_the_baseline() {
    let path = baseline_path();
    let baseline: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let workload = Workload::from_baseline(&baseline);
    let measured = measure(&workload);
    for phase in PHASES {
        eprintln!(
            "{phase}: {} instructions for {} messages = {:.1} per message",
            measured.instructions[phase],
            measured.messages[phase],
            measured.per_message(phase)
        );
    }
    if std::env::var_os(UPDATE_ENV).is_some_and(|v| v == "1") {
        write_baseline(&baseline, &measured);
        eprintln!(
            "updated {}: commit it with the reason for the change",
            path.display()
        );
        return;
    }

    let profile = baseline["profile"].as_str().expect("baseline profile");
    assert_eq!(
        measured.profile, profile,
        "the baseline was measured on a {profile} build of strom but this one is {}; run the \
         test with the {profile} binary (STROM_TEST_BIN) or update the baseline",
        measured.profile
    );
    let margin_percent = baseline["margin_percent"]
        .as_f64()
        .expect("baseline margin_percent");
    let mut failures = Vec::new();
    for phase in PHASES {
        let allowed = baseline["instructions_per_message"][phase]
            .as_f64()
            .unwrap_or_else(|| panic!("baseline instructions_per_message.{phase} missing"));
        let now = measured.per_message(phase);
        let change_percent = (now / allowed - 1.0) * 100.0;
        eprintln!(
            "{phase}: baseline {allowed:.1}, now {now:.1} instructions per message ({change_percent:+.2}%, margin {margin_percent}%)"
        );
        if change_percent > margin_percent {
            failures.push(format!(
                "{phase}: {now:.1} instructions per message, {change_percent:+.2}% over the \
                 baseline {allowed:.1} (margin {margin_percent}%)"
            ));
        } else if change_percent < -margin_percent {
            eprintln!(
                "note: {phase} is {:.2}% below the baseline; update the baseline so the gain is \
                 kept ({UPDATE_ENV}=1 cargo test --test instruction_count)",
                -change_percent
            );
        }
    }
    assert!(
        failures.is_empty(),
        "the request path got more expensive:\n  {}\nIf the cost is intended, update {} \
         deliberately ({UPDATE_ENV}=1 cargo test --test instruction_count) and give the \
         reason in the commit message.",
        failures.join("\n  "),
        path.display()
    );
}

#[test]
fn callgrind_dumps_parse() {
    let dump = "version: 1\ncreator: callgrind-3.19.0\npid: 42\ncmd: strom\npart: 2\n\n\
                desc: I1 cache:\ndesc: Timerange: Basic block 10 - 20\n\
                desc: Trigger: Client Request: fetch\n\npositions: line\nevents: Ir\n\
                summary: 1234567\n\nfn=(1) main\n0 5\n\ntotals: 1234567\n";
    assert_eq!(
        parse_dump(dump),
        Some(("Client Request: fetch".to_string(), 1_234_567))
    );
    assert_eq!(parse_dump("events: Ir\nsummary: 5\n"), None);
}
