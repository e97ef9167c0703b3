// SPDX-License-Identifier: GPL-2.0

//! tcm_virt: LIO SCSI targets for virtual machines.
//!
//! The module registers an LIO fabric (configfs name `vhost` by default, so
//! targetcli configures it as it does C `vhost_scsi`) and the vhost character
//! device QEMU's `vhost-scsi-pci` opens, and the megasas device (an MFI
//! adapter whose queues are mapped into userspace).  See `Documentation/admin-guide.rst`.
//!
//! Layout: `bindings` is the generated FFI; `fabric` holds the LIO fabric
//! (configfs wwn / tpgt / lun / nexus); `nexus` the layer the front ends
//! share (commands in flight, task management, events); `vhost` and
//! `megasas` the character devices (`chardev` what they share); `pages` pinned user pages in
//! scatterlists; `wire` the pure wire-format code that is also
//! unit-tested in userspace.

mod bindings;
mod chardev;
mod fabric;
mod glue;
mod layout;
mod megasas;
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
    // Dropped in field order: the devices first, so that no new file can
    // bind a TPG once the fabric is going away.
    _megasas: megasas::Device,
    _vhost: vhost::Device,
    _fabric: fabric::Fabric,
    // After the devices and the fabric: no command is left to submit.
    _offload: fabric::OffloadQueue,
    // Last: every device's statistics file is gone with the devices.
    _stats: nexus::stats::Root,
}

impl kernel::Module for TcmVirt {
    fn init(module: &'static ThisModule) -> Result<Self> {
        layout::check()?;
        // SAFETY: module init runs once, before the fabric exists.
        unsafe { fabric::init_registry() };
        // SAFETY: module init runs once, before the devices are registered.
        let stats = unsafe { nexus::stats::Root::new() };
        // SAFETY: module init runs once; the queue lives in the module.
        let offload = unsafe { fabric::OffloadQueue::new() }?;
        let fabric = fabric::Fabric::register(module)?;
        let vhost = vhost::register()?;
        let megasas = megasas::register()?;
        pr_info!(
            "ready: fabric '{}', /dev/{}, /dev/{}\n",
            fabric.name(),
            vhost.name(),
            megasas.name()
        );
        Ok(TcmVirt {
            _megasas: megasas,
            _vhost: vhost,
            _fabric: fabric,
            _offload: offload,
            _stats: stats,
        })
    }
}
