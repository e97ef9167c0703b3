// SPDX-License-Identifier: GPL-2.0

//! The front ends of the fabric's commands.
//!
//! Every command a front end submits carries `TARGET_SCF_ACK_KREF`: target
//! core holds one reference and the front end's acknowledgement the other.
//! Data is mapped before submission, so a write executes at once; status
//! and data-in are acknowledged by freeing the command, and the response is
//! written when target core releases it (`release_cmd`), by the front end
//! that owns it (the callbacks are in `glue::target`).

/// The front end a SCSI command belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Front {
    Vhost = 1,
    Megasas = 2,
}

impl Front {
    /// A distinct index per kind, from 0.
    pub(crate) const fn index(self) -> usize {
        self as usize - 1
    }
}
