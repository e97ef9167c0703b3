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
/// Scatter-gather entries per command advertised in the status word.
pub const MAX_SGE: u32 = 80;
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

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn le64(b: &[u8], o: usize) -> u64 {
    u64::from(le32(b, o)) | (u64::from(le32(b, o + 4)) << 32)
}

fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// A frame address posted to the inbound queue, decoded as the hardware's
/// inbound queue port: bits 63..5 the address, bits 4..1 the count of extra
/// frames, bit 0 ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posted {
    pub addr: u64,
    /// Bytes to read: (1 + extra frames) * 64.
    pub len: usize,
}

/// Why a posted entry is refused before any frame is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PostError {
    /// The address is 0 or not 64-byte aligned (32-byte aligned, as the
    /// encoding allows, is not a frame address either).
    Unaligned,
    /// More than 7 extra frames.
    TooManyFrames,
}

/// Decodes an inbound queue entry.
pub fn decode_posted(v: u64) -> Result<Posted, PostError> {
    let addr = v & !0x1f;
    let extra = ((v >> 1) & 0xf) as usize;
    if addr == 0 || addr & (FRAME_SIZE as u64 - 1) != 0 {
        return Err(PostError::Unaligned);
    }
    if extra >= MAX_FRAMES {
        return Err(PostError::TooManyFrames);
    }
    Ok(Posted {
        addr,
        len: (extra + 1) * FRAME_SIZE,
    })
}

/// Encodes an inbound queue entry (the initiator's side).
pub const fn encode_posted(addr: u64, extra_frames: u8) -> u64 {
    addr | ((extra_frames as u64 & 0xf) << 1) | 1
}

/// The common header of every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub cmd: u8,
    pub sense_len: u8,
    pub target_id: u8,
    pub lun: u8,
    pub cdb_len: u8,
    pub sge_count: u8,
    /// The 64-bit context (a 32-bit initiator leaves the upper half 0).
    pub context: u64,
    pub flags: u16,
    pub data_len: u32,
}

impl Header {
    /// Parses the header of a frame snapshot (at least 64 bytes).
    pub fn parse(f: &[u8]) -> Header {
        Header {
            cmd: f[off::CMD],
            sense_len: f[off::SENSE_LEN],
            target_id: f[off::TARGET_ID],
            lun: f[off::LUN],
            cdb_len: f[off::CDB_LEN],
            sge_count: f[off::SGE_COUNT],
            context: le64(f, off::CONTEXT),
            flags: le16(f, off::FLAGS),
            data_len: le32(f, off::DATA_XFER_LEN),
        }
    }

    /// Whether the frame is polled (answered in the frame only).
    pub const fn polled(&self) -> bool {
        self.flags & flag::DONT_POST_IN_REPLY_QUEUE != 0
    }
}

/// The reply context to post: 32 bits unless the queue was set up with
/// 64-bit contexts.  `None` when a 32-bit context is not below the command
/// count (the Linux driver BUG()s on such a reply): the frame is then
/// answered in the frame only.
pub const fn reply_context(context: u64, context64: bool) -> Option<u64> {
    if context64 {
        Some(context)
    } else if (context as u32) < MAX_CMDS {
        Some(context as u32 as u64)
    } else {
        None
    }
}

/// The reply queue set up by `MFI_CMD_INIT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueInfo {
    pub context64: bool,
    pub entries: u32,
    pub ring: u64,
    pub producer: u64,
    pub consumer: u64,
}

