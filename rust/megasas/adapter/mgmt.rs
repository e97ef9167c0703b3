// SPDX-License-Identifier: GPL-2.0

//! DCMDs: the answers, CTRL_CACHE_FLUSH, and the events (CTRL_EVENT_WAIT,
//! the event log fed by LUN hotplug).

use super::io::{lun_info, submit, Io};
use super::{
    answer, signal, write_user, Adapter, Endpoint, Mem, Queue, Run, State, Use, EVENT_LOG, MAX_LUNS,
};
use crate::{
    bindings as sys,
    glue::{trace, vhost::OnWorker},
    nexus::{self, stats::EventStats},
    wire::mfi::{self, dcmd, stat, Completion, Dir, Drive, EvtDetail, EvtLogInfo, Personality},
};
use kernel::prelude::*;

/// Copies `bytes` into the buffer the SGL describes; returns the bytes
/// written.
pub(super) fn put_data(mem: &Mem<'_>, sgl: &mfi::Sgl<'_>, bytes: &[u8]) -> Option<usize> {
    let mut done = 0usize;
    for (addr, len) in sgl.iter() {
        if done == bytes.len() {
            break;
        }
        let n = (len as usize).min(bytes.len() - done);
        let uva = mem.xlate(addr, n as u64)?;
        write_user(uva, &bytes[done..done + n]).ok()?;
        done += n;
    }
    Some(done)
}

/// The TPG's LUNs as the personality shows them.
pub(super) fn drives(ep: &Endpoint, st: &mut State) -> usize {
    if ep.bind.tpg().luns(&mut st.luns, MAX_LUNS).is_err() {
        return 0;
    }
    // Insertion sort by LUN (at most MAX_LUNS entries, nearly sorted: the
    // TPG keeps its LUNs in link order).
    for i in 1..st.luns.len() {
        let mut j = i;
        while j > 0 && st.luns[j - 1].lun > st.luns[j].lun {
            st.luns.swap(j - 1, j);
            j -= 1;
        }
    }
    let limit = match ep.personality {
        Personality::Raid => mfi::MAX_LD,
        Personality::Jbod => mfi::MAX_PD,
    };
    st.luns.retain(|l| l.lun < u64::from(limit));
    st.luns.len()
}

pub(super) fn drive_of(l: &sys::tcm_virt_lun_info) -> Drive {
    Drive {
        // `drives()` keeps only LUNs below MAX_LD / MAX_PD (64 and 256).
        id: u16::try_from(l.lun).unwrap_or(u16::MAX),
        dev_type: l.dev_type,
        blocks512: l.blocks.saturating_mul(u64::from(l.block_size)) / 512,
    }
}

/// The first `N` bytes of the DCMD answer buffer, as an array.
fn fixed<const N: usize>(buf: &mut [u8]) -> Option<&mut [u8; N]> {
    buf.get_mut(..N)?.try_into().ok()
}

