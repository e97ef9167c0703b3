// SPDX-License-Identifier: GPL-2.0

//! Typed handles over vhost core (`drivers/vhost/vhost.c`): the device, its
//! virtqueues with their mutex, the descriptor chains a worker pops, iov
//! iterators over a chain's buffers and the copies to and from guest memory.
//!
//! The rules the front ends used to keep by hand are carried by types here:
//!
//! - [`VqLock`] exists only while the virtqueue mutex is held; the backend a
//!   queue serves and the front end's per-queue state are reached through it
//!   only ([`VqLock::parts`] lends both at once).
//! - [`OnWorker`] is made at the entry of a vhost work function, the only
//!   context in which the owner's mm is the current one; everything that
//!   reads the rings or copies to or from guest memory takes it.
//! - A [`Chain`] is made only by `VqLock::pop` (behind
//!   [`VqLock::next_chain`] and [`VqLock::take_chains`]): its counts fit the
//!   virtqueue's iovec and log arrays, so its buffers are handed out as
//!   slices.

use crate::bindings as sys;
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::MaybeUninit,
    ptr,
    sync::atomic::{AtomicPtr, AtomicU32, Ordering},
};
use kernel::{
    ffi::{c_int, c_ulong, c_void},
    prelude::*,
    task::Task,
    types::Opaque,
};

/// A function the worker of a front end's queue type `T` runs: a kick
/// handler ([`RawVq::write`]) or a work item ([`Work::init`]).  Implemented
/// by a zero-sized type per function; the glue calls it with the queue and
/// the proof that it runs on the owner's worker.
pub(crate) trait Handler<T>: 'static {
    fn run(q: &T, w: &OnWorker);
}

/// The kick handler vhost core calls for a queue made by
/// `RawVq::write::<T, H>`.
///
/// # Safety
///
/// `work` must be the `poll.work` of a virtqueue that is the first field of
/// a live `T` (the contract of [`RawVq::write`]), run by its worker.
unsafe extern "C" fn kick_trampoline<T, H: Handler<T>>(work: *mut sys::vhost_work) {
    // SAFETY: `work` is the poll work of a virtqueue that is the first
    // field of a live `#[repr(C)]` `T` (the caller's contract).
    let q = unsafe { &*kernel::container_of!(work, sys::vhost_virtqueue, poll.work).cast::<T>() };
    // SAFETY: vhost core runs kick handlers on the device owner's worker.
    H::run(q, &unsafe { OnWorker::assume() });
}

/// The work function vhost core calls for a work made by
/// `Work::init::<T, H>`.
///
/// # Safety
///
/// `work` must be a [`Work`] initialised by `init::<T, H>`, whose owner is
/// live, run by its queue's worker.
unsafe extern "C" fn work_trampoline<T, H: Handler<T>>(work: *mut sys::vhost_work) {
    // SAFETY: `work` is the first field of a `#[repr(C)]` `Work` whose
    // owner is a live `T` (the caller's contract).
    let q = unsafe { &*(*work.cast::<Work>()).owner.cast::<T>() };
    // SAFETY: vhost core runs queued work on the device owner's worker.
    H::run(q, &unsafe { OnWorker::assume() });
}

/// Proof that the code runs on a device owner's vhost worker, where the
/// owner's mm is the current one: vhost core reads the rings there, and the
/// module copies to and from guest memory and pins guest pages there only.
// INVARIANT: made only by `OnWorker::assume`; neither `Send` nor `Sync`
// (the raw pointer marker), so it cannot leave the worker thread.
pub(crate) struct OnWorker(PhantomData<*mut ()>);

impl OnWorker {
    /// # Safety
    ///
    /// The caller must be a vhost work function (a queue's kick or a work
    /// queued with [`RawVq::queue_work`]) running on the worker of the
    /// device whose queues it serves, and the token must be used for that
    /// device's queues only.
    pub(crate) unsafe fn assume() -> OnWorker {
        OnWorker(PhantomData)
    }
}

/// A vhost core device (`struct vhost_dev`), embedded in a front end's
/// per-file object, with the backend `B` its virtqueues serve once bound
/// (the endpoint), kept under the device mutex.
// INVARIANT: `init` ran before any other method is called and before the
// drop (the contract of `new`).
// A virtqueue's backend (`private_data`) is null or the box in `backend`:
// only `DevLock::install`, `stop`, `restart` and `take` set it (vhost core
// only ever clears it, `vhost_vq_reset()`).
#[repr(C)]
pub(crate) struct Dev<B> {
    dev: Opaque<sys::vhost_dev>,
    // INVARIANT: accessed only with the device mutex held.
    backend: UnsafeCell<Option<KBox<B>>>,
}

impl<B> Dev<B> {
    /// A device to be initialised with [`Dev::init`].
    ///
    /// # Safety
    ///
    /// [`Dev::init`] must run before any other method and before the device
    /// is dropped; the virtqueues must outlive it (a front end declares the
    /// `Dev` before its queues, so that it is dropped first).
    pub(crate) unsafe fn new() -> Dev<B> {
        Dev {
            dev: Opaque::zeroed(),
            backend: UnsafeCell::new(None),
        }
    }

    fn raw(&self) -> *mut sys::vhost_dev {
        self.dev.get()
    }

    /// `vhost_dev_init()`.
    ///
    /// # Safety
    ///
    /// The virtqueues in `vqs` must be `RawVq<B, _>`s; the device and they
    /// must be zeroed (apart from their handlers and the front end's own
    /// fields, see [`RawVq::write`]), allocated, and must not move until
    /// [`Dev::cleanup`]; `vqs` must live as long.
    pub(crate) unsafe fn init(
        &self,
        vqs: &mut KVec<*mut sys::vhost_virtqueue>,
        iov_limit: c_int,
        weight: c_int,
    ) {
        // SAFETY: the device and the virtqueues are zeroed and do not move
        // (the caller's contract); `vqs` holds `vqs.len()` pointers to them.
        unsafe {
            sys::vhost_dev_init(
                self.raw(),
                vqs.as_mut_ptr(),
                vqs.len() as c_int,
                iov_limit,
                weight,
                0,
                true,
                None,
            )
        };
    }

