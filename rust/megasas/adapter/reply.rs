// SPDX-License-Identifier: GPL-2.0

//! The owner's memory as the adapter writes it: the memory table that
//! translates frame and buffer addresses, the frame header of an answer,
//! and the reply queue (with the replies that wait for room in it).

use super::{Adapter, QueueGuard, State, R_REPLIES};
use crate::{
    bindings as sys,
    glue::{
        user::{put_le32, put_le64, put_mfi_status},
        vhost::MemTable,
    },
    wire::mfi::{self, off, Completion},
};
use core::sync::atomic::{fence, Ordering};
use kernel::{
    ffi::c_void,
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

/// The memory table of the owner, for translating frame addresses.
pub(super) struct Mem<'a>(pub(super) MemTable<'a>);

impl Mem<'_> {
    /// The user address of `len` bytes at `addr`, which must lie in one
    /// region of the memory table.
    pub(super) fn xlate(&self, addr: u64, len: u64) -> Option<usize> {
        if len == 0 {
            return None;
        }
        let last = addr.checked_add(len - 1)?;
        let r = self.0.first(addr, last)?;
        if addr < r.start || last > r.last {
            return None;
        }
        // The whole range must be representable: its last byte too.
        r.uaddr.checked_add(last - r.start)?;
        usize::try_from(r.uaddr.checked_add(addr - r.start)?).ok()
    }

    /// Appends the iovecs of `len` bytes at `addr` (across regions).
    pub(super) fn xlate_iov(
        &self,
        mut addr: u64,
        mut len: u64,
        out: &mut KVec<sys::iovec>,
    ) -> Option<()> {
        while len > 0 {
            let last = addr.checked_add(len - 1)?;
            let r = self.0.first(addr, last)?;
            if addr < r.start {
                return None;
            }
            // The region found overlaps [addr, last]; checked all the same,
            // as the address of a guest SGL entry is behind it.
            let n = r.last.checked_sub(addr)?.saturating_add(1).min(len);
            let base = r.uaddr.checked_add(addr - r.start)?;
            base.checked_add(n - 1)?;
            out.push(
                sys::iovec {
                    iov_base: usize::try_from(base).ok()? as *mut c_void,
                    iov_len: usize::try_from(n).ok()?,
                },
                GFP_KERNEL,
            )
            .ok()?;
            addr = addr.wrapping_add(n);
            len -= n;
        }
        Some(())
    }
}

pub(super) fn read_user(uva: usize, out: &mut [u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(uva), out.len())
        .reader()
        .read_slice(out)
}

pub(super) fn write_user(uva: usize, bytes: &[u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(uva), bytes.len())
        .writer()
        .write_slice(bytes)
}

/// Writes the answer into a frame's header: status fields first,
/// `cmd_status` last (polling initiators wait for it to change).
pub(super) fn write_header(uva: usize, c: Completion) -> Result {
    put_mfi_status(
        field(uva, off::SENSE_LEN)?,
        c.sense_len,
        c.scsi_status,
        c.cmd_status,
    )
}

// `put_mfi_status` writes the three bytes from `sense_len`'s address.
const _: () = assert!(off::CMD_STATUS == off::SENSE_LEN + 1);
const _: () = assert!(off::SCSI_STATUS == off::SENSE_LEN + 2);

/// The user address of the field at `offset` in the frame at `uva`.
pub(super) fn field(uva: usize, offset: usize) -> Result<usize> {
    uva.checked_add(offset).ok_or(EFAULT)
}

/// Per worker run (one pass under the virtqueue mutex): the replies
/// posted are published with one write of the producer index and one
/// signal of the call eventfd at its end ([`signal`]).  Within a pass the
/// reply queue does not change (RESET takes the mutex; INIT only sets a
/// queue where there was none, before any reply of the pass).
#[derive(Default)]
pub(super) struct Run {
    /// The producer index to publish, and where.
    producer: Option<(usize, u32)>,
    /// The consumer index read in this pass (read again only when the
    /// queue looks full with it).
    consumer: Option<u32>,
    /// Replies posted, added to the `replies` register when published.
    posted: u32,
}