/// Serves a DCMD other than CTRL_EVENT_WAIT; returns its status.
pub(super) fn serve_dcmd(
    ep: &Endpoint,
    mem: &Mem<'_>,
    st: &mut State,
    opcode: u32,
    mbox: &[u8; mfi::MBOX_SIZE],
    data_len: u32,
    sgl: &mfi::Sgl<'_>,
) -> u8 {
    let room = (data_len as usize).min(mfi::DCMD_BUF_SIZE);
    // Fixed-size answers need the whole structure (except CTRL_GET_INFO,
    // where QEMU's 2048-byte view is accepted too).
    let need = |n: usize| room >= n;
    let mut list = [Drive {
        id: 0,
        dev_type: 0,
        blocks512: 0,
    }; 64];
    let n;
    let len = match opcode {
        dcmd::CTRL_GET_INFO => {
            if !need(2048) {
                return stat::INVALID_PARAMETER;
            }
            // At most MAX_LD / MAX_PD drives.
            let nd = u16::try_from(drives(ep, st)).unwrap_or(u16::MAX);
            let (lds, pds) = match ep.personality {
                Personality::Raid => (nd, 0),
                Personality::Jbod => (0, nd),
            };
            let Some(b) = fixed::<{ mfi::CTRL_INFO_SIZE }>(&mut st.buf) else {
                return stat::INVALID_PARAMETER;
            };
            b.fill(0);
            mfi::ctrl_info(
                b,
                &mfi::CtrlParams {
                    personality: ep.personality,
                    lds,
                    pds,
                    serial: &ep.wwpn[..ep.wwpn.iter().position(|&c| c == 0).unwrap_or(0)],
                },
            );
            mfi::CTRL_INFO_SIZE.min(room)
        }
        dcmd::CTRL_GET_PROPERTIES => {
            if !need(mfi::CTRL_PROP_SIZE) {
                return stat::INVALID_PARAMETER;
            }
            st.buf[..mfi::CTRL_PROP_SIZE].fill(0);
            mfi::CTRL_PROP_SIZE
        }
        dcmd::CTRL_EVENT_GET_INFO => {
            if !need(mfi::EVT_LOG_INFO_SIZE) {
                return stat::INVALID_PARAMETER;
            }
            let info = EvtLogInfo {
                newest: st.next_seq.wrapping_sub(1),
                oldest: st.log.first().map_or(st.next_seq, |e| e.seq),
                clear: 0,
                shutdown: st.shutdown_seq,
                boot: st.boot_seq,
            };
            let Some(b) = fixed::<{ mfi::EVT_LOG_INFO_SIZE }>(&mut st.buf) else {
                return stat::INVALID_PARAMETER;
            };
            mfi::evt_log_info(b, &info);
            mfi::EVT_LOG_INFO_SIZE
        }
        dcmd::CTRL_EVENT_GET => {
            // The event at mbox w[0] (and later ones that fit, as a list).
            if !need(mfi::EVT_DETAIL_SIZE) {
                return stat::INVALID_PARAMETER;
            }
            let seq = u32::from_le_bytes([mbox[0], mbox[1], mbox[2], mbox[3]]);
            let filter = u32::from_le_bytes([mbox[4], mbox[5], mbox[6], mbox[7]]);
            let Some(e) = st
                .log
                .iter()
                .find(|e| e.seq >= seq && e.matches(filter))
                .copied()
            else {
                return stat::NOT_FOUND;
            };
            let Some(b) = fixed::<{ mfi::EVT_DETAIL_SIZE }>(&mut st.buf) else {
                return stat::INVALID_PARAMETER;
            };
            e.encode(b);
            mfi::EVT_DETAIL_SIZE
        }
        dcmd::CTRL_SHUTDOWN | dcmd::HIBERNATE_SHUTDOWN => {
            st.shutdown_seq = st.next_seq;
            0
        }
        dcmd::CTRL_SET_PROPERTIES => 0,
        dcmd::PD_GET_LIST | dcmd::PD_LIST_QUERY => {
            n = if ep.personality == Personality::Jbod {
                drives(ep, st)
            } else {
                0
            };
            let mut all = KVec::new();
            for l in st.luns.iter().take(n) {
                if all.push(drive_of(l), GFP_KERNEL).is_err() {
                    return stat::MEMORY_NOT_AVAILABLE;
                }
            }
            mfi::pd_list(&mut st.buf[..room], &all)
        }
        dcmd::PD_GET_INFO => {
            if !need(mfi::PD_INFO_SIZE) {
                return stat::INVALID_PARAMETER;
            }
            let id = u16::from_le_bytes([mbox[0], mbox[1]]);
            if ep.personality != Personality::Jbod || u32::from(id) >= mfi::MAX_PD {
                return stat::DEVICE_NOT_FOUND;
            }
            let Some(l) = lun_info(ep, u64::from(id)) else {
                return stat::DEVICE_NOT_FOUND;
            };
            let Some(b) = fixed::<{ mfi::PD_INFO_SIZE }>(&mut st.buf) else {
                return stat::INVALID_PARAMETER;
            };
            mfi::pd_info(b, &drive_of(&l));
            mfi::PD_INFO_SIZE
        }
        dcmd::LD_GET_LIST | dcmd::LD_LIST_QUERY => {
            n = if ep.personality == Personality::Raid {
                drives(ep, st)
            } else {
                0
            };
            for (d, l) in list.iter_mut().zip(st.luns.iter().take(n)) {
                *d = drive_of(l);
            }
            let ds = &list[..n.min(list.len())];
            if opcode == dcmd::LD_GET_LIST {
                mfi::ld_list(&mut st.buf[..room], ds)
            } else {
                mfi::ld_targetid_list(&mut st.buf[..room], ds)
            }
        }
        dcmd::LD_GET_PROPERTIES => 0,
        _ => return stat::INVALID_DCMD,
    };
    match put_data(mem, sgl, &st.buf[..len]) {
        Some(_) => stat::OK,
        None => stat::MEMORY_NOT_AVAILABLE,
    }
}