    pub(crate) fn lock(&self) -> DevLock<'_, B> {
        // SAFETY: the mutex was initialised by vhost_dev_init (invariant).
        unsafe { sys::mutex_lock(&raw mut (*self.raw()).mutex) };
        DevLock(self)
    }

    /// Waits for the work queued on the device's workers.
    pub(crate) fn flush(&self) {
        // SAFETY: the device is initialised (invariant).
        unsafe { sys::vhost_dev_flush(self.raw()) };
    }

    /// Waits until `inflight` is zero and the work queued meanwhile on the
    /// device's workers has run.  Whoever brings `inflight` to zero calls
    /// [`put_inflight`].
    pub(crate) fn drain(&self, inflight: &AtomicU32) {
        self.drain_each(core::iter::once(inflight));
    }

    /// [`Dev::drain`] for counts kept per queue: waits until each is zero,
    /// one after the other.  A count must not rise from zero once the
    /// backend is stopped (a release takes its count while the command's
    /// own is still held), so each stays at zero once seen there.
    pub(crate) fn drain_each<'a>(&self, counts: impl Iterator<Item = &'a AtomicU32>) {
        self.flush();
        for inflight in counts {
            // SAFETY: `inflight` is live for the call; it is woken at zero.
            unsafe { sys::tcm_virt_wait_zero(inflight.as_ptr()) };
        }
        self.flush();
    }
}

impl<B> Drop for Dev<B> {
    /// `vhost_dev_stop()` and `vhost_dev_cleanup()`: stops the workers and
    /// frees what vhost core allocated.  The front end unbound first (its
    /// own `Drop`), so no backend is left.
    fn drop(&mut self) {
        // SAFETY: the device was initialised (the contract of `new`), its
        // virtqueues are still alive (dropped after the device), and this
        // runs once.
        unsafe {
            sys::vhost_dev_stop(self.raw());
            sys::vhost_dev_cleanup(self.raw());
        }
    }
}

/// Drops one count of `inflight` and wakes a [`Dev::drain`] at zero.
pub(crate) fn put_inflight(inflight: &AtomicU32) {
    if inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
        // `wake_up_var` looks for a waiter without a lock: the store must
        // be visible before (`smp_mb()` in C).
        core::sync::atomic::fence(Ordering::SeqCst);
        // SAFETY: the counter is live; waking a variable nobody waits on is
        // harmless.
        unsafe { sys::wake_up_var(inflight.as_ptr().cast()) };
    }
}

/// The device mutex, held.
// INVARIANT: made only by `Dev::lock`, after taking the mutex.
pub(crate) struct DevLock<'a, B>(&'a Dev<B>);

impl<B> Drop for DevLock<'_, B> {
    fn drop(&mut self) {
        // SAFETY: locked in `Dev::lock` (invariant).
        unsafe { sys::mutex_unlock(&raw mut (*self.0.raw()).mutex) };
    }
}

impl<B> DevLock<'_, B> {
    fn raw(&self) -> *mut sys::vhost_dev {
        self.0.raw()
    }

    fn slot(&mut self) -> &mut Option<KBox<B>> {
        // SAFETY: the mutex is held (invariant) and `&mut self` makes the
        // borrow unique.
        unsafe { &mut *self.0.backend.get() }
    }

    /// The bound backend, if any.
    pub(crate) fn backend(&self) -> Option<&B> {
        // SAFETY: the mutex is held (invariant); `&self` only reads.
        unsafe { (*self.0.backend.get()).as_deref() }
    }

    /// Makes `p` the backend of every virtqueue of the device (and, with
    /// `init_access`, initialises its ring state under the same lock).
    fn set_all(&self, p: *const B, init_access: bool) {
        // SAFETY: `vqs` and `nvqs` are set by vhost_dev_init and never
        // change; each entry is a live virtqueue of the device.
        let (vqs, n) = unsafe { ((*self.raw()).vqs, (*self.raw()).nvqs) };
        for i in 0..usize::try_from(n).unwrap_or(0) {
            // SAFETY: `i < nvqs`; the virtqueue's mutex guards its backend,
            // which vhost core and the front end read under it.
            unsafe {
                let vq = *vqs.add(i);
                sys::mutex_lock(&raw mut (*vq).mutex);
                (*vq).private_data = p.cast_mut().cast::<c_void>();
                if init_access {
                    sys::vhost_vq_init_access(vq);
                }
                sys::mutex_unlock(&raw mut (*vq).mutex);
            }
        }
    }

    /// Keeps `ep` and makes it the backend of every virtqueue; `EEXIST`
    /// when one is bound.  With `init_access`, each virtqueue's ring state
    /// is initialised (`vhost_vq_init_access()`) in the same critical
    /// section, before a kick can see the backend, as C `vhost_scsi` does
    /// (its result is not checked: the first used-ring write reports a
    /// fault again).
    pub(crate) fn install(&mut self, ep: KBox<B>, init_access: bool) -> Result {
        if self.backend().is_some() {
            return Err(EEXIST);
        }
        let p: *const B = &*ep;
        *self.slot() = Some(ep);
        // INVARIANT: the pointer is that of the box just stored.
        self.set_all(p, init_access);
        Ok(())
    }

    /// Removes the backend from every virtqueue (they stop serving); it is
    /// kept for [`DevLock::restart`] or [`DevLock::take`].
    pub(crate) fn stop(&mut self) {
        self.set_all(ptr::null(), false);
    }

    /// Makes the kept backend that of every virtqueue again.
    pub(crate) fn restart(&mut self) {
        let p = self.backend().map_or(ptr::null(), ptr::from_ref);
        self.set_all(p, false);
    }

    /// Removes the backend from every virtqueue and hands it over.
    pub(crate) fn take(&mut self) -> Option<KBox<B>> {
        self.stop();
        self.slot().take()
    }

    /// Whether `VHOST_SET_OWNER` was done.
    pub(crate) fn has_owner(&self) -> bool {
        // SAFETY: `mm` is written under the device mutex, held (invariant).
        !unsafe { (*self.raw()).mm.is_null() }
    }

    /// `EPERM` when the device has an owner and the caller is another
    /// process (`vhost_dev_check_owner()`); no owner yet: allowed, as C
    /// `vhost_scsi` allows it.
    pub(crate) fn check_owner(&self) -> Result {
        if !self.has_owner() {
            return Ok(());
        }
        self.require_owner()
    }

    /// `EPERM` unless the caller is the owner (`vhost_dev_check_owner()`),
    /// owner or not: for devices that need one.
    pub(crate) fn require_owner(&self) -> Result {
        // SAFETY: the device mutex is held (invariant), as vhost core reads
        // `mm` under it.
        errno(unsafe { sys::vhost_dev_check_owner(self.raw()) } as isize).map(|_| ())
    }

    /// `vhost_log_access_ok()`: the dirty log is writable.
    pub(crate) fn log_access_ok(&self) -> bool {
        // SAFETY: the device mutex is held (invariant).
        unsafe { sys::vhost_log_access_ok(self.raw()) }
    }

    /// The worker ioctls (`VHOST_NEW_WORKER`, ...).
    pub(crate) fn worker_ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        // SAFETY: the device mutex is held (invariant), as
        // vhost_worker_ioctl requires; `arg` is the caller's user pointer,
        // which vhost core copies with the user-access checks.
        errno(unsafe { sys::vhost_worker_ioctl(self.raw(), cmd, arg as *mut c_void) })
    }

    /// vhost core's device and vring ioctls; after a device ioctl, the work
    /// queued under the old setting is waited for.
    pub(crate) fn core_ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        // SAFETY: the device mutex is held (invariant); `arg` is the caller's
        // user pointer, which vhost core copies with the user-access checks.
        let r = unsafe { sys::vhost_dev_ioctl(self.raw(), cmd, arg as *mut c_void) };
        if r == -(sys::ENOIOCTLCMD as isize) {
            // SAFETY: as for vhost_dev_ioctl just above.
            return errno(unsafe { sys::vhost_vring_ioctl(self.raw(), cmd, arg as *mut c_void) });
        }
        self.0.flush();
        errno(r)
    }
}

