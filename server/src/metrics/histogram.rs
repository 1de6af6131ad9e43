//! A latency histogram kept by one shard: fixed buckets of plain cells, no lock, no atomic.
//! Shards' histograms are summed when scraped ([`HistogramSnapshot::merge`]).

use std::cell::Cell;
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (the last bucket, +Inf, is implicit). From 50 µs
/// (a request served from memory on this machine) to 10 s (past every request timeout a client
/// sets by default), about three buckets per decade.
pub const BUCKET_BOUNDS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];
/// Buckets including +Inf.
pub const BUCKETS: usize = BUCKET_BOUNDS_US.len() + 1;

const _: () = {
    // The bounds must increase, or a value could fall in the wrong bucket.
    let mut index = 1;
    while index < BUCKET_BOUNDS_US.len() {
        assert!(BUCKET_BOUNDS_US[index - 1] < BUCKET_BOUNDS_US[index]);
        index += 1;
    }
};

/// One shard's histogram. Not `Sync`: only its shard observes and reads it.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative).
    counts: [Cell<u64>; BUCKETS],
    sum_us: Cell<u64>,
}

impl LatencyHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKET_BOUNDS_US.partition_point(|&bound| bound < elapsed_us);
        let cell = &self.counts[bucket];
        cell.set(cell.get().wrapping_add(1));
        self.sum_us.set(self.sum_us.get().wrapping_add(elapsed_us));
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|bucket| self.counts[bucket].get()),
            sum_us: self.sum_us.get(),
        }
    }
}

/// A histogram's values at one moment, to send to the scraper and sum with other shards'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative), +Inf last.
    pub counts: [u64; BUCKETS],
    pub sum_us: u64,
}

impl HistogramSnapshot {
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine = mine.wrapping_add(theirs);
        }
        self.sum_us = self.sum_us.wrapping_add(other.sum_us);
    }

    pub fn count(&self) -> u64 {
        self.counts
            .iter()
            .fold(0, |total, count| total.wrapping_add(*count))
    }

    /// `(upper bound in seconds, observations in that bucket)` for the exposition, +Inf last.
    #[allow(clippy::cast_precision_loss, reason = "bounds are at most 10^7 µs")]
    pub fn buckets_seconds(&self) -> Vec<(f64, u64)> {
        BUCKET_BOUNDS_US
            .iter()
            .map(|&bound_us| bound_us as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts)
            .collect()
    }

    #[allow(
        clippy::cast_precision_loss,
        reason = "a sum of latencies, shown as seconds"
    )]
    pub fn sum_seconds(&self) -> f64 {
        self.sum_us as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(50)); // on the bound: first bucket
        histogram.observe(Duration::from_micros(51)); // second
        histogram.observe(Duration::from_secs(60)); // +Inf
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts[0], 1);
        assert_eq!(snapshot.counts[1], 1);
        assert_eq!(snapshot.counts[BUCKETS - 1], 1);
        assert_eq!(snapshot.count(), 3);
        assert_eq!(snapshot.sum_us, 50 + 51 + 60_000_000);
    }

    #[test]
    fn shards_sum() {
        let (one, two) = (LatencyHistogram::default(), LatencyHistogram::default());
        one.observe(Duration::from_millis(1));
        two.observe(Duration::from_millis(1));
        two.observe(Duration::from_millis(30));
        let mut total = one.snapshot();
        total.merge(&two.snapshot());
        assert_eq!(total.count(), 3);
        assert_eq!(total.sum_us, 32_000);
        let buckets = total.buckets_seconds();
        assert_eq!(buckets.len(), BUCKETS);
        assert_eq!(buckets[4], (0.001, 2));
        assert_eq!(buckets[9], (0.05, 1));
        assert!(buckets[BUCKETS - 1].0.is_infinite());
    }
}
