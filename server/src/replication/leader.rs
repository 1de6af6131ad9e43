//! [`LeaderState`]: a partition leader's view of its followers, the ISR and
//! the high watermark.
//!
//! The runtime feeds it every replica fetch ([`LeaderState::on_follower_fetch`]),
//! every local append ([`LeaderState::on_leader_append`]), a periodic
//! [`LeaderState::tick`], and the outcome of the ISR writes it proposes. It
//! answers with [`LeaderAction`]s: a new high watermark, an ISR write to make
//! (conditional on the znode version), or an ISR that is now committed.
//!
//! # Rules (Kafka's `Partition` and `Replica`, ZooKeeper mode with KIP-497)
//!
//! - A follower's log end offset (LEO) is the fetch offset of its latest
//!   replica fetch; unknown until it fetches in this leadership.
//! - A follower is *caught up* at time t when a fetch at t reaches the leader's
//!   LEO as of that fetch, or when a fetch reaches the leader's LEO as of the
//!   follower's *previous* fetch (then it was caught up at that previous
//!   fetch's time). The second half is Kafka's: under steady produce traffic
//!   the leader's LEO moves on between a response and the next fetch, so
//!   "reaches the LEO now" alone would mark a healthy follower as lagging.
//! - Shrink ([`LeaderState::tick`]): an ISR member other than the leader whose
//!   LEO differs from the leader's and that has not been caught up for more
//!   than `replica_lag_time_max_ms` leaves the ISR. So does (Strom's addition)
//!   a member whose LEO fell below the high watermark: it lost committed
//!   records (a restart with an unflushed tail) and must not be elected.
//! - Expand ([`LeaderState::on_follower_fetch`]): a follower outside the ISR
//!   joins when its LEO >= the high watermark and >= the start offset of the
//!   leader's current epoch (so it holds everything this leader wrote before
//!   its epoch and nothing from an older leader's divergent tail).
//! - At most one ISR write is in flight. While one is, no other change is
//!   proposed: a shrink or expansion due then waits for the next fetch or tick
//!   after the write settles. A failed write (lost a race with the controller,
//!   or an unknown outcome) keeps the leader blocked until it re-reads the
//!   znode ([`LeaderState::isr_from_store`]) or is replaced.
//! - High watermark = the smallest LEO over the *maximal ISR* (the leader
//!   included), never decreasing. See "The maximal ISR" below.
//! - Also in the minimum (Kafka's KAFKA-7128): followers outside the ISR that
//!   were caught up within `replica_lag_time_max_ms`. Without it, a follower
//!   catching up to an ISR of one under steady traffic never reaches the high
//!   watermark (which is the leader's LEO, always moving) and never rejoins.
//!   It only makes the high watermark lower, never unsafe.
//!
//! # The maximal ISR (KIP-497; Kafka's `IsrState.maximalIsr` in Partition.scala)
//!
//! While an ISR write is in flight the leader knows two ISRs: the committed
//! one (what the znode says, what the controller elects from) and the
//! proposed one. The high watermark is computed over their union:
//!
//! - Expansion in flight: the joining follower is counted at once. Adding a
//!   member only lowers the minimum, so this is safe whether the write lands
//!   or not; and it is required, because the moment the write lands the
//!   follower is electable, so the high watermark must never have passed its
//!   LEO in the meantime.
//! - Shrink in flight: the leaving follower is still counted (the committed,
//!   larger ISR) until the write is committed. Until then the controller may
//!   elect it; if the high watermark had moved past its LEO and it became
//!   leader (this leader dies, or the write loses a race), consumers would
//!   have seen records that are then lost. Once the shrink commits the high
//!   watermark may advance over the smaller ISR at once.
//!
//! `min.insync.replicas` counts the committed ISR only (what survives this
//! leader's death): [`LeaderState::can_accept_acks_all`] before an append,
//! [`LeaderState::acks_all_progress`] after it.

use thiserror::Error;

/// The settings a [`LeaderState`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    /// `replica.lag.time.max.ms`: a follower not caught up for longer leaves
    /// the ISR.
    pub replica_lag_time_max_ms: i64,
}

impl Default for LeaderConfig {
    /// Kafka's default (10 s).
    fn default() -> Self {
        Self {
            replica_lag_time_max_ms: 10_000,
        }
    }
}

