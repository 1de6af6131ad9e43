//! [`SharedFile`]: a file shared between the log and in-flight reads, with io_uring operations.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use bytes::Bytes;
use io_uring::{opcode, types};

use super::iovec::{consume_written, iovecs_of};
use super::op::submit;

/// Upper bound of iovecs in one `writev` (Linux's IOV_MAX is 1024).
pub const WRITEV_IOVECS_MAX: usize = 1024;

#[cfg(any(test, feature = "simulation"))]
type SimHandle = super::sim::SimFile;

/// Without the simulation, no simulated file can exist: an uninhabited type whose methods the
/// compiler knows are never called, so the `if let Some(sim)` tests vanish from the real path.
#[cfg(not(any(test, feature = "simulation")))]
enum SimHandle {}

#[cfg(not(any(test, feature = "simulation")))]
impl SimHandle {
    fn write_at(&self, _: &[Bytes], _: u64) -> io::Result<()> {
        match *self {}
    }
    fn read_at(&self, _: &mut Vec<u8>, _: u64, _: usize) -> io::Result<usize> {
        match *self {}
    }
    fn sync_data(&self) -> io::Result<()> {
        match *self {}
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        match *self {}
    }
    fn len_bytes(&self) -> io::Result<u64> {
        match *self {}
    }
}

/// A file that can be shared across shards (`Send + Sync`). Each clone keeps the descriptor
/// open, so a segment deleted by retention stays readable by a fetch already transferring it.
///
/// In crash tests it may instead be a file on a simulated disk ([`super::sim`]); each
/// operation first asks [`Self::sim`]. Without `cfg(test)` or the `simulation` feature the
/// simulated handle's type is uninhabited and `sim()` is a constant `None`, so the test folds
/// away and the real path is exactly what it was; with it, each operation costs one predictable
/// branch. (A field beside the real `Arc<File>` rather than an enum of the two keeps the
/// io_uring paths, which move that `Arc` into their op data, unchanged; a simulated file holds
/// `/dev/null` there, never used.)
#[derive(Debug, Clone)]
pub struct SharedFile {
    file: Arc<File>,
    #[cfg(any(test, feature = "simulation"))]
    simulated: Option<Arc<super::sim::SimFile>>,
}

struct WriteVectored {
    _file: Arc<File>,
    bufs: Vec<Bytes>,
    /// Read only by the kernel, through the pointer in the submitted entry.
    _iovecs: Vec<libc::iovec>,
}

struct ReadInto {
    _file: Arc<File>,
    buf: Vec<u8>,
}

impl SharedFile {
    pub fn new(file: File) -> Self {
        SharedFile {
            file: Arc::new(file),
            #[cfg(any(test, feature = "simulation"))]
            simulated: None,
        }
    }

    /// A file on a simulated disk. Its descriptor is a placeholder (`/dev/null`): splicing or
    /// sending it to a socket is not supported (the simulation tests the log, not sockets).
    #[cfg(any(test, feature = "simulation"))]
    pub fn simulated(file: super::sim::SimFile) -> io::Result<Self> {
        Ok(SharedFile {
            file: Arc::new(File::open("/dev/null")?),
            simulated: Some(Arc::new(file)),
        })
    }

