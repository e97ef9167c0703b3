// SPDX-License-Identifier: GPL-2.0
//! The few libc calls and vhost ioctls the driver needs (no crates).

use std::io;
use std::os::raw::{c_int, c_long, c_ulong, c_void};

extern "C" {
    fn ioctl(fd: c_int, req: c_ulong, ...) -> c_int;
    fn eventfd(initval: u32, flags: c_int) -> c_int;
    fn mmap(
        addr: *mut c_void,
        len: usize,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        off: c_long,
    ) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn mprotect(addr: *mut c_void, len: usize, prot: c_int) -> c_int;
    fn poll(fds: *mut PollFd, n: c_ulong, timeout: c_int) -> c_int;
    fn getrusage(who: c_int, usage: *mut [c_long; 18]) -> c_int;
    fn fork() -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn _exit(code: c_int) -> !;
    fn close(fd: c_int) -> c_int;
    fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn sched_getaffinity(pid: c_int, size: usize, mask: *mut u8) -> c_int;
    fn sched_setaffinity(pid: c_int, size: usize, mask: *const u8) -> c_int;
}

/// A CPU mask (`cpu_set_t`: 1024 CPUs).
pub type CpuMask = [u8; 128];

/// The CPU mask a thread had before [`bind_to_cpu`], given back when
/// dropped.
pub struct BoundToCpu(CpuMask);

impl Drop for BoundToCpu {
    fn drop(&mut self) {
        let _ = set_cpu_mask(&self.0);
    }
}

