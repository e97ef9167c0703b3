// SPDX-License-Identifier: GPL-2.0
//! mfi: a MegaRAID MFI initiator in userspace, for tcm_virt's megasas front
//! end (`/dev/tcm-megasas`, ABI in `include/uapi/linux/tcm_megasas.h`).
//!
//! It does what a VMM and the Linux `megaraid_sas` driver do together: owns
//! memory and registers it as the adapter's memory table (frame addresses
//! equal to process addresses), maps the register page, posts frames to
//! the inbound queue, and reads answers from the frames and the reply
//! queue that `MFI_CMD_INIT` sets up.

mod layout;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::raw::c_int;
use std::time::{Duration, Instant};
use tcm_virt_wire::mfi::{self, flag, off, op, stat, SgeFormat};
use vsdrv::{sys, Memory};

/// The adapter's uAPI, `include/uapi/linux/tcm_megasas.h` (bindgen, in
/// `build.rs`): the module's bindings come from the same header.
#[allow(dead_code, non_camel_case_types, non_upper_case_globals, clippy::all)]
pub mod uapi {
    include!(concat!(env!("OUT_DIR"), "/tcm_megasas.rs"));
}
use core::mem::{offset_of, size_of};
use uapi::{tcm_megasas_endpoint as Endpoint, tcm_megasas_regs as Regs};

const IOC_WRITE: u32 = 1;
const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (0xaf << 8) | nr
}
pub const GET_ABI_VERSION: u32 = uapi::TCM_VIRT_MEGASAS_GET_ABI_VERSION;
pub const SET_ENDPOINT: u32 = uapi::TCM_VIRT_MEGASAS_SET_ENDPOINT;
pub const CLEAR_ENDPOINT: u32 = uapi::TCM_VIRT_MEGASAS_CLEAR_ENDPOINT;
pub const DOORBELL: u32 = uapi::TCM_VIRT_MEGASAS_DOORBELL;
pub const RESET: u32 = uapi::TCM_VIRT_MEGASAS_RESET;

pub const REGS_SIZE: usize = uapi::TCM_MEGASAS_REGS_SIZE as usize;
const _: () = assert!(size_of::<Regs>() <= REGS_SIZE);
pub const IQ_ENTRIES: u32 = uapi::TCM_MEGASAS_IQ_ENTRIES;
const R_FW_STATUS: usize = offset_of!(Regs, fw_status);
const R_IQ_PRODUCER: usize = offset_of!(Regs, iq_producer);
const R_IQ_CONSUMER: usize = offset_of!(Regs, iq_consumer);
const R_REPLIES: usize = offset_of!(Regs, replies);
const R_ERRORS: usize = offset_of!(Regs, errors);
const R_IQ_NO_KICK: usize = offset_of!(Regs, iq_no_kick);
const R_IQ: usize = offset_of!(Regs, iq);
/// Bytes of `struct tcm_megasas_endpoint`, the SET_ENDPOINT argument.
pub const EP_SIZE: usize = size_of::<Endpoint>();

// The ABI as released (ABI version 1): programs built against it keep
// these numbers, so the header must not move them.
const _: () = assert!(GET_ABI_VERSION == 0x8004_afa0 && SET_ENDPOINT == 0x4100_afa1);
const _: () = assert!(CLEAR_ENDPOINT == 0x4100_afa2 && DOORBELL == 0xafa3 && RESET == 0xafa4);
const _: () = assert!(EP_SIZE == 256 && R_IQ_PRODUCER == 12 && R_ERRORS == 24 && R_IQ == 256);

/// Where the memory appears in the adapter's address space (as guest RAM
/// does for a VMM): below 4 GiB, so 32-bit SGEs and sense addresses work.
pub const GPA_BASE: u64 = 0x1000_0000;

/// Bytes of memory per command slot (frames + sense), as Linux's 1024.
pub const SLOT_BYTES: usize = 1024;
/// Command slots the tool uses.
pub const SLOTS: usize = 64;

/// Options of an adapter session.
#[derive(Clone, Debug)]
pub struct Options {
    pub dev: String,
    pub wwpn: String,
    pub tpgt: u16,
    pub jbod: bool,
    pub mem_mib: usize,
    pub context64: bool,
    /// The CPU the adapter's worker runs on: this thread is bound to it
    /// while it makes the worker (`VHOST_SET_OWNER`; a worker takes its
    /// creator's CPU mask), then gets its own mask back.
    pub worker_cpu: Option<usize>,
    /// `VHOST_SET_VRING_BUSYLOOP_TIMEOUT` of the adapter's queue (µs).
    pub busyloop_us: Option<u32>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dev: "/dev/tcm-megasas".into(),
            wwpn: String::new(),
            tpgt: 1,
            jbod: false,
            mem_mib: 16,
            context64: false,
            worker_cpu: None,
            busyloop_us: None,
        }
    }
}

