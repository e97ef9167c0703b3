// SPDX-License-Identifier: GPL-2.0
//! BAR0: the MFI registers of a gen2 (SAS2108) controller over the
//! adapter's register page, as a state machine with no I/O.
//!
//! The register page (`struct tcm_megasas_regs`) is reached through the
//! [`RegisterPage`] trait, so tests run against an in-memory page.  A write
//! returns the [`Effect`]s the caller must carry out on the adapter (a
//! doorbell after a post, a reset).
//!
//! Registers (offsets as Linux's `struct megasas_register_set`):
//!
//! | offset | name | read | write |
//! |---|---|---|---|
//! | 0x18 | outbound_msg_0 | status word | ignored |
//! | 0x20 | inbound_doorbell | 0 | handshake (below) |
//! | 0x30 | outbound_intr_status | bit 0: replies not yet acknowledged | ignored |
//! | 0x34 | outbound_intr_mask | the mask | the mask |
//! | 0x40 | inbound_queue_port | 0 | posts the (32-bit) frame address |
//! | 0xa0 | outbound_doorbell_clear | 0 | bit 0 acknowledges the replies |
//! | 0xb0 | outbound_scratch_pad_0 | status word | ignored |
//! | 0xb4 | outbound_scratch_pad_1 | 0 | ignored |
//! | 0xc0/0xc4 | inbound_low/high_queue_port | 0 | high latches, low posts high:low |
//! | 0xf8 | host_diag | write-enable / reset bits | reset when write-enabled |
//! | 0xfc | seq_offset | 0 | the unlock sequence 0,4,b,2,7,d |
//!
//! The status word is the page's `fw_status` with bit 26 ORed in: bit 26 is
//! what Linux's `megasas_init_fw` reads as "MSI-X supported" (it then uses
//! one vector) and what `megasas_init_adapter_mfi` reads as
//! `fw_support_ieee` (IEEE/skinny SGLs, which the front end takes).
//!
//! Interrupt status: "pending" is `replies != acknowledged`, where
//! `replies` is the page's free-running count of replies the kernel posted
//! and `acknowledged` is its value at the last write of bit 0 to
//! outbound_doorbell_clear (or at a reset).  The firmware-state-change bit
//! (bit 2) is never set: the adapter has no fault state to report.
//!
//! A reset (the handshake or host_diag one) runs on a thread of the server
//! while messages go on being answered: from [`Mfi::begin_reset`] to
//! [`Mfi::reset_done`] the status word keeps the value it had, host_diag
//! its reset bit, and posts are dropped.

use crate::proto::{Errno, EINVAL};

pub const BAR_SIZE: u64 = crate::config::BAR0_SIZE as u64;

pub const OMSG0: u32 = 0x18;
pub const IDB: u32 = 0x20;
pub const OSTS: u32 = 0x30;
pub const OMSK: u32 = 0x34;
pub const IQP: u32 = 0x40;
pub const ODCR0: u32 = 0xa0;
pub const OSP0: u32 = 0xb0;
pub const OSP1: u32 = 0xb4;
pub const IQPL: u32 = 0xc0;
pub const IQPH: u32 = 0xc4;
pub const DIAG: u32 = 0xf8;
pub const SEQ: u32 = 0xfc;

pub const STATE_MASK: u32 = 0xf000_0000;
#[cfg_attr(not(test), allow(dead_code))]
pub const STATE_READY: u32 = 0xb000_0000;
pub const STATE_OPERATIONAL: u32 = 0xc000_0000;
/// Status word bit 26: MSI-X supported (and IEEE SGLs).
pub const FW_MSIX: u32 = 1 << 26;

