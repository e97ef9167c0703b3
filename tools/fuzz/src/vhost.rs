// SPDX-License-Identifier: GPL-2.0
//! The vhost-scsi interpreter: an input becomes a batch of one to eight
//! chains on the control, event and I/O queues (SCSI commands with any CDB
//! and buffer layout, TMF and AN requests, unknown control types, event
//! buffers of any shape, direct or indirect, broken chains) and, now and
//! then, a disturbance while they are in flight (close, CLEAR_ENDPOINT, a
//! new memory table, their buffers rewritten while the worker reads them).
//!
//! Oracles: every chain on a queue that no earlier chain of the batch
//! stopped is answered, exactly once, within the timeout, with a used
//! length not above its writable bytes; a well-formed one (every address
//! inside the memory table, the layout the virtio-scsi spec gives) with a
//! response that decodes.  A chain vhost core refuses (a loop, a next
//! outside the table, an address outside the memory table, a readable
//! buffer after a writable one) stops its queue, as in C vhost_scsi: its
//! head descriptor is then rewritten into a plain request and the queue
//! kicked again, and from there every chain of the batch is answered (the
//! queue resumes where it stopped; no new session is needed).  After a
//! disturbance only answers at most once and within bounds are owed;
//! close, CLEAR_ENDPOINT and SET_MEM_TABLE return within the timeout.

use crate::input::Reader;
use std::time::{Duration, Instant};
use tcm_virt_wire::virtio_scsi::{
    encode_lun, CmdReq, CmdResp, TaskAttr, AN_REQ_SIZE, AN_RESP_SIZE, CMD_RESP_SIZE, EVENT_SIZE,
    TMF_REQ_SIZE, TMF_RESP_SIZE,
};
use vsdrv::{Buf, Options, Session, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};

/// Opcodes the CDB generator starts from (the rest of the CDB is input).
const OPCODES: [u8; 36] = [
    0x00, 0x03, 0x12, 0x08, 0x0a, 0x28, 0x2a, 0xa8, 0xaa, 0x88, 0x8a, 0x25, 0x9e, 0x35, 0x91, 0x41,
    0x93, 0x42, 0x2f, 0x8f, 0x89, 0x5e, 0x5f, 0xa0, 0x1a, 0x5a, 0x15, 0x55, 0x1b, 0xa3, 0x83, 0x84,
    0x3b, 0x3c, 0x4d, 0x7f,
];

/// One chain of a batch.
struct Chain {
    queue: usize,
    bufs: Vec<Buf>,
    /// Well-formed: must be answered.
    must: bool,
    /// A SCSI command's response buffer (checked when `must`).
    resp: Option<u64>,
    indirect: bool,
    /// Chain shape to break after building: (descriptor index, next).
    relink: Option<(usize, u16)>,
    /// vhost_get_vq_desc() refuses it (a loop, a next outside the table,
    /// an address outside the memory table): the queue stops there, as in
    /// C vhost_scsi, and the chains after it on that queue are not served.
    breaks: bool,
    /// An earlier chain of the batch on the same queue breaks.
    after_break: bool,
    /// Index in KINDS.
    kind: usize,
}

pub struct Stats {
    pub requests: u64,
    pub answered: u64,
    pub refused: u64,
    pub reopens: u64,
    /// Chains vhost core refused, rewritten so that their queue resumes.
    pub repaired: u64,
    /// Event buffers the device used (events: LUN hotplug).
    pub events: u64,
    /// Canary processes that held the device, owners killed.
    pub canaries: u64,
    pub kills: u64,
    /// Per kind of chain: well-formed sent, answered; others sent, answered.
    pub kinds: [[u64; 4]; 5],
    /// Why sessions ended: a disturbance, a chain that stopped its queue,
    /// no ring room, no memory left.
    pub ended: [u64; 4],
}

/// The kinds of chain, for the statistics.
pub const KINDS: [&str; 5] = ["scsi", "control", "event", "one-direction", "broken"];

impl Stats {
    pub fn detail(&self) -> String {
        let mut out = String::new();
        for (k, n) in KINDS.iter().zip(&self.kinds) {
            out += &format!(
                "{k} {}/{} well-formed and {}/{} others answered; ",
                n[1], n[0], n[3], n[2]
            );
        }
        out + &format!(
            "{} broken chains repaired, {} events delivered, {} canary processes, {} owners killed; sessions ended by a disturbance {}, a stopped queue {}, ring or event room {}, memory {}",
            self.repaired, self.events, self.canaries, self.kills, self.ended[0], self.ended[1], self.ended[2], self.ended[3]
        )
    }
}

