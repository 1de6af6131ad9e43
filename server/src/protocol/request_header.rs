//! The Kafka request header, parsed by hand from an untrusted frame.
//!
//! Layout (header v1): api_key i16, api_version i16, correlation_id i32,
//! client_id nullable string (i16 length). Header v2, used by flexible API
//! versions, appends a tagged-field section. Which header version a request
//! uses depends on its api key and version, so the first 4 bytes decide how
//! the rest is read.
//!
//! Strom parses the header itself rather than calling
//! `kafka_protocol::protocol::decode_request_header_from_buffer` because that
//! helper slices the buffer without checking its length (a short frame
//! panics) and fails outright on an unknown api key, losing the correlation
//! id the connection layer needs to answer.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

use super::wire::WireReader;
use super::WireError;

/// The fixed first 8 bytes of every request, readable from any frame that
/// passed [`super::frame::decode_request_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    /// API key as sent; may be one Kafka does not define.
    pub api_key: i16,
    /// API version as sent; not yet checked against any range.
    pub api_version: i16,
    /// Echoed back in the response header.
    pub correlation_id: i32,
}

/// A parsed request header and where the request body starts.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHeader {
    /// API key as sent.
    pub api_key: i16,
    /// API version as sent; not yet checked against any range.
    pub api_version: i16,
    /// Echoed back in the response header.
    pub correlation_id: i32,
    /// Client id; `None` when the client sent null.
    pub client_id: Option<StrBytes>,
    /// The api key when Kafka defines it; `None` for an unknown key.
    pub api: Option<ApiKey>,
    /// Request header version used to parse: 1 or 2. For an unknown api key
    /// the tagged fields cannot be located, so the header is read as v1 and
    /// `body_offset` must not be used to decode a body.
    pub header_version: i16,
    /// Offset in the frame of the first body byte.
    pub body_offset: usize,
}

/// Reads the api key, api version and correlation id.
///
/// Lets the connection layer answer (or log) a request whose full header does
/// not parse.
pub fn parse_request_prefix(frame: &[u8]) -> Result<RequestPrefix, WireError> {
    let mut reader = WireReader::new(frame);
    Ok(RequestPrefix {
        api_key: reader.read_i16("request_api_key")?,
        api_version: reader.read_i16("request_api_version")?,
        correlation_id: reader.read_i32("correlation_id")?,
    })
}

/// Request header version for a known api key at any version (1 or 2).
///
/// Defined for versions outside the crate's decodable range too, because
/// flexibility only depends on a version threshold.
pub fn request_header_version(api: ApiKey, api_version: i16) -> i16 {
    api.request_header_version(api_version)
}

