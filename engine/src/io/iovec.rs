//! The iovec bookkeeping every gathered write shares (files and sockets): building the array
//! the kernel reads, and dropping what a short write already sent.

use bytes::{Buf, Bytes};

/// The iovecs of `bufs`, in order. They point into `bufs`: keep those alive (and unmoved in
/// memory: `Bytes` data never moves) until the kernel is done with the array.
pub(super) fn iovecs_of(bufs: &[Bytes]) -> Vec<libc::iovec> {
    bufs.iter()
        .map(|buf| libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        })
        .collect()
}

/// Drops the first `written` bytes of `bufs`: the buffers sent whole go (in one pass), the one
/// sent in part is trimmed.
pub(super) fn consume_written(bufs: &mut Vec<Bytes>, written: usize) {
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
}