/// Inbound doorbell bits (only `INIT_READY` acts; the others are accepted).
pub const INIT_READY: u32 = 0x02;
#[cfg_attr(not(test), allow(dead_code))]
mod idb_bits {
    pub const INIT_ABORT: u32 = 0x01;
    pub const INIT_MFIMODE: u32 = 0x04;
    pub const INIT_CLEAR_HANDSHAKE: u32 = 0x08;
    pub const INIT_HOTPLUG: u32 = 0x10;
    pub const STOP_ADP: u32 = 0x20;
    /// `MFI_RESET_FLAGS`: what `megasas_transition_to_ready` writes to the
    /// inbound doorbell of an OPERATIONAL adapter.
    pub const RESET_FLAGS: u32 = super::INIT_READY | INIT_MFIMODE | INIT_ABORT;
    /// `MFI_GEN2_ENABLE_INTERRUPT_MASK`: the interrupts the driver unmasks.
    pub const GEN2_INTERRUPTS: u32 = 0x1 | 0x4;
}
#[cfg(test)]
use idb_bits::*;

pub const OSTS_REPLY: u32 = 0x1;

pub const DIAG_WRITE_ENABLE: u32 = 0x80;
pub const DIAG_RESET_ADAPTER: u32 = 0x04;
/// The values `megasas_adp_reset_gen2` writes to seq_offset to unlock
/// host_diag.
pub const SEQ_KEY: [u32; 6] = [0x0, 0x4, 0xb, 0x2, 0x7, 0xd];

pub const IQ_ENTRIES: u32 = 1024;

/// The adapter's register page, `struct tcm_megasas_regs`.
pub trait RegisterPage {
    fn fw_status(&self) -> u32;
    fn replies(&self) -> u32;
    fn iq_producer(&self) -> u32;
    fn iq_consumer(&self) -> u32;
    /// Stores `entry` in `iq[slot]` (`slot < IQ_ENTRIES`), then, ordered
    /// after it (the kernel reads the entry after seeing the producer),
    /// `producer` in `iq_producer`.
    fn publish(&mut self, slot: usize, entry: u64, producer: u32);
    /// After a [`RegisterPage::publish`]: whether the kernel reads the
    /// entry without a doorbell (`iq_no_kick`, read after a full barrier
    /// that orders it after the producer's store).  False: ring it.
    fn no_kick(&self) -> bool {
        false
    }
}

/// Appends `entry` to the inbound queue: false if the queue holds
/// `IQ_ENTRIES` entries the kernel has not read yet.
pub fn post(page: &mut dyn RegisterPage, entry: u64) -> bool {
    let p = page.iq_producer();
    if p.wrapping_sub(page.iq_consumer()) >= IQ_ENTRIES {
        return false;
    }
    page.publish((p % IQ_ENTRIES) as usize, entry, p.wrapping_add(1));
    true
}

/// Why the adapter is reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetCause {
    /// `MFI_INIT_READY` to the inbound doorbell of an OPERATIONAL adapter.
    Handshake,
    /// `DIAG_RESET_ADAPTER` to host_diag after the unlock sequence.
    HostDiag,
}

/// What a register write asks of the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// An entry was appended to the inbound queue: ring the doorbell.
    Posted(u64),
    /// The inbound queue is full: ring the doorbell, wait for the kernel to
    /// read, then post the entry again.
    QueueFull(u64),
    /// Reset the adapter (TCM_MEGASAS_RESET), then call
    /// [`Mfi::reset_done`].  [`Mfi::begin_reset`] has been called: until
    /// `reset_done`, the status word reads as it was and no write starts
    /// another reset or posts.
    Reset(ResetCause),
    /// A post while the adapter resets: dropped, as a controller in reset
    /// drops writes to its queue port (the driver posts nothing until it
    /// has seen READY after the reset).
    DroppedInReset(u64),
    /// The interrupt mask or acknowledgement changed: re-evaluate INTx.
    InterruptState,
}

/// The register state the server keeps (the rest is the register page).
#[derive(Clone, Debug)]
pub struct Mfi {
    msix: bool,
    mask: u32,
    acked: u32,
    iq_high: u32,
    seq: usize,
    diag: u32,
    /// While a reset runs: the status word as it was when it began.
    resetting: Option<u32>,
}

