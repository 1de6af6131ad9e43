//! Where the replicas of a new topic, or of partitions added to one, go:
//! Kafka's rack-unaware assignment (`AdminUtils.assignReplicasToBrokers`),
//! and the checks on an assignment a client gives explicitly.
//!
//! The algorithm, for `n` brokers sorted by id: partition `p`'s first replica
//! (its preferred leader) is broker `(p + start) % n`, so leaders go round the
//! brokers; the followers sit at a distance `1 + (shift + j) % (n - 1)` from
//! it, and `shift` grows by one every `n` partitions so that followers of
//! consecutive rounds land on different brokers. `start` and `shift` are random
//! in Kafka; here the caller passes them (random in production, fixed in
//! tests), so the function is deterministic.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;

/// Why an assignment cannot be made; each maps to Kafka's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    /// INVALID_PARTITIONS.
    #[error("{0}")]
    InvalidPartitions(String),
    /// INVALID_REPLICATION_FACTOR.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
}

impl AssignmentError {
    /// The error code to answer with; the message goes in `error_message`.
    pub fn error(&self) -> ResponseError {
        match self {
            Self::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            Self::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            Self::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        }
    }
}

/// Kafka's rack-unaware assignment of `partitions` partitions with
/// `replication_factor` replicas over `brokers` (the live brokers; order and
/// duplicates do not matter). `start` and `shift` are taken modulo the number
/// of brokers; pass random values. Partition `i` of the result is numbered
/// `first_partition + i` for the rotation (0 for a new topic).
pub fn assign_replicas(
    brokers: &[i32],
    partitions: i32,
    replication_factor: i32,
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<i32>>, AssignmentError> {
    assign_from(brokers, 0, partitions, replication_factor, start, shift)
}

fn assign_from(
    brokers: &[i32],
    first_partition: i32,
    partitions: i32,
    replication_factor: i32,
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<i32>>, AssignmentError> {
    if partitions < 1 {
        return Err(AssignmentError::InvalidPartitions(
            "Number of partitions must be larger than 0.".into(),
        ));
    }
    if replication_factor < 1 {
        return Err(AssignmentError::InvalidReplicationFactor(
            "Replication factor must be larger than 0.".into(),
        ));
    }
    let sorted: Vec<i32> = brokers
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let n = sorted.len();
    if replication_factor as usize > n {
        return Err(AssignmentError::InvalidReplicationFactor(format!(
            "Replication factor: {replication_factor} larger than available brokers: {n}."
        )));
    }
    let start = start % n;
    let mut shift = shift % n;
    let mut out = Vec::with_capacity(partitions as usize);
    for p in first_partition as usize..(first_partition + partitions) as usize {
        if p > 0 && p % n == 0 {
            shift += 1;
        }
        let first = (p + start) % n;
        let mut replicas = Vec::with_capacity(replication_factor as usize);
        replicas.push(sorted[first]);
        for j in 0..replication_factor as usize - 1 {
            // n > 1 here: replication_factor > 1 and replication_factor <= n.
            let distance = 1 + (shift + j) % (n - 1);
            replicas.push(sorted[(first + distance) % n]);
        }
        out.push(replicas);
    }
    Ok(out)
}

/// Checks an assignment given by a client (CreateTopics `assignments`):
/// partitions numbered 0..n (any order), each with at least one replica, no
/// broker twice, the same replication factor everywhere, every broker known.
/// Returns it indexed by partition.
pub fn validate_explicit_assignment(
    assignments: &[(i32, Vec<i32>)],
    known_brokers: &[i32],
) -> Result<Vec<Vec<i32>>, AssignmentError> {
    let invalid = |m: String| Err(AssignmentError::InvalidReplicaAssignment(m));
    if assignments.is_empty() {
        return invalid("The replica assignment is empty.".into());
    }
    let mut by_partition: Vec<Option<Vec<i32>>> = vec![None; assignments.len()];
    for (partition, replicas) in assignments {
        let slot = usize::try_from(*partition)
            .ok()
            .and_then(|i| by_partition.get_mut(i));
        match slot {
            Some(slot @ None) => *slot = Some(replicas.clone()),
            _ => {
                return invalid(
                    "Partitions should be a consecutive 0-based integer sequence.".into(),
                )
            }
        }
    }
    let out: Vec<Vec<i32>> = by_partition.into_iter().flatten().collect();
    check_replica_lists(&out, out[0].len(), known_brokers)?;
    Ok(out)
}

/// Each list non-empty, of `replication_factor` distinct known brokers.
fn check_replica_lists(
    lists: &[Vec<i32>],
    replication_factor: usize,
    known_brokers: &[i32],
) -> Result<(), AssignmentError> {
    for (i, replicas) in lists.iter().enumerate() {
        let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
        let message = if replicas.is_empty() {
            format!("Replica list of partition {i} is empty.")
        } else if distinct.len() != replicas.len() {
            format!("Duplicate brokers not allowed in replica assignment: {replicas:?}.")
        } else if replicas.len() != replication_factor {
            format!("Inconsistent replication factor between partitions, partition 0 has {replication_factor} while partition {i} has replication factor {}.", replicas.len())
        } else if let Some(b) = replicas.iter().find(|b| !known_brokers.contains(b)) {
            format!("Unknown broker {b} in replica assignment {replicas:?}.")
        } else {
            continue;
        };
        return Err(AssignmentError::InvalidReplicaAssignment(message));
    }
    Ok(())
}

/// The assignments of the partitions CreatePartitions adds to a topic that
/// has `existing` (indexed by partition), to reach `new_count` partitions.
/// `explicit` is the client's assignment of the new partitions, if it gave
/// one. Returns only the new partitions.
///
/// Without an explicit assignment this does what Kafka's `AdminZkClient` does:
/// continue the rotation as if the new partitions had been part of the
/// original assignment, starting from the index (among the sorted live
/// brokers) of the first broker whose id is at least partition 0's preferred
/// leader, used as both start and shift, with partition 0's replication factor.
pub fn extend_assignment(
    existing: &[Vec<i32>],
    brokers: &[i32],
    new_count: i32,
    explicit: Option<&[Vec<i32>]>,
) -> Result<Vec<Vec<i32>>, AssignmentError> {
    let existing_count = i32::try_from(existing.len()).unwrap_or(i32::MAX);
    let Some(partition0) = existing.first().filter(|r| !r.is_empty()) else {
        return Err(AssignmentError::InvalidReplicaAssignment(
            "The topic has no partition 0 to take the replication factor from.".into(),
        ));
    };
    if new_count <= existing_count {
        return Err(AssignmentError::InvalidPartitions(format!(
            "Topic currently has {existing_count} partitions, which is higher than or equal to the requested {new_count}."
        )));
    }
    let to_add = new_count - existing_count;
    if let Some(explicit) = explicit {
        if explicit.len() != to_add as usize {
            return Err(AssignmentError::InvalidReplicaAssignment(format!(
                "Increasing the number of partitions by {to_add} but {} assignments provided.",
                explicit.len()
            )));
        }
        check_replica_lists(explicit, partition0.len(), brokers)?;
        return Ok(explicit.to_vec());
    }
    let sorted: Vec<i32> = brokers
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let start = sorted.iter().position(|&b| b >= partition0[0]).unwrap_or(0);
    let replication_factor = i32::try_from(partition0.len()).unwrap_or(i32::MAX);
    assign_from(
        &sorted,
        existing_count,
        to_add,
        replication_factor,
        start,
        start,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_kafkas_documented_example() {
        // AdminUtils' comment: 5 brokers, 10 partitions, RF 3, start 0, shift 0.
        let got = assign_replicas(&[4, 2, 0, 1, 3], 10, 3, 0, 0).expect("valid");
        let expected = vec![
            vec![0, 1, 2],
            vec![1, 2, 3],
            vec![2, 3, 4],
            vec![3, 4, 0],
            vec![4, 0, 1],
            vec![0, 2, 3],
            vec![1, 3, 4],
            vec![2, 4, 0],
            vec![3, 0, 1],
            vec![4, 1, 2],
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn start_and_shift_rotate() {
        let got = assign_replicas(&[1, 2, 3], 3, 2, 1, 1).expect("valid");
        // start 1: leaders 2, 3, 1; shift 1: follower at distance 1 + 1 % 2 = 2.
        assert_eq!(got, vec![vec![2, 1], vec![3, 2], vec![1, 3]]);
        // Out-of-range start/shift are reduced modulo the broker count.
        assert_eq!(assign_replicas(&[1, 2, 3], 3, 2, 4, 7), Ok(got));
    }

    #[test]
    fn rejects_bad_counts_with_kafkas_codes() {
        let err = assign_replicas(&[1, 2], 1, 3, 0, 0).expect_err("RF > brokers");
        assert_eq!(err.error(), ResponseError::InvalidReplicationFactor);
        assert!(
            err.to_string().contains("larger than available brokers: 2"),
            "{err}"
        );
        let err = assign_replicas(&[], 1, 1, 0, 0).expect_err("no brokers");
        assert_eq!(err.error(), ResponseError::InvalidReplicationFactor);
        let err = assign_replicas(&[1], 1, 0, 0, 0).expect_err("RF 0");
        assert_eq!(err.error(), ResponseError::InvalidReplicationFactor);
        let err = assign_replicas(&[1], 0, 1, 0, 0).expect_err("0 partitions");
        assert_eq!(err.error(), ResponseError::InvalidPartitions);
        let err = assign_replicas(&[1], -3, 1, 0, 0).expect_err("negative partitions");
        assert_eq!(err.error(), ResponseError::InvalidPartitions);
    }

    #[test]
    fn explicit_assignment_is_checked() {
        let known = [1, 2, 3];
        let ok = validate_explicit_assignment(&[(1, vec![2, 3]), (0, vec![1, 2])], &known);
        assert_eq!(ok, Ok(vec![vec![1, 2], vec![2, 3]]));
        let bad: &[&[(i32, Vec<i32>)]] = &[
            &[],
            &[(1, vec![1])],
            &[(0, vec![1]), (0, vec![2])],
            &[(0, vec![1]), (2, vec![2])],
            &[(-1, vec![1])],
            &[(0, vec![])],
            &[(0, vec![1, 1])],
            &[(0, vec![1, 2]), (1, vec![3])],
            &[(0, vec![4])],
        ];
        for assignment in bad {
            let err = validate_explicit_assignment(assignment, &known).expect_err("invalid");
            assert_eq!(
                err.error(),
                ResponseError::InvalidReplicaAssignment,
                "{assignment:?}"
            );
        }
    }

    #[test]
    fn added_partitions_continue_the_rotation() {
        let brokers = [1, 2, 3, 4, 5];
        // Created with start 2 (first leader broker 3) and shift 2.
        let existing = assign_replicas(&brokers, 3, 2, 2, 2).expect("valid");
        assert_eq!(existing[0][0], 3);
        let added = extend_assignment(&existing, &brokers, 6, None).expect("valid");
        // Kafka restarts from partition 0's leader index (2) as start and shift,
        // numbering from the existing count.
        let whole = assign_replicas(&brokers, 6, 2, 2, 2).expect("valid");
        assert_eq!(added, whole[3..].to_vec());
        assert_eq!(added.len(), 3);
        assert!(added.iter().all(|r| r.len() == 2));
    }

    #[test]
    fn added_partitions_when_partition_0s_leader_is_gone() {
        // Broker 3 left: start is the first broker with id >= 3, i.e. 4 at index 2.
        let added = extend_assignment(&[vec![3, 1]], &[1, 2, 4], 2, None).expect("valid");
        assert_eq!(
            added,
            assign_from(&[1, 2, 4], 1, 1, 2, 2, 2).expect("valid")
        );
        // Every broker below it: start 0.
        let added = extend_assignment(&[vec![9]], &[1, 2], 3, None).expect("valid");
        assert_eq!(added, vec![vec![2], vec![1]]);
    }

    #[test]
    fn added_partitions_are_checked() {
        let existing = vec![vec![1, 2], vec![2, 1]];
        let err = extend_assignment(&existing, &[1, 2], 2, None).expect_err("no growth");
        assert_eq!(err.error(), ResponseError::InvalidPartitions);
        let err = extend_assignment(&existing, &[1], 3, None).expect_err("RF 2 on 1 broker");
        assert_eq!(err.error(), ResponseError::InvalidReplicationFactor);
        let explicit = vec![vec![2, 1]];
        assert_eq!(
            extend_assignment(&existing, &[1, 2], 3, Some(&explicit)),
            Ok(explicit)
        );
        for explicit in [
            vec![],
            vec![vec![1]],
            vec![vec![1, 3]],
            vec![vec![1, 2], vec![2, 1]],
        ] {
            let err =
                extend_assignment(&existing, &[1, 2], 3, Some(&explicit)).expect_err("invalid");
            assert_eq!(
                err.error(),
                ResponseError::InvalidReplicaAssignment,
                "{explicit:?}"
            );
        }
        let err = extend_assignment(&[], &[1], 1, None).expect_err("no partition 0");
        assert_eq!(err.error(), ResponseError::InvalidReplicaAssignment);
    }

    proptest! {
        #[test]
        fn assignments_are_valid_and_spread_evenly(
            broker_set in proptest::collection::btree_set(0i32..50, 1..8),
            partitions in 1i32..60,
            rf_seed in 0usize..8,
            start in 0usize..100,
            shift in 0usize..100,
        ) {
            let brokers: Vec<i32> = broker_set.iter().copied().collect();
            let n = brokers.len();
            let rf = rf_seed % n + 1;
            let got = assign_replicas(&brokers, partitions, rf as i32, start, shift).expect("valid");
            prop_assert_eq!(got.len(), partitions as usize);
            let mut leaders = std::collections::BTreeMap::<i32, usize>::new();
            let mut replicas_per_broker = std::collections::BTreeMap::<i32, usize>::new();
            for replicas in &got {
                prop_assert_eq!(replicas.len(), rf);
                let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
                prop_assert_eq!(distinct.len(), rf, "followers distinct: {:?}", replicas);
                prop_assert!(replicas.iter().all(|b| broker_set.contains(b)));
                *leaders.entry(replicas[0]).or_default() += 1;
                for b in replicas {
                    *replicas_per_broker.entry(*b).or_default() += 1;
                }
            }
            // Leaders go round the brokers: counts differ by at most one.
            let most = leaders.values().max().copied().unwrap_or(0);
            let least = if leaders.len() < n { 0 } else { leaders.values().min().copied().unwrap_or(0) };
            prop_assert!(most - least <= 1, "leaders {:?}", leaders);
            // Replicas are spread too: no broker holds more than its share plus one per replica slot.
            let total = partitions as usize * rf;
            let bound = total.div_ceil(n) + rf;
            prop_assert!(replicas_per_broker.values().all(|&c| c <= bound), "{:?}", replicas_per_broker);
        }

        #[test]
        fn extension_is_valid(
            broker_set in proptest::collection::btree_set(0i32..20, 1..6),
            existing_count in 1i32..10,
            added in 1i32..10,
            start in 0usize..10,
            shift in 0usize..10,
        ) {
            let brokers: Vec<i32> = broker_set.iter().copied().collect();
            let rf = (brokers.len() as i32).min(3);
            let existing = assign_replicas(&brokers, existing_count, rf, start, shift).expect("valid");
            let new = extend_assignment(&existing, &brokers, existing_count + added, None).expect("valid");
            prop_assert_eq!(new.len(), added as usize);
            for replicas in &new {
                let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
                prop_assert_eq!(distinct.len(), rf as usize);
                prop_assert!(replicas.iter().all(|b| broker_set.contains(b)));
            }
        }
    }
}
