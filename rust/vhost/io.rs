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
    fabric::{self, CmdHead, Submit, Submitted},
    glue::{
        pages::{MapError, Sgl},
        params,
        ratelimit::RateLimit,
        stack::{impl_link, Taken},
        target::sam,
        trace::{self, Refusal, Stamp},
        vhost::{Chain, IovIter, OnWorker, PassEnd, SavedIov, Split, UsedBatch},
    },
    nexus::{self, WorkerQueue},
    wire::virtio_scsi::{
        self as vs, CmdReq, CmdResp, DataDir, PlanError, Response, TaskAttr, CMD_RESP_SIZE,
        SENSE_SIZE,
    },
};
use core::ptr;
use kernel::{prelude::*, sync::Arc, types::Opaque};

/// Scatterlist entries kept in each command for protection information.
const PROT_INLINE_SG: usize = 2;

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
    /// The request's tag and LUN, and when it was submitted, for the trace.
    tag: u64,
    lun: u64,
    stamp: Stamp,
    cdb: [u8; vs::CDB_SIZE],
    data: Sgl,
    /// T10 PI bytes (8 per 512-byte block: 64 for 4 KiB of data), only with
    /// VIRTIO_SCSI_F_T10_PI; larger lists chain from the sg pool.
    prot: Sgl<PROT_INLINE_SG>,
    /// The response buffer's iovecs (copied: the virtqueue's array is reused).
    resp: SavedIov,
    /// Dirty-log entries of the chain's writable descriptors.
    log: KVec<sys::vhost_log>,
}

/// The commands of a virtqueue, as many as its ring has entries.
pub(crate) struct Pool {
    cmds: KVVec<Cmd>,
    free: nexus::FreeSlots,
    /// The pool's slots in the endpoint's table of commands in flight.
    table: Arc<nexus::Table>,
}

impl Pool {
    #[inline(never)]
    fn new(vq: &Vq, num: usize, ep: &Endpoint) -> Result<Pool> {
        let table = nexus::Table::new(num)?;
        let mut cmds = KVVec::with_capacity(num, GFP_KERNEL)?;
        let mut free = nexus::FreeSlots::with_room(num)?;
        for i in 0..num {
            // A ring has at most 32768 entries (vhost's VHOST_SET_VRING_NUM).
            let slot = u16::try_from(i).map_err(|_| EINVAL)?;
            cmds.push(Cmd::new(vq, slot)?, GFP_KERNEL)?;
            free.put(slot);
        }
        // Last: a pool that failed to allocate leaves nothing registered
        // (the next kick tries again).
        ep.inflight.register(table.clone())?;
        Ok(Pool { cmds, free, table })
    }
}

/// How a chain that is not submitted is returned.
enum Answer {
    /// With this response.
    Resp(CmdResp),
    /// Unanswered (used length 0): no room for a response.
    Unanswered,
}

impl From<CmdResp> for Answer {
    fn from(r: CmdResp) -> Answer {
        Answer::Resp(r)
    }
}

/// A request not submitted: why, its tag (0 if it was not read), and how
/// it is answered.
struct Refused {
    why: Refusal,
    tag: u64,
    answer: Answer,
}

impl Refused {
    fn new(why: Refusal, tag: u64, answer: impl Into<Answer>) -> Refused {
        Refused {
            why,
            tag,
            answer: answer.into(),
        }
    }
}

