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
    dev::{VhostScsi, Vq, VqGuard},
    io,
};
use crate::{
    bindings as sys,
    glue::{
        stack::Stack,
        trace::{self, Refusal},
        vhost::{Chain, IovIter, OnWorker, SavedIov},
    },
    nexus::{
        self,
        stats::{EventStats, TmfStats},
        WorkerQueue,
    },
    wire::{
        tmf::Function,
        virtio_scsi::{self as vs, CtrlError, CtrlReq, Lun, Response},
    },
};
use core::sync::atomic::Ordering;
use kernel::{prelude::*, sync::Arc};

// The wire module is `core`-only (shared with the userspace tools): its
// event and control constants are checked here against the uAPI header.
// (EVT_RESET_RESCAN once had RESET_HARD's value, 0, which a real guest's
// virtio_scsi ignores as "Unsupported virtio scsi event reason 0".)
const _: () = assert!(
    vs::T_NO_EVENT == sys::VIRTIO_SCSI_T_NO_EVENT
        && vs::T_TRANSPORT_RESET == sys::VIRTIO_SCSI_T_TRANSPORT_RESET
        && vs::T_EVENTS_MISSED == sys::VIRTIO_SCSI_T_EVENTS_MISSED
        && vs::EVT_RESET_HARD == sys::VIRTIO_SCSI_EVT_RESET_HARD
        && vs::EVT_RESET_RESCAN == sys::VIRTIO_SCSI_EVT_RESET_RESCAN
        && vs::EVT_RESET_REMOVED == sys::VIRTIO_SCSI_EVT_RESET_REMOVED
        && vs::EVENT_SIZE == core::mem::size_of::<sys::virtio_scsi_event>()
        && vs::T_TMF == sys::VIRTIO_SCSI_T_TMF
        && vs::T_AN_QUERY == sys::VIRTIO_SCSI_T_AN_QUERY
        && vs::T_AN_SUBSCRIBE == sys::VIRTIO_SCSI_T_AN_SUBSCRIBE
);

/// What a TMF of the control queue keeps to be answered.
pub(super) struct TmfAnswer {
    head: u16,
    /// The response buffer's iovecs and the chain's dirty-log entries.
    resp: SavedIov,
    log: KVec<sys::vhost_log>,
}

/// A task management request being carried out.
pub(super) type TmfJob = nexus::TmfJob<Vq>;

// SAFETY: a `Vq` lives as long as its device, whose release drains each
// queue's in-flight count (`clear_endpoint`) before it frees the queues;
// its methods use atomics and the vhost core calls that any thread may make.
unsafe impl nexus::TmfQueue for Vq {
    type Answer = TmfAnswer;

    fn tmf_done(&self) -> &Stack<TmfJob> {
        &self.tmf_done
    }

    fn flush(&self) {
        self.dev().core().flush();
    }

    fn dropped(&self) {
        self.tmfs.fetch_sub(1, Ordering::Relaxed);
    }

    fn trace_id(&self) -> trace::Id {
        self.dev().trace_id()
    }

    fn tmf_stats(&self) -> &TmfStats {
        &self.dev().tmf_stats
    }
}

