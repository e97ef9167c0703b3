// SPDX-License-Identifier: GPL-2.0

//! Statistics of the front ends' devices: the counters both front ends
//! keep, and their files in debugfs (`/sys/kernel/debug/tcm_virt/vhost-N`,
//! `megasas-N`; `Documentation/admin-guide.rst` describes the format).
//!
//! The I/O counters are per queue and written only by the queue's worker
//! with the queue's mutex held: a plain load and store, no locked
//! instruction and no cache line shared with another queue.  The counters
//! of the rare paths (TMFs, which finish on a workqueue thread; events,
//! queued by configfs) use atomic additions.  A reader takes no lock: each
//! figure is exact, a line is not a snapshot of one instant.

use crate::{
    glue::trace::{Front, Refusal},
    wire::{
        mfi,
        tmf::{Function, Outcome},
        virtio_scsi,
    },
};
use core::{
    fmt,
    sync::atomic::{AtomicU32, AtomicU64, Ordering},
};
use kernel::{
    debugfs::{self, Dir},
    prelude::*,
    str::CString,
};

/// A statistics counter.
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    /// Adds `n`; the caller is the counter's only writer at the time (it
    /// holds the lock that serialises the counter's writers).
    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one, as [`Counter::add`].
    #[inline(always)]
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    /// Adds one, with writers on any thread.
    pub(crate) fn inc_shared(&self) {
        self.add_shared(1);
    }

    /// Adds `n`, with writers on any thread.
    pub(crate) fn add_shared(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The busy polls of a queue's worker ("Polling before waiting for a
/// kick" in `Documentation/admin-guide.rst`), written by the worker with
/// the queue's mutex held.
pub(crate) struct PollStats {
    /// Polls that found work (each started another pass: a kick saved).
    pub(crate) found: Counter,
    /// Polls that ended without any (the time limit, or the worker had
    /// other work or had to reschedule).
    pub(crate) empty: Counter,
}

impl PollStats {
    pub(crate) const fn new() -> PollStats {
        PollStats {
            found: Counter::new(),
            empty: Counter::new(),
        }
    }

    /// The `polls:` line of a device's statistics file.
    pub(crate) fn show_counts(f: &mut fmt::Formatter<'_>, found: u64, empty: u64) -> fmt::Result {
        writeln!(f, "polls: found={found} empty={empty}")
    }

    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        PollStats::show_counts(f, self.found.get(), self.empty.get())
    }
}

/// The I/O counters of one queue.
pub(crate) struct IoStats {
    /// Commands handed to target core.
    pub(crate) submitted: Counter,
    /// Of those, the ones submitted from the offload workqueue.
    pub(crate) offloaded: Counter,
    /// Commands answered after target core released them.
    completed: Counter,
    /// Data bytes moved from the device to the initiator (reads) and to the
    /// device (writes), as answered (less any residual).
    read_bytes: Counter,
    write_bytes: Counter,
    /// Requests answered without reaching target core, by [`Refusal`].
    refused: [Counter; Refusal::ALL.len()],
}

impl IoStats {
    pub(crate) const fn new() -> IoStats {
        IoStats {
            submitted: Counter::new(),
            offloaded: Counter::new(),
            completed: Counter::new(),
            read_bytes: Counter::new(),
            write_bytes: Counter::new(),
            refused: [const { Counter::new() }; Refusal::ALL.len()],
        }
    }

    /// Counts a command target core released (the queue's worker, as
    /// [`Counter::add`]): `moved` data bytes went `way`, counted only when
    /// the command ended well (`good`: GOOD status, answered as such).
    #[inline(always)]
    pub(crate) fn complete(&self, way: Way, moved: u32, good: bool) {
        self.completed.inc();
        if good {
            match way {
                Way::Read => self.read_bytes.add(u64::from(moved)),
                Way::Write => self.write_bytes.add(u64::from(moved)),
                Way::None => {}
            }
        }
    }

    /// Counts a refused request (the queue's worker, as [`Counter::add`]).
    #[inline(always)]
    pub(crate) fn refuse(&self, r: Refusal) {
        self.refused[r as usize].inc();
    }

    fn snapshot(&self) -> IoSnapshot {
        let mut s = IoSnapshot {
            submitted: self.submitted.get(),
            offloaded: self.offloaded.get(),
            completed: self.completed.get(),
            read_bytes: self.read_bytes.get(),
            write_bytes: self.write_bytes.get(),
            refused: [0; Refusal::ALL.len()],
        };
        for (o, c) in s.refused.iter_mut().zip(self.refused.iter()) {
            *o = c.get();
        }
        s
    }
}

