// SPDX-License-Identifier: GPL-2.0
//! vsdrv: a virtio-scsi driver in userspace, on the vhost-scsi ioctl ABI.
//!
//! It does what a VMM and a guest driver do together: owns memory and
//! registers it as the device's memory table (guest addresses equal to
//! process addresses), builds split virtqueues in it, kicks and waits on
//! eventfds, and exchanges `virtio_scsi_cmd_req`/`resp` with the device.
//! It works against any device with that ABI: C `vhost_scsi` and tcm_virt.

pub mod flood;
pub mod sys;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::raw::c_int;
use std::time::{Duration, Instant};
use tcm_virt_wire::virtio_scsi::{CmdReq, CmdResp, TaskAttr, CMD_RESP_SIZE};

pub const F_VERSION_1: u64 = 1 << 32;
pub const F_T10_PI: u64 = 1 << 3;
pub const F_HOTPLUG: u64 = 1 << 1;
/// VHOST_F_LOG_ALL: dirty logging for live migration.
pub const F_LOG_ALL: u64 = 1 << 26;

pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;
pub const DESC_F_INDIRECT: u16 = 4;
/// VIRTIO_RING_F_INDIRECT_DESC.
pub const F_INDIRECT_DESC: u64 = 1 << 28;
/// VIRTIO_RING_F_EVENT_IDX: the driver tells the device after which used
/// entry to signal (`used_event`, after the avail ring), the device tells
/// the driver after which avail entry to kick (`avail_event`, after the used
/// ring).
pub const F_EVENT_IDX: u64 = 1 << 29;

/// Process memory registered with the device; a bump allocator.
pub struct Memory {
    base: *mut u8,
    len: usize,
    next: usize,
}

impl Memory {
    pub fn new(len: usize) -> io::Result<Memory> {
        Ok(Memory {
            base: sys::map_anon(len)?,
            len,
            next: 0,
        })
    }

    /// No memory (a placeholder).
    pub fn empty() -> Memory {
        Memory {
            base: std::ptr::null_mut(),
            len: 0,
            next: 0,
        }
    }

    /// `n` zeroed bytes aligned to `align`; its address (= guest address).
    pub fn alloc(&mut self, n: usize, align: usize) -> u64 {
        let at = (self.next + align - 1) & !(align - 1);
        assert!(at + n <= self.len, "vsdrv: out of driver memory");
        self.next = at + n;
        let p = self.base as u64 + at as u64;
        self.slice_mut(p, n).fill(0);
        p
    }

    pub fn base(&self) -> u64 {
        self.base as u64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, addr: u64, n: usize) {
        assert!(addr >= self.base() && addr as usize + n <= self.base() as usize + self.len);
    }

    pub fn slice(&self, addr: u64, n: usize) -> &[u8] {
        self.check(addr, n);
        // SAFETY: inside the mapping (checked).
        unsafe { std::slice::from_raw_parts(addr as *const u8, n) }
    }

    #[allow(clippy::mut_from_ref)]
    pub fn slice_mut(&self, addr: u64, n: usize) -> &mut [u8] {
        self.check(addr, n);
        // SAFETY: inside the mapping (checked); the device writes it only
        // while a request is in flight, and we read it after completion.
        unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, n) }
    }

    fn write_u16(&self, addr: u64, v: u16) {
        // SAFETY: inside the mapping; volatile: the device reads it.
        unsafe { std::ptr::write_volatile(addr as *mut u16, v.to_le()) }
    }

    fn read_u16(&self, addr: u64) -> u16 {
        // SAFETY: `addr` is an aligned field of a ring allocated from this mapping (the callers,
        // `reap` and `Flood::stop`, pass only such); volatile: the device writes it.
        u16::from_le(unsafe { std::ptr::read_volatile(addr as *const u16) })
    }

    fn read_u32(&self, addr: u64) -> u32 {
        // SAFETY: `addr` is an aligned used-ring or descriptor field allocated from this mapping
        // (the only caller, `reap`); volatile: the device writes the used ring.
        u32::from_le(unsafe { std::ptr::read_volatile(addr as *const u32) })
    }

    fn read_u64(&self, addr: u64) -> u64 {
        // SAFETY: `addr` is a descriptor's 8-byte-aligned address field in the descriptor table
        // allocated from this mapping (the only caller, `reap`); read volatile, as ring memory.
        u64::from_le(unsafe { std::ptr::read_volatile(addr as *const u64) })
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if !self.base.is_null() {
            sys::unmap(self.base, self.len);
        }
    }
}

