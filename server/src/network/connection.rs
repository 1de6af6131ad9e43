//! One client connection, served by three tasks that hand requests along in order:
//! - the **reader** reads the socket and cuts request frames into the connection's
//!   [`SharedRequestQueue`], and keeps reading while earlier requests wait, as long as the
//!   queue's budget has room (requests in flight, `queued.max.request.bytes`); past that it
//!   stops reading, which pushes back onto the client's socket;
//! - the **dispatcher** dispatches queued frames strictly in request order (`dispatch` of a
//!   Produce queues its appends before it returns, so one connection's appends keep their
//!   order) and spawns each request's completion as its own task, so completions run
//!   concurrently;
//! - the **writer** waits for the completions in request order and sends every response already
//!   complete in one gathered write (file ranges spliced in their place).
//!
//! A fourth task, the idle watchdog ([`super::idle`]), closes the connection after
//! `connections.max.idle.ms` without a byte either way and with nothing in flight.
//!
//! What one connection can make the broker hold is bounded: the read buffer (a small one for a
//! quiet connection, growing to [`READ_CHUNK_BYTES`] plus one frame of at most
//! `socket.request.max.bytes`), requests read ahead (`queued.max.request.bytes`,
//! [`REQUESTS_IN_FLIGHT_MAX`]) and completed responses not yet written
//! ([`UNSENT_RESPONSE_BYTES_MAX`]); past a budget the reader stops reading that socket.
//!
//! A malformed frame ends the input: the requests before it are still answered, then the
//! connection closes (as in Kafka). So does a response that asks to close the connection.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use strom_engine::io::{self, Pipe, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::gather::{Gather, Piece};
use super::idle::{idle_verdict, Activity, IdleVerdict};
use super::limits::ConnectionPermit;
use super::request_queue::{RequestQueue, SharedRequestQueue};
use super::response::Response;
use crate::broker::shard::ShardState;
use crate::handlers;
use crate::metrics::frame_api_key;
use crate::protocol::frame::decode_request_frame;

/// Requests of one connection in flight at once: read and not yet answered (Kafka's clients
/// pipeline at most a handful; `max.in.flight.requests.per.connection` defaults to 5).
pub const REQUESTS_IN_FLIGHT_MAX: usize = 64;
/// Read buffer grows by this much when it runs out of room, once the connection is busy.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// A new connection reads at most this much at a time until a read fills it: most
/// connections send small requests or none (thousands of idle clients must not cost
/// 64 KiB each), and a busy one switches to [`READ_CHUNK_BYTES`] after its first full read.
const READ_START_BYTES: usize = 4 << 10;
/// Bytes of completed, unwritten responses past which the reader stops reading the
/// connection's requests (a client that never reads its responses). Room for several of the
/// largest responses the broker builds in memory (Metadata of a large cluster is ~1 MiB; fetch
/// data is spliced from files and not counted), so a client that does read is never slowed.
pub const UNSENT_RESPONSE_BYTES_MAX: usize = 8 << 20;

/// A request's response with what the latency metrics need.
struct Completed {
    response: Response,
    api_key: i16,
    /// When the response was ready (the send time starts here).
    ready_at: Instant,
}

/// Serves one accepted connection until it ends; `_permit` holds its place under
/// `max.connections` until then.
pub async fn serve_connection(
    shard: Rc<ShardState>,
    stream: TcpStream,
    peer: SocketAddr,
    _permit: ConnectionPermit,
) {
    shard.metrics.on_connection_opened();
    serve(&shard, stream, peer).await;
    shard.metrics.on_connection_closed();
}

async fn serve(shard: &Rc<ShardState>, stream: TcpStream, peer: SocketAddr) {
    let stream = Rc::new(stream);
    let activity = Rc::new(Activity::new());
    let queued_max_bytes = shard
        .broker
        .config
        .queued_max_request_bytes
        .map_or(usize::MAX, |max_bytes| {
            usize::try_from(max_bytes).unwrap_or(usize::MAX)
        });
    let queue = Rc::new(SharedRequestQueue::from_queue(
        RequestQueue::new(REQUESTS_IN_FLIGHT_MAX, queued_max_bytes)
            .with_unsent_response_max_bytes(UNSENT_RESPONSE_BYTES_MAX),
    ));
    // Never full: every request it carries is counted in flight by the queue.
    let (pending_tx, pending_rx) = mpsc::channel::<JoinHandle<Completed>>(REQUESTS_IN_FLIGHT_MAX);
    let writer = io::spawn_local(write_responses(
        shard.clone(),
        stream.clone(),
        queue.clone(),
        activity.clone(),
        pending_rx,
        peer,
    ));
    let idle_max = Duration::from_millis(shard.broker.config.connections_max_idle_ms);
    let watchdog = io::spawn_local(close_when_idle(
        stream.clone(),
        queue.clone(),
        activity.clone(),
        idle_max,
        peer,
    ));
    let dispatcher = io::spawn_local(dispatch_requests(
        shard.clone(),
        queue.clone(),
        pending_tx,
        peer,
    ));
    read_requests(shard, &stream, &queue, &activity, peer).await;
    queue.close_input();
    if dispatcher.await.is_err() {
        tracing::error!(%peer, "connection dispatcher panicked");
        queue.abort();
    }
    if writer.await.is_err() {
        tracing::error!(%peer, "connection writer panicked");
    }
    watchdog.abort();
}

