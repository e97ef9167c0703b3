// SPDX-License-Identifier: GPL-2.0

//! Load-time check that bindgen's view of the C structs the module shares
//! with target core and vhost matches the C compiler's.  A mismatch (a config
//! option bindgen parsed differently, a GCC-only attribute) refuses the load
//! rather than corrupting memory later.

use crate::bindings as sys;
use core::mem::{offset_of, size_of};
use kernel::prelude::*;

pub(crate) fn check() -> Result {
    let mut c = sys::tcm_virt_layout::default();
    // SAFETY: `c` is a valid, writable `struct tcm_virt_layout`.
    unsafe { sys::tcm_virt_get_layout(&mut c) };
    let items: [(&str, u64, usize); 17] = [
        ("se_cmd", c.se_cmd, size_of::<sys::se_cmd>()),
        ("se_session", c.se_session, size_of::<sys::se_session>()),
        (
            "se_portal_group",
            c.se_portal_group,
            size_of::<sys::se_portal_group>(),
        ),
        ("se_wwn", c.se_wwn, size_of::<sys::se_wwn>()),
        ("se_lun", c.se_lun, size_of::<sys::se_lun>()),
        (
            "target_core_fabric_ops",
            c.target_core_fabric_ops,
            size_of::<sys::target_core_fabric_ops>(),
        ),
        (
            "configfs_attribute",
            c.configfs_attribute,
            size_of::<sys::configfs_attribute>(),
        ),
        ("vhost_dev", c.vhost_dev, size_of::<sys::vhost_dev>()),
        (
            "vhost_virtqueue",
            c.vhost_virtqueue,
            size_of::<sys::vhost_virtqueue>(),
        ),
        ("se_cmd.tag", c.off_se_cmd_tag, offset_of!(sys::se_cmd, tag)),
        (
            "se_portal_group.tpg_group",
            c.off_se_tpg_tpg_group,
            offset_of!(sys::se_portal_group, tpg_group),
        ),
        (
            "target_core_fabric_ops.tfc_wwn_attrs",
            c.off_fabric_ops_tfc_wwn_attrs,
            offset_of!(sys::target_core_fabric_ops, tfc_wwn_attrs),
        ),
        (
            "target_core_fabric_ops.default_submit_type",
            c.off_fabric_ops_default_submit_type,
            offset_of!(sys::target_core_fabric_ops, default_submit_type),
        ),
        // `glue::vhost::IovIter` builds and moves `ITER_IOVEC` iterators
        // itself.
        ("iov_iter", c.iov_iter, size_of::<sys::iov_iter>()),
        (
            "iov_iter.iov_offset",
            c.off_iov_iter_iov_offset,
            offset_of!(sys::iov_iter, iov_offset),
        ),
        (
            "iov_iter.count",
            c.off_iov_iter_count,
            offset_of!(sys::iov_iter, __bindgen_anon_1)
                + offset_of!(sys::iov_iter__bindgen_ty_1__bindgen_ty_1, count),
        ),
        (
            "iov_iter.nr_segs",
            c.off_iov_iter_nr_segs,
            offset_of!(sys::iov_iter, __bindgen_anon_2),
        ),
    ];
    let mut bad = 0;
    for (name, c_val, rust_val) in items {
        if usize::try_from(c_val) != Ok(rust_val) {
            pr_err!(
                "layout mismatch: {} is {} in C, {} in Rust\n",
                name,
                c_val,
                rust_val
            );
            bad += 1;
        }
    }
    if bad != 0 {
        pr_err!(
            "{} layout mismatches: rebuild against this kernel tree\n",
            bad
        );
        return Err(EINVAL);
    }
    Ok(())
}
