//! Unit tests of [`LeaderState`], one rule each, with a fake clock (the
//! `now_ms` arguments).

use super::leader::*;

const LAG_MS: i64 = 10_000;
const VERSION: i32 = 10;

/// Broker 1 leads epoch 5 of a partition on [1, 2, 3], from offset 0.
fn start_with(isr: &[i32], epoch_start_offset: i64, log_end_offset: i64) -> LeaderState {
    LeaderState::new(
        LeaderStart {
            leader: 1,
            leader_epoch: 5,
            epoch_start_offset,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            isr_zk_version: VERSION,
            high_watermark: 0,
            log_end_offset,
        },
        LeaderConfig {
            replica_lag_time_max_ms: LAG_MS,
        },
        0,
    )
    .expect("valid start")
}

fn start(isr: &[i32]) -> LeaderState {
    start_with(isr, 0, 0)
}

fn fetch(
    state: &mut LeaderState,
    follower: i32,
    offset: i64,
    leo: i64,
    now_ms: i64,
) -> Vec<LeaderAction> {
    state
        .on_follower_fetch(follower, offset, leo, now_ms)
        .expect("a valid fetch")
}

fn propose(isr: &[i32], expected_zk_version: i32) -> LeaderAction {
    LeaderAction::ProposeIsr {
        isr: isr.to_vec(),
        expected_zk_version,
    }
}

fn changed(isr: &[i32], zk_version: i32) -> LeaderAction {
    LeaderAction::IsrChanged {
        isr: isr.to_vec(),
        zk_version,
    }
}

#[test]
fn high_watermark_is_the_smallest_log_end_in_the_isr_leader_included() {
    let mut s = start(&[1, 2, 3]);
    assert_eq!(s.on_leader_append(10, 1), vec![]);
    assert_eq!(fetch(&mut s, 2, 4, 10, 2), vec![], "3 has not fetched yet");
    assert_eq!(
        fetch(&mut s, 3, 7, 10, 3),
        vec![LeaderAction::HighWatermark(4)]
    );
    assert_eq!(
        fetch(&mut s, 2, 10, 10, 4),
        vec![LeaderAction::HighWatermark(7)]
    );
    assert_eq!(
        fetch(&mut s, 3, 10, 10, 5),
        vec![LeaderAction::HighWatermark(10)]
    );
    // The leader's own LEO bounds it too.
    assert_eq!(fetch(&mut s, 2, 10, 10, 6), vec![]);
    assert_eq!(s.high_watermark(), 10);
}

#[test]
fn high_watermark_waits_for_every_isr_member_after_election() {
    let mut s = start_with(&[1, 2, 3], 0, 20);
    assert_eq!(s.high_watermark(), 0);
    assert_eq!(fetch(&mut s, 2, 20, 20, 1), vec![]);
    assert_eq!(s.high_watermark(), 0, "3's log end is unknown");
    assert_eq!(
        fetch(&mut s, 3, 15, 20, 2),
        vec![LeaderAction::HighWatermark(15)]
    );
}

#[test]
fn with_an_isr_of_one_the_high_watermark_follows_appends() {
    let mut s = start(&[1]);
    assert_eq!(
        s.on_leader_append(3, 1),
        vec![LeaderAction::HighWatermark(3)]
    );
    assert_eq!(
        s.on_leader_append(8, 2),
        vec![LeaderAction::HighWatermark(8)]
    );
    assert_eq!(
        s.on_leader_append(5, 3),
        vec![],
        "a stale log end is ignored"
    );
    assert_eq!(s.high_watermark(), 8);
}

#[test]
fn start_clamps_the_high_watermark_to_the_log_end() {
    let s = LeaderState::new(
        LeaderStart {
            leader: 1,
            leader_epoch: 0,
            epoch_start_offset: 4,
            replicas: vec![1],
            isr: vec![1],
            isr_zk_version: 0,
            high_watermark: 9,
            log_end_offset: 4,
        },
        LeaderConfig::default(),
        0,
    )
    .expect("valid");
    assert_eq!(s.high_watermark(), 4);
}

