//! One TCP connection to one broker, with pipelined requests.
//!
//! Requests are framed by the caller's task and handed to a writer task; responses are read by a
//! reader task and matched to requests by correlation id. Kafka answers the requests of one
//! connection in the order it received them, so pending requests wait in a FIFO queue and a
//! response whose correlation id is not the oldest pending one is a protocol error that closes
//! the connection.
//!
//! Invariants:
//! - at most `max_in_flight` requests are written and unanswered at once (a semaphore permit
//!   travels with each pending request and is released when its response arrives);
//! - a pending request is queued before its bytes are written, so the reader always finds it;
//! - once the connection has failed, every pending and every later request gets an error.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use super::errors::{ClientError, Result};
use super::versions::VersionTable;

/// Largest response frame accepted: above any fetch.max.bytes the tools ask for (64 MiB) plus
/// headers, and a guard against a corrupt length prefix allocating gigabytes.
pub const RESPONSE_MAX_BYTES: usize = 128 * 1024 * 1024;
/// Buffer between the socket and the frame reader.
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// Buffer between the frame writer and the socket.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// How a connection behaves.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    pub client_id: String,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Requests written and not yet answered, at most (Kafka's
    /// `max.in.flight.requests.per.connection`).
    pub max_in_flight: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "strom".to_string(),
            connect_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            max_in_flight: 5,
        }
    }
}

struct Pending {
    correlation_id: i32,
    response_header_version: i16,
    reply: oneshot::Sender<Result<Bytes>>,
    _permit: OwnedSemaphorePermit,
}

struct Outgoing {
    frame: Bytes,
    /// `None` for a request the broker does not answer (Produce with acks=0).
    pending: Option<Pending>,
    /// Completed after the frame is written, for requests without a response.
    written: Option<(oneshot::Sender<Result<Bytes>>, OwnedSemaphorePermit)>,
}

#[derive(Default)]
struct Shared {
    /// Why the connection failed; set once.
    failed: Option<String>,
    pending: VecDeque<Pending>,
}

impl Shared {
    fn fail(&mut self, reason: &str, addr: &str) {
        if self.failed.is_none() {
            self.failed = Some(reason.to_string());
        }
        for pending in self.pending.drain(..) {
            let _ = pending.reply.send(Err(ClientError::ConnectionLost {
                addr: addr.to_string(),
                reason: reason.to_string(),
            }));
        }
    }
}

/// A live connection; cheap to share behind an `Arc`.
pub struct Connection {
    addr: String,
    client_id: StrBytes,
    versions: VersionTable,
    request_timeout: Duration,
    next_correlation_id: AtomicI32,
    in_flight: Arc<Semaphore>,
    tx: mpsc::Sender<Outgoing>,
    shared: Arc<Mutex<Shared>>,
    tasks: [AbortHandle; 2],
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A request on its way: await [`ResponseFuture::wait`] for the decoded response.
pub struct ResponseFuture<T> {
    rx: oneshot::Receiver<Result<Bytes>>,
    version: i16,
    api: ApiKey,
    addr: String,
    timeout: Duration,
    shared: Arc<Mutex<Shared>>,
    expects_response: bool,
    _marker: std::marker::PhantomData<fn() -> T>,
}

impl<T: Decodable> ResponseFuture<T> {
    /// Overrides the connection's request timeout (JoinGroup is held for up to the rebalance
    /// timeout by design).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Waits for the response and decodes it. `Ok(None)` for requests without a response.
    pub async fn wait(self) -> Result<Option<T>> {
        let outcome = tokio::time::timeout(self.timeout, self.rx).await;
        let body = match outcome {
            Err(_elapsed) => {
                // Kafka's clients close a connection whose request timed out: later responses on
                // it could no longer be trusted to arrive in time either.
                lock(&self.shared).fail("request timed out", &self.addr);
                return Err(ClientError::Timeout {
                    api: format!("{:?}", self.api),
                    addr: self.addr,
                    timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
            Ok(Err(_closed)) => {
                return Err(ClientError::ConnectionLost {
                    addr: self.addr,
                    reason: "connection closed".into(),
                })
            }
            Ok(Ok(result)) => result?,
        };
        if !self.expects_response {
            return Ok(None);
        }
        let mut body = body;
        T::decode(&mut body, self.version)
            .map(Some)
            .map_err(|error| ClientError::Protocol {
                addr: self.addr.clone(),
                reason: format!(
                    "cannot decode {:?} v{} response: {error}",
                    self.api, self.version
                ),
            })
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A poisoned lock only means another task panicked while holding it; the queue itself is
    // still consistent (every mutation is a single push, pop or drain).
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Connection {
    /// Connects, then negotiates versions with ApiVersions.
    pub async fn connect(addr: &str, config: &ConnectionConfig) -> Result<Arc<Connection>> {
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    reason: format!("timed out after {} ms", config.connect_timeout_ms),
                })
            }
            Ok(Err(error)) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    reason: error.to_string(),
                })
            }
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = stream.into_split();
        let max_in_flight = config.max_in_flight.max(1);
        let (tx, rx) = mpsc::channel(max_in_flight);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let writer = tokio::spawn(write_loop(write_half, rx, shared.clone(), addr.to_string()));
        let reader = tokio::spawn(read_loop(read_half, shared.clone(), addr.to_string()));
        let mut connection = Connection {
            addr: addr.to_string(),
            client_id: StrBytes::from_string(config.client_id.clone()),
            versions: VersionTable::default(),
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            next_correlation_id: AtomicI32::new(0),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            tx,
            shared,
            tasks: [writer.abort_handle(), reader.abort_handle()],
        };
        connection.versions = connection.negotiate_versions().await?;
        Ok(Arc::new(connection))
    }

