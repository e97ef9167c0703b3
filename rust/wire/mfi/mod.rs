// SPDX-License-Identifier: GPL-2.0

//! The MegaRAID SAS "MFI" frame interface: frames, scatter-gather lists,
//! queue set-up, status codes and the DCMD answers of the megasas front end.
//!
//! Layouts are those of Linux's `drivers/scsi/megaraid/megaraid_sas.h`
//! (little endian, 64-byte frames).  The userspace MFI initiator
//! (`tools/mfi`) checks its own view of them against that header with
//! bindgen layout tests; the unit tests below check this code against the
//! same byte offsets.
//!
//! Everything here works on a *snapshot*: the kernel copies a posted frame
//! (and its extra SGL frames) once into its own memory and parses only that
//! copy, so an initiator that rewrites a frame after the doorbell cannot
//! make the front end read two different values of one field.

/// One MFI frame.
pub const FRAME_SIZE: usize = 64;
/// A command is one main frame plus at most 7 extra frames of SGL (Linux
/// never sends more, and the doorbell encodes at most 15).
pub const MAX_FRAMES: usize = 8;
/// Bytes read for the largest command.
pub const MAX_FRAME_BYTES: usize = FRAME_SIZE * MAX_FRAMES;

/// Commands the adapter advertises (`max_fw_cmds`), as QEMU and real
/// firmware do for the Windows driver.
pub const MAX_CMDS: u32 = 1000;
/// Scatter-gather entries per command advertised in the status word, as
/// MFI firmware does (60): the Linux driver's command frames are 1024 bytes
/// (`megasas_create_frame_pool()`), which hold a 48-byte header and 60
/// 16-byte IEEE entries; more would make it write past its own frame.
pub const MAX_SGE: u32 = 60;
/// Bytes of one command at most: its posted frames and the rest of its
/// SGL past them (see [`frame::Header::sgl_end`]).
pub const MAX_CMD_BYTES: usize = FRAME_SIZE * 16;
/// Largest SCSI CDB a frame carries.
pub const MAX_CDB: usize = 16;
/// Largest sense data returned (`SCSI_SENSE_BUFFERSIZE` of the Linux
/// driver, which copies `sense_len` bytes into a 96-byte buffer).
pub const MAX_SENSE: usize = 96;
/// Logical drives (`MFI_MAX_LD`).
pub const MAX_LD: u32 = 64;
/// Physical drive device ids (`MEGASAS_MAX_PD`): Linux indexes a
/// 256-entry array with them.
pub const MAX_PD: u32 = 256;
/// Largest data transfer of one command (bytes).
pub const MAX_XFER: u32 = 8 << 20;

/// Frame opcodes (`enum MFI_CMD_OP`).
pub mod op {
    pub const INIT: u8 = 0x00;
    pub const LD_READ: u8 = 0x01;
    pub const LD_WRITE: u8 = 0x02;
    pub const LD_SCSI_IO: u8 = 0x03;
    pub const PD_SCSI_IO: u8 = 0x04;
    pub const DCMD: u8 = 0x05;
    pub const ABORT: u8 = 0x06;
}

/// Frame flags.
pub mod flag {
    pub const DONT_POST_IN_REPLY_QUEUE: u16 = 0x0001;
    pub const SGL64: u16 = 0x0002;
    pub const SENSE64: u16 = 0x0004;
    pub const DIR_WRITE: u16 = 0x0008;
    pub const DIR_READ: u16 = 0x0010;
    pub const DIR_BOTH: u16 = 0x0018;
    pub const IEEE: u16 = 0x0020;
}

