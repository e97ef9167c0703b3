// SPDX-License-Identifier: GPL-2.0
//! vsdrv - drive a vhost-scsi device from userspace.
//!
//! SYNOPSIS
//!     vsdrv [OPTIONS] run SCRIPT
//!     vsdrv [OPTIONS] bench [--rw randread|randwrite|read|write] [--bs N]
//!                           [--qd N] [--secs N] [--lun N] [--poll]
//!     vsdrv [OPTIONS] stress [--rounds N] [--depth N] [--ordered]
//!     vsdrv [OPTIONS] close-race [--rounds N] [--depth N]
//!     vsdrv [OPTIONS] call-race [--rounds N] [--depth N]
//!     vsdrv [OPTIONS] info
//!     vsdrv [OPTIONS] openmem [N]
//!
//! OPTIONS
//!     --dev PATH        vhost-scsi device (default /dev/vhost-scsi)
//!     --wwpn NAME       WWPN given to VHOST_SCSI_SET_ENDPOINT (required)
//!     --queues N        I/O virtqueues (default 1)
//!     --ring N          entries per virtqueue (default 128)
//!     --workers         one vhost worker per I/O queue (VHOST_NEW_WORKER)
//!     --hotplug         negotiate VIRTIO_SCSI_F_HOTPLUG (LUN events)
//!     --pi              negotiate VIRTIO_SCSI_F_T10_PI (protection information)
//!     --timeout-ms N    how long to wait for each command (default 3000)
//!     --no-event-idx    bench: do not negotiate VIRTIO_RING_F_EVENT_IDX
//!     --busyloop US     VHOST_SET_VRING_BUSYLOOP_TIMEOUT of every I/O queue
//!     --worker-cpu N    run the vhost workers on CPU N (this process is
//!                       bound to it while it creates them)
//!
//! `bench` keeps `--qd` reads or writes of `--bs` bytes in flight on every
//! I/O queue of LUN `--lun` for `--secs` seconds, one thread per queue.
//! Like a guest's virtio driver, it negotiates VIRTIO_RING_F_EVENT_IDX,
//! kicks only when the device asks and sleeps on the call eventfd until a
//! completion (`--poll`: busy-polls the used ring instead).  It prints
//! IOPS, MB/s, latency percentiles and the CPU time per I/O as the
//! threads' run times count it: all threads' (`cpu_us_per_io`), the vhost
//! workers' (`worker_us_per_io`), the other processes' threads
//! (`other_us_per_io`: target core's kworkers, softirq threads), the
//! device's cost without its client (`kern_us_per_io`, the sum of those
//! two) and this process's submitting threads (`client_us_per_io`), with
//! the machine's busy time as the scheduler tick sampled it
//! (`tick_us_per_io`, for comparison); and how many completions each signal of
//! the call eventfd brought (`ios_per_signal`), and how many kicks the
//! device asked for (`kicks`, `kicks_per_io`).
//!
//! `openmem` opens the device N times (default 16), set up as QEMU does,
//! and prints the kernel memory each open costs (`kib_per_open`); with
//! `--wwpn`, also what setting the endpoint and serving one command on each
//! I/O queue adds per device (`kib_per_endpoint`).  A TPG serves one device
//! at a time: `%02x` in the WWPN is replaced by the open's index (00, 01,
//! ...), so that each binds a port of its own.
//!
//! `stress` runs N rounds (default 1000): each submits `depth` (default 8)
//! 4 KiB reads and writes to LUN 0 of target 1 and, while they are in
//! flight, a task management function (ABORT TASK of one of them, and in
//! turn ABORT TASK SET, LOGICAL UNIT RESET, I_T NEXUS RESET, QUERY TASK),
//! then waits until every request and the TMF were answered; with
//! `--ordered`, it then sends an ORDERED TEST UNIT READY, which must be
//! answered too (target core delays it until every command before it has
//! ended, aborted ones included).  It fails if a request is not answered
//! within the timeout or is answered twice, and prints how the commands
//! ended.
//!
//! `call-race` runs N rounds (default 2000) of `depth` reads and writes
//! while a second thread keeps swapping the I/O queue's call eventfd for a
//! fresh one and back, closing the fresh one each time; every request must
//! be answered with GOOD (the used ring is polled).  The kernel log must
//! stay clean: the call context must only be signalled under the
//! virtqueue mutex, under which the swap releases it.
//!
//! `run` executes a script, one command per line, and prints one line per
//! command: the response code, SCSI status, residual, sense bytes and a
//! hash of the data-in bytes (what the differential test compares).  See
//! Documentation/testing.rst for the script language.  The exit status is 0
//! when every read-back verification matched, 1 otherwise.

use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tcm_virt_wire::virtio_scsi::{CmdResp, Response, TaskAttr, CMD_REQ_SIZE, CMD_RESP_SIZE};
use vsdrv::{parse_hex, pattern, sys, Buf, Command, Options, Outcome, Session};

