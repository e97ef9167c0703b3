// SPDX-License-Identifier: GPL-2.0

//! The frames: the inbound queue read, each frame checked and served, SCSI
//! commands submitted to target core and answered when it releases them.

use super::mgmt::{cache_flush, event_wait, serve_dcmd};
use super::tmf::{abort, start_tmf, Tmf};
use super::{
    answer, field, flush_deferred, read_user, signal, write_user, Adapter, Endpoint, MCmd, Mem,
    Queue, QueueGuard, Reply, Run, State, Use, IQ_ENTRIES, R_IQ_CONSUMER, R_IQ_NO_KICK,
    R_IQ_PRODUCER, WEIGHT,
};
use crate::{
    bindings as sys,
    fabric::{self, DataDir, Submit, Submitted, TaskAttr},
    glue::{
        pages::MapError,
        params,
        stack::Taken,
        target::sam,
        trace::{self, Refusal, Stamp},
        user::put_le32,
        vhost::{IovIter, OnWorker},
    },
    nexus::{self, WorkerQueue},
    wire::mfi::{
        self, dcmd, off, op, stat, Completion, Dir, Frame, Personality, QueueInfo, NO_SLOT,
    },
    wire::tmf::Function,
};
use core::sync::atomic::Ordering;
use kernel::{
    prelude::*,
    sync::barrier::{smp_mb, Full},
};