/// `handle_kick` of the request virtqueues.
pub(super) fn handle_kick(q: &Vq, w: &OnWorker) {
    let mut g = q.lock();
    let num = g.num();
    let (ep, pool) = g.parts();
    let Some(ep) = ep else {
        return;
    };
    if pool.is_none() {
        match Pool::new(q, num, ep) {
            Ok(p) => *pool = Some(p),
            Err(_) => {
                // Answer what is queued as a busy target does; the next
                // kick tries the allocation again.
                pr_err_ratelimited(
                    "no memory for the command pool: requests answered TASK SET FULL",
                );
                let full = status_only(sam::TASK_SET_FULL).encode();
                g.for_each_chain(w, |g, c| {
                    q.stats.refuse(Refusal::Busy);
                    match vs::plan_io(c.out_size, c.in_size, false, None) {
                        Err(PlanError::NoResponseBuffer) => g.give_back(w, c, 0),
                        _ => g.answer(w, c, &full),
                    }
                });
                return;
            }
        }
    }
    // Commands run to completion in this pass (`release_cmd` on this
    // thread) are answered under the same lock, right after it or every
    // `answer_batch` commands within it, with one used-index update and
    // one signal for each batch.  With polling
    // (`VHOST_SET_VRING_BUSYLOOP_TIMEOUT` or `poll_us`) the ring stays
    // without notification while the answers go out and the worker polls
    // it: the requests the client sends meanwhile need no kick and start
    // another pass.  Each poll that found requests counts against the
    // weight as one more chain.
    let us = g.poll_us();
    // Features change only under the mutex (VHOST_SET_FEATURES), held
    // for the whole of this call: read once, not per request.
    let pi = g.has_feature(sys::VIRTIO_SCSI_F_T10_PI);
    // Every `answer_batch` commands submitted, those already released (run
    // to completion) are answered there and then, with a signal, rather
    // than at the end of the pass: the driver reaps them and queues more
    // while this worker goes on, instead of both taking turns at 32
    // commands each ("Answering within a pass" in admin-guide.rst).  Only
    // while nothing else waits for this CPU: when other tasks are ready to
    // run, the vCPUs are all busy, there is nothing to overlap, and an
    // early signal only adds a wake-up of the driver.
    let every = params::answer_batch();
    let mut since = 0usize;
    let mut n = 0usize;
    loop {
        let end = g.pass(w, |g| {
            g.take_chains(w, &mut n, us == 0, |g, c| {
                let Err(r) = submit(q, g, w, c, pi) else {
                    since += 1;
                    if every.is_some_and(|e| since >= e.get()) {
                        since = 0;
                        if params::cpu_alone() {
                            answer_own(q, g, w);
                        }
                    }
                    return;
                };
                q.stats.refuse(r.why);
                let response = match &r.answer {
                    Answer::Resp(resp) => resp.response as u8,
                    Answer::Unanswered => u8::MAX,
                };
                trace::cmd_refused(q.dev().trace_id(), q.index, r.tag, r.why, response);
                match r.answer {
                    Answer::Resp(resp) => g.answer(w, c, &resp.encode()),
                    Answer::Unanswered => g.give_back(w, c, 0),
                }
            })
        });
        answer_own(q, &mut g, w);
        if us == 0 || end != PassEnd::Empty {
            break;
        }
        if !g.busy_poll(w, us) {
            q.polls.empty.inc();
            break;
        }
        q.polls.found.inc();
        n = n.saturating_add(1);
        if g.exceeds_weight(n, 0) {
            break;
        }
    }
}

/// Answers the commands the worker's kick pass ran to completion so far.
fn answer_own(q: &Vq, g: &mut VqGuard<'_>, w: &OnWorker) {
    let done = q.done.take_all();
    if !done.is_empty() {
        answer_released(q, g, w, done);
    }
}

/// Warns about input from the guest, at most once per 5 s.
pub(super) fn pr_err_ratelimited(what: &str) {
    static LIMIT: RateLimit = RateLimit::new("vhost");
    LIMIT.warn(what);
}

