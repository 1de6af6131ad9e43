//! ApiVersions (key 18): the ranges Strom serves. Encoded by hand (see `protocol::api_versions`):
//! always a v0 response header, no default-valued tagged fields.

use bytes::BytesMut;

use crate::network::Response;
use crate::protocol::request_header::RequestHeader;

pub fn handle(header: &RequestHeader) -> Response {
    let mut out = BytesMut::new();
    match crate::protocol::api_versions::encode_api_versions_response(
        &mut out,
        header.correlation_id,
        header.api_version,
        0,
        0,
    ) {
        Ok(()) => Response::bytes(out.freeze()),
        Err(error) => Response::Close(format!("ApiVersions encoding failed: {error}")),
    }
}