/// `handle_kick`: reads the inbound queue.
pub(super) fn handle_kick(q: &Queue, w: &OnWorker) {
    let a = q.adapter();
    let mut g = q.lock();
    let mut run = Run::default();
    // Commands run to completion in this pass (`release_cmd` on this
    // thread) are answered under the same lock, every `answer_batch`
    // frames read (while this CPU has nothing else to run) and at the end
    // of the pass, each batch's replies published with one producer-index
    // write and one signal: the initiator reaps them and posts more while
    // this worker goes on.
    let batch = params::answer_batch()
        .and_then(|n| u32::try_from(n.get()).ok())
        .map_or(WEIGHT, |n| n.min(WEIGHT));
    let mut served = 0u32;
    // With a busy-loop timeout (`VHOST_SET_VRING_BUSYLOOP_TIMEOUT` on the
    // adapter's queue, or `poll_us`) the worker, once the inbound queue is
    // empty and the pass's replies are out, watches the producer index for
    // that long before it waits for a kick: frames posted meanwhile start
    // another batch at once.  Each poll that found frames counts against
    // the weight as one more frame.
    let us = g.poll_us();
    // Where this run reads the inbound queue, the initiator may post
    // without a kick from here on: `iq_producer` is read again before the
    // run ends (below).  Only this function writes `iq_no_kick`, under
    // the virtqueue mutex, held until it clears it; so does every change
    // of the endpoint or the state, so `reads` holds to the end.
    let reads = consumer_if_read(&mut g).is_some();
    if reads {
        a.reg32::<R_IQ_NO_KICK>().store(1, Ordering::Relaxed);
    }
    let more = loop {
        let (more, n) = g.pass(w, |g| {
            let (ep, st, mem) = g.parts_mem();
            let mem = Mem(mem);
            let (Some(ep), Some(st)) = (ep, st.as_mut()) else {
                return (false, 0);
            };
            flush_deferred(a, st, &mut run);
            let producer = a.reg32::<R_IQ_PRODUCER>().load(Ordering::Acquire);
            let pending = producer.wrapping_sub(st.iq_consumer);
            if pending > IQ_ENTRIES {
                a.error("inbound queue producer index out of range: entries skipped");
                st.iq_consumer = producer;
                a.reg32::<R_IQ_CONSUMER>()
                    .store(producer, Ordering::Release);
                return (false, 0);
            }
            // `served <= WEIGHT`: each batch reads at most what is left.
            // Batches end early for an answer only while nothing else
            // waits for this CPU, as on the vhost queues (`io::handle_kick`).
            let step = if params::cpu_alone() { batch } else { WEIGHT };
            let todo = pending.min(WEIGHT - served).min(step);
            // The frames' copies, the state's buffer: a frame is parsed
            // only within the bytes read for it (`serve`), so nothing of
            // an earlier frame is seen.  Always there: only this takes it
            // out, and puts it back below.
            let Some(mut frame) = st.frame.take() else {
                a.error("frame buffer missing: inbound queue not served");
                return (false, 0);
            };
            for _ in 0..todo {
                let v = a.iq(st.iq_consumer).load(Ordering::Acquire);
                st.iq_consumer = st.iq_consumer.wrapping_add(1);
                serve(q, w, a, ep, &mem, st, v, &mut frame, &mut run);
            }
            st.frame = Some(frame);
            a.reg32::<R_IQ_CONSUMER>()
                .store(st.iq_consumer, Ordering::Release);
            (pending > todo, todo)
        });
        served += n;
        let done = q.done.take_all();
        if !done.is_empty() {
            answer_released(q, &mut g, done, &mut run);
        }
        if more && served < WEIGHT {
            // This batch's replies go out now; the pass goes on.
            signal(a, &g, &run);
            run = Run::default();
            continue;
        }
        if more || us == 0 || served >= WEIGHT {
            break more;
        }
        // The inbound queue is empty: the replies go out, then the worker
        // polls the producer index (the register page, not user memory).
        signal(a, &g, &run);
        run = Run::default();
        let consumer = match g.state() {
            Some(st) => st.iq_consumer,
            None => break false,
        };
        let posted = || a.reg32::<R_IQ_PRODUCER>().load(Ordering::Acquire) != consumer;
        if !g.poll_until(w, us, posted) {
            a.polls.empty.inc();
            break false;
        }
        a.polls.found.inc();
        served += 1;
    };
    // Under the virtqueue mutex: VHOST_SET_VRING_CALL, which takes it,
    // cannot put the call eventfd while it is signalled.
    signal(a, &g, &run);
    // Before the worker waits for a kick: `iq_no_kick` cleared, a full
    // barrier, then the producer index read once more.  The initiator
    // stores the producer index, a full barrier, then reads `iq_no_kick`:
    // either it sees zero and kicks, or this sees its entry and the work
    // runs again (where a pass reads the queue, so that the work is never
    // queued again without reading an entry).
    let mut posted = false;
    if reads {
        a.reg32::<R_IQ_NO_KICK>().store(0, Ordering::Relaxed);
        smp_mb(Full);
        posted = consumer_if_read(&mut g)
            .is_some_and(|c| a.reg32::<R_IQ_PRODUCER>().load(Ordering::Acquire) != c);
    }
    drop(g);
    if more || posted {
        // More work later.
        q.core.poll_queue();
    }
}

/// The inbound queue's consumer index where a pass reads the queue: an
/// endpoint, a state and its frame buffer (what `handle_kick`'s pass
/// needs); `None` elsewhere.
fn consumer_if_read(g: &mut QueueGuard<'_>) -> Option<u32> {
    let (ep, st, _) = g.parts_mem();
    ep?;
    st.as_ref()
        .filter(|st| st.frame.is_some())
        .map(|st| st.iq_consumer)
}

