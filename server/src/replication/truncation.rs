//! Where a follower's log stops agreeing with its leader's (KIP-101,
//! KIP-279), and the leader's side of the same question on a replica fetch
//! (KIP-320's `last_fetched_epoch`, Fetch v12+'s `diverging_epoch`).
//!
//! Epoch entries are `(epoch, start_offset)` pairs: the first offset written
//! in each leader epoch, strictly increasing in both (the leader-epoch
//! checkpoint). One leader writes each epoch, so two logs holding the same
//! epoch at the same offset hold the same record; the logs agree up to the
//! end of the last epoch both have, bounded by the shorter of the two.
//!
//! The follower's loop, before its first fetch in a new leader epoch (or on
//! a fetch answered with a diverging epoch):
//! 1. [`epoch_to_ask`]: its latest epoch; `None` (an empty log) means nothing
//!    to reconcile.
//! 2. Ask the leader OffsetForLeaderEpoch(that epoch) (or use the fetch's
//!    diverging epoch, which answers the same question).
//! 3. [`truncation_point`]: `TruncateTo(o)` ends the loop (fetch from `o`);
//!    `AskAgain { truncate_to, epoch }` truncates and goes back to 1, where
//!    the latest epoch is now `epoch`. Every round asks a smaller epoch, so
//!    the loop ends.

use thiserror::Error;

use super::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};

/// An OffsetForLeaderEpoch answer (or a Fetch response's `diverging_epoch`):
/// the largest epoch <= the one asked that the answering log knows, and where
/// that epoch ends in it (the start of its next epoch, or its LEO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub epoch: i32,
    pub end_offset: i64,
}

impl EpochEndOffset {
    /// Kafka's (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET).
    pub const UNDEFINED: Self = Self {
        epoch: UNDEFINED_EPOCH,
        end_offset: UNDEFINED_EPOCH_OFFSET,
    };
}

impl From<(i32, i64)> for EpochEndOffset {
    fn from((epoch, end_offset): (i32, i64)) -> Self {
        Self { epoch, end_offset }
    }
}

/// What a follower does with the leader's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruncationDecision {
    /// Truncate the log to this offset (a no-op at or past its LEO); the logs
    /// agree below it. Done: fetch from here.
    TruncateTo(i64),
    /// The leader answered an epoch this log does not have (KIP-279).
    /// Truncate to `truncate_to` (everything from there is in epochs the
    /// leader does not have) and ask again with `epoch`, which is then this
    /// log's latest epoch.
    AskAgain { truncate_to: i64, epoch: i32 },
}

/// A replica fetch whose `last_fetched_epoch` the leader cannot place (it
/// knows no epoch at or below it): Kafka answers OFFSET_OUT_OF_RANGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("no epoch at or below the last fetched epoch {last_fetched_epoch} in this log")]
pub struct FetchedEpochUnknown {
    pub last_fetched_epoch: i32,
}

/// The epoch a follower asks OffsetForLeaderEpoch about: its latest.
pub fn epoch_to_ask(epochs: &[(i32, i64)]) -> Option<i32> {
    epochs.last().map(|&(epoch, _)| epoch)
}

/// OffsetForLeaderEpoch answered from a log's epoch entries and LEO, as
/// Kafka's `LeaderEpochFileCache.endOffsetFor` does:
/// - the latest epoch: it ends at the LEO;
/// - an epoch between two known ones: the largest known epoch at or below it
///   and the start of the next known epoch;
/// - an epoch below every known one: the epoch asked and the start of the
///   first known epoch (the log holds nothing of it: the asker keeps nothing
///   past that start);
/// - UNDEFINED for an undefined epoch, an epoch past the latest, or no
///   entries.
pub fn end_offset_for_epoch(
    epochs: &[(i32, i64)],
    log_end_offset: i64,
    epoch: i32,
) -> EpochEndOffset {
    if epoch == UNDEFINED_EPOCH {
        return EpochEndOffset::UNDEFINED;
    }
    let Some(&(latest, _)) = epochs.last() else {
        return EpochEndOffset::UNDEFINED;
    };
    if epoch == latest {
        return EpochEndOffset {
            epoch,
            end_offset: log_end_offset,
        };
    }
    // The first entry with a larger epoch.
    let higher = epochs.partition_point(|&(e, _)| e <= epoch);
    let Some(&(_, next_start)) = epochs.get(higher) else {
        return EpochEndOffset::UNDEFINED;
    };
    match higher.checked_sub(1).map(|i| epochs[i]) {
        Some((floor, _)) => EpochEndOffset {
            epoch: floor,
            end_offset: next_start,
        },
        None => EpochEndOffset {
            epoch,
            end_offset: next_start,
        },
    }
}

