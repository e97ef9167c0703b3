// SPDX-License-Identifier: GPL-2.0

//! One open file of the megasas device: an MFI adapter.
//!
//! The adapter is a vhost core device with a single virtqueue that carries
//! no ring: it provides the owner's worker (which runs in the owner's mm,
//! so frames and buffers are reached through plain user copies and page
//! pinning), the memory table (`VHOST_SET_MEM_TABLE`) that turns the
//! frames' "physical" addresses into the owner's addresses, and the kick
//! and call eventfds.
//!
//! A kick makes the worker read the inbound queue of the register page.
//! Each posted frame is copied once into kernel memory (never read again
//! from user memory), checked, and served: DCMDs at once, SCSI frames by
//! target core.  A frame's answer is its header (`cmd_status`,
//! `scsi_status`, `sense_len`) and, unless the frame is polled, its context
//! in the reply queue that `MFI_CMD_INIT` set up.
//!
//! Locking follows the vhost front end: the device mutex serialises ioctls
//! and guards the endpoint; the virtqueue mutex guards the adapter state
//! (`State`), which only the worker and ioctls touch.

use crate::{
    bindings as sys, chardev,
    fabric::{self, CmdHead, Front},
    nexus,
    pages::{MapError, Sgl, DMA_FROM_DEVICE, DMA_NONE, DMA_TO_DEVICE},
    wire::mfi::{
        self, dcmd, off, op, stat, Completion, Dir, Drive, EvtDetail, EvtLogInfo, Frame,
        FrameIndex, Personality, QueueInfo, NO_SLOT,
    },
    wire::tmf::Function,
};
use core::{
    cell::UnsafeCell,
    mem::MaybeUninit,
    ptr,
    sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, Ordering},
};
use kernel::{
    ffi::{c_int, c_ulong, c_void},
    impl_has_work,
    ioctl::{_IO, _IOR, _IOW},
    mm::virt::VmaNew,
    prelude::*,
    sync::Arc,
    types::Opaque,
    uaccess::{UserPtr, UserSlice},
    workqueue::{self, Work, WorkItem},
};

const IOC: u32 = 0xaf;
const GET_ABI_VERSION: u32 = _IOR::<u32>(IOC, 0xa0);
const SET_ENDPOINT: u32 = _IOW::<[u8; EP_SIZE]>(IOC, 0xa1);
const CLEAR_ENDPOINT: u32 = _IOW::<[u8; EP_SIZE]>(IOC, 0xa2);
const DOORBELL: u32 = _IO(IOC, 0xa3);
const RESET: u32 = _IO(IOC, 0xa4);
const ABI_VERSION: u32 = 1;

/// `struct tcm_megasas_endpoint`.
const EP_SIZE: usize = 256;
const WWPN_SIZE: usize = 224;
const EP_JBOD: u16 = 0x1;

/// `struct tcm_megasas_regs`.
const REGS_SIZE: usize = 12288;
const IQ_ENTRIES: u32 = 1024;
const R_FW_STATUS: usize = 0;
const R_ABI: usize = 4;
const R_IQ_ENTRIES: usize = 8;
const R_IQ_PRODUCER: usize = 12;
const R_IQ_CONSUMER: usize = 16;
const R_REPLIES: usize = 20;
const R_ERRORS: usize = 24;
const R_IQ: usize = 256;

/// Frames read per worker run before it yields to other work.
const WEIGHT: u32 = 256;
/// Events kept for CTRL_EVENT_GET.
const EVENT_LOG: usize = 64;
/// LUNs looked at for the DCMD lists.
const MAX_LUNS: usize = 256;

/// The single virtqueue: the owner's worker and the eventfds.
#[repr(C)]
struct Queue {
    // INVARIANT: first field; vhost core hands `*mut vhost_virtqueue` back
    // in callbacks and it converts to `*const Queue`.
    vq: Opaque<sys::vhost_virtqueue>,
    adapter: *const Adapter,
    /// Completions pushed by target core, written back by the worker.
    completion_work: Opaque<sys::vhost_work>,
    /// LUN events to turn into MFI events.
    event_work: Opaque<sys::vhost_work>,
    done: AtomicPtr<MCmd>,
    /// Task management answers ready to be written.
    tmf_done: AtomicPtr<TmfJob>,
    // INVARIANT: accessed only with the virtqueue mutex held.
    state: UnsafeCell<Option<KBox<State>>>,
}

impl Queue {
    fn raw(&self) -> *mut sys::vhost_virtqueue {
        self.vq.get()
    }

    fn adapter(&self) -> &Adapter {
        // SAFETY: set at open; the adapter outlives its queue.
        unsafe { &*self.adapter }
    }

    fn lock(&self) -> QueueGuard<'_> {
        // SAFETY: the mutex was initialised by vhost_dev_init.
        unsafe { sys::mutex_lock(&raw mut (*self.raw()).mutex) };
        QueueGuard(self)
    }
}

/// The virtqueue mutex, held.
struct QueueGuard<'a>(&'a Queue);

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: locked in `Queue::lock`.
        unsafe { sys::mutex_unlock(&raw mut (*self.0.raw()).mutex) };
    }
}

impl QueueGuard<'_> {
    fn backend(&self) -> Option<&Endpoint> {
        // SAFETY: the backend is only changed with this mutex held, and the
        // endpoint outlives its installation as backend.
        unsafe { (*self.0.raw()).private_data.cast::<Endpoint>().as_ref() }
    }

    fn set_backend(&self, ep: *const Endpoint) {
        // SAFETY: the mutex is held.
        unsafe { (*self.0.raw()).private_data = ep.cast_mut().cast::<c_void>() };
    }

    fn state(&mut self) -> &mut Option<KBox<State>> {
        // SAFETY: the mutex is held (invariant of `Queue::state`) and
        // `&mut self` makes the borrow unique.
        unsafe { &mut *self.0.state.get() }
    }
}

/// The TPG an adapter serves.
struct Endpoint {
    wwpn: [u8; WWPN_SIZE],
    tpg: Arc<fabric::Tpg>,
    sess: *mut sys::se_session,
    personality: Personality,
    /// The commands in flight, for the shared task management layer.
    inflight: Arc<nexus::Inflight>,
    events: Arc<nexus::Events>,
}

/// What a command slot holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Free,
    /// A SCSI command submitted to target core.
    Scsi,
    /// A CTRL_EVENT_WAIT waiting for an event.
    Aen,
    /// A CTRL_CACHE_FLUSH waiting for the SYNCHRONIZE CACHEs it sent.
    Flush,
    /// A SYNCHRONIZE CACHE of a CTRL_CACHE_FLUSH (no frame of its own).
    Sync,
}

/// One command slot.
#[repr(C)]
pub(crate) struct MCmd {
    // INVARIANT: first field; target core hands `*mut se_cmd` back and it
    // converts to `*mut MCmd`.
    head: CmdHead,
    sense: Opaque<[u8; mfi::MAX_SENSE]>,
    q: *const Queue,
    /// Link in the queue's completion stack.
    next: *mut MCmd,
    slot: u16,
    used: Use,
    /// The frame: its user address and context.
    uva: usize,
    context: u64,
    polled: bool,
    /// Sense buffer address (user) and the bytes the initiator offered.
    sense_uva: usize,
    sense_room: u8,
    dir: Dir,
    data_len: u32,
    lun: u64,
    cdb: [u8; mfi::MAX_CDB],
    data: Sgl,
    /// CTRL_EVENT_WAIT: the first sequence number wanted, the class/locale
    /// filter and the buffer.
    aen_seq: u32,
    aen_filter: u32,
    aen_buf: [(u64, u32); 1],
    /// CTRL_CACHE_FLUSH: commands it waits for and the status so far; a
    /// SYNCHRONIZE CACHE: the slot of its CTRL_CACHE_FLUSH.
    pending: u16,
    flush_status: u8,
    parent: u16,
}

/// The adapter's state, created with the endpoint.
struct State {
    fw_state: u32,
    queue: Option<Reply>,
    /// Inbound queue entries read (free-running).
    iq_consumer: u32,
    cmds: KVVec<MCmd>,
    free: KVec<u16>,
    heads: KVec<u16>,
    next: KVec<u16>,
    keys: KVec<u64>,
    table: Arc<nexus::Table>,
    /// Replies waiting for room in the reply queue.
    deferred: KVec<u64>,
    /// Scratch: DCMD answers, the frame snapshot, iovecs, LUN list.
    buf: KVVec<u8>,
    iov: KVec<sys::iovec>,
    luns: KVec<sys::tcm_virt_lun_info>,
    /// Event log (ring) and its sequence numbers.
    log: KVec<EvtDetail>,
    next_seq: u32,
    boot_seq: u32,
    shutdown_seq: u32,
    /// The slot of the pending CTRL_EVENT_WAIT.
    aen: Option<u16>,
}

/// The reply queue, translated.
#[derive(Clone, Copy)]
struct Reply {
    info: QueueInfo,
    ring: usize,
    producer_uva: usize,
    consumer_uva: usize,
    producer: u32,
}

/// One open file.
pub(crate) struct Adapter {
    dev: Opaque<sys::vhost_dev>,
    q: KBox<Queue>,
    vq_ptrs: KVec<*mut sys::vhost_virtqueue>,
    /// The register page (vmalloc_user), mapped by the owner.
    regs: *mut u8,
    /// Commands submitted to target core and not yet completed.
    inflight: AtomicU32,
    // INVARIANT: guarded by the device mutex.
    endpoint: UnsafeCell<Option<KBox<Endpoint>>>,
}