impl QueueInfo {
    /// Parses and checks `struct megasas_init_queue_info`: 2..=MAX_CMDS+1
    /// entries, every address non-zero and aligned, the three areas
    /// disjoint.  The error is the MFI status to answer.
    pub fn parse(q: &[u8; QINFO_SIZE]) -> Result<QueueInfo, u8> {
        let info = QueueInfo {
            context64: le32(q, 0) & QUEUE_FLAG_CONTEXT64 != 0,
            entries: le32(q, 4),
            ring: le64(q, 8),
            producer: le64(q, 16),
            consumer: le64(q, 24),
        };
        if info.entries < 2 || info.entries > MAX_CMDS + 1 {
            return Err(stat::INVALID_PARAMETER);
        }
        let esz = info.entry_size() as u64;
        let areas = [
            (info.ring, u64::from(info.entries) * esz, esz),
            (info.producer, 4, 4),
            (info.consumer, 4, 4),
        ];
        for (i, &(a, len, align)) in areas.iter().enumerate() {
            if a == 0 || a & (align - 1) != 0 || a.checked_add(len).is_none() {
                return Err(stat::INVALID_PARAMETER);
            }
            for &(b, blen, _) in &areas[i + 1..] {
                if a < b.saturating_add(blen) && b < a + len {
                    return Err(stat::INVALID_PARAMETER);
                }
            }
        }
        Ok(info)
    }

    /// Bytes per reply queue entry.
    pub const fn entry_size(&self) -> usize {
        if self.context64 {
            8
        } else {
            4
        }
    }

    /// Encodes the queue info (the initiator's side).
    pub fn encode(&self) -> [u8; QINFO_SIZE] {
        let mut q = [0u8; QINFO_SIZE];
        put32(
            &mut q,
            0,
            if self.context64 {
                QUEUE_FLAG_CONTEXT64
            } else {
                0
            },
        );
        put32(&mut q, 4, self.entries);
        put64(&mut q, 8, self.ring);
        put64(&mut q, 16, self.producer);
        put64(&mut q, 24, self.consumer);
        q
    }
}

/// Scatter-gather entry formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgeFormat {
    /// `megasas_sge32`: 32-bit address, length (8 bytes).
    Sge32,
    /// `megasas_sge64`: 64-bit address, length (12 bytes).
    Sge64,
    /// `megasas_sge_skinny` (IEEE): 64-bit address, length, flag (16 bytes).
    Skinny,
}

impl SgeFormat {
    /// The format the frame flags select; IEEE wins over SGL64, as in
    /// firmware (Linux sets both).
    pub const fn from_flags(flags: u16) -> SgeFormat {
        if flags & flag::IEEE != 0 {
            SgeFormat::Skinny
        } else if flags & flag::SGL64 != 0 {
            SgeFormat::Sge64
        } else {
            SgeFormat::Sge32
        }
    }

    pub const fn size(self) -> usize {
        match self {
            SgeFormat::Sge32 => 8,
            SgeFormat::Sge64 => 12,
            SgeFormat::Skinny => 16,
        }
    }
}

/// A scatter-gather list inside a frame snapshot, checked.
#[derive(Clone, Copy, Debug)]
pub struct Sgl<'a> {
    bytes: &'a [u8],
    format: SgeFormat,
    count: usize,
    /// Sum of the entry lengths.
    pub total: u64,
}

/// Why a scatter-gather list is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SglError {
    /// More entries than advertised, or than the posted frames hold.
    TooManyEntries,
    /// An entry with address 0 or length 0.
    EmptyEntry,
    /// An entry whose end overflows 64 bits.
    Overflow,
}

impl<'a> Sgl<'a> {
    /// The `count` entries at `offset` of `frame`, in the format `flags`
    /// select.
    pub fn parse(
        frame: &'a [u8],
        offset: usize,
        count: u8,
        flags: u16,
    ) -> Result<Sgl<'a>, SglError> {
        let format = SgeFormat::from_flags(flags);
        let count = usize::from(count);
        if count as u32 > MAX_SGE {
            return Err(SglError::TooManyEntries);
        }
        let end = offset + count * format.size();
        if end > frame.len() {
            return Err(SglError::TooManyEntries);
        }
        let mut sgl = Sgl {
            bytes: &frame[offset..end],
            format,
            count,
            total: 0,
        };
        let mut total = 0u64;
        for (a, l) in sgl.iter() {
            if a == 0 || l == 0 {
                return Err(SglError::EmptyEntry);
            }
            if a.checked_add(u64::from(l)).is_none() {
                return Err(SglError::Overflow);
            }
            total += u64::from(l);
        }
        sgl.total = total;
        Ok(sgl)
    }

    pub const fn len(&self) -> usize {
        self.count
    }

    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries as (address, length).
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + 'a {
        let sz = self.format.size();
        let fmt = self.format;
        let b = self.bytes;
        (0..self.count).map(move |i| {
            let e = &b[i * sz..];
            match fmt {
                SgeFormat::Sge32 => (u64::from(le32(e, 0)), le32(e, 4)),
                SgeFormat::Sge64 | SgeFormat::Skinny => (le64(e, 0), le32(e, 8)),
            }
        })
    }
}

