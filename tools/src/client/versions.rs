//! ApiVersions negotiation: for each API the client uses the highest version both sides speak,
//! `min(client max, broker max)`, and refuses when the ranges do not meet.

use std::collections::HashMap;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Request;

use super::errors::{ClientError, Result};

/// The highest version this client sends for an API, where that is lower than what the
/// `kafka-protocol` crate can encode. Each cap names what the next version would require.
pub fn client_max_version(api: ApiKey, crate_max: i16) -> i16 {
    let cap = match api {
        // v13 addresses topics by id only.
        ApiKey::Produce | ApiKey::Fetch => 12,
        // v13 adds nothing the client reads.
        ApiKey::Metadata => 12,
        // v8 moves to the multi-group layout; v7 serves every need of this client.
        ApiKey::OffsetFetch => 7,
        // v9 is the KIP-848 member-epoch variant.
        ApiKey::OffsetCommit => 8,
        // v6 addresses topics by id.
        ApiKey::DeleteTopics => 5,
        // v5 adds a group-type filter the tools do not use.
        ApiKey::ListGroups => 4,
        // ApiVersions v4 is only a marker for KIP-511 client names already in v3.
        ApiKey::ApiVersions => 3,
        _ => crate_max,
    };
    cap.min(crate_max)
}

/// What one broker advertised in its ApiVersions response.
#[derive(Debug, Clone, Default)]
pub struct VersionTable {
    ranges: HashMap<i16, (i16, i16)>,
}

impl VersionTable {
    pub fn new(ranges: impl IntoIterator<Item = (i16, i16, i16)>) -> VersionTable {
        VersionTable {
            ranges: ranges
                .into_iter()
                .map(|(key, min, max)| (key, (min, max)))
                .collect(),
        }
    }

    /// The broker's advertised range for an API key.
    pub fn broker_range(&self, api_key: i16) -> Option<(i16, i16)> {
        self.ranges.get(&api_key).copied()
    }

    pub fn offers(&self, api: ApiKey) -> bool {
        self.ranges.contains_key(&(api as i16))
    }

    /// The version to send for request type `R` to this broker.
    pub fn pick<R: Request>(&self, addr: &str) -> Result<i16> {
        let api = ApiKey::try_from(R::KEY).map_err(|()| ClientError::Protocol {
            addr: addr.to_string(),
            reason: format!("unknown api key {}", R::KEY),
        })?;
        let client_min = R::VERSIONS.min;
        let client_max = client_max_version(api, R::VERSIONS.max);
        let Some((broker_min, broker_max)) = self.broker_range(R::KEY) else {
            return Err(ClientError::ApiNotOffered {
                api: format!("{api:?}"),
                addr: addr.to_string(),
            });
        };
        negotiate(client_min, client_max, broker_min, broker_max).ok_or_else(|| {
            ClientError::UnsupportedVersion {
                api: format!("{api:?}"),
                addr: addr.to_string(),
                client_min,
                client_max,
                broker_min,
                broker_max,
            }
        })
    }
}

/// `min(client max, broker max)` if that is at least both minimums.
pub fn negotiate(
    client_min: i16,
    client_max: i16,
    broker_min: i16,
    broker_max: i16,
) -> Option<i16> {
    let version = client_max.min(broker_max);
    (version >= client_min.max(broker_min)).then_some(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{FetchRequest, MetadataRequest, ProduceRequest};

    #[test]
    fn negotiation_takes_the_lower_max() {
        assert_eq!(negotiate(3, 12, 0, 11), Some(11));
        assert_eq!(negotiate(3, 12, 0, 16), Some(12));
        assert_eq!(negotiate(4, 12, 0, 3), None);
        assert_eq!(negotiate(0, 5, 6, 9), None);
    }

    #[test]
    fn table_picks_per_api() {
        let table = VersionTable::new([(0, 0, 11), (1, 4, 16), (3, 0, 12)]);
        assert_eq!(table.pick::<ProduceRequest>("b:1").ok(), Some(11));
        assert_eq!(table.pick::<FetchRequest>("b:1").ok(), Some(12));
        assert_eq!(table.pick::<MetadataRequest>("b:1").ok(), Some(12));
        let old = VersionTable::new([(0, 0, 2)]);
        let error = old
            .pick::<ProduceRequest>("b:1")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("does not support any Produce version"),
            "{error}"
        );
        let error = old
            .pick::<FetchRequest>("b:1")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("does not offer the Fetch API"), "{error}");
    }
}
