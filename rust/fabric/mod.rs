// SPDX-License-Identifier: GPL-2.0

//! The LIO fabric: registration with target core and the configfs tree
//! `/sys/kernel/config/target/<fabric_name>/<wwn>/tpgt_N/{lun,nexus,...}`.
//!
//! The layout, names, attributes and errnos are those of C `vhost_scsi`, so
//! that unmodified targetcli/rtslib and saved configurations work.

mod attr;
mod cmd;
mod tpg;
mod tport;
mod vpd;

use crate::bindings as sys;
pub(crate) use cmd::{CmdHead, DataDir, Front, Submit, TaskAttr};
use kernel::{ffi::c_char, prelude::*};
pub(crate) use tpg::{init_registry, tpgs_of, Binding};

/// Fabric version reported in `<fabric>/version`.
const VERSION: &str = "v0.1";

/// Scatterlist entries per command target core may use: the most pages a
/// front end maps for one command.
pub(crate) use crate::glue::pages::MAX_PAGES as MAX_DATA_SG_NENTS;

/// Longest fabric name plus its NUL (`TARGET_FABRIC_NAME_SIZE` in target
/// core's private header).
const FABRIC_NAME_SIZE: usize = 32;

/// An `ERR_PTR()` carrying `e`, for callbacks returning pointers.
fn err_ptr<T>(e: Error) -> *mut T {
    // ERR_PTR(): the negative errno as an address.
    core::ptr::without_provenance_mut(e.to_errno() as isize as usize)
}

/// The tables target core keeps pointers to while the fabric is registered.
struct Tables {
    ops: sys::target_core_fabric_ops,
    wwn_attrs: [sys::configfs_attribute; 1],
    wwn_table: [*mut sys::configfs_attribute; 2],
    tpg_attrs: [sys::configfs_attribute; 1],
    tpg_table: [*mut sys::configfs_attribute; 2],
    tpg_attrib_attrs: [sys::configfs_attribute; 1],
    tpg_attrib_table: [*mut sys::configfs_attribute; 2],
}

/// The registered fabric; unregistered on drop.
pub(crate) struct Fabric {
    // INVARIANT: registered with target core from `register` until `drop`;
    // the tables are never moved (boxed) nor changed while registered.
    tables: KBox<Tables>,
    name: &'static CStr,
}

// SAFETY: the tables are written once before registration and only read
// afterwards (by target core); the pointers in them are to 'static data or
// into the same allocation.
unsafe impl Send for Fabric {}
// SAFETY: `Fabric` has no interior mutability and the tables are not changed while
// registered: shared references only read them.
unsafe impl Sync for Fabric {}

