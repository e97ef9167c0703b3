// SPDX-License-Identifier: GPL-2.0

//! configfs attributes of the fabric: building `struct configfs_attribute`
//! tables and moving text between configfs pages and Rust.

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
struct PageWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
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

/// Writes `args` to the page a `show` callback received; returns its length.
///
/// # Safety
///
/// `page` must be the `PAGE_SIZE` buffer configfs passed to a `show` callback.
pub(crate) unsafe fn emit(page: *mut c_char, args: fmt::Arguments<'_>) -> isize {
    // SAFETY: configfs hands `show` a writable buffer of PAGE_SIZE bytes; one
    // byte is kept for the NUL configfs does not need but sysfs_emit leaves.
    let buf = unsafe { core::slice::from_raw_parts_mut(page.cast::<u8>(), PAGE_SIZE - 1) };
    let mut w = PageWriter { buf, len: 0 };
    let _ = fmt::write(&mut w, args);
    // The length is below PAGE_SIZE.
    w.len as isize
}

/// The bytes a `store` callback received.
///
/// # Safety
///
/// `page` and `count` must be those configfs passed to a `store` callback,
/// and the returned slice must not outlive the callback.
pub(crate) unsafe fn input<'a>(page: *const c_char, count: usize) -> &'a [u8] {
    // SAFETY: configfs passes `count` readable bytes at `page` (count < PAGE_SIZE).
    unsafe { core::slice::from_raw_parts(page.cast::<u8>(), count) }
}

/// Store result: the byte count on success, a negative errno otherwise.
pub(crate) fn store_result(r: Result, count: usize) -> isize {
    match r {
        // count < PAGE_SIZE, so it fits.
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `show` result of an error.
pub(crate) fn show_error(e: Error) -> isize {
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