/// One buffer of a descriptor chain.
#[derive(Clone, Copy, Debug)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
    pub write: bool,
}

/// A split virtqueue and its eventfds.
pub struct Queue {
    pub index: u32,
    pub num: u16,
    desc: u64,
    avail: u64,
    used: u64,
    avail_idx: u16,
    /// `avail_idx` when the device was last kicked.
    kicked: u16,
    last_used: u16,
    /// VIRTIO_RING_F_EVENT_IDX was negotiated.
    event_idx: bool,
    /// Signals of the call eventfd counted by [`Queue::wait`] (an eventfd
    /// read returns how many there were since the last read).
    pub signals: u64,
    /// Kicks written to the kick eventfd.
    pub kicks: u64,
    free: Vec<u16>,
    kick: File,
    call: File,
    /// Heads in flight -> descriptors they use.
    chains: Vec<Vec<u16>>,
    /// While dirty logging is on: the device-writable buffers of every
    /// chain completed (what the dirty log must cover).
    pub written: Option<Vec<(u64, u32)>>,
}

/// A completed chain: head and used length.
#[derive(Clone, Copy, Debug)]
pub struct Used {
    pub head: u16,
    pub len: u32,
}

impl Queue {
    /// The call eventfd the session installed (for tests that swap it).
    pub fn call_fd(&self) -> c_int {
        self.call.as_raw_fd()
    }

    fn new(mem: &mut Memory, index: u32, num: u16) -> io::Result<Queue> {
        let n = usize::from(num);
        let desc = mem.alloc(16 * n, 4096);
        let avail = mem.alloc(6 + 2 * n, 4096);
        let used = mem.alloc(6 + 8 * n, 4096);
        // SAFETY: fresh eventfds, owned by the File from here on.
        let (kick, call) = unsafe {
            (
                File::from_raw_fd(sys::new_eventfd()?),
                File::from_raw_fd(sys::new_eventfd()?),
            )
        };
        Ok(Queue {
            index,
            num,
            desc,
            avail,
            used,
            avail_idx: 0,
            kicked: 0,
            last_used: 0,
            event_idx: false,
            signals: 0,
            kicks: 0,
            free: (0..num).rev().collect(),
            kick,
            call,
            chains: vec![Vec::new(); n],
            written: None,
        })
    }

    pub fn free_descs(&self) -> usize {
        self.free.len()
    }

    /// Writes a chain into the descriptor table (without publishing it).
    /// `next_override` lets tests build broken chains.
    pub fn build(&mut self, mem: &Memory, bufs: &[Buf]) -> Option<u16> {
        if bufs.is_empty() || bufs.len() > self.free.len() {
            return None;
        }
        let ids: Vec<u16> = (0..bufs.len()).map(|_| self.free.pop().unwrap()).collect();
        for (i, b) in bufs.iter().enumerate() {
            let d = self.desc + 16 * u64::from(ids[i]);
            let mut flags = if b.write { DESC_F_WRITE } else { 0 };
            let next = if i + 1 < bufs.len() {
                flags |= DESC_F_NEXT;
                ids[i + 1]
            } else {
                0
            };
            let s = mem.slice_mut(d, 16);
            s[0..8].copy_from_slice(&b.addr.to_le_bytes());
            s[8..12].copy_from_slice(&b.len.to_le_bytes());
            s[12..14].copy_from_slice(&flags.to_le_bytes());
            s[14..16].copy_from_slice(&next.to_le_bytes());
        }
        self.chains[usize::from(ids[0])] = ids.clone();
        Some(ids[0])
    }

    /// Points descriptor `id`'s `next` at `to` with the NEXT flag (a loop
    /// when `to` is earlier in the chain).
    pub fn link(&self, mem: &Memory, id: u16, to: u16) {
        let d = self.desc + 16 * u64::from(id);
        let s = mem.slice_mut(d, 16);
        let flags = u16::from_le_bytes([s[12], s[13]]) | DESC_F_NEXT;
        s[12..14].copy_from_slice(&flags.to_le_bytes());
        s[14..16].copy_from_slice(&to.to_le_bytes());
    }