pub struct Vhost {
    pub opts: Options,
    s: Option<Session>,
    /// Where this session's event buffers go.
    pool: Pool,
    /// Event buffers the device holds: (head, writable bytes).
    events: Vec<(u16, u64)>,
    /// Inputs since the last canary process, owner killed, other
    /// disturbance.
    since: [u64; 3],
    pub stats: Stats,
    timeout: Duration,
}

impl Vhost {
    pub fn new(wwpn: &str, timeout: Duration) -> Vhost {
        let opts = Options {
            wwpn: wwpn.into(),
            io_queues: 2,
            ring: 256,
            mem_mib: 32,
            features: vsdrv::F_VERSION_1 | vsdrv::F_INDIRECT_DESC | vsdrv::F_HOTPLUG,
            ..Options::default()
        };
        Vhost {
            opts,
            s: None,
            pool: Pool { next: 0, end: 0 },
            events: Vec::new(),
            since: DISTURB_EVERY,
            stats: Stats {
                requests: 0,
                answered: 0,
                refused: 0,
                reopens: 0,
                repaired: 0,
                events: 0,
                canaries: 0,
                kills: 0,
                kinds: [[0; 4]; 5],
                ended: [0; 4],
            },
            timeout,
        }
    }

    fn session(&mut self) -> Result<&mut Session, String> {
        if self.s.is_none() {
            let mut s = Session::open(&self.opts).map_err(|e| format!("open: {e}"))?;
            // The TPG may be without its nexus for a moment (a test
            // changing it between two sessions): bound within the timeout.
            let t = Instant::now();
            while let Err(e) = s.set_endpoint() {
                if t.elapsed() > self.timeout {
                    return Err(format!("SET_ENDPOINT {}: {e}", self.opts.wwpn));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let next = s.mark();
            s.mem.alloc(POOL_BYTES, 4096);
            self.pool = Pool {
                next,
                end: s.mark(),
            };
            self.events.clear();
            self.stats.reopens += 1;
            self.s = Some(s);
        }
        Ok(self.s.as_mut().unwrap())
    }

    /// Closes the session (timed: close must return within the timeout).
    pub fn close(&mut self) -> Result<(), String> {
        match self.s.take() {
            Some(s) => close_timed(s, self.timeout),
            None => Ok(()),
        }
    }

    /// Runs one input; Err is a failure (an oracle broke).
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
            crate::pseudo::limit(&mut self.since, disturb, |d| d == 253 || d == 254, &mut r);
        let n = 1 + r.pick(8);
        self.session()?;
        let mut sess = self.s.take().unwrap();
        let s = &mut sess;
        // Event buffers used since the last input (a LUN hotplugged):
        // each one in flight, once, within its writable bytes.
        for u in s.queues[1].reap(&s.mem) {
            let Some(i) = self.events.iter().position(|e| e.0 == u.head) else {
                return Err(format!(
                    "event queue: head {} answered but not in flight",
                    u.head
                ));
            };
            let (_, writable) = self.events.swap_remove(i);
            if u64::from(u.len) > writable {
                return Err(format!(
                    "event queue: used length {} above the {writable} writable bytes",
                    u.len
                ));
            }
            self.stats.events += 1;
        }
        let mark = s.mark();
        let mut chains = Vec::new();
        for _ in 0..n {
            let mut c = chain(&mut r, s, &mut self.pool);
            // Indirect chains are well-formed only once negotiated.
            c.must &= !c.indirect || s.features & vsdrv::F_INDIRECT_DESC != 0;
            // Nothing after a chain that stops the queue is served.
            c.after_break = chains
                .iter()
                .any(|p: &Chain| p.breaks && p.queue == c.queue);
            c.must &= !c.after_break;
            chains.push(c);
        }
        // Build and publish all, then kick each queue once.
        let mut pending = Vec::new();
        let mut kick = vec![false; s.queues.len()];
        let mut reopen = false;
        for c in &chains {
            let Some(head) = place(s, c, &mut self.pool) else {
                reopen = true;
                continue;
            };
            if let Some(resp) = c.resp {
                s.mem.slice_mut(resp, CMD_RESP_SIZE)[11] = 0xff;
            }
            let writable: u64 = c
                .bufs
                .iter()
                .filter(|b| b.write)
                .map(|b| u64::from(b.len))
                .sum();
            s.queues[c.queue].publish(&s.mem, head);
            kick[c.queue] = true;
            if c.queue == 1 {
                // An event buffer stays with the device until an event.
                self.events.push((head, writable));
                continue;
            }
            self.stats.kinds[c.kind][if c.must { 0 } else { 2 }] += 1;
            pending.push(Pending {
                queue: c.queue,
                head,
                writable,
                must: c.must,
                served: !c.breaks && !c.after_break,
                breaks: c.breaks,
                resp: c.resp,
                kind: c.kind,
            });
        }
        if std::env::var_os("FUZZ_TRACE").is_some() {
            eprintln!("trace: disturb {disturb}");
            for c in &chains {
                eprintln!(
                    "trace: queue {} must {} breaks {} indirect {} relink {:?} resp {:?}",
                    c.queue, c.must, c.breaks, c.indirect, c.relink, c.resp
                );
                for b in &c.bufs {
                    let head = if b.write || !s.mem_contains(b.addr, b.len) {
                        String::new()
                    } else {
                        crate::input::to_hex(s.mem.slice(b.addr, (b.len as usize).min(51)))
                    };
                    eprintln!(
                        "trace:   {:#x} len {} write {} {head}",
                        b.addr, b.len, b.write
                    );
                }
            }
        }
        let sent = pending.len() as u64;
        for (q, &k) in kick.iter().enumerate() {
            if k {
                s.queues[q].kick();
            }
        }
        self.stats.requests += sent;
        // A disturbance while the chains are in flight.
        if (228..=239).contains(&disturb) {
            // Their device-readable buffers and response buffers rewritten
            // while the worker reads them: nothing is owed but an answer
            // at most once, within bounds.
            let areas: Vec<(u64, usize)> = chains
                .iter()
                .flat_map(|c| c.bufs.iter())
                .filter(|b| s.mem_contains(b.addr, b.len))
                .map(|b| (b.addr, (b.len as usize).min(4096)))
                .collect();
            let mut rng = crate::input::Rng::new(u64::from(r.u32()) + 1);
            // SAFETY: each area passed `mem_contains`: inside the
            // session's memory, which `sess` keeps mapped past this call.
            unsafe { crate::input::rewrite(&mut rng, &areas, Duration::from_millis(10)) };
            for p in &mut pending {
                if p.must {
                    self.stats.kinds[p.kind][0] -= 1;
                    self.stats.kinds[p.kind][2] += 1;
                }
                p.must = false;
                p.resp = None;
            }
            reopen = true;
        }
        match disturb {
            240..=245 => {
                self.stats.refused += sent;
                self.stats.ended[0] += 1;
                return close_timed(sess, timeout);
            }
            246..=249 => {
                bounded("CLEAR_ENDPOINT with I/O in flight", timeout, || {
                    let _ = s.clear_endpoint();
                })?;
                self.stats.refused += sent;
                self.stats.ended[0] += 1;
                return close_timed(sess, timeout);
            }
            250..=252 => {
                // A new memory table while requests are in flight: the
                // same region, or one whose end wraps (must be refused).
                let wrap = disturb == 252;
                let mut table = [0u8; 40];
                table[0..4].copy_from_slice(&1u32.to_ne_bytes());
                let (gpa, size, ua) = if wrap {
                    (
                        0xffff_ffff_ffff_f000u64,
                        1u64 << 20,
                        0xffff_ffff_ffff_f000u64,
                    )
                } else {
                    (s.mem.base(), s.mem.len() as u64, s.mem.base())
                };
                table[8..16].copy_from_slice(&gpa.to_ne_bytes());
                table[16..24].copy_from_slice(&size.to_ne_bytes());
                table[24..32].copy_from_slice(&ua.to_ne_bytes());
                let t = Instant::now();
                // SAFETY: a vhost_memory with one region, the size the
                // request encodes (its header) plus the region.
                let rc = unsafe {
                    vsdrv::sys::ioctl_ptr(
                        std::os::fd::AsRawFd::as_raw_fd(&s.file),
                        vsdrv::sys::SET_MEM_TABLE,
                        table.as_mut_ptr(),
                    )
                };
                if t.elapsed() > timeout {
                    return Err(format!(
                        "SET_MEM_TABLE with I/O in flight took {:?}",
                        t.elapsed()
                    ));
                }
                if wrap && rc.is_ok() {
                    return Err("SET_MEM_TABLE accepted a region whose end wraps".into());
                }
                reopen = true;
            }
            253 | 254 => {
                // The device handed to another process (a forked child:
                // same fd, a copy of our memory at the same addresses):
                // its state-changing ioctls are refused, its close
                // returns, and while our requests complete it checks that
                // nothing wrote into its copy (user memory is only ever
                // the owner's).
                canary(s, timeout)?;
                self.stats.canaries += 1;
            }
            255 => {
                // The owner killed with requests in flight: a child opens
                // the device, binds it, posts requests and is SIGKILLed at
                // a time the input chooses; the next session binds the
                // same TPG, so the release must have ended.
                self.stats.refused += sent;
                self.stats.ended[0] += 1;
                close_timed(sess, timeout)?;
                owner_killed(&self.opts, kill_after);
                self.stats.kills += 1;
                return Ok(());
            }
            _ => {}
        }
        let mut answered = vec![false; pending.len()];
        if reopen {
            // Disturbed, or no ring room: what comes back within bounds is
            // checked, nothing more is owed; then a new session.
            self.reap_until(s, &pending, &mut answered, |p| p.must, timeout)?;
            self.reap_until(
                s,
                &pending,
                &mut answered,
                |_| true,
                Duration::from_millis(30),
            )?;
            self.stats.refused += answered.iter().filter(|a| !**a).count() as u64;
            self.stats.ended[if (228..=252).contains(&disturb) { 0 } else { 2 }] += 1;
            return close_timed(sess, timeout);
        }
        // Every chain on a queue that no earlier chain stopped is answered
        // (the well-formed ones with a valid response; the others as the
        // module refuses them, but answered).
        if let Some(k) = self.reap_until(s, &pending, &mut answered, |p| p.served, timeout)? {
            let p = &pending[k];
            return Err(format!(
                "a request on queue {} (head {}, {}) not answered in {timeout:?}",
                p.queue,
                p.head,
                if p.must { "well-formed" } else { "malformed" }
            ));
        }
        // The chains vhost core refused stopped their queues: rewritten
        // into plain requests, kicked again, they and everything after them
        // must now be answered (the queue resumes where it stopped).
        let broken: Vec<usize> = (0..pending.len())
            .filter(|&k| pending[k].breaks && !answered[k])
            .collect();
        if !broken.is_empty() {
            if s.features & vsdrv::F_INDIRECT_DESC == 0 {
                self.stats.refused += answered.iter().filter(|a| !**a).count() as u64;
                self.stats.ended[1] += 1;
                return close_timed(sess, timeout);
            }
            let mut kick = vec![false; s.queues.len()];
            for &k in &broken {
                // Its writable bytes are now the new response's.
                pending[k].writable = repair(s, pending[k].queue, pending[k].head);
                kick[pending[k].queue] = true;
            }
            for (q, &k) in kick.iter().enumerate() {
                if k {
                    s.queues[q].kick();
                }
            }
            self.stats.repaired += broken.len() as u64;
        }
        // Now every chain of the batch is owed: the repaired ones and those
        // after them, and those the first wait did not need (after a chain
        // that did not stop its queue after all, they may still come).
        if let Some(k) = self.reap_until(s, &pending, &mut answered, |_| true, timeout)? {
            let p = &pending[k];
            return Err(format!(
                "queue {} (head {}): not answered in {timeout:?}{}",
                p.queue,
                p.head,
                if broken.is_empty() {
                    ""
                } else {
                    " after the queue's broken chains were repaired"
                }
            ));
        }
        // Room for the next batch (event buffers stay), memory left.
        let room = s.queues.iter().all(|q| q.free_descs() >= 96) && self.pool.room() >= 1 << 20;
        if !room || s.mark() > s.mem.len() / 2 {
            self.stats.ended[if room { 3 } else { 2 }] += 1;
            return close_timed(sess, timeout);
        }
        s.release_to(mark);
        self.s = Some(sess);
        Ok(())
    }

    /// Reaps answers of `pending` until every one `need` selects is
    /// answered (None) or `within` passed (Some: the first one left);
    /// Err if an answer breaks an oracle.
    fn reap_until(
        &mut self,
        s: &mut Session,
        pending: &[Pending],
        answered: &mut [bool],
        need: impl Fn(&Pending) -> bool,
        within: Duration,
    ) -> Result<Option<usize>, String> {
        let end = Instant::now() + within;
        loop {
            let left = (0..pending.len()).find(|&k| need(&pending[k]) && !answered[k]);
            let Some(first) = left else {
                return Ok(None);
            };
            let now = Instant::now();
            if now >= end {
                return Ok(Some(first));
            }
            let mut qs: Vec<usize> = (0..pending.len())
                .filter(|&k| !answered[k])
                .map(|k| pending[k].queue)
                .collect();
            qs.sort_unstable();
            qs.dedup();
            for (q, u) in s.wait_any(&qs, end - now) {
                let Some(k) = (0..pending.len())
                    .find(|&k| pending[k].queue == q && pending[k].head == u.head && !answered[k])
                else {
                    return Err(format!(
                        "queue {q}: head {} answered but not in flight (answered twice?)",
                        u.head
                    ));
                };
                answered[k] = true;
                self.stats.answered += 1;
                let p = &pending[k];
                self.stats.kinds[p.kind][if p.must { 1 } else { 3 }] += 1;
                if u64::from(u.len) > p.writable {
                    return Err(format!(
                        "queue {q}: used length {} above the {} writable bytes",
                        u.len, p.writable
                    ));
                }
                if let (true, Some(resp)) = (p.must, p.resp) {
                    if CmdResp::decode(s.mem.slice(resp, CMD_RESP_SIZE)).is_none() {
                        return Err(format!(
                            "queue {q}: a well-formed command answered without a valid response"
                        ));
                    }
                }
            }
        }
    }
}

/// Inputs between two canary processes, two owners killed, two other
/// disturbances (at least).
pub const DISTURB_EVERY: [u64; 3] = [1000, 1000, 50];

/// Bytes set apart in each session for event buffers.
const POOL_BYTES: usize = 4 << 20;

/// Memory for event buffers and their indirect tables, apart from a
/// batch's memory (released after each input): the device keeps event
/// buffers until an event (a LUN hotplugged), which may come inputs later.
/// Offsets in the session memory.
struct Pool {
    next: usize,
    end: usize,
}

impl Pool {
    fn room(&self) -> usize {
        self.end.saturating_sub(self.next)
    }

