// SPDX-License-Identifier: GPL-2.0

//! Target portal groups (`<wwn>/tpgt_N`), their I_T nexus (the `nexus`
//! attribute) and their LUN ports.
//!
//! The TPG tag N is the SCSI target id the guest addresses (one byte, as in
//! C `vhost_scsi`).  A TPG has at most one nexus, the session the first
//! front end bound to it runs in; it cannot be dropped while LUNs are
//! linked or a front end is bound to the TPG.  A front end of the other
//! kind bound at the same time is a second initiator, with a session of its
//! own (see [`Binding`]).

use super::{cmd::Front, tport::Tport, vpd::PtVpd};
use crate::{
    bindings as sys,
    glue::{
        configfs::{PageWriter, Text, TpgAttr, TpgGroup},
        target::{DependTpg, LunRef, Registered, SeTpg, Session, TpgOps, TpgRegistrar},
    },
    nexus,
    wire::names::{self, NexusRequest},
};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    ffi::c_int,
    new_mutex, new_spinlock_irq,
    prelude::*,
    sync::{Arc, Mutex, SpinLockIrq},
    types::Opaque,
};

kernel::sync::global_lock! {
    // SAFETY: initialised by `init_registry` in module init, before the
    // fabric is registered and thus before any TPG exists.
    unsafe(uninit) static TPGS: Mutex<KVec<Arc<Tpg>>> = KVec::new();
}

/// Initialises the TPG registry.
///
/// # Safety
///
/// Must be called exactly once, before the fabric is registered.
pub(crate) unsafe fn init_registry() {
    // SAFETY: this is the one call, made in module init before the fabric is registered (the
    // caller's contract), so no TPG exists and nothing else uses `TPGS` yet.
    unsafe { TPGS.init() };
}

/// The TPGs of the port named `wwpn` (all of them, bound or not).
///
/// The references keep each `Tpg` allocated; whether it is still in
/// configfs is for `target_depend_item` to tell.
pub(crate) fn tpgs_of(wwpn: &[u8]) -> Result<KVec<Arc<Tpg>>> {
    let list = TPGS.lock();
    let mut out = KVec::new();
    for t in list.iter() {
        if t.tport().name() == wwpn {
            out.push(t.clone(), GFP_KERNEL)?;
        }
    }
    Ok(out)
}

/// A front end bound to a TPG.
struct Bound {
    /// Its event queue (LUN hotplug).
    events: Arc<nexus::Events>,
    /// The session of a second initiator, when the nexus was taken.
    own: Option<Session>,
}

struct TpgState {
    /// The session of the I_T nexus.
    nexus: Option<Session>,
    /// LUNs linked into this TPG.
    ports: u32,
    /// The bound front ends, one per kind, indexed by `Front::index`.
    bound: [Option<Bound>; 2],
}

impl TpgState {
    fn bound_count(&self) -> usize {
        self.bound.iter().flatten().count()
    }

    /// Whether a bound front end runs in the nexus (not a session of its own).
    fn nexus_taken(&self) -> bool {
        self.bound.iter().flatten().any(|b| b.own.is_none())
    }
}

/// A target portal group.
///
/// Allocated by `make_tpg` and owned by the TPG registry until `drop_tpg`;
/// bound front ends hold further references.
#[pin_data]
#[repr(C)]
pub(crate) struct Tpg {
    // INVARIANT: first field, so `*mut se_portal_group` and `*mut Tpg` convert.
    se_tpg: Opaque<sys::se_portal_group>,
    // INVARIANT: the parent directory's port; configfs removes children first.
    tport: *const Tport,
    tag: u16,
    /// `attrib/fabric_prot_type`: 0, 1 or 3 (T10 PI type the fabric generates).
    prot_type: AtomicU32,
    #[pin]
    state: Mutex<TpgState>,
    /// Pass-through LUNs and their Block Limits handling, by LUN number
    /// (see `vpd`).  A lock of its own, taken with interrupts off: commands
    /// look it up on completion, which can run in the backend's interrupt
    /// context (direct completion), and the state lock is held while
    /// sessions end.
    #[pin]
    pt: SpinLockIrq<KVec<(u64, PtVpd)>>,
}

// SAFETY: `tport` outlives the TPG and is only read; the rest is `Send`.
unsafe impl Send for Tpg {}
// SAFETY: shared access goes through the mutex or atomics.
unsafe impl Sync for Tpg {}

// SAFETY: `Tpg` is `#[repr(C)]` with its `se_portal_group` first; `make_tpg`
// registers only that field of a `Tpg` with target core, and the registry
// keeps the `Tpg` allocated until after `drop_tpg` deregistered it.
unsafe impl SeTpg for Tpg {}

