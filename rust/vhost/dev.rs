// SPDX-License-Identifier: GPL-2.0

//! One open file of the vhost device: a vhost core device with its
//! virtqueues (0 control, 1 event, 2.. requests), the ioctls, and the
//! endpoint binding it to the TPGs of one WWPN.
//!
//! Locking follows the vhost core: the device mutex (`vhost_dev.mutex`)
//! serialises ioctls and guards the endpoint; each virtqueue's mutex guards
//! its backend pointer, its command pool, and everything its worker does.

use super::{ctl, io};
use crate::{
    bindings as sys,
    fabric::{self, Offloads},
    glue::{
        params,
        stack::Stack,
        trace,
        vhost::{put_inflight, Dev, Handler, OnWorker, RawVq, VqLock, Work},
    },
    nexus::{
        self,
        stats::{self, EventStats, IoSnapshot, IoStats, PollStats, TmfStats},
        DoneQueue, WorkerQueue,
    },
};
use core::{
    fmt,
    mem::size_of,
    ptr,
    sync::atomic::{AtomicU32, Ordering},
};
use kernel::{
    ffi::c_int,
    ioctl::{_IOR, _IOW, _IOWR},
    prelude::*,
    sync::Arc,
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
    // in callbacks and it converts to `*const Vq`.  The per-queue state is
    // the command pool, created on the first kick after SET_ENDPOINT.
    pub(super) core: RawVq<Endpoint, Option<io::Pool>>,
    dev: *const VhostScsi,
    /// Completions pushed by target core, written back by the worker.
    pub(super) completion_work: Work,
    /// Released commands, for the completion work.
    pub(super) done: Stack<io::Cmd>,
    /// Control queue only: task management answers ready to be written.
    pub(super) tmf_done: Stack<ctl::TmfJob>,
    /// Control queue only: TMFs started and not yet answered (at most
    /// [`nexus::MAX_TMF`](crate::nexus::MAX_TMF)).
    pub(super) tmfs: AtomicU32,
    /// This queue's commands and TMFs submitted and not yet answered, and
    /// the counts their release holds meanwhile: the device drains every
    /// queue's count before it frees the queues.  Per queue, so that
    /// queues served by different workers share no cache line on the I/O
    /// path.
    inflight: AtomicU32,
    /// This queue's commands waiting in the offload workqueue.
    pub(super) offloads: Offloads,
    /// The virtqueue's index, as the trace events name it.
    pub(super) index: u16,
    /// Written by the queue's worker with the queue's mutex held.
    pub(super) stats: IoStats,
    /// Request queues: the busy polls of the queue's worker, written as
    /// `stats`.
    pub(super) polls: PollStats,
}

/// The virtqueue mutex, held: the way to the endpoint and the pool.
pub(super) type VqGuard<'a> = VqLock<'a, Endpoint, Option<io::Pool>>;

impl Vq {
    pub(super) fn dev(&self) -> &VhostScsi {
        // SAFETY: set at open; the device outlives its virtqueues.
        unsafe { &*self.dev }
    }

    pub(super) fn lock(&self) -> VqGuard<'_> {
        self.core.lock()
    }
}

// SAFETY: a `Vq` lives as long as its device, whose release drains each
// queue's in-flight count (`clear_endpoint`) before it frees the queues;
// these methods use an atomic and the vhost core's work queueing, which any
// thread may call.
unsafe impl WorkerQueue for Vq {
    fn get_inflight(&self) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
    }

    fn put_inflight(&self) {
        put_inflight(&self.inflight);
    }

    fn queue_completion(&self) -> bool {
        self.core.queue_work(&self.completion_work)
    }
}

// SAFETY: `RawVq::in_own_pass` is true only on the queue's worker inside a
// `VqLock::pass`, and `io::handle_kick` takes `done` right after each pass,
// under the same lock.  Commands are submitted on the request queues only,
// whose completion work (`io::complete_work`) takes `done` and drops each
// command's count (the control queue's takes `tmf_done`).
unsafe impl DoneQueue for Vq {
    type Cmd = io::Cmd;

    fn done(&self) -> &Stack<io::Cmd> {
        &self.done
    }

    fn in_own_pass(&self) -> bool {
        self.core.in_own_pass()
    }

    unsafe fn drop_unanswered(&self, cmd: *mut io::Cmd) {
        // SAFETY: target core released the command and nothing else uses it
        // (the caller's contract).
        unsafe { (*cmd).release_data() };
    }
}

/// The functions the virtqueues' workers run.
struct IoKick;
struct IoDone;
struct CtlKick;
struct CtlDone;
struct Events;

impl Handler<Vq> for IoKick {
    fn run(q: &Vq, w: &OnWorker) {
        io::handle_kick(q, w);
    }
}

impl Handler<Vq> for IoDone {
    fn run(q: &Vq, w: &OnWorker) {
        io::complete_work(q, w);
    }
}

impl Handler<Vq> for CtlKick {
    fn run(q: &Vq, w: &OnWorker) {
        ctl::handle_ctl_kick(q, w);
    }
}