/// The answer of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub cmd_status: u8,
    pub scsi_status: u8,
    pub sense_len: u8,
    /// The frame's data length after completion (rewritten on underrun).
    pub data_len: u32,
}

/// One adapter (one open file).
pub struct Adapter {
    file: File,
    pub mem: Memory,
    regs: *mut u8,
    _kick: File,
    call: File,
    pub opts: Options,
    /// Frame memory: SLOTS x SLOT_BYTES.
    pub frames: u64,
    /// Data buffer per slot.
    pub data: u64,
    pub data_bytes: usize,
    ring: u64,
    producer: u64,
    consumer: u64,
    entries: u32,
    next_consumer: u32,
    /// Contexts reaped but not yet waited for.
    reaped: Vec<u64>,
    /// Signals of the call eventfd read so far (its counter adds them up).
    pub signals: u64,
    /// The `replies` register at INIT, and the entries reaped since.
    replies_base: u32,
    reaped_total: u32,
    /// The most the `replies` register was seen ahead of the entries the
    /// producer index had published (a VMM's reply interrupt status would
    /// have announced replies the guest could not see yet): 0 expected.
    pub replies_ahead: u32,
    /// Kicks rung, and posts whose kick was left out (`iq_no_kick` set).
    pub kicks: std::cell::Cell<u64>,
    pub kicks_left_out: u64,
}

fn ioctl_bytes(f: &File, req: u32, b: &mut [u8]) -> io::Result<c_int> {
    assert!(b.len() >= (req >> 16) as usize & 0x3fff);
    // SAFETY: `b` is writable and at least as large as `req` encodes.
    unsafe { sys::ioctl_ptr(f.as_raw_fd(), req, b.as_mut_ptr()) }
}

impl Adapter {
    /// Opens the device: owner, memory table, eventfds, endpoint, register
    /// page.  The adapter is READY; [`Adapter::init`] makes it OPERATIONAL.
    pub fn open(opts: &Options) -> io::Result<Adapter> {
        let file = OpenOptions::new().read(true).write(true).open(&opts.dev)?;
        // VHOST_SET_OWNER, the worker made on `worker_cpu` if given.
        let bound = opts.worker_cpu.map(sys::bind_to_cpu).transpose()?;
        // SAFETY: takes no argument.
        unsafe { sys::ioctl_ptr(file.as_raw_fd(), ioc(0, 0x01, 0), std::ptr::null_mut())? };
        drop(bound);
        let mut mem = Memory::new(opts.mem_mib << 20)?;
        let mut table = mem_table(&[(GPA_BASE, mem.len() as u64, mem.base())]);
        ioctl_bytes(&file, ioc(IOC_WRITE, 0x03, 8), &mut table)?;
        // SAFETY: fresh eventfds, owned by the Files.
        let kick = unsafe { File::from_raw_fd(sys::new_eventfd()?) };
        // SAFETY: `new_eventfd` just returned a fresh fd that nothing else owns; the `File`
        // takes sole ownership.
        let call = unsafe { File::from_raw_fd(sys::new_eventfd()?) };
        let mut k = [0u32, kick.as_raw_fd() as u32];
        // SAFETY: VHOST_SET_VRING_KICK takes a vhost_vring_file (8 bytes).
        unsafe {
            sys::ioctl_ptr(
                file.as_raw_fd(),
                ioc(IOC_WRITE, 0x20, 8),
                k.as_mut_ptr().cast(),
            )?
        };
        let mut c = [0u32, call.as_raw_fd() as u32];
        // SAFETY: VHOST_SET_VRING_CALL takes a vhost_vring_file (8 bytes), and `c` is two u32s
        // that the kernel only reads.
        unsafe {
            sys::ioctl_ptr(
                file.as_raw_fd(),
                ioc(IOC_WRITE, 0x21, 8),
                c.as_mut_ptr().cast(),
            )?
        };
        let frames = mem.alloc(SLOTS * SLOT_BYTES, 4096);
        let data_bytes = 1 << 20;
        let data = mem.alloc(SLOTS * data_bytes / 8, 4096);
        let entries = mfi::MAX_CMDS + 1;
        let ring = mem.alloc(entries as usize * 8, 64);
        let producer = mem.alloc(64, 64);
        let consumer = producer + 4;
        let regs = sys::map_shared(file.as_raw_fd(), REGS_SIZE)?;
        let mut a = Adapter {
            file,
            mem,
            regs,
            _kick: kick,
            call,
            opts: opts.clone(),
            frames,
            data,
            data_bytes: data_bytes / 8,
            ring,
            producer,
            consumer,
            entries,
            next_consumer: 0,
            reaped: Vec::new(),
            signals: 0,
            replies_base: 0,
            reaped_total: 0,
            replies_ahead: 0,
            kicks: std::cell::Cell::new(0),
            kicks_left_out: 0,
        };
        if let Some(us) = opts.busyloop_us {
            a.set_busyloop(us)?;
        }
        a.set_endpoint()?;
        Ok(a)
    }

