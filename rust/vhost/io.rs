// SPDX-License-Identifier: GPL-2.0

//! The request virtqueues: virtio-scsi commands into target core and back.
//!
//! The worker of a virtqueue pops descriptor chains, reads the request
//! header, maps the guest's data pages into a scatterlist (pinned, never
//! copied) and submits the command with the virtio request tag as the
//! target core tag.  When target core releases the command, it is pushed
//! onto the virtqueue's completion stack and the same worker writes the
//! `virtio_scsi_cmd_resp` and returns the chain to the guest.
//!
//! Every request is answered: a malformed one gets the response code C
//! `vhost_scsi` gives where it gives one, and a response where it drops the
//! request (see `Documentation/differences.rst`).  Only a chain without room
//! for a response is returned unanswered (used length 0).

use super::dev::{Endpoint, Vq, VqGuard};
use crate::{
    bindings as sys,
    fabric::{self, CmdHead, Front},
    nexus,
    pages::{MapError, Sgl, DMA_FROM_DEVICE, DMA_NONE, DMA_TO_DEVICE},
    wire::virtio_scsi::{
        self as vs, CmdReq, CmdResp, DataDir, PlanError, Response, TaskAttr, CMD_RESP_SIZE,
        SENSE_SIZE,
    },
};
use core::{
    mem::MaybeUninit,
    ptr,
    sync::atomic::{AtomicU32, Ordering},
};
use kernel::{
    ffi::{c_ulong, c_void},
    prelude::*,
    sync::Arc,
    types::Opaque,
};

/// One command slot of a virtqueue's pool.
#[repr(C)]
pub(crate) struct Cmd {
    // INVARIANT: first field; target core hands `*mut se_cmd` back and it
    // converts to `*mut Cmd`.
    common: CmdHead,
    sense: Opaque<[u8; SENSE_SIZE]>,
    vq: *const Vq,
    /// Link in the virtqueue's completion stack.
    next: *mut Cmd,
    slot: u16,
    /// Head of the descriptor chain, returned to the used ring.
    head: u16,
    /// Data direction and length, for the used length.
    dir: DataDir,
    data_len: u32,
    cdb: [u8; vs::CDB_SIZE],
    data: Sgl,
    prot: Sgl,
    /// The response buffer's iovecs (copied: the virtqueue's array is reused).
    resp: KVec<sys::iovec>,
    /// Dirty-log entries of the chain's writable descriptors.
    log: KVec<sys::vhost_log>,
}

/// The commands of a virtqueue, as many as its ring has entries.
pub(crate) struct Pool {
    cmds: KVVec<Cmd>,
    free: KVec<u16>,
    /// The pool's slots in the endpoint's table of commands in flight.
    table: Arc<nexus::Table>,
}

impl Pool {
    fn new(vq: &Vq, num: usize, ep: &Endpoint) -> Result<Pool> {
        let table = nexus::Table::new(num)?;
        let mut cmds = KVVec::with_capacity(num, GFP_KERNEL)?;
        let mut free = KVec::with_capacity(num, GFP_KERNEL)?;
        for i in 0..num {
            cmds.push(
                Cmd {
                    common: CmdHead::new(Front::Vhost),
                    sense: Opaque::zeroed(),
                    vq,
                    next: ptr::null_mut(),
                    slot: i as u16,
                    head: 0,
                    dir: DataDir::None,
                    data_len: 0,
                    cdb: [0; vs::CDB_SIZE],
                    data: Sgl::new(),
                    prot: Sgl::new(),
                    resp: KVec::with_capacity(1, GFP_KERNEL)?,
                    log: KVec::new(),
                },
                GFP_KERNEL,
            )?;
            free.push(i as u16, GFP_KERNEL)?;
        }
        // Last: a pool that failed to allocate leaves nothing registered
        // (the next kick tries again).
        ep.inflight.register(table.clone())?;
        Ok(Pool { cmds, free, table })
    }
}

/// A chain popped from a virtqueue.
pub(super) struct Chain {
    pub(super) head: u16,
    pub(super) out: usize,
    pub(super) inn: usize,
    pub(super) out_size: usize,
    pub(super) in_size: usize,
    pub(super) log_num: u32,
}

