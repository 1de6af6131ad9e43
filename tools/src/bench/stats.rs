//! Latency statistics on an HDR histogram (microsecond resolution, 3 significant digits).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded exactly; larger values are clamped to it (one hour).
const LATENCY_MAX_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// Latencies of one workload; merge per-task recorders with [`LatencyRecorder::merge`].
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    histogram: Histogram<u64>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    pub fn new() -> LatencyRecorder {
        // The bounds are constants that satisfy the crate's preconditions (low >= 1,
        // high >= 2 * low, digits <= 5), so construction cannot fail.
        let histogram = Histogram::new_with_bounds(1, LATENCY_MAX_US, SIGNIFICANT_DIGITS)
            .unwrap_or_else(|error| unreachable!("constant histogram bounds are valid: {error}"));
        LatencyRecorder { histogram }
    }

    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(micros.clamp(1, LATENCY_MAX_US));
    }

    pub fn record_micros(&mut self, micros: u64) {
        self.histogram
            .saturating_record(micros.clamp(1, LATENCY_MAX_US));
    }

    pub fn merge(&mut self, other: &LatencyRecorder) {
        // Same bounds on both sides, so addition cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.histogram.len(),
            mean_ms: self.histogram.mean() / 1000.0,
            p50_ms: ms(self.histogram.value_at_quantile(0.50)),
            p99_ms: ms(self.histogram.value_at_quantile(0.99)),
            p999_ms: ms(self.histogram.value_at_quantile(0.999)),
            max_ms: ms(self.histogram.max()),
        }
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut recorder = LatencyRecorder::new();
        for micros in 1..=10_000u64 {
            recorder.record_micros(micros);
        }
        let summary = recorder.summary();
        assert_eq!(summary.count, 10_000);
        let close = |actual: f64, expected: f64| (actual - expected).abs() <= expected * 0.002;
        assert!(close(summary.p50_ms, 5.0), "{summary:?}");
        assert!(close(summary.p99_ms, 9.9), "{summary:?}");
        assert!(close(summary.p999_ms, 9.99), "{summary:?}");
        assert!(close(summary.max_ms, 10.0), "{summary:?}");
        assert!(close(summary.mean_ms, 5.0005), "{summary:?}");
    }

    #[test]
    fn merging_and_clamping() {
        let mut a = LatencyRecorder::new();
        let mut b = LatencyRecorder::new();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_secs(7200)); // beyond the max: clamped, not lost
        b.record(Duration::ZERO); // below the min: counted as 1 µs
        a.merge(&b);
        let summary = a.summary();
        assert_eq!(summary.count, 3);
        assert!(
            (summary.max_ms - 3_600_000.0).abs() / 3_600_000.0 < 0.001,
            "{summary:?}"
        );
        assert_eq!(LatencyRecorder::new().summary(), LatencySummary::default());
    }
}