    /// Rewrites descriptor `id` whole (for fuzzers: any flags, any `next`).
    pub fn set_desc(&self, mem: &Memory, id: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let d = self.desc + 16 * u64::from(id % self.num);
        let s = mem.slice_mut(d, 16);
        s[0..8].copy_from_slice(&addr.to_le_bytes());
        s[8..12].copy_from_slice(&len.to_le_bytes());
        s[12..14].copy_from_slice(&flags.to_le_bytes());
        s[14..16].copy_from_slice(&next.to_le_bytes());
    }

    /// The descriptor ids of an in-flight chain.
    pub fn chain(&self, head: u16) -> &[u16] {
        &self.chains[usize::from(head)]
    }

    /// Publishes `head` in the available ring (no kick).
    pub fn publish(&mut self, mem: &Memory, head: u16) {
        let slot = self.avail + 4 + 2 * u64::from(self.avail_idx % self.num);
        mem.write_u16(slot, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        mem.write_u16(self.avail + 2, self.avail_idx);
    }

    pub fn kick(&mut self) {
        self.kicked = self.avail_idx;
        self.kicks += 1;
        let _ = self.kick.write(&1u64.to_ne_bytes());
    }

    /// Kicks the device for the entries published since the last kick if
    /// it wants a kick: always without EVENT_IDX; with it, only when they
    /// pass the device's `avail_event` (`vring_need_event()`).
    pub fn kick_if_needed(&mut self, mem: &Memory) {
        let (new, old) = (self.avail_idx, self.kicked);
        if new == old {
            return;
        }
        if self.event_idx {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            let event = mem.read_u16(self.used + 4 + 8 * u64::from(self.num));
            if new.wrapping_sub(event).wrapping_sub(1) >= new.wrapping_sub(old) {
                self.kicked = new;
                return;
            }
        }
        self.kick();
    }

    /// Completed chains, freeing their descriptors.
    pub fn reap(&mut self, mem: &Memory) -> Vec<Used> {
        let mut out = Vec::new();
        loop {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            let idx = mem.read_u16(self.used + 2);
            if idx == self.last_used {
                break;
            }
            let e = self.used + 4 + 8 * u64::from(self.last_used % self.num);
            let head = mem.read_u32(e) as u16;
            let len = mem.read_u32(e + 4);
            self.last_used = self.last_used.wrapping_add(1);
            let ids = std::mem::take(&mut self.chains[usize::from(head % self.num)]);
            if let Some(w) = self.written.as_mut() {
                for &id in &ids {
                    let d = self.desc + 16 * u64::from(id);
                    if mem.read_u16(d + 12) & DESC_F_WRITE != 0 {
                        w.push((mem.read_u64(d), mem.read_u32(d + 8)));
                    }
                }
            }
            self.free.extend(ids);
            out.push(Used { head, len });
        }
        out
    }

    /// Waits for at least one completion, up to `timeout`, sleeping on the
    /// call eventfd; with EVENT_IDX, first asks for a signal at the next
    /// used entry (`used_event`) and looks at the ring once more.
    pub fn wait(&mut self, mem: &Memory, timeout: Duration) -> Vec<Used> {
        let end = Instant::now() + timeout;
        loop {
            let u = self.reap(mem);
            if !u.is_empty() {
                return u;
            }
            if self.event_idx {
                mem.write_u16(self.avail + 4 + 2 * u64::from(self.num), self.last_used);
                let u = self.reap(mem);
                if !u.is_empty() {
                    return u;
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return u;
            }
            if sys::wait_readable(self.call.as_raw_fd(), left.as_millis().max(1) as i32) {
                let mut b = [0u8; 8];
                if let Ok(8) = self.call.read(&mut b) {
                    self.signals += u64::from_ne_bytes(b);
                }
            }
        }
    }

    /// Drains the call eventfd (after a completion was signalled).
    fn clear_call(&mut self) {
        let mut b = [0u8; 8];
        let _ = self.call.read(&mut b);
    }

    /// Busy-polls the used ring (benchmarks), up to `timeout`.
    pub fn spin(&mut self, mem: &Memory, timeout: Duration) -> Vec<Used> {
        let end = Instant::now() + timeout;
        loop {
            let u = self.reap(mem);
            if !u.is_empty() || Instant::now() >= end {
                return u;
            }
            std::hint::spin_loop();
        }
    }
}

/// Options of a session.
#[derive(Clone, Debug)]
pub struct Options {
    pub dev: String,
    pub wwpn: String,
    pub io_queues: u32,
    pub ring: u16,
    pub mem_mib: usize,
    pub features: u64,
    /// One worker per I/O queue (`VHOST_NEW_WORKER` + attach), as QEMU's
    /// `worker_per_virtqueue=on`.
    pub worker_per_queue: bool,
    /// `VHOST_SET_VRING_BUSYLOOP_TIMEOUT` of every I/O queue (microseconds).
    pub busyloop_us: Option<u32>,
    /// The CPU the vhost workers run on: this process is bound to it while
    /// it creates them (a worker inherits its creator's CPU mask), then
    /// given back its own mask.
    pub worker_cpu: Option<usize>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dev: "/dev/vhost-scsi".into(),
            wwpn: String::new(),
            io_queues: 1,
            ring: 128,
            mem_mib: 64,
            features: F_VERSION_1,
            worker_per_queue: false,
            busyloop_us: None,
            worker_cpu: None,
        }
    }
}

