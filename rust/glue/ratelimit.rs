// SPDX-License-Identifier: GPL-2.0

//! Rate-limited warnings: input from a guest or a process can fail at the
//! rate it is sent, and the kernel crate has no `pr_warn_ratelimited`.

use crate::bindings as sys;
use core::{
    ptr,
    sync::atomic::{AtomicU32, Ordering},
};
use kernel::prelude::*;

/// Seconds between two reports of one [`RateLimit`].
const INTERVAL_S: u32 = 5;

/// One report per [`INTERVAL_S`] seconds, the others suppressed.
pub(crate) struct RateLimit {
    /// `jiffies` of the last report (0: none yet).
    last: AtomicU32,
    prefix: &'static str,
}

impl RateLimit {
    /// A limit for reports that start with `prefix`.
    pub(crate) const fn new(prefix: &'static str) -> RateLimit {
        RateLimit {
            last: AtomicU32::new(0),
            prefix,
        }
    }

    /// Warns `what`, unless a report was printed in the last interval.
    pub(crate) fn warn(&self, what: &str) {
        // SAFETY: `jiffies` is always readable; a volatile read of a word.
        let now = unsafe { ptr::read_volatile(&raw const sys::jiffies) } as u32;
        let last = self.last.load(Ordering::Relaxed);
        if last == 0 || now.wrapping_sub(last) >= INTERVAL_S * sys::HZ {
            self.last.store(now, Ordering::Relaxed);
            pr_warn!(
                "{}: {} (further reports suppressed for {} s)\n",
                self.prefix,
                what,
                INTERVAL_S
            );
        }
    }
}
