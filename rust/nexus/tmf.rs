// SPDX-License-Identifier: GPL-2.0

//! Task management through target core.
//!
//! [`execute`] carries out one function for one I_T nexus and returns its
//! service response.  It blocks (target core completes a TMR only after
//! the commands it aborts were released), so a front end calls it from a
//! work item, never from the worker that serves its queues.
//!
//! Each target core TMR is a [`Tmr`] of the glue layer: its `se_cmd` is
//! submitted with
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
    glue::target::{flush_offloads, submit_tmr as submit, Tmr, TmrEnd as End},
    wire::tmf::{self, Function, Outcome, Plan},
};
use kernel::prelude::*;

/// Task management requests one device or adapter carries out at once.
/// Each waits in a work item of the long workqueue for target core, so the
/// number a guest (which can publish a control chain again before it was
/// answered) or a VMM can start is capped; beyond it a request is refused
/// at once: FUNCTION REJECTED on virtio-scsi, BUSY on megasas, as a
/// controller with no free task slot answers.
pub(crate) const MAX_TMF: u32 = 16;

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
    // A command handed to the offload workqueue is in flight for the
    // front end but not yet in target core's lists, which its TMRs search:
    // let it get there first, so that it is aborted, or has completed,
    // before the function is answered.
    if matches!(
        plan,
        Plan::AbortOne | Plan::AbortEach { .. } | Plan::LunReset
    ) {
        flush_offloads();
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

/// The service response of a function whose TMR ended `e`.
fn outcome_of(e: End) -> Outcome {
    match e {
        End::Code(code) => tmf::outcome_of_tmr(code),
        End::Aborted => Outcome::Rejected,
    }
}
