// SPDX-License-Identifier: GPL-2.0

//! The control and event virtqueues.
//!
//! Control requests are answered at once: task management is rejected
//! (`VIRTIO_SCSI_S_FUNCTION_REJECTED`) and asynchronous notification reports
//! no event class, each in the layout of its type.  A request whose type is
//! unknown or whose response does not fit is returned unanswered (used
//! length 0), so that the guest gets its buffers back.  The event virtqueue
//! raises no event in this version.

use super::{
    dev::Vq,
    io::{self, Chain},
};
use crate::{
    bindings as sys,
    wire::virtio_scsi::{self as vs, CtrlError, CtrlReq, Response},
};
use core::mem::MaybeUninit;
use kernel::ffi::c_ulong;

/// `handle_kick` of the control virtqueue.
///
/// # Safety
///
/// Called by the vhost worker with the `poll.work` of our control queue.
pub(super) unsafe extern "C" fn handle_ctl_kick(work: *mut sys::vhost_work) {
    // SAFETY: `work` is the poll work embedded in a vhost_virtqueue.
    let vq = unsafe { kernel::container_of!(work, sys::vhost_virtqueue, poll.work) };
    // SAFETY: all our virtqueues are `Vq`s of a live device.
    let q = unsafe { Vq::from_raw(vq) };
    let g = q.lock();
    let Some(ep) = g.backend() else {
        return;
    };
    // SAFETY: the mutex is held, on the owner's worker.
    unsafe {
        io::for_each_chain(q, |c| {
            let reply = control(q, c, |t| ep.target(t).is_some());
            let n = match reply {
                Some(bytes) => io::write_iov(
                    (*q.raw()).iov.as_ptr().add(c.out),
                    c.inn,
                    &bytes[1..1 + reply_len(&bytes)],
                ),
                None => 0,
            };
            io::give_back(q, c, n as u32);
        })
    };
}

/// The reply bytes of a control request (first byte: its length), or
/// `None` when it cannot be answered.
///
/// # Safety
///
/// The virtqueue mutex is held, on the owner's worker, for chain `c`.
unsafe fn control(q: &Vq, c: &Chain, bound: impl Fn(u8) -> bool) -> Option<[u8; 8]> {
    let mut buf = [0u8; vs::TMF_REQ_SIZE];
    let want = c.out_size.min(buf.len());
    let mut it = MaybeUninit::<sys::iov_iter>::zeroed();
    let it = it.as_mut_ptr();
    // SAFETY: the chain's readable iovecs; copy on the owner's mm.
    let got = unsafe {
        sys::iov_iter_init(
            it,
            sys::ITER_SOURCE,
            (*q.raw()).iov.as_ptr(),
            c.out as c_ulong,
            c.out_size,
        );
        sys::_copy_from_iter(buf.as_mut_ptr().cast(), want, it)
    };
    let reply = |tmf: bool, r: Response| {
        // [len, payload...]: TMF: response; AN: event_actual (4), response.
        if tmf {
            [1, r as u8, 0, 0, 0, 0, 0, 0]
        } else {
            [5, 0, 0, 0, 0, r as u8, 0, 0]
        }
    };
    let is_tmf = buf[..4] == [0, 0, 0, 0];
    match CtrlReq::parse(&buf[..got], c.out_size, c.in_size) {
        Ok(CtrlReq::Tmf { lun, .. }) => {
            let ok = vs::decode_lun(&lun).is_ok_and(|l| bound(l.target));
            Some(reply(
                true,
                if ok {
                    Response::FunctionRejected
                } else {
                    Response::BadTarget
                },
            ))
        }
        Ok(CtrlReq::An { .. }) => Some(reply(false, Response::Ok)),
        Err(CtrlError::ShortRequest) => Some(reply(is_tmf, Response::BadTarget)),
        Err(e) => {
            let what = match e {
                CtrlError::UnknownType(_) => "control request of unknown type",
                CtrlError::NoType => "control request without a type",
                _ => "control request without room for its response",
            };
            io::pr_err_ratelimited(what);
            None
        }
    }
}

fn reply_len(r: &[u8; 8]) -> usize {
    usize::from(r[0])
}

/// `handle_kick` of the event virtqueue: no event source yet.
///
/// # Safety
///
/// Called by the vhost worker with the `poll.work` of our event queue.
pub(super) unsafe extern "C" fn handle_evt_kick(_work: *mut sys::vhost_work) {}