/// Shuts the socket down once the connection has been idle for `idle_max` with nothing in
/// flight; the reader's pending read then ends and the connection winds down.
async fn close_when_idle(
    stream: Rc<TcpStream>,
    queue: Rc<SharedRequestQueue>,
    activity: Rc<Activity>,
    idle_max: Duration,
    peer: SocketAddr,
) {
    loop {
        let now = tokio::time::Instant::now();
        match idle_verdict(activity.last(), now, idle_max, queue.in_flight()) {
            IdleVerdict::Close => {
                tracing::debug!(%peer, idle_ms = idle_max.as_millis(), "closing idle connection");
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            IdleVerdict::WaitUntil(when) => tokio::time::sleep_until(when).await,
        }
    }
}

/// Reads and queues request frames until the stream ends, a frame is malformed, the shard stops
/// or the connection is aborted.
async fn read_requests(
    shard: &ShardState,
    stream: &TcpStream,
    queue: &SharedRequestQueue,
    activity: &Activity,
    peer: SocketAddr,
) {
    let max_request_bytes = shard.broker.config.socket_request_max_bytes as usize;
    let mut chunk_bytes = READ_START_BYTES;
    let mut buffer = BytesMut::new();
    loop {
        loop {
            match decode_request_frame(&mut buffer, max_request_bytes) {
                Ok(Some(frame)) => {
                    if !queue.push(frame).await {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    if let Some(suppressed) =
                        crate::handlers::refusal_log::admit(("bad request frame", -1))
                    {
                        tracing::warn!(%peer, %error, suppressed, "closing connection: bad request frame");
                    }
                    return;
                }
            }
        }
        // Read more only while the budget has room: otherwise the client's bytes stay in the
        // socket and the client is pushed back.
        if !queue.wait_for_room().await || shard.stopping.get() {
            return;
        }
        if buffer.capacity() - buffer.len() < chunk_bytes / 4 {
            buffer.reserve(chunk_bytes);
        }
        let (filled, capacity) = (buffer.len(), buffer.capacity());
        let (result, slice) = stream.read(io::buf_slice(buffer, filled..capacity)).await;
        buffer = slice.into_inner();
        match result {
            Ok(0) => return,
            Ok(read_bytes) => {
                activity.touch();
                if read_bytes == capacity - filled {
                    // The client sends faster than small reads take it: read in full chunks.
                    chunk_bytes = READ_CHUNK_BYTES;
                }
            }
            Err(error) => {
                tracing::debug!(%peer, %error, "read failed");
                return;
            }
        }
    }
}

/// Dispatches queued frames one at a time, in request order, and hands each completion (running
/// as its own task) to the writer.
async fn dispatch_requests(
    shard: Rc<ShardState>,
    queue: Rc<SharedRequestQueue>,
    pending: mpsc::Sender<JoinHandle<Completed>>,
    peer: SocketAddr,
) {
    while let Some((frame, queued_at)) = queue.next_frame().await {
        // A stopping shard starts no new work; the connection closes once the writer is done.
        if shard.stopping.get() {
            break;
        }
        let api_key = frame_api_key(&frame);
        let dispatched_at = Instant::now();
        shard
            .metrics
            .on_dispatched(api_key, dispatched_at.saturating_duration_since(queued_at));
        let completion = handlers::dispatch(&shard, frame, peer).await;
        let timed_shard = shard.clone();
        let counted = queue.clone();
        let timed = async move {
            let response = completion.await;
            let ready_at = Instant::now();
            counted.response_ready(response.held_bytes());
            timed_shard
                .metrics
                .on_completed(api_key, ready_at.saturating_duration_since(dispatched_at));
            Completed {
                response,
                api_key,
                ready_at,
            }
        };
        if pending.send(io::spawn_local(timed)).await.is_err() {
            break;
        }
    }
}

/// Writes responses in request order, gathering each round every response already complete.
async fn write_responses(
    shard: Rc<ShardState>,
    stream: Rc<TcpStream>,
    queue: Rc<SharedRequestQueue>,
    activity: Rc<Activity>,
    mut pending: mpsc::Receiver<JoinHandle<Completed>>,
    peer: SocketAddr,
) {
    let mut pipe: Option<Pipe> = None;
    let mut gather = Gather::default();
    let mut next: Option<JoinHandle<Completed>> = None;
    // (api key, ready at) of the responses in `gather`, for their send time once written.
    let mut gathered: Vec<(i16, Instant)> = Vec::with_capacity(REQUESTS_IN_FLIGHT_MAX);
    loop {
        let first = match next.take() {
            Some(task) => task,
            None => match pending.recv().await {
                Some(task) => task,
                None => break,
            },
        };
        let mut answered = 0;
        let mut held_bytes = 0;
        let mut close = false;
        let mut task = first;
        loop {
            let response = match task.await {
                Ok(completed) => {
                    if matches!(completed.response, Response::Frame(_)) {
                        gathered.push((completed.api_key, completed.ready_at));
                    }
                    completed.response
                }
                Err(error) => {
                    tracing::error!(%peer, %error, "request handler failed; closing connection");
                    close = true;
                    break;
                }
            };
            answered += 1;
            held_bytes += response.held_bytes();
            match response {
                Response::Frame(chunks) => gather.push_frame(chunks),
                Response::NoResponse => {}
                Response::Close(reason) => {
                    if let Some(suppressed) =
                        crate::handlers::refusal_log::admit(("request closed the connection", -1))
                    {
                        tracing::warn!(%peer, %reason, suppressed, "closing connection");
                    }
                    close = true;
                    break;
                }
            }
            if gather.is_full() {
                break;
            }
            // Gather the responses already complete; the first one still running waits for
            // the next round.
            match pending.try_recv() {
                Ok(candidate) if candidate.is_finished() => task = candidate,
                Ok(candidate) => {
                    next = Some(candidate);
                    break;
                }
                Err(_) => break,
            }
        }
        if !gather.is_empty() {
            let has_files = gather.has_files();
            if let Err(error) = write_pieces(&stream, gather.take(), has_files, &mut pipe).await {
                tracing::debug!(%peer, %error, "write failed; closing connection");
                break;
            }
            activity.touch();
            let written_at = Instant::now();
            for (api_key, ready_at) in gathered.drain(..) {
                shard
                    .metrics
                    .on_sent(api_key, written_at.saturating_duration_since(ready_at));
            }
        }
        queue.responses_sent(held_bytes);
        queue.answered(answered);
        if close {
            break;
        }
    }
    queue.abort();
    // Wake the reader if it is blocked in read: the connection is done.
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

async fn write_pieces(
    stream: &Rc<TcpStream>,
    pieces: Vec<Piece>,
    has_files: bool,
    pipe: &mut Option<Pipe>,
) -> std::io::Result<()> {
    // With TCP_NODELAY, the frame headers written between splices would leave as small packets
    // of their own; corking coalesces them with the file data. A batch of bytes only is one
    // writev already and needs no cork.
    if has_files {
        set_cork(stream, true);
    }
    for piece in pieces {
        match piece {
            Piece::Bytes(bufs) => io::write_all_vectored(stream, bufs).await?,
            Piece::File(range) => {
                let current = match pipe.take() {
                    Some(existing) => Some(existing),
                    None => Pipe::new().ok(),
                };
                match current {
                    Some(current) => {
                        // A failed splice may leave bytes in the pipe: it is dropped then.
                        let returned = io::splice_to_socket(
                            current,
                            &range.file,
                            range.position,
                            range.len_bytes,
                            stream,
                        )
                        .await?;
                        *pipe = Some(returned);
                    }
                    None => {
                        io::copy_to_socket(&range.file, range.position, range.len_bytes, stream)
                            .await?
                    }
                }
            }
        }
    }
    if has_files {
        set_cork(stream, false);
    }
    Ok(())
}

fn set_cork(stream: &TcpStream, corked: bool) {
    let value: libc::c_int = i32::from(corked);
    // SAFETY: setsockopt with a valid int on a socket we hold open.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
