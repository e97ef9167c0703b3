// SPDX-License-Identifier: GPL-2.0
//! mfi(8): talk MFI to a tcm_virt megasas adapter.

use mfi::{Adapter, Answer, Options};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tcm_virt_wire::mfi::{self as w, dcmd, flag, off, op, stat};

const USAGE: &str = "\
NAME
    mfi - a MegaRAID MFI initiator for the tcm_virt megasas front end

SYNOPSIS
    mfi [--dev PATH] --wwpn WWPN [--tpgt N] [--jbod] [--context64]
        [--worker-cpu N] [--busyloop US] [--then SHELL-COMMAND] COMMAND

DESCRIPTION
    Opens the megasas device (default /dev/tcm-megasas), registers its own
    memory as the adapter's memory table, binds the TPG WWPN/tpgt_N of the
    fabric, sends MFI_CMD_INIT and runs COMMAND.  --jbod selects the JBOD
    personality (LUNs are system PDs) instead of logical drives.  --then
    runs SHELL-COMMAND (sh -c) after COMMAND, while the adapter is still
    open (to read its statistics file in debugfs, say).  --worker-cpu
    makes the adapter's worker on CPU N (it takes the CPU mask of the
    thread that opens the device: that thread is bound to CPU N meanwhile).
    --busyloop sets the adapter queue's VHOST_SET_VRING_BUSYLOOP_TIMEOUT:
    its worker watches the inbound queue for US microseconds before it
    waits for a doorbell.

COMMANDS
    show ctrl            CTRL_GET_INFO: identity and limits
    show ld              LD_LIST_QUERY and LD_GET_LIST
    show pd              PD_LIST_QUERY, PD_GET_INFO of each drive
    events [--wait MS]   CTRL_EVENT_GET_INFO and the logged events; with
                         --wait, a CTRL_EVENT_WAIT for the next event
    flush [N]            CTRL_CACHE_FLUSH (a SYNCHRONIZE CACHE to each drive),
                         N times (default 1)
    write ID LBA N SEED  LD_WRITE of N 512-byte blocks of a pattern
    read ID LBA N SEED   LD_READ of N blocks, compared with the pattern
    check                the conformance and hostile-input checks; prints
                         'ok NAME' or 'FAIL NAME: why' for each
    bench ID [--rw randread|randwrite|read|write] [--bs N] [--qd N] [--secs N]
             [--kick always|needed] [--reap spin|sleep]
                         I/O for N seconds (LD_READ/LD_WRITE, or PD_SCSI_IO
                         READ(10)/WRITE(10) with --jbod); prints IOPS,
                         latency percentiles, CPU per I/O and kicks per
                         I/O; each frame is kicked unless the register
                         page's iq_no_kick says the worker reads it without
                         (--kick always: every frame kicked); --reap spin:
                         the I/O thread spins on the reply queue instead of
                         sleeping on the call eventfd
    cdb ID HEX [in N | data HEX]
                         a pass-through frame (LD_SCSI_IO, PD_SCSI_IO with
                         --jbod) with the CDB HEX to drive ID, reading N
                         bytes or writing the bytes HEX, after clearing
                         unit attentions; prints the MFI and SCSI status,
                         the sense and the data read, in hex
    poll ID              frames posted without a doorbell: none served in
                         100 ms while the worker does not poll; with a
                         1000 us busy-loop timeout, served when posted
                         right after a reply (run the client and the worker
                         on different CPUs: taskset, --worker-cpu); prints
                         how many of 40 were (at least 10 expected)
    tmf ID               MFI_CMD_ABORT of a READ in flight on drive ID,
                         then CLUSTER_RESET_LD and CLUSTER_RESET_ALL with a
                         READ in flight (use a slow LUN); prints each answer
    tmf-close ID         posts a READ, its MFI_CMD_ABORT and a
                         CLUSTER_RESET_ALL to drive ID and closes the
                         adapter without waiting for any answer
    tmf-flood ID         with a READ in flight on drive ID, 40 CLUSTER_RESET_LD
                         frames at once: at most 16 carried out, the others
                         answered BUSY, every frame answered
    reply-full ID        a reply queue of 4 entries, a READ in flight on
                         drive ID (use a slow drive) and 5 TEST UNIT READYs
                         on drive 0: 3 replies fill the queue, 2 wait; the
                         queue is consumed without a doorbell, and every
                         reply must come (the READ's completion posts the
                         waiting ones too)
    regions              on an unbound TPG: a polled frame whose extra frame
                         lies in the next region of the memory table (other
                         process memory) is read across both and answered
    owner                on an unbound TPG: a memory table outside the
                         address space refused at SET_ENDPOINT (EFAULT); a
                         forked child gets EPERM from the state-changing
                         ioctls; the last close by another process answers
                         a pending CTRL_EVENT_WAIT in the owner's memory

EXIT STATUS
    0 on success, 1 when a command or a check failed, 2 on usage errors.
";

fn main() -> ExitCode {
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1).peekable();
    let mut rest = Vec::new();
    let mut then = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dev" => opts.dev = args.next().unwrap_or_default(),
            "--wwpn" => opts.wwpn = args.next().unwrap_or_default(),
            "--tpgt" => opts.tpgt = args.next().and_then(|v| v.parse().ok()).unwrap_or(1),
            "--jbod" => opts.jbod = true,
            "--context64" => opts.context64 = true,
            "--worker-cpu" => opts.worker_cpu = args.next().and_then(|v| v.parse().ok()),
            "--busyloop" => opts.busyloop_us = args.next().and_then(|v| v.parse().ok()),
            "--then" => then = args.next(),
            "-h" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => rest.push(a),
        }
    }
    if opts.wwpn.is_empty() || rest.is_empty() {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    if rest[0] == "owner" || rest[0] == "regions" {
        let r = if rest[0] == "owner" {
            owner(&opts)
        } else {
            regions(&opts)
        };
        return match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mfi: {e}");
                ExitCode::from(1)
            }
        };
    }
    let mut a = match Adapter::open(&opts) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mfi: {}: {e}", opts.dev);
            return ExitCode::from(1);
        }
    };
    if rest[0] != "check" {
        match a.init() {
            Some(stat::OK) => {}
            s => {
                eprintln!("mfi: MFI_CMD_INIT failed: {s:?}");
                return ExitCode::from(1);
            }
        }
    }
    let r: Result<(), String> = match rest[0].as_str() {
        "show" => show(&mut a, rest.get(1).map(String::as_str).unwrap_or("ctrl")),
        "events" => events(
            &mut a,
            rest.get(1).map(String::as_str) == Some("--wait"),
            rest.get(2),
        ),
        "write" | "read" => rw(&mut a, &rest),
        "check" => check(&mut a),
        "flush" => flush(
            &mut a,
            rest.get(1).and_then(|v| v.parse().ok()).unwrap_or(1),
        ),
        "reply-full" => reply_full(
            &mut a,
            rest.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
        ),
        "tmf-flood" => tmf_flood(
            &mut a,
            rest.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
        ),
        "bench" => bench(&mut a, &rest[1..]),
        "poll" => poll(
            &mut a,
            rest.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
        ),
        "tmf-close" => tmf_close(
            &mut a,
            rest.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
        ),
        "cdb" => cdb(&mut a, &rest[1..]),
        "tmf" => tmf(
            &mut a,
            rest.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
        ),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let r = match (r, then) {
        (Ok(()), Some(cmd)) => match std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .status()
        {
            Ok(st) if st.success() => Ok(()),
            Ok(st) => Err(format!("--then: '{cmd}' exited {st}")),
            Err(e) => Err(format!("--then: {e}")),
        },
        (r, _) => r,
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfi: {e}");
            ExitCode::from(1)
        }
    }
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn cstr(b: &[u8]) -> String {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..n]).into_owned()
}

fn ok(s: u8, what: &str) -> Result<(), String> {
    if s == stat::OK {
        Ok(())
    } else {
        Err(format!("{what}: MFI status {s:#04x}"))
    }
}

