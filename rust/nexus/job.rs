// SPDX-License-Identifier: GPL-2.0

//! A task management request of either front end, carried out in a work
//! item (a TMF waits for target core to abort what it names, and the
//! answers of the aborted commands need the queue's worker), then handed
//! to the queue's worker to be answered after those commands.

use super::{
    done::{hand_over, WorkerQueue},
    execute,
    stats::TmfStats,
    Inflight,
};
use crate::{
    bindings as sys,
    glue::{
        stack::{Link, Stack},
        trace::{self, Stamp},
    },
    wire::tmf::{Function, Outcome},
};
use core::ptr;
use kernel::{
    impl_has_work, new_work,
    prelude::*,
    sync::Arc,
    workqueue::{Work, WorkItem},
};

/// The queue a front end answers its TMFs on (the vhost control virtqueue,
/// the megasas queue).
///
/// # Safety
///
/// A job keeps a pointer to its queue and uses it from a workqueue thread:
/// the queue must stay valid, and its methods callable from any thread,
/// from [`WorkerQueue::get_inflight`] until the matching
/// [`WorkerQueue::put_inflight`] (the device drains its count before it
/// goes), as [`WorkerQueue`] requires.
pub(crate) unsafe trait TmfQueue: WorkerQueue {
    /// What the front end keeps to write the answer.
    type Answer: Send;

    /// Finished jobs, taken by the queue's completion work.
    fn tmf_done(&self) -> &Stack<TmfJob<Self>>;
    /// Waits for the work queued on the device's workers.
    fn flush(&self);
    /// A finished job dropped unanswered (the owner is gone).
    fn dropped(&self) {}
    /// The device, as the trace events name it.
    fn trace_id(&self) -> trace::Id;
    /// The device's TMF counters.
    fn tmf_stats(&self) -> &TmfStats;
}

/// A task management function being carried out for queue `Q`.
#[pin_data]
pub(crate) struct TmfJob<Q: TmfQueue> {
    #[pin]
    work: Work<TmfJob<Q>>,
    q: *const Q,
    pub(crate) function: Function,
    sess: *mut sys::se_session,
    lun: u64,
    tag: u64,
    inflight: Arc<Inflight>,
    /// The service response, once carried out.
    pub(crate) outcome: Outcome,
    /// When it started, for the trace.
    started: Stamp,
    pub(crate) answer: Q::Answer,
    /// Link in the queue's `tmf_done` stack.
    next: *mut TmfJob<Q>,
}

// SAFETY: the raw pointers refer to the queue's device and the session,
// which outlive the job (it is counted in flight, and the endpoint drains
// before it unbinds); the answer is `Send`; the rest is plain data.
unsafe impl<Q: TmfQueue> Send for TmfJob<Q> {}
// SAFETY: no two threads hold a `&TmfJob` at once: the job has one owner at
// a time (the workqueue running it, then the `tmf_done` consumer), and its
// pointees outlive it.
unsafe impl<Q: TmfQueue> Sync for TmfJob<Q> {}

// SAFETY: `next` is a field of `TmfJob` used only as the link of its
// queue's `tmf_done` stack.
unsafe impl<Q: TmfQueue> Link for TmfJob<Q> {
    fn link(this: *mut Self) -> *mut *mut Self {
        this.cast::<u8>()
            .wrapping_add(core::mem::offset_of!(Self, next))
            .cast()
    }
}

impl_has_work! {
    impl{Q: TmfQueue} HasWork<Self> for TmfJob<Q> { self.work }
}

impl<Q: TmfQueue> TmfJob<Q> {
    /// Carries out `function` for the nexus `sess` on `lun` (and task
    /// `tag`) in a work item, then queues the job on `q`'s completion work,
    /// which answers it with `answer`.  The job is counted in `q`'s device
    /// until then.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        q: &Q,
        function: Function,
        sess: *mut sys::se_session,
        lun: u64,
        tag: u64,
        inflight: &Arc<Inflight>,
        answer: Q::Answer,
    ) -> Result {
        let job = KBox::pin_init(
            pin_init!(TmfJob {
                work <- new_work!("tcm_virt::TmfJob::work"),
                q,
                function,
                sess,
                lun,
                tag,
                inflight: inflight.clone(),
                outcome: Outcome::Rejected,
                started: Stamp::always(),
                answer,
                next: ptr::null_mut(),
            }),
            GFP_KERNEL,
        )?;
        q.tmf_stats().start(function);
        trace::tmf_start(q.trace_id(), function, lun, tag);
        q.get_inflight();
        // An unbound queue: target core's TMR work runs on the system queue,
        // and a TMF waits for it.  (A boxed work item is always queued.)
        crate::chardev::tmf_queue().enqueue(job);
        Ok(())
    }
}

impl<Q: TmfQueue> WorkItem for TmfJob<Q> {
    type Pointer = Pin<KBox<TmfJob<Q>>>;

    fn run(this: Pin<KBox<TmfJob<Q>>>) {
        let outcome = execute(this.sess, this.function, this.lun, this.tag, &this.inflight);
        // SAFETY: only `work` is structurally pinned, and it is done
        // running; the job is handed on whole.
        let mut job = unsafe { Pin::into_inner_unchecked(this) };
        job.outcome = outcome;
        // SAFETY: the job holds the count `start` took of the queue's
        // device until it is answered or dropped in `hand_over`, so the
        // queue is valid here (the contract of `WorkerQueue`).
        let q = unsafe { &*job.q };
        q.tmf_stats().done(job.function, outcome);
        trace::tmf_done(
            q.trace_id(),
            job.function,
            job.lun,
            job.tag,
            outcome,
            job.started,
        );
        // The aborted commands were released before target core completed
        // the TMF; their answers go first.
        q.flush();
        let unanswered = |j| {
            // No worker (the owner is gone): the answer is dropped.
            // SAFETY: each job on the stack came from `KBox::into_raw`.
            drop(unsafe { KBox::from_raw(j) });
            q.dropped();
        };
        // SAFETY: the job holds the count `start` took; it comes from
        // `KBox::into_raw`, and the stack's consumer takes it back with
        // `KBox::from_raw`.
        unsafe { hand_over(q, q.tmf_done(), KBox::into_raw(job), unanswered) };
    }
}
