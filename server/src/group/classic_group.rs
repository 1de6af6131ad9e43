//! [`ClassicGroup`]: one group's membership, generation and committed
//! offsets. Pure bookkeeping; the rules that move it between states (and the
//! timers and responses that go with them) are in `rebalance.rs` and the
//! per-API files.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use indexmap::IndexMap;

use super::member::Member;
use super::records::{GroupMetadataValue, MemberMetadataValue};
use super::subscription::{subscribed_topics, CONSUMER_PROTOCOL_TYPE};

/// The states of a classic group, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; offsets may remain.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Join phase done; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Gone (reported for groups this coordinator does not hold).
    Dead,
}

impl GroupState {
    /// The name Kafka reports in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }

    /// States a group may move to this one from (Kafka's `validPreviousStates`).
    fn valid_previous_states(self) -> &'static [GroupState] {
        use GroupState::*;
        match self {
            Empty => &[PreparingRebalance],
            PreparingRebalance => &[Stable, CompletingRebalance, Empty],
            CompletingRebalance => &[PreparingRebalance],
            Stable => &[CompletingRebalance],
            Dead => &[Stable, PreparingRebalance, CompletingRebalance, Empty, Dead],
        }
    }
}

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    pub expire_timestamp_ms: Option<i64>,
}

/// The payload of a group's join-phase timer during its initial rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InitialRebalance {
    pub delay_ms: i64,
    pub remaining_ms: i64,
}

/// One classic group.
///
/// Invariants (checked by [`ClassicGroup::check_invariants`] in tests):
/// - `leader_id` is `Some` exactly when `members` is non-empty, and names a member.
/// - `static_members` maps each member's instance id to its member id, and nothing else.
/// - `pending_members` and `members` are disjoint; `pending_sync` ⊆ `members`.
/// - An Empty group has no members.
#[derive(Debug)]
pub(crate) struct ClassicGroup {
    pub group_id: String,
    state: GroupState,
    previous_state: GroupState,
    /// When the group last changed state (persisted; offsets of an Empty
    /// group expire relative to it).
    pub state_timestamp_ms: Option<i64>,
    pub generation_id: i32,
    /// `None` for a "simple" group that only stores offsets.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    /// In join order; the first is the leader when one must be chosen.
    pub members: IndexMap<String, Member>,
    /// Instance id to member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and not yet joined.
    pub pending_members: BTreeSet<String>,
    /// Members that have not sent SyncGroup for the current generation.
    pub pending_sync: BTreeSet<String>,
    /// A member joined during the initial rebalance delay.
    pub new_member_added: bool,
    /// Set while the join timer is the initial-rebalance delay.
    pub initial_rebalance: Option<InitialRebalance>,
    /// The generation the pending-sync timer was set for.
    pub sync_timer_generation: Option<i32>,
    /// Topics the members subscribe to, when known (consumer protocol).
    pub subscribed_topics: Option<BTreeSet<String>>,
    /// Topic → partition → committed offset.
    pub offsets: BTreeMap<String, BTreeMap<i32, CommittedOffset>>,
}

impl ClassicGroup {
    pub(crate) fn new(group_id: String) -> Self {
        Self {
            group_id,
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: None,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeSet::new(),
            pending_sync: BTreeSet::new(),
            new_member_added: false,
            initial_rebalance: None,
            sync_timer_generation: None,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
        }
    }

    pub(crate) fn state(&self) -> GroupState {
        self.state
    }

    pub(crate) fn previous_state(&self) -> GroupState {
        self.previous_state
    }

    pub(crate) fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    /// Moves to `state`; a transition Kafka does not allow is a bug.
    pub(crate) fn transition_to(&mut self, state: GroupState, now_ms: i64) {
        assert!(
            state.valid_previous_states().contains(&self.state),
            "group {}: invalid transition {:?} -> {:?}",
            self.group_id,
            self.state,
            state
        );
        self.previous_state = self.state;
        self.state = state;
        self.state_timestamp_ms = Some(now_ms);
    }

    /// Sets the state without a transition check (replay only).
    pub(crate) fn restore_state(&mut self, state: GroupState) {
        self.previous_state = state;
        self.state = state;
    }

    /// Whether a rebalance may start from the current state.
    pub(crate) fn can_rebalance(&self) -> bool {
        GroupState::PreparingRebalance
            .valid_previous_states()
            .contains(&self.state)
    }