// SAFETY: the vhost core's state is protected by its own mutexes; the
// module's fields by the invariants above; `regs` is only accessed with
// atomics.
unsafe impl Send for Adapter {}
// SAFETY: as above.
unsafe impl Sync for Adapter {}

struct DevGuard<'a>(&'a Adapter);

impl Drop for DevGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: locked in `Adapter::lock`.
        unsafe { sys::mutex_unlock(&raw mut (*self.0.dev.get()).mutex) };
    }
}

fn ratelimited(what: &str) {
    static LAST: AtomicU32 = AtomicU32::new(0);
    // SAFETY: reading jiffies is always allowed.
    let now = unsafe { ptr::read_volatile(&raw const sys::jiffies) } as u32;
    let last = LAST.load(Ordering::Relaxed);
    if last == 0 || now.wrapping_sub(last) >= 5 * sys::HZ {
        LAST.store(now, Ordering::Relaxed);
        pr_warn!("megasas: {} (further reports suppressed for 5 s)\n", what);
    }
}

impl Adapter {
    /// `open()`.
    pub(super) fn new() -> Result<KBox<Self>> {
        let mut q = KBox::<Queue>::new_uninit(GFP_KERNEL)?;
        let p = q.as_mut_ptr();
        // SAFETY: `p` is valid for writes of one `Queue`; the opaque fields
        // are valid zeroed, the others are written here.
        let q = unsafe {
            ptr::write_bytes(p, 0, 1);
            ptr::write(&raw mut (*p).adapter, ptr::null());
            ptr::write(&raw mut (*p).done, AtomicPtr::new(ptr::null_mut()));
            ptr::write(&raw mut (*p).tmf_done, AtomicPtr::new(ptr::null_mut()));
            ptr::write(&raw mut (*p).state, UnsafeCell::new(None));
            q.assume_init()
        };
        // SAFETY: allocates zeroed, user-mappable memory.
        let regs = unsafe { sys::tcm_virt_regs_alloc(REGS_SIZE as c_ulong) }.cast::<u8>();
        if regs.is_null() {
            return Err(ENOMEM);
        }
        let mut me = match KBox::new(
            Adapter {
                dev: Opaque::zeroed(),
                q,
                vq_ptrs: KVec::new(),
                regs,
                inflight: AtomicU32::new(0),
                endpoint: UnsafeCell::new(None),
            },
            GFP_KERNEL,
        ) {
            Ok(me) => me,
            Err(e) => {
                // SAFETY: allocated just above, not mapped yet.
                unsafe { sys::tcm_virt_regs_free(regs.cast()) };
                return Err(e.into());
            }
        };
        me.reg32(R_ABI).store(ABI_VERSION, Ordering::Relaxed);
        me.reg32(R_IQ_ENTRIES).store(IQ_ENTRIES, Ordering::Relaxed);
        me.set_fw_state(mfi::state::READY);
        let me_ptr: *const Adapter = &*me;
        me.q.adapter = me_ptr;
        let qp = me.q.raw();
        // SAFETY: the virtqueue is zeroed and not yet known to vhost; the
        // works are zeroed and ours.
        unsafe {
            (*qp).handle_kick = Some(handle_kick);
            sys::vhost_work_init(me.q.completion_work.get(), Some(complete_work));
            sys::vhost_work_init(me.q.event_work.get(), Some(event_work));
        }
        me.vq_ptrs.push(qp, GFP_KERNEL)?;
        // SAFETY: the device and its virtqueue are zeroed, allocated and
        // never move (boxed); `vq_ptrs` lives as long.
        unsafe {
            sys::vhost_dev_init(
                me.dev.get(),
                me.vq_ptrs.as_mut_ptr(),
                1,
                mfi::MAX_SGE as c_int,
                WEIGHT as c_int,
                0,
                true,
                None,
            )
        };
        Ok(me)
    }

    fn raw(&self) -> *mut sys::vhost_dev {
        self.dev.get()
    }

    fn lock(&self) -> DevGuard<'_> {
        // SAFETY: initialised by vhost_dev_init.
        unsafe { sys::mutex_lock(&raw mut (*self.raw()).mutex) };
        DevGuard(self)
    }

    fn reg32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `regs` is REGS_SIZE bytes, page aligned, alive as long as
        // `self`; every access to it is atomic.
        unsafe { AtomicU32::from_ptr(self.regs.add(off).cast()) }
    }

    fn iq(&self, i: u32) -> &AtomicU64 {
        let off = R_IQ + 8 * (i % IQ_ENTRIES) as usize;
        // SAFETY: as for `reg32`; the entry lies inside the page.
        unsafe { AtomicU64::from_ptr(self.regs.add(off).cast()) }
    }

    fn set_fw_state(&self, s: u32) {
        self.reg32(R_FW_STATUS).store(
            mfi::status_word(s, mfi::MAX_SGE, mfi::MAX_CMDS),
            Ordering::Release,
        );
    }

    fn error(&self, what: &str) {
        self.reg32(R_ERRORS).fetch_add(1, Ordering::Relaxed);
        ratelimited(what);
    }

    /// `mmap()` of the register page.
    pub(super) fn mmap(&self, vma: &VmaNew) -> Result {
        // SAFETY: the vma is being set up; the pages are vmalloc_user's and
        // live as long as the file, which the mapping holds.
        let r = unsafe {
            sys::tcm_virt_regs_mmap(vma.as_ptr(), self.regs.cast(), REGS_SIZE as c_ulong)
        };
        errno(r as isize).map(|_| ())
    }

    /// Dispatches an ioctl.
    pub(super) fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        let user = UserPtr::from_addr(arg);
        match cmd {
            GET_ABI_VERSION => {
                UserSlice::new(user, 4)
                    .writer()
                    .write_slice(&ABI_VERSION.to_ne_bytes())?;
                Ok(0)
            }
            SET_ENDPOINT | CLEAR_ENDPOINT => {
                let mut t = [0u8; EP_SIZE];
                UserSlice::new(user, EP_SIZE).reader().read_slice(&mut t)?;
                let flags = u16::from_ne_bytes([t[226], t[227]]);
                if t[228..].iter().any(|&b| b != 0) || flags & !EP_JBOD != 0 {
                    return Err(EINVAL);
                }
                let mut wwpn = [0u8; WWPN_SIZE];
                wwpn.copy_from_slice(&t[..WWPN_SIZE]);
                let tpgt = u16::from_ne_bytes([t[224], t[225]]);
                if cmd == SET_ENDPOINT {
                    self.set_endpoint(&wwpn, tpgt, flags)?;
                } else {
                    self.clear_endpoint(Some(&wwpn))?;
                }
                Ok(0)
            }
            DOORBELL => {
                // SAFETY: the poll is initialised; queuing without an owner
                // worker is a no-op.
                unsafe { sys::vhost_poll_queue(&raw mut (*self.q.raw()).poll) };
                Ok(0)
            }
            RESET => {
                self.reset();
                Ok(0)
            }
            _ => {
                let _g = self.lock();
                // SAFETY: the device mutex is held; `arg` is a user pointer.
                let r = unsafe { sys::vhost_dev_ioctl(self.raw(), cmd, arg as *mut c_void) };
                if r == -(sys::ENOIOCTLCMD as isize) {
                    // Only the kick and call eventfds of the virtqueue mean
                    // something here; vhost core checks the index.
                    // SAFETY: as above.
                    let r = unsafe { sys::vhost_vring_ioctl(self.raw(), cmd, arg as *mut c_void) };
                    return errno(r);
                }
                // SAFETY: the device is initialised.
                unsafe { sys::vhost_dev_flush(self.raw()) };
                errno(r)
            }
        }
    }

    /// `TCM_MEGASAS_SET_ENDPOINT`: binds the TPG `tpgt` of `wwpn`.
    fn set_endpoint(&self, wwpn: &[u8; WWPN_SIZE], tpgt: u16, flags: u16) -> Result {
        let _g = self.lock();
        // SAFETY: guarded by the device mutex, held.
        let slot = unsafe { &mut *self.endpoint.get() };
        if slot.is_some() {
            pr_err!("megasas: endpoint already set for this adapter\n");
            return Err(EEXIST);
        }
        // SAFETY: the device mutex is held.
        if unsafe { (*self.raw()).mm.is_null() } {
            pr_err!("megasas: VHOST_SET_OWNER first\n");
            return Err(EINVAL);
        }
        let name_len = wwpn.iter().position(|&c| c == 0).unwrap_or(WWPN_SIZE);
        let Some(tpg) = fabric::tpgs_of(&wwpn[..name_len])?
            .into_iter()
            .find(|t| t.tag() == tpgt)
        else {
            pr_err!("megasas: no TPG {} under that WWPN\n", tpgt);
            return Err(ENODEV);
        };
        let mut st = State::new()?;
        let inflight = nexus::Inflight::new()?;
        inflight.register(st.table.clone())?;
        let qp: *const Queue = &*self.q;
        // SAFETY: `notify_events` queues the queue's event work; the queue
        // lives as long as the adapter, and the TPG is unbound before.
        let events = unsafe { nexus::Events::new(notify_events, qp.cast())? };
        // SAFETY: the item belongs to a TPG kept allocated by `tpg`.
        if unsafe { sys::target_depend_item(tpg.config_item()) } != 0 {
            return Err(ENODEV);
        }
        let Some(sess) = tpg.bind(&events) else {
            // SAFETY: pinned just above.
            unsafe { sys::target_undepend_item(tpg.config_item()) };
            pr_err!(
                "megasas: TPG {} has no nexus or is bound to another endpoint\n",
                tpgt
            );
            return Err(EBUSY);
        };
        st.boot_seq = st.next_seq;
        let ep = KBox::new(
            Endpoint {
                wwpn: *wwpn,
                tpg: tpg.clone(),
                sess,
                personality: if flags & EP_JBOD != 0 {
                    Personality::Jbod
                } else {
                    Personality::Raid
                },
                inflight,
                events,
            },
            GFP_KERNEL,
        );
        let ep = match ep {
            Ok(ep) => ep,
            Err(e) => {
                tpg.unbind();
                // SAFETY: pinned above.
                unsafe { sys::target_undepend_item(tpg.config_item()) };
                return Err(e.into());
            }
        };
        {
            let mut g = self.q.lock();
            *g.state() = Some(st);
            g.set_backend(&*ep);
        }
        *slot = Some(ep);
        Ok(())
    }

    /// `TCM_MEGASAS_CLEAR_ENDPOINT` (`wwpn` given) and release (`None`):
    /// stops reading frames, waits for every command, unbinds.
    fn clear_endpoint(&self, wwpn: Option<&[u8; WWPN_SIZE]>) -> Result {
        let _g = self.lock();
        // SAFETY: guarded by the device mutex, held.
        let slot = unsafe { &mut *self.endpoint.get() };
        let Some(ep) = slot.as_ref() else {
            return Ok(());
        };
        if let Some(w) = wwpn {
            if w != &ep.wwpn {
                return Err(EINVAL);
            }
        }
        self.q.lock().set_backend(ptr::null());
        self.drain();
        {
            let mut g = self.q.lock();
            if let Some(st) = g.state().as_mut() {
                // A pending CTRL_EVENT_WAIT is the only slot left in use.
                st.finish_aen(&self.q, stat::OK, None);
            }
            *g.state() = None;
        }
        if let Some(ep) = slot.take() {
            ep.tpg.unbind();
            // SAFETY: pinned by set_endpoint.
            unsafe { sys::target_undepend_item(ep.tpg.config_item()) };
        }
        // SAFETY: the device is initialised.
        unsafe { sys::vhost_dev_flush(self.raw()) };
        self.set_fw_state(mfi::state::READY);
        Ok(())
    }

    /// `TCM_MEGASAS_RESET`: the adapter reset of the MFI interface (as the
    /// Linux driver's OCR does): waits for every command, forgets the
    /// reply queue and goes back to READY, ready for a new INIT.
    fn reset(&self) {
        let _g = self.lock();
        let backend = {
            let g = self.q.lock();
            g.backend().map(ptr::from_ref)
        };
        self.q.lock().set_backend(ptr::null());
        self.drain();
        let mut g = self.q.lock();
        if let Some(st) = g.state().as_mut() {
            st.finish_aen(&self.q, stat::OK, None);
            st.queue = None;
            st.deferred.clear();
            st.fw_state = mfi::state::READY;
            st.shutdown_seq = st.next_seq;
            st.boot_seq = st.next_seq;
        }
        if let Some(ep) = backend {
            g.set_backend(ep);
        }
        drop(g);
        self.set_fw_state(mfi::state::READY);
    }

    /// Waits until every submitted command was released and answered.
    fn drain(&self) {
        // SAFETY: the device is initialised; flushing waits for queued work.
        unsafe { sys::vhost_dev_flush(self.raw()) };
        // SAFETY: `inflight` lives as long as `self`; the completion path
        // wakes it when it drops to zero.
        unsafe { sys::tcm_virt_wait_zero(self.inflight.as_ptr()) };
        // SAFETY: as above.
        unsafe { sys::vhost_dev_flush(self.raw()) };
    }

    fn put_inflight(&self) {
        if self.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: the counter lives as long as the adapter.
            unsafe { sys::wake_up_var(self.inflight.as_ptr().cast()) };
        }
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        let _ = self.clear_endpoint(None);
        // SAFETY: no endpoint, no command left; the device stops its worker
        // and frees what vhost core allocated.  The register page is no
        // longer mapped (the mapping holds the file).
        unsafe {
            sys::vhost_dev_stop(self.raw());
            sys::vhost_dev_cleanup(self.raw());
            sys::tcm_virt_regs_free(self.regs.cast());
        }
    }
}

