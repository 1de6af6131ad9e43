//! Submitting raw io_uring operations whose buffers and file descriptors live in the op's
//! stored data, so the kernel never sees freed memory even if the awaiting future is dropped.

use std::io;
use std::marker::PhantomData;

use io_uring::{cqueue, squeue};
use tokio_uring::{OneshotOutputTransform, UnsubmittedOneshot};

/// Hands back the op's stored data beside the kernel's result (bytes moved, or an errno).
struct Completion<D>(PhantomData<D>);

impl<D> OneshotOutputTransform for Completion<D> {
    type Output = (io::Result<u32>, D);
    type StoredData = D;

    fn transform_oneshot_output(self, data: D, cqe: cqueue::Entry) -> Self::Output {
        let result = cqe.result();
        let outcome = if result >= 0 {
            Ok(result.unsigned_abs())
        } else {
            Err(io::Error::from_raw_os_error(-result))
        };
        (outcome, data)
    }
}

/// Submits `entry` and waits for its completion.
///
/// # Safety
/// Every pointer in `entry` must point into memory owned by `data` (heap memory that does not
/// move when `data` moves) or otherwise outlive the operation, and every file descriptor in it
/// must stay open while `data` is alive.
pub(super) async unsafe fn submit<D: Unpin + 'static>(
    data: D,
    entry: squeue::Entry,
) -> (io::Result<u32>, D) {
    super::stats::count_submission();
    UnsubmittedOneshot::new(data, Completion(PhantomData), entry)
        .submit()
        .await
}
