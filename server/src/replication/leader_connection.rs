//! A follower's Kafka client connection to its partition leader: one TCP connection, one request
//! at a time (a fetcher waits for each answer before its next request, so there is nothing to
//! pipeline).
//!
//! It runs on a shard thread. The shard's runtime is tokio-uring, which drives a tokio
//! current-thread runtime with every driver enabled underneath, so `tokio::net::TcpStream` (epoll)
//! and tokio timers work there; the connection is `!Send`-agnostic and never leaves its shard.
//!
//! Versions are fixed, not negotiated with ApiVersions: a follower only ever talks to a Strom
//! broker, which serves Fetch v4–v16 and OffsetForLeaderEpoch v2–v4. Fetch v12 is the newest that
//! names topics (v13+ use topic ids) and it carries `replica_id`, `last_fetched_epoch` and the
//! response's `diverging_epoch` (KIP-320); OffsetForLeaderEpoch v4 carries `replica_id`.
//!
//! Framing and decoding are pure functions ([`encode_request`], [`decode_response`]) so they are
//! tested without a socket.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The Fetch version followers send (see the module comment).
pub const FETCH_VERSION: i16 = 12;
/// The OffsetForLeaderEpoch version followers send.
pub const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// Largest response frame accepted: a replica fetch answers at most
/// `replica.fetch.response.max.bytes` (10 MiB) of records, or one batch larger than that (at most
/// `message.max.bytes`, which Strom caps well below this). A bigger declared size is a corrupt
/// stream, refused before anything is allocated for it.
pub const RESPONSE_MAX_BYTES: usize = 128 << 20;
/// Bytes in the size prefix of every Kafka frame.
const FRAME_SIZE_PREFIX_BYTES: usize = 4;

/// Why a request to the leader failed. Every variant leaves the connection unusable: the caller
/// drops it, backs off and connects again.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("i/o with {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("no answer from {addr} within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    #[error("protocol error from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

/// The client id a broker's replica requests carry, so the leader's logs name the follower.
pub fn replica_client_id(broker_id: i32) -> String {
    format!("strom-replica-{broker_id}")
}

/// Frames `request` (size prefix, request header, body) for `version`.
pub fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
) -> Result<Bytes, String> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let header_version = R::header_version(version);
    let size = header
        .compute_size(header_version)
        .and_then(|header_bytes| Ok(header_bytes + request.compute_size(version)?))
        .map_err(|error| format!("cannot size api {} v{version}: {error}", R::KEY))?;
    let size_prefix = i32::try_from(size).map_err(|_| format!("request of {size} bytes"))?;
    let mut frame = BytesMut::with_capacity(FRAME_SIZE_PREFIX_BYTES + size);
    frame.put_i32(size_prefix);
    header
        .encode(&mut frame, header_version)
        .and_then(|()| request.encode(&mut frame, version))
        .map_err(|error| format!("cannot encode api {} v{version}: {error}", R::KEY))?;
    Ok(frame.freeze())
}

/// Reads the size prefix of a response frame: the body's length, checked against
/// [`RESPONSE_MAX_BYTES`].
pub fn response_body_len(prefix: [u8; FRAME_SIZE_PREFIX_BYTES]) -> Result<usize, String> {
    let declared = i32::from_be_bytes(prefix);
    let len = usize::try_from(declared).map_err(|_| format!("negative frame size {declared}"))?;
    if len > RESPONSE_MAX_BYTES {
        return Err(format!(
            "response of {len} bytes exceeds the limit of {RESPONSE_MAX_BYTES}"
        ));
    }
    Ok(len)
}

/// Decodes a response frame body (without its size prefix): the header must echo
/// `correlation_id`, and the body must decode completely.
pub fn decode_response<R: Request>(
    mut body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, String> {
    let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
        .map_err(|error| format!("bad response header: {error}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "response to correlation id {} while waiting for {correlation_id}",
            header.correlation_id
        ));
    }
    let response = R::Response::decode(&mut body, version)
        .map_err(|error| format!("cannot decode api {} v{version} response: {error}", R::KEY))?;
    if body.has_remaining() {
        return Err(format!(
            "{} bytes after the api {} v{version} response",
            body.remaining(),
            R::KEY
        ));
    }
    Ok(response)
}