fn errno(r: isize) -> Result<isize> {
    if r < 0 {
        Err(Error::from_errno(r as i32))
    } else {
        Ok(r)
    }
}

impl State {
    fn new() -> Result<KBox<State>> {
        let n = mfi::MAX_CMDS as usize;
        let mut cmds = KVVec::with_capacity(n, GFP_KERNEL)?;
        let mut free = KVec::with_capacity(n, GFP_KERNEL)?;
        for i in 0..n {
            cmds.push(
                MCmd {
                    head: CmdHead::new(Front::Megasas),
                    sense: Opaque::zeroed(),
                    q: ptr::null(),
                    next: ptr::null_mut(),
                    slot: i as u16,
                    used: Use::Free,
                    uva: 0,
                    context: 0,
                    polled: false,
                    sense_uva: 0,
                    sense_room: 0,
                    dir: Dir::None,
                    data_len: 0,
                    lun: 0,
                    cdb: [0; mfi::MAX_CDB],
                    data: Sgl::new(),
                    aen_seq: 0,
                    aen_filter: 0,
                    aen_buf: [(0, 0)],
                    pending: 0,
                    flush_status: 0,
                    parent: NO_SLOT,
                },
                GFP_KERNEL,
            )?;
            // Lowest slots first.
            free.push((n - 1 - i) as u16, GFP_KERNEL)?;
        }
        let mut heads = KVec::new();
        heads.resize(2048, NO_SLOT, GFP_KERNEL)?;
        let mut next = KVec::new();
        next.resize(n, NO_SLOT, GFP_KERNEL)?;
        let mut keys = KVec::new();
        keys.resize(n, 0u64, GFP_KERNEL)?;
        let mut buf = KVVec::with_capacity(mfi::DCMD_BUF_SIZE, GFP_KERNEL)?;
        buf.resize(mfi::DCMD_BUF_SIZE, 0, GFP_KERNEL)?;
        Ok(KBox::new(
            State {
                fw_state: mfi::state::READY,
                queue: None,
                iq_consumer: 0,
                cmds,
                free,
                heads,
                next,
                keys,
                table: nexus::Table::new(n)?,
                deferred: KVec::with_capacity(n, GFP_KERNEL)?,
                buf,
                iov: KVec::with_capacity(mfi::MAX_SGE as usize * 2, GFP_KERNEL)?,
                luns: KVec::with_capacity(MAX_LUNS, GFP_KERNEL)?,
                log: KVec::with_capacity(EVENT_LOG, GFP_KERNEL)?,
                next_seq: 1,
                boot_seq: 1,
                shutdown_seq: 0,
                aen: None,
            },
            GFP_KERNEL,
        )?)
    }

    fn index(&mut self) -> FrameIndex<'_> {
        FrameIndex {
            heads: &mut self.heads,
            next: &mut self.next,
            keys: &mut self.keys,
        }
    }

    /// Frees `slot`.
    fn put_slot(&mut self, slot: u16) {
        self.index().remove(slot);
        self.cmds[usize::from(slot)].used = Use::Free;
        self.free.push_within_capacity(slot).ok();
    }
}

/// The memory table of the owner, for translating frame addresses.
struct Mem(*mut sys::vhost_iotlb);

impl Mem {
    /// The user address of `len` bytes at `addr`, which must lie in one
    /// region of the memory table.
    fn xlate(&self, addr: u64, len: u64) -> Option<usize> {
        if self.0.is_null() || len == 0 {
            return None;
        }
        let last = addr.checked_add(len - 1)?;
        // SAFETY: the table is the virtqueue's, read with its mutex held.
        let m = unsafe { sys::vhost_iotlb_itree_first(self.0, addr, last) };
        if m.is_null() {
            return None;
        }
        // SAFETY: a live entry of the table.
        let (start, mlast, uaddr) = unsafe { ((*m).start, (*m).last, (*m).addr) };
        if addr < start || last > mlast {
            return None;
        }
        usize::try_from(uaddr + (addr - start)).ok()
    }

