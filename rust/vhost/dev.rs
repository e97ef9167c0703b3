// SPDX-License-Identifier: GPL-2.0

//! One open file of the vhost device: a vhost core device with its
//! virtqueues (0 control, 1 event, 2.. requests), the ioctls, and the
//! endpoint binding it to the TPGs of one WWPN.
//!
//! Locking follows the vhost core: the device mutex (`vhost_dev.mutex`)
//! serialises ioctls and guards the endpoint; each virtqueue's mutex guards
//! its backend pointer, its command pool, and everything its worker does.

use super::{ctl, io};
use crate::{bindings as sys, fabric, nexus};
use core::{
    cell::UnsafeCell,
    mem::size_of,
    ptr,
    sync::atomic::{AtomicPtr, AtomicU32, Ordering},
};
use kernel::{
    ffi::{c_int, c_void},
    ioctl::{_IOR, _IOW, _IOWR},
    prelude::*,
    sync::Arc,
    types::Opaque,
    uaccess::{UserPtr, UserSlice},
};

/// The control virtqueue.
pub(super) const VQ_CTL: usize = 0;
/// The event virtqueue.
pub(super) const VQ_EVT: usize = 1;
/// The first request virtqueue.
pub(super) const VQ_IO: usize = 2;

/// SCSI target ids a guest can address (`lun[1]`, the TPG tag).
pub(super) const MAX_TARGET: usize = 256;

/// Requests one worker run handles per virtqueue before yielding.
const WEIGHT: c_int = 256;
/// Longest descriptor chain (`UIO_MAXIOV`).
const IOV_LIMIT: c_int = 1024;

const VIRTIO_F_NOTIFY_ON_EMPTY: u32 = 24;
const VIRTIO_F_ANY_LAYOUT: u32 = 27;
const VIRTIO_F_VERSION_1: u32 = 32;

/// Feature bits offered, those of C `vhost_scsi` in Linux 7.3.
pub(super) const FEATURES: u64 = (1 << VIRTIO_F_NOTIFY_ON_EMPTY)
    | (1 << sys::VIRTIO_RING_F_INDIRECT_DESC)
    | (1 << sys::VIRTIO_RING_F_EVENT_IDX)
    | (1 << sys::VHOST_F_LOG_ALL)
    | (1 << VIRTIO_F_ANY_LAYOUT)
    | (1 << VIRTIO_F_VERSION_1)
    | (1 << sys::VIRTIO_SCSI_F_HOTPLUG)
    | (1 << sys::VIRTIO_SCSI_F_T10_PI);

const VHOST_VIRTIO: u32 = 0xaf;
const GET_FEATURES: u32 = _IOR::<u64>(VHOST_VIRTIO, 0x00);
const SET_FEATURES: u32 = _IOW::<u64>(VHOST_VIRTIO, 0x00);
const NEW_WORKER: u32 = _IOR::<sys::vhost_worker_state>(VHOST_VIRTIO, 0x8);
const FREE_WORKER: u32 = _IOW::<sys::vhost_worker_state>(VHOST_VIRTIO, 0x9);
const ATTACH_VRING_WORKER: u32 = _IOW::<sys::vhost_vring_worker>(VHOST_VIRTIO, 0x15);
const GET_VRING_WORKER: u32 = _IOWR::<sys::vhost_vring_worker>(VHOST_VIRTIO, 0x16);
const SCSI_SET_ENDPOINT: u32 = _IOW::<sys::vhost_scsi_target>(VHOST_VIRTIO, 0x40);
const SCSI_CLEAR_ENDPOINT: u32 = _IOW::<sys::vhost_scsi_target>(VHOST_VIRTIO, 0x41);
const SCSI_GET_ABI_VERSION: u32 = _IOW::<c_int>(VHOST_VIRTIO, 0x42);
const SCSI_SET_EVENTS_MISSED: u32 = _IOW::<u32>(VHOST_VIRTIO, 0x43);
const SCSI_GET_EVENTS_MISSED: u32 = _IOW::<u32>(VHOST_VIRTIO, 0x44);

