//! Election of the controller, topic creation and growth, deletion, and the
//! states read back after a failed write.

use std::collections::BTreeSet;

use super::api::{ControllerConfig, TopicRecord};
use super::state::{reconcile, reconcile_all, Step, Topic};
use super::{Active, DELETE_TOPIC_RETRY_MS};
use crate::cluster::znodes::PartitionState;

impl Active {
    /// Just elected: finish pending deletions, elect wherever the previous
    /// controller left something to do, resume controlled shutdowns.
    pub(super) fn elected(
        &mut self,
        config: &ControllerConfig,
        step: &mut Step,
        deleting: BTreeSet<String>,
    ) {
        for name in deleting {
            self.deletion_requested(step, name);
        }
        reconcile_all(
            &self.live,
            config.unclean_leader_election_enable,
            step,
            &mut self.topics,
        );
        let shutting_down: Vec<(i32, i64)> = self
            .live
            .shutting_down
            .iter()
            .map(|(b, e)| (*b, *e))
            .collect();
        for (broker, broker_epoch) in shutting_down {
            self.controlled_shutdown(step, broker, broker_epoch);
        }
    }

    /// A topic appeared or changed. A different id under a known name is a
    /// new topic (the old one was deleted). For a known topic the assignment
    /// is taken from the record (partitions added); the states of existing
    /// partitions stay the controller's own (it is their only writer and the
    /// record may have been read before its last write), except where it has
    /// none.
    pub(super) fn topic_changed(
        &mut self,
        config: &ControllerConfig,
        step: &mut Step,
        name: String,
        record: TopicRecord,
    ) {
        let topic = match self.topics.get_mut(&name) {
            Some(topic) if topic.id == record.id => {
                topic.update(record);
                topic
            }
            _ => {
                self.topics.insert(name.clone(), Topic::from_record(record));
                self.topics.get_mut(&name).expect("just inserted")
            }
        };
        for p in 0..topic.assignment.len() {
            reconcile(
                &self.live,
                config.unclean_leader_election_enable,
                step,
                &name,
                topic,
                p,
            );
        }
    }

    /// `/admin/delete_topics/<name>` appeared: delete at once (even a topic
    /// the controller has not seen: whatever exists under that name goes).
    pub(super) fn deletion_requested(&mut self, step: &mut Step, name: String) {
        if let Some(topic) = self.topics.get_mut(&name) {
            topic.deletion_retry_at_ms = Some(step.now_ms.saturating_add(DELETE_TOPIC_RETRY_MS));
        }
        if !step.deletes.contains(&name) {
            step.deletes.push(name);
        }
    }

    /// Sends DeleteTopic again for deletions that did not complete in time.
    pub(super) fn retry_deletions(&mut self, step: &mut Step) {
        let due: Vec<String> = self
            .topics
            .iter()
            .filter(|(_, t)| t.deletion_retry_at_ms.is_some_and(|at| at <= step.now_ms))
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            self.deletion_requested(step, name);
        }
    }

    /// The current state of a partition, read after a failed write or an ISR
    /// change by its leader: adopt it and re-check the partition. A newer
    /// controller epoch in it means this controller was deposed: resign
    /// (returns true).
    pub(super) fn state_read(
        &mut self,
        config: &ControllerConfig,
        step: &mut Step,
        name: &str,
        partition: i32,
        state: Option<PartitionState>,
    ) -> bool {
        if state
            .as_ref()
            .is_some_and(|s| s.controller_epoch > self.epoch)
        {
            return true;
        }
        let Some(topic) = self.topics.get_mut(name) else {
            return false;
        };
        let Some(p) = usize::try_from(partition)
            .ok()
            .filter(|&p| p < topic.states.len())
        else {
            // A partition not known yet: its TopicChanged will carry the state.
            return false;
        };
        topic.states[p] = state;
        reconcile(
            &self.live,
            config.unclean_leader_election_enable,
            step,
            name,
            topic,
            p,
        );
        false
    }

    pub(super) fn tick(&mut self, config: &ControllerConfig, step: &mut Step) {
        self.retry_deletions(step);
        if config.auto_leader_rebalance_enable && step.now_ms >= self.next_rebalance_check_ms {
            self.next_rebalance_check_ms = step
                .now_ms
                .saturating_add(config.leader_imbalance_check_interval_ms.max(1));
            self.rebalance(config, step);
        }
    }
}