/// Serves chain `c`: submits it to target core, or says how to answer it;
/// `pi`: VIRTIO_SCSI_F_T10_PI was negotiated.
#[inline(never)]
fn submit(q: &Vq, g: &mut VqGuard<'_>, w: &OnWorker, c: &Chain, pi: bool) -> Result<(), Refused> {
    // Answered BAD_TARGET: a request that cannot be read (as C vhost_scsi
    // answers it), or one for a target the device does not serve.
    let malformed = |tag| {
        Refused::new(
            Refusal::Malformed,
            tag,
            CmdResp::with_response(Response::BadTarget),
        )
    };
    let bad_target = |tag| {
        Refused::new(
            Refusal::BadTarget,
            tag,
            CmdResp::with_response(Response::BadTarget),
        )
    };
    let full = |tag| Refused::new(Refusal::Busy, tag, status_only(sam::TASK_SET_FULL));
    match vs::plan_io(c.out_size, c.in_size, pi, None) {
        Err(PlanError::NoResponseBuffer) => {
            pr_err_ratelimited("request without room for a response: returned unanswered");
            return Err(Refused::new(Refusal::Malformed, 0, Answer::Unanswered));
        }
        Err(PlanError::ShortHeader) => return Err(malformed(0)),
        _ => {}
    }
    let Split {
        backend,
        state: pool,
        readable,
        writable,
        log,
    } = g.split(c);
    let mut out_iter = IovIter::source(readable);
    let hdr_len = CmdReq::header_size(pi);
    let mut hdr = [0u8; vs::CMD_REQ_PI_SIZE];
    let hdr = hdr.get_mut(..hdr_len).ok_or_else(|| malformed(0))?;
    if out_iter.copy_from(w, hdr) != hdr_len {
        return Err(malformed(0));
    }
    let req = CmdReq::parse(hdr, pi).map_err(|_| malformed(0))?;
    let tag = req.tag;
    let lun = req.validate().map_err(|_| malformed(tag))?;
    // `handle_kick` serves a queue only while it has a backend.
    let ep = backend.ok_or_else(|| bad_target(tag))?;
    let target = ep.target(lun.target).ok_or_else(|| bad_target(tag))?;
    let plan = match vs::plan_io(c.out_size, c.in_size, pi, Some(&req)) {
        Ok(p) => p,
        Err(PlanError::TooMuchData) => {
            pr_err_ratelimited("request larger than the per-command limit");
            let failure = CmdResp::with_response(Response::Failure);
            return Err(Refused::new(Refusal::Malformed, tag, failure));
        }
        Err(_) => return Err(malformed(tag)),
    };
    // `handle_kick` installs the pool before it pops a chain; were it
    // missing, the chain is still answered (as a busy target would).
    let pool = pool.as_mut().ok_or_else(|| full(tag))?;
    let slot = pool.free.take().ok_or_else(|| full(tag))?;
    let cmd = &mut pool.cmds[usize::from(slot)];
    cmd.head = c.head;
    cmd.dir = plan.dir;
    cmd.data_len = plan.data_len;
    cmd.cdb = req.cdb;
    cmd.tag = tag;
    cmd.lun = u64::from(lun.lun);
    if let Err((why, resp)) = prepare(cmd, w, &out_iter, writable, log, &plan) {
        // SAFETY: nothing of the command reached target core.
        unsafe { cmd.release_data() };
        pool.free.put(slot);
        return Err(Refused::new(why, tag, resp));
    }
    let submit = Submit {
        sess: target.sess(),
        lun: u64::from(lun.lun),
        tag: req.tag,
        attr: match req.task_attr {
            TaskAttr::Simple => fabric::TaskAttr::Simple,
            TaskAttr::Ordered => fabric::TaskAttr::Ordered,
            TaskAttr::Head => fabric::TaskAttr::Head,
            TaskAttr::Aca => fabric::TaskAttr::Aca,
        },
        dir: match plan.dir {
            DataDir::None => fabric::DataDir::None,
            DataDir::ToDevice => fabric::DataDir::ToDevice,
            DataDir::FromDevice => fabric::DataDir::FromDevice,
        },
        len: plan.data_len + plan.prot_len,
        sense: cmd.sense.get().cast(),
        cdb: cmd.cdb.as_mut_ptr(),
        data: cmd.data.view(),
        prot: Some(cmd.prot.view()),
        offloads: Some(&q.offloads),
    };
    let table = &pool.table;
    cmd.stamp = Stamp::now();
    // SAFETY: the slot came off the free list: target core released it (or
    // never had it); the session is pinned by the binding; the sense
    // buffer, CDB and scatterlists live in the command until release.
    let r = unsafe {
        cmd.common.submit(
            submit,
            || {
                q.get_inflight();
                table.start(
                    usize::from(slot),
                    target.sess(),
                    u64::from(lun.lun),
                    req.tag,
                );
            },
            fabric::prepare,
        )
    };
    let Ok(how) = r else {
        // The session is shutting down; nothing was submitted.
        // SAFETY: nothing of the command reached target core.
        unsafe { cmd.release_data() };
        pool.free.put(slot);
        let failure = CmdResp::with_response(Response::TransportFailure);
        return Err(Refused::new(Refusal::Transport, tag, failure));
    };
    // The completion of the command is counted by this same worker, later.
    q.stats.submitted.inc();
    if how == Submitted::Offloaded {
        q.stats.offloaded.inc();
    }
    trace::cmd_submit(
        q.dev().trace_id(),
        q.index,
        tag,
        u64::from(lun.lun),
        req.cdb[0],
        match plan.dir {
            DataDir::None => 0,
            DataDir::ToDevice => 1,
            DataDir::FromDevice => 2,
        },
        plan.data_len,
    );
    Ok(())
}

