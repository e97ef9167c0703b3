// SPDX-License-Identifier: GPL-2.0
//! The libc calls std does not offer: receiving file descriptors
//! (SCM_RIGHTS), mapping a file at an offset, poll.  64-bit Linux only (the
//! `msghdr` and `cmsghdr` layouts below are LP64's).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::{c_int, c_long, c_uint, c_ulong, c_void};

const _: () = assert!(std::mem::size_of::<usize>() == 8, "LP64 layouts");

#[repr(C)]
struct IoVec {
    base: *mut c_void,
    len: usize,
}

#[repr(C)]
struct MsgHdr {
    name: *mut c_void,
    namelen: c_uint,
    iov: *mut IoVec,
    iovlen: usize,
    control: *mut c_void,
    controllen: usize,
    flags: c_int,
}

#[repr(C)]
struct CmsgHdr {
    len: usize,
    level: c_int,
    kind: c_int,
}

const _: () = assert!(std::mem::size_of::<MsgHdr>() == 56);
const _: () = assert!(std::mem::size_of::<CmsgHdr>() == 16);

#[repr(C)]
pub struct PollFd {
    pub fd: c_int,
    pub events: i16,
    pub revents: i16,
}

extern "C" {
    fn recvmsg(fd: c_int, msg: *mut MsgHdr, flags: c_int) -> isize;
    fn mmap(
        addr: *mut c_void,
        len: usize,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        off: c_long,
    ) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn poll(fds: *mut PollFd, n: c_ulong, timeout: c_int) -> c_int;
    fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize;
    fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
}

const SOL_SOCKET: c_int = 1;
const SCM_RIGHTS: c_int = 1;
const MSG_CTRUNC: c_int = 0x8;
const MSG_CMSG_CLOEXEC: c_int = 0x4000_0000;
pub const POLLIN: i16 = 0x1;

/// Room for `MAX` descriptors: CMSG_SPACE(MAX * 4).
const CMSG_BUF: usize = 16 + 4 * crate::proto::MAX_FDS.next_multiple_of(2);

/// What [`recv_with_fds`] received.
pub struct Received {
    pub bytes: usize,
    pub fds: Vec<OwnedFd>,
    /// More descriptors came than there was room for (the kernel closed
    /// the rest).
    pub truncated: bool,
}

