// SPDX-License-Identifier: GPL-2.0

//! Target core (LIO): typed handles over the raw `se_cmd`, `se_session`,
//! `se_lun` and `se_portal_group` pointers the fabric's callbacks receive
//! and its front ends submit, each carrying what its holder may do.
//!
//! - [`CmdHead`]: the `se_cmd` at the start of every front end's command,
//!   with its submission and its outcome.
//! - [`SeCmd`], [`Prepared`], [`DataIn`], [`Executing`]: a command of the
//!   fabric borrowed by a callback, one type per moment of its life, each
//!   with the fields that moment may read or write.
//! - [`Session`]: a session the fabric set up and removes on drop.
//! - [`LunRef`]: a LUN being linked or unlinked.
//! - [`SeTpg`]: the fabric's TPG type, which starts with its
//!   `se_portal_group`.

use super::configfs::{tpg_attribute, wwn_attribute, TpgAttr, TpgGroup, WwnAttr};
use crate::{
    bindings as sys,
    glue::pages::{SgView, DMA_FROM_DEVICE, DMA_NONE, DMA_TO_DEVICE},
};
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU8, Ordering};
use core::{marker::PhantomData, ptr, ptr::NonNull};
use kernel::{
    ffi::{c_char, c_int, c_void},
    prelude::*,
    sync::{Arc, Completion},
    types::Opaque,
};

/// Bytes of a CDB readable through [`SeCmd::cdb`]: target core keeps the
/// CDB in the command's own `__t_task_cdb` (`TCM_MAX_COMMAND_SIZE`, 32
/// bytes) or, for a longer one, in a zeroed allocation of its length;
/// [`CmdHead::submit`] zeroes the command first, so the bytes past a short
/// CDB are zero.
pub(crate) const CDB_READ: usize = 16;

/// SAM status codes (`enum sam_status`) as the byte the wire carries.
pub(crate) mod sam {
    use crate::bindings as sys;

    /// `s` as a byte; only used in constants, so that a code that did not
    /// fit would fail the build.
    const fn byte(s: sys::sam_status) -> u8 {
        assert!(s <= 0xff);
        // CAST: the assertion above (at compile time) makes it lossless.
        s as u8
    }
    /// `SAM_STAT_GOOD`.
    pub(crate) const GOOD: u8 = byte(sys::sam_status_SAM_STAT_GOOD);
    /// `SAM_STAT_TASK_SET_FULL`.
    pub(crate) const TASK_SET_FULL: u8 = byte(sys::sam_status_SAM_STAT_TASK_SET_FULL);
    /// `SAM_STAT_TASK_ABORTED`.
    pub(crate) const TASK_ABORTED: u8 = byte(sys::sam_status_SAM_STAT_TASK_ABORTED);
}

/// The fabric's target portal group type.
///
/// # Safety
///
/// Implementors are `#[repr(C)]` with an `Opaque<se_portal_group>` as their
/// first field, and every `se_portal_group` target core hands the fabric
/// (callbacks, a command's LUN) is that field of a live `Self`, from
/// `fabric_make_tpg` until `fabric_drop_tpg` returns ([`Template`] holds a
/// reference for that time, [`Registered`]).
pub(crate) unsafe trait SeTpg: Sync + Sized {
    /// The `Self` that contains `se_tpg`.
    ///
    /// # Safety
    ///
    /// `se_tpg` must have been handed to the fabric by target core, and
    /// `fabric_drop_tpg` must not run on it during `'a`.
    unsafe fn from_se_tpg<'a>(se_tpg: *mut sys::se_portal_group) -> &'a Self {
        // SAFETY: per the trait's contract, `se_tpg` is the first field of a
        // live `Self` (`#[repr(C)]`), which lives for `'a` (the caller's).
        unsafe { &*se_tpg.cast::<Self>() }
    }
}

/// A TPG whose configfs directory is pinned (`target_depend_item`): until
/// this is dropped, neither the directory nor anything that needs it gone
/// first (the TPG's removal, its nexus) can be removed.
///
/// INVARIANT: `target_depend_item` succeeded on the TPG's item, and only
/// `drop` undoes it.
pub(crate) struct DependTpg<T: SeTpg> {
    tpg: Arc<T>,
}

/// The configfs item of `tpg`'s directory.
fn tpg_item<T: SeTpg>(tpg: &T) -> *mut sys::config_item {
    let se_tpg = ptr::from_ref(tpg).cast_mut().cast::<sys::se_portal_group>();
    // SAFETY: `T` starts with its `se_portal_group` (the trait's contract);
    // only the address of a field is taken.
    unsafe { &raw mut (*se_tpg).tpg_group.cg_item }
}

impl<T: SeTpg> DependTpg<T> {
    /// Pins `tpg`'s directory; `ENODEV` when it is being removed.
    ///
    /// This takes configfs locks (the configfs root's inode lock,
    /// `configfs_dirent_lock`): call it with no lock held that a configfs
    /// callback of the fabric takes.
    pub(crate) fn new(tpg: Arc<T>) -> Result<Self> {
        // SAFETY: the item belongs to a TPG kept allocated by `tpg`; configfs
        // only compares it against live items.
        if unsafe { sys::target_depend_item(tpg_item(&*tpg)) } != 0 {
            return Err(ENODEV);
        }
        // INVARIANT: pinned just above.
        Ok(DependTpg { tpg })
    }
}

impl<T: SeTpg> DependTpg<T> {
    fn se_tpg(&self) -> *mut sys::se_portal_group {
        ptr::from_ref(&*self.tpg).cast_mut().cast()
    }

    /// Replaces `out` with the TPG's LUNs that have a device, at most
    /// `max`, in link order.
    pub(crate) fn luns(&self, out: &mut KVec<sys::tcm_virt_lun_info>, max: usize) -> Result {
        out.clear();
        out.reserve(max, GFP_KERNEL)?;
        let room = c_int::try_from(max).unwrap_or(c_int::MAX);
        // SAFETY: the TPG is registered while pinned (type invariant: a
        // pinned directory is not removed); `out` has room for `max`
        // entries; the helper walks the LUN list under RCU.
        let n = unsafe { sys::tcm_virt_tpg_luns(self.se_tpg(), out.as_mut_ptr(), room) };
        let n = usize::try_from(n).unwrap_or(0).min(max);
        // SAFETY: the helper initialised the first `n` entries (at most `max`).
        unsafe { out.inc_len(n) };
        Ok(())
    }

    /// LUN `lun` of the TPG, if it has a device.
    pub(crate) fn lun(&self, lun: u64) -> Option<sys::tcm_virt_lun_info> {
        let mut i = sys::tcm_virt_lun_info::default();
        // SAFETY: the TPG is registered while pinned (type invariant); `i` is ours.
        (unsafe { sys::tcm_virt_tpg_lun(self.se_tpg(), lun, &mut i) } == 0).then_some(i)
    }

    /// The logical block size of LUN `lun`, if the TPG has it (the lookup
    /// of [`DependTpg::lun`] without the capacity and device type, which
    /// cost two calls into the backend).
    pub(crate) fn lun_block_size(&self, lun: u64) -> Option<u32> {
        let mut bs = 0u32;
        // SAFETY: the TPG is registered while pinned (type invariant); `bs`
        // is ours.
        (unsafe { sys::tcm_virt_tpg_lun_block_size(self.se_tpg(), lun, &mut bs) } == 0)
            .then_some(bs)
    }
}

impl<T: SeTpg> core::ops::Deref for DependTpg<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.tpg
    }
}