/// Serves one posted entry; `frame` is scratch space for its copy (what
/// it held before is never read: only the bytes read here are parsed).
///
/// Runs on the owner's worker (`w`) with the virtqueue mutex held (`st`).
#[allow(clippy::too_many_arguments)]
pub(super) fn serve(
    q: &Queue,
    w: &OnWorker,
    a: &Adapter,
    ep: &Endpoint,
    mem: &Mem<'_>,
    st: &mut State,
    v: u64,
    frame: &mut [u8; mfi::MAX_CMD_BYTES],
    run: &mut Run,
) {
    let posted = match mfi::decode_posted(v) {
        Ok(p) => p,
        Err(_) => return a.error("posted frame address unaligned or too many frames"),
    };
    // The first frame (the header the answer is written to) lies in one
    // region; the extra frames may continue into the next region of the
    // table, as physical memory continues from one RAM block to the next.
    let Some(uva) = mem.xlate(posted.addr, mfi::FRAME_SIZE as u64) else {
        return a.error("posted frame outside the memory table");
    };
    if st.index().find(posted.addr).is_some() {
        // Its owner is still in flight: nothing of it may be touched.
        return a.error("frame posted again while in flight");
    }
    let mut len = posted.len;
    // The one read of the frame: everything below parses this copy, the
    // bytes `..len` (then `..end`) just read.
    if read_guest(mem, posted.addr, &mut frame[..len], &mut st.iov).is_none() {
        return a.error("posted frame outside the memory table or not readable");
    }
    // An SGL that goes on past the posted frames (the Linux driver posts at
    // most 8): the rest of it, bytes not read before, so that each byte of
    // the command is still read once.
    // The header lies in the first frame: the bytes read below do not
    // change it, so it is parsed once.
    let Some(first) = frame[..len].first_chunk::<{ mfi::FRAME_SIZE }>() else {
        return a.error("posted frame shorter than its header");
    };
    let h = mfi::Header::parse(first);
    let end = h.sgl_end();
    if end > len {
        let rest = posted.addr.checked_add(len as u64);
        if rest.is_none_or(|at| read_guest(mem, at, &mut frame[len..end], &mut st.iov).is_none()) {
            return a.error("SGL past the posted frames outside the memory table");
        }
        len = end;
    }
    let f = &frame[..len];
    let reply = |st: &mut State, run: &mut Run, c: Completion| {
        answer(a, st, uva, h.context, h.polled(), c, run)
    };
    if st.fw_state != mfi::state::OPERATIONAL && h.cmd != op::INIT {
        a.refuse(Refusal::Malformed, h.context, stat::WRONG_STATE);
        return reply(st, run, Completion::status(stat::WRONG_STATE));
    }
    let parsed = match Frame::parse_with(&h, f) {
        Ok(p) => p,
        Err(s) => {
            a.refuse(Refusal::Malformed, h.context, s);
            return reply(st, run, Completion::status(s));
        }
    };
    match parsed {
        Frame::Init { qinfo } => {
            let s = init(a, mem, st, qinfo);
            reply(st, run, Completion::status(s));
        }
        Frame::Dcmd {
            opcode,
            mbox,
            data_len,
            sgl,
        } => {
            a.dcmds.inc();
            if opcode == dcmd::CTRL_EVENT_WAIT {
                return event_wait(q, a, mem, st, posted.addr, uva, &h, mbox, sgl, run);
            }
            if opcode == dcmd::CTRL_CACHE_FLUSH {
                return cache_flush(q, w, a, ep, mem, st, posted.addr, uva, &h, run);
            }
            if opcode == dcmd::CLUSTER_RESET_LD || opcode == dcmd::CLUSTER_RESET_ALL {
                // LUN reset of one drive (mbox byte 0, the LD or PD id) or
                // I_T nexus reset, through the shared layer.
                let tmf = if opcode == dcmd::CLUSTER_RESET_LD {
                    Tmf {
                        function: Function::LunReset,
                        lun: u64::from(mbox[0]),
                        tag: 0,
                    }
                } else {
                    Tmf {
                        function: Function::ItNexusReset,
                        lun: 0,
                        tag: 0,
                    }
                };
                match start_tmf(q, ep, st, uva, &h, tmf) {
                    Ok(()) => {}
                    Err(e) if e == EBUSY => reply(st, run, Completion::busy()),
                    Err(_) => reply(st, run, Completion::status(stat::MEMORY_NOT_AVAILABLE)),
                }
                return;
            }
            let s = serve_dcmd(ep, mem, st, opcode, &mbox, data_len, &sgl);
            reply(st, run, Completion::status(s));
        }
        Frame::Abort { context, addr } => {
            let s = abort(q, a, st, context, addr, run);
            if s != u8::MAX {
                return reply(st, run, Completion::status(s));
            }
            let victim = st.index().find(addr).map(usize::from).unwrap_or(0);
            let lun = st.cmds[victim].lun;
            let tmf = Tmf {
                function: Function::AbortTask,
                lun,
                tag: victim as u64,
            };
            match start_tmf(q, ep, st, uva, &h, tmf) {
                Ok(()) => {}
                Err(e) if e == EBUSY => reply(st, run, Completion::busy()),
                Err(_) => reply(st, run, Completion::status(stat::ABORT_NOT_POSSIBLE)),
            }
        }
        Frame::Scsi {
            ld,
            target,
            lun,
            cdb,
            dir,
            data_len,
            sense,
            sgl,
        } => {
            // PD frames reach any LUN (smartctl's pass-through); LD frames
            // only the logical drives of the RAID personality.
            let limit = if ld { mfi::MAX_LD } else { mfi::MAX_PD };
            let ld_ok = !ld || ep.personality == Personality::Raid;
            if !ld_ok
                || u32::from(target) >= limit
                || lun != 0
                || ep.bind.tpg().lun_block_size(u64::from(target)).is_none()
            {
                a.refuse(Refusal::BadTarget, h.context, stat::DEVICE_NOT_FOUND);
                return reply(st, run, Completion::status(stat::DEVICE_NOT_FOUND));
            }
            let io = Io {
                addr: posted.addr,
                uva,
                h,
                lun: u64::from(target),
                cdb,
                dir,
                data_len,
                sense,
                parent: None,
            };
            submit(q, w, a, ep, mem, st, &io, &sgl, run);
        }
        Frame::LdIo {
            write,
            target,
            lba,
            blocks,
            sense,
            sgl,
        } => {
            let is_ld = ep.personality == Personality::Raid && u32::from(target) < mfi::MAX_LD;
            let Some(block_size) = is_ld
                .then(|| ep.bind.tpg().lun_block_size(u64::from(target)))
                .flatten()
            else {
                a.refuse(Refusal::BadTarget, h.context, stat::DEVICE_NOT_FOUND);
                return reply(st, run, Completion::status(stat::DEVICE_NOT_FOUND));
            };
            let bytes = u64::from(blocks) * u64::from(block_size);
            if bytes > u64::from(mfi::MAX_XFER) || sgl.total < bytes {
                a.refuse(Refusal::Malformed, h.context, stat::INVALID_PARAMETER);
                return reply(st, run, Completion::status(stat::INVALID_PARAMETER));
            }
            let io = Io {
                addr: posted.addr,
                uva,
                h,
                lun: u64::from(target),
                cdb: mfi::rw16(write, lba, blocks),
                dir: match (blocks, write) {
                    (0, _) => Dir::None,
                    (_, true) => Dir::Out,
                    (_, false) => Dir::In,
                },
                data_len: bytes as u32,
                sense,
                parent: None,
            };
            submit(q, w, a, ep, mem, st, &io, &sgl, run);
        }
    }
}

