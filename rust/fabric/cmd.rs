// SPDX-License-Identifier: GPL-2.0

//! Command callbacks target core requires of every fabric.
//!
//! No front end submits commands yet (the vhost I/O path is not in this
//! version), so target core never calls these for a command of ours; they
//! are registered because target core refuses a fabric without them.

use crate::bindings as sys;
use kernel::ffi::c_int;

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn check_stop_free(_cmd: *mut sys::se_cmd) -> c_int {
    0
}

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn release_cmd(_cmd: *mut sys::se_cmd) {}

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn write_pending(_cmd: *mut sys::se_cmd) -> c_int {
    0
}

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn queue_data_in(_cmd: *mut sys::se_cmd) -> c_int {
    0
}

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn queue_status(_cmd: *mut sys::se_cmd) -> c_int {
    0
}

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn queue_tm_rsp(_cmd: *mut sys::se_cmd) {}

/// # Safety
///
/// Called by target core with a command of this fabric.
pub(super) unsafe extern "C" fn aborted_task(_cmd: *mut sys::se_cmd) {}