impl<T: SeTpg> Drop for DependTpg<T> {
    fn drop(&mut self) {
        // SAFETY: pinned by `new` and released once, here (type invariant).
        unsafe { sys::target_undepend_item(tpg_item(&*self.tpg)) };
    }
}

/// The fabric's TPG callbacks, as safe methods of its TPG type;
/// [`set_tpg_ops`] gives target core their C entry points.
///
/// Target core calls `demo_mode` from `target_setup_session` and
/// `target_remove_session` ([`Session`]), which the fabric may call with
/// its TPG's locks held: the methods take none of them.
pub(crate) trait TpgOps: SeTpg {
    /// `tpg_get_wwn`: the name of the TPG's port.
    fn wwn_name(&self) -> &CStr;
    /// `tpg_get_tag`.
    fn tag(&self) -> u16;
    /// `tpg_check_prot_fabric_only`: the T10 PI type the fabric handles.
    fn prot_fabric_only(&self) -> c_int;
    /// `tpg_check_demo_mode` and `tpg_check_demo_mode_cache`: whether the
    /// TPG runs without ACLs.
    fn demo_mode(&self) -> bool;
    /// `fabric_post_link`: `lun` was linked into the TPG.
    fn post_link(&self, lun: LunRef<'_>);
    /// `fabric_pre_unlink`: `lun` is being unlinked from the TPG.
    fn pre_unlink(&self, lun: LunRef<'_>);
}

/// Sets the TPG callbacks of `ops` to those of `T`.
pub(crate) fn set_tpg_ops<T: TpgOps>(ops: &mut sys::target_core_fabric_ops) {
    ops.tpg_get_wwn = Some(tpg_get_wwn::<T>);
    ops.tpg_get_tag = Some(tpg_get_tag::<T>);
    ops.tpg_check_prot_fabric_only = Some(tpg_prot_fabric_only::<T>);
    ops.tpg_check_demo_mode = Some(tpg_demo_mode::<T>);
    ops.tpg_check_demo_mode_cache = Some(tpg_demo_mode::<T>);
    ops.fabric_post_link = Some(tpg_post_link::<T>);
    ops.fabric_pre_unlink = Some(tpg_pre_unlink::<T>);
}

/// # Safety
///
/// Called by target core with a TPG of the fabric (of type `T`), not dropped.
unsafe extern "C" fn tpg_get_wwn<T: TpgOps>(se_tpg: *mut sys::se_portal_group) -> *mut c_char {
    // SAFETY: target core passes a TPG of this fabric it has not dropped.
    let tpg = unsafe { T::from_se_tpg(se_tpg) };
    // Target core only reads the name.
    tpg.wwn_name().as_char_ptr().cast_mut()
}

/// # Safety
///
/// Called by target core with a TPG of the fabric (of type `T`), not dropped.
unsafe extern "C" fn tpg_get_tag<T: TpgOps>(se_tpg: *mut sys::se_portal_group) -> u16 {
    // SAFETY: target core passes a TPG of this fabric it has not dropped.
    unsafe { T::from_se_tpg(se_tpg) }.tag()
}

/// # Safety
///
/// Called by target core with a TPG of the fabric (of type `T`), not dropped.
unsafe extern "C" fn tpg_prot_fabric_only<T: TpgOps>(se_tpg: *mut sys::se_portal_group) -> c_int {
    // SAFETY: target core passes a TPG of this fabric it has not dropped.
    unsafe { T::from_se_tpg(se_tpg) }.prot_fabric_only()
}

/// # Safety
///
/// Called by target core with a TPG of the fabric (of type `T`), not dropped.
unsafe extern "C" fn tpg_demo_mode<T: TpgOps>(se_tpg: *mut sys::se_portal_group) -> c_int {
    // SAFETY: target core passes a TPG of this fabric it has not dropped.
    c_int::from(unsafe { T::from_se_tpg(se_tpg) }.demo_mode())
}

/// # Safety
///
/// Called by target core with a TPG of the fabric (of type `T`), not
/// dropped, and the LUN it links.
unsafe extern "C" fn tpg_post_link<T: TpgOps>(
    se_tpg: *mut sys::se_portal_group,
    lun: *mut sys::se_lun,
) -> c_int {
    // SAFETY: target core passes a TPG of this fabric it has not dropped.
    let tpg = unsafe { T::from_se_tpg(se_tpg) };
    // SAFETY: target core passed `lun` to `fabric_post_link`; the handle ends with the call.
    tpg.post_link(unsafe { LunRef::from_raw(lun) });
    0
}

/// # Safety
///
/// Called by target core with a TPG of the fabric (of type `T`), not
/// dropped, and the LUN it unlinks.
unsafe extern "C" fn tpg_pre_unlink<T: TpgOps>(
    se_tpg: *mut sys::se_portal_group,
    lun: *mut sys::se_lun,
) {
    // SAFETY: target core passes a TPG of this fabric it has not dropped.
    let tpg = unsafe { T::from_se_tpg(se_tpg) };
    // SAFETY: target core passed `lun` to `fabric_pre_unlink`; the handle ends with the call.
    tpg.pre_unlink(unsafe { LunRef::from_raw(lun) });
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
    /// The work that submits the command from the offload workqueue
    /// ([`CmdHead::submit`]); initialised each time it is queued.
    work: Opaque<kernel::bindings::work_struct>,
    /// While the command waits for that work: its queue's [`Offloads`].
    offloads: AtomicPtr<Offloads>,
}

/// The commands of one queue handed to the offload workqueue that have not
/// yet been through `target_submit()` ("Where a command runs" in
/// `Documentation/admin-guide.rst`).  An ORDERED or ACA command of the
/// queue waits for them to reach target core before it is submitted, so
/// that target core sees the commands of a queue in the order they came.
pub(crate) struct Offloads {
    pending: AtomicU32,
}

impl Offloads {
    pub(crate) const fn new() -> Offloads {
        Offloads {
            pending: AtomicU32::new(0),
        }
    }

    /// Sleeps until every command handed to the workqueue before has been
    /// through `target_submit()`; the work of each ends with
    /// [`Offloads::put`], so the wait ends.
    fn wait_idle(&self) {
        if self.pending.load(Ordering::Acquire) != 0 {
            // SAFETY: `pending` is live for the call; it is woken at zero.
            unsafe { sys::tcm_virt_wait_zero(self.pending.as_ptr()) };
        }
    }

    fn put(&self) {
        // The count the device's drain waits on works the same way.
        super::vhost::put_inflight(&self.pending);
    }
}

/// Waits until every command handed to the offload workqueue so far has
/// been through `target_submit()`, so that target core's lists hold it: a
/// task management function that aborts commands calls it first.  May
/// sleep.
pub(crate) fn flush_offloads() {
    // SAFETY: the workqueue lives as long as the module (`OffloadQueue`).
    unsafe { sys::tcm_virt_offload_flush() };
}

/// The module's offload workqueue, allocated at load and destroyed (after
/// the work still running has returned) at unload.
pub(crate) struct OffloadQueue(());

impl OffloadQueue {
    /// # Safety
    ///
    /// Called once, at module init; the value lives until module exit.
    pub(crate) unsafe fn new() -> Result<OffloadQueue> {
        // SAFETY: module init, once (the caller's contract).
        kernel::error::to_result(unsafe { sys::tcm_virt_offload_wq_init() })?;
        Ok(OffloadQueue(()))
    }
}

impl Drop for OffloadQueue {
    fn drop(&mut self) {
        // SAFETY: allocated by `new`; every device is gone, so nothing
        // queues work any more; this waits for the work still running.
        unsafe { sys::tcm_virt_offload_wq_exit() };
    }
}

/// The offload workqueue's function: submits the command to target core.
///
/// # Safety
///
/// `work` is the `work` of a [`CmdHead`] queued by [`CmdHead::submit`].
unsafe extern "C" fn offload_work(work: *mut kernel::bindings::work_struct) {
    // SAFETY: `work` is the field `work` of a `CmdHead` (the caller's
    // contract), which lives in its front end's pool until target core
    // releases the command; it cannot be released before it is submitted.
    let head = unsafe {
        &*work
            .byte_sub(core::mem::offset_of!(CmdHead, work))
            .cast::<CmdHead>()
    };
    let se = head.se_cmd.get();
    let offloads = head.offloads.load(Ordering::Relaxed);
    // The reference taken first keeps the command (and so its queue, which
    // drains its commands before it goes, with `offloads`) until the count
    // is dropped: target core may release it only at
    // `target_put_sess_cmd()`, after which neither is touched.
    // SAFETY: the command is prepared, not yet submitted, and held above.
    unsafe {
        sys::tcm_virt_cmd_get(se);
        sys::target_submit(se);
        (*offloads).put();
        sys::target_put_sess_cmd(se);
    }
}

/// How [`CmdHead::submit`] handed the command to target core.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Submitted {
    /// On this thread (executed here unless target core queued it).
    Here,
    /// To the offload workqueue.
    Offloaded,
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
    /// The queue's [`Offloads`]: a large command may be submitted from the
    /// offload workqueue.
    pub(crate) offloads: Option<&'a Offloads>,
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

impl Outcome {
    /// # Safety
    ///
    /// Nothing may write the command's fields during the call.
    unsafe fn of(se: *const sys::se_cmd) -> Outcome {
        // SAFETY: nothing writes the fields (the caller's contract); the
        // shared reference ends with this function.
        let se = unsafe { &*se };
        Outcome {
            status: se.scsi_status,
            sense_len: usize::from(se.scsi_sense_length),
            resid: se.residual_count,
            underflow: se.se_cmd_flags & sys::se_cmd_flags_table_SCF_UNDERFLOW_BIT != 0,
            aborted: se.transport_state & sys::CMD_T_ABORTED != 0,
        }
    }
}

impl CmdHead {
    pub(crate) fn new(release: ReleaseFn) -> CmdHead {
        CmdHead {
            se_cmd: Opaque::zeroed(),
            release,
            work: Opaque::zeroed(),
            offloads: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Hands the command to target core: `target_init_cmd()`, then
    /// `started` (the front end's accounting: from here the command is in
    /// flight and `release_cmd` will come), then `target_submit_prep()`,
    /// `prepare` (the fabric's look at the prepared command) and
    /// `target_submit()`: unless the device's `submit_type` attribute
    /// queues it, the command executes here (under the caller's locks), and
    /// with a backend that completes inline (rd_mcp, fileio, null_blk) it
    /// may be released here too.  A SIMPLE command of at least `offload_kib`
    /// KiB on a device at the fabric's default `submit_type`, with
    /// `offloads` given, is submitted from the offload workqueue instead
    /// ([`Submitted::Offloaded`]); an ORDERED or ACA command first waits
    /// for the queue's offloaded commands to reach target core.  On a
    /// failed preparation target core completes the command itself (CHECK
    /// CONDITION through `queue_status`).
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
    pub(crate) unsafe fn submit(
        &self,
        s: Submit<'_>,
        started: impl FnOnce(),
        prepare: impl FnOnce(Prepared<'_>),
    ) -> Result<Submitted> {
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
        // The command is zeroed for a new life: target core does not hold
        // it (the caller's contract); the session is pinned and the sense
        // buffer lives in the command.
        // SAFETY: target core does not hold the command, so nothing else accesses it.
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
        let prepped = unsafe {
            sys::target_submit_prep(
                se,
                s.cdb,
                s.data.sgl,
                s.data.nents,
                ptr::null_mut(),
                0,
                prot,
                prot_nents,
                sys::GFP_KERNEL,
            )
        } == 0;
        if !prepped {
            return Ok(Submitted::Here);
        }
        // INVARIANT: prepared just above and not submitted yet.
        prepare(Prepared(SeCmd::new(NonNull::from(&self.se_cmd).cast())));
        if let Some(o) = s.offloads {
            if s.attr == TaskAttr::Simple {
                let kib = super::params::offload_kib();
                let large = kib != 0 && u64::from(s.len) >= u64::from(kib) * 1024;
                let default = || {
                    // SAFETY: prepared: `se_dev` is the LUN's device, held
                    // by the command.
                    let t = unsafe { (*(*se).se_dev).dev_attrib.submit_type };
                    t == sys::target_submit_type_TARGET_FABRIC_DEFAULT_SUBMIT as u8
                };
                if large && default() {
                    o.pending.fetch_add(1, Ordering::Relaxed);
                    self.offloads
                        .store(ptr::from_ref(o).cast_mut(), Ordering::Relaxed);
                    // The work is queued once per submission, and the last
                    // submission's function took it off the queue before it
                    // ran.  That function may still be returning, past its
                    // command's release, and so run beside this one: it
                    // touches neither the command nor the work after
                    // `target_put_sess_cmd()`, and the workqueue does not
                    // touch a work once its function was called.  Queueing
                    // orders the stores above before the function runs.
                    // SAFETY: not pending (above); its function gets this prepared `CmdHead`.
                    unsafe { sys::tcm_virt_offload_queue(self.work.get(), Some(offload_work)) };
                    return Ok(Submitted::Offloaded);
                }
            } else if s.attr != TaskAttr::Head {
                o.wait_idle();
            }
        }
        // SAFETY: prepared, not yet submitted; target core takes it from here.
        unsafe { sys::target_submit(se) };
        Ok(Submitted::Here)
    }

    /// Calls the release of the front end that owns `cmd`.
    ///
    /// # Safety
    ///
    /// `cmd` must be the `se_cmd` of a front end's command (inside its
    /// [`CmdHead`]), passed to the fabric's `release_cmd` by target core.
    pub(crate) unsafe fn release(cmd: *mut sys::se_cmd) {
        // SAFETY: `cmd` is the first field of a `CmdHead` (`#[repr(C)]`, the
        // caller's contract), whose release is its front end's; target core
        // released it, once, as that function requires.
        unsafe { ((*cmd.cast::<CmdHead>()).release)(cmd) }
    }

    /// How target core ended the command.
    ///
    /// # Safety
    ///
    /// Target core must have released the command (`release_cmd` ran), so
    /// that its fields are final and nothing writes them.
    pub(crate) unsafe fn outcome(&self) -> Outcome {
        // SAFETY: target core released the command (the caller's contract):
        // nothing writes it any more.
        unsafe { Outcome::of(self.se_cmd.get()) }
    }
}

/// A command of the fabric, live and prepared (`target_submit_prep`
/// succeeded), borrowed for a callback.
///
/// INVARIANT: `se` points to such a command for `'a`; its CDB, LUN and
/// device are set up and nothing changes them during `'a`.
#[derive(Clone, Copy)]
pub(crate) struct SeCmd<'a> {
    se: NonNull<sys::se_cmd>,
    _p: PhantomData<&'a sys::se_cmd>,
}

impl<'a> SeCmd<'a> {
    fn new(se: NonNull<sys::se_cmd>) -> Self {
        SeCmd {
            se,
            _p: PhantomData,
        }
    }

    fn raw(&self) -> *mut sys::se_cmd {
        self.se.as_ptr()
    }

    /// The first [`CDB_READ`] bytes of the command's CDB.
    pub(crate) fn cdb(&self) -> Option<&'a [u8; CDB_READ]> {
        // The command was submitted through `CmdHead::submit` and is
        // prepared (type invariant); nothing changes the CDB during `'a`.
        // SAFETY: `t_task_cdb` is null (not read) or 32 initialised bytes (`CDB_READ`).
        unsafe {
            let cdb = (*self.raw()).t_task_cdb;
            (!cdb.is_null()).then(|| &*cdb.cast::<[u8; CDB_READ]>())
        }
    }

    /// The command's TPG and LUN number.
    pub(crate) fn lun<T: SeTpg>(&self) -> Option<(&'a T, u64)> {
        // SAFETY: a prepared command holds a reference on its LUN (type
        // invariant), which holds its TPG, one of the fabric's (`T`).
        unsafe {
            let lun = (*self.raw()).se_lun;
            if lun.is_null() {
                return None;
            }
            Some((T::from_se_tpg((*lun).lun_tpg), (*lun).unpacked_lun))
        }
    }

    /// The limits of the command's device, if it is a pass-through one.
    pub(crate) fn pt_limits(&self) -> Option<sys::tcm_virt_pt_limits> {
        let mut l = sys::tcm_virt_pt_limits::default();
        // SAFETY: a prepared command holds its device (type invariant); the
        // helper only reads it, and `l` is ours.
        (unsafe { sys::tcm_virt_pt_get_limits((*self.raw()).se_dev, &mut l) } == 0).then_some(l)
    }

    /// The initiator's data buffer size.
    fn data_length(&self) -> usize {
        // SAFETY: the command is live (type invariant); the field is written
        // by target core at preparation and completion and by the fabric in
        // `DataIn::set_length`, none of which runs beside a handle's read.
        unsafe { (*self.raw()).data_length as usize }
    }

    /// Copies `buf` into the start of the initiator's data buffer (at most
    /// its length); returns the bytes copied.
    fn copy_to_data(&self, buf: &[u8]) -> usize {
        let n = buf.len().min(self.data_length());
        if n == 0 {
            return 0;
        }
        // SAFETY: the command is live (type invariant) with its data
        // scatterlist; the helper copies at most `n` bytes and stops at the
        // scatterlist's end; `buf` is readable for `n` bytes.
        unsafe {
            let se = self.raw();
            sys::sg_copy_from_buffer(
                (*se).t_data_sg,
                (*se).t_data_nents,
                buf.as_ptr().cast_mut().cast::<c_void>(),
                n,
            );
        }
        n
    }
}

/// A command prepared and not submitted yet: the fabric may still choose
/// how target core executes it.
pub(crate) struct Prepared<'a>(SeCmd<'a>);

/// `execute_cmd` of a command the fabric answers itself.
///
/// # Safety
///
/// Called by target core with a command whose `execute_cmd` the fabric set.
pub(crate) type ExecuteFn = unsafe extern "C" fn(*mut sys::se_cmd) -> sys::sense_reason_t;

impl<'a> Prepared<'a> {
    /// The command, for as long as this handle is borrowed.
    pub(crate) fn cmd(&self) -> SeCmd<'_> {
        self.0
    }

    /// Target core executes the command with `f` instead of its device.
    pub(crate) fn set_execute(&mut self, f: ExecuteFn) {
        // SAFETY: the command is not submitted: nothing else reads or writes it.
        unsafe { (*self.0.raw()).execute_cmd = Some(f) };
    }
}

/// A command target core executes with the fabric's `execute_cmd`.
pub(crate) struct Executing<'a>(SeCmd<'a>);

