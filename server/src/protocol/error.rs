//! `WireError`: what can go wrong reading or writing Kafka protocol bytes.
//!
//! Framing errors (size prefix) have their own enum, [`super::frame::FrameError`],
//! because they leave the byte stream unusable and always close the
//! connection; a `WireError` is about the contents of one frame.

use thiserror::Error;

/// An error decoding or encoding the contents of one Kafka frame.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    /// The frame ended before a field was complete.
    #[error("truncated {field}: needed {needed_bytes} bytes, {remaining_bytes} left in frame")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed_bytes: usize,
        /// Bytes left in the frame.
        remaining_bytes: usize,
    },

    /// A length prefix was negative where that is not allowed (only -1 means null).
    #[error("invalid length {length} for {field}")]
    InvalidLength {
        /// The field whose length was read.
        field: &'static str,
        /// The length as sent.
        length: i32,
    },

    /// An unsigned varint ran past 5 bytes (more than 32 bits).
    #[error("varint for {field} is longer than 5 bytes")]
    VarIntTooLong {
        /// The field being read.
        field: &'static str,
    },

    /// A string field was not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },

    /// Only response header versions 0 and 1 exist.
    #[error("response header version {version} does not exist")]
    UnsupportedResponseHeaderVersion {
        /// The requested header version.
        version: i16,
    },

    /// A response would not fit in the i32 size prefix.
    #[error("response of {size_bytes} bytes exceeds the i32 frame size limit")]
    ResponseTooLarge {
        /// The size the response would have had.
        size_bytes: usize,
    },

    /// The `kafka-protocol` crate refused to encode a message.
    #[error("cannot encode {message} v{version}: {reason}")]
    Encode {
        /// Rust type name of the message.
        message: &'static str,
        /// The version asked for.
        version: i16,
        /// The crate's explanation.
        reason: String,
    },

    /// The crate wrote a different number of bytes than it computed.
    ///
    /// The size prefix is written first, so a mismatch would desynchronize the
    /// client; the partial frame is discarded and this error returned instead.
    #[error("{message} encoded to {written_bytes} bytes but computed {computed_bytes}")]
    EncodedSizeMismatch {
        /// Rust type name of the message.
        message: &'static str,
        /// Size from `compute_size`.
        computed_bytes: usize,
        /// Size actually written.
        written_bytes: usize,
    },
}