/// `handle_kick` of the request virtqueues.
///
/// # Safety
///
/// Called by the vhost worker with the `poll.work` of one of our
/// virtqueues.
pub(super) unsafe extern "C" fn handle_kick(work: *mut sys::vhost_work) {
    // SAFETY: `work` is the poll work embedded in a vhost_virtqueue.
    let vq = unsafe { kernel::container_of!(work, sys::vhost_virtqueue, poll.work) };
    // SAFETY: all our virtqueues are `Vq`s of a live device.
    let q = unsafe { Vq::from_raw(vq) };
    let mut g = q.lock();
    let Some(ep) = g.backend() else {
        return;
    };
    let ep: *const Endpoint = ep;
    // SAFETY: the endpoint stays installed while the mutex is held.
    let ep = unsafe { &*ep };
    if g.pool().is_none() {
        // SAFETY: the mutex is held; `num` is fixed while a backend is set.
        let num = unsafe { (*vq).num } as usize;
        match Pool::new(q, num, ep) {
            Ok(p) => *g.pool() = Some(p),
            Err(_) => {
                // Answer what is queued as a busy target does; the next
                // kick tries the allocation again.
                pr_err_ratelimited(
                    "no memory for the command pool: requests answered TASK SET FULL",
                );
                let full = status_only(sys::sam_status_SAM_STAT_TASK_SET_FULL as u8);
                // SAFETY: the mutex is held and we run on the owner's worker.
                unsafe {
                    for_each_chain(q, |c| {
                        match vs::plan_io(c.out_size, c.in_size, false, None) {
                            Err(PlanError::NoResponseBuffer) => give_back(q, c, 0),
                            _ => respond_now(q, c, &full),
                        }
                    })
                };
                return;
            }
        }
    }
    // SAFETY: the mutex is held and we run on the owner's worker.
    unsafe { for_each_chain(q, |c| handle_one(&mut g, ep, c)) };
}

/// Pops the available chains of `q` and hands each to `f`, up to the
/// vhost weight, then re-enables notification.
///
/// # Safety
///
/// The virtqueue mutex must be held, on the device owner's worker.
pub(super) unsafe fn for_each_chain(q: &Vq, mut f: impl FnMut(&Chain)) {
    // SAFETY: the mutex is held.
    unsafe { sys::vhost_disable_notify(q.dev().raw(), q.raw()) };
    let mut n = 0;
    // SAFETY: the virtqueue mutex is held on the owner's worker (the caller's contract),
    // and notification was disabled just above, as `next_chain` requires.
    while let Some(c) = unsafe { next_chain(q) } {
        f(&c);
        n += 1;
        // SAFETY: the mutex is held.
        if unsafe { sys::vhost_exceeds_weight(q.raw(), n, 0) } {
            break;
        }
    }
}

/// Pops the next available chain of `q`; when there is none, re-enables
/// notification (and looks once more, as vhost requires).  Notification
/// must be disabled.
///
/// # Safety
///
/// The virtqueue mutex must be held, on the device owner's worker.
pub(super) unsafe fn next_chain(q: &Vq) -> Option<Chain> {
    let dev = q.dev().raw();
    loop {
        let mut out = 0u32;
        let mut inn = 0u32;
        let mut log_num = 0u32;
        // SAFETY: the mutex is held; `iov` is the virtqueue's own array of
        // `iov.len()` entries; `log` is allocated by vhost core.
        let head = unsafe {
            sys::vhost_get_vq_desc(
                q.raw(),
                (*q.raw()).iov.as_mut_ptr(),
                (*q.raw()).iov.len() as u32,
                &mut out,
                &mut inn,
                // The writable descriptors are always recorded, logging or
                // not: logging may be switched on before the chain completes.
                (*q.raw()).log,
                &mut log_num,
            )
        };
        if head < 0 {
            // A descriptor vhost core refused (outside the memory table, a
            // loop, too long a chain): vhost core has signalled the ring's
            // error eventfd; the ring stops until the next kick.
            return None;
        }
        // SAFETY: the mutex is held.
        if head as u32 == unsafe { (*q.raw()).num } {
            // SAFETY: the mutex is held.
            if unsafe { sys::vhost_enable_notify(dev, q.raw()) } {
                // SAFETY: the mutex is held.
                unsafe { sys::vhost_disable_notify(dev, q.raw()) };
                continue;
            }
            return None;
        }
        // SAFETY: vhost_get_vq_desc filled `out + inn` iovecs.
        let (out_size, in_size) = unsafe {
            let iov = &(*q.raw()).iov;
            (
                iov_len(&iov[..out as usize]),
                iov_len(&iov[out as usize..(out + inn) as usize]),
            )
        };
        return Some(Chain {
            head: head as u16,
            out: out as usize,
            inn: inn as usize,
            out_size,
            in_size,
            log_num,
        });
    }
}