impl<'a> Executing<'a> {
    /// # Safety
    ///
    /// `se` must be the command target core passed to an `execute_cmd` the
    /// fabric set through [`Prepared::set_execute`] on a command submitted
    /// through [`CmdHead::submit`]; the handle must not outlive that call,
    /// be made twice for it, and once it completed the call must return 0.
    pub(crate) unsafe fn from_raw(se: *mut sys::se_cmd) -> Self {
        // INVARIANT: a command target core executes is prepared and live
        // until it completes, which only `complete` below does.
        // SAFETY: target core passes a command, never null.
        Executing(SeCmd::new(unsafe { NonNull::new_unchecked(se) }))
    }

    /// The command, for as long as this handle is borrowed.
    pub(crate) fn cmd(&self) -> SeCmd<'_> {
        self.0
    }

    /// Writes `data` to the initiator's buffer and completes the command
    /// GOOD with `data.len()` bytes (less moved: an underflow).
    pub(crate) fn complete(self, data: &[u8]) {
        self.0.copy_to_data(data);
        let len = c_int::try_from(data.len()).unwrap_or(c_int::MAX);
        // SAFETY: target core executes the command: completing it once is
        // this handle's to do, and the handle is consumed.
        unsafe { sys::target_complete_cmd_with_length(self.0.raw(), sam::GOOD, len) };
    }
}