/// `vhost_scsi_target::vhost_wwpn` (TRANSPORT_IQN_LEN): the compiler
/// checks the two agree where the field is passed as `&[u8; WWPN_SIZE]`.
const WWPN_SIZE: usize = 224;

/// The TPGs an endpoint serves, indexed by SCSI target id (TPG tag).
///
/// Installed as the backend of every virtqueue; the workers read it with
/// the virtqueue mutex held, and it is freed only after every virtqueue's
/// backend is cleared and every command has completed.
pub(super) struct Endpoint {
    wwpn: [u8; WWPN_SIZE],
    targets: KVec<Option<fabric::Binding>>,
    /// Commands in flight, for task management.
    pub(super) inflight: Arc<nexus::Inflight>,
    /// LUN hotplug events waiting for the event virtqueue.
    pub(super) events: Arc<nexus::Events>,
}

impl Endpoint {
    pub(super) fn target(&self, id: u8) -> Option<&fabric::Binding> {
        self.targets.get(usize::from(id))?.as_ref()
    }
}

/// One virtqueue and what the module keeps beside it.
#[repr(C)]
pub(super) struct Vq {
    // INVARIANT: first field; vhost core hands `*mut vhost_virtqueue` back
    // in callbacks and it converts to `*const Vq`.
    pub(super) vq: Opaque<sys::vhost_virtqueue>,
    pub(super) dev: *const VhostScsi,
    /// Completions pushed by target core, written back by the worker.
    pub(super) completion_work: Opaque<sys::vhost_work>,
    /// Lock-free stack of released commands (see `io::Cmd::next`).
    pub(super) done: AtomicPtr<io::Cmd>,
    /// Control queue only: task management answers ready to be written.
    pub(super) tmf_done: AtomicPtr<ctl::TmfJob>,
    /// Control queue only: TMFs started and not yet answered (at most
    /// [`nexus::MAX_TMF`](crate::nexus::MAX_TMF)).
    pub(super) tmfs: AtomicU32,
    /// Command pool, created on the first kick after SET_ENDPOINT.
    // INVARIANT: accessed only with the virtqueue mutex held.
    pub(super) pool: UnsafeCell<Option<io::Pool>>,
}

impl Vq {
    pub(super) fn raw(&self) -> *mut sys::vhost_virtqueue {
        self.vq.get()
    }

    pub(super) fn dev(&self) -> &VhostScsi {
        // SAFETY: set at open; the device outlives its virtqueues.
        unsafe { &*self.dev }
    }

    /// The `Vq` that contains `vq`.
    ///
    /// # Safety
    ///
    /// `vq` must be a virtqueue of a live [`VhostScsi`].
    pub(super) unsafe fn from_raw<'a>(vq: *mut sys::vhost_virtqueue) -> &'a Vq {
        // SAFETY: per the invariant, `vq` is the first field of a `Vq`.
        unsafe { &*vq.cast::<Vq>() }
    }

    /// Whether the driver acknowledged feature `bit`.
    pub(super) fn has_feature(&self, bit: u32) -> bool {
        // SAFETY: the features are written under the vq mutex, which the
        // callers hold (workers) or which orders the write (ioctls).
        unsafe { sys::tcm_virt_vq_has_feature(self.raw(), bit as c_int) }
    }

    pub(super) fn lock(&self) -> VqGuard<'_> {
        // SAFETY: the mutex was initialised by vhost_dev_init.
        unsafe { sys::mutex_lock(&raw mut (*self.raw()).mutex) };
        VqGuard(self)
    }
}

/// The virtqueue mutex, held.
// INVARIANT: built only by `Vq::lock`, after taking the mutex; the field is
// private so that no other code can make one without the lock.
pub(super) struct VqGuard<'a>(&'a Vq);

impl Drop for VqGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: locked in `Vq::lock`.
        unsafe { sys::mutex_unlock(&raw mut (*self.0.raw()).mutex) };
    }
}

