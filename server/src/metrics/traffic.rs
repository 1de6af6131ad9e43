//! Bytes and records through each partition, counted where the data path already holds the
//! partition, so counting costs no lookup: produce on the partition itself (its owner shard),
//! consumer fetches on the topic's entry in the metadata cache of the consumer connection's shard.
//! Both are plain cells written by one shard only; a scrape reads them by message and sums.

use std::cell::Cell;
use std::rc::Rc;

/// Bytes and records one way through one partition, on one shard.
#[derive(Debug, Default)]
pub struct TrafficCounter {
    bytes: Cell<u64>,
    records: Cell<u64>,
}

impl TrafficCounter {
    pub fn add(&self, bytes: usize, records: u64) {
        self.bytes.set(self.bytes.get().wrapping_add(bytes as u64));
        self.records.set(self.records.get().wrapping_add(records));
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.get()
    }

    pub fn records(&self) -> u64 {
        self.records.get()
    }

    fn copy_from(&self, other: &TrafficCounter) {
        self.bytes.set(other.bytes());
        self.records.set(other.records());
    }
}

/// What consumers fetched of each partition of one topic through one shard, by partition index.
/// Held by the topic's entry in the shard's metadata cache (one slot per partition, so its size
/// is the topic's partition count).
pub type TopicConsumed = Rc<[TrafficCounter]>;

/// The counters of a topic's new metadata entry: the previous entry's (same topic id) when there
/// was one, so a metadata change (a leader, an ISR) does not reset them; extended when the topic
/// grew.
pub fn carry_over(previous: Option<&TopicConsumed>, partitions: usize) -> TopicConsumed {
    match previous {
        Some(previous) if previous.len() == partitions => previous.clone(),
        _ => {
            let fresh: TopicConsumed = (0..partitions).map(|_| TrafficCounter::default()).collect();
            for (new, old) in fresh
                .iter()
                .zip(previous.into_iter().flat_map(|old| old.iter()))
            {
                new.copy_from(old);
            }
            fresh
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_survive_a_metadata_change_and_a_topic_growing() {
        let first = carry_over(None, 2);
        first[1].add(100, 3);
        let same = carry_over(Some(&first), 2);
        assert!(
            Rc::ptr_eq(&first, &same),
            "same partitions: the same counters"
        );
        let grown = carry_over(Some(&first), 4);
        assert_eq!(grown.len(), 4);
        assert_eq!((grown[1].bytes(), grown[1].records()), (100, 3));
        assert_eq!(grown[3].bytes(), 0);
    }
}
