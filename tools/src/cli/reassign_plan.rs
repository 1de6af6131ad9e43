//! Reassignment plans, in kafka-reassign-partitions' JSON
//! (`{"version":1,"partitions":[{"topic":..,"partition":..,"replicas":[..]}]}`): moving topics
//! onto a broker list (`strom topic reassign --plan`), and spreading replicas and preferred
//! leaders evenly over the live brokers (`strom cluster rebalance`). Pure functions of the
//! current assignment, so they are tested without a cluster.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The plan file format's version (kafka-reassign-partitions writes 1).
pub const PLAN_VERSION: i32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub version: i32,
    pub partitions: Vec<PlannedPartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPartition {
    pub topic: String,
    pub partition: i32,
    /// Target replicas, preferred leader first.
    pub replicas: Vec<i32>,
}

/// One partition's current replicas, preferred leader first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentPartition {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

impl Plan {
    pub fn new(partitions: Vec<PlannedPartition>) -> Self {
        Self {
            version: PLAN_VERSION,
            partitions,
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let plan: Plan =
            serde_json::from_str(text).map_err(|error| format!("not a plan: {error}"))?;
        if plan.version != PLAN_VERSION {
            return Err(format!(
                "plan version {} (expected {PLAN_VERSION})",
                plan.version
            ));
        }
        for p in &plan.partitions {
            let mut ids = p.replicas.clone();
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() || ids.len() != p.replicas.len() || ids[0] < 0 {
                return Err(format!(
                    "{}-{}: replicas {:?} must be distinct broker ids",
                    p.topic, p.partition, p.replicas
                ));
            }
        }
        Ok(plan)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a plan serializes to JSON")
    }
}

/// Moves every partition onto `brokers` with its replication factor (capped at the broker
/// count): partition `p` of a topic gets `brokers[(start + p + i) % n]` for `i` in
/// `0..rf`, `start` rotating per topic, so replicas and preferred leaders spread evenly.
pub fn move_onto(partitions: &[CurrentPartition], brokers: &[i32]) -> Result<Plan, String> {
    if brokers.is_empty() {
        return Err("no brokers to move onto".into());
    }
    let mut by_topic: BTreeMap<&str, Vec<&CurrentPartition>> = BTreeMap::new();
    for p in partitions {
        by_topic.entry(&p.topic).or_default().push(p);
    }
    let n = brokers.len();
    let mut planned = Vec::new();
    for (start, (_, mut parts)) in by_topic.into_iter().enumerate() {
        parts.sort_by_key(|p| p.partition);
        for p in parts {
            let rf = p.replicas.len().min(n);
            let first = start + usize::try_from(p.partition).unwrap_or(0);
            let replicas = (0..rf).map(|i| brokers[(first + i) % n]).collect();
            planned.push(PlannedPartition {
                topic: p.topic.clone(),
                partition: p.partition,
                replicas,
            });
        }
    }
    Ok(Plan::new(planned))
}

/// An even spread over `live` brokers with as few moves as it takes: replicas move from the
/// brokers holding the most to those holding the fewest (never two replicas of a partition on
/// one broker) until the counts differ by at most one; then each partition's preferred leader
/// (its first replica) is the replica leading the fewest partitions so far. Lists only the
/// partitions whose replicas or order change.
pub fn rebalance(partitions: &[CurrentPartition], live: &[i32]) -> Plan {
    let mut load: BTreeMap<i32, usize> = live.iter().map(|b| (*b, 0)).collect();
    let mut target: Vec<Vec<i32>> = Vec::with_capacity(partitions.len());
    for p in partitions {
        // Replicas on brokers that are gone are moved like any other excess replica.
        for b in &p.replicas {
            if let Some(count) = load.get_mut(b) {
                *count += 1;
            }
        }
        target.push(p.replicas.clone());
    }
    if live.is_empty() {
        return Plan::new(Vec::new());
    }
    // Replicas on brokers that are not live must move first.
    for replicas in &mut target {
        for slot in 0..replicas.len() {
            if load.contains_key(&replicas[slot]) {
                continue;
            }
            if let Some(to) = least_loaded(&load, replicas) {
                replicas[slot] = to;
                *load.get_mut(&to).expect("live") += 1;
            }
        }
    }
    // Then from the fullest to the emptiest while they differ by more than one. Each move
    // lowers the spread, so this ends; bounded anyway by the replica count.
    let total: usize = target.iter().map(Vec::len).sum();
    for _ in 0..total {
        let (&max_broker, &max) = load.iter().max_by_key(|(b, c)| (**c, -**b)).expect("live");
        let (&min_broker, &min) = load.iter().min_by_key(|(b, c)| (**c, **b)).expect("live");
        if max <= min + 1 {
            break;
        }
        let Some(replicas) = target
            .iter_mut()
            .find(|r| r.contains(&max_broker) && !r.contains(&min_broker))
        else {
            break;
        };
        let slot = replicas
            .iter()
            .position(|b| *b == max_broker)
            .expect("found by contains");
        replicas[slot] = min_broker;
        *load.get_mut(&max_broker).expect("live") -= 1;
        *load.get_mut(&min_broker).expect("live") += 1;
    }
    // Preferred leaders: the replica leading the fewest so far goes first (keeping the current
    // first replica on a tie, so a balanced cluster gets no changes).
    let mut leads: BTreeMap<i32, usize> = live.iter().map(|b| (*b, 0)).collect();
    for replicas in &mut target {
        let current = replicas[0];
        let best = replicas
            .iter()
            .copied()
            .min_by_key(|b| (leads.get(b).copied().unwrap_or(usize::MAX), *b != current))
            .expect("a partition has replicas");
        let at = replicas.iter().position(|b| *b == best).expect("present");
        replicas.swap(0, at);
        *leads.entry(best).or_default() += 1;
    }
    let planned = partitions
        .iter()
        .zip(target)
        .filter(|(p, replicas)| p.replicas != *replicas)
        .map(|(p, replicas)| PlannedPartition {
            topic: p.topic.clone(),
            partition: p.partition,
            replicas,
        })
        .collect();
    Plan::new(planned)
}

/// The live broker with the fewest replicas that `replicas` does not hold.
fn least_loaded(load: &BTreeMap<i32, usize>, replicas: &[i32]) -> Option<i32> {
    load.iter()
        .filter(|(b, _)| !replicas.contains(b))
        .min_by_key(|(b, c)| (**c, **b))
        .map(|(b, _)| *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current(topic: &str, assignment: &[&[i32]]) -> Vec<CurrentPartition> {
        assignment
            .iter()
            .enumerate()
            .map(|(p, r)| CurrentPartition {
                topic: topic.into(),
                partition: p as i32,
                replicas: r.to_vec(),
            })
            .collect()
    }

    fn counts(
        plan: &Plan,
        before: &[CurrentPartition],
    ) -> (BTreeMap<i32, usize>, BTreeMap<i32, usize>) {
        let mut replicas = BTreeMap::new();
        let mut leaders = BTreeMap::new();
        for p in before {
            let after = plan
                .partitions
                .iter()
                .find(|q| q.topic == p.topic && q.partition == p.partition)
                .map_or(&p.replicas, |q| &q.replicas);
            for b in after {
                *replicas.entry(*b).or_insert(0) += 1;
            }
            *leaders.entry(after[0]).or_insert(0) += 1;
        }
        (replicas, leaders)
    }

    #[test]
    fn plan_json_is_kafkas() {
        let plan = Plan::new(vec![PlannedPartition {
            topic: "t".into(),
            partition: 0,
            replicas: vec![2, 3, 4],
        }]);
        let json = plan.to_json();
        assert_eq!(
            json,
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,3,4]}]}"#
        );
        assert_eq!(Plan::parse(&json), Ok(plan));
        assert!(Plan::parse(r#"{"version":2,"partitions":[]}"#).is_err());
        assert!(Plan::parse(
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,2]}]}"#
        )
        .is_err());
        assert!(Plan::parse("{").is_err());
    }

    #[test]
    fn moving_onto_a_broker_list_keeps_the_replication_factor_and_spreads_leaders() {
        let before = current("t", &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]);
        let plan = move_onto(&before, &[2, 3, 4]).expect("plan");
        assert_eq!(plan.partitions.len(), 3);
        for p in &plan.partitions {
            let mut r = p.replicas.clone();
            r.sort_unstable();
            assert_eq!(r, vec![2, 3, 4]);
        }
        let leaders: Vec<i32> = plan.partitions.iter().map(|p| p.replicas[0]).collect();
        assert_eq!(leaders, vec![2, 3, 4]);
        // Fewer brokers than replicas: capped.
        let plan = move_onto(&before, &[5]).expect("plan");
        assert!(plan.partitions.iter().all(|p| p.replicas == vec![5]));
        assert!(move_onto(&before, &[]).is_err());
    }

    #[test]
    fn rebalance_after_a_broker_joins_spreads_replicas_and_leaders() {
        // Six partitions, RF 2, on brokers 1..3; broker 4 joined.
        let before = current("t", &[&[1, 2], &[2, 3], &[3, 1], &[1, 3], &[2, 1], &[3, 2]]);
        let plan = rebalance(&before, &[1, 2, 3, 4]);
        let (replicas, leaders) = counts(&plan, &before);
        assert_eq!(replicas.len(), 4, "{replicas:?}");
        assert!(
            replicas.values().all(|c| *c == 3),
            "12 replicas over 4: {replicas:?}"
        );
        assert!(leaders.values().all(|c| *c <= 2), "{leaders:?}");
        assert!(
            leaders.contains_key(&4),
            "the new broker leads some: {leaders:?}"
        );
        for p in &plan.partitions {
            let mut r = p.replicas.clone();
            r.dedup();
            assert_eq!(r.len(), 2, "no broker twice: {p:?}");
        }
        // Balanced already: nothing to do.
        let after: Vec<CurrentPartition> = before
            .iter()
            .map(|p| {
                let q = plan
                    .partitions
                    .iter()
                    .find(|q| q.partition == p.partition)
                    .map_or(p.replicas.clone(), |q| q.replicas.clone());
                CurrentPartition {
                    replicas: q,
                    ..p.clone()
                }
            })
            .collect();
        assert_eq!(rebalance(&after, &[1, 2, 3, 4]).partitions, vec![]);
    }

    #[test]
    fn rebalance_moves_replicas_off_brokers_that_are_gone() {
        let before = current("t", &[&[1, 9], &[9, 1]]);
        let plan = rebalance(&before, &[1, 2]);
        let (replicas, _) = counts(&plan, &before);
        assert_eq!(replicas.get(&9), None);
        assert_eq!(replicas.get(&2), Some(&2));
    }
}
