//! The process's allocator: the system allocator, except that very large allocations only
//! reserve address space.
//!
//! Why: `kafka-protocol` decodes an array by first reserving capacity for the element count the
//! client claims. A 14-byte request claiming 2^31 elements asks for ~150 GB; the kernel refuses
//! such an "obvious overcommit", and Rust aborts the whole broker on a failed allocation. Mapping
//! allocations of [`RESERVE_ONLY_FROM_BYTES`] or more with `MAP_NORESERVE` makes them succeed
//! without committing memory: the decoder then fails at the first element the frame lacks, and
//! the reservation is unmapped. No legitimate allocation of the broker comes near this size
//! (requests are bounded by `socket.request.max.bytes`), and if one did, its pages would be
//! committed as they are touched, like any other mapping.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are served by a `MAP_NORESERVE` mapping.
pub const RESERVE_ONLY_FROM_BYTES: usize = 1 << 30;
/// Alignment every fresh mapping has (the page size is at least this).
const MAPPING_ALIGNMENT: usize = 4096;

pub struct ReserveLargeAllocations;

fn is_reserve_only(layout: Layout) -> bool {
    layout.size() >= RESERVE_ONLY_FROM_BYTES && layout.align() <= MAPPING_ALIGNMENT
}

// SAFETY: small allocations are the system allocator's; large ones are whole anonymous mappings,
// page aligned (so any alignment up to a page is met), zero-filled, and unmapped with the same
// size they were mapped with (the layout a caller passes to dealloc/realloc is the one it
// allocated with, so `is_reserve_only` routes both the same way).
unsafe impl GlobalAlloc for ReserveLargeAllocations {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_reserve_only(layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: an anonymous private mapping; no existing memory is touched.
        let mapped = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            mapped.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_reserve_only(layout) {
            // SAFETY: fresh anonymous mappings are zero-filled.
            unsafe { self.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_reserve_only(layout) {
            // SAFETY: `ptr` is a mapping of `layout.size()` bytes made by `alloc`.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_reserve_only(layout) && !is_reserve_only(new_layout) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Crossing the threshold (or staying above it): move to a new block.
        // SAFETY: `new_layout` is valid (see above).
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_reservation_succeeds_without_committing_memory_and_is_released() {
        let allocator = ReserveLargeAllocations;
        // 1 TiB: far beyond this machine's memory; only address space is reserved.
        let layout = Layout::from_size_align(1 << 40, 8).expect("layout");
        // SAFETY: a valid non-zero layout; the block is released with the same layout.
        unsafe {
            let block = allocator.alloc(layout);
            assert!(!block.is_null(), "a reserve-only allocation must succeed");
            block.write(7);
            assert_eq!(block.read(), 7, "touched pages are usable");
            allocator.dealloc(block, layout);
        }
    }

    #[test]
    fn growing_across_the_threshold_keeps_the_contents() {
        let allocator = ReserveLargeAllocations;
        let small = Layout::from_size_align(64, 8).expect("layout");
        // SAFETY: valid layouts; every block is released with the layout it has.
        unsafe {
            let block = allocator.alloc(small);
            assert!(!block.is_null());
            for index in 0..64 {
                block.add(index).write(index as u8);
            }
            let grown = allocator.realloc(block, small, RESERVE_ONLY_FROM_BYTES);
            assert!(!grown.is_null());
            assert!(
                (0..64).all(|index| grown.add(index).read() == index as u8),
                "contents survive the move"
            );
            let large = Layout::from_size_align(RESERVE_ONLY_FROM_BYTES, 8).expect("layout");
            let shrunk = allocator.realloc(grown, large, 32);
            assert!((0..32).all(|index| shrunk.add(index).read() == index as u8));
            allocator.dealloc(shrunk, Layout::from_size_align(32, 8).expect("layout"));
        }
    }
}
