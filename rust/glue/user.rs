// SPDX-License-Identifier: GPL-2.0

//! Writes of one value into the memory of the current process
//! (`put_user()`, a macro, through `helpers.c`): one checked access where
//! a [`UserSlice`](kernel::uaccess::UserSlice) write is a chain of calls.
//! The megasas adapter writes a frame's status bytes and a reply entry
//! per command this way.
//!
//! The address is the owner's: callers run on the owner's worker or in its
//! own ioctl, as for every other access to its memory.  A bad address is
//! `EFAULT`, never a write elsewhere: `put_user()` checks that the address
//! is a user address and handles the fault.

use crate::bindings as sys;
use kernel::{error::to_result, ffi::c_ulong, prelude::*};

/// Writes the byte `v` at `uva`.
#[inline(always)]
pub(crate) fn put_u8(uva: usize, v: u8) -> Result {
    // SAFETY: put_user() checks that `uva` is a user address and handles a
    // fault, returning -EFAULT; it touches no kernel memory.
    to_result(unsafe { sys::tcm_virt_put_user_u8(uva as c_ulong, v) })
}

/// Writes `v` at `uva`, little-endian.
#[inline(always)]
pub(crate) fn put_le32(uva: usize, v: u32) -> Result {
    // SAFETY: put_user() checks that `uva` is a user address and handles a
    // fault, returning -EFAULT; it touches no kernel memory.
    to_result(unsafe { sys::tcm_virt_put_user_le32(uva as c_ulong, v) })
}

/// Writes `v` at `uva`, little-endian.
#[inline(always)]
pub(crate) fn put_le64(uva: usize, v: u64) -> Result {
    // SAFETY: put_user() checks that `uva` is a user address and handles a
    // fault, returning -EFAULT; it touches no kernel memory.
    to_result(unsafe { sys::tcm_virt_put_user_le64(uva as c_ulong, v) })
}