/// An open device with its memory, queues (0 ctl, 1 evt, 2.. I/O) and,
/// once `start`ed, its endpoint.
pub struct Session {
    pub file: File,
    pub mem: Memory,
    pub queues: Vec<Queue>,
    pub opts: Options,
    pub features: u64,
    started: bool,
    /// The dirty log bitmap (one bit per 4 KiB page of our memory), once
    /// logging was started.
    log: Option<Vec<u8>>,
    /// Completions reaped while waiting for another chain: (queue, used).
    pub stash: Vec<(usize, Used)>,
}

/// An ioctl whose argument is `v`; the callers pair each request with a
/// value of the size it encodes.
fn ioctl_val<T: Copy>(f: &File, req: u32, v: &mut T) -> io::Result<c_int> {
    debug_assert_eq!((req >> 16) as usize & 0x3fff, std::mem::size_of::<T>());
    // SAFETY: `v` is a live, writable value of the size `req` encodes.
    unsafe { sys::ioctl_ptr(f.as_raw_fd(), req, (v as *mut T).cast()) }
}

/// An ioctl whose argument is the buffer `b` (at least the encoded size).
fn ioctl_bytes(f: &File, req: u32, b: &mut [u8]) -> io::Result<c_int> {
    assert!(b.len() >= (req >> 16) as usize & 0x3fff);
    // SAFETY: `b` is writable and at least as large as `req` encodes.
    unsafe { sys::ioctl_ptr(f.as_raw_fd(), req, b.as_mut_ptr()) }
}

fn state(index: u32, num: u32) -> [u32; 2] {
    [index, num]
}

