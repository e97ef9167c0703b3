// SPDX-License-Identifier: GPL-2.0

//! The control and event virtqueues.
//!
//! Task management requests are carried out by the shared layer
//! ([`nexus::execute`]) in a work item, since a TMF waits for the commands
//! it aborts; the answer is written back on the control queue's worker,
//! after the responses of the aborted commands.  Asynchronous notification
//! is answered at once: target core raises none of the event classes
//! (`event_actual` 0, as QEMU's own virtio-scsi does).  A request whose
//! type is unknown or whose response does not fit is returned unanswered
//! (used length 0), so that the guest gets its buffers back.
//!
//! The event virtqueue carries LUN hotplug events (`VIRTIO_SCSI_T_
//! TRANSPORT_RESET`, reason `RESCAN` or `REMOVED`) when the driver
//! negotiated `VIRTIO_SCSI_F_HOTPLUG`, from the endpoint's bounded event
//! queue; `VIRTIO_SCSI_T_EVENTS_MISSED` marks the next event (or a
//! `NO_EVENT`) after events were lost.  Like the other queues, it takes at
//! most the vhost weight of buffers per pass of its work.

use super::{
    dev::{VhostScsi, Vq},
    io::{self, Chain},
};
use crate::{
    bindings as sys, nexus,
    wire::{
        tmf::Function,
        virtio_scsi::{self as vs, CtrlError, CtrlReq, Response},
    },
};
use core::{
    ffi::c_void,
    mem::MaybeUninit,
    ptr,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{
    ffi::c_ulong,
    impl_has_work, new_work,
    prelude::*,
    sync::Arc,
    workqueue::{Work, WorkItem},
};

/// A task management request being carried out.
#[pin_data]
pub(super) struct TmfJob {
    #[pin]
    work: Work<TmfJob>,
    /// The control virtqueue.
    q: *const Vq,
    head: u16,
    /// The response buffer's iovecs and the chain's dirty-log entries.
    resp: KVec<sys::iovec>,
    log: KVec<sys::vhost_log>,
    function: Function,
    sess: *mut sys::se_session,
    lun: u64,
    tag: u64,
    inflight: Arc<nexus::Inflight>,
    /// The virtio response code, once known.
    response: u8,
    /// Link in the control virtqueue's `tmf_done` stack.
    next: *mut TmfJob,
}

// SAFETY: the raw pointers refer to the device and the session, which
// outlive the job (the endpoint drains jobs before it unbinds, the device
// drains before it is freed); the rest is plain data.
unsafe impl Send for TmfJob {}
// SAFETY: no two threads hold a `&TmfJob` at once: the job has one owner at a time (the
// workqueue running it, then the `tmf_done` consumer), and its pointees outlive it.
unsafe impl Sync for TmfJob {}

impl_has_work! {
    impl HasWork<Self> for TmfJob { self.work }
}

impl WorkItem for TmfJob {
    type Pointer = Pin<KBox<TmfJob>>;

    fn run(this: Pin<KBox<TmfJob>>) {
        let outcome = nexus::execute(this.sess, this.function, this.lun, this.tag, &this.inflight);
        // SAFETY: the job's fields are not structurally pinned (only
        // `work` is, and it is done running); the job is handed on whole.
        let job = KBox::into_raw(unsafe { Pin::into_inner_unchecked(this) });
        // SAFETY: `job` is valid and ours.
        let q = unsafe {
            (*job).response = vs::tmf_response((*job).function, outcome) as u8;
            &*(*job).q
        };
        // The aborted commands were released before target core completed
        // the TMF; let their responses reach the guest before this one.
        // SAFETY: the device is alive while the job is counted in flight.
        unsafe { sys::vhost_dev_flush(q.dev().raw()) };
        // Once the job is on the stack, a completion pass already running
        // may answer it and bring the count to zero, and the closer's drain
        // would then free the device while this function still uses `q`: a
        // count of our own keeps it until the work is queued.
        q.dev().inflight.fetch_add(1, Ordering::Relaxed);
        push(&q.tmf_done, job);
        // SAFETY: the work is initialised and belongs to this virtqueue.
        if !unsafe { sys::vhost_vq_work_queue(q.raw(), q.completion_work.get()) } {
            // No worker (the owner is gone): drop the answers.
            let mut j = q.tmf_done.swap(ptr::null_mut(), Ordering::Acquire);
            while !j.is_null() {
                // SAFETY: each job on the stack came from KBox::into_raw.
                let b = unsafe { KBox::from_raw(j) };
                j = b.next;
                drop(b);
                q.tmfs.fetch_sub(1, Ordering::Relaxed);
                io::put_inflight(q);
            }
        }
        // The last use of `q` is above: after this the device may go.
        io::put_inflight(q);
    }
}

fn push(stack: &AtomicPtr<TmfJob>, job: *mut TmfJob) {
    // SAFETY: the job is ours until it is on the stack.
    unsafe { crate::chardev::push(stack, job, |j| &raw mut (*j).next) };
}

/// `handle_kick` of the control virtqueue.
///
/// # Safety
///
/// Called by the vhost worker with the `poll.work` of our control queue.
pub(super) unsafe extern "C" fn handle_ctl_kick(work: *mut sys::vhost_work) {
    // SAFETY: `work` is the poll work embedded in a vhost_virtqueue.
    let vq = unsafe { kernel::container_of!(work, sys::vhost_virtqueue, poll.work) };
    // SAFETY: all our virtqueues are `Vq`s of a live device.
    let q = unsafe { Vq::from_raw(vq) };
    let g = q.lock();
    let Some(ep) = g.backend() else {
        return;
    };
    // SAFETY: the mutex is held, on the owner's worker.
    unsafe {
        io::for_each_chain(q, |c| {
            let reply = match control(q, c) {
                Ctl::Tmf {
                    function,
                    target,
                    lun,
                    tag,
                } => match ep.target(target) {
                    None => Some(tmf_reply(Response::BadTarget)),
                    Some(t) => match start_tmf(q, c, function, t.sess(), lun, tag, &ep.inflight) {
                        Ok(()) => return,
                        Err(e) => {
                            io::pr_err_ratelimited(if e == EBUSY {
                                "too many task management requests at once"
                            } else {
                                "no memory for a task management request"
                            });
                            Some(tmf_reply(Response::FunctionRejected))
                        }
                    },
                },
                Ctl::Reply(r) => Some(r),
                Ctl::Drop => None,
            };
            let n = match reply {
                Some(bytes) => io::write_iov(
                    (*q.raw()).iov.as_ptr().add(c.out),
                    c.inn,
                    &bytes[1..1 + usize::from(bytes[0])],
                ),
                None => 0,
            };
            io::give_back(q, c, n as u32);
        })
    };
}

/// What to do with a control request.
enum Ctl {
    /// Answer now (first byte: the reply's length).
    Reply([u8; 8]),
    /// Carry out a TMF.
    Tmf {
        function: Function,
        target: u8,
        lun: u64,
        tag: u64,
    },
    /// Return the chain unanswered.
    Drop,
}

fn tmf_reply(r: Response) -> [u8; 8] {
    [1, r as u8, 0, 0, 0, 0, 0, 0]
}

/// Reads and classifies a control request.
///
/// # Safety
///
/// The virtqueue mutex is held, on the owner's worker, for chain `c`.
unsafe fn control(q: &Vq, c: &Chain) -> Ctl {
    let mut buf = [0u8; vs::TMF_REQ_SIZE];
    let want = c.out_size.min(buf.len());
    let mut it = MaybeUninit::<sys::iov_iter>::zeroed();
    let it = it.as_mut_ptr();
    // SAFETY: the chain's readable iovecs; copy on the owner's mm.
    let got = unsafe {
        sys::iov_iter_init(
            it,
            sys::ITER_SOURCE,
            (*q.raw()).iov.as_ptr(),
            c.out as c_ulong,
            c.out_size,
        );
        sys::_copy_from_iter(buf.as_mut_ptr().cast(), want, it)
    };
    let is_tmf = buf[..4] == [0, 0, 0, 0];
    match CtrlReq::parse(&buf[..got], c.out_size, c.in_size) {
        Ok(CtrlReq::Tmf { subtype, lun, tag }) => {
            let Ok(l) = vs::decode_lun(&lun) else {
                return Ctl::Reply(tmf_reply(Response::BadTarget));
            };
            match vs::tmf_function(subtype) {
                Some(function) => Ctl::Tmf {
                    function,
                    target: l.target,
                    lun: u64::from(l.lun),
                    tag,
                },
                None => Ctl::Reply(tmf_reply(Response::FunctionRejected)),
            }
        }
        // event_actual 0 (no class), response OK.
        Ok(CtrlReq::An { .. }) => Ctl::Reply([5, 0, 0, 0, 0, Response::Ok as u8, 0, 0]),
        Err(CtrlError::ShortRequest) if is_tmf => Ctl::Reply(tmf_reply(Response::BadTarget)),
        Err(CtrlError::ShortRequest) => {
            Ctl::Reply([5, 0, 0, 0, 0, Response::BadTarget as u8, 0, 0])
        }
        Err(e) => {
            let what = match e {
                CtrlError::UnknownType(_) => "control request of unknown type",
                CtrlError::NoType => "control request without a type",
                _ => "control request without room for its response",
            };
            io::pr_err_ratelimited(what);
            Ctl::Drop
        }
    }
}

/// Queues the TMF of chain `c` for the shared layer; at most
/// [`nexus::MAX_TMF`] at once (`EBUSY` beyond: a guest can publish a
/// control chain again before it was answered, so the queue's size is no
/// bound).
///
/// # Safety
///
/// The virtqueue mutex is held, on the owner's worker, for chain `c`.
#[allow(clippy::too_many_arguments)]
unsafe fn start_tmf(
    q: &Vq,
    c: &Chain,
    function: Function,
    sess: *mut sys::se_session,
    lun: u64,
    tag: u64,
    inflight: &Arc<nexus::Inflight>,
) -> Result {
    // Only this function, under the virtqueue mutex, adds to the count.
    if q.tmfs.load(Ordering::Relaxed) >= nexus::MAX_TMF {
        return Err(EBUSY);
    }
    let mut resp = KVec::new();
    // SAFETY: the chain's writable iovecs follow its readable ones.
    let iov = unsafe { core::slice::from_raw_parts((*q.raw()).iov.as_ptr().add(c.out), c.inn) };
    io::save_iovecs(&mut resp, iov, vs::TMF_RESP_SIZE)?;
    let mut log = KVec::new();
    // SAFETY: the virtqueue mutex is held on the owner's worker and `c` is the chain it
    // last popped (the caller's contract), so the log array still holds `c`'s entries.
    unsafe { io::save_log(&mut log, q, c)? };
    let job = KBox::pin_init(
        pin_init!(TmfJob {
            work <- new_work!("tcm_virt::TmfJob::work"),
            q,
            head: c.head,
            resp,
            log,
            function,
            sess,
            lun,
            tag,
            inflight: inflight.clone(),
            response: 0,
            next: ptr::null_mut(),
        }),
        GFP_KERNEL,
    )?;
    q.dev().inflight.fetch_add(1, Ordering::Relaxed);
    q.tmfs.fetch_add(1, Ordering::Relaxed);
    // An unbound queue: target core's TMR work runs on the system queue,
    // and a TMF waits for it.  (A boxed work item is always queued.)
    crate::chardev::tmf_queue().enqueue(job);
    Ok(())
}

/// The completion work of the control virtqueue: writes the answers of
/// finished TMFs and returns their chains.
///
/// # Safety
///
/// Called by the vhost worker with the `completion_work` of the control
/// `Vq`.
pub(super) unsafe extern "C" fn complete_tmf(work: *mut sys::vhost_work) {
    // SAFETY: `work` is the completion work embedded in a `Vq`.
    let q = unsafe { vq_of_completion(work) };
    let mut j = q.tmf_done.swap(ptr::null_mut(), Ordering::Acquire);
    if j.is_null() {
        return;
    }
    let g = q.lock();
    while !j.is_null() {
        // SAFETY: each job on the stack came from KBox::into_raw.
        let mut job = unsafe { KBox::from_raw(j) };
        j = job.next;
        // SAFETY: the saved response iovecs of the chain, on the owner's
        // worker.
        let n = unsafe { io::write_iov(job.resp.as_ptr(), job.resp.len(), &[job.response]) };
        // SAFETY: the mutex is held; the log entries are the chain's.
        unsafe {
            sys::vhost_add_used(q.raw(), u32::from(job.head), n as i32);
            io::log_write(q, &mut job.log);
        }
        drop(job);
        q.tmfs.fetch_sub(1, Ordering::Relaxed);
        io::put_inflight(q);
    }
    // With the mutex still held, as in `io::complete_work`: the call
    // eventfd is replaced and released under it.
    // SAFETY: the device and virtqueue are live; the mutex is held (`g`).
    unsafe { sys::vhost_signal(q.dev().raw(), q.raw()) };
    drop(g);
}

/// # Safety
///
/// `work` must be the `completion_work` of a live `Vq`.
unsafe fn vq_of_completion<'a>(work: *mut sys::vhost_work) -> &'a Vq {
    // SAFETY: `work` is the `completion_work` field of a live `Vq` (the caller's contract),
    // so the containing `Vq` is live.
    unsafe {
        &*kernel::container_of!(
            work.cast::<kernel::types::Opaque<sys::vhost_work>>(),
            Vq,
            completion_work
        )
    }
}

/// The event queue's `notify`: schedule delivery on the event virtqueue.
///
/// # Safety
///
/// `ctx` must be the event `Vq` of a live device.
pub(super) unsafe fn notify_events(ctx: *const c_void) {
    // SAFETY: `ctx` is the event `Vq` of a live device (the caller's contract).
    let q = unsafe { &*ctx.cast::<Vq>() };
    // SAFETY: the work is initialised and belongs to this virtqueue.  With
    // no worker (no owner yet, or gone), the event waits for the next kick.
    unsafe { sys::vhost_vq_work_queue(q.raw(), q.completion_work.get()) };
}

/// The completion work of the event virtqueue: delivers queued events.
///
/// # Safety
///
/// Called by the vhost worker with the `completion_work` of the event `Vq`.
pub(super) unsafe extern "C" fn evt_work(work: *mut sys::vhost_work) {
    // SAFETY: the vhost worker runs this with the event `Vq`'s `completion_work` (the
    // caller's contract); it is the owner's worker, stopped before the device is freed.
    unsafe { deliver_events(vq_of_completion(work)) };
}

/// `handle_kick` of the event virtqueue: new buffers, deliver what waits.
///
/// # Safety
///
/// Called by the vhost worker with the `poll.work` of our event queue.
pub(super) unsafe extern "C" fn handle_evt_kick(work: *mut sys::vhost_work) {
    // SAFETY: `work` is the poll work embedded in a vhost_virtqueue.
    let vq = unsafe { kernel::container_of!(work, sys::vhost_virtqueue, poll.work) };
    // SAFETY: all our virtqueues are `Vq`s of a live device; on the owner's
    // worker.
    unsafe { deliver_events(Vq::from_raw(vq)) };
}

/// Writes queued events into the guest's event buffers, as long as there
/// are both, up to the vhost weight per pass.
///
/// Each pass takes at most the device's weight of chains
/// (`vhost_exceeds_weight()`, which then requeues the queue's kick work, as
/// [`io::for_each_chain`] does): a guest that keeps refilling the queue,
/// with buffers of the wrong shape (each of which sets events-missed, so
/// that there is always something to deliver) or not, gets the worker's
/// time in turns with the other queues, never all of it.
///
/// # Safety
///
/// Runs on the owner's worker with the event `Vq` of a live device.
unsafe fn deliver_events(q: &Vq) {
    let g = q.lock();
    let Some(ep) = g.backend() else {
        return;
    };
    let ev = &ep.events;
    let dev: &VhostScsi = q.dev();
    if ev.take_overflow() {
        dev.events_missed.store(1, Ordering::Relaxed);
    }
    if !q.has_feature(sys::VIRTIO_SCSI_F_HOTPLUG) {
        // Hotplug events only go to a driver that asked for them.
        ev.clear();
    }
    // SAFETY: the mutex is held.
    unsafe { sys::vhost_disable_notify(dev.raw(), q.raw()) };
    let mut taken = 0;
    loop {
        // SAFETY: the mutex is held.  Past the weight the kick work is
        // queued again, and its pass goes on from here.
        if taken > 0 && unsafe { sys::vhost_exceeds_weight(q.raw(), taken, 0) } {
            break;
        }
        let missed = dev.events_missed.load(Ordering::Relaxed) != 0;
        let next = ev.front();
        if next.is_none() && !missed {
            break;
        }
        // SAFETY: the mutex is held, on the owner's worker.
        let Some(c) = (unsafe { io::next_chain(q) }) else {
            // No buffer: the events wait (bounded) for the next kick.
            break;
        };
        taken += 1;
        if c.out != 0 || c.in_size < vs::EVENT_SIZE {
            io::pr_err_ratelimited("event buffer of the wrong size");
            dev.events_missed.store(1, Ordering::Relaxed);
            // SAFETY: the mutex is held (`g`) on the owner's worker, and `c` was just popped by
            // `next_chain`.
            unsafe { io::give_back(q, &c, 0) };
            continue;
        }
        let mut e = match next {
            Some(n) => vs::encode_event(
                vs::T_TRANSPORT_RESET,
                n.target as u8,
                Some(n.lun as u16),
                match n.kind {
                    nexus::EventKind::LunAdded => vs::EVT_RESET_RESCAN,
                    nexus::EventKind::LunRemoved => vs::EVT_RESET_REMOVED,
                },
            ),
            None => vs::encode_event(vs::T_NO_EVENT, 0, None, 0),
        };
        if missed {
            e[3] |= (vs::T_EVENTS_MISSED >> 24) as u8;
            dev.events_missed.store(0, Ordering::Relaxed);
        }
        // SAFETY: the chain's writable iovecs, on the owner's mm.
        let n = unsafe { io::write_iov((*q.raw()).iov.as_ptr(), c.inn, &e) };
        // SAFETY: the mutex is held (`g`) on the owner's worker, and `c` was just popped by
        // `next_chain`.
        unsafe { io::give_back(q, &c, n as u32) };
        if next.is_some() {
            ev.pop();
        }
    }
}
