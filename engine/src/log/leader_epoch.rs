//! The leader-epoch cache (KIP-101): for every leader epoch this log holds data of, the first
//! offset written in it. Followers use it to find where their log diverges from the leader's
//! (OffsetForLeaderEpoch, Fetch's diverging epoch) instead of trusting the high watermark.
//!
//! Life of the cache:
//! - every append that carries a newer epoch than the latest adds `(epoch, batch base offset)`
//!   (a leader's appends carry the epoch they are stamped with, a follower's the leader's);
//!   [`PartitionLog::start_leader_epoch`] adds `(epoch, log end)` when a broker becomes leader;
//! - truncation drops entries at or after the new log end; a moving log start drops entries
//!   wholly below it (the last one is kept, starting at the log start); a full truncation
//!   clears it;
//! - each change is written to `<partition dir>/leader-epoch-checkpoint` (Kafka's text format:
//!   `0`, the entry count, then one `epoch start_offset` line per entry), atomically;
//! - at open the file is trusted only if it agrees with the log (entries past the log end are
//!   dropped; the last batch's epoch must be the one the cache gives its offset); otherwise,
//!   or if the file is missing or malformed, the cache is rebuilt from the batch headers.
//!
//! Invariant: epochs strictly increase and start offsets strictly increase along the entries.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;

use super::checkpoint;
use super::scan::scan_batches;
use super::segment::Segment;
use super::PartitionLog;
use crate::batch::BatchHeader;
use crate::error::Result;
use crate::io::Fs;

pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// The only version of the checkpoint format (Kafka's `LeaderEpochCheckpointFile` version 0).
const CHECKPOINT_VERSION: i32 = 0;

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One leader epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The in-memory cache: pure, no I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than the latest epoch
    /// (an older or equal one changes nothing: its start is already known). Entries starting
    /// at or after `start_offset` are dropped first, as Kafka does, so start offsets stay
    /// strictly increasing (an epoch in which nothing was written leaves no entry). Negative
    /// epochs (batches written before leader epochs existed) are ignored. Returns whether the
    /// cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| latest >= epoch) {
            return false;
        }
        self.entries
            .retain(|entry| entry.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.assert_invariant();
        true
    }

    /// Drops every entry that starts at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|entry| entry.start_offset < end_offset);
        self.entries.len() != before
    }

    /// The log now starts at `start_offset`: entries wholly below it go; the epoch that holds
    /// `start_offset` is kept, starting there (Kafka's `truncateFromStart`).
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self
            .entries
            .iter()
            .take_while(|entry| entry.start_offset <= start_offset)
            .count();
        let Some(&holding) = below.checked_sub(1).and_then(|last| self.entries.get(last)) else {
            return false;
        };
        if below == 1 && holding.start_offset == start_offset {
            return false;
        }
        self.entries.drain(..below);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: holding.epoch,
                start_offset,
            },
        );
        self.assert_invariant();
        true
    }

    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// The epoch the batch at `offset` was written in, by the cache.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .rev()
            .find(|entry| entry.start_offset <= offset)
            .map(|entry| entry.epoch)
    }

    /// OffsetForLeaderEpoch's answer for `requested` on a log that ends at `log_end_offset`,
    /// as Kafka's leader gives it (KIP-101, KIP-279):
    /// - the latest epoch ends at the log end;
    /// - an older epoch this log knows, or one between two it knows, is answered with the
    ///   largest known epoch <= `requested` and the start of the next known epoch;
    /// - an epoch older than every known one is answered with itself and the start of the
    ///   first known epoch (everything before it is from older epochs);
    /// - an undefined (negative) epoch, an epoch newer than the latest, or an empty cache give
    ///   `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested < 0 {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|entry| entry.epoch > requested) else {
            return UNDEFINED;
        };
        let floor = self
            .entries
            .iter()
            .rev()
            .find(|entry| entry.epoch <= requested);
        match floor {
            Some(floor) => (floor.epoch, higher.start_offset),
            None => (requested, higher.start_offset),
        }
    }

    /// The checkpoint file's text.
    pub fn encode(&self) -> String {
        let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for entry in &self.entries {
            text.push_str(&format!("{} {}\n", entry.epoch, entry.start_offset));
        }
        text
    }

    /// Parses a checkpoint file's text; anything but a well-formed version-0 file whose
    /// entries keep the invariant is an error (the caller rebuilds instead).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut lines = text.lines();
        let version = lines.next().ok_or("empty file")?.trim();
        if version != CHECKPOINT_VERSION.to_string() {
            return Err(format!("unsupported version {version:?}"));
        }
        let count_line = lines.next().ok_or("no entry count")?.trim();
        let count: usize = count_line
            .parse()
            .map_err(|_| format!("bad entry count {count_line:?}"))?;
        let mut entries: Vec<EpochEntry> = Vec::new();
        for line in lines.by_ref().take(count) {
            let mut fields = line.split_whitespace();
            let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("bad entry line {line:?}"));
            };
            let entry = EpochEntry {
                epoch: epoch.parse().map_err(|_| format!("bad epoch {epoch:?}"))?,
                start_offset: start
                    .parse()
                    .map_err(|_| format!("bad start offset {start:?}"))?,
            };
            if entry.epoch < 0 || entry.start_offset < 0 {
                return Err(format!("negative entry {line:?}"));
            }
            if entries.last().is_some_and(|previous| {
                previous.epoch >= entry.epoch || previous.start_offset >= entry.start_offset
            }) {
                return Err(format!("entry {line:?} does not follow the one before"));
            }
            entries.push(entry);
        }
        if entries.len() != count {
            return Err(format!("{} entries, header says {count}", entries.len()));
        }
        if lines.any(|line| !line.trim().is_empty()) {
            return Err("lines after the entries".into());
        }
        Ok(LeaderEpochCache { entries })
    }

    fn assert_invariant(&self) {
        debug_assert!(
            self.entries
                .windows(2)
                .all(|pair| pair[0].epoch < pair[1].epoch
                    && pair[0].start_offset < pair[1].start_offset),
            "leader epochs and their start offsets must strictly increase: {:?}",
            self.entries
        );
    }
}

