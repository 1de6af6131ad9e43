//! Allocation of producer ids (InitProducerId). Ids are handed out from blocks reserved in the
//! coordination store (`/latest_producer_id_block`, as Kafka keeps it), so ids are never reused
//! across restarts and, later, across brokers.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::coordination::{CoordinationError, CoordinationStore, CreateMode};

const BLOCK_PATH: &str = "/latest_producer_id_block";
/// Ids reserved per store write.
const BLOCK_SIZE: i64 = 1000;

struct Block {
    next: i64,
    end: i64,
}

pub struct ProducerIdAllocator {
    store: Arc<CoordinationStore>,
    block: Mutex<Block>,
}

impl ProducerIdAllocator {
    pub fn new(store: Arc<CoordinationStore>) -> Self {
        ProducerIdAllocator {
            store,
            block: Mutex::new(Block { next: 0, end: 0 }),
        }
    }

    /// A producer id never handed out before.
    pub fn allocate(&self) -> Result<i64, CoordinationError> {
        let mut block = self
            .block
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if block.next >= block.end {
            let (start, end) = self.reserve_block()?;
            *block = Block { next: start, end };
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }

    /// Reserves the next block with a versioned write, so two allocators never get the same one.
    fn reserve_block(&self) -> Result<(i64, i64), CoordinationError> {
        loop {
            match self.store.get(BLOCK_PATH) {
                Ok((data, stat)) => {
                    let previous_end: i64 = std::str::from_utf8(&data)
                        .ok()
                        .and_then(|text| text.trim().parse().ok())
                        .unwrap_or(0);
                    let end = previous_end + BLOCK_SIZE;
                    match self.store.set(
                        BLOCK_PATH,
                        Bytes::from(end.to_string()),
                        Some(stat.version),
                    ) {
                        Ok(_) => return Ok((previous_end, end)),
                        Err(CoordinationError::BadVersion { .. }) => continue,
                        Err(error) => return Err(error),
                    }
                }
                Err(CoordinationError::NoNode { .. }) => {
                    match self.store.create(
                        BLOCK_PATH,
                        Bytes::from(BLOCK_SIZE.to_string()),
                        CreateMode::Persistent,
                    ) {
                        Ok(_) => return Ok((0, BLOCK_SIZE)),
                        Err(CoordinationError::NodeExists { .. }) => continue,
                        Err(error) => return Err(error),
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::StoreLimits;

    #[test]
    fn ids_are_unique_across_blocks_and_allocators() {
        let store = Arc::new(CoordinationStore::in_memory(StoreLimits::default()));
        let first = ProducerIdAllocator::new(store.clone());
        let ids: Vec<i64> = (0..1500).map(|_| first.allocate().expect("id")).collect();
        let second = ProducerIdAllocator::new(store);
        let later = second.allocate().expect("id");
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(
            later >= 2000,
            "a restarted allocator starts after every reserved block: {later}"
        );
    }
}