impl Tpg {
    pub(crate) fn tport(&self) -> &Tport {
        // SAFETY: per the invariant, the port outlives its TPGs.
        unsafe { &*self.tport }
    }

    /// How the Block Limits VPD of LUN `lun` is handled, if it is a
    /// pass-through LUN that needs it.
    pub(super) fn pt_vpd(&self, lun: u64) -> Option<PtVpd> {
        self.pt.lock().iter().find(|e| e.0 == lun).map(|e| e.1)
    }

    /// Records (or forgets, with `None`) how LUN `lun` is handled.
    fn set_pt_vpd(&self, lun: u64, need: Option<PtVpd>) {
        let mut pt = self.pt.lock();
        pt.retain(|e| e.0 != lun);
        if let Some(n) = need {
            if pt.push((lun, n), GFP_ATOMIC).is_err() {
                pr_warn!(
                    "tpgt_{} LUN {}: out of memory, Block Limits left to the device\n",
                    self.tag,
                    lun
                );
            }
        }
    }

    /// The SCSI target id of the TPG (its tag).
    pub(crate) fn tag(&self) -> u16 {
        self.tag
    }

    /// Binds a front end of kind `front` to the TPG; LUN link and unlink
    /// events go to `events` while bound.
    ///
    /// A TPG serves at most one front end of each kind (as C `vhost_scsi`,
    /// one vhost endpoint per TPG).  The first one bound runs in the TPG's
    /// nexus; a second one, of the other kind, is a second initiator with
    /// a session of its own, named by [`names::second_initiator`].
    fn bind_front(
        &self,
        front: Front,
        events: &Arc<nexus::Events>,
    ) -> Result<*mut sys::se_session> {
        let mut st = self.state.lock();
        let Some(nexus) = st.nexus.as_ref() else {
            return Err(ENODEV);
        };
        if st.bound[front.index()].is_some() {
            return Err(EBUSY);
        }
        let (sess, own) = if st.nexus_taken() {
            let mut name = [0u8; names::NAME_LEN];
            let len = names::second_initiator(nexus.acl_name(), &mut name)
                .inspect_err(|e| {
                    pr_err!(
                        "{} tpgt_{}: no name for a second initiator: {}\n",
                        Text(self.tport().name()),
                        self.tag,
                        e.as_str()
                    )
                })
                .map_err(|_| EINVAL)?;
            // The session is dropped by `unbind_front`, which
            // `Binding::drop` calls after the front end's last command was
            // released, and a pinned TPG is not deregistered.
            // SAFETY: the caller pinned the TPG (`DependTpg`): it is registered.
            let own = unsafe { Session::setup(self, &name) }?;
            pr_info!(
                "{} tpgt_{}: second front end bound as initiator {}\n",
                Text(self.tport().name()),
                self.tag,
                Text(&name[..len])
            );
            (own.as_ptr(), Some(own))
        } else {
            (nexus.as_ptr(), None)
        };
        st.bound[front.index()] = Some(Bound {
            events: events.clone(),
            own,
        });
        Ok(sess)
    }

    /// Undoes a successful [`Tpg::bind_front`]: removes the front end's own
    /// session, if it had one (the front end released every command of it
    /// before unbinding).  No event is pushed to it after this returns.
    fn unbind_front(&self, front: Front) {
        self.state.lock().bound[front.index()] = None;
    }

    /// Pushes a hotplug event for LUN `lun` to every bound front end.
    fn lun_event(&self, st: &TpgState, kind: nexus::EventKind, lun: u64) {
        for b in st.bound.iter().flatten() {
            b.events.push(nexus::Event {
                kind,
                target: self.tag,
                lun,
            });
        }
    }

    fn drop_nexus(&self, st: &mut TpgState) -> Result {
        if st.nexus.is_none() {
            return Err(ENODEV);
        }
        let bound = st.bound_count();
        if st.ports != 0 || bound != 0 {
            pr_err!(
                "{} tpgt_{}: nexus kept: {} LUN(s) linked, {} endpoint(s) bound\n",
                Text(self.tport().name()),
                self.tag,
                st.ports,
                bound
            );
            return Err(EBUSY);
        }
        // No command or TMF runs in the session: no front end is bound.
        st.nexus = None;
        Ok(())
    }

