// SPDX-License-Identifier: GPL-2.0

//! The megasas front end: `/dev/tcm-megasas`, a MegaRAID SAS adapter that
//! speaks the MFI frame interface through queues mapped into userspace
//! (ABI: `include/uapi/linux/tcm_megasas.h`).
//!
//! - `adapter`: one open file = one adapter: its vhost core device (owner
//!   worker, memory table, kick and call eventfds), the register page, the
//!   endpoint, the frames' life cycle and the DCMD answers.

mod adapter;

use crate::bindings as sys;
use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    mm::virt::VmaNew,
    prelude::*,
};

pub(crate) use adapter::release_cmd;

/// The registered misc device; deregistered on drop.
pub(crate) struct Device {
    _reg: Pin<KBox<MiscDeviceRegistration<adapter::Adapter>>>,
    name: &'static CStr,
}

impl Device {
    /// Registers `/dev/<megasas_devname>`.
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: the parameter is a NUL-terminated string that lives as long
        // as the module (read-only parameter, 0444).
        let name = unsafe { CStr::from_char_ptr(sys::tcm_virt_param_megasas_devname()) };
        if name.is_empty() || name.to_bytes().contains(&b'/') {
            pr_err!("megasas_devname must be a non-empty name without '/'\n");
            return Err(EINVAL);
        }
        let reg = KBox::pin_init(
            MiscDeviceRegistration::register(MiscDeviceOptions { name }),
            GFP_KERNEL,
        )
        .inspect_err(|e| {
            pr_err!(
                "cannot register /dev/{} ({:?})\n",
                name.to_str().unwrap_or("?"),
                e
            )
        })?;
        Ok(Device { _reg: reg, name })
    }

    pub(crate) fn name(&self) -> &CStr {
        self.name
    }
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
