// SPDX-License-Identifier: GPL-2.0

//! Task management through target core.
//!
//! [`execute`] carries out one function for one I_T nexus and returns its
//! service response.  It blocks (target core completes a TMR only after
//! the commands it aborts were released), so a front end calls it from a
//! work item, never from the worker that serves its queues.
//!
//! Each target core TMR is a [`Tmr`]: its `se_cmd` is submitted with
//! `target_submit_tmr(TARGET_SCF_ACK_KREF)`; `queue_tm_rsp` signals
//! `answered`, the caller reads the response and drops its reference, and
//! `release_cmd` signals `released`, after which the memory is freed.
//!
//! A TMR can also end without `queue_tm_rsp`: a LOGICAL UNIT RESET on its
//! LUN aborts the TMRs pending there (`core_tmr_drain_tmr_list()`, never
//! with TAS), and `target_handle_abort()` then calls `aborted_task`, drops
//! the acknowledgement reference itself and releases the TMR.  The TMR is
//! then marked aborted and `answered` is signalled all the same; the caller
//! drops no reference, and the function is answered FUNCTION REJECTED (not
//! performed), the response target core itself gives an aborted TMR when
//! it gives one (with TAS).

use super::inflight::{Filter, Inflight};
use crate::{
    bindings as sys,
    wire::tmf::{self, Function, Outcome, Plan},
};
use core::{
    ptr,
    sync::atomic::{AtomicU8, Ordering},
};
use kernel::{prelude::*, sync::Completion, types::Opaque};

/// Sense bytes target core may write for a TMR (`TRANSPORT_SENSE_BUFFER`).
const SENSE_SIZE: usize = 96;

/// Task management requests one device or adapter carries out at once.
/// Each waits in a work item of the long workqueue for target core, so the
/// number a guest (which can publish a control chain again before it was
/// answered) or a VMM can start is capped; beyond it a request is refused
/// at once: FUNCTION REJECTED on virtio-scsi, BUSY on megasas, as a
/// controller with no free task slot answers.
pub(crate) const MAX_TMF: u32 = 16;

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
enum End {
    /// Answered with this `tcm_tmrsp_table` code.
    Code(u8),
    /// Aborted by a LOGICAL UNIT RESET before it was answered.
    Aborted,
}

/// The service response of a function whose TMR ended `e`.
fn outcome_of(e: End) -> Outcome {
    match e {
        End::Code(code) => tmf::outcome_of_tmr(code),
        End::Aborted => Outcome::Rejected,
    }
}

