//! The nemesis checker catches each broken promise (tests/nemesis_support/checker.rs): these
//! feed it histories with one violation each, and a clean one.

mod common;
mod nemesis_support;

use nemesis_support::checker::{check, parse_event, value_of, Event};
use nemesis_support::schedule::schedule;

fn send(seq: u64, partition: i32) -> Event {
    Event::Send { seq, partition }
}

fn ack(seq: u64, partition: i32, offset: i64) -> Event {
    Event::Ack {
        seq,
        partition,
        offset,
    }
}

fn record(partition: i32, offset: i64, seq: u64) -> (i32, i64, String) {
    (partition, offset, value_of(seq))
}

/// Records 0..6 over two partitions (even seqs in 0, odd in 1), all acknowledged.
fn clean() -> (Vec<Event>, Vec<(i32, i64, String)>) {
    let mut events = Vec::new();
    let mut log = Vec::new();
    for seq in 0..6u64 {
        let partition = (seq % 2) as i32;
        let offset = (seq / 2) as i64;
        events.push(send(seq, partition));
        events.push(ack(seq, partition, offset));
        log.push(record(partition, offset, seq));
    }
    (events, log)
}

#[test]
fn a_clean_history_passes() {
    let (events, log) = clean();
    let report = check(&events, &log);
    assert_eq!(report.violations(), 0, "{}", report.summary());
    assert_eq!((report.sent, report.acknowledged), (6, 6));
}

#[test]
fn a_lost_acknowledged_record_is_caught() {
    let (events, mut log) = clean();
    log.retain(|r| r != &record(1, 2, 5));
    let report = check(&events, &log);
    assert_eq!(report.lost.len(), 1, "{}", report.summary());
}

#[test]
fn a_record_replaced_at_its_acknowledged_offset_is_lost() {
    let (mut events, mut log) = clean();
    // Truncated and overwritten: w-4's offset now holds w-6 (sent, never acknowledged).
    events.push(send(6, 0));
    log.retain(|r| r.0 != 0 || r.1 != 2);
    log.push(record(0, 2, 6));
    let report = check(&events, &log);
    assert_eq!(report.lost.len(), 1, "{}", report.summary());
}

#[test]
fn a_duplicate_is_caught() {
    let (events, mut log) = clean();
    log.push(record(0, 3, 4));
    let report = check(&events, &log);
    assert_eq!(report.duplicated.len(), 1, "{}", report.summary());
}

#[test]
fn reordering_within_a_partition_is_caught() {
    let (mut events, mut log) = clean();
    events.push(send(6, 0));
    events.push(send(8, 0));
    log.push(record(0, 3, 8));
    log.push(record(0, 4, 6));
    let report = check(&events, &log);
    assert_eq!(report.reordered.len(), 1, "{}", report.summary());
}

#[test]
fn a_record_never_written_is_caught_in_the_log_and_in_reads() {
    let (mut events, mut log) = clean();
    log.push((0, 3, "w-99".to_string()));
    events.push(Event::Read {
        partition: 1,
        offset: 9,
        value: "garbage".to_string(),
    });
    let report = check(&events, &log);
    assert_eq!(report.never_written.len(), 2, "{}", report.summary());
}

#[test]
fn a_read_record_that_a_failover_lost_is_caught() {
    let (mut events, log) = clean();
    events.push(send(6, 0));
    // A consumer read w-6 at 0@3, but the final log does not hold it (unacknowledged, so not
    // "lost": the read is the broken promise).
    events.push(Event::Read {
        partition: 0,
        offset: 3,
        value: value_of(6),
    });
    let report = check(&events, &log);
    assert_eq!(report.read_then_lost.len(), 1, "{}", report.summary());
    assert!(report.lost.is_empty());
}

#[test]
fn a_committed_offset_moving_backwards_is_caught() {
    let (mut events, log) = clean();
    events.push(Event::Commit {
        partition: 0,
        offset: 3,
        start: 10.0,
        end: 10.5,
    });
    // Read after that commit ended, yet older: backwards.
    events.push(Event::Assigned {
        partition: 0,
        committed: 1,
        start: 11.0,
    });
    // Read while a commit was still running: either answer is fine.
    events.push(Event::Commit {
        partition: 1,
        offset: 3,
        start: 20.0,
        end: 21.0,
    });
    events.push(Event::Assigned {
        partition: 1,
        committed: -1,
        start: 20.5,
    });
    let report = check(&events, &log);
    assert_eq!(report.commits_backwards.len(), 1, "{}", report.summary());
}

#[test]
fn history_lines_parse_and_a_torn_line_is_skipped() {
    let lines = [
        r#"{"op":"send","seq":3,"p":0,"t":1.5}"#,
        r#"{"op":"ack","seq":3,"p":0,"o":7,"t":1.6}"#,
        r#"{"op":"commit","p":0,"o":8,"start":2.0,"t":2.1}"#,
        r#"{"op":"assigned","p":0,"committed":-1001,"start":3.0,"t":3.1}"#,
        r#"{"op":"read","p":0,"o":7,"v":"w-3","t":4.0}"#,
        r#"{"op":"ack","seq":4,"p"#,
    ];
    let events: Vec<Event> = lines.iter().filter_map(|l| parse_event(l)).collect();
    assert_eq!(
        events,
        vec![
            send(3, 0),
            ack(3, 0, 7),
            Event::Commit {
                partition: 0,
                offset: 8,
                start: 2.0,
                end: 2.1
            },
            Event::Assigned {
                partition: 0,
                committed: -1,
                start: 3.0
            },
            Event::Read {
                partition: 0,
                offset: 7,
                value: "w-3".into()
            },
        ]
    );
}

#[test]
fn the_same_seed_gives_the_same_schedule() {
    let session = std::time::Duration::from_secs(6);
    let total = std::time::Duration::from_secs(600);
    let a = schedule(42, 3, total, session);
    assert_eq!(a, schedule(42, 3, total, session));
    assert_ne!(a, schedule(43, 3, total, session));
    let kinds: std::collections::BTreeSet<&str> = a.iter().map(|s| s.fault.name()).collect();
    assert_eq!(
        kinds.len(),
        6,
        "a long schedule uses every kind of fault: {kinds:?}"
    );
}
