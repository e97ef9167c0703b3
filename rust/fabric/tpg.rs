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

use super::{attr, cmd::Front, tport::Tport, vpd::PtVpd};
use crate::{
    bindings as sys, nexus,
    wire::names::{self, NexusRequest},
};
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    ffi::{c_char, c_int},
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

/// The session of a TPG's I_T nexus.
struct Nexus(*mut sys::se_session);

// SAFETY: a `se_session` is not tied to a thread; target core locks it itself.
unsafe impl Send for Nexus {}

/// A front end bound to a TPG.
struct Bound {
    /// Its event queue (LUN hotplug).
    events: Arc<nexus::Events>,
    /// The session of a second initiator, when the nexus was taken.
    own: Option<Nexus>,
}

struct TpgState {
    nexus: Option<Nexus>,
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

impl Tpg {
    /// The `Tpg` that contains `se_tpg`.
    ///
    /// # Safety
    ///
    /// `se_tpg` must come from [`make_tpg`] and not have been dropped yet.
    pub(crate) unsafe fn from_se_tpg<'a>(se_tpg: *mut sys::se_portal_group) -> &'a Tpg {
        // SAFETY: per the invariant, `se_tpg` is the first field of a live `Tpg`.
        unsafe { &*se_tpg.cast::<Tpg>() }
    }

    pub(crate) fn tport(&self) -> &Tport {
        // SAFETY: per the invariant, the port outlives its TPGs.
        unsafe { &*self.tport }
    }