/// What a command returned, as `queue_data_in` sees it.
#[derive(Clone, Copy)]
pub(crate) struct Returned {
    pub(crate) status: u8,
    /// Bytes of the initiator's buffer left over.
    pub(crate) resid: usize,
    /// Less data moved than the initiator asked for.
    pub(crate) underflow: bool,
}

/// A command whose data target core is about to return (`queue_data_in`):
/// status and lengths are final, the initiator's buffer holds the data.
pub(crate) struct DataIn<'a>(SeCmd<'a>);

impl<'a> DataIn<'a> {
    /// # Safety
    ///
    /// `se` must be the command target core passed to `queue_data_in`, one
    /// submitted through [`CmdHead::submit`]; the handle must not outlive
    /// that call nor be made twice for it.
    pub(crate) unsafe fn from_raw(se: *mut sys::se_cmd) -> Self {
        // INVARIANT: a command in `queue_data_in` is prepared and live until
        // the fabric acknowledges it, after this handle.
        // SAFETY: target core passes a command, never null.
        DataIn(SeCmd::new(unsafe { NonNull::new_unchecked(se) }))
    }

    /// The command, for as long as this handle is borrowed.
    pub(crate) fn cmd(&self) -> SeCmd<'_> {
        self.0
    }

    /// The command's status and lengths.
    pub(crate) fn returned(&self) -> Returned {
        let se = self.0.raw();
        // Each field is read on its own: other fields of the command (its
        // state, its reference count) can still change.  Only `set_length`
        // below writes these, through this handle's `&mut`.
        // SAFETY: the command is live and target core is done writing these (`queue_data_in`).
        unsafe {
            Returned {
                status: (*se).scsi_status,
                resid: (*se).residual_count as usize,
                underflow: (*se).se_cmd_flags & sys::se_cmd_flags_table_SCF_UNDERFLOW_BIT != 0,
            }
        }
    }

    /// The initiator's buffer size.
    pub(crate) fn data_length(&self) -> usize {
        self.0.data_length()
    }

    /// Copies the start of the initiator's buffer into `buf` (at most its
    /// length); returns the bytes copied.
    pub(crate) fn read_data(&self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.0.data_length());
        if n == 0 {
            return 0;
        }
        // SAFETY: the command is live with its data scatterlist; the helper
        // copies at most `n` bytes and stops at the scatterlist's end; `buf`
        // is writable for `n` bytes.
        unsafe {
            let se = self.0.raw();
            sys::sg_copy_to_buffer(
                (*se).t_data_sg,
                (*se).t_data_nents,
                buf.as_mut_ptr().cast::<c_void>(),
                n,
            );
        }
        n
    }

    /// Copies `buf` into the start of the initiator's buffer (at most its
    /// length); returns the bytes copied.
    pub(crate) fn write_data(&mut self, buf: &[u8]) -> usize {
        self.0.copy_to_data(buf)
    }

    /// The data now returned is `len` bytes, within the initiator's
    /// buffer: the underflow residue is adjusted (and cleared at zero).
    /// Only an underflowing command with `len` above its length changes.
    pub(crate) fn set_length(&mut self, len: usize) {
        let o = self.returned();
        let old = self.0.data_length();
        let room = old + o.resid;
        if !o.underflow || len <= old || len > room {
            return;
        }
        // SAFETY: the front end reads the lengths only once target core
        // released the command, after `queue_data_in`; `len` and the new
        // residue fit in u32 (below `room`, a u32 sum).
        unsafe {
            let se = self.0.raw();
            (*se).data_length = len as u32;
            (*se).residual_count = (room - len) as u32;
            if (*se).residual_count == 0 {
                (*se).se_cmd_flags &= !sys::se_cmd_flags_table_SCF_UNDERFLOW_BIT;
            }
        }
    }
}