pub(super) fn iov_len(iov: &[sys::iovec]) -> usize {
    iov.iter().fold(0usize, |a, v| a.saturating_add(v.iov_len))
}

pub(super) fn pr_err_ratelimited(what: &str) {
    // The kernel crate has no ratelimited print; bound the noise here.
    static LAST: AtomicU32 = AtomicU32::new(0);
    // SAFETY: reading jiffies is always allowed.
    let now = unsafe { ptr::read_volatile(&raw const sys::jiffies) } as u32;
    let last = LAST.load(Ordering::Relaxed);
    if last == 0 || now.wrapping_sub(last) >= 5 * sys::HZ {
        LAST.store(now, Ordering::Relaxed);
        pr_warn!("vhost: {} (further reports suppressed for 5 s)\n", what);
    }
}

/// Serves one chain: submits it, or answers it at once.
///
/// # Safety
///
/// The virtqueue mutex is held (`g`), on the device owner's worker, right
/// after `vhost_get_vq_desc` returned `c`.
unsafe fn handle_one(g: &mut VqGuard<'_>, ep: &Endpoint, c: &Chain) {
    let q = g.vq();
    let pi = q.has_feature(sys::VIRTIO_SCSI_F_T10_PI);
    // SAFETY: the virtqueue mutex is held (`g`) on the owner's worker, and `c` is the chain
    // `vhost_get_vq_desc` just returned (the caller's contract), as `respond_now` requires.
    let answer = |resp: CmdResp| unsafe { respond_now(q, c, &resp) };
    let bad_target = || answer(CmdResp::with_response(Response::BadTarget));
    match vs::plan_io(c.out_size, c.in_size, pi, None) {
        Err(PlanError::NoResponseBuffer) => {
            pr_err_ratelimited("request without room for a response: returned unanswered");
            // SAFETY: the virtqueue mutex is held (`g`) on the owner's worker, and `c` is the
            // chain `vhost_get_vq_desc` just returned (the caller's contract).
            unsafe { give_back(q, c, 0) };
            return;
        }
        Err(PlanError::ShortHeader) => return bad_target(),
        _ => {}
    }
    // SAFETY: the virtqueue's iovecs, filled for this chain.
    let iov = unsafe { (*q.raw()).iov.as_mut_ptr() };
    let mut out_iter = MaybeUninit::<sys::iov_iter>::zeroed();
    let out_iter = out_iter.as_mut_ptr();
    // SAFETY: initialises `out_iter` over the chain's readable iovecs.
    unsafe {
        sys::iov_iter_init(
            out_iter,
            sys::ITER_SOURCE,
            iov,
            c.out as c_ulong,
            c.out_size,
        )
    };
    let hdr_len = CmdReq::header_size(pi);
    let mut hdr = [0u8; vs::CMD_REQ_PI_SIZE];
    // SAFETY: `hdr` has room for `hdr_len` bytes; user copy on the owner's mm.
    let got = unsafe { sys::_copy_from_iter(hdr.as_mut_ptr().cast(), hdr_len, out_iter) };
    if got != hdr_len {
        return bad_target();
    }
    let Ok(req) = CmdReq::parse(&hdr[..hdr_len], pi) else {
        return bad_target();
    };
    let Ok(lun) = req.validate() else {
        return bad_target();
    };
    let Some(target) = ep.target(lun.target) else {
        return bad_target();
    };
    let plan = match vs::plan_io(c.out_size, c.in_size, pi, Some(&req)) {
        Ok(p) => p,
        Err(PlanError::TooMuchData) => {
            pr_err_ratelimited("request larger than the per-command limit");
            return answer(CmdResp::with_response(Response::Failure));
        }
        Err(_) => return bad_target(),
    };
    // `handle_kick` installs the pool before it pops a chain; were it
    // missing, the chain is still answered (as a busy target would).
    let Some(pool) = g.pool().as_mut() else {
        return answer(status_only(sys::sam_status_SAM_STAT_TASK_SET_FULL as u8));
    };
    let Some(slot) = pool.free.pop() else {
        return answer(status_only(sys::sam_status_SAM_STAT_TASK_SET_FULL as u8));
    };
    let cmd = &mut pool.cmds[usize::from(slot)];
    cmd.head = c.head;
    cmd.dir = plan.dir;
    cmd.data_len = plan.data_len;
    cmd.cdb = req.cdb;
    // SAFETY: the virtqueue mutex is held on the owner's worker right after `c` was popped
    // (the caller's contract), and `out_iter` was just advanced past the header.
    if let Err(resp) = unsafe { prepare(q, cmd, c, out_iter, &plan) } {
        // SAFETY: nothing of the command reached target core.
        unsafe { cmd.release_data() };
        pool.free.push_within_capacity(slot).ok();
        return answer(resp);
    }
    let dir = match plan.dir {
        DataDir::None => DMA_NONE,
        DataDir::ToDevice => DMA_TO_DEVICE,
        DataDir::FromDevice => DMA_FROM_DEVICE,
    };
    let attr = match req.task_attr {
        TaskAttr::Simple => sys::TCM_SIMPLE_TAG,
        TaskAttr::Ordered => sys::TCM_ORDERED_TAG,
        TaskAttr::Head => sys::TCM_HEAD_TAG,
        TaskAttr::Aca => sys::TCM_ACA_TAG,
    };
    let se = cmd.common.se_cmd.get();
    // SAFETY: the slot is free: target core released it (or never had it).
    unsafe {
        ptr::write_bytes(se, 0, 1);
        (*se).tag = req.tag;
        if cmd.prot.nents == 0 && cmd.data.nents != 0 {
            (*se).prot_pto = true;
        }
    }
    let total = plan.data_len + plan.prot_len;
    // SAFETY: `se` is zeroed and ours; the session is pinned by the binding;
    // the sense buffer lives in the command.
    let r = unsafe {
        sys::target_init_cmd(
            se,
            target.sess(),
            cmd.sense.get().cast(),
            u64::from(lun.lun),
            total,
            attr as i32,
            dir,
            sys::target_sc_flags_table_TARGET_SCF_ACK_KREF as i32,
        )
    };
    if r != 0 {
        // The session is shutting down; nothing was submitted.
        // SAFETY: nothing of the command reached target core.
        unsafe { cmd.release_data() };
        pool.free.push_within_capacity(slot).ok();
        return answer(CmdResp::with_response(Response::TransportFailure));
    }
    q.dev().inflight.fetch_add(1, Ordering::Relaxed);
    pool.table.start(
        usize::from(slot),
        target.sess(),
        u64::from(lun.lun),
        req.tag,
    );
    // SAFETY: initialised by target_init_cmd; the CDB and scatterlists live
    // in the command until target core releases it.  On failure target core
    // completes the command itself (CHECK CONDITION through queue_status).
    unsafe {
        if sys::target_submit_prep(
            se,
            cmd.cdb.as_mut_ptr(),
            cmd.data.sgl(),
            cmd.data.nents,
            ptr::null_mut(),
            0,
            cmd.prot.sgl(),
            cmd.prot.nents,
            sys::GFP_KERNEL,
        ) == 0
        {
            fabric::prepare_submit(se);
            sys::target_submit(se);
        }
    }
}

