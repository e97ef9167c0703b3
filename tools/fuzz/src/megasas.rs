// SPDX-License-Identifier: GPL-2.0
//! The megasas interpreter: an input becomes a batch of one to eight MFI
//! frames (LD read/write, LD and PD SCSI pass-through with any CDB, DCMDs
//! of every known opcode and wild ones, ABORT, INIT, unknown commands; any
//! flags, SGE count and format, extra frames, sense address, data length),
//! posted at their slots or, rarely, as wild inbound entries; and now and
//! then a disturbance while they are in flight (close, RESET,
//! CLEAR_ENDPOINT, a wild producer index, the frames rewritten while the
//! worker reads them).
//!
//! Oracles (Documentation/megasas.rst, "Bad input"): a frame posted at a
//! frame address is answered, exactly once, within the timeout: its
//! `cmd_status` is written and, unless it asked not to be
//! (DONT_POST_IN_REPLY_QUEUE), its context comes back in the reply queue;
//! a CTRL_EVENT_WAIT still held after the batch is aborted (MFI_CMD_ABORT,
//! as a driver does before it shuts down) and then both are answered;
//! a wild entry is not answered and counted in `errors`; no context comes
//! back that was not in flight; RESET, CLEAR_ENDPOINT and close return
//! within the timeout.

use crate::input::Reader;
use crate::vhost::DISTURB_EVERY;
use mfi::{Adapter, Options};
use std::time::{Duration, Instant};
use tcm_virt_wire::mfi::{self as w, dcmd, flag, off, op, stat, SgeFormat};

const DCMDS: [u32; 17] = [
    dcmd::CTRL_GET_INFO,
    dcmd::CTRL_GET_PROPERTIES,
    dcmd::CTRL_SET_PROPERTIES,
    dcmd::CTRL_EVENT_GET_INFO,
    dcmd::CTRL_EVENT_GET,
    dcmd::CTRL_EVENT_WAIT,
    dcmd::CTRL_SHUTDOWN,
    dcmd::HIBERNATE_SHUTDOWN,
    dcmd::CTRL_CACHE_FLUSH,
    dcmd::PD_GET_LIST,
    dcmd::PD_LIST_QUERY,
    dcmd::PD_GET_INFO,
    dcmd::LD_GET_LIST,
    dcmd::LD_LIST_QUERY,
    dcmd::LD_GET_PROPERTIES,
    dcmd::CLUSTER_RESET_ALL,
    dcmd::CLUSTER_RESET_LD,
];

const CDB_OPS: [u8; 16] = [
    0x00, 0x03, 0x12, 0x28, 0x2a, 0x88, 0x8a, 0x25, 0x9e, 0x35, 0xa0, 0x1a, 0x5a, 0x15, 0x41, 0x42,
];

/// The first slot the fuzzer uses (the library's helpers use 0-3).
const FIRST_SLOT: usize = 8;

pub struct Stats {
    pub frames: u64,
    pub answered: u64,
    pub refused: u64,
    pub reopens: u64,
    /// Event waits still held after their batch, aborted.
    pub aborted: u64,
    /// Canary processes that held the adapter, owners killed.
    pub canaries: u64,
    pub kills: u64,
}

pub struct Megasas {
    opts: Options,
    a: Option<Adapter>,
    /// Inputs since the last canary process, owner killed, other
    /// disturbance.
    since: [u64; 3],
    pub stats: Stats,
    timeout: Duration,
}

struct Posted {
    slot: usize,
    polled: bool,
    must: bool,
    /// A CTRL_EVENT_WAIT: held until an event, or aborted.
    aen: bool,
}

/// Frames a batch posts at most (slots FIRST_SLOT..FIRST_SLOT + BATCH;
/// the ABORTs of held event waits take the next BATCH slots).
const BATCH: usize = 8;

