// SPDX-License-Identifier: GPL-2.0

//! Command callbacks of the fabric.
//!
//! Every command a front end submits carries `TARGET_SCF_ACK_KREF`: target
//! core holds one reference and the front end's acknowledgement the other.
//! Data is mapped before submission, so a write executes at once; status
//! and data-in are acknowledged by freeing the command, and the response is
//! written when target core releases it (`release_cmd`), by the front end
//! that owns it.

use crate::{bindings as sys, glue::pages::SgView, nexus};
use core::ptr;
use kernel::{ffi::c_int, prelude::*, types::Opaque};

use crate::glue::pages::{DMA_FROM_DEVICE, DMA_NONE, DMA_TO_DEVICE};

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

/// SAM task attribute of a command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskAttr {
    Simple,
    Ordered,
    Head,
    Aca,
}

/// Direction of a command's data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataDir {
    None,
    /// The initiator's data to the device (a write).
    ToDevice,
    /// The device's data to the initiator (a read).
    FromDevice,
}

/// What [`CmdHead::submit`] hands to target core.
pub(crate) struct Submit<'a> {
    pub(crate) sess: *mut sys::se_session,
    pub(crate) lun: u64,
    pub(crate) tag: u64,
    pub(crate) attr: TaskAttr,
    pub(crate) dir: DataDir,
    /// Bytes of data and protection information.
    pub(crate) len: u32,
    /// The sense buffer (`TRANSPORT_SENSE_BUFFER` bytes) and the CDB, in
    /// the command.
    pub(crate) sense: *mut u8,
    pub(crate) cdb: *mut u8,
    pub(crate) data: SgView<'a>,
    /// Protection information, when the front end carries it.
    pub(crate) prot: Option<SgView<'a>>,
}

/// How target core ended a command, read once it released it.
#[derive(Clone, Copy)]
pub(crate) struct Outcome {
    pub(crate) status: u8,
    /// Sense bytes target core wrote (not yet limited to the buffer).
    pub(crate) sense_len: usize,
    pub(crate) resid: u32,
    /// Less data moved than the initiator asked for.
    pub(crate) underflow: bool,
    /// Aborted by task management without a status (no TAS).
    pub(crate) aborted: bool,
}

impl CmdHead {
    pub(crate) fn new(release: ReleaseFn) -> CmdHead {
        CmdHead {
            se_cmd: Opaque::zeroed(),
            release,
        }
    }

    /// Hands the command to target core: `target_init_cmd()`, then
    /// `started` (the front end's accounting: from here the command is in
    /// flight and `release_cmd` will come), then `target_submit_prep()` and
    /// `target_submit()`.  On a failed preparation target core completes
    /// the command itself (CHECK CONDITION through `queue_status`).
    /// `Err` when target core refused the command at `target_init_cmd()`
    /// (the session is going away): nothing was submitted and `started`
    /// did not run.
    ///
    /// # Safety
    ///
    /// Target core must not hold the command (a free slot); the session
    /// must be pinned (a binding of the front end), and the sense buffer,
    /// CDB and scatterlists must live in the command until target core
    /// releases it.
    pub(crate) unsafe fn submit(&self, s: Submit<'_>, started: impl FnOnce()) -> Result {
        let se = self.se_cmd.get();
        let attr = match s.attr {
            TaskAttr::Simple => sys::TCM_SIMPLE_TAG,
            TaskAttr::Ordered => sys::TCM_ORDERED_TAG,
            TaskAttr::Head => sys::TCM_HEAD_TAG,
            TaskAttr::Aca => sys::TCM_ACA_TAG,
        };
        let dir = match s.dir {
            DataDir::None => DMA_NONE,
            DataDir::ToDevice => DMA_TO_DEVICE,
            DataDir::FromDevice => DMA_FROM_DEVICE,
        };
        let (prot, prot_nents) = match s.prot {
            Some(p) if p.nents != 0 => (p.sgl, p.nents),
            _ => (ptr::null_mut(), 0),
        };
        // SAFETY: target core does not hold the command (the caller's
        // contract): it is zeroed for a new life; the session is pinned and
        // the sense buffer lives in the command.
        let r = unsafe {
            ptr::write_bytes(se, 0, 1);
            (*se).tag = s.tag;
            if prot_nents == 0 && s.data.nents != 0 && s.prot.is_some() {
                // Data without protection information from the initiator,
                // marked as C vhost_scsi marks it.
                (*se).prot_pto = true;
            }
            sys::target_init_cmd(
                se,
                s.sess,
                s.sense.cast(),
                s.lun,
                s.len,
                attr as i32,
                dir,
                sys::target_sc_flags_table_TARGET_SCF_ACK_KREF as i32,
            )
        };
        if r != 0 {
            return Err(ESHUTDOWN);
        }
        started();
        // SAFETY: initialised by target_init_cmd; the CDB and scatterlists
        // live in the command until target core releases it (the caller's
        // contract).
        unsafe {
            if sys::target_submit_prep(
                se,
                s.cdb,
                s.data.sgl,
                s.data.nents,
                ptr::null_mut(),
                0,
                prot,
                prot_nents,
                sys::GFP_KERNEL,
            ) == 0
            {
                super::vpd::prepare(se);
                sys::target_submit(se);
            }
        }
        Ok(())
    }

    /// How target core ended the command.
    ///
    /// # Safety
    ///
    /// Target core must have released the command (`release_cmd` ran), so
    /// that its fields are final and nothing writes them.
    pub(crate) unsafe fn outcome(&self) -> Outcome {
        // SAFETY: target core released the command (the caller's contract).
        let se = unsafe { &*self.se_cmd.get() };
        Outcome {
            status: se.scsi_status,
            sense_len: usize::from(se.scsi_sense_length),
            resid: se.residual_count,
            underflow: se.se_cmd_flags & sys::se_cmd_flags_table_SCF_UNDERFLOW_BIT != 0,
            aborted: se.transport_state & sys::CMD_T_ABORTED != 0,
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
