// SPDX-License-Identifier: GPL-2.0

//! configfs attributes of the fabric: building `struct configfs_attribute`
//! tables, moving text between configfs pages and Rust, and the `show` and
//! `store` callbacks of the TPGs' attributes ([`TpgAttr`]).

use super::target::SeTpg;
use crate::bindings as sys;
use core::fmt;
use kernel::{ffi::c_char, page::PAGE_SIZE, prelude::*};

/// `show` callback of a configfs attribute.
pub(crate) type ShowFn = unsafe extern "C" fn(*mut sys::config_item, *mut c_char) -> isize;
/// `store` callback of a configfs attribute.
pub(crate) type StoreFn =
    unsafe extern "C" fn(*mut sys::config_item, *const c_char, usize) -> isize;

/// A configfs attribute, as `CONFIGFS_ATTR`/`CONFIGFS_ATTR_RO` would declare it.
pub(crate) fn attribute(
    name: &'static CStr,
    module: &'static ThisModule,
    show: ShowFn,
    store: Option<StoreFn>,
) -> sys::configfs_attribute {
    sys::configfs_attribute {
        ca_name: name.as_char_ptr(),
        ca_owner: module.as_ptr(),
        ca_mode: if store.is_some() { 0o644 } else { 0o444 },
        show: Some(show),
        store,
    }
}

/// NULL-terminated pointer array over `attrs`, the form target core takes.
///
/// The array points into `attrs`, which must therefore stay where it is for
/// as long as the array is used.
pub(crate) fn table<const N: usize, const M: usize>(
    attrs: &mut [sys::configfs_attribute; N],
) -> [*mut sys::configfs_attribute; M] {
    const { assert!(M == N + 1) };
    let mut t = [core::ptr::null_mut(); M];
    for (slot, a) in t.iter_mut().zip(attrs.iter_mut()) {
        *slot = a;
    }
    t
}

/// Formats into a configfs page (one page, truncated like `sysfs_emit`).
pub(crate) struct PageWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl PageWriter<'_> {
    /// The writer of the page configfs passed to a `show` callback.
    ///
    /// # Safety
    ///
    /// `page` must be that page, and the writer must not outlive the
    /// callback.
    unsafe fn of_show<'a>(page: *mut c_char) -> PageWriter<'a> {
        // SAFETY: configfs hands `show` a writable buffer of PAGE_SIZE bytes,
        // ours for the callback (the caller's contract); one byte is kept for
        // the NUL configfs does not need but sysfs_emit leaves.
        let buf = unsafe { core::slice::from_raw_parts_mut(page.cast::<u8>(), PAGE_SIZE - 1) };
        PageWriter { buf, len: 0 }
    }

    /// What `show` returns: the length written, or the error.
    fn result(&self, r: Result) -> isize {
        match r {
            // The length is below PAGE_SIZE.
            Ok(()) => self.len as isize,
            Err(e) => show_error(e),
        }
    }

    /// Appends `args`, truncated at the end of the page.
    pub(crate) fn emit(&mut self, args: fmt::Arguments<'_>) {
        let _ = fmt::write(self, args);
    }
}