/// Reads `out.len()` bytes at the adapter address `addr`, across regions
/// of the memory table; `iov` is scratch space.
fn read_guest(mem: &Mem<'_>, addr: u64, out: &mut [u8], iov: &mut KVec<sys::iovec>) -> Option<()> {
    // Within one region (every frame a driver posts from one buffer): one
    // read, no iovecs.
    if let Some(uva) = mem.xlate(addr, out.len() as u64) {
        return read_user(uva, out).ok();
    }
    iov.clear();
    mem.xlate_iov(addr, out.len() as u64, iov)?;
    let mut done = 0usize;
    for v in iov.iter() {
        let end = done.checked_add(v.iov_len)?;
        read_user(v.iov_base as usize, out.get_mut(done..end)?).ok()?;
        done = end;
    }
    (done == out.len()).then_some(())
}

/// `MFI_CMD_INIT`: sets up the reply queue.
pub(super) fn init(a: &Adapter, mem: &Mem<'_>, st: &mut State, qinfo: u64) -> u8 {
    if st.queue.is_some() {
        // Already initialised: as firmware, a second INIT changes nothing.
        return stat::OK;
    }
    let Some(quva) = mem.xlate(qinfo, mfi::QINFO_SIZE as u64) else {
        return stat::MEMORY_NOT_AVAILABLE;
    };
    let mut b = [0u8; mfi::QINFO_SIZE];
    if read_user(quva, &mut b).is_err() {
        return stat::MEMORY_NOT_AVAILABLE;
    }
    let info = match QueueInfo::parse(&b) {
        Ok(i) => i,
        Err(s) => return s,
    };
    let ring_len = u64::from(info.entries) * info.entry_size() as u64;
    let (Some(ring), Some(pu), Some(cu)) = (
        mem.xlate(info.ring, ring_len),
        mem.xlate(info.producer, 4),
        mem.xlate(info.consumer, 4),
    ) else {
        return stat::INVALID_PARAMETER;
    };
    let mut p = [0u8; 4];
    if read_user(pu, &mut p).is_err() {
        return stat::INVALID_PARAMETER;
    }
    let producer = u32::from_le_bytes(p);
    if producer >= info.entries {
        return stat::INVALID_PARAMETER;
    }
    st.queue = Some(Reply {
        info,
        ring,
        producer_uva: pu,
        consumer_uva: cu,
        producer,
    });
    st.fw_state = mfi::state::OPERATIONAL;
    a.set_fw_state(mfi::state::OPERATIONAL);
    stat::OK
}

