//! The client's error type: one enum, one line of text per variant, so the CLI can print
//! `error: <Display>` and nothing else.

use kafka_protocol::error::ResponseError;

/// A Kafka error code as received on the wire (never 0 inside a [`ClientError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaCode(pub i16);

impl KafkaCode {
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const OFFSET_NOT_AVAILABLE: i16 = 78;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;

    /// Kafka's name for the code, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
    pub fn name(self) -> String {
        match ResponseError::try_from_code(self.0) {
            None => "NONE".to_string(),
            Some(ResponseError::Unknown(code)) => format!("UNKNOWN_ERROR_CODE_{code}"),
            Some(known) => screaming_snake(&known.to_string()),
        }
    }

    /// Whether Kafka documents the error as retriable.
    pub fn is_retriable(self) -> bool {
        ResponseError::try_from_code(self.0).is_some_and(|error| error.is_retriable())
    }
}

impl std::fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (index, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// Everything the client can fail with. Each message is one line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to broker {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("no broker reachable (tried {brokers}): {last}")]
    NoBrokerReachable { brokers: String, last: String },
    #[error("connection to {addr} lost: {reason}")]
    ConnectionLost { addr: String, reason: String },
    #[error("{api} request to {addr} timed out after {timeout_ms} ms")]
    Timeout {
        api: String,
        addr: String,
        timeout_ms: u64,
    },
    #[error("broker {addr} does not support any {api} version this client speaks (client v{client_min}-v{client_max}, broker v{broker_min}-v{broker_max})")]
    UnsupportedVersion {
        api: String,
        addr: String,
        client_min: i16,
        client_max: i16,
        broker_min: i16,
        broker_max: i16,
    },
    #[error("broker {addr} does not offer the {api} API")]
    ApiNotOffered { api: String, addr: String },
    #[error("malformed response from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("{context}: {code}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        context: String,
        code: KafkaCode,
        message: Option<String>,
    },
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("topic '{topic}' has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("no leader known for {topic}-{partition}")]
    NoLeader { topic: String, partition: i32 },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} is closed")]
    Closed(&'static str),
    #[error("record of {record_bytes} bytes is larger than the limit of {limit_bytes} bytes")]
    RecordTooLarge {
        record_bytes: usize,
        limit_bytes: usize,
    },
    #[error("consumer left group '{group}': {reason}")]
    LeftGroup { group: String, reason: String },
}

impl ClientError {
    /// Builds [`ClientError::Kafka`] from a non-zero code.
    pub fn kafka(context: impl Into<String>, code: i16, message: Option<String>) -> ClientError {
        ClientError::Kafka {
            context: context.into(),
            code: KafkaCode(code),
            message: message.filter(|m| !m.is_empty()),
        }
    }

    /// The Kafka error code, if this error carries one.
    pub fn code(&self) -> Option<i16> {
        match self {
            ClientError::Kafka { code, .. } => Some(code.0),
            _ => None,
        }
    }

    /// Whether retrying (after refreshing metadata or reconnecting) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kafka { code, .. } => code.is_retriable(),
            ClientError::ConnectionLost { .. }
            | ClientError::Timeout { .. }
            | ClientError::NoLeader { .. }
            | ClientError::Connect { .. } => true,
            _ => false,
        }
    }
}

/// Returns `Err` for a non-zero error code.
pub fn check(code: i16, context: impl FnOnce() -> String) -> Result<(), ClientError> {
    if code == 0 {
        Ok(())
    } else {
        Err(ClientError::kafka(context(), code, None))
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_follow_kafka() {
        assert_eq!(KafkaCode(3).name(), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(KafkaCode(36).to_string(), "TOPIC_ALREADY_EXISTS (36)");
        assert_eq!(KafkaCode(-1).name(), "UNKNOWN_SERVER_ERROR");
        assert_eq!(KafkaCode(9999).name(), "UNKNOWN_ERROR_CODE_9999");
        assert!(KafkaCode(6).is_retriable());
        assert!(!KafkaCode(36).is_retriable());
    }

    #[test]
    fn kafka_error_is_one_line() {
        let error = ClientError::kafka(
            "create topic 'a'",
            36,
            Some("Topic 'a' already exists.".into()),
        );
        let text = error.to_string();
        assert_eq!(
            text,
            "create topic 'a': TOPIC_ALREADY_EXISTS (36): Topic 'a' already exists."
        );
        assert!(!text.contains('\n'));
        assert_eq!(
            ClientError::kafka("x", 3, Some(String::new())).to_string(),
            "x: UNKNOWN_TOPIC_OR_PARTITION (3)"
        );
    }
}
