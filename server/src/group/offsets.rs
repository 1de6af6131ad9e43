//! Committed offsets: OffsetCommit (API 8, v2–9), OffsetFetch (API 9,
//! v1–9), OffsetDelete (API 47, v0), and their expiry.
//!
//! A commit is applied to memory at once and acknowledged after its record
//! is appended ([`super::Action::Append`]). Topic existence is the runtime's
//! business (it answers UNKNOWN_TOPIC_OR_PARTITION before calling in); the
//! coordinator only refuses names no topic can have.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};

use super::classic_group::{ClassicGroup, CommittedOffset, GroupState};
use super::config::{ID_BYTES_MAX, TOPIC_NAME_BYTES_MAX};
use super::records::{group_metadata_key, offset_commit_key, OffsetCommitValue, Record};
use super::responses::{code, str_bytes};
use super::timers::TimerKey;
use super::{GroupCoordinator, RequestContext, Response};

/// OffsetCommit's "keep for the broker's retention" retention time.
const DEFAULT_RETENTION_TIME_MS: i64 = -1;

/// One partition's answer to OffsetFetch.
struct FetchedOffset {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error: Option<ResponseError>,
}

impl FetchedOffset {
    fn missing(partition: i32, error: Option<ResponseError>) -> Self {
        Self {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error,
        }
    }
}

/// One group's answer to OffsetFetch, independent of version.
struct FetchedGroup {
    error: Option<ResponseError>,
    topics: Vec<(String, Vec<FetchedOffset>)>,
}

fn is_valid_topic(name: &str, partition: i32) -> bool {
    !name.is_empty() && name.len() <= TOPIC_NAME_BYTES_MAX && partition >= 0
}

fn offset_tombstone(group_id: &str, topic: &str, partition: i32) -> Record {
    Record {
        key: offset_commit_key(group_id, topic, partition),
        value: None,
    }
}

impl GroupCoordinator {
    pub(crate) fn offset_commit(&mut self, ctx: &RequestContext, request: &OffsetCommitRequest) {
        let version = ctx.api_version;
        let group_id = request.group_id.as_str();
        let mut errors: Vec<Vec<Option<ResponseError>>> = request
            .topics
            .iter()
            .map(|t| vec![None; t.partitions.len()])
            .collect();
        let mut records = Vec::new();
        match self.validate_offset_commit(ctx, request) {
            Err(error) => errors.iter_mut().flatten().for_each(|e| *e = Some(error)),
            Ok(()) => {
                let group = self.groups.get_mut(group_id).expect("validated group");
                let now_ms = self.fx.now_ms;
                let expire_timestamp_ms = (version <= 4
                    && request.retention_time_ms != DEFAULT_RETENTION_TIME_MS)
                    .then(|| now_ms.saturating_add(request.retention_time_ms));
                let mut offsets_count = group.offsets_count();
                for (topic, topic_errors) in request.topics.iter().zip(errors.iter_mut()) {
                    let name = topic.name.as_str();
                    for (partition, error) in topic.partitions.iter().zip(topic_errors.iter_mut()) {
                        let index = partition.partition_index;
                        let metadata = partition.committed_metadata.as_deref().unwrap_or_default();
                        let is_new = group.offset(name, index).is_none();
                        *error = if !is_valid_topic(name, index) {
                            Some(ResponseError::UnknownTopicOrPartition)
                        } else if metadata.len() > self.config.offset_metadata_max_bytes {
                            Some(ResponseError::OffsetMetadataTooLarge)
                        } else if is_new && offsets_count >= self.config.offsets_per_group_max {
                            Some(ResponseError::InvalidCommitOffsetSize)
                        } else {
                            None
                        };
                        if error.is_some() {
                            continue;
                        }
                        let value = OffsetCommitValue {
                            offset: partition.committed_offset,
                            leader_epoch: partition.committed_leader_epoch,
                            metadata: metadata.to_owned(),
                            commit_timestamp_ms: now_ms,
                            expire_timestamp_ms,
                        };
                        records.push(Record {
                            key: offset_commit_key(group_id, name, index),
                            value: Some(value.encode()),
                        });
                        offsets_count += usize::from(is_new);
                        group.put_offset(name, index, committed_from(value));
                    }
                }
            }
        }
        let response = commit_response(request, errors);
        self.drop_if_disposable(group_id);
        self.fx
            .append(records, vec![(ctx.token, Response::OffsetCommit(response))]);
    }