/// A SCSI command to submit.
pub(super) struct Io {
    pub(super) addr: u64,
    pub(super) uva: usize,
    pub(super) h: mfi::Header,
    pub(super) lun: u64,
    pub(super) cdb: [u8; mfi::MAX_CDB],
    pub(super) dir: Dir,
    pub(super) data_len: u32,
    pub(super) sense: u64,
    /// The CTRL_CACHE_FLUSH an internal command belongs to.
    pub(super) parent: Option<u16>,
}

/// The LUN `lun` of the endpoint's TPG.
pub(super) fn lun_info(ep: &Endpoint, lun: u64) -> Option<sys::tcm_virt_lun_info> {
    ep.bind.tpg().lun(lun)
}

/// Maps the data of `io` and submits it to target core.
///
/// Runs on the owner's worker (`w`) with the virtqueue mutex held (`st`).
#[allow(clippy::too_many_arguments)]
pub(super) fn submit(
    q: &Queue,
    w: &OnWorker,
    a: &Adapter,
    ep: &Endpoint,
    mem: &Mem<'_>,
    st: &mut State,
    io: &Io,
    sgl: &mfi::Sgl<'_>,
    run: &mut Run,
) {
    let fail = |st: &mut State, run: &mut Run, why: Refusal, s: u8| match io.parent {
        Some(p) => {
            a.refuse(why, io.h.context, s);
            st.child_done(a, p, s, run)
        }
        None => {
            a.refuse(why, io.h.context, s);
            answer(
                a,
                st,
                io.uva,
                io.h.context,
                io.h.polled(),
                Completion::status(s),
                run,
            )
        }
    };
    let sense_uva = if io.h.sense_len == 0 {
        0
    } else {
        let room = u64::from(io.h.sense_len).min(mfi::MAX_SENSE as u64);
        match mem.xlate(io.sense, room) {
            Some(u) => u,
            None => return fail(st, run, Refusal::Malformed, stat::INVALID_PARAMETER),
        }
    };
    let Some(slot) = st.free.take() else {
        a.refuse(Refusal::Busy, io.h.context, stat::SCSI_IO_FAILED);
        if let Some(p) = io.parent {
            return st.child_done(a, p, stat::SCSI_IO_FAILED, run);
        }
        return answer(
            a,
            st,
            io.uva,
            io.h.context,
            io.h.polled(),
            Completion::busy(),
            run,
        );
    };
    // Data iovecs: the SGL cut to the data length.
    st.iov.clear();
    let mut left = u64::from(io.data_len);
    if io.dir != Dir::None {
        for (addr, len) in sgl.iter() {
            if left == 0 {
                break;
            }
            let n = u64::from(len).min(left);
            if mem.xlate_iov(addr, n, &mut st.iov).is_none() {
                st.free.put(slot);
                return fail(st, run, Refusal::PinFailure, stat::INVALID_PARAMETER);
            }
            left -= n;
        }
    }
    let cmd = &mut st.cmds[usize::from(slot)];
    if io.dir != Dir::None && io.data_len != 0 {
        let mut it = if io.dir == Dir::In {
            IovIter::dest(&st.iov)
        } else {
            IovIter::source(&st.iov)
        };
        it.truncate(io.data_len as usize);
        // The iovecs are translated through the owner's memory table.
        let r = cmd.data.map(&mut it, w);
        if let Err(e) = r {
            st.free.put(slot);
            let (why, s) = match e {
                MapError::NoMem => (Refusal::Busy, stat::MEMORY_NOT_AVAILABLE),
                MapError::TooManyPages | MapError::Fault => {
                    (Refusal::PinFailure, stat::INVALID_PARAMETER)
                }
            };
            return fail(st, run, why, s);
        }
    }
    cmd.q = q;
    cmd.used = if io.parent.is_some() {
        Use::Sync
    } else {
        Use::Scsi
    };
    cmd.parent = io.parent.unwrap_or(NO_SLOT);
    cmd.uva = io.uva;
    cmd.context = io.h.context;
    cmd.polled = io.h.polled();
    cmd.sense_uva = sense_uva;
    cmd.sense_room = if sense_uva == 0 { 0 } else { io.h.sense_len };
    cmd.dir = io.dir;
    cmd.data_len = io.data_len;
    cmd.lun = io.lun;
    cmd.cdb = io.cdb;
    let submit = Submit {
        sess: ep.bind.sess(),
        lun: io.lun,
        tag: u64::from(slot),
        attr: TaskAttr::Simple,
        dir: match io.dir {
            Dir::None => DataDir::None,
            Dir::Out => DataDir::ToDevice,
            Dir::In => DataDir::FromDevice,
        },
        len: io.data_len,
        sense: cmd.sense.get().cast(),
        cdb: cmd.cdb.as_mut_ptr(),
        data: cmd.data.view(),
        prot: None,
        offloads: Some(&q.offloads),
    };
    let table = &st.table;
    cmd.stamp = Stamp::now();
    // SAFETY: the slot came off the free list: target core released it (or
    // never had it); the session is pinned by the binding; the sense
    // buffer, CDB and scatterlist live in the command until release.
    let r = unsafe {
        cmd.head.submit(
            submit,
            || {
                q.get_inflight();
                table.start(usize::from(slot), ep.bind.sess(), io.lun, u64::from(slot));
            },
            fabric::prepare,
        )
    };
    let Ok(how) = r else {
        // SAFETY: nothing of the command reached target core.
        unsafe { cmd.data.release() };
        cmd.used = Use::Free;
        st.free.put(slot);
        return fail(st, run, Refusal::Transport, stat::SCSI_IO_FAILED);
    };
    // The completion is counted by this same worker, later.
    a.stats.submitted.inc();
    if how == Submitted::Offloaded {
        a.stats.offloaded.inc();
    }
    trace::cmd_submit(
        a.trace_id(),
        0,
        io.h.context,
        io.lun,
        io.cdb[0],
        match io.dir {
            Dir::None => 0,
            Dir::Out => 1,
            Dir::In => 2,
        },
        io.data_len,
    );
    if io.parent.is_none() {
        st.index().insert(io.addr, slot);
    }
}