/// A vhost core return value as a result.
pub(crate) fn errno(r: isize) -> Result<isize> {
    if r < 0 {
        Err(Error::from_errno(r as i32))
    } else {
        Ok(r)
    }
}

/// A virtqueue (`struct vhost_virtqueue`) serving a backend `B` (its
/// `private_data`), with the front end's per-queue state `S` guarded by the
/// virtqueue mutex.  The first field of a front end's `#[repr(C)]` queue.
#[repr(C)]
pub(crate) struct RawVq<B, S> {
    // INVARIANT: first field, so that `*mut vhost_virtqueue` converts to
    // `*const RawVq`; initialised by `Dev::init` before any method runs.
    vq: Opaque<sys::vhost_virtqueue>,
    // INVARIANT: accessed only with the virtqueue mutex held.
    state: UnsafeCell<S>,
    /// The task running a [`VqLock::pass`] of this queue, null outside one.
    // INVARIANT: written only by that task, holding the virtqueue mutex.
    pass: AtomicPtr<sys::task_struct>,
    _backend: PhantomData<*const B>,
}

impl<B, S> RawVq<B, S> {
    /// Writes a zeroed virtqueue with `state` at `p`, whose kicks run
    /// `H` with the `T` it belongs to.
    ///
    /// # Safety
    ///
    /// `p` must be valid for writes of one `RawVq`, not yet known to vhost
    /// core, and be the first field of a `#[repr(C)]` `T` that lives as
    /// long as the virtqueue is known to vhost core.
    pub(crate) unsafe fn write<T, H: Handler<T>>(p: *mut Self, state: S) {
        // SAFETY: `p` is valid for writes (the caller's contract); a zeroed
        // vhost_virtqueue is what vhost_dev_init expects, with the handler
        // set.
        unsafe {
            ptr::write_bytes(&raw mut (*p).vq, 0, 1);
            (*(*p).vq.get()).handle_kick = Some(kick_trampoline::<T, H>);
            ptr::write(&raw mut (*p).state, UnsafeCell::new(state));
            ptr::write(&raw mut (*p).pass, AtomicPtr::new(ptr::null_mut()));
        }
    }

    pub(crate) fn raw(&self) -> *mut sys::vhost_virtqueue {
        self.vq.get()
    }

    pub(crate) fn lock(&self) -> VqLock<'_, B, S> {
        // SAFETY: the mutex was initialised by vhost_dev_init (invariant).
        unsafe { sys::mutex_lock(&raw mut (*self.raw()).mutex) };
        VqLock(self)
    }

    /// Whether the caller is inside a [`VqLock::pass`] of this queue on its
    /// own thread: it is then the queue's worker and holds the queue's
    /// mutex, and what it hands to the pass is taken before the pass ends.
    pub(crate) fn in_own_pass(&self) -> bool {
        // Only the task in the pass stores its own pointer, and clears it
        // before the pass ends: another task never reads its own pointer
        // here, and the task itself reads what it wrote (program order).
        self.pass.load(Ordering::Relaxed) == Task::current_raw()
    }

    /// Queues `work` on the queue's worker; `false` when the queue has no
    /// worker (no owner yet, or gone).
    pub(crate) fn queue_work(&self, work: &Work) -> bool {
        if !ptr::eq(work.owner.cast::<sys::vhost_virtqueue>(), self.raw()) {
            // Not a work of this queue (or not initialised).
            return false;
        }
        // SAFETY: the virtqueue is initialised (invariant) and `work` was
        // initialised by `Work::init` for this queue (just checked).
        unsafe { sys::vhost_vq_work_queue(self.raw(), work.work.get()) }
    }

    /// Queues the queue's kick work, as a kick would.
    pub(crate) fn poll_queue(&self) {
        // SAFETY: the virtqueue and its poll are initialised (invariant).
        unsafe { sys::vhost_poll_queue(&raw mut (*self.raw()).poll) };
    }
}

/// A work item of a queue's worker (`struct vhost_work`) and the queue it
/// runs for.
// INVARIANT: `init` ran before the device exists; only then may it be
// queued.
#[repr(C)]
pub(crate) struct Work {
    // INVARIANT: first field: `work_trampoline` converts the one to the
    // other.
    work: Opaque<sys::vhost_work>,
    owner: *const c_void,
}