fn show(a: &mut Adapter, what: &str) -> Result<(), String> {
    match what {
        "ctrl" => {
            let (s, b) = a.dcmd(dcmd::CTRL_GET_INFO, &[1], w::CTRL_INFO_SIZE);
            ok(s, "CTRL_GET_INFO")?;
            println!("product:        {}", cstr(&b[1344..1424]));
            println!("serial:         {}", cstr(&b[1424..1456]));
            println!("pci:            {:04x}:{:04x}", le16(&b, 0), le16(&b, 2));
            println!("max commands:   {}", le16(&b, 1464));
            println!("max SGEs:       {}", le16(&b, 1466));
            println!("max LDs:        {}", b[1343]);
            println!("LDs present:    {}", le16(&b, 1472));
            println!("PDs present:    {}", le16(&b, 1478));
            println!("status word:    {:#010x}", a.fw_status());
        }
        "ld" => {
            let (s, b) = a.dcmd(dcmd::LD_LIST_QUERY, &[1, 0, 0], w::LD_TARGETID_LIST_SIZE);
            ok(s, "LD_LIST_QUERY")?;
            let n = le32(&b, 4) as usize;
            let (s, l) = a.dcmd(dcmd::LD_GET_LIST, &[], w::LD_LIST_SIZE);
            ok(s, "LD_GET_LIST")?;
            println!("{n} logical drive(s)");
            for i in 0..n.min(64) {
                println!(
                    "ld {:3}  state {}  size {} MiB",
                    b[11 + i],
                    l[8 + i * 16 + 4],
                    le64(&l, 8 + i * 16 + 8) / 2048
                );
            }
        }
        "pd" => {
            let (s, b) = a.dcmd(dcmd::PD_LIST_QUERY, &[5], 8192);
            ok(s, "PD_LIST_QUERY")?;
            let n = le32(&b, 4) as usize;
            println!("{n} physical drive(s)");
            for i in 0..n.min(256) {
                let e = 8 + i * w::PD_ADDRESS_SIZE;
                let id = le16(&b, e);
                let (s, info) = a.dcmd(dcmd::PD_GET_INFO, &id.to_le_bytes(), w::PD_INFO_SIZE);
                ok(s, "PD_GET_INFO")?;
                println!(
                    "pd {:3}  type {}  state {:#x}  size {} MiB  sas {:#018x}",
                    id,
                    b[e + 6],
                    le16(&info, 184),
                    le64(&info, 232) / 2048,
                    le64(&b, e + 8)
                );
            }
        }
        _ => return Err(format!("show: unknown object {what}")),
    }
    Ok(())
}

fn print_event(b: &[u8]) {
    println!(
        "event seq={} code={:#06x} arg_type={} id={} '{}'",
        le32(b, 0),
        le32(b, 8),
        b[16],
        le16(b, 32),
        cstr(&b[128..256])
    );
}

fn events(a: &mut Adapter, wait: bool, ms: Option<&String>) -> Result<(), String> {
    let (s, b) = a.dcmd(dcmd::CTRL_EVENT_GET_INFO, &[], w::EVT_LOG_INFO_SIZE);
    ok(s, "CTRL_EVENT_GET_INFO")?;
    let newest = le32(&b, 0);
    println!(
        "newest={} oldest={} boot={} shutdown={}",
        newest,
        le32(&b, 4),
        le32(&b, 16),
        le32(&b, 12)
    );
    if !wait {
        let mut seq = le32(&b, 4);
        loop {
            let mut mbox = [0u8; 8];
            mbox[..4].copy_from_slice(&seq.to_le_bytes());
            mbox[4..].copy_from_slice(&0xfe00_ffffu32.to_le_bytes());
            let (s, e) = a.dcmd(dcmd::CTRL_EVENT_GET, &mbox, w::EVT_DETAIL_SIZE);
            if s == stat::NOT_FOUND {
                return Ok(());
            }
            ok(s, "CTRL_EVENT_GET")?;
            print_event(&e);
            seq = le32(&e, 0) + 1;
        }
    }
    let ms: u64 = ms.and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let mut mbox = [0u8; 8];
    mbox[..4].copy_from_slice(&newest.wrapping_add(1).to_le_bytes());
    mbox[4..].copy_from_slice(&0xfe00_ffffu32.to_le_bytes());
    let slot = 5;
    let buf = a.data_addr(slot);
    a.mem.slice_mut(buf, 256).fill(0);
    let mut f = mfi::dcmd_frame(dcmd::CTRL_EVENT_WAIT, &mbox, a.gpa(buf), 256);
    println!("waiting");
    match a.exec(slot, &mut f, Duration::from_millis(ms)) {
        Some(r) => {
            ok(r.cmd_status, "CTRL_EVENT_WAIT")?;
            print_event(a.mem.slice(buf, 256));
            Ok(())
        }
        None => Err("no event".into()),
    }
}

/// `len` bytes of 512-byte blocks of the test data vsdrv writes too.
fn pattern(seed: u32, lba: u64, len: usize) -> Vec<u8> {
    vsdrv::pattern(u64::from(seed), lba, len / 512, 512)
}

fn rw(a: &mut Adapter, rest: &[String]) -> Result<(), String> {
    let n = |i: usize| -> Result<u64, String> {
        rest.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{}: ID LBA N SEED", rest[0]))
    };
    let (id, lba, blocks, seed) = (n(1)? as u8, n(2)?, n(3)? as u32, n(4)? as u32);
    clear_ua(a, id)?;
    let mut data = pattern(seed, lba, blocks as usize * 512);
    let write = rest[0] == "write";
    let r = a
        .ld_rw(write, id, lba, blocks, 512, &mut data)
        .ok_or("no answer")?;
    ok(r.cmd_status, rest[0].as_str())?;
    if !write && data != pattern(seed, lba, blocks as usize * 512) {
        return Err("read: data differs from the pattern".into());
    }
    println!("{} {} blocks at {}: ok", rest[0], blocks, lba);
    Ok(())
}