#[test]
fn high_watermark_never_decreases() {
    let mut s = start(&[1, 2]);
    s.on_leader_append(10, 1);
    assert_eq!(
        fetch(&mut s, 2, 10, 10, 2),
        vec![LeaderAction::HighWatermark(10)]
    );
    // A follower that lost its tail (restart) reports less: the high
    // watermark stays, and the follower leaves the ISR at the next tick.
    assert_eq!(fetch(&mut s, 2, 6, 10, 3), vec![]);
    assert_eq!(s.high_watermark(), 10);
    assert_eq!(s.tick(10, 4), vec![propose(&[1], VERSION)]);
    assert_eq!(s.high_watermark(), 10);
}

#[test]
fn a_follower_leaves_the_isr_after_the_lag_time() {
    let mut s = start(&[1, 2, 3]);
    s.on_leader_append(5, 0);
    fetch(&mut s, 2, 5, 5, 0);
    fetch(&mut s, 3, 5, 5, 0);
    s.on_leader_append(6, 100);
    // 2 keeps up, 3 stops fetching at 5.
    fetch(&mut s, 2, 6, 6, 200);
    assert_eq!(
        s.tick(6, LAG_MS),
        vec![],
        "exactly the lag time is not more"
    );
    assert_eq!(s.tick(6, LAG_MS + 1), vec![propose(&[1, 2], VERSION)]);
    assert_eq!(s.isr(), &[1, 2, 3], "not committed until the write lands");
}

#[test]
fn a_follower_at_the_log_end_stays_in_sync_without_traffic() {
    let mut s = start(&[1, 2]);
    s.on_leader_append(5, 0);
    fetch(&mut s, 2, 5, 5, 0);
    assert_eq!(s.tick(5, 10 * LAG_MS), vec![]);
}

#[test]
fn a_follower_that_never_fetches_after_election_leaves_after_the_lag_time() {
    let mut s = start(&[1, 2]);
    assert_eq!(s.tick(0, LAG_MS), vec![]);
    assert_eq!(s.tick(0, LAG_MS + 1), vec![propose(&[1], VERSION)]);
}

#[test]
fn caught_up_to_the_previous_fetchs_log_end_counts_under_steady_traffic() {
    let mut s = start(&[1, 2]);
    // The leader appends between every response and the next fetch: each
    // fetch reaches the leader's log end as of the previous fetch, never
    // the current one.
    let mut leo = 0;
    for round in 0..10 {
        let now_ms = round * (LAG_MS / 2);
        let previous_leo = leo;
        leo += 10;
        s.on_leader_append(leo, now_ms);
        fetch(&mut s, 2, previous_leo, leo, now_ms);
        assert_eq!(s.tick(leo, now_ms + 1), vec![], "round {round}");
    }
    assert_eq!(s.isr(), &[1, 2]);
}

#[test]
fn a_follower_that_falls_behind_the_previous_fetch_leaves() {
    let mut s = start(&[1, 2]);
    s.on_leader_append(100, 0);
    fetch(&mut s, 2, 100, 100, 0);
    s.on_leader_append(200, 1);
    // It fetches regularly but never reaches what the leader had.
    for i in 1..=3 {
        fetch(&mut s, 2, 100 + i, 200 + i * 100, i * 4_000);
        s.on_leader_append(200 + i * 100, i * 4_000);
    }
    assert_eq!(s.tick(500, 12_000), vec![propose(&[1], VERSION)]);
}

#[test]
fn a_shrink_in_flight_keeps_the_high_watermark_on_the_committed_isr() {
    let mut s = start(&[1, 2, 3]);
    s.on_leader_append(5, 0);
    fetch(&mut s, 2, 5, 5, 0);
    fetch(&mut s, 3, 5, 5, 0);
    s.on_leader_append(9, 1);
    fetch(&mut s, 2, 9, 9, LAG_MS);
    assert_eq!(s.tick(9, LAG_MS + 2), vec![propose(&[1, 2], VERSION)]);
    // 3 is still electable until the write lands: the high watermark stays
    // at its log end.
    assert_eq!(fetch(&mut s, 2, 9, 9, LAG_MS + 3), vec![]);
    assert_eq!(s.high_watermark(), 5);
    assert_eq!(
        s.isr_write_done(VERSION, Ok(VERSION + 1), LAG_MS + 4),
        vec![
            changed(&[1, 2], VERSION + 1),
            LeaderAction::HighWatermark(9)
        ]
    );
    assert_eq!(s.isr(), &[1, 2]);
    assert_eq!(s.isr_zk_version(), VERSION + 1);
}