impl<'a> VqGuard<'a> {
    /// The virtqueue whose mutex is held.
    pub(super) fn vq(&self) -> &'a Vq {
        self.0
    }

    /// The endpoint the virtqueue serves, if any.
    pub(super) fn backend(&self) -> Option<&Endpoint> {
        // SAFETY: the backend is only changed with this mutex held, and the
        // endpoint outlives its installation as backend.
        unsafe { (*self.0.raw()).private_data.cast::<Endpoint>().as_ref() }
    }

    fn set_backend(&self, ep: *const Endpoint) {
        // SAFETY: the mutex is held.
        unsafe { (*self.0.raw()).private_data = ep.cast_mut().cast::<c_void>() };
    }

    /// The command pool.
    pub(super) fn pool(&mut self) -> &mut Option<io::Pool> {
        // SAFETY: the pool is only touched with the mutex held (invariant
        // of `Vq::pool`), and `&mut self` makes this borrow unique.
        unsafe { &mut *self.0.pool.get() }
    }
}

struct DevGuard<'a>(&'a VhostScsi);

impl Drop for DevGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: locked in `VhostScsi::lock`.
        unsafe { sys::mutex_unlock(&raw mut (*self.0.dev.get()).mutex) };
    }
}

/// One open file: a virtio-scsi device for one VM.
pub(crate) struct VhostScsi {
    dev: Opaque<sys::vhost_dev>,
    // INVARIANT: never grown after `new`, so the virtqueues do not move.
    vqs: KVVec<Vq>,
    vq_ptrs: KVec<*mut sys::vhost_virtqueue>,
    /// Commands submitted and not yet released.
    pub(super) inflight: AtomicU32,
    // INVARIANT: guarded by the device mutex.
    endpoint: UnsafeCell<Option<KBox<Endpoint>>>,
    /// `VHOST_SCSI_SET/GET_EVENTS_MISSED`.
    pub(super) events_missed: AtomicU32,
}

// SAFETY: the vhost core's state is protected by its own mutexes; the
// module's fields by the invariants above.
unsafe impl Send for VhostScsi {}
// SAFETY: shared references reach vhost core's state only under its mutexes, `endpoint`
// only under the device mutex, each pool only under its virtqueue's mutex, and the
// counters only through atomics; `vqs` is never grown after `new`.
unsafe impl Sync for VhostScsi {}

impl VhostScsi {
    /// `open()`: allocates the device and `max_io_vqs + 2` virtqueues.
    pub(super) fn new() -> Result<KBox<Self>> {
        // SAFETY: reads an integer module parameter.
        let nvqs = unsafe { sys::tcm_virt_param_max_io_vqs() } as usize + VQ_IO;
        // A `Vq` is about 19 KiB (the virtqueue's iovec array): built in
        // place, never on the stack.
        let mut vqs = KVVec::<Vq>::with_capacity(nvqs, GFP_KERNEL)?;
        for slot in vqs.spare_capacity_mut().iter_mut().take(nvqs) {
            let p = slot.as_mut_ptr();
            // SAFETY: `p` is valid for writes of one `Vq`.  The opaque
            // fields are valid zeroed (vhost_dev_init and vhost_work_init
            // set them up); the others are written below.
            unsafe {
                ptr::write_bytes(p, 0, 1);
                ptr::write(&raw mut (*p).dev, ptr::null());
                ptr::write(&raw mut (*p).done, AtomicPtr::new(ptr::null_mut()));
                ptr::write(&raw mut (*p).tmf_done, AtomicPtr::new(ptr::null_mut()));
                ptr::write(&raw mut (*p).tmfs, AtomicU32::new(0));
                ptr::write(&raw mut (*p).pool, UnsafeCell::new(None));
            }
        }
        // SAFETY: the first `nvqs` elements were initialised just above.
        unsafe { vqs.inc_len(nvqs) };
        // Every allocation comes before the device exists: its `Drop` tears
        // down an initialised vhost device, which a failed `open()` never
        // made.  The virtqueues' addresses do not change when `vqs` moves
        // into the box (its buffer stays where it is).
        let mut vq_ptrs = KVec::with_capacity(nvqs, GFP_KERNEL)?;
        for q in vqs.iter() {
            vq_ptrs.push(q.raw(), GFP_KERNEL)?;
        }
        let me = KBox::<VhostScsi>::new_uninit(GFP_KERNEL)?;
        let mut me = KBox::write(
            me,
            VhostScsi {
                dev: Opaque::zeroed(),
                vqs,
                vq_ptrs,
                inflight: AtomicU32::new(0),
                endpoint: UnsafeCell::new(None),
                events_missed: AtomicU32::new(0),
            },
        );
        let me_ptr: *const VhostScsi = &*me;
        for (i, q) in me.vqs.iter_mut().enumerate() {
            q.dev = me_ptr;
            let kick: sys::vhost_work_fn_t = match i {
                VQ_CTL => Some(ctl::handle_ctl_kick),
                VQ_EVT => Some(ctl::handle_evt_kick),
                _ => Some(io::handle_kick),
            };
            // SAFETY: the virtqueue is zeroed and not yet known to vhost.
            unsafe { (*q.raw()).handle_kick = kick };
            let done: sys::vhost_work_fn_t = match i {
                VQ_CTL => Some(ctl::complete_tmf),
                VQ_EVT => Some(ctl::evt_work),
                _ => Some(io::complete_work),
            };
            // SAFETY: `completion_work` is zeroed and ours.
            unsafe { sys::vhost_work_init(q.completion_work.get(), done) };
        }
        // SAFETY: the device and its virtqueues are zeroed, allocated, and
        // never move (boxed; vqs never grown); `vq_ptrs` lives as long.
        unsafe {
            sys::vhost_dev_init(
                me.dev.get(),
                me.vq_ptrs.as_mut_ptr(),
                nvqs as c_int,
                IOV_LIMIT,
                WEIGHT,
                0,
                true,
                None,
            )
        };
        Ok(me)
    }