/// With every frame answered, the worker has left its pass or is leaving
/// it: `iq_no_kick` must read zero within a second, or an initiator that
/// reads it would leave out the kick of its next frame, which then waits
/// for ever.
fn no_kick_idle(a: &Adapter) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(1);
    while a.iq_no_kick() != 0 {
        if Instant::now() > end {
            return Err(format!(
                "iq_no_kick still {} 1 s after the last reply",
                a.iq_no_kick()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// A WRITE frame that another thread keeps rewriting while the adapter
/// reads it (CVE-2016-5105 and its kin in QEMU's megasas): the SGE address
/// (buffer A or B), the SGE count and length, the data length and the CDB
/// opcode flip at random.  Every post must be answered once, with OK or a
/// clean error, and what a successful write stored must be all of A or all
/// of B, never a mix: the adapter reads each frame once.
fn rewrite_race(a: &mut Adapter, jbod: bool, id: u8) -> Result<(), String> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const LBA: u64 = 300;
    const BLOCKS: usize = 16;
    const ROUNDS: usize = 300;
    let len = BLOCKS * 512;
    let slot = 10;
    let (ba, bb) = (a.data_addr(10), a.data_addr(11));
    let (pa, pb) = (pattern(21, LBA, len), pattern(22, LBA, len));
    a.mem.slice_mut(ba, len).copy_from_slice(&pa);
    a.mem.slice_mut(bb, len).copy_from_slice(&pb);
    let (ga, gb) = (a.gpa(ba), a.gpa(bb));
    let cdb = [0x2a, 0, 0, 0, 0, LBA as u8, 0, 0, BLOCKS as u8, 0];
    let sense = a.gpa(a.sense_addr(slot));
    let mut f = mfi::pthru_frame(
        !jbod,
        id,
        &cdb,
        flag::DIR_WRITE,
        len as u32,
        sense,
        &[(ga, len as u32)],
    );
    f[off::CONTEXT..off::CONTEXT + 8].copy_from_slice(&(slot as u64).to_le_bytes());
    let fa = a.frame_addr(slot);
    a.mem.slice_mut(fa, f.len()).copy_from_slice(&f);
    let posted = w::encode_posted(a.gpa(fa), (f.len() / w::FRAME_SIZE - 1) as u8);
    let stop = Arc::new(AtomicBool::new(false));
    let toggler = {
        let stop = stop.clone();
        // The frame's address in our memory, which outlives the thread
        // (joined below).
        let frame = fa as usize;
        let len = len as u32;
        std::thread::spawn(move || {
            let p = frame as *mut u8;
            let put = |at: usize, v: &[u8]| {
                for (k, &b) in v.iter().enumerate() {
                    // SAFETY: inside the frame; volatile: the adapter reads it.
                    unsafe { std::ptr::write_volatile(p.add(at + k), b) };
                }
            };
            let mut x = 0x2545_f491_4f6c_dd1du64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let one_in_8 = |shift: u32| (x >> shift) & 7 == 0;
                let addr = if x & 1 == 0 { ga } else { gb };
                put(off::PTHRU_SGL, &addr.to_le_bytes());
                let sge_len = if one_in_8(1) { 1u32 << 30 } else { len };
                put(off::PTHRU_SGL + 8, &sge_len.to_le_bytes());
                put(off::SGE_COUNT, &[if one_in_8(4) { 0xff } else { 1 }]);
                let xfer = if one_in_8(7) { u32::MAX } else { len };
                put(0x14, &xfer.to_le_bytes());
                put(off::PTHRU_CDB, &[if one_in_8(10) { 0x7f } else { 0x2a }]);
            }
        })
    };
    let (mut good_a, mut good_b, mut errors) = (0, 0, 0);
    let mut result = Ok(());
    for round in 0..ROUNDS {
        a.mem.slice_mut(fa + off::CMD_STATUS as u64, 1)[0] = stat::INVALID_STATUS;
        a.post_raw(posted);
        if !a.wait_reply(slot as u64, Duration::from_secs(10)) {
            result = Err(format!("round {round}: no reply"));
            break;
        }
        // SAFETY: inside our memory; the toggler never writes cmd_status.
        let st = unsafe { std::ptr::read_volatile((fa as *const u8).add(off::CMD_STATUS)) };
        match st {
            stat::OK => {
                let rd = [0x28, 0, 0, 0, 0, LBA as u8, 0, 0, BLOCKS as u8, 0];
                let (r, back, _) = a.scsi(!jbod, id, &rd, &[], len);
                if let Err(e) = expect(r, stat::OK) {
                    result = Err(format!("round {round}: read back: {e}"));
                    break;
                }
                if back == pa {
                    good_a += 1;
                } else if back == pb {
                    good_b += 1;
                } else {
                    result = Err(format!("round {round}: data is neither A nor B"));
                    break;
                }
            }
            stat::INVALID_PARAMETER | stat::SCSI_DONE_WITH_ERROR => errors += 1,
            s => {
                result = Err(format!("round {round}: status {s:#04x}"));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = toggler.join();
    println!("  {ROUNDS} rounds: {good_a} wrote A, {good_b} wrote B, {errors} refused");
    result?;
    if good_a == 0 || good_b == 0 || errors == 0 {
        return Err("the rewrites never changed an outcome".into());
    }
    Ok(())
}

/// The checks of `mfi check`.
struct Checks {
    failed: u32,
}

impl Checks {
    fn t(&mut self, name: &str, r: Result<(), String>) {
        match r {
            Ok(()) => println!("ok {name}"),
            Err(e) => {
                self.failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
}

fn expect(got: Option<Answer>, want: u8) -> Result<Answer, String> {
    match got {
        Some(a) if a.cmd_status == want => Ok(a),
        Some(a) => Err(format!(
            "status {:#04x}, expected {want:#04x}",
            a.cmd_status
        )),
        None => Err("no answer".into()),
    }
}

fn raw_frame(cmd: u8) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[off::CMD] = cmd;
    f
}

fn check(a: &mut Adapter) -> Result<(), String> {
    let mut c = Checks { failed: 0 };
    let t = Duration::from_secs(10);
    c.t("ready_state", {
        let s = a.fw_status();
        if s >> 28 == w::state::READY && s & 0xffff == w::MAX_CMDS && s & 0xffff > 33 {
            Ok(())
        } else {
            Err(format!("status word {s:#x}"))
        }
    });
    c.t("frame_before_init", {
        let mut f = raw_frame(op::DCMD);
        f[0x10] = flag::DONT_POST_IN_REPLY_QUEUE as u8;
        expect(a.exec(4, &mut f, t), stat::WRONG_STATE).map(|_| ())
    });
    c.t("init_bad_entries", {
        let qi = w::QueueInfo {
            context64: false,
            entries: 5000,
            ring: 0x1000_1000,
            producer: 0x1000_2000,
            consumer: 0x1000_2004,
        };
        match a.init_with(&qi.encode()) {
            Some(stat::INVALID_PARAMETER) => Ok(()),
            s => Err(format!("{s:?}")),
        }
    });
    c.t("init_outside_memory", {
        let qi = w::QueueInfo {
            context64: false,
            entries: 16,
            ring: 0x10,
            producer: 0x2000,
            consumer: 0x3000,
        };
        match a.init_with(&qi.encode()) {
            Some(stat::INVALID_PARAMETER) => Ok(()),
            s => Err(format!("{s:?}")),
        }
    });
    c.t("init", ok(a.init().unwrap_or(0xff), "INIT"));
    c.t("init_twice", ok(a.init().unwrap_or(0xff), "second INIT"));
    c.t("operational", {
        if a.fw_status() >> 28 == w::state::OPERATIONAL {
            Ok(())
        } else {
            Err(format!("status word {:#x}", a.fw_status()))
        }
    });
    let jbod = a.opts.jbod;
    c.t("ctrl_get_info", {
        let (s, b) = a.dcmd(dcmd::CTRL_GET_INFO, &[1], w::CTRL_INFO_SIZE);
        ok(s, "CTRL_GET_INFO").and_then(|_| {
            if le16(&b, 1464) != 1000 {
                Err("max_concurrent_cmds".into())
            } else if le32(&b, 1536 + 36) != 0 {
                Err("on_off_properties2 (enable_fw_dev_list) set".into())
            } else if b[1512] == 0 || le16(&b, 1498) == 0 || le32(&b, 1468) == 0 {
                Err("a zero transfer limit".into())
            } else {
                Ok(())
            }
        })
    });
    c.t("ctrl_get_info_small_buffer", {
        let (s, _) = a.dcmd(dcmd::CTRL_GET_INFO, &[1], 100);
        if s == stat::INVALID_PARAMETER {
            Ok(())
        } else {
            Err(format!("status {s:#x}"))
        }
    });
    c.t("unknown_dcmd", {
        let (s, _) = a.dcmd(0x0abc_def0, &[], 64);
        if s == stat::INVALID_DCMD {
            Ok(())
        } else {
            Err(format!("status {s:#x}"))
        }
    });
    for cmd in [0x07u8, 0x08, 0x09, 0x0a, 0xff] {
        c.t(&format!("unknown_cmd_{cmd:02x}"), {
            let mut f = raw_frame(cmd);
            expect(a.exec(4, &mut f, t), stat::INVALID_CMD).map(|_| ())
        });
    }
    // The drives.
    let (s, b) = a.dcmd(dcmd::LD_LIST_QUERY, &[1, 0, 0], w::LD_TARGETID_LIST_SIZE);
    let lds = if s == stat::OK { le32(&b, 4) } else { u32::MAX };
    let (s2, p) = a.dcmd(dcmd::PD_LIST_QUERY, &[5], 8192);
    let pds = if s2 == stat::OK {
        le32(&p, 4)
    } else {
        u32::MAX
    };
    c.t("lists", {
        if jbod && lds == 0 && (1..=256).contains(&pds) {
            let ids: Vec<u16> = (0..pds as usize).map(|i| le16(&p, 8 + i * 24)).collect();
            if ids.iter().all(|&i| i < 256) {
                Ok(())
            } else {
                Err(format!("PD ids {ids:?}"))
            }
        } else if !jbod && pds == 0 && (1..=64).contains(&lds) {
            Ok(())
        } else {
            Err(format!("{lds} LDs, {pds} PDs"))
        }
    });
    let id: u8 = if jbod { le16(&p, 8) as u8 } else { b[11] };
    c.t(
        "event_get_info",
        ok(
            a.dcmd(dcmd::CTRL_EVENT_GET_INFO, &[], 20).0,
            "EVENT_GET_INFO",
        ),
    );
    c.t("inquiry", {
        let (r, d, _) = a.scsi(!jbod, id, &[0x12, 0, 0, 0, 36, 0], &[], 36);
        expect(r, stat::OK).and_then(|_| {
            if d[0] & 0x1f == 0 {
                Ok(())
            } else {
                Err(format!("type {}", d[0]))
            }
        })
    });
    c.t("unit_attention_cleared", clear_ua(a, id));
    c.t("no_such_drive", {
        let (r, _, _) = a.scsi(!jbod, 63, &[0, 0, 0, 0, 0, 0], &[], 0);
        expect(r, stat::DEVICE_NOT_FOUND).map(|_| ())
    });
    c.t("write_read_verify", {
        let mut d = pattern(7, 100, 64 * 512);
        let wr = if jbod {
            a.scsi(false, id, &[0x2a, 0, 0, 0, 0, 100, 0, 0, 64, 0], &d, 0)
                .0
        } else {
            a.ld_rw(true, id, 100, 64, 512, &mut d)
        };
        let sense = a
            .mem
            .slice(a.sense_addr(if jbod { 2 } else { 3 }), 18)
            .to_vec();
        expect(wr, stat::OK)
            .map_err(|e| format!("write: {e}, {wr:?}, sense {sense:02x?}"))
            .and_then(|_| {
                let (r, back, _) = a.scsi(
                    !jbod,
                    id,
                    &[0x28, 0, 0, 0, 0, 100, 0, 0, 64, 0],
                    &[],
                    64 * 512,
                );
                expect(r, stat::OK)?;
                if back != pattern(7, 100, 64 * 512) {
                    return Err("READ(10) data differs".into());
                }
                if !jbod {
                    let mut back = vec![0u8; 64 * 512];
                    expect(a.ld_rw(false, id, 100, 64, 512, &mut back), stat::OK)?;
                    if back != pattern(7, 100, 64 * 512) {
                        return Err("LD_READ data differs".into());
                    }
                }
                Ok(())
            })
    });
    c.t("check_condition_sense", {
        let (r, _, sense) = a.scsi(
            !jbod,
            id,
            &[0x28, 0, 0xff, 0xff, 0xff, 0xf0, 0, 0, 1, 0],
            &[],
            512,
        );
        expect(r, stat::SCSI_DONE_WITH_ERROR).and_then(|r| {
            if r.scsi_status != 2 || r.sense_len == 0 || r.sense_len > 96 {
                Err(format!(
                    "scsi status {} sense_len {}",
                    r.scsi_status, r.sense_len
                ))
            } else if sense[2] & 0xf != 5 {
                Err(format!("sense key {}", sense[2] & 0xf))
            } else {
                Ok(())
            }
        })
    });
    c.t("read_underrun", {
        // data_xfer_len 4096 for a 1-block READ(10).
        let buf = a.data_addr(6);
        let g = a.gpa(buf);
        let sense = a.gpa(a.sense_addr(6));
        let mut f = mfi::pthru_frame(
            !jbod,
            id,
            &[0x28, 0, 0, 0, 0, 100, 0, 0, 1, 0],
            flag::DIR_READ,
            4096,
            sense,
            &[(g, 4096)],
        );
        expect(a.exec(6, &mut f, t), stat::OK).and_then(|r| {
            if r.data_len == 512 {
                Ok(())
            } else {
                Err(format!("data_xfer_len after: {}", r.data_len))
            }
        })
    });
    c.t("write_length_mismatch", {
        let buf = a.data_addr(6);
        let g = a.gpa(buf);
        let sense = a.gpa(a.sense_addr(6));
        let mut f = mfi::pthru_frame(
            !jbod,
            id,
            &[0x2a, 0, 0, 0, 0, 100, 0, 0, 1, 0],
            flag::DIR_WRITE,
            1024,
            sense,
            &[(g, 1024)],
        );
        expect(a.exec(6, &mut f, t), stat::SCSI_DONE_WITH_ERROR).map(|_| ())
    });
    // Hostile frames: a clean MFI error, the adapter keeps working.
    let sense = a.gpa(a.sense_addr(6));
    let g = a.gpa(a.data_addr(6));
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "cdb_longer_than_frame",
            mfi::pthru_frame(
                !jbod,
                id,
                &[0x7f, 0, 0, 0, 0, 0, 0, 0x18, 0, 0],
                0,
                0,
                sense,
                &[],
            ),
        ),
        ("cdb_len_17", {
            let mut f = mfi::pthru_frame(!jbod, id, &[0; 16], 0, 0, sense, &[]);
            f[off::CDB_LEN] = 17;
            f
        }),
        (
            "zero_sges_with_data",
            mfi::pthru_frame(
                !jbod,
                id,
                &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                flag::DIR_READ,
                512,
                sense,
                &[],
            ),
        ),
        (
            "sgl_short",
            mfi::pthru_frame(
                !jbod,
                id,
                &[0x28, 0, 0, 0, 0, 0, 0, 0, 8, 0],
                flag::DIR_READ,
                4096,
                sense,
                &[(g, 512)],
            ),
        ),
        (
            "sgl_outside_memory",
            mfi::pthru_frame(
                !jbod,
                id,
                &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                flag::DIR_READ,
                512,
                sense,
                &[(0x10, 512)],
            ),
        ),
        (
            "sgl_overflow",
            mfi::pthru_frame(
                !jbod,
                id,
                &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                flag::DIR_READ,
                512,
                sense,
                &[(u64::MAX - 100, 512)],
            ),
        ),
        (
            "zero_length_sge",
            mfi::pthru_frame(
                !jbod,
                id,
                &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                flag::DIR_READ,
                512,
                sense,
                &[(g, 0)],
            ),
        ),
        (
            "dir_both",
            mfi::pthru_frame(
                !jbod,
                id,
                &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                flag::DIR_BOTH,
                512,
                sense,
                &[(g, 512)],
            ),
        ),
        ("sge_count_beyond_frame", {
            let mut f = mfi::pthru_frame(
                !jbod,
                id,
                &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                flag::DIR_READ,
                512,
                sense,
                &[(g, 512)],
            );
            f[off::SGE_COUNT] = 200;
            f
        }),
        (
            "huge_length",
            mfi::pthru_frame(
                !jbod,
                id,
                &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
                flag::DIR_READ,
                u32::MAX,
                sense,
                &[(g, 512)],
            ),
        ),
        (
            "sense_outside_memory",
            mfi::pthru_frame(!jbod, id, &[0, 0, 0, 0, 0, 0], 0, 0, 0x20, &[]),
        ),
        (
            "dcmd_buffer_outside_memory",
            mfi::dcmd_frame(dcmd::CTRL_GET_INFO, &[1], 0x40, 2384).to_vec(),
        ),
        ("dcmd_sgl_short", {
            let mut f = mfi::dcmd_frame(dcmd::CTRL_GET_INFO, &[1], g, 2384);
            f[0x2c..0x30].copy_from_slice(&64u32.to_le_bytes());
            f.to_vec()
        }),
        ("ld_io_overflowing_count", {
            let mut f = vec![0u8; 64];
            f[off::CMD] = op::LD_READ;
            f[off::TARGET_ID] = id;
            f[off::SGE_COUNT] = 1;
            f[0x14..0x18].copy_from_slice(&u32::MAX.to_le_bytes());
            w::encode_sge(&mut f, off::IO_SGL, 0, w::SgeFormat::Sge32, g, 512);
            f
        }),
    ];
    for (name, mut f) in hostile {
        let want = match name {
            "dcmd_buffer_outside_memory" => stat::MEMORY_NOT_AVAILABLE,
            "ld_io_overflowing_count" if jbod => stat::DEVICE_NOT_FOUND,
            _ => stat::INVALID_PARAMETER,
        };
        c.t(name, expect(a.exec(7, &mut f, t), want).map(|_| ()));
    }
    c.t("frame_rewritten_after_doorbell", rewrite_race(a, jbod, id));
    c.t("iq_no_kick_clear_when_idle", no_kick_idle(a));
    // Posted entries that are not frames: counted, nothing answered.
    for (name, v) in [
        (
            "post_unaligned",
            w::encode_posted(a.gpa(a.frame_addr(8)) + 32, 0),
        ),
        ("post_outside_memory", w::encode_posted(0x40, 0)),
        (
            "post_too_many_frames",
            a.gpa(a.frame_addr(8)) | (8 << 1) | 1,
        ),
    ] {
        c.t(name, {
            let e = a.errors();
            a.post_raw(v);
            std::thread::sleep(Duration::from_millis(50));
            if a.errors() == e + 1 {
                Ok(())
            } else {
                Err(format!("errors {} -> {}", e, a.errors()))
            }
        });
    }
    c.t("context_not_below_command_count", {
        let mut f = mfi::dcmd_frame(dcmd::CTRL_EVENT_GET_INFO, &[], g, 20);
        f[off::CONTEXT..off::CONTEXT + 4].copy_from_slice(&5000u32.to_le_bytes());
        let slot = 9;
        let fa = a.frame_addr(slot);
        a.mem.slice_mut(fa, 64).copy_from_slice(&f);
        a.mem.slice_mut(fa, 64)[off::CMD_STATUS] = 0xff;
        a.post_raw(w::encode_posted(a.gpa(fa), 0));
        match a.wait_polled(slot, t) {
            Some(r) if r.cmd_status == stat::OK => {
                std::thread::sleep(Duration::from_millis(50));
                let stray = a.stray_replies();
                if stray.is_empty() {
                    Ok(())
                } else {
                    Err(format!("replies {stray:?}"))
                }
            }
            r => Err(format!("{r:?}")),
        }
    });
    c.t("polled_not_in_reply_queue", {
        let mut f = mfi::dcmd_frame(dcmd::CTRL_EVENT_GET_INFO, &[], g, 20);
        f[0x10..0x12]
            .copy_from_slice(&(flag::DIR_READ | flag::DONT_POST_IN_REPLY_QUEUE).to_le_bytes());
        expect(a.exec(10, &mut f, t), stat::OK).and_then(|_| {
            std::thread::sleep(Duration::from_millis(50));
            let stray = a.stray_replies();
            if stray.is_empty() {
                Ok(())
            } else {
                Err(format!("replies {stray:?}"))
            }
        })
    });
    c.t("abort_unknown_frame", {
        let mut f = raw_frame(op::ABORT);
        f[off::ABORT_ADDR..off::ABORT_ADDR + 8].copy_from_slice(&0x1234_0000u64.to_le_bytes());
        expect(a.exec(11, &mut f, t), stat::OK).map(|_| ())
    });
    c.t("posted_twice_and_abort_event_wait", {
        let slot = 12;
        post_event_wait(a, slot, 1_000_000);
        std::thread::sleep(Duration::from_millis(50));
        // The same frame posted again while it waits: refused, counted.
        let e = a.errors();
        a.post_raw(w::encode_posted(a.gpa(a.frame_addr(slot)), 0));
        std::thread::sleep(Duration::from_millis(50));
        if a.answer(slot).cmd_status != stat::INVALID_STATUS {
            return_err("EVENT_WAIT answered at once")
        } else if a.errors() != e + 1 {
            return_err("a frame posted twice was not refused")
        } else {
            let mut ab = raw_frame(op::ABORT);
            ab[off::ABORT_CONTEXT] = 0x77; // wrong context first
            let fa = a.gpa(a.frame_addr(slot));
            ab[off::ABORT_ADDR..off::ABORT_ADDR + 8].copy_from_slice(&fa.to_le_bytes());
            expect(a.exec(13, &mut ab.clone(), t), stat::ABORT_NOT_POSSIBLE).and_then(|_| {
                ab[off::ABORT_CONTEXT] = slot as u8;
                expect(a.exec(13, &mut ab, t), stat::OK)?;
                if a.wait_reply(slot as u64, t) && a.answer(slot).cmd_status == stat::OK {
                    Ok(())
                } else {
                    Err("the aborted EVENT_WAIT was not answered".into())
                }
            })
        }
    });
    c.t("bad_producer_index", {
        let e = a.errors();
        let p = a.iq_consumer();
        a.set_iq_producer(p.wrapping_add(5000));
        std::thread::sleep(Duration::from_millis(50));
        if a.errors() == e + 1 {
            Ok(())
        } else {
            Err(format!("errors {} -> {}", e, a.errors()))
        }
    });
    // A frame in memory the VMM made read-only: the command runs, its
    // answer cannot be written (EFAULT in the header write), which is
    // counted and logged; the adapter works on, and the same frame posted
    // again once its page is writable is answered.
    c.t("frame_not_writable", {
        let slot = 60; // alone in the last page of frames (slots 60-63)
        let fa = a.frame_addr(slot);
        let mut f = mfi::dcmd_frame(dcmd::CTRL_EVENT_GET_INFO, &[], g, 20);
        f[0x10..0x12]
            .copy_from_slice(&(flag::DIR_READ | flag::DONT_POST_IN_REPLY_QUEUE).to_le_bytes());
        f[off::CONTEXT] = slot as u8;
        a.mem.slice_mut(fa, 64).copy_from_slice(&f);
        a.mem.slice_mut(fa, 64)[off::CMD_STATUS] = stat::INVALID_STATUS;
        let e = a.errors();
        vsdrv::sys::protect(fa, 64, false)
            .map_err(|e| format!("mprotect: {e}"))
            .and_then(|()| {
                a.post_raw(w::encode_posted(a.gpa(fa), 0));
                // Consumed: the frame is served and done with.
                let served = a.wait_consumed(t);
                let st = a.answer(slot).cmd_status;
                let errors = a.errors();
                vsdrv::sys::protect(fa, 64, true).map_err(|e| format!("mprotect: {e}"))?;
                if !served {
                    Err("the frame was not read".into())
                } else if st != stat::INVALID_STATUS {
                    Err(format!("a read-only frame was answered ({st:#x})"))
                } else if errors != e + 1 {
                    Err(format!("errors {e} -> {errors}"))
                } else {
                    expect(a.exec(slot, &mut f, t), stat::OK).map(|_| ())
                }
            })
    });
    c.t("still_working", {
        let (r, d, _) = a.scsi(!jbod, id, &[0x28, 0, 0, 0, 0, 100, 0, 0, 1, 0], &[], 512);
        expect(r, stat::OK).and_then(|_| {
            if d == pattern(7, 100, 512) {
                Ok(())
            } else {
                Err("data".into())
            }
        })
    });
    c.t("adapter_reset", {
        a.reset().map_err(|e| e.to_string()).and_then(|_| {
            if a.fw_status() >> 28 != w::state::READY {
                return Err(format!("status word {:#x}", a.fw_status()));
            }
            ok(a.init().unwrap_or(0xff), "INIT after reset")?;
            let (r, d, _) = a.scsi(!jbod, id, &[0x28, 0, 0, 0, 0, 100, 0, 0, 1, 0], &[], 512);
            expect(r, stat::OK)?;
            if d == pattern(7, 100, 512) {
                Ok(())
            } else {
                Err("data".into())
            }
        })
    });
    println!("{} check(s) failed", c.failed);
    if c.failed == 0 {
        Ok(())
    } else {
        Err(format!("{} check(s) failed", c.failed))
    }
}

/// TEST UNIT READY until GOOD: consumes the unit attentions a new nexus or
/// a LUN change leaves (REPORTED LUNS DATA HAS CHANGED...), as an initiator
/// retries them.
fn clear_ua(a: &mut Adapter, id: u8) -> Result<(), String> {
    let mut last = None;
    for _ in 0..5 {
        let (r, _, sense) = a.scsi(!a.opts.jbod, id, &[0; 6], &[], 0);
        match r {
            Some(r) if r.cmd_status == stat::OK => return Ok(()),
            Some(r) if r.scsi_status == 2 && sense.get(2).is_some_and(|k| k & 0xf == 6) => {
                last = Some(r)
            }
            r => return Err(format!("TEST UNIT READY: {r:?}")),
        }
    }
    Err(format!("unit attention does not clear: {last:?}"))
}

/// `cdb ID HEX [in N | data HEX]`: one pass-through command, answered
/// whatever its status (exit 0), or an error when no answer came.
fn cdb(a: &mut Adapter, args: &[String]) -> Result<(), String> {
    let usage = || "cdb ID HEX [in N | data HEX]".to_string();
    let id: u8 = args
        .first()
        .and_then(|v| v.parse().ok())
        .ok_or_else(usage)?;
    let cdb = vsdrv::parse_hex(args.get(1).ok_or_else(usage)?, 16)?;
    let (inn, out) = match (args.get(2).map(String::as_str), args.get(3)) {
        (None, _) => (0, Vec::new()),
        (Some("in"), Some(n)) => (n.parse().map_err(|_| usage())?, Vec::new()),
        (Some("data"), Some(h)) => (0, vsdrv::parse_hex(h, a.data_bytes)?),
        _ => return Err(usage()),
    };
    if inn > a.data_bytes {
        return Err(format!("at most {} bytes", a.data_bytes));
    }
    clear_ua(a, id)?;
    let (r, data, sense) = a.scsi(!a.opts.jbod, id, &cdb, &out, inn);
    let r = r.ok_or("no answer")?;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    println!(
        "cmd_status={:#04x} scsi_status={:#04x} sense={} data={}",
        r.cmd_status,
        r.scsi_status,
        hex(&sense),
        hex(&data[..(r.data_len as usize).min(data.len())])
    );
    Ok(())
}

/// An MFI_CMD_ABORT of the frame in `victim` (context = slot).
fn abort_frame(a: &Adapter, victim: usize) -> Vec<u8> {
    let mut ab = raw_frame(op::ABORT);
    ab[off::ABORT_CONTEXT] = victim as u8;
    let fa = a.gpa(a.frame_addr(victim));
    ab[off::ABORT_ADDR..off::ABORT_ADDR + 8].copy_from_slice(&fa.to_le_bytes());
    ab
}

/// Posts a 1-block READ(10) to `id` in `slot` (not waited for).
fn post_read(a: &mut Adapter, slot: usize, id: u8) {
    let buf = a.data_addr(slot);
    let g = a.gpa(buf);
    let sense = a.gpa(a.sense_addr(slot));
    let mut f = mfi::pthru_frame(
        !a.opts.jbod,
        id,
        &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        flag::DIR_READ,
        512,
        sense,
        &[(g, 512)],
    );
    f[off::CONTEXT] = slot as u8;
    a.post(slot, &f);
}

fn name(s: u8) -> &'static str {
    match s {
        stat::OK => "OK",
        stat::ABORT_NOT_POSSIBLE => "ABORT_NOT_POSSIBLE",
        stat::DEVICE_NOT_FOUND => "DEVICE_NOT_FOUND",
        stat::SCSI_IO_FAILED => "SCSI_IO_FAILED",
        stat::SCSI_DONE_WITH_ERROR => "SCSI_DONE_WITH_ERROR",
        stat::INVALID_PARAMETER => "INVALID_PARAMETER",
        _ => "other",
    }
}

fn tmf(a: &mut Adapter, id: u8) -> Result<(), String> {
    let t = Duration::from_secs(60);
    clear_ua(a, id)?;
    let victim = 20;
    // ABORT of a READ in flight, by frame address and context.
    post_read(a, victim, id);
    std::thread::sleep(Duration::from_millis(200));
    let mut ab = abort_frame(a, victim);
    let r = a.exec(21, &mut ab, t).ok_or("abort: no answer")?;
    if !a.wait_reply(victim as u64, t) {
        return Err("the aborted READ was not answered".into());
    }
    println!(
        "abort={} victim={}",
        name(r.cmd_status),
        name(a.answer(victim).cmd_status)
    );
    // CLUSTER_RESET_LD and CLUSTER_RESET_ALL with a READ in flight.
    for (what, op) in [
        ("reset_ld", dcmd::CLUSTER_RESET_LD),
        ("reset_all", dcmd::CLUSTER_RESET_ALL),
    ] {
        // A reset leaves a unit attention (POWER ON, RESET...).
        clear_ua(a, id)?;
        post_read(a, victim, id);
        std::thread::sleep(Duration::from_millis(200));
        let mut f = mfi::dcmd_frame(op, &[id], 0, 0);
        let r = a.exec(22, &mut f, t).ok_or("reset: no answer")?;
        if !a.wait_reply(victim as u64, t) {
            return Err(format!("{what}: the READ in flight was not answered"));
        }
        println!(
            "{what}={} victim={}",
            name(r.cmd_status),
            name(a.answer(victim).cmd_status)
        );
    }
    // Adapter reset with a READ in flight: it waits for the READ, which
    // is answered before the reset returns; then INIT again.
    clear_ua(a, id)?;
    post_read(a, victim, id);
    std::thread::sleep(Duration::from_millis(200));
    a.reset().map_err(|e| format!("reset: {e}"))?;
    let v = a.answer(victim).cmd_status;
    let s = a.init().unwrap_or(0xff);
    println!("reset_in_flight victim={} init={}", name(v), name(s));
    // The adapter still works.
    clear_ua(a, id)?;
    let (r, _, _) = a.scsi(
        !a.opts.jbod,
        id,
        &[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0],
        &[],
        512,
    );
    println!("after={}", name(r.map_or(0xff, |r| r.cmd_status)));
    Ok(())
}

/// The adapter lent to `bench`'s I/O thread.
struct Lent<'a>(&'a mut Adapter);

// SAFETY: the adapter's raw pointers are its own mappings (the register
// page, its memory), valid in every thread of the process; the lending
// thread waits in `join` and touches nothing of the adapter meanwhile.
unsafe impl Send for Lent<'_> {}

/// What every request of a `bench` run looks like.
struct Shape {
    id: u8,
    jbod: bool,
    write: bool,
    random: bool,
    bs: usize,
    blocks: u32,
    /// The LUN's size in 512-byte blocks (at most 2^21).
    span: u64,
    qd: usize,
    /// `--kick always`: a kick after every frame, as an initiator that
    /// does not read `iq_no_kick`.
    kick_always: bool,
    /// `--reap spin`: the I/O thread spins on the reply queue rather than
    /// sleeping on the call eventfd.
    spin: bool,
}

/// What `bench`'s I/O thread did.
#[derive(Default)]
struct Done {
    lat: Vec<u32>,
    done: u64,
    errors: u64,
    stuck: bool,
    /// The I/O thread's scheduler counts over the run.
    sched: vsdrv::sys::SchedCounts,
    /// Where this thread, the opener and the worker were at the start.
    placed: String,
}

/// `bench`: the output line of vsdrv's bench, so scripts/bench.sh puts
/// both front ends side by side.
///
/// Built as `vsdrv bench` is: the thread that opened the device (whose
/// `VHOST_SET_OWNER` made the adapter's worker) sends the setup commands,
/// then starts a thread for the I/O, right before the timed loop, and
/// waits in `join`; the I/O thread sleeps on the call eventfd between
/// completions with the same 5-second timeout.  Where that thread is born
/// and which thread made the worker decide where the scheduler puts the
/// two at QD1 (Documentation/benchmarks.rst, "The megasas client's thread
/// and the order of the runs").
fn bench(a: &mut Adapter, args: &[String]) -> Result<(), String> {
    let id: u8 = args
        .first()
        .and_then(|v| v.parse().ok())
        .ok_or("bench: ID")?;
    let (mut rw, mut bs, mut qd, mut secs) = ("randread".to_string(), 4096usize, 1usize, 5u64);
    let (mut kick_always, mut spin) = (false, false);
    let mut i = 1;
    while i + 1 < args.len() {
        let v = &args[i + 1];
        match args[i].as_str() {
            "--rw" => rw = v.clone(),
            "--bs" => bs = v.parse().map_err(|_| "--bs")?,
            "--qd" => qd = v.parse().map_err(|_| "--qd")?,
            "--secs" => secs = v.parse().map_err(|_| "--secs")?,
            "--kick" => {
                kick_always = match v.as_str() {
                    "always" => true,
                    "needed" => false,
                    _ => return Err("bench: --kick always|needed".into()),
                }
            }
            "--reap" => {
                spin = match v.as_str() {
                    "spin" => true,
                    "sleep" => false,
                    _ => return Err("bench: --reap spin|sleep".into()),
                }
            }
            o => return Err(format!("bench: unknown option {o}")),
        }
        i += 2;
    }
    if bs % 512 != 0 || bs == 0 || bs > a.data_bytes || qd == 0 || qd > 32 {
        return Err("bench: --bs a multiple of 512 up to 128 KiB, --qd 1..32".into());
    }
    clear_ua(a, id)?;
    let (r, d, _) = a.scsi(!a.opts.jbod, id, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 8);
    expect(r, stat::OK)?;
    let span = (u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]])) + 1).min(1 << 21);
    let blocks = (bs / 512) as u32;
    if span < u64::from(blocks) * 2 {
        return Err("bench: the LUN is too small".into());
    }
    let shape = Shape {
        id,
        jbod: a.opts.jbod,
        write: rw.contains("write"),
        random: rw.starts_with("rand"),
        bs,
        blocks,
        span,
        qd,
        kick_always,
        spin,
    };
    let cpu0 = vsdrv::sys::CpuSample::now();
    let workers0 = vsdrv::sys::SchedCounts::workers();
    let signals0 = a.signals;
    let (kicks0, left_out0) = (a.kicks.get(), a.kicks_left_out);
    let t0 = std::time::Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let lent = Lent(a);
    let opener = &vsdrv::sys::own_tid();
    let r = std::thread::scope(|sc| {
        sc.spawn(move || {
            let lent = lent;
            bench_loop(lent.0, &shape, end, opener)
        })
        .join()
    });
    let el = t0.elapsed().as_secs_f64();
    let cpu1 = vsdrv::sys::CpuSample::now();
    let workers = vsdrv::sys::SchedCounts::workers().since(workers0);
    let Ok(Done {
        mut lat,
        done,
        errors,
        stuck,
        sched,
        placed,
    }) = r
    else {
        return Err("bench: the I/O thread panicked".into());
    };
    if stuck {
        return Err("bench: commands did not complete".into());
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    a.count_signals();
    let signals = a.signals - signals0;
    let kicks = a.kicks.get() - kicks0;
    let left_out = a.kicks_left_out - left_out0;
    if a.replies_ahead != 0 {
        return Err(format!(
            "bench: the replies register ran {} ahead of the published producer index",
            a.replies_ahead
        ));
    }
    println!(
        "rw={rw} bs={bs} qd={qd} queues=1 ios={done} errors={errors} iops={:.0} mbps={:.1} \
         p50_us={} p99_us={} {} signals={signals} ios_per_signal={:.1} kicks={kicks} \
         kicks_per_io={:.3} kicks_left_out={left_out} {} {placed}",
        done as f64 / el,
        done as f64 * bs as f64 / el / 1e6,
        pct(0.50),
        pct(0.99),
        cpu0.report(&cpu1, done),
        done as f64 / signals.max(1) as f64,
        kicks as f64 / done.max(1) as f64,
        sched.report(workers),
    );
    if errors > 0 {
        Err(format!("{errors} error(s)"))
    } else {
        Ok(())
    }
}