/// Writes one scatter-gather entry (the initiator's side).
pub fn encode_sge(
    frame: &mut [u8],
    offset: usize,
    index: usize,
    format: SgeFormat,
    addr: u64,
    len: u32,
) {
    let o = offset + index * format.size();
    match format {
        SgeFormat::Sge32 => {
            put32(frame, o, addr as u32);
            put32(frame, o + 4, len);
        }
        SgeFormat::Sge64 | SgeFormat::Skinny => {
            put64(frame, o, addr);
            put32(frame, o + 8, len);
            if format == SgeFormat::Skinny {
                put32(frame, o + 12, 0);
            }
        }
    }
}

/// Data direction of a SCSI frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    None,
    /// Initiator to target (write).
    Out,
    /// Target to initiator (read).
    In,
}

/// A parsed frame, ready to be served.
#[derive(Clone, Copy, Debug)]
pub enum Frame<'a> {
    Init {
        qinfo: u64,
    },
    /// `LD_SCSI_IO` (`ld`) or `PD_SCSI_IO`: a CDB for a device.
    Scsi {
        ld: bool,
        target: u8,
        lun: u8,
        cdb: [u8; MAX_CDB],
        dir: Dir,
        data_len: u32,
        sense: u64,
        sgl: Sgl<'a>,
    },
    /// `LD_READ` / `LD_WRITE`: LBA I/O to a logical drive.
    LdIo {
        write: bool,
        target: u8,
        lba: u64,
        blocks: u32,
        sense: u64,
        sgl: Sgl<'a>,
    },
    Dcmd {
        opcode: u32,
        mbox: [u8; MBOX_SIZE],
        data_len: u32,
        sgl: Sgl<'a>,
    },
    Abort {
        context: u64,
        addr: u64,
    },
}

/// Length of a CDB from its operation code (`scsi_command_size()`).
pub fn cdb_size(cdb: &[u8; MAX_CDB]) -> usize {
    const BY_GROUP: [usize; 8] = [6, 10, 10, 12, 16, 12, 10, 10];
    if cdb[0] == 0x7f {
        usize::from(cdb[7]) + 8
    } else {
        BY_GROUP[usize::from(cdb[0] >> 5)]
    }
}

/// The sense address of an io or pass-through frame: 64 bits only with
/// `SENSE64`, as firmware reads it.
fn sense_addr(f: &[u8], flags: u16) -> u64 {
    if flags & flag::SENSE64 != 0 {
        le64(f, off::SENSE_ADDR)
    } else {
        u64::from(le32(f, off::SENSE_ADDR))
    }
}

fn dir_of(flags: u16) -> Result<Dir, u8> {
    match flags & flag::DIR_BOTH {
        0 => Ok(Dir::None),
        flag::DIR_WRITE => Ok(Dir::Out),
        flag::DIR_READ => Ok(Dir::In),
        _ => Err(stat::INVALID_PARAMETER),
    }
}