    /// The target core TPG.
    pub(crate) fn se_tpg(&self) -> *mut sys::se_portal_group {
        self.se_tpg.get()
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

    /// Replaces `out` with the TPG's LUNs that have a device, at most
    /// `max`, in link order.
    pub(crate) fn luns(&self, out: &mut KVec<sys::tcm_virt_lun_info>, max: usize) -> Result {
        out.clear();
        out.reserve(max, GFP_KERNEL)?;
        let room = c_int::try_from(max).unwrap_or(c_int::MAX);
        // SAFETY: the TPG is initialised and alive (`&self`); `out` has room
        // for `max` entries; the helper walks the LUN list under RCU.
        let n = unsafe { sys::tcm_virt_tpg_luns(self.se_tpg(), out.as_mut_ptr(), room) };
        // SAFETY: the helper initialised `n` entries (at most `max`).
        unsafe { out.inc_len((n.max(0) as usize).min(max)) };
        Ok(())
    }

    /// LUN `lun` of the TPG, if it has a device.
    pub(crate) fn lun(&self, lun: u64) -> Option<sys::tcm_virt_lun_info> {
        let mut i = sys::tcm_virt_lun_info::default();
        // SAFETY: the TPG is initialised and alive (`&self`); `i` is ours.
        (unsafe { sys::tcm_virt_tpg_lun(self.se_tpg(), lun, &mut i) } == 0).then_some(i)
    }

    /// The configfs item a front end pins with `target_depend_item` while
    /// bound.
    pub(crate) fn config_item(&self) -> *mut sys::config_item {
        // SAFETY: the se_portal_group is initialised by core_tpg_register;
        // only the address of a field is taken.
        unsafe { &raw mut (*self.se_tpg.get()).tpg_group.cg_item }
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
        let nexus = nexus.0;
        if st.bound[front.index()].is_some() {
            return Err(EBUSY);
        }
        let (sess, own) = if st.nexus_taken() {
            let mut name = [0u8; names::NAME_LEN];
            // SAFETY: the nexus session and its node ACL live while the
            // state lock is held.
            let len = names::second_initiator(unsafe { acl_name(nexus) }, &mut name)
                .inspect_err(|e| {
                    pr_err!(
                        "{} tpgt_{}: no name for a second initiator: {}\n",
                        attr::Text(self.tport().name()),
                        self.tag,
                        e.as_str()
                    )
                })
                .map_err(|_| EINVAL)?;
            let sess = self.setup_session(&name)?;
            pr_info!(
                "{} tpgt_{}: second front end bound as initiator {}\n",
                attr::Text(self.tport().name()),
                self.tag,
                attr::Text(&name[..len])
            );
            (sess, Some(Nexus(sess)))
        } else {
            (nexus, None)
        };
        st.bound[front.index()] = Some(Bound {
            events: events.clone(),
            own,
        });
        Ok(sess)
    }

    /// Undoes a successful [`Tpg::bind_front`]: removes the front end's own
    /// session, if it had one.  No event is pushed to it after this returns.
    fn unbind_front(&self, front: Front) {
        let mut st = self.state.lock();
        if let Some(Bound { own: Some(s), .. }) = st.bound[front.index()].take() {
            // SAFETY: set up by bind_front; the front end released every
            // command of it before unbinding.
            unsafe { sys::target_remove_session(s.0) };
        }
    }

    /// A NUL-terminated copy of `name` into a session of this TPG.
    fn setup_session(&self, name: &[u8; names::NAME_LEN]) -> Result<*mut sys::se_session> {
        // SAFETY: the TPG is registered; `name` is NUL-terminated and copied
        // by target core (into the node ACL) before the call returns.
        let sess = unsafe {
            sys::target_setup_session(
                self.se_tpg.get(),
                0,
                0,
                sys::target_prot_op_TARGET_PROT_DIN_PASS
                    | sys::target_prot_op_TARGET_PROT_DOUT_PASS,
                name.as_ptr(),
                core::ptr::from_ref(self).cast_mut().cast(),
                None,
            )
        };
        kernel::error::from_err_ptr(sess)
    }

    /// Pushes a hotplug event for `lun` to every bound front end.
    fn lun_event(&self, st: &TpgState, kind: nexus::EventKind, lun: *mut sys::se_lun) {
        for b in st.bound.iter().flatten() {
            b.events.push(nexus::Event {
                kind,
                target: self.tag,
                // SAFETY: target core passes a live LUN to the link hooks.
                lun: unsafe { (*lun).unpacked_lun },
            });
        }
    }

    fn drop_nexus(&self, st: &mut TpgState) -> Result {
        let Some(nexus) = st.nexus.as_ref() else {
            return Err(ENODEV);
        };
        let bound = st.bound_count();
        if st.ports != 0 || bound != 0 {
            pr_err!(
                "{} tpgt_{}: nexus kept: {} LUN(s) linked, {} endpoint(s) bound\n",
                attr::Text(self.tport().name()),
                self.tag,
                st.ports,
                bound
            );
            return Err(EBUSY);
        }
        // SAFETY: the session was set up by target_setup_session and is
        // removed once, here, with the state lock held.
        unsafe { sys::target_remove_session(nexus.0) };
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
        let sess = self.setup_session(&cname)?;
        st.nexus = Some(Nexus(sess));
        Ok(())
    }
}

/// The initiator name of `sess`'s node ACL.
///
/// # Safety
///
/// `sess` and its node ACL must stay live while the slice is used.
unsafe fn acl_name<'a>(sess: *mut sys::se_session) -> &'a [u8] {
    // SAFETY: `sess` and its node ACL stay live while the returned slice is used (the
    // caller's contract).
    let name = unsafe { &(*(*sess).se_node_acl).initiatorname };
    let len = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    // SAFETY: `initiatorname` is a plain byte array; c_char and u8 have the same layout.
    unsafe { core::slice::from_raw_parts(name.as_ptr().cast::<u8>(), len) }
}

/// A front end's hold on a TPG: a configfs dependency on its directory
/// (so neither it nor its nexus can be removed) and the session its
/// commands run in.  Dropping it unbinds.
///
/// Drop it only after every command submitted in [`Binding::sess`] was
/// released.
pub(crate) struct Binding {
    // INVARIANT: bound with `front` and pinned by target_depend_item until drop.
    tpg: Arc<Tpg>,
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
        // SAFETY: the item belongs to a TPG kept allocated by `tpg`; configfs
        // only compares it against live items.
        if unsafe { sys::target_depend_item(tpg.config_item()) } != 0 {
            return Err(ENODEV); // Being removed.
        }
        match tpg.bind_front(front, events) {
            // INVARIANT: bound and pinned just above.
            Ok(sess) => Ok(Binding { tpg, sess, front }),
            Err(e) => {
                // SAFETY: pinned just above.
                unsafe { sys::target_undepend_item(tpg.config_item()) };
                Err(e)
            }
        }
    }