impl Handler<Vq> for CtlDone {
    fn run(q: &Vq, w: &OnWorker) {
        ctl::complete_tmf(q, w);
    }
}

/// The event queue's kick (new buffers) and completion work (new events).
impl Handler<Vq> for Events {
    fn run(q: &Vq, w: &OnWorker) {
        ctl::deliver_events(q, w);
    }
}

/// One open file: a virtio-scsi device for one VM.
pub(crate) struct VhostScsi {
    /// The vhost core device; its mutex guards the endpoint.
    // INVARIANT: the first field, dropped (workers stopped) before the
    // virtqueues and `vq_ptrs`, which vhost core's clean-up reads.
    dev: Dev<Endpoint>,
    // INVARIANT: never grown after `new`, so the virtqueues do not move.
    vqs: KVVec<Vq>,
    vq_ptrs: KVec<*mut sys::vhost_virtqueue>,
    /// `VHOST_SCSI_SET/GET_EVENTS_MISSED`.
    pub(super) events_missed: AtomicU32,
    /// The device's number (`vhost-N` in debugfs and the trace).
    id: u32,
    pub(super) tmf_stats: TmfStats,
    pub(super) event_stats: EventStats,
    /// `tcm_virt/vhost-N` in debugfs.
    // INVARIANT: removed (waiting for its readers) first thing in `drop`.
    stats_file: Option<stats::File<VhostScsi>>,
}

// SAFETY: the vhost core's state is protected by its own mutexes, the
// endpoint by the device mutex and each pool by its virtqueue's mutex (the
// glue types hand them out only under their locks); the counters are
// atomics; `dev` back-pointers refer to the device itself.
unsafe impl Send for VhostScsi {}
// SAFETY: as for `Send`: shared references reach nothing but through locks
// and atomics, and `vqs` is never grown after `new`.
unsafe impl Sync for VhostScsi {}

impl VhostScsi {
    /// `open()`: allocates the device and `max_io_vqs + 2` virtqueues.
    pub(super) fn new() -> Result<KBox<Self>> {
        let nvqs = params::max_io_vqs() + VQ_IO;
        // A `Vq` is about 19 KiB (the virtqueue's iovec array): built in
        // place, never on the stack.
        let mut vqs = KVVec::<Vq>::with_capacity(nvqs, GFP_KERNEL)?;
        for (i, slot) in vqs.spare_capacity_mut().iter_mut().take(nvqs).enumerate() {
            let p = slot.as_mut_ptr();
            // SAFETY: `p` is valid for writes of one `Vq`, not yet known to
            // vhost core, whose first field is `core` (`#[repr(C)]`); the
            // completion work is valid zeroed until initialised below.
            unsafe {
                let core = &raw mut (*p).core;
                match i {
                    VQ_CTL => RawVq::write::<Vq, CtlKick>(core, None),
                    VQ_EVT => RawVq::write::<Vq, Events>(core, None),
                    _ => RawVq::write::<Vq, IoKick>(core, None),
                }
                ptr::write_bytes(&raw mut (*p).completion_work, 0, 1);
                ptr::write(&raw mut (*p).dev, ptr::null());
                ptr::write(&raw mut (*p).done, Stack::new());
                ptr::write(&raw mut (*p).tmf_done, Stack::new());
                ptr::write(&raw mut (*p).tmfs, AtomicU32::new(0));
                ptr::write(&raw mut (*p).inflight, AtomicU32::new(0));
                ptr::write(&raw mut (*p).offloads, Offloads::new());
                // At most `max_io_vqs` (1024) + 2 virtqueues.
                ptr::write(&raw mut (*p).index, i as u16);
                ptr::write(&raw mut (*p).stats, IoStats::new());
                ptr::write(&raw mut (*p).polls, PollStats::new());
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
            vq_ptrs.push(q.core.raw(), GFP_KERNEL)?;
        }
        let me = KBox::<VhostScsi>::new_uninit(GFP_KERNEL)?;
        let mut me = KBox::write(
            me,
            VhostScsi {
                // SAFETY: initialised below, before the device is reachable.
                dev: unsafe { Dev::new() },
                vqs,
                vq_ptrs,
                events_missed: AtomicU32::new(0),
                id: stats::next_id(),
                tmf_stats: TmfStats::new(),
                event_stats: EventStats::new(),
                stats_file: None,
            },
        );
        let me_ptr: *const VhostScsi = &*me;
        for (i, q) in me.vqs.iter_mut().enumerate() {
            q.dev = me_ptr;
            let qp: *const Vq = q;
            let work = &mut q.completion_work;
            // SAFETY: `completion_work` is zeroed and never queued yet; the
            // virtqueue lives in the device, whose work is flushed before
            // it goes.
            unsafe {
                match i {
                    VQ_CTL => work.init::<Vq, CtlDone>(qp),
                    VQ_EVT => work.init::<Vq, Events>(qp),
                    _ => work.init::<Vq, IoDone>(qp),
                }
            }
        }
        let m = &mut *me;
        // The virtqueues are `RawVq<Endpoint, _>`s, as the device's backend
        // type; `vq_ptrs` lives as long as the device (a later field).
        // SAFETY: the device and its virtqueues are zeroed but for their
        // handlers, allocated and never move (boxed; `vqs` never grown).
        unsafe { m.dev.init(&mut m.vq_ptrs, IOV_LIMIT, WEIGHT) };
        // SAFETY: the file is dropped first thing in `VhostScsi::drop`.
        me.stats_file = Some(unsafe { stats::File::new(trace::Front::Vhost, me.id, me_ptr)? });
        Ok(me)
    }

    /// The device, as the trace events name it.
    pub(super) fn trace_id(&self) -> trace::Id {
        trace::Id {
            front: trace::Front::Vhost,
            dev: self.id,
        }
    }
}

/// The statistics file: the endpoint, a line per queue that saw a request
/// and the total, the TMFs and the events.
impl stats::Show for VhostScsi {
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        stats::show_endpoint(f, self.dev.lock().backend().map(|ep| &ep.wwpn[..]), None)?;
        let mut total = IoSnapshot::default();
        let (mut found, mut empty) = (0u64, 0u64);
        for q in self.vqs.iter() {
            let mut one = IoSnapshot::default();
            one.add(&q.stats);
            if !one.is_empty() {
                one.show(f, format_args!("queue {}", q.index))?;
            }
            total.add(&q.stats);
            found = found.wrapping_add(q.polls.found.get());
            empty = empty.wrapping_add(q.polls.empty.get());
        }
        total.show(f, format_args!("total"))?;
        PollStats::show_counts(f, found, empty)?;
        self.tmf_stats.show(f)?;
        self.event_stats.show(f)?;
        writeln!(
            f,
            "events_missed: {}",
            self.events_missed.load(Ordering::Relaxed)
        )
    }
}