    /// ApiVersions v3 (client name and version), falling back to v0 for brokers that answer
    /// UNSUPPORTED_VERSION (their v0 body lists the ranges).
    async fn negotiate_versions(&self) -> Result<VersionTable> {
        let mut request = ApiVersionsRequest::default();
        request.client_software_name = StrBytes::from_static_str("strom-tools");
        request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let first = self.send_version(&request, 3).await;
        let response = match first {
            Ok(response) if response.error_code == 0 => response,
            Ok(_) | Err(ClientError::Protocol { .. }) => {
                self.send_version(&ApiVersionsRequest::default(), 0).await?
            }
            Err(other) => return Err(other),
        };
        if response.error_code != 0 {
            return Err(ClientError::kafka(
                format!("ApiVersions from {}", self.addr),
                response.error_code,
                None,
            ));
        }
        Ok(VersionTable::new(response.api_keys.iter().map(|api| {
            (api.api_key, api.min_version, api.max_version)
        })))
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn versions(&self) -> &VersionTable {
        &self.versions
    }

    /// Whether the connection has failed (the pool then opens a new one).
    pub fn is_closed(&self) -> bool {
        lock(&self.shared).failed.is_some() || self.tx.is_closed()
    }

    /// The negotiated version for `R` on this connection.
    pub fn version<R: Request>(&self) -> Result<i16> {
        self.versions.pick::<R>(&self.addr)
    }

    /// Sends with the negotiated version and waits for the response.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response> {
        let version = self.version::<R>()?;
        self.send_version(request, version).await
    }

    /// Sends with an explicit version and waits for the response.
    pub async fn send_version<R: Request>(&self, request: &R, version: i16) -> Result<R::Response> {
        let future = self.enqueue(request, version, true).await?;
        future.wait().await?.ok_or_else(|| ClientError::Protocol {
            addr: self.addr.clone(),
            reason: "missing response".into(),
        })
    }

