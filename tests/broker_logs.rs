//! Issue 12, logs people can read: a broker writing to a file (not a terminal) writes no ANSI
//! colour codes; `log.format=json` writes one JSON object per line; the start lists the settings
//! given; and a client refused over and over gets one log line a second per cause (with the count
//! of refusals it stands for), not one per request.

mod common;

use common::kafka_wire::Connection;
use common::{unique_topic, Broker, BrokerOpts};
use strom_engine::batch::build::build_batch;

/// Kafka's UNKNOWN_TOPIC_OR_PARTITION.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const REFUSED_PRODUCES: usize = 200;

#[test]
fn text_logs_carry_no_colour_and_repeated_refusals_are_summarised() {
    let broker = Broker::start(BrokerOpts::new().set("auto.create.topics.enable", "false"));
    let topic = unique_topic("logs-missing");
    let mut connection = Connection::open(&broker);
    for _ in 0..REFUSED_PRODUCES {
        let (error, _) = connection.produce(&topic, 0, build_batch(0, 1, 10, 0, -1, -1, -1));
        assert_eq!(error, UNKNOWN_TOPIC_OR_PARTITION);
    }
    let log = broker.log();
    assert!(
        !log.contains('\u{1b}'),
        "no escape codes in a log file:\n{log}"
    );
    assert!(
        log.lines()
            .any(|line| line.contains("configuration:")
                && line.contains("auto.create.topics.enable")),
        "the start lists the settings given:\n{log}"
    );
    let refused = log
        .lines()
        .filter(|line| line.contains("produce refused") && line.contains(&topic))
        .count();
    // The produces took well under a few seconds; one line per second per shard at most.
    assert!(
        (1..=10).contains(&refused),
        "{refused} lines for {REFUSED_PRODUCES} refused produces:\n{log}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let broker = Broker::start(BrokerOpts::new().set("log.format", "json"));
    let log = broker.log();
    let lines: Vec<&str> = log
        .lines()
        // The harness writes its own marker lines into the file.
        .filter(|line| !line.starts_with("=====") && !line.trim().is_empty())
        .collect();
    assert!(lines.len() >= 3, "the broker logged its start:\n{log}");
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(value["level"].is_string(), "{line}");
        assert!(value["fields"]["message"].is_string(), "{line}");
    }
}