/// `bench`'s I/O: keeps `shape.qd` commands in flight until `end`, then
/// waits for the last ones.
fn bench_loop(a: &mut Adapter, shape: &Shape, end: std::time::Instant, opener: &str) -> Done {
    let placed = vsdrv::sys::placement(opener);
    let qd = shape.qd;
    let blocks = u64::from(shape.blocks);
    let first = 24;
    let mut start = vec![std::time::Instant::now(); qd];
    let (mut rng, mut seq) = (0x2545_f491_4f6c_dd1du64, 0u64);
    let mut post = |a: &mut Adapter, k: usize, start: &mut Vec<std::time::Instant>| {
        let lba = if shape.random {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % (shape.span / blocks)) * blocks
        } else {
            seq = (seq + blocks) % (shape.span - blocks);
            seq
        };
        let slot = first + k;
        let g = a.gpa(a.data_addr(slot));
        let sense = a.gpa(a.sense_addr(slot));
        let bs = shape.bs as u32;
        let dir = if shape.write {
            flag::DIR_WRITE
        } else {
            flag::DIR_READ
        };
        let mut f = if shape.jbod {
            let mut c = [0u8; 10];
            c[0] = if shape.write { 0x2a } else { 0x28 };
            c[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
            c[7..9].copy_from_slice(&(shape.blocks as u16).to_be_bytes());
            mfi::pthru_frame(false, shape.id, &c, dir, bs, sense, &[(g, bs)])
        } else {
            let mut f = vec![0u8; 64];
            f[off::CMD] = if shape.write {
                op::LD_WRITE
            } else {
                op::LD_READ
            };
            f[off::TARGET_ID] = shape.id;
            f[off::SENSE_LEN] = 96;
            f[off::SGE_COUNT] = 1;
            let fl = flag::SGL64 | dir;
            f[0x10..0x12].copy_from_slice(&fl.to_le_bytes());
            f[0x14..0x18].copy_from_slice(&shape.blocks.to_le_bytes());
            f[off::SENSE_ADDR..off::SENSE_ADDR + 4].copy_from_slice(&(sense as u32).to_le_bytes());
            f[off::START_LBA..off::START_LBA + 8].copy_from_slice(&lba.to_le_bytes());
            w::encode_sge(&mut f, off::IO_SGL, 0, w::SgeFormat::Sge64, g, bs);
            f
        };
        f[off::CONTEXT..off::CONTEXT + 8].copy_from_slice(&(slot as u64).to_le_bytes());
        start[k] = std::time::Instant::now();
        if shape.kick_always {
            a.post(slot, &f);
        } else {
            a.post_lazy(slot, &f);
        }
    };
    let sched0 = vsdrv::sys::SchedCounts::own();
    let mut r = Done {
        placed,
        ..Done::default()
    };
    for k in 0..qd {
        post(a, k, &mut start);
    }
    let mut inflight = qd;
    while inflight > 0 {
        let reaped = if shape.spin {
            a.collect_spin(Duration::from_secs(5))
        } else {
            a.collect(Duration::from_secs(5))
        };
        for ctx in reaped {
            let Some(k) = (ctx as usize).checked_sub(first).filter(|&k| k < qd) else {
                continue;
            };
            r.lat.push(start[k].elapsed().as_micros() as u32);
            let ans = a.answer(first + k);
            if ans.cmd_status != stat::OK {
                if r.errors == 0 {
                    eprintln!("mfi: bench: first error: {ans:?}");
                }
                r.errors += 1;
            }
            r.done += 1;
            if std::time::Instant::now() < end {
                post(a, k, &mut start);
            } else {
                inflight -= 1;
            }
        }
        if std::time::Instant::now() > end + Duration::from_secs(30) {
            r.stuck = true;
            return r;
        }
    }
    r.sched = vsdrv::sys::SchedCounts::own().since(sched0);
    r.placed += &format!(" {}", vsdrv::sys::placement_as("where_end", opener));
    r
}

