// SPDX-License-Identifier: GPL-2.0

//! The module parameters the kernel crate's `module!` cannot declare
//! (strings, and integers writable at run time): declared in the C helper,
//! read here.

use crate::bindings as sys;
use kernel::{ffi::c_char, prelude::*};

/// A string parameter (0444: never changes while the module is loaded).
///
/// # Safety
///
/// `p` must be null or point to a NUL-terminated string that lives as long
/// as the module.
unsafe fn string(p: *const c_char) -> &'static CStr {
    if p.is_null() {
        return c"";
    }
    // SAFETY: `p` points to a NUL-terminated string that lives as long as
    // the module (the caller's contract).
    unsafe { CStr::from_char_ptr(p) }
}

/// `fabric_name`: the configfs name of the fabric.
pub(crate) fn fabric_name() -> &'static CStr {
    // SAFETY: a read-only string parameter of this module.
    unsafe { string(sys::tcm_virt_param_fabric_name()) }
}

/// `vhost_devname`: the name of the vhost device.
pub(crate) fn vhost_devname() -> &'static CStr {
    // SAFETY: a read-only string parameter of this module.
    unsafe { string(sys::tcm_virt_param_vhost_devname()) }
}

/// `megasas_devname`: the name of the megasas device.
pub(crate) fn megasas_devname() -> &'static CStr {
    // SAFETY: a read-only string parameter of this module.
    unsafe { string(sys::tcm_virt_param_megasas_devname()) }
}

/// `max_io_vqs` (writable): request virtqueues of a vhost device opened
/// from now on.
pub(crate) fn max_io_vqs() -> usize {
    // SAFETY: the helper reads an integer parameter once.
    unsafe { sys::tcm_virt_param_max_io_vqs() as usize }
}

/// `answer_batch` (writable): commands a queue's worker runs to
/// completion in one pass before it answers them; `None` for 0, only at
/// the end of the pass.
pub(crate) fn answer_batch() -> Option<core::num::NonZeroUsize> {
    // SAFETY: the helper reads an integer parameter once.
    let n = unsafe { sys::tcm_virt_param_answer_batch() };
    core::num::NonZeroUsize::new(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Whether the current task is the only one ready to run on this CPU
/// (`single_task_running()`): the test of whether answering early can
/// overlap anything (`answer_batch`).
#[inline]
pub(crate) fn cpu_alone() -> bool {
    // SAFETY: reads this CPU's runqueue length; callable in any context.
    unsafe { sys::single_task_running() }
}

/// `offload_kib` (writable): commands of at least this many KiB are
/// submitted from the offload workqueue; 0: never.
#[inline]
pub(crate) fn offload_kib() -> u32 {
    // A volatile load is READ_ONCE(): the parameter's sysfs store writes
    // the aligned word whole.
    // SAFETY: the variable is the module's, alive while its code runs.
    unsafe { core::ptr::read_volatile(&raw const sys::tcm_virt_offload_kib) }
}

/// `emulate_block_limits` (writable).
pub(crate) fn emulate_block_limits() -> bool {
    // SAFETY: the helper reads a boolean parameter once.
    unsafe { sys::tcm_virt_param_emulate_block_limits() }
}
