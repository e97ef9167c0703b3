// SPDX-License-Identifier: GPL-2.0

//! Pinned user pages in scatterlists: the data buffers of a command, mapped
//! (never copied) for target core.  Shared by the front ends.

use super::vhost::{IovIter, OnWorker};
use crate::bindings as sys;
use core::{marker::PhantomData, mem::MaybeUninit, ptr};
use kernel::{prelude::*, types::Opaque};

/// Scatterlist entries kept in each command; larger transfers chain more
/// chunks (`CHUNK` entries each), allocated the first time a command slot
/// needs them and kept for its later commands.
pub(crate) const INLINE_SG: usize = 16;
/// Entries of each chained chunk: one page of scatterlist entries, as the
/// kernel's sg pool (`SG_CHUNK_SIZE`).
const CHUNK: usize = 128;
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

/// The low bits of an entry's `page_link` (`include/linux/scatterlist.h`):
/// a link to the next chunk, and the last entry of the list.
const SG_CHAIN: usize = sys::SG_CHAIN as usize;
const SG_END: usize = sys::SG_END as usize;
const SG_LINK_MASK: usize = SG_CHAIN | SG_END;

type Chunk = Opaque<[sys::scatterlist; CHUNK]>;

/// A scatterlist with the pages it holds.
///
/// The entries are written here as `sg_set_page()`, `sg_chain()` and
/// `sg_mark_end()` write them (no call per page): the first `N`-entry chunk
/// is part of the command, and a list of more than `N` pages uses the last
/// entry of each full chunk as the link to the next one.
// INVARIANT: when `nents` is non-zero, the list starting at `first` has
// `nents` page entries, the last marked as the end, each holding a page
// reference `map` took, and every link entry before the end points into
// `more`.  The chunks are separate allocations, so the list stays valid
// when the `Sgl` moves.
pub(crate) struct Sgl<const N: usize = INLINE_SG> {
    first: KBox<Opaque<[sys::scatterlist; N]>>,
    /// The chunks chained after `first`, as many as the largest list this
    /// command slot has mapped: a slot allocates only when it first maps
    /// a larger transfer (at most 17 chunks, 68 KiB, for `MAX_PAGES`).
    more: KVec<KBox<Chunk>>,
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

/// Chunks chained after a first chunk of `n` entries to hold `total`
/// entries (`n >= 2`).
const fn chunks_for(n: usize, total: usize) -> usize {
    if total <= n {
        return 0;
    }
    // The first chunk holds n - 1 entries and a link; every chunk but the
    // last CHUNK - 1 and a link; the last up to CHUNK.
    let rest = total - (n - 1);
    (rest - 1).div_ceil(CHUNK - 1)
}

/// Writes the entries of a list of `total` page entries in order, with the
/// links between chunks.
struct Cursor<'a, const N: usize> {
    first: *mut sys::scatterlist,
    more: &'a [KBox<Chunk>],
    /// Chunk being filled (0: `first`, then `more[chunk - 1]`) and next
    /// entry in it.
    chunk: usize,
    at: usize,
    /// Entries still to be handed out.
    left: usize,
}

impl<'a, const N: usize> Cursor<'a, N> {
    fn new(first: *mut sys::scatterlist, more: &'a [KBox<Chunk>], total: usize) -> Self {
        Cursor {
            first,
            more,
            chunk: 0,
            at: 0,
            left: total,
        }
    }

    fn base(&self, chunk: usize) -> Option<*mut sys::scatterlist> {
        match chunk {
            0 => Some(self.first),
            c => self.more.get(c - 1).map(|b| b.get().cast()),
        }
    }