fn usage() -> ExitCode {
    eprintln!(
        "usage: vsdrv [--dev PATH] --wwpn NAME [--queues N] [--ring N] [--workers] [--hotplug] [--pi]\n\
         \x20            [--timeout-ms N] [--no-event-idx] [--busyloop US] [--worker-cpu N]\n\
         \x20            (run SCRIPT | bench [--rw MODE] [--bs N] [--qd N] [--secs N] [--lun N] [--poll]\n\
         \x20            | stress [--rounds N] [--depth N] [--ordered] | info | openmem [N]\n\
         \x20            | close-race [--rounds N] [--depth N] | call-race [--rounds N] [--depth N])"
    );
    ExitCode::from(2)
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn describe(out: &Outcome, data: &[u8]) -> String {
    match out {
        Outcome::Done { resp, .. } => describe_resp(resp, data),
        Outcome::Garbled { .. } => "returned without a response".into(),
        Outcome::NoResponse => "no response".into(),
    }
}

fn describe_resp(r: &CmdResp, data: &[u8]) -> String {
    let mut s = format!(
        "response={:?} status=0x{:02x} resid={} sense_len={}",
        r.response, r.status, r.resid, r.sense_len
    );
    if r.sense_len > 0 {
        let n = (r.sense_len as usize).min(18);
        s.push_str(" sense=");
        for b in &r.sense[..n] {
            let _ = write!(s, "{:02x}", b);
        }
    }
    if !data.is_empty() {
        let _ = write!(s, " data={}:{:016x}", data.len(), fnv(data));
    }
    s
}

/// A control request chain: `req_len` readable bytes at `req`, `resp_len`
/// writable bytes at `resp`.
fn req_resp(req: u64, req_len: u32, resp: u64, resp_len: u32) -> Vec<Buf> {
    vec![
        Buf {
            addr: req,
            len: req_len,
            write: false,
        },
        Buf {
            addr: resp,
            len: resp_len,
            write: true,
        },
    ]
}

struct Runner {
    s: Session,
    target: u8,
    lun: u16,
    bs: usize,
    tag: u64,
    /// The task attribute of the commands (`attr`).
    attr: TaskAttr,
    timeout: Duration,
    failed: bool,
    /// Commands started with `start`: name -> (tag, head, response, data-in).
    pending: Vec<(String, u64, u16, u64, u64, usize)>,
    /// Event buffers posted on the event queue: head -> address.
    evbufs: Vec<(u16, u64)>,
    /// Tags of the commands started so far, by name (for `tmf ... @NAME`).
    tags: Vec<(String, u64)>,
    /// Control requests posted with `tmf-post`, not yet waited for:
    /// (head, response address).
    ctl_posted: Vec<(u16, u64)>,
    /// Control queue completions reaped while waiting for another chain.
    ctl_stash: Vec<u16>,
}

/// Parses a CDB given in hex.
fn hex_cdb(hex: &str) -> Result<Vec<u8>, String> {
    parse_hex(hex, 32)
}

fn hex_bytes(hex: &str) -> Result<Vec<u8>, String> {
    parse_hex(hex, 1 << 16)
}

fn num(a: Option<&&str>) -> Result<u64, String> {
    let a = a.ok_or("missing argument")?;
    if let Some(h) = a.strip_prefix("0x") {
        u64::from_str_radix(h, 16).map_err(|e| e.to_string())
    } else {
        a.parse()
            .map_err(|e: std::num::ParseIntError| e.to_string())
    }
}

impl Runner {
    fn cmd(&mut self, cdb: &[u8], out: &[u8], din: usize) -> (Outcome, Vec<u8>) {
        self.cmd_pi(cdb, out, din, 0, 0)
    }

    /// As `cmd`, the first `pi_out` bytes of `out` and `pi_in` bytes of the
    /// data-in buffer being protection information.
    fn cmd_pi(
        &mut self,
        cdb: &[u8],
        out: &[u8],
        din: usize,
        pi_out: u32,
        pi_in: u32,
    ) -> (Outcome, Vec<u8>) {
        self.tag += 1;
        let mark = self.s.mark();
        let r = self.s.command_attr(
            &Command {
                queue: 2,
                target: self.target,
                lun: self.lun,
                tag: self.tag,
                cdb,
                data_out: out,
                data_in: din,
                pi_out,
                pi_in,
            },
            self.attr,
            self.timeout,
        );
        self.s.release_to(mark);
        r
    }

    fn rw(&mut self, w: &[&str]) -> Result<String, String> {
        let lba = num(w.get(1))?;
        let n = num(w.get(2))? as usize;
        let seed = num(w.get(3)).unwrap_or(1);
        let write = w[0].starts_with("write");
        let long = w[0].ends_with("16");
        let mut cdb = vec![0u8; if long { 16 } else { 10 }];
        if long {
            cdb[0] = if write { 0x8a } else { 0x88 };
            cdb[2..10].copy_from_slice(&lba.to_be_bytes());
            cdb[10..14].copy_from_slice(&(n as u32).to_be_bytes());
        } else {
            cdb[0] = if write { 0x2a } else { 0x28 };
            cdb[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
            cdb[7..9].copy_from_slice(&(n as u16).to_be_bytes());
        }
        let pat = pattern(seed, lba, n, self.bs);
        if write {
            let (o, d) = self.cmd(&cdb, &pat, 0);
            Ok(describe(&o, &d))
        } else {
            let (o, d) = self.cmd(&cdb, &[], n * self.bs);
            // Only a successful read is verified.
            let good = matches!(&o, Outcome::Done { resp, .. }
                if resp.response == Response::Ok && resp.status == 0);
            let verdict = match (good, d == pat) {
                (false, _) => "-",
                (true, true) => "ok",
                (true, false) => {
                    self.failed = true;
                    "MISMATCH"
                }
            };
            Ok(format!("{} verify={}", describe(&o, &d), verdict))
        }
    }

    /// `pi-write[-bad] LBA N SEED` and `pi-read LBA N SEED`: WRITE(10) with
    /// WRPROTECT=1 carrying type 1 protection information (with `-bad`, a
    /// wrong guard tag in the first block), READ(10) with RDPROTECT=1
    /// returning it; the read checks the data against the pattern and each
    /// block's guard and reference tags (`pi=ok`).
    fn pi_rw(&mut self, w: &[&str]) -> Result<String, String> {
        let lba = num(w.get(1))?;
        let n = num(w.get(2))? as usize;
        let seed = num(w.get(3)).unwrap_or(1);
        let write = w[0].starts_with("pi-write");
        let mut cdb = [0u8; 10];
        cdb[0] = if write { 0x2a } else { 0x28 };
        cdb[1] = 0x20;
        cdb[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
        cdb[7..9].copy_from_slice(&(n as u16).to_be_bytes());
        let pat = pattern(seed, lba, n, self.bs);
        let pil = (8 * n) as u32;
        if write {
            let mut out = vsdrv::pi_type1(&pat, lba, self.bs);
            if w[0] == "pi-write-bad" {
                out[0] ^= 0xff;
            }
            out.extend_from_slice(&pat);
            let (o, d) = self.cmd_pi(&cdb, &out, 0, pil, 0);
            return Ok(describe(&o, &d));
        }
        let (o, d) = self.cmd_pi(&cdb, &[], 8 * n + n * self.bs, 0, pil);
        let good = matches!(&o, Outcome::Done { resp, .. }
            if resp.response == Response::Ok && resp.status == 0);
        let (pi, data) = d.split_at((8 * n).min(d.len()));
        let verdict = match (
            good,
            data == pat.as_slice(),
            pi == vsdrv::pi_type1(data, lba, self.bs),
        ) {
            (false, _, _) => "-",
            (true, true, true) => "ok",
            (true, false, _) => {
                self.failed = true;
                "MISMATCH"
            }
            (true, true, false) => {
                self.failed = true;
                "PI-MISMATCH"
            }
        };
        Ok(format!("{} pi_verify={verdict}", describe(&o, &d)))
    }

    /// The request header of a TEST UNIT READY to the current LUN, with
    /// the next tag.
    fn tur_header(&mut self) -> [u8; CMD_REQ_SIZE] {
        self.tag += 1;
        let mut h = [0u8; CMD_REQ_SIZE];
        h[..8].copy_from_slice(&tcm_virt_wire::virtio_scsi::encode_lun(
            self.target,
            self.lun,
        ));
        h[8..16].copy_from_slice(&self.tag.to_le_bytes());
        // CDB byte 0 at offset 19: 0x00, TEST UNIT READY.
        h
    }

    /// Hand-built request chains (malformed or unusual layouts).
    fn bad(&mut self, what: &str) -> Result<String, String> {
        let mark = self.s.mark();
        let hdr = self.tur_header();
        let m = &mut self.s.mem;
        let h = m.alloc(CMD_REQ_SIZE, 8);
        let resp = m.alloc(CMD_RESP_SIZE, 8);
        let buf = |addr, len, write| Buf { addr, len, write };
        let inq = |m: &mut vsdrv::Memory, h: u64| {
            // INQUIRY, 96 bytes.
            let s = m.slice_mut(h + 19, 6);
            s.copy_from_slice(&[0x12, 0, 0, 0, 96, 0]);
        };
        m.slice_mut(h, CMD_REQ_SIZE).copy_from_slice(&hdr);
        let mut extra_data = None;
        let bufs: Vec<Buf> = match what {
            "short-resp" => vec![buf(h, 51, false), buf(resp, 50, true)],
            "no-resp" => vec![buf(h, 51, false)],
            "short-header" => vec![buf(h, 20, false), buf(resp, 108, true)],
            "lun-format" => {
                m.slice_mut(h, 1)[0] = 2;
                vec![buf(h, 51, false), buf(resp, 108, true)]
            }
            "cdb-too-long" => {
                let s = m.slice_mut(h + 19, 8);
                s.copy_from_slice(&[0x7f, 0, 0, 0, 0, 0, 0, 200]);
                vec![buf(h, 51, false), buf(resp, 108, true)]
            }
            "split-header" => {
                inq(m, h);
                let d = m.alloc(96, 8);
                extra_data = Some((d, 96));
                vec![
                    buf(h, 10, false),
                    buf(h + 10, 1, false),
                    buf(h + 11, 40, false),
                    buf(resp, 108, true),
                    buf(d, 96, true),
                ]
            }
            "split-resp" => {
                inq(m, h);
                let d = m.alloc(96, 8);
                extra_data = Some((d, 96));
                vec![
                    buf(h, 51, false),
                    buf(resp, 54, true),
                    buf(resp + 54, 54, true),
                    buf(d, 96, true),
                ]
            }
            "resp-with-data" => {
                // Response and data-in in one descriptor.
                inq(m, h);
                let d = m.alloc(108 + 96, 8);
                extra_data = Some((d + 108, 96));
                return self.finish_raw(
                    vec![buf(h, 51, false), buf(d, 204, true)],
                    d,
                    mark,
                    extra_data,
                );
            }
            "both-dirs" => {
                let o = m.alloc(512, 8);
                let d = m.alloc(512, 8);
                vec![
                    buf(h, 51, false),
                    buf(o, 512, false),
                    buf(resp, 108, true),
                    buf(d, 512, true),
                ]
            }
            "huge" => {
                // READ(10) of 9 MiB: over the per-command limit.
                let s = m.slice_mut(h + 19, 10);
                s.copy_from_slice(&[0x28, 0, 0, 0, 0, 0, 0, 0x48, 0, 0]);
                let d = m.alloc(9 << 20, 4096);
                vec![
                    buf(h, 51, false),
                    buf(resp, 108, true),
                    buf(d, 9 << 20, true),
                ]
            }
            "unpinnable" => {
                // A data-in page inside the memory table but not mapped.
                inq(m, h);
                let d = m.alloc(8192, 4096);
                vsdrv::sys::unmap(d as *mut u8, 4096);
                vec![buf(h, 51, false), buf(resp, 108, true), buf(d, 96, true)]
            }
            "outside-mem" => {
                vec![
                    buf(h, 51, false),
                    buf(resp, 108, true),
                    buf(0x1000, 4096, true),
                ]
            }
            "loop" => {
                let q = &mut self.s.queues[2];
                let Some(head) = q.build(&self.s.mem, &[buf(h, 51, false), buf(resp, 108, true)])
                else {
                    return Err("no descriptors".into());
                };
                let last = *q.chain(head).last().unwrap_or(&head);
                q.link(&self.s.mem, last, head);
                let o = self.s.submit_wait(2, head, resp, self.timeout);
                self.s.release_to(mark);
                return Ok(describe(&o, &[]));
            }
            _ => return Err(format!("unknown malformed request '{what}'")),
        };
        // The unmapped page must not be handed out again.
        let mark = if what == "unpinnable" {
            self.s.mark()
        } else {
            mark
        };
        self.finish_raw(bufs, resp, mark, extra_data)
    }

    fn finish_raw(
        &mut self,
        bufs: Vec<Buf>,
        resp: u64,
        mark: usize,
        data: Option<(u64, usize)>,
    ) -> Result<String, String> {
        let o = self.s.raw(2, &bufs, resp, self.timeout);
        let d = data
            .map(|(a, n)| self.s.mem.slice(a, n).to_vec())
            .unwrap_or_default();
        self.s.release_to(mark);
        Ok(describe(&o, &d))
    }

    /// Control queue requests.
    fn ctl(&mut self, w: &[&str]) -> Result<String, String> {
        let mark = self.s.mark();
        let m = &mut self.s.mem;
        let req = m.alloc(24, 8);
        let resp = m.alloc(16, 8);
        let lun = tcm_virt_wire::virtio_scsi::encode_lun(self.target, self.lun);
        let (bufs, rlen) = match w[0] {
            "tmf" | "tmf-post" => {
                let sub = num(w.get(1))? as u32;
                let s = m.slice_mut(req, 24);
                s[4..8].copy_from_slice(&sub.to_le_bytes());
                s[8..16].copy_from_slice(&lun);
                let tag = match w.get(2) {
                    Some(n) if n.starts_with('@') => self
                        .tags
                        .iter()
                        .find(|p| p.0 == n[1..])
                        .map(|p| p.1)
                        .ok_or(format!("no command {n} started"))?,
                    _ => num(w.get(2)).unwrap_or(0),
                };
                let s = m.slice_mut(req, 24);
                s[16..24].copy_from_slice(&tag.to_le_bytes());
                (req_resp(req, 24, resp, 1), 1)
            }
            "an-query" | "an-subscribe" => {
                let s = m.slice_mut(req, 16);
                s[0] = if w[0] == "an-query" { 1 } else { 2 };
                s[4..12].copy_from_slice(&lun);
                s[12..16].copy_from_slice(&0xffu32.to_le_bytes());
                (req_resp(req, 16, resp, 5), 5)
            }
            "ctl-short" => {
                // A TMF request cut to 8 bytes.
                (req_resp(req, 8, resp, 1), 1)
            }
            "ctl-unknown" => {
                m.slice_mut(req, 1)[0] = 9;
                (req_resp(req, 24, resp, 8), 8)
            }
            _ => unreachable!(),
        };
        m.slice_mut(resp, 16).fill(0xee);
        let q = &mut self.s.queues[0];
        let Some(head) = q.build(&self.s.mem, &bufs) else {
            return Err("no descriptors".into());
        };
        q.publish(&self.s.mem, head);
        q.kick();
        if w[0] == "tmf-post" {
            // Not waited for (`tmf-wait` does): its buffers stay allocated.
            self.ctl_posted.push((head, resp));
            return Ok("posted".into());
        }
        let r = if self.wait_ctl(head, self.timeout) {
            let b = self.s.mem.slice(resp, rlen);
            if b.iter().all(|&x| x == 0xee) {
                "returned without a response".to_string()
            } else {
                format!("ctl-response={:02x?}", b)
            }
        } else {
            "no response".into()
        };
        self.s.release_to(mark);
        Ok(r)
    }

    /// Waits up to `timeout` for the control chain `head`; other control
    /// completions are kept for later waits.
    fn wait_ctl(&mut self, head: u16, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if let Some(i) = self.ctl_stash.iter().position(|&h| h == head) {
                self.ctl_stash.remove(i);
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            let used = if left.is_zero() {
                self.s.queues[0].reap(&self.s.mem)
            } else {
                self.s.queues[0].wait(&self.s.mem, left)
            };
            if used.is_empty() && left.is_zero() {
                return false;
            }
            self.ctl_stash.extend(used.iter().map(|u| u.head));
        }
    }

    /// `tmf-wait [MS]`: waits up to MS ms (default: the timeout) for every
    /// control request posted with `tmf-post` and prints their answers in
    /// the order they were posted (`no response` for one that did not come).
    fn tmf_wait(&mut self, w: &[&str]) -> Result<String, String> {
        let limit = match w.get(1) {
            Some(_) => Duration::from_millis(num(w.get(1))?),
            None => self.timeout,
        };
        let end = Instant::now() + limit;
        let mut out = Vec::new();
        for (head, resp) in std::mem::take(&mut self.ctl_posted) {
            let left = end.saturating_duration_since(Instant::now());
            out.push(if self.wait_ctl(head, left) {
                format!("ctl-response={:02x?}", self.s.mem.slice(resp, 1))
            } else {
                "no response".to_string()
            });
        }
        if out.is_empty() {
            return Err("no control request posted".into());
        }
        Ok(out.join(" "))
    }

    /// Posts a TEST UNIT READY on the request queue: (head, response).
    fn post_tur(&mut self) -> Result<(u16, u64), String> {
        let req = self.tur_header();
        let m = &mut self.s.mem;
        let h = m.alloc(CMD_REQ_SIZE, 8);
        m.slice_mut(h, CMD_REQ_SIZE).copy_from_slice(&req);
        let resp = m.alloc(CMD_RESP_SIZE, 8);
        m.slice_mut(resp, 12)[11] = 0xff;
        let bufs = req_resp(h, CMD_REQ_SIZE as u32, resp, CMD_RESP_SIZE as u32);
        let q = &mut self.s.queues[2];
        let head = q.build(&self.s.mem, &bufs).ok_or("no descriptors")?;
        q.publish(&self.s.mem, head);
        q.kick();
        Ok((head, resp))
    }

    /// `evt-flood MS [PROMPT_MS]`: for MS ms a second thread keeps the event
    /// queue full of wrongly shaped buffers (one writable 8-byte buffer,
    /// too short for an event), published again as fast as the device
    /// returns them, while this thread sends TEST UNIT READYs one after the
    /// other on the request queue: each must be answered within PROMPT_MS
    /// (default 1000), or the run fails.  The device takes event buffers
    /// only while it has something to deliver: set events-missed first.
    fn evt_flood(&mut self, w: &[&str]) -> Result<String, String> {
        let ms = num(w.get(1))?;
        let prompt = Duration::from_millis(num(w.get(2)).unwrap_or(1000));
        if !self.evbufs.is_empty() {
            return Err("event buffers posted: evt-wait for them first".into());
        }
        let base = self.s.mark();
        let small = self.s.mem.alloc(8, 8);
        let flood = self
            .s
            .flood(
                1,
                &[Buf {
                    addr: small,
                    len: 8,
                    write: true,
                }],
            )
            .ok_or("cannot flood the event queue")?;
        let t0 = Instant::now();
        let end = t0 + Duration::from_millis(ms);
        let (mut turs, mut slowest) = (0u64, Duration::ZERO);
        let mut late = None;
        while Instant::now() < end {
            let mark = self.s.mark();
            let (head, resp) = self.post_tur()?;
            let t = Instant::now();
            turs += 1;
            match self.s.wait_for(2, head, resp, prompt) {
                Outcome::NoResponse => {
                    late = Some((head, resp, t));
                    break;
                }
                _ => slowest = slowest.max(t.elapsed()),
            }
            self.s.release_to(mark);
        }
        let flooded = t0.elapsed();
        let fe = flood.stop(&mut self.s, self.timeout);
        let mut r = format!(
            "flood: ms={} evt-chains={} drained={} turs={turs} slowest-ms={}",
            flooded.as_millis(),
            fe.taken,
            fe.drained,
            slowest.as_millis()
        );
        if let Some((head, resp, t)) = late {
            self.failed = true;
            let o = self.s.wait_for(2, head, resp, self.timeout);
            let _ = write!(
                r,
                " UNANSWERED within {} ms (then: {} after {} ms)",
                prompt.as_millis(),
                describe(&o, &[]),
                t.elapsed().as_millis()
            );
        }
        if !fe.drained {
            self.failed = true;
        }
        self.s.release_to(base);
        Ok(r)
    }

    /// `start NAME CDB [in N | out N]`: submits without waiting.
    fn start(&mut self, w: &[&str]) -> Result<String, String> {
        let name = w.get(1).ok_or("missing name")?.to_string();
        let cdb = hex_cdb(w.get(2).ok_or("missing CDB")?)?;
        let n = num(w.get(4)).unwrap_or(0) as usize;
        let out = w.get(3) == Some(&"out");
        self.tag += 1;
        let mut req = [0u8; CMD_REQ_SIZE];
        req[..8].copy_from_slice(&tcm_virt_wire::virtio_scsi::encode_lun(
            self.target,
            self.lun,
        ));
        req[8..16].copy_from_slice(&self.tag.to_le_bytes());
        req[16] = match self.attr {
            TaskAttr::Simple => 0,
            TaskAttr::Ordered => 1,
            TaskAttr::Head => 2,
            TaskAttr::Aca => 3,
        };
        req[19..19 + cdb.len()].copy_from_slice(&cdb);
        let m = &mut self.s.mem;
        let h = m.alloc(CMD_REQ_SIZE, 8);
        m.slice_mut(h, CMD_REQ_SIZE).copy_from_slice(&req);
        let resp = m.alloc(CMD_RESP_SIZE, 8);
        m.slice_mut(resp, 12)[11] = 0xff;
        let mut bufs = vec![Buf {
            addr: h,
            len: CMD_REQ_SIZE as u32,
            write: false,
        }];
        let d = if n > 0 { m.alloc(n, 4096) } else { 0 };
        if out && n > 0 {
            bufs.push(Buf {
                addr: d,
                len: n as u32,
                write: false,
            });
        }
        bufs.push(Buf {
            addr: resp,
            len: CMD_RESP_SIZE as u32,
            write: true,
        });
        if !out && n > 0 {
            bufs.push(Buf {
                addr: d,
                len: n as u32,
                write: true,
            });
        }
        let q = &mut self.s.queues[2];
        let head = q.build(&self.s.mem, &bufs).ok_or("no descriptors")?;
        q.publish(&self.s.mem, head);
        q.kick();
        let din = if out { 0 } else { n };
        self.tags.push((name.clone(), self.tag));
        self.pending.push((name, self.tag, head, resp, d, din));
        Ok(format!("tag={}", self.tag))
    }

    /// `finish NAME` (`wait`: up to the timeout) and `poll NAME` (without
    /// waiting: `pending`, the command still started, while it has no
    /// answer): a started command's answer.
    fn answer(&mut self, name: &str, wait: bool) -> Result<String, String> {
        let i = self
            .pending
            .iter()
            .position(|p| p.0 == name)
            .ok_or(format!("no command {name} started"))?;
        let (_, _, head, resp, d, din) = self.pending[i].clone();
        let timeout = if wait { self.timeout } else { Duration::ZERO };
        let o = self.s.wait_for(2, head, resp, timeout);
        if !wait && matches!(o, Outcome::NoResponse) {
            return Ok("pending".into());
        }
        self.pending.remove(i);
        let data = if din > 0 {
            self.s.mem.slice(d, din).to_vec()
        } else {
            Vec::new()
        };
        Ok(describe(&o, &data))
    }

    fn line(&mut self, w: &[&str]) -> Result<String, String> {
        let t = |r: (Outcome, Vec<u8>)| describe(&r.0, &r.1);
        Ok(match w[0] {
            "lun" => {
                self.target = num(w.get(1))? as u8;
                self.lun = num(w.get(2))? as u16;
                return Ok(String::new());
            }
            "attr" => {
                self.attr = match w.get(1).copied() {
                    Some("simple") => TaskAttr::Simple,
                    Some("ordered") => TaskAttr::Ordered,
                    Some("head") => TaskAttr::Head,
                    Some("aca") => TaskAttr::Aca,
                    _ => return Err("attr simple|ordered|head|aca".into()),
                };
                return Ok(String::new());
            }
            "tur" => t(self.cmd(&[0; 6], &[], 0)),
            "inquiry" => {
                let n = num(w.get(1)).unwrap_or(36) as usize;
                t(self.cmd(&[0x12, 0, 0, 0, n as u8, 0], &[], n))
            }
            "vpd" => {
                let p = num(w.get(1))? as u8;
                t(self.cmd(&[0x12, 1, p, 0, 252, 0], &[], 252))
            }
            "report-luns" => t(self.cmd(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], &[], 256)),
            "readcap16" => {
                let (o, d) = self.cmd(
                    &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
                    &[],
                    32,
                );
                if let Outcome::Done { .. } = o {
                    if d.len() >= 12 {
                        self.bs = u32::from_be_bytes([d[8], d[9], d[10], d[11]]).max(512) as usize;
                    }
                }
                describe(&o, &d)
            }
            "readcap10" => t(self.cmd(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 8)),
            "read10" | "write10" | "read16" | "write16" => self.rw(w)?,
            "pi-write" | "pi-write-bad" | "pi-read" => self.pi_rw(w)?,
            "sync" => t(self.cmd(&[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 0)),
            "unmap" => {
                let lba = num(w.get(1))?;
                let n = num(w.get(2))? as u32;
                let mut p = vec![0u8; 24];
                p[1] = 22;
                p[3] = 16;
                p[8..16].copy_from_slice(&lba.to_be_bytes());
                p[16..20].copy_from_slice(&n.to_be_bytes());
                t(self.cmd(&[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &p, 0))
            }
            "cdb" => {
                // cdb HEX [in N | inhex N | out N | data HEX]
                let cdb = hex_cdb(w.get(1).ok_or("missing CDB")?)?;
                match w.get(2).copied() {
                    Some("out") => t(self.cmd(&cdb, &vec![0u8; num(w.get(3))? as usize], 0)),
                    Some("data") => {
                        t(self.cmd(&cdb, &hex_bytes(w.get(3).ok_or("missing data")?)?, 0))
                    }
                    Some("inhex") => {
                        let (o, d) = self.cmd(&cdb, &[], num(w.get(3))? as usize);
                        let mut s = describe(&o, &[]);
                        s.push_str(" data=");
                        for b in &d {
                            let _ = write!(s, "{b:02x}");
                        }
                        s
                    }
                    _ => t(self.cmd(&cdb, &[], num(w.get(3)).unwrap_or(0) as usize)),
                }
            }
            "bad" => self.bad(w.get(1).ok_or("missing kind")?)?,
            "start" => self.start(w)?,
            "finish" => self.answer(w.get(1).ok_or("missing name")?, true)?,
            "poll" => self.answer(w.get(1).ok_or("missing name")?, false)?,
            "evt-post" => {
                let n = num(w.get(1)).unwrap_or(1);
                for _ in 0..n {
                    let a = self.s.mem.alloc(16, 8);
                    self.s.mem.slice_mut(a, 16).fill(0xee);
                    let q = &mut self.s.queues[1];
                    let Some(head) = q.build(
                        &self.s.mem,
                        &[Buf {
                            addr: a,
                            len: 16,
                            write: true,
                        }],
                    ) else {
                        return Err("no descriptors".into());
                    };
                    q.publish(&self.s.mem, head);
                    self.evbufs.push((head, a));
                }
                self.s.queues[1].kick();
                format!("posted={}", self.evbufs.len())
            }
            "evt-wait" => {
                let ms = num(w.get(1)).unwrap_or(2000);
                let want = num(w.get(2)).unwrap_or(1) as usize;
                let end = Instant::now() + Duration::from_millis(ms);
                let mut used = Vec::new();
                while used.len() < want {
                    let left = end.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    used.extend(self.s.queues[1].wait(&self.s.mem, left));
                }
                let mut out = Vec::new();
                for u in used {
                    let Some(i) = self.evbufs.iter().position(|b| b.0 == u.head) else {
                        continue;
                    };
                    let (_, a) = self.evbufs.remove(i);
                    let e = self.s.mem.slice(a, 16);
                    let ev = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                    let reason = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
                    out.push(format!(
                        "event=0x{ev:08x} lun={:02x?} reason={reason} len={}",
                        &e[4..12],
                        u.len
                    ));
                }
                if out.is_empty() {
                    "no event".into()
                } else {
                    out.join(" ; ")
                }
            }
            "events-missed" => {
                format!("{:?}", self.s.events_missed().map_err(|e| e.raw_os_error()))
            }
            "set-events-missed" => format!(
                "{:?}",
                self.s
                    .set_events_missed(num(w.get(1))? as u32)
                    .map_err(|e| e.raw_os_error())
            ),
            "log-start" => format!("{:?}", self.s.log_start().map_err(|e| e.raw_os_error())),
            "log-stop" => format!("{:?}", self.s.log_stop().map_err(|e| e.raw_os_error())),
            "log-clear" => {
                self.s.log_clear();
                return Ok(String::new());
            }
            "log-check" => match self.s.log_check() {
                Ok((m, w)) => format!("log ok: {m} pages marked, {w} written"),
                Err(e) => {
                    self.failed = true;
                    format!("log MISMATCH: {e}")
                }
            },
            "sleep" => {
                std::thread::sleep(Duration::from_millis(num(w.get(1))?));
                return Ok(String::new());
            }
            "sh" => {
                let st = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(w[1..].join(" "))
                    .status()
                    .map_err(|e| e.to_string())?;
                format!("exit={}", st.code().unwrap_or(-1))
            }
            "tmf" | "tmf-post" | "an-query" | "an-subscribe" | "ctl-short" | "ctl-unknown" => {
                self.ctl(w)?
            }
            "tmf-wait" => self.tmf_wait(w)?,
            "evt-flood" => self.evt_flood(w)?,
            "clear-endpoint" => format!(
                "{:?}",
                self.s.clear_endpoint().map_err(|e| e.raw_os_error())
            ),
            "set-endpoint" => format!("{:?}", self.s.set_endpoint().map_err(|e| e.raw_os_error())),
            other => return Err(format!("unknown command '{other}'")),
        })
    }
}

fn run(s: Session, script: &str, timeout: Duration) -> ExitCode {
    let text = match std::fs::read_to_string(script) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("vsdrv: {script}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut r = Runner {
        s,
        target: 1,
        lun: 0,
        bs: 512,
        tag: 0,
        attr: TaskAttr::Simple,
        timeout,
        failed: false,
        pending: Vec::new(),
        evbufs: Vec::new(),
        tags: Vec::new(),
        ctl_posted: Vec::new(),
        ctl_stash: Vec::new(),
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        match r.line(&w) {
            Ok(s) if s.is_empty() => {}
            Ok(s) => println!("{:3} {:<28} {}", n + 1, line, s),
            Err(e) => {
                eprintln!("vsdrv: {script}:{}: {e}", n + 1);
                return ExitCode::from(2);
            }
        }
    }
    if r.failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `[--rounds N] [--depth N]` (depth 8 and 1 to 32 by default); `None` on
/// another option.
fn rounds_depth(args: &[String], mut rounds: u64) -> Option<(u64, u64)> {
    let mut depth = 8u64;
    let mut i = 0;
    while i + 1 < args.len() {
        match args[i].as_str() {
            "--rounds" => rounds = args[i + 1].parse().unwrap_or(rounds),
            "--depth" => depth = args[i + 1].parse().unwrap_or(depth).clamp(1, 32),
            _ => return None,
        }
        i += 2;
    }
    Some((rounds, depth))
}

/// `stress`: I/O with task management racing it; every request must be
/// answered exactly once.
fn stress(mut s: Session, args: &[String], timeout: Duration) -> ExitCode {
    // `--ordered`: after each round an ORDERED TEST UNIT READY must be
    // answered (an aborted command must not leave target core's task
    // attribute state behind: the ORDERED command would wait for ever).
    let ordered = args.iter().any(|a| a == "--ordered");
    let args: Vec<String> = args.iter().filter(|a| *a != "--ordered").cloned().collect();
    let Some((rounds, depth)) = rounds_depth(&args, 1000) else {
        return usage();
    };
    let mut tag = 0u64;
    let mut ends: std::collections::BTreeMap<String, u64> = Default::default();
    let mut bump = |k: String| *ends.entry(k).or_insert(0) += 1;
    let base = s.mark();
    for round in 0..rounds {
        s.release_to(base);
        let Some((inflight, tags)) = post_io(&mut s, round, depth, &mut tag) else {
            eprintln!("vsdrv: stress: out of descriptors");
            return ExitCode::from(2);
        };
        // The TMF of this round.
        let (sub, ref_tag) = match round % 10 {
            3 => (1u32, 0),
            5 => (5, 0),
            7 => (4, 0),
            9 => (6, tags[0]),
            _ => (0, tags[(round % depth) as usize]),
        };
        let Some((th, tresp)) = post_tmf(&mut s, sub, ref_tag) else {
            eprintln!("vsdrv: stress: out of control descriptors");
            return ExitCode::from(2);
        };
        let t = s.queues[0].wait(&s.mem, timeout);
        if t.len() != 1 || t[0].head != th {
            eprintln!("vsdrv: stress: round {round}: TMF {sub} not answered once ({t:?})");
            return ExitCode::from(1);
        }
        bump(format!("tmf{sub}->0x{:02x}", s.mem.slice(tresp, 1)[0]));
        for (head, resp) in inflight {
            match s.wait_for(2, head, resp, timeout) {
                Outcome::Done { resp, .. } => {
                    bump(format!("{:?}/0x{:02x}", resp.response, resp.status))
                }
                o => {
                    eprintln!("vsdrv: stress: round {round}: command {head}: {o:?}");
                    return ExitCode::from(1);
                }
            }
        }
        if !s.stash.is_empty() {
            eprintln!(
                "vsdrv: stress: round {round}: completions answered twice: {:?}",
                s.stash
            );
            return ExitCode::from(1);
        }
        if ordered {
            match s.command_attr(&tur_cmd(2), TaskAttr::Ordered, timeout).0 {
                Outcome::Done { resp, .. } => {
                    bump(format!("ordered-{:?}/0x{:02x}", resp.response, resp.status))
                }
                o => {
                    eprintln!(
                        "vsdrv: stress: round {round}: an ORDERED TEST UNIT READY after the TMF: {o:?} in {timeout:?}"
                    );
                    return ExitCode::from(1);
                }
            }
        }
    }
    let summary: Vec<String> = ends.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "stress: rounds={rounds} depth={depth} answered-once {}",
        summary.join(" ")
    );
    ExitCode::SUCCESS
}

/// Commands posted: (head, response address) of each, and their tags.
type Posted = (Vec<(u16, u64)>, Vec<u64>);

/// Posts `depth` READ(10)/WRITE(10)s of 4 KiB on LUN 0 of target 1 (tags
/// from `tag` on) and kicks.
fn post_io(s: &mut Session, round: u64, depth: u64, tag: &mut u64) -> Option<Posted> {
    let lun = tcm_virt_wire::virtio_scsi::encode_lun(1, 0);
    let mut inflight = Vec::new();
    let mut tags = Vec::new();
    for n in 0..depth {
        *tag += 1;
        let write = (round + n).is_multiple_of(2);
        let lba = ((round * 7919 + n * 104_729) % 8192) * 8;
        let mut cdb = [0u8; 10];
        cdb[0] = if write { 0x2a } else { 0x28 };
        cdb[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
        cdb[8] = 8;
        let mut req = [0u8; CMD_REQ_SIZE];
        req[..8].copy_from_slice(&lun);
        req[8..16].copy_from_slice(&tag.to_le_bytes());
        req[19..29].copy_from_slice(&cdb);
        let m = &mut s.mem;
        let h = m.alloc(CMD_REQ_SIZE, 8);
        m.slice_mut(h, CMD_REQ_SIZE).copy_from_slice(&req);
        let resp = m.alloc(CMD_RESP_SIZE, 8);
        m.slice_mut(resp, 12)[11] = 0xff;
        let d = m.alloc(4096, 4096);
        let buf = |addr, len, write| Buf { addr, len, write };
        let bufs = if write {
            vec![
                buf(h, CMD_REQ_SIZE as u32, false),
                buf(d, 4096, false),
                buf(resp, CMD_RESP_SIZE as u32, true),
            ]
        } else {
            vec![
                buf(h, CMD_REQ_SIZE as u32, false),
                buf(resp, CMD_RESP_SIZE as u32, true),
                buf(d, 4096, true),
            ]
        };
        let q = &mut s.queues[2];
        let head = q.build(&s.mem, &bufs)?;
        q.publish(&s.mem, head);
        inflight.push((head, resp));
        tags.push(*tag);
    }
    s.queues[2].kick();
    Some((inflight, tags))
}

/// Posts the TMF `sub` (of task `ref_tag`) on LUN 0 of target 1 and kicks:
/// (head, response address).
fn post_tmf(s: &mut Session, sub: u32, ref_tag: u64) -> Option<(u16, u64)> {
    let lun = tcm_virt_wire::virtio_scsi::encode_lun(1, 0);
    let m = &mut s.mem;
    let req = m.alloc(24, 8);
    let tresp = m.alloc(8, 8);
    m.slice_mut(tresp, 1)[0] = 0xee;
    let r = m.slice_mut(req, 24);
    r.fill(0);
    r[4..8].copy_from_slice(&sub.to_le_bytes());
    r[8..16].copy_from_slice(&lun);
    r[16..24].copy_from_slice(&ref_tag.to_le_bytes());
    let q = &mut s.queues[0];
    let th = q.build(&s.mem, &req_resp(req, 24, tresp, 1))?;
    q.publish(&s.mem, th);
    q.kick();
    Some((th, tresp))
}

/// A TEST UNIT READY to LUN 0 of target 1 on request queue `queue`.
fn tur_cmd(queue: usize) -> Command<'static> {
    Command {
        queue,
        target: 1,
        lun: 0,
        tag: 1,
        cdb: &[0; 6],
        data_out: &[],
        data_in: 0,
        pi_out: 0,
        pi_in: 0,
    }
}

/// A session bound to its TPG.
fn open_bound(o: &Options) -> Result<Session, String> {
    let mut s = Session::open(o).map_err(|e| format!("open: {e}"))?;
    s.set_endpoint().map_err(|e| format!("SET_ENDPOINT: {e}"))?;
    Ok(s)
}

/// `call-race [--rounds N] [--depth N]`: N rounds of `depth` reads and
/// writes on the first I/O queue while a second thread swaps that queue's
/// call eventfd over and over: a fresh eventfd installed with
/// VHOST_SET_VRING_CALL, the session's own put back, the fresh one closed
/// (so the swap dropped its last reference but one).  A worker that
/// signalled a call context after the virtqueue mutex was released could
/// signal a freed one (KASAN).  Every request must be answered GOOD (the
/// used ring is polled: signals that went to a fresh eventfd are lost to
/// us, not to the ring).
fn call_race(mut s: Session, args: &[String], timeout: Duration) -> ExitCode {
    let Some((rounds, depth)) = rounds_depth(args, 2000) else {
        return usage();
    };
    let dev = s.file.as_raw_fd();
    let own = s.queues[2].call_fd();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        std::thread::spawn(move || -> Result<u64, String> {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let fresh = sys::new_eventfd().map_err(|e| format!("eventfd: {e}"))?;
                // SAFETY: a fresh eventfd, owned by the File from here on
                // (closed at the end of the iteration, or on an error).
                let fresh = unsafe { File::from_raw_fd(fresh) };
                for fd in [fresh.as_raw_fd(), own] {
                    let mut c = [2u32, fd as u32];
                    // SAFETY: a vhost_vring_file, the size the request encodes.
                    unsafe { sys::ioctl_ptr(dev, sys::SET_VRING_CALL, c.as_mut_ptr().cast()) }
                        .map_err(|e| format!("VHOST_SET_VRING_CALL: {e}"))?;
                }
                // Closed once no longer installed: the swap back dropped
                // the virtqueue's reference, this drops the last one.
                drop(fresh);
                swaps += 1;
            }
            Ok(swaps)
        })
    };
    let base = s.mark();
    let mut tag = 0u64;
    let mut answered = 0u64;
    let mut failed = None;
    'rounds: for round in 0..rounds {
        s.release_to(base);
        let Some((inflight, _)) = post_io(&mut s, round, depth, &mut tag) else {
            failed = Some("out of descriptors".to_string());
            break;
        };
        let mut left: Vec<(u16, u64)> = inflight;
        let end = Instant::now() + timeout;
        while !left.is_empty() {
            if Instant::now() >= end {
                failed = Some(format!("round {round}: {} requests unanswered", left.len()));
                break 'rounds;
            }
            for (_, u) in s.wait_any(&[2], Duration::from_millis(5)) {
                let Some(k) = left.iter().position(|&(h, _)| h == u.head) else {
                    failed = Some(format!("round {round}: head {} not in flight", u.head));
                    break 'rounds;
                };
                let (_, resp) = left.swap_remove(k);
                let r = s.mem.slice(resp, 12);
                if r[10] != 0 || r[11] != 0 {
                    failed = Some(format!(
                        "round {round}: response 0x{:02x} status 0x{:02x}",
                        r[11], r[10]
                    ));
                    break 'rounds;
                }
                answered += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = match swapper.join() {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            eprintln!("vsdrv: call-race: {e}");
            return ExitCode::from(1);
        }
        Err(_) => {
            eprintln!("vsdrv: call-race: the swapping thread panicked");
            return ExitCode::from(1);
        }
    };
    if let Some(e) = failed {
        eprintln!("vsdrv: call-race: {e}");
        return ExitCode::from(1);
    }
    println!("call-race: rounds={rounds} depth={depth} answered={answered} swaps={swaps}");
    ExitCode::SUCCESS
}

/// `close-race [--rounds N] [--depth N]`: N times, opens the device, binds
/// it, posts `depth` commands and a TMF (ABORT TASK, ABORT TASK SET, LUN
/// RESET in turn) and closes it at once: the release races the commands'
/// completions and the TMF's answer, and must wait for each without using
/// the device after its last reference is gone.  Then a new session checks
/// that the LUN answers.
fn close_race(o: &Options, args: &[String], timeout: Duration) -> ExitCode {
    let Some((rounds, depth)) = rounds_depth(args, 2000) else {
        return usage();
    };
    let mut tag = 0u64;
    let t0 = Instant::now();
    for round in 0..rounds {
        // progress, so that a run cut short by its time limit says how far
        // it got (stdout is line-buffered)
        if round > 0 && round % 25 == 0 {
            println!(
                "close-race: {round} rounds in {} ms",
                t0.elapsed().as_millis()
            );
        }
        let mut s = match open_bound(o) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("vsdrv: close-race: round {round}: {e}");
                return ExitCode::from(1);
            }
        };
        let Some((_, tags)) = post_io(&mut s, round, depth, &mut tag) else {
            eprintln!("vsdrv: close-race: out of descriptors");
            return ExitCode::from(2);
        };
        let (sub, ref_tag) = match round % 3 {
            0 => (0u32, tags[tags.len() - 1]),
            1 => (1, 0),
            _ => (5, 0),
        };
        if post_tmf(&mut s, sub, ref_tag).is_none() {
            eprintln!("vsdrv: close-race: out of control descriptors");
            return ExitCode::from(2);
        }
        drop(s);
    }
    let mut s = match open_bound(o) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vsdrv: close-race: after the rounds: {e}");
            return ExitCode::from(1);
        }
    };
    let tur = tur_cmd(2);
    // A LUN RESET of the last rounds left a unit attention: it takes one
    // TEST UNIT READY (or two, should a reset have come after the first).
    let mut r = s.command(&tur, timeout);
    for _ in 0..2 {
        match &r {
            (Outcome::Done { resp, .. }, _) if resp.status == 0x02 => r = s.command(&tur, timeout),
            _ => break,
        }
    }
    match r {
        (Outcome::Done { resp, .. }, _) => {
            println!(
                "close-race: rounds={rounds} depth={depth} closed with I/O and a TMF in flight; \
                 then TEST UNIT READY: response={:?} status=0x{:02x}",
                resp.response, resp.status
            );
            ExitCode::SUCCESS
        }
        (o, _) => {
            eprintln!("vsdrv: close-race: TEST UNIT READY after the rounds: {o:?}");
            ExitCode::from(1)
        }
    }
}

