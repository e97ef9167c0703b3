// SPDX-License-Identifier: GPL-2.0

//! The megasas front end: `/dev/tcm-megasas`, a MegaRAID SAS adapter that
//! speaks the MFI frame interface through queues mapped into userspace
//! (ABI: `include/uapi/linux/tcm_megasas.h`).
//!
//! - `adapter`: one open file = one adapter: its vhost core device (owner
//!   worker, memory table, kick and call eventfds), the register page, the
//!   endpoint, the adapter state and the reply queue; `adapter::io` the
//!   frames and SCSI commands, `adapter::mgmt` the DCMDs and events,
//!   `adapter::tmf` abort and resets through the shared layer.

mod adapter;

use crate::glue::params;
use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::virt::VmaNew,
    prelude::*,
};

/// The registered megasas device.
pub(crate) type Device = crate::chardev::Device<adapter::Adapter>;

/// Registers `/dev/<megasas_devname>`.
pub(crate) fn register() -> Result<Device> {
    Device::register(params::megasas_devname(), "megasas_devname", "")
}

#[vtable]
impl MiscDevice for adapter::Adapter {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        adapter::Adapter::new()
    }

    fn ioctl(me: &adapter::Adapter, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        me.ioctl(cmd, arg)
    }

    fn mmap(me: &adapter::Adapter, _file: &File, vma: &VmaNew) -> Result {
        me.mmap(vma)
    }
}
