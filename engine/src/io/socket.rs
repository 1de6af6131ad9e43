//! Gathered socket writes: many byte buffers (several response frames) leave in one io_uring
//! `writev`, instead of one syscall per buffer.

use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::Bytes;
use io_uring::{opcode, types};

use super::file::WRITEV_IOVECS_MAX;
use super::iovec::{consume_written, iovecs_of};
use super::op::submit;
use super::TcpStream;

/// What a socket `writev` owns until the kernel completes it, also if its future is dropped.
struct SocketWriteVectored {
    _socket: Rc<TcpStream>,
    bufs: Vec<Bytes>,
    /// Read only by the kernel, through the pointer in the submitted entry.
    _iovecs: Vec<libc::iovec>,
}

/// Writes all of `bufs`, in order, to `socket` with as few `writev`s as the socket takes: a
/// short write is resumed from the first byte not sent, and a socket that would block is polled
/// until writable. Callers keep `bufs.len()` at most [`WRITEV_IOVECS_MAX`].
pub async fn write_all_vectored(socket: &Rc<TcpStream>, mut bufs: Vec<Bytes>) -> io::Result<()> {
    assert!(
        bufs.len() <= WRITEV_IOVECS_MAX,
        "socket writev of {} buffers",
        bufs.len()
    );
    bufs.retain(|buf| !buf.is_empty());
    while !bufs.is_empty() {
        let iovecs = iovecs_of(&bufs);
        let iovec_count = u32::try_from(iovecs.len()).unwrap_or(u32::MAX);
        // A socket has no file position: offset 0 is what io_uring expects for streams.
        let entry =
            opcode::Writev::new(types::Fd(socket.as_raw_fd()), iovecs.as_ptr(), iovec_count)
                .build();
        let data = SocketWriteVectored {
            _socket: socket.clone(),
            bufs,
            _iovecs: iovecs,
        };
        // SAFETY: the iovecs point into the buffers held by `data` (refcounted heap memory that
        // does not move), the iovec array is `data._iovecs`' heap buffer, and `data` holds the
        // socket open.
        let (result, data) = unsafe { submit(data, entry) }.await;
        bufs = data.bufs;
        let written = match result {
            Ok(written) => written as usize,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(socket).await?;
                continue;
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "socket writev wrote nothing",
            ));
        }
        consume_written(&mut bufs, written);
    }
    Ok(())
}

/// Waits until `socket` can take more bytes.
async fn wait_writable(socket: &Rc<TcpStream>) -> io::Result<()> {
    let entry = opcode::PollAdd::new(types::Fd(socket.as_raw_fd()), libc::POLLOUT as u32).build();
    // SAFETY: no memory pointers; the Rc keeps the socket open.
    let (result, _socket) = unsafe { submit(socket.clone(), entry) }.await;
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes more than a loopback socket buffer holds through one gathered call and reads it
    /// back whole and in order on the other end: short writes and blocking are handled.
    #[test]
    fn gathered_write_delivers_every_byte_in_order() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let parts: Vec<Bytes> = (0..WRITEV_IOVECS_MAX)
            .map(|index| Bytes::from(vec![(index % 251) as u8; 4096 + index % 7]))
            .collect();
        let expected: Vec<u8> = parts.iter().flat_map(|part| part.to_vec()).collect();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let (mut peer, _) = listener.accept().expect("accept");
            let mut received = Vec::new();
            peer.read_to_end(&mut received).expect("read");
            received
        });
        crate::io::start_runtime(64, async move {
            let stream = TcpStream::connect(address).await.expect("connect");
            let stream = Rc::new(stream);
            write_all_vectored(&stream, parts).await.expect("write");
            stream
                .shutdown(std::net::Shutdown::Write)
                .expect("shutdown");
        });
        let received = reader.join().expect("reader thread");
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "bytes arrive in order");
    }
}