    pub(crate) fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub(crate) fn uses_consumer_protocol(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    /// Adds a member (which must pass [`Self::supports_protocols`]).
    pub(crate) fn add(&mut self, member: Member) {
        assert!(
            !self.members.contains_key(&member.member_id),
            "member {} added twice",
            member.member_id
        );
        if let Some(instance_id) = &member.group_instance_id {
            let previous = self
                .static_members
                .insert(instance_id.clone(), member.member_id.clone());
            assert!(previous.is_none(), "instance id {instance_id} added twice");
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member or pending member; returns the member so the caller
    /// can answer its parked requests.
    pub(crate) fn remove(&mut self, member_id: &str) -> Option<Member> {
        let removed = self.members.shift_remove(member_id);
        if let Some(member) = &removed {
            if let Some(instance_id) = &member.group_instance_id {
                self.static_members.remove(instance_id);
            }
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        removed
    }

    /// Replaces a static member's id, keeping its place, timeouts,
    /// protocols and assignment; returns the old member.
    pub(crate) fn replace_static_member(
        &mut self,
        instance_id: &str,
        old_member_id: &str,
        new_member_id: &str,
    ) -> Member {
        let Some(index) = self.members.get_index_of(old_member_id) else {
            panic!("no static member {old_member_id} to replace");
        };
        let (_, old) = self
            .members
            .shift_remove_index(index)
            .expect("index was just looked up");
        let mut new = old.clone();
        new.member_id = new_member_id.to_owned();
        new.awaiting_join = None;
        new.awaiting_sync = None;
        self.members
            .shift_insert(index, new_member_id.to_owned(), new);
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.to_owned());
        }
        self.static_members
            .insert(instance_id.to_owned(), new_member_id.to_owned());
        self.pending_sync.remove(old_member_id);
        old
    }

    pub(crate) fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    /// Every member has rejoined and no MEMBER_ID_REQUIRED member is outstanding.
    pub(crate) fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.awaiting_join_count() && self.pending_members.is_empty()
    }

    /// The largest rebalance timeout among members.
    pub(crate) fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Kafka's `supportsProtocols`: an Empty group takes any non-empty
    /// protocol set; otherwise the type must match and one of `names` must
    /// be offered by every member.
    pub(crate) fn supports_protocols(&self, protocol_type: &str, names: &[&str]) -> bool {
        if self.is(GroupState::Empty) {
            return !protocol_type.is_empty() && !names.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && names
                .iter()
                .any(|name| self.members.values().all(|m| m.offers(name)))
    }

    /// The protocol every member offers that most members prefer; ties go
    /// to the protocol voted first (in join order).
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: BTreeSet<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.offers(name)))
            .collect();
        let mut votes: IndexMap<&str, usize> = IndexMap::new();
        for member in self.members.values() {
            if let Some(choice) = member.vote(&candidates) {
                *votes.entry(choice).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, best_count)| count > best_count) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_owned())
    }

    /// Kafka's `maybeElectNewJoinedLeader`: keep a leader that rejoined,
    /// else hand leadership to the first member that did. False when no
    /// member rejoined.
    pub(crate) fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader_id) = &self.leader_id else {
            return false;
        };
        let leader_joined = self
            .members
            .get(leader_id)
            .is_some_and(|m| m.awaiting_join.is_some());
        if leader_joined {
            return true;
        }
        match self
            .members
            .values()
            .find(|m| m.awaiting_join.is_some())
            .map(|m| m.member_id.clone())
        {
            Some(new_leader) => {
                self.leader_id = Some(new_leader);
                true
            }
            None => false,
        }
    }

    /// The union of the members' subscribed topics, when the group uses the
    /// consumer protocol and every subscription parses.
    pub(crate) fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if !self.uses_consumer_protocol() {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut all = BTreeSet::new();
        for member in self.members.values() {
            all.extend(subscribed_topics(&member.metadata(protocol))?);
        }
        Some(all)
    }

    /// Kafka's `isSubscribedToTopic`: unknown subscriptions of a consumer
    /// group count as subscribed, to be safe.
    pub(crate) fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => self.uses_consumer_protocol(),
        }
    }

    /// Starts the next generation: protocol chosen, CompletingRebalance (or
    /// Empty when no member is left).
    pub(crate) fn init_next_generation(&mut self, now_ms: i64) {
        self.generation_id = self.generation_id.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            debug_assert!(self.protocol_name.is_some(), "no common protocol");
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync.clear();
    }

    /// Sum of all members' protocol metadata.
    pub(crate) fn metadata_bytes(&self) -> usize {
        self.members.values().map(Member::metadata_bytes).sum()
    }

    pub(crate) fn offsets_count(&self) -> usize {
        self.offsets.values().map(BTreeMap::len).sum()
    }

    pub(crate) fn offset(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.offsets.get(topic)?.get(&partition)
    }

    pub(crate) fn put_offset(&mut self, topic: &str, partition: i32, value: CommittedOffset) {
        self.offsets
            .entry(topic.to_owned())
            .or_default()
            .insert(partition, value);
    }

    pub(crate) fn remove_offset(&mut self, topic: &str, partition: i32) -> bool {
        let Some(partitions) = self.offsets.get_mut(topic) else {
            return false;
        };
        let removed = partitions.remove(&partition).is_some();
        if partitions.is_empty() {
            self.offsets.remove(topic);
        }
        removed
    }

    /// Never written to the log and holding nothing: can vanish without a tombstone.
    pub(crate) fn is_disposable(&self) -> bool {
        self.is(GroupState::Empty)
            && self.generation_id == 0
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
    }

    /// The group as a GroupMetadataValue, members with their current assignment.
    pub(crate) fn metadata_value(&self) -> GroupMetadataValue {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: self.state_timestamp_ms.unwrap_or(-1),
            members: self
                .members
                .values()
                .map(|m| MemberMetadataValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Members' assignments, for answering SyncGroup.
    pub(crate) fn assignment_of(&self, member_id: &str) -> Bytes {
        self.members
            .get(member_id)
            .map(|m| m.assignment.clone())
            .unwrap_or_default()
    }

    /// Panics if an invariant from the type's documentation does not hold.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        assert_eq!(self.leader_id.is_some(), !self.members.is_empty());
        if let Some(leader) = &self.leader_id {
            assert!(self.members.contains_key(leader), "leader {leader} missing");
        }
        let statics: HashMap<String, String> = self
            .members
            .values()
            .filter_map(|m| Some((m.group_instance_id.clone()?, m.member_id.clone())))
            .collect();
        assert_eq!(statics, self.static_members);
        for pending in &self.pending_members {
            assert!(!self.members.contains_key(pending));
        }
        for pending in &self.pending_sync {
            assert!(self.members.contains_key(pending));
        }
        if self.is(GroupState::Empty) {
            assert!(self.members.is_empty());
        }
        for member in self.members.values() {
            if member.awaiting_sync.is_some() {
                assert!(self.is(GroupState::CompletingRebalance));
            }
        }
    }
}
