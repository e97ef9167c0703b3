// SPDX-License-Identifier: GPL-2.0

//! The module's tracepoints (`include/tcm_virt_trace.h`, `events/tcm_virt/`
//! in tracefs), with typed arguments.
//!
//! Each function tests its tracepoint's static key inline, as the kernel
//! crate's `declare_trace!` does for in-tree tracepoints: a disabled
//! tracepoint is one patched jump on the I/O path, no call and no argument
//! computed but those the caller already has.  Only when it is enabled does
//! the call reach the C `rust_do_trace_*` function `TRACE_EVENT` generated
//! (`rust/bindings/trace.c`).

use crate::{
    bindings as sys,
    wire::tmf::{Function, Outcome},
};
use kernel::time::{Instant, Monotonic};

/// A device as the events name it: its front end and its number (the
/// `vhost-N` / `megasas-N` of its debugfs directory).
#[derive(Clone, Copy)]
pub(crate) struct Id {
    pub(crate) front: Front,
    pub(crate) dev: u32,
}

/// The front end of an [`Id`] (`front` in the events: 0 vhost, 1 megasas).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Front {
    Vhost = 0,
    Megasas = 1,
}

/// Why a request was refused before target core (`reason` of
/// `tcm_virt_cmd_refused`, and the refusal counters of the statistics).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Refusal {
    /// Not a valid request: header, LUN address, buffers, sizes.
    Malformed = 0,
    /// Addressed to a target (TPG, drive) the device does not serve.
    BadTarget = 1,
    /// The data buffers could not be pinned (outside the guest's memory, too
    /// many pages).
    PinFailure = 2,
    /// No room: command slots, memory (answered TASK SET FULL / BUSY).
    Busy = 3,
    /// The nexus is going away.
    Transport = 4,
}

impl Refusal {
    /// Every class, in `reason` order.
    pub(crate) const ALL: [Refusal; 5] = [
        Refusal::Malformed,
        Refusal::BadTarget,
        Refusal::PinFailure,
        Refusal::Busy,
        Refusal::Transport,
    ];

    /// The name the statistics and the trace show.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::BadTarget => "bad_target",
            Refusal::PinFailure => "pin_failure",
            Refusal::Busy => "busy",
            Refusal::Transport => "transport",
        }
    }
}

/// `function` of the TMF events (the order of `tcm_virt_show_tmf`).
pub(crate) fn function_code(f: Function) -> u8 {
    match f {
        Function::AbortTask => 0,
        Function::AbortTaskSet => 1,
        Function::ClearAca => 2,
        Function::ClearTaskSet => 3,
        Function::ItNexusReset => 4,
        Function::LunReset => 5,
        Function::QueryTask => 6,
        Function::QueryTaskSet => 7,
    }
}

/// `outcome` of `tcm_virt_tmf_done`.
pub(crate) fn outcome_code(o: Outcome) -> u8 {
    match o {
        Outcome::Complete => 0,
        Outcome::Succeeded => 1,
        Outcome::Rejected => 2,
        Outcome::IncorrectLun => 3,
        Outcome::Failed => 4,
    }
}

/// Whether tracepoint `$name` is enabled: its static key, tested inline.
macro_rules! enabled {
    ($name:ident) => {
        kernel::macros::paste! {
            // SAFETY: `__tracepoint_*` is the `struct tracepoint` that
            // TRACE_EVENT defines in this module's C object
            // (`rust/bindings/trace.c`); its `key` is a static key.
            unsafe {
                kernel::static_branch_unlikely!(
                    sys::[<__tracepoint_ $name>],
                    kernel::bindings::tracepoint,
                    key
                )
            }
        }
    };
}

/// When a command was submitted, for the latency of
/// `tcm_virt_cmd_complete`: read only while that event is enabled (a clock
/// read per command otherwise).
#[derive(Clone, Copy, Default)]
pub(crate) struct Stamp(Option<Instant<Monotonic>>);

