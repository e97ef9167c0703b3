// SPDX-License-Identifier: GPL-2.0

//! The module's pure wire code (`rust/wire/`), compiled for userspace: the
//! same source files, so the unit tests exercise exactly what the kernel runs.

#![cfg_attr(not(test), no_std)]

#[path = "../../../rust/wire/mod.rs"]
mod wire;

pub use wire::*;
