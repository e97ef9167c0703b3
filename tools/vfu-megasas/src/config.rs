// SPDX-License-Identifier: GPL-2.0
//! The PCI configuration space of the presented function (no I/O).
//!
//! A type-0 header as a MegaRAID SAS 9261 (SAS2108) shows it: LSI
//! 1000:0079, subsystem 1000:9261, class 0x010400 (RAID), revision 5; one
//! 32-bit non-prefetchable memory BAR of 16 KiB (the MFI registers, the
//! MSI-X table at 0x2000 and its PBA at 0x3800), no I/O BAR, no expansion
//! ROM, interrupt pin A.  Capabilities: power management at 0x50, MSI-X
//! (one vector) at 0x68.  No PCI Express capability: the function sits on
//! q35's root bus as an integrated (conventional) device, and 256 bytes of
//! configuration space keep QEMU from looking for extended capabilities.
//!
//! Writes change only the bits real hardware lets software change: the
//! command register's enables, the cache line size, BAR0's address bits
//! (so all-ones sizing reads back the size mask), the interrupt line, the
//! PM power state and MSI-X's enable and function-mask bits.

use crate::proto::{Errno, EINVAL};
use std::ops::Range;

pub const SIZE: usize = 256;

pub const VENDOR_ID: u16 = 0x1000;
pub const DEVICE_ID: u16 = 0x0079;
pub const SUBSYSTEM_VENDOR_ID: u16 = 0x1000;
pub const SUBSYSTEM_ID: u16 = 0x9261;
pub const REVISION: u8 = 0x05;
/// Mass storage (0x01), RAID (0x04), programming interface 0.
pub const CLASS_CODE: u32 = 0x01_04_00;

pub const BAR0_SIZE: u32 = 0x4000;
pub const MSIX_TABLE_OFFSET: u32 = 0x2000;
pub const MSIX_PBA_OFFSET: u32 = 0x3800;
pub const MSIX_VECTORS: u16 = 1;

pub const COMMAND: usize = 0x04;
pub const STATUS: usize = 0x06;
pub const BAR0: usize = 0x10;
pub const CAP_PTR: usize = 0x34;
pub const INTERRUPT_LINE: usize = 0x3c;
pub const INTERRUPT_PIN: usize = 0x3d;
pub const PM_CAP: usize = 0x50;
pub const MSIX_CAP: usize = 0x68;

pub const CAP_ID_PM: u8 = 0x01;
pub const CAP_ID_MSIX: u8 = 0x11;

pub const STATUS_CAP_LIST: u16 = 1 << 4;
/// Memory space, bus master, parity error response, SERR#, interrupt
/// disable (no I/O space: there is no I/O BAR).
pub const COMMAND_WRITABLE: u16 = 0x0002 | 0x0004 | 0x0040 | 0x0100 | 0x0400;
pub const MSIX_ENABLE: u16 = 1 << 15;
pub const MSIX_FUNCTION_MASK: u16 = 1 << 14;

/// The configuration space and the mask of its writable bits.
#[derive(Clone)]
pub struct ConfigSpace {
    bytes: [u8; SIZE],
    writable: [u8; SIZE],
}

impl Default for ConfigSpace {
    fn default() -> Self {
        Self::new()
    }
}

/// `off..off + len` if it lies inside `size` bytes.
pub fn span(off: u64, len: usize, size: usize) -> Option<Range<usize>> {
    let start = usize::try_from(off).ok()?;
    let end = start.checked_add(len)?;
    (end <= size).then_some(start..end)
}

