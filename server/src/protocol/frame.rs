//! Kafka framing: every request and response is a 4-byte big-endian size
//! followed by that many bytes.
//!
//! [`decode_request_frame`] cuts complete request frames out of a connection's
//! read buffer. It checks the declared size against `socket.request.max.bytes`
//! as soon as the 4 prefix bytes arrive, before any of the body is buffered, so
//! a client cannot make the broker reserve memory it is not allowed to use.
//! Any [`FrameError`] means the byte stream can no longer be trusted: the
//! connection must be closed (Kafka does the same).
//!
//! [`encode_response_frame`] and [`encode_raw_response_frame`] write the size
//! prefix, the response header and the body in one pass.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::Encodable;
use thiserror::Error;

use super::wire::put_uvarint32;
use super::WireError;

/// Bytes in the size prefix.
pub const FRAME_SIZE_PREFIX_BYTES: usize = 4;

/// Smallest possible request: header v1 with a null client id
/// (api_key i16 + api_version i16 + correlation_id i32 + client_id length i16).
/// Anything shorter cannot even say which API it is.
pub const REQUEST_HEADER_MIN_BYTES: usize = 10;

/// A request frame that must not be read: the connection has to close.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// The declared size exceeds `socket.request.max.bytes`.
    #[error("request of {size} bytes exceeds socket.request.max.bytes={max_bytes}")]
    TooLarge {
        /// Declared frame size.
        size: usize,
        /// The configured limit.
        max_bytes: usize,
    },
    /// The declared size is negative.
    #[error("request declares a negative size {size}")]
    Negative {
        /// Declared frame size.
        size: i32,
    },
    /// The declared size cannot hold a request header.
    #[error("request of {size} bytes is smaller than a request header ({REQUEST_HEADER_MIN_BYTES} bytes)")]
    Empty {
        /// Declared frame size.
        size: usize,
    },
}

/// Takes one complete request frame (without its size prefix) off the front
/// of `read_buf`.
///
/// Returns `Ok(None)` when more bytes are needed; in that case, once the size
/// is known and valid, `read_buf` has capacity reserved for the whole frame so
/// the next socket read can fill it. `max_bytes` is `socket.request.max.bytes`.
pub fn decode_request_frame(
    read_buf: &mut BytesMut,
    max_bytes: usize,
) -> Result<Option<Bytes>, FrameError> {
    let Some(prefix) = read_buf.get(..FRAME_SIZE_PREFIX_BYTES) else {
        return Ok(None);
    };
    let declared = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let size = usize::try_from(declared).map_err(|_| FrameError::Negative { size: declared })?;
    if size > max_bytes {
        return Err(FrameError::TooLarge { size, max_bytes });
    }
    if size < REQUEST_HEADER_MIN_BYTES {
        return Err(FrameError::Empty { size });
    }
    let frame_bytes = FRAME_SIZE_PREFIX_BYTES + size;
    if read_buf.len() < frame_bytes {
        // Bounded by max_bytes, checked above.
        read_buf.reserve(frame_bytes - read_buf.len());
        return Ok(None);
    }
    read_buf.advance(FRAME_SIZE_PREFIX_BYTES);
    Ok(Some(read_buf.split_to(size).freeze()))
}

/// Appends a complete response frame: size prefix, response header
/// (`header_version` 0 = correlation id only, 1 = plus empty tagged fields)
/// and `body` encoded at `body_version` by the `kafka-protocol` crate.
///
/// On error nothing is appended to `out`.
pub fn encode_response_frame<M: Encodable>(
    out: &mut BytesMut,
    correlation_id: i32,
    header_version: i16,
    body: &M,
    body_version: i16,
) -> Result<(), WireError> {
    let message = std::any::type_name::<M>();
    // The crate reports errors as `anyhow::Error`; keep only the text.
    let encode_error = |reason: String| WireError::Encode {
        message,
        version: body_version,
        reason,
    };
    let body_bytes = body
        .compute_size(body_version)
        .map_err(|error| encode_error(error.to_string()))?;
    let start = out.len();
    put_prefix_and_header(out, correlation_id, header_version, body_bytes)?;
    let body_start = out.len();
    if let Err(error) = body.encode(out, body_version) {
        out.truncate(start);
        return Err(encode_error(error.to_string()));
    }
    let written_bytes = out.len() - body_start;
    if written_bytes != body_bytes {
        out.truncate(start);
        return Err(WireError::EncodedSizeMismatch {
            message,
            computed_bytes: body_bytes,
            written_bytes,
        });
    }
    Ok(())
}

/// Appends a complete response frame around an already-encoded `body`.
///
/// Used for responses Strom encodes by hand (ApiVersions, versions the crate
/// rejects). On error nothing is appended to `out`.
pub fn encode_raw_response_frame(
    out: &mut BytesMut,
    correlation_id: i32,
    header_version: i16,
    body: &[u8],
) -> Result<(), WireError> {
    put_prefix_and_header(out, correlation_id, header_version, body.len())?;
    out.put_slice(body);
    Ok(())
}

