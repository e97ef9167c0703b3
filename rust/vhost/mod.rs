// SPDX-License-Identifier: GPL-2.0

//! The vhost character device (`/dev/vhost-scsi` by default), the one QEMU's
//! `vhost-scsi-pci` and libvirt open.
//!
//! This version registers the device and tracks open files; the vhost and
//! vhost-scsi ioctls are answered `-ENOTTY` until the vhost front end lands.

use crate::bindings as sys;
use kernel::{
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

/// The registered misc device; deregistered on drop.
pub(crate) struct Device {
    _reg: Pin<KBox<MiscDeviceRegistration<VhostFile>>>,
    name: &'static CStr,
}

impl Device {
    /// Registers `/dev/<vhost_devname>`.
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: the parameter is a NUL-terminated string that lives as long
        // as the module (read-only parameter, 0444).
        let name = unsafe { CStr::from_char_ptr(sys::tcm_virt_param_vhost_devname()) };
        if name.is_empty() || name.to_bytes().contains(&b'/') {
            pr_err!("vhost_devname must be a non-empty name without '/'\n");
            return Err(EINVAL);
        }
        let reg = KBox::pin_init(
            MiscDeviceRegistration::register(MiscDeviceOptions { name }),
            GFP_KERNEL,
        )
        .inspect_err(|e| {
            pr_err!(
                "cannot register /dev/{} ({:?}): is vhost_scsi loaded?\n",
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

/// One open file of the device: one virtio-scsi host for one VM.
pub(crate) struct VhostFile;

#[vtable]
impl MiscDevice for VhostFile {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        Ok(KBox::new(VhostFile, GFP_KERNEL)?)
    }

    fn ioctl(_me: &VhostFile, _file: &File, _cmd: u32, _arg: usize) -> Result<isize> {
        Err(ENOTTY)
    }
}