fn status_only(status: u8) -> CmdResp {
    let mut r = CmdResp::with_response(Response::Ok);
    r.status = status;
    r
}

/// Maps the data and saves the response iovecs and log of a command.
///
/// # Safety
///
/// As for [`handle_one`]; `out_iter` is positioned after the header.
unsafe fn prepare(
    q: &Vq,
    cmd: &mut Cmd,
    c: &Chain,
    out_iter: *mut sys::iov_iter,
    plan: &vs::IoPlan,
) -> Result<(), CmdResp> {
    let busy = || status_only(sys::sam_status_SAM_STAT_TASK_SET_FULL as u8);
    // SAFETY: the virtqueue's iovecs, filled for this chain.
    let iov = unsafe { (*q.raw()).iov.as_mut_ptr() };
    // SAFETY: `c.inn` iovecs follow the `c.out` readable ones.
    let in_iov = unsafe { core::slice::from_raw_parts(iov.add(c.out), c.inn) };
    save_iovecs(&mut cmd.resp, in_iov, CMD_RESP_SIZE).map_err(|_| busy())?;
    // SAFETY: the virtqueue mutex is held, right after `vhost_get_vq_desc` returned `c`
    // (the caller's contract), so the virtqueue's log array holds `c`'s entries.
    unsafe { save_log(&mut cmd.log, q, c) }.map_err(|_| busy())?;
    if plan.dir == DataDir::None {
        return Ok(());
    }
    let mut data_iter = MaybeUninit::<sys::iov_iter>::zeroed();
    let data_iter = data_iter.as_mut_ptr();
    if plan.dir == DataDir::ToDevice {
        // SAFETY: copies the iterator state (a plain struct).
        unsafe { ptr::copy_nonoverlapping(out_iter, data_iter, 1) };
    } else {
        // SAFETY: the writable iovecs; skip the response.
        unsafe {
            sys::iov_iter_init(
                data_iter,
                sys::ITER_DEST,
                iov.add(c.out),
                c.inn as c_ulong,
                c.in_size,
            );
            sys::iov_iter_advance(data_iter, CMD_RESP_SIZE);
        }
    }
    let fail = |e: MapError| match e {
        MapError::NoMem => busy(),
        MapError::TooManyPages => {
            pr_err_ratelimited("request with more pages than the per-command limit");
            CmdResp::with_response(Response::Failure)
        }
        MapError::Fault => {
            pr_err_ratelimited("request buffer not in guest memory");
            CmdResp::with_response(Response::Failure)
        }
    };
    if plan.prot_len != 0 {
        let mut prot_iter = MaybeUninit::<sys::iov_iter>::zeroed();
        let prot_iter = prot_iter.as_mut_ptr();
        // SAFETY: a copy of the data iterator cut to the PI bytes, then the
        // data iterator moved past them.
        unsafe {
            ptr::copy_nonoverlapping(data_iter, prot_iter, 1);
            sys::tcm_virt_iov_iter_truncate(prot_iter, plan.prot_len as usize);
            sys::iov_iter_advance(data_iter, plan.prot_len as usize);
            cmd.prot.map(&mut *prot_iter).map_err(fail)?;
        }
    }
    // SAFETY: the data iterator is cut to the data length (the rest of the
    // buffers, by construction of the plan).
    unsafe {
        sys::tcm_virt_iov_iter_truncate(data_iter, plan.data_len as usize);
        cmd.data.map(&mut *data_iter).map_err(fail)?;
    }
    Ok(())
}

