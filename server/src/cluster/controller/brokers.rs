//! Brokers dying, joining, restarting, and shutting down under control.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

use super::api::{Action, ControllerConfig};
use super::state::{reconcile_all, Step};
use super::Active;
use crate::cluster::election;

impl Active {
    /// The live set changed. Brokers gone or with a new epoch are handled as
    /// dead first (their leaderships move, they leave ISRs), then the new set
    /// is live and leaderless partitions get leaders. A restarted sole ISR
    /// member thus leads again under a new leader epoch.
    pub(super) fn brokers_changed(
        &mut self,
        config: &ControllerConfig,
        step: &mut Step,
        brokers: BTreeMap<i32, i64>,
    ) {
        let unclean = config.unclean_leader_election_enable;
        let restarted: BTreeSet<i32> = self
            .live
            .brokers
            .iter()
            .filter(|(id, epoch)| brokers.get(id).is_some_and(|e| e != *epoch))
            .map(|(id, _)| *id)
            .collect();
        let before = self.live.brokers.len();
        self.live
            .brokers
            .retain(|id, epoch| brokers.get(id) == Some(epoch));
        if self.live.brokers.len() != before {
            self.live.forget_stale_shutdowns();
            reconcile_all(&self.live, unclean, step, &mut self.topics);
        }
        self.live.brokers = brokers;
        self.live.forget_stale_shutdowns();
        reconcile_all(&self.live, unclean, step, &mut self.topics);
        self.live.restarted = restarted;
    }

    /// Broker `broker` asks to stop. Each partition it leads moves to the
    /// first other ISR member that may lead; it leaves every ISR it shares
    /// with others; it is not elected again while this epoch lives. Answers
    /// with the partitions it still leads.
    pub(super) fn controlled_shutdown(&mut self, step: &mut Step, broker: i32, broker_epoch: i64) {
        if self.live.brokers.get(&broker) != Some(&broker_epoch) {
            step.replies.push(Action::ControlledShutdownDone {
                broker,
                broker_epoch,
                result: Err(ResponseError::StaleBrokerEpoch),
            });
            return;
        }
        self.live.shutting_down.insert(broker, broker_epoch);
        let live = &self.live;
        let status = |b| live.status(b);
        let mut remaining = Vec::new();
        for (name, topic) in self.topics.iter_mut().filter(|(_, t)| !t.deleting()) {
            for p in 0..topic.assignment.len() {
                let Some(state) = &topic.states[p] else {
                    continue;
                };
                if state.leader == broker {
                    match election::controlled_shutdown(&topic.assignment[p], &state.isr, status) {
                        Some(e) => topic.write(step, name, p, e.leader, e.isr, true),
                        None => remaining.push((
                            name.clone(),
                            i32::try_from(p).expect("partition counts fit in i32"),
                        )),
                    }
                } else if state.isr.contains(&broker) && state.isr.len() > 1 {
                    let isr = state.isr.iter().copied().filter(|&b| b != broker).collect();
                    let leader = state.leader;
                    topic.write(step, name, p, leader, isr, false);
                }
            }
        }
        step.replies.push(Action::ControlledShutdownDone {
            broker,
            broker_epoch,
            result: Ok(remaining),
        });
    }
}
