//! Broker-wide connection limits: `max.connections` and `max.connections.per.ip`.
//!
//! Every shard accepts on the same port, so the counts are shared (atomics, and a mutex-held
//! map for the per-IP counts, touched only on accept and close, never per request). A
//! connection accepted past a limit is closed at once: the client sees its connection end and
//! retries later, and the broker holds nothing for it (Kafka's per-IP limit behaves the same).
//!
//! Invariant: `open` equals the number of live [`ConnectionPermit`]s, and each IP's count the
//! number of live permits for that IP (a permit gives its place back when dropped).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max.connections` connections are open.
    Broker { max: u32 },
    /// `max.connections.per.ip` connections are open from this address.
    PerIp { max: u32 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Broker { max } => write!(f, "max.connections={max} reached"),
            Refusal::PerIp { max } => write!(f, "max.connections.per.ip={max} reached"),
        }
    }
}

/// The counts behind the two limits.
#[derive(Debug)]
pub struct ConnectionLimits {
    max: u32,
    max_per_ip: u32,
    open: AtomicU32,
    /// Open connections per IP; only kept when `max_per_ip` limits anything. An entry is
    /// removed when its count reaches 0, so the map holds at most `max` entries.
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

/// One admitted connection's place under the limits, given back on drop.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max: u32, max_per_ip: u32) -> Self {
        ConnectionLimits {
            max,
            max_per_ip,
            open: AtomicU32::new(0),
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    fn limits_per_ip(&self) -> bool {
        self.max_per_ip < self.max
    }

    /// Connections open now, broker-wide.
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::Relaxed)
    }

    /// Admits a connection from `ip`, or says which limit refuses it.
    pub fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            });
        if admitted.is_err() {
            return Err(Refusal::Broker { max: self.max });
        }
        if self.limits_per_ip() {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let count = per_ip.entry(ip).or_insert(0);
            if *count >= self.max_per_ip {
                drop(per_ip);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::PerIp {
                    max: self.max_per_ip,
                });
            }
            *count += 1;
        }
        Ok(ConnectionPermit {
            limits: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let limits = &self.limits;
        if limits.limits_per_ip() {
            let mut per_ip = limits.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = per_ip.get_mut(&self.ip) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&self.ip);
                }
            }
        }
        let before = limits.open.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a permit was given back twice");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn the_broker_limit_refuses_past_max_and_frees_on_drop() {
        let limits = Arc::new(ConnectionLimits::new(2, u32::MAX));
        let first = limits.try_admit(ip(1)).expect("first");
        let _second = limits.try_admit(ip(2)).expect("second");
        assert_eq!(
            limits.try_admit(ip(3)).err(),
            Some(Refusal::Broker { max: 2 })
        );
        assert_eq!(limits.open(), 2);
        drop(first);
        assert_eq!(limits.open(), 1);
        assert!(
            limits.try_admit(ip(3)).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn the_per_ip_limit_counts_each_address_apart() {
        let limits = Arc::new(ConnectionLimits::new(10, 2));
        let a1 = limits.try_admit(ip(1)).expect("a1");
        let _a2 = limits.try_admit(ip(1)).expect("a2");
        assert_eq!(
            limits.try_admit(ip(1)).err(),
            Some(Refusal::PerIp { max: 2 })
        );
        assert_eq!(limits.open(), 2, "a refused connection holds no place");
        let _b1 = limits.try_admit(ip(2)).expect("another address");
        drop(a1);
        assert!(limits.try_admit(ip(1)).is_ok());
        drop(limits.try_admit(ip(7)).expect("admitted"));
        assert!(
            !limits.per_ip.lock().expect("lock").contains_key(&ip(7)),
            "an address with no connection leaves the map"
        );
    }
}
