// SPDX-License-Identifier: GPL-2.0

//! What the character devices of the front ends share: registration under
//! a name given by a module parameter, and the workqueue of their task
//! management jobs.

use crate::bindings as sys;
use kernel::{
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

/// A registered misc device; deregistered on drop.
pub(crate) struct Device<T: MiscDevice> {
    _reg: Pin<KBox<MiscDeviceRegistration<T>>>,
    name: &'static CStr,
}

impl<T: MiscDevice> Device<T> {
    /// Registers `/dev/<name>`, `name` being the value of the module
    /// parameter `param`; `hint` ends the error message.
    pub(crate) fn register(name: &'static CStr, param: &str, hint: &str) -> Result<Self> {
        if name.is_empty() || name.to_bytes().contains(&b'/') {
            pr_err!("{} must be a non-empty name without '/'\n", param);
            return Err(EINVAL);
        }
        let reg = KBox::pin_init(
            MiscDeviceRegistration::register(MiscDeviceOptions { name }),
            GFP_KERNEL,
        )
        .inspect_err(|e| {
            pr_err!(
                "cannot register /dev/{} ({:?}){}\n",
                name.to_str().unwrap_or("?"),
                e,
                hint
            )
        })?;
        Ok(Device { _reg: reg, name })
    }

    pub(crate) fn name(&self) -> &CStr {
        self.name
    }
}

/// The workqueue of the task management jobs: unbound, for work that
/// sleeps long (a TMF waits for target core to abort what it names).
pub(crate) fn tmf_queue() -> &'static kernel::workqueue::Queue {
    // SAFETY: `system_dfl_long_wq` is created at boot, never destroyed, and
    // never NULL once the kernel runs modules.
    unsafe { kernel::workqueue::Queue::from_raw(sys::system_dfl_long_wq) }
}
