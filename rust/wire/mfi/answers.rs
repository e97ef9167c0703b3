// SPDX-License-Identifier: GPL-2.0

//! DCMD answers.  Each is encoded into a zeroed buffer of the structure's
//! full size; the caller copies at most what the initiator's SGL holds.

use super::{put16, put32, put64, MAX_CMDS, MAX_LD, MAX_SGE};

// full size; the caller copies at most what the initiator's SGL holds.

/// `struct megasas_ctrl_info`.
pub const CTRL_INFO_SIZE: usize = 2384;
/// `struct megasas_ctrl_prop`.
pub const CTRL_PROP_SIZE: usize = 64;
/// `struct megasas_evt_log_info`.
pub const EVT_LOG_INFO_SIZE: usize = 20;
/// `struct megasas_evt_detail`.
pub const EVT_DETAIL_SIZE: usize = 256;
/// `struct MR_PD_INFO`.
pub const PD_INFO_SIZE: usize = 512;
/// `struct MR_PD_LIST` header and `struct MR_PD_ADDRESS`.
pub const PD_LIST_HDR: usize = 8;
pub const PD_ADDRESS_SIZE: usize = 24;
/// `struct MR_LD_LIST` (256 entries of 16 bytes after 8).
pub const LD_LIST_SIZE: usize = 4104;
/// `struct MR_LD_TARGETID_LIST` (`targetId[]` at 11).
pub const LD_TARGETID_LIST_SIZE: usize = 268;

/// Size of the answer buffer the module keeps per DCMD.
pub const DCMD_BUF_SIZE: usize = 12 * 1024;

/// How LUNs show up to the initiator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personality {
    /// Each LUN below 64 is a logical drive, target id = LUN.
    Raid,
    /// Each LUN below 256 is a system (JBOD) physical drive, device id =
    /// LUN.
    Jbod,
}

/// One LUN of the TPG as a drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drive {
    pub id: u16,
    /// SCSI peripheral device type.
    pub dev_type: u8,
    /// Size in 512-byte blocks.
    pub blocks512: u64,
}

/// Identity of the adapter for CTRL_GET_INFO.
#[derive(Clone, Copy, Debug)]
pub struct CtrlParams<'a> {
    pub personality: Personality,
    pub lds: u16,
    pub pds: u16,
    pub serial: &'a [u8],
}

fn put_str(b: &mut [u8], o: usize, cap: usize, s: &[u8]) {
    // Always NUL-terminated.
    let n = s.len().min(cap - 1);
    b[o..o + n].copy_from_slice(&s[..n]);
}

/// PCI identity answered, that of QEMU's `megasas` (SAS1078).
pub const PCI_VENDOR: u16 = 0x1000;
pub const PCI_DEVICE: u16 = 0x0060;
pub const PCI_SUBSYS: u16 = 0x1013;

/// CTRL_GET_INFO.  Never sets `enable_fw_dev_list` nor snap/crash dump
/// (they make the Linux MFI driver use buffers it only allocates for
/// fusion adapters).
pub fn ctrl_info(b: &mut [u8; CTRL_INFO_SIZE], p: &CtrlParams<'_>) {
    put16(b, 0, PCI_VENDOR);
    put16(b, 2, PCI_DEVICE);
    put16(b, 4, PCI_VENDOR);
    put16(b, 6, PCI_SUBSYS);
    // host_interface: SAS 3G (bit 3 of the first byte), 1 port.
    b[32] = 1 << 3;
    b[39] = 1;
    // image_component_count and the firmware package.
    put32(b, 180, 1);
    put_str(b, 184, 8, b"APP");
    put_str(b, 192, 32, b"tcm_virt");
    b[1343] = MAX_LD as u8; // max_lds
    put_str(b, 1344, 80, b"tcm_virt MegaRAID SAS");
    put_str(b, 1424, 32, p.serial);
    put16(b, 1464, MAX_CMDS as u16); // max_concurrent_cmds
    put16(b, 1466, MAX_SGE as u16); // max_sge_count
    put32(b, 1468, 0xffff); // max_request_size (sectors)
    put16(b, 1472, p.lds); // ld_present_count
    put16(b, 1478, p.pds); // pd_present_count
    put16(b, 1480, p.pds); // pd_disk_present_count
    put16(b, 1498, MAX_SGE as u16); // max_strips_per_io
                                    // stripe_sz_ops.min = 3 (4 KiB strips): with max_strips_per_io the
                                    // Linux driver computes its max_sectors (640 = 320 KiB).
    b[1512] = 3;
    b[1513] = 3;
    put_str(b, 1600, 96, b"tcm_virt");
    // properties.OnOffProperties.enableJBOD (bit 13 of the word at 32 of
    // the properties).
    if p.personality == Personality::Jbod {
        put32(b, 1536 + 32, 1 << 13);
    }
}