/// The follower's decision (Kafka's `AbstractFetcherThread.
/// getOffsetTruncationState`), given its own epoch entries, LEO and high
/// watermark, and the leader's `answer` for the follower's latest epoch:
///
/// - The follower has the answered epoch: the logs agree up to where that
///   epoch ends in both, so truncate to the smaller end (and the LEO).
/// - The follower's largest epoch at or below the answered one is smaller
///   (KIP-279: several leaders came and went): its epochs between the two
///   exist only here, so truncate to where that smaller epoch ends here and
///   ask again about it.
/// - The follower has no epoch at or below the answered one: all of its
///   epochs are ones the leader lacks, so nothing from its first epoch's
///   start agrees. Kafka truncates to the leader's end offset only (its
///   logs may hold records from before epochs were tracked); in Strom every
///   batch carries an epoch, so it also truncates to the first epoch's start.
/// - No epoch in the answer but an end offset (OffsetForLeaderEpoch v0, a
///   leader too old to know epochs): truncate to that offset.
/// - UNDEFINED end offset: the leader has no epoch information at all (no
///   entries: never a Strom leader, which records its epoch on election), or
///   the answer is malformed (an epoch above the follower's latest, which is
///   what it asked). Kafka's fallback: truncate to the high watermark. A
///   later fetch past the leader's LEO gets OFFSET_OUT_OF_RANGE and the
///   fetcher truncates further.
///
/// Never below the point where the two logs agree, never past the LEO.
pub fn truncation_point(
    epochs: &[(i32, i64)],
    log_end_offset: i64,
    high_watermark: i64,
    answer: EpochEndOffset,
) -> TruncationDecision {
    debug_assert!(
        epochs
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
        "epoch entries not strictly increasing: {epochs:?}"
    );
    let clamp = |offset: i64| offset.min(log_end_offset).max(0);
    let above_latest = epoch_to_ask(epochs).is_some_and(|latest| answer.epoch > latest);
    if answer.end_offset == UNDEFINED_EPOCH_OFFSET || above_latest {
        return TruncationDecision::TruncateTo(clamp(high_watermark));
    }
    if answer.epoch == UNDEFINED_EPOCH {
        return TruncationDecision::TruncateTo(clamp(answer.end_offset));
    }
    let local = end_offset_for_epoch_floor(epochs, log_end_offset, answer.epoch);
    match local {
        Some(local) if local.epoch == answer.epoch => {
            TruncationDecision::TruncateTo(clamp(local.end_offset.min(answer.end_offset)))
        }
        Some(local) => TruncationDecision::AskAgain {
            truncate_to: clamp(local.end_offset),
            epoch: local.epoch,
        },
        None => {
            let first_start = epochs.first().map_or(log_end_offset, |&(_, start)| start);
            TruncationDecision::TruncateTo(clamp(answer.end_offset.min(first_start)))
        }
    }
}

/// This log's largest epoch at or below `epoch` and where it ends here;
/// `None` if it has none.
fn end_offset_for_epoch_floor(
    epochs: &[(i32, i64)],
    log_end_offset: i64,
    epoch: i32,
) -> Option<EpochEndOffset> {
    let higher = epochs.partition_point(|&(e, _)| e <= epoch);
    let floor = higher.checked_sub(1)?;
    let end_offset = epochs
        .get(higher)
        .map_or(log_end_offset, |&(_, start)| start);
    Some(EpochEndOffset {
        epoch: epochs[floor].0,
        end_offset,
    })
}

/// The leader's check of a replica fetch at `fetch_offset` whose previous
/// batch was in `last_fetched_epoch` (Kafka's `Partition.fetchRecords`,
/// KIP-320): `Some(d)` when the follower's log has diverged, answered as the
/// Fetch response's `diverging_epoch` (with no records; the follower
/// truncates with [`truncation_point`] and must not be counted as having
/// fetched); `None` when the logs agree below `fetch_offset` (serve records).
/// A negative `last_fetched_epoch` (absent: an empty follower) is not checked.
pub fn diverging_epoch(
    leader_epochs: &[(i32, i64)],
    leader_log_end_offset: i64,
    fetch_offset: i64,
    last_fetched_epoch: i32,
) -> Result<Option<EpochEndOffset>, FetchedEpochUnknown> {
    if last_fetched_epoch < 0 {
        return Ok(None);
    }
    let answer = end_offset_for_epoch(leader_epochs, leader_log_end_offset, last_fetched_epoch);
    if answer.epoch == UNDEFINED_EPOCH || answer.end_offset == UNDEFINED_EPOCH_OFFSET {
        return Err(FetchedEpochUnknown { last_fetched_epoch });
    }
    if answer.epoch < last_fetched_epoch || answer.end_offset < fetch_offset {
        return Ok(Some(answer));
    }
    Ok(None)
}