impl Fabric {
    /// Registers the fabric under the `fabric_name` module parameter.
    pub(crate) fn register(module: &'static ThisModule) -> Result<Self> {
        let name = crate::glue::params::fabric_name();
        if name.is_empty() || name.to_bytes().len() >= FABRIC_NAME_SIZE {
            pr_err!(
                "fabric_name must be 1 to {} characters\n",
                FABRIC_NAME_SIZE - 1
            );
            return Err(EINVAL);
        }
        let mut t = KBox::new(
            Tables {
                // SAFETY: an all-zero target_core_fabric_ops is the C
                // convention for "no callback, no table".
                ops: unsafe { core::mem::zeroed() },
                wwn_attrs: [attr::attribute(c"version", module, version_show, None)],
                wwn_table: [core::ptr::null_mut(); 2],
                tpg_attrs: [attr::attribute(
                    c"nexus",
                    module,
                    tpg::nexus_show,
                    Some(tpg::nexus_store),
                )],
                tpg_table: [core::ptr::null_mut(); 2],
                tpg_attrib_attrs: [attr::attribute(
                    c"fabric_prot_type",
                    module,
                    tpg::prot_type_show,
                    Some(tpg::prot_type_store),
                )],
                tpg_attrib_table: [core::ptr::null_mut(); 2],
            },
            GFP_KERNEL,
        )?;
        let t_ref = &mut *t;
        t_ref.wwn_table = attr::table(&mut t_ref.wwn_attrs);
        t_ref.tpg_table = attr::table(&mut t_ref.tpg_attrs);
        t_ref.tpg_attrib_table = attr::table(&mut t_ref.tpg_attrib_attrs);

        let ops = &mut t_ref.ops;
        ops.module = module.as_ptr();
        ops.fabric_name = name.as_char_ptr();
        ops.max_data_sg_nents = MAX_DATA_SG_NENTS;
        ops.tpg_get_wwn = Some(tpg::get_wwn);
        ops.tpg_get_tag = Some(tpg::get_tag);
        ops.tpg_check_demo_mode = Some(check_true);
        ops.tpg_check_demo_mode_cache = Some(check_true);
        ops.tpg_check_prot_fabric_only = Some(tpg::prot_fabric_only);
        ops.check_stop_free = Some(cmd::check_stop_free);
        ops.release_cmd = Some(cmd::release_cmd);
        ops.write_pending = Some(cmd::write_pending);
        ops.queue_data_in = Some(cmd::queue_data_in);
        ops.queue_status = Some(cmd::queue_status);
        ops.queue_tm_rsp = Some(cmd::queue_tm_rsp);
        ops.aborted_task = Some(cmd::aborted_task);
        ops.fabric_make_wwn = Some(tport::make_wwn);
        ops.fabric_drop_wwn = Some(tport::drop_wwn);
        ops.fabric_make_tpg = Some(tpg::make_tpg);
        ops.fabric_drop_tpg = Some(tpg::drop_tpg);
        ops.fabric_post_link = Some(tpg::port_link);
        ops.fabric_pre_unlink = Some(tpg::port_unlink);
        ops.tfc_wwn_attrs = t_ref.wwn_table.as_mut_ptr();
        ops.tfc_tpg_base_attrs = t_ref.tpg_table.as_mut_ptr();
        ops.tfc_tpg_attrib_attrs = t_ref.tpg_attrib_table.as_mut_ptr();
        ops.default_submit_type = sys::target_submit_type_TARGET_QUEUE_SUBMIT as u8;
        ops.default_compl_type = sys::target_compl_type_TARGET_QUEUE_COMPL as u8;
        // SAFETY: `ops` is a valid, exclusively borrowed fabric ops table.
        unsafe { sys::tcm_virt_fabric_ops_set_direct(ops, true, true) };

        // SAFETY: the ops are complete; they and every table and string they
        // point to stay in place until target_unregister_template in drop.
        kernel::error::to_result(unsafe { sys::target_register_template(&t.ops) })
            .inspect_err(|e| pr_err!("target_register_template: {:?}\n", e))?;
        // INVARIANT: registered just above.
        Ok(Fabric { tables: t, name })
    }

    pub(crate) fn name(&self) -> &CStr {
        self.name
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        // SAFETY: registered in `register`, per the type invariant. Target
        // core holds a module reference for every configfs object, so none
        // is left when the module is unloaded.
        unsafe { sys::target_unregister_template(&self.tables.ops) };
    }
}

/// `tpg_check_demo_mode` and `tpg_check_demo_mode_cache`: every TPG runs in
/// demo mode (no ACLs needed), as in C `vhost_scsi`.
///
/// # Safety
///
/// Called by target core; the argument is not used.
unsafe extern "C" fn check_true(_se_tpg: *mut sys::se_portal_group) -> kernel::ffi::c_int {
    1
}

/// `<fabric>/version`.
///
/// # Safety
///
/// A configfs `show` callback.
unsafe extern "C" fn version_show(_item: *mut sys::config_item, page: *mut c_char) -> isize {
    // SAFETY: utsname() of the current task is always valid.
    let uts = unsafe { &*sys::tcm_virt_utsname() };
    let field = |f: &[c_char]| {
        let n = f.iter().position(|&c| c == 0).unwrap_or(f.len());
        // SAFETY: c_char and u8 have the same layout.
        attr::Text(unsafe { core::slice::from_raw_parts(f.as_ptr().cast::<u8>(), n) })
    };
    // SAFETY: `page` is the buffer configfs passed to this show callback.
    unsafe {
        attr::emit(
            page,
            format_args!(
                "TCM_VIRT fabric module {} on {}/{} on {}\n",
                VERSION,
                field(&uts.sysname),
                field(&uts.machine),
                field(&uts.release)
            ),
        )
    }
}