#[test]
fn a_follower_rejoins_at_the_high_watermark_within_the_current_epoch() {
    // Leader epoch 5 started at offset 8: the follower must hold it.
    let mut s = start_with(&[1, 2], 8, 8);
    fetch(&mut s, 2, 8, 8, 0);
    s.on_leader_append(12, 1);
    fetch(&mut s, 2, 10, 12, 2);
    assert_eq!(s.high_watermark(), 10);
    // Below the epoch start (and the high watermark): not yet.
    assert_eq!(fetch(&mut s, 3, 7, 12, 3), vec![]);
    // At the epoch start but below the high watermark: not yet.
    assert_eq!(fetch(&mut s, 3, 8, 12, 4), vec![]);
    assert_eq!(
        fetch(&mut s, 3, 10, 12, 5),
        vec![propose(&[1, 2, 3], VERSION)]
    );
    assert_eq!(
        s.isr_write_done(VERSION, Ok(VERSION + 1), 6),
        vec![changed(&[1, 2, 3], VERSION + 1)]
    );
}

#[test]
fn the_epoch_start_offset_matters_even_above_the_high_watermark() {
    // A new leader whose checkpointed high watermark (0) lags its epoch
    // start (20): a follower above the high watermark but below the epoch
    // start may hold an older leader's divergent tail, so it may not join.
    let mut s = start_with(&[1], 20, 20);
    assert_eq!(s.high_watermark(), 0);
    assert_eq!(
        fetch(&mut s, 2, 15, 20, 1),
        vec![LeaderAction::HighWatermark(20)]
    );
    let mut s = start_with(&[1], 20, 20);
    assert_eq!(
        fetch(&mut s, 2, 20, 20, 1),
        vec![propose(&[1, 2], VERSION), LeaderAction::HighWatermark(20)]
    );
}

#[test]
fn an_expansion_in_flight_counts_the_joining_follower_for_the_high_watermark() {
    let mut s = start(&[1]);
    s.on_leader_append(10, 0);
    assert_eq!(s.high_watermark(), 10);
    assert_eq!(fetch(&mut s, 2, 10, 10, 1), vec![propose(&[1, 2], VERSION)]);
    assert_eq!(s.maximal_isr(), vec![1, 2]);
    // The leader appends; 2 has not fetched it: the high watermark waits for
    // 2 although the committed ISR is the leader alone.
    assert_eq!(s.on_leader_append(15, 2), vec![]);
    assert_eq!(s.high_watermark(), 10);
    assert_eq!(s.acks_all_progress(15, 1), AcksAllProgress::Waiting);
    assert_eq!(
        fetch(&mut s, 2, 15, 15, 3),
        vec![LeaderAction::HighWatermark(15)]
    );
}

#[test]
fn only_one_isr_write_is_in_flight() {
    let mut s = start(&[1, 2]);
    s.on_leader_append(10, 0);
    fetch(&mut s, 2, 10, 10, 0);
    // 3 catches up: expansion proposed.
    assert_eq!(
        fetch(&mut s, 3, 10, 10, 1),
        vec![propose(&[1, 2, 3], VERSION)]
    );
    // 2 goes silent past the lag time while the write is in flight.
    s.on_leader_append(11, 2);
    fetch(&mut s, 3, 11, 11, 3);
    assert_eq!(s.tick(11, LAG_MS + 5), vec![], "the shrink waits");
    assert_eq!(
        s.isr_write_done(VERSION, Ok(VERSION + 1), LAG_MS + 6),
        vec![changed(&[1, 2, 3], VERSION + 1)]
    );
    assert_eq!(s.tick(11, LAG_MS + 7), vec![propose(&[1, 3], VERSION + 1)]);
}