impl Stamp {
    /// Now, if the completion event is enabled.
    #[inline(always)]
    pub(crate) fn now() -> Stamp {
        if enabled!(tcm_virt_cmd_complete) {
            Stamp(Some(Instant::now()))
        } else {
            Stamp(None)
        }
    }

    /// Now, whatever is enabled (for the rare paths: TMFs).
    pub(crate) fn always() -> Stamp {
        Stamp(Some(Instant::now()))
    }

    /// Nanoseconds since the stamp (0 without one).
    fn elapsed_ns(self) -> u64 {
        self.0
            .map_or(0, |t| u64::try_from(t.elapsed().as_nanos()).unwrap_or(0))
    }
}

/// A command handed to target core; `dir`: 0 none, 1 write, 2 read.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn cmd_submit(id: Id, queue: u16, tag: u64, lun: u64, opcode: u8, dir: u8, len: u32) {
    if enabled!(tcm_virt_cmd_submit) {
        // SAFETY: the event's C function takes integers only.
        unsafe {
            sys::rust_do_trace_tcm_virt_cmd_submit(
                id.front as u8,
                id.dev,
                queue,
                tag,
                lun,
                opcode,
                dir,
                len,
            )
        }
    }
}

/// A command answered.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn cmd_complete(
    id: Id,
    queue: u16,
    tag: u64,
    lun: u64,
    opcode: u8,
    status: u8,
    response: u8,
    len: u32,
    since: Stamp,
) {
    if enabled!(tcm_virt_cmd_complete) {
        // SAFETY: the event's C function takes integers only.
        unsafe {
            sys::rust_do_trace_tcm_virt_cmd_complete(
                id.front as u8,
                id.dev,
                queue,
                tag,
                lun,
                opcode,
                status,
                response,
                len,
                since.elapsed_ns(),
            )
        }
    }
}

/// A request refused before target core.
#[inline(always)]
pub(crate) fn cmd_refused(id: Id, queue: u16, tag: u64, reason: Refusal, response: u8) {
    if enabled!(tcm_virt_cmd_refused) {
        // SAFETY: the event's C function takes integers only.
        unsafe {
            sys::rust_do_trace_tcm_virt_cmd_refused(
                id.front as u8,
                id.dev,
                queue,
                tag,
                reason as u8,
                response,
            )
        }
    }
}

/// A TMF started.
#[inline(always)]
pub(crate) fn tmf_start(id: Id, function: Function, lun: u64, ref_tag: u64) {
    if enabled!(tcm_virt_tmf_start) {
        // SAFETY: the event's C function takes integers only.
        unsafe {
            sys::rust_do_trace_tcm_virt_tmf_start(
                id.front as u8,
                id.dev,
                function_code(function),
                lun,
                ref_tag,
            )
        }
    }
}

/// A TMF carried out.
#[inline(always)]
pub(crate) fn tmf_done(
    id: Id,
    function: Function,
    lun: u64,
    ref_tag: u64,
    outcome: Outcome,
    since: Stamp,
) {
    if enabled!(tcm_virt_tmf_done) {
        // SAFETY: the event's C function takes integers only.
        unsafe {
            sys::rust_do_trace_tcm_virt_tmf_done(
                id.front as u8,
                id.dev,
                function_code(function),
                lun,
                ref_tag,
                outcome_code(outcome),
                since.elapsed_ns(),
            )
        }
    }
}

/// An event delivered; `kind`: 0 none (events-missed alone), 1 LUN added,
/// 2 LUN removed.
#[inline(always)]
pub(crate) fn event(id: Id, kind: u8, lun: u64, missed: bool) {
    if enabled!(tcm_virt_event) {
        // SAFETY: the event's C function takes integers only.
        unsafe {
            sys::rust_do_trace_tcm_virt_event(id.front as u8, id.dev, kind, lun, u8::from(missed))
        }
    }
}