impl Cmd {
    /// Releases the mapped pages and scatterlists.
    ///
    /// # Safety
    ///
    /// Target core must not hold the command.
    unsafe fn release_data(&mut self) {
        // SAFETY: target core does not hold the command (the caller's contract), so the lists
        // are ours; only `map` fills them, and their first `nents` entries hold its references.
        unsafe {
            self.data.release();
            self.prot.release();
        }
    }
}

/// Copies the iovecs covering the first `want` bytes of `iov` into `to`
/// (the virtqueue's array is reused by the next chain).
pub(super) fn save_iovecs(to: &mut KVec<sys::iovec>, iov: &[sys::iovec], want: usize) -> Result {
    to.clear();
    let mut have = 0usize;
    for v in iov {
        if have >= want {
            break;
        }
        to.push(
            sys::iovec {
                iov_base: v.iov_base,
                iov_len: v.iov_len,
            },
            GFP_KERNEL,
        )?;
        have = have.saturating_add(v.iov_len);
    }
    Ok(())
}

/// Copies the dirty-log entries of chain `c` into `to`.
///
/// # Safety
///
/// The virtqueue mutex is held, right after `vhost_get_vq_desc` returned
/// `c`.
pub(super) unsafe fn save_log(to: &mut KVec<sys::vhost_log>, q: &Vq, c: &Chain) -> Result {
    to.clear();
    if c.log_num == 0 {
        return Ok(());
    }
    // SAFETY: vhost_get_vq_desc wrote `log_num` entries to the virtqueue's
    // log array.
    let log = unsafe { core::slice::from_raw_parts((*q.raw()).log, c.log_num as usize) };
    for l in log {
        to.push(
            sys::vhost_log {
                addr: l.addr,
                len: l.len,
            },
            GFP_KERNEL,
        )?;
    }
    Ok(())
}