/// Binds the calling thread to `cpu` until the returned guard is dropped.
pub fn bind_to_cpu(cpu: usize) -> io::Result<BoundToCpu> {
    let mut old = [0u8; 128];
    // SAFETY: `old` is a writable buffer of the size given.
    if unsafe { sched_getaffinity(0, old.len(), old.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut one = [0u8; 128];
    let Some(b) = one.get_mut(cpu / 8) else {
        return Err(io::Error::from_raw_os_error(22));
    };
    *b = 1 << (cpu % 8);
    set_cpu_mask(&one)?;
    Ok(BoundToCpu(old))
}

/// Sets the calling thread's CPU mask.
fn set_cpu_mask(mask: &CpuMask) -> io::Result<()> {
    // SAFETY: `mask` is a readable buffer of the size given.
    if unsafe { sched_setaffinity(0, mask.len(), mask.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `child` in a forked process, which exits with its return value
/// without unwinding or running destructors; returns the child's pid.
/// The caller must not hold locks another thread could hold at the fork.
pub fn fork_child(child: impl FnOnce() -> u8) -> Option<c_int> {
    // SAFETY: fork has no memory-safety preconditions; the child only runs
    // `child` and `_exit`s.
    let pid = unsafe { fork() };
    if pid < 0 {
        return None;
    }
    if pid == 0 {
        let code = child();
        // SAFETY: ends the child at once, as after fork() it must.
        unsafe { _exit(c_int::from(code)) };
    }
    Some(pid)
}

/// Waits for the child `pid`: its exit status, or `None` if it did not
/// exit normally.
pub fn wait_child(pid: c_int) -> Option<u8> {
    let mut status: c_int = 0;
    // SAFETY: `status` is ours; `pid` is our child.
    if unsafe { waitpid(pid, &mut status, 0) } != pid || status & 0x7f != 0 {
        return None;
    }
    Some(((status >> 8) & 0xff) as u8)
}

/// Sends SIGKILL to the child `pid`.
pub fn kill_child(pid: c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { kill(pid, 9) };
}

/// `fork_child` then `wait_child`.
pub fn in_child(child: impl FnOnce() -> u8) -> Option<u8> {
    wait_child(fork_child(child)?)
}

/// Closes a file descriptor this process holds outside any `File`.
pub fn close_fd(fd: c_int) {
    // SAFETY: closing a descriptor has no memory-safety preconditions.
    unsafe { close(fd) };
}

/// Adds 1 to the eventfd `fd`.
pub fn signal_eventfd(fd: c_int) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: `one` is 8 readable bytes.
    unsafe { write(fd, one.as_ptr().cast(), 8) };
}

#[repr(C)]
pub struct PollFd {
    pub fd: c_int,
    pub events: i16,
    pub revents: i16,
}

const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;
const VHOST: u32 = 0xaf;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (VHOST << 8) | nr
}

pub const GET_FEATURES: u32 = ioc(IOC_READ, 0x00, 8);
pub const SET_FEATURES: u32 = ioc(IOC_WRITE, 0x00, 8);
pub const SET_OWNER: u32 = ioc(0, 0x01, 0);
pub const RESET_OWNER: u32 = ioc(0, 0x02, 0);
pub const SET_MEM_TABLE: u32 = ioc(IOC_WRITE, 0x03, 8);
pub const SET_LOG_BASE: u32 = ioc(IOC_WRITE, 0x04, 8);
pub const SET_VRING_NUM: u32 = ioc(IOC_WRITE, 0x10, 8);
pub const SET_VRING_ADDR: u32 = ioc(IOC_WRITE, 0x11, 40);
pub const SET_VRING_BASE: u32 = ioc(IOC_WRITE, 0x12, 8);
pub const GET_VRING_BASE: u32 = ioc(IOC_READ | IOC_WRITE, 0x12, 8);
pub const SET_VRING_KICK: u32 = ioc(IOC_WRITE, 0x20, 8);
pub const SET_VRING_CALL: u32 = ioc(IOC_WRITE, 0x21, 8);
pub const SET_VRING_ERR: u32 = ioc(IOC_WRITE, 0x22, 8);
pub const SET_VRING_BUSYLOOP_TIMEOUT: u32 = ioc(IOC_WRITE, 0x23, 8);
pub const NEW_WORKER: u32 = ioc(IOC_READ, 0x08, 4);
pub const ATTACH_VRING_WORKER: u32 = ioc(IOC_WRITE, 0x15, 8);
pub const SCSI_SET_ENDPOINT: u32 = ioc(IOC_WRITE, 0x40, 232);
pub const SCSI_CLEAR_ENDPOINT: u32 = ioc(IOC_WRITE, 0x41, 232);
pub const SCSI_GET_ABI_VERSION: u32 = ioc(IOC_WRITE, 0x42, 4);
pub const SCSI_SET_EVENTS_MISSED: u32 = ioc(IOC_WRITE, 0x43, 4);
pub const SCSI_GET_EVENTS_MISSED: u32 = ioc(IOC_WRITE, 0x44, 4);

/// `ioctl(fd, req, arg)`; the errno on failure.
///
/// # Safety
///
/// `arg` must be null for requests without argument, or point to a buffer
/// of the size the request encodes, valid for the access it encodes.
pub unsafe fn ioctl_ptr(fd: c_int, req: u32, arg: *mut u8) -> io::Result<c_int> {
    // SAFETY: `arg` is null for a request without argument, or points to a buffer of the
    // size `req` encodes, valid for the access it encodes (the caller's contract).
    let r = unsafe { ioctl(fd, req as c_ulong, arg) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub fn new_eventfd() -> io::Result<c_int> {
    // EFD_CLOEXEC | EFD_NONBLOCK
    // SAFETY: plain syscall.
    let fd = unsafe { eventfd(0, 0o2000000 | 0o4000) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

/// Anonymous, private, read-write memory.
pub fn map_anon(len: usize) -> io::Result<*mut u8> {
    // PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_POPULATE
    // SAFETY: a fresh mapping.
    let p = unsafe { mmap(std::ptr::null_mut(), len, 3, 0x02 | 0x20 | 0x8000, -1, 0) };
    if p as isize == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

/// A shared read-write mapping of `len` bytes of `fd` at offset 0.
pub fn map_shared(fd: c_int, len: usize) -> io::Result<*mut u8> {
    // PROT_READ|PROT_WRITE, MAP_SHARED
    // SAFETY: a fresh mapping of the device.
    let p = unsafe { mmap(std::ptr::null_mut(), len, 3, 0x01, fd, 0) };
    if p as isize == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

/// Makes the whole pages of `[addr, addr + len)` read-only, or read-write
/// again.  The range must lie in a mapping of ours.
pub fn protect(addr: u64, len: usize, writable: bool) -> io::Result<()> {
    let start = addr & !4095;
    let end = (addr + len as u64 + 4095) & !4095;
    // PROT_READ, or PROT_READ|PROT_WRITE.
    // SAFETY: changes the protection of pages the caller mapped; Rust
    // references into them are not written while they are read-only.
    let r = unsafe {
        mprotect(
            start as *mut c_void,
            (end - start) as usize,
            if writable { 3 } else { 1 },
        )
    };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn unmap(p: *mut u8, len: usize) {
    // SAFETY: mapped by map_anon with this length.
    unsafe { munmap(p.cast(), len) };
}

/// Waits until `fd` is readable or `ms` passed; true if readable.
pub fn wait_readable(fd: c_int, ms: i32) -> bool {
    let mut p = PollFd {
        fd,
        events: 1,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { poll(&mut p, 1, ms) > 0 }
}

/// Waits until one of `fds` is readable or `ms` passed; true if one is.
pub fn wait_any_readable(fds: &[c_int], ms: i32) -> bool {
    let mut p: Vec<PollFd> = fds
        .iter()
        .map(|&fd| PollFd {
            fd,
            events: 1,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` holds `p.len()` initialised pollfds.
    unsafe { poll(p.as_mut_ptr(), p.len() as c_ulong, ms) > 0 }
}

/// User + system CPU time of this process, in microseconds.
pub fn cpu_us() -> u64 {
    let mut ru = [0 as c_long; 18];
    // SAFETY: struct rusage is 18 longs on 64-bit Linux; RUSAGE_SELF.
    unsafe { getrusage(0, &mut ru) };
    (ru[0] * 1_000_000 + ru[1] + ru[2] * 1_000_000 + ru[3]) as u64
}

/// Run time of a thread from its `schedstat` (nanoseconds on the CPU).
fn run_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// Where the CPU time of a benchmark went, as the scheduler counts it: the
/// run time (nanoseconds) of this process's threads (the exited ones
/// included), of its vhost workers (`vhost-<pid>`: vhost core runs a
/// device's workers as threads of the process that owns it) and of every
/// thread of the other processes (target core's kworkers, softirq threads).
///
/// Run time, not `/proc/stat`: in the bench VM its busy fields (sampled by
/// the scheduler tick) and its idle time both lose most of the short busy
/// periods of a CPU that wakes from idle for a few microseconds of work and
/// goes back to idle (a kworker completing a command).  Two processes on
/// two CPUs passing a byte back and forth 20000 times ran 1.81 s by their
/// run times in 2.48 s of wall time; the ticks counted 0.86 s, the wall
/// time less idle 0.75 s (`scripts/cpu-accounting.sh`,
/// Documentation/benchmarks.rst, "Counting the CPU time").
#[derive(Clone, Debug)]
pub struct CpuSample {
    /// When the sample was taken.
    pub at: std::time::Instant,
    /// CPUs counted in `/proc/stat` (the online ones).
    pub cpus: u64,
    /// The machine's busy time as the scheduler tick sampled it (user,
    /// nice, system, irq, softirq, steal; USER_HZ ticks), for comparison.
    pub tick_busy: u64,
    /// This process: user + system time of every thread it had (ns).
    pub process: u64,
    /// This process's live vhost worker threads (ns).
    pub workers: u64,
    /// Every thread of the other processes: (thread id, run time in ns),
    /// by thread id.
    pub others: Vec<(u32, u64)>,
}

impl CpuSample {
    pub fn now() -> CpuSample {
        let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // user nice system idle iowait irq softirq steal (guest and
        // guest_nice are already counted in user and nice).
        let v: Vec<u64> = s
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|x| x.parse().ok())
            .collect();
        let cpus = s
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count() as u64;
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        let tick_busy = v.iter().sum::<u64>() - idle;
        let me = std::process::id();
        let mut workers = 0;
        let mut others = Vec::new();
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            for t in std::fs::read_dir(p.path().join("task"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let Some(tid) = t.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                let Some(ns) = std::fs::read_to_string(t.path().join("schedstat"))
                    .ok()
                    .and_then(|x| run_ns(&x))
                else {
                    continue;
                };
                if pid != me {
                    others.push((tid, ns));
                } else if std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.starts_with("vhost-"))
                {
                    workers += ns;
                }
            }
        }
        others.sort_unstable();
        CpuSample {
            at: std::time::Instant::now(),
            cpus,
            tick_busy,
            process: cpu_us() * 1000,
            workers,
            others,
        }
    }

    /// The split between `self` and the later sample `end`, per I/O in
    /// microseconds: `worker_us_per_io` the vhost workers;
    /// `client_us_per_io` the rest of this process (the submitting and
    /// reaping threads); `other_us_per_io` the threads of the other
    /// processes (target core's kworkers, softirq threads); `kern_us_per_io`
    /// workers + other, the device's cost without its client;
    /// `cpu_us_per_io` all of them; `cpu_util` that share of the CPUs' wall
    /// time; `tick_us_per_io` the machine's busy time as the scheduler tick
    /// sampled it (see [`CpuSample`]).  Interrupts taken while a CPU idles
    /// are in none of them.
    pub fn report(&self, end: &CpuSample, ios: u64) -> String {
        let process = end.process.saturating_sub(self.process);
        let workers = end.workers.saturating_sub(self.workers).min(process);
        let client = process - workers;
        // A thread that started during the run counts from 0; one that
        // ended during it is lost (its time goes to its process's dead).
        let other: u64 = end
            .others
            .iter()
            .map(|&(tid, ns)| {
                let before = self
                    .others
                    .binary_search_by_key(&tid, |&(t, _)| t)
                    .map_or(0, |i| self.others[i].1);
                ns.saturating_sub(before)
            })
            .sum();
        let busy = process + other;
        let wall = end.at.duration_since(self.at).as_nanos() as f64 * end.cpus.max(1) as f64;
        let per = |ns: u64| ns as f64 / 1000.0 / ios.max(1) as f64;
        format!(
            "cpu_us_per_io={:.1} kern_us_per_io={:.1} worker_us_per_io={:.1} \
             other_us_per_io={:.1} client_us_per_io={:.1} cpu_util={:.0}% tick_us_per_io={:.1}",
            per(busy),
            per(workers + other),
            per(workers),
            per(other),
            per(client),
            if wall > 0.0 {
                busy as f64 * 100.0 / wall
            } else {
                0.0
            },
            per(end.tick_busy.saturating_sub(self.tick_busy) * 10_000_000),
        )
    }
}

/// A thread's scheduler counts (`/proc/self/task/<tid>/sched`): how often
/// it moved to another CPU and how often it was preempted while runnable.
/// With [`placement`] they tell where a QD1 run's client and worker ran
/// (Documentation/benchmarks.rst, "Halted vCPUs").
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedCounts {
    pub migrations: u64,
    pub preempted: u64,
}

impl SchedCounts {
    /// The counts of thread `tid` of this process (zero if it is gone).
    pub fn of(tid: &str) -> SchedCounts {
        SchedCounts::read(&format!("/proc/self/task/{tid}/sched"))
    }

    /// The calling thread's counts.
    pub fn own() -> SchedCounts {
        SchedCounts::read("/proc/thread-self/sched")
    }

    fn read(path: &str) -> SchedCounts {
        SchedCounts::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    /// The counts in the text of a `sched` file (fields missing: 0).
    pub fn parse(s: &str) -> SchedCounts {
        let field = |name: &str| {
            s.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim() == name).then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0)
        };
        SchedCounts {
            migrations: field("se.nr_migrations"),
            preempted: field("nr_involuntary_switches"),
        }
    }

    /// The sum of the counts of this process's vhost workers (`vhost-<pid>`).
    pub fn workers() -> SchedCounts {
        worker_tids()
            .iter()
            .fold(SchedCounts::default(), |sum, tid| {
                sum.plus(SchedCounts::of(tid))
            })
    }

    pub fn plus(self, o: SchedCounts) -> SchedCounts {
        SchedCounts {
            migrations: self.migrations + o.migrations,
            preempted: self.preempted + o.preempted,
        }
    }

    /// The counts since `before` (a thread's counts only grow).
    pub fn since(self, before: SchedCounts) -> SchedCounts {
        SchedCounts {
            migrations: self.migrations.saturating_sub(before.migrations),
            preempted: self.preempted.saturating_sub(before.preempted),
        }
    }

    /// The output fields of `bench`: the I/O threads' counts `self`, the
    /// workers' `workers`.
    pub fn report(self, workers: SchedCounts) -> String {
        format!(
            "io_migrations={} io_preempted={} worker_migrations={} worker_preempted={}",
            self.migrations, self.preempted, workers.migrations, workers.preempted
        )
    }
}

/// The CPU a thread last ran on (field 39 of `/proc/self/task/<tid>/stat`),
/// `None` if unknown.  Read for the threads of a run at its start and
/// its end (Documentation/benchmarks.rst, "Halted vCPUs").
pub fn last_cpu(stat: &str) -> Option<u32> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(39 - 3)?.parse().ok()
}

/// Where the threads of a run were when it started: the calling thread,
/// the thread `opener` (the one that opened the device) and the
/// process's vhost workers (`vhost-<pid>`), as `where=io:C,opener:C,worker:C`.
pub fn placement(opener: &str) -> String {
    placement_as("where", opener)
}

/// [`placement`] under another name (`where_end=` at a run's end).
pub fn placement_as(name: &str, opener: &str) -> String {
    let cpu = |path: String| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| last_cpu(&s))
            .map_or("?".to_string(), |c| c.to_string())
    };
    let mut out = format!(
        "{name}=io:{},opener:{}",
        cpu("/proc/thread-self/stat".into()),
        cpu(format!("/proc/self/task/{opener}/stat"))
    );
    for tid in worker_tids() {
        out += &format!(",worker:{}", cpu(format!("/proc/self/task/{tid}/stat")));
    }
    out
}

/// The thread ids of this process's vhost workers (`vhost-<pid>`).
fn worker_tids() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("vhost-"))
        })
        .filter_map(|t| t.file_name().to_str().map(str::to_string))
        .collect()
}

/// The calling thread's id, as its `/proc/self/task` entry names it.
pub fn own_tid() -> String {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::SchedCounts;

    #[test]
    fn sched_counts_from_the_proc_file() {
        let text = "cat (23442, #threads: 1)\n\
            -------------------------------------------------------------------\n\
            se.exec_start                                :        323532.623389\n\
            se.nr_migrations                             :                   17\n\
            nr_switches                                  :                  940\n\
            nr_voluntary_switches                        :                  902\n\
            nr_involuntary_switches                      :                   38\n";
        let c = SchedCounts::parse(text);
        assert_eq!((c.migrations, c.preempted), (17, 38));
        let none = SchedCounts::parse("");
        let stat = "7 (a (b) c) S 1 7 7 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 5 0 0 \
            18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0";
        assert_eq!(super::last_cpu(stat), Some(3));
        assert_eq!(super::last_cpu("7 (x) S 1"), None);
        assert_eq!((none.migrations, none.preempted), (0, 0));
        // The calling thread's own file parses (it has run, so it switched).
        let own = std::fs::read_to_string("/proc/thread-self/sched").unwrap();
        assert!(own.contains("se.nr_migrations"));
    }
}