/// Parses the request header of `frame` (a frame without its size prefix).
///
/// The client id is a zero-copy slice of `frame`. Header tagged fields are
/// validated and skipped; Kafka defines none that a broker must read.
pub fn parse_request_header(frame: &Bytes) -> Result<RequestHeader, WireError> {
    let prefix = parse_request_prefix(frame)?;
    let api = ApiKey::try_from(prefix.api_key).ok();
    let header_version = match api {
        Some(api) => request_header_version(api, prefix.api_version),
        None => 1,
    };

    let mut reader = WireReader::new(frame);
    // The prefix was parsed above; step over it.
    reader.take("request header prefix", 8)?;
    let client_id = match reader.read_nullable_string_range("client_id")? {
        None => None,
        Some(range) => Some(
            StrBytes::from_utf8(frame.slice(range))
                .map_err(|_| WireError::InvalidUtf8 { field: "client_id" })?,
        ),
    };
    if header_version >= 2 {
        reader.skip_tagged_fields("request header tagged fields")?;
    }

    Ok(RequestHeader {
        api_key: prefix.api_key,
        api_version: prefix.api_version,
        correlation_id: prefix.correlation_id,
        client_id,
        api,
        header_version,
        body_offset: reader.position(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::RequestHeader as CrateRequestHeader;
    use kafka_protocol::protocol::Encodable;

    fn header_bytes(api_key: i16, api_version: i16, client_id: Option<&str>) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_i16(api_key);
        buf.put_i16(api_version);
        buf.put_i32(77);
        match client_id {
            None => buf.put_i16(-1),
            Some(id) => {
                buf.put_i16(i16::try_from(id.len()).expect("short id"));
                buf.put_slice(id.as_bytes());
            }
        }
        buf
    }

    #[test]
    fn v1_header_of_produce_v8() {
        let mut buf = header_bytes(0, 8, Some("rdkafka"));
        buf.put_slice(b"BODY");
        let header = parse_request_header(&buf.freeze()).expect("parses");
        assert_eq!(header.api, Some(ApiKey::Produce));
        assert_eq!(header.api_version, 8);
        assert_eq!(header.correlation_id, 77);
        assert_eq!(header.client_id.as_deref(), Some("rdkafka"));
        assert_eq!(header.header_version, 1);
        assert_eq!(header.body_offset, 10 + 7);
    }

    #[test]
    fn v2_header_skips_tagged_fields() {
        // Produce v9 is flexible: header v2.
        let mut buf = header_bytes(0, 9, None);
        buf.put_slice(&[2, 0, 1, 0xee, 5, 2, 0xaa, 0xbb]); // two tagged fields
        buf.put_slice(b"BODY");
        let frame = buf.freeze();
        let header = parse_request_header(&frame).expect("parses");
        assert_eq!(header.header_version, 2);
        assert_eq!(header.client_id, None);
        assert_eq!(&frame[header.body_offset..], b"BODY");
    }

    #[test]
    fn matches_what_the_crate_encodes() {
        let crate_header = CrateRequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(3)
            .with_correlation_id(-9)
            .with_client_id(Some(StrBytes::from_static_str("java")));
        let mut buf = BytesMut::new();
        crate_header.encode(&mut buf, 2).expect("encodes");
        let body_offset = buf.len();
        let header = parse_request_header(&buf.freeze()).expect("parses");
        assert_eq!(header.header_version, 2);
        assert_eq!(header.correlation_id, -9);
        assert_eq!(header.client_id.as_deref(), Some("java"));
        assert_eq!(header.body_offset, body_offset);
    }

    #[test]
    fn unknown_api_key_still_yields_prefix_fields() {
        let frame = header_bytes(31_000, 3, Some("x")).freeze();
        let header = parse_request_header(&frame).expect("parses as v1");
        assert_eq!(header.api, None);
        assert_eq!((header.api_key, header.api_version), (31_000, 3));
        assert_eq!(header.correlation_id, 77);
        assert_eq!(header.header_version, 1);
    }

    #[test]
    fn truncated_client_id_is_an_error_but_prefix_is_readable() {
        let mut buf = header_bytes(3, 1, None);
        buf.truncate(8);
        buf.put_i16(50); // claims 50 bytes, none follow
        let frame = buf.freeze();
        assert_eq!(
            parse_request_header(&frame),
            Err(WireError::Truncated {
                field: "client_id",
                needed_bytes: 50,
                remaining_bytes: 0
            })
        );
        let prefix = parse_request_prefix(&frame).expect("prefix");
        assert_eq!(prefix.correlation_id, 77);
    }

    #[test]
    fn invalid_utf8_client_id_is_an_error() {
        let mut buf = header_bytes(3, 1, None);
        buf.truncate(8);
        buf.put_i16(2);
        buf.put_slice(&[0xc3, 0x28]);
        assert_eq!(
            parse_request_header(&buf.freeze()),
            Err(WireError::InvalidUtf8 { field: "client_id" })
        );
    }

    #[test]
    fn truncated_tagged_fields_are_an_error() {
        let mut buf = header_bytes(0, 9, None);
        buf.put_slice(&[1, 0, 10, 1]); // one field claiming 10 bytes
        assert!(matches!(
            parse_request_header(&buf.freeze()),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn header_versions_follow_flexible_thresholds() {
        assert_eq!(request_header_version(ApiKey::Produce, 0), 1);
        assert_eq!(request_header_version(ApiKey::Fetch, 12), 2);
        assert_eq!(request_header_version(ApiKey::Metadata, 8), 1);
        assert_eq!(request_header_version(ApiKey::Metadata, 9), 2);
        assert_eq!(request_header_version(ApiKey::ApiVersions, 3), 2);
        assert_eq!(request_header_version(ApiKey::ApiVersions, 7), 2);
    }
}