/// CTRL_CACHE_FLUSH: a SYNCHRONIZE CACHE to every drive of the
/// personality; the frame is answered when all have completed
/// (`SCSI_IO_FAILED` if one failed).
///
/// Runs on the owner's worker (`w`) with the virtqueue mutex held (`st`).
#[allow(clippy::too_many_arguments)]
pub(super) fn cache_flush(
    q: &Queue,
    w: &OnWorker,
    a: &Adapter,
    ep: &Endpoint,
    mem: &Mem<'_>,
    st: &mut State,
    addr: u64,
    uva: usize,
    h: &mfi::Header,
    run: &mut Run,
) {
    let Some(parent) = st.free.take() else {
        return answer(a, st, uva, h.context, h.polled(), Completion::busy(), run);
    };
    let p = &mut st.cmds[usize::from(parent)];
    p.used = Use::Flush;
    p.uva = uva;
    p.context = h.context;
    p.polled = h.polled();
    p.flush_status = stat::OK;
    // One count held while the commands are sent, dropped at the end.
    p.pending = 1;
    st.index().insert(addr, parent);
    // The LUN list is read once: a LUN unlinked meanwhile is not in it, and
    // nothing below changes the list (`submit` does not use it).
    let n = drives(ep, st);
    for i in 0..n {
        let Some(lun) = st.luns.get(i).map(|l| l.lun) else {
            break;
        };
        let io = Io {
            addr: 0,
            uva: 0,
            // No sense buffer: the DCMD frame has none.
            h: mfi::Header { sense_len: 0, ..*h },
            lun,
            cdb: [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            dir: Dir::None,
            data_len: 0,
            sense: 0,
            parent: Some(parent),
        };
        st.cmds[usize::from(parent)].pending += 1;
        let none = mfi::Sgl::parse(&[], 0, 0, 0);
        match none {
            Ok(sgl) => submit(q, w, a, ep, mem, st, &io, &sgl, run),
            Err(_) => st.child_done(a, parent, stat::SCSI_IO_FAILED, run),
        }
    }
    st.child_done(a, parent, stat::OK, run);
}

/// CTRL_EVENT_WAIT: parks the frame until an event at or after the wanted
/// sequence number passes its filter.  One may wait at a time: a second
/// one replaces the first, which completes with no event.
#[allow(clippy::too_many_arguments)]
pub(super) fn event_wait(
    q: &Queue,
    a: &Adapter,
    mem: &Mem<'_>,
    st: &mut State,
    addr: u64,
    uva: usize,
    h: &mfi::Header,
    mbox: [u8; mfi::MBOX_SIZE],
    sgl: mfi::Sgl<'_>,
    run: &mut Run,
) {
    if sgl.total < mfi::EVT_DETAIL_SIZE as u64 || sgl.len() != 1 {
        return answer(
            a,
            st,
            uva,
            h.context,
            h.polled(),
            Completion::status(stat::INVALID_PARAMETER),
            run,
        );
    }
    let Some((baddr, blen)) = sgl.iter().next() else {
        return;
    };
    if mem.xlate(baddr, mfi::EVT_DETAIL_SIZE as u64).is_none() {
        return answer(
            a,
            st,
            uva,
            h.context,
            h.polled(),
            Completion::status(stat::MEMORY_NOT_AVAILABLE),
            run,
        );
    }
    st.finish_aen(q, stat::OK, run);
    let Some(slot) = st.free.take() else {
        return answer(a, st, uva, h.context, h.polled(), Completion::busy(), run);
    };
    let cmd = &mut st.cmds[usize::from(slot)];
    cmd.used = Use::Aen;
    cmd.uva = uva;
    cmd.context = h.context;
    cmd.polled = h.polled();
    cmd.aen_seq = u32::from_le_bytes([mbox[0], mbox[1], mbox[2], mbox[3]]);
    cmd.aen_filter = u32::from_le_bytes([mbox[4], mbox[5], mbox[6], mbox[7]]);
    cmd.aen_buf = [(baddr, blen)];
    a.aen_waits.inc();
    st.index().insert(addr, slot);
    st.aen = Some(slot);
    deliver_events(q, a, mem, st, run);
}

impl State {
    /// One command of the CTRL_CACHE_FLUSH in `parent` ended with `status`;
    /// the last one answers the frame.
    pub(super) fn child_done(&mut self, a: &Adapter, parent: u16, status: u8, run: &mut Run) {
        let Some(p) = self.cmds.get_mut(usize::from(parent)) else {
            return;
        };
        if status != stat::OK && p.flush_status == stat::OK {
            p.flush_status = stat::SCSI_IO_FAILED;
        }
        p.pending = p.pending.saturating_sub(1);
        if p.pending != 0 {
            return;
        }
        let (uva, ctx, polled, s) = (p.uva, p.context, p.polled, p.flush_status);
        self.put_slot(parent);
        answer(a, self, uva, ctx, polled, Completion::status(s), run);
    }

    /// Completes the pending CTRL_EVENT_WAIT, if any, with `status` and no
    /// event.
    pub(super) fn finish_aen(&mut self, q: &Queue, status: u8, run: &mut Run) {
        let Some(slot) = self.aen.take() else {
            return;
        };
        let cmd = &self.cmds[usize::from(slot)];
        let (uva, ctx, polled) = (cmd.uva, cmd.context, cmd.polled);
        self.put_slot(slot);
        answer(
            q.adapter(),
            self,
            uva,
            ctx,
            polled,
            Completion::status(status),
            run,
        );
    }
}

/// Completes the pending CTRL_EVENT_WAIT with the first logged event it
/// waits for.
pub(super) fn deliver_events(q: &Queue, a: &Adapter, mem: &Mem<'_>, st: &mut State, run: &mut Run) {
    let Some(slot) = st.aen else {
        return;
    };
    let cmd = &st.cmds[usize::from(slot)];
    let (seq, filter) = (cmd.aen_seq, cmd.aen_filter);
    let Some(e) = st
        .log
        .iter()
        .find(|e| e.seq >= seq && e.matches(filter))
        .copied()
    else {
        return;
    };
    let mut b = [0u8; mfi::EVT_DETAIL_SIZE];
    e.encode(&mut b);
    let (baddr, _) = cmd.aen_buf[0];
    let s = match mem.xlate(baddr, b.len() as u64) {
        Some(u) if write_user(u, &b).is_ok() => stat::OK,
        _ => stat::MEMORY_NOT_AVAILABLE,
    };
    if s == stat::OK {
        a.aens.inc();
    }
    let _ = q;
    let cmd = &st.cmds[usize::from(slot)];
    let (uva, ctx, polled) = (cmd.uva, cmd.context, cmd.polled);
    st.aen = None;
    st.put_slot(slot);
    answer(a, st, uva, ctx, polled, Completion::status(s), run);
}

/// The AEN work: answers the pending CTRL_EVENT_WAIT with no event (the
/// adapter is reset or unbound), on the owner's worker.
pub(super) fn aen_work(q: &Queue, _w: &OnWorker) {
    let mut g = q.lock();
    let mut run = Run::default();
    if let Some(st) = g.state().as_mut() {
        st.finish_aen(q, stat::OK, &mut run);
    }
    signal(q.adapter(), &g, &run);
}

/// The event notification of the endpoint's event queue.
impl nexus::Notify for Queue {
    fn notify(&self) {
        self.queue(&self.event_work);
    }

    fn event_stats(&self) -> &EventStats {
        &self.adapter().event_stats
    }
}

/// The event work: turns LUN events into MFI events and completes the
/// pending CTRL_EVENT_WAIT.
pub(super) fn event_work(q: &Queue, _w: &OnWorker) {
    let a = q.adapter();
    let mut g = q.lock();
    let (ep, st, mem) = g.parts_mem();
    let mem = Mem(mem);
    let (Some(ep), Some(st)) = (ep, st.as_mut()) else {
        return;
    };
    while let Some(e) = ep.events.front() {
        ep.events.pop();
        let raid = ep.personality == Personality::Raid;
        let limit = if raid { mfi::MAX_LD } else { mfi::MAX_PD };
        let Some(id) = u16::try_from(e.lun)
            .ok()
            .filter(|&id| u32::from(id) < limit)
        else {
            continue;
        };
        // Delivered: in the event log, which the next CTRL_EVENT_WAIT reads.
        a.event_stats.delivered.inc();
        let kind = match e.kind {
            nexus::EventKind::LunAdded => 1,
            nexus::EventKind::LunRemoved => 2,
        };
        trace::event(a.trace_id(), kind, e.lun, false);
        let code = match (e.kind, raid) {
            (nexus::EventKind::LunAdded, true) => mfi::evt::LD_CREATED,
            (nexus::EventKind::LunRemoved, true) => mfi::evt::LD_DELETED,
            (nexus::EventKind::LunAdded, false) => mfi::evt::PD_INSERTED,
            (nexus::EventKind::LunRemoved, false) => mfi::evt::PD_REMOVED,
        };
        if st.log.len() == EVENT_LOG {
            let _ = st.log.remove(0);
        }
        let d = EvtDetail {
            seq: st.next_seq,
            time: 0,
            code,
            id,
        };
        st.next_seq = st.next_seq.wrapping_add(1);
        st.log.push_within_capacity(d).ok();
    }
    ep.events.take_overflow();
    let mut run = Run::default();
    deliver_events(q, a, &mem, st, &mut run);
    // Under the virtqueue mutex: VHOST_SET_VRING_CALL, which takes it,
    // cannot put the call eventfd while it is signalled.
    signal(a, &g, &run);
    drop(g);
}