/// Command status codes (`enum MFI_STAT`).
pub mod stat {
    pub const OK: u8 = 0x00;
    pub const INVALID_CMD: u8 = 0x01;
    pub const INVALID_DCMD: u8 = 0x02;
    pub const INVALID_PARAMETER: u8 = 0x03;
    pub const INVALID_SEQUENCE_NUMBER: u8 = 0x04;
    pub const ABORT_NOT_POSSIBLE: u8 = 0x05;
    pub const DEVICE_NOT_FOUND: u8 = 0x0c;
    pub const MEMORY_NOT_AVAILABLE: u8 = 0x20;
    pub const NOT_FOUND: u8 = 0x23;
    pub const SCSI_DONE_WITH_ERROR: u8 = 0x2d;
    pub const SCSI_IO_FAILED: u8 = 0x2e;
    pub const SCSI_RESERVATION_CONFLICT: u8 = 0x2f;
    pub const WRONG_STATE: u8 = 0x32;
    /// "Not completed yet": what an initiator presets before posting.
    pub const INVALID_STATUS: u8 = 0xff;
}

/// Firmware states (bits 31..28 of the status word).
pub mod state {
    pub const READY: u32 = 0xb;
    pub const OPERATIONAL: u32 = 0xc;
    pub const FAULT: u32 = 0xf;
}

/// The firmware status word (outbound scratch pad 0): state, scatter-gather
/// entries and commands.  Bit 26 (IEEE SGLs / MSI-X) is never set: the
/// adapter takes every SGL format but asks for none.
pub const fn status_word(state: u32, max_sge: u32, max_cmds: u32) -> u32 {
    (state << 28) | ((max_sge & 0xff) << 16) | (max_cmds & 0xffff)
}

/// DCMD opcodes.
pub mod dcmd {
    pub const CTRL_GET_INFO: u32 = 0x0101_0000;
    pub const CTRL_GET_PROPERTIES: u32 = 0x0102_0100;
    pub const CTRL_SET_PROPERTIES: u32 = 0x0102_0200;
    pub const CTRL_EVENT_GET_INFO: u32 = 0x0104_0100;
    pub const CTRL_EVENT_GET: u32 = 0x0104_0300;
    pub const CTRL_EVENT_WAIT: u32 = 0x0104_0500;
    pub const CTRL_SHUTDOWN: u32 = 0x0105_0000;
    pub const HIBERNATE_SHUTDOWN: u32 = 0x0106_0000;
    pub const CTRL_CACHE_FLUSH: u32 = 0x0110_1000;
    pub const PD_GET_LIST: u32 = 0x0201_0000;
    pub const PD_LIST_QUERY: u32 = 0x0201_0100;
    pub const PD_GET_INFO: u32 = 0x0202_0000;
    pub const LD_GET_LIST: u32 = 0x0301_0000;
    pub const LD_LIST_QUERY: u32 = 0x0301_0100;
    pub const LD_GET_PROPERTIES: u32 = 0x0303_0000;
    pub const CLUSTER_RESET_ALL: u32 = 0x0801_0100;
    pub const CLUSTER_RESET_LD: u32 = 0x0801_0200;
}

/// Byte offsets in the frames (`megaraid_sas.h`).
pub mod off {
    // struct megasas_header
    pub const CMD: usize = 0x00;
    pub const SENSE_LEN: usize = 0x01;
    pub const CMD_STATUS: usize = 0x02;
    pub const SCSI_STATUS: usize = 0x03;
    pub const TARGET_ID: usize = 0x04;
    pub const LUN: usize = 0x05;
    pub const CDB_LEN: usize = 0x06;
    pub const SGE_COUNT: usize = 0x07;
    pub const CONTEXT: usize = 0x08;
    pub const FLAGS: usize = 0x10;
    pub const TIMEOUT: usize = 0x12;
    pub const DATA_XFER_LEN: usize = 0x14;
    // io and pass-through frames
    pub const SENSE_ADDR: usize = 0x18;
    pub const START_LBA: usize = 0x20;
    pub const IO_SGL: usize = 0x28;
    pub const PTHRU_CDB: usize = 0x20;
    pub const PTHRU_SGL: usize = 0x30;
    // DCMD frame
    pub const DCMD_OPCODE: usize = 0x18;
    pub const DCMD_MBOX: usize = 0x1c;
    pub const DCMD_SGL: usize = 0x28;
    // abort frame
    pub const ABORT_CONTEXT: usize = 0x18;
    pub const ABORT_ADDR: usize = 0x20;
    // init frame
    pub const INIT_QINFO: usize = 0x18;
}