/// One TMR submitted to target core.
#[pin_data]
#[repr(C)]
struct Tmr {
    // INVARIANT: first field; target core hands `*mut se_cmd` back and it
    // converts to `*const Tmr`.
    se_cmd: Opaque<sys::se_cmd>,
    sense: Opaque<[u8; SENSE_SIZE]>,
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
/// `cmd` must be the `se_cmd` of a [`Tmr`] submitted by [`submit`].
pub(crate) unsafe fn queue_tm_rsp(cmd: *mut sys::se_cmd) {
    // SAFETY: `cmd` is the `se_cmd` of a `Tmr` from `submit` (the caller's
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
/// `cmd` must be the `se_cmd` of a [`Tmr`] submitted by [`submit`].
pub(crate) unsafe fn aborted_tmr(cmd: *mut sys::se_cmd) {
    // SAFETY: `cmd` is the `se_cmd` of a `Tmr` from `submit` (the caller's
    // contract), its first field, so the cast gives that `Tmr`; the
    // submitter frees it only after `released`, which comes after this.
    unsafe { (*cmd.cast::<Tmr>()).ended(ABORTED) };
}

/// `release_cmd` of a TMR.
///
/// # Safety
///
/// `cmd` must be the `se_cmd` of a [`Tmr`] submitted by [`submit`], whose
/// last reference is gone.
pub(crate) unsafe fn release_tmr(cmd: *mut sys::se_cmd) {
    // SAFETY: per the invariant of `Tmr`; `submit` waits for `released`
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
    fn start(
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
        .map_err(|_| tmf::tmr::FUNCTION_FAILED)?;
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
            return Err(tmf::tmr::FUNCTION_FAILED);
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
    fn finish(self: Pin<KBox<Tmr>>) -> End {
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
            End::Code(code)
        } else {
            // Target core dropped the acknowledgement reference when it
            // aborted the TMR: nothing of it is ours to touch but `released`.
            End::Aborted
        };
        self.released.wait_for_completion();
        end
    }
}

/// Submits one TMR and waits until target core ended it.
fn submit(sess: *mut sys::se_session, lun: u64, function: u32, tag: u64) -> End {
    match Tmr::start(sess, lun, function, tag) {
        Ok(t) => t.finish(),
        Err(code) => End::Code(code),
    }
}

/// Carries out `f` for the nexus `sess` on `lun` (and the task `tag` for
/// ABORT TASK and QUERY TASK); returns the service response.
///
/// Blocks until target core is done, including the release of every
/// command the function aborted.
pub(crate) fn execute(
    sess: *mut sys::se_session,
    f: Function,
    lun: u64,
    tag: u64,
    inflight: &Inflight,
) -> Outcome {
    let plan = f.plan();
    let one = Filter {
        sess,
        lun: Some(lun),
        tag: Some(tag),
    };
    // Functions that target core does not perform: check that the LUN
    // exists first (target core looks it up, then declines the function).
    if matches!(
        plan,
        Plan::AbortEach { all_luns: false } | Plan::QueryOne | Plan::QueryAny | Plan::Reject
    ) {
        match submit(sess, lun, sys::tcm_tmreq_table_TMR_ABORT_TASK_SET, 0) {
            // A LUN reset aborted the probe: the function is not performed.
            End::Aborted => return Outcome::Rejected,
            End::Code(code) => {
                if let Some(o) = tmf::probe_failure(code) {
                    return o;
                }
            }
        }
    }
    match plan {
        Plan::AbortOne => {
            let mut found = false;
            inflight.scan(one, true, |_, _| found = true);
            if found {
                return outcome_of(submit(sess, lun, sys::tcm_tmreq_table_TMR_ABORT_TASK, tag));
            }
            // Not a task of ours in flight: answered or never sent, so not
            // in target core either.  Answer as target core would (TASK
            // DOES NOT EXIST, after its LUN lookup) without its ABORT TASK,
            // which logs a line for each: a guest sending ABORT TASKs for
            // tags it never used must not flood the host's log.
            match submit(sess, lun, sys::tcm_tmreq_table_TMR_ABORT_TASK_SET, 0) {
                End::Aborted => Outcome::Rejected,
                End::Code(code) => tmf::probe_failure(code)
                    .unwrap_or(tmf::outcome_of_tmr(tmf::tmr::TASK_DOES_NOT_EXIST)),
            }
        }
        Plan::AbortEach { all_luns } => {
            let filter = Filter {
                sess,
                lun: (!all_luns).then_some(lun),
                tag: None,
            };
            let mut victims = KVec::new();
            let mut oom = false;
            inflight.scan(filter, f.is_abort(), |l, t| {
                oom |= victims.push((l, t), GFP_KERNEL).is_err();
            });
            if oom {
                return Outcome::Failed;
            }
            // All at once: target core's ABORT TASK waits for the command
            // to leave the backend, and the others must not complete
            // meanwhile.
            let mut started = KVec::new();
            if started.reserve(victims.len(), GFP_KERNEL).is_err() {
                return Outcome::Failed;
            }
            let mut outcome = Outcome::Complete;
            for (l, t) in victims {
                match Tmr::start(sess, l, sys::tcm_tmreq_table_TMR_ABORT_TASK, t) {
                    Ok(tmr) => {
                        // Capacity is reserved; should the push fail all
                        // the same, a TMR in flight must not be freed.
                        if let Err(e) = started.push_within_capacity(tmr) {
                            e.0.finish();
                        }
                    }
                    Err(_) => outcome = Outcome::Failed,
                }
            }
            let mut aborted = false;
            for tmr in started {
                match tmr.finish() {
                    // A LUN reset aborted this ABORT TASK: the function was
                    // not (wholly) performed.
                    End::Aborted => aborted = true,
                    // A LUN unlinked meanwhile took its tasks with it.
                    End::Code(code) => match tmf::outcome_of_tmr(code) {
                        Outcome::Complete | Outcome::IncorrectLun => {}
                        _ => outcome = Outcome::Failed,
                    },
                }
            }
            if aborted && outcome == Outcome::Complete {
                Outcome::Rejected
            } else {
                outcome
            }
        }
        Plan::LunReset => outcome_of(submit(sess, lun, sys::tcm_tmreq_table_TMR_LUN_RESET, 0)),
        Plan::QueryOne => tmf::query_outcome(inflight.any(one)),
        Plan::QueryAny => tmf::query_outcome(inflight.any(Filter { tag: None, ..one })),
        Plan::Reject => Outcome::Rejected,
    }
}