impl Session {
    /// Opens the device and sets up owner, features, memory and queues
    /// (in QEMU's order), without setting the endpoint.
    pub fn open(opts: &Options) -> io::Result<Session> {
        let file = OpenOptions::new().read(true).write(true).open(&opts.dev)?;
        // Dropped when `open` returns, its workers made (or on an error).
        let _bound = opts.worker_cpu.map(sys::bind_to_cpu).transpose()?;
        // SAFETY: VHOST_SET_OWNER takes no argument.
        unsafe { sys::ioctl_ptr(file.as_raw_fd(), sys::SET_OWNER, std::ptr::null_mut())? };
        let mut offered = 0u64;
        ioctl_val(&file, sys::GET_FEATURES, &mut offered)?;
        let mut features = opts.features & offered;
        ioctl_val(&file, sys::SET_FEATURES, &mut features)?;
        let mut mem = Memory::new(opts.mem_mib << 20)?;
        // struct vhost_memory with one region: guest address = our address.
        let mut table = [0u8; 8 + 32];
        table[0..4].copy_from_slice(&1u32.to_ne_bytes());
        table[8..16].copy_from_slice(&mem.base().to_ne_bytes());
        table[16..24].copy_from_slice(&(mem.len() as u64).to_ne_bytes());
        table[24..32].copy_from_slice(&mem.base().to_ne_bytes());
        ioctl_bytes(&file, sys::SET_MEM_TABLE, &mut table)?;
        let nq = 2 + opts.io_queues;
        let mut queues = Vec::new();
        for i in 0..nq {
            let mut q = Queue::new(&mut mem, i, opts.ring)?;
            q.event_idx = features & F_EVENT_IDX != 0;
            if opts.worker_per_queue && i >= 3 {
                let mut w = 0u32;
                ioctl_val(&file, sys::NEW_WORKER, &mut w)?;
                let mut a = [i, w];
                ioctl_val(&file, sys::ATTACH_VRING_WORKER, &mut a)?;
            }
            ioctl_val(
                &file,
                sys::SET_VRING_NUM,
                &mut state(i, u32::from(opts.ring)),
            )?;
            ioctl_val(&file, sys::SET_VRING_BASE, &mut state(i, 0))?;
            let mut addr = [0u64; 5];
            addr[0] = u64::from(i);
            addr[1] = q.desc;
            addr[2] = q.used;
            addr[3] = q.avail;
            ioctl_val(&file, sys::SET_VRING_ADDR, &mut addr)?;
            let mut k = [i, q.kick.as_raw_fd() as u32];
            ioctl_val(&file, sys::SET_VRING_KICK, &mut k)?;
            let mut c = [i, q.call.as_raw_fd() as u32];
            ioctl_val(&file, sys::SET_VRING_CALL, &mut c)?;
            if let (Some(us), true) = (opts.busyloop_us, i >= 2) {
                ioctl_val(&file, sys::SET_VRING_BUSYLOOP_TIMEOUT, &mut state(i, us))?;
            }
            queues.push(q);
        }
        Ok(Session {
            file,
            mem,
            queues,
            opts: opts.clone(),
            features,
            started: false,
            log: None,
            stash: Vec::new(),
        })
    }

    fn target_arg(&self) -> [u8; 232] {
        let mut t = [0u8; 232];
        t[0..4].copy_from_slice(&1i32.to_ne_bytes());
        let w = self.opts.wwpn.as_bytes();
        t[4..4 + w.len().min(223)].copy_from_slice(&w[..w.len().min(223)]);
        t
    }

    pub fn set_endpoint(&mut self) -> io::Result<()> {
        let mut t = self.target_arg();
        ioctl_bytes(&self.file, sys::SCSI_SET_ENDPOINT, &mut t)?;
        self.started = true;
        Ok(())
    }

    pub fn clear_endpoint(&mut self) -> io::Result<()> {
        let mut t = self.target_arg();
        ioctl_bytes(&self.file, sys::SCSI_CLEAR_ENDPOINT, &mut t)?;
        self.started = false;
        Ok(())
    }

    pub fn events_missed(&self) -> io::Result<u32> {
        let mut v = 0u32;
        ioctl_val(&self.file, sys::SCSI_GET_EVENTS_MISSED, &mut v)?;
        Ok(v)
    }

    pub fn set_events_missed(&self, mut v: u32) -> io::Result<()> {
        ioctl_val(&self.file, sys::SCSI_SET_EVENTS_MISSED, &mut v)?;
        Ok(())
    }

    /// Points every queue's used-ring logging on or off (as QEMU does when
    /// migration starts and ends).
    fn set_log_used(&self, on: bool) -> io::Result<()> {
        for q in &self.queues {
            let mut addr = [0u64; 5];
            addr[0] = u64::from(q.index) | (u64::from(on) << 32);
            addr[1] = q.desc;
            addr[2] = q.used;
            addr[3] = q.avail;
            addr[4] = q.used;
            ioctl_val(&self.file, sys::SET_VRING_ADDR, &mut addr)?;
        }
        Ok(())
    }

