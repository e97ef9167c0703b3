// SPDX-License-Identifier: GPL-2.0

//! Task management: `MFI_CMD_ABORT` and the cluster resets, carried out by
//! the shared layer in a work item.

use super::{Adapter, Endpoint, Queue, Run, State, Use};
use crate::{
    bindings as sys, chardev,
    glue::stack::Link,
    nexus,
    wire::mfi::{self, stat},
    wire::tmf::Function,
};
use core::{ptr, sync::atomic::Ordering};
use kernel::{
    impl_has_work,
    prelude::*,
    sync::Arc,
    workqueue::{Work, WorkItem},
};

/// A task management function requested by a frame.
pub(super) struct Tmf {
    pub(super) function: Function,
    pub(super) lun: u64,
    pub(super) tag: u64,
}

/// A frame's task management function being carried out.
#[pin_data]
pub(super) struct TmfJob {
    #[pin]
    work: Work<TmfJob>,
    q: *const Queue,
    tmf: Tmf,
    sess: *mut sys::se_session,
    inflight: Arc<nexus::Inflight>,
    /// The frame to answer.
    pub(super) uva: usize,
    pub(super) context: u64,
    pub(super) polled: bool,
    /// The MFI status, once known.
    pub(super) status: u8,
    pub(super) next: *mut TmfJob,
}

// SAFETY: the raw pointers refer to the adapter and the session, which
// outlive the job (it is counted in flight, and the endpoint drains before
// it unbinds); the rest is plain data.
unsafe impl Send for TmfJob {}
// SAFETY: no two threads hold a `&TmfJob` at once: the job has one owner at a time (the
// workqueue running it, then the `tmf_done` consumer), and its pointees outlive it.
unsafe impl Sync for TmfJob {}

// SAFETY: `next` is a field of `TmfJob` used only as the link of its
// queue's `tmf_done` stack.
unsafe impl Link for TmfJob {
    fn link(this: *mut Self) -> *mut *mut Self {
        // SAFETY: only the address of the field is formed.
        unsafe { &raw mut (*this).next }
    }
}

impl_has_work! {
    impl HasWork<Self> for TmfJob { self.work }
}

impl WorkItem for TmfJob {
    type Pointer = Pin<KBox<TmfJob>>;

    fn run(this: Pin<KBox<TmfJob>>) {
        let outcome = nexus::execute(
            this.sess,
            this.tmf.function,
            this.tmf.lun,
            this.tmf.tag,
            &this.inflight,
        );
        // SAFETY: only `work` is structurally pinned, and it is done
        // running; the job is handed on whole.
        let job = KBox::into_raw(unsafe { Pin::into_inner_unchecked(this) });
        // SAFETY: `job` is valid and ours; the queue outlives it.
        let q = unsafe {
            (*job).status = mfi::tmf_status(outcome);
            &*(*job).q
        };
        let a = q.adapter();
        // The aborted commands were released before target core completed
        // the TMF; their answers go first.
        a.dev.flush();
        // Held until the work is queued: see `release_cmd`.
        a.inflight.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `job` came from `KBox::into_raw` just above; the stack's
        // consumer takes it back.
        unsafe { q.tmf_done.push(job) };
        if !q.queue(&q.completion_work) {
            for j in q.tmf_done.take_all() {
                // SAFETY: each job on the stack came from KBox::into_raw.
                drop(unsafe { KBox::from_raw(j) });
                a.put_inflight();
            }
        }
        // The last use of `q` and `a` is above: after this the adapter may
        // go.
        a.put_inflight();
    }
}

/// Starts `tmf` for the frame at `uva` in a work item (a TMF waits for the
/// commands it aborts, whose answers need this worker).
/// At most [`nexus::MAX_TMF`] run at once: `EBUSY` beyond.
pub(super) fn start_tmf(
    q: &Queue,
    a: &Adapter,
    ep: &Endpoint,
    st: &mut State,
    uva: usize,
    h: &mfi::Header,
    tmf: Tmf,
) -> Result {
    if st.tmfs >= nexus::MAX_TMF {
        return Err(EBUSY);
    }
    let job = KBox::pin_init(
        pin_init!(TmfJob {
            work <- kernel::new_work!("tcm_virt::megasas::TmfJob::work"),
            q,
            tmf,
            sess: ep.bind.sess(),
            inflight: ep.inflight.clone(),
            uva,
            context: h.context,
            polled: h.polled(),
            status: 0,
            next: ptr::null_mut(),
        }),
        GFP_KERNEL,
    )?;
    a.inflight.fetch_add(1, Ordering::Relaxed);
    st.tmfs += 1;
    chardev::tmf_queue().enqueue(job);
    Ok(())
}

/// `MFI_CMD_ABORT`: by frame address, checked against the context.
pub(super) fn abort(
    q: &Queue,
    _a: &Adapter,
    st: &mut State,
    context: u64,
    addr: u64,
    run: &mut Run,
) -> u8 {
    let Some(slot) = st.index().find(addr) else {
        // Nothing in flight there (already answered): nothing to do.
        return stat::OK;
    };
    let cmd = &st.cmds[usize::from(slot)];
    let ctx64 = st.queue.is_some_and(|r| r.info.context64);
    let mask = if ctx64 { u64::MAX } else { u64::from(u32::MAX) };
    if cmd.context & mask != context & mask {
        return stat::ABORT_NOT_POSSIBLE;
    }
    match cmd.used {
        Use::Aen => {
            st.finish_aen(q, stat::OK, run);
            stat::OK
        }
        // A free slot: nothing in flight there to abort.
        Use::Free => stat::OK,
        // A CTRL_CACHE_FLUSH runs to its end.
        Use::Flush | Use::Sync => stat::ABORT_NOT_POSSIBLE,
        // A SCSI command in target core: ABORT TASK through the shared
        // layer, answered once it is done (`None`).
        Use::Scsi => u8::MAX,
    }
}
