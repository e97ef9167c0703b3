// SPDX-License-Identifier: GPL-2.0

//! Target ports: the `<fabric>/<wwn>` configfs directories.

use super::attr::Text;
use crate::{
    bindings as sys,
    wire::names::{self, ProtoId},
};
use kernel::{ffi::c_char, prelude::*, types::Opaque};

/// A target port (`struct se_wwn` plus what the fabric keeps of it).
///
/// Allocated by `make_wwn`, owned by target core (through configfs) until
/// `drop_wwn`.
#[repr(C)]
pub(crate) struct Tport {
    // INVARIANT: first field, so `*mut se_wwn` and `*mut Tport` convert.
    wwn: Opaque<sys::se_wwn>,
    proto: ProtoId,
    /// NUL-terminated port name as target core reports it.
    name: [u8; names::NAME_LEN],
}

impl Tport {
    /// The `Tport` that contains `wwn`.
    ///
    /// # Safety
    ///
    /// `wwn` must come from [`make_wwn`] and not have been dropped yet.
    pub(crate) unsafe fn from_wwn<'a>(wwn: *mut sys::se_wwn) -> &'a Tport {
        // SAFETY: per the invariant, `wwn` is the first field of a live `Tport`.
        unsafe { &*wwn.cast::<Tport>() }
    }

    pub(crate) fn proto(&self) -> ProtoId {
        self.proto
    }

    /// The name as a C string (for `tpg_get_wwn`).
    pub(crate) fn name_ptr(&self) -> *mut c_char {
        self.name.as_ptr().cast_mut().cast()
    }

    pub(crate) fn name(&self) -> &[u8] {
        let n = self.name.iter().position(|&b| b == 0).unwrap_or(0);
        &self.name[..n]
    }
}

/// `fabric_make_wwn`: `mkdir <fabric>/<name>`.
///
/// # Safety
///
/// Called by target core with a NUL-terminated configfs item name.
pub(super) unsafe extern "C" fn make_wwn(
    _tf: *mut sys::target_fabric_configfs,
    _group: *mut sys::config_group,
    name: *const c_char,
) -> *mut sys::se_wwn {
    // SAFETY: configfs passes the NUL-terminated name of the new directory.
    let raw = unsafe { CStr::from_char_ptr(name) }.to_bytes();
    let port = match names::parse_tport(raw) {
        Ok(p) => p,
        Err(e) => {
            pr_err!("target port '{}' refused: {}\n", Text(raw), e.as_str());
            return super::err_ptr(EINVAL);
        }
    };
    let mut buf = [0u8; names::NAME_LEN];
    // parse_tport bounds the name below NAME_LEN, leaving the NUL.
    buf[..port.name.len()].copy_from_slice(port.name);
    let tport = KBox::new(
        Tport {
            wwn: Opaque::zeroed(),
            proto: port.proto,
            name: buf,
        },
        GFP_KERNEL,
    );
    match tport {
        Ok(t) => {
            pr_debug!("target port {} ({})\n", Text(t.name()), t.proto.as_str());
            KBox::into_raw(t).cast()
        }
        Err(_) => super::err_ptr(ENOMEM),
    }
}

/// `fabric_drop_wwn`: `rmdir <fabric>/<name>` (its TPGs are gone already).
///
/// # Safety
///
/// `wwn` must come from [`make_wwn`]; target core drops each one once.
pub(super) unsafe extern "C" fn drop_wwn(wwn: *mut sys::se_wwn) {
    // SAFETY: allocated by make_wwn with KBox::into_raw; this is its last use.
    let tport = unsafe { KBox::from_raw(wwn.cast::<Tport>()) };
    pr_debug!("target port {} removed\n", Text(tport.name()));
}
