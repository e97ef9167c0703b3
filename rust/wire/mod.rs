// SPDX-License-Identifier: GPL-2.0

//! Wire formats and names, in pure `core` code.
//!
//! Everything here is free of kernel types so that the very same source is
//! compiled into `tcm_virt.ko` (as `crate::wire`) and, through
//! `tools/wire`, built by cargo for the unit tests (`cargo test`) and the
//! userspace tools (`vsdrv`, `mfi`).

pub mod mfi;
pub mod names;
pub mod tmf;
pub mod virtio_scsi;
pub mod vpd;
