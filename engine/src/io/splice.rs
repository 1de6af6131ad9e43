//! Moving file bytes to a socket: zero-copy through a pipe with io_uring `splice`
//! (file → pipe → socket, the io_uring equivalent of `sendfile`), and a copying fallback.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use io_uring::{opcode, types};

use super::file::SharedFile;
use super::op::submit;
use super::TcpStream;

/// Bytes a pipe holds; one splice moves at most this much. Linux's default pipe-max-size is
/// 1 MiB; if raising the pipe to it fails we keep the kernel default (64 KiB).
const PIPE_CAPACITY_BYTES: usize = 1 << 20;
/// Largest buffer the copying fallback reads at once.
const COPY_CHUNK_BYTES: usize = 256 << 10;

/// A pipe used as the in-kernel buffer of splice transfers. One per connection (or shard).
///
/// Invariant: between transfers the pipe is empty. A transfer that fails midway may leave
/// bytes in it, so [`splice_to_socket`] consumes the pipe on error; the caller makes a new one.
#[derive(Debug)]
pub struct Pipe {
    read_end: Rc<OwnedFd>,
    write_end: Rc<OwnedFd>,
    capacity_bytes: usize,
}

impl Pipe {
    pub fn new() -> io::Result<Self> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read_end, write_end) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let requested = libc::c_int::try_from(PIPE_CAPACITY_BYTES).unwrap_or(libc::c_int::MAX);
        // SAFETY: F_SETPIPE_SZ/F_GETPIPE_SZ on a pipe we own.
        unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_SETPIPE_SZ, requested) };
        // SAFETY: as above.
        let capacity = unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let capacity_bytes = usize::try_from(capacity).unwrap_or(0).max(4096);
        Ok(Pipe {
            read_end: Rc::new(read_end),
            write_end: Rc::new(write_end),
            capacity_bytes,
        })
    }

    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }
}

struct SpliceFds {
    _input: SpliceEnd,
    _output: SpliceEnd,
}

/// Held only to keep a descriptor open until the kernel completes the splice.
#[expect(dead_code, reason = "the fields are owned, never read")]
enum SpliceEnd {
    File(SharedFile),
    Pipe(Rc<OwnedFd>),
    Socket(Rc<TcpStream>),
}

async fn splice_once(
    input: SpliceEnd,
    input_fd: RawFd,
    input_offset: i64,
    output: SpliceEnd,
    output_fd: RawFd,
    len_bytes: usize,
) -> io::Result<usize> {
    let len = u32::try_from(len_bytes).unwrap_or(u32::MAX);
    let entry = opcode::Splice::new(
        types::Fd(input_fd),
        input_offset,
        types::Fd(output_fd),
        -1,
        len,
    )
    .build();
    let data = SpliceFds {
        _input: input,
        _output: output,
    };
    // SAFETY: no memory pointers; `data` keeps both descriptors open until completion.
    let (result, _data) = unsafe { submit(data, entry) }.await;
    result.map(|moved| moved as usize)
}

async fn wait_writable(socket: &Rc<TcpStream>) -> io::Result<()> {
    let entry = opcode::PollAdd::new(types::Fd(socket.as_raw_fd()), libc::POLLOUT as u32).build();
    // SAFETY: no memory pointers; the Rc keeps the socket open.
    let (result, _socket) = unsafe { submit(socket.clone(), entry) }.await;
    result.map(|_| ())
}

/// Sends `len_bytes` of `file` starting at `position` to `socket` without copying them through
/// user space. Short splices are resumed; a socket that would block is polled. On error the pipe
/// may hold stray bytes, so it is consumed; on success it is handed back empty.
pub async fn splice_to_socket(
    pipe: Pipe,
    file: &SharedFile,
    position: u64,
    len_bytes: usize,
    socket: &Rc<TcpStream>,
) -> io::Result<Pipe> {
    let mut file_offset = position;
    let mut remaining = len_bytes;
    while remaining > 0 {
        let chunk = remaining.min(pipe.capacity_bytes);
        let offset =
            i64::try_from(file_offset).map_err(|_| io::Error::other("file offset overflows"))?;
        let filled = splice_once(
            SpliceEnd::File(file.clone()),
            file.raw_fd(),
            offset,
            SpliceEnd::Pipe(pipe.write_end.clone()),
            pipe.write_end.as_raw_fd(),
            chunk,
        )
        .await?;
        if filled == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file ended inside the range spliced",
            ));
        }
        file_offset += filled as u64;
        remaining -= filled;
        let mut in_pipe = filled;
        while in_pipe > 0 {
            match splice_once(
                SpliceEnd::Pipe(pipe.read_end.clone()),
                pipe.read_end.as_raw_fd(),
                -1,
                SpliceEnd::Socket(socket.clone()),
                socket.as_raw_fd(),
                in_pipe,
            )
            .await
            {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "socket closed during splice",
                    ))
                }
                Ok(sent) => in_pipe -= sent,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    wait_writable(socket).await?
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(pipe)
}

/// The copying fallback: reads the range into memory and writes it to the socket.
pub async fn copy_to_socket(
    file: &SharedFile,
    position: u64,
    len_bytes: usize,
    socket: &TcpStream,
) -> io::Result<()> {
    let mut done = 0usize;
    while done < len_bytes {
        let chunk = (len_bytes - done).min(COPY_CHUNK_BYTES);
        let buf = file.read_exact_at(position + done as u64, chunk).await?;
        let (result, _buf) = socket.write_all(buf).await;
        result?;
        done += chunk;
    }
    Ok(())
}