/// Receives up to `buf.len()` bytes from the stream socket `sock` with the
/// descriptors that come with them (close-on-exec).
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = IoVec {
        base: buf.as_mut_ptr().cast(),
        len: buf.len(),
    };
    // u64 elements: cmsghdr alignment.
    let mut control = [0u64; CMSG_BUF / 8];
    let mut msg = MsgHdr {
        name: std::ptr::null_mut(),
        namelen: 0,
        iov: &mut iov,
        iovlen: 1,
        control: control.as_mut_ptr().cast(),
        controllen: CMSG_BUF,
        flags: 0,
    };
    let n = loop {
        // SAFETY: `msg` points to one iovec over `buf` and to `control`,
        // CMSG_BUF bytes, all live for the call.
        let n = unsafe { recvmsg(sock, &mut msg, MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    let controllen = msg.controllen.min(CMSG_BUF);
    let bytes: &[u8] = {
        // SAFETY: `control` is CMSG_BUF initialised bytes (u64s viewed as
        // bytes), `controllen` is at most that.
        unsafe { std::slice::from_raw_parts(control.as_ptr().cast::<u8>(), controllen) }
    };
    let mut at = 0usize;
    while at + 16 <= bytes.len() {
        let mut h = [0u8; 16];
        h.copy_from_slice(&bytes[at..at + 16]);
        let len = usize::from_ne_bytes(h[0..8].try_into().unwrap_or([0; 8]));
        let level = c_int::from_ne_bytes(h[8..12].try_into().unwrap_or([0; 4]));
        let kind = c_int::from_ne_bytes(h[12..16].try_into().unwrap_or([0; 4]));
        if len < 16 || at + len > bytes.len() {
            break;
        }
        if level == SOL_SOCKET && kind == SCM_RIGHTS {
            for c in bytes[at + 16..at + len].chunks_exact(4) {
                let fd = c_int::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                // SAFETY: SCM_RIGHTS just installed `fd` in this process;
                // nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        at += len.next_multiple_of(8);
    }
    Ok(Received {
        bytes: n,
        fds,
        truncated: msg.flags & MSG_CTRUNC != 0,
    })
}

/// A shared mapping of a file range, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of `fd` at `offset`, MAP_SHARED, readable and, if
    /// `writable`, writable.
    pub fn new(fd: &OwnedFd, offset: u64, len: usize, writable: bool) -> io::Result<Mapping> {
        let off = c_long::try_from(offset).map_err(|_| io::Error::from_raw_os_error(22))?;
        if len == 0 {
            return Err(io::Error::from_raw_os_error(22));
        }
        let prot = if writable { 0x1 | 0x2 } else { 0x1 };
        // SAFETY: a new mapping chosen by the kernel (no address hint, no
        // MAP_FIXED): it replaces nothing of this process.
        let p = unsafe { mmap(std::ptr::null_mut(), len, prot, 0x01, fd.as_raw_fd(), off) };
        if p as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    pub fn addr(&self) -> u64 {
        self.ptr as u64
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`, `len` is the mapping made in `new`, not unmapped
        // before (only here); nothing in this process keeps a reference
        // into it (the kernel's memory table no longer names it).
        unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// Waits until one of `fds` is readable (or hung up); `revents` tells which.
pub fn poll_in(fds: &mut [PollFd]) -> io::Result<()> {
    loop {
        // SAFETY: `fds` is a live slice of `fds.len()` pollfds.
        let n = unsafe { poll(fds.as_mut_ptr(), fds.len() as c_ulong, -1) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Adds 1 to the eventfd `fd`.
pub fn eventfd_signal(fd: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: `one` is 8 readable bytes and `fd` an open descriptor.
    unsafe { write(fd.as_raw_fd(), one.as_ptr().cast(), 8) };
}

/// Resets the non-blocking eventfd `fd` to 0.
pub fn eventfd_drain(fd: &OwnedFd) {
    let mut b = [0u8; 8];
    // SAFETY: `b` is 8 writable bytes and `fd` an open descriptor.
    unsafe { read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
}

#[cfg(test)]
pub mod testing {
    //! A client's side of the calls, for the session tests.
    use super::*;

    extern "C" {
        fn sendmsg(fd: c_int, msg: *const MsgHdr, flags: c_int) -> isize;
        fn memfd_create(name: *const std::ffi::c_char, flags: c_uint) -> c_int;
    }

    /// Sends `buf` with `fds` (SCM_RIGHTS) on the stream socket `sock`.
    pub fn send_with_fds(sock: RawFd, buf: &[u8], fds: &[RawFd]) -> io::Result<()> {
        let mut iov = IoVec {
            base: buf.as_ptr() as *mut c_void,
            len: buf.len(),
        };
        let mut control = [0u64; 16];
        let clen = 16 + 4 * fds.len();
        assert!(clen <= 128);
        {
            // SAFETY: `control` is 128 writable bytes.
            let b: &mut [u8] =
                unsafe { std::slice::from_raw_parts_mut(control.as_mut_ptr().cast::<u8>(), 128) };
            b[0..8].copy_from_slice(&clen.to_ne_bytes());
            b[8..12].copy_from_slice(&SOL_SOCKET.to_ne_bytes());
            b[12..16].copy_from_slice(&SCM_RIGHTS.to_ne_bytes());
            for (i, fd) in fds.iter().enumerate() {
                b[16 + 4 * i..20 + 4 * i].copy_from_slice(&fd.to_ne_bytes());
            }
        }
        let msg = MsgHdr {
            name: std::ptr::null_mut(),
            namelen: 0,
            iov: &mut iov,
            iovlen: 1,
            control: control.as_mut_ptr().cast(),
            controllen: clen.next_multiple_of(8),
            flags: 0,
        };
        // SAFETY: `msg` points to one iovec over `buf` and to `control`,
        // live for the call; the kernel only reads them.
        let n = unsafe { sendmsg(sock, &msg, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        assert_eq!(n as usize, buf.len());
        Ok(())
    }

    /// An anonymous shared file of `len` bytes.
    pub fn memfd(len: u64) -> OwnedFd {
        // SAFETY: a NUL-terminated name; a fresh descriptor on success.
        let fd = unsafe { memfd_create(c"vfu-test".as_ptr(), 1) };
        assert!(fd >= 0);
        // SAFETY: memfd_create just returned `fd`; nothing else owns it.
        let f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        f.set_len(len).unwrap();
        f.into()
    }
}
