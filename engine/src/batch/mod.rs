//! Kafka RecordBatch v2: the unit the log stores, validates and addresses.
//!
//! Layout of the 61-byte header (big-endian), from Kafka's `DefaultRecordBatch`:
//!
//! ```text
//! 0  baseOffset int64          | not covered by the CRC: the broker assigns it
//! 8  batchLength int32         | bytes after this field
//! 12 partitionLeaderEpoch int32| not covered by the CRC: the broker assigns it
//! 16 magic int8 (= 2)
//! 17 crc uint32                | CRC-32C of bytes 21..end
//! 21 attributes int16
//! 23 lastOffsetDelta int32
//! 27 baseTimestamp int64
//! 35 maxTimestamp int64
//! 43 producerId int64
//! 51 producerEpoch int16
//! 53 baseSequence int32
//! 57 recordCount int32
//! 61 records...
//! ```

pub mod build;
mod header;
mod records;
mod validate;

pub use header::{
    patched_prefix, read_log_overhead, BatchHeader, Compression, BATCH_HEADER_BYTES,
    LOG_OVERHEAD_BYTES, PATCHED_PREFIX_BYTES,
};
pub use records::{RecordCursor, RecordEntries, RecordEntry, RecordPosition};
pub use validate::{split_record_set, validate_batch, validate_stored_batch, BatchError};
