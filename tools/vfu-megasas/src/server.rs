// SPDX-License-Identifier: GPL-2.0
//! The vfio-user session: one client on a UNIX stream socket, its messages
//! carried out on the adapter.

use crate::adapter::{Backend, ResetTask};
use crate::config::{self, ConfigSpace};
use crate::dma::{Region, Table};
use crate::proto::{self as p, Errno, Header, IrqAction, IrqData, EINVAL, ENOTSUP};
use crate::regs::{self, Effect, Mfi, RegisterPage, ResetCause};
use crate::sys::{self, Mapping, PollFd, POLLIN};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a post to a full inbound queue waits for the kernel to read.
const QUEUE_FULL_WAIT: Duration = Duration::from_secs(1);

macro_rules! note {
    ($($a:tt)*) => { eprintln!("vfu-megasas: {}", format_args!($($a)*)) };
}

pub struct Session<A: Backend> {
    stream: UnixStream,
    adapter: A,
    cfg: ConfigSpace,
    mfi: Mfi,
    dma: Table<Mapping>,
    versioned: bool,
    /// The MSI-X vector 0 eventfd (QEMU's), the adapter's call fd while set.
    msix: Option<OwnedFd>,
    /// The INTx eventfd (QEMU's) and whether INTx is masked.
    intx: Option<OwnedFd>,
    intx_masked: bool,
    /// The INTx unmask eventfd (QEMU's resample fd, with KVM's irqfd).
    intx_unmask: Option<OwnedFd>,
    /// The adapter's call fd while INTx is in use: the server's own
    /// eventfd, which tells it that replies were posted.
    intx_call: OwnedFd,
    /// What the adapter's call fd is now (raw fd number, -1 none).
    call_now: i32,
    queue_full_drops: u64,
    /// The adapter reset in progress, on its own thread.
    reset: Option<ResetJob>,
    /// Posts dropped because they came during a reset.
    reset_drops: u64,
}

/// An adapter reset running on a thread of its own: TCM_MEGASAS_RESET
/// waits for the commands in flight, which can take longer than QEMU waits
/// for the answer to a message (`x-msg-timeout`, 5 s by default), so the
/// session goes on answering while it runs; [`Mfi`] shows the reset in
/// progress meanwhile.
struct ResetJob {
    why: &'static str,
    started: Instant,
    /// Signalled by the thread when the reset has returned.
    done: OwnedFd,
    thread: JoinHandle<io::Result<()>>,
}

/// How the session ended.
pub enum End {
    Disconnected,
}

impl<A: Backend> Session<A> {
    pub fn new(stream: UnixStream, adapter: A) -> io::Result<Session<A>> {
        let efd = vsdrv::sys::new_eventfd()?;
        // SAFETY: `new_eventfd` returned a fresh descriptor nothing else owns.
        let intx_call = unsafe { OwnedFd::from_raw_fd(efd) };
        let mfi = Mfi::new(true, adapter.page());
        Ok(Session {
            stream,
            adapter,
            cfg: ConfigSpace::new(),
            mfi,
            dma: Table::default(),
            versioned: false,
            msix: None,
            intx: None,
            intx_masked: false,
            intx_unmask: None,
            intx_call,
            call_now: -1,
            queue_full_drops: 0,
            reset: None,
            reset_drops: 0,
        })
    }

    /// Serves the client until it disconnects.
    pub fn run(&mut self) -> io::Result<End> {
        loop {
            let mut fds = [
                PollFd {
                    fd: self.stream.as_raw_fd(),
                    events: POLLIN,
                    revents: 0,
                },
                PollFd {
                    fd: self.intx_call.as_raw_fd(),
                    events: POLLIN,
                    revents: 0,
                },
                PollFd {
                    // poll ignores a negative fd.
                    fd: self.intx_unmask.as_ref().map_or(-1, |f| f.as_raw_fd()),
                    events: POLLIN,
                    revents: 0,
                },
                PollFd {
                    fd: self.reset.as_ref().map_or(-1, |j| j.done.as_raw_fd()),
                    events: POLLIN,
                    revents: 0,
                },
            ];
            sys::poll_in(&mut fds)?;
            // First the end of a reset: a message after it may depend on it.
            if fds[3].revents != 0 {
                self.end_reset();
            }
            if fds[2].revents != 0 {
                if let Some(f) = &self.intx_unmask {
                    sys::eventfd_drain(f);
                }
                self.intx_masked = false;
            }
            if fds[1].revents != 0 {
                sys::eventfd_drain(&self.intx_call);
            }
            if fds[1].revents != 0 || fds[2].revents != 0 {
                self.update_intx();
            }
            if fds[0].revents != 0 && !self.one_message()? {
                return Ok(End::Disconnected);
            }
        }
    }

    /// Tears the session down: unbinds, closes the adapter, then unmaps
    /// guest memory (the adapter no longer names it).
    pub fn finish(mut self) {
        // The reset thread uses the adapter.
        self.end_reset();
        let Session {
            mut adapter, dma, ..
        } = self;
        if let Err(e) = adapter.clear_endpoint() {
            note!("CLEAR_ENDPOINT: {e}");
        }
        drop(adapter);
        drop(dma);
    }

