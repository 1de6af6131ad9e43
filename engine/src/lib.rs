//! Strom's storage engine.
//!
//! - [`runtime`]: one io_uring runtime per core ("shard"); cross-shard work travels by message.
//! - [`log`]: the partition log — segments of Kafka RecordBatch v2 bytes with sparse offset and
//!   time indexes, group-committed durability, crash recovery and retention.
//! - [`batch`]: validation and in-place header assignment of RecordBatch v2 bytes.
//! - [`io`]: the only module that names tokio-uring / io-uring; everything else goes through it.
#![deny(clippy::unwrap_used)]

pub mod batch;
pub mod error;
pub mod io;
pub mod log;
pub mod runtime;

pub use error::{Error, Result};