/// A benchmark's view of the driver's memory, shared by its queue threads.
#[derive(Clone, Copy)]
struct BenchMem<'a>(&'a vsdrv::Memory);

// SAFETY: the threads of `bench` use the memory only through its `&self`
// methods, each on its own queue's rings and its own slots' buffers,
// disjoint ranges allocated before the threads start; the device is the
// only other party writing them.
unsafe impl Send for BenchMem<'_> {}

/// What one queue's thread of `bench` measured.
#[derive(Default)]
struct QueueRun {
    lat: Vec<u32>,
    done: u64,
    errors: u64,
    stuck: bool,
    /// The thread's scheduler counts over the run.
    sched: sys::SchedCounts,
    /// Where this thread, the opener and the worker were at the start.
    placed: String,
}

/// One I/O queue of `bench`: keeps `slots` requests in flight on `q` until
/// `end`, then waits for the last ones; sleeps on the call eventfd between
/// completions (or busy-polls the used ring with `poll`).
#[allow(clippy::too_many_arguments)]
fn bench_queue(
    mem: BenchMem<'_>,
    q: &mut vsdrv::Queue,
    slots: &mut [BenchSlot],
    shape: &BenchShape,
    seed: u64,
    end: Instant,
    poll: bool,
    opener: &str,
) -> QueueRun {
    let mem = mem.0;
    let sched0 = sys::SchedCounts::own();
    let mut r = QueueRun {
        placed: sys::placement(opener),
        ..QueueRun::default()
    };
    let mut rng = seed;
    let mut seq = 0u64;
    let blocks = u64::from(shape.blocks);
    loop {
        let stop = Instant::now() >= end;
        let mut inflight = 0;
        for sl in slots.iter_mut() {
            if sl.head.is_some() {
                inflight += 1;
                continue;
            }
            if stop {
                continue;
            }
            let lba = if shape.random {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng % (shape.span / blocks)) * blocks
            } else {
                seq = (seq + blocks) % (shape.span - blocks);
                seq
            };
            let h = mem.slice_mut(sl.hdr, CMD_REQ_SIZE);
            h.fill(0);
            h[..8].copy_from_slice(&tcm_virt_wire::virtio_scsi::encode_lun(1, shape.lun));
            h[19] = if shape.write { 0x2a } else { 0x28 };
            h[21..25].copy_from_slice(&(lba as u32).to_be_bytes());
            h[26..28].copy_from_slice(&(shape.blocks as u16).to_be_bytes());
            let hdr = Buf {
                addr: sl.hdr,
                len: CMD_REQ_SIZE as u32,
                write: false,
            };
            let resp = Buf {
                addr: sl.resp,
                len: CMD_RESP_SIZE as u32,
                write: true,
            };
            let data = Buf {
                addr: sl.data,
                len: shape.bs as u32,
                write: !shape.write,
            };
            let bufs = if shape.write {
                [hdr, data, resp]
            } else {
                [hdr, resp, data]
            };
            let Some(head) = q.build(mem, &bufs) else {
                continue;
            };
            q.publish(mem, head);
            sl.head = Some(head);
            sl.start = Instant::now();
            inflight += 1;
        }
        q.kick_if_needed(mem);
        if stop && inflight == 0 {
            r.sched = sys::SchedCounts::own().since(sched0);
            r.placed += &format!(" {}", sys::placement_as("where_end", opener));
            return r;
        }
        let used = if poll {
            q.spin(mem, Duration::from_secs(5))
        } else {
            q.wait(mem, Duration::from_secs(5))
        };
        for u in used {
            if let Some(sl) = slots.iter_mut().find(|sl| sl.head == Some(u.head)) {
                sl.head = None;
                r.lat.push(sl.start.elapsed().as_micros() as u32);
                let resp = mem.slice(sl.resp, CMD_RESP_SIZE);
                if resp[10] != 0 || resp[11] != 0 {
                    if r.errors == 0 {
                        eprintln!(
                            "vsdrv: bench: first error: response {} status 0x{:02x} sense {:02x?}",
                            resp[11],
                            resp[10],
                            &resp[12..30]
                        );
                    }
                    r.errors += 1;
                }
                r.done += 1;
            }
        }
        if Instant::now() > end + Duration::from_secs(30) {
            r.stuck = true;
            return r;
        }
    }
}