/// Marks the pages of `log` dirty when dirty logging is on (now: it may
/// have been switched on after the chain was popped).
///
/// # Safety
///
/// The virtqueue mutex is held.
pub(super) unsafe fn log_write(q: &Vq, log: &mut KVec<sys::vhost_log>) {
    if log.is_empty() || !q.has_feature(sys::VHOST_F_LOG_ALL) {
        return;
    }
    // SAFETY: the mutex is held; the entries are valid log entries.
    unsafe {
        sys::vhost_log_write(
            q.raw(),
            log.as_mut_ptr(),
            log.len() as u32,
            u64::MAX,
            ptr::null_mut(),
            0,
        )
    };
}

/// Writes `resp` to the chain's response buffer and returns the chain.
///
/// # Safety
///
/// As for [`handle_one`].
unsafe fn respond_now(q: &Vq, c: &Chain, resp: &CmdResp) {
    // SAFETY: the virtqueue's iovecs, filled for this chain.
    let iov = unsafe { (*q.raw()).iov.as_mut_ptr().add(c.out) };
    let bytes = resp.encode();
    // SAFETY: `iov` points to the chain's `c.inn` writable iovecs, filled by
    // vhost_get_vq_desc: user addresses of the owner's mm, in which the worker runs.
    let n = unsafe { write_iov(iov, c.inn, &bytes) };
    // SAFETY: the virtqueue mutex is held on the owner's worker, right after
    // `vhost_get_vq_desc` returned `c` (the caller's contract).
    unsafe { give_back(q, c, n as u32) };
}

/// Copies `bytes` to the start of the `cnt` iovecs at `iov`.
///
/// # Safety
///
/// `iov` must point to `cnt` valid user iovecs of the current mm.
pub(super) unsafe fn write_iov(iov: *const sys::iovec, cnt: usize, bytes: &[u8]) -> usize {
    let mut it = MaybeUninit::<sys::iov_iter>::zeroed();
    let it = it.as_mut_ptr();
    // SAFETY: `iov` points to `cnt` valid user iovecs of the current mm (the caller's
    // contract); `it` is a local iterator, initialised before the copy.
    unsafe {
        let total = iov_len(core::slice::from_raw_parts(iov, cnt));
        sys::iov_iter_init(it, sys::ITER_DEST, iov, cnt as c_ulong, total);
        sys::_copy_to_iter(bytes.as_ptr().cast::<c_void>(), bytes.len(), it)
    }
}

/// Returns the chain to the used ring with `len` bytes written, logs its
/// writable pages when dirty logging is on, and signals the guest.
///
/// # Safety
///
/// As for [`handle_one`].
pub(super) unsafe fn give_back(q: &Vq, c: &Chain, len: u32) {
    // SAFETY: the mutex is held; the log entries are those just returned
    // by vhost_get_vq_desc.
    unsafe {
        sys::vhost_add_used_and_signal(q.dev().raw(), q.raw(), u32::from(c.head), len as i32);
        if c.log_num != 0 && q.has_feature(sys::VHOST_F_LOG_ALL) {
            sys::vhost_log_write(
                q.raw(),
                (*q.raw()).log,
                c.log_num,
                u64::MAX,
                ptr::null_mut(),
                0,
            );
        }
    }
}

/// Target core released a command (`release_cmd`): queue its completion on
/// its virtqueue's worker.
///
/// # Safety
///
/// `se_cmd` must be a command this module submitted, released once.
pub(crate) unsafe fn release_cmd(se_cmd: *mut sys::se_cmd) {
    let cmd = se_cmd.cast::<Cmd>();
    // SAFETY: per the invariant of `Cmd`, and the pool outlives every
    // submitted command (the endpoint drains before freeing it).
    let q = unsafe { &*(*cmd).vq };
    // Once the command is on the stack, a completion pass already running
    // may answer it and bring the count to zero, and the closer's drain
    // would then free the device while this function still uses `q`: a
    // count of our own keeps it until the work is queued.
    q.dev().inflight.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the command is ours again; only its link is written.
    unsafe { crate::chardev::push(&q.done, cmd, |c| &raw mut (*c).next) };
    // SAFETY: the work is initialised and belongs to this virtqueue.
    if !unsafe { sys::vhost_vq_work_queue(q.raw(), q.completion_work.get()) } {
        // No worker (the owner is gone): release without answering.
        let mut c = q.done.swap(ptr::null_mut(), Ordering::Acquire);
        while !c.is_null() {
            // SAFETY: each command on the stack is released and ours.
            unsafe {
                let next = (*c).next;
                (*c).release_data();
                c = next;
            }
            put_inflight(q);
        }
    }
    // The last use of `q` is above: after this the device may go.
    put_inflight(q);
}

