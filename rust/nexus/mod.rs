// SPDX-License-Identifier: GPL-2.0

//! The shared layer between the front ends and the LIO fabric: what an
//! initiator port owns per I_T nexus, whatever its wire format.
//!
//! - `inflight`: the commands in flight, by the initiator's tag and LUN.
//! - `tmf`: task management, carried out through `target_submit_tmr()`;
//!   `job`: a front end's TMF carried out in a work item and handed back to
//!   its queue's worker to be answered.
//! - `done`: the way back to a queue's worker of what target core hands
//!   back (released commands, finished TMFs), shared by both front ends.
//! - `events`: the bounded queue of events (LUN hotplug) for the front end
//!   to deliver (virtio-scsi event queue, MFI AEN).
//! - `stats`: the counters both front ends keep, and their debugfs files.
//! - `slots`: the free slots of a front end's command pool.
//!
//! Nothing here knows virtio or MFI: a front end translates its requests
//! into [`wire::tmf::Function`](crate::wire::tmf::Function)s and its events
//! from [`Event`]s.

mod done;
mod events;
mod inflight;
mod job;
mod slots;
pub(crate) mod stats;
mod tmf;

pub(crate) use done::{released, DoneQueue, WorkerQueue};
pub(crate) use events::{Event, EventKind, Events, Notify};
pub(crate) use inflight::{Inflight, Table};
pub(crate) use job::{TmfJob, TmfQueue};
pub(crate) use slots::FreeSlots;
pub(crate) use tmf::{execute, MAX_TMF};