    /// Kafka's commit validation; creates a "simple" group for a commit
    /// with generation -1 to a group that does not exist.
    fn validate_offset_commit(
        &mut self,
        ctx: &RequestContext,
        request: &OffsetCommitRequest,
    ) -> Result<(), ResponseError> {
        let group_id = request.group_id.as_str();
        if group_id.is_empty() || group_id.len() > ID_BYTES_MAX {
            return Err(ResponseError::InvalidGroupId);
        }
        let generation_id = request.generation_id_or_member_epoch;
        let member_id = request.member_id.as_str();
        let instance_id = if ctx.api_version >= 7 {
            request.group_instance_id.as_deref()
        } else {
            None
        };
        if !self.groups.contains_key(group_id) {
            if generation_id >= 0 {
                return Err(if ctx.api_version >= 9 {
                    ResponseError::GroupIdNotFound
                } else {
                    ResponseError::IllegalGeneration
                });
            }
            if self.groups.len() >= self.config.groups_max {
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            self.groups
                .insert(group_id.to_owned(), ClassicGroup::new(group_id.to_owned()));
        }
        let mut group_ctx = self.group_ctx(group_id).expect("group exists");
        let state = group_ctx.group.state();
        if generation_id < 0 && state == GroupState::Empty {
            // Admin tools and consumers with manual assignment.
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
            group_ctx.validate_member(member_id, instance_id)?;
            if generation_id != group_ctx.group.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
        } else {
            return Err(ResponseError::UnknownMemberId);
        }
        match state {
            GroupState::CompletingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::Stable | GroupState::PreparingRebalance => {
                // A commit keeps the member's session alive, as in Kafka.
                group_ctx.reschedule_member_heartbeat(member_id);
                Ok(())
            }
            GroupState::Empty | GroupState::Dead => Ok(()),
        }
    }

    /// Answers OffsetFetch; with `error` (the coordinator is loading) every
    /// group and partition carries it.
    pub(crate) fn offset_fetch(
        &mut self,
        ctx: &RequestContext,
        request: &OffsetFetchRequest,
        error: Option<ResponseError>,
    ) {
        let mut response = OffsetFetchResponse::default();
        if ctx.api_version >= 8 {
            response.groups = request
                .groups
                .iter()
                .map(|group| {
                    let topics = group.topics.as_ref().map(|topics| {
                        topics
                            .iter()
                            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let fetched = self.fetch_offsets(group.group_id.as_str(), topics, error);
                    let mut out = OffsetFetchResponseGroup::default();
                    out.group_id = group.group_id.clone();
                    out.error_code = code(fetched.error);
                    out.topics = fetched
                        .topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            let mut topic = OffsetFetchResponseTopics::default();
                            topic.name = TopicName(str_bytes(&name));
                            topic.partitions = partitions
                                .into_iter()
                                .map(|p| {
                                    let mut out = OffsetFetchResponsePartitions::default();
                                    out.partition_index = p.partition;
                                    out.committed_offset = p.offset;
                                    out.committed_leader_epoch = p.leader_epoch;
                                    out.metadata = Some(str_bytes(&p.metadata));
                                    out.error_code = code(p.error);
                                    out
                                })
                                .collect();
                            topic
                        })
                        .collect();
                    out
                })
                .collect();
        } else {
            let topics = request.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let fetched = self.fetch_offsets(request.group_id.as_str(), topics, error);
            // v1 has no group-level error code.
            if ctx.api_version >= 2 {
                response.error_code = code(fetched.error);
            }
            response.topics = fetched
                .topics
                .into_iter()
                .map(|(name, partitions)| {
                    let mut topic = OffsetFetchResponseTopic::default();
                    topic.name = TopicName(str_bytes(&name));
                    topic.partitions = partitions
                        .into_iter()
                        .map(|p| {
                            let mut out = OffsetFetchResponsePartition::default();
                            out.partition_index = p.partition;
                            out.committed_offset = p.offset;
                            out.committed_leader_epoch = p.leader_epoch;
                            out.metadata = Some(str_bytes(&p.metadata));
                            out.error_code = code(p.error);
                            out
                        })
                        .collect();
                    topic
                })
                .collect();
        }
        self.fx.respond(ctx.token, Response::OffsetFetch(response));
    }

    /// The committed offsets of `group_id` for `topics` (all when `None`);
    /// -1 for partitions without one. With `error`, every requested
    /// partition carries it instead.
    fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        error: Option<ResponseError>,
    ) -> FetchedGroup {
        let group = self.groups.get(group_id);
        let topics = match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(name, partitions)| {
                    let fetched = partitions
                        .into_iter()
                        .map(
                            |partition| match group.and_then(|g| g.offset(&name, partition)) {
                                Some(committed) if error.is_none() => FetchedOffset {
                                    partition,
                                    offset: committed.offset,
                                    leader_epoch: committed.leader_epoch,
                                    metadata: committed.metadata.clone(),
                                    error: None,
                                },
                                _ => FetchedOffset::missing(partition, error),
                            },
                        )
                        .collect();
                    (name, fetched)
                })
                .collect(),
            None if error.is_some() => Vec::new(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(name, partitions)| {
                            let fetched = partitions
                                .iter()
                                .map(|(&partition, committed)| FetchedOffset {
                                    partition,
                                    offset: committed.offset,
                                    leader_epoch: committed.leader_epoch,
                                    metadata: committed.metadata.clone(),
                                    error: None,
                                })
                                .collect();
                            (name.clone(), fetched)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        FetchedGroup { error, topics }
    }

    pub(crate) fn offset_delete(&mut self, ctx: &RequestContext, request: &OffsetDeleteRequest) {
        let group_id = request.group_id.as_str();
        let mut response = OffsetDeleteResponse::default();
        let Some(group) = self.groups.get_mut(group_id) else {
            response.error_code = ResponseError::GroupIdNotFound.code();
            return self.fx.respond(ctx.token, Response::OffsetDelete(response));
        };
        if !group.is(GroupState::Empty) && !group.uses_consumer_protocol() {
            response.error_code = ResponseError::NonEmptyGroup.code();
            return self.fx.respond(ctx.token, Response::OffsetDelete(response));
        }
        let mut records = Vec::new();
        for topic in &request.topics {
            let name = topic.name.as_str();
            let subscribed = group.is_subscribed_to_topic(name);
            let mut out = OffsetDeleteResponseTopic::default();
            out.name = topic.name.clone();
            for partition in &topic.partitions {
                let index = partition.partition_index;
                let mut result = OffsetDeleteResponsePartition::default();
                result.partition_index = index;
                if subscribed {
                    result.error_code = ResponseError::GroupSubscribedToTopic.code();
                } else if group.remove_offset(name, index) {
                    records.push(offset_tombstone(group_id, name, index));
                }
                out.partitions.push(result);
            }
            response.topics.push(out);
        }
        self.drop_if_disposable(group_id);
        self.fx
            .append(records, vec![(ctx.token, Response::OffsetDelete(response))]);
    }

    /// The periodic expiry (Kafka's `cleanupGroupMetadata`): offsets past
    /// retention go, and an Empty group left without offsets is deleted.
    pub(crate) fn cleanup_expired(&mut self) {
        let now_ms = self.fx.now_ms;
        let retention_ms = self.config.offsets_retention_ms;
        let mut records = Vec::new();
        let mut deleted = Vec::new();
        for group in self.groups.values_mut() {
            let all_expired = expire_offsets(group, now_ms, retention_ms, &mut records);
            if all_expired && group.is(GroupState::Empty) {
                if group.generation_id > 0 {
                    records.push(Record {
                        key: group_metadata_key(&group.group_id),
                        value: None,
                    });
                }
                deleted.push(group.group_id.clone());
            }
        }
        for group_id in deleted {
            self.remove_group(&group_id);
        }
        self.fx.append(records, Vec::new());
        let interval_ms = self.config.offsets_retention_check_interval_ms;
        self.fx.schedule_in(TimerKey::Cleanup, interval_ms);
    }
}

/// What an offset's retention counts from.
enum ExpiryBase {
    /// The offset's commit time.
    CommitTime,
    /// When the group became Empty (the commit time if unknown).
    EmptySince(Option<i64>),
}

impl ExpiryBase {
    fn of(&self, committed: &CommittedOffset) -> i64 {
        match self {
            Self::CommitTime => committed.commit_timestamp_ms,
            Self::EmptySince(state_ms) => state_ms.unwrap_or(committed.commit_timestamp_ms),
        }
    }
}

/// Removes `group`'s expired offsets, adding their tombstones; true when no
/// offset is left. Kafka's `offsetExpirationCondition`: offsets of an Empty
/// group expire `retention_ms` after it became Empty; offsets of a simple
/// group, or of topics a Stable consumer group does not subscribe to,
/// `retention_ms` after their commit; an explicit expire timestamp (old
/// commits with a retention time) wins. Other groups keep their offsets.
fn expire_offsets(
    group: &mut ClassicGroup,
    now_ms: i64,
    retention_ms: i64,
    records: &mut Vec<Record>,
) -> bool {
    if group.offsets.is_empty() {
        return true;
    }
    let base = match &group.protocol_type {
        None => ExpiryBase::CommitTime,
        Some(_) if group.is(GroupState::Empty) => ExpiryBase::EmptySince(group.state_timestamp_ms),
        Some(_)
            if group.uses_consumer_protocol()
                && group.subscribed_topics.is_some()
                && group.is(GroupState::Stable) =>
        {
            ExpiryBase::CommitTime
        }
        Some(_) => return false,
    };
    let mut expired = Vec::new();
    let mut all_expired = true;
    for (topic, partitions) in &group.offsets {
        if group.is_subscribed_to_topic(topic) {
            all_expired = false;
            continue;
        }
        for (&partition, committed) in partitions {
            let is_expired = match committed.expire_timestamp_ms {
                Some(expire_ms) => now_ms >= expire_ms,
                None => now_ms.saturating_sub(base.of(committed)) >= retention_ms,
            };
            if is_expired {
                expired.push((topic.clone(), partition));
            } else {
                all_expired = false;
            }
        }
    }
    for (topic, partition) in expired {
        group.remove_offset(&topic, partition);
        records.push(offset_tombstone(&group.group_id, &topic, partition));
    }
    all_expired
}

/// The OffsetCommit answer: `errors[topic][partition]` for each partition
/// of the request, in request order.
pub(crate) fn commit_response(
    request: &OffsetCommitRequest,
    errors: Vec<Vec<Option<ResponseError>>>,
) -> OffsetCommitResponse {
    let mut response = OffsetCommitResponse::default();
    response.topics = request
        .topics
        .iter()
        .zip(errors)
        .map(|(topic, topic_errors)| {
            let mut out = OffsetCommitResponseTopic::default();
            out.name = topic.name.clone();
            out.partitions = topic
                .partitions
                .iter()
                .zip(topic_errors)
                .map(|(partition, error)| {
                    let mut out = OffsetCommitResponsePartition::default();
                    out.partition_index = partition.partition_index;
                    out.error_code = code(error);
                    out
                })
                .collect();
            out
        })
        .collect();
    response
}

/// The in-memory form of a committed offset.
pub(crate) fn committed_from(value: OffsetCommitValue) -> CommittedOffset {
    CommittedOffset {
        offset: value.offset,
        leader_epoch: value.leader_epoch,
        metadata: value.metadata,
        commit_timestamp_ms: value.commit_timestamp_ms,
        expire_timestamp_ms: value.expire_timestamp_ms,
    }
}

/// Offsets of every group holding any, for tests: group → topic →
/// partition → (offset, metadata).
#[cfg(test)]
pub(crate) fn offsets_snapshot(coordinator: &GroupCoordinator) -> OffsetsSnapshot {
    coordinator
        .groups
        .iter()
        .filter(|(_, group)| !group.offsets.is_empty())
        .map(|(id, group)| {
            let topics = group
                .offsets
                .iter()
                .map(|(topic, partitions)| {
                    let offsets = partitions
                        .iter()
                        .map(|(&p, c)| (p, (c.offset, c.metadata.clone())))
                        .collect();
                    (topic.clone(), offsets)
                })
                .collect();
            (id.clone(), topics)
        })
        .collect()
}

#[cfg(test)]
pub(crate) type OffsetsSnapshot = std::collections::BTreeMap<
    String,
    std::collections::BTreeMap<String, std::collections::BTreeMap<i32, (i64, String)>>,
>;