/// CTRL_GET_PROPERTIES: all defaults (zero).
pub fn ctrl_props(b: &mut [u8; CTRL_PROP_SIZE]) {
    b.fill(0);
}

/// The event log's sequence numbers, for CTRL_EVENT_GET_INFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtLogInfo {
    pub newest: u32,
    pub oldest: u32,
    pub clear: u32,
    pub shutdown: u32,
    pub boot: u32,
}

pub fn evt_log_info(b: &mut [u8; EVT_LOG_INFO_SIZE], i: &EvtLogInfo) {
    put32(b, 0, i.newest);
    put32(b, 4, i.oldest);
    put32(b, 8, i.clear);
    put32(b, 12, i.shutdown);
    put32(b, 16, i.boot);
}

/// Event codes raised.
pub mod evt {
    pub const PD_INSERTED: u32 = 0x005b;
    pub const PD_REMOVED: u32 = 0x0070;
    pub const LD_CREATED: u32 = 0x008a;
    pub const LD_DELETED: u32 = 0x008b;
    /// Argument types.
    pub const ARGS_LD: u8 = 2;
    pub const ARGS_PD: u8 = 10;
    /// Locales.
    pub const LOCALE_LD: u16 = 0x0001;
    pub const LOCALE_PD: u16 = 0x0002;
    /// Class INFO.
    pub const CLASS_INFO: i8 = 0;
}

/// An event of the adapter's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtDetail {
    pub seq: u32,
    pub time: u32,
    pub code: u32,
    pub id: u16,
}

impl EvtDetail {
    fn is_ld(&self) -> bool {
        matches!(self.code, evt::LD_CREATED | evt::LD_DELETED)
    }

    /// Whether the event passes a class/locale filter (the mailbox word of
    /// CTRL_EVENT_WAIT / GET): locale bits match, class at most INFO.
    pub fn matches(&self, class_locale: u32) -> bool {
        let locale = class_locale as u16;
        let class = (class_locale >> 24) as u8 as i8;
        let mine = if self.is_ld() {
            evt::LOCALE_LD
        } else {
            evt::LOCALE_PD
        };
        locale & mine != 0 && class <= evt::CLASS_INFO
    }

    /// `struct megasas_evt_detail`.
    pub fn encode(&self, b: &mut [u8; EVT_DETAIL_SIZE]) {
        b.fill(0);
        put32(b, 0, self.seq);
        put32(b, 4, self.time);
        put32(b, 8, self.code);
        let (locale, arg) = if self.is_ld() {
            (evt::LOCALE_LD, evt::ARGS_LD)
        } else {
            (evt::LOCALE_PD, evt::ARGS_PD)
        };
        put16(b, 12, locale);
        b[15] = evt::CLASS_INFO as u8;
        b[16] = arg;
        // args.ld = {target_id u16, ld_index u8}; args.pd = {device_id u16,
        // encl_index u8, slot u8}.
        put16(b, 32, self.id);
        b[34] = self.id as u8;
        if !self.is_ld() {
            b[35] = self.id as u8;
        }
        let d: &[u8] = match self.code {
            evt::LD_CREATED => b"Created VD",
            evt::LD_DELETED => b"Deleted VD",
            evt::PD_INSERTED => b"Inserted PD",
            _ => b"Removed PD",
        };
        put_str(b, 128, 128, d);
    }
}

