// SPDX-License-Identifier: GPL-2.0

//! Block Limits VPD (page B0h) for pass-through (pscsi) LUNs, module
//! parameter `emulate_block_limits`.
//!
//! A pass-through device whose VPD page list (00h) lacks B0h leaves the
//! guest with no transfer limit: it sends commands larger than the host's
//! queue takes, and they fail.  Whether the device lists B0h is decided
//! once per LUN, when it is linked ([`probe`]):
//!
//! - it lacks B0h ([`PtVpd::Emulate`]): B0h is added to the page list the
//!   device returns (when the command completes, in the initiator's
//!   buffer), and an INQUIRY for B0h is answered here ([`prepare`]) with
//!   MAXIMUM TRANSFER LENGTH from the device queue's `max_sectors`;
//! - it has B0h ([`PtVpd::Clamp`]): its MAXIMUM TRANSFER LENGTH is clamped
//!   to that limit when the command completes.
//!
//! The pages themselves are built and rewritten by `wire::vpd`.

use super::{tpg::Tpg, MAX_DATA_SG_NENTS};
use crate::{bindings as sys, wire::vpd};
use kernel::{ffi::c_void, page::PAGE_SIZE, prelude::*};

/// What a pass-through LUN needs, decided when it was linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PtVpd {
    /// The device lists B0h: MAXIMUM TRANSFER LENGTH is clamped.
    Clamp,
    /// The device lacks B0h: B0h is listed and answered by emulation.
    Emulate,
}

/// Decides what the LUN `lun`, being linked, needs: `None` for a backstore
/// other than pscsi, when the module parameter is off, or when the device's
/// VPD page list cannot be read (then the device answers alone, as before).
///
/// # Safety
///
/// `lun` must be the LUN `fabric_post_link` was called with.
pub(super) unsafe fn probe(tpg: &Tpg, lun: *mut sys::se_lun) -> Option<PtVpd> {
    if !crate::glue::params::emulate_block_limits() {
        return None;
    }
    let mut list = [0u8; vpd::SUPPORTED_MAX];
    // SAFETY: `lun` is being linked, so its device is held; `list` is
    // writable for its length.
    let r = unsafe {
        sys::tcm_virt_lun_pt_vpd(
            lun,
            vpd::PAGE_SUPPORTED,
            list.as_mut_ptr(),
            list.len() as i32,
        )
    };
    // SAFETY: `lun` is the LUN `fabric_post_link` was called with (the caller's contract),
    // which target core keeps live while it links it.
    let n = unsafe { (*lun).unpacked_lun };
    if r == ENODEV.to_errno() {
        return None;
    }
    if r != 0 {
        pr_warn!(
            "tpgt_{} LUN {}: cannot read the pass-through device's VPD page list ({}); Block Limits left to the device\n",
            tpg.tag(),
            n,
            r
        );
        return None;
    }
    if vpd::lists_page(&list, vpd::PAGE_BLOCK_LIMITS) {
        pr_info!(
            "tpgt_{} LUN {}: pass-through device has Block Limits VPD; maximum transfer length clamped to the host's\n",
            tpg.tag(),
            n
        );
        Some(PtVpd::Clamp)
    } else {
        pr_info!(
            "tpgt_{} LUN {}: pass-through device lacks Block Limits VPD; emulated, maximum transfer length from the host\n",
            tpg.tag(),
            n
        );
        Some(PtVpd::Emulate)
    }
}

/// The VPD page an INQUIRY command asks for, and what its LUN needs.
///
/// # Safety
///
/// `se` must be a command that passed `target_submit_prep` and is not
/// released yet.
unsafe fn inquiry(se: *mut sys::se_cmd) -> Option<(u8, PtVpd)> {
    // SAFETY: `se` passed `target_submit_prep` and is not released (the caller's contract),
    // so its CDB is set up; an INQUIRY CDB has 6 bytes, and only an INQUIRY is read past byte 0.
    let page = unsafe {
        let cdb = (*se).t_task_cdb;
        if cdb.is_null() || *cdb != vpd::INQUIRY {
            return None;
        }
        vpd::inquiry_page(core::slice::from_raw_parts(cdb, 6))?
    };
    if page != vpd::PAGE_SUPPORTED && page != vpd::PAGE_BLOCK_LIMITS {
        return None;
    }
    // SAFETY: a prepared command holds its LUN, whose TPG is one of ours.
    let (tpg, lun) = unsafe {
        let lun = (*se).se_lun;
        if lun.is_null() {
            return None;
        }
        (Tpg::from_se_tpg((*lun).lun_tpg), (*lun).unpacked_lun)
    };
    Some((page, tpg.pt_vpd(lun)?))
}

/// The Block Limits of the pass-through device of `se`.
///
/// # Safety
///
/// As for [`inquiry`].
unsafe fn limits(se: *mut sys::se_cmd) -> Option<vpd::Limits> {
    let mut l = sys::tcm_virt_pt_limits::default();
    // SAFETY: the command holds its device.
    if unsafe { sys::tcm_virt_pt_get_limits((*se).se_dev, &mut l) } != 0 {
        return None;
    }
    Some(vpd::Limits {
        peripheral: l.dev_type & 0x1f,
        block_size: l.block_size,
        host_sectors: l.host_sectors,
        fabric_bytes: u64::from(MAX_DATA_SG_NENTS) * PAGE_SIZE as u64,
        optimal_blocks: l.optimal_blocks,
    })
}

