// SPDX-License-Identifier: GPL-2.0

//! Small writes into the memory of the current process (`put_user()` and
//! `unsafe_put_user()`, macros, through `helpers.c`): one checked access
//! where a [`UserSlice`](kernel::uaccess::UserSlice) write is a chain of
//! calls.  The megasas adapter writes a frame's status bytes (three bytes
//! in one user-access scope), a reply entry and its producer index this
//! way.
//!
//! The address is the owner's: callers run on the owner's worker or in its
//! own ioctl, as for every other access to its memory.  A bad address is
//! `EFAULT`, never a write elsewhere: the helpers check that the addresses
//! are user addresses and handle the fault.

use crate::bindings as sys;
use kernel::{error::to_result, ffi::c_ulong, prelude::*};

/// Writes the three status bytes of an MFI frame header, `uva` being the
/// address of its `sense_len` byte: `sense_len`, then `scsi_status` at
/// `uva + 2`, a write barrier, and `cmd_status` at `uva + 1` last (polling
/// initiators wait for it).  One user-access scope for the three.
#[inline(always)]
pub(crate) fn put_mfi_status(uva: usize, sense_len: u8, scsi_status: u8, cmd_status: u8) -> Result {
    // SAFETY: the helper refuses or faults an address that is not a user
    // address and handles a fault, returning -EFAULT; it touches no kernel
    // memory.
    to_result(unsafe {
        sys::tcm_virt_put_mfi_status(uva as c_ulong, sense_len, scsi_status, cmd_status)
    })
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
