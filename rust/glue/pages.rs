// SPDX-License-Identifier: GPL-2.0

//! Pinned user pages in scatterlists: the data buffers of a command, mapped
//! (never copied) for target core.  Shared by the front ends.

use super::vhost::{IovIter, OnWorker};
use crate::bindings as sys;
use core::{marker::PhantomData, ptr};
use kernel::{prelude::*, types::Opaque};

/// Scatterlist entries kept in each command; larger transfers chain more
/// from the kernel's sg pool.
pub(crate) const INLINE_SG: usize = 16;
/// Pages pinned per `iov_iter_get_pages2` call.
const PIN_BATCH: usize = 32;
const PAGE_SIZE: usize = 4096;
/// Pages one command may map (8 MiB in 4 KiB pages), the figure C
/// `vhost_scsi` advertises to target core (`max_data_sg_nents`); it sets
/// the Block Limits VPD maximum transfer length.
pub(crate) const MAX_PAGES: u32 = 2048;

/// `DMA_TO_DEVICE`, `DMA_FROM_DEVICE`, `DMA_NONE`.
pub(crate) const DMA_TO_DEVICE: i32 = 1;
pub(crate) const DMA_FROM_DEVICE: i32 = 2;
pub(crate) const DMA_NONE: i32 = 3;

/// A scatterlist with the pages it holds.
// INVARIANT: the first `nents` entries of the table hold the page
// references `map` took; the table is zeroed when `nents` is 0 and nothing
// is allocated.  The first chunk lives in its own allocation, so the table
// (which points into it) stays valid when the `Sgl` moves.
pub(crate) struct Sgl<const N: usize = INLINE_SG> {
    table: Opaque<sys::sg_table>,
    first: KBox<Opaque<[sys::scatterlist; N]>>,
    nents: u32,
}

/// Why data could not be mapped.
pub(crate) enum MapError {
    /// More pages than one command may carry.
    TooManyPages,
    /// A page could not be pinned (not in the memory table, not mapped).
    Fault,
    /// Out of memory for the scatterlist.
    NoMem,
}

impl<const N: usize> Sgl<N> {
    /// An unused scatterlist with room for `N` entries before it chains.
    pub(crate) fn new() -> Result<Self> {
        Ok(Sgl {
            table: Opaque::zeroed(),
            first: KBox::zeroed(GFP_KERNEL)?,
            nents: 0,
        })
    }

    /// Maps the bytes of `iter` into the scatterlist, pinning pages (on the
    /// owner's worker, `_w`, whose mm the iovecs' addresses belong to).  The
    /// scatterlist must be unused (after `new` or `release`).
    pub(crate) fn map(&mut self, iter: &mut IovIter<'_>, _w: &OnWorker) -> Result<(), MapError> {
        if self.nents != 0 {
            return Err(MapError::NoMem);
        }
        let iter = iter.raw();
        // SAFETY: `iter` is a valid iterator.
        let npages = unsafe { sys::iov_iter_npages(iter, MAX_PAGES as i32 + 1) };
        if npages <= 0 {
            return Err(MapError::Fault);
        }
        if npages as u32 > MAX_PAGES {
            return Err(MapError::TooManyPages);
        }
        // sg_alloc_table_chained uses the table's `sgl` as the first chunk.
        // SAFETY: the table is ours and unused (nents 0).
        unsafe { (*self.table.get()).sgl = self.first.get().cast() };
        // SAFETY: the table and first chunk are ours and unused (nents 0).
        let r = unsafe {
            sys::sg_alloc_table_chained(self.table.get(), npages, self.first.get().cast(), N as u32)
        };
        if r != 0 {
            return Err(MapError::NoMem);
        }
        // SAFETY: allocated just above.
        let mut sg = unsafe { (*self.table.get()).sgl };
        let mut mapped = 0u32;
        let mut pages = [ptr::null_mut::<sys::page>(); PIN_BATCH];
        // SAFETY: `iter` is valid.
        while unsafe { sys::tcm_virt_iov_iter_count(iter) } != 0 {
            let mut off = 0usize;
            // SAFETY: `pages` has room for PIN_BATCH pointers; the caller
            // runs on the device owner's worker (`_w`), so the iovecs' user
            // addresses are of the current mm.
            let got = unsafe {
                sys::iov_iter_get_pages2(
                    iter,
                    pages.as_mut_ptr(),
                    usize::MAX >> 1,
                    PIN_BATCH as u32,
                    &mut off,
                )
            };
            if got <= 0 {
                self.nents = mapped;
                // SAFETY: `mapped` entries hold page references.
                unsafe { self.release() };
                return Err(MapError::Fault);
            }
            let mut rem = got as usize;
            let mut i = 0;
            while rem > 0 {
                let n = (PAGE_SIZE - off).min(rem);
                if sg.is_null() {
                    // More pages than counted: the guest changed its
                    // memory under us.  Drop the extra references.
                    while i < PIN_BATCH && !pages[i].is_null() && rem > 0 {
                        // SAFETY: pinned by iov_iter_get_pages2 above.
                        unsafe { sys::tcm_virt_put_page(pages[i]) };
                        rem = rem.saturating_sub(PAGE_SIZE - off);
                        off = 0;
                        i += 1;
                    }
                    self.nents = mapped;
                    // SAFETY: `mapped` entries hold page references.
                    unsafe { self.release() };
                    return Err(MapError::Fault);
                }
                // SAFETY: `sg` is an entry of the table; the page is pinned.
                unsafe {
                    sys::tcm_virt_sg_set_page(sg, pages[i], n as u32, off as u32);
                    sg = sys::sg_next(sg);
                }
                mapped += 1;
                i += 1;
                rem -= n;
                off = 0;
            }
        }
        self.nents = mapped;
        Ok(())
    }

