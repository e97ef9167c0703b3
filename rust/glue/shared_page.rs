// SPDX-License-Identifier: GPL-2.0

//! Memory shared with a process by `mmap()`: zeroed `vmalloc_user` pages
//! the process maps and writes whenever it likes, so the kernel reads and
//! writes them with atomics only, at checked offsets.

use crate::bindings as sys;
use core::sync::atomic::{AtomicU32, AtomicU64};
use kernel::{ffi::c_ulong, mm::virt::VmaNew, prelude::*};

/// `SIZE` bytes of zeroed, user-mappable memory (a multiple of the page
/// size).
// INVARIANT: `ptr` points to `SIZE` bytes from `tcm_virt_regs_alloc`, page
// aligned, freed in `Drop` only.
pub(crate) struct SharedPage<const SIZE: usize> {
    ptr: *mut u8,
}

// SAFETY: the memory is only accessed with atomics, from any thread.
unsafe impl<const SIZE: usize> Send for SharedPage<SIZE> {}
// SAFETY: as for `Send`.
unsafe impl<const SIZE: usize> Sync for SharedPage<SIZE> {}

impl<const SIZE: usize> SharedPage<SIZE> {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: allocates zeroed, user-mappable memory.
        let ptr = unsafe { sys::tcm_virt_regs_alloc(SIZE as c_ulong) }.cast::<u8>();
        if ptr.is_null() {
            return Err(ENOMEM);
        }
        Ok(SharedPage { ptr })
    }

    /// The 32-bit word at byte `OFF` (checked at build time).
    pub(crate) fn u32_at<const OFF: usize>(&self) -> &AtomicU32 {
        let () = Fits::<OFF, 4, 1, SIZE>::OK;
        // SAFETY: `OFF + 4 <= SIZE` and `OFF` is 4-byte aligned (`Fits`) in
        // page aligned memory that lives as long as `self` (invariant); the
        // process writes it concurrently, so it is only accessed atomically.
        unsafe { AtomicU32::from_ptr(self.ptr.add(OFF).cast()) }
    }

    /// Entry `i % N` of the array of `N` 64-bit words at byte `BASE`
    /// (checked at build time).
    pub(crate) fn u64_array<const BASE: usize, const N: usize>(&self, i: usize) -> &AtomicU64 {
        let () = Fits::<BASE, 8, N, SIZE>::OK;
        let off = BASE + 8 * (i % N);
        // SAFETY: `BASE + 8 * N <= SIZE` and `BASE` is 8-byte aligned
        // (`Fits`), so entry `i % N` lies inside, 8-byte aligned, in memory
        // that lives as long as `self` (invariant); only atomic accesses.
        unsafe { AtomicU64::from_ptr(self.ptr.add(off).cast()) }
    }

    /// Maps the memory into `vma` (`mmap()`); the mapping takes its own
    /// reference on each page, so it may outlive `self`.
    pub(crate) fn mmap(&self, vma: &VmaNew) -> Result {
        // SAFETY: the vma is being set up; the memory is `SIZE` bytes of
        // vmalloc_user memory (invariant).
        let r = unsafe { sys::tcm_virt_regs_mmap(vma.as_ptr(), self.ptr.cast(), SIZE as c_ulong) };
        if r < 0 {
            return Err(Error::from_errno(r));
        }
        Ok(())
    }
}

/// `N` words of `W` bytes at byte `OFF` lie inside `SIZE` bytes, aligned:
/// evaluating `OK` fails the build otherwise.
struct Fits<const OFF: usize, const W: usize, const N: usize, const SIZE: usize>;

impl<const OFF: usize, const W: usize, const N: usize, const SIZE: usize> Fits<OFF, W, N, SIZE> {
    const OK: () = assert!(N > 0 && OFF % W == 0 && OFF + W * N <= SIZE);
}

impl<const SIZE: usize> Drop for SharedPage<SIZE> {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` (invariant), freed once; mappings hold
        // their own page references.
        unsafe { sys::tcm_virt_regs_free(self.ptr.cast()) };
    }
}
