//! The counters one shard keeps on its request path: plain cells in the shard's own state,
//! written only by the shard's thread (no lock, no atomic, no cache line shared with another
//! core). A scrape reads them by sending the shard a message (`gather`), and sums the shards.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use super::histogram::{HistogramSnapshot, LatencyHistogram};

/// Api keys counted per api (Kafka's keys are below 100; a larger key is refused by the
/// dispatcher before it is served, and is not counted per api).
pub const API_KEY_SLOTS: usize = 128;
/// Distinct (api, error code) pairs counted: Kafka's error codes and api keys are both small
/// closed sets, so this is never reached by a real broker; it bounds the table regardless.
pub const ERROR_SERIES_MAX: usize = 4096;

/// One api's counters on one shard.
#[derive(Debug, Default)]
struct ApiMetrics {
    requests: Cell<u64>,
    /// From the frame being read off the socket to its dispatch.
    queue_time: LatencyHistogram,
    /// From dispatch to the response being ready (Kafka's local plus remote time).
    handle_time: LatencyHistogram,
    /// From the response being ready to its bytes written to the socket.
    send_time: LatencyHistogram,
}

/// One shard's request-path counters.
#[derive(Debug)]
pub struct ShardMetrics {
    apis: Box<[ApiMetrics]>,
    /// (api key, error code) → responses (or partitions of a response) with that error.
    errors: RefCell<HashMap<(i16, i16), u64>>,
    connections: Cell<u64>,
    /// Record bytes sent to follower replicas (kept apart from consumers' bytes out, as Kafka
    /// keeps ReplicationBytesOutPerSec apart from BytesOutPerSec).
    replication_bytes_out: Cell<u64>,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics {
            apis: (0..API_KEY_SLOTS).map(|_| ApiMetrics::default()).collect(),
            errors: RefCell::new(HashMap::new()),
            connections: Cell::new(0),
            replication_bytes_out: Cell::new(0),
        }
    }
}

fn add(cell: &Cell<u64>, amount: u64) {
    cell.set(cell.get().wrapping_add(amount));
}

/// The api key of a request frame (its first two bytes), as Kafka's header starts.
pub fn frame_api_key(frame: &[u8]) -> i16 {
    match frame {
        [high, low, ..] => i16::from_be_bytes([*high, *low]),
        _ => -1,
    }
}

impl ShardMetrics {
    fn api(&self, api_key: i16) -> Option<&ApiMetrics> {
        usize::try_from(api_key)
            .ok()
            .and_then(|slot| self.apis.get(slot))
    }

    /// A request of `api_key` was dispatched after waiting `queue_time` in its connection's
    /// queue.
    pub fn on_dispatched(&self, api_key: i16, queue_time: Duration) {
        if let Some(api) = self.api(api_key) {
            add(&api.requests, 1);
            api.queue_time.observe(queue_time);
        }
    }

    /// A request's response is ready, `handle_time` after its dispatch.
    pub fn on_completed(&self, api_key: i16, handle_time: Duration) {
        if let Some(api) = self.api(api_key) {
            api.handle_time.observe(handle_time);
        }
    }

    /// A response was written, `send_time` after it was ready.
    pub fn on_sent(&self, api_key: i16, send_time: Duration) {
        if let Some(api) = self.api(api_key) {
            api.send_time.observe(send_time);
        }
    }

    /// A response of `api_key` (or one partition of it) carries `error_code` (0 counts nothing).
    pub fn on_error(&self, api_key: i16, error_code: i16) {
        if error_code == 0 {
            return;
        }
        let mut errors = self.errors.borrow_mut();
        if let Some(count) = errors.get_mut(&(api_key, error_code)) {
            *count = count.wrapping_add(1);
        } else if errors.len() < ERROR_SERIES_MAX {
            errors.insert((api_key, error_code), 1);
        }
    }

    /// Record bytes sent to a follower replica.
    pub fn on_replicated(&self, bytes: usize) {
        add(&self.replication_bytes_out, bytes as u64);
    }

    pub fn on_connection_opened(&self) {
        add(&self.connections, 1);
    }

    pub fn on_connection_closed(&self) {
        let open = self.connections.get();
        assert!(open > 0, "a connection closed that was never opened");
        self.connections.set(open - 1);
    }