#[test]
fn a_write_that_lost_a_race_blocks_until_the_znode_is_read() {
    let mut s = start(&[1, 2, 3]);
    s.on_leader_append(10, 0);
    fetch(&mut s, 2, 10, 10, 0);
    assert_eq!(s.tick(10, LAG_MS + 1), vec![propose(&[1, 2], VERSION)]);
    // The controller removed 2 (its broker died) first: the write fails.
    assert_eq!(
        s.isr_write_done(VERSION, Err(IsrWriteFailed), LAG_MS + 2),
        vec![]
    );
    assert!(s.isr_write_in_flight().is_some());
    assert_eq!(s.tick(10, LAG_MS + 3), vec![], "blocked until a read");
    // The read shows the controller's ISR; the leader proposes again from it.
    assert_eq!(
        s.isr_from_store(vec![1, 3], VERSION + 1, LAG_MS + 4),
        Ok(vec![changed(&[1, 3], VERSION + 1)])
    );
    assert_eq!(s.isr_write_in_flight(), None);
    assert_eq!(s.tick(10, LAG_MS + 5), vec![propose(&[1], VERSION + 1)]);
}

#[test]
fn a_failed_write_with_an_unchanged_znode_unblocks_on_the_read() {
    let mut s = start(&[1, 2]);
    s.on_leader_append(10, 0);
    assert_eq!(s.tick(10, LAG_MS + 1), vec![propose(&[1], VERSION)]);
    assert_eq!(
        s.isr_write_done(VERSION, Err(IsrWriteFailed), LAG_MS + 2),
        vec![]
    );
    assert_eq!(
        s.isr_from_store(vec![1, 2], VERSION, LAG_MS + 3),
        Ok(vec![changed(&[1, 2], VERSION)]),
        "the write is settled: waiting produces are re-checked"
    );
    assert_eq!(s.tick(10, LAG_MS + 4), vec![propose(&[1], VERSION)]);
}

#[test]
fn stale_reads_and_late_results_are_ignored() {
    let mut s = start(&[1, 2]);
    s.on_leader_append(10, 0);
    assert_eq!(s.tick(10, LAG_MS + 1), vec![propose(&[1], VERSION)]);
    // A read at the expected version may predate the write: ignored.
    assert_eq!(
        s.isr_from_store(vec![1, 2], VERSION, LAG_MS + 2),
        Ok(vec![])
    );
    assert!(s.isr_write_in_flight().is_some());
    // The watch reports the write (and a later change) before the result.
    assert_eq!(
        s.isr_from_store(vec![1], VERSION + 1, LAG_MS + 3),
        Ok(vec![
            changed(&[1], VERSION + 1),
            LeaderAction::HighWatermark(10)
        ])
    );
    assert_eq!(
        s.isr_write_done(VERSION, Ok(VERSION + 1), LAG_MS + 4),
        vec![]
    );
    assert_eq!(
        s.isr_from_store(vec![1, 2], VERSION, LAG_MS + 5),
        Ok(vec![])
    );
    assert_eq!(s.isr(), &[1]);
    assert_eq!(s.isr_zk_version(), VERSION + 1);
}

#[test]
fn a_stored_state_without_this_leader_is_refused() {
    let mut s = start(&[1, 2]);
    assert_eq!(
        s.isr_from_store(vec![2], VERSION + 1, 1),
        Err(InvalidLeaderState::LeaderNotInIsr {
            leader: 1,
            isr: vec![2]
        })
    );
    assert!(matches!(
        s.isr_from_store(vec![1, 4], VERSION + 1, 1),
        Err(InvalidLeaderState::IsrOutsideReplicas { .. })
    ));
    assert_eq!(s.isr(), &[1, 2]);
}

#[test]
fn start_refuses_states_this_broker_cannot_lead() {
    let base = LeaderStart {
        leader: 1,
        leader_epoch: 0,
        epoch_start_offset: 0,
        replicas: vec![1, 2],
        isr: vec![1, 2],
        isr_zk_version: 0,
        high_watermark: 0,
        log_end_offset: 0,
    };
    let new = |start: LeaderStart| LeaderState::new(start, LeaderConfig::default(), 0).err();
    assert_eq!(
        new(LeaderStart {
            isr: vec![2],
            ..base.clone()
        }),
        Some(InvalidLeaderState::LeaderNotInIsr {
            leader: 1,
            isr: vec![2]
        })
    );
    assert!(matches!(
        new(LeaderStart {
            replicas: vec![2, 3],
            isr: vec![1],
            ..base.clone()
        }),
        Some(InvalidLeaderState::LeaderNotAReplica { .. })
    ));
    assert!(matches!(
        new(LeaderStart {
            isr: vec![1, 3],
            ..base.clone()
        }),
        Some(InvalidLeaderState::IsrOutsideReplicas { .. })
    ));
    assert_eq!(
        new(LeaderStart {
            replicas: vec![1, 2, 2],
            ..base.clone()
        }),
        Some(InvalidLeaderState::Duplicate(2))
    );
    assert_eq!(new(base), None);
}

