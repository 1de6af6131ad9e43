//! Unit tests of the truncation decision and the leader's epoch answers,
//! including the scenarios of KIP-101 and KIP-279.

use super::truncation::*;
use super::{UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET};

fn answer(epoch: i32, end_offset: i64) -> EpochEndOffset {
    EpochEndOffset { epoch, end_offset }
}

#[test]
fn end_offset_for_epoch_answers_as_kafka_does() {
    let epochs = [(1, 0), (3, 10), (6, 25)];
    let leo = 40;
    assert_eq!(
        end_offset_for_epoch(&epochs, leo, 6),
        answer(6, 40),
        "latest: the LEO"
    );
    assert_eq!(end_offset_for_epoch(&epochs, leo, 3), answer(3, 25));
    assert_eq!(end_offset_for_epoch(&epochs, leo, 1), answer(1, 10));
    assert_eq!(
        end_offset_for_epoch(&epochs, leo, 5),
        answer(3, 25),
        "between: the largest epoch below and where it ends"
    );
    assert_eq!(
        end_offset_for_epoch(&epochs, leo, 0),
        answer(0, 0),
        "below every epoch: the epoch asked, ending where the log's first epoch starts"
    );
    assert_eq!(
        end_offset_for_epoch(&epochs, leo, 7),
        EpochEndOffset::UNDEFINED
    );
    assert_eq!(
        end_offset_for_epoch(&epochs, leo, UNDEFINED_EPOCH),
        EpochEndOffset::UNDEFINED
    );
    assert_eq!(end_offset_for_epoch(&[], 0, 2), EpochEndOffset::UNDEFINED);
    assert_eq!(
        EpochEndOffset::from((UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)),
        EpochEndOffset::UNDEFINED
    );
}

#[test]
fn epoch_to_ask_is_the_latest() {
    assert_eq!(epoch_to_ask(&[(1, 0), (4, 7)]), Some(4));
    assert_eq!(epoch_to_ask(&[]), None);
}

#[test]
fn kip_101_a_follower_keeps_what_the_leader_has_beyond_its_high_watermark() {
    // The follower has m0, m1 in epoch 0 but learnt only HW = 1 before it
    // restarted. Truncating to its high watermark would drop m1, which the
    // leader holds (and which is lost if the follower is elected next).
    let follower = [(0, 0)];
    let leader = [(0, 0)];
    let reply = end_offset_for_epoch(&leader, 2, 0);
    assert_eq!(
        truncation_point(&follower, 2, 1, reply),
        TruncationDecision::TruncateTo(2)
    );
}

#[test]
fn kip_101_a_returning_leader_drops_its_divergent_tail() {
    // A led epoch 0 and wrote m0, m1; B had only m0. Both crashed; B came
    // back first, leads epoch 1 and wrote n1 at offset 1. A follows now.
    let a = [(0, 0)];
    let b = [(0, 0), (1, 1)];
    let reply = end_offset_for_epoch(&b, 2, 0);
    assert_eq!(reply, answer(0, 1));
    assert_eq!(
        truncation_point(&a, 2, 2, reply),
        TruncationDecision::TruncateTo(1),
        "never to the high watermark (2): offset 1 differs"
    );
}

#[test]
fn the_shorter_end_of_the_shared_epoch_wins() {
    let local = [(2, 0), (5, 8)];
    // The leader has epoch 5 up to 20; this log up to 12.
    assert_eq!(
        truncation_point(&local, 12, 0, answer(5, 20)),
        TruncationDecision::TruncateTo(12)
    );
    // The leader has epoch 5 up to 10; this log past it.
    assert_eq!(
        truncation_point(&local, 12, 0, answer(5, 10)),
        TruncationDecision::TruncateTo(10)
    );
}

#[test]
fn kip_279_an_epoch_the_follower_lacks_means_truncate_and_ask_again() {
    // Leader: epochs 1 at 0, 2 at 5, 4 at 9. Follower: 1 at 0, 3 at 6 (it
    // led epoch 3 briefly and its writes never replicated).
    let leader = [(1, 0), (2, 5), (4, 9)];
    let follower = [(1, 0), (3, 6)];
    let first = end_offset_for_epoch(&leader, 12, 3);
    assert_eq!(first, answer(2, 9));
    // The follower has no epoch 2: it truncates its epoch 3 (from 6) and asks
    // about epoch 1.
    assert_eq!(
        truncation_point(&follower, 10, 0, first),
        TruncationDecision::AskAgain {
            truncate_to: 6,
            epoch: 1
        }
    );
    let follower = [(1, 0)];
    assert_eq!(epoch_to_ask(&follower), Some(1));
    let second = end_offset_for_epoch(&leader, 12, 1);
    assert_eq!(second, answer(1, 5));
    assert_eq!(
        truncation_point(&follower, 6, 0, second),
        TruncationDecision::TruncateTo(5)
    );
}