/// A LUN target core is linking into or unlinking from a TPG, borrowed for
/// the callback.
pub(crate) struct LunRef<'a> {
    lun: NonNull<sys::se_lun>,
    _p: PhantomData<&'a sys::se_lun>,
}

impl LunRef<'_> {
    /// # Safety
    ///
    /// `lun` must be the LUN target core passed to `fabric_post_link` or
    /// `fabric_pre_unlink`, and the handle must not outlive that call.
    pub(crate) unsafe fn from_raw(lun: *mut sys::se_lun) -> Self {
        LunRef {
            // SAFETY: target core passes a LUN, never null.
            lun: unsafe { NonNull::new_unchecked(lun) },
            _p: PhantomData,
        }
    }

    /// The LUN number.
    pub(crate) fn unpacked(&self) -> u64 {
        // SAFETY: target core keeps the LUN live for the callback.
        unsafe { (*self.lun.as_ptr()).unpacked_lun }
    }

    /// Reads VPD page `page` of the LUN's device into `out`, if it is a
    /// pass-through device: `ENODEV` for any other backstore.
    pub(crate) fn pt_vpd(&self, page: u8, out: &mut [u8]) -> Result {
        let len = c_int::try_from(out.len()).map_err(|_| EINVAL)?;
        // SAFETY: the LUN is being linked, so its device is held; `out` is
        // writable for `len` bytes.
        kernel::error::to_result(unsafe {
            sys::tcm_virt_lun_pt_vpd(self.lun.as_ptr(), page, out.as_mut_ptr(), len)
        })
    }
}

/// A session the fabric set up in a TPG; removed on drop.
///
/// INVARIANT: `sess` was returned by `target_setup_session` and is removed
/// only by `drop`.
pub(crate) struct Session {
    sess: NonNull<sys::se_session>,
}

// SAFETY: a `se_session` is not tied to a thread; target core locks it itself.
unsafe impl Send for Session {}
// SAFETY: shared access only reads the node ACL's name, which target core
// does not change while the session lives.
unsafe impl Sync for Session {}

impl Session {
    /// Sets up a session of `tpg` for the initiator port `name`
    /// (NUL-terminated within the array); `EINVAL` without the NUL.
    ///
    /// Target core calls the TPG's [`TpgOps`] from here: they must not
    /// take a lock the caller holds.
    ///
    /// # Safety
    ///
    /// `tpg` must be registered with target core (`core_tpg_register`) and
    /// stay so during the call (pinned by a [`DependTpg`], or called from a
    /// configfs callback of the TPG).  The session must be dropped only
    /// when no command or TMF submitted in it is in flight (target core
    /// does not wait for them when it removes a session), and before the
    /// TPG is deregistered.
    pub(crate) unsafe fn setup<T: SeTpg, const N: usize>(
        tpg: &T,
        name: &[u8; N],
    ) -> Result<Session> {
        if !name.contains(&0) {
            return Err(EINVAL);
        }
        // `name` is NUL-terminated and copied by target core (into the node
        // ACL) before the call returns; the private pointer is the TPG,
        // which target core only stores.
        // SAFETY: `T` starts with its `se_portal_group` (`SeTpg`), registered (the caller's).
        let sess = unsafe {
            sys::target_setup_session(
                ptr::from_ref(tpg).cast_mut().cast(),
                0,
                0,
                sys::target_prot_op_TARGET_PROT_DIN_PASS
                    | sys::target_prot_op_TARGET_PROT_DOUT_PASS,
                name.as_ptr(),
                ptr::from_ref(tpg).cast_mut().cast(),
                None,
            )
        };
        let sess = kernel::error::from_err_ptr(sess)?;
        // INVARIANT: set up just above.
        NonNull::new(sess)
            .map(|sess| Session { sess })
            .ok_or(ENOMEM)
    }

    /// The session, for commands and TMFs submitted in it.
    pub(crate) fn as_ptr(&self) -> *mut sys::se_session {
        self.sess.as_ptr()
    }

    /// The initiator name of the session's node ACL.
    pub(crate) fn acl_name(&self) -> &[u8] {
        // SAFETY: the session lives (type invariant) and holds its node ACL,
        // whose name target core does not change.
        let name = unsafe { &(*(*self.sess.as_ptr()).se_node_acl).initiatorname };
        let len = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        // SAFETY: `initiatorname` is a byte array; c_char and u8 have the
        // same layout, and `len` is within it.
        unsafe { core::slice::from_raw_parts(name.as_ptr().cast::<u8>(), len) }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: set up by `setup` and removed once, here (type invariant),
        // with no command of it in flight and the TPG still registered
        // (`setup`'s contract).
        unsafe { sys::target_remove_session(self.sess.as_ptr()) };
    }
}

/// Sense bytes target core may write for a TMR (`TRANSPORT_SENSE_BUFFER`).
const TMR_SENSE_SIZE: usize = 96;

/// [`Tmr::end`]: target core has not ended the TMR yet.
const PENDING: u8 = 0;
/// [`Tmr::end`]: `queue_tm_rsp` came; the acknowledgement reference is the
/// submitter's to drop.
const ANSWERED: u8 = 1;
/// [`Tmr::end`]: aborted (or released) without `queue_tm_rsp`; target core
/// dropped the acknowledgement reference itself.
const ABORTED: u8 = 2;

/// How target core ended a TMR.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TmrEnd {
    /// Answered with this `tcm_tmrsp_table` code.
    Code(u8),
    /// Aborted by a LOGICAL UNIT RESET before it was answered.
    Aborted,
}

/// One TMR submitted to target core.
#[pin_data]
#[repr(C)]
pub(crate) struct Tmr {
    // INVARIANT: first field; target core hands `*mut se_cmd` back and it
    // converts to `*const Tmr`.
    se_cmd: Opaque<sys::se_cmd>,
    sense: Opaque<[u8; TMR_SENSE_SIZE]>,
    /// `PENDING`, then `ANSWERED` or `ABORTED`, set once before
    /// `answered` is signalled.
    end: AtomicU8,
    #[pin]
    answered: Completion,
    #[pin]
    released: Completion,
}

