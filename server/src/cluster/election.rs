//! Who leads a partition: one pure rule per occasion (Kafka's
//! `PartitionLeaderElectionAlgorithms`), and how the ISR shrinks.
//!
//! Each rule looks at the assigned replicas (AR, preferred first), the ISR and
//! the status of each broker, and returns a leader and the new ISR; the
//! controller bumps the leader epoch and writes the result. A broker that is
//! shutting down (controlled shutdown) is alive but may not be elected and is
//! not added to a new ISR, as in Kafka.

use super::NO_LEADER;

/// A broker as the elections see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerStatus {
    /// Not registered (or registered under an epoch the controller does not
    /// count any more).
    Offline,
    /// Registered and serving.
    Online,
    /// Registered, but asked for a controlled shutdown: may not lead.
    ShuttingDown,
}

impl BrokerStatus {
    fn can_lead(self) -> bool {
        self == Self::Online
    }
}

/// The outcome of an election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elected {
    /// The new leader, or [`NO_LEADER`].
    pub leader: i32,
    pub isr: Vec<i32>,
    /// The leader was not in the ISR (possible data loss).
    pub unclean: bool,
}

/// A new partition: the first replica that can lead; the ISR is every replica
/// that can lead. `None` when no replica can lead (the partition stays without
/// state until one can).
pub fn new_partition(assignment: &[i32], status: impl Fn(i32) -> BrokerStatus) -> Option<Elected> {
    let isr: Vec<i32> = assignment
        .iter()
        .copied()
        .filter(|&b| status(b).can_lead())
        .collect();
    Some(Elected {
        leader: *isr.first()?,
        isr,
        unclean: false,
    })
}

/// A partition whose leader is gone (or -1): the first replica in AR order
/// that can lead and is in the ISR; the ISR keeps the members that can lead.
/// Failing that, if `unclean_allowed`, the first replica that can lead, alone
/// in the ISR. Failing that, no leader, and the ISR loses offline members but
/// never becomes empty (see [`shrink_isr`]).
pub fn offline_partition(
    assignment: &[i32],
    isr: &[i32],
    previous_leader: i32,
    unclean_allowed: bool,
    status: impl Fn(i32) -> BrokerStatus,
) -> Elected {
    let clean = assignment
        .iter()
        .copied()
        .find(|b| isr.contains(b) && status(*b).can_lead());
    if let Some(leader) = clean {
        let isr = isr
            .iter()
            .copied()
            .filter(|&b| status(b).can_lead())
            .collect();
        return Elected {
            leader,
            isr,
            unclean: false,
        };
    }
    if unclean_allowed {
        if let Some(leader) = assignment.iter().copied().find(|&b| status(b).can_lead()) {
            return Elected {
                leader,
                isr: vec![leader],
                unclean: true,
            };
        }
    }
    Elected {
        leader: NO_LEADER,
        isr: shrink_isr(isr, previous_leader, &status),
        unclean: false,
    }
}

/// Why a preferred-leader election does not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferredRefusal {
    /// The preferred replica already leads (ELECTION_NOT_NEEDED).
    AlreadyLeader,
    /// It is offline, shutting down or out of the ISR (PREFERRED_LEADER_NOT_AVAILABLE).
    NotAvailable,
}

/// Preferred-replica election: the first assigned replica, if it can lead and
/// is in the ISR. The ISR is unchanged.
pub fn preferred(
    assignment: &[i32],
    isr: &[i32],
    current_leader: i32,
    status: impl Fn(i32) -> BrokerStatus,
) -> Result<i32, PreferredRefusal> {
    let preferred = *assignment.first().ok_or(PreferredRefusal::NotAvailable)?;
    if preferred == current_leader {
        return Err(PreferredRefusal::AlreadyLeader);
    }
    if isr.contains(&preferred) && status(preferred).can_lead() {
        Ok(preferred)
    } else {
        Err(PreferredRefusal::NotAvailable)
    }
}

