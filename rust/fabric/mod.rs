// SPDX-License-Identifier: GPL-2.0

//! The LIO fabric: registration with target core and the configfs tree
//! `/sys/kernel/config/target/<fabric_name>/<wwn>/tpgt_N/{lun,nexus,...}`.
//!
//! The layout, names, attributes and errnos are those of C `vhost_scsi`, so
//! that unmodified targetcli/rtslib and saved configurations work.

mod cmd;
mod tpg;
mod tport;
mod vpd;

pub(crate) use crate::glue::target::{
    CmdHead, DataDir, OffloadQueue, Offloads, Submit, Submitted, TaskAttr,
};
use crate::glue::{
    configfs::{PageWriter, Text, WwnAttr},
    target::{with_utsname, DataIn, FabricOps, Registered, Template, TpgRegistrar},
};
pub(crate) use cmd::Front;
use kernel::{prelude::*, sync::Arc};
pub(crate) use tpg::{init_registry, tpgs_of, Binding};
pub(crate) use vpd::prepare;

/// Fabric version reported in `<fabric>/version`.
const VERSION: &str = "v0.1";

/// Scatterlist entries per command target core may use: the most pages a
/// front end maps for one command.
pub(crate) use crate::glue::pages::MAX_PAGES as MAX_DATA_SG_NENTS;

/// Longest fabric name plus its NUL (`TARGET_FABRIC_NAME_SIZE` in target
/// core's private header).
const FABRIC_NAME_SIZE: usize = 32;

/// The fabric's callbacks.
struct Ops;

impl FabricOps for Ops {
    type Tport = tport::Tport;
    type Tpg = tpg::Tpg;

    fn make_wwn(name: &[u8]) -> Result<KBox<tport::Tport>> {
        tport::make_wwn(name)
    }

    fn drop_wwn(tport: KBox<tport::Tport>) {
        tport::drop_wwn(tport)
    }

    fn make_tpg(
        tport: &tport::Tport,
        name: &[u8],
        reg: TpgRegistrar<'_, tpg::Tpg>,
    ) -> Result<Registered<tpg::Tpg>> {
        tpg::make_tpg(tport, name, reg)
    }

    fn drop_tpg(tpg: &tpg::Tpg) {
        tpg.drop_tpg()
    }

    fn tpg_dropped(tpg: Arc<tpg::Tpg>) {
        tpg::tpg_dropped(tpg)
    }

    // Inline: on every read's completion (`queue_data_in`).
    #[inline(always)]
    fn data_in(cmd: DataIn<'_>) {
        vpd::complete_data_in(cmd)
    }
}

/// The registered fabric; unregistered on drop.
pub(crate) struct Fabric {
    _template: Template,
    name: &'static CStr,
}

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
        Ok(Fabric {
            _template: Template::register::<Ops, VersionAttr, tpg::NexusAttr, tpg::ProtTypeAttr>(
                module,
                name,
                MAX_DATA_SG_NENTS,
            )?,
            name,
        })
    }

    pub(crate) fn name(&self) -> &CStr {
        self.name
    }
}

/// `<fabric>/version`.
struct VersionAttr;

impl WwnAttr for VersionAttr {
    const NAME: &'static CStr = c"version";

    fn show(out: &mut PageWriter<'_>) -> Result {
        with_utsname(|sysname, machine, release| {
            out.emit(format_args!(
                "TCM_VIRT fabric module {} on {}/{} on {}\n",
                VERSION,
                Text(sysname),
                Text(machine),
                Text(release)
            ))
        });
        Ok(())
    }
}