#[test]
fn a_follower_without_any_epoch_the_leader_has_keeps_nothing_from_its_first_epoch() {
    // Leader: epoch 0 at 0, then 2 at 10. Follower: epoch 1 from offset 0
    // (an unclean history). The leader answers epoch 0 ending at 10; the
    // follower has no epoch <= 0, so nothing of its log is shared. Kafka
    // would truncate to 10 and keep offsets 0..5 of epoch 1: wrong here.
    let leader = [(0, 0), (2, 10)];
    let follower = [(1, 0)];
    let reply = end_offset_for_epoch(&leader, 12, 1);
    assert_eq!(reply, answer(0, 10));
    assert_eq!(
        truncation_point(&follower, 5, 0, reply),
        TruncationDecision::TruncateTo(0)
    );
    // Its first epoch starting later (a log start past 0) bounds it there.
    assert_eq!(
        truncation_point(&[(1, 3)], 5, 0, reply),
        TruncationDecision::TruncateTo(3)
    );
}

#[test]
fn an_epoch_below_the_leaders_first_keeps_nothing_past_the_leaders_start() {
    // The leader's log starts at epoch 4 from 7 (older segments deleted).
    let leader = [(4, 7)];
    let follower = [(2, 0)];
    let reply = end_offset_for_epoch(&leader, 9, 2);
    assert_eq!(reply, answer(2, 7));
    assert_eq!(
        truncation_point(&follower, 12, 0, reply),
        TruncationDecision::TruncateTo(7)
    );
    assert_eq!(
        truncation_point(&follower, 5, 0, reply),
        TruncationDecision::TruncateTo(5),
        "never past the log end"
    );
}

#[test]
fn an_undefined_answer_falls_back_to_the_high_watermark() {
    // Only a leader without epoch information answers this.
    let local = [(3, 0)];
    assert_eq!(
        truncation_point(&local, 10, 4, EpochEndOffset::UNDEFINED),
        TruncationDecision::TruncateTo(4)
    );
    assert_eq!(
        truncation_point(&local, 3, 4, EpochEndOffset::UNDEFINED),
        TruncationDecision::TruncateTo(3),
        "the high watermark clamped to the log end"
    );
    // A malformed answer (an epoch above the one asked) is treated alike.
    assert_eq!(
        truncation_point(&local, 10, 4, answer(9, 20)),
        TruncationDecision::TruncateTo(4)
    );
}

#[test]
fn an_answer_without_an_epoch_truncates_to_its_offset() {
    // OffsetForLeaderEpoch v0 (a leader that knows no epochs in answers).
    let local = [(3, 0)];
    assert_eq!(
        truncation_point(&local, 10, 0, answer(UNDEFINED_EPOCH, 6)),
        TruncationDecision::TruncateTo(6)
    );
    assert_eq!(
        truncation_point(&local, 4, 0, answer(UNDEFINED_EPOCH, 6)),
        TruncationDecision::TruncateTo(4)
    );
}

#[test]
fn the_leader_reports_a_diverging_epoch_on_a_fetch() {
    let leader = [(1, 0), (2, 5), (4, 9)];
    let leo = 12;
    // Consistent: the follower's last epoch is the leader's and it ends
    // no earlier than the fetch offset.
    assert_eq!(diverging_epoch(&leader, leo, 12, 4), Ok(None));
    assert_eq!(diverging_epoch(&leader, leo, 9, 2), Ok(None));
    assert_eq!(diverging_epoch(&leader, leo, 7, 2), Ok(None));
    // Epoch 2 ends at 9 here; a fetch at 10 after epoch 2 diverged.
    assert_eq!(diverging_epoch(&leader, leo, 10, 2), Ok(Some(answer(2, 9))));
    // Epoch 3 is unknown here: the largest below it.
    assert_eq!(diverging_epoch(&leader, leo, 7, 3), Ok(Some(answer(2, 9))));
    // No epoch: nothing to check.
    assert_eq!(diverging_epoch(&leader, leo, 3, UNDEFINED_EPOCH), Ok(None));
    // An epoch past the leader's latest cannot be placed.
    assert_eq!(
        diverging_epoch(&leader, leo, 3, 5),
        Err(FetchedEpochUnknown {
            last_fetched_epoch: 5
        })
    );
    assert_eq!(
        diverging_epoch(&[], 0, 3, 1),
        Err(FetchedEpochUnknown {
            last_fetched_epoch: 1
        })
    );
}

#[test]
fn a_diverging_epoch_answer_feeds_the_same_decision() {
    let leader = [(1, 0), (2, 5), (4, 9)];
    let follower = [(1, 0), (2, 5), (3, 10)];
    let d = diverging_epoch(&leader, 12, 14, 3)
        .expect("placeable")
        .expect("diverged");
    assert_eq!(
        truncation_point(&follower, 14, 0, d),
        TruncationDecision::TruncateTo(9)
    );
}

#[test]
fn an_epoch_started_but_never_written_is_cut_at_the_log_end() {
    // This broker was elected for epoch 3 at offset 5 and wrote nothing
    // before epoch 4 went to another broker. The decision is "truncate to the
    // log end": the engine's truncate_to must still drop the entry (3, 5)
    // (Kafka's UnifiedLog.truncateTo does), or the next question asks about
    // epoch 3 again and the loop never ends.
    let follower = [(0, 0), (3, 5)];
    let leader = [(0, 0), (4, 8)];
    let reply = end_offset_for_epoch(&leader, 9, 3);
    assert_eq!(reply, answer(0, 8));
    assert_eq!(
        truncation_point(&follower, 5, 0, reply),
        TruncationDecision::TruncateTo(5)
    );
}