/// `poll`: the worker's busy poll of the inbound queue
/// (Documentation/admin-guide.rst, "Polling before waiting for a kick").
fn poll(a: &mut Adapter, id: u8) -> Result<(), String> {
    clear_ua(a, id)?;
    let tur = |a: &Adapter, slot: usize| {
        let sense = a.gpa(a.sense_addr(slot));
        let mut f = mfi::pthru_frame(!a.opts.jbod, id, &[0; 6], 0, 0, sense, &[]);
        f[off::CONTEXT] = slot as u8;
        f
    };
    // A TEST UNIT READY in slot 20 without a doorbell: whether it was
    // served within `wait` (else a doorbell serves it).
    let quiet = |a: &mut Adapter, wait: Duration| {
        let f = tur(a, 20);
        a.post_quiet(20, &f);
        let served = a.wait_reply(20, wait);
        if !served {
            a.kick();
            if !a.wait_reply(20, Duration::from_secs(5)) {
                return Err("a frame was not served after its doorbell".to_string());
            }
        }
        expect(Some(a.answer(20)), stat::OK)?;
        Ok(served)
    };
    // Without polling: nothing reads the inbound queue until a doorbell.
    a.set_busyloop(0)
        .map_err(|e| format!("busy-loop timeout 0: {e}"))?;
    std::thread::sleep(Duration::from_millis(20));
    if quiet(a, Duration::from_millis(100))? {
        return Err(
            "a frame posted without a doorbell was served while the worker does not poll".into(),
        );
    }
    // With 1000 us of polling after each pass: a frame posted right after
    // a reply is found by the poll.
    a.set_busyloop(1000)
        .map_err(|e| format!("busy-loop timeout 1000: {e}"))?;
    let (tries, mut found) = (40, 0);
    for _ in 0..tries {
        // The reply awaited without sleeping: a wake-up of this thread
        // can take longer than the poll (a debug kernel under TCG).
        let f = tur(a, 21);
        a.post(21, &f);
        if !a.spin_reply(21, Duration::from_secs(5)) {
            return Err("no reply to a frame posted with a doorbell".into());
        }
        if quiet(a, Duration::from_millis(50))? {
            found += 1;
        }
    }
    a.set_busyloop(0)
        .map_err(|e| format!("busy-loop timeout 0: {e}"))?;
    println!("unkicked: without polling 0 of 1 served, with 1000 us polling {found} of {tries}");
    // Without polling none is (above); a quarter leaves room for a slow
    // machine, where the client's turn from a reply to the next frame
    // can outlast the poll (24 of 40 in the debug VM beside a kernel
    // build).
    if found * 4 < tries {
        return Err(format!(
            "polling found {found} of {tries} frames posted without a doorbell"
        ));
    }
    Ok(())
}