impl Megasas {
    pub fn new(wwpn: &str, timeout: Duration) -> Megasas {
        Megasas {
            opts: Options {
                wwpn: wwpn.into(),
                mem_mib: 16,
                ..Options::default()
            },
            a: None,
            since: DISTURB_EVERY,
            stats: Stats {
                frames: 0,
                answered: 0,
                refused: 0,
                reopens: 0,
                aborted: 0,
                canaries: 0,
                kills: 0,
            },
            timeout,
        }
    }

    fn adapter(&mut self) -> Result<&mut Adapter, String> {
        if self.a.is_none() {
            // The TPG may be without its nexus for a moment (a test
            // changing it between two sessions): bound within the timeout.
            let t = Instant::now();
            let mut a = loop {
                match Adapter::open(&self.opts) {
                    Ok(a) => break a,
                    Err(e) if t.elapsed() > self.timeout => return Err(format!("open: {e}")),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            };
            match a.init() {
                Some(stat::OK) => {}
                s => return Err(format!("INIT answered {s:?}")),
            }
            self.stats.reopens += 1;
            self.a = Some(a);
        }
        Ok(self.a.as_mut().unwrap())
    }

    pub fn close(&mut self) -> Result<(), String> {
        match self.a.take() {
            Some(a) => crate::vhost::close_timed(a, self.timeout),
            None => Ok(()),
        }
    }

    pub fn run(&mut self, input: &[u8]) -> Result<(), String> {
        let timeout = self.timeout;
        let mut r = Reader::new(input);
        // A disturbance in about one input in eighty (they end the
        // session, which costs more than a batch).
        let disturb = if r.chance(32) { r.u8() } else { 0 };
        // Disturbances cost a new session, the pseudo-operations a process
        // as well: at most one of each kind per DISTURB_EVERY[kind] inputs
        // (mutations of the corpus's ones would otherwise take most of the
        // time).
        let (disturb, kill_after) =
            crate::pseudo::limit(&mut self.since, disturb, |d| d == 254, &mut r);
        let n = 1 + r.pick(BATCH);
        self.adapter()?;
        let mut adapter = self.a.take().unwrap();
        let a = &mut adapter;
        let errors0 = a.errors();
        let mut posted = Vec::new();
        let mut wild = 0u32;
        for k in 0..n {
            let slot = FIRST_SLOT + k;
            if r.chance(8) {
                // A wild inbound entry: unaligned, outside the table, or
                // with more than 7 extra frames.
                // Each of these is surely not a frame (refused, counted);
                // a random entry may be anything (not counted).
                let fr = a.gpa(a.frame_addr(slot));
                let (v, counted) = match r.pick(4) {
                    0 => (fr | 0x20 | 1, true),
                    1 => (
                        w::encode_posted(0x4000_0000_0000 | (r.u64() & 0xff_ffc0), 0),
                        true,
                    ),
                    2 => (fr | (8 + r.pick(8) as u64) << 1 | 1, true),
                    _ => (r.u64(), false),
                };
                // (A random entry is a frame address of ours with a
                // probability of about 2^-40: not worth a new session.)
                wild += u32::from(counted);
                a.post_raw(v);
                continue;
            }
            let (mut frame, must, aen) = frame(&mut r, a, slot, n);
            // The context is the slot (below the command count: replied
            // in the reply queue).
            frame[off::CONTEXT..off::CONTEXT + 8].copy_from_slice(&(slot as u64).to_le_bytes());
            let polled = u16::from_le_bytes([frame[off::FLAGS], frame[off::FLAGS + 1]])
                & flag::DONT_POST_IN_REPLY_QUEUE
                != 0;
            a.post(slot, &frame);
            posted.push(Posted {
                slot,
                polled,
                must,
                aen,
            });
        }
        self.stats.frames += posted.len() as u64 + u64::from(wild);
        if (228..=239).contains(&disturb) {
            // The frames rewritten while the worker reads them (it must
            // parse one copy of each): then only a bounded close is owed
            // (a context read from a rewritten frame may be anything).
            let areas: Vec<(u64, usize)> = posted
                .iter()
                .map(|p| (a.frame_addr(p.slot), mfi::SLOT_BYTES))
                .collect();
            let mut rng = crate::input::Rng::new(u64::from(r.u32()) + 1);
            // SAFETY: each area is a command slot (SLOT_BYTES at
            // `frame_addr`), inside the adapter's memory, which `adapter`
            // keeps mapped past this call.
            unsafe { crate::input::rewrite(&mut rng, &areas, Duration::from_millis(10)) };
            std::thread::sleep(Duration::from_millis(20));
            self.stats.refused += posted.len() as u64;
            return crate::vhost::close_timed(adapter, timeout);
        }
        match disturb {
            240..=244 => {
                self.stats.refused += posted.len() as u64;
                return crate::vhost::close_timed(adapter, timeout);
            }
            245..=248 => {
                crate::vhost::bounded("RESET with frames in flight", timeout, || {
                    let _ = a.reset();
                })?;
                self.stats.refused += posted.len() as u64;
                return crate::vhost::close_timed(adapter, timeout);
            }
            249..=251 => {
                crate::vhost::bounded("CLEAR_ENDPOINT with frames in flight", timeout, || {
                    let _ = a.clear_endpoint();
                })?;
                self.stats.refused += posted.len() as u64;
                return crate::vhost::close_timed(adapter, timeout);
            }
            252..=253 => {
                a.set_iq_producer(r.u32());
                self.stats.refused += posted.len() as u64;
                // Then close: it must return in bounded time whatever the
                // producer index says.
                return crate::vhost::close_timed(adapter, timeout);
            }
            254 => {
                // The adapter handed to a forked child (same fd, a copy of
                // our memory at the same addresses): RESET, CLEAR_ENDPOINT
                // and DOORBELL refused, its close returns, and while our
                // frames are answered nothing writes into its copy.
                canary(a, timeout)?;
                self.stats.canaries += 1;
            }
            255 => {
                // The owner killed with frames in flight: the next session
                // binds the same TPG, so the release must have ended.
                self.stats.refused += posted.len() as u64;
                crate::vhost::close_timed(adapter, timeout)?;
                owner_killed(&self.opts, kill_after);
                self.stats.kills += 1;
                return Ok(());
            }
            _ => {}
        }
        // Wait for every answer; then abort the event waits still held
        // (as a driver does before it shuts down) and wait for them and
        // their ABORTs.
        let end = Instant::now() + timeout;
        let mut status = vec![false; posted.len()];
        let mut replied = vec![false; posted.len()];
        let mut aborts_sent = false;
        loop {
            for (k, p) in posted.iter().enumerate() {
                if !status[k] && a.answer(p.slot).cmd_status != stat::INVALID_STATUS {
                    status[k] = true;
                }
            }
            let done = |k: usize| status[k] && (posted[k].polled || replied[k]);
            // An event wait answered (an event, or replaced by another)
            // owes its reply like any frame.
            let left: Vec<usize> = (0..posted.len())
                .filter(|&k| (posted[k].must || aborts_sent || status[k]) && !done(k))
                .collect();
            if left.is_empty() {
                let held: Vec<usize> = (0..posted.len())
                    .filter(|&k| posted[k].aen && !status[k])
                    .collect();
                if aborts_sent || held.is_empty() {
                    break;
                }
                for (j, &k) in held.iter().enumerate() {
                    let slot = FIRST_SLOT + BATCH + j;
                    let held_slot = posted[k].slot;
                    let mut f = vec![0u8; 64];
                    f[off::CMD] = op::ABORT;
                    f[off::CONTEXT..off::CONTEXT + 8].copy_from_slice(&(slot as u64).to_le_bytes());
                    f[off::ABORT_CONTEXT..off::ABORT_CONTEXT + 8]
                        .copy_from_slice(&(held_slot as u64).to_le_bytes());
                    let addr = a.gpa(a.frame_addr(held_slot));
                    f[off::ABORT_ADDR..off::ABORT_ADDR + 8].copy_from_slice(&addr.to_le_bytes());
                    a.post(slot, &f);
                    posted.push(Posted {
                        slot,
                        polled: false,
                        must: true,
                        aen: false,
                    });
                    status.push(false);
                    replied.push(false);
                }
                self.stats.aborted += held.len() as u64;
                self.stats.frames += held.len() as u64;
                aborts_sent = true;
                continue;
            }
            if Instant::now() >= end {
                let p = &posted[left[0]];
                return Err(format!(
                    "frame in slot {} ({}{}) not answered in {:?} (status written: {}, replied: {})",
                    p.slot,
                    if p.polled { "polled" } else { "reply queue" },
                    if p.aen { ", an event wait aborted" } else { "" },
                    timeout,
                    status[left[0]],
                    replied[left[0]]
                ));
            }
            // Polled frames write only their status: looked at often;
            // replies come with a call.
            let wait = if left.iter().all(|&k| posted[k].polled) {
                Duration::ZERO
            } else {
                Duration::from_millis(20)
            };
            let got = a.collect(wait);
            if got.is_empty() && wait.is_zero() {
                std::thread::sleep(Duration::from_micros(200));
            }
            for ctx in got {
                let Some(k) = posted.iter().position(|p| p.slot as u64 == ctx) else {
                    return Err(format!("reply with context {ctx}, not in flight"));
                };
                if replied[k] || posted[k].polled {
                    return Err(format!(
                        "context {ctx} replied twice (or replied although polled)"
                    ));
                }
                replied[k] = true;
            }
        }
        let answered = (0..posted.len()).filter(|&k| status[k]).count() as u64;
        self.stats.answered += answered;
        self.stats.refused += posted.len() as u64 - answered + u64::from(wild);
        // Every entry consumed (errors are counted before the consumer
        // index moves past them).
        if !a.wait_consumed(end.saturating_duration_since(Instant::now())) {
            return Err(format!(
                "inbound entries not consumed in {timeout:?} (producer {}, consumer {})",
                a.iq_producer(),
                a.iq_consumer()
            ));
        }
        let errors = a.errors().wrapping_sub(errors0);
        if errors < wild {
            return Err(format!(
                "{wild} wild entries posted, errors went up by {errors}"
            ));
        }
        // Late replies of what was answered must not be there.
        if let Some(ctx) = a.stray_replies().first() {
            return Err(format!("stray reply with context {ctx}"));
        }
        self.a = Some(adapter);
        Ok(())
    }
}

fn length(r: &mut Reader<'_>) -> u32 {
    match r.pick(8) {
        0 => 0,
        1 => 512,
        2 => 4096,
        3 => 8192,
        4 => 65536,
        5 => 9 << 20,
        6 => u32::from(r.u16()),
        _ => r.u32(),
    }
}

/// A frame for `slot`; whether it must be answered now, and whether it is
/// a CTRL_EVENT_WAIT (held until an event: aborted after the batch).  An
/// INIT of the initialised adapter and the shutdown DCMDs are answered and
/// change nothing the next frames see.
fn frame(r: &mut Reader<'_>, a: &mut Adapter, slot: usize, n: usize) -> (Vec<u8>, bool, bool) {
    let extra = if r.chance(40) { r.pick(8) } else { r.pick(2) };
    let mut f = vec![0u8; 64 * (1 + extra)];
    if r.chance(16) {
        r.fill(&mut f);
    }
    let cmd = match r.pick(24) {
        0..=2 => op::LD_READ,
        3..=5 => op::LD_WRITE,
        6..=9 => op::LD_SCSI_IO,
        10..=12 => op::PD_SCSI_IO,
        13..=18 => op::DCMD,
        19..=20 => op::ABORT,
        21 => op::INIT,
        _ => r.u8(),
    };
    let mut must = true;
    let mut aen = false;
    f[off::CMD] = cmd;
    f[off::SENSE_LEN] = if r.chance(200) { 96 } else { r.u8() };
    f[off::TARGET_ID] = if r.chance(180) { 0 } else { r.u8() };
    f[off::LUN] = if r.chance(220) { 0 } else { r.u8() };
    f[off::CDB_LEN] = if r.chance(200) {
        10 + 6 * r.pick(2) as u8
    } else {
        r.u8()
    };
    let fmt_flags = [0, flag::SGL64, flag::IEEE | flag::SGL64, flag::IEEE][r.pick(4)];
    let dir = [0, flag::DIR_READ, flag::DIR_WRITE, flag::DIR_BOTH][r.pick(4)];
    let mut flags = fmt_flags | dir;
    if r.chance(40) {
        flags |= flag::DONT_POST_IN_REPLY_QUEUE;
    }
    if r.chance(20) {
        flags |= r.u16() & !flag::DONT_POST_IN_REPLY_QUEUE;
    }
    f[off::FLAGS..off::FLAGS + 2].copy_from_slice(&flags.to_le_bytes());
    let xfer = length(r);
    f[off::DATA_XFER_LEN..off::DATA_XFER_LEN + 4].copy_from_slice(&xfer.to_le_bytes());
    let sge_count = if r.chance(220) {
        r.pick(4)
    } else {
        usize::from(r.u8())
    };
    f[off::SGE_COUNT] = sge_count as u8;
    let data = a.gpa(a.data_addr(slot));
    let sense = if r.chance(230) {
        a.gpa(a.sense_addr(slot))
    } else {
        r.u64()
    };
    let sgl_at = match cmd {
        op::LD_READ | op::LD_WRITE => {
            f[off::SENSE_ADDR..off::SENSE_ADDR + 8].copy_from_slice(&sense.to_le_bytes());
            let lba = if r.chance(200) {
                u64::from(r.u16())
            } else {
                r.u64()
            };
            f[off::START_LBA..off::START_LBA + 8].copy_from_slice(&lba.to_le_bytes());
            // LD read/write lengths are in blocks.
            let blocks = if r.chance(200) {
                u32::from(r.u8() % 64)
            } else {
                xfer
            };
            f[off::DATA_XFER_LEN..off::DATA_XFER_LEN + 4].copy_from_slice(&blocks.to_le_bytes());
            off::IO_SGL
        }
        op::LD_SCSI_IO | op::PD_SCSI_IO => {
            f[off::SENSE_ADDR..off::SENSE_ADDR + 8].copy_from_slice(&sense.to_le_bytes());
            f[off::PTHRU_CDB] = if r.chance(220) {
                CDB_OPS[r.pick(CDB_OPS.len())]
            } else {
                r.u8()
            };
            let k = r.pick(16);
            r.fill(&mut f[off::PTHRU_CDB + 1..off::PTHRU_CDB + 1 + k]);
            off::PTHRU_SGL
        }
        op::DCMD => {
            let opcode = if r.chance(230) {
                DCMDS[r.pick(DCMDS.len())]
            } else {
                r.u32()
            };
            f[off::DCMD_OPCODE..off::DCMD_OPCODE + 4].copy_from_slice(&opcode.to_le_bytes());
            let mut mbox = [0u8; w::MBOX_SIZE];
            if r.chance(128) {
                r.fill(&mut mbox);
            }
            f[off::DCMD_MBOX..off::DCMD_MBOX + w::MBOX_SIZE].copy_from_slice(&mbox);
            if r.chance(200) {
                // A length a DCMD buffer takes.
                let len = [0u32, 8, 64, 268, 512, 2384, 4104, 12288][r.pick(8)];
                f[off::DATA_XFER_LEN..off::DATA_XFER_LEN + 4].copy_from_slice(&len.to_le_bytes());
            }
            // Held until an event (or answered at once if refused).
            aen = opcode == dcmd::CTRL_EVENT_WAIT;
            must = !aen;
            off::DCMD_SGL
        }
        op::ABORT => {
            // Another frame of the batch, or anything.
            let other = FIRST_SLOT + r.pick(n);
            let ctx = if r.chance(200) { other as u64 } else { r.u64() };
            let addr = if r.chance(200) {
                a.gpa(a.frame_addr(other))
            } else {
                r.u64()
            };
            f[off::ABORT_CONTEXT..off::ABORT_CONTEXT + 8].copy_from_slice(&ctx.to_le_bytes());
            f[off::ABORT_ADDR..off::ABORT_ADDR + 8].copy_from_slice(&addr.to_le_bytes());
            return (f, must, aen);
        }
        op::INIT => {
            let q = a.gpa(a.frame_addr(slot) + 64 * (extra as u64 + 1).min(7));
            let qaddr = if r.chance(200) { q } else { r.u64() };
            f[off::INIT_QINFO..off::INIT_QINFO + 8].copy_from_slice(&qaddr.to_le_bytes());
            return (f, must, aen);
        }
        _ => off::IO_SGL,
    };
    let fmt = SgeFormat::from_flags(flags);
    for i in 0..sge_count.min(8) {
        let len = if r.chance(128) {
            (xfer / sge_count.max(1) as u32).min(64 << 10)
        } else {
            length(r)
        };
        let addr = if r.chance(230) {
            data + u64::from(r.u16() & 0xf000) * i as u64 % (64 << 10)
        } else {
            r.u64()
        };
        if sgl_at + (i + 1) * fmt.size() <= f.len() {
            w::encode_sge(&mut f, sgl_at, i, fmt, addr, len);
        }
    }
    (f, must, aen)
}

/// The canary: a forked child with the adapter's fd and a copy of its
/// memory fills that copy with a pattern, tries RESET, CLEAR_ENDPOINT and
/// DOORBELL (each must fail with EPERM), closes the fd, waits while the
/// owner's frames are answered and checks its pattern.
fn canary(a: &Adapter, timeout: Duration) -> Result<(), String> {
    let code = crate::vhost::bounded("a canary process with the adapter", timeout, || {
        vsdrv::sys::in_child(|| {
            let m = a.mem.slice_mut(a.mem.base(), a.mem.len());
            m.fill(0xa5);
            let mut ep = mfi::endpoint_arg(&a.opts);
            for (i, req) in [mfi::RESET, mfi::CLEAR_ENDPOINT, mfi::DOORBELL]
                .into_iter()
                .enumerate()
            {
                let arg = if req == mfi::CLEAR_ENDPOINT {
                    &mut ep[..]
                } else {
                    &mut [][..]
                };
                if a.ioctl(req, arg).map_err(|e| e.raw_os_error()) != Err(Some(1)) {
                    return 10 + i as u8;
                }
            }
            crate::pseudo::canary_end(a.fd(), m)
        })
    })?;
    crate::pseudo::canary_verdict(code, ["RESET", "CLEAR_ENDPOINT", "DOORBELL"], "adapter")
}

/// A child opens the adapter, initialises it, posts eight
/// CTRL_CACHE_FLUSHes (SYNCHRONIZE CACHE to each drive) and eight
/// CTRL_GET_INFOs and waits; it is SIGKILLed `after` the fork.
fn owner_killed(opts: &Options, after: Duration) {
    crate::pseudo::kill_after(
        || {
            let Ok(mut a) = Adapter::open(opts) else {
                return 1;
            };
            if a.init() != Some(stat::OK) {
                return 2;
            }
            for k in 0..16 {
                let slot = FIRST_SLOT + k;
                let (opcode, len) = if k % 2 == 0 {
                    (dcmd::CTRL_CACHE_FLUSH, 0)
                } else {
                    (dcmd::CTRL_GET_INFO, 2048)
                };
                let buf = a.gpa(a.data_addr(slot));
                let mut f = mfi::dcmd_frame(opcode, &[], buf, len);
                f[off::CONTEXT..off::CONTEXT + 8].copy_from_slice(&(slot as u64).to_le_bytes());
                a.post(slot, &f);
            }
            std::thread::sleep(Duration::from_secs(60));
            0
        },
        after,
    );
}