impl Work {
    /// Makes the work run `H` with `owner` on the queue's worker.
    ///
    /// # Safety
    ///
    /// The work must be zeroed or idle (never queued, or flushed); `owner`
    /// must be a `#[repr(C)]` `T` whose first field is the `RawVq` the work
    /// is queued on ([`RawVq::queue_work`] checks that it is), and stay
    /// valid while the work can be queued.
    pub(crate) unsafe fn init<T, H: Handler<T>>(&mut self, owner: *const T) {
        self.owner = owner.cast();
        // SAFETY: the work is idle (the caller's contract).
        unsafe { sys::vhost_work_init(self.work.get(), Some(work_trampoline::<T, H>)) };
    }
}

/// How a [`VqLock::take_chains`] pass ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PassEnd {
    /// The ring is empty.
    Empty,
    /// The weight was reached: the kick work was queued again.
    Weight,
    /// vhost core refused a descriptor and signalled the ring's error
    /// eventfd: the ring stops until the next kick.
    Refused,
}

/// A descriptor chain popped from a virtqueue.
// INVARIANT: made only by `VqLock::pop` of virtqueue `vq`: `out +
// inn` iovecs and `log_num` log entries (at most the device's `iov_limit`,
// the log array's length) of that virtqueue's arrays were written for it.
// Another chain popped later overwrites them with its own, within the same
// bounds; a chain is only read through the lock of its own virtqueue.
pub(crate) struct Chain {
    /// The virtqueue it was popped from: its buffers are read only there.
    vq: *const sys::vhost_virtqueue,
    pub(crate) head: u16,
    out: usize,
    inn: usize,
    pub(crate) out_size: usize,
    pub(crate) in_size: usize,
    log_num: u32,
}

impl Chain {
    /// Number of readable descriptors.
    pub(crate) fn readable(&self) -> usize {
        self.out
    }
}

/// What [`VqLock::split`] lends at once.
pub(crate) struct Split<'a, B, S> {
    pub(crate) backend: Option<&'a B>,
    pub(crate) state: &'a mut S,
    /// The chain's readable and writable buffers and the dirty-log entries
    /// of the writable ones.
    pub(crate) readable: &'a [sys::iovec],
    pub(crate) writable: &'a [sys::iovec],
    pub(crate) log: &'a [sys::vhost_log],
}

/// The virtqueue mutex, held.
// INVARIANT: made only by `RawVq::lock`, after taking the mutex.
pub(crate) struct VqLock<'a, B, S>(&'a RawVq<B, S>);

/// How many used-ring entries a [`UsedBatch`] holds before it is put on
/// the ring.
pub(crate) const USED_BATCH: usize = 32;

/// Used-ring entries (head, bytes written) collected during one completion
/// pass, put on the ring by [`VqLock::flush_used`] with one used-index
/// update, in the ring's byte order.
pub(crate) struct UsedBatch {
    elems: [sys::vring_used_elem; USED_BATCH],
    // INVARIANT: `n <= USED_BATCH`; the first `n` entries are set.
    n: usize,
    /// The ring is little-endian (read when the first entry is added).
    le: bool,
}

impl UsedBatch {
    pub(crate) const fn new() -> UsedBatch {
        UsedBatch {
            elems: [const { sys::vring_used_elem { id: 0, len: 0 } }; USED_BATCH],
            n: 0,
            le: true,
        }
    }
}

impl<B, S> Drop for VqLock<'_, B, S> {
    fn drop(&mut self) {
        // SAFETY: locked in `RawVq::lock` (invariant).
        unsafe { sys::mutex_unlock(&raw mut (*self.0.raw()).mutex) };
    }
}