/// Target core released a command: the queue's worker answers it
/// (`nexus::released`).
///
/// # Safety
///
/// `se_cmd` must be a megasas command this module submitted, released
/// once.
pub(super) unsafe fn release_cmd(se_cmd: *mut sys::se_cmd) {
    let cmd = se_cmd.cast::<MCmd>();
    // SAFETY: per the invariant of `MCmd`; the state outlives every
    // submitted command (the endpoint drains before freeing it).
    let q = unsafe { &*(*cmd).q };
    // SAFETY: target core released the command, submitted on `q` with a
    // count of the adapter's in flight, once (the caller's contract).
    unsafe { nexus::released(q, cmd) };
}

/// The completion work: answers the released commands.
pub(super) fn complete_work(q: &Queue, _w: &OnWorker) {
    let a = q.adapter();
    let done = q.done.take_all();
    let tmfs = q.tmf_done.take_all();
    if done.is_empty() && tmfs.is_empty() {
        return;
    }
    let mut g = q.lock();
    let mut run = Run::default();
    answer_released(q, &mut g, done, &mut run);
    // Task management answers, after those of the commands they aborted.
    for j in tmfs {
        // SAFETY: each job on the stack came from KBox::into_raw.
        let job = unsafe { KBox::from_raw(j) };
        if let Some(st) = g.state().as_mut() {
            st.tmfs = st.tmfs.saturating_sub(1);
            let c = Completion::status(mfi::tmf_status(job.outcome));
            let j = &job.answer;
            answer(a, st, j.uva, j.context, j.polled, c, &mut run);
        }
        a.put_inflight();
    }
    // Under the virtqueue mutex: VHOST_SET_VRING_CALL, which takes it,
    // cannot put the call eventfd while it is signalled.
    signal(a, &g, &run);
    drop(g);
}

