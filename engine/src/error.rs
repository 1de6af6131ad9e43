//! The engine's error type. Each variant names the Kafka error a broker maps it to, so the
//! server's handlers can translate it in one exhaustive `match`.

use crate::batch::BatchError;

/// Result of engine operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes given to `append` are not valid RecordBatch v2 (→ CORRUPT_MESSAGE or
    /// INVALID_RECORD, see [`BatchError::is_corrupt`]).
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// A batch is larger than the topic's `max.message.bytes` (→ MESSAGE_TOO_LARGE).
    #[error("record batch of {size_bytes} bytes exceeds max.message.bytes {max_bytes}")]
    MessageTooLarge { size_bytes: usize, max_bytes: usize },
    /// A read or truncation names an offset outside `[log_start_offset, log_end_offset]`
    /// (→ OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// The log was closed or failed earlier and accepts no more work (→ KAFKA_STORAGE_ERROR).
    #[error("log is closed")]
    Closed,
    /// The log's file system is full (ENOSPC or EDQUOT): the append was refused, or its write
    /// was undone (see `log::write_failure`). The log stays online and retries later appends
    /// (→ KAFKA_STORAGE_ERROR, which producers retry).
    #[error("no space left for {dir}")]
    NoSpace { dir: String },
    /// An I/O error from the file system (→ KAFKA_STORAGE_ERROR).
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// An on-disk structure is not what it should be and could not be repaired.
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    /// Batches copied from a leader do not continue this log: the first batch does not start at
    /// the log end, or a batch overlaps (or, outside compacted logs, leaves a gap after) the
    /// one before it. Nothing was appended. A follower error, never sent to a client as such
    /// (→ UNKNOWN_SERVER_ERROR, as Kafka's UnexpectedAppendOffsetException).
    #[error("replicated batch starts at offset {found}, expected {expected}")]
    ReplicaOffsetMismatch { expected: i64, found: i64 },
    /// The target shard has stopped.
    #[error("shard {0} is not running")]
    ShardStopped(usize),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl Error {
    /// Whether this is the file system running out of space (ENOSPC, or a quota's EDQUOT),
    /// which the log survives, rather than an I/O error that takes it offline.
    pub fn is_no_space(&self) -> bool {
        match self {
            Error::NoSpace { .. } => true,
            Error::Io { source, .. } => is_no_space_io(source),
            _ => false,
        }
    }
}

/// Whether an I/O error means the file system is full.
pub fn is_no_space_io(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT)
    ) || error.kind() == std::io::ErrorKind::StorageFull
}

/// Adds context to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: what(),
            source,
        })
    }
}
