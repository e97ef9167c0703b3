// SPDX-License-Identifier: GPL-2.0

//! tcm_virt: LIO SCSI targets for virtual machines.
//!
//! The module registers an LIO fabric (configfs name `vhost` by default, so
//! targetcli configures it as it does C `vhost_scsi`) and the vhost character
//! device QEMU's `vhost-scsi-pci` opens.  See `Documentation/admin-guide.rst`.
//!
//! Layout: `bindings` is the generated FFI; `fabric` holds the LIO fabric
//! (configfs wwn / tpgt / lun / nexus); `nexus` the layer the front ends
//! share (commands in flight, task management, events); `vhost` the
//! character device; `wire` the pure wire-format code that is also
//! unit-tested in userspace.

mod bindings;
mod fabric;
mod layout;
mod nexus;
mod vhost;
// The wire code is a library shared with the userspace tools (tools/wire):
// its API is `pub` for them and not all of it is used by the module.
#[allow(unreachable_pub, dead_code)]
mod wire;

use kernel::prelude::*;

module! {
    type: TcmVirt,
    name: "tcm_virt",
    authors: ["The tcm_virt developers"],
    description: "LIO fabric serving SCSI targets to virtual machines (vhost-scsi and more)",
    license: "GPL",
}

struct TcmVirt {
    // Dropped in field order: the device first, so that no new file can bind
    // a TPG once the fabric is going away.
    _vhost: vhost::Device,
    _fabric: fabric::Fabric,
}

impl kernel::Module for TcmVirt {
    fn init(module: &'static ThisModule) -> Result<Self> {
        layout::check()?;
        // SAFETY: module init runs once, before the fabric exists.
        unsafe { fabric::init_registry() };
        let fabric = fabric::Fabric::register(module)?;
        let vhost = vhost::Device::register()?;
        pr_info!("ready: fabric '{}', /dev/{}\n", fabric.name(), vhost.name());
        Ok(TcmVirt {
            _vhost: vhost,
            _fabric: fabric,
        })
    }
}