    /// The next page entry, linking the chunk being filled to the next one
    /// when only its last entry is left and more than one entry is wanted;
    /// `None` once `total` entries were handed out.
    fn next(&mut self) -> Option<*mut sys::scatterlist> {
        if self.left == 0 {
            return None;
        }
        let cap = if self.chunk == 0 { N } else { CHUNK };
        let mut base = self.base(self.chunk)?;
        if self.at == cap - 1 && self.left > 1 {
            let next = self.base(self.chunk + 1)?;
            // SAFETY: `at < cap` is inside the chunk at `base`, which the
            // caller of `map` owns; `next` is the next chunk (`sg_chain()`).
            unsafe {
                let link = base.add(self.at);
                (*link).offset = 0;
                (*link).length = 0;
                (*link).page_link = (next as usize | SG_CHAIN) & !SG_END;
            }
            self.chunk += 1;
            self.at = 0;
            base = next;
        }
        // SAFETY: `at < cap` (the last entry of a chunk is handed out only
        // when it is the list's last, after which `left` is 0).
        let sg = unsafe { base.add(self.at) };
        self.at += 1;
        self.left -= 1;
        Some(sg)
    }
}

/// `sg_set_page()` on a fresh entry: the page, length and offset, no flags.
///
/// # Safety
///
/// `sg` must point to an entry the caller owns.
unsafe fn set_page(sg: *mut sys::scatterlist, page: *mut sys::page, len: u32, off: u32) {
    // SAFETY: `sg` is the caller's (contract); the entry is rewritten whole:
    // zeroed (no DMA address, no flags), then the page (at least 4-byte
    // aligned, so its low bits are free for the flags), length and offset.
    unsafe {
        ptr::write_bytes(sg, 0, 1);
        (*sg).page_link = page as usize & !SG_LINK_MASK;
        (*sg).offset = off;
        (*sg).length = len;
    }
}

impl<const N: usize> Sgl<N> {
    /// The first chunk must hold a page entry and a link.
    const FIRST_OK: () = assert!(N >= 2);

    /// An unused scatterlist with room for `N` entries before it chains.
    pub(crate) fn new() -> Result<Self> {
        let () = Self::FIRST_OK;
        Ok(Sgl {
            first: KBox::zeroed(GFP_KERNEL)?,
            more: KVec::new(),
            nents: 0,
        })
    }

    /// Makes sure the chunks for `total` entries exist: allocates only when
    /// this slot maps more than it ever did.
    fn reserve(&mut self, total: usize) -> Result<(), MapError> {
        let need = chunks_for(N, total);
        while self.more.len() < need {
            let c = KBox::<Chunk>::new_uninit(GFP_KERNEL).map_err(|_| MapError::NoMem)?;
            // SAFETY: an `Opaque` may hold uninitialised bytes; `map` writes
            // each entry before the list is used.
            let c = unsafe { c.assume_init() };
            self.more.push(c, GFP_KERNEL).map_err(|_| MapError::NoMem)?;
        }
        Ok(())
    }