    /// Starts dirty logging: a bitmap of our memory (VHOST_SET_LOG_BASE),
    /// VHOST_F_LOG_ALL, used-ring logging; from now on the queues record
    /// the writable buffers of each completed chain.
    pub fn log_start(&mut self) -> io::Result<()> {
        const PAGE: u64 = 4096;
        if self.log.is_none() {
            self.log = Some(vec![0u8; self.mem.len() / PAGE as usize / 8 + 2]);
        }
        let first = self.mem.base() / PAGE;
        // Bit p of the log is page p: the bitmap starts at our first page.
        let mut base = self.log.as_ref().map_or(0, |b| b.as_ptr() as u64) - first / 8;
        ioctl_val(&self.file, sys::SET_LOG_BASE, &mut base)?;
        let mut f = self.features | F_LOG_ALL;
        ioctl_val(&self.file, sys::SET_FEATURES, &mut f)?;
        self.features = f;
        self.set_log_used(true)?;
        for q in &mut self.queues {
            q.written.get_or_insert_with(Vec::new);
        }
        Ok(())
    }

    /// Stops dirty logging (the bitmap stays for [`Session::log_check`]).
    pub fn log_stop(&mut self) -> io::Result<()> {
        let mut f = self.features & !F_LOG_ALL;
        ioctl_val(&self.file, sys::SET_FEATURES, &mut f)?;
        self.features = f;
        self.set_log_used(false)?;
        for q in &mut self.queues {
            q.written = None;
        }
        Ok(())
    }

    /// Clears the bitmap and the recorded buffers.
    pub fn log_clear(&mut self) {
        if let Some(b) = self.log.as_mut() {
            b.fill(0);
        }
        for q in &mut self.queues {
            if let Some(w) = q.written.as_mut() {
                w.clear();
            }
        }
    }

    /// Compares the bitmap with the pages the device wrote since logging
    /// started (or was cleared): every page of a writable buffer of a
    /// completed chain must be marked; a marked page must be one of them or
    /// of a used ring.  Returns (pages marked, pages written).
    pub fn log_check(&self) -> Result<(usize, usize), String> {
        const PAGE: u64 = 4096;
        let Some(bits) = self.log.as_ref() else {
            return Err("logging never started".into());
        };
        let first = self.mem.base() / PAGE;
        let pages = self.mem.len() as u64 / PAGE;
        let mut want = vec![false; pages as usize];
        let mut ring = vec![false; pages as usize];
        let mark = |v: &mut Vec<bool>, addr: u64, len: u64| {
            if len == 0 {
                return;
            }
            for p in addr / PAGE..=(addr + len - 1) / PAGE {
                if let Some(x) = p.checked_sub(first).and_then(|i| v.get_mut(i as usize)) {
                    *x = true;
                }
            }
        };
        for q in &self.queues {
            for &(a, l) in q.written.iter().flatten() {
                mark(&mut want, a, u64::from(l));
            }
            mark(&mut ring, q.used, 6 + 8 * u64::from(q.num));
        }
        let bit = |p: u64| {
            let abs = first + p;
            let byte = abs / 8 - first / 8;
            // SAFETY: inside the bitmap; the kernel sets bits in it.
            let b = unsafe { std::ptr::read_volatile(bits.as_ptr().add(byte as usize)) };
            b & (1 << (abs % 8)) != 0
        };
        let (mut marked, mut written) = (0, 0);
        for p in 0..pages {
            let (w, r, m) = (want[p as usize], ring[p as usize], bit(p));
            written += usize::from(w);
            marked += usize::from(m);
            if w && !m {
                return Err(format!(
                    "page {:#x} written by the device, not logged",
                    (first + p) * PAGE
                ));
            }
            if m && !w && !r {
                return Err(format!(
                    "page {:#x} logged, never written",
                    (first + p) * PAGE
                ));
            }
        }
        Ok((marked, written))
    }

    pub fn abi_version(&self) -> io::Result<i32> {
        let mut v = 0i32;
        ioctl_val(&self.file, sys::SCSI_GET_ABI_VERSION, &mut v)?;
        Ok(v)
    }

    pub fn pi(&self) -> bool {
        self.features & F_T10_PI != 0
    }
}

/// What a command returned.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The chain came back with a response.
    Done { resp: CmdResp, used_len: u32 },
    /// The chain came back but its response buffer holds no valid response.
    Garbled { used_len: u32 },
    /// No completion within the timeout.
    NoResponse,
}

