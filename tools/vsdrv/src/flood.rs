// SPDX-License-Identifier: GPL-2.0
//! A guest that floods a virtqueue: a second thread keeps every entry of
//! the queue's available ring holding one chain and moves the available
//! index forward as fast as the device returns that chain, kicking the
//! queue each time, for as long as the flood runs.  The device never finds
//! the ring empty unless it outruns this thread.
//!
//! The device sees the one chain again and again: vhost core does not track
//! which heads are in flight, so a driver may publish a head more than
//! once.  The queue must have nothing else in flight while it is flooded.

use crate::{Buf, Session};
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The ring addresses and kick eventfd the flooding thread works with.
struct Ring {
    avail: u64,
    used: u64,
    num: u16,
    kick: File,
}

impl Ring {
    fn used_idx(&self) -> u16 {
        fence(Ordering::SeqCst);
        // SAFETY: the used ring lies in the session's memory, which outlives
        // the thread (`Flood::stop` joins it before the session can go);
        // the device writes it, hence volatile.
        u16::from_le(unsafe { std::ptr::read_volatile((self.used + 2) as *const u16) })
    }

    fn set_avail_idx(&self, idx: u16) {
        fence(Ordering::SeqCst);
        // SAFETY: the avail index (u16-aligned: the ring is page-aligned) lies in the session's
        // memory, which outlives the thread (`Flood::stop` joins it); it is the driver's to write.
        unsafe { std::ptr::write_volatile((self.avail + 2) as *mut u16, idx.to_le()) };
        fence(Ordering::SeqCst);
    }
}

/// A flood in progress; end it with [`Flood::stop`].
pub struct Flood {
    queue: usize,
    head: u16,
    stop: Arc<AtomicBool>,
    /// Returns the last available index it published, the last used index
    /// it saw and the chains returned until then.
    thread: Option<JoinHandle<(u16, u16, u64)>>,
}

/// What a flood did.
#[derive(Clone, Copy, Debug)]
pub struct FloodEnd {
    /// Chains the device took and returned.
    pub taken: u64,
    /// Whether the device returned every published entry after the flood
    /// stopped (the queue is usable again).
    pub drained: bool,
}

impl Session {
    /// Starts flooding queue `queue` with the chain `bufs` (see the module
    /// documentation).  `None` if the queue has chains in flight or no
    /// descriptors, or the thread could not start.
    pub fn flood(&mut self, queue: usize, bufs: &[Buf]) -> Option<Flood> {
        let q = self.queues.get_mut(queue)?;
        if q.avail_idx != q.last_used || q.free.len() != usize::from(q.num) {
            return None;
        }
        let head = q.build(&self.mem, bufs)?;
        for slot in 0..u64::from(q.num) {
            self.mem.write_u16(q.avail + 4 + 2 * slot, head);
        }
        let ring = Ring {
            avail: q.avail,
            used: q.used,
            num: q.num,
            kick: q.kick.try_clone().ok()?,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let mut avail = q.avail_idx;
        let mut seen = q.last_used;
        let thread = std::thread::Builder::new()
            .name("vsdrv-flood".into())
            .spawn(move || {
                let mut taken = 0u64;
                while !s.load(Ordering::Relaxed) {
                    let used = ring.used_idx();
                    taken += u64::from(used.wrapping_sub(seen));
                    seen = used;
                    let want = used.wrapping_add(ring.num);
                    if want == avail {
                        std::hint::spin_loop();
                        continue;
                    }
                    avail = want;
                    ring.set_avail_idx(avail);
                    let _ = (&ring.kick).write(&1u64.to_ne_bytes());
                }
                (avail, seen, taken)
            })
            .ok()?;
        Some(Flood {
            queue,
            head,
            stop,
            thread: Some(thread),
        })
    }
}

impl Flood {
    /// Stops the flood and waits up to `timeout` for the device to return
    /// every entry published; then the queue is the driver's again.
    pub fn stop(mut self, s: &mut Session, timeout: Duration) -> FloodEnd {
        self.stop.store(true, Ordering::Relaxed);
        let q = &mut s.queues[self.queue];
        let (avail, seen, mut taken) =
            self.thread
                .take()
                .and_then(|t| t.join().ok())
                .unwrap_or((q.avail_idx, q.last_used, 0));
        let end = Instant::now() + timeout;
        let mut used;
        loop {
            fence(Ordering::SeqCst);
            used = s.mem.read_u16(q.used + 2);
            if used == avail || Instant::now() >= end {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        taken += u64::from(used.wrapping_sub(seen));
        let drained = used == avail;
        q.avail_idx = avail;
        q.last_used = used;
        if drained {
            let ids = std::mem::take(&mut q.chains[usize::from(self.head)]);
            q.free.extend(ids);
        }
        FloodEnd { taken, drained }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        // Never leave the thread writing into memory that may go.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
