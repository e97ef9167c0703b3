// SPDX-License-Identifier: GPL-2.0

//! The vhost front end: the character device (`/dev/vhost-scsi` by default)
//! that QEMU's `vhost-scsi-pci` and libvirt open, with the ioctl ABI of C
//! `vhost_scsi` (ABI version 1).
//!
//! - `dev`: one open file = one virtio-scsi device: the vhost core device and
//!   its virtqueues, the ioctls, the endpoint (the TPGs it serves).
//! - `io`: the request virtqueues: requests parsed from the descriptor
//!   chains, guest pages mapped into scatterlists, commands submitted to
//!   target core and completed into the guest's response buffers.
//! - `ctl`: the control and event virtqueues.

mod ctl;
mod dev;
mod io;

use crate::glue::params;
use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    prelude::*,
};

/// The registered vhost device.
pub(crate) type Device = crate::chardev::Device<dev::VhostScsi>;

/// Registers `/dev/<vhost_devname>`.
pub(crate) fn register() -> Result<Device> {
    Device::register(
        params::vhost_devname(),
        "vhost_devname",
        ": is vhost_scsi loaded?",
    )
}

#[vtable]
impl MiscDevice for dev::VhostScsi {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        dev::VhostScsi::new()
    }

    fn ioctl(me: &dev::VhostScsi, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        me.ioctl(cmd, arg)
    }
}
