// SPDX-License-Identifier: GPL-2.0
//! The tcm_virt megasas adapter: one open file of `/dev/tcm-megasas`, its
//! ioctls (through the `mfi` and `vsdrv` libraries' definitions) and its
//! mapped register page.

use crate::regs::{RegisterPage, IQ_ENTRIES};
use core::mem::offset_of;
use mfi::uapi::tcm_megasas_regs as Regs;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use vsdrv::sys;

const R_FW_STATUS: usize = offset_of!(Regs, fw_status);
const R_ABI_VERSION: usize = offset_of!(Regs, abi_version);
const R_IQ_ENTRIES: usize = offset_of!(Regs, iq_entries);
const R_IQ_PRODUCER: usize = offset_of!(Regs, iq_producer);
const R_IQ_CONSUMER: usize = offset_of!(Regs, iq_consumer);
const R_REPLIES: usize = offset_of!(Regs, replies);
const R_ERRORS: usize = offset_of!(Regs, errors);
const R_IQ_NO_KICK: usize = offset_of!(Regs, iq_no_kick);
const R_IQ: usize = offset_of!(Regs, iq);
const _: () = assert!(R_IQ.is_multiple_of(8) && R_IQ + 8 * IQ_ENTRIES as usize <= mfi::REGS_SIZE);
const _: () = assert!(IQ_ENTRIES == mfi::IQ_ENTRIES);
const _: () = assert!(R_ERRORS + 4 <= R_IQ && R_IQ_NO_KICK + 4 <= R_IQ);

/// The register page, mapped shared from the adapter.
pub struct RegPage {
    base: *mut u8,
}

impl RegPage {
    fn u32_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= mfi::REGS_SIZE);
        // `base` maps REGS_SIZE bytes (page aligned) while `self` lives
        // (unmapped only in Adapter's Drop); atomics, since the kernel
        // changes the page concurrently.
        // SAFETY: `off` is a constant dword-aligned offset inside that
        // mapping, and AtomicU32 has u32's size and alignment.
        unsafe { &*self.base.add(off).cast::<AtomicU32>() }
    }

    pub fn abi_version(&self) -> u32 {
        self.u32_at(R_ABI_VERSION).load(Ordering::Acquire)
    }

    pub fn iq_entries(&self) -> u32 {
        self.u32_at(R_IQ_ENTRIES).load(Ordering::Acquire)
    }

    pub fn errors(&self) -> u32 {
        self.u32_at(R_ERRORS).load(Ordering::Acquire)
    }
}

impl RegisterPage for RegPage {
    fn fw_status(&self) -> u32 {
        self.u32_at(R_FW_STATUS).load(Ordering::Acquire)
    }

    fn replies(&self) -> u32 {
        self.u32_at(R_REPLIES).load(Ordering::Acquire)
    }

    fn iq_producer(&self) -> u32 {
        self.u32_at(R_IQ_PRODUCER).load(Ordering::Relaxed)
    }

    fn iq_consumer(&self) -> u32 {
        self.u32_at(R_IQ_CONSUMER).load(Ordering::Acquire)
    }

    fn publish(&mut self, slot: usize, entry: u64, producer: u32) {
        if slot >= IQ_ENTRIES as usize {
            return;
        }
        // SAFETY: `slot < IQ_ENTRIES`, so the entry lies inside the mapped
        // page (const-asserted above) and is 8-byte aligned; AtomicU64 has
        // u64's layout.
        let e = unsafe { &*self.base.add(R_IQ + 8 * slot).cast::<AtomicU64>() };
        e.store(entry, Ordering::Relaxed);
        // Release: the entry is visible before the producer that names it.
        self.u32_at(R_IQ_PRODUCER)
            .store(producer, Ordering::Release);
    }

    fn no_kick(&self) -> bool {
        // Full: the producer stored in `publish` before the flag is read;
        // pairs with the worker's barrier between clearing the flag and
        // reading the producer, so one of the two sees the other.
        std::sync::atomic::fence(Ordering::SeqCst);
        self.u32_at(R_IQ_NO_KICK).load(Ordering::Relaxed) != 0
    }
}

/// An adapter reset, run on the server's reset thread.
pub type ResetTask = Box<dyn FnOnce() -> io::Result<()> + Send>;