/// `queue_tm_rsp`: target core has the TMR's response.
///
/// # Safety
///
/// `cmd` must be the `se_cmd` of a [`Tmr`] submitted by [`submit_tmr`].
unsafe fn tmr_response(cmd: *mut sys::se_cmd) {
    // SAFETY: `cmd` is the `se_cmd` of a `Tmr` from `submit_tmr` (the caller's
    // contract), its first field, so the cast gives that `Tmr`; the
    // submitter's reference keeps it alive.
    unsafe { (*cmd.cast::<Tmr>()).ended(ANSWERED) };
}

/// `aborted_task` of a TMR: target core aborted it (a LOGICAL UNIT RESET on
/// its LUN, `core_tmr_drain_tmr_list()`) and will not call `queue_tm_rsp`;
/// right after this it drops the acknowledgement reference itself
/// (`target_handle_abort()`) and releases the TMR.
///
/// # Safety
///
/// `cmd` must be the `se_cmd` of a [`Tmr`] submitted by [`submit_tmr`].
unsafe fn tmr_aborted(cmd: *mut sys::se_cmd) {
    // SAFETY: `cmd` is the `se_cmd` of a `Tmr` from `submit_tmr` (the caller's
    // contract), its first field, so the cast gives that `Tmr`; the
    // submitter frees it only after `released`, which comes after this.
    unsafe { (*cmd.cast::<Tmr>()).ended(ABORTED) };
}

/// `release_cmd` of a TMR.
///
/// # Safety
///
/// `cmd` must be the `se_cmd` of a [`Tmr`] submitted by [`submit_tmr`], whose
/// last reference is gone.
unsafe fn tmr_release(cmd: *mut sys::se_cmd) {
    // SAFETY: per the invariant of `Tmr`; `submit_tmr` waits for `released`
    // before it frees the memory.
    let t = unsafe { &*cmd.cast::<Tmr>() };
    // Released unanswered: the acknowledgement reference is gone as well
    // (target core drops it only when it aborts the TMR, after
    // `aborted_task`); the submitter must not wait for an answer.
    t.ended(ABORTED);
    t.released.complete_all();
}

impl Tmr {
    /// Submits one TMR to target core; `Err` carries the answer when it
    /// could not be submitted.
    pub(crate) fn start(
        sess: *mut sys::se_session,
        lun: u64,
        function: u32,
        tag: u64,
    ) -> core::result::Result<Pin<KBox<Tmr>>, u8> {
        let t = KBox::pin_init(
            pin_init!(Tmr {
                se_cmd: Opaque::zeroed(),
                sense: Opaque::zeroed(),
                end: AtomicU8::new(PENDING),
                answered <- Completion::new(),
                released <- Completion::new(),
            }),
            GFP_KERNEL,
        )
        .map_err(|_| crate::wire::tmf::tmr::FUNCTION_FAILED)?;
        // SAFETY: the se_cmd is zeroed and ours; the front end's binding
        // pins the session while its TMFs run; the sense buffer lives in
        // `t`, which outlives the TMR (`finish` waits for `released`).
        let r = unsafe {
            sys::target_submit_tmr(
                t.se_cmd.get(),
                sess,
                t.sense.get().cast(),
                lun,
                ptr::null_mut(),
                function as u8,
                sys::GFP_KERNEL,
                tag,
                sys::target_sc_flags_table_TARGET_SCF_ACK_KREF as i32,
            )
        };
        if r != 0 {
            // Nothing was queued: no callback will come.
            return Err(crate::wire::tmf::tmr::FUNCTION_FAILED);
        }
        Ok(t)
    }

    /// Records how target core ended the TMR (the first end counts) and
    /// wakes the submitter.
    fn ended(&self, how: u8) {
        // A failed exchange means the TMR already ended: nothing changes.
        let _ = self
            .end
            .compare_exchange(PENDING, how, Ordering::AcqRel, Ordering::Acquire);
        self.answered.complete_all();
    }

    /// Waits until target core ended the TMR (its answer, or its abort)
    /// and released it.
    pub(crate) fn finish(self: Pin<KBox<Tmr>>) -> TmrEnd {
        self.answered.wait_for_completion();
        let end = if self.end.load(Ordering::Acquire) == ANSWERED {
            let se = self.se_cmd.get();
            // SAFETY: answered, not aborted: our acknowledgement reference
            // keeps the command and its TMR request alive until the put
            // below.
            let code = unsafe { (*(*se).se_tmr_req).response };
            // SAFETY: drops the acknowledgement reference taken by
            // target_submit_tmr; target core drops its own after
            // queue_tm_rsp.
            unsafe { sys::target_put_sess_cmd(se) };
            TmrEnd::Code(code)
        } else {
            // Target core dropped the acknowledgement reference when it
            // aborted the TMR: nothing of it is ours to touch but `released`.
            TmrEnd::Aborted
        };
        self.released.wait_for_completion();
        end
    }
}

/// Submits one TMR (`function`, a `tcm_tmreq_table` code, for `lun` and
/// the task `tag`) in the session `sess` and waits until target core ended
/// it: blocks, so never on a worker that serves queues.
///
/// The session must be pinned by a binding of the caller while this runs.
pub(crate) fn submit_tmr(sess: *mut sys::se_session, lun: u64, function: u32, tag: u64) -> TmrEnd {
    match Tmr::start(sess, lun, function, tag) {
        Ok(t) => t.finish(),
        Err(code) => TmrEnd::Code(code),
    }
}

/// Whether `cmd` is a TMR (of any front end) rather than a SCSI command.
///
/// # Safety
///
/// `cmd` must be a live command of this fabric.
unsafe fn is_tmr(cmd: *mut sys::se_cmd) -> bool {
    // SAFETY: `cmd` is live (the caller's contract); the flag is set by
    // `target_submit_tmr` before any callback and not changed afterwards.
    unsafe { (*cmd).se_cmd_flags & sys::se_cmd_flags_table_SCF_SCSI_TMR_CDB != 0 }
}

/// The fabric's target port type.
///
/// # Safety
///
/// Implementors are `#[repr(C)]` with an `Opaque<se_wwn>` as their first
/// field, zeroed when [`FabricOps::make_wwn`] returns the port (target
/// core initialises it as a new configfs group).
pub(crate) unsafe trait SeWwn: Sized {}

/// What the fabric does with its ports, TPGs and commands; [`Template`]
/// gives target core the C entry points.
pub(crate) trait FabricOps {
    type Tport: SeWwn;
    type Tpg: TpgOps;

    /// `fabric_make_wwn`: the port for the directory `name`.
    fn make_wwn(name: &[u8]) -> Result<KBox<Self::Tport>>;

    /// `fabric_drop_wwn`: its TPGs are gone.
    fn drop_wwn(tport: KBox<Self::Tport>);

    /// `fabric_make_tpg`: the TPG for the directory `name` of `tport`,
    /// registered through `reg`.
    fn make_tpg(
        tport: &Self::Tport,
        name: &[u8],
        reg: TpgRegistrar<'_, Self::Tpg>,
    ) -> Result<Registered<Self::Tpg>>;

    /// `fabric_drop_tpg`, before the TPG is deregistered: its LUNs are
    /// unlinked; the sessions of the TPG end here.
    fn drop_tpg(tpg: &Self::Tpg);

    /// After the TPG was deregistered: the template's reference, for the
    /// fabric to let go of its own.
    fn tpg_dropped(tpg: Arc<Self::Tpg>);

