// SPDX-License-Identifier: GPL-2.0
//! Coverage feedback through KCOV's remote mode (Documentation/dev-tools/
//! kcov.rst): the thread that enables it gets a common handle, which the
//! vhost core copies into every worker it creates for a device this thread
//! owns (`vhost_worker_create`: `kcov_common_handle()`); the workers run
//! each batch of work between `kcov_remote_start_common` and
//! `kcov_remote_stop`, and their program counters land in our buffer.
//! Both front ends run their requests in such workers.  Only code built
//! with KCOV instrumentation reports: tcm_virt is (its Kbuild sets
//! `KCOV_INSTRUMENT`), the rest of the kernel is not
//! (`CONFIG_KCOV_INSTRUMENT_ALL=n`), so the edges counted are the module's.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};

use std::os::fd::AsRawFd;
use vsdrv::sys;

const fn ioc(dir: u32, nr: u32, size: u32) -> u32 {
    (dir << 30) | (size << 16) | ((b'c' as u32) << 8) | nr
}
const KCOV_INIT_TRACE: u32 = ioc(2, 1, 8);
const KCOV_REMOTE_ENABLE: u32 = ioc(1, 102, 24);
const KCOV_TRACE_PC: u32 = 0;
/// Words in the buffer (the first holds the count).
const WORDS: usize = 1 << 18;

pub struct Kcov {
    _file: File,
    area: *mut u64,
    /// Program counters seen so far.
    pub seen: HashSet<u64>,
}

impl Kcov {
    /// Enables remote coverage for this thread; `None` (and why) when the
    /// kernel has no KCOV.  Must run before the devices are opened (their
    /// workers take the handle at VHOST_SET_OWNER).
    pub fn open() -> Result<Kcov, String> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/sys/kernel/debug/kcov")
            .map_err(|e| format!("/sys/kernel/debug/kcov: {e}"))?;
        let fd = file.as_raw_fd();
        // SAFETY: KCOV_INIT_TRACE takes the buffer size in words by value.
        unsafe { sys::ioctl_ptr(fd, KCOV_INIT_TRACE, WORDS as *mut u8) }
            .map_err(|e| format!("KCOV_INIT_TRACE: {e}"))?;
        let area = sys::map_shared(fd, WORDS * 8).map_err(|e| format!("kcov mmap: {e}"))?;
        // struct kcov_remote_arg { u32 trace_mode, area_size, num_handles;
        // u64 common_handle; u64 handles[]; }: no per-subsystem handles;
        // a common handle (subsystem 0) of our own.
        let mut arg = [0u8; 24];
        arg[0..4].copy_from_slice(&KCOV_TRACE_PC.to_ne_bytes());
        arg[4..8].copy_from_slice(&(WORDS as u32).to_ne_bytes());
        let handle = 0x7476_0000u64 | u64::from(std::process::id() & 0xffff);
        arg[16..24].copy_from_slice(&handle.to_ne_bytes());
        // SAFETY: `arg` is a kcov_remote_arg of the size the request encodes.
        unsafe { sys::ioctl_ptr(fd, KCOV_REMOTE_ENABLE, arg.as_mut_ptr()) }
            .map_err(|e| format!("KCOV_REMOTE_ENABLE: {e}"))?;
        Ok(Kcov {
            _file: file,
            area: area.cast(),
            seen: HashSet::new(),
        })
    }

    /// Takes the program counters collected since the last call; returns
    /// how many of them were never seen before.
    pub fn collect(&mut self) -> usize {
        // SAFETY: `area` maps WORDS words; word 0 is the count the kernel
        // updates, read and reset with atomic accesses.
        let count = unsafe { &*(self.area as *const std::sync::atomic::AtomicU64) };
        let n = (count.load(std::sync::atomic::Ordering::Acquire) as usize).min(WORDS - 1);
        let mut new = 0;
        for i in 1..=n {
            // SAFETY: i < WORDS, inside the mapping.
            let pc = unsafe { std::ptr::read_volatile(self.area.add(i)) };
            if self.seen.insert(pc) {
                new += 1;
            }
        }
        count.store(0, std::sync::atomic::Ordering::Release);
        new
    }
}

/// Either coverage, or the reason there is none.
pub fn try_open() -> (Option<Kcov>, String) {
    match Kcov::open() {
        Ok(k) => (Some(k), "kcov remote coverage".into()),
        Err(e) => (None, format!("no coverage ({e})")),
    }
}