/// What the session needs of an adapter (a fake one in tests).
pub trait Backend {
    type Page: RegisterPage;
    fn page(&self) -> &Self::Page;
    fn page_mut(&mut self) -> &mut Self::Page;
    fn bound(&self) -> bool;
    /// VHOST_SET_MEM_TABLE with (guest address, size, user address) entries.
    fn set_mem_table(&self, regions: &[(u64, u64, u64)]) -> io::Result<()>;
    /// VHOST_SET_VRING_CALL on index 0: `fd`, or none (-1).
    fn set_call(&self, fd: Option<&OwnedFd>) -> io::Result<()>;
    fn set_endpoint(&mut self) -> io::Result<()>;
    fn clear_endpoint(&mut self) -> io::Result<()>;
    /// TCM_MEGASAS_DOORBELL: the kernel reads the inbound queue.
    fn doorbell(&self) -> io::Result<()>;
    /// TCM_MEGASAS_RESET, to be run on a thread of its own (it waits for
    /// the commands in flight, then forgets the reply queue and goes back
    /// to READY): the call, holding what it needs of the adapter.
    fn reset_task(&self) -> io::Result<ResetTask>;
    /// The page's count of refused entries and undelivered answers.
    fn errors(&self) -> u32;
}

/// One adapter.
pub struct Adapter {
    file: File,
    page: RegPage,
    opts: mfi::Options,
    bound: bool,
}

impl Adapter {
    /// Opens `opts.dev`, becomes its owner and maps the register page.
    pub fn open(opts: &mfi::Options) -> io::Result<Adapter> {
        let file = OpenOptions::new().read(true).write(true).open(&opts.dev)?;
        mfi::raw_ioctl(&file, sys::SET_OWNER, &mut [])?;
        let base = sys::map_shared(file.as_raw_fd(), mfi::REGS_SIZE)?;
        let a = Adapter {
            file,
            page: RegPage { base },
            opts: opts.clone(),
            bound: false,
        };
        let v = a.page.abi_version();
        if v != 1 || a.page.iq_entries() != IQ_ENTRIES {
            return Err(io::Error::other(format!(
                "register page: ABI version {v}, {} queue entries (expected 1, {IQ_ENTRIES})",
                a.page.iq_entries()
            )));
        }
        Ok(a)
    }
}

impl Backend for Adapter {
    type Page = RegPage;

    fn page(&self) -> &RegPage {
        &self.page
    }

    fn page_mut(&mut self) -> &mut RegPage {
        &mut self.page
    }

    fn bound(&self) -> bool {
        self.bound
    }

    fn set_mem_table(&self, regions: &[(u64, u64, u64)]) -> io::Result<()> {
        let mut t = mfi::mem_table(regions);
        mfi::raw_ioctl(&self.file, sys::SET_MEM_TABLE, &mut t).map(|_| ())
    }

    fn set_call(&self, fd: Option<&OwnedFd>) -> io::Result<()> {
        let f = fd.map_or(-1, |f| f.as_raw_fd());
        let mut arg = [0u8; 8];
        arg[4..8].copy_from_slice(&f.to_ne_bytes());
        mfi::raw_ioctl(&self.file, sys::SET_VRING_CALL, &mut arg).map(|_| ())
    }

    fn set_endpoint(&mut self) -> io::Result<()> {
        let mut ep = mfi::endpoint_arg(&self.opts);
        mfi::raw_ioctl(&self.file, mfi::SET_ENDPOINT, &mut ep)?;
        self.bound = true;
        Ok(())
    }

    fn clear_endpoint(&mut self) -> io::Result<()> {
        if !self.bound {
            return Ok(());
        }
        let mut ep = mfi::endpoint_arg(&self.opts);
        mfi::raw_ioctl(&self.file, mfi::CLEAR_ENDPOINT, &mut ep)?;
        self.bound = false;
        Ok(())
    }

    fn doorbell(&self) -> io::Result<()> {
        mfi::raw_ioctl(&self.file, mfi::DOORBELL, &mut []).map(|_| ())
    }

    fn reset_task(&self) -> io::Result<ResetTask> {
        // A descriptor of the same open file: the ioctl runs on the reset
        // thread of this process, which the kernel's owner check accepts
        // (same mm).
        let file = self.file.try_clone()?;
        Ok(Box::new(move || {
            mfi::raw_ioctl(&file, mfi::RESET, &mut []).map(|_| ())
        }))
    }

    fn errors(&self) -> u32 {
        self.page.errors()
    }
}

impl Drop for Adapter {
    fn drop(&mut self) {
        sys::unmap(self.page.base, mfi::REGS_SIZE);
    }
}