impl LeaderConfig {
    /// How often the runtime should call [`LeaderState::tick`]: Kafka checks
    /// the ISR every `replica.lag.time.max.ms / 2`, so a lagging follower
    /// leaves at most 1.5 lag times after it was last caught up.
    pub fn tick_interval_ms(&self) -> i64 {
        (self.replica_lag_time_max_ms / 2).max(1)
    }
}

/// What a broker knows as it becomes leader of a partition: the
/// partition-state znode it read and its own log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderStart {
    /// This broker's id.
    pub leader: i32,
    /// The leader epoch of the znode that made this broker leader.
    pub leader_epoch: i32,
    /// Where this leader's epoch starts in its log: its LEO when it became
    /// leader (what `start_leader_epoch` recorded).
    pub epoch_start_offset: i64,
    /// The assigned replicas (this broker among them).
    pub replicas: Vec<i32>,
    /// The ISR from the znode (this broker among them).
    pub isr: Vec<i32>,
    /// The znode's version: every ISR write is conditional on it.
    pub isr_zk_version: i32,
    /// The log's high watermark as this broker knew it (checkpoint or what it
    /// learnt as a follower); clamped to `log_end_offset`.
    pub high_watermark: i64,
    /// The leader's log end offset now.
    pub log_end_offset: i64,
}

/// What the runtime must do after a call, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderAction {
    /// The high watermark rose to this offset: set it on the log, wake
    /// `acks=all` produces and consumer fetches waiting on it.
    HighWatermark(i64),
    /// Write the partition-state znode with this ISR (leader and leader epoch
    /// unchanged), conditional on its version being `expected_zk_version`;
    /// report the outcome with [`LeaderState::isr_write_done`] (the re-read
    /// after a failure must come after that report). After a
    /// success, also create an `/isr_change_notification` node.
    ProposeIsr {
        isr: Vec<i32>,
        expected_zk_version: i32,
    },
    /// This ISR is now committed: a write landed, or a read of the znode
    /// changed it or settled the write in flight (then it may be the ISR
    /// held before). Update what Metadata shows and re-check waiting
    /// `acks=all` produces ([`LeaderState::acks_all_progress`]).
    IsrChanged { isr: Vec<i32>, zk_version: i32 },
}

/// The partition state given to [`LeaderState::new`] or
/// [`LeaderState::isr_from_store`] cannot be this broker's as leader.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidLeaderState {
    #[error("the leader {leader} is not in the ISR {isr:?}")]
    LeaderNotInIsr { leader: i32, isr: Vec<i32> },
    #[error("the leader {leader} is not among the replicas {replicas:?}")]
    LeaderNotAReplica { leader: i32, replicas: Vec<i32> },
    #[error("ISR {isr:?} is not within the replicas {replicas:?}")]
    IsrOutsideReplicas { isr: Vec<i32>, replicas: Vec<i32> },
    #[error("broker {0} is listed twice")]
    Duplicate(i32),
}

/// A replica fetch the leader's state cannot take (the fetch handler answers
/// it with the error named on each variant and must not count it as progress).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FollowerFetchError {
    /// NOT_LEADER_OR_FOLLOWER: the fetcher is not an assigned follower.
    #[error("broker {0} is not a follower of this partition")]
    NotAFollower(i32),
    /// OFFSET_OUT_OF_RANGE: a fetch past the leader's log end.
    #[error("fetch offset {fetch_offset} is past the log end offset {log_end_offset}")]
    BeyondLogEnd {
        fetch_offset: i64,
        log_end_offset: i64,
    },
}

/// An `acks=all` produce refused before its append (NOT_ENOUGH_REPLICAS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the ISR has {isr_size} members, fewer than min.insync.replicas = {min_insync_replicas}")]
pub struct NotEnoughReplicas {
    pub isr_size: usize,
    pub min_insync_replicas: usize,
}

/// An ISR write did not land (a version conflict: the controller or another
/// leader wrote first; or its outcome is unknown). The runtime must re-read
/// the znode and call [`LeaderState::isr_from_store`], or drop this state if
/// the znode names another leader or leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the ISR write did not land")]
pub struct IsrWriteFailed;

/// Where an appended `acks=all` batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksAllProgress {
    /// The high watermark has not passed the batch yet (or it has, and an
    /// expansion in flight decides whether the ISR is large enough).
    Waiting,
    /// Replicated to the whole committed ISR, which is large enough.
    Done,
    /// Replicated, but the committed ISR shrank below `min.insync.replicas`
    /// while the produce waited: NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    NotEnoughReplicasAfterAppend,
}