/// `handle_kick` of the control virtqueue.
pub(super) fn handle_ctl_kick(q: &Vq, w: &OnWorker) {
    let mut g = q.lock();
    if g.backend().is_none() {
        return;
    }
    g.for_each_chain(w, |g, c| {
        let reply = match control(g, w, c) {
            Ctl::Tmf {
                function,
                target,
                lun,
                tag,
            } => match g.backend().and_then(|ep| Some((ep, ep.target(target)?))) {
                None => Some(tmf_reply(Response::BadTarget)),
                Some((ep, t)) => {
                    match start_tmf(q, g, c, function, t.sess(), lun, tag, &ep.inflight) {
                        Ok(()) => return,
                        Err(e) => {
                            io::pr_err_ratelimited(if e == EBUSY {
                                "too many task management requests at once"
                            } else {
                                "no memory for a task management request"
                            });
                            Some(tmf_reply(Response::FunctionRejected))
                        }
                    }
                }
            },
            Ctl::Reply(r) => Some(r),
            Ctl::Drop => {
                q.stats.refuse(Refusal::Malformed);
                trace::cmd_refused(q.dev().trace_id(), q.index, 0, Refusal::Malformed, u8::MAX);
                None
            }
        };
        match reply {
            Some(bytes) => g.answer(w, c, &bytes[1..1 + usize::from(bytes[0])]),
            None => g.give_back(w, c, 0),
        }
    });
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

/// Reads and classifies control request `c`.
fn control(g: &VqGuard<'_>, w: &OnWorker, c: &Chain) -> Ctl {
    let mut buf = [0u8; vs::TMF_REQ_SIZE];
    let want = c.out_size.min(buf.len());
    let got = IovIter::source(g.readable(c)).copy_from(w, &mut buf[..want]);
    let is_tmf = buf[..4] == [0, 0, 0, 0];
    // `copy_from` copies at most what was asked; were it to say more, the
    // request reads as empty rather than panicking.
    match CtrlReq::parse(buf.get(..got).unwrap_or(&[]), c.out_size, c.in_size) {
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
#[allow(clippy::too_many_arguments)]
fn start_tmf(
    q: &Vq,
    g: &VqGuard<'_>,
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
    let mut resp = SavedIov::with_capacity(1)?;
    resp.save(g.writable(c), vs::TMF_RESP_SIZE)?;
    let mut log = KVec::new();
    io::save_log(&mut log, g.chain_log(c))?;
    let answer = TmfAnswer {
        head: c.head,
        resp,
        log,
    };
    q.tmfs.fetch_add(1, Ordering::Relaxed);
    TmfJob::start(q, function, sess, lun, tag, inflight, answer).inspect_err(|_| {
        q.tmfs.fetch_sub(1, Ordering::Relaxed);
    })
}

/// The completion work of the control virtqueue: writes the answers of
/// finished TMFs and returns their chains.
pub(super) fn complete_tmf(q: &Vq, w: &OnWorker) {
    let done = q.tmf_done.take_all();
    if done.is_empty() {
        return;
    }
    let mut g = q.lock();
    for j in done {
        // SAFETY: each job on the stack came from KBox::into_raw.
        let job = unsafe { KBox::from_raw(j) };
        let response = vs::tmf_response(job.function, job.outcome) as u8;
        let a = &job.answer;
        let n = IovIter::dest(a.resp.iov()).copy_to(w, &[response]);
        g.add_used(w, a.head, n as u32);
        g.log_write(w, &a.log);
        drop(job);
        q.tmfs.fetch_sub(1, Ordering::Relaxed);
        q.put_inflight();
    }
    // With the mutex still held (`VqLock::signal`).
    g.signal();
}

/// The event queue's `notify`: schedule delivery on the event virtqueue.
impl nexus::Notify for Vq {
    fn notify(&self) {
        // With no worker (no owner yet, or gone), the event waits for the
        // next kick.
        self.queue_completion();
    }

    fn event_stats(&self) -> &EventStats {
        &self.dev().event_stats
    }
}

/// The kick (new buffers) and the completion work (new events) of the
/// event virtqueue: writes queued events into the guest's event buffers, as long as there
/// are both, up to the vhost weight per pass.
///
/// Each pass takes at most the device's weight of chains
/// (`vhost_exceeds_weight()`, which then requeues the queue's kick work, as
/// [`VqLock::for_each_chain`](crate::glue::vhost::VqLock::for_each_chain) does): a guest that keeps refilling the queue,
/// with buffers of the wrong shape (each of which sets events-missed, so
/// that there is always something to deliver) or not, gets the worker's
/// time in turns with the other queues, never all of it.
///
pub(super) fn deliver_events(q: &Vq, w: &OnWorker) {
    let mut g = q.lock();
    let Some(ep) = g.backend() else {
        return;
    };
    // A reference of our own: the loop below pops chains (`&mut g`).
    let ev = ep.events.clone();
    let dev: &VhostScsi = q.dev();
    if ev.take_overflow() {
        dev.events_missed.store(1, Ordering::Relaxed);
    }
    if !g.has_feature(sys::VIRTIO_SCSI_F_HOTPLUG) {
        // Hotplug events only go to a driver that asked for them.
        ev.clear();
    }
    g.disable_notify(w);
    let mut taken = 0;
    loop {
        // Past the weight the kick work is queued again, and its pass goes
        // on from here.
        if taken > 0 && g.exceeds_weight(taken, 0) {
            break;
        }
        let missed = dev.events_missed.load(Ordering::Relaxed) != 0;
        // The front event with the LUN address the guest reads.
        let next = match ev.front() {
            Some(n) => match Lun::addressable(n.target, n.lun) {
                Some(lun) => Some((n.kind, lun)),
                None => {
                    // The guest cannot address this LUN (nor see it): no
                    // event, rather than one the guest reads as another
                    // LUN's.
                    io::pr_err_ratelimited("hotplug event of a LUN of 16384 or above, which the virtio-scsi LUN field cannot carry: not sent");
                    ev.pop();
                    continue;
                }
            },
            None => None,
        };
        if next.is_none() && !missed {
            break;
        }
        let Some(c) = g.next_chain(w) else {
            // No buffer: the events wait (bounded) for the next kick.
            break;
        };
        taken += 1;
        if c.readable() != 0 || c.in_size < vs::EVENT_SIZE {
            io::pr_err_ratelimited("event buffer of the wrong size");
            dev.events_missed.store(1, Ordering::Relaxed);
            g.give_back(w, &c, 0);
            continue;
        }
        let mut e = match next {
            Some((kind, lun)) => vs::encode_event(
                vs::T_TRANSPORT_RESET,
                Some(lun),
                match kind {
                    nexus::EventKind::LunAdded => vs::EVT_RESET_RESCAN,
                    nexus::EventKind::LunRemoved => vs::EVT_RESET_REMOVED,
                },
            ),
            None => vs::encode_event(vs::T_NO_EVENT, None, 0),
        };
        if missed {
            e[3] |= (vs::T_EVENTS_MISSED >> 24) as u8;
            dev.events_missed.store(0, Ordering::Relaxed);
        }
        g.answer(w, &c, &e);
        dev.event_stats.delivered.inc();
        let (kind, lun) = match next {
            Some((nexus::EventKind::LunAdded, l)) => (1, u64::from(l.lun)),
            Some((nexus::EventKind::LunRemoved, l)) => (2, u64::from(l.lun)),
            None => (0, 0),
        };
        trace::event(dev.trace_id(), kind, lun, missed);
        if next.is_some() {
            ev.pop();
        }
    }
}