fn status_only(status: u8) -> CmdResp {
    let mut r = CmdResp::with_response(Response::Ok);
    r.status = status;
    r
}

/// Maps the data and saves the response iovecs and log of a command;
/// `out_iter` is positioned after the request header.
#[inline(never)]
fn prepare(
    cmd: &mut Cmd,
    w: &OnWorker,
    out_iter: &IovIter<'_>,
    writable: &[sys::iovec],
    log: &[sys::vhost_log],
    plan: &vs::IoPlan,
) -> Result<(), (Refusal, CmdResp)> {
    let busy = || (Refusal::Busy, status_only(sam::TASK_SET_FULL));
    cmd.resp.save(writable, CMD_RESP_SIZE).map_err(|_| busy())?;
    save_log(&mut cmd.log, log).map_err(|_| busy())?;
    if plan.dir == DataDir::None {
        return Ok(());
    }
    let mut data_iter = if plan.dir == DataDir::ToDevice {
        out_iter.duplicate()
    } else {
        // The writable buffers after the response.
        let mut it = IovIter::dest(writable);
        it.advance(CMD_RESP_SIZE);
        it
    };
    let fail = |e: MapError| match e {
        MapError::NoMem => busy(),
        MapError::TooManyPages => {
            pr_err_ratelimited("request with more pages than the per-command limit");
            (
                Refusal::PinFailure,
                CmdResp::with_response(Response::Failure),
            )
        }
        MapError::Fault => {
            pr_err_ratelimited("request buffer not in guest memory");
            (
                Refusal::PinFailure,
                CmdResp::with_response(Response::Failure),
            )
        }
    };
    if plan.prot_len != 0 {
        // The PI bytes come first: a copy cut to them, then the data
        // iterator moved past them.
        let mut prot_iter = data_iter.duplicate();
        prot_iter.truncate(plan.prot_len as usize);
        data_iter.advance(plan.prot_len as usize);
        cmd.prot.map(&mut prot_iter, w).map_err(fail)?;
    }
    // The data is the rest of the buffers, by construction of the plan.
    data_iter.truncate(plan.data_len as usize);
    cmd.data.map(&mut data_iter, w).map_err(fail)
}

impl_link!(Cmd, next);

impl Cmd {
    /// A free slot.
    fn new(vq: &Vq, slot: u16) -> Result<Cmd> {
        Ok(Cmd {
            common: CmdHead::new(release_cmd),
            sense: Opaque::zeroed(),
            vq,
            next: ptr::null_mut(),
            slot,
            head: 0,
            dir: DataDir::None,
            data_len: 0,
            tag: 0,
            lun: 0,
            stamp: Stamp::default(),
            cdb: [0; vs::CDB_SIZE],
            data: Sgl::new()?,
            prot: Sgl::new()?,
            resp: SavedIov::with_capacity(1)?,
            log: KVec::new(),
        })
    }

    /// Releases the mapped pages and scatterlists.
    ///
    /// # Safety
    ///
    /// Target core must not hold the command.
    #[inline]
    pub(super) unsafe fn release_data(&mut self) {
        // SAFETY: target core does not hold the command (the caller's contract), so the lists
        // are ours; only `map` fills them, and their first `nents` entries hold its references.
        unsafe {
            self.data.release();
            self.prot.release();
        }
    }
}

/// Copies the dirty-log entries of a chain into `to` (the virtqueue's
/// array is reused by the next chain).
pub(super) fn save_log(to: &mut KVec<sys::vhost_log>, log: &[sys::vhost_log]) -> Result {
    to.clear();
    to.reserve(log.len(), GFP_KERNEL)?;
    for l in log {
        // Room was reserved just above.
        let _ = to.push_within_capacity(sys::vhost_log {
            addr: l.addr,
            len: l.len,
        });
    }
    Ok(())
}

