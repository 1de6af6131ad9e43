//! Allocation of producer ids (InitProducerId). Ids are handed out from blocks the control
//! plane reserves in the coordination store (`/latest_producer_id_block`, as Kafka keeps it),
//! with a versioned write, so ids are never reused across restarts or brokers.

use std::sync::Mutex;

use crate::broker::topics::TopicError;
use crate::control_plane::ControlPlane;

/// The ids left in the current block: `next..=last`.
struct Block {
    next: i64,
    last: i64,
}

pub struct ProducerIdAllocator {
    control: ControlPlane,
    block: Mutex<Block>,
}

impl ProducerIdAllocator {
    pub fn new(control: ControlPlane) -> Self {
        ProducerIdAllocator {
            control,
            block: Mutex::new(Block { next: 0, last: -1 }),
        }
    }

    fn take(&self) -> Option<i64> {
        let mut block = self
            .block
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (block.next <= block.last).then(|| {
            block.next += 1;
            block.next - 1
        })
    }

    /// A producer id never handed out before.
    pub async fn allocate(&self) -> Result<i64, TopicError> {
        loop {
            if let Some(id) = self.take() {
                return Ok(id);
            }
            // Two shards may both run out and each reserve a block: a few ids are skipped,
            // none is handed out twice.
            let reserved = self.control.reserve_producer_ids().await?;
            let mut block = self
                .block
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if block.next > block.last {
                *block = Block {
                    next: reserved.block_start,
                    last: reserved.block_end,
                };
            }
        }
    }
}