/// Writes the cache's checkpoint atomically and durably, whatever the log's durability (as
/// Kafka does). Under `durability=none` the data is not synced, but data that does survive a
/// crash must not meet an older checkpoint: after a full truncation and new appends, a stale
/// one names epochs that start after batches it knows nothing of, and open's check (which
/// reads only the last batch) accepts it (found by the crash simulation, seed 1592590500).
/// Epoch changes are rare (a leader election, a truncation), so the fsync costs little.
pub(super) fn write_checkpoint(fs: &Fs, dir: &Path, cache: &LeaderEpochCache) -> Result<()> {
    checkpoint::write_atomically(
        fs,
        dir,
        LEADER_EPOCH_CHECKPOINT_FILE,
        cache.encode().as_bytes(),
    )
}

/// Reads the checkpoint; `None` (with a warning) if it is missing, unreadable or malformed.
fn read_checkpoint(fs: &Fs, dir: &Path) -> Option<LeaderEpochCache> {
    let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
    let text = match fs.read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "unreadable leader-epoch checkpoint; rebuilding it");
            return None;
        }
    };
    match LeaderEpochCache::parse(&text) {
        Ok(cache) => Some(cache),
        Err(detail) => {
            tracing::warn!(path = %path.display(), %detail, "malformed leader-epoch checkpoint; rebuilding it");
            None
        }
    }
}

/// The header of the log's last batch, if it has one.
async fn last_batch(segments: &BTreeMap<i64, Segment>) -> Result<Option<BatchHeader>> {
    let Some(segment) = segments.values().rev().find(|segment| !segment.is_empty()) else {
        return Ok(None);
    };
    let start = segment
        .offset_index
        .last()
        .map_or(0, |entry| u64::from(entry.position));
    let mut last = None;
    scan_batches(&segment.file, start, segment.written_bytes, |batch| {
        last = Some(batch.header);
        ControlFlow::Continue(())
    })
    .await?;
    Ok(last)
}

/// Reads every batch header of the log and records each newer epoch.
async fn rebuild(segments: &BTreeMap<i64, Segment>) -> Result<LeaderEpochCache> {
    let mut cache = LeaderEpochCache::default();
    for segment in segments.values() {
        scan_batches(&segment.file, 0, segment.written_bytes, |batch| {
            cache.assign(
                batch.header.partition_leader_epoch,
                batch.header.base_offset,
            );
            ControlFlow::Continue(())
        })
        .await?;
    }
    Ok(cache)
}