    fn make_nexus(&self, st: &mut TpgState, name: &[u8]) -> Result {
        if st.nexus.is_some() {
            return Err(EEXIST);
        }
        let mut cname = [0u8; names::NAME_LEN];
        // parse_nexus bounds the name below NAME_LEN, leaving the NUL.
        cname[..name.len()].copy_from_slice(name);
        // The session is dropped by `drop_nexus` only with no front end
        // bound (nothing submits in it), or by `drop_tpg` before it
        // deregisters the TPG.
        // SAFETY: called from the `nexus` attribute's store: the TPG is registered.
        st.nexus = Some(unsafe { Session::setup(self, &cname) }?);
        Ok(())
    }
}

/// A front end's hold on a TPG: a configfs dependency on its directory
/// (so neither it nor its nexus can be removed) and the session its
/// commands run in.  Dropping it unbinds.
///
/// Drop it only after every command submitted in [`Binding::sess`] was
/// released.
pub(crate) struct Binding {
    // INVARIANT: bound with `front` until drop.
    tpg: DependTpg<Tpg>,
    sess: *mut sys::se_session,
    front: Front,
}

// SAFETY: a `se_session` is not tied to a thread; target core locks it itself.
unsafe impl Send for Binding {}
// SAFETY: the binding is read-only once made.
unsafe impl Sync for Binding {}

impl Binding {
    /// Binds a front end of kind `front` to `tpg` (see
    /// [`Tpg::bind_front`]); `ENODEV` when the TPG is being removed or has
    /// no nexus, `EBUSY` when a front end of that kind holds it.
    pub(crate) fn new(tpg: Arc<Tpg>, front: Front, events: &Arc<nexus::Events>) -> Result<Self> {
        // Pin the TPG's configfs directory first, before any lock of the
        // TPG: target_depend_item takes configfs locks (the configfs root's
        // inode lock, configfs_dirent_lock), and our LUN link/unlink and TPG
        // removal callbacks run under configfs locks and take the TPG's
        // locks.  Both callers, `set_endpoint` of the vhost device and of
        // the megasas adapter, hold their vhost_dev mutex here and no
        // virtqueue mutex; every binding is dropped under that mutex too
        // (clear_endpoint, release, a failed set_endpoint).  No configfs
        // callback takes either mutex (hotplug events reach the front end
        // through the event queue's spinlock and a vhost work).
        let tpg = DependTpg::new(tpg)?;
        // A failure drops the pin.
        let sess = tpg.bind_front(front, events)?;
        // INVARIANT: bound just above.
        Ok(Binding { tpg, sess, front })
    }

    /// The TPG, pinned.
    pub(crate) fn tpg(&self) -> &DependTpg<Tpg> {
        &self.tpg
    }

    /// The session the front end's commands and TMFs run in; valid while
    /// the binding lives.
    pub(crate) fn sess(&self) -> *mut sys::se_session {
        self.sess
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        // Then the pin goes, with the field.
        self.tpg.unbind_front(self.front);
    }
}

/// `fabric_make_tpg`: `mkdir <wwn>/tpgt_N`.
pub(super) fn make_tpg(
    tport: &Tport,
    raw: &[u8],
    reg: TpgRegistrar<'_, Tpg>,
) -> Result<Registered<Tpg>> {
    let tag = names::parse_tpgt(raw).map_err(|e| {
        pr_err!("TPG '{}' refused: {}\n", Text(raw), e.as_str());
        EINVAL
    })?;
    let tpg = Arc::pin_init(
        pin_init!(Tpg {
            se_tpg: Opaque::zeroed(),
            tport: core::ptr::from_ref(tport),
            tag,
            prot_type: AtomicU32::new(0),
            state <- new_mutex!(TpgState {
                nexus: None,
                ports: 0,
                bound: [None, None],
            }),
            pt <- new_spinlock_irq!(KVec::new()),
        }),
        GFP_KERNEL,
    )?;
    let mut list = TPGS.lock();
    list.reserve(1, GFP_KERNEL)?;
    // The registry keeps the TPG until `tpg_dropped`; capacity reserved
    // above.
    let _ = list.push(tpg.clone(), GFP_KERNEL);
    // SAFETY: the TPG is new: made above with its se_portal_group zeroed.
    let r = unsafe { reg.register(tpg, c_int::from(tport.proto().id())) };
    if r.is_err() {
        list.pop();
    }
    r.inspect_err(|e| pr_err!("tpgt_{}: core_tpg_register failed: {:?}\n", tag, e))
}

impl Tpg {
    /// `fabric_drop_tpg`: `rmdir <wwn>/tpgt_N` (its LUNs are unlinked
    /// already), before target core deregisters the TPG.
    pub(super) fn drop_tpg(&self) {
        let mut st = self.state.lock();
        // No LUN is linked any more (configfs removes the links first), and
        // a bound front end holds a configfs dependency on the TPG, so none
        // is bound here.  The nexus goes before the TPG is deregistered,
        // whatever the counts say.
        if st.ports != 0 || st.bound_count() != 0 {
            pr_warn!(
                "tpgt_{}: removed with {} LUN(s) linked and {} front end(s) bound\n",
                self.tag,
                st.ports,
                st.bound_count()
            );
        }
        st.nexus = None;
    }
}

