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
    bindings as sys,
    fabric::{self, CmdHead, Offloads},
    glue::{
        pages::Sgl,
        ratelimit::RateLimit,
        shared_page::SharedPage,
        stack::{impl_link, Stack},
        trace::{self, Refusal, Stamp},
        vhost::{put_inflight, Dev, Handler, OnWorker, RawVq, VqLock, Work},
    },
    nexus::{
        self,
        stats::{self, Counter, EventStats, IoSnapshot, IoStats, PollStats, TmfStats},
        DoneQueue, WorkerQueue,
    },
    wire::mfi::{self, Dir, EvtDetail, FrameIndex, Personality, QueueInfo, NO_SLOT},
};
use core::{
    fmt,
    mem::{offset_of, size_of},
    ptr,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};
use kernel::{
    ffi::c_int,
    mm::virt::VmaNew,
    prelude::*,
    sync::Arc,
    types::Opaque,
    uaccess::{UserPtr, UserSlice},
};

mod io;
mod mgmt;
mod reply;
mod tmf;

use io::{complete_work, handle_kick};
use mgmt::{aen_work, event_work};
use reply::{answer, field, flush_deferred, read_user, signal, write_user, Mem, Run};
use tmf::TmfJob;

// The uAPI, `include/uapi/linux/tcm_megasas.h`, as bindgen generates it:
// the ioctl numbers, the endpoint and the register page's layout.
const GET_ABI_VERSION: u32 = sys::TCM_VIRT_MEGASAS_GET_ABI_VERSION;
const SET_ENDPOINT: u32 = sys::TCM_VIRT_MEGASAS_SET_ENDPOINT;
const CLEAR_ENDPOINT: u32 = sys::TCM_VIRT_MEGASAS_CLEAR_ENDPOINT;
const DOORBELL: u32 = sys::TCM_VIRT_MEGASAS_DOORBELL;
const RESET: u32 = sys::TCM_VIRT_MEGASAS_RESET;
const ABI_VERSION: u32 = sys::TCM_MEGASAS_ABI_VERSION;

/// `struct tcm_megasas_endpoint`: the WWPN is its first field, the TPG tag
/// follows it.
const WWPN_SIZE: usize = offset_of!(sys::tcm_megasas_endpoint, tpgt);
const _: () = assert!(offset_of!(sys::tcm_megasas_endpoint, wwpn) == 0);
const EP_JBOD: u32 = sys::TCM_MEGASAS_EP_JBOD;

/// `struct tcm_megasas_regs`, mapped into the process: accessed by offset,
/// each field atomically (the process writes it at any time).
// CAST: u32 to usize, lossless on the 64-bit hosts the module builds for.
const REGS_SIZE: usize = sys::TCM_MEGASAS_REGS_SIZE as usize;
const _: () = assert!(size_of::<sys::tcm_megasas_regs>() <= REGS_SIZE);
const IQ_ENTRIES: u32 = sys::TCM_MEGASAS_IQ_ENTRIES;
const R_FW_STATUS: usize = offset_of!(sys::tcm_megasas_regs, fw_status);
const R_ABI: usize = offset_of!(sys::tcm_megasas_regs, abi_version);
const R_IQ_ENTRIES: usize = offset_of!(sys::tcm_megasas_regs, iq_entries);
const R_IQ_PRODUCER: usize = offset_of!(sys::tcm_megasas_regs, iq_producer);
const R_IQ_CONSUMER: usize = offset_of!(sys::tcm_megasas_regs, iq_consumer);
const R_REPLIES: usize = offset_of!(sys::tcm_megasas_regs, replies);
const R_ERRORS: usize = offset_of!(sys::tcm_megasas_regs, errors);
const R_IQ_NO_KICK: usize = offset_of!(sys::tcm_megasas_regs, iq_no_kick);
const R_IQ: usize = offset_of!(sys::tcm_megasas_regs, iq);
// The ABI as released (ABI version 1): the header must not move these.
const _: () = assert!(GET_ABI_VERSION == 0x8004_afa0 && SET_ENDPOINT == 0x4100_afa1);
const _: () = assert!(CLEAR_ENDPOINT == 0x4100_afa2 && DOORBELL == 0xafa3 && RESET == 0xafa4);
const _: () = assert!(WWPN_SIZE == 224 && R_IQ_PRODUCER == 12 && R_ERRORS == 24 && R_IQ == 256);
// Taken from the reserved words, which read zero on a module without it.
const _: () = assert!(R_IQ_NO_KICK == 28);

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
    // in callbacks and it converts to `*const Queue`.  The per-queue state
    // is the adapter's, created with the endpoint.
    core: RawVq<Endpoint, Option<KBox<State>>>,
    adapter: *const Adapter,
    /// Completions pushed by target core, written back by the worker.
    completion_work: Work,
    /// LUN events to turn into MFI events.
    event_work: Work,
    /// Answers a pending CTRL_EVENT_WAIT (adapter reset, unbind): user
    /// memory is written on the owner's worker only, never in the context
    /// of the process that closes or resets.
    aen_work: Work,
    /// Released commands, for the completion work.
    done: Stack<MCmd>,
    /// Task management answers ready to be written.
    tmf_done: Stack<TmfJob>,
    /// The commands waiting in the offload workqueue.
    offloads: Offloads,
}