/// Writes the size prefix and response header for a body of `body_bytes`.
fn put_prefix_and_header(
    out: &mut BytesMut,
    correlation_id: i32,
    header_version: i16,
    body_bytes: usize,
) -> Result<(), WireError> {
    // correlation_id, plus an empty tagged-field section in header v1.
    let header_bytes = match header_version {
        0 => 4,
        1 => 5,
        version => return Err(WireError::UnsupportedResponseHeaderVersion { version }),
    };
    let size_bytes = header_bytes + body_bytes;
    let size = i32::try_from(size_bytes).map_err(|_| WireError::ResponseTooLarge { size_bytes })?;
    out.reserve(FRAME_SIZE_PREFIX_BYTES + size_bytes);
    out.put_i32(size);
    out.put_i32(correlation_id);
    if header_version == 1 {
        put_uvarint32(out, 0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::HeartbeatResponse;

    const MAX_BYTES: usize = 1024;

    fn framed(body: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_i32(i32::try_from(body.len()).expect("small test body"));
        buf.put_slice(body);
        buf
    }

    #[test]
    fn complete_frame_is_returned_and_consumed() {
        let mut buf = framed(&[7u8; 12]);
        buf.put_slice(&[0, 0]); // start of the next frame
        let frame = decode_request_frame(&mut buf, MAX_BYTES).expect("valid");
        assert_eq!(frame.as_deref(), Some(&[7u8; 12][..]));
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn partial_prefix_and_partial_body_need_more() {
        let mut buf = BytesMut::from(&[0u8, 0][..]);
        assert_eq!(decode_request_frame(&mut buf, MAX_BYTES), Ok(None));

        let mut buf = framed(&[1u8; 100]);
        buf.truncate(50);
        assert_eq!(decode_request_frame(&mut buf, MAX_BYTES), Ok(None));
        assert!(buf.capacity() >= FRAME_SIZE_PREFIX_BYTES + 100);
        assert_eq!(buf.len(), 50, "nothing consumed while incomplete");
    }

    #[test]
    fn oversized_frame_is_rejected_from_the_prefix_alone() {
        let mut buf = BytesMut::new();
        buf.put_i32(2048);
        assert_eq!(
            decode_request_frame(&mut buf, MAX_BYTES),
            Err(FrameError::TooLarge {
                size: 2048,
                max_bytes: MAX_BYTES
            })
        );
        assert!(buf.capacity() < 2048, "body memory was never reserved");
    }

    #[test]
    fn negative_and_tiny_sizes_are_rejected() {
        let mut buf = BytesMut::new();
        buf.put_i32(-5);
        assert_eq!(
            decode_request_frame(&mut buf, MAX_BYTES),
            Err(FrameError::Negative { size: -5 })
        );
        let mut buf = framed(&[0u8; 9]);
        assert_eq!(
            decode_request_frame(&mut buf, MAX_BYTES),
            Err(FrameError::Empty { size: 9 })
        );
        let mut buf = framed(&[]);
        assert_eq!(
            decode_request_frame(&mut buf, MAX_BYTES),
            Err(FrameError::Empty { size: 0 })
        );
    }

    #[test]
    fn frame_at_exactly_max_bytes_is_accepted() {
        let mut buf = framed(&vec![0u8; MAX_BYTES]);
        let frame = decode_request_frame(&mut buf, MAX_BYTES).expect("valid");
        assert_eq!(frame.map(|f| f.len()), Some(MAX_BYTES));
    }

    #[test]
    fn raw_response_frame_bytes() {
        let mut out = BytesMut::new();
        encode_raw_response_frame(&mut out, 0x0102_0304, 0, &[0xaa]).expect("encodes");
        assert_eq!(&out[..], &[0, 0, 0, 5, 1, 2, 3, 4, 0xaa]);

        let mut out = BytesMut::new();
        encode_raw_response_frame(&mut out, 9, 1, &[]).expect("encodes");
        assert_eq!(&out[..], &[0, 0, 0, 5, 0, 0, 0, 9, 0]);
    }

    #[test]
    fn crate_response_frame_matches_computed_size() {
        let body = HeartbeatResponse::default().with_error_code(27);
        let mut out = BytesMut::new();
        // Heartbeat v4 is flexible: header v1 (correlation id + tags),
        // body throttle_time_ms(4) error_code(2) tags(1).
        encode_response_frame(&mut out, 42, 1, &body, 4).expect("encodes");
        let expected: [u8; 16] = [0, 0, 0, 12, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 27, 0];
        assert_eq!(&out[..], &expected);
    }

    #[test]
    fn failed_encode_appends_nothing() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let result = encode_response_frame(&mut out, 1, 0, &HeartbeatResponse::default(), 99);
        assert!(matches!(result, Err(WireError::Encode { version: 99, .. })));
        assert_eq!(&out[..], b"keep");
        let result = encode_raw_response_frame(&mut out, 1, 2, &[]);
        assert_eq!(
            result,
            Err(WireError::UnsupportedResponseHeaderVersion { version: 2 })
        );
        assert_eq!(&out[..], b"keep");
    }
}