pub(super) fn put_inflight(q: &Vq) {
    let d = q.dev();
    if d.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
        // SAFETY: the counter lives as long as the device.
        unsafe { sys::wake_up_var(d.inflight.as_ptr().cast()) };
    }
}

/// The completion work of a request virtqueue: writes the responses of
/// released commands and returns their chains.
///
/// # Safety
///
/// Called by the vhost worker with the `completion_work` of a `Vq`.
pub(super) unsafe extern "C" fn complete_work(work: *mut sys::vhost_work) {
    // SAFETY: `work` is the completion work embedded in a `Vq`.
    let q = unsafe {
        &*kernel::container_of!(work.cast::<Opaque<sys::vhost_work>>(), Vq, completion_work)
    };
    let mut c = q.done.swap(ptr::null_mut(), Ordering::Acquire);
    if c.is_null() {
        return;
    }
    let mut g = q.lock();
    let mut signal = false;
    while !c.is_null() {
        // SAFETY: each command on the stack was released by target core and
        // belongs to this virtqueue's pool, which lives while commands are
        // in flight.
        let cmd = unsafe { &mut *c };
        c = cmd.next;
        let se = cmd.common.se_cmd.get();
        // SAFETY: target core is done with the command; its fields are
        // final.
        let (resid, status, sense_len, flags, aborted) = unsafe {
            (
                (*se).residual_count,
                (*se).scsi_status,
                u32::from((*se).scsi_sense_length).min(SENSE_SIZE as u32),
                (*se).se_cmd_flags,
                (*se).transport_state & sys::CMD_T_ABORTED != 0,
            )
        };
        let by_abort = g
            .pool()
            .as_ref()
            .is_some_and(|p| p.table.finish(usize::from(cmd.slot)));
        let mut resp = status_only(status);
        resp.resid = resid;
        resp.sense_len = sense_len;
        // SAFETY: the sense buffer is ours and target core is done with it.
        let sense = unsafe { &*cmd.sense.get() };
        resp.sense[..sense_len as usize].copy_from_slice(&sense[..sense_len as usize]);
        let mut len = CMD_RESP_SIZE as u32;
        if aborted && status != sys::sam_status_SAM_STAT_TASK_ABORTED as u8 {
            // Aborted by task management without a status (no TAS): the
            // request ends as the virtio spec says, aborted by ABORT TASK
            // (SET), reset by the other functions.
            resp = CmdResp::with_response(if by_abort {
                Response::Aborted
            } else {
                Response::Reset
            });
        } else if cmd.dir == DataDir::FromDevice {
            let under = flags & sys::se_cmd_flags_table_SCF_UNDERFLOW_BIT != 0;
            len += if under {
                cmd.data_len.saturating_sub(resid)
            } else {
                cmd.data_len
            };
        }
        // SAFETY: the saved response iovecs of the chain; we run on the
        // owner's worker.
        let n = unsafe { write_iov(cmd.resp.as_ptr(), cmd.resp.len(), &resp.encode()) };
        if n == CMD_RESP_SIZE {
            // SAFETY: the mutex is held.
            unsafe { sys::vhost_add_used(q.raw(), u32::from(cmd.head), len as i32) };
            signal = true;
        } else {
            pr_err_ratelimited("response buffer faulted");
        }
        // SAFETY: the mutex is held; the log entries are the command's.
        unsafe { log_write(q, &mut cmd.log) };
        // SAFETY: target core released the command.
        unsafe { cmd.release_data() };
        let slot = cmd.slot;
        if let Some(p) = g.pool().as_mut() {
            p.free.push_within_capacity(slot).ok();
        }
        put_inflight(q);
    }
    if signal {
        // With the mutex still held: VHOST_SET_VRING_CALL replaces the call
        // eventfd and drops its reference under this mutex, so the context
        // `vhost_signal` reads must not be read after the unlock.
        // SAFETY: the device and virtqueue are live; the mutex is held (`g`).
        unsafe { sys::vhost_signal(q.dev().raw(), q.raw()) };
    }
    drop(g);
}