/// Loads the cache at open: the checkpoint if it agrees with the log, else rebuilt from the
/// batches; trimmed to `[log_start_offset, log_end_offset]` and written back if that changed
/// anything.
pub(super) async fn load(
    fs: &Fs,
    dir: &Path,
    segments: &BTreeMap<i64, Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
) -> Result<LeaderEpochCache> {
    let stored = read_checkpoint(fs, dir);
    let mut cache = stored.clone().unwrap_or_default();
    // An epoch started at the log end with nothing written yet is kept (a leader that has not
    // appended); anything past the end was never written.
    cache.truncate_from_end(log_end_offset.saturating_add(1));
    let agrees = match last_batch(segments).await? {
        Some(last) => {
            // An epoch starts at a batch or at the log end, never inside the last batch.
            let starts_inside = cache.entries().iter().any(|entry| {
                entry.start_offset > last.base_offset && entry.start_offset < log_end_offset
            });
            // Batches from before leader epochs (-1) have nothing to contradict.
            let epoch_matches = last.partition_leader_epoch < 0
                || cache.epoch_for_offset(last.base_offset) == Some(last.partition_leader_epoch);
            epoch_matches && !starts_inside
        }
        None => true,
    };
    if stored.is_none() || !agrees {
        if stored.is_some() {
            tracing::warn!(dir = %dir.display(), "leader-epoch checkpoint disagrees with the log; rebuilding it");
        }
        cache = rebuild(segments).await?;
    }
    cache.truncate_from_start(log_start_offset);
    if stored.as_ref() != Some(&cache) {
        write_checkpoint(fs, dir, &cache)?;
    }
    Ok(cache)
}

impl PartitionLog {
    /// The newest leader epoch this log knows (KIP-101), if any.
    pub fn latest_leader_epoch(&self) -> Option<i32> {
        self.state.borrow().leader_epochs.latest_epoch()
    }

    /// Every `(epoch, start offset)` this log knows, oldest first.
    pub fn leader_epoch_entries(&self) -> Vec<(i32, i64)> {
        self.state
            .borrow()
            .leader_epochs
            .entries()
            .iter()
            .map(|entry| (entry.epoch, entry.start_offset))
            .collect()
    }