impl ConfigSpace {
    /// The power-on state.
    pub fn new() -> ConfigSpace {
        let mut c = ConfigSpace {
            bytes: [0; SIZE],
            writable: [0; SIZE],
        };
        c.set16(0x00, VENDOR_ID);
        c.set16(0x02, DEVICE_ID);
        c.set16(STATUS, STATUS_CAP_LIST);
        c.bytes[0x08] = REVISION;
        c.bytes[0x09] = CLASS_CODE as u8;
        c.bytes[0x0a] = (CLASS_CODE >> 8) as u8;
        c.bytes[0x0b] = (CLASS_CODE >> 16) as u8;
        // BAR0: memory, 32-bit, non-prefetchable (low bits 0), unassigned.
        c.set16(0x2c, SUBSYSTEM_VENDOR_ID);
        c.set16(0x2e, SUBSYSTEM_ID);
        c.bytes[CAP_PTR] = PM_CAP as u8;
        c.bytes[INTERRUPT_PIN] = 1;
        // Power management: version 3, no D1/D2, no PME; PMCSR in D0 with
        // No_Soft_Reset (a D3hot->D0 transition keeps the state).
        c.bytes[PM_CAP] = CAP_ID_PM;
        c.bytes[PM_CAP + 1] = MSIX_CAP as u8;
        c.set16(PM_CAP + 2, 0x0003);
        c.set16(PM_CAP + 4, 0x0008);
        // MSI-X: table size N-1, table and PBA in BAR0 (BIR 0).
        c.bytes[MSIX_CAP] = CAP_ID_MSIX;
        c.bytes[MSIX_CAP + 1] = 0;
        c.set16(MSIX_CAP + 2, MSIX_VECTORS - 1);
        c.set32(MSIX_CAP + 4, MSIX_TABLE_OFFSET);
        c.set32(MSIX_CAP + 8, MSIX_PBA_OFFSET);

        c.mask16(COMMAND, COMMAND_WRITABLE);
        c.writable[0x0c] = 0xff; // cache line size
        c.mask32(BAR0, !(BAR0_SIZE - 1));
        c.writable[INTERRUPT_LINE] = 0xff;
        c.mask16(PM_CAP + 4, 0x0003); // power state
        c.mask16(MSIX_CAP + 2, MSIX_ENABLE | MSIX_FUNCTION_MASK);
        c
    }

