// SPDX-License-Identifier: GPL-2.0

//! The commands in flight of a front-end instance, by initiator tag.
//!
//! A front end owns its command pools; for each pool it registers a
//! [`Table`] with one [`Slot`] per command.  Marking a slot busy or free is
//! two atomic stores on the fast path (no lock); task management scans the
//! tables under a mutex that only registration and scans take.  A scan
//! sees a snapshot: a command that completes meanwhile is simply not found
//! by target core's ABORT TASK, which is the authority.

use crate::bindings as sys;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use kernel::{new_mutex, prelude::*, sync::Arc, sync::Mutex};

/// One command slot.
struct Slot {
    busy: AtomicBool,
    /// Set when an ABORT TASK or ABORT TASK SET targets the command: it is
    /// then answered "aborted" rather than "reset" if target core aborts it.
    abort_requested: AtomicBool,
    tag: AtomicU64,
    lun: AtomicU64,
    sess: AtomicPtr<sys::se_session>,
}

/// The slots of one command pool, indexed like the pool.
pub(crate) struct Table {
    slots: KVVec<Slot>,
}

impl Table {
    /// A table of `n` free slots.
    pub(crate) fn new(n: usize) -> Result<Arc<Table>> {
        let mut slots = KVVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            slots.push(
                Slot {
                    busy: AtomicBool::new(false),
                    abort_requested: AtomicBool::new(false),
                    tag: AtomicU64::new(0),
                    lun: AtomicU64::new(0),
                    sess: AtomicPtr::new(core::ptr::null_mut()),
                },
                GFP_KERNEL,
            )?;
        }
        Ok(Arc::new(Table { slots }, GFP_KERNEL)?)
    }

    /// Slot `i` now holds the command `tag` for `lun` on `sess`.
    pub(crate) fn start(&self, i: usize, sess: *mut sys::se_session, lun: u64, tag: u64) {
        let Some(s) = self.slots.get(i) else {
            return;
        };
        s.abort_requested.store(false, Ordering::Relaxed);
        s.tag.store(tag, Ordering::Relaxed);
        s.lun.store(lun, Ordering::Relaxed);
        s.sess.store(sess, Ordering::Relaxed);
        s.busy.store(true, Ordering::Release);
    }

    /// Slot `i` is free again; returns whether an abort was requested for
    /// its command.
    pub(crate) fn finish(&self, i: usize) -> bool {
        let Some(s) = self.slots.get(i) else {
            return false;
        };
        s.busy.store(false, Ordering::Release);
        s.abort_requested.load(Ordering::Relaxed)
    }
}

/// The tables of one front-end instance (one vhost device, one adapter).
#[pin_data]
pub(crate) struct Inflight {
    #[pin]
    tables: Mutex<KVec<Arc<Table>>>,
}

/// Which commands a scan selects.
#[derive(Clone, Copy)]
pub(super) struct Filter {
    pub(super) sess: *mut sys::se_session,
    pub(super) lun: Option<u64>,
    pub(super) tag: Option<u64>,
}

impl Inflight {
    pub(crate) fn new() -> Result<Arc<Inflight>> {
        Arc::pin_init(
            pin_init!(Inflight {
                tables <- new_mutex!(KVec::new()),
            }),
            GFP_KERNEL,
        )
    }

    /// Adds the table of a new command pool.
    pub(crate) fn register(&self, t: Arc<Table>) -> Result {
        self.tables.lock().push(t, GFP_KERNEL)?;
        Ok(())
    }

    /// Calls `f(lun, tag)` for each command in flight that `filter`
    /// selects; `mark` also requests the abort answer for them.
    pub(super) fn scan(&self, filter: Filter, mark: bool, mut f: impl FnMut(u64, u64)) {
        let tables = self.tables.lock();
        for t in tables.iter() {
            for s in t.slots.iter() {
                if !s.busy.load(Ordering::Acquire) || s.sess.load(Ordering::Relaxed) != filter.sess
                {
                    continue;
                }
                let (lun, tag) = (s.lun.load(Ordering::Relaxed), s.tag.load(Ordering::Relaxed));
                if filter.lun.is_some_and(|l| l != lun) || filter.tag.is_some_and(|g| g != tag) {
                    continue;
                }
                if mark {
                    s.abort_requested.store(true, Ordering::Relaxed);
                }
                f(lun, tag);
            }
        }
    }

    /// Whether any command in flight matches `filter`.
    pub(super) fn any(&self, filter: Filter) -> bool {
        let mut found = false;
        self.scan(filter, false, |_, _| found = true);
        found
    }
}
