//! Random divergent histories of three replicas, then every replica follows
//! the leader of the latest epoch.
//!
//! The model: a log is the leader epoch of each record (offset = index; one
//! leader writes each epoch, so (offset, epoch) names a record's content),
//! with its epoch entries kept as Kafka's `LeaderEpochFileCache` keeps them
//! (an elected leader records its epoch at its log end; an appended record of
//! a newer epoch records that epoch; truncation drops entries starting at or
//! past the truncation point, even when no record goes, as Kafka's
//! `UnifiedLog.truncateTo` does for an epoch a leader started but never wrote).
//! Histories: elections of any replica (clean or not) with some appends,
//! more appends by leaders that may have been deposed meanwhile (`acks=1`
//! writes on a stale leader), and partial replication between replicas.
//!
//! Checked for every replica but the leader, from its diverged state:
//! - the OffsetForLeaderEpoch loop ([`epoch_to_ask`], [`end_offset_for_epoch`]
//!   on the leader, [`truncation_point`]) ends within as many rounds as the
//!   follower has epochs, each `AskAgain` naming the follower's new latest
//!   epoch, and leaves the follower's log a prefix of the leader's, exactly
//!   as long as the longest common prefix (never truncating what agrees);
//! - the Fetch loop ([`diverging_epoch`] on the leader, [`truncation_point`]
//!   on the follower, then records copied) never accepts a fetch over a
//!   diverged log and ends with the follower's records and the entries of
//!   epochs with records equal to the leader's.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::truncation::*;

const REPLICAS: usize = 3;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Log {
    records: Vec<i32>,
    epochs: Vec<(i32, i64)>,
}

impl Log {
    fn log_end_offset(&self) -> i64 {
        i64::try_from(self.records.len()).expect("small logs")
    }

    /// Kafka's `LeaderEpochFileCache.assign`: entries not below the new one
    /// in both epoch and offset go.
    fn assign(&mut self, epoch: i32, start: i64) {
        if self.epochs.last() == Some(&(epoch, start)) {
            return;
        }
        self.epochs.retain(|&(e, s)| e < epoch && s < start);
        self.epochs.push((epoch, start));
    }

    fn append(&mut self, epoch: i32) {
        if self.epochs.last().map(|&(e, _)| e) != Some(epoch) {
            let start = self.log_end_offset();
            self.assign(epoch, start);
        }
        self.records.push(epoch);
    }

    fn truncate(&mut self, offset: i64) {
        let keep = usize::try_from(offset.max(0)).expect("non-negative");
        self.records.truncate(keep);
        self.epochs.retain(|&(_, start)| start < offset);
    }

    /// This log becomes what a correct follower of `source` holds after
    /// copying its first `len` records.
    fn copy_of(source: &Log, len: usize) -> Log {
        let mut log = Log::default();
        for &epoch in &source.records[..len] {
            log.append(epoch);
        }
        log
    }

    fn common_prefix(&self, other: &Log) -> usize {
        self.records
            .iter()
            .zip(&other.records)
            .take_while(|(a, b)| a == b)
            .count()
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// `who` is elected in a new epoch (some epoch numbers skipped, as when
    /// another broker led without writing), and appends.
    Elect {
        who: usize,
        skip: i32,
        appends: usize,
    },
    /// `who` appends in its latest epoch if it was elected in it (it may be
    /// deposed by now: a stale leader's `acks=1` writes).
    Append { who: usize, count: usize },
    /// `to` becomes a correct copy of part of `from`: at least what they
    /// share, plus a share of the rest.
    Replicate {
        from: usize,
        to: usize,
        share_percent: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..REPLICAS, 0i32..3, 0usize..4).prop_map(|(who, skip, appends)| Op::Elect { who, skip, appends }),
        3 => (0..REPLICAS, 1usize..4).prop_map(|(who, count)| Op::Append { who, count }),
        3 => (0..REPLICAS, 0..REPLICAS, 0usize..=100).prop_map(|(from, to, share_percent)| Op::Replicate { from, to, share_percent }),
    ]
}

struct History {
    logs: Vec<Log>,
    leader_of: BTreeMap<i32, usize>,
    next_epoch: i32,
}

impl History {
    fn run(ops: &[Op]) -> Self {
        let mut h = History {
            logs: vec![Log::default(); REPLICAS],
            leader_of: BTreeMap::new(),
            next_epoch: 0,
        };
        for op in ops {
            h.apply(op);
        }
        h
    }

