// SPDX-License-Identifier: GPL-2.0

//! Task management: `MFI_CMD_ABORT` and the cluster resets, carried out by
//! the shared layer in a work item.

use super::{Adapter, Endpoint, Queue, Run, State, Use};
use crate::{
    glue::{stack::Stack, trace},
    nexus::{self, stats::TmfStats},
    wire::mfi::{self, stat},
    wire::tmf::Function,
};
use kernel::prelude::*;

/// A task management function requested by a frame.
pub(super) struct Tmf {
    pub(super) function: Function,
    pub(super) lun: u64,
    pub(super) tag: u64,
}

/// The frame a task management function answers.
pub(super) struct TmfAnswer {
    pub(super) uva: usize,
    pub(super) context: u64,
    pub(super) polled: bool,
}

/// A frame's task management function being carried out.
pub(super) type TmfJob = nexus::TmfJob<Queue>;

// SAFETY: the `Queue` lives as long as its adapter, whose release drains
// the adapter's in-flight count (`clear_endpoint`) before it frees the
// queue; its methods use atomics and the vhost core calls that any thread
// may make.
unsafe impl nexus::TmfQueue for Queue {
    type Answer = TmfAnswer;

    fn tmf_done(&self) -> &Stack<TmfJob> {
        &self.tmf_done
    }

    fn flush(&self) {
        self.adapter().dev.flush();
    }

    fn trace_id(&self) -> trace::Id {
        self.adapter().trace_id()
    }

    fn tmf_stats(&self) -> &TmfStats {
        &self.adapter().tmf_stats
    }
}

/// Starts `tmf` for the frame at `uva` in a work item (a TMF waits for the
/// commands it aborts, whose answers need this worker).
/// At most [`nexus::MAX_TMF`] run at once: `EBUSY` beyond.
pub(super) fn start_tmf(
    q: &Queue,
    ep: &Endpoint,
    st: &mut State,
    uva: usize,
    h: &mfi::Header,
    tmf: Tmf,
) -> Result {
    if st.tmfs >= nexus::MAX_TMF {
        return Err(EBUSY);
    }
    let answer = TmfAnswer {
        uva,
        context: h.context,
        polled: h.polled(),
    };
    TmfJob::start(
        q,
        tmf.function,
        ep.bind.sess(),
        tmf.lun,
        tmf.tag,
        &ep.inflight,
        answer,
    )?;
    st.tmfs += 1;
    Ok(())
}

/// `MFI_CMD_ABORT`: by frame address, checked against the context.
pub(super) fn abort(
    q: &Queue,
    _a: &Adapter,
    st: &mut State,
    context: u64,
    addr: u64,
    run: &mut Run,
) -> u8 {
    let Some(slot) = st.index().find(addr) else {
        // Nothing in flight there (already answered): nothing to do.
        return stat::OK;
    };
    let cmd = &st.cmds[usize::from(slot)];
    let ctx64 = st.queue.is_some_and(|r| r.info.context64);
    let mask = if ctx64 { u64::MAX } else { u64::from(u32::MAX) };
    if cmd.context & mask != context & mask {
        return stat::ABORT_NOT_POSSIBLE;
    }
    match cmd.used {
        Use::Aen => {
            st.finish_aen(q, stat::OK, run);
            stat::OK
        }
        // A free slot: nothing in flight there to abort.
        Use::Free => stat::OK,
        // A CTRL_CACHE_FLUSH runs to its end.
        Use::Flush | Use::Sync => stat::ABORT_NOT_POSSIBLE,
        // A SCSI command in target core: ABORT TASK through the shared
        // layer, answered once it is done (`None`).
        Use::Scsi => u8::MAX,
    }
}