/// Posts `context` to the reply queue, or keeps it until there is room.
///
/// Replies that waited for room go first, retried here as well as at each
/// doorbell: an initiator that consumed the full queue and then only waits
/// for its commands in flight rings no doorbell, and their replies would
/// otherwise queue up behind the waiting ones for ever.
pub(super) fn post_reply(a: &Adapter, st: &mut State, context: u64, run: &mut Run) {
    let Some(r) = st.queue else {
        return;
    };
    let Some(ctx) = mfi::reply_context(context, r.info.context64) else {
        a.error("frame context not below the command count: answered in the frame only");
        return;
    };
    flush_deferred(a, st, run);
    if !st.deferred.is_empty() || !try_post(a, st, ctx, run) {
        if st.deferred.push_within_capacity(ctx).is_err() {
            a.error("reply queue overflow: reply dropped");
        }
    }
}

/// Writes one reply; false when the reply queue is full.
pub(super) fn try_post(a: &Adapter, st: &mut State, ctx: u64, run: &mut Run) -> bool {
    let Some(r) = st.queue.as_mut() else {
        return true;
    };
    let n = r.info.entries;
    // INIT checked `entries >= 2` and keeps `producer < entries`; the
    // successor is formed without a division (no divide-by-zero path, which
    // would be a panic).
    let next = if r.producer.saturating_add(1) >= n {
        0
    } else {
        r.producer + 1
    };
    // A consumer index out of range is not used for anything.
    let full = |consumer: Option<u32>| consumer.is_some_and(|c| c < n && next == c);
    if run.consumer.is_none() || full(run.consumer) {
        let mut c = [0u8; 4];
        run.consumer = read_user(r.consumer_uva, &mut c)
            .ok()
            .map(|()| u32::from_le_bytes(c));
        if full(run.consumer) {
            return false;
        }
    }
    let esz = r.info.entry_size();
    // INIT translated the whole ring and `producer < entries`: this cannot
    // overflow, but an address is only ever formed with checked arithmetic.
    let Some(at) = (r.producer as usize)
        .checked_mul(esz)
        .and_then(|o| r.ring.checked_add(o))
    else {
        a.error("reply queue address out of range");
        return true;
    };
    let ok = if esz == 8 {
        put_le64(at, ctx)
    } else {
        put_le32(at, ctx as u32)
    };
    if ok.is_err() {
        a.error("reply queue not writable");
        return true;
    }
    r.producer = next;
    run.producer = Some((r.producer_uva, r.producer));
    run.posted = run.posted.wrapping_add(1);
    true
}

/// Retries the replies that waited for room.
pub(super) fn flush_deferred(a: &Adapter, st: &mut State, run: &mut Run) {
    let mut i = 0;
    while i < st.deferred.len() {
        let ctx = st.deferred[i];
        if !try_post(a, st, ctx, run) {
            break;
        }
        i += 1;
    }
    if i > 0 {
        let n = st.deferred.len();
        st.deferred.copy_within(i..n, 0);
        st.deferred.truncate(n - i);
    }
}

/// Answers a frame: its header, then its reply unless it is polled.
pub(super) fn answer(
    a: &Adapter,
    st: &mut State,
    uva: usize,
    context: u64,
    polled: bool,
    c: Completion,
    run: &mut Run,
) {
    if write_header(uva, c).is_err() {
        a.error("frame not writable");
        return;
    }
    if !polled {
        post_reply(a, st, context, run);
    }
}

/// Ends a run: if replies were posted, publishes the producer index (after
/// the entries), then counts them in the `replies` register, and signals
/// the call eventfd.  The caller holds the virtqueue mutex:
/// `VHOST_SET_VRING_CALL` replaces and puts the eventfd under it.
///
/// The count comes after the producer index: a VMM takes a change of
/// `replies` as the adapter's reply interrupt status (the guest's driver
/// reads it, acknowledges, then reads the producer index), so a count
/// seen must never be ahead of the entries published, or the guest
/// acknowledges replies it cannot see yet and the interrupt that follows
/// their publication finds nothing pending.
pub(super) fn signal(a: &Adapter, g: &QueueGuard<'_>, run: &Run) {
    let Some((uva, producer)) = run.producer else {
        return;
    };
    fence(Ordering::Release);
    if put_le32(uva, producer).is_err() {
        // Not published, so not counted (the error is).
        a.error("reply producer index not writable");
    } else {
        // Release: the entries and the producer index before the count.
        a.reg32::<R_REPLIES>()
            .fetch_add(run.posted, Ordering::Release);
    }
    g.call();
}
