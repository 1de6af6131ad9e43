//! The controller's own consistency checks (see
//! [`super::Controller::check_invariants`]).

use std::collections::BTreeSet;

use super::api::ControllerConfig;
use super::Active;
use crate::cluster::election::{self, BrokerStatus};
use crate::cluster::NO_LEADER;

impl Active {
    pub(super) fn check_invariants(&self, config: &ControllerConfig) -> Result<(), String> {
        for (broker, epoch) in &self.live.shutting_down {
            if self.live.brokers.get(broker) != Some(epoch) {
                return Err(format!(
                    "broker {broker} shutting down under a dead epoch {epoch}"
                ));
            }
        }
        let status = |b| self.live.status(b);
        for (name, topic) in &self.topics {
            if topic.states.len() != topic.assignment.len()
                || topic.dead_leader_epochs.len() != topic.assignment.len()
            {
                return Err(format!(
                    "{name}: {} states for {} partitions",
                    topic.states.len(),
                    topic.assignment.len()
                ));
            }
            if topic.adding.len() != topic.assignment.len()
                || topic.removing.len() != topic.assignment.len()
            {
                return Err(format!("{name}: reassignment lists out of step"));
            }
            for p in 0..topic.assignment.len() {
                let rs = &topic.assignment[p];
                let (adding, removing) = (&topic.adding[p], &topic.removing[p]);
                if !adding.iter().chain(removing).all(|b| rs.contains(b))
                    || adding.iter().any(|b| removing.contains(b))
                    || topic.target(p).is_empty()
                    || topic.original(p).is_empty()
                {
                    return Err(format!(
                        "{name}-{p}: replicas {rs:?}, adding {adding:?}, removing {removing:?}"
                    ));
                }
                // A reassignment whose target is all in the ISR and which a
                // live target replica could lead has completed.
                if let (Some(s), false) = (&topic.states[p], topic.deleting()) {
                    let target = topic.target(p);
                    if topic.reassigning(p)
                        && target.iter().all(|b| s.isr.contains(b))
                        && target.iter().any(|b| status(*b) == BrokerStatus::Online)
                    {
                        return Err(format!(
                            "{name}-{p}: reassignment to {target:?} stuck with ISR {:?}",
                            s.isr
                        ));
                    }
                }
            }
            let unclean = topic
                .unclean
                .unwrap_or(config.unclean_leader_election_enable);
            for (p, (assignment, state)) in topic.assignment.iter().zip(&topic.states).enumerate() {
                let tp = format!("{name}-{p}");
                let Some(s) = state else {
                    if !topic.deleting() && election::new_partition(assignment, status).is_some() {
                        return Err(format!("{tp} has no state though a replica could lead"));
                    }
                    continue;
                };
                if s.controller_epoch > self.epoch {
                    return Err(format!(
                        "{tp} carries controller epoch {} > {}",
                        s.controller_epoch, self.epoch
                    ));
                }
                if s.controller_epoch == self.epoch {
                    let distinct: BTreeSet<i32> = s.isr.iter().copied().collect();
                    if s.isr.is_empty() || distinct.len() != s.isr.len() {
                        return Err(format!("{tp} has ISR {:?}", s.isr));
                    }
                    if !s.isr.iter().all(|b| assignment.contains(b)) {
                        return Err(format!(
                            "{tp} ISR {:?} outside assignment {assignment:?}",
                            s.isr
                        ));
                    }
                }
                if topic.deleting() {
                    continue;
                }
                if s.leader != NO_LEADER {
                    if s.leader_epoch <= topic.dead_leader_epochs[p] {
                        return Err(format!(
                            "{tp} led by {} in epoch {} that died",
                            s.leader, s.leader_epoch
                        ));
                    }
                    if status(s.leader) == BrokerStatus::Offline
                        || !s.isr.contains(&s.leader)
                        || !assignment.contains(&s.leader)
                    {
                        return Err(format!(
                            "{tp} led by {} with ISR {:?}, AR {assignment:?}, live {:?}",
                            s.leader, s.isr, self.live.brokers
                        ));
                    }
                } else if election::offline_partition(
                    assignment, &s.isr, NO_LEADER, unclean, status,
                )
                .leader
                    != NO_LEADER
                {
                    return Err(format!(
                        "{tp} has no leader though one could be elected (ISR {:?}, live {:?})",
                        s.isr, self.live.brokers
                    ));
                }
            }
        }
        Ok(())
    }
}
