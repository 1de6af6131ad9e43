//! Reading the subscribed topics out of a consumer's JoinGroup metadata.
//!
//! For protocol type `consumer`, each protocol's metadata is an INT16
//! version followed by `ConsumerProtocolSubscription`. As Kafka does, only
//! the version-0 prefix is read (`topics: [STRING]`, then user data), since
//! every later version starts with it; this keeps the coordinator working
//! with subscription versions it has never seen.
//!
//! This is a hand-written reader rather than
//! `kafka_protocol::messages::ConsumerProtocolSubscription::decode`: that
//! decoder reserves `Vec::with_capacity(count)` for a client-supplied count,
//! so four hostile bytes could ask for gigabytes.

use std::collections::BTreeSet;

/// Kafka's protocol type for consumers (`ConsumerProtocol.PROTOCOL_TYPE`).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics a consumer subscription names, or `None` if the metadata is
/// not a readable `ConsumerProtocolSubscription`.
pub(crate) fn subscribed_topics(metadata: &[u8]) -> Option<BTreeSet<String>> {
    let mut rest = metadata;
    let version = i16::from_be_bytes(take(&mut rest, 2)?.try_into().ok()?);
    if version < 0 {
        return None;
    }
    let count = i32::from_be_bytes(take(&mut rest, 4)?.try_into().ok()?);
    // -1 (null) is not valid for topics; any other negative count is corrupt.
    let count = usize::try_from(count).ok()?;
    let mut topics = BTreeSet::new();
    for _ in 0..count {
        let length = i16::from_be_bytes(take(&mut rest, 2)?.try_into().ok()?);
        let length = usize::try_from(length).ok()?;
        let name = std::str::from_utf8(take(&mut rest, length)?).ok()?;
        topics.insert(name.to_owned());
    }
    Some(topics)
}

fn take<'a>(rest: &mut &'a [u8], count: usize) -> Option<&'a [u8]> {
    if rest.len() < count {
        return None;
    }
    let (head, tail) = rest.split_at(count);
    *rest = tail;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition;
    use kafka_protocol::messages::{ConsumerProtocolSubscription, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encoded(version: i16, topics: &[&'static str]) -> Vec<u8> {
        let mut subscription = ConsumerProtocolSubscription::default();
        subscription.topics = topics
            .iter()
            .map(|t| StrBytes::from_static_str(t))
            .collect();
        if version >= 1 {
            let mut owned = TopicPartition::default();
            owned.topic = TopicName(StrBytes::from_static_str("owned"));
            owned.partitions = vec![0, 1];
            subscription.owned_partitions = vec![owned];
        }
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&version.to_be_bytes());
        subscription
            .encode(&mut buf, version)
            .expect("encodable subscription");
        buf.to_vec()
    }

    #[test]
    fn reads_topics_of_every_known_version() {
        for version in 0..=3 {
            let topics = subscribed_topics(&encoded(version, &["a", "b"]));
            let expected: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
            assert_eq!(topics, Some(expected), "version {version}");
        }
    }

    #[test]
    fn rejects_garbage_without_allocating_for_its_count() {
        assert_eq!(subscribed_topics(&[]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0, 0, 0, 1, 0, 5, b'a']), None);
    }
}