impl<B, S> VqLock<'_, B, S> {
    fn raw(&self) -> *mut sys::vhost_virtqueue {
        self.0.raw()
    }

    fn dev(&self) -> *mut sys::vhost_dev {
        // SAFETY: `dev` is set by vhost_dev_init and never changes.
        unsafe { (*self.raw()).dev }
    }

    /// The backend the queue serves, if any.
    pub(crate) fn backend(&self) -> Option<&B> {
        // The backend is changed only under this mutex, and is null or the
        // box the device keeps until every virtqueue's backend was removed
        // (invariant of `Dev`), of type `B` (contract of `Dev::init`).
        // SAFETY: the mutex is held (invariant), so the backend is as said.
        unsafe { (*self.raw()).private_data.cast::<B>().as_ref() }
    }

    /// Runs `f` as a pass of the queue's worker: until it returns,
    /// [`RawVq::in_own_pass`] is true on this thread (and only on it), so
    /// that what this pass releases itself (a command run to completion)
    /// can be left for the pass to answer instead of being queued.
    pub(crate) fn pass<R>(&mut self, _w: &OnWorker, f: impl FnOnce(&mut Self) -> R) -> R {
        // INVARIANT: stored and cleared by this task, with the mutex held
        // (the guard); `f` cannot end the pass early (it borrows the guard).
        self.0.pass.store(Task::current_raw(), Ordering::Relaxed);
        let r = f(self);
        self.0.pass.store(ptr::null_mut(), Ordering::Relaxed);
        r
    }

    /// The per-queue state.
    pub(crate) fn state(&mut self) -> &mut S {
        // SAFETY: the state is only touched with the mutex held
        // (invariant), and `&mut self` makes this borrow unique.
        unsafe { &mut *self.0.state.get() }
    }

    /// The backend and the per-queue state at once.
    pub(crate) fn parts(&mut self) -> (Option<&B>, &mut S) {
        // The backend is as in `backend`; the state is touched only under
        // the mutex, and the two do not overlap (the backend lives outside
        // the queue).
        // SAFETY: the mutex is held (invariant); `&mut self` is unique.
        unsafe {
            (
                (*self.raw()).private_data.cast::<B>().as_ref(),
                &mut *self.0.state.get(),
            )
        }
    }

    /// The backend, the per-queue state and the buffers of chain `c` at
    /// once.
    pub(crate) fn split(&mut self, c: &Chain) -> Split<'_, B, S> {
        // The backend and the state are as in `parts`.
        // SAFETY: the mutex is held (invariant); `&mut self` is unique.
        let (backend, state) = unsafe {
            (
                (*self.raw()).private_data.cast::<B>().as_ref(),
                &mut *self.0.state.get(),
            )
        };
        let iov: &[sys::iovec] = {
            // SAFETY: the virtqueue's iovec array, apart from the state, is
            // written only by `pop` (vhost_get_vq_desc), which needs
            // `&mut self`, borrowed here for the returned lifetime.
            unsafe { &(*self.raw()).iov }
        };
        Split {
            backend,
            state,
            readable: if self.owns(c) {
                iov.get(..c.out).unwrap_or(&[])
            } else {
                &[]
            },
            writable: if self.owns(c) {
                iov.get(c.out..c.out + c.inn).unwrap_or(&[])
            } else {
                &[]
            },
            log: log_of(self.raw(), c),
        }
    }

    /// Whether the driver acknowledged feature `bit`.
    pub(crate) fn has_feature(&self, bit: u32) -> bool {
        // SAFETY: the features are written under this mutex, held.
        unsafe { sys::tcm_virt_vq_has_feature(self.raw(), bit as c_int) }
    }

    pub(crate) fn features(&self) -> u64 {
        // SAFETY: the features are written under this mutex, held.
        unsafe { sys::tcm_virt_vq_features(self.raw()) }
    }

    pub(crate) fn set_features(&mut self, features: u64) {
        // SAFETY: the mutex is held.
        unsafe { sys::tcm_virt_vq_set_features(self.raw(), features) };
    }

    /// The backend, the per-queue state and the memory table
    /// (`VHOST_SET_MEM_TABLE`, as the virtqueue holds it) at once.
    pub(crate) fn parts_mem(&mut self) -> (Option<&B>, &mut S, MemTable<'_>) {
        let mem = mem_of(self.raw());
        let (b, s) = self.parts();
        (b, s, mem)
    }

    /// Number of ring entries, fixed while a backend is set.
    pub(crate) fn num(&self) -> usize {
        // SAFETY: the mutex is held.
        unsafe { (*self.raw()).num as usize }
    }

    /// `vhost_vq_access_ok()`: the rings are in accessible memory.
    pub(crate) fn access_ok(&self) -> bool {
        // SAFETY: the mutex is held.
        unsafe { sys::vhost_vq_access_ok(self.raw()) }
    }

    /// Signals the guest (the call eventfd), with the mutex still held:
    /// `VHOST_SET_VRING_CALL` replaces and releases the eventfd under it.
    pub(crate) fn signal(&self) {
        // SAFETY: the device and virtqueue are live; the mutex is held.
        unsafe { sys::vhost_signal(self.dev(), self.raw()) };
    }

    /// Signals the call eventfd unconditionally (no ring, no event index),
    /// under the mutex, for the same reason as [`VqLock::signal`].
    pub(crate) fn call(&self) {
        // SAFETY: the virtqueue is live; the mutex is held.
        unsafe { sys::tcm_virt_vq_call(self.raw()) };
    }

    /// `vhost_exceeds_weight()` after `pkts` requests and `total` bytes:
    /// when true, the kick work was queued again and the pass must end.
    #[inline(always)]
    pub(crate) fn exceeds_weight(&self, pkts: usize, total: usize) -> bool {
        let pkts = c_int::try_from(pkts).unwrap_or(c_int::MAX);
        let total = c_int::try_from(total).unwrap_or(c_int::MAX);
        // vhost_exceeds_weight()'s test, here, so that the call (which also
        // requeues the ring's poll) is made only when the weight is reached.
        // SAFETY: `weight` and `byte_weight` are set by vhost_dev_init and
        // never change.
        let (weight, bytes) = unsafe { ((*self.dev()).weight, (*self.dev()).byte_weight) };
        if pkts < weight && (bytes == 0 || total < bytes) {
            return false;
        }
        // SAFETY: the mutex is held.
        unsafe { sys::vhost_exceeds_weight(self.raw(), pkts, total) }
    }

    pub(crate) fn disable_notify(&mut self, _w: &OnWorker) {
        // SAFETY: the mutex is held, on the owner's worker (`_w`).
        unsafe { sys::vhost_disable_notify(self.dev(), self.raw()) };
    }

    /// Pops the next available chain; when there is none, re-enables
    /// notification (and looks once more, as vhost requires).  Notification
    /// must be disabled ([`VqLock::disable_notify`]).  `None` also when vhost
    /// core refused a descriptor (outside the memory table, a loop, too long
    /// a chain): it signalled the ring's error eventfd and the ring stops
    /// until the next kick.
    pub(crate) fn next_chain(&mut self, w: &OnWorker) -> Option<Chain> {
        self.pop(w, true).ok()
    }

    /// [`VqLock::next_chain`], telling why there is no chain; at an empty
    /// ring notification is re-enabled only if `enable`.
    #[inline]
    fn pop(&mut self, w: &OnWorker, enable: bool) -> Result<Chain, PassEnd> {
        let q = self.raw();
        // SAFETY: `iov_limit` is set by vhost_dev_init and never changes.
        let dev_limit = unsafe { (*self.dev()).iov_limit };
        let limit = u32::try_from(dev_limit)
            .unwrap_or(0)
            .min(self.iov().len() as u32);
        loop {
            let mut out = 0u32;
            let mut inn = 0u32;
            let mut log_num = 0u32;
            // `log` was allocated by vhost core (VHOST_SET_OWNER, before any
            // worker ran) with `iov_limit` entries; `limit` is the smaller of
            // that and the iovec array's length.  The writable descriptors
            // are always recorded, logging or not: logging may be switched
            // on before the chain completes.
            // SAFETY: the mutex is held, on the owner's worker (`w`); both
            // arrays have room for `limit` entries (above).
            let head = unsafe {
                sys::vhost_get_vq_desc(
                    q,
                    (*q).iov.as_mut_ptr(),
                    limit,
                    &mut out,
                    &mut inn,
                    (*q).log,
                    &mut log_num,
                )
            };
            if head < 0 {
                return Err(PassEnd::Refused);
            }
            if head as usize == self.num() {
                if !enable {
                    return Err(PassEnd::Empty);
                }
                // SAFETY: the mutex is held, on the owner's worker.
                if unsafe { sys::vhost_enable_notify(self.dev(), q) } {
                    self.disable_notify(w);
                    continue;
                }
                return Err(PassEnd::Empty);
            }
            // INVARIANT: vhost_get_vq_desc filled `out + inn` iovecs (at
            // most the array's length) and `log_num` log entries.
            let mut c = Chain {
                vq: q,
                head: head as u16,
                out: out as usize,
                inn: inn as usize,
                out_size: 0,
                in_size: 0,
                log_num,
            };
            c.out_size = iov_len(self.readable(&c));
            c.in_size = iov_len(self.writable(&c));
            return Ok(c);
        }
    }

    /// Pops the available chains and hands each to `f`, up to the vhost
    /// weight (past it the kick work is queued again), then re-enables
    /// notification.
    pub(crate) fn for_each_chain(&mut self, w: &OnWorker, f: impl FnMut(&mut Self, &Chain)) {
        let mut n = 0;
        self.take_chains(w, &mut n, true, f);
    }

    /// [`VqLock::for_each_chain`] for one of several passes of a kick work
    /// run: `n` counts the chains of all of them against the weight; at an
    /// empty ring notification is re-enabled only if `enable` (otherwise the
    /// caller goes on with [`VqLock::busy_poll`], which does it).
    pub(crate) fn take_chains(
        &mut self,
        w: &OnWorker,
        n: &mut usize,
        enable: bool,
        mut f: impl FnMut(&mut Self, &Chain),
    ) -> PassEnd {
        self.disable_notify(w);
        loop {
            let c = match self.pop(w, enable) {
                Ok(c) => c,
                Err(end) => return end,
            };
            f(self, &c);
            *n = n.saturating_add(1);
            if self.exceeds_weight(*n, 0) {
                return PassEnd::Weight;
            }
        }
    }

    /// How long the ring's worker polls it before waiting for a kick, in
    /// microseconds: the ring's `VHOST_SET_VRING_BUSYLOOP_TIMEOUT`, or else
    /// the `poll_us` parameter; at most 1000 (0: no polling).
    pub(crate) fn poll_us(&self) -> u32 {
        // SAFETY: the virtqueue is live; its timeout is set under the mutex,
        // which is held.
        unsafe { sys::tcm_virt_vq_poll_us(self.raw()) }
    }

    /// After a pass that left the ring empty with notification disabled
    /// ([`VqLock::take_chains`] without `enable`): polls the ring's
    /// available index for `us` microseconds, stopping early when the worker
    /// should give up its CPU or has other work queued.  `true` when new
    /// requests arrived (notification stays disabled for the next pass);
    /// `false` when they did not: notification is enabled again, as at the
    /// end of a pass.  The index is read in the owner's memory, on its
    /// worker (`w`).
    pub(crate) fn busy_poll(&mut self, w: &OnWorker, us: u32) -> bool {
        let q = self.raw();
        if us > 0 {
            // SAFETY: no precondition (reads the clock).
            let deadline = unsafe { sys::tcm_virt_poll_deadline(us) };
            loop {
                // SAFETY: the mutex is held, on the owner's worker (`w`).
                if !unsafe { sys::vhost_vq_avail_empty(self.dev(), q) } {
                    return true;
                }
                // SAFETY: the virtqueue is live (the mutex is held); the
                // helper reads its worker under RCU.
                if !unsafe { sys::tcm_virt_can_busy_poll(q, deadline) } {
                    break;
                }
            }
        }
        // SAFETY: the mutex is held, on the owner's worker (`w`).
        if unsafe { sys::vhost_enable_notify(self.dev(), q) } {
            self.disable_notify(w);
            return true;
        }
        false
    }

    /// Polls `ready` for up to `us` microseconds on the queue's worker
    /// (`w`), stopping early as [`VqLock::busy_poll`] does (the worker
    /// should give up its CPU, has a signal or other work queued); whether
    /// `ready` became true.  For a queue without a ring (the megasas
    /// adapter's inbound queue lives in its register page).
    pub(crate) fn poll_until(&self, _w: &OnWorker, us: u32, ready: impl Fn() -> bool) -> bool {
        // SAFETY: no precondition (reads the clock).
        let deadline = unsafe { sys::tcm_virt_poll_deadline(us) };
        loop {
            if ready() {
                return true;
            }
            // SAFETY: the virtqueue is live (the mutex is held); the helper
            // reads its worker under RCU.
            if !unsafe { sys::tcm_virt_can_busy_poll(self.raw(), deadline) } {
                // Posted as the poll ended (the kick's work queued).
                return ready();
            }
        }
    }

    fn iov(&self) -> &[sys::iovec] {
        // SAFETY: the virtqueue's iovec array, written only by
        // vhost_get_vq_desc under this mutex, held.
        unsafe { &(*self.raw()).iov }
    }

    /// The readable (device-readable) buffers of `c`.
    pub(crate) fn readable(&self, c: &Chain) -> &[sys::iovec] {
        if !self.owns(c) {
            return &[];
        }
        self.iov().get(..c.out).unwrap_or(&[])
    }

    /// Whether `c` was popped from this virtqueue.
    fn owns(&self, c: &Chain) -> bool {
        ptr::eq(c.vq, self.raw())
    }

    /// The writable buffers of `c`.
    pub(crate) fn writable(&self, c: &Chain) -> &[sys::iovec] {
        if !self.owns(c) {
            return &[];
        }
        self.iov().get(c.out..c.out + c.inn).unwrap_or(&[])
    }

    /// The dirty-log entries of `c`'s writable buffers.
    pub(crate) fn chain_log(&self, c: &Chain) -> &[sys::vhost_log] {
        log_of(self.raw(), c)
    }

    /// Puts `head` on the used ring with `len` bytes written (no signal).
    pub(crate) fn add_used(&mut self, _w: &OnWorker, head: u16, len: u32) {
        // SAFETY: the mutex is held, on the owner's worker (`_w`).
        unsafe { sys::vhost_add_used(self.raw(), u32::from(head), len as i32) };
    }

    /// Adds `head` with `len` bytes written to `batch`, first putting the
    /// batch on the used ring if it is full.
    pub(crate) fn batch_used(&mut self, w: &OnWorker, batch: &mut UsedBatch, head: u16, len: u32) {
        if batch.n == USED_BATCH {
            self.flush_used(w, batch);
        }
        if batch.n == 0 {
            // SAFETY: the mutex is held; the ring's byte order is fixed
            // while it is (a batch lives within one pass under it).
            batch.le = unsafe { sys::tcm_virt_vq_is_le(self.raw()) };
        }
        let le = batch.le;
        let conv = |v: u32| if le { v.to_le() } else { v.to_be() };
        // INVARIANT: `n < USED_BATCH` here (flushed above when full).
        batch.elems[batch.n] = sys::vring_used_elem {
            id: conv(u32::from(head)),
            len: conv(len),
        };
        batch.n += 1;
    }

    /// Puts the entries of `batch` on the used ring at once
    /// (`vhost_add_used_n`: one used-index update for all of them) and
    /// empties it; whether there were any.
    pub(crate) fn flush_used(&mut self, _w: &OnWorker, batch: &mut UsedBatch) -> bool {
        if batch.n == 0 {
            return false;
        }
        // vhost core only reads the entries (the pointer is not const in
        // C); `nheads` NULL: no in-order bookkeeping, as `vhost_add_used`
        // without VIRTIO_F_IN_ORDER, which this device does not offer.
        // SAFETY: the mutex is held, on the owner's worker (`_w`); the first `n` entries are set.
        unsafe {
            sys::vhost_add_used_n(
                self.raw(),
                batch.elems.as_mut_ptr(),
                ptr::null_mut(),
                batch.n as u32,
            )
        };
        batch.n = 0;
        true
    }

    /// Marks the pages of `log` dirty when dirty logging is on (now: it may
    /// have been switched on after the chain was popped).
    pub(crate) fn log_write(&mut self, _w: &OnWorker, log: &[sys::vhost_log]) {
        if log.is_empty() || !self.has_feature(sys::VHOST_F_LOG_ALL) {
            return;
        }
        // SAFETY: the mutex is held, on the owner's worker (`_w`); vhost
        // core only reads the entries (the pointer is not const in C).
        unsafe {
            sys::vhost_log_write(
                self.raw(),
                log.as_ptr().cast_mut(),
                log.len() as u32,
                u64::MAX,
                ptr::null_mut(),
                0,
            )
        };
    }

    /// Returns chain `c` to the used ring with `len` bytes written, logs its
    /// writable pages when dirty logging is on, and signals the guest.
    pub(crate) fn give_back(&mut self, _w: &OnWorker, c: &Chain, len: u32) {
        if !self.owns(c) {
            return;
        }
        // SAFETY: the mutex is held, on the owner's worker (`_w`).
        unsafe {
            sys::vhost_add_used_and_signal(self.dev(), self.raw(), u32::from(c.head), len as i32)
        };
        if c.log_num != 0 && self.has_feature(sys::VHOST_F_LOG_ALL) {
            // SAFETY: the mutex is held, on the owner's worker; the entries
            // are `c`'s (invariant of `Chain`).
            unsafe {
                sys::vhost_log_write(
                    self.raw(),
                    (*self.raw()).log,
                    c.log_num,
                    u64::MAX,
                    ptr::null_mut(),
                    0,
                )
            };
        }
    }

    /// Writes `bytes` to the start of `c`'s writable buffers and returns it
    /// to the used ring with the bytes written.
    pub(crate) fn answer(&mut self, w: &OnWorker, c: &Chain, bytes: &[u8]) {
        let n = IovIter::dest(self.writable(c)).copy_to(w, bytes);
        self.give_back(w, c, n as u32);
    }
}