    pub(crate) fn tpg(&self) -> &Tpg {
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
        self.tpg.unbind_front(self.front);
        // SAFETY: pinned by `Binding::new` (type invariant).
        unsafe { sys::target_undepend_item(self.tpg.config_item()) };
    }
}

/// `fabric_make_tpg`: `mkdir <wwn>/tpgt_N`.
///
/// # Safety
///
/// Called by target core with a live `wwn` from `make_wwn` and a
/// NUL-terminated directory name.
pub(super) unsafe extern "C" fn make_tpg(
    wwn: *mut sys::se_wwn,
    name: *const c_char,
) -> *mut sys::se_portal_group {
    // SAFETY: configfs passes the NUL-terminated name of the new directory.
    let raw = unsafe { CStr::from_char_ptr(name) }.to_bytes();
    // SAFETY: `wwn` is the parent directory's live port.
    let tport = unsafe { Tport::from_wwn(wwn) };
    let tag = match names::parse_tpgt(raw) {
        Ok(t) => t,
        Err(e) => {
            pr_err!("TPG '{}' refused: {}\n", attr::Text(raw), e.as_str());
            return super::err_ptr(EINVAL);
        }
    };
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
    );
    let Ok(tpg) = tpg else {
        return super::err_ptr(ENOMEM);
    };
    let mut list = TPGS.lock();
    if list.reserve(1, GFP_KERNEL).is_err() {
        return super::err_ptr(ENOMEM);
    }
    // SAFETY: the se_portal_group is zeroed as core_tpg_register expects, it
    // never moves (inside the Arc), and `wwn` is the live parent.
    let ret =
        unsafe { sys::core_tpg_register(wwn, tpg.se_tpg.get(), c_int::from(tport.proto().id())) };
    if ret < 0 {
        pr_err!("tpgt_{}: core_tpg_register failed: {}\n", tag, ret);
        return super::err_ptr(Error::from_errno(ret));
    }
    let se_tpg = tpg.se_tpg.get();
    // The registry owns the TPG until drop_tpg; capacity reserved above.
    let _ = list.push(tpg, GFP_KERNEL);
    se_tpg
}

/// `fabric_drop_tpg`: `rmdir <wwn>/tpgt_N` (its LUNs are unlinked already).
///
/// # Safety
///
/// `se_tpg` must come from [`make_tpg`]; target core drops each one once.
pub(super) unsafe extern "C" fn drop_tpg(se_tpg: *mut sys::se_portal_group) {
    // SAFETY: `se_tpg` is live until freed below.
    let tpg = unsafe { Tpg::from_se_tpg(se_tpg) };
    {
        let mut st = tpg.state.lock();
        if st.nexus.is_some() {
            // No LUN is linked any more, and a bound front end holds a
            // configfs dependency on the TPG, so none is bound here.
            let _ = tpg.drop_nexus(&mut st);
        }
    }
    // SAFETY: registered by make_tpg, deregistered once.
    unsafe { sys::core_tpg_deregister(se_tpg) };
    // Drop the registry's reference; an endpoint racing with this rmdir may
    // hold another until its target_depend_item fails.
    let mut list = TPGS.lock();
    list.retain(|t| t.se_tpg.get() != se_tpg);
    if list.is_empty() {
        // Free the buffer: the registry is static and outlives the module.
        *list = KVec::new();
    }
}