    /// The counters as they stand.
    pub fn snapshot(&self) -> RequestPathSnapshot {
        let apis = self
            .apis
            .iter()
            .zip(0i16..)
            .filter(|(api, _)| api.requests.get() > 0)
            .map(|(api, api_key)| ApiSnapshot {
                api_key,
                requests: api.requests.get(),
                queue_time: api.queue_time.snapshot(),
                handle_time: api.handle_time.snapshot(),
                send_time: api.send_time.snapshot(),
            })
            .collect();
        RequestPathSnapshot {
            apis,
            errors: self
                .errors
                .borrow()
                .iter()
                .map(|(&(api_key, error_code), &count)| ErrorSample {
                    api_key,
                    error_code,
                    count,
                })
                .collect(),
            connections: self.connections.get(),
            replication_bytes_out: self.replication_bytes_out.get(),
        }
    }
}

/// One api's counters on one shard at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSnapshot {
    pub api_key: i16,
    pub requests: u64,
    pub queue_time: HistogramSnapshot,
    pub handle_time: HistogramSnapshot,
    pub send_time: HistogramSnapshot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorSample {
    pub api_key: i16,
    pub error_code: i16,
    pub count: u64,
}

/// A shard's request-path counters at one moment (sent to the scraper).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestPathSnapshot {
    pub apis: Vec<ApiSnapshot>,
    pub errors: Vec<ErrorSample>,
    pub connections: u64,
    pub replication_bytes_out: u64,
}

/// Events deep in a shard's replication code, counted in thread-locals (each shard is one
/// thread): as cheap as a field of the shard's state, without threading the state through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardEvents {
    pub isr_shrinks: u64,
    pub isr_expands: u64,
}

thread_local! {
    static ISR_SHRINKS: Cell<u64> = const { Cell::new(0) };
    static ISR_EXPANDS: Cell<u64> = const { Cell::new(0) };
}

/// A leader on this shard wrote a smaller (`shrank`) or larger ISR.
pub fn count_isr_change(old_len: usize, new_len: usize) {
    if new_len < old_len {
        ISR_SHRINKS.with(|count| add(count, 1));
    } else if new_len > old_len {
        ISR_EXPANDS.with(|count| add(count, 1));
    }
}

/// This thread's (shard's) events.
pub fn shard_events() -> ShardEvents {
    ShardEvents {
        isr_shrinks: ISR_SHRINKS.with(Cell::get),
        isr_expands: ISR_EXPANDS.with(Cell::get),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_api_with_their_latencies() {
        let metrics = ShardMetrics::default();
        metrics.on_dispatched(0, Duration::from_micros(10));
        metrics.on_dispatched(0, Duration::from_micros(10));
        metrics.on_completed(0, Duration::from_millis(2));
        metrics.on_sent(0, Duration::from_micros(70));
        metrics.on_dispatched(1, Duration::ZERO);
        // Out of range: ignored, not a panic.
        metrics.on_dispatched(-1, Duration::ZERO);
        metrics.on_dispatched(i16::MAX, Duration::ZERO);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.apis.len(), 2);
        assert_eq!(snapshot.apis[0].api_key, 0);
        assert_eq!(snapshot.apis[0].requests, 2);
        assert_eq!(snapshot.apis[0].queue_time.count(), 2);
        assert_eq!(snapshot.apis[0].handle_time.sum_us, 2000);
        assert_eq!(snapshot.apis[0].send_time.count(), 1);
        assert_eq!(snapshot.apis[1].requests, 1);
    }

    #[test]
    fn errors_count_only_failures() {
        let metrics = ShardMetrics::default();
        metrics.on_error(0, 0);
        metrics.on_error(0, 6);
        metrics.on_error(0, 6);
        metrics.on_error(1, 3);
        let mut errors = metrics.snapshot().errors;
        errors.sort_by_key(|error| (error.api_key, error.error_code));
        assert_eq!(
            errors,
            vec![
                ErrorSample {
                    api_key: 0,
                    error_code: 6,
                    count: 2
                },
                ErrorSample {
                    api_key: 1,
                    error_code: 3,
                    count: 1
                },
            ]
        );
    }

    #[test]
    fn connections_go_up_and_down() {
        let metrics = ShardMetrics::default();
        metrics.on_connection_opened();
        metrics.on_connection_opened();
        metrics.on_connection_closed();
        assert_eq!(metrics.snapshot().connections, 1);
    }

    #[test]
    fn isr_changes_are_counted_by_direction() {
        let before = shard_events();
        count_isr_change(3, 2);
        count_isr_change(2, 3);
        count_isr_change(2, 3);
        count_isr_change(3, 3);
        let after = shard_events();
        assert_eq!(after.isr_shrinks - before.isr_shrinks, 1);
        assert_eq!(after.isr_expands - before.isr_expands, 2);
    }

    #[test]
    fn the_api_key_is_the_frames_first_two_bytes() {
        assert_eq!(frame_api_key(&[0, 1, 0, 12]), 1);
        assert_eq!(frame_api_key(&[0]), -1);
    }
}