    /// `queue_data_in`, before the fabric acknowledges the command.
    fn data_in(cmd: DataIn<'_>);
}

/// The right to register one TPG with the port of the `fabric_make_tpg`
/// call it was made for, during that call.
pub(crate) struct TpgRegistrar<'a, T> {
    wwn: *mut sys::se_wwn,
    _p: PhantomData<(&'a sys::se_wwn, T)>,
}

/// A TPG registered with target core, which `fabric_make_tpg` returns: the
/// fabric's template keeps this reference until `fabric_drop_tpg`.
pub(crate) struct Registered<T>(Arc<T>);

impl<T: SeTpg> TpgRegistrar<'_, T> {
    /// Registers `tpg` (`core_tpg_register`) with protocol `proto`.
    ///
    /// # Safety
    ///
    /// `tpg` must be new: its `se_portal_group` zeroed, never registered.
    pub(crate) unsafe fn register(self, tpg: Arc<T>, proto: c_int) -> Result<Registered<T>> {
        // The `Arc` returned keeps `tpg` in place; the template holds it
        // until `fabric_drop_tpg`.
        // SAFETY: `wwn` is this call's live port; `tpg` starts with a zeroed `se_portal_group`.
        kernel::error::to_result(unsafe {
            sys::core_tpg_register(self.wwn, ptr::from_ref(&*tpg).cast_mut().cast(), proto)
        })?;
        Ok(Registered(tpg))
    }
}

/// An `ERR_PTR()` carrying `e`, for callbacks returning pointers.
fn err_ptr<T>(e: Error) -> *mut T {
    // ERR_PTR(): the negative errno as an address.
    ptr::without_provenance_mut(e.to_errno() as isize as usize)
}

/// # Safety
///
/// Called by configfs through target core with a NUL-terminated name.
unsafe extern "C" fn make_wwn<F: FabricOps>(
    _tf: *mut sys::target_fabric_configfs,
    _group: *mut sys::config_group,
    name: *const c_char,
) -> *mut sys::se_wwn {
    // SAFETY: configfs passes the NUL-terminated name of the new directory.
    let name = unsafe { CStr::from_char_ptr(name) }.to_bytes();
    match F::make_wwn(name) {
        // `Tport` starts with its `se_wwn` (`SeWwn`); `drop_wwn` takes it back.
        Ok(t) => KBox::into_raw(t).cast(),
        Err(e) => err_ptr(e),
    }
}

/// # Safety
///
/// Called by target core once per port `make_wwn` made.
unsafe extern "C" fn drop_wwn<F: FabricOps>(wwn: *mut sys::se_wwn) {
    // SAFETY: `wwn` came from `make_wwn::<F>`'s `KBox::into_raw` of an
    // `F::Tport`, which starts with it; this is its last use.
    F::drop_wwn(unsafe { KBox::from_raw(wwn.cast::<F::Tport>()) });
}

/// # Safety
///
/// Called by configfs through target core with a live port `make_wwn` made
/// and a NUL-terminated name.
unsafe extern "C" fn make_tpg<F: FabricOps>(
    wwn: *mut sys::se_wwn,
    name: *const c_char,
) -> *mut sys::se_portal_group {
    // SAFETY: configfs passes the NUL-terminated name of the new directory.
    let name = unsafe { CStr::from_char_ptr(name) }.to_bytes();
    // SAFETY: `wwn` is a live port `make_wwn::<F>` made, the first field of
    // an `F::Tport`; configfs removes its TPGs before it.
    let tport = unsafe { &*wwn.cast::<F::Tport>() };
    let reg = TpgRegistrar {
        wwn,
        _p: PhantomData,
    };
    match F::make_tpg(tport, name, reg) {
        // The reference goes back to an `Arc` in `drop_tpg`; the TPG starts
        // with its `se_portal_group` (`SeTpg`).
        Ok(Registered(t)) => Arc::into_raw(t).cast_mut().cast(),
        Err(e) => err_ptr(e),
    }
}

/// # Safety
///
/// Called by target core once per TPG `make_tpg` made, its LUNs unlinked.
unsafe extern "C" fn drop_tpg<F: FabricOps>(se_tpg: *mut sys::se_portal_group) {
    // SAFETY: `se_tpg` came from `Arc::into_raw` in `make_tpg::<F>`; this
    // takes that reference back, once: target core drops each TPG once.
    let tpg = unsafe { Arc::from_raw(se_tpg.cast::<F::Tpg>().cast_const()) };
    F::drop_tpg(&tpg);
    // SAFETY: registered by `make_tpg::<F>` and deregistered once, here;
    // `tpg` keeps it allocated through the callbacks target core makes
    // while it deregisters.
    unsafe { sys::core_tpg_deregister(se_tpg) };
    F::tpg_dropped(tpg);
}

/// # Safety
///
/// Called by target core with a command of this fabric.
unsafe extern "C" fn check_stop_free(cmd: *mut sys::se_cmd) -> c_int {
    // SAFETY: `cmd` is live; this drops the submission reference.
    unsafe { sys::target_put_sess_cmd(cmd) }
}

/// # Safety
///
/// Called by target core with a command of this fabric, once, when its
/// last reference is gone.
unsafe extern "C" fn release_cmd<F: FabricOps>(cmd: *mut sys::se_cmd) {
    // SAFETY: a command of this fabric is a TMR of the fabric or a front
    // end's command, which starts with a `CmdHead`; target core is done
    // with it.
    unsafe {
        if is_tmr(cmd) {
            tmr_release(cmd)
        } else {
            CmdHead::release(cmd)
        }
    }
}

/// # Safety
///
/// Called by target core with a command of this fabric.
unsafe extern "C" fn write_pending(cmd: *mut sys::se_cmd) -> c_int {
    // The data-out buffers were mapped at submission: go ahead.
    // SAFETY: `cmd` is live and waits for its data.
    unsafe { sys::target_execute_cmd(cmd) };
    0
}

/// # Safety
///
/// Called by target core with a command of this fabric.
unsafe extern "C" fn queue_data_in<F: FabricOps>(cmd: *mut sys::se_cmd) -> c_int {
    // SAFETY: target core passed `cmd`, submitted through `CmdHead::submit`
    // (the fabric's only SCSI commands), to `queue_data_in`; the handle
    // ends before the acknowledgement below.
    F::data_in(unsafe { DataIn::from_raw(cmd) });
    // SAFETY: `cmd` is live; this is the fabric's acknowledgement.
    unsafe { sys::transport_generic_free_cmd(cmd, 0) };
    0
}

/// # Safety
///
/// Called by target core with a command of this fabric.
unsafe extern "C" fn queue_status(cmd: *mut sys::se_cmd) -> c_int {
    // SAFETY: `cmd` is live; this is the fabric's acknowledgement.
    unsafe { sys::transport_generic_free_cmd(cmd, 0) };
    0
}

/// # Safety
///
/// Called by target core with a TMR of this fabric.
unsafe extern "C" fn queue_tm_rsp(cmd: *mut sys::se_cmd) {
    // SAFETY: every TMR of this fabric is a `Tmr` from `submit_tmr`; target
    // core answered it.
    unsafe { tmr_response(cmd) }
}

