//! Random runs of a [`LeaderState`] with two followers against a model of
//! their logs and of the partition-state znode.
//!
//! The model plays the followers (each fetches at its real log end and
//! receives some of what the leader has), the leader's appends, the clock
//! and periodic ticks, and ZooKeeper: ISR writes queue up and land in order,
//! conditional on the znode version (the controller may have removed a
//! follower first), or fail without an answer (sometimes after landing);
//! the leader re-reads the znode when told.
//!
//! Checked after every step: the state's own invariants; the high watermark
//! never decreases, is announced exactly when it rises, and is at most the
//! leader's log end, the log end the leader knows of every committed-ISR
//! member, and the real log end of every member of the znode's ISR and of
//! the maximal ISR (what could be elected); the leader is in the ISR, the ISR
//! within the replicas; an ISR write is proposed only with none in flight,
//! conditional on the committed version. At the end, once the writes settle
//! and the followers catch up, every replica is back in the ISR and the high
//! watermark is the leader's log end.

use std::collections::{BTreeMap, VecDeque};

use proptest::prelude::*;

use super::leader::*;

const LEADER: i32 = 1;
const FOLLOWERS: [i32; 2] = [2, 3];
const LAG_MS: i64 = 1_000;

#[derive(Debug, Clone)]
enum Op {
    Append {
        count: i64,
    },
    /// A follower fetches at its log end, then receives this share of what
    /// the leader had.
    Fetch {
        follower: usize,
        received_percent: i64,
    },
    /// Time passes, then the periodic tick.
    Tick {
        advance_ms: i64,
    },
    /// The oldest queued ISR write reaches ZooKeeper.
    Land,
    /// The oldest queued ISR write ends without an answer (connection
    /// loss), after landing or not.
    Fail {
        landed: bool,
    },
    /// The controller removes a follower from the znode's ISR.
    ControllerRemoves {
        follower: usize,
    },
    /// The leader re-reads the znode.
    Read,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..5).prop_map(|count| Op::Append { count }),
        6 => (0..FOLLOWERS.len(), 0i64..=100).prop_map(|(follower, received_percent)| Op::Fetch { follower, received_percent }),
        3 => (0i64..1_500).prop_map(|advance_ms| Op::Tick { advance_ms }),
        3 => Just(Op::Land),
        1 => any::<bool>().prop_map(|landed| Op::Fail { landed }),
        1 => (0..FOLLOWERS.len()).prop_map(|follower| Op::ControllerRemoves { follower }),
        2 => Just(Op::Read),
    ]
}

#[derive(Debug, Clone)]
struct Start {
    isr_has: [bool; 2],
    log_end_offset: i64,
    high_watermark_percent: i64,
    follower_percent: [i64; 2],
}

fn start() -> impl Strategy<Value = Start> {
    (any::<[bool; 2]>(), 0i64..20, 0i64..=100, any::<[u8; 2]>()).prop_map(
        |(isr_has, log_end_offset, high_watermark_percent, f)| Start {
            isr_has,
            log_end_offset,
            high_watermark_percent,
            follower_percent: [i64::from(f[0] % 101), i64::from(f[1] % 101)],
        },
    )
}

struct Write {
    isr: Vec<i32>,
    expected_zk_version: i32,
}

struct Model {
    state: LeaderState,
    now_ms: i64,
    leader_leo: i64,
    real_leo: BTreeMap<i32, i64>,
    znode_isr: Vec<i32>,
    znode_version: i32,
    writes: VecDeque<Write>,
    high_watermark: i64,
}