    fn current_leader(&self) -> Option<usize> {
        self.leader_of.values().next_back().copied()
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Elect { who, skip, appends } => {
                let epoch = self.next_epoch + skip;
                self.next_epoch = epoch + 1;
                self.leader_of.insert(epoch, who);
                let log = &mut self.logs[who];
                let start = log.log_end_offset();
                log.assign(epoch, start);
                for _ in 0..appends {
                    log.append(epoch);
                }
            }
            Op::Append { who, count } => {
                let log = &mut self.logs[who];
                let Some(&(epoch, _)) = log.epochs.last() else {
                    return;
                };
                if self.leader_of.get(&epoch) == Some(&who) {
                    for _ in 0..count {
                        log.append(epoch);
                    }
                }
            }
            Op::Replicate {
                from,
                to,
                share_percent,
            } => {
                // A leader does not truncate while it leads.
                if from == to || Some(to) == self.current_leader() {
                    return;
                }
                let shared = self.logs[to].common_prefix(&self.logs[from]);
                let rest = self.logs[from].records.len() - shared;
                let len = shared + rest * share_percent / 100;
                self.logs[to] = Log::copy_of(&self.logs[from], len);
            }
        }
    }
}

/// The entries of epochs with records. A follower may keep an entry at its
/// log end for an epoch it started as leader and never wrote in, when the
/// leader's first epoch is newer (the leader then answers that epoch as
/// ending at its own first offset, which the follower has not passed); its
/// next append or election replaces it, and a follower answers no
/// OffsetForLeaderEpoch, so it is harmless.
fn written_epochs(log: &Log) -> Vec<(i32, i64)> {
    let end = log.log_end_offset();
    log.epochs
        .iter()
        .copied()
        .filter(|&(_, start)| start < end)
        .collect()
}

/// The OffsetForLeaderEpoch loop; returns the rounds it took.
fn reconcile_by_offset_for_leader_epoch(follower: &mut Log, leader: &Log) -> usize {
    let rounds_max = follower.epochs.len() + 1;
    for round in 1..=rounds_max {
        let Some(asked) = epoch_to_ask(&follower.epochs) else {
            return round;
        };
        let answer = end_offset_for_epoch(&leader.epochs, leader.log_end_offset(), asked);
        match truncation_point(&follower.epochs, follower.log_end_offset(), 0, answer) {
            TruncationDecision::TruncateTo(offset) => {
                assert!(offset <= follower.log_end_offset());
                follower.truncate(offset);
                return round;
            }
            TruncationDecision::AskAgain { truncate_to, epoch } => {
                assert!(epoch < asked, "asks a smaller epoch");
                follower.truncate(truncate_to);
                assert_eq!(epoch_to_ask(&follower.epochs), Some(epoch));
            }
        }
    }
    panic!("no agreement after {rounds_max} rounds");
}

/// Replica fetches until the follower holds the leader's log.
fn follow_by_fetching(follower: &mut Log, leader: &Log) {
    let rounds_max = follower.epochs.len() + 2;
    for _ in 0..rounds_max {
        let last_fetched_epoch = epoch_to_ask(&follower.epochs).unwrap_or(-1);
        let fetch_offset = follower.log_end_offset();
        let check = diverging_epoch(
            &leader.epochs,
            leader.log_end_offset(),
            fetch_offset,
            last_fetched_epoch,
        )
        .expect("the leader holds the latest epoch, so it can place any other");
        match check {
            Some(diverging) => {
                match truncation_point(&follower.epochs, fetch_offset, 0, diverging) {
                    TruncationDecision::TruncateTo(offset) => follower.truncate(offset),
                    TruncationDecision::AskAgain { truncate_to, .. } => {
                        follower.truncate(truncate_to)
                    }
                }
            }
            None => {
                let from = usize::try_from(fetch_offset).expect("non-negative");
                assert!(
                    follower.records[..] == leader.records[..from],
                    "fetch accepted at {fetch_offset} (epoch {last_fetched_epoch}) over a diverged log: {follower:?} vs {leader:?}"
                );
                for &epoch in &leader.records[from..] {
                    follower.append(epoch);
                }
                return;
            }
        }
    }
    panic!("fetching did not converge in {rounds_max} rounds");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn followers_truncate_to_exactly_where_they_agree_with_the_leader(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let history = History::run(&ops);
        let Some(leader_id) = history.current_leader() else {
            return Ok(());
        };
        let leader = &history.logs[leader_id];
        for (id, before) in history.logs.iter().enumerate() {
            if id == leader_id {
                continue;
            }
            let agreed = before.common_prefix(leader);

            let mut follower = before.clone();
            reconcile_by_offset_for_leader_epoch(&mut follower, leader);
            prop_assert_eq!(
                follower.records.len(), agreed,
                "replica {} {:?} truncated to {:?} against leader {:?}",
                id, before, follower, leader
            );
            prop_assert_eq!(&follower.records[..], &leader.records[..agreed]);

            let mut follower = before.clone();
            follow_by_fetching(&mut follower, leader);
            prop_assert_eq!(&follower.records, &leader.records);
            prop_assert_eq!(
                written_epochs(&follower), written_epochs(leader),
                "epoch entries of replica {} from {:?}", id, before
            );
        }
    }
}