    /// The simulated file behind this handle, if it is one.
    #[inline(always)]
    fn sim(&self) -> Option<&SimHandle> {
        #[cfg(any(test, feature = "simulation"))]
        {
            self.simulated.as_deref()
        }
        #[cfg(not(any(test, feature = "simulation")))]
        {
            None
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        assert!(
            self.sim().is_none(),
            "a simulated file has no descriptor to splice or send"
        );
        self.file.as_raw_fd()
    }

    /// The std handle, for metadata operations that io_uring does not need to make async
    /// (length, truncation).
    pub fn std(&self) -> &File {
        assert!(self.sim().is_none(), "a simulated file has no std handle");
        &self.file
    }

    /// Writes all of `bufs`, in order, starting at byte `position`; short writes are resumed.
    /// Callers keep `bufs.len()` at most [`WRITEV_IOVECS_MAX`].
    pub async fn write_all_vectored_at(
        &self,
        mut bufs: Vec<Bytes>,
        mut position: u64,
    ) -> io::Result<()> {
        assert!(
            bufs.len() <= WRITEV_IOVECS_MAX,
            "writev of {} buffers",
            bufs.len()
        );
        if let Some(sim) = self.sim() {
            return sim.write_at(&bufs, position);
        }
        bufs.retain(|buf| !buf.is_empty());
        while !bufs.is_empty() {
            let iovecs = iovecs_of(&bufs);
            let iovec_count = u32::try_from(iovecs.len()).unwrap_or(u32::MAX);
            let entry = opcode::Writev::new(types::Fd(self.raw_fd()), iovecs.as_ptr(), iovec_count)
                .offset(position)
                .build();
            // The buffers move into the op and come back with its result: no refcount traffic.
            let data = WriteVectored {
                _file: self.file.clone(),
                bufs,
                _iovecs: iovecs,
            };
            // SAFETY: the iovecs point into the buffers held by `data` (refcounted heap memory
            // that does not move), the iovec array is `data.iovecs`' heap buffer, and `data`
            // holds the file open.
            let (result, data) = unsafe { submit(data, entry) }.await;
            bufs = data.bufs;
            let written = result? as usize;
            if written == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "writev wrote nothing",
                ));
            }
            position += written as u64;
            consume_written(&mut bufs, written);
        }
        Ok(())
    }

    /// Like [`Self::write_all_vectored_at`], but with `pwritev(2)` on the calling thread instead
    /// of through io_uring. A buffered write into the page cache rarely blocks, and ext4 cannot
    /// do it without blocking, so io_uring hands every such write to one of its worker threads;
    /// writing inline saves that hand-off (and the wake-ups that come with it).
    pub fn write_all_vectored_at_inline(
        &self,
        bufs: &[Bytes],
        mut position: u64,
    ) -> io::Result<()> {
        if let Some(sim) = self.sim() {
            return sim.write_at(bufs, position);
        }
        let mut iovecs = iovecs_of(bufs);
        iovecs.retain(|iovec| iovec.iov_len > 0);
        let mut first = 0usize;
        while first < iovecs.len() {
            let pending = &iovecs[first..first + (iovecs.len() - first).min(WRITEV_IOVECS_MAX)];
            let offset = libc::off_t::try_from(position).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "file position too large")
            })?;
            // SAFETY: every iovec points into a buffer of `bufs`, borrowed for this call.
            let written = unsafe {
                libc::pwritev(
                    self.raw_fd(),
                    pending.as_ptr(),
                    i32::try_from(pending.len()).unwrap_or(i32::MAX),
                    offset,
                )
            };
            if written < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            if written == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "pwritev wrote nothing",
                ));
            }
            let mut remaining = written as usize;
            position += remaining as u64;
            while remaining > 0 && first < iovecs.len() {
                let iovec = &mut iovecs[first];
                if iovec.iov_len <= remaining {
                    remaining -= iovec.iov_len;
                    first += 1;
                } else {
                    // SAFETY: advancing within the same buffer, by less than its length.
                    iovec.iov_base = unsafe { iovec.iov_base.cast::<u8>().add(remaining) }.cast();
                    iovec.iov_len -= remaining;
                    remaining = 0;
                }
            }
        }
        Ok(())
    }

    /// Reads up to `len_bytes` at `position`, appending to `buf`; returns how many were read
    /// (0 at end of file).
    pub async fn read_at(
        &self,
        mut buf: Vec<u8>,
        position: u64,
        len_bytes: usize,
    ) -> (io::Result<usize>, Vec<u8>) {
        if let Some(sim) = self.sim() {
            let result = sim.read_at(&mut buf, position, len_bytes);
            return (result, buf);
        }
        buf.reserve(len_bytes);
        let start = buf.len();
        // SAFETY: reserve guarantees `len_bytes` of spare capacity after `start`.
        let ptr = unsafe { buf.as_mut_ptr().add(start) };
        let len = u32::try_from(len_bytes).unwrap_or(u32::MAX);
        let entry = opcode::Read::new(types::Fd(self.raw_fd()), ptr, len)
            .offset(position)
            .build();
        let data = ReadInto {
            _file: self.file.clone(),
            buf,
        };
        // SAFETY: the pointer is into `data.buf`'s heap capacity, which moving `data` keeps.
        let (result, mut data) = unsafe { submit(data, entry) }.await;
        match result {
            Ok(read) => {
                let read = read as usize;
                assert!(read <= len_bytes, "kernel read more than asked");
                // SAFETY: the kernel initialised `read` bytes after `start`.
                unsafe { data.buf.set_len(start + read) };
                (Ok(read), data.buf)
            }
            Err(error) => (Err(error), data.buf),
        }
    }

    /// Reads exactly `len_bytes` at `position` (fails with `UnexpectedEof` if the file is shorter).
    pub async fn read_exact_at(&self, position: u64, len_bytes: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(len_bytes);
        while buf.len() < len_bytes {
            let at = position + buf.len() as u64;
            let want = len_bytes - buf.len();
            let (result, returned) = self.read_at(buf, at, want).await;
            buf = returned;
            if result? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than the range read",
                ));
            }
        }
        Ok(buf)
    }

    /// `fdatasync(2)` through io_uring.
    pub async fn sync_data(&self) -> io::Result<()> {
        if let Some(sim) = self.sim() {
            return sim.sync_data();
        }
        let entry = opcode::Fsync::new(types::Fd(self.raw_fd()))
            .flags(types::FsyncFlags::DATASYNC)
            .build();
        super::stats::count_fsync();
        // SAFETY: no pointers; `data` holds the file open.
        let (result, _file) = unsafe { submit(self.file.clone(), entry) }.await;
        result.map(|_| ())
    }

    /// Truncates or extends the file to `len_bytes` (a rare metadata operation, done inline).
    pub fn set_len(&self, len_bytes: u64) -> io::Result<()> {
        if let Some(sim) = self.sim() {
            return sim.set_len(len_bytes);
        }
        self.file.set_len(len_bytes)
    }

    /// Current length of the file.
    pub fn len_bytes(&self) -> io::Result<u64> {
        if let Some(sim) = self.sim() {
            return sim.len_bytes();
        }
        Ok(self.file.metadata()?.len())
    }
}
