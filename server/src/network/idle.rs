//! `connections.max.idle.ms`: a connection that has no request in flight and has neither
//! sent nor been sent a byte for that long is closed, so clients that connect and go quiet
//! (or vanish without a FIN) do not hold a descriptor and a connection slot forever.
//!
//! A watchdog task per connection sleeps until the idle deadline; the reader and the writer
//! only stamp the time of their last byte ([`Activity::touch`], a `Cell` write), so idle
//! tracking costs nothing per request. A request in flight (a long-polling fetch, a produce
//! waiting for `acks=all`) keeps the connection alive whatever its age. Closing is a socket
//! shutdown: the reader's pending read then ends, and the connection winds down as if the
//! client had closed it.

use std::cell::Cell;
use std::time::Duration;

use tokio::time::Instant;

/// When the connection last moved a byte.
#[derive(Debug)]
pub struct Activity {
    last: Cell<Instant>,
}

impl Activity {
    pub fn new() -> Self {
        Activity {
            last: Cell::new(Instant::now()),
        }
    }

    pub fn touch(&self) {
        self.last.set(Instant::now());
    }

    pub fn last(&self) -> Instant {
        self.last.get()
    }
}

/// What the watchdog does when it wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleVerdict {
    /// Idle for the whole limit with nothing in flight: close.
    Close,
    /// Sleep until this instant and look again.
    WaitUntil(Instant),
}

/// Decides from the last activity, the time now and the requests in flight.
pub fn idle_verdict(
    last_activity: Instant,
    now: Instant,
    idle_max: Duration,
    in_flight: usize,
) -> IdleVerdict {
    let deadline = last_activity + idle_max;
    if now < deadline {
        return IdleVerdict::WaitUntil(deadline);
    }
    if in_flight > 0 {
        // Work in flight is activity: look again a whole period later.
        return IdleVerdict::WaitUntil(now + idle_max);
    }
    IdleVerdict::Close
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_connection_closes_only_after_the_whole_limit_with_nothing_in_flight() {
        let start = Instant::now();
        let idle = Duration::from_millis(1000);
        assert_eq!(
            idle_verdict(start, start + Duration::from_millis(999), idle, 0),
            IdleVerdict::WaitUntil(start + idle)
        );
        assert_eq!(
            idle_verdict(start, start + idle, idle, 0),
            IdleVerdict::Close
        );
        let late = start + Duration::from_millis(1500);
        assert_eq!(
            idle_verdict(start, late, idle, 1),
            IdleVerdict::WaitUntil(late + idle),
            "a request in flight keeps it open"
        );
    }
}