    fn sgl(&self) -> *mut sys::scatterlist {
        if self.nents == 0 {
            ptr::null_mut()
        } else {
            // SAFETY: allocated by `map`.
            unsafe { (*self.table.get()).sgl }
        }
    }

    /// Drops the page references and frees the chained scatterlist.
    ///
    /// # Safety
    ///
    /// The first `nents` entries must hold page references from `map`.
    pub(crate) unsafe fn release(&mut self) {
        if self.nents == 0 {
            // `map` may have allocated the table before failing early.
            // SAFETY: freeing an allocated or zeroed table is allowed; then
            // it is zeroed for the next command.
            unsafe {
                sys::sg_free_table_chained(self.table.get(), N as u32);
                ptr::write_bytes(self.table.get(), 0, 1);
            }
            return;
        }
        // SAFETY: allocated by `map`.
        let mut sg = unsafe { (*self.table.get()).sgl };
        for _ in 0..self.nents {
            if sg.is_null() {
                break;
            }
            // SAFETY: each mapped entry holds one page reference.
            unsafe {
                sys::tcm_virt_put_page(sys::tcm_virt_sg_page(sg));
                sg = sys::sg_next(sg);
            }
        }
        self.nents = 0;
        // SAFETY: allocated by `map`; zeroed for the next command.
        unsafe {
            sys::sg_free_table_chained(self.table.get(), N as u32);
            ptr::write_bytes(self.table.get(), 0, 1);
        }
    }
}

/// A mapped scatterlist as target core takes it, borrowed from its `Sgl`.
#[derive(Clone, Copy)]
pub(crate) struct SgView<'a> {
    /// The first entry (null when empty).
    pub(crate) sgl: *mut sys::scatterlist,
    pub(crate) nents: u32,
    _sgl: PhantomData<&'a ()>,
}

impl<const N: usize> Sgl<N> {
    /// The list and its entry count.
    pub(crate) fn view(&self) -> SgView<'_> {
        SgView {
            sgl: self.sgl(),
            nents: self.nents,
            _sgl: PhantomData,
        }
    }
}

impl<const N: usize> Drop for Sgl<N> {
    fn drop(&mut self) {
        // An `Sgl` handed to target core is kept, unreleased, until target
        // core released its command (the promise of the caller of
        // `CmdHead::submit()`), so no one else uses it now.
        // SAFETY: the first `nents` entries hold the references `map` took
        // (invariant), and nothing else uses the list (above).
        unsafe { self.release() };
    }
}