    fn set16(&mut self, o: usize, v: u16) {
        self.bytes[o..o + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn set32(&mut self, o: usize, v: u32) {
        self.bytes[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn mask16(&mut self, o: usize, v: u16) {
        self.writable[o..o + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn mask32(&mut self, o: usize, v: u32) {
        self.writable[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn get16(&self, o: usize) -> u16 {
        u16::from_le_bytes([self.bytes[o], self.bytes[o + 1]])
    }

    /// Back to the power-on state (device reset).
    pub fn reset(&mut self) {
        *self = ConfigSpace::new();
    }

    /// Reads `out.len()` bytes at `off`.
    pub fn read(&self, off: u64, out: &mut [u8]) -> Result<(), Errno> {
        let r = span(off, out.len(), SIZE).ok_or(EINVAL)?;
        out.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    /// Writes `data` at `off`: only the writable bits change.
    pub fn write(&mut self, off: u64, data: &[u8]) -> Result<(), Errno> {
        let r = span(off, data.len(), SIZE).ok_or(EINVAL)?;
        for (i, &v) in r.zip(data) {
            let m = self.writable[i];
            self.bytes[i] = (self.bytes[i] & !m) | (v & m);
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn command(&self) -> u16 {
        self.get16(COMMAND)
    }

    pub fn msix_control(&self) -> u16 {
        self.get16(MSIX_CAP + 2)
    }

    pub fn msix_enabled(&self) -> bool {
        self.msix_control() & MSIX_ENABLE != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r32(c: &ConfigSpace, o: u64) -> u32 {
        let mut b = [0u8; 4];
        c.read(o, &mut b).unwrap();
        u32::from_le_bytes(b)
    }

    fn w32(c: &mut ConfigSpace, o: u64, v: u32) {
        c.write(o, &v.to_le_bytes()).unwrap();
    }

    #[test]
    fn identity() {
        let c = ConfigSpace::new();
        assert_eq!(r32(&c, 0), 0x0079_1000);
        assert_eq!(r32(&c, 8), 0x0104_0005);
        assert_eq!(r32(&c, 0x2c), 0x9261_1000);
        let mut b = [0u8; 1];
        c.read(0x0e, &mut b).unwrap();
        assert_eq!(b[0], 0, "type-0 header, single function");
        assert_eq!(r32(&c, 0x30), 0, "no expansion ROM");
        assert_ne!(c.get16(STATUS) & STATUS_CAP_LIST, 0);
    }

    #[test]
    fn bar_sizing() {
        let mut c = ConfigSpace::new();
        assert_eq!(r32(&c, 0x10), 0, "memory, 32-bit, non-prefetchable");
        w32(&mut c, 0x10, 0xffff_ffff);
        assert_eq!(r32(&c, 0x10), 0xffff_c000, "16 KiB size mask");
        w32(&mut c, 0x10, 0xfebf_1234);
        assert_eq!(r32(&c, 0x10), 0xfebf_0000);
        for bar in [0x14u64, 0x18, 0x1c, 0x20, 0x24, 0x30] {
            w32(&mut c, bar, 0xffff_ffff);
            assert_eq!(r32(&c, bar), 0, "BAR/ROM at {bar:#x} is not implemented");
        }
    }

    #[test]
    fn read_only_fields() {
        let mut c = ConfigSpace::new();
        let before = c.bytes;
        w32(&mut c, 0, 0xffff_ffff);
        w32(&mut c, 8, 0);
        w32(&mut c, 0x2c, 0);
        w32(&mut c, 0x34, 0);
        assert_eq!(c.bytes[..0x10], before[..0x10]);
        assert_eq!(c.bytes[0x2c..0x38], before[0x2c..0x38]);
        // The command register keeps its read-only bits clear (no I/O
        // space), the status register does not change.
        w32(&mut c, 4, 0xffff_ffff);
        assert_eq!(c.command(), COMMAND_WRITABLE);
        assert_eq!(c.get16(STATUS), STATUS_CAP_LIST);
        // Interrupt line is writable, pin is not.
        c.write(0x3c, &[0x0b, 0x04]).unwrap();
        let mut b = [0u8; 2];
        c.read(0x3c, &mut b).unwrap();
        assert_eq!(b, [0x0b, 0x01]);
        c.reset();
        assert_eq!(c.command(), 0);
        assert_eq!(r32(&c, 0x10), 0);
    }

    #[test]
    fn capability_walk() {
        let c = ConfigSpace::new();
        let mut at = c.bytes[CAP_PTR] as usize;
        let mut seen = Vec::new();
        while at != 0 {
            assert!(
                at >= 0x40 && at.is_multiple_of(4) && at + 4 <= SIZE,
                "cap at {at:#x}"
            );
            assert!(seen.len() < 48, "capability list loops");
            seen.push((at, c.bytes[at]));
            at = c.bytes[at + 1] as usize;
        }
        assert_eq!(seen, vec![(PM_CAP, CAP_ID_PM), (MSIX_CAP, CAP_ID_MSIX)]);
        // MSI-X: one vector, table and PBA in BAR0 inside its 16 KiB.
        assert_eq!(c.msix_control() & 0x7ff, MSIX_VECTORS - 1);
        let table = r32(&c, MSIX_CAP as u64 + 4);
        let pba = r32(&c, MSIX_CAP as u64 + 8);
        assert_eq!((table & 7, table & !7), (0, 0x2000));
        assert_eq!((pba & 7, pba & !7), (0, 0x3800));
        const {
            assert!(MSIX_TABLE_OFFSET + 16 * MSIX_VECTORS as u32 <= MSIX_PBA_OFFSET);
            assert!(MSIX_PBA_OFFSET + 8 <= BAR0_SIZE);
        }
    }

    #[test]
    fn msix_control_bits() {
        let mut c = ConfigSpace::new();
        let ctl = MSIX_CAP as u64 + 2;
        c.write(ctl, &0xffffu16.to_le_bytes()).unwrap();
        assert_eq!(c.msix_control(), MSIX_ENABLE | MSIX_FUNCTION_MASK);
        assert!(c.msix_enabled());
        c.write(ctl, &0u16.to_le_bytes()).unwrap();
        assert!(!c.msix_enabled());
        assert_eq!(c.msix_control() & 0x7ff, 0, "table size is read-only");
        // PM: the power state bits only.
        c.write(PM_CAP as u64 + 4, &0xffffu16.to_le_bytes())
            .unwrap();
        assert_eq!(c.get16(PM_CAP + 4), 0x000b);
    }

    #[test]
    fn out_of_range_accesses_fail() {
        let mut c = ConfigSpace::new();
        let mut b = [0u8; 4];
        assert_eq!(c.read(253, &mut b), Err(EINVAL));
        assert_eq!(c.read(u64::MAX, &mut b), Err(EINVAL));
        assert_eq!(c.write(256, &[0]), Err(EINVAL));
        assert_eq!(c.write(u64::MAX - 1, &[0, 0, 0, 0]), Err(EINVAL));
        let mut all = [0u8; SIZE];
        c.read(0, &mut all).unwrap();
        assert_eq!(all[..4], [0x00, 0x10, 0x79, 0x00]);
    }
}