    /// Sends with the negotiated version and waits up to `timeout` for the response.
    pub async fn send_with_timeout<R: Request>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let version = self.version::<R>()?;
        let future = self
            .enqueue(request, version, true)
            .await?
            .with_timeout(timeout);
        future.wait().await?.ok_or_else(|| ClientError::Protocol {
            addr: self.addr.clone(),
            reason: "missing response".into(),
        })
    }

    /// Frames the request and queues it for writing, waiting while `max_in_flight` requests are
    /// outstanding. Requests enqueued one after another are written in that order. Returns the
    /// future of the response (which the caller may await elsewhere).
    pub async fn enqueue<R: Request>(
        &self,
        request: &R,
        version: i16,
        expects_response: bool,
    ) -> Result<ResponseFuture<R::Response>> {
        let api = ApiKey::try_from(R::KEY)
            .map_err(|()| ClientError::InvalidArgument(format!("unknown api key {}", R::KEY)))?;
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let frame = self.frame(request, version, correlation_id, api)?;
        let permit = self.in_flight.clone().acquire_owned().await.map_err(|_| {
            ClientError::ConnectionLost {
                addr: self.addr.clone(),
                reason: "connection closed".into(),
            }
        })?;
        if let Some(reason) = lock(&self.shared).failed.clone() {
            return Err(ClientError::ConnectionLost {
                addr: self.addr.clone(),
                reason,
            });
        }
        let (reply, rx) = oneshot::channel();
        let outgoing = if expects_response {
            Outgoing {
                frame,
                pending: Some(Pending {
                    correlation_id,
                    response_header_version: R::Response::header_version(version),
                    reply,
                    _permit: permit,
                }),
                written: None,
            }
        } else {
            Outgoing {
                frame,
                pending: None,
                written: Some((reply, permit)),
            }
        };
        self.tx
            .send(outgoing)
            .await
            .map_err(|_| ClientError::ConnectionLost {
                addr: self.addr.clone(),
                reason: lock(&self.shared)
                    .failed
                    .clone()
                    .unwrap_or_else(|| "connection closed".into()),
            })?;
        Ok(ResponseFuture {
            rx,
            version,
            api,
            addr: self.addr.clone(),
            timeout: self.request_timeout,
            shared: self.shared.clone(),
            expects_response,
            _marker: std::marker::PhantomData,
        })
    }

    fn frame<R: Request>(
        &self,
        request: &R,
        version: i16,
        correlation_id: i32,
        api: ApiKey,
    ) -> Result<Bytes> {
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(self.client_id.clone());
        let header_version = R::header_version(version);
        let encode_error = |error: anyhow::Error| {
            ClientError::InvalidArgument(format!(
                "cannot encode {api:?} v{version} request: {error}"
            ))
        };
        let size = header.compute_size(header_version).map_err(encode_error)?
            + request.compute_size(version).map_err(encode_error)?;
        let mut frame = BytesMut::with_capacity(4 + size);
        frame.put_i32(i32::try_from(size).map_err(|_| {
            ClientError::InvalidArgument(format!("{api:?} request of {size} bytes is too large"))
        })?);
        header
            .encode(&mut frame, header_version)
            .map_err(encode_error)?;
        request.encode(&mut frame, version).map_err(encode_error)?;
        Ok(frame.freeze())
    }
}

async fn write_loop(
    write_half: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    shared: Arc<Mutex<Shared>>,
    addr: String,
) {
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, write_half);
    let mut written_replies = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut outcome = Ok(());
        while let Some(outgoing) = next.take() {
            if let Some(pending) = outgoing.pending {
                let mut guard = lock(&shared);
                if let Some(reason) = guard.failed.clone() {
                    let _ = pending.reply.send(Err(ClientError::ConnectionLost {
                        addr: addr.clone(),
                        reason,
                    }));
                    continue;
                }
                guard.pending.push_back(pending);
            }
            if let Some(written) = outgoing.written {
                written_replies.push(written);
            }
            outcome = writer.write_all(&outgoing.frame).await;
            if outcome.is_err() {
                break;
            }
            next = rx.try_recv().ok();
        }
        if outcome.is_ok() {
            outcome = writer.flush().await;
        }
        match outcome {
            Ok(()) => {
                for (reply, _permit) in written_replies.drain(..) {
                    let _ = reply.send(Ok(Bytes::new()));
                }
            }
            Err(error) => {
                let reason = format!("write failed: {error}");
                lock(&shared).fail(&reason, &addr);
                for (reply, _permit) in written_replies.drain(..) {
                    let _ = reply.send(Err(ClientError::ConnectionLost {
                        addr: addr.clone(),
                        reason: reason.clone(),
                    }));
                }
                return;
            }
        }
    }
    // The connection was dropped: nothing more will be sent.
    let _ = writer.shutdown().await;
}