/// One request slot of `bench`: its header, response and data buffers.
struct BenchSlot {
    hdr: u64,
    resp: u64,
    data: u64,
    head: Option<u16>,
    start: Instant,
}

/// What every request of a `bench` run looks like.
struct BenchShape {
    write: bool,
    random: bool,
    bs: usize,
    blocks: u32,
    /// The LUN's size in 512-byte blocks.
    span: u64,
    lun: u16,
}

fn bench(mut s: Session, args: &[String]) -> ExitCode {
    let mut rw = "randread".to_string();
    let mut bs = 4096usize;
    let mut qd = 1usize;
    let mut secs = 5u64;
    let mut lun = 0u16;
    let mut poll = false;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--poll" {
            poll = true;
            i += 1;
            continue;
        }
        let Some(v) = args.get(i + 1) else {
            return usage();
        };
        match args[i].as_str() {
            "--rw" => rw = v.clone(),
            "--bs" => bs = v.parse().unwrap_or(bs),
            "--qd" => qd = v.parse().unwrap_or(qd),
            "--secs" => secs = v.parse().unwrap_or(secs),
            "--lun" => lun = v.parse().unwrap_or(lun),
            _ => return usage(),
        }
        i += 2;
    }
    let nq = s.queues.len() - 2;
    if bs == 0 || !bs.is_multiple_of(512) || qd == 0 {
        eprintln!("vsdrv: bench: --bs a multiple of 512, --qd at least 1");
        return ExitCode::from(2);
    }
    let blocks = (bs / 512) as u32;
    // The LUN's size in 512-byte blocks, from READ CAPACITY(10); a unit
    // attention (a LUN linked since the nexus began, one per link) is
    // reported once per command and then cleared: ask again, as a driver
    // does.
    let read_capacity = |s: &mut Session| {
        s.command(
            &Command {
                queue: 2,
                target: 1,
                lun,
                tag: 0,
                cdb: &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                data_out: &[],
                data_in: 8,
                pi_out: 0,
                pi_in: 0,
            },
            Duration::from_secs(5),
        )
    };
    let mut rc = read_capacity(&mut s);
    for _ in 0..16 {
        match &rc {
            (Outcome::Done { resp, .. }, _)
                if resp.status == 0x02 && resp.sense.get(2).map(|k| k & 0xf) == Some(6) =>
            {
                rc = read_capacity(&mut s)
            }
            _ => break,
        }
    }
    let (o, d) = rc;
    let span = match o {
        Outcome::Done { resp, .. } if resp.status == 0 => {
            let last = u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
            let lbs = u64::from(u32::from_be_bytes([d[4], d[5], d[6], d[7]]));
            (last + 1) * lbs / 512
        }
        _ => {
            eprintln!("vsdrv: bench: READ CAPACITY failed: {}", describe(&o, &d));
            return ExitCode::from(1);
        }
    };
    if span < u64::from(blocks) * 2 {
        eprintln!("vsdrv: bench: the LUN is too small for --bs {bs}");
        return ExitCode::from(2);
    }
    // A 32-bit LBA in the READ(10)/WRITE(10) CDB.
    let span = span.min(1 << 32);
    let shape = BenchShape {
        write: rw.contains("write"),
        random: rw.starts_with("rand"),
        bs,
        blocks,
        span,
        lun,
    };
    let mut slots: Vec<Vec<BenchSlot>> = Vec::new();
    for _ in 0..nq {
        let mut v = Vec::new();
        for _ in 0..qd {
            v.push(BenchSlot {
                hdr: s.mem.alloc(CMD_REQ_SIZE, 64),
                resp: s.mem.alloc(CMD_RESP_SIZE, 64),
                data: s.mem.alloc(bs, 4096),
                head: None,
                start: Instant::now(),
            });
        }
        slots.push(v);
    }
    let signals0: u64 = s.queues[2..].iter().map(|q| q.signals).sum();
    let kicks0: u64 = s.queues[2..].iter().map(|q| q.kicks).sum();
    let cpu0 = sys::CpuSample::now();
    let workers0 = sys::SchedCounts::workers();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let mem = BenchMem(&s.mem);
    let shape = &shape;
    let opener = &sys::own_tid();
    // One thread per I/O queue, as a guest's driver has a CPU per queue.
    let runs: Vec<QueueRun> = std::thread::scope(|sc| {
        let threads: Vec<_> = s.queues[2..]
            .iter_mut()
            .zip(slots.iter_mut())
            .enumerate()
            .map(|(qi, (q, sl))| {
                let seed = 0x2545_f491_4f6c_dd1du64 ^ ((qi as u64 + 1) << 32);
                sc.spawn(move || bench_queue(mem, q, sl, shape, seed, end, poll, opener))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .collect()
    });
    let el = t0.elapsed().as_secs_f64();
    let cpu1 = sys::CpuSample::now();
    let workers = sys::SchedCounts::workers().since(workers0);
    let io_sched = runs
        .iter()
        .fold(sys::SchedCounts::default(), |a, r| a.plus(r.sched));
    let placed = runs.first().map_or(String::new(), |r| r.placed.clone());
    if runs.iter().any(|r| r.stuck) {
        eprintln!("vsdrv: bench: commands did not complete");
        return ExitCode::from(1);
    }
    let done: u64 = runs.iter().map(|r| r.done).sum();
    let signals = s.queues[2..].iter().map(|q| q.signals).sum::<u64>() - signals0;
    let kicks = s.queues[2..].iter().map(|q| q.kicks).sum::<u64>() - kicks0;
    let errors: u64 = runs.iter().map(|r| r.errors).sum();
    let mut lat: Vec<u32> = runs.into_iter().flat_map(|r| r.lat).collect();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "rw={rw} bs={bs} qd={qd} queues={nq} lun={lun} ios={done} errors={errors} iops={:.0} \
         mbps={:.1} p50_us={} p99_us={} {} event_idx={} poll={} signals={signals} \
         ios_per_signal={:.1} kicks={kicks} kicks_per_io={:.3} {} {placed}",
        done as f64 / el,
        done as f64 * bs as f64 / el / 1e6,
        pct(0.50),
        pct(0.99),
        cpu0.report(&cpu1, done),
        u8::from(s.features & vsdrv::F_EVENT_IDX != 0),
        u8::from(poll),
        done as f64 / signals.max(1) as f64,
        kicks as f64 / done.max(1) as f64,
        io_sched.report(workers),
    );
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Kernel memory per open device set up as QEMU does (owner, memory
/// table, queues), from the drop of MemAvailable over `n` opens, minus the
/// driver's own populated memory; then, with `--wwpn`, what binding the
/// endpoint and serving one command on every I/O queue adds per device
/// (the command pools).
fn openmem(o: &Options, n: usize) -> ExitCode {
    let mut o = o.clone();
    o.mem_mib = 1;
    let before = mem_available_kib();
    let mut held = Vec::new();
    for _ in 0..n {
        match Session::open(&o) {
            Ok(s) => held.push(s),
            Err(e) => {
                eprintln!("vsdrv: openmem: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let opened = mem_available_kib();
    let per = (before.saturating_sub(opened) as f64 / n as f64 - 1024.0).max(0.0);
    print!("kib_per_open={per:.0}");
    if !o.wwpn.is_empty() {
        for (i, s) in held.iter_mut().enumerate() {
            // One TPG binds one device: "%02x" in the WWPN gives each open
            // a WWPN of its own.
            s.opts.wwpn = o.wwpn.replace("%02x", &format!("{i:02x}"));
            if let Err(e) = s.set_endpoint() {
                eprintln!("vsdrv: openmem: SET_ENDPOINT: {e}");
                return ExitCode::from(2);
            }
            for q in 0..o.io_queues {
                let tur = tur_cmd(2 + q as usize);
                if let (Outcome::NoResponse, _) = s.command(&tur, Duration::from_secs(5)) {
                    eprintln!("vsdrv: openmem: TEST UNIT READY unanswered");
                    return ExitCode::from(2);
                }
            }
        }
        let running = mem_available_kib();
        let add = opened.saturating_sub(running) as f64 / n as f64;
        print!(" kib_per_endpoint={add:.0}");
    }
    println!(" opens={n} io_queues={} ring={}", o.io_queues, o.ring);
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Options::default();
    let mut timeout = Duration::from_millis(3000);
    let mut no_event_idx = false;
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--dev" => o.dev = val,
            "--wwpn" => o.wwpn = val,
            "--queues" => o.io_queues = val.parse().unwrap_or(1),
            "--ring" => o.ring = val.parse().unwrap_or(128),
            "--timeout-ms" => timeout = Duration::from_millis(val.parse().unwrap_or(3000)),
            "--busyloop" => o.busyloop_us = val.parse().ok(),
            "--worker-cpu" => o.worker_cpu = val.parse().ok(),
            "--workers" => {
                o.worker_per_queue = true;
                i += 1;
                continue;
            }
            "--pi" => {
                o.features |= vsdrv::F_T10_PI;
                i += 1;
                continue;
            }
            "--hotplug" => {
                o.features |= vsdrv::F_HOTPLUG;
                i += 1;
                continue;
            }
            "--no-event-idx" => {
                no_event_idx = true;
                i += 1;
                continue;
            }
            "-h" | "--help" => return usage(),
            _ => break,
        }
        i += 2;
    }
    let Some(verb) = args.get(i) else {
        return usage();
    };
    if verb == "close-race" {
        return close_race(&o, &args[i + 1..], timeout);
    }
    if verb == "openmem" {
        return openmem(
            &o,
            args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(16),
        );
    }
    // A benchmark's client sleeps until the device signals, and the device
    // signals (and is kicked) only when asked, as a guest's virtio driver.
    if verb == "bench" && !no_event_idx {
        o.features |= vsdrv::F_EVENT_IDX;
    }
    let mut s = match Session::open(&o) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vsdrv: {}: setup: {e}", o.dev);
            return ExitCode::from(2);
        }
    };
    if verb == "info" {
        println!(
            "abi_version={:?} features=0x{:x}",
            s.abi_version().map_err(|e| e.raw_os_error()),
            s.features
        );
        return ExitCode::SUCCESS;
    }
    if let Err(e) = s.set_endpoint() {
        eprintln!("vsdrv: {}: VHOST_SCSI_SET_ENDPOINT {}: {e}", o.dev, o.wwpn);
        return ExitCode::from(2);
    }
    match verb.as_str() {
        "run" => match args.get(i + 1) {
            Some(script) => run(s, script, timeout),
            None => usage(),
        },
        "bench" => bench(s, &args[i + 1..]),
        "stress" => stress(s, &args[i + 1..], timeout),
        "call-race" => call_race(s, &args[i + 1..], timeout),
        _ => usage(),
    }
}