/// The virtqueue mutex, held: the way to the endpoint and the state.
type QueueGuard<'a> = VqLock<'a, Endpoint, Option<KBox<State>>>;

impl Queue {
    fn adapter(&self) -> &Adapter {
        // SAFETY: set at open; the adapter outlives its queue.
        unsafe { &*self.adapter }
    }

    fn lock(&self) -> QueueGuard<'_> {
        self.core.lock()
    }

    /// Queues `work`, one of the queue's own; `false` without a worker.
    fn queue(&self, work: &Work) -> bool {
        self.core.queue_work(work)
    }
}

// SAFETY: the `Queue` lives as long as its adapter, whose release drains
// the adapter's in-flight count (`clear_endpoint`) before it frees the
// queue; these methods use an atomic and the vhost core's work queueing,
// which any thread may call.
unsafe impl WorkerQueue for Queue {
    fn get_inflight(&self) {
        self.adapter().inflight.fetch_add(1, Ordering::Relaxed);
    }

    fn put_inflight(&self) {
        self.adapter().put_inflight();
    }

    fn queue_completion(&self) -> bool {
        self.queue(&self.completion_work)
    }
}

// SAFETY: `RawVq::in_own_pass` is true only on the queue's worker inside a
// `VqLock::pass`, and `io::handle_kick` takes `done` right after its pass,
// under the same lock; the completion work (`io::complete_work`) takes
// `done` and drops each command's count.
unsafe impl DoneQueue for Queue {
    type Cmd = MCmd;

    fn done(&self) -> &Stack<MCmd> {
        &self.done
    }

    fn in_own_pass(&self) -> bool {
        self.core.in_own_pass()
    }

    unsafe fn drop_unanswered(&self, cmd: *mut MCmd) {
        // SAFETY: target core released the command and nothing else uses
        // it (the caller's contract), so its list is ours.
        unsafe { (*cmd).data.release() };
    }
}

/// The functions the queue's worker runs.
struct Kick;
struct Complete;
struct Event;
struct Aen;

impl Handler<Queue> for Kick {
    fn run(q: &Queue, w: &OnWorker) {
        handle_kick(q, w);
    }
}

impl Handler<Queue> for Complete {
    fn run(q: &Queue, w: &OnWorker) {
        complete_work(q, w);
    }
}

impl Handler<Queue> for Event {
    fn run(q: &Queue, w: &OnWorker) {
        event_work(q, w);
    }
}

impl Handler<Queue> for Aen {
    fn run(q: &Queue, w: &OnWorker) {
        aen_work(q, w);
    }
}