    /// Receives and answers one message; false at the end of the stream.
    fn one_message(&mut self) -> io::Result<bool> {
        let mut hb = [0u8; p::HEADER_SIZE];
        let sys::Received {
            bytes: n,
            fds,
            truncated,
        } = match sys::recv_with_fds(self.stream.as_raw_fd(), &mut hb) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(false),
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(false);
        }
        if n < hb.len() && !self.read_exact_or_eof(&mut hb[n..])? {
            return Ok(false);
        }
        let h = Header::parse(&hb);
        let len = match h.payload_len() {
            Ok(l) => l,
            Err(e) => {
                note!("message {} of {} bytes refused: {e}", h.command, h.size);
                self.skip(u64::from(h.size).saturating_sub(p::HEADER_SIZE as u64))?;
                if !h.no_reply() {
                    self.send(&p::error_reply(&h, e))?;
                }
                return Ok(true);
            }
        };
        let mut payload = vec![0u8; len];
        if !self.read_exact_or_eof(&mut payload)? {
            return Ok(false);
        }
        if h.flags & p::TYPE_MASK != p::TYPE_REQUEST {
            // The server sends no requests, so expects no replies.
            note!("unexpected message type {:#x} ignored", h.flags);
            return Ok(true);
        }
        let r = if truncated {
            drop(fds);
            Err(p::E2BIG)
        } else {
            self.dispatch(&h, &payload, fds)
        };
        if h.no_reply() {
            if let Err(e) = r {
                note!("command {} (no reply): {e}", h.command);
            }
            return Ok(true);
        }
        let msg = match r {
            Ok(out) => p::reply(&h, &out),
            Err(e) => p::error_reply(&h, e),
        };
        match self.send(&msg) {
            Ok(()) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn read_exact_or_eof(&mut self, b: &mut [u8]) -> io::Result<bool> {
        match self.stream.read_exact(b) {
            Ok(()) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Discards `n` bytes of the stream (a message too large to take).
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&self.stream).take(n), &mut io::sink())?;
        if copied < n {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        Ok(())
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.stream.write_all(msg)
    }

    fn dispatch(&mut self, h: &Header, pl: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<u8>, Errno> {
        if h.command != p::VERSION && !self.versioned {
            return Err(EINVAL);
        }
        // Descriptors come only with DMA_MAP and SET_IRQS; others are closed.
        match h.command {
            p::VERSION => self.version(pl),
            p::DMA_MAP => self.dma_map(pl, fds),
            p::DMA_UNMAP => self.dma_unmap(pl),
            p::DEVICE_GET_INFO => Ok(p::device_info_payload(
                p::DEVICE_FLAGS_PCI | p::DEVICE_FLAGS_RESET,
                p::PCI_NUM_REGIONS,
                p::PCI_NUM_IRQS,
            )),
            p::DEVICE_GET_REGION_INFO => {
                let i = p::parse_region_info(pl)?;
                let rw = p::REGION_INFO_FLAG_READ | p::REGION_INFO_FLAG_WRITE;
                match i {
                    p::PCI_BAR0_REGION => Ok(p::region_info_payload(i, rw, regs::BAR_SIZE)),
                    p::PCI_CONFIG_REGION => Ok(p::region_info_payload(i, rw, config::SIZE as u64)),
                    _ if i < p::PCI_NUM_REGIONS => Ok(p::region_info_payload(i, 0, 0)),
                    _ => Err(EINVAL),
                }
            }
            p::DEVICE_GET_IRQ_INFO => {
                let i = p::parse_irq_info(pl)?;
                let (flags, count) = match i {
                    p::PCI_INTX_IRQ => (
                        p::IRQ_INFO_EVENTFD | p::IRQ_INFO_MASKABLE | p::IRQ_INFO_AUTOMASKED,
                        1,
                    ),
                    p::PCI_MSIX_IRQ => (p::IRQ_INFO_EVENTFD | p::IRQ_INFO_NORESIZE, 1),
                    _ if i < p::PCI_NUM_IRQS => (p::IRQ_INFO_EVENTFD, 0),
                    _ => return Err(EINVAL),
                };
                Ok(p::irq_info_payload(i, flags, count))
            }
            p::DEVICE_SET_IRQS => self.set_irqs(pl, fds),
            p::REGION_READ => self.region_read(pl),
            p::REGION_WRITE => self.region_write(pl),
            p::DEVICE_RESET => {
                note!("device reset");
                self.cfg.reset();
                self.mfi.reset(self.adapter.page());
                self.intx_masked = false;
                // The adapter reset goes on after the answer; the status
                // word reads as before until it is done.
                self.mfi.begin_reset(self.adapter.page());
                self.start_reset("device reset");
                Ok(Vec::new())
            }
            _ => Err(ENOTSUP),
        }
    }

    fn version(&mut self, pl: &[u8]) -> Result<Vec<u8>, Errno> {
        let (major, minor) = p::parse_version(pl)?;
        if major != 0 {
            note!("client speaks vfio-user {major}.{minor}, not 0.x");
            return Err(ENOTSUP);
        }
        self.versioned = true;
        note!("client speaks vfio-user {major}.{minor}");
        Ok(p::version_payload())
    }

    fn dma_map(&mut self, pl: &[u8], mut fds: Vec<OwnedFd>) -> Result<Vec<u8>, Errno> {
        let m = p::parse_dma_map(pl)?;
        if fds.len() > 1 {
            return Err(EINVAL);
        }
        let writable = m.flags & p::DMA_MAP_FLAG_WRITE != 0;
        self.dma.check_map(m.iova, m.size, m.offset)?;
        let Some(fd) = fds.pop() else {
            if writable {
                note!(
                    "DMA_MAP iova {:#x} size {:#x} without a file descriptor refused: guest RAM \
                     must be shareable, start QEMU with -object memory-backend-memfd,id=mem,\
                     size=...,share=on -machine q35,memory-backend=mem (other RAM, such as a \
                     VGA BAR, cannot be DMA-mapped: use -vga none)",
                    m.iova,
                    m.size
                );
                return Err(ENOTSUP);
            }
            // Read-only memory without a file: ROM (the BIOS); frames are
            // never there. Recorded, not given to the adapter.
            note!(
                "DMA_MAP iova {:#x} size {:#x} read-only without fd: recorded, not DMA-able",
                m.iova,
                m.size
            );
            self.dma.insert(Region {
                iova: m.iova,
                size: m.size,
                offset: m.offset,
                map: None,
            })?;
            return Ok(Vec::new());
        };
        let len = usize::try_from(m.size).map_err(|_| EINVAL)?;
        let map = Mapping::new(&fd, m.offset, len, writable).map_err(|e| {
            note!("DMA_MAP iova {:#x} size {:#x}: mmap: {e}", m.iova, m.size);
            Errno::of(&e)
        })?;
        drop(fd);
        self.dma.insert(Region {
            iova: m.iova,
            size: m.size,
            offset: m.offset,
            map: Some(map),
        })?;
        let table = self.dma.memory_table(&[], Mapping::addr);
        if let Err(e) = self.adapter.set_mem_table(&table) {
            note!("VHOST_SET_MEM_TABLE: {e}");
            // Drop the new region again (the adapter keeps its old table).
            if let Ok(idx) = self.dma.plan_unmap(m.iova, m.size, false) {
                drop(self.dma.take(&idx));
            }
            return Err(Errno::of(&e));
        }
        note!(
            "DMA map iova {:#x} size {:#x} offset {:#x}{}: {} regions",
            m.iova,
            m.size,
            m.offset,
            if writable { "" } else { " read-only" },
            table.len()
        );
        self.bind();
        Ok(Vec::new())
    }

    /// SET_ENDPOINT once the adapter has a memory table.
    fn bind(&mut self) {
        if self.adapter.bound() {
            return;
        }
        match self.adapter.set_endpoint() {
            Ok(()) => note!("endpoint bound"),
            Err(e) => note!("TCM_MEGASAS_SET_ENDPOINT: {e} (retried at the next DMA map)"),
        }
    }

    fn dma_unmap(&mut self, pl: &[u8]) -> Result<Vec<u8>, Errno> {
        let u = p::parse_dma_unmap(pl)?;
        if u.flags & p::DMA_UNMAP_FLAG_GET_DIRTY_BITMAP != 0
            || u.flags & !(p::DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | p::DMA_UNMAP_FLAG_ALL) != 0
        {
            return Err(ENOTSUP);
        }
        let all = u.flags & p::DMA_UNMAP_FLAG_ALL != 0;
        let idx = self.dma.plan_unmap(u.iova, u.size, all)?;
        if !idx.is_empty() {
            let table = self.dma.memory_table(&idx, Mapping::addr);
            if let Err(e) = self.adapter.set_mem_table(&table) {
                note!("VHOST_SET_MEM_TABLE: {e}: the regions stay mapped");
                return Err(Errno::of(&e));
            }
            // The adapter's table no longer names them: unmap.
            drop(self.dma.take(&idx));
            note!(
                "DMA unmap iova {:#x} size {:#x}: {} regions",
                u.iova,
                u.size,
                table.len()
            );
        }
        Ok(p::dma_unmap_payload(&u))
    }

    fn set_irqs(&mut self, pl: &[u8], mut fds: Vec<OwnedFd>) -> Result<Vec<u8>, Errno> {
        let s = p::parse_set_irqs(pl)?;
        let count = match s.index {
            p::PCI_INTX_IRQ | p::PCI_MSIX_IRQ => 1u32,
            i if i < p::PCI_NUM_IRQS => 0,
            _ => return Err(EINVAL),
        };
        let end = s.start.checked_add(s.count).ok_or(EINVAL)?;
        let disable = s.count == 0 && s.data == IrqData::None && s.action == IrqAction::Trigger;
        if !disable && (end > count || s.count == 0) {
            return Err(EINVAL);
        }
        if s.data == IrqData::Eventfd {
            if !fds.is_empty() && fds.len() != s.count as usize {
                return Err(EINVAL);
            }
        } else if !fds.is_empty() {
            return Err(EINVAL);
        }
        match (s.index, s.action, &s.data) {
            (p::PCI_MSIX_IRQ, IrqAction::Trigger, IrqData::Eventfd) => {
                self.msix = fds.pop();
                note!(
                    "MSI-X vector 0 {}",
                    if self.msix.is_some() {
                        "eventfd set"
                    } else {
                        "eventfd cleared"
                    }
                );
            }
            (p::PCI_MSIX_IRQ, IrqAction::Trigger, IrqData::None) if disable => {
                let was = self.msix.take();
                if was.is_some() {
                    note!("MSI-X disabled");
                }
            }
            (p::PCI_MSIX_IRQ, IrqAction::Trigger, d) => {
                // Fire the vector (loopback test of the client).
                let fire = match d {
                    IrqData::Bool(b) => b.first().copied().unwrap_or(false),
                    _ => true,
                };
                if let (true, Some(fd)) = (fire, &self.msix) {
                    sys::eventfd_signal(fd);
                }
            }
            (p::PCI_INTX_IRQ, IrqAction::Trigger, IrqData::Eventfd) => {
                self.intx = fds.pop();
                self.intx_masked = false;
                note!(
                    "INTx {}",
                    if self.intx.is_some() {
                        "eventfd set"
                    } else {
                        "eventfd cleared"
                    }
                );
            }
            (p::PCI_INTX_IRQ, IrqAction::Trigger, IrqData::None) if disable => {
                self.intx = None;
                self.intx_unmask = None;
            }
            (p::PCI_INTX_IRQ, IrqAction::Unmask, IrqData::Eventfd) => {
                self.intx_unmask = fds.pop();
            }
            (p::PCI_INTX_IRQ, IrqAction::Trigger, _) => self.update_intx(),
            // DATA_BOOL false: leave as is.
            (p::PCI_INTX_IRQ, IrqAction::Mask | IrqAction::Unmask, IrqData::Bool(b))
                if b.first() == Some(&false) => {}
            (p::PCI_INTX_IRQ, IrqAction::Mask, _) => self.intx_masked = true,
            (p::PCI_INTX_IRQ, IrqAction::Unmask, _) => {
                self.intx_masked = false;
                self.update_intx();
            }
            // MSI-X masking is QEMU's (it emulates the table and PBA).
            (p::PCI_MSIX_IRQ, _, _) => {}
            _ => {}
        }
        self.route_call();
        Ok(Vec::new())
    }

    /// Points the adapter's completion eventfd at the MSI-X vector if set,
    /// else at the server's INTx eventfd if INTx is set, else nowhere.
    fn route_call(&mut self) {
        let target = if let Some(fd) = &self.msix {
            Some(fd)
        } else if self.intx.is_some() {
            Some(&self.intx_call)
        } else {
            None
        };
        let raw = target.map_or(-1, |f| f.as_raw_fd());
        if raw == self.call_now {
            return;
        }
        match self.adapter.set_call(target) {
            Ok(()) => self.call_now = raw,
            Err(e) => note!("VHOST_SET_VRING_CALL: {e}"),
        }
        // Replies posted while the call went elsewhere.
        self.update_intx();
    }

    /// Asserts INTx (an edge on its eventfd, which QEMU turns into a level
    /// until the next unmask) while replies are pending, the reply
    /// interrupt is unmasked, and INTx is not masked.
    fn update_intx(&mut self) {
        if self.msix.is_some() || self.intx_masked {
            return;
        }
        let Some(fd) = &self.intx else { return };
        if self.mfi.intx_level(self.adapter.page()) {
            sys::eventfd_signal(fd);
            // VFIO INTx is automasked: the client unmasks after its EOI.
            self.intx_masked = true;
        }
    }

    fn region_read(&mut self, pl: &[u8]) -> Result<Vec<u8>, Errno> {
        let a = p::parse_region_access(pl)?;
        let mut data = vec![0u8; a.count as usize];
        match a.region {
            p::PCI_BAR0_REGION => self.mfi.read(self.adapter.page(), a.offset, &mut data)?,
            p::PCI_CONFIG_REGION => self.cfg.read(a.offset, &mut data)?,
            _ => return Err(EINVAL),
        }
        Ok(p::region_access_payload(&a, &data))
    }

    fn region_write(&mut self, pl: &[u8]) -> Result<Vec<u8>, Errno> {
        let a = p::parse_region_access(pl)?;
        let data = p::region_write_data(pl, &a)?;
        match a.region {
            p::PCI_BAR0_REGION => {
                let fx = self.mfi.write(self.adapter.page_mut(), a.offset, &data)?;
                for e in fx {
                    self.effect(e);
                }
            }
            p::PCI_CONFIG_REGION => {
                let was = self.cfg.msix_enabled();
                self.cfg.write(a.offset, &data)?;
                if was != self.cfg.msix_enabled() {
                    note!(
                        "MSI-X {} in config space",
                        if was { "disabled" } else { "enabled" }
                    );
                }
            }
            _ => return Err(EINVAL),
        }
        Ok(p::region_access_payload(&a, &[]))
    }

    fn effect(&mut self, e: Effect) {
        match e {
            // No doorbell while the adapter's worker reads the inbound
            // queue and will look at it again before it waits.
            Effect::Posted(_) => {
                if !self.adapter.page().no_kick() {
                    self.doorbell();
                }
            }
            Effect::QueueFull(entry) => {
                let until = Instant::now() + QUEUE_FULL_WAIT;
                loop {
                    self.doorbell();
                    if regs::post(self.adapter.page_mut(), entry) {
                        self.doorbell();
                        break;
                    }
                    if Instant::now() > until {
                        self.queue_full_drops += 1;
                        note!(
                            "inbound queue full: frame {entry:#x} dropped ({} so far)",
                            self.queue_full_drops
                        );
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            Effect::Reset(cause) => {
                let why = match cause {
                    ResetCause::Handshake => "driver handshake (MFI_INIT_READY)",
                    ResetCause::HostDiag => "host_diag reset",
                };
                self.start_reset(why);
            }
            Effect::DroppedInReset(entry) => {
                self.reset_drops += 1;
                if self.reset_drops.is_power_of_two() {
                    note!(
                        "frame {entry:#x} posted during an adapter reset: dropped ({} so far)",
                        self.reset_drops
                    );
                }
            }
            Effect::InterruptState => self.update_intx(),
        }
    }

    fn doorbell(&mut self) {
        if let Err(e) = self.adapter.doorbell() {
            note!("TCM_MEGASAS_DOORBELL: {e}");
        }
    }

    /// Starts TCM_MEGASAS_RESET on the reset thread ([`Mfi::begin_reset`]
    /// was called); one at a time (a device reset during an adapter reset
    /// needs no second one: posts are dropped meanwhile).
    fn start_reset(&mut self, why: &'static str) {
        if let Some(j) = &self.reset {
            note!("{why} during the {} in progress: one reset", j.why);
            return;
        }
        match self.spawn_reset(why) {
            Ok(j) => self.reset = Some(j),
            Err(e) => {
                note!("TCM_MEGASAS_RESET ({why}) not started: {e}");
                self.mfi.reset_done(self.adapter.page());
            }
        }
    }

    fn spawn_reset(&self, why: &'static str) -> io::Result<ResetJob> {
        let task: ResetTask = self.adapter.reset_task()?;
        let efd = vsdrv::sys::new_eventfd()?;
        // SAFETY: `new_eventfd` returned a fresh descriptor nothing else owns.
        let done = unsafe { OwnedFd::from_raw_fd(efd) };
        let signal = done.try_clone()?;
        let thread = std::thread::Builder::new()
            .name("adapter-reset".into())
            .spawn(move || {
                let r = task();
                sys::eventfd_signal(&signal);
                r
            })?;
        Ok(ResetJob {
            why,
            started: Instant::now(),
            done,
            thread,
        })
    }

    /// Waits for the reset in progress, if any, and ends it: host_diag's
    /// reset bit clears, the status word is the page's again (READY).
    fn end_reset(&mut self) {
        let Some(j) = self.reset.take() else { return };
        let r = j
            .thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the reset thread panicked")));
        match r {
            Ok(()) => note!(
                "adapter reset ({}) in {} ms, status {:#010x}, {} errors so far",
                j.why,
                j.started.elapsed().as_millis(),
                self.adapter.page().fw_status(),
                self.adapter.errors()
            ),
            Err(e) => note!("TCM_MEGASAS_RESET ({}): {e}", j.why),
        }
        self.mfi.reset_done(self.adapter.page());
        self.update_intx();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regs::tests::{FakePage, READY_STATUS};
    use crate::sys::testing::{memfd, send_with_fds};
    use std::sync::{Arc, Mutex};

    #[derive(Debug, PartialEq)]
    enum Op {
        MemTable(Vec<(u64, u64)>),
        CallFd(bool),
        Endpoint,
        ClearEndpoint,
        Doorbell,
        Reset,
    }

    /// The fake adapter's operations, in order.
    type OpLog = Arc<Mutex<Vec<Op>>>;

    struct Fake {
        page: FakePage,
        bound: bool,
        log: OpLog,
        /// The next reset waits for a message on this channel.
        reset_gate: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    }

    impl Fake {
        fn push(&self, c: Op) {
            self.log.lock().unwrap().push(c);
        }
    }

    impl Backend for Fake {
        type Page = FakePage;
        fn page(&self) -> &FakePage {
            &self.page
        }
        fn page_mut(&mut self) -> &mut FakePage {
            &mut self.page
        }
        fn bound(&self) -> bool {
            self.bound
        }
        fn set_mem_table(&self, r: &[(u64, u64, u64)]) -> io::Result<()> {
            self.push(Op::MemTable(r.iter().map(|e| (e.0, e.1)).collect()));
            Ok(())
        }
        fn set_call(&self, fd: Option<&OwnedFd>) -> io::Result<()> {
            self.push(Op::CallFd(fd.is_some()));
            Ok(())
        }
        fn set_endpoint(&mut self) -> io::Result<()> {
            self.bound = true;
            self.push(Op::Endpoint);
            Ok(())
        }
        fn clear_endpoint(&mut self) -> io::Result<()> {
            self.bound = false;
            self.push(Op::ClearEndpoint);
            Ok(())
        }
        fn doorbell(&self) -> io::Result<()> {
            self.push(Op::Doorbell);
            Ok(())
        }
        fn reset_task(&self) -> io::Result<ResetTask> {
            let log = self.log.clone();
            let gate = self.reset_gate.lock().unwrap().take();
            Ok(Box::new(move || {
                if let Some(g) = gate {
                    // Held until the test lets the reset end.
                    let _ = g.recv();
                }
                log.lock().unwrap().push(Op::Reset);
                Ok(())
            }))
        }
        fn errors(&self) -> u32 {
            0
        }
    }

    struct Client {
        s: UnixStream,
        id: u16,
    }

    impl Client {
        fn send(&mut self, cmd: u16, flags: u32, pl: &[u8], fds: &[i32]) -> u16 {
            self.id += 1;
            let h = Header {
                id: self.id,
                command: cmd,
                size: (16 + pl.len()) as u32,
                flags,
                error: 0,
            };
            let mut m = h.encode().to_vec();
            m.extend_from_slice(pl);
            send_with_fds(self.s.as_raw_fd(), &m, fds).unwrap();
            self.id
        }

        fn recv(&mut self, id: u16) -> Result<Vec<u8>, u32> {
            let mut hb = [0u8; 16];
            self.s.read_exact(&mut hb).unwrap();
            let h = Header::parse(&hb);
            assert_eq!(h.id, id);
            assert_eq!(h.flags & p::TYPE_MASK, p::TYPE_REPLY);
            let mut pl = vec![0u8; h.size as usize - 16];
            self.s.read_exact(&mut pl).unwrap();
            if h.flags & p::ERROR != 0 {
                return Err(h.error);
            }
            Ok(pl)
        }

        fn call(&mut self, cmd: u16, pl: &[u8], fds: &[i32]) -> Result<Vec<u8>, u32> {
            let id = self.send(cmd, 0, pl, fds);
            self.recv(id)
        }
    }

    fn le32(v: &[u32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn access(offset: u64, region: u32, data: &[u8], count: u32) -> Vec<u8> {
        let mut v = offset.to_le_bytes().to_vec();
        v.extend_from_slice(&region.to_le_bytes());
        v.extend_from_slice(&count.to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    fn dma_map(flags: u32, offset: u64, iova: u64, size: u64) -> Vec<u8> {
        let mut v = le32(&[32, flags]);
        for x in [offset, iova, size] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    }

    /// A session over a socket pair with a fake adapter of `page` (its
    /// next reset waiting on `gate`), run on a thread: the client's end,
    /// the log of the adapter's operations, and the thread, which returns
    /// whether the run ended well and what `at_end` read of the session
    /// after it.
    fn session<R: Send + 'static>(
        page: FakePage,
        gate: Option<std::sync::mpsc::Receiver<()>>,
        at_end: impl FnOnce(&Session<Fake>) -> R + Send + 'static,
    ) -> (Client, OpLog, std::thread::JoinHandle<(bool, R)>) {
        let (server_end, client_end) = UnixStream::pair().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let fake = Fake {
            page,
            bound: false,
            log: log.clone(),
            reset_gate: Mutex::new(gate),
        };
        let t = std::thread::spawn(move || {
            let mut s = Session::new(server_end, fake).unwrap();
            let r = s.run();
            let got = at_end(&s);
            s.finish();
            (r.is_ok(), got)
        });
        let c = Client {
            s: client_end,
            id: 0,
        };
        (c, log, t)
    }

    /// An inbound queue port write while the adapter says it reads on
    /// (`iq_no_kick`): posted, without a doorbell.
    #[test]
    fn post_without_doorbell_when_the_adapter_reads_on() {
        let mut page = FakePage::new(READY_STATUS);
        page.no_kick = true;
        let (mut c, log, t) = session(page, None, |s| s.adapter.page.iq[0]);
        let mut v = vec![0, 0, 0, 0];
        v.extend_from_slice(b"{\"capabilities\":{\"max_msg_fds\":16}}\0");
        c.call(p::VERSION, &v, &[]).unwrap();
        c.send(
            p::REGION_WRITE,
            p::NO_REPLY,
            &access(0x40, 0, &0x1000_0041u32.to_le_bytes(), 4),
            &[],
        );
        // A read after it: the post happened first.
        c.call(p::REGION_READ, &access(0xb0, 0, &[], 4), &[])
            .unwrap();
        drop(c);
        let (ok, iq0) = t.join().unwrap();
        assert!(ok);
        assert_eq!(iq0, 0x1000_0041);
        assert!(!log.lock().unwrap().contains(&Op::Doorbell));
    }

    #[test]
    fn session_with_qemu_like_client() {
        let (mut c, log, t) = session(FakePage::new(READY_STATUS), None, |s| {
            (
                s.adapter.page.iq[0],
                s.dma.memory_table(&[], Mapping::addr).len(),
            )
        });
        // Nothing before VERSION.
        assert_eq!(
            c.call(p::DEVICE_GET_INFO, &le32(&[16, 0, 0, 0]), &[]),
            Err(22)
        );
        let mut v = vec![0, 0, 0, 0];
        v.extend_from_slice(b"{\"capabilities\":{\"max_msg_fds\":16}}\0");
        let r = c.call(p::VERSION, &v, &[]).unwrap();
        assert_eq!(r[..4], [0, 0, 0, 0]);
        assert_eq!(r.last(), Some(&0));
        assert!(std::str::from_utf8(&r[4..r.len() - 1])
            .unwrap()
            .contains("max_msg_fds"));
        let r = c
            .call(p::DEVICE_GET_INFO, &le32(&[16, 0, 0, 0]), &[])
            .unwrap();
        assert_eq!(r, le32(&[16, 3, 9, 5]));
        // Regions: BAR0 16 KiB, config 256, ROM 0, no region 9.
        let info = |c: &mut Client, i: u32| {
            c.call(
                p::DEVICE_GET_REGION_INFO,
                &le32(&[32, 0, i, 0, 0, 0, 0, 0]),
                &[],
            )
        };
        let r = info(&mut c, 0).unwrap();
        assert_eq!((r.len(), &r[16..24]), (32, &0x4000u64.to_le_bytes()[..]));
        assert_eq!(info(&mut c, 7).unwrap()[16..24], 256u64.to_le_bytes());
        assert_eq!(info(&mut c, 6).unwrap()[16..24], 0u64.to_le_bytes());
        assert_eq!(info(&mut c, 9), Err(22));
        let r = c
            .call(p::DEVICE_GET_IRQ_INFO, &le32(&[16, 0, 2, 0]), &[])
            .unwrap();
        assert_eq!(r[12..16], 1u32.to_le_bytes());
        // Config space.
        let r = c.call(p::REGION_READ, &access(0, 7, &[], 4), &[]).unwrap();
        assert_eq!(r[16..], [0x00, 0x10, 0x79, 0x00]);
        assert_eq!(
            c.call(p::REGION_READ, &access(254, 7, &[], 4), &[]),
            Err(22)
        );
        assert_eq!(c.call(p::REGION_READ, &access(0, 3, &[], 4), &[]), Err(22));
        // A posted IQP write, then a read: the post happened first.
        c.send(
            p::REGION_WRITE,
            p::NO_REPLY,
            &access(0x40, 0, &0x1000_0041u32.to_le_bytes(), 4),
            &[],
        );
        let r = c
            .call(p::REGION_READ, &access(0xb0, 0, &[], 4), &[])
            .unwrap();
        assert_eq!(r[16..], (READY_STATUS | crate::regs::FW_MSIX).to_le_bytes());
        assert!(log.lock().unwrap().contains(&Op::Doorbell));
        // A write whose data disagrees with its count.
        assert_eq!(
            c.call(p::REGION_WRITE, &access(0x40, 0, &[1, 2], 4), &[]),
            Err(22)
        );
        // A header whose size is below the header's.
        c.send(p::DEVICE_GET_INFO, 0, &[], &[]);
        {
            let h = Header {
                id: 99,
                command: p::DEVICE_GET_INFO,
                size: 8,
                flags: 0,
                error: 0,
            };
            // The first request is answered normally.
            assert!(c.recv(c.id).is_ok());
            c.s.write_all(&h.encode()).unwrap();
            assert_eq!(c.recv(99), Err(22));
        }
        // DMA: writable without fd refused; ROM without fd recorded.
        assert_eq!(
            c.call(p::DMA_MAP, &dma_map(3, 0, 0, 0x10_0000), &[]),
            Err(95)
        );
        c.call(p::DMA_MAP, &dma_map(1, 0, 0xfffc_0000, 0x4_0000), &[])
            .unwrap();
        let mem = memfd(0x20_0000);
        c.call(
            p::DMA_MAP,
            &dma_map(3, 0x10_0000, 0x10_0000, 0x10_0000),
            &[mem.as_raw_fd()],
        )
        .unwrap();
        // Overlapping, and unaligned: refused.
        assert_eq!(
            c.call(
                p::DMA_MAP,
                &dma_map(3, 0, 0x18_0000, 0x10_0000),
                &[mem.as_raw_fd()]
            ),
            Err(17)
        );
        assert_eq!(
            c.call(
                p::DMA_MAP,
                &dma_map(3, 0x10, 0x30_0000, 0x1000),
                &[mem.as_raw_fd()]
            ),
            Err(22)
        );
        {
            let l = log.lock().unwrap();
            assert!(l.contains(&Op::MemTable(vec![(0x10_0000, 0x10_0000)])));
            assert_eq!(l.iter().filter(|c| **c == Op::Endpoint).count(), 1);
        }
        // MSI-X eventfd in, then disabled.
        let efd = memfd(0); // any descriptor will do for the fake
        c.call(
            p::DEVICE_SET_IRQS,
            &le32(&[20, 4 | 32, 2, 0, 1]),
            &[efd.as_raw_fd()],
        )
        .unwrap();
        c.call(p::DEVICE_SET_IRQS, &le32(&[20, 1 | 32, 2, 0, 0]), &[])
            .unwrap();
        // More descriptors than advertised: refused, the session goes on.
        let many: Vec<i32> = (0..9).map(|_| efd.as_raw_fd()).collect();
        assert_eq!(
            c.call(p::DEVICE_SET_IRQS, &le32(&[20, 4 | 32, 2, 0, 9]), &many),
            Err(7)
        );
        // Bad ranges.
        assert_eq!(
            c.call(p::DEVICE_SET_IRQS, &le32(&[20, 4 | 32, 2, 1, 1]), &[]),
            Err(22)
        );
        assert_eq!(
            c.call(p::DEVICE_SET_IRQS, &le32(&[20, 4 | 32, 7, 0, 1]), &[]),
            Err(22)
        );
        assert_eq!(
            c.call(
                p::DEVICE_SET_IRQS,
                &le32(&[20, 4 | 32, 2, u32::MAX, 2]),
                &[]
            ),
            Err(22)
        );
        // Unmap: a part of the region is refused, the whole goes.
        let mut u = le32(&[24, 0]);
        u.extend_from_slice(&0x10_0000u64.to_le_bytes());
        u.extend_from_slice(&0x1000u64.to_le_bytes());
        assert_eq!(c.call(p::DMA_UNMAP, &u, &[]), Err(22));
        u[16..24].copy_from_slice(&0x10_0000u64.to_le_bytes());
        assert_eq!(c.call(p::DMA_UNMAP, &u, &[]).unwrap(), u);
        c.call(p::DEVICE_RESET, &[], &[]).unwrap();
        assert_eq!(c.call(42, &[], &[]), Err(95));
        drop(c);
        let (ok, (iq0, regions)) = t.join().unwrap();
        assert!(ok);
        assert_eq!(iq0, 0x1000_0041);
        assert_eq!(regions, 0);
        let l = log.lock().unwrap();
        assert!(l.contains(&Op::CallFd(true)));
        assert_eq!(l.last(), Some(&Op::ClearEndpoint));
        assert!(l.contains(&Op::Reset));
        assert!(l.contains(&Op::MemTable(vec![])));
    }

    /// megasas_adp_reset_gen2 against a reset that takes long (commands in
    /// flight): every message is answered while it runs, host_diag keeps
    /// its reset bit and the status word its value, posts are dropped; when
    /// it ends, the bit clears.
    #[test]
    fn long_reset_does_not_stall_the_session() {
        let (release, gate) = std::sync::mpsc::channel();
        let page = FakePage::new(crate::regs::STATE_OPERATIONAL | 1000);
        let (mut c, log, t) = session(page, Some(gate), |s| s.adapter.page.log.len());
        let mut v = vec![0, 0, 0, 0];
        v.extend_from_slice(b"{}\0");
        c.call(p::VERSION, &v, &[]).unwrap();
        let rd = |c: &mut Client, off: u64| {
            let r = c
                .call(p::REGION_READ, &access(off, 0, &[], 4), &[])
                .unwrap();
            u32::from_le_bytes(r[16..20].try_into().unwrap())
        };
        let wr = |c: &mut Client, off: u64, v: u32| {
            c.call(p::REGION_WRITE, &access(off, 0, &v.to_le_bytes(), 4), &[])
                .unwrap();
        };
        let status = rd(&mut c, 0xb0);
        for k in crate::regs::SEQ_KEY {
            wr(&mut c, 0xfc, k);
        }
        let d = rd(&mut c, 0xf8);
        assert_ne!(d & crate::regs::DIAG_WRITE_ENABLE, 0);
        wr(&mut c, 0xf8, d | crate::regs::DIAG_RESET_ADAPTER);
        // The reset thread waits on the gate; the session answers.
        for _ in 0..3 {
            assert_ne!(rd(&mut c, 0xf8) & crate::regs::DIAG_RESET_ADAPTER, 0);
            assert_eq!(rd(&mut c, 0xb0), status);
        }
        wr(&mut c, 0x40, 0x1000_0041);
        // A second reset request is not a second reset.
        wr(&mut c, 0x20, 0x7);
        assert!(!log.lock().unwrap().contains(&Op::Reset));
        release.send(()).unwrap();
        let mut cleared = false;
        for _ in 0..500 {
            if rd(&mut c, 0xf8) & crate::regs::DIAG_RESET_ADAPTER == 0 {
                cleared = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(cleared, "host_diag's reset bit clears once the reset ended");
        drop(c);
        let (ok, posted) = t.join().unwrap();
        assert!(ok);
        assert_eq!(posted, 0, "the post during the reset was dropped");
        let l = log.lock().unwrap();
        assert_eq!(l.iter().filter(|o| **o == Op::Reset).count(), 1);
        assert!(!l.contains(&Op::Doorbell));
    }
}
