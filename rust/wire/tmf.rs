// SPDX-License-Identifier: GPL-2.0

//! Task management, independent of any front end: the SAM functions an
//! initiator can ask for, the service responses the target gives, and how
//! each function is carried out with what target core offers.
//!
//! Target core itself performs only ABORT TASK and LOGICAL UNIT RESET
//! (`target_tmr_work()`); the shared layer builds the other functions from
//! them and from its own table of commands in flight (see
//! `Documentation/task-management.rst`).

/// A task management function (SAM-5 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    /// Abort the task with the given tag.
    AbortTask,
    /// Abort every task of the I_T nexus on the LUN.
    AbortTaskSet,
    /// Clear an ACA condition.
    ClearAca,
    /// Abort every task on the LUN (this nexus's; see the documentation).
    ClearTaskSet,
    /// Abort every task of the I_T nexus, on every LUN.
    ItNexusReset,
    /// Reset the logical unit.
    LunReset,
    /// Is the task with the given tag in the task set?
    QueryTask,
    /// Has the I_T nexus any task on the LUN?
    QueryTaskSet,
}

/// The service response of a task management function (SAM-5 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// FUNCTION COMPLETE: done (for the queries: nothing found).
    Complete,
    /// FUNCTION SUCCEEDED: a query found what it asked for.
    Succeeded,
    /// FUNCTION REJECTED: not supported or not performed.
    Rejected,
    /// INCORRECT LOGICAL UNIT NUMBER.
    IncorrectLun,
    /// SERVICE DELIVERY OR TARGET FAILURE.
    Failed,
}

/// How the shared layer carries a function out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// One target core ABORT TASK for the tag.
    AbortOne,
    /// Target core ABORT TASK for each task in flight on the nexus, on the
    /// addressed LUN only (`all_luns` false) or on every LUN.
    AbortEach {
        /// Every LUN of the nexus (I_T NEXUS RESET).
        all_luns: bool,
    },
    /// Target core LOGICAL UNIT RESET.
    LunReset,
    /// Look the tag up in the table of tasks in flight.
    QueryOne,
    /// Look for any task of the nexus on the LUN.
    QueryAny,
    /// Answer FUNCTION REJECTED after checking the LUN: target core never
    /// establishes ACA (NormACA is 0 in its INQUIRY data).
    Reject,
}

impl Function {
    /// How the shared layer performs this function.
    pub const fn plan(self) -> Plan {
        match self {
            Function::AbortTask => Plan::AbortOne,
            Function::AbortTaskSet | Function::ClearTaskSet => Plan::AbortEach { all_luns: false },
            Function::ItNexusReset => Plan::AbortEach { all_luns: true },
            Function::LunReset => Plan::LunReset,
            Function::QueryTask => Plan::QueryOne,
            Function::QueryTaskSet => Plan::QueryAny,
            Function::ClearAca => Plan::Reject,
        }
    }

    /// Whether the function addresses a LUN that must exist (every one but
    /// I_T NEXUS RESET, which addresses the nexus).
    pub const fn needs_lun(self) -> bool {
        !matches!(self, Function::ItNexusReset)
    }

    /// Whether tasks it aborts are reported aborted (ABORT TASK, ABORT TASK
    /// SET) rather than reset (the others).
    pub const fn is_abort(self) -> bool {
        matches!(self, Function::AbortTask | Function::AbortTaskSet)
    }
}

/// What a query found, as its service response.
pub const fn query_outcome(found: bool) -> Outcome {
    if found {
        Outcome::Succeeded
    } else {
        Outcome::Complete
    }
}

/// Target core's TMR response codes (`enum tcm_tmrsp_table`).
pub mod tmr {
    /// `TMR_FUNCTION_FAILED`.
    pub const FUNCTION_FAILED: u8 = 0;
    /// `TMR_FUNCTION_COMPLETE`.
    pub const FUNCTION_COMPLETE: u8 = 1;
    /// `TMR_TASK_DOES_NOT_EXIST`.
    pub const TASK_DOES_NOT_EXIST: u8 = 2;
    /// `TMR_LUN_DOES_NOT_EXIST`.
    pub const LUN_DOES_NOT_EXIST: u8 = 3;
    /// `TMR_TASK_MGMT_FUNCTION_NOT_SUPPORTED`.
    pub const NOT_SUPPORTED: u8 = 4;
    /// `TMR_FUNCTION_REJECTED`.
    pub const FUNCTION_REJECTED: u8 = 5;
}

/// The service response for target core's answer `code` to a TMR.  An
/// ABORT TASK for a task that is not (or no longer) there is complete: the
/// task is gone either way (SAM-5 §7.2).
pub const fn outcome_of_tmr(code: u8) -> Outcome {
    match code {
        tmr::FUNCTION_COMPLETE | tmr::TASK_DOES_NOT_EXIST => Outcome::Complete,
        tmr::LUN_DOES_NOT_EXIST => Outcome::IncorrectLun,
        tmr::NOT_SUPPORTED | tmr::FUNCTION_REJECTED => Outcome::Rejected,
        _ => Outcome::Failed,
    }
}

/// A LUN probe: target core answers a TMR it does not perform (ABORT TASK
/// SET) after looking the LUN up, so the answer tells whether the LUN
/// exists without side effects.  `None` when the LUN exists.
pub const fn probe_failure(code: u8) -> Option<Outcome> {
    match code {
        tmr::LUN_DOES_NOT_EXIST => Some(Outcome::IncorrectLun),
        tmr::NOT_SUPPORTED | tmr::FUNCTION_COMPLETE => None,
        _ => Some(Outcome::Failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Function; 8] = [
        Function::AbortTask,
        Function::AbortTaskSet,
        Function::ClearAca,
        Function::ClearTaskSet,
        Function::ItNexusReset,
        Function::LunReset,
        Function::QueryTask,
        Function::QueryTaskSet,
    ];

    #[test]
    fn every_function_has_a_plan() {
        for f in ALL {
            let p = f.plan();
            assert_eq!(p == Plan::Reject, f == Function::ClearAca, "{f:?}");
            assert_eq!(f.needs_lun(), f != Function::ItNexusReset);
        }
        assert_eq!(
            Function::ItNexusReset.plan(),
            Plan::AbortEach { all_luns: true }
        );
    }

    #[test]
    fn tmr_codes() {
        assert_eq!(outcome_of_tmr(tmr::FUNCTION_COMPLETE), Outcome::Complete);
        assert_eq!(outcome_of_tmr(tmr::TASK_DOES_NOT_EXIST), Outcome::Complete);
        assert_eq!(
            outcome_of_tmr(tmr::LUN_DOES_NOT_EXIST),
            Outcome::IncorrectLun
        );
        assert_eq!(outcome_of_tmr(tmr::NOT_SUPPORTED), Outcome::Rejected);
        assert_eq!(outcome_of_tmr(tmr::FUNCTION_REJECTED), Outcome::Rejected);
        assert_eq!(outcome_of_tmr(tmr::FUNCTION_FAILED), Outcome::Failed);
        for c in 6..=255u8 {
            assert_eq!(outcome_of_tmr(c), Outcome::Failed);
        }
        assert_eq!(probe_failure(tmr::NOT_SUPPORTED), None);
        assert_eq!(
            probe_failure(tmr::LUN_DOES_NOT_EXIST),
            Some(Outcome::IncorrectLun)
        );
        assert_eq!(query_outcome(true), Outcome::Succeeded);
        assert_eq!(query_outcome(false), Outcome::Complete);
    }
}