impl Mfi {
    /// `msix`: the status word advertises MSI-X (bit 26).
    pub fn new(msix: bool, page: &dyn RegisterPage) -> Mfi {
        Mfi {
            msix,
            mask: 0xffff_ffff,
            acked: page.replies(),
            iq_high: 0,
            seq: 0,
            diag: 0,
            resetting: None,
        }
    }

    /// A reset begins: the status word keeps its value (the driver polls
    /// it for the change to READY, or host_diag for its reset bit to
    /// clear) until [`Mfi::reset_done`].
    pub fn begin_reset(&mut self, page: &dyn RegisterPage) {
        if self.resetting.is_none() {
            self.resetting = Some(self.status_word(page));
        }
    }

    /// A reset runs (between [`Mfi::begin_reset`] and
    /// [`Mfi::reset_done`]).
    pub fn in_reset(&self) -> bool {
        self.resetting.is_some()
    }

    /// Power-on values (device reset): interrupts masked, nothing pending,
    /// host_diag locked.  A reset in progress stays in progress.
    pub fn reset(&mut self, page: &dyn RegisterPage) {
        let resetting = self.resetting;
        *self = Mfi::new(self.msix, page);
        self.resetting = resetting;
    }

    /// After the adapter reset: the replies posted before it are forgotten,
    /// host_diag locks again with its reset bit clear (what
    /// `megasas_adp_reset_gen2` waits for).
    pub fn reset_done(&mut self, page: &dyn RegisterPage) {
        self.acked = page.replies();
        self.seq = 0;
        self.diag = 0;
        self.iq_high = 0;
        self.resetting = None;
    }

    pub fn status_word(&self, page: &dyn RegisterPage) -> u32 {
        if let Some(w) = self.resetting {
            return w;
        }
        page.fw_status() | if self.msix { FW_MSIX } else { 0 }
    }

    /// Replies posted and not acknowledged.
    pub fn pending(&self, page: &dyn RegisterPage) -> bool {
        page.replies() != self.acked
    }

    /// The reply interrupt is unmasked.
    pub fn reply_interrupt_enabled(&self) -> bool {
        self.mask & OSTS_REPLY == 0
    }

    /// INTx should be asserted.
    pub fn intx_level(&self, page: &dyn RegisterPage) -> bool {
        self.reply_interrupt_enabled() && self.pending(page)
    }

    pub fn read32(&self, page: &dyn RegisterPage, off: u32) -> u32 {
        match off {
            OMSG0 | OSP0 => self.status_word(page),
            OSTS if self.pending(page) => OSTS_REPLY,
            OMSK => self.mask,
            DIAG => self.diag,
            // Scratch pad 1 is 0: no MFI feature bits (interrupt
            // coalescing and the like are Fusion-only).
            OSP1 => 0,
            _ => 0,
        }
    }

    pub fn write32(&mut self, page: &mut dyn RegisterPage, off: u32, v: u32) -> Option<Effect> {
        match off {
            IDB => {
                let state = page.fw_status() & STATE_MASK;
                if v & INIT_READY != 0 && state == STATE_OPERATIONAL && !self.in_reset() {
                    self.begin_reset(page);
                    return Some(Effect::Reset(ResetCause::Handshake));
                }
                // CLEAR_HANDSHAKE/HOTPLUG (the adapter never waits for a
                // handshake), READY while READY, ABORT alone, STOP_ADP:
                // nothing to do.
                None
            }
            OMSK => {
                self.mask = v;
                Some(Effect::InterruptState)
            }
            ODCR0 => {
                if v & OSTS_REPLY != 0 {
                    self.acked = page.replies();
                }
                Some(Effect::InterruptState)
            }
            IQP => Some(self.post(page, u64::from(v))),
            IQPH => {
                self.iq_high = v;
                None
            }
            IQPL => {
                let e = (u64::from(self.iq_high) << 32) | u64::from(v);
                self.iq_high = 0;
                Some(self.post(page, e))
            }
            SEQ => {
                self.seq = if SEQ_KEY.get(self.seq) == Some(&v) {
                    self.seq + 1
                } else if v == SEQ_KEY[0] {
                    1
                } else {
                    0
                };
                if self.seq == SEQ_KEY.len() {
                    self.diag |= DIAG_WRITE_ENABLE;
                    self.seq = 0;
                }
                None
            }
            DIAG => {
                if self.diag & DIAG_WRITE_ENABLE == 0 {
                    return None;
                }
                if v & DIAG_RESET_ADAPTER != 0 && !self.in_reset() {
                    self.diag |= DIAG_RESET_ADAPTER;
                    self.begin_reset(page);
                    return Some(Effect::Reset(ResetCause::HostDiag));
                }
                None
            }
            _ => None,
        }
    }