/// The memory table of virtqueue `q`, whose mutex is held for the returned
/// lifetime: vhost core replaces the virtqueue's copy under that mutex.
fn mem_of<'a>(q: *mut sys::vhost_virtqueue) -> MemTable<'a> {
    // SAFETY: reads a pointer field of the virtqueue, under its mutex.
    MemTable(unsafe { (*q).umem }, PhantomData)
}

/// A region of the memory table: guest addresses `start..=last` at user
/// address `uaddr`.
pub(crate) struct Region {
    pub(crate) start: u64,
    pub(crate) last: u64,
    pub(crate) uaddr: u64,
}

/// A virtqueue's memory table, borrowed while its mutex is held.
// INVARIANT: null (no table yet) or vhost core's iotlb, not freed while
// the virtqueue mutex is held ('a).
pub(crate) struct MemTable<'a>(*mut sys::vhost_iotlb, PhantomData<&'a ()>);

impl MemTable<'_> {
    /// The first region that overlaps `addr..=last`.
    pub(crate) fn first(&self, addr: u64, last: u64) -> Option<Region> {
        if self.0.is_null() {
            return None;
        }
        // SAFETY: a live iotlb (invariant), read-only here.
        let m = unsafe { sys::vhost_iotlb_itree_first(self.0, addr, last) };
        if m.is_null() {
            return None;
        }
        // SAFETY: a live entry of the table.
        let (start, last, uaddr) = unsafe { ((*m).start, (*m).last, (*m).addr) };
        Some(Region { start, last, uaddr })
    }
}