    /// Maps the bytes of `iter` into the scatterlist, pinning pages (on the
    /// owner's worker, `_w`, whose mm the iovecs' addresses belong to).  The
    /// scatterlist must be unused (after `new` or `release`).
    pub(crate) fn map(&mut self, iter: &mut IovIter<'_>, _w: &OnWorker) -> Result<(), MapError> {
        if self.nents != 0 {
            return Err(MapError::NoMem);
        }
        // The bytes left: iov_iter_get_pages2 advances the iterator by what
        // it returns, so one count serves the whole loop.
        let mut left = iter.count();
        let iter = iter.raw();
        // SAFETY: `iter` is a valid iterator.
        let npages = unsafe { sys::iov_iter_npages(iter, MAX_PAGES as i32 + 1) };
        if npages <= 0 {
            return Err(MapError::Fault);
        }
        if npages as u32 > MAX_PAGES {
            return Err(MapError::TooManyPages);
        }
        let npages = npages as usize;
        self.reserve(npages)?;
        let mut cur = Cursor::<N>::new(self.first.get().cast(), &self.more, npages);
        let mut last: *mut sys::scatterlist = ptr::null_mut();
        let mut mapped = 0u32;
        // Written by iov_iter_get_pages2 before it is read: not zeroed
        // (a 256-byte memset per command otherwise).
        let mut pages = [const { MaybeUninit::<*mut sys::page>::uninit() }; PIN_BATCH];
        // The entries mapped so far end the list, so that `release` (on
        // failure, or later) finds exactly them.
        let end_at = |last: *mut sys::scatterlist| {
            if !last.is_null() {
                // SAFETY: `last` is the latest entry the cursor handed out
                // (`sg_mark_end()`).
                unsafe { (*last).page_link = ((*last).page_link | SG_END) & !SG_CHAIN };
            }
        };
        while left != 0 {
            let mut off = 0usize;
            // SAFETY: `pages` has room for PIN_BATCH pointers; the caller
            // runs on the device owner's worker (`_w`), so the iovecs' user
            // addresses are of the current mm.
            let got = unsafe {
                sys::iov_iter_get_pages2(
                    iter,
                    pages.as_mut_ptr().cast(),
                    usize::MAX >> 1,
                    PIN_BATCH as u32,
                    &mut off,
                )
            };
            if got <= 0 {
                end_at(last);
                self.nents = mapped;
                // SAFETY: the list holds `mapped` entries with references.
                unsafe { self.release() };
                return Err(MapError::Fault);
            }
            // `got` bytes from `off` into the first page: the pages written
            // (at most PIN_BATCH, the call's limit).
            let mut rem = got as usize;
            left = left.saturating_sub(rem);
            let npg = off.saturating_add(rem).div_ceil(PAGE_SIZE).min(PIN_BATCH);
            for (i, p) in pages.iter().take(npg).enumerate() {
                // SAFETY: iov_iter_get_pages2 wrote the first `npg` entries,
                // each a pinned page.
                let page = unsafe { p.assume_init() };
                let Some(sg) = cur.next() else {
                    // More pages than counted: the guest changed its
                    // memory under us.  Drop this and the later references.
                    for q in pages.iter().take(npg).skip(i) {
                        // SAFETY: pinned by iov_iter_get_pages2 above.
                        unsafe { sys::tcm_virt_put_page(q.assume_init()) };
                    }
                    end_at(last);
                    self.nents = mapped;
                    // SAFETY: the list holds `mapped` entries with references.
                    unsafe { self.release() };
                    return Err(MapError::Fault);
                };
                let n = PAGE_SIZE.saturating_sub(off).min(rem);
                // SAFETY: `sg` is an entry of our chunks; the page is pinned.
                unsafe { set_page(sg, page, n as u32, off as u32) };
                last = sg;
                mapped += 1;
                rem -= n;
                off = 0;
            }
        }
        end_at(last);
        self.nents = mapped;
        Ok(())
    }

    fn sgl(&self) -> *mut sys::scatterlist {
        if self.nents == 0 {
            ptr::null_mut()
        } else {
            self.first.get().cast()
        }
    }

    /// Drops the page references; the chunks stay for the next command.
    ///
    /// # Safety
    ///
    /// The list's `nents` entries must hold page references from `map`, and
    /// target core must not use it.
    #[inline]
    pub(crate) unsafe fn release(&mut self) {
        let mut sg = self.sgl();
        for _ in 0..self.nents {
            // SAFETY: `sg` is an entry of the list (invariant): a page entry,
            // or a link, which `sg_next()` follows, to the next chunk's
            // first entry, a page entry.
            let link = unsafe {
                let mut l = (*sg).page_link;
                if l & SG_CHAIN != 0 {
                    sg = (l & !SG_LINK_MASK) as *mut sys::scatterlist;
                    l = (*sg).page_link;
                }
                l
            };
            // SAFETY: each page entry holds one page reference.
            unsafe { sys::tcm_virt_put_page((link & !SG_LINK_MASK) as *mut sys::page) };
            if link & SG_END != 0 {
                break;
            }
            // SAFETY: not the last entry, so the next one (an entry or a
            // link) is in the same chunk.
            sg = unsafe { sg.add(1) };
        }
        self.nents = 0;
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