/// Answers the released commands `done` (their replies go into `run`).
fn answer_released(q: &Queue, g: &mut QueueGuard<'_>, done: Taken<MCmd>, run: &mut Run) {
    let a = q.adapter();
    for c in done {
        // SAFETY: each command on the stack was released by target core and
        // belongs to the state's pool, alive while commands are in flight.
        let cmd = unsafe { &mut *c };
        // SAFETY: target core released the command.
        let o = unsafe { cmd.head.outcome() };
        let (status, sense_len, resid, aborted) = (o.status, o.sense_len, o.resid, o.aborted);
        // SAFETY: target core released the command.
        unsafe { cmd.data.release() };
        let slot = cmd.slot;
        let Some(st) = g.state().as_mut() else {
            // Reset under it: released, not answered.
            a.stats.complete(crate::nexus::stats::Way::None, 0, false);
            a.put_inflight();
            continue;
        };
        st.table.finish(usize::from(slot));
        let cmd = &st.cmds[usize::from(slot)];
        let comp = if aborted && status != sam::TASK_ABORTED {
            // Aborted by task management without a status (no TAS): as
            // firmware answers a cancelled command.
            Completion::status(stat::SCSI_IO_FAILED)
        } else {
            Completion::scsi(status, sense_len, cmd.sense_room)
        };
        let (uva, context, polled) = (cmd.uva, cmd.context, cmd.polled);
        let moved = if o.underflow {
            cmd.data_len.saturating_sub(resid)
        } else {
            cmd.data_len
        };
        a.stats.complete(
            cmd.dir.into(),
            moved,
            comp.cmd_status == stat::OK && status == sam::GOOD,
        );
        trace::cmd_complete(
            a.trace_id(),
            0,
            context,
            cmd.lun,
            cmd.cdb[0],
            status,
            comp.cmd_status,
            moved,
            cmd.stamp,
        );
        if cmd.used == Use::Sync {
            let parent = cmd.parent;
            st.put_slot(slot);
            st.child_done(a, parent, comp.cmd_status, run);
            a.put_inflight();
            continue;
        }
        if comp.sense_len != 0 {
            // SAFETY: the sense buffer is ours and target core is done.
            let sense = unsafe { &*cmd.sense.get() };
            if write_user(cmd.sense_uva, &sense[..usize::from(comp.sense_len)]).is_err() {
                a.error("sense buffer not writable");
            }
        }
        if o.underflow && cmd.dir == Dir::In {
            // Underrun: the frame's data length becomes what was moved.
            let moved = cmd.data_len.saturating_sub(resid);
            if field(uva, off::DATA_XFER_LEN)
                .and_then(|u| put_le32(u, moved))
                .is_err()
            {
                a.error("frame not writable");
            }
        }
        st.put_slot(slot);
        answer(a, st, uva, context, polled, comp, run);
        a.put_inflight();
    }
}