/// The TPG an adapter serves.
struct Endpoint {
    wwpn: [u8; WWPN_SIZE],
    bind: fabric::Binding,
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
    /// When it was submitted, for the trace.
    stamp: Stamp,
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

impl_link!(MCmd, next);

impl MCmd {
    /// A free slot.
    fn new(slot: u16) -> Result<MCmd> {
        Ok(MCmd {
            head: CmdHead::new(io::release_cmd),
            sense: Opaque::zeroed(),
            q: ptr::null(),
            next: ptr::null_mut(),
            slot,
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
            data: Sgl::new()?,
            stamp: Stamp::default(),
            aen_seq: 0,
            aen_filter: 0,
            aen_buf: [(0, 0)],
            pending: 0,
            flush_status: 0,
            parent: NO_SLOT,
        })
    }
}

/// The adapter's state, created with the endpoint.
struct State {
    fw_state: u32,
    queue: Option<Reply>,
    /// Inbound queue entries read (free-running).
    iq_consumer: u32,
    cmds: KVVec<MCmd>,
    free: nexus::FreeSlots,
    heads: KVec<u16>,
    next: KVec<u16>,
    keys: KVec<u64>,
    table: Arc<nexus::Table>,
    /// Replies waiting for room in the reply queue.
    deferred: KVec<u64>,
    /// Scratch: DCMD answers, iovecs, LUN list.
    buf: KVVec<u8>,
    /// The copy of the frame being served.  `io::handle_kick` takes it out
    /// for each batch of the inbound queue and puts it back: off the
    /// worker's stack, which goes on down into target core and the backend
    /// for a command submitted in the caller's context, and not cleared
    /// per pass (only the bytes read for a frame are parsed).  `None` only
    /// while taken.
    frame: Option<KBox<[u8; mfi::MAX_CMD_BYTES]>>,
    iov: KVec<sys::iovec>,
    luns: KVec<sys::tcm_virt_lun_info>,
    /// Event log (ring) and its sequence numbers.
    log: KVec<EvtDetail>,
    next_seq: u32,
    boot_seq: u32,
    shutdown_seq: u32,
    /// The slot of the pending CTRL_EVENT_WAIT.
    aen: Option<u16>,
    /// Task management frames started and not yet answered (at most
    /// `nexus::MAX_TMF`).
    tmfs: u32,
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
    /// The vhost core device; its mutex guards the endpoint.
    // INVARIANT: the first field, dropped (worker stopped) before the queue
    // and `vq_ptrs`, which vhost core's clean-up reads.
    dev: Dev<Endpoint>,
    q: KBox<Queue>,
    vq_ptrs: KVec<*mut sys::vhost_virtqueue>,
    /// The register page (vmalloc_user), mapped by the owner.
    regs: SharedPage<REGS_SIZE>,
    /// Commands submitted to target core and not yet completed.
    inflight: AtomicU32,
    /// The adapter's number (`megasas-N` in debugfs and the trace).
    id: u32,
    /// The I/O counters: written by the worker with the queue's mutex held.
    stats: IoStats,
    /// DCMD frames served, CTRL_EVENT_WAITs parked and those answered with
    /// an event (the worker, as `stats`).
    dcmds: Counter,
    aen_waits: Counter,
    aens: Counter,
    /// The worker's busy polls of the inbound queue (the worker, as
    /// `stats`).
    polls: PollStats,
    tmf_stats: TmfStats,
    event_stats: EventStats,
    /// `tcm_virt/megasas-N` in debugfs.
    // INVARIANT: removed (waiting for its readers) first thing in `drop`.
    stats_file: Option<stats::File<Adapter>>,
}

// SAFETY: the vhost core's state is protected by its own mutexes, the
// endpoint by the device mutex and the queue's state by the virtqueue
// mutex (the glue types hand them out only under their locks); `regs`,
// `inflight` and the statistics counters are only accessed with atomics;
// `adapter` back-pointers refer to the adapter itself.
unsafe impl Send for Adapter {}
// SAFETY: as for `Send`: shared references reach nothing but through locks
// and atomics.
unsafe impl Sync for Adapter {}

/// Warns about input from the owner, at most once per 5 s.
fn ratelimited(what: &str) {
    static LIMIT: RateLimit = RateLimit::new("megasas");
    LIMIT.warn(what);
}

impl Adapter {
    /// `open()`.
    pub(super) fn new() -> Result<KBox<Self>> {
        let mut q = KBox::<Queue>::new_uninit(GFP_KERNEL)?;
        let p = q.as_mut_ptr();
        // SAFETY: `p` is valid for writes of one `Queue`, not yet known to
        // vhost core, whose first field is `core` (`#[repr(C)]`); the works
        // are valid zeroed until initialised below.
        let q = unsafe {
            RawVq::write::<Queue, Kick>(&raw mut (*p).core, None);
            ptr::write_bytes(&raw mut (*p).completion_work, 0, 1);
            ptr::write_bytes(&raw mut (*p).event_work, 0, 1);
            ptr::write_bytes(&raw mut (*p).aen_work, 0, 1);
            ptr::write(&raw mut (*p).adapter, ptr::null());
            ptr::write(&raw mut (*p).done, Stack::new());
            ptr::write(&raw mut (*p).tmf_done, Stack::new());
            ptr::write(&raw mut (*p).offloads, Offloads::new());
            q.assume_init()
        };
        // Everything that can fail comes before the adapter exists: its
        // `Drop` expects an initialised vhost device.
        let qp = q.core.raw();
        let mut vq_ptrs = KVec::with_capacity(1, GFP_KERNEL)?;
        vq_ptrs.push(qp, GFP_KERNEL)?;
        let regs = SharedPage::new()?;
        let me = KBox::<Adapter>::new_uninit(GFP_KERNEL)?;
        // No allocation after this: the adapter's `Drop` expects an
        // initialised vhost device.
        let mut me = KBox::write(
            me,
            Adapter {
                // SAFETY: initialised below, before the adapter is reachable.
                dev: unsafe { Dev::new() },
                q,
                vq_ptrs,
                regs,
                inflight: AtomicU32::new(0),
                id: stats::next_id(),
                stats: IoStats::new(),
                dcmds: Counter::new(),
                aen_waits: Counter::new(),
                aens: Counter::new(),
                polls: PollStats::new(),
                tmf_stats: TmfStats::new(),
                event_stats: EventStats::new(),
                stats_file: None,
            },
        );
        me.reg32::<R_ABI>().store(ABI_VERSION, Ordering::Relaxed);
        me.reg32::<R_IQ_ENTRIES>()
            .store(IQ_ENTRIES, Ordering::Relaxed);
        me.set_fw_state(mfi::state::READY);
        let me_ptr: *const Adapter = &*me;
        me.q.adapter = me_ptr;
        let qp: *const Queue = &*me.q;
        // SAFETY: the works are zeroed and never queued yet; the queue lives
        // in the adapter, whose work is flushed before it goes.
        unsafe {
            me.q.completion_work.init::<Queue, Complete>(qp);
            me.q.event_work.init::<Queue, Event>(qp);
            me.q.aen_work.init::<Queue, Aen>(qp);
        }
        let m = &mut *me;
        // The virtqueue is a `RawVq<Endpoint, _>`, as the device's backend
        // type; `vq_ptrs` lives as long as the device (a later field).
        // SAFETY: the device and its virtqueue are zeroed but for its
        // handler, allocated and never move (boxed).
        unsafe {
            m.dev
                .init(&mut m.vq_ptrs, mfi::MAX_SGE as c_int, WEIGHT as c_int)
        };
        // SAFETY: the file is dropped first thing in `Adapter::drop`.
        me.stats_file = Some(unsafe { stats::File::new(trace::Front::Megasas, me.id, me_ptr)? });
        Ok(me)
    }