    fn endpoint_arg(&self) -> [u8; EP_SIZE] {
        endpoint_arg(&self.opts)
    }

    pub fn set_endpoint(&mut self) -> io::Result<()> {
        let mut t = self.endpoint_arg();
        ioctl_bytes(&self.file, SET_ENDPOINT, &mut t).map(|_| ())
    }

    pub fn clear_endpoint(&mut self) -> io::Result<()> {
        let mut t = self.endpoint_arg();
        ioctl_bytes(&self.file, CLEAR_ENDPOINT, &mut t).map(|_| ())
    }

    /// A raw ioctl of the device (for tests of bad arguments).
    pub fn ioctl(&self, req: u32, arg: &mut [u8]) -> io::Result<c_int> {
        if arg.is_empty() {
            // SAFETY: a request without argument.
            unsafe { sys::ioctl_ptr(self.file.as_raw_fd(), req, std::ptr::null_mut()) }
        } else {
            ioctl_bytes(&self.file, req, arg)
        }
    }

    pub fn reset(&mut self) -> io::Result<()> {
        self.ioctl(RESET, &mut [])?;
        self.next_consumer = 0;
        self.reaped.clear();
        // The reply queue is forgotten: count from here.
        self.replies_base = self.replies();
        self.reaped_total = 0;
        Ok(())
    }

    fn reg(&self, off: usize) -> u32 {
        // SAFETY: inside the mapped register page.
        unsafe { std::ptr::read_volatile(self.regs.add(off).cast::<u32>()) }
    }

    fn set_reg(&self, off: usize, v: u32) {
        // SAFETY: inside the mapped register page.
        unsafe { std::ptr::write_volatile(self.regs.add(off).cast::<u32>(), v) }
    }

    pub fn fw_status(&self) -> u32 {
        self.reg(R_FW_STATUS)
    }

    pub fn errors(&self) -> u32 {
        self.reg(R_ERRORS)
    }