/// What the leader knows about one follower (Kafka's `Replica` state).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Follower {
    id: i32,
    /// The fetch offset of its latest fetch; `None` before its first fetch in
    /// this leadership.
    log_end_offset: Option<i64>,
    /// When it was last caught up (see the module doc); `None`: never in this
    /// leadership (followers outside the ISR at the start).
    last_caught_up_ms: Option<i64>,
    /// Time and leader LEO of its latest fetch, for the "caught up as of the
    /// previous fetch" rule.
    last_fetch: Option<(i64, i64)>,
}

/// The one ISR write in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingIsr {
    /// The ISR proposed: the committed ISR plus one follower, or minus some.
    isr: Vec<i32>,
    expected_zk_version: i32,
    /// The write was reported failed: wait for a read of the znode.
    failed: bool,
}

/// A partition leader's replication state for one leader epoch. Build a new
/// one whenever this broker becomes leader (again).
///
/// Invariants (checked by [`LeaderState::check_invariants`]): the leader is in
/// the committed ISR; the committed and proposed ISRs are within the replicas
/// and without duplicates; the high watermark is at most the leader's LEO.
#[derive(Debug, Clone)]
pub struct LeaderState {
    config: LeaderConfig,
    leader: i32,
    leader_epoch: i32,
    epoch_start_offset: i64,
    replicas: Vec<i32>,
    /// The followers: every replica but the leader, in replica order.
    followers: Vec<Follower>,
    isr: Vec<i32>,
    isr_zk_version: i32,
    pending: Option<PendingIsr>,
    high_watermark: i64,
    /// The largest leader LEO reported (a fetch may report one read before a
    /// later append was reported).
    log_end_offset: i64,
}

fn check_membership(leader: i32, replicas: &[i32], isr: &[i32]) -> Result<(), InvalidLeaderState> {
    for (i, r) in replicas.iter().enumerate() {
        if replicas[..i].contains(r) {
            return Err(InvalidLeaderState::Duplicate(*r));
        }
    }
    for (i, r) in isr.iter().enumerate() {
        if isr[..i].contains(r) {
            return Err(InvalidLeaderState::Duplicate(*r));
        }
    }
    if !replicas.contains(&leader) {
        return Err(InvalidLeaderState::LeaderNotAReplica {
            leader,
            replicas: replicas.to_vec(),
        });
    }
    if !isr.contains(&leader) {
        return Err(InvalidLeaderState::LeaderNotInIsr {
            leader,
            isr: isr.to_vec(),
        });
    }
    if !isr.iter().all(|b| replicas.contains(b)) {
        return Err(InvalidLeaderState::IsrOutsideReplicas {
            isr: isr.to_vec(),
            replicas: replicas.to_vec(),
        });
    }
    Ok(())
}

impl LeaderState {
    /// The state of a broker that just became leader at `now_ms`. Followers
    /// in the ISR count as caught up now (they get a full lag time to fetch);
    /// every follower's LEO is unknown until it fetches, which holds the high
    /// watermark where it is until the whole ISR has fetched.
    pub fn new(
        start: LeaderStart,
        config: LeaderConfig,
        now_ms: i64,
    ) -> Result<Self, InvalidLeaderState> {
        check_membership(start.leader, &start.replicas, &start.isr)?;
        let followers = start
            .replicas
            .iter()
            .filter(|&&r| r != start.leader)
            .map(|&id| Follower {
                id,
                log_end_offset: None,
                last_caught_up_ms: start.isr.contains(&id).then_some(now_ms),
                last_fetch: None,
            })
            .collect();
        let state = Self {
            config,
            leader: start.leader,
            leader_epoch: start.leader_epoch,
            epoch_start_offset: start.epoch_start_offset,
            replicas: start.replicas,
            followers,
            isr: start.isr,
            isr_zk_version: start.isr_zk_version,
            pending: None,
            high_watermark: start.high_watermark.min(start.log_end_offset).max(0),
            log_end_offset: start.log_end_offset,
        };
        state.assert_invariants();
        Ok(state)
    }