    /// The adapter, as the trace events name it.
    fn trace_id(&self) -> trace::Id {
        trace::Id {
            front: trace::Front::Megasas,
            dev: self.id,
        }
    }

    fn reg32<const OFF: usize>(&self) -> &AtomicU32 {
        self.regs.u32_at::<OFF>()
    }

    /// Inbound queue entry `i` (modulo the queue's size).
    fn iq(&self, i: u32) -> &AtomicU64 {
        self.regs
            .u64_array::<R_IQ, { IQ_ENTRIES as usize }>(i as usize)
    }

    fn set_fw_state(&self, s: u32) {
        self.reg32::<R_FW_STATUS>().store(
            mfi::status_word(s, mfi::MAX_SGE, mfi::MAX_CMDS),
            Ordering::Release,
        );
    }

    /// Bad input from the owner: counted in the register page and in the
    /// statistics (as malformed), and logged.
    fn error(&self, what: &str) {
        self.reg32::<R_ERRORS>().fetch_add(1, Ordering::Relaxed);
        self.refuse(Refusal::Malformed, 0, u8::MAX);
        ratelimited(what);
    }

    /// A frame (of context `tag`) not submitted to target core, answered
    /// with MFI status `status`.  On the worker, with the queue's mutex held.
    fn refuse(&self, why: Refusal, tag: u64, status: u8) {
        self.stats.refuse(why);
        trace::cmd_refused(self.trace_id(), 0, tag, why, status);
    }

