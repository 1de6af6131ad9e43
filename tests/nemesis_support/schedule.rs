//! A seeded schedule of faults: the same seed gives the same faults, in the same order, with
//! the same durations (the timing of their effects still depends on the machine).

use std::time::Duration;

/// One fault, held for `hold` and then healed, followed by `quiet` without a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub fault: Fault,
    pub hold: Duration,
    pub quiet: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The broker's link goes down: it loses ZooKeeper, its peers and the clients.
    Isolate { broker: u8 },
    /// Its packets to and from ZooKeeper and the other brokers are dropped; clients still
    /// reach it (a deposed leader must not acknowledge `acks=all` writes).
    CutFromCluster { broker: u8 },
    /// A slow, lossy link: bandwidth limited (queueing delay up to a bound) and packets lost.
    Degrade {
        broker: u8,
        rate_kbit: u32,
        queue_delay_ms: u32,
        loss_percent: u32,
    },
    /// `kill -9`; restarted when the hold ends.
    Kill { broker: u8 },
    /// SIGSTOP; SIGCONT when the hold ends.
    Pause { broker: u8 },
    /// The broker currently leading the most partitions is killed (the costliest crash).
    KillALeader,
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Isolate { .. } => "isolate",
            Fault::CutFromCluster { .. } => "cut from cluster",
            Fault::Degrade { .. } => "degrade",
            Fault::Kill { .. } => "kill -9",
            Fault::Pause { .. } => "pause",
            Fault::KillALeader => "kill -9 a leader",
        }
    }
}

/// xorshift64*: small, seedable, and good enough to pick faults.
pub struct Rng(u64);

impl Rng {
    /// Seeds through splitmix64, so nearby seeds (e.g. from the clock) give unrelated streams.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)).max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// Faults for about `total` of run time on brokers `1..=brokers`. One fault at a time, each
/// held long enough to outlast a ZooKeeper session of `session_timeout` some of the time (so
/// leaderships move) and short enough other times (so they do not).
pub fn schedule(seed: u64, brokers: u8, total: Duration, session_timeout: Duration) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let session_ms = session_timeout.as_millis() as u64;
    let mut steps = Vec::new();
    let mut elapsed = Duration::ZERO;
    while elapsed < total {
        let broker = rng.between(1, u64::from(brokers)) as u8;
        let fault = match rng.between(0, 5) {
            0 => Fault::Isolate { broker },
            1 => Fault::Degrade {
                broker,
                rate_kbit: rng.between(1_000, 20_000) as u32,
                queue_delay_ms: rng.between(20, 400) as u32,
                loss_percent: rng.between(0, 30) as u32,
            },
            2 => Fault::Kill { broker },
            3 => Fault::Pause { broker },
            4 => Fault::CutFromCluster { broker },
            _ => Fault::KillALeader,
        };
        let hold = Duration::from_millis(rng.between(session_ms / 3, session_ms * 2));
        let quiet = Duration::from_millis(rng.between(1_000, session_ms));
        elapsed += hold + quiet;
        steps.push(Step { fault, hold, quiet });
    }
    steps
}