impl<'a> Frame<'a> {
    /// Parses a frame snapshot (`f.len()` is the posted length, a multiple
    /// of 64).  The error is the MFI status to answer the frame with.
    pub fn parse(f: &'a [u8]) -> Result<Frame<'a>, u8> {
        let h = Header::parse(f);
        let sgl =
            |o: usize| Sgl::parse(f, o, h.sge_count, h.flags).map_err(|_| stat::INVALID_PARAMETER);
        match h.cmd {
            op::INIT => Ok(Frame::Init {
                qinfo: le64(f, off::INIT_QINFO),
            }),
            op::LD_SCSI_IO | op::PD_SCSI_IO => {
                let ld = h.cmd == op::LD_SCSI_IO;
                let mut cdb = [0u8; MAX_CDB];
                cdb.copy_from_slice(&f[off::PTHRU_CDB..off::PTHRU_CDB + MAX_CDB]);
                let n = usize::from(h.cdb_len);
                // A CDB longer than the frame's 16 bytes, by its length
                // field or by its opcode, would make target core read past
                // the buffer.
                if n == 0 || n > MAX_CDB || cdb_size(&cdb) > MAX_CDB {
                    return Err(stat::INVALID_PARAMETER);
                }
                cdb[n..].fill(0);
                let dir = dir_of(h.flags)?;
                if h.data_len > MAX_XFER {
                    return Err(stat::INVALID_PARAMETER);
                }
                let sgl = sgl(off::PTHRU_SGL)?;
                check_data(dir, h.data_len, &sgl)?;
                Ok(Frame::Scsi {
                    ld,
                    target: h.target_id,
                    lun: h.lun,
                    cdb,
                    dir,
                    data_len: h.data_len,
                    sense: sense_addr(f, h.flags),
                    sgl,
                })
            }
            op::LD_READ | op::LD_WRITE => {
                let sgl = sgl(off::IO_SGL)?;
                // `data_xfer_len` holds the block count here; the byte
                // length is checked against the SGL once the block size
                // is known.
                if h.data_len != 0 && sgl.is_empty() {
                    return Err(stat::INVALID_PARAMETER);
                }
                Ok(Frame::LdIo {
                    write: h.cmd == op::LD_WRITE,
                    target: h.target_id,
                    lba: le64(f, off::START_LBA),
                    blocks: h.data_len,
                    sense: sense_addr(f, h.flags),
                    sgl,
                })
            }
            op::DCMD => {
                // The direction of a DCMD comes from its opcode (smartctl
                // sends reads with no direction flag).
                if h.data_len > MAX_XFER {
                    return Err(stat::INVALID_PARAMETER);
                }
                let sgl = sgl(off::DCMD_SGL)?;
                if sgl.total < u64::from(h.data_len) {
                    return Err(stat::INVALID_PARAMETER);
                }
                let mut mbox = [0u8; MBOX_SIZE];
                mbox.copy_from_slice(&f[off::DCMD_MBOX..off::DCMD_MBOX + MBOX_SIZE]);
                Ok(Frame::Dcmd {
                    opcode: le32(f, off::DCMD_OPCODE),
                    mbox,
                    data_len: h.data_len,
                    sgl,
                })
            }
            op::ABORT => Ok(Frame::Abort {
                context: le64(f, off::ABORT_CONTEXT),
                addr: le64(f, off::ABORT_ADDR),
            }),
            _ => Err(stat::INVALID_CMD),
        }
    }
}

/// The data length, direction and SGL of a SCSI frame must agree: data
/// needs a direction and entries covering it.
fn check_data(dir: Dir, len: u32, sgl: &Sgl<'_>) -> Result<(), u8> {
    if len == 0 {
        return Ok(());
    }
    if dir == Dir::None || sgl.total < u64::from(len) {
        return Err(stat::INVALID_PARAMETER);
    }
    Ok(())
}

/// The READ(16) / WRITE(16) an `LD_READ` / `LD_WRITE` becomes.
pub fn rw16(write: bool, lba: u64, blocks: u32) -> [u8; MAX_CDB] {
    let mut c = [0u8; MAX_CDB];
    c[0] = if write { 0x8a } else { 0x88 };
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// What the answer of a frame writes into its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub cmd_status: u8,
    pub scsi_status: u8,
    /// Sense bytes written to the sense address (0..=96).
    pub sense_len: u8,
}

impl Completion {
    pub const fn status(cmd_status: u8) -> Completion {
        Completion {
            cmd_status,
            scsi_status: 0,
            sense_len: 0,
        }
    }