/// A connection to one leader broker.
pub struct LeaderConnection {
    addr: String,
    stream: TcpStream,
    client_id: StrBytes,
    next_correlation_id: i32,
    /// Where response bodies are read. Each body is split off and frozen (its records go to the
    /// log as they are); once the log has written them and dropped the bytes, the next
    /// `reserve` takes the same allocation back, so a steady follower neither zeroes nor
    /// page-faults a fresh buffer per fetch (both showed in its profile). Bounded by the largest
    /// response accepted (`response_body_len`).
    read_buffer: BytesMut,
}

impl LeaderConnection {
    /// Connects to `host:port` within `timeout_ms`; requests carry `strom-replica-<broker_id>`.
    pub async fn connect(
        host: &str,
        port: u16,
        broker_id: i32,
        timeout_ms: u64,
    ) -> Result<Self, ConnectionError> {
        let addr = format!("{host}:{port}");
        let connecting = TcpStream::connect((host, port));
        let stream = match tokio::time::timeout(Duration::from_millis(timeout_ms), connecting).await
        {
            Err(_elapsed) => {
                return Err(ConnectionError::Connect {
                    addr,
                    reason: format!("timed out after {timeout_ms} ms"),
                })
            }
            Ok(Err(error)) => {
                return Err(ConnectionError::Connect {
                    addr,
                    reason: error.to_string(),
                })
            }
            Ok(Ok(stream)) => stream,
        };
        // Fetch requests are small and latency matters more than packet count.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%addr, %error, "could not set TCP_NODELAY");
        }
        Ok(LeaderConnection {
            addr,
            stream,
            client_id: StrBytes::from_string(replica_client_id(broker_id)),
            next_correlation_id: 0,
            read_buffer: BytesMut::new(),
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `request` as `version` and waits up to `timeout_ms` for its response. After an
    /// error the connection must be dropped (a late response would be read as the next one).
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout_ms: u64,
    ) -> Result<R::Response, ConnectionError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, correlation_id, &self.client_id).map_err(
            |reason| ConnectionError::Protocol {
                addr: self.addr.clone(),
                reason,
            },
        )?;
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let mut prefix = [0u8; FRAME_SIZE_PREFIX_BYTES];
            self.stream.read_exact(&mut prefix).await?;
            let len = response_body_len(prefix)
                .map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidData, reason))?;
            self.read_buffer.clear();
            self.read_buffer.reserve(len);
            while self.read_buffer.len() < len {
                let want = len - self.read_buffer.len();
                let read = (&mut self.stream)
                    .take(want as u64)
                    .read_buf(&mut self.read_buffer)
                    .await?;
                if read == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok::<_, std::io::Error>(self.read_buffer.split_to(len).freeze())
        };
        let body = match tokio::time::timeout(Duration::from_millis(timeout_ms), exchange).await {
            Err(_elapsed) => {
                return Err(ConnectionError::Timeout {
                    addr: self.addr.clone(),
                    timeout_ms,
                })
            }
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::InvalidData => {
                return Err(ConnectionError::Protocol {
                    addr: self.addr.clone(),
                    reason: error.to_string(),
                })
            }
            Ok(Err(source)) => {
                return Err(ConnectionError::Io {
                    addr: self.addr.clone(),
                    source,
                })
            }
            Ok(Ok(body)) => body,
        };
        decode_response::<R>(body, version, correlation_id).map_err(|reason| {
            ConnectionError::Protocol {
                addr: self.addr.clone(),
                reason,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::fetch_response::{
        EpochEndOffset, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
    use kafka_protocol::protocol::decode_request_header_from_buffer;

    use super::*;

    fn fetch_request() -> FetchRequest {
        FetchRequest::default()
            .with_replica_id(BrokerId(3))
            .with_max_wait_ms(500)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(2)
                    .with_fetch_offset(40)
                    .with_last_fetched_epoch(5)
                    .with_current_leader_epoch(6)])])
    }

    #[test]
    fn a_request_frame_carries_the_header_and_the_body_the_broker_parses() {
        let client_id = StrBytes::from_string(replica_client_id(3));
        let frame =
            encode_request(&fetch_request(), FETCH_VERSION, 17, &client_id).expect("encodes");
        let mut body = frame.slice(FRAME_SIZE_PREFIX_BYTES..);
        assert_eq!(
            response_body_len(frame[..4].try_into().expect("4 bytes")),
            Ok(body.len()),
            "the size prefix covers header and body"
        );
        let header = decode_request_header_from_buffer(&mut body).expect("header");
        assert_eq!(header.request_api_key, ApiKey::Fetch as i16);
        assert_eq!(header.request_api_version, FETCH_VERSION);
        assert_eq!(header.correlation_id, 17);
        assert_eq!(header.client_id.as_deref(), Some("strom-replica-3"));
        let decoded = FetchRequest::decode(&mut body, FETCH_VERSION).expect("body");
        assert_eq!(
            decoded,
            fetch_request(),
            "v12 keeps replica_id and the epochs"
        );
        // The broker's own header parser reads it too.
        let parsed = crate::protocol::request_header::parse_request_header(
            &frame.slice(FRAME_SIZE_PREFIX_BYTES..),
        )
        .expect("the broker parses the header");
        assert_eq!(parsed.correlation_id, 17);
    }

    fn response_frame_body(correlation_id: i32, response: &FetchResponse) -> Bytes {
        let mut out = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut out, FetchResponse::header_version(FETCH_VERSION))
            .expect("header");
        response.encode(&mut out, FETCH_VERSION).expect("body");
        out.freeze()
    }

    #[test]
    fn a_response_decodes_with_its_diverging_epoch() {
        let response =
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(vec![PartitionData::default()
                    .with_partition_index(2)
                    .with_high_watermark(30)
                    .with_diverging_epoch(
                        EpochEndOffset::default().with_epoch(4).with_end_offset(25),
                    )
                    .with_records(Some(Bytes::new()))])]);
        let decoded =
            decode_response::<FetchRequest>(response_frame_body(9, &response), FETCH_VERSION, 9)
                .expect("decodes");
        let partition = &decoded.responses[0].partitions[0];
        assert_eq!(partition.diverging_epoch.epoch, 4);
        assert_eq!(partition.diverging_epoch.end_offset, 25);
    }

    #[test]
    fn a_response_to_another_request_or_with_trailing_bytes_is_refused() {
        let response = FetchResponse::default();
        assert!(decode_response::<FetchRequest>(
            response_frame_body(8, &response),
            FETCH_VERSION,
            9
        )
        .is_err_and(|reason| reason.contains("correlation")));
        let mut long = BytesMut::from(&response_frame_body(9, &response)[..]);
        long.put_u8(0);
        assert!(
            decode_response::<FetchRequest>(long.freeze(), FETCH_VERSION, 9)
                .is_err_and(|reason| reason.contains("after"))
        );
    }

    #[test]
    fn an_oversized_or_negative_frame_size_is_refused() {
        let too_big = i32::try_from(RESPONSE_MAX_BYTES + 1).expect("fits");
        assert!(response_body_len(too_big.to_be_bytes()).is_err());
        assert!(response_body_len((-1i32).to_be_bytes()).is_err());
        assert_eq!(response_body_len(100i32.to_be_bytes()), Ok(100));
    }

    /// The connection works on a shard's runtime (tokio-uring over a tokio current-thread
    /// runtime): a fake leader answers one fetch.
    #[test]
    fn a_request_round_trips_on_the_shard_runtime() {
        strom_engine::io::start_runtime(64, async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let leader = strom_engine::io::spawn_local(async move {
                let (mut socket, _) = listener.accept().await.expect("accept");
                let mut prefix = [0u8; 4];
                socket.read_exact(&mut prefix).await.expect("prefix");
                let mut request = vec![0u8; i32::from_be_bytes(prefix) as usize];
                socket.read_exact(&mut request).await.expect("request");
                let mut request = Bytes::from(request);
                let header = decode_request_header_from_buffer(&mut request).expect("header");
                let fetch =
                    FetchRequest::decode(&mut request, header.request_api_version).expect("fetch");
                assert_eq!(fetch.replica_id, BrokerId(3));
                let body = response_frame_body(
                    header.correlation_id,
                    &FetchResponse::default().with_throttle_time_ms(7),
                );
                let mut frame = BytesMut::new();
                frame.put_i32(body.len() as i32);
                frame.put_slice(&body);
                socket.write_all(&frame).await.expect("answer");
            });
            let mut connection = LeaderConnection::connect("127.0.0.1", port, 3, 1_000)
                .await
                .expect("connect");
            let response = connection
                .send(&fetch_request(), FETCH_VERSION, 5_000)
                .await
                .expect("response");
            assert_eq!(response.throttle_time_ms, 7);
            leader.await.expect("fake leader");
            // The leader closed: the next request fails instead of hanging.
            assert!(connection
                .send(&fetch_request(), FETCH_VERSION, 5_000)
                .await
                .is_err());
        });
    }
}
