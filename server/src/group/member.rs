//! One member of a classic group, and the requests it has parked.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::RequestToken;

/// One protocol (assignor) a member offers, with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A JoinGroup request held open until the join phase completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParkedRequest {
    pub token: RequestToken,
    /// The request's API version, which shapes the response.
    pub api_version: i16,
}

/// A member of a classic group.
///
/// Invariant: `awaiting_sync` is only set while the group is
/// CompletingRebalance; `awaiting_join` only while it is PreparingRebalance
/// (or briefly while a static member's rejoin is answered).
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// The leader's assignment for this member in the current generation.
    pub assignment: Bytes,
    pub awaiting_join: Option<ParkedRequest>,
    pub awaiting_sync: Option<ParkedRequest>,
    /// Joined and not yet through a completed join phase; such a member's
    /// parked JoinGroup does not protect it from expiry.
    pub is_new: bool,
}

impl Member {
    /// This member's metadata for `protocol`, empty if it does not offer it.
    pub(crate) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// Whether `protocols` are exactly the ones this member offers (names,
    /// order and metadata).
    pub(crate) fn matches(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }

    /// The first protocol, in this member's preference order, in `candidates`.
    pub(crate) fn vote<'a>(&'a self, candidates: &BTreeSet<&str>) -> Option<&'a str> {
        self.protocols
            .iter()
            .map(|p| p.name.as_str())
            .find(|name| candidates.contains(name))
    }

    /// Whether the member offers a protocol named `name`.
    pub(crate) fn offers(&self, name: &str) -> bool {
        self.protocols.iter().any(|p| p.name == name)
    }

    /// Kafka's `hasSatisfiedHeartbeat`: a member parked in JoinGroup or
    /// SyncGroup is alive, unless it is new.
    pub(crate) fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }

    /// Bytes of metadata across the member's protocols.
    pub(crate) fn metadata_bytes(&self) -> usize {
        protocols_bytes(&self.protocols)
    }
}

/// Bytes of names and metadata across `protocols`.
pub(crate) fn protocols_bytes(protocols: &[Protocol]) -> usize {
    protocols
        .iter()
        .map(|p| p.name.len() + p.metadata.len())
        .sum()
}