fn tmf_close(a: &mut Adapter, id: u8) -> Result<(), String> {
    clear_ua(a, id)?;
    let victim = 20;
    post_read(a, victim, id);
    std::thread::sleep(Duration::from_millis(100));
    let mut ab = abort_frame(a, victim);
    ab[off::CONTEXT] = 21;
    a.post(21, &ab);
    let mut f = mfi::dcmd_frame(dcmd::CLUSTER_RESET_ALL, &[], 0, 0);
    f[off::CONTEXT] = 22;
    a.post(22, &f);
    println!("closing with a READ, an ABORT and a CLUSTER_RESET_ALL in flight");
    Ok(())
}

/// Posts in slot `slot` a CTRL_EVENT_WAIT for the events from sequence
/// number `seq` on, any class and locale, its context the slot.
fn post_event_wait(a: &mut Adapter, slot: usize, seq: u32) {
    let buf = a.data_addr(slot);
    let mut mbox = [0u8; 8];
    mbox[..4].copy_from_slice(&seq.to_le_bytes());
    mbox[4..].copy_from_slice(&0xfe00_ffffu32.to_le_bytes());
    let mut f = mfi::dcmd_frame(dcmd::CTRL_EVENT_WAIT, &mbox, a.gpa(buf), 256);
    f[off::CONTEXT] = slot as u8;
    a.post(slot, &f);
}

