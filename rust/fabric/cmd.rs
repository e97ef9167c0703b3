// SPDX-License-Identifier: GPL-2.0

//! Command callbacks of the fabric.
//!
//! Every command a front end submits carries `TARGET_SCF_ACK_KREF`: target
//! core holds one reference and the front end's acknowledgement the other.
//! Data is mapped before submission, so a write executes at once; status
//! and data-in are acknowledged by freeing the command, and the response is
//! written when target core releases it (`release_cmd`), by the front end
//! that owns it.

use crate::{bindings as sys, nexus};
use kernel::{ffi::c_int, types::Opaque};

/// The front end a SCSI command belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Front {
    Vhost = 1,
    Megasas = 2,
}

impl Front {
    /// A distinct index per kind, from 0.
    pub(crate) const fn index(self) -> usize {
        self as usize - 1
    }
}

/// A front end's `release_cmd`: target core let go of the command, whose
/// answer the front end now writes on its worker.
///
/// # Safety
///
/// Called once per submission, by target core's `release_cmd`, with a
/// command of the front end that set the function in its [`CmdHead`].
pub(crate) type ReleaseFn = unsafe fn(*mut sys::se_cmd);

/// The first field of every front end's command: the `se_cmd` target core
/// hands back, and the release of the front end that owns it (so that the
/// fabric calls the front ends without depending on them).
#[repr(C)]
pub(crate) struct CmdHead {
    pub(crate) se_cmd: Opaque<sys::se_cmd>,
    release: ReleaseFn,
}

impl CmdHead {
    pub(crate) fn new(release: ReleaseFn) -> CmdHead {
        CmdHead {
            se_cmd: Opaque::zeroed(),
            release,
        }
    }
}

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn check_stop_free(cmd: *mut sys::se_cmd) -> c_int {
    // SAFETY: `cmd` is live; this drops the submission reference.
    unsafe { sys::target_put_sess_cmd(cmd) }
}

/// # Safety
///
/// Called by target core with a command of this fabric, once, when its
/// last reference is gone.
pub(super) unsafe extern "C" fn release_cmd(cmd: *mut sys::se_cmd) {
    // SAFETY: a command of this fabric is a TMR of the shared layer or a
    // front end's command, which starts with a `CmdHead` whose release is
    // that front end's; target core is done with it.
    unsafe {
        if nexus::is_tmr(cmd) {
            nexus::release_tmr(cmd)
        } else {
            ((*cmd.cast::<CmdHead>()).release)(cmd)
        }
    }
}

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn write_pending(cmd: *mut sys::se_cmd) -> c_int {
    // The data-out buffers were mapped at submission: go ahead.
    // SAFETY: `cmd` is live and waits for its data.
    unsafe { sys::target_execute_cmd(cmd) };
    0
}

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn queue_data_in(cmd: *mut sys::se_cmd) -> c_int {
    // SAFETY: `cmd` is live and its data in place.
    unsafe { super::vpd::complete_data_in(cmd) };
    // SAFETY: `cmd` is live; this is the fabric's acknowledgement.
    unsafe { sys::transport_generic_free_cmd(cmd, 0) };
    0
}

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn queue_status(cmd: *mut sys::se_cmd) -> c_int {
    // SAFETY: `cmd` is live; this is the fabric's acknowledgement.
    unsafe { sys::transport_generic_free_cmd(cmd, 0) };
    0
}

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn queue_tm_rsp(cmd: *mut sys::se_cmd) {
    // SAFETY: every TMR of this fabric comes from the shared layer.
    unsafe { nexus::queue_tm_rsp(cmd) }
}

/// `aborted_task`: target core aborted `cmd` without a status (no TAS,
/// `target_handle_abort()`); it drops the acknowledgement reference itself
/// right after this, and `release_cmd` follows.
///
/// A SCSI command needs nothing here: its pages stay mapped until
/// `release_cmd`, and the front end answers it there as aborted or reset.
/// A TMR (aborted by a LUN reset, `core_tmr_drain_tmr_list()`) gets no
/// `queue_tm_rsp`: the shared layer learns here that it ended unanswered.
///
/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn aborted_task(cmd: *mut sys::se_cmd) {
    // SAFETY: `cmd` is live (target core still holds references to it); a
    // TMR of this fabric comes from the shared layer.
    unsafe {
        if nexus::is_tmr(cmd) {
            nexus::aborted_tmr(cmd);
        }
    }
}
