//! The "consumer" embedded protocol of classic groups: subscription and assignment encodings,
//! and the range and round-robin assignors the group leader runs.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::errors::{ClientError, Result};

/// Version written for subscriptions: v1 (topics, user data, owned partitions) is read by every
/// classic-protocol client and broker tool.
const SUBSCRIPTION_VERSION: i16 = 1;
/// Version written for assignments.
const ASSIGNMENT_VERSION: i16 = 1;
/// Highest version the crate decodes; newer versions only append fields, so decoding a newer
/// payload with this version reads the fields it knows.
const CONSUMER_PROTOCOL_MAX_VERSION: i16 = 3;

/// The partition assignment strategies this client offers, most preferred first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Range,
    RoundRobin,
}

impl Assignor {
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }

    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            _ => None,
        }
    }

    /// Assigns every partition of the subscribed topics. `members` maps member id to its
    /// subscribed topics; `partition_counts` maps topic to its partition count. Every member
    /// appears in the result, possibly with nothing.
    pub fn assign(
        self,
        members: &BTreeMap<String, Vec<String>>,
        partition_counts: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
        let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> = members
            .keys()
            .map(|m| (m.clone(), BTreeMap::new()))
            .collect();
        match self {
            Assignor::Range => {
                for (topic, &count) in partition_counts {
                    let subscribers: Vec<&String> = members
                        .iter()
                        .filter(|(_, t)| t.contains(topic))
                        .map(|(m, _)| m)
                        .collect();
                    if subscribers.is_empty() || count <= 0 {
                        continue;
                    }
                    let n = subscribers.len() as i32;
                    let per_member = count / n;
                    let extra = count % n;
                    for (index, member) in subscribers.iter().enumerate() {
                        let index = index as i32;
                        let start = index * per_member + index.min(extra);
                        let length = per_member + i32::from(index < extra);
                        if length > 0 {
                            out.entry((*member).clone())
                                .or_default()
                                .insert(topic.clone(), (start..start + length).collect());
                        }
                    }
                }
            }
            Assignor::RoundRobin => {
                let member_ids: Vec<&String> = members.keys().collect();
                if member_ids.is_empty() {
                    return out;
                }
                let mut cursor = 0usize;
                for (topic, &count) in partition_counts {
                    if !members.values().any(|t| t.contains(topic)) {
                        continue;
                    }
                    for partition in 0..count {
                        // Next member (cyclically) that subscribes to this topic.
                        loop {
                            let member = member_ids[cursor % member_ids.len()];
                            cursor += 1;
                            if members[member].contains(topic) {
                                out.entry(member.clone())
                                    .or_default()
                                    .entry(topic.clone())
                                    .or_default()
                                    .push(partition);
                                break;
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

fn with_version<T: Encodable>(message: &T, version: i16) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message.encode(&mut buf, version).map_err(|error| {
        ClientError::InvalidArgument(format!("cannot encode consumer protocol data: {error}"))
    })?;
    Ok(buf.freeze())
}

fn decode_versioned<T: Decodable + Default>(data: &Bytes, what: &str) -> Result<T> {
    if data.is_empty() {
        return Ok(T::default());
    }
    let bad = |reason: String| ClientError::Protocol {
        addr: "group coordinator".into(),
        reason: format!("bad {what}: {reason}"),
    };
    if data.len() < 2 {
        return Err(bad("shorter than its version".into()));
    }
    let mut body = data.clone();
    let version = body.get_i16();
    if version < 0 {
        return Err(bad(format!("negative version {version}")));
    }
    T::decode(&mut body, version.min(CONSUMER_PROTOCOL_MAX_VERSION))
        .map_err(|error| bad(error.to_string()))
}

/// The member metadata a consumer sends in JoinGroup.
pub fn encode_subscription(topics: &[String]) -> Result<Bytes> {
    let mut subscription = ConsumerProtocolSubscription::default();
    subscription.topics = topics
        .iter()
        .map(|t| StrBytes::from_string(t.clone()))
        .collect();
    with_version(&subscription, SUBSCRIPTION_VERSION)
}

/// The topics in a member's JoinGroup metadata.
pub fn decode_subscription(data: &Bytes) -> Result<Vec<String>> {
    let subscription: ConsumerProtocolSubscription = decode_versioned(data, "subscription")?;
    Ok(subscription
        .topics
        .iter()
        .map(ToString::to_string)
        .collect())
}

/// The assignment the leader sends for one member in SyncGroup.
pub fn encode_assignment(partitions: &BTreeMap<String, Vec<i32>>) -> Result<Bytes> {
    let mut assignment = ConsumerProtocolAssignment::default();
    for (topic, ids) in partitions {
        let mut entry = AssignedTopic::default();
        entry.topic = TopicName(StrBytes::from_string(topic.clone()));
        entry.partitions = ids.clone();
        assignment.assigned_partitions.push(entry);
    }
    with_version(&assignment, ASSIGNMENT_VERSION)
}

/// The partitions in a SyncGroup (or DescribeGroups) assignment, as (topic, partition).
pub fn decode_assignment(data: &Bytes) -> Result<Vec<(String, i32)>> {
    let assignment: ConsumerProtocolAssignment = decode_versioned(data, "assignment")?;
    let mut out = Vec::new();
    for topic in assignment.assigned_partitions {
        for partition in topic.partitions {
            out.push((topic.topic.0.to_string(), partition));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(m, t)| (m.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn counts(entries: &[(&str, i32)]) -> BTreeMap<String, i32> {
        entries.iter().map(|(t, c)| (t.to_string(), *c)).collect()
    }

    #[test]
    fn range_gives_leading_members_the_extra_partitions() {
        let result = Assignor::Range.assign(
            &members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]),
            &counts(&[("t", 7)]),
        );
        assert_eq!(result["a"]["t"], vec![0, 1, 2]);
        assert_eq!(result["b"]["t"], vec![3, 4]);
        assert_eq!(result["c"]["t"], vec![5, 6]);
    }

    #[test]
    fn range_leaves_surplus_members_empty() {
        let result = Assignor::Range.assign(
            &members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]),
            &counts(&[("t", 2)]),
        );
        assert_eq!(result["a"]["t"], vec![0]);
        assert_eq!(result["b"]["t"], vec![1]);
        assert!(result["c"].is_empty());
    }

    #[test]
    fn round_robin_spreads_across_topics_and_respects_subscriptions() {
        let result = Assignor::RoundRobin.assign(
            &members(&[("a", &["t", "u"]), ("b", &["t"])]),
            &counts(&[("t", 3), ("u", 2)]),
        );
        assert_eq!(result["a"]["t"], vec![0, 2]);
        assert_eq!(result["b"]["t"], vec![1]);
        assert_eq!(result["a"]["u"], vec![0, 1]);
        let total: usize = result.values().flat_map(|t| t.values()).map(Vec::len).sum();
        assert_eq!(total, 5);
    }

    #[test]
    fn every_partition_is_assigned_exactly_once() {
        for assignor in [Assignor::Range, Assignor::RoundRobin] {
            for member_count in 1..6 {
                let names: Vec<String> = (0..member_count).map(|i| format!("m{i}")).collect();
                let members: BTreeMap<String, Vec<String>> = names
                    .iter()
                    .map(|m| (m.clone(), vec!["t".to_string(), "u".to_string()]))
                    .collect();
                let result = assignor.assign(&members, &counts(&[("t", 10), ("u", 3)]));
                let mut seen: Vec<(String, i32)> = result
                    .values()
                    .flat_map(|t| {
                        t.iter()
                            .flat_map(|(topic, ps)| ps.iter().map(move |p| (topic.clone(), *p)))
                    })
                    .collect();
                seen.sort();
                let expected: Vec<(String, i32)> = (0..10)
                    .map(|p| ("t".to_string(), p))
                    .chain((0..3).map(|p| ("u".to_string(), p)))
                    .collect();
                assert_eq!(seen, expected, "{assignor:?} with {member_count} members");
            }
        }
    }

    #[test]
    fn consumer_protocol_round_trips() {
        let topics = vec!["a".to_string(), "b".to_string()];
        let encoded = encode_subscription(&topics).expect("encode");
        assert_eq!(&encoded[..2], &SUBSCRIPTION_VERSION.to_be_bytes());
        assert_eq!(decode_subscription(&encoded).expect("decode"), topics);
        let mut assignment = BTreeMap::new();
        assignment.insert("a".to_string(), vec![0, 2]);
        assignment.insert("b".to_string(), vec![1]);
        let encoded = encode_assignment(&assignment).expect("encode");
        assert_eq!(
            decode_assignment(&encoded).expect("decode"),
            vec![
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1)
            ]
        );
        assert!(decode_assignment(&Bytes::new()).expect("empty").is_empty());
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
        assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0xff, 0xff, 0xff])).is_err());
    }
}