#[test]
fn fetches_from_strangers_or_past_the_log_end_are_refused() {
    let mut s = start(&[1, 2]);
    s.on_leader_append(10, 0);
    assert_eq!(
        s.on_follower_fetch(4, 0, 10, 1),
        Err(FollowerFetchError::NotAFollower(4))
    );
    assert_eq!(
        s.on_follower_fetch(1, 0, 10, 1),
        Err(FollowerFetchError::NotAFollower(1)),
        "the leader does not follow itself"
    );
    assert_eq!(
        s.on_follower_fetch(2, 11, 10, 1),
        Err(FollowerFetchError::BeyondLogEnd {
            fetch_offset: 11,
            log_end_offset: 10
        })
    );
    assert_eq!(s.follower_log_end_offset(2), None, "not counted");
}

#[test]
fn min_insync_replicas_counts_the_committed_isr() {
    let mut s = start(&[1, 2, 3]);
    assert_eq!(s.can_accept_acks_all(3), Ok(()));
    assert_eq!(
        s.can_accept_acks_all(4),
        Err(NotEnoughReplicas {
            isr_size: 3,
            min_insync_replicas: 4
        })
    );
    s.on_leader_append(10, 0);
    fetch(&mut s, 2, 10, 10, 0);
    assert_eq!(s.acks_all_progress(10, 2), AcksAllProgress::Waiting);
    // 3 never fetched: it leaves; the shrink in flight does not count yet.
    assert_eq!(s.tick(10, LAG_MS + 1), vec![propose(&[1, 2], VERSION)]);
    assert_eq!(s.can_accept_acks_all(3), Ok(()));
    s.isr_write_done(VERSION, Ok(VERSION + 1), LAG_MS + 2);
    assert_eq!(s.high_watermark(), 10);
    assert_eq!(s.acks_all_progress(10, 2), AcksAllProgress::Done);
    assert_eq!(
        s.acks_all_progress(10, 3),
        AcksAllProgress::NotEnoughReplicasAfterAppend
    );
    assert_eq!(s.acks_all_progress(11, 3), AcksAllProgress::Waiting);
    assert!(s.can_accept_acks_all(3).is_err());
    assert!(s.is_under_replicated());
}

#[test]
fn an_expansion_in_flight_defers_the_after_append_verdict() {
    let mut s = start(&[1]);
    s.on_leader_append(10, 0);
    assert_eq!(fetch(&mut s, 2, 10, 10, 1), vec![propose(&[1, 2], VERSION)]);
    assert_eq!(s.acks_all_progress(10, 2), AcksAllProgress::Waiting);
    s.isr_write_done(VERSION, Ok(VERSION + 1), 2);
    assert_eq!(s.acks_all_progress(10, 2), AcksAllProgress::Done);
}

#[test]
fn a_failed_expansion_decides_the_after_append_verdict_on_the_read() {
    let mut s = start(&[1]);
    s.on_leader_append(10, 0);
    fetch(&mut s, 2, 10, 10, 1);
    assert_eq!(s.isr_write_done(VERSION, Err(IsrWriteFailed), 2), vec![]);
    assert_eq!(
        s.acks_all_progress(10, 2),
        AcksAllProgress::Waiting,
        "the write may have landed"
    );
    // It did not: the read settles it, announcing the ISR so that waiting
    // produces are re-checked.
    assert_eq!(
        s.isr_from_store(vec![1], VERSION, 3),
        Ok(vec![changed(&[1], VERSION)])
    );
    assert_eq!(
        s.acks_all_progress(10, 2),
        AcksAllProgress::NotEnoughReplicasAfterAppend
    );
}