impl fmt::Write for PageWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Store result: the byte count on success, a negative errno otherwise.
fn store_result(r: Result, count: usize) -> isize {
    match r {
        // count < PAGE_SIZE, so it fits.
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `show` result of an error.
fn show_error(e: Error) -> isize {
    e.to_errno() as isize
}

/// A byte string as text for the log or a page (lossy: bytes are ASCII here).
pub(crate) struct Text<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

impl kernel::fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The configfs group of a TPG an attribute is in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TpgGroup {
    /// `tpgt_N/` itself (`tfc_tpg_base_attrs`).
    Base,
    /// `tpgt_N/attrib/` (`tfc_tpg_attrib_attrs`).
    Attrib,
}

/// A configfs attribute of the fabric's TPGs: its name, its group, and
/// what reading and writing it do, as safe functions of the TPG.
pub(crate) trait TpgAttr {
    /// The fabric's TPG type.
    type Tpg: SeTpg;
    const NAME: &'static CStr;
    const GROUP: TpgGroup;
    /// Whether `store` is offered (mode 0644, else 0444).
    const WRITABLE: bool;

    /// Writes the attribute's text.
    fn show(tpg: &Self::Tpg, out: &mut PageWriter<'_>) -> Result;

    /// Takes a write of `input` (what the user wrote, newline included).
    fn store(_tpg: &Self::Tpg, _input: &[u8]) -> Result {
        Err(EPERM)
    }
}

/// The `configfs_attribute` of `A`.
///
/// # Safety
///
/// The result must be placed only in the attribute table of `A::GROUP`
/// given to target core for the TPGs of type `A::Tpg`.
pub(super) unsafe fn tpg_attribute<A: TpgAttr>(
    module: &'static ThisModule,
) -> sys::configfs_attribute {
    attribute(
        A::NAME,
        module,
        tpg_show::<A>,
        A::WRITABLE.then_some(tpg_store::<A> as StoreFn),
    )
}

/// The TPG whose `A::GROUP` item `item` is.
///
/// # Safety
///
/// `item` must be the item configfs passed to a callback of `A`, which is
/// in `A::GROUP`'s table (the contract of [`tpg_attribute`]).
unsafe fn tpg_of<'a, A: TpgAttr>(item: *mut sys::config_item) -> &'a A::Tpg {
    // Configfs holds the item while it runs an attribute's callback, and
    // target core drops the TPG only after its attributes are gone.
    // SAFETY: `item` is the group item of a live TPG of type `A::Tpg` (the caller's contract).
    unsafe {
        A::Tpg::from_se_tpg(match A::GROUP {
            TpgGroup::Base => sys::tcm_virt_to_tpg(item),
            TpgGroup::Attrib => sys::tcm_virt_attrib_to_tpg(item),
        })
    }
}

/// `show` of `A`.
///
/// # Safety
///
/// Called by configfs with an item of `A::GROUP` and its page.
unsafe extern "C" fn tpg_show<A: TpgAttr>(item: *mut sys::config_item, page: *mut c_char) -> isize {
    // SAFETY: configfs calls `show` of `A` with an item of `A::GROUP`.
    let tpg = unsafe { tpg_of::<A>(item) };
    // SAFETY: configfs passed `page` to this `show` callback.
    let mut w = unsafe { PageWriter::of_show(page) };
    let r = A::show(tpg, &mut w);
    w.result(r)
}

/// A read-only configfs attribute of the fabric's own directory
/// (`<fabric>/`, target core's `tfc_wwn_attrs`).
pub(crate) trait WwnAttr {
    const NAME: &'static CStr;

    /// Writes the attribute's text.
    fn show(out: &mut PageWriter<'_>) -> Result;
}

/// The `configfs_attribute` of `A`.
pub(super) fn wwn_attribute<A: WwnAttr>(module: &'static ThisModule) -> sys::configfs_attribute {
    attribute(A::NAME, module, wwn_show::<A>, None)
}

/// `show` of `A`.
///
/// # Safety
///
/// Called by configfs with its page.
unsafe extern "C" fn wwn_show<A: WwnAttr>(
    _item: *mut sys::config_item,
    page: *mut c_char,
) -> isize {
    // SAFETY: configfs passed `page` to this `show` callback.
    let mut w = unsafe { PageWriter::of_show(page) };
    let r = A::show(&mut w);
    w.result(r)
}

/// `store` of `A`.
///
/// # Safety
///
/// Called by configfs with an item of `A::GROUP` and the bytes written.
unsafe extern "C" fn tpg_store<A: TpgAttr>(
    item: *mut sys::config_item,
    page: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: configfs calls `store` of `A` with an item of `A::GROUP`.
    let tpg = unsafe { tpg_of::<A>(item) };
    // SAFETY: configfs passes `count` readable bytes at `page` (count < PAGE_SIZE).
    let input = unsafe { core::slice::from_raw_parts(page.cast::<u8>(), count) };
    store_result(A::store(tpg, input), count)
}