fn return_err(s: &str) -> Result<(), String> {
    Err(s.into())
}

/// `flush [N]`: N CTRL_CACHE_FLUSHes, each answered OK or, when a LUN went
/// away meanwhile, SCSI_IO_FAILED.
fn flush(a: &mut Adapter, n: u32) -> Result<(), String> {
    let mut failed = 0;
    for i in 0..n {
        match a.dcmd(dcmd::CTRL_CACHE_FLUSH, &[3], 0).0 {
            stat::OK => {}
            stat::SCSI_IO_FAILED if n > 1 => failed += 1,
            s => return Err(format!("CTRL_CACHE_FLUSH {i}: status {s:#04x}")),
        }
    }
    if n > 1 {
        println!("{n} flushes, {failed} with a LUN gone");
    }
    Ok(())
}

/// The answer a controller with no free command slot gives.
fn is_busy(r: &Answer) -> bool {
    r.cmd_status == stat::SCSI_DONE_WITH_ERROR && r.scsi_status == 0x08
}

/// `tmf-flood ID`: with a READ in flight on a slow drive, 40 CLUSTER_RESET_LD
/// frames posted at once.  The adapter carries out a bounded number (16)
/// and answers the others BUSY at once; every frame is answered.
fn tmf_flood(a: &mut Adapter, id: u8) -> Result<(), String> {
    const N: usize = 40;
    clear_ua(a, id)?;
    let victim = 20;
    post_read(a, victim, id);
    std::thread::sleep(Duration::from_millis(100));
    for slot in 21..21 + N {
        let mut f = mfi::dcmd_frame(dcmd::CLUSTER_RESET_LD, &[id], 0, 0);
        f[off::CONTEXT] = slot as u8;
        a.post(slot, &f);
    }
    let t = Duration::from_secs(120);
    let (mut busy, mut ok_n, mut other) = (0, 0, 0);
    for slot in 21..21 + N {
        if !a.wait_reply(slot as u64, t) {
            return Err(format!("reset frame {slot} not answered"));
        }
        let r = a.answer(slot);
        if is_busy(&r) {
            busy += 1;
        } else if r.cmd_status == stat::OK {
            ok_n += 1;
        } else {
            other += 1;
        }
    }
    if !a.wait_reply(victim as u64, t) {
        return Err("the READ in flight was not answered".into());
    }
    println!("tmf_flood: {N} resets: {ok_n} OK, {busy} BUSY, {other} other");
    if busy == 0 || ok_n + other > 16 {
        return Err(format!(
            "expected at most 16 resets carried out and the rest BUSY: {ok_n} OK, {other} other, {busy} BUSY"
        ));
    }
    Ok(())
}