    /// Runs `f` with the session's allocator in the pool when it has
    /// `need` bytes left (else in the batch memory; the session then ends
    /// after the batch, its pool being short).
    fn with<R>(&mut self, s: &mut Session, need: usize, f: impl FnOnce(&mut Session) -> R) -> R {
        if self.room() < need {
            return f(s);
        }
        let saved = s.mark();
        s.release_to(self.next);
        let r = f(s);
        self.next = s.mark();
        s.release_to(saved);
        r
    }
}

/// A chain in flight.
struct Pending {
    queue: usize,
    head: u16,
    writable: u64,
    /// Well-formed and served: answered with a valid response.
    must: bool,
    /// On a queue no earlier chain of the batch stopped, and not stopping
    /// it itself: answered before any repair.
    served: bool,
    /// vhost core refuses it: repaired.
    breaks: bool,
    resp: Option<u64>,
    kind: usize,
}

/// Publishes a plain request (as `repair` builds it) on `queue`.
fn repair_into(s: &mut Session, queue: usize) {
    let Some(head) = s.queues[queue].build(
        &s.mem,
        &[Buf {
            addr: 0,
            len: 0,
            write: false,
        }],
    ) else {
        return;
    };
    repair(s, queue, head);
    s.queues[queue].publish(&s.mem, head);
}

/// Rewrites the head descriptor of a chain vhost core refused into an
/// indirect one of a plain request the queue serves (an AN query on the
/// control queue, TEST UNIT READY on an I/O queue); the rest of the old
/// chain is no longer reachable from the head.  Returns its writable
/// bytes.
fn repair(s: &mut Session, queue: usize, head: u16) -> u64 {
    let (req, req_len, resp_len) = if queue == 0 {
        let req = s.mem.alloc(AN_REQ_SIZE, 8);
        let b = s.mem.slice_mut(req, AN_REQ_SIZE);
        b.fill(0);
        b[0..4].copy_from_slice(&1u32.to_le_bytes());
        b[4..12].copy_from_slice(&encode_lun(1, 0));
        (req, AN_REQ_SIZE, AN_RESP_SIZE)
    } else {
        let hlen = CmdReq::header_size(false);
        let req = s.mem.alloc(hlen, 8);
        CmdReq {
            lun: encode_lun(1, 0),
            tag: 0,
            task_attr: TaskAttr::Simple,
            prio: 0,
            crn: 0,
            pi_bytesout: 0,
            pi_bytesin: 0,
            cdb: [0; 32],
        }
        .encode(false, s.mem.slice_mut(req, hlen));
        (req, hlen, CMD_RESP_SIZE)
    };
    let resp = s.mem.alloc(resp_len, 8);
    let table = s.mem.alloc(32, 16);
    let d = s.mem.slice_mut(table, 32);
    d[0..8].copy_from_slice(&req.to_le_bytes());
    d[8..12].copy_from_slice(&(req_len as u32).to_le_bytes());
    d[12..14].copy_from_slice(&DESC_F_NEXT.to_le_bytes());
    d[14..16].copy_from_slice(&1u16.to_le_bytes());
    d[16..24].copy_from_slice(&resp.to_le_bytes());
    d[24..28].copy_from_slice(&(resp_len as u32).to_le_bytes());
    d[28..30].copy_from_slice(&DESC_F_WRITE.to_le_bytes());
    d[30..32].copy_from_slice(&0u16.to_le_bytes());
    s.queues[queue].set_desc(&s.mem, head, table, 32, DESC_F_INDIRECT, 0);
    resp_len as u64
}

/// A buffer length: a boundary value or a small input value.
fn length(r: &mut Reader<'_>) -> u32 {
    match r.pick(9) {
        0 => 1,
        1 => 8,
        2 => 512,
        3 => 4096,
        4 => 4097,
        5 => 65536,
        6 if r.chance(64) => 256 << 10,
        6 | 7 => 1 + u32::from(r.u16()),
        _ => 1 + u32::from(r.u8()),
    }
}

/// An address for `len` bytes: in our memory, or (rarely) a wild one;
/// returns it and whether it is inside the memory table (a wild one never
/// is, not even in part: vhost core must refuse it).
fn address(r: &mut Reader<'_>, s: &mut Session, len: u32) -> (u64, bool) {
    if r.chance(4) {
        let base = s.mem.base();
        let end = base + s.mem.len() as u64;
        let a = match r.pick(6) {
            0 => 0,
            1 => base - 4096,
            // Across the end (a single byte there would be inside).
            2 if len > 1 => end - u64::from(len / 2),
            2 | 3 => end,
            4 => 0xffff_ffff_ffff_f000,
            _ => r.u64(),
        };
        return (a, false);
    }
    (s.mem.alloc(len as usize, 8), true)
}

/// Splits `len` bytes at `addr` into 1-3 descriptors.
fn split(r: &mut Reader<'_>, addr: u64, len: u32, write: bool, out: &mut Vec<Buf>) {
    let pieces = 1 + r.pick(3) as u32;
    let pieces = pieces.min(len.max(1));
    let mut at = 0;
    for i in 0..pieces {
        let n = if i + 1 == pieces {
            len - at
        } else {
            len / pieces
        };
        out.push(Buf {
            addr: addr.wrapping_add(u64::from(at)),
            len: n,
            write,
        });
        at += n;
    }
}

fn chain(r: &mut Reader<'_>, s: &mut Session, pool: &mut Pool) -> Chain {
    let io = 2 + r.pick(s.queues.len() - 2);
    let mut c = Chain {
        queue: io,
        bufs: Vec::new(),
        must: true,
        resp: None,
        indirect: r.chance(50),
        relink: None,
        breaks: false,
        after_break: false,
        kind: 0,
    };
    match r.pick(16) {
        0..=9 => {
            // A SCSI command.
            let mut req = CmdReq {
                lun: encode_lun(1, 0),
                tag: r.u64(),
                task_attr: TaskAttr::from_wire(r.u8() % 8),
                prio: 0,
                crn: 0,
                pi_bytesout: 0,
                pi_bytesin: 0,
                cdb: [0; 32],
            };
            if r.chance(20) {
                r.fill(&mut req.lun);
            } else if r.chance(30) {
                req.lun = encode_lun(r.u8(), r.u16() & 0x3fff);
            }
            req.cdb[0] = if r.chance(30) {
                r.u8()
            } else {
                OPCODES[r.pick(OPCODES.len())]
            };
            let n = r.pick(16);
            r.fill(&mut req.cdb[1..1 + n]);
            if r.chance(128) {
                // LBA fields small, so reads and writes land in the LUN.
                for b in &mut req.cdb[2..6] {
                    *b = 0;
                }
            }
            let hlen = CmdReq::header_size(false);
            let hdr = s.mem.alloc(hlen, 8);
            req.encode(false, s.mem.slice_mut(hdr, hlen));
            let short_hdr = r.chance(8);
            let hl = if short_hdr {
                r.pick(hlen) as u32
            } else {
                hlen as u32
            };
            c.must &= !short_hdr && hl > 0;
            split(r, hdr, hl.max(1), false, &mut c.bufs);
            if r.chance(90) {
                let l = length(r);
                let (a, ok) = address(r, s, l);
                c.must &= ok;
                c.breaks |= !ok;
                if ok {
                    r.fill(s.mem.slice_mut(a, (l as usize).min(16)));
                }
                split(r, a, l, false, &mut c.bufs);
            }
            let short_resp = r.chance(8);
            let rl = if short_resp {
                r.pick(CMD_RESP_SIZE) as u32
            } else {
                CMD_RESP_SIZE as u32
            };
            c.must &= !short_resp;
            let resp = s.mem.alloc(CMD_RESP_SIZE, 8);
            c.bufs.push(Buf {
                addr: resp,
                len: rl.max(1),
                write: true,
            });
            c.resp = Some(resp);
            if r.chance(90) {
                let l = length(r);
                let (a, ok) = address(r, s, l);
                c.must &= ok;
                c.breaks |= !ok;
                split(r, a, l, true, &mut c.bufs);
            }
            if r.chance(8) {
                // A read-only buffer after a writable one: vhost core
                // refuses the chain ("out after in"), the queue stops.
                c.must = false;
                c.breaks = true;
                c.bufs.push(Buf {
                    addr: hdr,
                    len: 4,
                    write: false,
                });
            }
        }
        10..=12 => {
            // A TMF, an AN query/subscribe or an unknown type.
            c.queue = 0;
            c.kind = 1;
            let (ty, req_len, resp_len) = match r.pick(4) {
                0 | 1 => (0u32, TMF_REQ_SIZE, TMF_RESP_SIZE),
                2 => (1 + r.pick(2) as u32, AN_REQ_SIZE, AN_RESP_SIZE),
                _ => (r.u32(), 1 + r.pick(64), 1 + r.pick(64)),
            };
            let known = ty <= 2;
            let req = s.mem.alloc(64, 8);
            let b = s.mem.slice_mut(req, 64);
            r.fill(b);
            b[0..4].copy_from_slice(&ty.to_le_bytes());
            if ty == 0 {
                b[4..8].copy_from_slice(&u32::from(r.u8() % 12).to_le_bytes());
                if r.chance(200) {
                    b[8..16].copy_from_slice(&encode_lun(1, 0));
                }
            } else if known && r.chance(200) {
                b[4..12].copy_from_slice(&encode_lun(1, 0));
            }
            let short = r.chance(16);
            let rl = if short { r.pick(req_len) } else { req_len };
            c.must = known && !short && rl > 0;
            split(r, req, rl.max(1) as u32, false, &mut c.bufs);
            let resp = s.mem.alloc(64, 8);
            let wl = if r.chance(16) {
                1 + r.pick(resp_len)
            } else {
                resp_len
            };
            c.must &= wl == resp_len;
            c.bufs.push(Buf {
                addr: resp,
                len: wl as u32,
                write: true,
            });
        }
        13 => {
            // An event buffer, of the right size or not: held by the
            // device until an event (not answered now).
            c.queue = 1;
            c.must = false;
            c.kind = 2;
            let l = if r.chance(128) {
                EVENT_SIZE as u32
            } else {
                length(r)
            };
            let (a, ok) = pool.with(s, l as usize + 64, |s| address(r, s, l));
            c.breaks |= !ok;
            c.bufs.push(Buf {
                addr: a,
                len: l,
                write: !r.chance(30),
            });
        }
        14 => {
            // A chain with only device-readable or only writable buffers.
            c.must = false;
            c.kind = 3;
            let w = r.chance(128);
            let l = length(r);
            let (a, ok) = address(r, s, l);
            c.breaks |= !ok;
            split(r, a, l, w, &mut c.bufs);
        }
        _ => {
            // A broken chain: a loop or a next outside the table.
            c.must = false;
            c.kind = 4;
            let hdr = s.mem.alloc(64, 8);
            c.bufs.push(Buf {
                addr: hdr,
                len: 51,
                write: false,
            });
            let resp = s.mem.alloc(CMD_RESP_SIZE, 8);
            c.bufs.push(Buf {
                addr: resp,
                len: CMD_RESP_SIZE as u32,
                write: true,
            });
            // A loop back to the head, or a next outside the table: a
            // next inside it would link to whatever descriptor lies there
            // (a stale response buffer makes a chain vhost core serves).
            let num = s.queues[c.queue].num;
            let to = if r.chance(128) {
                0
            } else {
                num + r.u16() % (u16::MAX - num)
            };
            c.relink = Some((1, to));
            c.breaks = true;
        }
    }
    c
}

/// Writes a chain into its queue (direct or through an indirect table);
/// its head, or None if the ring has no room.
fn place(s: &mut Session, c: &Chain, pool: &mut Pool) -> Option<u16> {
    if !c.indirect || c.relink.is_some() {
        let head = s.queues[c.queue].build(&s.mem, &c.bufs)?;
        if let Some((i, to)) = c.relink {
            let ids = s.queues[c.queue].chain(head).to_vec();
            let id = ids[i.min(ids.len() - 1)];
            let to = if to == 0 { ids[0] } else { to };
            s.queues[c.queue].link(&s.mem, id, to);
        }
        return Some(head);
    }
    let n = c.bufs.len();
    let table = if c.queue == 1 {
        pool.with(s, 16 * n + 16, |s| s.mem.alloc(16 * n, 16))
    } else {
        s.mem.alloc(16 * n, 16)
    };
    for (i, b) in c.bufs.iter().enumerate() {
        let d = s.mem.slice_mut(table + 16 * i as u64, 16);
        let mut flags = if b.write { DESC_F_WRITE } else { 0 };
        if i + 1 < n {
            flags |= DESC_F_NEXT;
        }
        d[0..8].copy_from_slice(&b.addr.to_le_bytes());
        d[8..12].copy_from_slice(&b.len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&((i + 1) as u16).to_le_bytes());
    }
    let q = &mut s.queues[c.queue];
    let head = q.build(
        &s.mem,
        &[Buf {
            addr: table,
            len: 16 * n as u32,
            write: false,
        }],
    )?;
    q.set_desc(&s.mem, head, table, 16 * n as u32, DESC_F_INDIRECT, 0);
    Some(head)
}

/// The canary: a forked child with the device's fd and a copy of the
/// session memory fills that copy with a pattern, tries CLEAR_ENDPOINT,
/// SET_MEM_TABLE and RESET_OWNER (each must fail with EPERM), closes the
/// fd, waits while the owner's requests complete and checks its pattern.
fn canary(s: &Session, timeout: Duration) -> Result<(), String> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s.file);
    let code = bounded("a canary process with the device", timeout, || {
        vsdrv::sys::in_child(|| {
            let m = s.mem.slice_mut(s.mem.base(), s.mem.len());
            m.fill(0xa5);
            let mut ep = [0u8; 232];
            ep[0..4].copy_from_slice(&1i32.to_ne_bytes());
            let w = s.opts.wwpn.as_bytes();
            ep[4..4 + w.len().min(223)].copy_from_slice(&w[..w.len().min(223)]);
            let mut table = [0u8; 40];
            table[0..4].copy_from_slice(&1u32.to_ne_bytes());
            table[8..16].copy_from_slice(&s.mem.base().to_ne_bytes());
            table[16..24].copy_from_slice(&(s.mem.len() as u64).to_ne_bytes());
            table[24..32].copy_from_slice(&s.mem.base().to_ne_bytes());
            let reqs: [(u32, *mut u8); 3] = [
                (vsdrv::sys::SCSI_CLEAR_ENDPOINT, ep.as_mut_ptr()),
                (vsdrv::sys::SET_MEM_TABLE, table.as_mut_ptr()),
                (vsdrv::sys::RESET_OWNER, std::ptr::null_mut()),
            ];
            for (i, (req, arg)) in reqs.into_iter().enumerate() {
                // SAFETY: each argument is the one its request takes (a
                // vhost_scsi_target, a vhost_memory with one region,
                // none), alive for the call.
                let rc = unsafe { vsdrv::sys::ioctl_ptr(fd, req, arg) };
                if rc.map_err(|e| e.raw_os_error()) != Err(Some(1)) {
                    return 10 + i as u8;
                }
            }
            crate::pseudo::canary_end(fd, m)
        })
    })?;
    crate::pseudo::canary_verdict(
        code,
        ["CLEAR_ENDPOINT", "SET_MEM_TABLE", "RESET_OWNER"],
        "device",
    )
}

/// A child opens the device, binds it, posts eight TEST UNIT READYs on
/// each I/O queue and waits; it is SIGKILLed `after` the fork.
fn owner_killed(opts: &Options, after: Duration) {
    crate::pseudo::kill_after(
        || {
            let Ok(mut s) = Session::open(opts) else {
                return 1;
            };
            if s.set_endpoint().is_err() {
                return 2;
            }
            for q in 2..s.queues.len() {
                for _ in 0..8 {
                    repair_into(&mut s, q);
                }
                s.queues[q].kick();
            }
            std::thread::sleep(Duration::from_secs(60));
            0
        },
        after,
    );
}

/// Runs `f`, which must return within `timeout`; its result.
pub fn bounded<R>(what: &str, timeout: Duration, f: impl FnOnce() -> R) -> Result<R, String> {
    let t = Instant::now();
    let r = f();
    if t.elapsed() > timeout {
        return Err(format!("{what} took {:?}", t.elapsed()));
    }
    Ok(r)
}

/// Drops `s` (closing the device); close must return within `timeout`.
pub fn close_timed<T>(s: T, timeout: Duration) -> Result<(), String> {
    bounded("close", timeout, || drop(s))
}