    /// Appends the iovecs of `len` bytes at `addr` (across regions).
    fn xlate_iov(&self, mut addr: u64, mut len: u64, out: &mut KVec<sys::iovec>) -> Option<()> {
        while len > 0 {
            if self.0.is_null() {
                return None;
            }
            let last = addr.checked_add(len - 1)?;
            // SAFETY: as in `xlate`.
            let m = unsafe { sys::vhost_iotlb_itree_first(self.0, addr, last) };
            if m.is_null() {
                return None;
            }
            // SAFETY: a live entry of the table.
            let (start, mlast, uaddr) = unsafe { ((*m).start, (*m).last, (*m).addr) };
            if addr < start {
                return None;
            }
            let n = (mlast - addr).saturating_add(1).min(len);
            out.push(
                sys::iovec {
                    iov_base: (uaddr + (addr - start)) as *mut c_void,
                    iov_len: n as usize,
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

fn read_user(uva: usize, out: &mut [u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(uva), out.len())
        .reader()
        .read_slice(out)
}

fn write_user(uva: usize, bytes: &[u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(uva), bytes.len())
        .writer()
        .write_slice(bytes)
}

/// Writes the answer into a frame's header: status fields first,
/// `cmd_status` last (polling initiators wait for it to change).
fn write_header(uva: usize, c: Completion) -> Result {
    write_user(uva + off::SENSE_LEN, &[c.sense_len])?;
    write_user(uva + off::SCSI_STATUS, &[c.scsi_status])?;
    fence(Ordering::Release);
    write_user(uva + off::CMD_STATUS, &[c.cmd_status])
}

/// Per worker run: whether a reply was posted (the call eventfd is
/// signalled once at the end).
struct Run {
    signal: bool,
}

impl Queue {
    fn mem(&self) -> Mem {
        // SAFETY: read with the virtqueue mutex held by the callers.
        Mem(unsafe { (*self.raw()).umem })
    }
}

/// Posts `context` to the reply queue, or keeps it until there is room.
fn post_reply(a: &Adapter, st: &mut State, context: u64, run: &mut Run) {
    let Some(r) = st.queue else {
        return;
    };
    let Some(ctx) = mfi::reply_context(context, r.info.context64) else {
        a.error("frame context not below the command count: answered in the frame only");
        return;
    };
    if !st.deferred.is_empty() || !try_post(a, st, ctx, run) {
        if st.deferred.push_within_capacity(ctx).is_err() {
            a.error("reply queue overflow: reply dropped");
        }
    }
}

/// Writes one reply; false when the reply queue is full.
fn try_post(a: &Adapter, st: &mut State, ctx: u64, run: &mut Run) -> bool {
    let Some(r) = st.queue.as_mut() else {
        return true;
    };
    let n = r.info.entries;
    let mut c = [0u8; 4];
    if read_user(r.consumer_uva, &mut c).is_ok() {
        let consumer = u32::from_le_bytes(c);
        // A consumer index out of range is not used for anything.
        if consumer < n && (r.producer + 1) % n == consumer {
            return false;
        }
    }
    let esz = r.info.entry_size();
    let at = r.ring + r.producer as usize * esz;
    let ok = if esz == 8 {
        write_user(at, &ctx.to_le_bytes())
    } else {
        write_user(at, &(ctx as u32).to_le_bytes())
    };
    if ok.is_err() {
        a.error("reply queue not writable");
        return true;
    }
    r.producer = (r.producer + 1) % n;
    fence(Ordering::Release);
    if write_user(r.producer_uva, &r.producer.to_le_bytes()).is_err() {
        a.error("reply producer index not writable");
    }
    a.reg32(R_REPLIES).fetch_add(1, Ordering::Relaxed);
    run.signal = true;
    true
}

/// Retries the replies that waited for room.
fn flush_deferred(a: &Adapter, st: &mut State, run: &mut Run) {
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
fn answer(
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

fn signal(q: &Queue, run: &Run) {
    if run.signal {
        // SAFETY: the virtqueue is live; its call eventfd is read under
        // its mutex by vhost core, and signalling a stale one is harmless.
        unsafe { sys::tcm_virt_vq_call(q.raw()) };
    }
}

/// `handle_kick`: reads the inbound queue.
///
/// # Safety
///
/// Called by the vhost worker with the poll work of the adapter's queue.
unsafe extern "C" fn handle_kick(work: *mut sys::vhost_work) {
    // SAFETY: `work` is the poll work embedded in a vhost_virtqueue.
    let vq = unsafe { kernel::container_of!(work, sys::vhost_virtqueue, poll.work) };
    // SAFETY: per the invariant of `Queue`, the virtqueue is its first field.
    let q = unsafe { &*vq.cast::<Queue>() };
    let a = q.adapter();
    let mut g = q.lock();
    let Some(ep) = g.backend() else {
        return;
    };
    let ep: *const Endpoint = ep;
    // SAFETY: the endpoint stays installed while the mutex is held.
    let ep = unsafe { &*ep };
    let mem = q.mem();
    let Some(st) = g.state().as_mut() else {
        return;
    };
    let mut run = Run { signal: false };
    flush_deferred(a, st, &mut run);
    let producer = a.reg32(R_IQ_PRODUCER).load(Ordering::Acquire);
    let pending = producer.wrapping_sub(st.iq_consumer);
    if pending > IQ_ENTRIES {
        a.error("inbound queue producer index out of range: entries skipped");
        st.iq_consumer = producer;
        a.reg32(R_IQ_CONSUMER).store(producer, Ordering::Release);
        signal(q, &run);
        return;
    }
    let todo = pending.min(WEIGHT);
    for _ in 0..todo {
        let v = a.iq(st.iq_consumer).load(Ordering::Acquire);
        st.iq_consumer = st.iq_consumer.wrapping_add(1);
        // SAFETY: on the owner's worker with the mutex held.
        unsafe { serve(q, a, ep, &mem, st, v, &mut run) };
    }
    a.reg32(R_IQ_CONSUMER)
        .store(st.iq_consumer, Ordering::Release);
    drop(g);
    signal(q, &run);
    if pending > todo {
        // SAFETY: the poll is initialised; more work later.
        unsafe { sys::vhost_poll_queue(&raw mut (*q.raw()).poll) };
    }
}

/// Serves one posted entry.
///
/// # Safety
///
/// On the owner's worker with the virtqueue mutex held.
unsafe fn serve(
    q: &Queue,
    a: &Adapter,
    ep: &Endpoint,
    mem: &Mem,
    st: &mut State,
    v: u64,
    run: &mut Run,
) {
    let posted = match mfi::decode_posted(v) {
        Ok(p) => p,
        Err(_) => return a.error("posted frame address unaligned or too many frames"),
    };
    let Some(uva) = mem.xlate(posted.addr, posted.len as u64) else {
        return a.error("posted frame outside the memory table");
    };
    if st.index().find(posted.addr).is_some() {
        // Its owner is still in flight: nothing of it may be touched.
        return a.error("frame posted again while in flight");
    }
    let len = posted.len;
    // The one read of the frame: everything below parses this copy.
    let mut frame = [0u8; mfi::MAX_FRAME_BYTES];
    if read_user(uva, &mut frame[..len]).is_err() {
        return a.error("posted frame not readable");
    }
    let f = &frame[..len];
    let h = mfi::Header::parse(f);
    let reply = |st: &mut State, run: &mut Run, c: Completion| {
        answer(a, st, uva, h.context, h.polled(), c, run)
    };
    if st.fw_state != mfi::state::OPERATIONAL && h.cmd != op::INIT {
        return reply(st, run, Completion::status(stat::WRONG_STATE));
    }
    let parsed = match Frame::parse(f) {
        Ok(p) => p,
        Err(s) => return reply(st, run, Completion::status(s)),
    };
    match parsed {
        Frame::Init { qinfo } => {
            let s = init(a, mem, st, qinfo);
            reply(st, run, Completion::status(s));
        }
        Frame::Dcmd {
            opcode,
            mbox,
            data_len,
            sgl,
        } => {
            if opcode == dcmd::CTRL_EVENT_WAIT {
                return event_wait(q, a, mem, st, posted.addr, uva, &h, mbox, sgl, run);
            }
            if opcode == dcmd::CTRL_CACHE_FLUSH {
                // SAFETY: per the function's contract.
                return unsafe { cache_flush(q, a, ep, mem, st, posted.addr, uva, &h, run) };
            }
            if opcode == dcmd::CLUSTER_RESET_LD || opcode == dcmd::CLUSTER_RESET_ALL {
                // LUN reset of one drive (mbox byte 0, the LD or PD id) or
                // I_T nexus reset, through the shared layer.
                let tmf = if opcode == dcmd::CLUSTER_RESET_LD {
                    Tmf {
                        function: Function::LunReset,
                        lun: u64::from(mbox[0]),
                        tag: 0,
                    }
                } else {
                    Tmf {
                        function: Function::ItNexusReset,
                        lun: 0,
                        tag: 0,
                    }
                };
                if start_tmf(q, a, ep, uva, &h, tmf).is_err() {
                    reply(st, run, Completion::status(stat::MEMORY_NOT_AVAILABLE));
                }
                return;
            }
            let s = serve_dcmd(ep, mem, st, opcode, &mbox, data_len, &sgl);
            reply(st, run, Completion::status(s));
        }
        Frame::Abort { context, addr } => {
            let s = abort(q, a, st, context, addr, run);
            if s != u8::MAX {
                return reply(st, run, Completion::status(s));
            }
            let victim = st.index().find(addr).map(usize::from).unwrap_or(0);
            let lun = st.cmds[victim].lun;
            let tmf = Tmf {
                function: Function::AbortTask,
                lun,
                tag: victim as u64,
            };
            if start_tmf(q, a, ep, uva, &h, tmf).is_err() {
                reply(st, run, Completion::status(stat::ABORT_NOT_POSSIBLE));
            }
        }
        Frame::Scsi {
            ld,
            target,
            lun,
            cdb,
            dir,
            data_len,
            sense,
            sgl,
        } => {
            // PD frames reach any LUN (smartctl's pass-through); LD frames
            // only the logical drives of the RAID personality.
            let limit = if ld { mfi::MAX_LD } else { mfi::MAX_PD };
            let ld_ok = !ld || ep.personality == Personality::Raid;
            if !ld_ok
                || u32::from(target) >= limit
                || lun != 0
                || lun_info(ep, u64::from(target)).is_none()
            {
                return reply(st, run, Completion::status(stat::DEVICE_NOT_FOUND));
            }
            let io = Io {
                addr: posted.addr,
                uva,
                h,
                lun: u64::from(target),
                cdb,
                dir,
                data_len,
                sense,
                parent: None,
            };
            // SAFETY: per the function's contract.
            unsafe { submit(q, a, ep, mem, st, &io, &sgl, run) };
        }
        Frame::LdIo {
            write,
            target,
            lba,
            blocks,
            sense,
            sgl,
        } => {
            let is_ld = ep.personality == Personality::Raid && u32::from(target) < mfi::MAX_LD;
            let Some(info) = is_ld.then(|| lun_info(ep, u64::from(target))).flatten() else {
                return reply(st, run, Completion::status(stat::DEVICE_NOT_FOUND));
            };
            let bytes = u64::from(blocks) * u64::from(info.block_size);
            if bytes > u64::from(mfi::MAX_XFER) || sgl.total < bytes {
                return reply(st, run, Completion::status(stat::INVALID_PARAMETER));
            }
            let io = Io {
                addr: posted.addr,
                uva,
                h,
                lun: u64::from(target),
                cdb: mfi::rw16(write, lba, blocks),
                dir: match (blocks, write) {
                    (0, _) => Dir::None,
                    (_, true) => Dir::Out,
                    (_, false) => Dir::In,
                },
                data_len: bytes as u32,
                sense,
                parent: None,
            };
            // SAFETY: per the function's contract.
            unsafe { submit(q, a, ep, mem, st, &io, &sgl, run) };
        }
    }
}

/// `MFI_CMD_INIT`: sets up the reply queue.
fn init(a: &Adapter, mem: &Mem, st: &mut State, qinfo: u64) -> u8 {
    if st.queue.is_some() {
        // Already initialised: as firmware, a second INIT changes nothing.
        return stat::OK;
    }
    let Some(quva) = mem.xlate(qinfo, mfi::QINFO_SIZE as u64) else {
        return stat::MEMORY_NOT_AVAILABLE;
    };
    let mut b = [0u8; mfi::QINFO_SIZE];
    if read_user(quva, &mut b).is_err() {
        return stat::MEMORY_NOT_AVAILABLE;
    }
    let info = match QueueInfo::parse(&b) {
        Ok(i) => i,
        Err(s) => return s,
    };
    let ring_len = u64::from(info.entries) * info.entry_size() as u64;
    let (Some(ring), Some(pu), Some(cu)) = (
        mem.xlate(info.ring, ring_len),
        mem.xlate(info.producer, 4),
        mem.xlate(info.consumer, 4),
    ) else {
        return stat::INVALID_PARAMETER;
    };
    let mut p = [0u8; 4];
    if read_user(pu, &mut p).is_err() {
        return stat::INVALID_PARAMETER;
    }
    let producer = u32::from_le_bytes(p);
    if producer >= info.entries {
        return stat::INVALID_PARAMETER;
    }
    st.queue = Some(Reply {
        info,
        ring,
        producer_uva: pu,
        consumer_uva: cu,
        producer,
    });
    st.fw_state = mfi::state::OPERATIONAL;
    a.set_fw_state(mfi::state::OPERATIONAL);
    stat::OK
}

/// A SCSI command to submit.
struct Io {
    addr: u64,
    uva: usize,
    h: mfi::Header,
    lun: u64,
    cdb: [u8; mfi::MAX_CDB],
    dir: Dir,
    data_len: u32,
    sense: u64,
    /// The CTRL_CACHE_FLUSH an internal command belongs to.
    parent: Option<u16>,
}

/// The LUN `lun` of the endpoint's TPG.
fn lun_info(ep: &Endpoint, lun: u64) -> Option<sys::tcm_virt_lun_info> {
    let mut i = sys::tcm_virt_lun_info::default();
    // SAFETY: the TPG is pinned by the binding; `i` is ours.
    (unsafe { sys::tcm_virt_tpg_lun(ep.tpg.se_tpg(), lun, &mut i) } == 0).then_some(i)
}

/// Maps the data of `io` and submits it to target core.
///
/// # Safety
///
/// On the owner's worker with the virtqueue mutex held.
#[allow(clippy::too_many_arguments)]
unsafe fn submit(
    q: &Queue,
    a: &Adapter,
    ep: &Endpoint,
    mem: &Mem,
    st: &mut State,
    io: &Io,
    sgl: &mfi::Sgl<'_>,
    run: &mut Run,
) {
    let fail = |st: &mut State, run: &mut Run, s: u8| match io.parent {
        Some(p) => st.child_done(a, p, s, run),
        None => answer(
            a,
            st,
            io.uva,
            io.h.context,
            io.h.polled(),
            Completion::status(s),
            run,
        ),
    };
    let sense_uva = if io.h.sense_len == 0 {
        0
    } else {
        let room = u64::from(io.h.sense_len).min(mfi::MAX_SENSE as u64);
        match mem.xlate(io.sense, room) {
            Some(u) => u,
            None => return fail(st, run, stat::INVALID_PARAMETER),
        }
    };
    let Some(slot) = st.free.pop() else {
        if let Some(p) = io.parent {
            return st.child_done(a, p, stat::SCSI_IO_FAILED, run);
        }
        let c = Completion {
            cmd_status: stat::SCSI_DONE_WITH_ERROR,
            scsi_status: sys::sam_status_SAM_STAT_BUSY as u8,
            sense_len: 0,
        };
        return answer(a, st, io.uva, io.h.context, io.h.polled(), c, run);
    };
    // Data iovecs: the SGL cut to the data length.
    st.iov.clear();
    let mut left = u64::from(io.data_len);
    if io.dir != Dir::None {
        for (addr, len) in sgl.iter() {
            if left == 0 {
                break;
            }
            let n = u64::from(len).min(left);
            if mem.xlate_iov(addr, n, &mut st.iov).is_none() {
                st.free.push_within_capacity(slot).ok();
                return fail(st, run, stat::INVALID_PARAMETER);
            }
            left -= n;
        }
    }
    let cmd = &mut st.cmds[usize::from(slot)];
    if io.dir != Dir::None && io.data_len != 0 {
        let mut it = MaybeUninit::<sys::iov_iter>::zeroed();
        let it = it.as_mut_ptr();
        let d = if io.dir == Dir::In {
            sys::ITER_DEST
        } else {
            sys::ITER_SOURCE
        };
        // SAFETY: the iovecs describe the owner's memory; we run on its
        // worker.
        let r = unsafe {
            sys::iov_iter_init(
                it,
                d,
                st.iov.as_ptr(),
                st.iov.len() as c_ulong,
                io.data_len as usize,
            );
            cmd.data.map(&mut *it)
        };
        if let Err(e) = r {
            st.free.push_within_capacity(slot).ok();
            let s = match e {
                MapError::NoMem => stat::MEMORY_NOT_AVAILABLE,
                MapError::TooManyPages | MapError::Fault => stat::INVALID_PARAMETER,
            };
            return fail(st, run, s);
        }
    }
    cmd.q = q;
    cmd.used = if io.parent.is_some() {
        Use::Sync
    } else {
        Use::Scsi
    };
    cmd.parent = io.parent.unwrap_or(NO_SLOT);
    cmd.uva = io.uva;
    cmd.context = io.h.context;
    cmd.polled = io.h.polled();
    cmd.sense_uva = sense_uva;
    cmd.sense_room = if sense_uva == 0 { 0 } else { io.h.sense_len };
    cmd.dir = io.dir;
    cmd.data_len = io.data_len;
    cmd.lun = io.lun;
    cmd.cdb = io.cdb;
    let dma = match io.dir {
        Dir::None => DMA_NONE,
        Dir::Out => DMA_TO_DEVICE,
        Dir::In => DMA_FROM_DEVICE,
    };
    let se = cmd.head.se_cmd.get();
    // SAFETY: the slot is free: target core released it (or never had it).
    unsafe {
        ptr::write_bytes(se, 0, 1);
        (*se).tag = u64::from(slot);
    }
    // SAFETY: `se` is zeroed and ours; the session is pinned by the
    // binding; the sense buffer lives in the command.
    let r = unsafe {
        sys::target_init_cmd(
            se,
            ep.sess,
            cmd.sense.get().cast(),
            io.lun,
            io.data_len,
            sys::TCM_SIMPLE_TAG as i32,
            dma,
            sys::target_sc_flags_table_TARGET_SCF_ACK_KREF as i32,
        )
    };
    if r != 0 {
        // SAFETY: nothing of the command reached target core.
        unsafe { cmd.data.release() };
        cmd.used = Use::Free;
        st.free.push_within_capacity(slot).ok();
        return fail(st, run, stat::SCSI_IO_FAILED);
    }
    if io.parent.is_none() {
        st.index().insert(io.addr, slot);
    }
    a.inflight.fetch_add(1, Ordering::Relaxed);
    st.table
        .start(usize::from(slot), ep.sess, io.lun, u64::from(slot));
    let cmd = &mut st.cmds[usize::from(slot)];
    // SAFETY: initialised by target_init_cmd; the CDB and scatterlist live
    // in the command until target core releases it.  On failure target
    // core completes the command itself (CHECK CONDITION via queue_status).
    unsafe {
        if sys::target_submit_prep(
            se,
            cmd.cdb.as_mut_ptr(),
            cmd.data.sgl(),
            cmd.data.nents,
            ptr::null_mut(),
            0,
            ptr::null_mut(),
            0,
            sys::GFP_KERNEL,
        ) == 0
        {
            sys::target_submit(se);
        }
    }
}

/// Target core released a command: queue its answer on the worker.
///
/// # Safety
///
/// `se_cmd` must be a megasas command this module submitted, released
/// once.
pub(crate) unsafe fn release_cmd(se_cmd: *mut sys::se_cmd) {
    let cmd = se_cmd.cast::<MCmd>();
    // SAFETY: per the invariant of `MCmd`; the state outlives every
    // submitted command (the endpoint drains before freeing it).
    let q = unsafe { &*(*cmd).q };
    // SAFETY: the command is ours again; only its link is written.
    unsafe { chardev::push(&q.done, cmd, |c| &raw mut (*c).next) };
    // SAFETY: the work is initialised and belongs to this virtqueue.
    if !unsafe { sys::vhost_vq_work_queue(q.raw(), q.completion_work.get()) } {
        // No worker (the owner is gone): release without answering.
        let mut c = q.done.swap(ptr::null_mut(), Ordering::Acquire);
        while !c.is_null() {
            // SAFETY: each command on the stack is released and ours.
            unsafe {
                let next = (*c).next;
                (*c).data.release();
                c = next;
            }
            q.adapter().put_inflight();
        }
    }
}

/// The completion work: answers the released commands.
///
/// # Safety
///
/// Called by the vhost worker with the `completion_work` of a `Queue`.
unsafe extern "C" fn complete_work(work: *mut sys::vhost_work) {
    // SAFETY: `work` is the completion work embedded in a `Queue`.
    let q = unsafe {
        &*kernel::container_of!(
            work.cast::<Opaque<sys::vhost_work>>(),
            Queue,
            completion_work
        )
    };
    let a = q.adapter();
    let mut c = q.done.swap(ptr::null_mut(), Ordering::Acquire);
    let mut j = q.tmf_done.swap(ptr::null_mut(), Ordering::Acquire);
    if c.is_null() && j.is_null() {
        return;
    }
    let mut g = q.lock();
    let mut run = Run { signal: false };
    while !c.is_null() {
        // SAFETY: each command on the stack was released by target core and
        // belongs to the state's pool, alive while commands are in flight.
        let cmd = unsafe { &mut *c };
        c = cmd.next;
        let se = cmd.head.se_cmd.get();
        // SAFETY: target core is done with the command; its fields are
        // final.
        let (status, sense_len, resid, flags, aborted) = unsafe {
            (
                (*se).scsi_status,
                usize::from((*se).scsi_sense_length),
                (*se).residual_count,
                (*se).se_cmd_flags,
                (*se).transport_state & sys::CMD_T_ABORTED != 0,
            )
        };
        // SAFETY: target core released the command.
        unsafe { cmd.data.release() };
        let slot = cmd.slot;
        let Some(st) = g.state().as_mut() else {
            a.put_inflight();
            continue;
        };
        st.table.finish(usize::from(slot));
        let cmd = &st.cmds[usize::from(slot)];
        let comp = if aborted && status != sys::sam_status_SAM_STAT_TASK_ABORTED as u8 {
            // Aborted by task management without a status (no TAS): as
            // firmware answers a cancelled command.
            Completion::status(stat::SCSI_IO_FAILED)
        } else {
            Completion::scsi(status, sense_len, cmd.sense_room)
        };
        let (uva, context, polled) = (cmd.uva, cmd.context, cmd.polled);
        if cmd.used == Use::Sync {
            let parent = cmd.parent;
            st.put_slot(slot);
            st.child_done(a, parent, comp.cmd_status, &mut run);
            a.put_inflight();
            continue;
        }
        if comp.sense_len != 0 {
            // SAFETY: the sense buffer is ours and target core is done.
            let sense = unsafe { &*cmd.sense.get() };
            if write_user(cmd.sense_uva, &sense[..usize::from(comp.sense_len)]).is_err() {
                a.error("sense buffer not writable");
            }
        }
        if flags & sys::se_cmd_flags_table_SCF_UNDERFLOW_BIT != 0 && cmd.dir == Dir::In {
            // Underrun: the frame's data length becomes what was moved.
            let moved = cmd.data_len.saturating_sub(resid);
            if write_user(uva + off::DATA_XFER_LEN, &moved.to_le_bytes()).is_err() {
                a.error("frame not writable");
            }
        }
        st.put_slot(slot);
        answer(a, st, uva, context, polled, comp, &mut run);
        a.put_inflight();
    }
    // Task management answers, after those of the commands they aborted.
    while !j.is_null() {
        // SAFETY: each job on the stack came from KBox::into_raw.
        let job = unsafe { KBox::from_raw(j) };
        j = job.next;
        if let Some(st) = g.state().as_mut() {
            let c = Completion::status(job.status);
            answer(a, st, job.uva, job.context, job.polled, c, &mut run);
        }
        a.put_inflight();
    }
    drop(g);
    signal(q, &run);
}

/// A task management function requested by a frame.
struct Tmf {
    function: Function,
    lun: u64,
    tag: u64,
}

/// A frame's task management function being carried out.
#[pin_data]
struct TmfJob {
    #[pin]
    work: Work<TmfJob>,
    q: *const Queue,
    tmf: Tmf,
    sess: *mut sys::se_session,
    inflight: Arc<nexus::Inflight>,
    /// The frame to answer.
    uva: usize,
    context: u64,
    polled: bool,
    /// The MFI status, once known.
    status: u8,
    next: *mut TmfJob,
}

// SAFETY: the raw pointers refer to the adapter and the session, which
// outlive the job (it is counted in flight, and the endpoint drains before
// it unbinds); the rest is plain data.
unsafe impl Send for TmfJob {}
// SAFETY: as above; a job is only touched by one thread at a time.
unsafe impl Sync for TmfJob {}

impl_has_work! {
    impl HasWork<Self> for TmfJob { self.work }
}

impl WorkItem for TmfJob {
    type Pointer = Pin<KBox<TmfJob>>;

    fn run(this: Pin<KBox<TmfJob>>) {
        let outcome = nexus::execute(
            this.sess,
            this.tmf.function,
            this.tmf.lun,
            this.tmf.tag,
            &this.inflight,
        );
        // SAFETY: only `work` is structurally pinned, and it is done
        // running; the job is handed on whole.
        let job = KBox::into_raw(unsafe { Pin::into_inner_unchecked(this) });
        // SAFETY: `job` is valid and ours; the queue outlives it.
        let q = unsafe {
            (*job).status = mfi::tmf_status(outcome);
            &*(*job).q
        };
        // The aborted commands were released before target core completed
        // the TMF; their answers go first.
        // SAFETY: the adapter is alive while the job is counted in flight.
        unsafe { sys::vhost_dev_flush(q.adapter().raw()) };
        // SAFETY: the job is ours until it is on the stack.
        unsafe { chardev::push(&q.tmf_done, job, |j| &raw mut (*j).next) };
        // SAFETY: the work is initialised and belongs to this virtqueue.
        if !unsafe { sys::vhost_vq_work_queue(q.raw(), q.completion_work.get()) } {
            let mut j = q.tmf_done.swap(ptr::null_mut(), Ordering::Acquire);
            while !j.is_null() {
                // SAFETY: each job on the stack came from KBox::into_raw.
                let b = unsafe { KBox::from_raw(j) };
                j = b.next;
                drop(b);
                q.adapter().put_inflight();
            }
        }
    }
}

/// Starts `tmf` for the frame at `uva` in a work item (a TMF waits for the
/// commands it aborts, whose answers need this worker).
fn start_tmf(
    q: &Queue,
    a: &Adapter,
    ep: &Endpoint,
    uva: usize,
    h: &mfi::Header,
    tmf: Tmf,
) -> Result {
    let job = KBox::pin_init(
        pin_init!(TmfJob {
            work <- kernel::new_work!("tcm_virt::megasas::TmfJob::work"),
            q,
            tmf,
            sess: ep.sess,
            inflight: ep.inflight.clone(),
            uva,
            context: h.context,
            polled: h.polled(),
            status: 0,
            next: ptr::null_mut(),
        }),
        GFP_KERNEL,
    )?;
    a.inflight.fetch_add(1, Ordering::Relaxed);
    workqueue::system_unbound().enqueue(job);
    Ok(())
}

/// Copies `bytes` into the buffer the SGL describes; returns the bytes
/// written.
fn put_data(mem: &Mem, sgl: &mfi::Sgl<'_>, bytes: &[u8]) -> Option<usize> {
    let mut done = 0usize;
    for (addr, len) in sgl.iter() {
        if done == bytes.len() {
            break;
        }
        let n = (len as usize).min(bytes.len() - done);
        let uva = mem.xlate(addr, n as u64)?;
        write_user(uva, &bytes[done..done + n]).ok()?;
        done += n;
    }
    Some(done)
}

/// The TPG's LUNs as the personality shows them.
fn drives(ep: &Endpoint, st: &mut State) -> usize {
    st.luns.clear();
    if st.luns.reserve(MAX_LUNS, GFP_KERNEL).is_err() {
        return 0;
    }
    // SAFETY: the TPG is pinned; the vector has room for MAX_LUNS entries.
    let n =
        unsafe { sys::tcm_virt_tpg_luns(ep.tpg.se_tpg(), st.luns.as_mut_ptr(), MAX_LUNS as c_int) };
    // SAFETY: the helper initialised `n` entries.
    unsafe { st.luns.inc_len(n.max(0) as usize) };
    // Insertion sort by LUN (at most MAX_LUNS entries, nearly sorted: the
    // TPG keeps its LUNs in link order).
    for i in 1..st.luns.len() {
        let mut j = i;
        while j > 0 && st.luns[j - 1].lun > st.luns[j].lun {
            st.luns.swap(j - 1, j);
            j -= 1;
        }
    }
    let limit = match ep.personality {
        Personality::Raid => mfi::MAX_LD,
        Personality::Jbod => mfi::MAX_PD,
    };
    st.luns.retain(|l| l.lun < u64::from(limit));
    st.luns.len()
}

fn drive_of(l: &sys::tcm_virt_lun_info) -> Drive {
    Drive {
        id: l.lun as u16,
        dev_type: l.dev_type,
        blocks512: l.blocks.saturating_mul(u64::from(l.block_size)) / 512,
    }
}

/// Serves a DCMD other than CTRL_EVENT_WAIT; returns its status.
fn serve_dcmd(
    ep: &Endpoint,
    mem: &Mem,
    st: &mut State,
    opcode: u32,
    mbox: &[u8; mfi::MBOX_SIZE],
    data_len: u32,
    sgl: &mfi::Sgl<'_>,
) -> u8 {
    let room = (data_len as usize).min(mfi::DCMD_BUF_SIZE);
    // Fixed-size answers need the whole structure (except CTRL_GET_INFO,
    // where QEMU's 2048-byte view is accepted too).
    let need = |n: usize| room >= n;
    let mut list = [Drive {
        id: 0,
        dev_type: 0,
        blocks512: 0,
    }; 64];
    let n;
    let len = match opcode {
        dcmd::CTRL_GET_INFO => {
            if !need(2048) {
                return stat::INVALID_PARAMETER;
            }
            let nd = drives(ep, st);
            let (lds, pds) = match ep.personality {
                Personality::Raid => (nd as u16, 0),
                Personality::Jbod => (0, nd as u16),
            };
            let b: &mut [u8; mfi::CTRL_INFO_SIZE] =
                match (&mut st.buf[..mfi::CTRL_INFO_SIZE]).try_into() {
                    Ok(b) => b,
                    Err(_) => return stat::INVALID_PARAMETER,
                };
            b.fill(0);
            mfi::ctrl_info(
                b,
                &mfi::CtrlParams {
                    personality: ep.personality,
                    lds,
                    pds,
                    serial: &ep.wwpn[..ep.wwpn.iter().position(|&c| c == 0).unwrap_or(0)],
                },
            );
            mfi::CTRL_INFO_SIZE.min(room)
        }
        dcmd::CTRL_GET_PROPERTIES => {
            if !need(mfi::CTRL_PROP_SIZE) {
                return stat::INVALID_PARAMETER;
            }
            st.buf[..mfi::CTRL_PROP_SIZE].fill(0);
            mfi::CTRL_PROP_SIZE
        }
        dcmd::CTRL_EVENT_GET_INFO => {
            if !need(mfi::EVT_LOG_INFO_SIZE) {
                return stat::INVALID_PARAMETER;
            }
            let info = EvtLogInfo {
                newest: st.next_seq.wrapping_sub(1),
                oldest: st.log.first().map_or(st.next_seq, |e| e.seq),
                clear: 0,
                shutdown: st.shutdown_seq,
                boot: st.boot_seq,
            };
            let b: &mut [u8; mfi::EVT_LOG_INFO_SIZE] =
                match (&mut st.buf[..mfi::EVT_LOG_INFO_SIZE]).try_into() {
                    Ok(b) => b,
                    Err(_) => return stat::INVALID_PARAMETER,
                };
            mfi::evt_log_info(b, &info);
            mfi::EVT_LOG_INFO_SIZE
        }
        dcmd::CTRL_EVENT_GET => {
            // The event at mbox w[0] (and later ones that fit, as a list).
            if !need(mfi::EVT_DETAIL_SIZE) {
                return stat::INVALID_PARAMETER;
            }
            let seq = u32::from_le_bytes([mbox[0], mbox[1], mbox[2], mbox[3]]);
            let filter = u32::from_le_bytes([mbox[4], mbox[5], mbox[6], mbox[7]]);
            let Some(e) = st
                .log
                .iter()
                .find(|e| e.seq >= seq && e.matches(filter))
                .copied()
            else {
                return stat::NOT_FOUND;
            };
            let b: &mut [u8; mfi::EVT_DETAIL_SIZE] =
                match (&mut st.buf[..mfi::EVT_DETAIL_SIZE]).try_into() {
                    Ok(b) => b,
                    Err(_) => return stat::INVALID_PARAMETER,
                };
            e.encode(b);
            mfi::EVT_DETAIL_SIZE
        }
        dcmd::CTRL_SHUTDOWN | dcmd::HIBERNATE_SHUTDOWN => {
            st.shutdown_seq = st.next_seq;
            0
        }
        dcmd::CTRL_SET_PROPERTIES => 0,
        dcmd::PD_GET_LIST | dcmd::PD_LIST_QUERY => {
            n = if ep.personality == Personality::Jbod {
                drives(ep, st)
            } else {
                0
            };
            let mut all = KVec::new();
            for l in st.luns.iter().take(n) {
                if all.push(drive_of(l), GFP_KERNEL).is_err() {
                    return stat::MEMORY_NOT_AVAILABLE;
                }
            }
            mfi::pd_list(&mut st.buf[..room], &all)
        }
        dcmd::PD_GET_INFO => {
            if !need(mfi::PD_INFO_SIZE) {
                return stat::INVALID_PARAMETER;
            }
            let id = u16::from_le_bytes([mbox[0], mbox[1]]);
            if ep.personality != Personality::Jbod || u32::from(id) >= mfi::MAX_PD {
                return stat::DEVICE_NOT_FOUND;
            }
            let Some(l) = lun_info(ep, u64::from(id)) else {
                return stat::DEVICE_NOT_FOUND;
            };
            let b: &mut [u8; mfi::PD_INFO_SIZE] =
                match (&mut st.buf[..mfi::PD_INFO_SIZE]).try_into() {
                    Ok(b) => b,
                    Err(_) => return stat::INVALID_PARAMETER,
                };
            mfi::pd_info(b, &drive_of(&l));
            mfi::PD_INFO_SIZE
        }
        dcmd::LD_GET_LIST | dcmd::LD_LIST_QUERY => {
            n = if ep.personality == Personality::Raid {
                drives(ep, st)
            } else {
                0
            };
            for (d, l) in list.iter_mut().zip(st.luns.iter().take(n)) {
                *d = drive_of(l);
            }
            let ds = &list[..n.min(list.len())];
            if opcode == dcmd::LD_GET_LIST {
                mfi::ld_list(&mut st.buf[..room], ds)
            } else {
                mfi::ld_targetid_list(&mut st.buf[..room], ds)
            }
        }
        dcmd::LD_GET_PROPERTIES => 0,
        _ => return stat::INVALID_DCMD,
    };
    match put_data(mem, sgl, &st.buf[..len]) {
        Some(_) => stat::OK,
        None => stat::MEMORY_NOT_AVAILABLE,
    }
}

/// CTRL_CACHE_FLUSH: a SYNCHRONIZE CACHE to every drive of the
/// personality; the frame is answered when all have completed
/// (`SCSI_IO_FAILED` if one failed).
///
/// # Safety
///
/// On the owner's worker with the virtqueue mutex held.
#[allow(clippy::too_many_arguments)]
unsafe fn cache_flush(
    q: &Queue,
    a: &Adapter,
    ep: &Endpoint,
    mem: &Mem,
    st: &mut State,
    addr: u64,
    uva: usize,
    h: &mfi::Header,
    run: &mut Run,
) {
    let Some(parent) = st.free.pop() else {
        let c = Completion {
            cmd_status: stat::SCSI_DONE_WITH_ERROR,
            scsi_status: sys::sam_status_SAM_STAT_BUSY as u8,
            sense_len: 0,
        };
        return answer(a, st, uva, h.context, h.polled(), c, run);
    };
    let p = &mut st.cmds[usize::from(parent)];
    p.used = Use::Flush;
    p.uva = uva;
    p.context = h.context;
    p.polled = h.polled();
    p.flush_status = stat::OK;
    // One count held while the commands are sent, dropped at the end.
    p.pending = 1;
    st.index().insert(addr, parent);
    let n = drives(ep, st);
    let mut luns = [0u64; 16];
    let mut i = 0;
    while i < n {
        // In batches: `drives` reuses the LUN list.
        let k = (n - i).min(luns.len());
        for (j, l) in luns.iter_mut().enumerate().take(k) {
            *l = st.luns[i + j].lun;
        }
        for &lun in &luns[..k] {
            let io = Io {
                addr: 0,
                uva: 0,
                // No sense buffer: the DCMD frame has none.
                h: mfi::Header { sense_len: 0, ..*h },
                lun,
                cdb: [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                dir: Dir::None,
                data_len: 0,
                sense: 0,
                parent: Some(parent),
            };
            st.cmds[usize::from(parent)].pending += 1;
            let none = mfi::Sgl::parse(&[], 0, 0, 0);
            if let Ok(sgl) = none {
                // SAFETY: per the function's contract.
                unsafe { submit(q, a, ep, mem, st, &io, &sgl, run) };
            }
        }
        i += k;
        if i < n {
            drives(ep, st);
        }
    }
    st.child_done(a, parent, stat::OK, run);
}

/// CTRL_EVENT_WAIT: parks the frame until an event at or after the wanted
/// sequence number passes its filter.  One may wait at a time: a second
/// one replaces the first, which completes with no event.
#[allow(clippy::too_many_arguments)]
fn event_wait(
    q: &Queue,
    a: &Adapter,
    mem: &Mem,
    st: &mut State,
    addr: u64,
    uva: usize,
    h: &mfi::Header,
    mbox: [u8; mfi::MBOX_SIZE],
    sgl: mfi::Sgl<'_>,
    run: &mut Run,
) {
    if sgl.total < mfi::EVT_DETAIL_SIZE as u64 || sgl.len() != 1 {
        return answer(
            a,
            st,
            uva,
            h.context,
            h.polled(),
            Completion::status(stat::INVALID_PARAMETER),
            run,
        );
    }
    let Some((baddr, blen)) = sgl.iter().next() else {
        return;
    };
    if mem.xlate(baddr, mfi::EVT_DETAIL_SIZE as u64).is_none() {
        return answer(
            a,
            st,
            uva,
            h.context,
            h.polled(),
            Completion::status(stat::MEMORY_NOT_AVAILABLE),
            run,
        );
    }
    st.finish_aen(q, stat::OK, Some(run));
    let Some(slot) = st.free.pop() else {
        let c = Completion {
            cmd_status: stat::SCSI_DONE_WITH_ERROR,
            scsi_status: sys::sam_status_SAM_STAT_BUSY as u8,
            sense_len: 0,
        };
        return answer(a, st, uva, h.context, h.polled(), c, run);
    };
    let cmd = &mut st.cmds[usize::from(slot)];
    cmd.used = Use::Aen;
    cmd.uva = uva;
    cmd.context = h.context;
    cmd.polled = h.polled();
    cmd.aen_seq = u32::from_le_bytes([mbox[0], mbox[1], mbox[2], mbox[3]]);
    cmd.aen_filter = u32::from_le_bytes([mbox[4], mbox[5], mbox[6], mbox[7]]);
    cmd.aen_buf = [(baddr, blen)];
    st.index().insert(addr, slot);
    st.aen = Some(slot);
    deliver_events(q, a, mem, st, run);
}

impl State {
    /// One command of the CTRL_CACHE_FLUSH in `parent` ended with `status`;
    /// the last one answers the frame.
    fn child_done(&mut self, a: &Adapter, parent: u16, status: u8, run: &mut Run) {
        let Some(p) = self.cmds.get_mut(usize::from(parent)) else {
            return;
        };
        if status != stat::OK && p.flush_status == stat::OK {
            p.flush_status = stat::SCSI_IO_FAILED;
        }
        p.pending = p.pending.saturating_sub(1);
        if p.pending != 0 {
            return;
        }
        let (uva, ctx, polled, s) = (p.uva, p.context, p.polled, p.flush_status);
        self.put_slot(parent);
        answer(a, self, uva, ctx, polled, Completion::status(s), run);
    }

    /// Completes the pending CTRL_EVENT_WAIT, if any, with `status` and no
    /// event.
    fn finish_aen(&mut self, q: &Queue, status: u8, run: Option<&mut Run>) {
        let Some(slot) = self.aen.take() else {
            return;
        };
        let cmd = &self.cmds[usize::from(slot)];
        let (uva, ctx, polled) = (cmd.uva, cmd.context, cmd.polled);
        self.put_slot(slot);
        let mut own = Run { signal: false };
        let r = match run {
            Some(r) => r,
            None => &mut own,
        };
        answer(
            q.adapter(),
            self,
            uva,
            ctx,
            polled,
            Completion::status(status),
            r,
        );
        if own.signal {
            signal(q, &own);
        }
    }
}

/// Completes the pending CTRL_EVENT_WAIT with the first logged event it
/// waits for.
fn deliver_events(q: &Queue, a: &Adapter, mem: &Mem, st: &mut State, run: &mut Run) {
    let Some(slot) = st.aen else {
        return;
    };
    let cmd = &st.cmds[usize::from(slot)];
    let (seq, filter) = (cmd.aen_seq, cmd.aen_filter);
    let Some(e) = st
        .log
        .iter()
        .find(|e| e.seq >= seq && e.matches(filter))
        .copied()
    else {
        return;
    };
    let mut b = [0u8; mfi::EVT_DETAIL_SIZE];
    e.encode(&mut b);
    let (baddr, _) = cmd.aen_buf[0];
    let s = match mem.xlate(baddr, b.len() as u64) {
        Some(u) if write_user(u, &b).is_ok() => stat::OK,
        _ => stat::MEMORY_NOT_AVAILABLE,
    };
    let _ = q;
    let cmd = &st.cmds[usize::from(slot)];
    let (uva, ctx, polled) = (cmd.uva, cmd.context, cmd.polled);
    st.aen = None;
    st.put_slot(slot);
    answer(a, st, uva, ctx, polled, Completion::status(s), run);
}

/// `MFI_CMD_ABORT`: by frame address, checked against the context.
fn abort(q: &Queue, _a: &Adapter, st: &mut State, context: u64, addr: u64, run: &mut Run) -> u8 {
    let Some(slot) = st.index().find(addr) else {
        // Nothing in flight there (already answered): nothing to do.
        return stat::OK;
    };
    let cmd = &st.cmds[usize::from(slot)];
    let ctx64 = st.queue.is_some_and(|r| r.info.context64);
    let mask = if ctx64 { u64::MAX } else { u64::from(u32::MAX) };
    if cmd.context & mask != context & mask {
        return stat::ABORT_NOT_POSSIBLE;
    }
    match cmd.used {
        Use::Aen => {
            st.finish_aen(q, stat::OK, Some(run));
            stat::OK
        }
        // Not in flight (cannot happen: free slots are not indexed).
        Use::Free => stat::OK,
        // A CTRL_CACHE_FLUSH runs to its end.
        Use::Flush | Use::Sync => stat::ABORT_NOT_POSSIBLE,
        // A SCSI command in target core: ABORT TASK through the shared
        // layer, answered once it is done (`None`).
        Use::Scsi => u8::MAX,
    }
}

/// The event notification of the endpoint's event queue.
///
/// # Safety
///
/// `ctx` must be the adapter's `Queue`.
unsafe fn notify_events(ctx: *const c_void) {
    let q = ctx.cast::<Queue>();
    // SAFETY: per the function's contract; the queue outlives the binding.
    unsafe { sys::vhost_vq_work_queue((*q).raw(), (*q).event_work.get()) };
}

/// The event work: turns LUN events into MFI events and completes the
/// pending CTRL_EVENT_WAIT.
///
/// # Safety
///
/// Called by the vhost worker with the `event_work` of a `Queue`.
unsafe extern "C" fn event_work(work: *mut sys::vhost_work) {
    // SAFETY: `work` is the event work embedded in a `Queue`.
    let q = unsafe {
        &*kernel::container_of!(work.cast::<Opaque<sys::vhost_work>>(), Queue, event_work)
    };
    let a = q.adapter();
    let mut g = q.lock();
    let Some(ep) = g.backend() else {
        return;
    };
    let ep: *const Endpoint = ep;
    // SAFETY: the endpoint stays installed while the mutex is held.
    let ep = unsafe { &*ep };
    let mem = q.mem();
    let Some(st) = g.state().as_mut() else {
        return;
    };
    while let Some(e) = ep.events.front() {
        ep.events.pop();
        let raid = ep.personality == Personality::Raid;
        let limit = if raid { mfi::MAX_LD } else { mfi::MAX_PD };
        if e.lun >= u64::from(limit) {
            continue;
        }
        let code = match (e.kind, raid) {
            (nexus::EventKind::LunAdded, true) => mfi::evt::LD_CREATED,
            (nexus::EventKind::LunRemoved, true) => mfi::evt::LD_DELETED,
            (nexus::EventKind::LunAdded, false) => mfi::evt::PD_INSERTED,
            (nexus::EventKind::LunRemoved, false) => mfi::evt::PD_REMOVED,
        };
        if st.log.len() == EVENT_LOG {
            let _ = st.log.remove(0);
        }
        let d = EvtDetail {
            seq: st.next_seq,
            time: 0,
            code,
            id: e.lun as u16,
        };
        st.next_seq = st.next_seq.wrapping_add(1);
        st.log.push_within_capacity(d).ok();
    }
    ep.events.take_overflow();
    let mut run = Run { signal: false };
    deliver_events(q, a, &mem, st, &mut run);
    drop(g);
    signal(q, &run);
}
