// SPDX-License-Identifier: GPL-2.0

//! Frames as the initiator posts them: the inbound queue entry, the header,
//! the queue set-up (INIT), scatter-gather lists, the parsed frame kinds and
//! the completion written back.

use super::{
    flag, le16, le32, le64, off, op, put32, put64, stat, FRAME_SIZE, MAX_CDB, MAX_CMDS, MAX_FRAMES,
    MAX_SENSE, MAX_SGE, MAX_XFER, MBOX_SIZE, QINFO_SIZE, QUEUE_FLAG_CONTEXT64,
};

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
    /// Parses the header of a frame snapshot, its first frame.
    pub fn parse(f: &[u8; FRAME_SIZE]) -> Header {
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

    /// Where the command's SGL ends (0 for a command without one).  The
    /// frame count of the inbound queue entry is what the initiator chose
    /// to announce: the Linux driver caps it at 8 frames (512 bytes), while
    /// its frames hold up to [`MAX_SGE`] entries, so that an SGL of more
    /// than 29 IEEE entries goes on past the posted frames, and firmware
    /// reads on to its end.  The count is taken at most [`MAX_SGE`]
    /// (more is refused by the parser), so the end is at most
    /// [`MAX_CMD_BYTES`].
    pub fn sgl_end(&self) -> usize {
        let at = match self.cmd {
            op::LD_READ | op::LD_WRITE => off::IO_SGL,
            op::LD_SCSI_IO | op::PD_SCSI_IO => off::PTHRU_SGL,
            op::DCMD => off::DCMD_SGL,
            _ => return 0,
        };
        let n = usize::from(self.sge_count).min(MAX_SGE as usize);
        at + n * SgeFormat::from_flags(self.flags).size()
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
fn sense_addr(f: &[u8; FRAME_SIZE], flags: u16) -> u64 {
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
        let hf = f
            .first_chunk::<FRAME_SIZE>()
            .ok_or(stat::INVALID_PARAMETER)?;
        Frame::parse_with(&Header::parse(hf), f)
    }

    /// [`Frame::parse`] with the header `h` already parsed from the first
    /// frame of `f` (`Header::parse`), as the adapter does to find how
    /// many bytes of the SGL to read before the rest is parsed.
    pub fn parse_with(h: &Header, f: &'a [u8]) -> Result<Frame<'a>, u8> {
        // Every fixed field lies in the first frame (`hf`); only the SGL
        // may go on past it.
        let hf = f
            .first_chunk::<FRAME_SIZE>()
            .ok_or(stat::INVALID_PARAMETER)?;
        debug_assert!(Header::parse(hf) == *h, "header not parsed from this frame");
        let sgl =
            |o: usize| Sgl::parse(f, o, h.sge_count, h.flags).map_err(|_| stat::INVALID_PARAMETER);
        match h.cmd {
            op::INIT => Ok(Frame::Init {
                qinfo: le64(hf, off::INIT_QINFO),
            }),
            op::LD_SCSI_IO | op::PD_SCSI_IO => {
                let ld = h.cmd == op::LD_SCSI_IO;
                let mut cdb = [0u8; MAX_CDB];
                cdb.copy_from_slice(&hf[off::PTHRU_CDB..off::PTHRU_CDB + MAX_CDB]);
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
                    sense: sense_addr(hf, h.flags),
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
                    lba: le64(hf, off::START_LBA),
                    blocks: h.data_len,
                    sense: sense_addr(hf, h.flags),
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
                mbox.copy_from_slice(&hf[off::DCMD_MBOX..off::DCMD_MBOX + MBOX_SIZE]);
                Ok(Frame::Dcmd {
                    opcode: le32(hf, off::DCMD_OPCODE),
                    mbox,
                    data_len: h.data_len,
                    sgl,
                })
            }
            op::ABORT => Ok(Frame::Abort {
                context: le64(hf, off::ABORT_CONTEXT),
                addr: le64(hf, off::ABORT_ADDR),
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
pub const fn tmf_status(o: super::super::tmf::Outcome) -> u8 {
    use super::super::tmf::Outcome;
    match o {
        Outcome::Complete | Outcome::Succeeded => stat::OK,
        Outcome::IncorrectLun => stat::DEVICE_NOT_FOUND,
        Outcome::Rejected | Outcome::Failed => stat::ABORT_NOT_POSSIBLE,
    }
}

// ---------------------------------------------------------------------
// DCMD answers.  Each is encoded into a zeroed buffer of the structure's