/// The TPG `tpg` was deregistered: the registry lets go of it.  An endpoint
/// racing with this rmdir may hold another reference until its
/// `target_depend_item` fails.
pub(super) fn tpg_dropped(tpg: Arc<Tpg>) {
    let mut list = TPGS.lock();
    list.retain(|t| !Arc::ptr_eq(t, &tpg));
    if list.is_empty() {
        // Free the buffer: the registry is static and outlives the module.
        *list = KVec::new();
    }
}

impl TpgOps for Tpg {
    fn wwn_name(&self) -> &CStr {
        self.tport().name_cstr()
    }

    fn tag(&self) -> u16 {
        self.tag
    }

    fn prot_fabric_only(&self) -> c_int {
        // 0, 1 or 3.
        self.prot_type.load(Ordering::Relaxed) as c_int
    }

    /// Every TPG runs in demo mode (no ACLs needed), as in C `vhost_scsi`.
    fn demo_mode(&self) -> bool {
        true
    }

    fn post_link(&self, lun: LunRef<'_>) {
        self.set_pt_vpd(lun.unpacked(), super::vpd::probe(self, &lun));
        let mut st = self.state.lock();
        st.ports += 1;
        self.lun_event(&st, nexus::EventKind::LunAdded, lun.unpacked());
    }

    fn pre_unlink(&self, lun: LunRef<'_>) {
        // Commands still in flight find no entry and are left to the device.
        self.set_pt_vpd(lun.unpacked(), None);
        let mut st = self.state.lock();
        st.ports = st.ports.saturating_sub(1);
        self.lun_event(&st, nexus::EventKind::LunRemoved, lun.unpacked());
    }
}

/// `tpgt_N/nexus`: the initiator port name of the nexus (`-ENODEV` without
/// one); an initiator port name written creates the nexus, `NULL` drops it.
pub(super) struct NexusAttr;

impl TpgAttr for NexusAttr {
    type Tpg = Tpg;
    const NAME: &'static CStr = c"nexus";
    const GROUP: TpgGroup = TpgGroup::Base;
    const WRITABLE: bool = true;

    fn show(tpg: &Tpg, out: &mut PageWriter<'_>) -> Result {
        let st = tpg.state.lock();
        let nexus = st.nexus.as_ref().ok_or(ENODEV)?;
        out.emit(format_args!("{}\n", Text(nexus.acl_name())));
        Ok(())
    }

    fn store(tpg: &Tpg, input: &[u8]) -> Result {
        match names::parse_nexus(input, tpg.tport().proto()) {
            Ok(NexusRequest::Drop) => tpg.drop_nexus(&mut tpg.state.lock()),
            Ok(NexusRequest::Create(port)) => tpg.make_nexus(&mut tpg.state.lock(), port.name),
            Err(e) => {
                pr_err!(
                    "{} tpgt_{}: nexus '{}' refused: {}\n",
                    Text(tpg.tport().name()),
                    tpg.tag,
                    Text(input.strip_suffix(b"\n").unwrap_or(input)),
                    e.as_str()
                );
                Err(EINVAL)
            }
        }
    }
}

/// `tpgt_N/attrib/fabric_prot_type`: the T10 PI type the fabric generates,
/// 0, 1 or 3.
pub(super) struct ProtTypeAttr;

impl TpgAttr for ProtTypeAttr {
    type Tpg = Tpg;
    const NAME: &'static CStr = c"fabric_prot_type";
    const GROUP: TpgGroup = TpgGroup::Attrib;
    const WRITABLE: bool = true;

    fn show(tpg: &Tpg, out: &mut PageWriter<'_>) -> Result {
        out.emit(format_args!("{}\n", tpg.prot_type.load(Ordering::Relaxed)));
        Ok(())
    }

    fn store(tpg: &Tpg, input: &[u8]) -> Result {
        let text = input.strip_suffix(b"\n").unwrap_or(input);
        match text {
            b"0" | b"1" | b"3" => {
                tpg.prot_type
                    .store(u32::from(text[0] - b'0'), Ordering::Relaxed);
                Ok(())
            }
            _ => {
                pr_err!("invalid fabric_prot_type '{}': 0, 1 or 3\n", Text(text));
                Err(EINVAL)
            }
        }
    }
}
