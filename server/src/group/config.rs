//! [`GroupConfig`]: Kafka's classic-group settings plus Strom's own bounds.
//!
//! Kafka's settings keep Kafka's names (in doc comments) and defaults. The
//! bounds Kafka does not have (groups per coordinator, offsets per group,
//! metadata and assignment sizes) are Strom's: each one caps memory that a
//! client could otherwise grow without limit.

use thiserror::Error;

/// Settings for one [`super::GroupCoordinator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`: smallest session timeout a member may ask for.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: largest session timeout a member may ask for.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long a new (Empty) group waits
    /// for more members before its first generation, extended per new member
    /// up to the rebalance timeout.
    pub initial_rebalance_delay_ms: i32,
    /// Kafka's `classicGroupNewMemberJoinTimeoutMs` (5 minutes, not
    /// configurable there): a new member's parked JoinGroup expires after this.
    pub new_member_join_timeout_ms: i32,
    /// `group.max.size`: members per group, pending (MEMBER_ID_REQUIRED)
    /// members counted separately against the same cap. Kafka's default is
    /// unbounded; 1000 keeps a group's metadata bounded.
    pub group_max_size: usize,
    /// Groups held by one coordinator (one `__consumer_offsets` partition).
    /// A new group past this is refused with COORDINATOR_NOT_AVAILABLE
    /// (retriable: expiry or deletion frees room).
    pub groups_max: usize,
    /// Committed partitions per group; a commit adding partitions past this
    /// gets INVALID_COMMIT_OFFSET_SIZE for them.
    pub offsets_per_group_max: usize,
    /// `offset.metadata.max.bytes`: the metadata string of one committed
    /// offset; longer gets OFFSET_METADATA_TOO_LARGE.
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes` in milliseconds: how long offsets of an
    /// Empty group (or of a topic a Stable consumer group no longer
    /// subscribes to) are kept.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`: how often expiry runs.
    pub offsets_retention_check_interval_ms: i64,
    /// Sum of one member's protocol metadata (subscriptions) in JoinGroup;
    /// larger is refused with INVALID_REQUEST.
    pub member_metadata_bytes_max: usize,
    /// Protocols (assignors) one member may offer; more is INVALID_REQUEST.
    pub member_protocols_max: usize,
    /// One member's assignment in the leader's SyncGroup; larger is
    /// INVALID_REQUEST to the leader.
    pub member_assignment_bytes_max: usize,
    /// Sum of all members' metadata in one group; a join that would pass it
    /// gets GROUP_MAX_SIZE_REACHED.
    pub group_metadata_bytes_max: usize,
    /// Largest group metadata record (GroupMetadataValue) the coordinator
    /// will write. A SyncGroup whose assignment would need more fails for
    /// every member with UNKNOWN_SERVER_ERROR and the group rebalances, as
    /// Kafka does when the append fails with RECORD_TOO_LARGE.
    pub group_record_bytes_max: usize,
}

/// Longest group id, member id, instance id, client id, client host,
/// protocol type or protocol name accepted. Kafka writes these as INT16
/// length-prefixed strings in `__consumer_offsets`, so they must stay below
/// `i16::MAX` bytes; 4 KiB leaves room for the generated `-UUID` suffix.
pub const ID_BYTES_MAX: usize = 4096;

/// Longest topic name Kafka allows (`Topic.MAX_NAME_LENGTH`).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            new_member_join_timeout_ms: 300_000,
            group_max_size: 1_000,
            groups_max: 100_000,
            offsets_per_group_max: 100_000,
            offset_metadata_max_bytes: 4_096,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            member_metadata_bytes_max: 1024 * 1024,
            member_protocols_max: 32,
            member_assignment_bytes_max: 1024 * 1024,
            group_metadata_bytes_max: 64 * 1024 * 1024,
            group_record_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// A [`GroupConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GroupConfigError {
    /// A setting is outside the range it can take.
    #[error("{setting} = {value} is invalid: {reason}")]
    Invalid {
        /// The field name.
        setting: &'static str,
        /// Its value.
        value: i64,
        /// Why it cannot be used.
        reason: &'static str,
    },
}

impl GroupConfig {
    /// Checks the settings against each other and against the record format.
    pub fn validate(&self) -> Result<(), GroupConfigError> {
        let invalid = |setting, value: i64, reason| {
            Err(GroupConfigError::Invalid {
                setting,
                value,
                reason,
            })
        };
        let as_i64 = |value: usize| i64::try_from(value).unwrap_or(i64::MAX);
        if self.min_session_timeout_ms <= 0 {
            return invalid(
                "min_session_timeout_ms",
                self.min_session_timeout_ms.into(),
                "must be positive",
            );
        }
        if self.max_session_timeout_ms < self.min_session_timeout_ms {
            return invalid(
                "max_session_timeout_ms",
                self.max_session_timeout_ms.into(),
                "must be at least min_session_timeout_ms",
            );
        }
        if self.initial_rebalance_delay_ms < 0 {
            return invalid(
                "initial_rebalance_delay_ms",
                self.initial_rebalance_delay_ms.into(),
                "must not be negative",
            );
        }
        if self.new_member_join_timeout_ms <= 0 {
            return invalid(
                "new_member_join_timeout_ms",
                self.new_member_join_timeout_ms.into(),
                "must be positive",
            );
        }
        if self.group_max_size == 0 {
            return invalid("group_max_size", 0, "must be positive");
        }
        if self.groups_max == 0 {
            return invalid("groups_max", 0, "must be positive");
        }
        if self.offsets_per_group_max == 0 {
            return invalid("offsets_per_group_max", 0, "must be positive");
        }
        // The metadata string is an INT16-prefixed string in OffsetCommitValue.
        if self.offset_metadata_max_bytes > i16::MAX as usize {
            return invalid(
                "offset_metadata_max_bytes",
                as_i64(self.offset_metadata_max_bytes),
                "must fit an INT16 string length (32767)",
            );
        }
        if self.offsets_retention_ms <= 0 {
            return invalid(
                "offsets_retention_ms",
                self.offsets_retention_ms,
                "must be positive",
            );
        }
        if self.offsets_retention_check_interval_ms <= 0 {
            return invalid(
                "offsets_retention_check_interval_ms",
                self.offsets_retention_check_interval_ms,
                "must be positive",
            );
        }
        // Metadata and assignments are INT32-prefixed bytes in GroupMetadataValue.
        for (setting, value) in [
            ("member_metadata_bytes_max", self.member_metadata_bytes_max),
            (
                "member_assignment_bytes_max",
                self.member_assignment_bytes_max,
            ),
            ("group_metadata_bytes_max", self.group_metadata_bytes_max),
            ("group_record_bytes_max", self.group_record_bytes_max),
        ] {
            if value == 0 || value > i32::MAX as usize {
                return invalid(setting, as_i64(value), "must be in 1..=i32::MAX");
            }
        }
        if self.member_protocols_max == 0 {
            return invalid("member_protocols_max", 0, "must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_kafka() {
        let config = GroupConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.min_session_timeout_ms, 6_000);
        assert_eq!(config.max_session_timeout_ms, 1_800_000);
        assert_eq!(config.initial_rebalance_delay_ms, 3_000);
        assert_eq!(config.offset_metadata_max_bytes, 4_096);
    }

    #[test]
    fn rejects_inverted_session_bounds_and_oversized_metadata_limit() {
        let config = GroupConfig {
            max_session_timeout_ms: 1,
            ..GroupConfig::default()
        };
        assert!(config.validate().is_err());
        let config = GroupConfig {
            offset_metadata_max_bytes: 40_000,
            ..GroupConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