/// Target core released a command (`release_cmd`): its virtqueue's worker
/// answers it (`nexus::released`).
///
/// # Safety
///
/// `se_cmd` must be a command this module submitted, released once.
pub(super) unsafe fn release_cmd(se_cmd: *mut sys::se_cmd) {
    let cmd = se_cmd.cast::<Cmd>();
    // SAFETY: per the invariant of `Cmd`, and the pool outlives every
    // submitted command (the endpoint drains before freeing it).
    let q = unsafe { &*(*cmd).vq };
    // SAFETY: target core released the command, submitted on `q` with a
    // count of its in flight, once (the caller's contract).
    unsafe { nexus::released(q, cmd) };
}

/// The completion work of a request virtqueue: writes the responses of
/// released commands and returns their chains.
pub(super) fn complete_work(q: &Vq, w: &OnWorker) {
    let done = q.done.take_all();
    if done.is_empty() {
        return;
    }
    let mut g = q.lock();
    answer_released(q, &mut g, w, done);
}

/// Writes the responses of the released commands `done` and returns their
/// chains, with one used-index update and one signal.
fn answer_released(q: &Vq, g: &mut VqGuard<'_>, w: &OnWorker, done: Taken<Cmd>) {
    // The responses go on the used ring together: one used-index update
    // and one signal per pass (per `USED_BATCH` entries at most).
    let mut batch = UsedBatch::new();
    // Whether dirty logging is on: features change only under the mutex,
    // held here, so once for the batch rather than a call per command.
    let logging = g.has_feature(sys::VHOST_F_LOG_ALL);
    for c in done {
        // SAFETY: each command on the stack was released by target core and
        // belongs to this virtqueue's pool, which lives while commands are
        // in flight.
        let cmd = unsafe { &mut *c };
        // SAFETY: target core released the command.
        let o = unsafe { cmd.common.outcome() };
        let (resid, status, aborted) = (o.resid, o.status, o.aborted);
        let sense_len = o.sense_len.min(SENSE_SIZE);
        let by_abort = g
            .state()
            .as_ref()
            .is_some_and(|p| p.table.finish(usize::from(cmd.slot)));
        let mut len = CMD_RESP_SIZE as u32;
        let moved = if o.underflow {
            cmd.data_len.saturating_sub(resid)
        } else {
            cmd.data_len
        };
        // The response is encoded from its parts: the sense bytes are
        // copied once, and only when there are some.
        let (buf, response, resp_status) = if aborted && status != sam::TASK_ABORTED {
            // Aborted by task management without a status (no TAS): the
            // request ends as the virtio spec says, aborted by ABORT TASK
            // (SET), reset by the other functions.
            let response = if by_abort {
                Response::Aborted
            } else {
                Response::Reset
            };
            (CmdResp::encode_ended(response, 0, 0, &[]), response, 0)
        } else {
            // SAFETY: the sense buffer is ours and target core is done with it.
            let sense = unsafe { &*cmd.sense.get() };
            let buf = CmdResp::encode_ended(Response::Ok, status, resid, &sense[..sense_len]);
            if cmd.dir == DataDir::FromDevice {
                len += moved;
            }
            (buf, Response::Ok, status)
        };
        q.stats.complete(
            cmd.dir.into(),
            moved,
            response == Response::Ok && status == sam::GOOD,
        );
        trace::cmd_complete(
            q.dev().trace_id(),
            q.index,
            cmd.tag,
            cmd.lun,
            cmd.cdb[0],
            resp_status,
            response as u8,
            len,
            cmd.stamp,
        );
        let n = IovIter::dest(cmd.resp.iov()).copy_to(w, &buf);
        if n == CMD_RESP_SIZE {
            g.batch_used(w, &mut batch, cmd.head, len);
        } else {
            pr_err_ratelimited("response buffer faulted");
        }
        if logging {
            g.log_write(w, &cmd.log);
        }
        // SAFETY: target core released the command.
        unsafe { cmd.release_data() };
        let slot = cmd.slot;
        if let Some(p) = g.state().as_mut() {
            p.free.put(slot);
        }
        q.put_inflight();
    }
    if g.flush_used(w, &mut batch) {
        // With the mutex still held (`VqLock::signal`).
        g.signal();
    }
}
