//! The checker of a nemesis run: reads the clients' histories and the final contents of the
//! topic and reports every broken promise. Pure (no I/O), so its own tests can feed it broken
//! histories and see each one caught.
//!
//! The producer sends record `seq` (value `w-SEQ`) to partition `seq % partitions`, one
//! idempotent producer, so within a partition the values of the log must rise.

use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Send {
        seq: u64,
        partition: i32,
    },
    Ack {
        seq: u64,
        partition: i32,
        offset: i64,
    },
    Fail {
        seq: u64,
    },
    /// A group member read `value` at `partition`@`offset`.
    Read {
        partition: i32,
        offset: i64,
        value: String,
    },
    /// A commit of `offset` for `partition` that succeeded; it ran from `start` to `end`
    /// (monotonic seconds).
    Commit {
        partition: i32,
        offset: i64,
        start: f64,
        end: f64,
    },
    /// After an assignment, the member read `committed` (-1: none) as `partition`'s committed
    /// offset, with a read that started at `start`.
    Assigned {
        partition: i32,
        committed: i64,
        start: f64,
    },
}

/// Parses one history line (see tests/clients/nemesis_workload.py); `None` for a line that is
/// not an event (e.g. cut short by a kill).
pub fn parse_event(line: &str) -> Option<Event> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let int = |field: &str| v[field].as_i64();
    let time = |field: &str| v[field].as_f64();
    Some(match v["op"].as_str()? {
        "send" => Event::Send {
            seq: int("seq")? as u64,
            partition: int("p")? as i32,
        },
        "ack" => Event::Ack {
            seq: int("seq")? as u64,
            partition: int("p")? as i32,
            offset: int("o")?,
        },
        "fail" => Event::Fail {
            seq: int("seq")? as u64,
        },
        "read" => Event::Read {
            partition: int("p")? as i32,
            offset: int("o")?,
            value: v["v"].as_str()?.to_string(),
        },
        "commit" => Event::Commit {
            partition: int("p")? as i32,
            offset: int("o")?,
            start: time("start")?,
            end: time("t")?,
        },
        "assigned" => Event::Assigned {
            partition: int("p")? as i32,
            committed: int("committed")?.max(-1),
            start: time("start")?,
        },
        _ => return None,
    })
}

/// The value the producer gives record `seq`.
pub fn value_of(seq: u64) -> String {
    format!("w-{seq}")
}

fn seq_of(value: &str) -> Option<u64> {
    value.strip_prefix("w-")?.parse().ok()
}

/// What the checker found. Every list holds one readable line per violation.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: usize,
    pub acknowledged: usize,
    pub failed: usize,
    pub final_records: usize,
    pub reads: usize,
    pub commits: usize,
    /// Acknowledged records missing from the final log at the offset their ack named.
    pub lost: Vec<String>,
    /// Records present more than once in the final log.
    pub duplicated: Vec<String>,
    /// Records out of send order within a partition.
    pub reordered: Vec<String>,
    /// Records in the log or read by a consumer that no producer sent (or in another partition).
    pub never_written: Vec<String>,
    /// Records a consumer read that the final log does not hold at that offset.
    pub read_then_lost: Vec<String>,
    /// A committed offset read after an assignment that is lower than one committed before.
    pub commits_backwards: Vec<String>,
}

impl Report {
    pub fn violations(&self) -> usize {
        self.lost.len()
            + self.duplicated.len()
            + self.reordered.len()
            + self.never_written.len()
            + self.read_then_lost.len()
            + self.commits_backwards.len()
    }

    /// A readable summary; the first few violations of each kind.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "sent {}, acknowledged {}, failed (indeterminate) {}, in the final log {}, read by \
             consumers {}, commits {}\n",
            self.sent, self.acknowledged, self.failed, self.final_records, self.reads, self.commits
        );
        for (name, list) in [
            ("lost", &self.lost),
            ("duplicated", &self.duplicated),
            ("reordered", &self.reordered),
            ("never written", &self.never_written),
            ("read, then lost", &self.read_then_lost),
            ("committed offset moved backwards", &self.commits_backwards),
        ] {
            out += &format!("{name}: {}\n", list.len());
            for line in list.iter().take(10) {
                out += &format!("  {line}\n");
            }
        }
        out
    }
}

/// Checks `events` (all clients' histories) against `final_log` ((partition, offset, value),
/// every record from each partition's log start to its high watermark).
pub fn check(events: &[Event], final_log: &[(i32, i64, String)]) -> Report {
    let mut report = Report::default();
    let mut sent: HashMap<u64, i32> = HashMap::new();
    for event in events {
        match event {
            Event::Send { seq, partition } => {
                sent.insert(*seq, *partition);
            }
            Event::Ack { .. } => report.acknowledged += 1,
            Event::Fail { .. } => report.failed += 1,
            Event::Read { .. } => report.reads += 1,
            Event::Commit { .. } => report.commits += 1,
            Event::Assigned { .. } => {}
        }
    }
    report.sent = sent.len();
    report.final_records = final_log.len();

    // The final log: by position, and each record's count.
    let mut at: HashMap<(i32, i64), &str> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut by_partition: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    for (partition, offset, value) in final_log {
        at.insert((*partition, *offset), value);
        if !seen.insert(value) {
            report
                .duplicated
                .push(format!("{value} again at {partition}@{offset}"));
        }
        match seq_of(value).filter(|seq| sent.get(seq) == Some(partition)) {
            Some(seq) => by_partition
                .entry(*partition)
                .or_default()
                .push((*offset, seq)),
            None => report
                .never_written
                .push(format!("{value} in the log at {partition}@{offset}")),
        }
    }
    for (partition, records) in &mut by_partition {
        records.sort_unstable();
        for pair in records.windows(2) {
            let ((o1, s1), (o2, s2)) = (pair[0], pair[1]);
            if s2 <= s1 {
                report.reordered.push(format!(
                    "partition {partition}: w-{s1} at {o1} before w-{s2} at {o2}"
                ));
            }
        }
    }
    for event in events {
        match event {
            Event::Ack {
                seq,
                partition,
                offset,
            } => {
                let want = value_of(*seq);
                if at.get(&(*partition, *offset)) != Some(&want.as_str()) {
                    report.lost.push(format!(
                        "{want} acknowledged at {partition}@{offset}; the log holds {:?} there",
                        at.get(&(*partition, *offset))
                    ));
                }
            }
            Event::Read {
                partition,
                offset,
                value,
            } => {
                if seq_of(value).is_none_or(|seq| sent.get(&seq) != Some(partition)) {
                    report
                        .never_written
                        .push(format!("{value} read at {partition}@{offset}"));
                } else if at.get(&(*partition, *offset)) != Some(&value.as_str()) {
                    report.read_then_lost.push(format!(
                        "{value} read at {partition}@{offset}; the log holds {:?} there",
                        at.get(&(*partition, *offset))
                    ));
                }
            }
            _ => {}
        }
    }

    // Committed offsets: a read of the committed offset that started after a commit ended must
    // see that commit or a later one, never an older, lower offset.
    for event in events {
        let Event::Assigned {
            partition,
            committed,
            start,
        } = event
        else {
            continue;
        };
        let before = events
            .iter()
            .filter_map(|e| match e {
                Event::Commit {
                    partition: p,
                    offset,
                    end,
                    ..
                } if p == partition && end < start => Some(*offset),
                _ => None,
            })
            .max();
        if let Some(highest) = before.filter(|highest| committed < highest) {
            report.commits_backwards.push(format!(
                "partition {partition}: read committed offset {committed} after {highest} was \
                 committed"
            ));
        }
    }
    report
}