    /// The `replies` register, read with Acquire: pairs with the adapter's
    /// Release add, made after it wrote the producer index.
    pub fn replies(&self) -> u32 {
        self.reg_atomic(R_REPLIES)
            .load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn iq_producer(&self) -> u32 {
        self.reg(R_IQ_PRODUCER)
    }

    pub fn iq_consumer(&self) -> u32 {
        self.reg(R_IQ_CONSUMER)
    }

    /// Writes a raw inbound queue entry and kicks.
    pub fn post_raw(&mut self, v: u64) {
        self.post_raw_quiet(v);
        self.kick();
    }

    /// Writes a raw inbound queue entry without a kick (for the worker's
    /// busy poll to find).
    pub fn post_raw_quiet(&mut self, v: u64) {
        let p = self.reg(R_IQ_PRODUCER);
        let at = R_IQ + 8 * (p % IQ_ENTRIES) as usize;
        // SAFETY: inside the mapped register page.
        unsafe { std::ptr::write_volatile(self.regs.add(at).cast::<u64>(), v) };
        // Release: the entry before the producer index that names it.
        self.reg_atomic(R_IQ_PRODUCER)
            .store(p.wrapping_add(1), std::sync::atomic::Ordering::Release);
    }

    /// The register at `off` as an atomic (the adapter reads and writes
    /// the page concurrently).
    fn reg_atomic(&self, off: usize) -> &std::sync::atomic::AtomicU32 {
        assert!(off.is_multiple_of(4) && off + 4 <= REGS_SIZE);
        // SAFETY: the register page is mapped while `self` lives; `off` is
        // inside it and 4-byte aligned (checked above); AtomicU32 has
        // u32's layout.
        unsafe { &*self.regs.add(off).cast::<std::sync::atomic::AtomicU32>() }
    }

    /// `VHOST_SET_VRING_BUSYLOOP_TIMEOUT` of the adapter's queue.
    pub fn set_busyloop(&self, us: u32) -> io::Result<()> {
        let mut b = [0u32, us];
        // SAFETY: VHOST_SET_VRING_BUSYLOOP_TIMEOUT takes a
        // vhost_vring_state (8 bytes), which the kernel only reads.
        unsafe {
            sys::ioctl_ptr(
                self.file.as_raw_fd(),
                ioc(IOC_WRITE, 0x23, 8),
                b.as_mut_ptr().cast(),
            )?
        };
        Ok(())
    }

    /// Sets the inbound producer index itself (for tests of bad indexes).
    pub fn set_iq_producer(&mut self, v: u32) {
        self.set_reg(R_IQ_PRODUCER, v);
        self.kick();
    }

    pub fn kick(&self) {
        self.kicks.set(self.kicks.get() + 1);
        let _ = io::Write::write(&mut &self._kick, &1u64.to_ne_bytes());
    }

    /// The `iq_no_kick` register (non-zero: the worker reads the inbound
    /// queue and reads the producer index again before it waits).
    pub fn iq_no_kick(&self) -> u32 {
        self.reg_atomic(R_IQ_NO_KICK)
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// [`Adapter::post`], leaving the kick out when the adapter says it
    /// needs none: the producer index stored, a full barrier (pairs with
    /// the worker's between clearing `iq_no_kick` and reading the producer
    /// index), then `iq_no_kick` read.  Returns whether it kicked.
    pub fn post_lazy(&mut self, i: usize, frame: &[u8]) -> bool {
        let v = self.place(i, frame);
        self.post_raw_quiet(v);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if self.iq_no_kick() != 0 {
            self.kicks_left_out += 1;
            return false;
        }
        self.kick();
        true
    }

    /// The adapter's address of our address `p`.
    pub fn gpa(&self, p: u64) -> u64 {
        p - self.mem.base() + GPA_BASE
    }

    /// The address of slot `i`'s frame.
    pub fn frame_addr(&self, i: usize) -> u64 {
        self.frames + (i * SLOT_BYTES) as u64
    }

    /// The sense buffer of slot `i` (after 8 frames).
    pub fn sense_addr(&self, i: usize) -> u64 {
        self.frame_addr(i) + mfi::MAX_FRAME_BYTES as u64
    }

    pub fn data_addr(&self, i: usize) -> u64 {
        self.data + (i * self.data_bytes) as u64
    }

    /// Writes `frame` into slot `i` (with cmd_status preset to 0xFF) and
    /// posts it.
    pub fn post(&mut self, i: usize, frame: &[u8]) {
        let v = self.place(i, frame);
        self.post_raw(v);
    }

    /// [`Adapter::post`] without the kick.
    pub fn post_quiet(&mut self, i: usize, frame: &[u8]) {
        let v = self.place(i, frame);
        self.post_raw_quiet(v);
    }

    /// Writes `frame` into slot `i` with cmd_status preset to 0xFF; its
    /// inbound queue entry.
    fn place(&mut self, i: usize, frame: &[u8]) -> u64 {
        let a = self.frame_addr(i);
        let f = self.mem.slice_mut(a, frame.len());
        f.copy_from_slice(frame);
        f[off::CMD_STATUS] = stat::INVALID_STATUS;
        let extra = frame.len().div_ceil(mfi::FRAME_SIZE) - 1;
        mfi::encode_posted(self.gpa(a), extra as u8)
    }

    /// The answer fields of slot `i`'s frame.
    pub fn answer(&self, i: usize) -> Answer {
        let f = self.mem.slice(self.frame_addr(i), 64);
        // SAFETY: inside our memory; the adapter writes it.
        let st = unsafe { std::ptr::read_volatile(&f[off::CMD_STATUS]) };
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        Answer {
            cmd_status: st,
            scsi_status: f[off::SCSI_STATUS],
            sense_len: f[off::SENSE_LEN],
            data_len: u32::from_le_bytes(f[0x14..0x18].try_into().unwrap()),
        }
    }

    /// Polls slot `i`'s `cmd_status` until it is no longer 0xFF.
    pub fn wait_polled(&self, i: usize, timeout: Duration) -> Option<Answer> {
        let end = Instant::now() + timeout;
        loop {
            let a = self.answer(i);
            if a.cmd_status != stat::INVALID_STATUS {
                return Some(a);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Reads new reply queue entries.
    ///
    /// The `replies` register first, then the producer index: every reply
    /// the register counts must be published by then (checked into
    /// `replies_ahead`).
    pub fn reap(&mut self) {
        use std::sync::atomic::{fence, Ordering};
        let counted = self.replies().wrapping_sub(self.replies_base);
        // SAFETY: inside our memory; the adapter writes it.
        let p = unsafe {
            std::ptr::read_volatile(self.mem.slice(self.producer, 4).as_ptr().cast::<u32>())
        };
        let p = u32::from_le(p);
        // The entries after the producer index that published them.
        fence(Ordering::Acquire);
        let esz = if self.opts.context64 { 8 } else { 4 };
        while self.next_consumer != p && p < self.entries {
            let at = self.ring + u64::from(self.next_consumer) * esz;
            let b = self.mem.slice(at, esz as usize);
            let ctx = if esz == 8 {
                u64::from_le_bytes(b.try_into().unwrap())
            } else {
                u64::from(u32::from_le_bytes(b.try_into().unwrap()))
            };
            self.reaped.push(ctx);
            self.reaped_total = self.reaped_total.wrapping_add(1);
            self.next_consumer = (self.next_consumer + 1) % self.entries;
        }
        // Counted and not reaped: ahead of the producer index read after
        // the count (a difference of less than 2^31: the adapter counts
        // only what it posts into a queue of at most 1001 entries).
        let ahead = counted.wrapping_sub(self.reaped_total);
        if ahead < 1 << 31 {
            self.replies_ahead = self.replies_ahead.max(ahead);
        }
        self.mem
            .slice_mut(self.consumer, 4)
            .copy_from_slice(&self.next_consumer.to_le_bytes());
    }

    /// Waits until the adapter has consumed every inbound entry posted
    /// (it publishes `iq_consumer` after serving the entries it read, and
    /// counts refused ones in `errors` before); false after `timeout`.
    pub fn wait_consumed(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.iq_consumer() != self.iq_producer() {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// Waits for the reply of context `ctx`, sleeping on the call eventfd.
    pub fn wait_reply(&mut self, ctx: u64, timeout: Duration) -> bool {
        self.await_reply(ctx, timeout, false)
    }

    /// Waits for the reply of context `ctx` without sleeping (reaps the
    /// reply queue in a loop), so that the next frame follows the reply
    /// without a wake-up in between; false after `timeout`.
    pub fn spin_reply(&mut self, ctx: u64, timeout: Duration) -> bool {
        self.await_reply(ctx, timeout, true)
    }

    fn await_reply(&mut self, ctx: u64, timeout: Duration, spin: bool) -> bool {
        let end = Instant::now() + timeout;
        loop {
            self.reap();
            if let Some(k) = self.reaped.iter().position(|&c| c == ctx) {
                self.reaped.remove(k);
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if spin {
                std::hint::spin_loop();
            } else if sys::wait_readable(
                self.call.as_raw_fd(),
                left.as_millis().clamp(1, 100) as i32,
            ) {
                self.read_call();
            }
        }
    }

    /// The contexts replied since the last call, waiting up to `timeout`
    /// for at least one.
    pub fn collect(&mut self, timeout: Duration) -> Vec<u64> {
        self.reap();
        if self.reaped.is_empty()
            && sys::wait_readable(
                self.call.as_raw_fd(),
                timeout.as_millis().clamp(0, 5000) as i32,
            )
        {
            self.read_call();
            self.reap();
        }
        std::mem::take(&mut self.reaped)
    }

    /// [`Adapter::collect`] spinning on the reply queue instead of
    /// sleeping on the call eventfd (its signals are counted afterwards by
    /// [`Adapter::count_signals`]): the next frame goes out as soon as the
    /// adapter publishes a reply, while its worker is still ending the
    /// pass.
    pub fn collect_spin(&mut self, timeout: Duration) -> Vec<u64> {
        let end = Instant::now() + timeout;
        loop {
            self.reap();
            if !self.reaped.is_empty() || Instant::now() > end {
                return std::mem::take(&mut self.reaped);
            }
            std::hint::spin_loop();
        }
    }

    /// Reads the call eventfd (readable), counting its signals.
    fn read_call(&mut self) {
        let mut b = [0u8; 8];
        if let Ok(8) = io::Read::read(&mut &self.call, &mut b) {
            self.signals += u64::from_ne_bytes(b);
        }
    }

    /// Counts the signals the call eventfd holds now, without waiting.
    pub fn count_signals(&mut self) {
        if sys::wait_readable(self.call.as_raw_fd(), 0) {
            self.read_call();
        }
    }

    /// Contexts reaped and not waited for (replies nobody asked for).
    pub fn stray_replies(&mut self) -> Vec<u64> {
        self.reap();
        std::mem::take(&mut self.reaped)
    }

    /// MFI_CMD_INIT with a reply queue of `entries` entries (at most the
    /// default, `MAX_CMDS + 1`), polled.
    pub fn init_entries(&mut self, entries: u32) -> Option<u8> {
        self.entries = entries.clamp(2, mfi::MAX_CMDS + 1);
        self.init()
    }

    /// MFI_CMD_INIT, polled.
    pub fn init(&mut self) -> Option<u8> {
        self.mem.slice_mut(self.producer, 8).fill(0);
        self.next_consumer = 0;
        self.replies_base = self.replies();
        self.reaped_total = 0;
        let qi = mfi::QueueInfo {
            context64: self.opts.context64,
            entries: self.entries,
            ring: self.gpa(self.ring),
            producer: self.gpa(self.producer),
            consumer: self.gpa(self.consumer),
        };
        self.init_with(&qi.encode())
    }

    /// MFI_CMD_INIT with the queue info bytes `qi` (slot 0, polled).
    pub fn init_with(&mut self, qi: &[u8; mfi::QINFO_SIZE]) -> Option<u8> {
        let mut f = [0u8; 64];
        f[off::CMD] = op::INIT;
        f[0x10..0x12].copy_from_slice(&flag::DONT_POST_IN_REPLY_QUEUE.to_le_bytes());
        f[0x14..0x18].copy_from_slice(&(mfi::QINFO_SIZE as u32).to_le_bytes());
        let qaddr = self.frame_addr(0) + 64;
        f[off::INIT_QINFO..off::INIT_QINFO + 8].copy_from_slice(&self.gpa(qaddr).to_le_bytes());
        self.mem
            .slice_mut(qaddr, mfi::QINFO_SIZE)
            .copy_from_slice(qi);
        self.post(0, &f);
        self.wait_polled(0, Duration::from_secs(5))
            .map(|a| a.cmd_status)
    }

    /// Posts `frame` in slot `i` with context `i` and waits for its answer
    /// (through the reply queue, or polled).
    pub fn exec(&mut self, i: usize, frame: &mut [u8], timeout: Duration) -> Option<Answer> {
        frame[off::CONTEXT..off::CONTEXT + 8].copy_from_slice(&(i as u64).to_le_bytes());
        let polled =
            u16::from_le_bytes([frame[0x10], frame[0x11]]) & flag::DONT_POST_IN_REPLY_QUEUE != 0;
        self.post(i, frame);
        if polled {
            return self.wait_polled(i, timeout);
        }
        if !self.wait_reply(i as u64, timeout) {
            return None;
        }
        Some(self.answer(i))
    }

    /// A DCMD reading `len` bytes; the status and the data.
    pub fn dcmd(&mut self, opcode: u32, mbox: &[u8], len: usize) -> (u8, Vec<u8>) {
        let slot = 1;
        let buf = self.data_addr(slot);
        self.mem.slice_mut(buf, len.max(1)).fill(0);
        let mut f = dcmd_frame(opcode, mbox, self.gpa(buf), len as u32);
        match self.exec(slot, &mut f, Duration::from_secs(10)) {
            Some(a) => (a.cmd_status, self.mem.slice(buf, len).to_vec()),
            None => (stat::INVALID_STATUS, Vec::new()),
        }
    }

    /// A SCSI pass-through frame to `target`: data out from `out`, or `inn`
    /// bytes in.  Returns the answer, data in and sense.
    pub fn scsi(
        &mut self,
        ld: bool,
        target: u8,
        cdb: &[u8],
        out: &[u8],
        inn: usize,
    ) -> (Option<Answer>, Vec<u8>, Vec<u8>) {
        let slot = 2;
        let buf = self.data_addr(slot);
        let len = out.len().max(inn);
        assert!(len <= self.data_bytes);
        self.mem.slice_mut(buf, len.max(1)).fill(0);
        self.mem.slice_mut(buf, out.len()).copy_from_slice(out);
        let sense = self.sense_addr(slot);
        self.mem.slice_mut(sense, 96).fill(0);
        let dir = if !out.is_empty() {
            flag::DIR_WRITE
        } else if inn > 0 {
            flag::DIR_READ
        } else {
            0
        };
        let sges = [(self.gpa(buf), len as u32)];
        let mut f = pthru_frame(
            ld,
            target,
            cdb,
            dir,
            len as u32,
            self.gpa(sense),
            if len > 0 { &sges } else { &[] },
        );
        let a = self.exec(slot, &mut f, Duration::from_secs(30));
        let sl = a.map_or(0, |a| a.sense_len as usize);
        (
            a,
            self.mem.slice(buf, inn).to_vec(),
            self.mem.slice(sense, sl).to_vec(),
        )
    }

    /// LD_READ / LD_WRITE of `blocks` at `lba` (block size `bs`).
    pub fn ld_rw(
        &mut self,
        write: bool,
        target: u8,
        lba: u64,
        blocks: u32,
        bs: usize,
        data: &mut [u8],
    ) -> Option<Answer> {
        let slot = 3;
        let buf = self.data_addr(slot);
        let len = blocks as usize * bs;
        assert!(len <= self.data_bytes && data.len() >= len);
        if write {
            self.mem.slice_mut(buf, len).copy_from_slice(&data[..len]);
        } else {
            self.mem.slice_mut(buf, len.max(1)).fill(0);
        }
        let mut f = [0u8; 128];
        f[off::CMD] = if write { op::LD_WRITE } else { op::LD_READ };
        f[off::TARGET_ID] = target;
        f[off::SENSE_LEN] = 96;
        f[0x10..0x12].copy_from_slice(
            &(flag::SGL64
                | if write {
                    flag::DIR_WRITE
                } else {
                    flag::DIR_READ
                })
            .to_le_bytes(),
        );
        f[0x14..0x18].copy_from_slice(&blocks.to_le_bytes());
        let sense = self.gpa(self.sense_addr(slot)) as u32;
        f[off::SENSE_ADDR..off::SENSE_ADDR + 4].copy_from_slice(&sense.to_le_bytes());
        f[off::START_LBA..off::START_LBA + 8].copy_from_slice(&lba.to_le_bytes());
        // Two SGEs, to exercise the list.
        let half = (len / 2) & !511;
        let g = self.gpa(buf);
        let two = [(g, half as u32), (g + half as u64, (len - half) as u32)];
        let one = [(g, len as u32)];
        let sges: &[(u64, u32)] = if half > 0 {
            &two
        } else if len > 0 {
            &one
        } else {
            &[]
        };
        f[off::SGE_COUNT] = sges.len() as u8;
        for (k, &(a, l)) in sges.iter().enumerate() {
            mfi::encode_sge(&mut f, off::IO_SGL, k, SgeFormat::Sge64, a, l);
        }
        let a = self.exec(slot, &mut f, Duration::from_secs(30));
        if !write {
            data[..len].copy_from_slice(self.mem.slice(buf, len));
        }
        a
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        if !self.regs.is_null() {
            sys::unmap(self.regs, REGS_SIZE);
        }
    }
}

impl Adapter {
    /// The device's file descriptor.
    pub fn fd(&self) -> c_int {
        self.file.as_raw_fd()
    }

    /// Gives up this process's references to the device (the register
    /// page mapping, the file) and keeps the memory: with no other
    /// reference, this is the last close.
    pub fn close_keep_memory(mut self) -> Memory {
        sys::unmap(self.regs, REGS_SIZE);
        self.regs = std::ptr::null_mut();
        let mem = std::mem::replace(&mut self.mem, Memory::empty());
        drop(self);
        mem
    }

    /// The register page's address in this process.
    pub fn regs_ptr(&self) -> *mut u8 {
        self.regs
    }
}

/// Opens the device, makes this process its owner and sets `regions`
/// (guest address, size, user address) as its memory table: for tests of
/// bad tables.  Returns the file and the SET_ENDPOINT argument for `opts`.
pub fn open_with_table(opts: &Options, regions: &[(u64, u64, u64)]) -> io::Result<File> {
    let file = OpenOptions::new().read(true).write(true).open(&opts.dev)?;
    // SAFETY: VHOST_SET_OWNER takes no argument.
    unsafe { sys::ioctl_ptr(file.as_raw_fd(), ioc(0, 0x01, 0), std::ptr::null_mut())? };
    let mut table = mem_table(regions);
    ioctl_bytes(&file, ioc(IOC_WRITE, 0x03, 8), &mut table)?;
    Ok(file)
}

/// The `VHOST_SET_MEM_TABLE` argument (`struct vhost_memory`) for
/// `regions`: (guest address, size, user address).
pub fn mem_table(regions: &[(u64, u64, u64)]) -> Vec<u8> {
    let mut table = vec![0u8; 8 + 32 * regions.len()];
    table[0..4].copy_from_slice(&(regions.len() as u32).to_ne_bytes());
    for (i, &(gpa, size, uva)) in regions.iter().enumerate() {
        let o = 8 + 32 * i;
        table[o..o + 8].copy_from_slice(&gpa.to_ne_bytes());
        table[o + 8..o + 16].copy_from_slice(&size.to_ne_bytes());
        table[o + 16..o + 24].copy_from_slice(&uva.to_ne_bytes());
    }
    table
}

/// The SET_ENDPOINT / CLEAR_ENDPOINT argument for `opts` (`struct
/// tcm_megasas_endpoint` as bytes; the WWPN NUL-terminated).
pub fn endpoint_arg(opts: &Options) -> [u8; EP_SIZE] {
    let mut t = [0u8; EP_SIZE];
    let w = opts.wwpn.as_bytes();
    let n = w.len().min(offset_of!(Endpoint, tpgt) - 1);
    t[..n].copy_from_slice(&w[..n]);
    let o = offset_of!(Endpoint, tpgt);
    t[o..o + 2].copy_from_slice(&opts.tpgt.to_ne_bytes());
    let flags = if opts.jbod {
        uapi::TCM_MEGASAS_EP_JBOD as u16
    } else {
        0
    };
    let o = offset_of!(Endpoint, flags);
    t[o..o + 2].copy_from_slice(&flags.to_ne_bytes());
    t
}

/// An ioctl on a raw file (for tests).
pub fn raw_ioctl(f: &File, req: u32, arg: &mut [u8]) -> io::Result<c_int> {
    if arg.is_empty() {
        // SAFETY: a request without argument.
        unsafe { sys::ioctl_ptr(f.as_raw_fd(), req, std::ptr::null_mut()) }
    } else {
        ioctl_bytes(f, req, arg)
    }
}

/// A DCMD frame with one sge32 (as smartctl and Linux send it).
pub fn dcmd_frame(opcode: u32, mbox: &[u8], buf: u64, len: u32) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[off::CMD] = op::DCMD;
    f[off::SGE_COUNT] = u8::from(len > 0);
    f[0x10..0x12].copy_from_slice(&flag::DIR_READ.to_le_bytes());
    f[0x14..0x18].copy_from_slice(&len.to_le_bytes());
    f[off::DCMD_OPCODE..off::DCMD_OPCODE + 4].copy_from_slice(&opcode.to_le_bytes());
    let n = mbox.len().min(mfi::MBOX_SIZE);
    f[off::DCMD_MBOX..off::DCMD_MBOX + n].copy_from_slice(&mbox[..n]);
    if len > 0 {
        mfi::encode_sge(&mut f, off::DCMD_SGL, 0, SgeFormat::Sge32, buf, len);
    }
    f
}

/// A pass-through frame (PD or LD SCSI IO) with sge64 entries.
pub fn pthru_frame(
    ld: bool,
    target: u8,
    cdb: &[u8],
    dir: u16,
    len: u32,
    sense: u64,
    sges: &[(u64, u32)],
) -> Vec<u8> {
    let need = off::PTHRU_SGL + sges.len() * 12;
    let mut f = vec![0u8; need.div_ceil(64) * 64];
    f[off::CMD] = if ld { op::LD_SCSI_IO } else { op::PD_SCSI_IO };
    f[off::TARGET_ID] = target;
    f[off::SENSE_LEN] = 96;
    f[off::CDB_LEN] = cdb.len() as u8;
    f[off::SGE_COUNT] = sges.len() as u8;
    f[0x10..0x12].copy_from_slice(&(dir | flag::SGL64).to_le_bytes());
    f[0x14..0x18].copy_from_slice(&len.to_le_bytes());
    f[off::SENSE_ADDR..off::SENSE_ADDR + 4].copy_from_slice(&(sense as u32).to_le_bytes());
    f[off::PTHRU_CDB..off::PTHRU_CDB + cdb.len().min(16)]
        .copy_from_slice(&cdb[..cdb.len().min(16)]);
    for (k, &(a, l)) in sges.iter().enumerate() {
        mfi::encode_sge(&mut f, off::PTHRU_SGL, k, SgeFormat::Sge64, a, l);
    }
    f
}
