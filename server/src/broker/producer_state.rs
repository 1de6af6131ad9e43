//! Idempotent-producer state of one partition: per producer id, the epoch and the last few
//! batches' sequence ranges, so a retried batch is acknowledged without a second append and a
//! gap or a stale epoch is refused, as Kafka does.
//!
//! Rebuilt at startup from a snapshot written at clean shutdown plus the batches after it (or
//! the whole log when there is no usable snapshot), so it survives restarts.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use strom_engine::batch::BatchHeader;

/// Batches remembered per producer: Kafka's clients keep at most 5 requests in flight per
/// connection when idempotent, so a retry is always among the last 5.
pub const REMEMBERED_BATCHES_PER_PRODUCER: usize = 5;
/// Producers remembered per partition; the least recently used is forgotten past this (a
/// forgotten producer's next batch must start at sequence 0 or is refused as out of order).
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRange {
    pub first_sequence: i32,
    pub last_sequence: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchRange>,
    /// Append order, for forgetting the least recently used producer.
    pub last_used: u64,
}

/// What to do with an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceDecision {
    /// New data: append it.
    Append,
    /// A retry of a batch already stored: acknowledge with its original offsets.
    Duplicate { first_offset: i64, last_offset: i64 },
}

/// Why an idempotent batch is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer epoch {got} is older than the current {current}")]
    InvalidProducerEpoch { current: i16, got: i16 },
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence { expected: i32, got: i32 },
}

fn next_sequence(last: i32) -> i32 {
    // Sequences wrap from i32::MAX to 0.
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

fn last_sequence(header: &BatchHeader) -> i32 {
    let last = i64::from(header.base_sequence) + i64::from(header.last_offset_delta);
    i32::try_from(last % (i64::from(i32::MAX) + 1)).unwrap_or(0)
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    use_counter: u64,
}

impl ProducerStateTable {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Decides what to do with a batch carrying a producer id. Changes nothing.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceDecision, SequenceError> {
        debug_assert!(header.has_producer_id());
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // An unknown producer (new, or forgotten) must start at sequence 0.
            return if header.base_sequence == 0 {
                Ok(SequenceDecision::Append)
            } else {
                Err(SequenceError::OutOfOrderSequence {
                    expected: 0,
                    got: header.base_sequence,
                })
            };
        };
        if header.producer_epoch < entry.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                current: entry.epoch,
                got: header.producer_epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            // A bumped epoch restarts sequences.
            return if header.base_sequence == 0 {
                Ok(SequenceDecision::Append)
            } else {
                Err(SequenceError::OutOfOrderSequence {
                    expected: 0,
                    got: header.base_sequence,
                })
            };
        }
        let last = last_sequence(header);
        if let Some(stored) = entry.batches.iter().find(|batch| {
            batch.first_sequence == header.base_sequence && batch.last_sequence == last
        }) {
            return Ok(SequenceDecision::Duplicate {
                first_offset: stored.first_offset,
                last_offset: stored.last_offset,
            });
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |batch| next_sequence(batch.last_sequence));
        if header.base_sequence != expected {
            return Err(SequenceError::OutOfOrderSequence {
                expected,
                got: header.base_sequence,
            });
        }
        Ok(SequenceDecision::Append)
    }

    /// Records a batch that was appended at `first_offset`.
    pub fn record(&mut self, header: &BatchHeader, first_offset: i64) {
        self.use_counter += 1;
        let used = self.use_counter;
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_used: used,
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.last_used = used;
        if entry.batches.len() == REMEMBERED_BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchRange {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            first_offset,
            last_offset: first_offset + i64::from(header.last_offset_delta),
        });
        if self.producers.len() > PRODUCERS_PER_PARTITION_MAX {
            if let Some(oldest) = self
                .producers
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(&id, _)| id)
            {
                self.producers.remove(&oldest);
            }
        }
    }

    /// Forgets batches at or after `offset` (the log was truncated).
    pub fn truncate_to(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|batch| batch.last_offset < offset);
        }
        self.producers.retain(|_, entry| !entry.batches.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, epoch: i16, base_sequence: i32, records: i32) -> BatchHeader {
        let bytes = strom_engine::batch::build::build_batch(
            0,
            records,
            1,
            0,
            producer_id,
            epoch,
            base_sequence,
        );
        BatchHeader::parse(&bytes).expect("header")
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut table = ProducerStateTable::default();
        let first = header(7, 0, 0, 3);
        assert_eq!(table.check(&first), Ok(SequenceDecision::Append));
        table.record(&first, 100);
        let second = header(7, 0, 3, 2);
        assert_eq!(table.check(&second), Ok(SequenceDecision::Append));
        table.record(&second, 103);
        assert_eq!(
            table.check(&first),
            Ok(SequenceDecision::Duplicate {
                first_offset: 100,
                last_offset: 102
            })
        );
        assert_eq!(
            table.check(&second),
            Ok(SequenceDecision::Duplicate {
                first_offset: 103,
                last_offset: 104
            })
        );
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused() {
        let mut table = ProducerStateTable::default();
        assert_eq!(
            table.check(&header(1, 0, 5, 1)),
            Err(SequenceError::OutOfOrderSequence {
                expected: 0,
                got: 5
            })
        );
        table.record(&header(1, 2, 0, 1), 0);
        assert_eq!(
            table.check(&header(1, 2, 2, 1)),
            Err(SequenceError::OutOfOrderSequence {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(
            table.check(&header(1, 1, 1, 1)),
            Err(SequenceError::InvalidProducerEpoch { current: 2, got: 1 })
        );
        // A new epoch starts again at 0.
        assert_eq!(
            table.check(&header(1, 3, 0, 1)),
            Ok(SequenceDecision::Append)
        );
        assert!(table.check(&header(1, 3, 1, 1)).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_truncation_forgets() {
        let mut table = ProducerStateTable::default();
        for index in 0..7 {
            table.record(&header(9, 0, index, 1), i64::from(index));
        }
        assert!(
            table.check(&header(9, 0, 0, 1)).is_err(),
            "too old to be recognised"
        );
        assert_eq!(
            table.check(&header(9, 0, 6, 1)),
            Ok(SequenceDecision::Duplicate {
                first_offset: 6,
                last_offset: 6
            })
        );
        table.truncate_to(6);
        assert_eq!(
            table.check(&header(9, 0, 6, 1)),
            Ok(SequenceDecision::Append)
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut table = ProducerStateTable::default();
        table.record(&header(4, 0, i32::MAX, 1), 0);
        assert_eq!(
            table.check(&header(4, 0, 0, 1)),
            Ok(SequenceDecision::Append)
        );
    }
}