/// Between `target_submit_prep` and `target_submit`: an INQUIRY for B0h to
/// a LUN whose device lacks it is executed by [`emulate_block_limits`]
/// instead of the device.  Target core still runs the command (LUN
/// reference, task attributes, task management, statistics).
///
/// # Safety
///
/// `se` must have passed `target_submit_prep` and not be submitted yet.
pub(crate) unsafe fn prepare(se: *mut sys::se_cmd) {
    // SAFETY: `se` passed `target_submit_prep` and is not submitted yet (the caller's
    // contract), so it is not released either, as `inquiry` requires.
    if let Some((vpd::PAGE_BLOCK_LIMITS, PtVpd::Emulate)) = unsafe { inquiry(se) } {
        // SAFETY: the command is not submitted: nothing else reads it.
        unsafe { (*se).execute_cmd = Some(emulate_block_limits) };
    }
}

/// Copies `len` bytes from `buf` into the start of the command's data
/// buffer (the initiator's), or from there into `buf` (`to_buf`).
///
/// # Safety
///
/// `se` must be a live command whose data scatterlist holds at least `len`
/// bytes; `buf` must be valid for `len` bytes (written when `to_buf`, else
/// only read).
unsafe fn copy_data(se: *mut sys::se_cmd, buf: *mut u8, len: usize, to_buf: bool) {
    if len == 0 {
        return;
    }
    // SAFETY: `se` is live with a data scatterlist of at least `len` bytes, and `buf` is
    // valid for `len` bytes, written only when `to_buf` (the caller's contract).
    unsafe {
        let (sgl, nents) = ((*se).t_data_sg, (*se).t_data_nents);
        if to_buf {
            sys::sg_copy_to_buffer(sgl, nents, buf.cast::<c_void>(), len);
        } else {
            sys::sg_copy_from_buffer(sgl, nents, buf.cast::<c_void>(), len);
        }
    }
}

/// `execute_cmd` of an INQUIRY for B0h to a device that lacks it.
///
/// # Safety
///
/// Called by target core with a command [`prepare`] set up.
unsafe extern "C" fn emulate_block_limits(se: *mut sys::se_cmd) -> sys::sense_reason_t {
    // SAFETY: target core executes a command `prepare` set up, so it passed
    // `target_submit_prep`, and it is not released while it executes.
    let Some(l) = (unsafe { limits(se) }) else {
        return sys::tcm_sense_reason_table_TCM_INVALID_CDB_FIELD;
    };
    let page = vpd::block_limits(&l);
    // SAFETY: target core runs the command; its data scatterlist is the
    // initiator's buffer of `data_length` bytes.
    unsafe {
        let n = page.len().min((*se).data_length as usize);
        copy_data(se, page.as_ptr().cast_mut(), n, false);
        sys::target_complete_cmd_with_length(
            se,
            sys::sam_status_SAM_STAT_GOOD as u8,
            page.len() as i32,
        );
    }
    0
}

/// `queue_data_in` of an INQUIRY the device answered: B0h added to its page
/// list, or its MAXIMUM TRANSFER LENGTH clamped, in the initiator's buffer.
///
/// Runs where target core completes the command: a work item, or the
/// backend's completion (interrupt) context when the device's
/// `complete_type` asks for direct completion; it does not sleep.
///
/// # Safety
///
/// Called from `queue_data_in` with a live command of this fabric.
pub(super) unsafe fn complete_data_in(se: *mut sys::se_cmd) {
    // SAFETY: the command is live and was prepared.
    let Some((page, need)) = (unsafe { inquiry(se) }) else {
        return;
    };
    // SAFETY: `se` is a live command of this fabric, passed to `queue_data_in` (the
    // caller's contract); target core is done writing its status and lengths.
    let (status, len, flags, resid) = unsafe {
        (
            (*se).scsi_status,
            (*se).data_length as usize,
            (*se).se_cmd_flags,
            (*se).residual_count as usize,
        )
    };
    if status != sys::sam_status_SAM_STAT_GOOD as u8 {
        return;
    }
    let under = flags & sys::se_cmd_flags_table_SCF_UNDERFLOW_BIT != 0;
    // The initiator's room: what came back plus what was left over.
    let room = if under { len + resid } else { len };
    let mut buf = [0u8; vpd::SUPPORTED_MAX + 1];
    let room = room.min(buf.len());
    let valid = len.min(room);
    let buf = &mut buf[..room];
    // SAFETY: the data scatterlist is the initiator's buffer of at least
    // `room` bytes; the device has written `len` of them.
    unsafe { copy_data(se, buf.as_mut_ptr(), valid, true) };
    let new_len = match (page, need) {
        (vpd::PAGE_SUPPORTED, PtVpd::Emulate) => {
            let Some(n) = vpd::add_supported(buf, valid, vpd::PAGE_BLOCK_LIMITS) else {
                return;
            };
            n
        }
        (vpd::PAGE_BLOCK_LIMITS, PtVpd::Clamp) => {
            // SAFETY: the command holds its device.
            let Some(max) = (unsafe { limits(se) }).map(|l| l.max_transfer()) else {
                return;
            };
            if vpd::clamp_block_limits(buf, valid, max).is_none() {
                return;
            }
            valid
        }
        _ => return,
    };
    // SAFETY: as for the read; the lengths are set before the front end
    // reads them, when target core releases the command.
    unsafe {
        copy_data(se, buf.as_mut_ptr(), new_len, false);
        if new_len > len && under {
            (*se).data_length = new_len as u32;
            (*se).residual_count = (len + resid - new_len) as u32;
            if (*se).residual_count == 0 {
                (*se).se_cmd_flags &= !sys::se_cmd_flags_table_SCF_UNDERFLOW_BIT;
            }
        }
    }
}