    fn post(&mut self, page: &mut dyn RegisterPage, e: u64) -> Effect {
        if self.in_reset() {
            Effect::DroppedInReset(e)
        } else if post(page, e) {
            Effect::Posted(e)
        } else {
            Effect::QueueFull(e)
        }
    }

    /// A read of `out.len()` bytes at `off` of BAR0.  Registers are read
    /// whole dwords at a time; bytes outside the registers read 0 (the
    /// MSI-X table and PBA are emulated by QEMU and never reach here).
    pub fn read(&self, page: &dyn RegisterPage, off: u64, out: &mut [u8]) -> Result<(), Errno> {
        let r = crate::config::span(off, out.len(), BAR_SIZE as usize).ok_or(EINVAL)?;
        for (i, b) in r.zip(out.iter_mut()) {
            let dword = (i & !3) as u32;
            let v = self.read32(page, dword);
            *b = v.to_le_bytes()[i & 3];
        }
        Ok(())
    }

    /// A write of `data` at `off` of BAR0: 4-byte aligned writes reach the
    /// register; an 8-byte aligned write at the low queue port posts a
    /// 64-bit frame address, elsewhere it is two dword writes; narrower or
    /// unaligned writes are ignored (the registers are dword registers).
    pub fn write(
        &mut self,
        page: &mut dyn RegisterPage,
        off: u64,
        data: &[u8],
    ) -> Result<Vec<Effect>, Errno> {
        let r = crate::config::span(off, data.len(), BAR_SIZE as usize).ok_or(EINVAL)?;
        let at = r.start as u32;
        let mut fx = Vec::new();
        match *data {
            [a, b, c, d] if at.is_multiple_of(4) => {
                fx.extend(self.write32(page, at, u32::from_le_bytes([a, b, c, d])));
            }
            [a, b, c, d, e, f, g, h] if at.is_multiple_of(8) => {
                let v = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
                if at == IQPL {
                    self.iq_high = 0;
                    fx.push(self.post(page, v));
                } else {
                    fx.extend(self.write32(page, at, v as u32));
                    fx.extend(self.write32(page, at + 4, (v >> 32) as u32));
                }
            }
            _ => {}
        }
        Ok(fx)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// An in-memory register page.
    pub struct FakePage {
        pub fw_status: u32,
        pub replies: u32,
        pub producer: u32,
        pub consumer: u32,
        pub iq: Vec<u64>,
        /// (slot, entry, producer) of each publish, in order.
        pub log: Vec<(usize, u64, u32)>,
        /// What `iq_no_kick` reads.
        pub no_kick: bool,
    }

    impl FakePage {
        pub fn new(fw_status: u32) -> FakePage {
            FakePage {
                fw_status,
                replies: 0,
                producer: 0,
                consumer: 0,
                iq: vec![0; IQ_ENTRIES as usize],
                log: Vec::new(),
                no_kick: false,
            }
        }
    }

    impl RegisterPage for FakePage {
        fn fw_status(&self) -> u32 {
            self.fw_status
        }
        fn replies(&self) -> u32 {
            self.replies
        }
        fn iq_producer(&self) -> u32 {
            self.producer
        }
        fn iq_consumer(&self) -> u32 {
            self.consumer
        }
        fn publish(&mut self, slot: usize, entry: u64, producer: u32) {
            self.iq[slot] = entry;
            self.producer = producer;
            self.log.push((slot, entry, producer));
        }
        fn no_kick(&self) -> bool {
            self.no_kick
        }
    }

    /// READY, 60 SGEs, 1000 commands (what the front end reports).
    pub const READY_STATUS: u32 = STATE_READY | (60 << 16) | 1000;

    fn w(m: &mut Mfi, p: &mut FakePage, off: u32, v: u32) -> Vec<Effect> {
        m.write(p, u64::from(off), &v.to_le_bytes()).unwrap()
    }

    fn r(m: &Mfi, p: &FakePage, off: u32) -> u32 {
        let mut b = [0u8; 4];
        m.read(p, u64::from(off), &mut b).unwrap();
        u32::from_le_bytes(b)
    }

    #[test]
    fn status_word_carries_msix_bit() {
        let p = FakePage::new(READY_STATUS);
        let m = Mfi::new(true, &p);
        assert_eq!(r(&m, &p, OSP0), READY_STATUS | FW_MSIX);
        assert_eq!(r(&m, &p, OMSG0), READY_STATUS | FW_MSIX);
        assert_eq!(r(&m, &p, OSP1), 0);
        let m = Mfi::new(false, &p);
        assert_eq!(r(&m, &p, OSP0), READY_STATUS);
        // The fields Linux takes from it are untouched.
        let s = Mfi::new(true, &p).status_word(&p);
        assert_eq!((s & 0xffff, (s >> 16) & 0xff), (1000, 60));
        // Byte reads of the status word.
        let mut b = [0u8; 1];
        Mfi::new(true, &p).read(&p, 0xb3, &mut b).unwrap();
        assert_eq!(b[0], ((READY_STATUS | FW_MSIX) >> 24) as u8);
    }

    #[test]
    fn iqp_writes_fill_the_ring() {
        let mut p = FakePage::new(READY_STATUS);
        let mut m = Mfi::new(true, &p);
        // As megasas_fire_cmd_gen2: address | count << 1 | 1.
        let e = 0x1234_5640 | (2 << 1) | 1;
        assert_eq!(
            w(&mut m, &mut p, IQP, e),
            vec![Effect::Posted(u64::from(e))]
        );
        assert_eq!(p.log, vec![(0, u64::from(e), 1)]);
        // Free-running producer: the slot wraps, the index does not.
        p.producer = 2 * IQ_ENTRIES - 1;
        p.consumer = p.producer;
        w(&mut m, &mut p, IQP, 0x40 | 1);
        assert_eq!(p.log[1], (IQ_ENTRIES as usize - 1, 0x41, 2 * IQ_ENTRIES));
        w(&mut m, &mut p, IQP, 0x80 | 1);
        assert_eq!(p.log[2], (0, 0x81, 2 * IQ_ENTRIES + 1));
        // The producer wraps at 2^32.
        p.producer = u32::MAX;
        p.consumer = u32::MAX;
        w(&mut m, &mut p, IQP, 0xc1);
        assert_eq!(p.log[3], ((u32::MAX % IQ_ENTRIES) as usize, 0xc1, 0));
    }

    #[test]
    fn low_high_queue_ports_post_64_bit_addresses() {
        let mut p = FakePage::new(READY_STATUS);
        let mut m = Mfi::new(true, &p);
        // As the skinny template: high first, then low (which posts).
        assert!(w(&mut m, &mut p, IQPH, 0x1).is_empty());
        assert_eq!(p.log.len(), 0);
        w(&mut m, &mut p, IQPL, 0x2000_0041);
        assert_eq!(p.iq[0], 0x1_2000_0041);
        // The latch is consumed.
        w(&mut m, &mut p, IQPL, 0x81);
        assert_eq!(p.iq[1], 0x81);
        // One 64-bit write at the low port.
        let fx = m.write(&mut p, u64::from(IQPL), &0x2_0000_00c1u64.to_le_bytes());
        assert_eq!(fx.unwrap(), vec![Effect::Posted(0x2_0000_00c1)]);
        assert_eq!(p.iq[2], 0x2_0000_00c1);
    }

    #[test]
    fn full_queue_is_reported_not_overwritten() {
        let mut p = FakePage::new(READY_STATUS);
        let mut m = Mfi::new(true, &p);
        p.producer = 5 + IQ_ENTRIES;
        p.consumer = 5;
        assert_eq!(w(&mut m, &mut p, IQP, 0x41), vec![Effect::QueueFull(0x41)]);
        assert!(p.log.is_empty());
        p.consumer = 6;
        assert!(post(&mut p, 0x41));
        assert_eq!(p.log, vec![(5, 0x41, 6 + IQ_ENTRIES)]);
    }

    #[test]
    fn handshake_reset_only_when_operational() {
        let mut p = FakePage::new(READY_STATUS);
        let mut m = Mfi::new(true, &p);
        assert!(w(&mut m, &mut p, IDB, RESET_FLAGS).is_empty());
        assert!(w(&mut m, &mut p, IDB, INIT_CLEAR_HANDSHAKE | INIT_HOTPLUG).is_empty());
        p.fw_status = STATE_OPERATIONAL | (60 << 16) | 1000;
        assert!(w(&mut m, &mut p, IDB, INIT_CLEAR_HANDSHAKE | INIT_HOTPLUG).is_empty());
        assert!(w(&mut m, &mut p, IDB, INIT_ABORT).is_empty());
        assert!(w(&mut m, &mut p, IDB, STOP_ADP).is_empty());
        assert_eq!(
            w(&mut m, &mut p, IDB, RESET_FLAGS),
            vec![Effect::Reset(ResetCause::Handshake)]
        );
        assert_eq!(r(&m, &p, IDB), 0);
    }

    #[test]
    fn diag_reset_sequence() {
        let mut p = FakePage::new(STATE_OPERATIONAL | 1000);
        let mut m = Mfi::new(true, &p);
        // Locked: a reset write does nothing.
        assert!(w(&mut m, &mut p, DIAG, DIAG_RESET_ADAPTER).is_empty());
        assert_eq!(r(&m, &p, DIAG), 0);
        // A wrong key, then megasas_adp_reset_gen2's sequence.
        for v in [0, 4, 0xb, 5] {
            w(&mut m, &mut p, SEQ, v);
        }
        assert_eq!(r(&m, &p, DIAG) & DIAG_WRITE_ENABLE, 0);
        for v in SEQ_KEY {
            assert!(w(&mut m, &mut p, SEQ, v).is_empty());
        }
        let d = r(&m, &p, DIAG);
        assert_ne!(
            d & DIAG_WRITE_ENABLE,
            0,
            "the driver waits for write enable"
        );
        assert_eq!(
            w(&mut m, &mut p, DIAG, d | DIAG_RESET_ADAPTER),
            vec![Effect::Reset(ResetCause::HostDiag)]
        );
        // While the reset runs (on another thread of the server): host_diag
        // keeps its reset bit, the status word its value even once the
        // kernel wrote READY, no second reset starts, posts are dropped.
        let before = r(&m, &p, OSP0);
        assert!(m.in_reset());
        assert_ne!(r(&m, &p, DIAG) & DIAG_RESET_ADAPTER, 0);
        p.fw_status = READY_STATUS;
        assert_eq!(r(&m, &p, OSP0), before, "READY only once the reset is done");
        assert!(w(&mut m, &mut p, DIAG, d | DIAG_RESET_ADAPTER).is_empty());
        assert!(w(&mut m, &mut p, IDB, RESET_FLAGS).is_empty());
        assert_eq!(
            w(&mut m, &mut p, IQP, 0x1000),
            vec![Effect::DroppedInReset(0x1000)]
        );
        assert!(p.log.is_empty(), "nothing posted during the reset");
        // The reset has ended:
        m.reset_done(&p);
        assert!(!m.in_reset());
        assert_eq!(r(&m, &p, DIAG) & DIAG_RESET_ADAPTER, 0, "reset complete");
        assert_eq!(r(&m, &p, OSP0) & STATE_MASK, STATE_READY);
        // Locked again.
        assert!(w(&mut m, &mut p, DIAG, DIAG_RESET_ADAPTER).is_empty());
        // A restart of the key in the middle of a sequence.
        for v in [0, 4, 0, 4, 0xb, 2, 7, 0xd] {
            w(&mut m, &mut p, SEQ, v);
        }
        assert_ne!(r(&m, &p, DIAG) & DIAG_WRITE_ENABLE, 0);
    }

    #[test]
    fn interrupt_status_mask_and_clear() {
        let mut p = FakePage::new(STATE_OPERATIONAL | 1000);
        let mut m = Mfi::new(true, &p);
        assert_eq!(r(&m, &p, OMSK), 0xffff_ffff, "masked at power-on");
        assert_eq!(r(&m, &p, OSTS), 0);
        // megasas_enable_intr_gen2.
        w(&mut m, &mut p, ODCR0, 0xffff_ffff);
        w(&mut m, &mut p, OMSK, !GEN2_INTERRUPTS);
        assert!(m.reply_interrupt_enabled());
        assert!(!m.intx_level(&p));
        // The kernel posts replies.
        p.replies = 3;
        assert_eq!(r(&m, &p, OSTS) & OSTS_REPLY, OSTS_REPLY);
        assert!(m.intx_level(&p));
        // megasas_clear_intr_gen2: write the status back.
        let st = r(&m, &p, OSTS);
        assert_eq!(w(&mut m, &mut p, ODCR0, st), vec![Effect::InterruptState]);
        assert_eq!(r(&m, &p, OSTS), 0);
        assert!(!m.intx_level(&p));
        // Masked: status still reads pending, the line stays low.
        p.replies = 4;
        w(&mut m, &mut p, OMSK, 0xffff_ffff);
        assert_eq!(r(&m, &p, OSTS), OSTS_REPLY);
        assert!(!m.intx_level(&p));
        // A device reset forgets the pending replies and masks.
        m.reset(&p);
        assert_eq!(r(&m, &p, OSTS), 0);
        assert_eq!(r(&m, &p, OMSK), 0xffff_ffff);
    }

    #[test]
    fn odd_accesses_are_harmless() {
        let mut p = FakePage::new(READY_STATUS);
        let mut m = Mfi::new(true, &p);
        // Narrow and unaligned writes are ignored.
        assert!(m.write(&mut p, u64::from(IQP), &[1]).unwrap().is_empty());
        assert!(m
            .write(&mut p, u64::from(IQP) + 1, &[1, 0, 0, 0])
            .unwrap()
            .is_empty());
        assert!(p.log.is_empty());
        // Out of the BAR, or wrapping: errors.
        let mut b = [0u8; 4];
        assert_eq!(m.read(&p, BAR_SIZE - 2, &mut b), Err(EINVAL));
        assert_eq!(m.read(&p, u64::MAX, &mut b), Err(EINVAL));
        assert_eq!(m.write(&mut p, BAR_SIZE, &[0; 4]), Err(EINVAL));
        assert_eq!(m.write(&mut p, u64::MAX - 3, &[0; 4]), Err(EINVAL));
        // The MSI-X table area reads 0, writes nothing.
        m.read(&p, 0x2000, &mut b).unwrap();
        assert_eq!(b, [0; 4]);
        assert!(m.write(&mut p, 0x2000, &[1; 4]).unwrap().is_empty());
        // A large read of the whole BAR.
        let mut all = vec![0u8; BAR_SIZE as usize];
        m.read(&p, 0, &mut all).unwrap();
        assert_eq!(all[0xb0..0xb4], (READY_STATUS | FW_MSIX).to_le_bytes());
        // An 8-byte write at IQP posts the low half (OQP ignores the high).
        let fx = m.write(&mut p, u64::from(IQP), &0x5_0000_0041u64.to_le_bytes());
        assert_eq!(fx.unwrap(), vec![Effect::Posted(0x41)]);
    }
}
