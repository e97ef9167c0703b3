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
use crate::{
    bindings as sys,
    glue::target::{sam, DataIn, Executing, LunRef, Prepared, SeCmd},
    wire::vpd,
};
use kernel::{page::PAGE_SIZE, prelude::*};

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
pub(super) fn probe(tpg: &Tpg, lun: &LunRef<'_>) -> Option<PtVpd> {
    if !crate::glue::params::emulate_block_limits() {
        return None;
    }
    let mut list = [0u8; vpd::SUPPORTED_MAX];
    let n = lun.unpacked();
    match lun.pt_vpd(vpd::PAGE_SUPPORTED, &mut list) {
        Ok(()) => {}
        Err(e) if e == ENODEV => return None,
        Err(e) => {
            pr_warn!(
                "tpgt_{} LUN {}: cannot read the pass-through device's VPD page list ({}); Block Limits left to the device\n",
                tpg.tag(),
                n,
                e.to_errno()
            );
            return None;
        }
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

/// An INQUIRY for a VPD page this module handles.
struct Inquiry {
    page: u8,
    /// What the command's LUN needs.
    need: PtVpd,
    /// The ALLOCATION LENGTH: the most bytes the initiator takes.
    alloc: usize,
}

/// Whether `cmd` is an INQUIRY: the test every command passes through on
/// the I/O path (submission and read completion), inlined there so that
/// the other commands make no call.
#[inline(always)]
fn is_inquiry(cmd: SeCmd<'_>) -> bool {
    cmd.cdb().is_some_and(|cdb| cdb[0] == vpd::INQUIRY)
}

/// The VPD page an INQUIRY command asks for, and what its LUN needs.
fn inquiry(cmd: SeCmd<'_>) -> Option<Inquiry> {
    let cdb = cmd.cdb()?;
    if cdb[0] != vpd::INQUIRY {
        return None;
    }
    let page = vpd::inquiry_page(&cdb[..6])?;
    if page != vpd::PAGE_SUPPORTED && page != vpd::PAGE_BLOCK_LIMITS {
        return None;
    }
    let alloc = vpd::inquiry_alloc_len(&cdb[..6])?;
    let (tpg, lun) = cmd.lun::<Tpg>()?;
    Some(Inquiry {
        page,
        need: tpg.pt_vpd(lun)?,
        alloc,
    })
}

/// The Block Limits of the pass-through device of `cmd`.
fn limits(cmd: SeCmd<'_>) -> Option<vpd::Limits> {
    let l = cmd.pt_limits()?;
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
#[inline(always)]
pub(crate) fn prepare(p: Prepared<'_>) {
    if is_inquiry(p.cmd()) {
        prepare_inquiry(p);
    }
}

/// [`prepare`] of an INQUIRY.
fn prepare_inquiry(mut p: Prepared<'_>) {
    if let Some(Inquiry {
        page: vpd::PAGE_BLOCK_LIMITS,
        need: PtVpd::Emulate,
        ..
    }) = inquiry(p.cmd())
    {
        p.set_execute(emulate_block_limits);
    }
}

/// `execute_cmd` of an INQUIRY for B0h to a device that lacks it.
///
/// # Safety
///
/// Called by target core with a command [`prepare`] set up.
unsafe extern "C" fn emulate_block_limits(se: *mut sys::se_cmd) -> sys::sense_reason_t {
    // SAFETY: target core executes with the command `prepare` set this function in; the
    // handle ends with this call.
    let ex = unsafe { Executing::from_raw(se) };
    let (Some(l), Some(q)) = (limits(ex.cmd()), inquiry(ex.cmd())) else {
        return sys::tcm_sense_reason_table_TCM_INVALID_CDB_FIELD;
    };
    let page = vpd::block_limits(&l);
    // No more than the ALLOCATION LENGTH.
    ex.complete(&page[..page.len().min(q.alloc)]);
    0
}

/// `queue_data_in` of an INQUIRY the device answered: B0h added to its page
/// list, or its MAXIMUM TRANSFER LENGTH clamped, in the initiator's buffer.
///
/// Runs where target core completes the command: a work item, or the
/// backend's completion (interrupt) context when the device's
/// `complete_type` asks for direct completion; it does not sleep.
#[inline(always)]
pub(super) fn complete_data_in(d: DataIn<'_>) {
    if is_inquiry(d.cmd()) {
        complete_inquiry(d);
    }
}

/// [`complete_data_in`] of an INQUIRY.
fn complete_inquiry(mut d: DataIn<'_>) {
    let Some(q) = inquiry(d.cmd()) else {
        return;
    };
    let o = d.returned();
    if o.status != sam::GOOD {
        return;
    }
    let len = d.data_length();
    // The initiator's room: what came back plus what was left over, up to
    // the ALLOCATION LENGTH.
    let room = if o.underflow { len + o.resid } else { len }.min(q.alloc);
    let mut buf = [0u8; vpd::SUPPORTED_MAX + 1];
    let room = room.min(buf.len());
    let valid = len.min(room);
    let buf = &mut buf[..room];
    d.read_data(&mut buf[..valid]);
    let new_len = match (q.page, q.need) {
        (vpd::PAGE_SUPPORTED, PtVpd::Emulate) => {
            let Some(n) = vpd::add_supported(buf, valid, vpd::PAGE_BLOCK_LIMITS) else {
                return;
            };
            n
        }
        (vpd::PAGE_BLOCK_LIMITS, PtVpd::Clamp) => {
            let Some(max) = limits(d.cmd()).map(|l| l.max_transfer()) else {
                return;
            };
            if vpd::clamp_block_limits(buf, valid, max).is_none() {
                return;
            }
            valid
        }
        _ => return,
    };
    // The length first: the copy is bounded by it.  The front end reads
    // the lengths when target core releases the command.
    d.set_length(new_len);
    d.write_data(&buf[..new_len]);
}