/// A SCSI command for [`Session::command`].
pub struct Command<'a> {
    pub queue: usize,
    pub target: u8,
    pub lun: u16,
    pub tag: u64,
    pub cdb: &'a [u8],
    pub data_out: &'a [u8],
    pub data_in: usize,
    /// Leading bytes of `data_out` that are protection information
    /// (`pi_bytesout`, with VIRTIO_SCSI_F_T10_PI).
    pub pi_out: u32,
    /// Leading bytes of the `data_in` buffer for protection information
    /// (`pi_bytesin`).
    pub pi_in: u32,
}

impl Session {
    /// Sends one command and waits for it; returns the outcome and the
    /// data-in bytes.
    pub fn command(&mut self, c: &Command<'_>, timeout: Duration) -> (Outcome, Vec<u8>) {
        self.command_attr(c, TaskAttr::Simple, timeout)
    }

    /// As [`Session::command`], with the task attribute `attr`.
    pub fn command_attr(
        &mut self,
        c: &Command<'_>,
        attr: TaskAttr,
        timeout: Duration,
    ) -> (Outcome, Vec<u8>) {
        let pi = self.pi();
        let mut req = CmdReq {
            lun: tcm_virt_wire::virtio_scsi::encode_lun(c.target, c.lun),
            tag: c.tag,
            task_attr: attr,
            prio: 0,
            crn: 0,
            pi_bytesout: c.pi_out,
            pi_bytesin: c.pi_in,
            cdb: [0; 32],
        };
        req.cdb[..c.cdb.len()].copy_from_slice(c.cdb);
        let hlen = CmdReq::header_size(pi);
        let hdr = self.mem.alloc(hlen, 8);
        req.encode(pi, self.mem.slice_mut(hdr, hlen));
        let mut bufs = vec![Buf {
            addr: hdr,
            len: hlen as u32,
            write: false,
        }];
        if !c.data_out.is_empty() {
            let d = self.mem.alloc(c.data_out.len(), 4096);
            self.mem
                .slice_mut(d, c.data_out.len())
                .copy_from_slice(c.data_out);
            bufs.push(Buf {
                addr: d,
                len: c.data_out.len() as u32,
                write: false,
            });
        }
        let resp = self.mem.alloc(CMD_RESP_SIZE, 8);
        bufs.push(Buf {
            addr: resp,
            len: CMD_RESP_SIZE as u32,
            write: true,
        });
        let din = if c.data_in > 0 {
            let d = self.mem.alloc(c.data_in, 4096);
            bufs.push(Buf {
                addr: d,
                len: c.data_in as u32,
                write: true,
            });
            d
        } else {
            0
        };
        let out = self.raw(c.queue, &bufs, resp, timeout);
        let data = if din != 0 {
            self.mem.slice(din, c.data_in).to_vec()
        } else {
            Vec::new()
        };
        (out, data)
    }

    /// Sends a hand-built chain whose response buffer is at `resp`.
    pub fn raw(&mut self, queue: usize, bufs: &[Buf], resp: u64, timeout: Duration) -> Outcome {
        self.mem.slice_mut(resp, 12)[11] = 0xff;
        let q = &mut self.queues[queue];
        let Some(head) = q.build(&self.mem, bufs) else {
            return Outcome::NoResponse;
        };
        self.submit_wait(queue, head, resp, timeout)
    }

    /// Publishes a built chain, kicks and waits for it.
    pub fn submit_wait(
        &mut self,
        queue: usize,
        head: u16,
        resp: u64,
        timeout: Duration,
    ) -> Outcome {
        let q = &mut self.queues[queue];
        q.publish(&self.mem, head);
        q.kick();
        self.wait_for(queue, head, resp, timeout)
    }