    /// `mmap()` of the register page.
    pub(super) fn mmap(&self, vma: &VmaNew) -> Result {
        self.regs.mmap(vma)
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
                let ep: sys::tcm_megasas_endpoint =
                    UserSlice::new(user, size_of::<sys::tcm_megasas_endpoint>())
                        .reader()
                        .read()?;
                let flags = u32::from(ep.flags);
                if ep.reserved.iter().any(|&w| w != 0) || flags & !EP_JBOD != 0 {
                    return Err(EINVAL);
                }
                if cmd == SET_ENDPOINT {
                    self.set_endpoint(&ep.wwpn, ep.tpgt, flags)?;
                } else {
                    self.clear_endpoint(Some(&ep.wwpn))?;
                }
                Ok(0)
            }
            DOORBELL => {
                self.dev.lock().require_owner()?;
                self.q.core.poll_queue();
                Ok(0)
            }
            RESET => {
                self.reset()?;
                Ok(0)
            }
            // Only the kick and call eventfds of the virtqueue mean
            // something among the vring ioctls; vhost core checks the index.
            _ => self.dev.lock().core_ioctl(cmd, arg),
        }
    }

    /// `TCM_MEGASAS_SET_ENDPOINT`: binds the TPG `tpgt` of `wwpn`.
    fn set_endpoint(&self, wwpn: &[u8; WWPN_SIZE], tpgt: u16, flags: u32) -> Result {
        let mut g = self.dev.lock();
        if !g.has_owner() {
            pr_err!("megasas: VHOST_SET_OWNER first\n");
            return Err(EINVAL);
        }
        g.require_owner()?;
        if g.backend().is_some() {
            pr_err!("megasas: endpoint already set for this adapter\n");
            return Err(EEXIST);
        }
        // The memory table, as vhost core checks it for a queue that has a
        // backend: present, and every region inside the owner's address
        // space without wrapping.  Once the backend is set, vhost core
        // checks every new table the same way.
        {
            if !self.q.lock().access_ok() {
                ratelimited("SET_ENDPOINT: no memory table, or a region outside the address space");
                return Err(EFAULT);
            }
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
        // SAFETY: the queue lives as long as the adapter, and the TPG is
        // unbound before.
        let events = unsafe { nexus::Events::new(qp)? };
        let bind = fabric::Binding::new(tpg, fabric::Front::Megasas, &events).inspect_err(|e| {
            if *e == EBUSY {
                pr_err!("megasas: TPG {} is bound to another adapter\n", tpgt);
            } else if *e == ENODEV {
                pr_err!("megasas: TPG {} has no nexus or is being removed\n", tpgt);
            }
        })?;
        st.boot_seq = st.next_seq;
        // The inbound queue goes on where the register page says it is (the
        // producer index is the process's, and keeps counting across an
        // unbind).
        st.iq_consumer = self.reg32::<R_IQ_CONSUMER>().load(Ordering::Acquire);
        let ep = KBox::new(
            Endpoint {
                wwpn: *wwpn,
                bind,
                personality: if flags & EP_JBOD != 0 {
                    Personality::Jbod
                } else {
                    Personality::Raid
                },
                inflight,
                events,
            },
            GFP_KERNEL,
        )?;
        *self.q.lock().state() = Some(st);
        // No ring: the adapter's queues live in the register page.
        g.install(ep, false)
    }

    /// `TCM_MEGASAS_CLEAR_ENDPOINT` (`wwpn` given) and release (`None`):
    /// stops reading frames, waits for every command, unbinds.
    fn clear_endpoint(&self, wwpn: Option<&[u8; WWPN_SIZE]>) -> Result {
        let mut g = self.dev.lock();
        if wwpn.is_some() {
            g.require_owner()?;
        }
        let Some(ep) = g.backend() else {
            return Ok(());
        };
        if let Some(w) = wwpn {
            if w != &ep.wwpn {
                return Err(EINVAL);
            }
        }
        g.stop();
        self.drain();
        // A pending CTRL_EVENT_WAIT is the only slot left in use.
        self.cancel_aen();
        *self.q.lock().state() = None;
        // Unbinds: no command is left in the session.
        drop(g.take());
        self.dev.flush();
        self.set_fw_state(mfi::state::READY);
        Ok(())
    }

    /// `TCM_MEGASAS_RESET`: the adapter reset of the MFI interface (as the
    /// Linux driver's OCR does): waits for every command, forgets the
    /// reply queue and goes back to READY, ready for a new INIT.
    fn reset(&self) -> Result {
        let mut dg = self.dev.lock();
        dg.require_owner()?;
        dg.stop();
        self.drain();
        self.cancel_aen();
        let mut g = self.q.lock();
        if let Some(st) = g.state().as_mut() {
            // Drained: every task management frame was answered.
            st.tmfs = 0;
            st.queue = None;
            st.deferred.clear();
            st.fw_state = mfi::state::READY;
            st.shutdown_seq = st.next_seq;
            st.boot_seq = st.next_seq;
        }
        drop(g);
        dg.restart();
        drop(dg);
        self.set_fw_state(mfi::state::READY);
        Ok(())
    }

    /// Answers the pending CTRL_EVENT_WAIT, if any, on the owner's worker
    /// (the frame and reply queue are the owner's memory).  Without a
    /// worker (the owner is gone) it is dropped unanswered: the memory of
    /// whichever process closes or resets is never written.
    fn cancel_aen(&self) {
        if self.q.queue(&self.q.aen_work) {
            // Waits for the work.
            self.dev.flush();
        }
        let mut g = self.q.lock();
        if let Some(st) = g.state().as_mut() {
            if let Some(slot) = st.aen.take() {
                st.put_slot(slot);
            }
        }
    }

    /// Waits until every submitted command was released and answered.
    fn drain(&self) {
        self.dev.drain(&self.inflight);
    }

    fn put_inflight(&self) {
        put_inflight(&self.inflight);
    }
}

