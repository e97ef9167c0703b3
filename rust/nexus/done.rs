// SPDX-License-Identifier: GPL-2.0

//! The way back of both front ends: what target core hands back (a
//! released command, a finished TMF) goes to the worker of its queue, which
//! alone writes the answer to the initiator's memory.
//!
//! A queue keeps a count of what it has in flight, and its device drains
//! that count before it frees the queue.  [`released`] is the one place
//! that decides, for a command target core released, whether the worker
//! already has it (run to completion, in its own kick pass) or must be
//! woken for it, and that keeps the queue alive while it does.

use crate::glue::stack::{Link, Stack};

/// A queue whose worker answers what target core hands back.
///
/// # Safety
///
/// The queue must stay valid, and these methods callable from any thread,
/// from [`WorkerQueue::get_inflight`] until the matching
/// [`WorkerQueue::put_inflight`]: the device drains the count before it
/// frees the queue.
pub(crate) unsafe trait WorkerQueue: Sized + 'static {
    /// Takes a count of the queue's work in flight.
    fn get_inflight(&self);
    /// Drops a count taken by [`WorkerQueue::get_inflight`] (or by a
    /// submission); the device may go once it reaches zero.
    fn put_inflight(&self);
    /// Queues the queue's completion work; `false` without a worker (the
    /// owner is gone).
    fn queue_completion(&self) -> bool;
}

/// A queue whose commands, once released by target core, are answered by
/// its worker from [`DoneQueue::done`].
///
/// # Safety
///
/// [`DoneQueue::in_own_pass`] must be true only on the queue's worker
/// inside a kick pass, after which that thread takes [`DoneQueue::done`]
/// before it lets go of the queue's lock (the command's own count keeps
/// the queue meanwhile).  The work [`WorkerQueue::queue_completion`]
/// queues must take [`DoneQueue::done`] and drop each command's count.
pub(crate) unsafe trait DoneQueue: WorkerQueue {
    /// The front end's command.
    type Cmd: Link;
    /// Released commands, for the worker.
    fn done(&self) -> &Stack<Self::Cmd>;
    /// Whether this thread is the queue's worker in its kick pass.
    fn in_own_pass(&self) -> bool;
    /// Lets go of a released command's pages and buffers without an
    /// answer (no worker will write it).
    ///
    /// # Safety
    ///
    /// Target core released `cmd`, a command of this queue's pool, and
    /// nothing else uses it.
    unsafe fn drop_unanswered(&self, cmd: *mut Self::Cmd);
}

/// Target core released `cmd` (a fabric's `release_cmd`): hands it to the
/// worker of its queue `q`, which answers it and drops the command's count.
///
/// # Safety
///
/// `cmd` must be a command of `q`'s pool, submitted with a count of `q`'s
/// in flight and released by target core, once; it is ours until the
/// worker takes it.
pub(crate) unsafe fn released<Q: DoneQueue>(q: &Q, cmd: *mut Q::Cmd) {
    if q.in_own_pass() {
        // Run to completion: released by the queue's worker in its kick
        // pass, which answers it right after the pass, under the same lock;
        // the command's own count keeps the device until then.
        // SAFETY: target core let go of the command: it is ours until the
        // pass takes it off the stack.
        unsafe { q.done().push(cmd) };
        return;
    }
    let unanswered = |c| {
        // SAFETY: each command on the stack was released by target core and
        // is ours.
        unsafe { q.drop_unanswered(c) };
    };
    // SAFETY: target core let go of the command, which holds a count of
    // `q`'s (the caller's contract); `done` is the stack `q`'s worker takes.
    unsafe { hand_over(q, q.done(), cmd, unanswered) };
}

/// Pushes `item` onto `stack`, one of `q`'s stacks that its completion work
/// takes, and queues that work.  Without a worker (the owner is gone),
/// everything on the stack goes to `unanswered` instead, with its count.
///
/// # Safety
///
/// `item` must be valid, ours, and hold a count of `q`'s in flight;
/// `stack` must be the one the work [`WorkerQueue::queue_completion`]
/// queues takes, dropping each item's count.
pub(crate) unsafe fn hand_over<Q: WorkerQueue, T: Link>(
    q: &Q,
    stack: &Stack<T>,
    item: *mut T,
    mut unanswered: impl FnMut(*mut T),
) {
    // Once the item is on the stack, a completion pass already running may
    // answer it and bring the count to zero, and the closer's drain would
    // then free the device while this function still uses `q`: a count of
    // our own keeps it until the work is queued.
    q.get_inflight();
    // SAFETY: the item is ours (the caller's contract) until the completion
    // work (or the loop below) takes it off.
    unsafe { stack.push(item) };
    if !q.queue_completion() {
        for i in stack.take_all() {
            unanswered(i);
            q.put_inflight();
        }
    }
    // The last use of `q` is above: after this the device may go.
    q.put_inflight();
}