/// `reply-full ID`: replies that waited for room in a full reply queue are
/// posted when the next reply is, without a doorbell.
fn reply_full(a: &mut Adapter, id: u8) -> Result<(), String> {
    let t = Duration::from_secs(10);
    clear_ua(a, id)?;
    clear_ua(a, 0)?;
    // Reset to READY, then INIT with a small reply queue (3 replies fit).
    a.reset().map_err(|e| format!("RESET: {e}"))?;
    match a.init_entries(4) {
        Some(stat::OK) => {}
        s => return Err(format!("INIT with 4 reply entries: {s:?}")),
    }
    let victim = 20;
    post_read(a, victim, id);
    std::thread::sleep(Duration::from_millis(50));
    let turs = 21..26;
    for slot in turs.clone() {
        let sense = a.gpa(a.sense_addr(slot));
        let mut f = mfi::pthru_frame(!a.opts.jbod, 0, &[0; 6], 0, 0, sense, &[]);
        f[off::CONTEXT] = slot as u8;
        a.post(slot, &f);
    }
    // The TEST UNIT READYs are answered at once: 3 replies fill the queue,
    // 2 wait in the kernel.
    let end = std::time::Instant::now() + t;
    while turs
        .clone()
        .any(|s| a.answer(s).cmd_status == stat::INVALID_STATUS)
    {
        if std::time::Instant::now() > end {
            return Err("the TEST UNIT READYs were not answered in their frames".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Consume (wait_reply reaps and writes the consumer index; it rings no
    // doorbell), then wait for the rest: the READ's reply, and the two
    // that waited, posted before it.
    let mut missing = Vec::new();
    for slot in turs.chain([victim]) {
        if !a.wait_reply(slot as u64, t) {
            missing.push(slot);
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "replies of slots {missing:?} never came (the queue had room, no doorbell rang)"
        ));
    }
    println!("reply_full: 6 replies through a 4-entry queue without a doorbell");
    Ok(())
}

/// `owner`: what only the owner may do, and a memory table that reaches
/// outside the address space.  Runs on an unbound TPG.
///  - SET_ENDPOINT with a memory table region that wraps around the end of
///    the address space, or lies in kernel space, fails with EFAULT;
///  - a forked child (not the owner) gets EPERM from DOORBELL, RESET,
///    CLEAR_ENDPOINT and SET_ENDPOINT, and the adapter works on;
///  - with a CTRL_EVENT_WAIT pending, the owner closes its references and
///    the child's close is the last one: the answer is written into the
///    owner's memory (by the owner's worker), the child's copy untouched.
fn owner(opts: &Options) -> Result<(), String> {
    let mut c = Checks { failed: 0 };
    let t = Duration::from_secs(10);
    let eperm = |r: std::io::Result<i32>| match r {
        Err(e) if e.raw_os_error() == Some(1) => 0u8,
        _ => 1u8,
    };
    for (what, uva) in [
        ("wrapping", 0xffff_ffff_ffff_f000u64),
        ("kernel_space", 0xffff_8880_0000_0000u64),
    ] {
        c.t(&format!("table_{what}"), {
            mfi::open_with_table(opts, &[(mfi::GPA_BASE, 1 << 20, uva)])
                .map_err(|e| format!("SET_MEM_TABLE: {e}"))
                .and_then(|f| {
                    let mut ep = mfi::endpoint_arg(opts);
                    match mfi::raw_ioctl(&f, mfi::SET_ENDPOINT, &mut ep) {
                        Err(e) if e.raw_os_error() == Some(14) => Ok(()),
                        r => Err(format!("SET_ENDPOINT: {r:?}, expected EFAULT")),
                    }
                })
        });
    }
    let mut a = Adapter::open(opts).map_err(|e| format!("open: {e}"))?;
    ok(a.init().unwrap_or(0xff), "INIT")?;
    c.t("table_wrapping_after_bind", {
        let mut table = mfi::mem_table(&[(mfi::GPA_BASE, 1 << 20, 0xffff_ffff_ffff_f000)]);
        match a.ioctl(vsdrv::sys::SET_MEM_TABLE, &mut table) {
            Err(e) if e.raw_os_error() == Some(14) => Ok(()),
            r => Err(format!("SET_MEM_TABLE: {r:?}, expected EFAULT")),
        }
    });
    c.t("non_owner_eperm", {
        let fd = a.fd();
        let arg = mfi::endpoint_arg(opts);
        let r = vsdrv::sys::in_child(|| {
            let f = |req: u32, arg: &mut [u8]| {
                // SAFETY: `arg` is writable and as large as `req` encodes.
                unsafe {
                    vsdrv::sys::ioctl_ptr(
                        fd,
                        req,
                        if arg.is_empty() {
                            std::ptr::null_mut()
                        } else {
                            arg.as_mut_ptr()
                        },
                    )
                }
            };
            eperm(f(mfi::DOORBELL, &mut []))
                | eperm(f(mfi::RESET, &mut [])) << 1
                | eperm(f(mfi::CLEAR_ENDPOINT, &mut arg.clone())) << 2
                | eperm(f(mfi::SET_ENDPOINT, &mut arg.clone())) << 3
        });
        match r {
            Some(0) => Ok(()),
            r => Err(format!(
                "child's DOORBELL/RESET/CLEAR_ENDPOINT/SET_ENDPOINT not all EPERM (bitmask of failures {r:?})"
            )),
        }
    });
    c.t("owner_works_on", {
        let (r, _, _) = a.scsi(true, 0, &[0, 0, 0, 0, 0, 0], &[], 0);
        match r {
            Some(r) if r.cmd_status == stat::OK || r.cmd_status == stat::SCSI_DONE_WITH_ERROR => {
                Ok(())
            }
            r => Err(format!("TEST UNIT READY: {r:?}")),
        }
    });
    // The pending CTRL_EVENT_WAIT: an event sequence number no event has.
    let slot = 5;
    post_event_wait(&mut a, slot, 0x7fff_0000);
    std::thread::sleep(Duration::from_millis(200));
    let frame = a.frame_addr(slot);
    if a.answer(slot).cmd_status != stat::INVALID_STATUS {
        return Err("CTRL_EVENT_WAIT answered at once".into());
    }
    let go = vsdrv::sys::new_eventfd().map_err(|e| format!("eventfd: {e}"))?;
    let fd = a.fd();
    let regs = a.regs_ptr();
    let child_mem = a.mem.slice(frame, 64).as_ptr();
    // The child: once the owner has let go, closes its references (the
    // last ones), then looks at its own copy of the frame.
    let child = vsdrv::sys::fork_child(|| {
        if !vsdrv::sys::wait_readable(go, 20_000) {
            return 2;
        }
        vsdrv::sys::unmap(regs, mfi::REGS_SIZE);
        vsdrv::sys::close_fd(fd);
        // SAFETY: the child's own copy of the frame memory.
        let st = unsafe { std::ptr::read_volatile(child_mem.add(off::CMD_STATUS)) };
        u8::from(st != stat::INVALID_STATUS)
    })
    .ok_or("fork")?;
    // The owner lets go of the device, keeping its memory.
    let mem = a.close_keep_memory();
    vsdrv::sys::signal_eventfd(go);
    let r = vsdrv::sys::wait_child(child);
    c.t("last_close_by_other_process", {
        // SAFETY: our memory; the adapter wrote it, if anyone did.
        let st = unsafe { std::ptr::read_volatile(&mem.slice(frame, 64)[off::CMD_STATUS]) };
        match (r, st) {
            (Some(0), stat::OK) => Ok(()),
            (r, st) => Err(format!(
                "child {r:?} (1: the answer was written into the child's memory), owner's frame status {st:#04x}"
            )),
        }
    });
    let _ = t;
    println!("{} check(s) failed", c.failed);
    if c.failed == 0 {
        Ok(())
    } else {
        Err(format!("{} check(s) failed", c.failed))
    }
}

/// `regions`: the memory table has two regions, adjacent in the adapter's
/// address space but not in the process's; a polled frame posted with one
/// extra frame straddles them.  The adapter reads it across both and
/// answers it (before INIT: WRONG_STATE) in its header.
fn regions(opts: &Options) -> Result<(), String> {
    const MIB: u64 = 1 << 20;
    let r1 = vsdrv::Memory::new(MIB as usize).map_err(|e| format!("memory: {e}"))?;
    let r2 = vsdrv::Memory::new(MIB as usize).map_err(|e| format!("memory: {e}"))?;
    let (g1, g2) = (mfi::GPA_BASE, mfi::GPA_BASE + MIB);
    let f = mfi::open_with_table(opts, &[(g1, MIB, r1.base()), (g2, MIB, r2.base())])
        .map_err(|e| format!("open: {e}"))?;
    let mut ep = mfi::endpoint_arg(opts);
    mfi::raw_ioctl(&f, mfi::SET_ENDPOINT, &mut ep).map_err(|e| format!("SET_ENDPOINT: {e}"))?;
    let regs = vsdrv::sys::map_shared(std::os::fd::AsRawFd::as_raw_fd(&f), mfi::REGS_SIZE)
        .map_err(|e| format!("mmap: {e}"))?;
    // The frame: a DCMD, polled, its first 64 bytes at the end of region 1,
    // its extra frame at the start of region 2.
    let mut fr = mfi::dcmd_frame(dcmd::CTRL_GET_INFO, &[], 0, 0);
    fr[0x10] = flag::DONT_POST_IN_REPLY_QUEUE as u8;
    fr[off::CMD_STATUS] = stat::INVALID_STATUS;
    let head = r1.base() + MIB - 64;
    r1.slice_mut(head, 64).copy_from_slice(&fr);
    r2.slice_mut(r2.base(), 64).fill(0);
    let v = w::encode_posted(g2 - 64, 1);
    // SAFETY: inside the mapped register page: iq[0] and iq_producer.
    unsafe {
        std::ptr::write_volatile(regs.add(256).cast::<u64>(), v);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        std::ptr::write_volatile(regs.add(12).cast::<u32>(), 1);
    }
    let r = mfi::raw_ioctl(&f, mfi::DOORBELL, &mut []);
    let end = Instant::now() + Duration::from_secs(5);
    let mut st = stat::INVALID_STATUS;
    while Instant::now() < end {
        // SAFETY: our memory; the adapter writes the header.
        st = unsafe { std::ptr::read_volatile(&r1.slice(head, 64)[off::CMD_STATUS]) };
        if st != stat::INVALID_STATUS {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: the errors register.
    let errors = unsafe { std::ptr::read_volatile(regs.add(24).cast::<u32>()) };
    vsdrv::sys::unmap(regs, mfi::REGS_SIZE);
    r.map_err(|e| format!("DOORBELL: {e}"))?;
    if st == stat::WRONG_STATE && errors == 0 {
        println!("ok frame_across_regions");
        Ok(())
    } else {
        Err(format!(
            "frame across two regions: status {st:#04x} (expected WRONG_STATE), errors {errors}"
        ))
    }
}
