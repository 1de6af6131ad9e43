//! The Kafka wire protocol as Strom speaks it.
//!
//! - [`frame`]: the 4-byte size prefix around every request and response.
//! - [`request_header`]: the request header, parsed without trusting the client.
//! - [`request`]: a whole request frame decoded to a typed request (what the dispatcher routes).
//! - [`api_versions`]: which APIs and versions Strom advertises, and the
//!   hand-encoded ApiVersions response that every client sends first.
//!
//! Message bodies are decoded and encoded with the `kafka-protocol` crate; this
//! module holds only the parts the crate cannot do safely or exactly enough.

pub mod api_versions;
pub mod error;
pub mod frame;
pub mod request;
pub mod request_header;
mod wire;

pub use error::WireError;