    /// No command slot free: BUSY, as firmware answers when its queue is
    /// full.
    pub const fn busy() -> Completion {
        Completion {
            cmd_status: stat::SCSI_DONE_WITH_ERROR,
            scsi_status: 0x08,
            sense_len: 0,
        }
    }

    /// The answer of a SCSI command that target core completed with
    /// `scsi_status` and `sense` bytes, into a frame whose initiator
    /// offered `room` sense bytes.
    pub fn scsi(scsi_status: u8, sense: usize, room: u8) -> Completion {
        let n = sense.min(usize::from(room)).min(MAX_SENSE);
        Completion {
            cmd_status: if scsi_status == 0 {
                stat::OK
            } else if scsi_status == 0x18 {
                stat::SCSI_RESERVATION_CONFLICT
            } else {
                stat::SCSI_DONE_WITH_ERROR
            },
            scsi_status,
            sense_len: if scsi_status == 0x02 { n as u8 } else { 0 },
        }
    }
}

/// The status of a frame whose task management function (MFI_CMD_ABORT,
/// CLUSTER_RESET_LD/ALL) ended with `o`.
pub const fn tmf_status(o: super::tmf::Outcome) -> u8 {
    use super::tmf::Outcome;
    match o {
        Outcome::Complete | Outcome::Succeeded => stat::OK,
        Outcome::IncorrectLun => stat::DEVICE_NOT_FOUND,
        Outcome::Rejected | Outcome::Failed => stat::ABORT_NOT_POSSIBLE,
    }
}

// ---------------------------------------------------------------------
// DCMD answers.  Each is encoded into a zeroed buffer of the structure's
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

/// The pure bookkeeping of the frames in flight: which command slot owns
/// which frame address, so that a frame posted twice is refused and an
/// abort finds its victim by address.  A chained hash over caller-owned
/// arrays (`heads` a power of two; `next` and `keys` one per slot).
pub struct FrameIndex<'a> {
    pub heads: &'a mut [u16],
    pub next: &'a mut [u16],
    pub keys: &'a mut [u64],
}

/// No slot.
pub const NO_SLOT: u16 = u16::MAX;

impl FrameIndex<'_> {
    fn bucket(&self, addr: u64) -> usize {
        let h = (addr >> 6).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 40) as usize & (self.heads.len() - 1)
    }

    /// The slot that owns `addr`.
    pub fn find(&self, addr: u64) -> Option<u16> {
        let mut s = self.heads[self.bucket(addr)];
        while s != NO_SLOT {
            if self.keys[usize::from(s)] == addr {
                return Some(s);
            }
            s = self.next[usize::from(s)];
        }
        None
    }

    /// Records that `slot` owns `addr`; false if another slot owns it.
    pub fn insert(&mut self, addr: u64, slot: u16) -> bool {
        if self.find(addr).is_some() {
            return false;
        }
        let b = self.bucket(addr);
        self.keys[usize::from(slot)] = addr;
        self.next[usize::from(slot)] = self.heads[b];
        self.heads[b] = slot;
        true
    }

    /// Forgets `slot`'s frame.
    pub fn remove(&mut self, slot: u16) {
        let addr = self.keys[usize::from(slot)];
        let b = self.bucket(addr);
        let mut p = self.heads[b];
        if p == slot {
            self.heads[b] = self.next[usize::from(slot)];
        } else {
            while p != NO_SLOT {
                let n = self.next[usize::from(p)];
                if n == slot {
                    self.next[usize::from(p)] = self.next[usize::from(slot)];
                    break;
                }
                p = n;
            }
        }
        self.next[usize::from(slot)] = NO_SLOT;
        self.keys[usize::from(slot)] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!((w >> 16) & 0xff, 80);
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
        assert_eq!(le16(&b, 1498), 80);
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
