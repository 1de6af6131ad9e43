//! One client connection. The reader decodes frames and dispatches them strictly in order (so
//! appends from one connection keep their order); each request's completion runs as its own
//! task, and the writer sends completed responses in request order. Up to
//! [`REQUESTS_IN_FLIGHT_MAX`] requests per connection are in work at once; past that the
//! reader stops reading (backpressure onto the client's socket).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::BytesMut;
use strom_engine::io::{self, Pipe, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::response::{Chunk, Response};
use crate::broker::shard::ShardState;
use crate::handlers;
use crate::protocol::frame::decode_request_frame;

/// Requests of one connection in work at once (Kafka's clients pipeline at most a handful).
pub const REQUESTS_IN_FLIGHT_MAX: usize = 64;
/// Read buffer grows by this much when it runs out of room.
const READ_CHUNK_BYTES: usize = 64 << 10;

pub async fn serve_connection(shard: Rc<ShardState>, stream: TcpStream, peer: SocketAddr) {
    let stream = Rc::new(stream);
    let (pending_tx, pending_rx) = mpsc::channel::<JoinHandle<Response>>(REQUESTS_IN_FLIGHT_MAX);
    let writer = io::spawn_local(write_responses(stream.clone(), pending_rx, peer));
    let max_request_bytes = shard.broker.config.socket_request_max_bytes as usize;
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    'connection: loop {
        loop {
            match decode_request_frame(&mut buffer, max_request_bytes) {
                Ok(Some(frame)) => {
                    let pending = handlers::dispatch(&shard, frame, peer).await;
                    if pending_tx.send(io::spawn_local(pending)).await.is_err() {
                        break 'connection;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%peer, %error, "closing connection: bad request frame");
                    break 'connection;
                }
            }
        }
        if shard.stopping.get() {
            break;
        }
        if buffer.capacity() - buffer.len() < READ_CHUNK_BYTES / 4 {
            buffer.reserve(READ_CHUNK_BYTES);
        }
        let (filled, capacity) = (buffer.len(), buffer.capacity());
        let (result, slice) = stream
            .read(tokio_uring_slice(buffer, filled, capacity))
            .await;
        buffer = slice.into_inner();
        match result {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%peer, %error, "read failed");
                break;
            }
        }
    }
    drop(pending_tx);
    if writer.await.is_err() {
        tracing::error!(%peer, "connection writer panicked");
    }
}

/// The spare capacity of `buffer` as a read target.
fn tokio_uring_slice(
    buffer: BytesMut,
    from: usize,
    to: usize,
) -> strom_engine::io::BufSlice<BytesMut> {
    strom_engine::io::buf_slice(buffer, from..to)
}

async fn write_responses(
    stream: Rc<TcpStream>,
    mut pending: mpsc::Receiver<JoinHandle<Response>>,
    peer: SocketAddr,
) {
    let mut pipe: Option<Pipe> = None;
    while let Some(task) = pending.recv().await {
        let response = match task.await {
            Ok(response) => response,
            Err(error) => {
                tracing::error!(%peer, %error, "request handler failed; closing connection");
                break;
            }
        };
        let chunks = match response {
            Response::Frame(chunks) => chunks,
            Response::NoResponse => continue,
            Response::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        };
        if let Err(error) = write_frame(&stream, chunks, &mut pipe).await {
            tracing::debug!(%peer, %error, "write failed; closing connection");
            break;
        }
    }
    // Wake the reader if it is blocked in read: the connection is done.
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

async fn write_frame(
    stream: &Rc<TcpStream>,
    chunks: Vec<Chunk>,
    pipe: &mut Option<Pipe>,
) -> std::io::Result<()> {
    let has_files = chunks.iter().any(|chunk| matches!(chunk, Chunk::File(_)));
    // Hold back partial packets while a frame is assembled from several writes and splices.
    if has_files {
        set_cork(stream, true);
    }
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(bytes) => {
                let (result, _) = stream.write_all(bytes).await;
                result?;
            }
            Chunk::File(range) => {
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
