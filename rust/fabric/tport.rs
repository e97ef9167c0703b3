// SPDX-License-Identifier: GPL-2.0

//! Target ports: the `<fabric>/<wwn>` configfs directories.

use crate::glue::{configfs::Text, target::SeWwn};
use crate::{
    bindings as sys,
    wire::names::{self, ProtoId},
};
use kernel::{prelude::*, types::Opaque};

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

// SAFETY: `Tport` is `#[repr(C)]` with its `se_wwn` first.
unsafe impl SeWwn for Tport {}

impl Tport {
    pub(crate) fn proto(&self) -> ProtoId {
        self.proto
    }

    /// The name as a C string (for `tpg_get_wwn`).
    pub(crate) fn name_cstr(&self) -> &CStr {
        // `make_wwn` leaves a NUL after the name.
        CStr::from_bytes_until_nul(&self.name).unwrap_or(c"")
    }

    pub(crate) fn name(&self) -> &[u8] {
        let n = self.name.iter().position(|&b| b == 0).unwrap_or(0);
        &self.name[..n]
    }
}

/// `fabric_make_wwn`: `mkdir <fabric>/<name>`.
pub(super) fn make_wwn(raw: &[u8]) -> Result<KBox<Tport>> {
    let port = names::parse_tport(raw).map_err(|e| {
        pr_err!("target port '{}' refused: {}\n", Text(raw), e.as_str());
        EINVAL
    })?;
    let mut buf = [0u8; names::NAME_LEN];
    // parse_tport bounds the name below NAME_LEN, leaving the NUL.
    buf[..port.name.len()].copy_from_slice(port.name);
    let t = KBox::new(
        Tport {
            wwn: Opaque::zeroed(),
            proto: port.proto,
            name: buf,
        },
        GFP_KERNEL,
    )?;
    pr_debug!("target port {} ({})\n", Text(t.name()), t.proto.as_str());
    Ok(t)
}

/// `fabric_drop_wwn`: `rmdir <fabric>/<name>` (its TPGs are gone already).
pub(super) fn drop_wwn(tport: KBox<Tport>) {
    pr_debug!("target port {} removed\n", Text(tport.name()));
}