    /// A replica fetch from `follower` at `fetch_offset` (its LEO) was served
    /// at `now_ms`; `leader_log_end_offset` is the leader's LEO when the fetch
    /// read the log. Call it only for fetches answered with records or an
    /// empty set: not for one answered with a diverging epoch or an error
    /// (the fetch offset is then no position in the leader's log).
    pub fn on_follower_fetch(
        &mut self,
        follower: i32,
        fetch_offset: i64,
        leader_log_end_offset: i64,
        now_ms: i64,
    ) -> Result<Vec<LeaderAction>, FollowerFetchError> {
        self.log_end_offset = self.log_end_offset.max(leader_log_end_offset);
        if fetch_offset > self.log_end_offset {
            return Err(FollowerFetchError::BeyondLogEnd {
                fetch_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        let f = self
            .followers
            .iter_mut()
            .find(|f| f.id == follower)
            .ok_or(FollowerFetchError::NotAFollower(follower))?;
        if fetch_offset >= leader_log_end_offset {
            f.last_caught_up_ms = f.last_caught_up_ms.max(Some(now_ms));
        } else if let Some((previous_ms, previous_leader_leo)) = f.last_fetch {
            if fetch_offset >= previous_leader_leo {
                f.last_caught_up_ms = f.last_caught_up_ms.max(Some(previous_ms));
            }
        }
        f.last_fetch = Some((now_ms, leader_log_end_offset));
        f.log_end_offset = Some(fetch_offset);

        let mut actions = Vec::new();
        self.maybe_expand(follower, now_ms, &mut actions);
        self.maybe_advance_high_watermark(now_ms, &mut actions);
        self.assert_invariants();
        Ok(actions)
    }

    /// The leader appended: its LEO is now `log_end_offset` (a smaller value
    /// than one reported before is ignored). With an ISR of one the high
    /// watermark follows at once.
    pub fn on_leader_append(&mut self, log_end_offset: i64, now_ms: i64) -> Vec<LeaderAction> {
        self.log_end_offset = self.log_end_offset.max(log_end_offset);
        let mut actions = Vec::new();
        self.maybe_advance_high_watermark(now_ms, &mut actions);
        self.assert_invariants();
        actions
    }

    /// The periodic check (every [`LeaderConfig::tick_interval_ms`]): proposes
    /// removing out-of-sync followers from the ISR, and lets the high
    /// watermark advance past followers whose "recently caught up" standing
    /// expired.
    pub fn tick(&mut self, log_end_offset: i64, now_ms: i64) -> Vec<LeaderAction> {
        self.log_end_offset = self.log_end_offset.max(log_end_offset);
        let mut actions = Vec::new();
        if self.pending.is_none() {
            let out: Vec<i32> = self
                .followers
                .iter()
                .filter(|f| self.isr.contains(&f.id) && self.is_out_of_sync(f, now_ms))
                .map(|f| f.id)
                .collect();
            if !out.is_empty() {
                let isr: Vec<i32> = self
                    .isr
                    .iter()
                    .copied()
                    .filter(|b| !out.contains(b))
                    .collect();
                self.propose(isr, &mut actions);
            }
        }
        self.maybe_advance_high_watermark(now_ms, &mut actions);
        self.assert_invariants();
        actions
    }

    /// The outcome of the ISR write proposed with `expected_zk_version`:
    /// `Ok(new_zk_version)` when it landed. Report every write's outcome,
    /// even of one a read has settled since: a result for another write than
    /// the one in flight is ignored (writes in flight at the same time have
    /// different expected versions, since a read settles a write only at a
    /// newer version or after its failure was reported), so a late failure of
    /// a superseded write is never taken for the current one's.
    pub fn isr_write_done(
        &mut self,
        expected_zk_version: i32,
        result: Result<i32, IsrWriteFailed>,
        now_ms: i64,
    ) -> Vec<LeaderAction> {
        let mut actions = Vec::new();
        let Some(pending) = self
            .pending
            .as_mut()
            .filter(|p| p.expected_zk_version == expected_zk_version)
        else {
            return actions;
        };
        match result {
            Err(IsrWriteFailed) => pending.failed = true,
            Ok(zk_version) => {
                let pending = self.pending.take().expect("checked above");
                if zk_version > self.isr_zk_version {
                    self.commit_isr(pending.isr, zk_version, &mut actions);
                } else {
                    // Not past the version held: a newer read was applied
                    // already. The write is settled all the same.
                    self.announce_isr(&mut actions);
                }
            }
        }
        self.maybe_advance_high_watermark(now_ms, &mut actions);
        self.assert_invariants();
        actions
    }

    /// The runtime read the partition-state znode and it still names this
    /// broker as leader in this leader epoch: take its ISR (the controller
    /// may have removed a dead broker; a failed write may have lost to it).
    /// A read older than the state held is ignored, and so is one at the
    /// held version while a write is in flight and not reported failed (the
    /// read may predate the write). An error means the state cannot be this
    /// leader's: the runtime must stop leading on it and re-read.
    pub fn isr_from_store(
        &mut self,
        isr: Vec<i32>,
        zk_version: i32,
        now_ms: i64,
    ) -> Result<Vec<LeaderAction>, InvalidLeaderState> {
        check_membership(self.leader, &self.replicas, &isr)?;
        let mut actions = Vec::new();
        let in_flight = self.pending.as_ref().is_some_and(|p| !p.failed);
        let newer =
            zk_version > self.isr_zk_version || (zk_version == self.isr_zk_version && !in_flight);
        if newer {
            let settled_a_write = self.pending.take().is_some();
            if isr != self.isr || zk_version != self.isr_zk_version {
                self.commit_isr(isr, zk_version, &mut actions);
            } else if settled_a_write {
                self.announce_isr(&mut actions);
            }
            self.maybe_advance_high_watermark(now_ms, &mut actions);
        }
        self.assert_invariants();
        Ok(actions)
    }

    /// Before appending an `acks=all` batch: NOT_ENOUGH_REPLICAS when the
    /// committed ISR is smaller than `min_insync_replicas`.
    pub fn can_accept_acks_all(&self, min_insync_replicas: usize) -> Result<(), NotEnoughReplicas> {
        if self.isr.len() < min_insync_replicas {
            return Err(NotEnoughReplicas {
                isr_size: self.isr.len(),
                min_insync_replicas,
            });
        }
        Ok(())
    }

    /// After appending an `acks=all` batch ending before `required_offset`
    /// (its last offset + 1): done once the high watermark reaches it, unless
    /// the committed ISR shrank below `min_insync_replicas` meanwhile. If it
    /// did and an expansion is in flight, the answer waits until that write
    /// settles. Kafka counts the maximal ISR here; Strom counts what is
    /// committed, so an acknowledged batch is always on `min_insync_replicas`
    /// electable replicas.
    ///
    /// The answer changes only when a call returns
    /// [`LeaderAction::HighWatermark`] or [`LeaderAction::IsrChanged`]:
    /// re-check waiting produces then (and time them out on their own).
    pub fn acks_all_progress(
        &self,
        required_offset: i64,
        min_insync_replicas: usize,
    ) -> AcksAllProgress {
        if self.high_watermark < required_offset {
            return AcksAllProgress::Waiting;
        }
        if self.isr.len() >= min_insync_replicas {
            return AcksAllProgress::Done;
        }
        // Until a read settles it, a failed expansion may have landed.
        let expanding = self
            .pending
            .as_ref()
            .is_some_and(|p| p.isr.len() > self.isr.len());
        if expanding {
            AcksAllProgress::Waiting
        } else {
            AcksAllProgress::NotEnoughReplicasAfterAppend
        }
    }

    /// The committed ISR (what the znode holds; what `min.insync.replicas`
    /// counts and Metadata shows).
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    /// The znode version of the committed ISR.
    pub fn isr_zk_version(&self) -> i32 {
        self.isr_zk_version
    }

    /// The ISR write in flight, if any: (proposed ISR, expected version).
    pub fn isr_write_in_flight(&self) -> Option<(&[i32], i32)> {
        self.pending
            .as_ref()
            .map(|p| (p.isr.as_slice(), p.expected_zk_version))
    }

    /// The committed ISR plus the members an ISR write in flight adds (the
    /// set the high watermark is computed over).
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut isr = self.isr.clone();
        if let Some(p) = &self.pending {
            isr.extend(p.isr.iter().filter(|b| !self.isr.contains(b)));
        }
        isr
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn leader(&self) -> i32 {
        self.leader
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    /// The LEO of `follower` as the leader knows it (its latest fetch offset).
    pub fn follower_log_end_offset(&self, follower: i32) -> Option<i64> {
        self.followers
            .iter()
            .find(|f| f.id == follower)
            .and_then(|f| f.log_end_offset)
    }

    /// Whether the committed ISR lacks some replica (under-replicated).
    pub fn is_under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }

    /// The invariants in the type's doc; tests call it after every step.
    pub fn check_invariants(&self) -> Result<(), String> {
        check_membership(self.leader, &self.replicas, &self.isr).map_err(|e| e.to_string())?;
        if let Some(p) = &self.pending {
            check_membership(self.leader, &self.replicas, &p.isr).map_err(|e| e.to_string())?;
            let expand = p.isr.len() > self.isr.len();
            let (small, large) = if expand {
                (&self.isr, &p.isr)
            } else {
                (&p.isr, &self.isr)
            };
            if !small.iter().all(|b| large.contains(b)) {
                return Err(format!(
                    "proposed ISR {:?} is neither an expansion nor a shrink of {:?}",
                    p.isr, self.isr
                ));
            }
        }
        if self.high_watermark > self.log_end_offset {
            return Err(format!(
                "high watermark {} past the log end {}",
                self.high_watermark, self.log_end_offset
            ));
        }
        Ok(())
    }

    fn assert_invariants(&self) {
        if let Err(e) = self.check_invariants() {
            panic!("replication leader state broken: {e}");
        }
    }

    /// Out of sync: lagging for longer than the lag time, or behind the high
    /// watermark (see the module doc).
    fn is_out_of_sync(&self, f: &Follower, now_ms: i64) -> bool {
        if f.log_end_offset
            .is_some_and(|leo| leo < self.high_watermark)
        {
            return true;
        }
        let at_log_end = f.log_end_offset == Some(self.log_end_offset);
        let lagging_since_ms = f.last_caught_up_ms.unwrap_or(i64::MIN);
        !at_log_end && now_ms.saturating_sub(lagging_since_ms) > self.config.replica_lag_time_max_ms
    }

    fn maybe_expand(&mut self, follower: i32, now_ms: i64, actions: &mut Vec<LeaderAction>) {
        if self.pending.is_some() || self.isr.contains(&follower) {
            return;
        }
        let Some(f) = self.followers.iter_mut().find(|f| f.id == follower) else {
            return;
        };
        let Some(leo) = f.log_end_offset else {
            return;
        };
        if leo < self.high_watermark || leo < self.epoch_start_offset {
            return;
        }
        // It holds everything committed: give it a full lag time from now to
        // reach the log end before the shrink rule judges it (otherwise a
        // follower that joined at the high watermark under traffic could be
        // removed at the next tick and flap).
        f.last_caught_up_ms = f.last_caught_up_ms.max(Some(now_ms));
        let mut isr = self.isr.clone();
        isr.push(follower);
        self.propose(isr, actions);
    }

    fn propose(&mut self, isr: Vec<i32>, actions: &mut Vec<LeaderAction>) {
        assert!(self.pending.is_none(), "one ISR write at a time");
        actions.push(LeaderAction::ProposeIsr {
            isr: isr.clone(),
            expected_zk_version: self.isr_zk_version,
        });
        self.pending = Some(PendingIsr {
            isr,
            expected_zk_version: self.isr_zk_version,
            failed: false,
        });
    }

    fn commit_isr(&mut self, isr: Vec<i32>, zk_version: i32, actions: &mut Vec<LeaderAction>) {
        self.isr = isr;
        self.isr_zk_version = zk_version;
        self.announce_isr(actions);
    }

    fn announce_isr(&self, actions: &mut Vec<LeaderAction>) {
        actions.push(LeaderAction::IsrChanged {
            isr: self.isr.clone(),
            zk_version: self.isr_zk_version,
        });
    }

    /// Raises the high watermark to the smallest LEO over the maximal ISR and
    /// the recently caught-up followers (see the module doc), if that is
    /// higher. An unknown LEO among them holds it where it is.
    fn maybe_advance_high_watermark(&mut self, now_ms: i64, actions: &mut Vec<LeaderAction>) {
        let maximal = self.maximal_isr();
        let mut candidate = self.log_end_offset;
        for f in &self.followers {
            let recently_caught_up = f
                .last_caught_up_ms
                .is_some_and(|t| now_ms.saturating_sub(t) <= self.config.replica_lag_time_max_ms);
            if !maximal.contains(&f.id) && !recently_caught_up {
                continue;
            }
            match f.log_end_offset {
                Some(leo) => candidate = candidate.min(leo),
                None => return,
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            actions.push(LeaderAction::HighWatermark(candidate));
        }
    }
}