/// Which way a command's data went, for [`IoStats::complete`]: each front
/// end's direction maps to it.
#[derive(Clone, Copy)]
pub(crate) enum Way {
    None,
    /// From the device to the initiator.
    Read,
    /// From the initiator to the device.
    Write,
}

impl From<virtio_scsi::DataDir> for Way {
    fn from(d: virtio_scsi::DataDir) -> Way {
        match d {
            virtio_scsi::DataDir::None => Way::None,
            virtio_scsi::DataDir::FromDevice => Way::Read,
            virtio_scsi::DataDir::ToDevice => Way::Write,
        }
    }
}

impl From<mfi::Dir> for Way {
    fn from(d: mfi::Dir) -> Way {
        match d {
            mfi::Dir::None => Way::None,
            mfi::Dir::In => Way::Read,
            mfi::Dir::Out => Way::Write,
        }
    }
}

/// The figures of one or more [`IoStats`].
#[derive(Default)]
pub(crate) struct IoSnapshot {
    submitted: u64,
    offloaded: u64,
    completed: u64,
    read_bytes: u64,
    write_bytes: u64,
    refused: [u64; Refusal::ALL.len()],
}

impl IoSnapshot {
    /// Adds the counters of `s`.
    pub(crate) fn add(&mut self, s: &IoStats) {
        let o = s.snapshot();
        self.submitted = self.submitted.wrapping_add(o.submitted);
        self.offloaded = self.offloaded.wrapping_add(o.offloaded);
        self.completed = self.completed.wrapping_add(o.completed);
        self.read_bytes = self.read_bytes.wrapping_add(o.read_bytes);
        self.write_bytes = self.write_bytes.wrapping_add(o.write_bytes);
        for (a, b) in self.refused.iter_mut().zip(o.refused) {
            *a = a.wrapping_add(b);
        }
    }

    /// Whether every figure is zero.
    pub(crate) fn is_empty(&self) -> bool {
        self.submitted == 0 && self.refused.iter().all(|&n| n == 0)
    }

    /// One line: `NAME: submitted=.. completed=.. in_flight=.. read_bytes=..
    /// write_bytes=.. malformed=.. bad_target=.. pin_failure=.. busy=..
    /// transport=.. offloaded=..`.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>, name: fmt::Arguments<'_>) -> fmt::Result {
        write!(
            f,
            "{name}: submitted={} completed={} in_flight={} read_bytes={} write_bytes={}",
            self.submitted,
            self.completed,
            self.submitted.saturating_sub(self.completed),
            self.read_bytes,
            self.write_bytes
        )?;
        for (r, n) in Refusal::ALL.iter().zip(self.refused) {
            write!(f, " {}={n}", r.name())?;
        }
        writeln!(f, " offloaded={}", self.offloaded)
    }
}

const FUNCTIONS: [(Function, &str); 8] = [
    (Function::AbortTask, "abort_task"),
    (Function::AbortTaskSet, "abort_task_set"),
    (Function::ClearAca, "clear_aca"),
    (Function::ClearTaskSet, "clear_task_set"),
    (Function::ItNexusReset, "i_t_nexus_reset"),
    (Function::LunReset, "lun_reset"),
    (Function::QueryTask, "query_task"),
    (Function::QueryTaskSet, "query_task_set"),
];
const OUTCOMES: [(Outcome, &str); 5] = [
    (Outcome::Complete, "complete"),
    (Outcome::Succeeded, "succeeded"),
    (Outcome::Rejected, "rejected"),
    (Outcome::IncorrectLun, "incorrect_lun"),
    (Outcome::Failed, "failed"),
];

fn function_index(f: Function) -> usize {
    FUNCTIONS.iter().position(|(g, _)| *g == f).unwrap_or(0)
}

/// Task management functions of a device: started, and carried out by
/// outcome, per function.
pub(crate) struct TmfStats {
    started: [Counter; FUNCTIONS.len()],
    done: [[Counter; OUTCOMES.len()]; FUNCTIONS.len()],
}

impl TmfStats {
    pub(crate) const fn new() -> TmfStats {
        TmfStats {
            started: [const { Counter::new() }; FUNCTIONS.len()],
            done: [const { [const { Counter::new() }; OUTCOMES.len()] }; FUNCTIONS.len()],
        }
    }

    pub(crate) fn start(&self, f: Function) {
        self.started[function_index(f)].inc_shared();
    }

    pub(crate) fn done(&self, f: Function, o: Outcome) {
        let i = OUTCOMES.iter().position(|(p, _)| *p == o).unwrap_or(0);
        self.done[function_index(f)][i].inc_shared();
    }