/// Controlled shutdown of a partition's leader: the first replica in AR order
/// that is in the ISR and can lead (so not the broker going away, which is
/// [`BrokerStatus::ShuttingDown`]); the ISR loses every broker shutting down.
/// `None` when nobody can take over (the leader stays).
pub fn controlled_shutdown(
    assignment: &[i32],
    isr: &[i32],
    status: impl Fn(i32) -> BrokerStatus,
) -> Option<Elected> {
    let leader = assignment
        .iter()
        .copied()
        .find(|b| isr.contains(b) && status(*b).can_lead())?;
    let isr = isr
        .iter()
        .copied()
        .filter(|&b| status(b) != BrokerStatus::ShuttingDown)
        .collect();
    Some(Elected {
        leader,
        isr,
        unclean: false,
    })
}

/// The ISR without its offline members, never empty: if every member is
/// offline, one stays (Kafka keeps the last one), so that the partition can
/// come back cleanly when that replica returns. The one kept is the previous
/// leader if it is a member (it has every acknowledged record and the longest
/// log), else the last member.
pub fn shrink_isr(isr: &[i32], leader: i32, status: impl Fn(i32) -> BrokerStatus) -> Vec<i32> {
    let kept: Vec<i32> = isr
        .iter()
        .copied()
        .filter(|&b| status(b) != BrokerStatus::Offline)
        .collect();
    if !kept.is_empty() || isr.is_empty() {
        return kept;
    }
    if isr.contains(&leader) {
        vec![leader]
    } else {
        isr[isr.len() - 1..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BrokerStatus::*;

    /// Brokers 1..=5: `offline` and `stopping` list the exceptions.
    fn status<'a>(offline: &'a [i32], stopping: &'a [i32]) -> impl Fn(i32) -> BrokerStatus + 'a {
        move |b| {
            if offline.contains(&b) {
                Offline
            } else if stopping.contains(&b) {
                ShuttingDown
            } else {
                Online
            }
        }
    }

    #[test]
    fn new_partition_takes_first_live_replica_and_live_isr() {
        let got = new_partition(&[1, 2, 3], status(&[1], &[]));
        assert_eq!(
            got,
            Some(Elected {
                leader: 2,
                isr: vec![2, 3],
                unclean: false
            })
        );
        let got = new_partition(&[1, 2, 3], status(&[], &[1]));
        assert_eq!(
            got,
            Some(Elected {
                leader: 2,
                isr: vec![2, 3],
                unclean: false
            }),
            "shutting down neither leads nor joins"
        );
        assert_eq!(new_partition(&[1, 2], status(&[1, 2], &[])), None);
        assert_eq!(new_partition(&[1], status(&[], &[1])), None);
    }

    #[test]
    fn offline_partition_prefers_live_isr_in_assignment_order() {
        // AR order decides, not ISR order.
        let got = offline_partition(&[1, 2, 3], &[3, 2, 1], 1, false, status(&[1], &[]));
        assert_eq!(
            got,
            Elected {
                leader: 2,
                isr: vec![3, 2],
                unclean: false
            }
        );
        // A live replica outside the ISR is not elected cleanly.
        let got = offline_partition(&[1, 2, 3], &[1, 3], 1, false, status(&[1], &[]));
        assert_eq!(got.leader, 3);
        // A shutting-down ISR member is skipped and dropped from the ISR.
        let got = offline_partition(&[1, 2, 3], &[1, 2, 3], 1, false, status(&[1], &[2]));
        assert_eq!(
            got,
            Elected {
                leader: 3,
                isr: vec![3],
                unclean: false
            }
        );
    }

    #[test]
    fn offline_partition_without_live_isr() {
        // Clean only: no leader, ISR keeps the last leader.
        let got = offline_partition(&[1, 2, 3], &[1, 3], 1, false, status(&[1, 3], &[]));
        assert_eq!(
            got,
            Elected {
                leader: NO_LEADER,
                isr: vec![1],
                unclean: false
            }
        );
        // Unclean: the first live replica, alone in the ISR.
        let got = offline_partition(&[1, 2, 3], &[1, 3], 1, true, status(&[1, 3], &[]));
        assert_eq!(
            got,
            Elected {
                leader: 2,
                isr: vec![2],
                unclean: true
            }
        );
        // Unclean but nobody live: no leader.
        let got = offline_partition(&[1, 2], &[1], 1, true, status(&[1, 2], &[]));
        assert_eq!(
            got,
            Elected {
                leader: NO_LEADER,
                isr: vec![1],
                unclean: false
            }
        );
        // A clean candidate wins over unclean.
        let got = offline_partition(&[2, 3], &[3], 1, true, status(&[], &[]));
        assert_eq!(
            got,
            Elected {
                leader: 3,
                isr: vec![3],
                unclean: false
            }
        );
    }

    #[test]
    fn offline_partition_comes_back_when_isr_member_returns() {
        let got = offline_partition(&[1, 2], &[1], NO_LEADER, false, status(&[2], &[]));
        assert_eq!(
            got,
            Elected {
                leader: 1,
                isr: vec![1],
                unclean: false
            }
        );
    }

    #[test]
    fn preferred_election() {
        assert_eq!(preferred(&[1, 2], &[1, 2], 2, status(&[], &[])), Ok(1));
        assert_eq!(
            preferred(&[1, 2], &[1, 2], 1, status(&[], &[])),
            Err(PreferredRefusal::AlreadyLeader)
        );
        assert_eq!(
            preferred(&[1, 2], &[2], 2, status(&[], &[])),
            Err(PreferredRefusal::NotAvailable)
        );
        assert_eq!(
            preferred(&[1, 2], &[1, 2], 2, status(&[1], &[])),
            Err(PreferredRefusal::NotAvailable)
        );
        assert_eq!(
            preferred(&[1, 2], &[1, 2], 2, status(&[], &[1])),
            Err(PreferredRefusal::NotAvailable)
        );
        assert_eq!(
            preferred(&[], &[1], 1, status(&[], &[])),
            Err(PreferredRefusal::NotAvailable)
        );
    }

    #[test]
    fn controlled_shutdown_moves_to_next_isr_member() {
        let got = controlled_shutdown(&[1, 2, 3], &[1, 2, 3], status(&[], &[1]));
        assert_eq!(
            got,
            Some(Elected {
                leader: 2,
                isr: vec![2, 3],
                unclean: false
            })
        );
        // Only ISR members qualify, in AR order.
        let got = controlled_shutdown(&[1, 2, 3], &[3, 1], status(&[], &[1]));
        assert_eq!(
            got,
            Some(Elected {
                leader: 3,
                isr: vec![3],
                unclean: false
            })
        );
        // Nobody else in the ISR: the leader stays.
        assert_eq!(controlled_shutdown(&[1, 2], &[1], status(&[], &[1])), None);
        assert_eq!(
            controlled_shutdown(&[1, 2], &[1, 2], status(&[2], &[1])),
            None
        );
    }

    #[test]
    fn shrink_isr_never_empties() {
        assert_eq!(shrink_isr(&[1, 2, 3], 1, status(&[2], &[])), vec![1, 3]);
        assert_eq!(
            shrink_isr(&[1, 2, 3], 1, status(&[], &[2])),
            vec![1, 2, 3],
            "shutting down is alive"
        );
        assert_eq!(
            shrink_isr(&[1, 2], 2, status(&[1, 2], &[])),
            vec![2],
            "the leader is kept"
        );
        assert_eq!(
            shrink_isr(&[1, 2], NO_LEADER, status(&[1, 2], &[])),
            vec![2],
            "else the last"
        );
        assert_eq!(shrink_isr(&[], 1, status(&[], &[])), Vec::<i32>::new());
    }
}