/// `tpg_get_wwn`.
///
/// # Safety
///
/// `se_tpg` must come from [`make_tpg`].
pub(super) unsafe extern "C" fn get_wwn(se_tpg: *mut sys::se_portal_group) -> *mut c_char {
    // SAFETY: `se_tpg` comes from `make_tpg` (the caller's contract), and target core only
    // calls this on a TPG it has not yet dropped with `drop_tpg`.
    unsafe { Tpg::from_se_tpg(se_tpg) }.tport().name_ptr()
}

/// `tpg_get_tag`.
///
/// # Safety
///
/// `se_tpg` must come from [`make_tpg`].
pub(super) unsafe extern "C" fn get_tag(se_tpg: *mut sys::se_portal_group) -> u16 {
    // SAFETY: `se_tpg` comes from `make_tpg` (the caller's contract), and target core only
    // calls this on a TPG it has not yet dropped with `drop_tpg`.
    unsafe { Tpg::from_se_tpg(se_tpg) }.tag
}

/// `tpg_check_prot_fabric_only`: the T10 PI type the fabric itself handles.
///
/// # Safety
///
/// `se_tpg` must come from [`make_tpg`].
pub(super) unsafe extern "C" fn prot_fabric_only(se_tpg: *mut sys::se_portal_group) -> c_int {
    // SAFETY: `se_tpg` comes from `make_tpg` (the caller's contract), and target core only
    // calls this on a TPG it has not yet dropped with `drop_tpg`.
    let t = unsafe { Tpg::from_se_tpg(se_tpg) }
        .prot_type
        .load(Ordering::Relaxed);
    // 0, 1 or 3.
    t as c_int
}

/// `fabric_post_link`: a LUN was linked into the TPG.
///
/// # Safety
///
/// `se_tpg` must come from [`make_tpg`].
pub(super) unsafe extern "C" fn port_link(
    se_tpg: *mut sys::se_portal_group,
    lun: *mut sys::se_lun,
) -> c_int {
    // SAFETY: `se_tpg` comes from `make_tpg` (the caller's contract), and target core only
    // calls this on a TPG it has not yet dropped with `drop_tpg`.
    let tpg = unsafe { Tpg::from_se_tpg(se_tpg) };
    // SAFETY: `lun` is being linked.
    let need = unsafe { super::vpd::probe(tpg, lun) };
    // SAFETY: `lun` is being linked: target core keeps it live for `fabric_post_link`.
    tpg.set_pt_vpd(unsafe { (*lun).unpacked_lun }, need);
    let mut st = tpg.state.lock();
    st.ports += 1;
    tpg.lun_event(&st, nexus::EventKind::LunAdded, lun);
    0
}

/// `fabric_pre_unlink`: a LUN is being unlinked from the TPG.
///
/// # Safety
///
/// `se_tpg` must come from [`make_tpg`].
pub(super) unsafe extern "C" fn port_unlink(
    se_tpg: *mut sys::se_portal_group,
    lun: *mut sys::se_lun,
) {
    // SAFETY: `se_tpg` comes from `make_tpg` (the caller's contract), and target core only
    // calls this on a TPG it has not yet dropped with `drop_tpg`.
    let tpg = unsafe { Tpg::from_se_tpg(se_tpg) };
    // SAFETY: `lun` is being unlinked; commands still in flight find no
    // entry and are left to the device.
    tpg.set_pt_vpd(unsafe { (*lun).unpacked_lun }, None);
    let mut st = tpg.state.lock();
    st.ports = st.ports.saturating_sub(1);
    tpg.lun_event(&st, nexus::EventKind::LunRemoved, lun);
}

