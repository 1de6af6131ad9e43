//! Log lines for refused requests, at most one per second per cause, each with the number of
//! refusals of that cause it stands for. A client retrying a refused produce in a tight loop
//! (or a scanner sending garbage) would otherwise write a line per request and bury everything
//! else in the log.
//!
//! A cause is what was refused and why (a static label and the Kafka error code). The limit is
//! per shard: each shard thread keeps its own table (no lock, no shared cache line), so a broker
//! with N shards writes at most N lines a second per cause.

use std::cell::RefCell;
use std::collections::HashMap;

/// Least time between two lines of one cause on one shard.
const LINE_INTERVAL_MS: i64 = 1000;
/// Causes remembered per shard. Causes are a static label and an error code, so real traffic
/// has a few dozen; the bound only guards memory: when full, the table starts over (which may
/// let one extra line per cause through).
const CAUSES_MAX: usize = 1024;

/// A refusal's cause: what was refused, and the Kafka error code (or -1 when there is none).
pub type Cause = (&'static str, i16);

struct Seen {
    last_line_ms: i64,
    /// Refusals since that line that were not logged.
    suppressed: u64,
}

/// The per-cause state: decides whether a refusal gets a line.
#[derive(Default)]
pub struct RefusalLimiter {
    causes: HashMap<Cause, Seen>,
}

impl RefusalLimiter {
    /// `Some(n)`: log this refusal now, noting that `n` earlier ones of the same cause were not
    /// logged; `None`: count it and stay quiet.
    pub fn admit(&mut self, cause: Cause, now_ms: i64) -> Option<u64> {
        if self.causes.len() >= CAUSES_MAX && !self.causes.contains_key(&cause) {
            self.causes.clear();
        }
        match self.causes.get_mut(&cause) {
            Some(seen) if now_ms - seen.last_line_ms < LINE_INTERVAL_MS => {
                seen.suppressed += 1;
                None
            }
            Some(seen) => {
                let suppressed = std::mem::take(&mut seen.suppressed);
                seen.last_line_ms = now_ms;
                Some(suppressed)
            }
            None => {
                self.causes.insert(
                    cause,
                    Seen {
                        last_line_ms: now_ms,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

thread_local! {
    static LIMITER: RefCell<RefusalLimiter> = RefCell::new(RefusalLimiter::default());
}

/// This shard's decision for a refusal of `cause` now (see [`RefusalLimiter::admit`]).
pub fn admit(cause: Cause) -> Option<u64> {
    let now_ms = super::now_ms();
    LIMITER.with(|limiter| limiter.borrow_mut().admit(cause, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_second_per_cause_with_the_count_it_stands_for() {
        let mut limiter = RefusalLimiter::default();
        let produce = ("produce refused", 6);
        assert_eq!(limiter.admit(produce, 1_000), Some(0));
        for at in 1_001..1_500 {
            assert_eq!(limiter.admit(produce, at), None);
        }
        // Another cause is not held back by the first.
        assert_eq!(limiter.admit(("produce refused", 3), 1_200), Some(0));
        assert_eq!(limiter.admit(produce, 1_999), None);
        assert_eq!(
            limiter.admit(produce, 2_000),
            Some(500),
            "the line after a second counts every refusal it did not log"
        );
        assert_eq!(limiter.admit(produce, 3_500), Some(0));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut limiter = RefusalLimiter::default();
        for code in 0..(CAUSES_MAX as i16 + 10) {
            assert_eq!(limiter.admit(("x", code), 0), Some(0));
        }
        assert!(limiter.causes.len() <= CAUSES_MAX);
    }
}