/// The dirty-log entries of chain `c` of virtqueue `q`, whose mutex is
/// held for the returned lifetime.
fn log_of<'a>(q: *mut sys::vhost_virtqueue, c: &Chain) -> &'a [sys::vhost_log] {
    if c.log_num == 0 || !ptr::eq(c.vq, q) {
        return &[];
    }
    // SAFETY: vhost_get_vq_desc wrote `log_num` entries to the virtqueue's
    // log array (non-null: it wrote there) for `c` (invariant of `Chain`),
    // and only `pop` writes it again, with the mutex the caller holds.
    unsafe { core::slice::from_raw_parts((*q).log, c.log_num as usize) }
}

/// User buffers kept from a chain (its response buffers) to be written
/// later, on the owner's worker (the virtqueue's array is reused by the
/// next chain).
pub(crate) struct SavedIov(KVec<sys::iovec>);

// SAFETY: the iovecs hold user addresses, plain numbers to any thread; only
// the owner's worker copies to them (`IovIter` copies take `OnWorker`).
unsafe impl Send for SavedIov {}

impl SavedIov {
    /// Room for `n` buffers.
    pub(crate) fn with_capacity(n: usize) -> Result<SavedIov> {
        Ok(SavedIov(KVec::with_capacity(n, GFP_KERNEL)?))
    }