    /// OffsetForLeaderEpoch: see [`LeaderEpochCache::end_offset_for`]. The log end here is the
    /// offset the next append gets (appends queued for the writer count: their epochs are in
    /// the cache already).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let state = self.state.borrow();
        state.leader_epochs.end_offset_for(epoch, state.next_offset)
    }

    /// Records that leader epoch `epoch` starts at the log end (a broker becoming leader does
    /// this before it takes writes, so its followers can truncate to the end of the previous
    /// epoch even before anything is written in the new one). An epoch not newer than the
    /// latest changes nothing.
    pub fn start_leader_epoch(&self, epoch: i32) -> Result<()> {
        self.check_open()?;
        let changed = {
            let mut state = self.state.borrow_mut();
            let start_offset = state.next_offset;
            state.leader_epochs.assign(epoch, start_offset)
        };
        if changed {
            self.persist_leader_epochs()?;
        }
        Ok(())
    }

    /// Writes the epoch checkpoint (after a change).
    pub(super) fn persist_leader_epochs(&self) -> Result<()> {
        let cache = self.state.borrow().leader_epochs.clone();
        write_checkpoint(&self.fs, &self.dir, &cache)
    }

    /// Drops epoch entries below a moved log start, and persists them if that changed them.
    pub(super) fn trim_leader_epochs_to_log_start(&self) -> Result<()> {
        let changed = {
            let mut state = self.state.borrow_mut();
            let start = state.log_start_offset;
            state.leader_epochs.truncate_from_start(start)
        };
        if changed {
            self.persist_leader_epochs()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::default();
        for &(epoch, start) in entries {
            assert!(cache.assign(epoch, start), "({epoch}, {start}) must be new");
        }
        cache
    }

    fn pairs(cache: &LeaderEpochCache) -> Vec<(i32, i64)> {
        cache
            .entries()
            .iter()
            .map(|entry| (entry.epoch, entry.start_offset))
            .collect()
    }

    #[test]
    fn only_newer_epochs_are_assigned() {
        let mut cache = LeaderEpochCache::default();
        assert!(!cache.assign(-1, 0), "unstamped batches add nothing");
        assert!(cache.assign(2, 0));
        assert!(!cache.assign(2, 10), "same epoch: its start is known");
        assert!(!cache.assign(1, 12), "an older epoch changes nothing");
        assert!(cache.assign(5, 20));
        assert_eq!(pairs(&cache), vec![(2, 0), (5, 20)]);
        assert_eq!(cache.latest_epoch(), Some(5));
    }

    #[test]
    fn an_epoch_with_nothing_written_is_replaced_by_the_next_at_the_same_offset() {
        let mut cache = cache(&[(1, 0), (3, 10)]);
        assert!(cache.assign(4, 10));
        assert_eq!(pairs(&cache), vec![(1, 0), (4, 10)]);
    }

    #[test]
    fn truncation_from_the_end_drops_entries_at_or_after_the_offset() {
        let mut cache = cache(&[(1, 0), (2, 10), (4, 20)]);
        assert!(!cache.truncate_from_end(25));
        assert!(cache.truncate_from_end(20));
        assert_eq!(pairs(&cache), vec![(1, 0), (2, 10)]);
        assert!(cache.truncate_from_end(5));
        assert_eq!(pairs(&cache), vec![(1, 0)]);
        assert!(cache.truncate_from_end(0));
        assert_eq!(cache.latest_epoch(), None);
    }

    #[test]
    fn truncation_from_the_start_keeps_the_epoch_holding_the_new_start() {
        let mut cache = cache(&[(1, 0), (2, 10), (4, 20)]);
        assert!(!cache.truncate_from_start(0));
        assert!(cache.truncate_from_start(15));
        assert_eq!(pairs(&cache), vec![(2, 15), (4, 20)]);
        assert!(cache.truncate_from_start(20));
        assert_eq!(pairs(&cache), vec![(4, 20)]);
        assert!(!cache.truncate_from_start(20));
        assert!(cache.truncate_from_start(30));
        assert_eq!(pairs(&cache), vec![(4, 30)]);
    }

    /// The cases of KIP-101 / Kafka's `LeaderEpochFileCache.endOffsetFor`.
    #[test]
    fn end_offsets_for_epochs_follow_kip_101() {
        let log_end = 50;
        let empty = LeaderEpochCache::default();
        assert_eq!(empty.end_offset_for(0, log_end), (-1, -1), "nothing known");
        let cache = cache(&[(1, 5), (2, 10), (5, 30)]);
        assert_eq!(
            cache.end_offset_for(5, log_end),
            (5, 50),
            "latest ends at LEO"
        );
        assert_eq!(
            cache.end_offset_for(2, log_end),
            (2, 30),
            "next epoch's start"
        );
        assert_eq!(cache.end_offset_for(1, log_end), (1, 10));
        assert_eq!(
            cache.end_offset_for(3, log_end),
            (2, 30),
            "an unknown epoch between two known: the largest known below it"
        );
        assert_eq!(cache.end_offset_for(4, log_end), (2, 30));
        assert_eq!(
            cache.end_offset_for(0, log_end),
            (0, 5),
            "older than all: itself, ending where the first known starts"
        );
        assert_eq!(cache.end_offset_for(6, log_end), (-1, -1), "newer than all");
        assert_eq!(cache.end_offset_for(-1, log_end), (-1, -1), "undefined");
    }

    #[test]
    fn the_checkpoint_text_round_trips_in_kafkas_format() {
        let cache = cache(&[(0, 0), (3, 120), (7, 4000)]);
        let text = cache.encode();
        assert_eq!(text, "0\n3\n0 0\n3 120\n7 4000\n");
        assert_eq!(LeaderEpochCache::parse(&text), Ok(cache));
        assert_eq!(
            LeaderEpochCache::parse("0\n0\n"),
            Ok(LeaderEpochCache::default())
        );
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        for text in [
            "",
            "1\n0\n",
            "0\n",
            "0\nx\n",
            "0\n2\n1 0\n",
            "0\n1\n1 0\n2 5\n",
            "0\n1\n1\n",
            "0\n1\n1 0 9\n",
            "0\n1\na 0\n",
            "0\n1\n-3 0\n",
            "0\n2\n3 0\n2 5\n",
            "0\n2\n1 5\n2 5\n",
        ] {
            assert!(
                LeaderEpochCache::parse(text).is_err(),
                "{text:?} must be refused"
            );
        }
    }
}