impl VhostScsi {
    /// The vhost core device.
    pub(super) fn core(&self) -> &Dev<Endpoint> {
        &self.dev
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
                let g = self.dev.lock();
                g.check_owner()?;
                let _q = self.vqs[VQ_EVT].lock();
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
                self.dev.lock().worker_ioctl(cmd, arg)
            }
            _ => self.dev.lock().core_ioctl(cmd, arg),
        }
    }

    fn set_features(&self, features: u64) -> Result {
        if features & !FEATURES != 0 {
            return Err(EOPNOTSUPP);
        }
        let g = self.dev.lock();
        g.check_owner()?;
        let log = 1u64 << sys::VHOST_F_LOG_ALL;
        if features & log != 0 && !g.log_access_ok() {
            return Err(EFAULT);
        }
        let bound = g.backend().is_some();
        let old = self.vqs[0].lock().features();
        if bound && (features ^ old) & !log != 0 {
            return Err(EBUSY);
        }
        for q in self.vqs.iter() {
            q.lock().set_features(features);
        }
        Ok(())
    }

    fn vqs_access_ok(&self) -> bool {
        self.vqs.iter().all(|q| q.lock().access_ok())
    }

    /// `VHOST_SCSI_SET_ENDPOINT`: binds every free TPG of `wwpn` that has a
    /// nexus.
    fn set_endpoint(&self, wwpn: &[u8; WWPN_SIZE]) -> Result {
        let mut g = self.dev.lock();
        g.check_owner()?;
        if !self.vqs_access_ok() {
            return Err(EFAULT);
        }
        if g.backend().is_some() {
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
        // SAFETY: the event virtqueue lives as long as the device, and
        // every TPG is unbound (clear_endpoint) before the device goes away.
        let events = unsafe { nexus::Events::new(evt)? };
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
        // vhost core checked the rings above (vqs_access_ok).
        g.install(ep, true)
    }

    /// `VHOST_SCSI_CLEAR_ENDPOINT` (`wwpn` given) and release (`None`):
    /// stops the request queues, waits for every command, unbinds.
    fn clear_endpoint(&self, wwpn: Option<&[u8; WWPN_SIZE]>) -> Result {
        let mut g = self.dev.lock();
        if wwpn.is_some() {
            // The release (`None`) runs in whichever process closes last.
            g.check_owner()?;
            if !self.vqs_access_ok() {
                return Err(EFAULT);
            }
        }
        let Some(ep) = g.backend() else {
            return Ok(());
        };
        if let Some(w) = wwpn {
            if w != &ep.wwpn {
                pr_warn!("CLEAR_ENDPOINT for another WWPN than the one set\n");
                return Err(EINVAL);
            }
        }
        g.stop();
        self.dev.drain_each(self.vqs.iter().map(|q| &q.inflight));
        for q in self.vqs.iter() {
            *q.lock().state() = None;
        }
        // Unbinds every TPG: no command is left in their sessions.
        drop(g.take());
        // No event can be pushed any more: let a notification queued
        // meanwhile run (it finds no backend) before the workers may go.
        self.dev.flush();
        Ok(())
    }
}

impl Drop for VhostScsi {
    fn drop(&mut self) {
        // First: the file's readers use the whole device.
        drop(self.stats_file.take());
        // Then the fields: the vhost core device (`Dev::drop` stops the
        // workers) before the virtqueues.
        let _ = self.clear_endpoint(None);
    }
}