    /// A line per function ever started: `tmf FUNCTION: started=..
    /// complete=.. succeeded=.. rejected=.. incorrect_lun=.. failed=..`.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (_, name)) in FUNCTIONS.iter().enumerate() {
            let started = self.started[i].get();
            if started == 0 {
                continue;
            }
            write!(f, "tmf {name}: started={started}")?;
            for (j, (_, o)) in OUTCOMES.iter().enumerate() {
                write!(f, " {o}={}", self.done[i][j].get())?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Events of a device: queued by the fabric (LUN linked or unlinked),
/// delivered to the initiator, dropped (the queue was full: the initiator
/// is told events were missed).
pub(crate) struct EventStats {
    pub(crate) queued: Counter,
    pub(crate) delivered: Counter,
    pub(crate) dropped: Counter,
}

impl EventStats {
    pub(crate) const fn new() -> EventStats {
        EventStats {
            queued: Counter::new(),
            delivered: Counter::new(),
            dropped: Counter::new(),
        }
    }

    /// `events: queued=.. delivered=.. dropped=..`.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "events: queued={} delivered={} dropped={}",
            self.queued.get(),
            self.delivered.get(),
            self.dropped.get()
        )
    }
}

kernel::sync::global_lock! {
    // SAFETY: initialised by `Root::new` in module init, before the
    // character devices are registered and thus before any device exists.
    unsafe(uninit) static ROOT: Mutex<Option<Dir>> = None;
}

/// The module's debugfs directory, `tcm_virt/`; removed when the module
/// goes (after every device's file).
pub(crate) struct Root;

impl Root {
    /// Creates the directory.
    ///
    /// # Safety
    ///
    /// Called once, in module init, before the devices are registered.
    pub(crate) unsafe fn new() -> Root {
        // SAFETY: the one call, before any device can use `ROOT` (the
        // caller's contract).
        unsafe { ROOT.init() };
        *ROOT.lock() = Some(Dir::new(c"tcm_virt"));
        Root
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        drop(ROOT.lock().take());
    }
}

/// Numbers the devices (`vhost-N`, `megasas-N`) in the order they are opened.
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A new device number.
pub(crate) fn next_id() -> u32 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A device whose statistics file shows it.
pub(crate) trait Show: Sync + 'static {
    /// The file's contents.
    fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// What a device's debugfs file reads: the device.
pub(crate) struct DevRef<T: Show>(*const T);

// SAFETY: the reader only takes shared references to the device, which is
// `Sync`; the file is removed before the device goes (the contract of
// `File::new`).
unsafe impl<T: Show> Send for DevRef<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Show> Sync for DevRef<T> {}

fn show_dev<T: Show>(r: &DevRef<T>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    // SAFETY: the file is removed, waiting for its readers, before the
    // device is torn down (the contract of `File::new`).
    unsafe { &*r.0 }.show(f)
}

/// A device's statistics file, `tcm_virt/<front>-<id>` in debugfs; removed
/// on drop, after its readers are done.
pub(crate) struct File<T: Show> {
    // Held for its `Drop`, which removes the file.
    _file: Pin<KBox<debugfs::File<DevRef<T>>>>,
}

impl<T: Show> File<T> {
    /// The file of device `dev`, number `id` of `front`.
    ///
    /// # Safety
    ///
    /// `dev` must stay valid until the file is dropped.
    pub(crate) unsafe fn new(front: Front, id: u32, dev: *const T) -> Result<File<T>> {
        let dir = ROOT.lock().clone().ok_or(ENODEV)?;
        let kind = match front {
            Front::Vhost => "vhost",
            Front::Megasas => "megasas",
        };
        let name = CString::try_from_fmt(fmt!("{kind}-{id}"))?;
        let file = KBox::pin_init(
            dir.read_callback_file(&name, DevRef(dev), &show_dev::<T>),
            GFP_KERNEL,
        )?;
        Ok(File { _file: file })
    }
}

/// `endpoint: WWPN[ tpgt N]`, or `endpoint: none`.
pub(crate) fn show_endpoint(
    f: &mut fmt::Formatter<'_>,
    wwpn: Option<&[u8]>,
    tpgt: Option<u16>,
) -> fmt::Result {
    let Some(wwpn) = wwpn else {
        return writeln!(f, "endpoint: none");
    };
    let n = wwpn.iter().position(|&c| c == 0).unwrap_or(wwpn.len());
    let name = core::str::from_utf8(&wwpn[..n]).unwrap_or("?");
    match tpgt {
        Some(t) => writeln!(f, "endpoint: {name} tpgt {t}"),
        None => writeln!(f, "endpoint: {name}"),
    }
}
