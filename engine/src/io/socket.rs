//! Gathered socket writes: many byte buffers (several response frames) leave in one io_uring
//! `writev`, instead of one syscall per buffer.

use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use bytes::{Buf, Bytes};
use io_uring::{opcode, types};

use super::file::WRITEV_IOVECS_MAX;
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
        let iovecs: Vec<libc::iovec> = bufs
            .iter()
            .map(|buf| libc::iovec {
                iov_base: buf.as_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            })
            .collect();
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

/// Drops the first `written` bytes of `bufs`: the buffers sent whole go (in one pass), the one
/// sent in part is trimmed.
fn consume_written(bufs: &mut Vec<Bytes>, written: usize) {
    let total: usize = bufs.iter().map(Bytes::len).sum();
    assert!(written <= total, "kernel wrote {written} of {total} bytes");
    let mut remaining = written;
    let whole = bufs
        .iter()
        .take_while(|buf| {
            let sent = buf.len() <= remaining;
            if sent {
                remaining -= buf.len();
            }
            sent
        })
        .count();
    bufs.drain(..whole);
    if let Some(first) = bufs.first_mut() {
        first.advance(remaining);
    } else {
        assert_eq!(remaining, 0, "bytes written beyond the buffers");
    }
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

    fn bufs(parts: &[&'static [u8]]) -> Vec<Bytes> {
        parts.iter().map(|part| Bytes::from_static(part)).collect()
    }

    #[test]
    fn a_short_write_drops_whole_buffers_and_trims_the_partial_one() {
        let mut pending = bufs(&[b"abc", b"de", b"fghij"]);
        consume_written(&mut pending, 4);
        assert_eq!(pending, bufs(&[b"e", b"fghij"]));
        consume_written(&mut pending, 1);
        assert_eq!(pending, bufs(&[b"fghij"]));
        consume_written(&mut pending, 5);
        assert!(pending.is_empty());
    }

    #[test]
    #[should_panic(expected = "kernel wrote")]
    fn more_written_than_held_is_an_invariant_violation() {
        let mut pending = bufs(&[b"ab"]);
        consume_written(&mut pending, 3);
    }

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