/// `tpgt_N/nexus` read: the initiator port name of the nexus, or `-ENODEV`.
///
/// # Safety
///
/// A configfs `show` callback on a TPG item.
pub(super) unsafe extern "C" fn nexus_show(
    item: *mut sys::config_item,
    page: *mut c_char,
) -> isize {
    // SAFETY: `item` is the tpg_group item of a TPG made by make_tpg.
    let tpg = unsafe { Tpg::from_se_tpg(sys::tcm_virt_to_tpg(item)) };
    let st = tpg.state.lock();
    let Some(nexus) = st.nexus.as_ref() else {
        return attr::show_error(ENODEV);
    };
    // SAFETY: the session and its node ACL live while the nexus is held
    // (the state lock keeps it from being dropped).
    let bytes = unsafe { acl_name(nexus.0) };
    // SAFETY: `page` is the buffer configfs passed to this show callback.
    unsafe { attr::emit(page, format_args!("{}\n", attr::Text(bytes))) }
}

/// `tpgt_N/nexus` write: an initiator port name creates the nexus, `NULL`
/// drops it.
///
/// # Safety
///
/// A configfs `store` callback on a TPG item.
pub(super) unsafe extern "C" fn nexus_store(
    item: *mut sys::config_item,
    page: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: `item` is the tpg_group item of a TPG made by make_tpg.
    let tpg = unsafe { Tpg::from_se_tpg(sys::tcm_virt_to_tpg(item)) };
    // SAFETY: page/count as configfs passed them.
    let input = unsafe { attr::input(page, count) };
    let r = match names::parse_nexus(input, tpg.tport().proto()) {
        Ok(NexusRequest::Drop) => tpg.drop_nexus(&mut tpg.state.lock()),
        Ok(NexusRequest::Create(port)) => tpg.make_nexus(&mut tpg.state.lock(), port.name),
        Err(e) => {
            pr_err!(
                "{} tpgt_{}: nexus '{}' refused: {}\n",
                attr::Text(tpg.tport().name()),
                tpg.tag,
                attr::Text(input.strip_suffix(b"\n").unwrap_or(input)),
                e.as_str()
            );
            Err(EINVAL)
        }
    };
    attr::store_result(r, count)
}

/// `tpgt_N/attrib/fabric_prot_type` read.
///
/// # Safety
///
/// A configfs `show` callback on a TPG's attrib item.
pub(super) unsafe extern "C" fn prot_type_show(
    item: *mut sys::config_item,
    page: *mut c_char,
) -> isize {
    // SAFETY: `item` is the attrib group item of a TPG made by make_tpg.
    let tpg = unsafe { Tpg::from_se_tpg(sys::tcm_virt_attrib_to_tpg(item)) };
    let t = tpg.prot_type.load(Ordering::Relaxed);
    // SAFETY: `page` is the buffer configfs passed to this show callback.
    unsafe { attr::emit(page, format_args!("{}\n", t)) }
}

/// `tpgt_N/attrib/fabric_prot_type` write: 0, 1 or 3.
///
/// # Safety
///
/// A configfs `store` callback on a TPG's attrib item.
pub(super) unsafe extern "C" fn prot_type_store(
    item: *mut sys::config_item,
    page: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: `item` is the attrib group item of a TPG made by make_tpg.
    let tpg = unsafe { Tpg::from_se_tpg(sys::tcm_virt_attrib_to_tpg(item)) };
    // SAFETY: page/count as configfs passed them.
    let input = unsafe { attr::input(page, count) };
    let text = input.strip_suffix(b"\n").unwrap_or(input);
    let r = match text {
        b"0" | b"1" | b"3" => {
            tpg.prot_type
                .store(u32::from(text[0] - b'0'), Ordering::Relaxed);
            Ok(())
        }
        _ => {
            pr_err!(
                "invalid fabric_prot_type '{}': 0, 1 or 3\n",
                attr::Text(text)
            );
            Err(EINVAL)
        }
    };
    attr::store_result(r, count)
}