#[test]
fn a_recently_caught_up_follower_holds_the_high_watermark_and_rejoins_under_traffic() {
    // ISR of one under steady traffic: the follower's fetches always trail
    // the leader's log end. Counting it in the high watermark while it is
    // caught up lets it reach the high watermark and rejoin.
    let mut s = start(&[1]);
    s.on_leader_append(10, 0);
    fetch(&mut s, 2, 10, 10, 0);
    s.isr_write_done(VERSION, Err(IsrWriteFailed), 0);
    s.isr_from_store(vec![1], VERSION, 0).expect("valid");
    s.on_leader_append(20, 1);
    // Caught up (at 0, by the previous-fetch rule), it holds the high
    // watermark at 10 although it is not in the ISR, so it is at the high
    // watermark and rejoins (counting only the ISR, the high watermark
    // would be 20 and it would trail it for ever).
    assert_eq!(fetch(&mut s, 2, 10, 20, 2), vec![propose(&[1, 2], VERSION)]);
    assert_eq!(s.high_watermark(), 10);
}

#[test]
fn a_follower_no_longer_caught_up_stops_holding_the_high_watermark() {
    let mut s = start(&[1]);
    s.on_leader_append(10, 0);
    // Out of the ISR and caught up at 0; its expansion loses and is re-read.
    fetch(&mut s, 2, 10, 10, 0);
    s.isr_write_done(VERSION, Err(IsrWriteFailed), 0);
    s.isr_from_store(vec![1], VERSION, 0).expect("valid");
    assert_eq!(s.on_leader_append(20, 1), vec![]);
    assert_eq!(s.high_watermark(), 10);
    assert_eq!(s.tick(20, LAG_MS), vec![]);
    assert_eq!(
        s.tick(20, LAG_MS + 1),
        vec![LeaderAction::HighWatermark(20)]
    );
}

#[test]
fn a_follower_that_joined_gets_a_full_lag_time() {
    let mut s = start(&[1, 2]);
    s.on_leader_append(10, 0);
    fetch(&mut s, 2, 8, 10, 0);
    assert_eq!(s.high_watermark(), 8);
    // 3 reaches the high watermark (not the log end) long after election.
    assert_eq!(
        fetch(&mut s, 3, 8, 10, 50_000),
        vec![propose(&[1, 2, 3], VERSION)]
    );
    s.isr_write_done(VERSION, Ok(VERSION + 1), 50_001);
    fetch(&mut s, 2, 10, 10, 50_002);
    assert_eq!(s.tick(10, 50_000 + LAG_MS), vec![]);
    assert_eq!(
        s.tick(10, 50_001 + LAG_MS),
        vec![propose(&[1, 2], VERSION + 1)]
    );
}

#[test]
fn tick_interval_is_half_the_lag_time() {
    assert_eq!(LeaderConfig::default().tick_interval_ms(), 5_000);
    assert_eq!(LeaderConfig::default().replica_lag_time_max_ms, 10_000);
}

#[test]
fn a_late_result_of_a_superseded_write_is_not_taken_for_the_current_one() {
    let mut s = start(&[1, 3]);
    s.on_leader_append(1, 0);
    // 2 joins: write A expects VERSION.
    assert_eq!(
        fetch(&mut s, 2, 1, 1, 1),
        vec![propose(&[1, 3, 2], VERSION)]
    );
    // The controller removed 3 first; the watch fires before A's answer.
    assert_eq!(
        s.isr_from_store(vec![1], VERSION + 1, 2),
        Ok(vec![changed(&[1], VERSION + 1)])
    );
    // 2 fetches again: write B expects VERSION + 1.
    assert_eq!(
        fetch(&mut s, 2, 1, 1, 3),
        vec![propose(&[1, 2], VERSION + 1)]
    );
    // A's failure arrives: not B's.
    assert_eq!(s.isr_write_done(VERSION, Err(IsrWriteFailed), 4), vec![]);
    // A read at B's expected version therefore does not settle B...
    assert_eq!(s.isr_from_store(vec![1], VERSION + 1, 5), Ok(vec![]));
    assert!(s.isr_write_in_flight().is_some());
    // ...and B's success is taken.
    assert_eq!(
        s.isr_write_done(VERSION + 1, Ok(VERSION + 2), 6),
        vec![changed(&[1, 2], VERSION + 2)]
    );
}