async fn read_loop(read_half: OwnedReadHalf, shared: Arc<Mutex<Shared>>, addr: String) {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, read_half);
    let reason = loop {
        let size = match reader.read_i32().await {
            Ok(size) => size,
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                break "closed by the broker".to_string()
            }
            Err(error) => break format!("read failed: {error}"),
        };
        let Ok(size) = usize::try_from(size) else {
            break format!("negative response size {size}");
        };
        if !(4..=RESPONSE_MAX_BYTES).contains(&size) {
            break format!("response size {size} outside 4..={RESPONSE_MAX_BYTES} bytes");
        }
        let mut frame = BytesMut::zeroed(size);
        if let Err(error) = reader.read_exact(&mut frame).await {
            break format!("read failed: {error}");
        }
        let mut frame = frame.freeze();
        let Some(pending) = lock(&shared).pending.pop_front() else {
            break format!(
                "unexpected response (correlation id {})",
                frame.clone().get_i32()
            );
        };
        let header = match ResponseHeader::decode(&mut frame, pending.response_header_version) {
            Ok(header) => header,
            Err(error) => {
                let _ = pending.reply.send(Err(ClientError::Protocol {
                    addr: addr.clone(),
                    reason: format!("bad response header: {error}"),
                }));
                break format!("bad response header: {error}");
            }
        };
        if header.correlation_id != pending.correlation_id {
            let reason = format!(
                "response correlation id {} does not match the oldest request's {}",
                header.correlation_id, pending.correlation_id
            );
            let _ = pending.reply.send(Err(ClientError::Protocol {
                addr: addr.clone(),
                reason: reason.clone(),
            }));
            break reason;
        }
        let _ = pending.reply.send(Ok(frame));
    };
    lock(&shared).fail(&reason, &addr);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataRequest};
    use tokio::net::TcpListener;

    /// A fake broker: answers ApiVersions v3 with a fixed table, then echoes a Metadata response
    /// per request, in order.
    async fn fake_broker(listener: TcpListener, answer_metadata: bool) {
        let (mut socket, _) = listener.accept().await.expect("accept");
        loop {
            let Ok(size) = socket.read_i32().await else {
                return;
            };
            let mut frame = vec![0u8; usize::try_from(size).expect("size")];
            socket.read_exact(&mut frame).await.expect("read");
            let mut frame = Bytes::from(frame);
            let api_key = frame.clone().get_i16();
            let mut probe = frame.clone();
            probe.advance(2);
            let version = probe.get_i16();
            let header_version = ApiKey::try_from(api_key)
                .expect("key")
                .request_header_version(version);
            let header = RequestHeader::decode(&mut frame, header_version).expect("header");
            let mut out = BytesMut::new();
            if api_key == ApiKey::ApiVersions as i16 {
                let mut response = ApiVersionsResponse::default();
                for (key, min, max) in [(18, 0, 3), (3, 0, 12)] {
                    let mut entry = ApiVersion::default();
                    entry.api_key = key;
                    entry.min_version = min;
                    entry.max_version = max;
                    response.api_keys.push(entry);
                }
                let mut header_out = ResponseHeader::default();
                header_out.correlation_id = header.correlation_id;
                header_out.encode(&mut out, 0).expect("encode");
                response.encode(&mut out, version).expect("encode");
            } else if answer_metadata {
                let response = kafka_protocol::messages::MetadataResponse::default();
                let mut header_out = ResponseHeader::default();
                header_out.correlation_id = header.correlation_id;
                header_out.encode(&mut out, 1).expect("encode");
                response.encode(&mut out, version).expect("encode");
            } else {
                return;
            }
            let mut framed = BytesMut::new();
            framed.put_i32(i32::try_from(out.len()).expect("len"));
            framed.extend_from_slice(&out);
            socket.write_all(&framed).await.expect("write");
        }
    }

    #[tokio::test]
    async fn pipelined_requests_match_responses() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(fake_broker(listener, true));
        let connection = Connection::connect(&addr, &ConnectionConfig::default())
            .await
            .expect("connect");
        assert_eq!(connection.version::<MetadataRequest>().ok(), Some(12));
        let mut futures = Vec::new();
        for _ in 0..20 {
            futures.push(
                connection
                    .enqueue(&MetadataRequest::default(), 12, true)
                    .await
                    .expect("enqueue"),
            );
        }
        for future in futures {
            assert!(future.wait().await.expect("response").is_some());
        }
    }

    #[tokio::test]
    async fn broker_hanging_up_fails_pending_requests() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(fake_broker(listener, false));
        let connection = Connection::connect(&addr, &ConnectionConfig::default())
            .await
            .expect("connect");
        let error = connection
            .send(&MetadataRequest::default())
            .await
            .expect_err("must fail");
        assert!(
            matches!(error, ClientError::ConnectionLost { .. }),
            "{error}"
        );
        assert!(connection.is_closed());
    }

    #[tokio::test]
    async fn unreachable_broker_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let Err(error) = Connection::connect(&addr, &ConnectionConfig::default()).await else {
            panic!("must fail")
        };
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot connect to broker {addr}")),
            "{error}"
        );
    }
}