/// `MFI_QUEUE_FLAG_CONTEXT64` in the queue info: 64-bit reply entries.
pub const QUEUE_FLAG_CONTEXT64: u32 = 0x2;
/// Size of `struct megasas_init_queue_info`.
pub const QINFO_SIZE: usize = 32;
/// Size of the DCMD mailbox.
pub const MBOX_SIZE: usize = 12;

// Inlined: the frame parsers call these for every field of every frame,
// and a call each is a measurable share of the megasas I/O path.
#[inline(always)]
fn le16(b: &[u8], o: usize) -> u16 {
    let mut v = [0u8; 2];
    v.copy_from_slice(&b[o..o + 2]);
    u16::from_le_bytes(v)
}

#[inline(always)]
fn le32(b: &[u8], o: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[o..o + 4]);
    u32::from_le_bytes(v)
}

#[inline(always)]
fn le64(b: &[u8], o: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(v)
}

#[inline(always)]
fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}

#[inline(always)]
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

#[inline(always)]
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

mod answers;
mod frame;
mod index;

pub use answers::*;
pub use frame::*;
pub use index::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgl_end_past_the_posted_frames() {
        // What the Linux driver posts for a READ of 32 pages with IEEE SGLs:
        // 8 frames announced, the SGL ends at 48 + 32 * 16 = 560 bytes.
        let mut f = frame(op::LD_SCSI_IO);
        f[off::SGE_COUNT] = 32;
        f[off::FLAGS..off::FLAGS + 2].copy_from_slice(&(flag::IEEE | flag::SGL64).to_le_bytes());
        assert_eq!(hdr(&f).sgl_end(), 560);
        f[off::CMD] = op::LD_READ;
        assert_eq!(hdr(&f).sgl_end(), 40 + 32 * 16);
        // A count above MAX_SGE is taken as MAX_SGE (the parser refuses it):
        // never past MAX_CMD_BYTES.
        f[off::SGE_COUNT] = 0xff;
        assert_eq!(hdr(&f).sgl_end(), 40 + MAX_SGE as usize * 16);
        f[off::CMD] = op::PD_SCSI_IO;
        assert!(hdr(&f).sgl_end() <= MAX_CMD_BYTES);
        // 64-bit and 32-bit entries; no SGL for INIT and ABORT.
        f[off::SGE_COUNT] = 3;
        f[off::FLAGS..off::FLAGS + 2].copy_from_slice(&flag::SGL64.to_le_bytes());
        assert_eq!(hdr(&f).sgl_end(), 48 + 36);
        f[off::FLAGS..off::FLAGS + 2].copy_from_slice(&0u16.to_le_bytes());
        f[off::CMD] = op::DCMD;
        assert_eq!(hdr(&f).sgl_end(), off::DCMD_SGL + 24);
        f[off::CMD] = op::INIT;
        assert_eq!(hdr(&f).sgl_end(), 0);
        f[off::CMD] = op::ABORT;
        assert_eq!(hdr(&f).sgl_end(), 0);
    }

    fn hdr(f: &[u8]) -> Header {
        Header::parse(f.first_chunk().unwrap())
    }

    fn frame(cmd: u8) -> [u8; MAX_FRAME_BYTES] {
        let mut f = [0u8; MAX_FRAME_BYTES];
        f[off::CMD] = cmd;
        f
    }

    #[test]
    fn posted_decoding() {
        assert_eq!(
            decode_posted(encode_posted(0x10_0000, 2)),
            Ok(Posted {
                addr: 0x10_0000,
                len: 192
            })
        );
        assert_eq!(decode_posted(0x10_0020), Err(PostError::Unaligned));
        assert_eq!(decode_posted(1), Err(PostError::Unaligned));
        assert_eq!(
            decode_posted(encode_posted(0x4000, 8)),
            Err(PostError::TooManyFrames)
        );
    }

    #[test]
    fn status_word_fields() {
        let w = status_word(state::READY, MAX_SGE, MAX_CMDS);
        assert_eq!(w >> 28, 0xb);
        assert_eq!((w >> 16) & 0xff, 60);
        assert_eq!(w & 0xffff, 1000);
        // Linux uses N-1-32 commands: N must exceed 33.
        const { assert!(MAX_CMDS > 33) };
        assert_eq!(w & (1 << 26), 0);
    }

    #[test]
    fn reply_contexts_below_the_command_count() {
        assert_eq!(reply_context(999, false), Some(999));
        assert_eq!(reply_context(1000, false), None);
        assert_eq!(reply_context(0x1_0000_0005, false), Some(5));
        assert_eq!(reply_context(1 << 40, true), Some(1 << 40));
    }

    #[test]
    fn queue_info_checks() {
        let good = QueueInfo {
            context64: false,
            entries: 1000,
            ring: 0x1000,
            producer: 0x2000,
            consumer: 0x2004,
        };
        assert_eq!(QueueInfo::parse(&good.encode()), Ok(good));
        for bad in [
            QueueInfo { entries: 0, ..good },
            QueueInfo { entries: 1, ..good },
            QueueInfo {
                entries: MAX_CMDS + 2,
                ..good
            },
            QueueInfo { ring: 0, ..good },
            QueueInfo {
                producer: 0x2002,
                ..good
            },
            QueueInfo {
                consumer: 0x2000,
                ..good
            },
            QueueInfo {
                ring: 0x1800,
                ..good
            },
            QueueInfo {
                ring: u64::MAX - 3,
                ..good
            },
            QueueInfo {
                context64: true,
                ring: 0x1004,
                ..good
            },
        ] {
            assert_eq!(
                QueueInfo::parse(&bad.encode()),
                Err(stat::INVALID_PARAMETER),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn sgl_formats() {
        let mut f = frame(op::DCMD);
        encode_sge(&mut f, off::DCMD_SGL, 0, SgeFormat::Sge32, 0x1234_5000, 512);
        let s = Sgl::parse(&f, off::DCMD_SGL, 1, 0).unwrap();
        assert_eq!(s.iter().next(), Some((0x1234_5000, 512)));
        for (fl, fmt) in [
            (flag::SGL64, SgeFormat::Sge64),
            (flag::IEEE | flag::SGL64, SgeFormat::Skinny),
        ] {
            let mut f = frame(op::DCMD);
            encode_sge(&mut f, off::IO_SGL, 0, fmt, 0x1_0000_0000, 4096);
            encode_sge(&mut f, off::IO_SGL, 1, fmt, 0x2_0000_0000, 4096);
            let s = Sgl::parse(&f, off::IO_SGL, 2, fl).unwrap();
            assert_eq!(s.total, 8192);
            assert_eq!(s.iter().nth(1), Some((0x2_0000_0000, 4096)));
        }
    }

    #[test]
    fn sgl_refusals() {
        let f = frame(op::PD_SCSI_IO);
        // Entries beyond the posted bytes.
        assert_eq!(
            Sgl::parse(&f[..64], off::PTHRU_SGL, 3, 0).unwrap_err(),
            SglError::TooManyEntries
        );
        assert_eq!(
            Sgl::parse(&f, off::PTHRU_SGL, 200, 0).unwrap_err(),
            SglError::TooManyEntries
        );
        // Zero address / length.
        assert_eq!(
            Sgl::parse(&f, off::PTHRU_SGL, 1, 0).unwrap_err(),
            SglError::EmptyEntry
        );
        let mut f = frame(op::PD_SCSI_IO);
        encode_sge(
            &mut f,
            off::PTHRU_SGL,
            0,
            SgeFormat::Sge64,
            u64::MAX - 10,
            100,
        );
        assert_eq!(
            Sgl::parse(&f, off::PTHRU_SGL, 1, flag::SGL64).unwrap_err(),
            SglError::Overflow
        );
    }

    fn scsi_frame(cdb: &[u8], dir: u16, len: u32, sges: &[(u64, u32)]) -> [u8; MAX_FRAME_BYTES] {
        let mut f = frame(op::PD_SCSI_IO);
        f[off::CDB_LEN] = cdb.len() as u8;
        f[off::SGE_COUNT] = sges.len() as u8;
        f[off::SENSE_LEN] = 96;
        put16(&mut f, off::FLAGS, dir | flag::SGL64);
        put32(&mut f, off::DATA_XFER_LEN, len);
        put32(&mut f, off::SENSE_ADDR, 0x9000);
        f[off::PTHRU_CDB..off::PTHRU_CDB + cdb.len()].copy_from_slice(cdb);
        for (i, &(a, l)) in sges.iter().enumerate() {
            encode_sge(&mut f, off::PTHRU_SGL, i, SgeFormat::Sge64, a, l);
        }
        f
    }

    #[test]
    fn scsi_frames() {
        let f = scsi_frame(
            &[0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0],
            flag::DIR_READ,
            4096,
            &[(0x8000, 4096)],
        );
        // The adapter's way (the header parsed first) reads the same frame.
        let h = Header::parse(f.first_chunk().unwrap());
        assert_eq!(
            format!("{:?}", Frame::parse_with(&h, &f)),
            format!("{:?}", Frame::parse(&f))
        );
        match Frame::parse(&f).unwrap() {
            Frame::Scsi {
                ld,
                cdb,
                dir,
                data_len,
                sense,
                sgl,
                ..
            } => {
                assert!(!ld);
                assert_eq!(cdb[0], 0x28);
                assert_eq!(dir, Dir::In);
                assert_eq!(data_len, 4096);
                assert_eq!(sense, 0x9000);
                assert_eq!(sgl.total, 4096);
            }
            other => panic!("{other:?}"),
        }
        // CDB bytes past cdb_len are not passed on.
        let mut f = scsi_frame(&[0, 0, 0, 0, 0, 0], 0, 0, &[]);
        f[off::PTHRU_CDB + 8] = 0xee;
        let Frame::Scsi { cdb, .. } = Frame::parse(&f).unwrap() else {
            panic!()
        };
        assert_eq!(cdb[8], 0);
    }

    #[test]
    fn scsi_frame_refusals() {
        let bad = [
            // Variable-length CDB longer than 16 bytes.
            scsi_frame(&[0x7f, 0, 0, 0, 0, 0, 0, 0x18, 0, 0], 0, 0, &[]),
            // cdb_len 0 and 17.
            scsi_frame(&[], 0, 0, &[]),
            {
                let mut f = scsi_frame(&[0; 16], 0, 0, &[]);
                f[off::CDB_LEN] = 17;
                f
            },
            // Data without SGEs, without direction, SGL short.
            scsi_frame(&[0x28; 10], flag::DIR_READ, 512, &[]),
            scsi_frame(&[0x28; 10], 0, 512, &[(0x8000, 512)]),
            scsi_frame(&[0x28; 10], flag::DIR_READ, 4096, &[(0x8000, 512)]),
            // Both directions.
            scsi_frame(&[0x28; 10], flag::DIR_BOTH, 512, &[(0x8000, 512)]),
            // Huge length.
            scsi_frame(&[0x28; 10], flag::DIR_READ, u32::MAX, &[(0x8000, u32::MAX)]),
        ];
        for f in bad {
            assert_eq!(Frame::parse(&f).unwrap_err(), stat::INVALID_PARAMETER);
        }
        for cmd in [0x07, 0x08, 0x09, 0x0a, 0x7f, 0xff] {
            assert_eq!(Frame::parse(&frame(cmd)).unwrap_err(), stat::INVALID_CMD);
        }
    }

    #[test]
    fn sense_address_width() {
        let mut f = scsi_frame(&[0; 6], 0, 0, &[]);
        put32(&mut f, off::SENSE_ADDR + 4, 1);
        let Frame::Scsi { sense, .. } = Frame::parse(&f).unwrap() else {
            panic!()
        };
        assert_eq!(sense, 0x9000);
        put16(&mut f, off::FLAGS, flag::SENSE64);
        let Frame::Scsi { sense, .. } = Frame::parse(&f).unwrap() else {
            panic!()
        };
        assert_eq!(sense, 0x1_0000_9000);
    }

    #[test]
    fn ld_io_and_dcmd_frames() {
        let mut f = frame(op::LD_WRITE);
        f[off::TARGET_ID] = 3;
        f[off::SGE_COUNT] = 1;
        put32(&mut f, off::DATA_XFER_LEN, 8);
        put64(&mut f, off::START_LBA, 0x1_0000_0002);
        encode_sge(&mut f, off::IO_SGL, 0, SgeFormat::Sge32, 0x4000, 4096);
        let Frame::LdIo {
            write,
            target,
            lba,
            blocks,
            ..
        } = Frame::parse(&f).unwrap()
        else {
            panic!()
        };
        assert!(write);
        assert_eq!((target, lba, blocks), (3, 0x1_0000_0002, 8));
        let c = rw16(true, lba, blocks);
        assert_eq!(c[0], 0x8a);
        assert_eq!(&c[2..10], &0x1_0000_0002u64.to_be_bytes());
        assert_eq!(&c[10..14], &8u32.to_be_bytes());

        let mut f = frame(op::DCMD);
        put32(&mut f, off::DCMD_OPCODE, dcmd::CTRL_GET_INFO);
        f[off::DCMD_MBOX] = 1;
        f[off::SGE_COUNT] = 1;
        put32(&mut f, off::DATA_XFER_LEN, 2384);
        encode_sge(&mut f, off::DCMD_SGL, 0, SgeFormat::Sge32, 0x4000, 2384);
        let Frame::Dcmd { opcode, mbox, .. } = Frame::parse(&f).unwrap() else {
            panic!()
        };
        assert_eq!((opcode, mbox[0]), (dcmd::CTRL_GET_INFO, 1));
        // A DCMD buffer shorter than its data length.
        put32(&mut f, off::DATA_XFER_LEN, 4096);
        assert_eq!(Frame::parse(&f).unwrap_err(), stat::INVALID_PARAMETER);
    }

    #[test]
    fn tmf_statuses() {
        use super::super::tmf::Outcome;
        assert_eq!(tmf_status(Outcome::Complete), stat::OK);
        assert_eq!(tmf_status(Outcome::IncorrectLun), stat::DEVICE_NOT_FOUND);
        assert_eq!(tmf_status(Outcome::Failed), stat::ABORT_NOT_POSSIBLE);
    }

    #[test]
    fn completions() {
        assert_eq!(Completion::scsi(0, 0, 96), Completion::status(stat::OK));
        let c = Completion::scsi(2, 252, 200);
        assert_eq!(c.cmd_status, stat::SCSI_DONE_WITH_ERROR);
        assert_eq!(c.sense_len, 96, "never more than the Linux driver's 96");
        assert_eq!(
            Completion::scsi(2, 18, 0).sense_len,
            0,
            "smartctl offers none"
        );
        assert_eq!(
            Completion::scsi(0x18, 0, 96).cmd_status,
            stat::SCSI_RESERVATION_CONFLICT
        );
        assert_eq!(Completion::busy().scsi_status, 0x08, "SAM BUSY");
    }

    #[test]
    fn ctrl_info_fields() {
        let mut b = [0u8; CTRL_INFO_SIZE];
        ctrl_info(
            &mut b,
            &CtrlParams {
                personality: Personality::Raid,
                lds: 2,
                pds: 0,
                serial: &[b'x'; 40],
            },
        );
        assert_eq!(le16(&b, 1464), 1000);
        assert_eq!(le32(&b, 1468), 0xffff);
        assert_eq!(b[1512], 3);
        assert_eq!(le16(&b, 1498), 60);
        // The serial is cut and NUL-terminated.
        assert_eq!(b[1424 + 31], 0);
        // properties.on_off_properties2 (enable_fw_dev_list) stays clear.
        assert_eq!(le32(&b, 1536 + 36), 0);
        // adapterOperations3 (crash dump) and 4 stay clear.
        assert_eq!(le32(&b, 2024), 0);
        assert_eq!(le32(&b, 2044), 0);
    }

    fn drives(n: u16) -> [Drive; 4] {
        core::array::from_fn(|i| Drive {
            id: i as u16 * n,
            dev_type: 0,
            blocks512: 2048,
        })
    }

    #[test]
    fn lists() {
        let d = drives(1);
        let mut b = [0u8; 64];
        // Only 2 of 4 entries fit; size says what is needed.
        assert_eq!(pd_list(&mut b, &d), 8 + 2 * 24);
        assert_eq!(le32(&b, 0), 8 + 4 * 24);
        assert_eq!(le32(&b, 4), 4);
        assert_eq!(le16(&b, 8 + 24), 1);
        assert_eq!(le64(&b, 8 + 24 + 8), sas_address(1));
        let mut b = [0u8; LD_LIST_SIZE];
        assert_eq!(ld_list(&mut b, &d), 8 + 4 * 16);
        assert_eq!(b[8 + 16 * 3], 3);
        assert_eq!(b[8 + 16 * 3 + 4], LD_STATE_OPTIMAL);
        let mut b = [0u8; LD_TARGETID_LIST_SIZE];
        assert_eq!(ld_targetid_list(&mut b, &drives(2)), 15);
        assert_eq!(le32(&b, 4), 4);
        assert_eq!(&b[11..15], &[0, 2, 4, 6]);
        assert_eq!(ld_targetid_list(&mut b[..5], &d), 0);
    }

    #[test]
    fn events() {
        let e = EvtDetail {
            seq: 7,
            time: 0,
            code: evt::LD_CREATED,
            id: 5,
        };
        let mut b = [0u8; EVT_DETAIL_SIZE];
        e.encode(&mut b);
        assert_eq!(le32(&b, 0), 7);
        assert_eq!(le32(&b, 8), evt::LD_CREATED);
        assert_eq!(b[16], evt::ARGS_LD);
        assert_eq!(le16(&b, 32), 5);
        assert_eq!(b[255], 0);
        // Linux waits with locale ALL, class DEBUG (-2).
        assert!(e.matches(0xfe00_ffff));
        assert!(!e.matches(0xfe00_0002), "PD locale only");
        assert!(!e.matches(0x0100_ffff), "class WARN and above only");
    }

    #[test]
    fn frame_index() {
        let mut heads = [NO_SLOT; 16];
        let mut next = [NO_SLOT; 8];
        let mut keys = [0u64; 8];
        let mut ix = FrameIndex {
            heads: &mut heads,
            next: &mut next,
            keys: &mut keys,
        };
        for s in 0..8u16 {
            assert!(ix.insert(0x1000 + u64::from(s) * 0x40 * 16, s));
        }
        assert!(!ix.insert(0x1000, 7), "posted twice");
        assert_eq!(ix.find(0x1000 + 3 * 0x400), Some(3));
        ix.remove(3);
        ix.remove(0);
        assert_eq!(ix.find(0x1000 + 3 * 0x400), None);
        assert_eq!(ix.find(0x1000), None);
        assert_eq!(ix.find(0x1000 + 7 * 0x400), Some(7));
        assert!(ix.insert(0x1000, 0));
    }
}