/// `aborted_task`: target core aborted `cmd` without a status (no TAS,
/// `target_handle_abort()`); it drops the acknowledgement reference itself
/// right after this, and `release_cmd` follows.
///
/// A SCSI command needs nothing here: its pages stay mapped until
/// `release_cmd`, and the front end answers it there as aborted or reset.
/// A TMR (aborted by a LUN reset, `core_tmr_drain_tmr_list()`) gets no
/// `queue_tm_rsp`: the fabric learns here that it ended unanswered.
///
/// # Safety
///
/// Called by target core with a command of this fabric.
unsafe extern "C" fn aborted_task(cmd: *mut sys::se_cmd) {
    // SAFETY: `cmd` is live (target core still holds references to it); a
    // TMR of this fabric is a `Tmr` from `submit_tmr`, and target core
    // aborted it.
    unsafe {
        if is_tmr(cmd) {
            tmr_aborted(cmd);
        }
    }
}

/// A fabric registered with target core (`target_register_template`);
/// unregistered on drop.
///
/// INVARIANT: `ops` is registered from `register` until `drop`, and
/// neither it nor the attribute tables it points into move (boxed) or
/// change while registered.
pub(crate) struct Template {
    t: KBox<Tables>,
}

/// One attribute per configfs group: the fabric's own (`<fabric>/`), the
/// TPG's and the TPG's `attrib/`.
struct Tables {
    ops: sys::target_core_fabric_ops,
    wwn_attrs: [sys::configfs_attribute; 1],
    wwn_table: [*mut sys::configfs_attribute; 2],
    tpg_attrs: [sys::configfs_attribute; 1],
    tpg_table: [*mut sys::configfs_attribute; 2],
    tpg_attrib_attrs: [sys::configfs_attribute; 1],
    tpg_attrib_table: [*mut sys::configfs_attribute; 2],
}

// SAFETY: the tables are written once before registration and only read
// afterwards (by target core); the pointers in them are to 'static data or
// into the same allocation.
unsafe impl Send for Template {}
// SAFETY: `Template` has no interior mutability and the tables do not
// change while registered: shared references only read them.
unsafe impl Sync for Template {}

impl Template {
    /// Registers the fabric `F` as `name`, with at most `max_sg` scatterlist
    /// entries per command, direct submission and completion by default
    /// (run to completion: a command executes in the context that
    /// submitted it and completes in the backend's, unless the device's
    /// `submit_type` and `complete_type` attributes say otherwise);
    /// `W` is the attribute of the fabric's directory, `B` of each TPG
    /// directory, `A` of each TPG's `attrib/`.
    pub(crate) fn register<F, W, B, A>(
        module: &'static ThisModule,
        name: &'static CStr,
        max_sg: u32,
    ) -> Result<Template>
    where
        F: FabricOps,
        W: WwnAttr,
        B: TpgAttr<Tpg = F::Tpg>,
        A: TpgAttr<Tpg = F::Tpg>,
    {
        const {
            assert!(matches!(B::GROUP, TpgGroup::Base));
            assert!(matches!(A::GROUP, TpgGroup::Attrib));
        }
        let mut t = KBox::new(
            Tables {
                // SAFETY: an all-zero target_core_fabric_ops is the C
                // convention for "no callback, no table".
                ops: unsafe { core::mem::zeroed() },
                wwn_attrs: [wwn_attribute::<W>(module)],
                wwn_table: [ptr::null_mut(); 2],
                // SAFETY: in the table of the TPGs' base group, `B::GROUP`
                // (asserted above), of the TPGs of `F`, `B::Tpg`.
                tpg_attrs: [unsafe { tpg_attribute::<B>(module) }],
                tpg_table: [ptr::null_mut(); 2],
                // SAFETY: in the table of the TPGs' attrib group, `A::GROUP`
                // (asserted above), of the TPGs of `F`, `A::Tpg`.
                tpg_attrib_attrs: [unsafe { tpg_attribute::<A>(module) }],
                tpg_attrib_table: [ptr::null_mut(); 2],
            },
            GFP_KERNEL,
        )?;
        let t_ref = &mut *t;
        t_ref.wwn_table = super::configfs::table(&mut t_ref.wwn_attrs);
        t_ref.tpg_table = super::configfs::table(&mut t_ref.tpg_attrs);
        t_ref.tpg_attrib_table = super::configfs::table(&mut t_ref.tpg_attrib_attrs);

        let ops = &mut t_ref.ops;
        ops.module = module.as_ptr();
        ops.fabric_name = name.as_char_ptr();
        ops.max_data_sg_nents = max_sg;
        set_tpg_ops::<F::Tpg>(ops);
        ops.check_stop_free = Some(check_stop_free);
        ops.release_cmd = Some(release_cmd::<F>);
        ops.write_pending = Some(write_pending);
        ops.queue_data_in = Some(queue_data_in::<F>);
        ops.queue_status = Some(queue_status);
        ops.queue_tm_rsp = Some(queue_tm_rsp);
        ops.aborted_task = Some(aborted_task);
        ops.fabric_make_wwn = Some(make_wwn::<F>);
        ops.fabric_drop_wwn = Some(drop_wwn::<F>);
        ops.fabric_make_tpg = Some(make_tpg::<F>);
        ops.fabric_drop_tpg = Some(drop_tpg::<F>);
        ops.tfc_wwn_attrs = t_ref.wwn_table.as_mut_ptr();
        ops.tfc_tpg_base_attrs = t_ref.tpg_table.as_mut_ptr();
        ops.tfc_tpg_attrib_attrs = t_ref.tpg_attrib_table.as_mut_ptr();
        ops.default_submit_type = sys::target_submit_type_TARGET_DIRECT_SUBMIT as u8;
        ops.default_compl_type = sys::target_compl_type_TARGET_DIRECT_COMPL as u8;
        // SAFETY: `ops` is a valid, exclusively borrowed fabric ops table.
        unsafe { sys::tcm_virt_fabric_ops_set_direct(ops, true, true) };

        // SAFETY: the ops are complete; they and every table and string they
        // point to stay in place until target_unregister_template in drop.
        kernel::error::to_result(unsafe { sys::target_register_template(&t.ops) })
            .inspect_err(|e| pr_err!("target_register_template: {:?}\n", e))?;
        // INVARIANT: registered just above.
        Ok(Template { t })
    }
}

impl Drop for Template {
    fn drop(&mut self) {
        // SAFETY: registered in `register`, per the type invariant. Target
        // core holds a module reference for every configfs object, so none
        // is left when the module is unloaded.
        unsafe { sys::target_unregister_template(&self.t.ops) };
    }
}

/// The kernel's name, machine and release (those of the initial UTS
/// namespace, which every namespace copies and none can change), as `f`
/// sees them.
pub(crate) fn with_utsname<R>(f: impl FnOnce(&[u8], &[u8], &[u8]) -> R) -> R {
    let field = |a: *const [c_char; 65]| {
        // SAFETY: `a` is a field of the static `init_uts_ns.name`; its `sysname`,
        // `machine` and `release` are written only during boot (their
        // sysctls are read-only), so a shared borrow of them is sound.
        let a = unsafe { &*a };
        let n = a.iter().position(|&c| c == 0).unwrap_or(a.len());
        // SAFETY: c_char and u8 have the same layout; `n` is within `a`.
        unsafe { core::slice::from_raw_parts(a.as_ptr().cast::<u8>(), n) }
    };
    // SAFETY: the helper returns the static `init_uts_ns.name`; only the
    // addresses of its fields are taken.
    let (s, m, r) = unsafe {
        let uts = sys::tcm_virt_init_utsname();
        (
            &raw const (*uts).sysname,
            &raw const (*uts).machine,
            &raw const (*uts).release,
        )
    };
    f(field(s), field(m), field(r))
}