impl Model {
    fn new(s: &Start) -> Self {
        let hw = s.log_end_offset * s.high_watermark_percent / 100;
        let mut isr = vec![LEADER];
        let mut real_leo = BTreeMap::new();
        for (i, &f) in FOLLOWERS.iter().enumerate() {
            let share = s.follower_percent[i];
            if s.isr_has[i] {
                isr.push(f);
                // An ISR member holds at least the high watermark.
                real_leo.insert(f, hw + (s.log_end_offset - hw) * share / 100);
            } else {
                real_leo.insert(f, s.log_end_offset * share / 100);
            }
        }
        let state = LeaderState::new(
            LeaderStart {
                leader: LEADER,
                leader_epoch: 3,
                epoch_start_offset: s.log_end_offset,
                replicas: vec![LEADER, FOLLOWERS[0], FOLLOWERS[1]],
                isr: isr.clone(),
                isr_zk_version: 7,
                high_watermark: hw,
                log_end_offset: s.log_end_offset,
            },
            LeaderConfig {
                replica_lag_time_max_ms: LAG_MS,
            },
            0,
        )
        .expect("a valid start");
        Model {
            state,
            now_ms: 0,
            leader_leo: s.log_end_offset,
            real_leo,
            znode_isr: isr,
            znode_version: 7,
            writes: VecDeque::new(),
            high_watermark: hw,
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        let before_pending = self.state.isr_write_in_flight().is_some();
        let before_version = self.state.isr_zk_version();
        let actions = match *op {
            Op::Append { count } => {
                self.leader_leo += count;
                self.state.on_leader_append(self.leader_leo, self.now_ms)
            }
            Op::Fetch {
                follower,
                received_percent,
            } => {
                let id = FOLLOWERS[follower];
                let leo = self.real_leo[&id];
                let actions = self
                    .state
                    .on_follower_fetch(id, leo, self.leader_leo, self.now_ms)
                    .map_err(|e| format!("fetch refused: {e}"))?;
                let received = (self.leader_leo - leo) * received_percent / 100;
                self.real_leo.insert(id, leo + received);
                actions
            }
            Op::Tick { advance_ms } => {
                self.now_ms += advance_ms;
                self.state.tick(self.leader_leo, self.now_ms)
            }
            Op::Land => match self.writes.pop_front() {
                None => Vec::new(),
                Some(w) => {
                    let expected = w.expected_zk_version;
                    let result = self.land(w);
                    self.state.isr_write_done(expected, result, self.now_ms)
                }
            },
            Op::Fail { landed } => match self.writes.pop_front() {
                None => Vec::new(),
                Some(w) => {
                    let expected = w.expected_zk_version;
                    if landed {
                        let _ = self.land(w);
                    }
                    self.state
                        .isr_write_done(expected, Err(IsrWriteFailed), self.now_ms)
                }
            },
            Op::ControllerRemoves { follower } => {
                let id = FOLLOWERS[follower];
                if self.znode_isr.contains(&id) {
                    self.znode_isr.retain(|&b| b != id);
                    self.znode_version += 1;
                }
                Vec::new()
            }
            Op::Read => self
                .state
                .isr_from_store(self.znode_isr.clone(), self.znode_version, self.now_ms)
                .map_err(|e| format!("read refused: {e}"))?,
        };
        self.check(&actions, before_pending, before_version)
    }

    /// ZooKeeper's conditional write.
    fn land(&mut self, w: Write) -> Result<i32, IsrWriteFailed> {
        if w.expected_zk_version != self.znode_version {
            return Err(IsrWriteFailed);
        }
        self.znode_isr = w.isr;
        self.znode_version += 1;
        Ok(self.znode_version)
    }

    fn check(
        &mut self,
        actions: &[LeaderAction],
        before_pending: bool,
        before_version: i32,
    ) -> Result<(), String> {
        let s = &self.state;
        s.check_invariants()?;
        let mut proposals = 0;
        for action in actions {
            match action {
                LeaderAction::HighWatermark(hw) => {
                    if *hw <= self.high_watermark {
                        return Err(format!(
                            "high watermark announced {hw} after {}",
                            self.high_watermark
                        ));
                    }
                    self.high_watermark = *hw;
                }
                LeaderAction::ProposeIsr {
                    isr,
                    expected_zk_version,
                } => {
                    proposals += 1;
                    if before_pending || proposals > 1 {
                        return Err(format!("second ISR write proposed: {isr:?}"));
                    }
                    if *expected_zk_version != before_version {
                        return Err(format!(
                            "write expects version {expected_zk_version}, state held {before_version}"
                        ));
                    }
                    if !isr.contains(&LEADER) {
                        return Err(format!("proposed ISR {isr:?} without the leader"));
                    }
                    self.writes.push_back(Write {
                        isr: isr.clone(),
                        expected_zk_version: *expected_zk_version,
                    });
                }
                LeaderAction::IsrChanged { isr, zk_version } => {
                    if isr != s.isr() || *zk_version != s.isr_zk_version() {
                        return Err(format!("IsrChanged {isr:?}/{zk_version} not the state's"));
                    }
                }
            }
        }
        let hw = s.high_watermark();
        if hw != self.high_watermark {
            return Err(format!(
                "high watermark {hw}, announced {}",
                self.high_watermark
            ));
        }
        if hw > self.leader_leo {
            return Err(format!(
                "high watermark {hw} past the log end {}",
                self.leader_leo
            ));
        }
        if !s.isr().contains(&LEADER) {
            return Err(format!("ISR {:?} without the leader", s.isr()));
        }
        for member in s.isr() {
            if !s.replicas().contains(member) {
                return Err(format!("ISR {:?} outside the replicas", s.isr()));
            }
            if let Some(known) = s.follower_log_end_offset(*member) {
                if hw > known {
                    return Err(format!(
                        "high watermark {hw} past ISR member {member}'s known log end {known}"
                    ));
                }
            }
        }
        let maximal = s.maximal_isr();
        for member in self.znode_isr.iter().chain(&maximal) {
            if let Some(real) = self.real_leo.get(member) {
                if hw > *real {
                    return Err(format!(
                        "high watermark {hw} past {member}'s log end {real} (znode ISR {:?}, maximal {:?})",
                        self.znode_isr,
                        s.maximal_isr()
                    ));
                }
            }
        }
        Ok(())
    }

    /// Lets every write settle and every follower catch up; the ISR must
    /// then be whole and the high watermark at the log end.
    fn settle(&mut self) -> Result<(), String> {
        for _ in 0..4 {
            while !self.writes.is_empty() {
                self.apply(&Op::Land)?;
            }
            self.apply(&Op::Read)?;
            for follower in 0..FOLLOWERS.len() {
                for _ in 0..2 {
                    self.apply(&Op::Fetch {
                        follower,
                        received_percent: 100,
                    })?;
                }
                while !self.writes.is_empty() {
                    self.apply(&Op::Land)?;
                }
            }
        }
        let mut isr = self.state.isr().to_vec();
        isr.sort_unstable();
        if isr != [LEADER, FOLLOWERS[0], FOLLOWERS[1]] {
            return Err(format!("ISR {isr:?} after everyone caught up"));
        }
        if self.state.high_watermark() != self.leader_leo {
            return Err(format!(
                "high watermark {} below the log end {} after everyone caught up",
                self.state.high_watermark(),
                self.leader_leo
            ));
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn leader_keeps_its_promises_under_random_fetches_ticks_and_isr_write_outcomes(
        s in start(),
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        let mut model = Model::new(&s);
        for (i, op) in ops.iter().enumerate() {
            if let Err(e) = model.apply(op) {
                return Err(TestCaseError::fail(format!("step {i} {op:?}: {e}")));
            }
        }
        if let Err(e) = model.settle() {
            return Err(TestCaseError::fail(format!("settling: {e}")));
        }
    }
}