/// The statistics file: the endpoint, the I/O line, DCMDs and AENs, the
/// TMFs and the events.
impl stats::Show for Adapter {
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.dev.lock();
        let ep = g.backend();
        stats::show_endpoint(
            f,
            ep.map(|ep| &ep.wwpn[..]),
            ep.map(|ep| ep.bind.tpg().tag()),
        )?;
        drop(g);
        let mut total = IoSnapshot::default();
        total.add(&self.stats);
        total.show(f, format_args!("total"))?;
        self.polls.show(f)?;
        writeln!(
            f,
            "dcmds: {} aen_waits: {} aens: {}",
            self.dcmds.get(),
            self.aen_waits.get(),
            self.aens.get()
        )?;
        self.tmf_stats.show(f)?;
        self.event_stats.show(f)
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        // First: the file's readers use the whole adapter.
        drop(self.stats_file.take());
        let _ = self.clear_endpoint(None);
        // Then the fields: the vhost core device (`Dev::drop` stops the
        // worker) before the queue and the register page.
    }
}

impl State {
    fn new() -> Result<KBox<State>> {
        let n = mfi::MAX_CMDS as usize;
        let mut cmds = KVVec::with_capacity(n, GFP_KERNEL)?;
        let mut free = nexus::FreeSlots::with_room(n)?;
        for i in 0..n {
            cmds.push(MCmd::new(i as u16)?, GFP_KERNEL)?;
            // Lowest slots first.
            free.put((n - 1 - i) as u16);
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
                frame: Some(KBox::init(pin_init::init_zeroed(), GFP_KERNEL)?),
                iov: KVec::with_capacity(mfi::MAX_SGE as usize * 2, GFP_KERNEL)?,
                luns: KVec::with_capacity(MAX_LUNS, GFP_KERNEL)?,
                log: KVec::with_capacity(EVENT_LOG, GFP_KERNEL)?,
                next_seq: 1,
                boot_seq: 1,
                shutdown_seq: 0,
                aen: None,
                tmfs: 0,
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
    #[inline]
    fn put_slot(&mut self, slot: u16) {
        self.index().remove(slot);
        self.cmds[usize::from(slot)].used = Use::Free;
        self.free.put(slot);
    }
}
