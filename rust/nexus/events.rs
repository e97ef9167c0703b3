// SPDX-License-Identifier: GPL-2.0

//! Events a front end reports to its initiator (LUN hotplug), queued with
//! bounded memory.
//!
//! The fabric pushes an [`Event`] when a LUN is linked into or unlinked
//! from a TPG the front end is bound to; the queue calls the front end's
//! `notify` callback, and the front end delivers queued events when the
//! initiator has buffers for them (virtio-scsi event queue, MFI AEN).  At
//! most [`QUEUE_LEN`] events wait; an event that finds the queue full
//! replaces all of them (they are dropped) and the queue records an
//! overflow, which the front end reports as "events missed" with the next
//! event it delivers: the initiator then rescans, which covers the dropped
//! events, and only events newer than the rescan follow it.

use super::stats::EventStats;
use core::ffi::c_void;
use kernel::{new_spinlock, prelude::*, sync::Arc, sync::SpinLock};

/// Events kept while the initiator has no buffer for them.
pub(crate) const QUEUE_LEN: usize = 64;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// A LUN was linked into the TPG.
    LunAdded,
    /// A LUN is being unlinked from the TPG.
    LunRemoved,
}

/// One event.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub(crate) kind: EventKind,
    /// The TPG tag (the SCSI target id the initiator sees).
    pub(crate) target: u16,
    /// The LUN (unpacked).
    pub(crate) lun: u64,
}

struct Ring {
    buf: [Option<Event>; QUEUE_LEN],
    head: usize,
    len: usize,
    overflowed: bool,
}

/// What a front end's queue does when an event is pushed: schedule the
/// delivery (any context that may sleep; it must not block long).
pub(crate) trait Notify {
    fn notify(&self);
    /// The device's event counters (queued and dropped are counted here,
    /// delivered by the front end).
    fn event_stats(&self) -> &EventStats;
}

/// `notify` of a `T` behind `ctx`.
///
/// # Safety
///
/// `ctx` must point to a live `T`.
unsafe fn notify_of<T: Notify>(ctx: *const c_void) {
    // SAFETY: `ctx` points to a live `T` (the caller's contract).
    unsafe { (*ctx.cast::<T>()).notify() }
}

/// The event queue of one front-end instance.
#[pin_data]
pub(crate) struct Events {
    #[pin]
    ring: SpinLock<Ring>,
    notify: unsafe fn(*const c_void),
    // INVARIANT: valid for `notify` as long as the queue is bound to a TPG
    // (the front end unbinds before `ctx` goes away).
    ctx: *const c_void,
    // INVARIANT: `ctx`'s counters, valid as long as `ctx`.
    stats: *const EventStats,
}

// SAFETY: `ctx` is only passed to `notify`, which the front end provides
// for any thread; the ring is behind a spinlock.
unsafe impl Send for Events {}
// SAFETY: `notify` and `ctx` are never changed after `new`, and the front end's
// `notify(ctx)` may be called from any thread; the ring is only reached under its spinlock.
unsafe impl Sync for Events {}

impl Events {
    /// A queue whose pushes call `ctx.notify()`.
    ///
    /// # Safety
    ///
    /// `ctx` must stay valid until every TPG this queue is bound to was
    /// unbound, and `notify` may be called on it from any thread (the
    /// front ends' queues are shared with target core's threads).
    pub(crate) unsafe fn new<T: Notify>(ctx: *const T) -> Result<Arc<Events>> {
        let notify: unsafe fn(*const c_void) = notify_of::<T>;
        // SAFETY: `ctx` is valid (the caller's contract).
        let stats: *const EventStats = unsafe { (*ctx).event_stats() };
        let ctx = ctx.cast::<c_void>();
        Arc::pin_init(
            pin_init!(Events {
                ring <- new_spinlock!(Ring {
                    buf: [None; QUEUE_LEN],
                    head: 0,
                    len: 0,
                    overflowed: false,
                }),
                notify,
                ctx,
                stats,
            }),
            GFP_KERNEL,
        )
    }

    /// Queues `e` (or records an overflow) and notifies the front end.
    pub(crate) fn push(&self, e: Event) {
        // SAFETY: valid as long as `ctx` (the invariant of `stats`), which
        // is while bound: the fabric pushes only to bound queues.
        let stats = unsafe { &*self.stats };
        {
            let mut r = self.ring.lock();
            if r.len == QUEUE_LEN {
                // Full: the initiator will be told that events were missed
                // and rescan, which covers every event queued so far, so
                // they are dropped and `e` is kept.  Delivered after the
                // rescan, the old events would undo it (a LUN linked and
                // unlinked 40 times and linked again would be removed by
                // the 64th).  The next event delivered is `e`, with the
                // events-missed mark (vhost; MFI: any LUN event makes the
                // driver reread its LUN list), and later ones follow it.
                stats.dropped.add_shared(QUEUE_LEN as u64);
                r.buf = [None; QUEUE_LEN];
                r.head = 0;
                r.len = 0;
                r.overflowed = true;
            }
            stats.queued.inc_shared();
            let i = (r.head + r.len) % QUEUE_LEN;
            r.buf[i] = Some(e);
            r.len += 1;
        }
        // SAFETY: per the contract of `new`, while bound (the fabric pushes
        // only to bound queues).
        unsafe { (self.notify)(self.ctx) };
    }

    /// The oldest queued event.
    pub(crate) fn front(&self) -> Option<Event> {
        let r = self.ring.lock();
        if r.len == 0 {
            None
        } else {
            r.buf[r.head]
        }
    }

    /// Drops the oldest queued event (after it was delivered).
    pub(crate) fn pop(&self) {
        let mut r = self.ring.lock();
        if r.len != 0 {
            let h = r.head;
            r.buf[h] = None;
            r.head = (h + 1) % QUEUE_LEN;
            r.len -= 1;
        }
    }

    /// Drops every queued event.
    pub(crate) fn clear(&self) {
        let mut r = self.ring.lock();
        r.buf = [None; QUEUE_LEN];
        r.head = 0;
        r.len = 0;
    }

    /// Whether events were dropped since the last call.
    pub(crate) fn take_overflow(&self) -> bool {
        core::mem::replace(&mut self.ring.lock().overflowed, false)
    }
}