/// PD_GET_LIST / PD_LIST_QUERY: `struct MR_PD_LIST`.  Writes the entries
/// that fit in `b`; the `size` field is the full size needed, so tools can
/// grow their buffer and retry.  Returns the bytes written.
pub fn pd_list(b: &mut [u8], drives: &[Drive]) -> usize {
    let full = PD_LIST_HDR + drives.len() * PD_ADDRESS_SIZE;
    if b.len() < PD_LIST_HDR {
        return 0;
    }
    let fit = ((b.len() - PD_LIST_HDR) / PD_ADDRESS_SIZE).min(drives.len());
    put32(b, 0, full as u32);
    put32(b, 4, drives.len() as u32);
    for (i, d) in drives.iter().take(fit).enumerate() {
        let o = PD_LIST_HDR + i * PD_ADDRESS_SIZE;
        let e = &mut b[o..o + PD_ADDRESS_SIZE];
        e.fill(0);
        put16(e, 0, d.id);
        put16(e, 2, 0xffff); // no enclosure
        e[5] = d.id as u8; // slot
        e[6] = d.dev_type;
        e[7] = 1; // connected to port 0
        put64(e, 8, sas_address(d.id));
    }
    PD_LIST_HDR + fit * PD_ADDRESS_SIZE
}

/// The SAS address reported for a drive.
pub const fn sas_address(id: u16) -> u64 {
    0x5000_c500_7654_0000 | id as u64
}

/// `MR_PD_STATE_SYSTEM`: a JBOD drive exposed to the host.
pub const PD_STATE_SYSTEM: u16 = 0x40;

/// PD_GET_INFO: `struct MR_PD_INFO`.
pub fn pd_info(b: &mut [u8; PD_INFO_SIZE], d: &Drive) {
    b.fill(0);
    put16(b, 0, d.id); // ref.deviceId
    b[165] = d.dev_type; // scsiDevType
    put16(b, 184, PD_STATE_SYSTEM); // fwState
    put64(b, 232, d.blocks512); // rawSize
    put64(b, 240, d.blocks512); // nonCoercedSize
    put64(b, 248, d.blocks512); // coercedSize
    put16(b, 256, 0xffff); // enclDeviceId
    b[259] = d.id as u8; // slotNumber
}

/// `MR_LD_STATE_OPTIMAL`.
pub const LD_STATE_OPTIMAL: u8 = 3;

/// LD_GET_LIST: `struct MR_LD_LIST`.  Returns the bytes written.
pub fn ld_list(b: &mut [u8], drives: &[Drive]) -> usize {
    let n = drives.len().min(MAX_LD as usize);
    if b.len() < 8 {
        return 0;
    }
    let fit = ((b.len() - 8) / 16).min(n);
    put32(b, 0, n as u32);
    put32(b, 4, 0);
    for (i, d) in drives.iter().take(fit).enumerate() {
        let e = &mut b[8 + i * 16..8 + (i + 1) * 16];
        e.fill(0);
        e[0] = d.id as u8; // ref.targetId
        e[4] = LD_STATE_OPTIMAL;
        put64(e, 8, d.blocks512);
    }
    8 + fit * 16
}

/// LD_LIST_QUERY: `struct MR_LD_TARGETID_LIST`.  Returns the bytes written.
pub fn ld_targetid_list(b: &mut [u8], drives: &[Drive]) -> usize {
    let n = drives.len().min(MAX_LD as usize);
    if b.len() < 11 {
        return 0;
    }
    let fit = (b.len() - 11).min(n);
    put32(b, 0, (11 + n) as u32);
    put32(b, 4, n as u32);
    b[8..11].fill(0);
    for (i, d) in drives.iter().take(fit).enumerate() {
        b[11 + i] = d.id as u8;
    }
    11 + fit
}