    /// Keeps the buffers of `iov` that cover its first `want` bytes.
    #[inline]
    pub(crate) fn save(&mut self, iov: &[sys::iovec], want: usize) -> Result {
        // The buffers up to the one that reaches `want` bytes.
        let mut have = 0usize;
        let mut k = 0;
        for v in iov {
            if have >= want {
                break;
            }
            have = have.saturating_add(v.iov_len);
            k += 1;
        }
        self.0.clear();
        self.0.reserve(k, GFP_KERNEL)?;
        for v in iov.iter().take(k) {
            // Room was reserved just above.
            let _ = self.0.push_within_capacity(sys::iovec {
                iov_base: v.iov_base,
                iov_len: v.iov_len,
            });
        }
        Ok(())
    }

    pub(crate) fn iov(&self) -> &[sys::iovec] {
        &self.0
    }
}

/// The bytes `iov` covers (saturating).
pub(crate) fn iov_len(iov: &[sys::iovec]) -> usize {
    iov.iter().fold(0usize, |a, v| a.saturating_add(v.iov_len))
}

/// An iterator over user buffers (`struct iov_iter`, `ITER_IOVEC`) that
/// borrows its iovecs.
pub(crate) struct IovIter<'a> {
    it: sys::iov_iter,
    _iov: PhantomData<&'a [sys::iovec]>,
}

impl<'a> IovIter<'a> {
    /// `iov_iter_init()` of an `ITER_IOVEC` iterator, written in place
    /// rather than called: the iterator is built several times per command.
    #[inline(always)]
    fn new(dir: u32, iov: &'a [sys::iovec]) -> IovIter<'a> {
        let mut it = MaybeUninit::<sys::iov_iter>::zeroed();
        let p = it.as_mut_ptr();
        // All-zero is a valid `iov_iter` (no fault, offset 0); the fields
        // written below are those iov_iter_init() writes for ITER_IOVEC.
        // SAFETY: `p` is the local zeroed iterator; the `iov.len()` iovecs
        // live for `'a` and nothing is accessed through them here.
        unsafe {
            (*p).iter_type = sys::iter_type_ITER_IOVEC as u8;
            (*p).data_source = dir == sys::ITER_SOURCE;
            let b = (*p).__bindgen_anon_1.__bindgen_anon_1.as_mut();
            b.__bindgen_anon_1.__iov = iov.as_ptr();
            b.count = iov_len(iov);
            (*p).__bindgen_anon_2.nr_segs = iov.len() as c_ulong;
            IovIter {
                it: it.assume_init(),
                _iov: PhantomData,
            }
        }
    }

    /// The bytes left (`iov_iter_count()`).
    #[inline(always)]
    pub(crate) fn count(&self) -> usize {
        // SAFETY: an `ITER_IOVEC` iterator (`new`) uses the `__iov` and
        // `count` member of the union.
        unsafe { self.it.__bindgen_anon_1.__bindgen_anon_1.as_ref().count }
    }

    /// An iterator to copy from (the device reads) `iov`.
    pub(crate) fn source(iov: &'a [sys::iovec]) -> IovIter<'a> {
        Self::new(sys::ITER_SOURCE, iov)
    }

    /// An iterator to copy to (the device writes) `iov`.
    pub(crate) fn dest(iov: &'a [sys::iovec]) -> IovIter<'a> {
        Self::new(sys::ITER_DEST, iov)
    }

    /// A second iterator at the same position (an `ITER_IOVEC` iterator
    /// owns nothing).
    pub(crate) fn duplicate(&self) -> IovIter<'a> {
        IovIter {
            // SAFETY: a plain copy of the iterator's state (`iov_iter` has no
            // destructor); both refer to the same borrowed iovecs.
            it: unsafe { ptr::read(&self.it) },
            _iov: PhantomData,
        }
    }

    /// Moves past `n` bytes (at most to the end), as iov_iter_advance()
    /// moves an `ITER_IOVEC` iterator.
    pub(crate) fn advance(&mut self, n: usize) {
        let n = n.min(self.count());
        if n == 0 {
            return;
        }
        // Built by `new` as ITER_IOVEC: `iov_offset` lies in the first
        // iovec and `count` is at most the bytes they cover from there.
        // SAFETY: `__iov` points at `nr_segs` iovecs borrowed for `'a`.
        unsafe {
            let b = self.it.__bindgen_anon_1.__bindgen_anon_1.as_mut();
            let segs: usize = self.it.__bindgen_anon_2.nr_segs;
            let iov = core::slice::from_raw_parts(b.__bindgen_anon_1.__iov, segs);
            b.count -= n;
            // From the start of the current segment.
            let mut size = n.saturating_add(self.it.iov_offset);
            let mut k = 0;
            while let Some(v) = iov.get(k) {
                if size < v.iov_len {
                    break;
                }
                size -= v.iov_len;
                k += 1;
            }
            self.it.iov_offset = size;
            self.it.__bindgen_anon_2.nr_segs = (segs - k) as c_ulong;
            b.__bindgen_anon_1.__iov = iov.as_ptr().add(k);
        }
    }

    /// Cuts the iterator to at most `n` bytes.
    #[inline(always)]
    pub(crate) fn truncate(&mut self, n: usize) {
        // SAFETY: `new` builds ITER_IOVEC iterators, which use the union's
        // `__iov`/`count` member.
        let b = unsafe { self.it.__bindgen_anon_1.__bindgen_anon_1.as_mut() };
        if b.count > n {
            b.count = n;
        }
    }

    /// Copies up to `buf.len()` bytes from the user buffers; returns the
    /// bytes copied (fewer on a fault).
    pub(crate) fn copy_from(&mut self, _w: &OnWorker, buf: &mut [u8]) -> usize {
        // SAFETY: `buf` is valid for its length; the iovecs are user
        // addresses of the owner's mm, current on the worker (`_w`), and
        // the copy checks them.
        unsafe { sys::_copy_from_iter(buf.as_mut_ptr().cast(), buf.len(), &mut self.it) }
    }

    /// Copies `bytes` to the user buffers; returns the bytes copied.
    pub(crate) fn copy_to(&mut self, _w: &OnWorker, bytes: &[u8]) -> usize {
        // SAFETY: `bytes` is valid for its length; the iovecs are user
        // addresses of the owner's mm, current on the worker (`_w`), and
        // the copy checks them.
        unsafe { sys::_copy_to_iter(bytes.as_ptr().cast(), bytes.len(), &mut self.it) }
    }

    /// The raw iterator, for the page mapper.
    pub(super) fn raw(&mut self) -> &mut sys::iov_iter {
        &mut self.it
    }
}
