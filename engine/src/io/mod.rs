//! The engine's I/O layer: the only module that names `tokio_uring` or `io_uring`.
//!
//! Every file-system call of the log goes through [`Fs`], and reads, writes and syncs of open
//! files through [`SharedFile`]: both are the real thing, or (in crash tests only, with
//! `cfg(test)` or the `simulation` feature) a simulated disk that can lose power ([`sim`]).
//!
//! Files are plain `std::fs::File`s shared through [`SharedFile`] (an `Arc`), and every
//! operation on them is a raw io_uring op that keeps the `Arc` (and its buffers) alive until the
//! kernel completes it — also when the awaiting future is dropped. Because the handle is `Send`,
//! a file range can be handed to another shard and transferred to a socket there.

mod file;
mod fs;
mod iovec;
mod op;
#[cfg(any(test, feature = "simulation"))]
pub mod sim;
mod socket;
mod splice;
mod stats;

pub use file::{SharedFile, WRITEV_IOVECS_MAX};
pub use fs::{Fs, OpenMode};
pub use socket::write_all_vectored;
pub use splice::{copy_to_socket, splice_to_socket, Pipe};
pub use stats::{shard_io_stats, IoStats};

use std::future::Future;

/// A TCP listener served by the current shard's io_uring.
pub type TcpListener = tokio_uring::net::TcpListener;
/// A TCP stream served by the current shard's io_uring.
pub type TcpStream = tokio_uring::net::TcpStream;
/// A window of a buffer used as the target of a socket read (e.g. a read buffer's spare
/// capacity); `into_inner` gives the buffer back.
pub type BufSlice<T> = tokio_uring::buf::Slice<T>;

/// The `range` of `buffer`'s capacity as a read target: the kernel fills it and the buffer's
/// length grows to cover what was read.
pub fn buf_slice<T: tokio_uring::buf::BoundedBuf<Buf = T>>(
    buffer: T,
    range: std::ops::Range<usize>,
) -> BufSlice<T> {
    buffer.slice(range)
}

/// Buffer results of io_uring socket operations: the buffer comes back with the result.
pub type BufResult<T, B> = tokio_uring::BufResult<T, B>;

/// Runs `future` to completion on a new io_uring runtime on this thread (a tokio current-thread
/// runtime with a `LocalSet`, so tokio timers and channels work beside io_uring ops).
pub fn start_runtime<F: Future>(ring_entries: u32, future: F) -> F::Output {
    tokio_uring::builder().entries(ring_entries).start(future)
}

/// Spawns a task on the current shard's runtime. Tasks never leave the shard that spawned them.
pub fn spawn_local<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + 'static,
{
    tokio_uring::spawn(future)
}
