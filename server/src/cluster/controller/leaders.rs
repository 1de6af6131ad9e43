//! Leader elections on request (ElectLeaders) and the periodic rebalance
//! towards preferred leaders.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::api::{Action, ControllerConfig, ElectionKind};
use super::state::Step;
use super::Active;
use crate::cluster::election::{self, BrokerStatus, PreferredRefusal};
use crate::cluster::{TopicPartition, NO_LEADER};

impl Active {
    /// ElectLeaders: per partition, the new leader or Kafka's error.
    /// `None` asks for every partition of every topic not being deleted.
    pub(super) fn elect_leaders(
        &mut self,
        step: &mut Step,
        request: u64,
        kind: ElectionKind,
        partitions: Option<Vec<TopicPartition>>,
    ) {
        let partitions = partitions.unwrap_or_else(|| {
            self.topics
                .iter()
                .filter(|(_, t)| !t.deleting())
                .flat_map(|(name, t)| {
                    (0..t.assignment.len()).map(move |p| (name.clone(), p as i32))
                })
                .collect()
        });
        let mut results = Vec::with_capacity(partitions.len());
        for (name, partition) in partitions {
            let result = self.elect_one(step, kind, &name, partition);
            results.push(((name, partition), result));
        }
        step.replies
            .push(Action::ElectLeadersDone { request, results });
    }

    fn elect_one(
        &mut self,
        step: &mut Step,
        kind: ElectionKind,
        name: &str,
        partition: i32,
    ) -> Result<i32, ResponseError> {
        let live = &self.live;
        let status = |b| live.status(b);
        let topic = self
            .topics
            .get_mut(name)
            .filter(|t| !t.deleting())
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        let p = usize::try_from(partition)
            .ok()
            .filter(|&p| p < topic.assignment.len())
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        let assignment = &topic.assignment[p];
        match (kind, &topic.states[p]) {
            (ElectionKind::Preferred, None) => Err(ResponseError::PreferredLeaderNotAvailable),
            (ElectionKind::Unclean, None) => Err(ResponseError::EligibleLeadersNotAvailable),
            (ElectionKind::Preferred, Some(s)) => {
                match election::preferred(assignment, &s.isr, s.leader, status) {
                    Ok(leader) => {
                        let isr = s.isr.clone();
                        topic.write(step, name, p, leader, isr, true);
                        Ok(leader)
                    }
                    Err(PreferredRefusal::AlreadyLeader) => Err(ResponseError::ElectionNotNeeded),
                    Err(PreferredRefusal::NotAvailable) => {
                        Err(ResponseError::PreferredLeaderNotAvailable)
                    }
                }
            }
            (ElectionKind::Unclean, Some(s)) => {
                if s.leader != NO_LEADER && status(s.leader) != BrokerStatus::Offline {
                    return Err(ResponseError::ElectionNotNeeded);
                }
                let e = election::offline_partition(assignment, &s.isr, s.leader, true, status);
                if e.leader == NO_LEADER {
                    return Err(ResponseError::EligibleLeadersNotAvailable);
                }
                topic.write(step, name, p, e.leader, e.isr, true);
                Ok(e.leader)
            }
        }
    }

    /// Kafka's `checkAndTriggerAutoLeaderRebalance`: for each broker, the share
    /// of partitions it is preferred leader of but does not lead; above
    /// `leader.imbalance.per.broker.percentage`, a preferred election for
    /// each of them whose preferred replica can take over.
    pub(super) fn rebalance(&mut self, config: &ControllerConfig, step: &mut Step) {
        // broker -> (preferred partitions, of which led elsewhere)
        let mut counts: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
        for topic in self.topics.values().filter(|t| !t.deleting()) {
            for (assignment, state) in topic.assignment.iter().zip(&topic.states) {
                let (Some(&preferred), Some(state)) = (assignment.first(), state) else {
                    continue;
                };
                let entry = counts.entry(preferred).or_default();
                entry.0 += 1;
                if state.leader != preferred {
                    entry.1 += 1;
                }
            }
        }
        let percentage = u64::from(config.leader_imbalance_per_broker_percentage);
        let imbalanced: Vec<i32> = counts
            .into_iter()
            .filter(|(_, (total, elsewhere))| elsewhere * 100 > percentage * total)
            .map(|(broker, _)| broker)
            .collect();
        if imbalanced.is_empty() {
            return;
        }
        let live = &self.live;
        let status = |b| live.status(b);
        for (name, topic) in self.topics.iter_mut().filter(|(_, t)| !t.deleting()) {
            for p in 0..topic.assignment.len() {
                let (Some(&preferred), Some(state)) =
                    (topic.assignment[p].first(), &topic.states[p])
                else {
                    continue;
                };
                if !imbalanced.contains(&preferred) {
                    continue;
                }
                if let Ok(leader) =
                    election::preferred(&topic.assignment[p], &state.isr, state.leader, status)
                {
                    let isr = state.isr.clone();
                    topic.write(step, name, p, leader, isr, true);
                }
            }
        }
    }
}