    /// Waits for the chain `head` of `queue` (published earlier) and reads
    /// its response at `resp`; other completions are kept in `stash`.
    pub fn wait_for(&mut self, queue: usize, head: u16, resp: u64, timeout: Duration) -> Outcome {
        let end = Instant::now() + timeout;
        let mut first = true;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let mut done = if first {
                // It may have completed while we waited for another.
                first = false;
                let mut v: Vec<Used> = Vec::new();
                self.stash.retain(|(q, u)| {
                    let mine = *q == queue && u.head == head;
                    if mine {
                        v.push(*u);
                    }
                    !mine
                });
                v
            } else {
                Vec::new()
            };
            if done.is_empty() {
                done = self.queues[queue].wait(&self.mem, left);
            }
            for u in done.iter().filter(|u| u.head != head) {
                self.stash.push((queue, *u));
            }
            if let Some(u) = done.iter().find(|u| u.head == head) {
                // The response byte 11 was preset to 0xff: a device that
                // wrote nothing leaves an invalid code there.  (The used
                // length is not trusted: C vhost_scsi always writes 0.)
                return match CmdResp::decode(self.mem.slice(resp, CMD_RESP_SIZE)) {
                    Some(r) => Outcome::Done {
                        resp: r,
                        used_len: u.len,
                    },
                    _ => Outcome::Garbled { used_len: u.len },
                };
            }
            if left.is_zero() {
                return Outcome::NoResponse;
            }
        }
    }

    /// Completions of the queues `qs`, waiting up to `timeout` for at least
    /// one on any of them: (queue, used).
    pub fn wait_any(&mut self, qs: &[usize], timeout: Duration) -> Vec<(usize, Used)> {
        let end = Instant::now() + timeout;
        loop {
            let mut out = Vec::new();
            for &q in qs {
                for u in self.queues[q].reap(&self.mem) {
                    out.push((q, u));
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            if !out.is_empty() || left.is_zero() {
                return out;
            }
            let fds: Vec<_> = qs
                .iter()
                .map(|&q| self.queues[q].call.as_raw_fd())
                .collect();
            if sys::wait_any_readable(&fds, left.as_millis().max(1) as i32) {
                for &q in qs {
                    self.queues[q].clear_call();
                }
            }
        }
    }

    /// Whether `len` bytes at `addr` lie in the driver memory.
    pub fn mem_contains(&self, addr: u64, len: u32) -> bool {
        addr >= self.mem.base()
            && addr
                .checked_add(u64::from(len))
                .is_some_and(|e| e <= self.mem.base() + self.mem.len() as u64)
    }

    /// Frees driver memory allocated since `mark` (bump allocator reset).
    pub fn mark(&self) -> usize {
        self.mem.next
    }

    pub fn release_to(&mut self, mark: usize) {
        self.mem.next = mark;
    }
}

/// The test data of `nblocks` blocks of `bs` bytes from `lba`, for seed
/// `seed`: each block depends only on its own LBA, so the tools (vsdrv,
/// mfi) verify what the other wrote.
pub fn pattern(seed: u64, lba: u64, nblocks: usize, bs: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(nblocks * bs);
    for b in 0..nblocks as u64 {
        let mut x = seed ^ (lba + b).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for _ in 0..bs / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
    }
    v
}

/// The bytes of `hex` (two hex digits each), at most `max` of them.
pub fn parse_hex(hex: &str, max: usize) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) || hex.len() > 2 * max {
        return Err(format!("bad hex string '{hex}'"));
    }
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// The T10-DIF guard tag of `block`: CRC-16 with polynomial 8BB7h, initial
/// value 0, most significant bit first (SBC-3).
pub fn crc_t10dif(block: &[u8]) -> u16 {
    block.iter().fold(0u16, |mut crc, &b| {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x8bb7
            } else {
                crc << 1
            };
        }
        crc
    })
}

/// Type 1 protection information for `data` (blocks of `bs` bytes from
/// `lba`): per block, the guard tag, application tag 0 and the low 32 bits
/// of the LBA as reference tag, big-endian.
pub fn pi_type1(data: &[u8], lba: u64, bs: usize) -> Vec<u8> {
    let mut pi = Vec::with_capacity(data.len() / bs * 8);
    for (i, b) in data.chunks(bs).enumerate() {
        pi.extend_from_slice(&crc_t10dif(b).to_be_bytes());
        pi.extend_from_slice(&0u16.to_be_bytes());
        pi.extend_from_slice(&((lba + i as u64) as u32).to_be_bytes());
    }
    pi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10dif_check_value() {
        // The CRC catalogue's check value of CRC-16/T10-DIF.
        assert_eq!(crc_t10dif(b"123456789"), 0xd0db);
        assert_eq!(crc_t10dif(&[0u8; 512]), 0);
        let pi = pi_type1(&[0u8; 1024], 7, 512);
        assert_eq!(pi, [0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 8]);
    }
}
