// SPDX-License-Identifier: GPL-2.0

//! The glue layer: typed handles over the kernel's C interfaces that the
//! front ends need and the kernel crate does not wrap.  The raw calls into
//! vhost core and the page pinning live here, each behind a type that
//! carries the condition it needs (a lock held, the owner's worker, a chain
//! popped from this queue), so that the front ends above are (nearly) safe
//! code.
//!
//! - `vhost`: the vhost core device, virtqueues and their mutex, descriptor
//!   chains, iov iterators and the copies to and from guest memory.
//! - `configfs`: configfs attribute tables, pages and the TPG attributes.
//! - `pages`: guest pages pinned into scatterlists for target core.
//! - `params`: the string and run-time writable module parameters.
//! - `stack`: the intrusive lock-free stack on which completions reach a
//!   queue's worker; `ratelimit`: rate-limited warnings.
//! - `target`: target core's commands, sessions, LUNs and TPGs as the
//!   fabric's callbacks receive them, and the command a front end submits.
//! - `trace`: the module's tracepoints, with typed arguments.
//! - `shared_page`: memory a process maps and the kernel accesses with
//!   atomics (the megasas register page).
//! - `user`: single-value writes into the owner's memory.

pub(crate) mod configfs;
pub(crate) mod pages;
pub(crate) mod params;
pub(crate) mod ratelimit;
pub(crate) mod shared_page;
pub(crate) mod stack;
pub(crate) mod target;
pub(crate) mod trace;
pub(crate) mod user;
pub(crate) mod vhost;