    pub(super) fn raw(&self) -> *mut sys::vhost_dev {
        self.dev.get()
    }

    fn lock(&self) -> DevGuard<'_> {
        // SAFETY: initialised by vhost_dev_init.
        unsafe { sys::mutex_lock(&raw mut (*self.raw()).mutex) };
        DevGuard(self)
    }

    fn vqs_access_ok(&self) -> bool {
        self.vqs
            .iter()
            // SAFETY: the virtqueues are initialised; the device mutex is
            // held by the callers.
            .all(|q| unsafe { sys::vhost_vq_access_ok(q.raw()) })
    }

    /// `EPERM` when the device has an owner (`VHOST_SET_OWNER`) and the
    /// caller is another process, for the ioctls that change what the
    /// device does with the owner's memory (vhost core checks its own ioctls
    /// the same way).  Before `VHOST_SET_OWNER` they behave as in C
    /// `vhost_scsi`, which checks nothing.
    fn check_owner(&self, _g: &DevGuard<'_>) -> Result {
        // SAFETY: `mm` is written under the device mutex, held (`_g`).
        if unsafe { (*self.raw()).mm.is_null() } {
            return Ok(());
        }
        // SAFETY: the device mutex is held (`_g`), as vhost core reads
        // `mm` under it.
        let r = unsafe { sys::vhost_dev_check_owner(self.raw()) };
        errno(r as isize).map(|_| ())
    }

    /// Dispatches an ioctl.
    pub(super) fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        let user = UserPtr::from_addr(arg);
        match cmd {
            SCSI_SET_ENDPOINT | SCSI_CLEAR_ENDPOINT => {
                let t: sys::vhost_scsi_target =
                    UserSlice::new(user, size_of::<sys::vhost_scsi_target>())
                        .reader()
                        .read()?;
                if t.reserved != 0 {
                    return Err(EOPNOTSUPP);
                }
                if cmd == SCSI_SET_ENDPOINT {
                    self.set_endpoint(&t.vhost_wwpn)?;
                } else {
                    self.clear_endpoint(Some(&t.vhost_wwpn))?;
                }
                Ok(0)
            }
            SCSI_GET_ABI_VERSION => {
                let v = (sys::VHOST_SCSI_ABI_VERSION as c_int).to_ne_bytes();
                UserSlice::new(user, v.len()).writer().write_slice(&v)?;
                Ok(0)
            }
            SCSI_SET_EVENTS_MISSED => {
                let mut v = [0u8; 4];
                UserSlice::new(user, 4).reader().read_slice(&mut v)?;
                let g = self.lock();
                self.check_owner(&g)?;
                let evt = &self.vqs[VQ_EVT];
                let _q = evt.lock();
                self.events_missed
                    .store(u32::from_ne_bytes(v), Ordering::Relaxed);
                Ok(0)
            }
            SCSI_GET_EVENTS_MISSED => {
                let v = {
                    let _g = self.vqs[VQ_EVT].lock();
                    self.events_missed.load(Ordering::Relaxed)
                };
                UserSlice::new(user, 4)
                    .writer()
                    .write_slice(&v.to_ne_bytes())?;
                Ok(0)
            }
            GET_FEATURES => {
                UserSlice::new(user, 8)
                    .writer()
                    .write_slice(&FEATURES.to_ne_bytes())?;
                Ok(0)
            }
            SET_FEATURES => {
                let mut v = [0u8; 8];
                UserSlice::new(user, 8).reader().read_slice(&mut v)?;
                self.set_features(u64::from_ne_bytes(v))?;
                Ok(0)
            }
            NEW_WORKER | FREE_WORKER | ATTACH_VRING_WORKER | GET_VRING_WORKER => {
                let _g = self.lock();
                // SAFETY: the device mutex is held, as vhost_worker_ioctl
                // requires; `arg` is the caller's user pointer.
                let r = unsafe { sys::vhost_worker_ioctl(self.raw(), cmd, arg as *mut c_void) };
                errno(r)
            }
            _ => {
                let _g = self.lock();
                // SAFETY: the device mutex is held; `arg` is a user pointer.
                let r = unsafe { sys::vhost_dev_ioctl(self.raw(), cmd, arg as *mut c_void) };
                if r == -(sys::ENOIOCTLCMD as isize) {
                    // SAFETY: the device mutex is still held (`_g`); `arg` is the ioctl's user
                    // pointer, which vhost core copies from with the user-access checks.
                    let r = unsafe { sys::vhost_vring_ioctl(self.raw(), cmd, arg as *mut c_void) };
                    return errno(r);
                }
                // Let work queued under the old setting finish.
                // SAFETY: the device is initialised.
                unsafe { sys::vhost_dev_flush(self.raw()) };
                errno(r)
            }
        }
    }

    fn set_features(&self, features: u64) -> Result {
        if features & !FEATURES != 0 {
            return Err(EOPNOTSUPP);
        }
        let g = self.lock();
        self.check_owner(&g)?;
        let log = 1u64 << sys::VHOST_F_LOG_ALL;
        // SAFETY: the device mutex is held.
        if features & log != 0 && !unsafe { sys::vhost_log_access_ok(self.raw()) } {
            return Err(EFAULT);
        }
        // SAFETY: the endpoint is guarded by the device mutex, held.
        let bound = unsafe { (*self.endpoint.get()).is_some() };
        // SAFETY: written only under the device mutex, held.
        let old = unsafe { sys::tcm_virt_vq_features(self.vqs[0].raw()) };
        if bound && (features ^ old) & !log != 0 {
            return Err(EBUSY);
        }
        for q in self.vqs.iter() {
            let _q = q.lock();
            // SAFETY: both mutexes are held.
            unsafe { sys::tcm_virt_vq_set_features(q.raw(), features) };
        }
        Ok(())
    }

    /// `VHOST_SCSI_SET_ENDPOINT`: binds every free TPG of `wwpn` that has a
    /// nexus.
    fn set_endpoint(&self, wwpn: &[u8; WWPN_SIZE]) -> Result {
        let g = self.lock();
        self.check_owner(&g)?;
        if !self.vqs_access_ok() {
            return Err(EFAULT);
        }
        // SAFETY: guarded by the device mutex, held.
        let slot = unsafe { &mut *self.endpoint.get() };
        if slot.is_some() {
            pr_err!("endpoint already set for this device\n");
            return Err(EEXIST);
        }
        let name_len = wwpn.iter().position(|&c| c == 0).unwrap_or(WWPN_SIZE);
        let candidates = fabric::tpgs_of(&wwpn[..name_len])?;
        let mut targets = KVec::with_capacity(MAX_TARGET, GFP_KERNEL)?;
        for _ in 0..MAX_TARGET {
            targets.push(None, GFP_KERNEL)?;
        }
        let evt: *const Vq = &self.vqs[VQ_EVT];
        // SAFETY: `ctl::notify_events` queues the event virtqueue's work; the
        // virtqueue lives as long as the device, and every TPG is unbound
        // (clear_endpoint) before the device goes away.
        let events = unsafe { nexus::Events::new(ctl::notify_events, evt.cast())? };
        let mut ep = KBox::new(
            Endpoint {
                wwpn: *wwpn,
                targets,
                inflight: nexus::Inflight::new()?,
                events,
            },
            GFP_KERNEL,
        )?;
        let mut found = false;
        for tpg in candidates {
            let tag = usize::from(tpg.tag());
            if tag >= MAX_TARGET {
                continue;
            }
            // Being removed, without a nexus or bound to another vhost
            // device: skipped, as C vhost_scsi does.
            if let Ok(b) = fabric::Binding::new(tpg, fabric::Front::Vhost, &ep.events) {
                ep.targets[tag] = Some(b);
                found = true;
            }
        }
        if !found {
            return Err(ENODEV);
        }
        let p: *const Endpoint = &*ep;
        for q in self.vqs.iter() {
            let g = q.lock();
            g.set_backend(p);
            // SAFETY: the virtqueue mutex is held.
            unsafe { sys::vhost_vq_init_access(q.raw()) };
        }
        *slot = Some(ep);
        Ok(())
    }

    /// `VHOST_SCSI_CLEAR_ENDPOINT` (`wwpn` given) and release (`None`):
    /// stops the request queues, waits for every command, unbinds.
    fn clear_endpoint(&self, wwpn: Option<&[u8; WWPN_SIZE]>) -> Result {
        let g = self.lock();
        if wwpn.is_some() {
            // The release (`None`) runs in whichever process closes last.
            self.check_owner(&g)?;
        }
        if wwpn.is_some() && !self.vqs_access_ok() {
            return Err(EFAULT);
        }
        // SAFETY: guarded by the device mutex, held.
        let slot = unsafe { &mut *self.endpoint.get() };
        let Some(ep) = slot.as_ref() else {
            return Ok(());
        };
        if let Some(w) = wwpn {
            if w != &ep.wwpn {
                pr_warn!("CLEAR_ENDPOINT for another WWPN than the one set\n");
                return Err(EINVAL);
            }
        }
        for q in self.vqs.iter() {
            q.lock().set_backend(ptr::null());
        }
        self.drain();
        for q in self.vqs.iter() {
            *q.lock().pool() = None;
        }
        let ep = slot.take();
        // Unbinds every TPG: no command is left in their sessions.
        drop(ep);
        // No event can be pushed any more: let a notification queued
        // meanwhile run (it finds no backend) before the workers may go.
        // SAFETY: the device is initialised.
        unsafe { sys::vhost_dev_flush(self.raw()) };
        Ok(())
    }

    /// Waits until every submitted command was released and its completion
    /// work ran.
    fn drain(&self) {
        // SAFETY: the device is initialised; the completion path wakes
        // `inflight` when it drops to zero.
        unsafe { crate::chardev::drain(self.raw(), &self.inflight) };
    }
}

impl Drop for VhostScsi {
    fn drop(&mut self) {
        let _ = self.clear_endpoint(None);
        // SAFETY: no endpoint, no command left; the device stops its
        // workers and frees what vhost core allocated.
        unsafe {
            sys::vhost_dev_stop(self.raw());
            sys::vhost_dev_cleanup(self.raw());
        }
    }
}

/// A vhost core return value as the ioctl's result.
fn errno(r: isize) -> Result<isize> {
    if r < 0 {
        Err(Error::from_errno(r as i32))
    } else {
        Ok(r)
    }
}
