// SPDX-License-Identifier: GPL-2.0

//! virtio-scsi request and response layouts (virtio 1.x, "SCSI Host
//! Device"), parsed from and encoded to byte buffers.
//!
//! All multi-byte fields are little endian: tcm_virt offers
//! `VIRTIO_F_VERSION_1`, and legacy guests on the little-endian hosts the
//! module supports use the same byte order.  Parsing never trusts a length:
//! every function takes the bytes the guest actually supplied.

use super::tmf::{Function, Outcome};

/// CDB bytes in a request header.
pub const CDB_SIZE: usize = 32;
/// Sense bytes in a response.
pub const SENSE_SIZE: usize = 96;
/// `struct virtio_scsi_cmd_req`.
pub const CMD_REQ_SIZE: usize = 8 + 8 + 3 + CDB_SIZE;
/// `struct virtio_scsi_cmd_req_pi`.
pub const CMD_REQ_PI_SIZE: usize = 8 + 8 + 3 + 4 + 4 + CDB_SIZE;
/// `struct virtio_scsi_cmd_resp`.
pub const CMD_RESP_SIZE: usize = 4 + 4 + 2 + 1 + 1 + SENSE_SIZE;

/// Response codes (`VIRTIO_SCSI_S_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Response {
    /// Completed; see the SCSI status.
    Ok = 0,
    /// More data than the buffers hold.
    Overrun = 1,
    /// Aborted by a TMF.
    Aborted = 2,
    /// No such target or LUN.
    BadTarget = 3,
    /// Reset by a TMF.
    Reset = 4,
    /// Try again later.
    Busy = 5,
    /// Transport failure; try another path.
    TransportFailure = 6,
    /// Target failure; do not retry on another path.
    TargetFailure = 7,
    /// Nexus failure; do not retry on this nexus.
    NexusFailure = 8,
    /// Other failure.
    Failure = 9,
    /// TMF succeeded (QUERY TASK found the task).
    FunctionSucceeded = 10,
    /// TMF rejected.
    FunctionRejected = 11,
    /// TMF on a LUN that does not exist.
    IncorrectLun = 12,
}

impl Response {
    /// Every code, in wire order (the code is the index).
    const ALL: [Response; 13] = [
        Response::Ok,
        Response::Overrun,
        Response::Aborted,
        Response::BadTarget,
        Response::Reset,
        Response::Busy,
        Response::TransportFailure,
        Response::TargetFailure,
        Response::NexusFailure,
        Response::Failure,
        Response::FunctionSucceeded,
        Response::FunctionRejected,
        Response::IncorrectLun,
    ];

    /// The code of a response byte, `None` if unknown.
    pub fn from_wire(b: u8) -> Option<Response> {
        Self::ALL.get(usize::from(b)).copied()
    }
}

/// SAM task attribute of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskAttr {
    /// `VIRTIO_SCSI_S_SIMPLE` (and anything unknown, as C `vhost_scsi` does).
    Simple,
    /// `VIRTIO_SCSI_S_ORDERED`.
    Ordered,
    /// `VIRTIO_SCSI_S_HEAD`.
    Head,
    /// `VIRTIO_SCSI_S_ACA`.
    Aca,
}

impl TaskAttr {
    /// From the request's `task_attr` byte.
    pub const fn from_wire(b: u8) -> TaskAttr {
        match b {
            1 => TaskAttr::Ordered,
            2 => TaskAttr::Head,
            3 => TaskAttr::Aca,
            _ => TaskAttr::Simple,
        }
    }
}

/// Why a request cannot be served as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqError {
    /// Fewer bytes than the request header.
    ShortHeader,
    /// Byte 0 of the LUN is not 1 (the virtio spec's single-level format).
    BadLunFormat,
    /// The CDB's own length (from its opcode) exceeds `CDB_SIZE`.
    CdbTooLong,
}

/// Addressed target and LUN of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lun {
    /// `lun[1]`: the SCSI target id, i.e. the TPG tag.
    pub target: u8,
    /// 14-bit flat LUN from `lun[2..4]`.
    pub lun: u16,
}

/// The first LUN the single-level format cannot carry (14 bits).
pub const LUN_LIMIT: u16 = 0x4000;

impl Lun {
    /// The address of LUN `lun` of the TPG tagged `target`, if a virtio-scsi
    /// driver can address it: target core accepts any 64-bit LUN number
    /// and TPG tags up to 65535, the LUN field only targets below 256 and
    /// LUNs below [`LUN_LIMIT`].  (C `vhost_scsi` truncates instead: an
    /// event for LUN 16384 reads as one for LUN 0.)
    pub fn addressable(target: u16, lun: u64) -> Option<Lun> {
        let target = u8::try_from(target).ok()?;
        let lun = u16::try_from(lun).ok().filter(|&l| l < LUN_LIMIT)?;
        Some(Lun { target, lun })
    }
}

/// Decodes the 8-byte virtio-scsi LUN field: `1, target, 0x40 | lun >> 8,
/// lun & 0xff, 0, 0, 0, 0`.
pub fn decode_lun(lun: &[u8; 8]) -> Result<Lun, ReqError> {
    if lun[0] != 1 {
        return Err(ReqError::BadLunFormat);
    }
    Ok(Lun {
        target: lun[1],
        lun: (u16::from(lun[2]) << 8 | u16::from(lun[3])) & 0x3fff,
    })
}

/// Encodes a LUN field the way the Linux driver does.
pub fn encode_lun(target: u8, lun: u16) -> [u8; 8] {
    let l = lun & 0x3fff;
    [1, target, 0x40 | (l >> 8) as u8, l as u8, 0, 0, 0, 0]
}

/// Length of a CDB from its operation code (`scsi_command_size()`):
/// groups 0..7 give 6, 10, 10, 12, 16, 12, 10, 10 bytes; the variable
/// length opcode 7Fh gives 8 plus its additional length (byte 7).
pub fn cdb_len(cdb: &[u8; CDB_SIZE]) -> usize {
    const GROUP: [usize; 8] = [6, 10, 10, 12, 16, 12, 10, 10];
    if cdb[0] == 0x7f {
        8 + usize::from(cdb[7])
    } else {
        GROUP[usize::from(cdb[0] >> 5)]
    }
}

/// A parsed `virtio_scsi_cmd_req` or `virtio_scsi_cmd_req_pi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdReq {
    /// Raw LUN field (decode with [`decode_lun`]).
    pub lun: [u8; 8],
    /// The driver's command identifier.
    pub tag: u64,
    /// Task attribute.
    pub task_attr: TaskAttr,
    /// SAM priority (ignored, as by C `vhost_scsi`).
    pub prio: u8,
    /// Command reference number (ignored).
    pub crn: u8,
    /// Protection information bytes in the data-out buffers (PI layout only).
    pub pi_bytesout: u32,
    /// Protection information bytes in the data-in buffers (PI layout only).
    pub pi_bytesin: u32,
    /// The CDB, zero-padded.
    pub cdb: [u8; CDB_SIZE],
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

impl CmdReq {
    /// Header size of the layout (`pi` when `VIRTIO_SCSI_F_T10_PI` was
    /// negotiated).
    pub const fn header_size(pi: bool) -> usize {
        if pi {
            CMD_REQ_PI_SIZE
        } else {
            CMD_REQ_SIZE
        }
    }

    /// Parses the request header at the start of `buf`.
    pub fn parse(buf: &[u8], pi: bool) -> Result<CmdReq, ReqError> {
        if buf.len() < Self::header_size(pi) {
            return Err(ReqError::ShortHeader);
        }
        let mut lun = [0u8; 8];
        lun.copy_from_slice(&buf[..8]);
        let (pi_out, pi_in, cdb_at) = if pi {
            (le32(&buf[19..23]), le32(&buf[23..27]), 27)
        } else {
            (0, 0, 19)
        };
        let mut cdb = [0u8; CDB_SIZE];
        cdb.copy_from_slice(&buf[cdb_at..cdb_at + CDB_SIZE]);
        Ok(CmdReq {
            lun,
            tag: le64(&buf[8..16]),
            task_attr: TaskAttr::from_wire(buf[16]),
            prio: buf[17],
            crn: buf[18],
            pi_bytesout: pi_out,
            pi_bytesin: pi_in,
            cdb,
        })
    }

    /// Encodes the header (for initiators: the userspace driver).
    pub fn encode(&self, pi: bool, out: &mut [u8]) -> usize {
        let n = Self::header_size(pi);
        let out = &mut out[..n];
        out.fill(0);
        out[..8].copy_from_slice(&self.lun);
        out[8..16].copy_from_slice(&self.tag.to_le_bytes());
        out[16] = match self.task_attr {
            TaskAttr::Simple => 0,
            TaskAttr::Ordered => 1,
            TaskAttr::Head => 2,
            TaskAttr::Aca => 3,
        };
        out[17] = self.prio;
        out[18] = self.crn;
        let cdb_at = if pi {
            out[19..23].copy_from_slice(&self.pi_bytesout.to_le_bytes());
            out[23..27].copy_from_slice(&self.pi_bytesin.to_le_bytes());
            27
        } else {
            19
        };
        out[cdb_at..cdb_at + CDB_SIZE].copy_from_slice(&self.cdb);
        n
    }

    /// The checks every request passes before it reaches target core.
    pub fn validate(&self) -> Result<Lun, ReqError> {
        let lun = decode_lun(&self.lun)?;
        if cdb_len(&self.cdb) > CDB_SIZE {
            return Err(ReqError::CdbTooLong);
        }
        Ok(lun)
    }
}

/// A `virtio_scsi_cmd_resp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdResp {
    /// Valid bytes of `sense`.
    pub sense_len: u32,
    /// Data bytes not transferred.
    pub resid: u32,
    /// SAM status qualifier.
    pub status_qualifier: u16,
    /// SCSI status byte.
    pub status: u8,
    /// virtio-scsi response code.
    pub response: Response,
    /// Sense data.
    pub sense: [u8; SENSE_SIZE],
}

impl CmdResp {
    /// A response carrying only a response code.
    pub const fn with_response(response: Response) -> CmdResp {
        CmdResp {
            sense_len: 0,
            resid: 0,
            status_qualifier: 0,
            status: 0,
            response,
            sense: [0; SENSE_SIZE],
        }
    }

    /// Encodes into the guest's layout.
    pub fn encode(&self) -> [u8; CMD_RESP_SIZE] {
        let mut b = [0u8; CMD_RESP_SIZE];
        b[0..4].copy_from_slice(&self.sense_len.to_le_bytes());
        b[4..8].copy_from_slice(&self.resid.to_le_bytes());
        b[8..10].copy_from_slice(&self.status_qualifier.to_le_bytes());
        b[10] = self.status;
        b[11] = self.response as u8;
        b[12..].copy_from_slice(&self.sense);
        b
    }

    /// Encodes the response of a command target core ended: `response`,
    /// `status`, `resid` and the sense bytes `sense` (at most
    /// [`SENSE_SIZE`] kept; `sense_len` is their number), the rest zero.
    /// The same bytes as `encode` of that response, without building one
    /// (a completion path's copy of the whole sense array).
    pub fn encode_ended(
        response: Response,
        status: u8,
        resid: u32,
        sense: &[u8],
    ) -> [u8; CMD_RESP_SIZE] {
        let sense = &sense[..sense.len().min(SENSE_SIZE)];
        // At most SENSE_SIZE (96), so the cast is exact.
        let sense_len = sense.len() as u32;
        let mut b = [0u8; CMD_RESP_SIZE];
        b[0..4].copy_from_slice(&sense_len.to_le_bytes());
        b[4..8].copy_from_slice(&resid.to_le_bytes());
        b[10] = status;
        b[11] = response as u8;
        b[12..12 + sense.len()].copy_from_slice(sense);
        b
    }

    /// Decodes (for initiators); `None` if short or the response code is
    /// unknown.
    pub fn decode(b: &[u8]) -> Option<CmdResp> {
        if b.len() < CMD_RESP_SIZE {
            return None;
        }
        let response = Response::from_wire(b[11])?;
        let mut sense = [0u8; SENSE_SIZE];
        sense.copy_from_slice(&b[12..CMD_RESP_SIZE]);
        Some(CmdResp {
            sense_len: le32(&b[0..4]),
            resid: le32(&b[4..8]),
            status_qualifier: u16::from_le_bytes([b[8], b[9]]),
            status: b[10],
            response,
            sense,
        })
    }
}

/// Largest data transfer of one command: 2048 pages of 4 KiB, the limit
/// target core is told (`max_data_sg_nents`) and C `vhost_scsi` has.
pub const MAX_DATA_BYTES: usize = 2048 * 4096;

/// Direction of a command's data, from the buffers the driver posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDir {
    /// No data buffers besides the header and the response.
    None,
    /// Data-out buffers follow the request header (a write).
    ToDevice,
    /// Data-in buffers follow the response (a read).
    FromDevice,
}

/// How a request's buffers split into protection information and data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoPlan {
    /// Data direction.
    pub dir: DataDir,
    /// Bytes of data (after any protection information).
    pub data_len: u32,
    /// Bytes of T10 PI preceding the data in the same buffers.
    pub prot_len: u32,
}

/// Why the buffers of a request cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The device-writable part cannot hold a response: the request cannot
    /// be answered with a `virtio_scsi_cmd_resp`.
    NoResponseBuffer,
    /// The driver-readable part is shorter than the request header.
    ShortHeader,
    /// `pi_bytesout` on a command without data-out, or `pi_bytesin` on one
    /// without data-in.
    PiWrongDirection,
    /// Protection information as large as the whole payload or larger.
    PiTooLarge,
    /// More data than one command may carry ([`MAX_DATA_BYTES`]).
    TooMuchData,
}

/// Splits the `out_size` driver-readable and `in_size` device-writable bytes
/// of a request chain: header, data-out, response, data-in.
///
/// As in C `vhost_scsi`, a chain with both data-out and data-in buffers is
/// treated as a write (bidirectional commands are not offered).  Call with
/// `req == None` to check only the buffer sizes (before the header is read).
#[inline]
pub fn plan_io(
    out_size: usize,
    in_size: usize,
    pi: bool,
    req: Option<&CmdReq>,
) -> Result<IoPlan, PlanError> {
    let hdr = CmdReq::header_size(pi);
    if in_size < CMD_RESP_SIZE {
        return Err(PlanError::NoResponseBuffer);
    }
    if out_size < hdr {
        return Err(PlanError::ShortHeader);
    }
    let (dir, total) = if out_size > hdr {
        (DataDir::ToDevice, out_size - hdr)
    } else if in_size > CMD_RESP_SIZE {
        (DataDir::FromDevice, in_size - CMD_RESP_SIZE)
    } else {
        (DataDir::None, 0)
    };
    let mut prot = 0usize;
    if let (true, Some(r)) = (pi, req) {
        if r.pi_bytesout != 0 {
            if dir != DataDir::ToDevice {
                return Err(PlanError::PiWrongDirection);
            }
            prot = r.pi_bytesout as usize;
        } else if r.pi_bytesin != 0 {
            if dir != DataDir::FromDevice {
                return Err(PlanError::PiWrongDirection);
            }
            prot = r.pi_bytesin as usize;
        }
        if prot != 0 && prot >= total {
            return Err(PlanError::PiTooLarge);
        }
    }
    let data = total - prot;
    if data > MAX_DATA_BYTES || prot > MAX_DATA_BYTES {
        return Err(PlanError::TooMuchData);
    }
    Ok(IoPlan {
        dir,
        // Both are at most MAX_DATA_BYTES, checked above.
        data_len: data as u32,
        prot_len: prot as u32,
    })
}

/// Control queue request types (`VIRTIO_SCSI_T_*`).
pub const T_TMF: u32 = 0;
/// Asynchronous notification query.
pub const T_AN_QUERY: u32 = 1;
/// Asynchronous notification subscription.
pub const T_AN_SUBSCRIBE: u32 = 2;

/// `virtio_scsi_ctrl_tmf_req`: type, subtype, lun, tag.
pub const TMF_REQ_SIZE: usize = 4 + 4 + 8 + 8;
/// `virtio_scsi_ctrl_tmf_resp` (packed): response.
pub const TMF_RESP_SIZE: usize = 1;
/// `virtio_scsi_ctrl_an_req`: type, lun, event_requested.
pub const AN_REQ_SIZE: usize = 4 + 8 + 4;
/// `virtio_scsi_ctrl_an_resp` (packed): event_actual, response.
pub const AN_RESP_SIZE: usize = 4 + 1;

/// A parsed control queue request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlReq {
    /// Task management function.
    Tmf {
        /// `VIRTIO_SCSI_T_TMF_*`.
        subtype: u32,
        /// Addressed LUN (raw).
        lun: [u8; 8],
        /// Tag of the task (ABORT TASK, QUERY TASK).
        tag: u64,
    },
    /// AN query or subscribe.
    An {
        /// `true` for `AN_SUBSCRIBE`.
        subscribe: bool,
        /// Addressed LUN (raw).
        lun: [u8; 8],
        /// Event classes asked for.
        event_requested: u32,
    },
}

/// Why a control request cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlError {
    /// Not even the 4-byte type is readable.
    NoType,
    /// A type this device does not know: the response layout is unknown.
    UnknownType(u32),
    /// The response buffer is smaller than the type's response.
    NoResponseBuffer,
    /// The request is shorter than its type's layout.
    ShortRequest,
}

impl CtrlReq {
    /// Response size for a request type (`None` for unknown types).
    pub const fn resp_size(ty: u32) -> Option<usize> {
        match ty {
            T_TMF => Some(TMF_RESP_SIZE),
            T_AN_QUERY | T_AN_SUBSCRIBE => Some(AN_RESP_SIZE),
            _ => None,
        }
    }

    /// Parses a control request from its first bytes `buf` (as many as
    /// were readable, up to the largest layout), given the total sizes of
    /// the readable (`out_size`) and writable (`in_size`) parts.
    pub fn parse(buf: &[u8], out_size: usize, in_size: usize) -> Result<CtrlReq, CtrlError> {
        if buf.len() < 4 {
            return Err(CtrlError::NoType);
        }
        let ty = le32(&buf[0..4]);
        let (req_size, resp_size) = match ty {
            T_TMF => (TMF_REQ_SIZE, TMF_RESP_SIZE),
            T_AN_QUERY | T_AN_SUBSCRIBE => (AN_REQ_SIZE, AN_RESP_SIZE),
            t => return Err(CtrlError::UnknownType(t)),
        };
        if in_size < resp_size {
            return Err(CtrlError::NoResponseBuffer);
        }
        if out_size < req_size || buf.len() < req_size {
            return Err(CtrlError::ShortRequest);
        }
        let mut lun = [0u8; 8];
        if ty == T_TMF {
            lun.copy_from_slice(&buf[8..16]);
            Ok(CtrlReq::Tmf {
                subtype: le32(&buf[4..8]),
                lun,
                tag: le64(&buf[16..24]),
            })
        } else {
            lun.copy_from_slice(&buf[4..12]);
            Ok(CtrlReq::An {
                subscribe: ty == T_AN_SUBSCRIBE,
                lun,
                event_requested: le32(&buf[12..16]),
            })
        }
    }
}

/// The task management function of a `VIRTIO_SCSI_T_TMF_*` subtype
/// (`None` for a subtype the specification does not define).
pub const fn tmf_function(subtype: u32) -> Option<Function> {
    Some(match subtype {
        0 => Function::AbortTask,
        1 => Function::AbortTaskSet,
        2 => Function::ClearAca,
        3 => Function::ClearTaskSet,
        4 => Function::ItNexusReset,
        5 => Function::LunReset,
        6 => Function::QueryTask,
        7 => Function::QueryTaskSet,
        _ => return None,
    })
}

/// The virtio-scsi response code of a TMF's service response.
///
/// FUNCTION COMPLETE is `VIRTIO_SCSI_S_FUNCTION_COMPLETE` (0), except for
/// LOGICAL UNIT RESET, which C `vhost_scsi` has always answered
/// `VIRTIO_SCSI_S_FUNCTION_SUCCEEDED`: kept, so that a guest sees the same
/// answer from either (both count as success for the Linux and Windows
/// drivers).
pub const fn tmf_response(f: Function, o: Outcome) -> Response {
    match (f, o) {
        (Function::LunReset, Outcome::Complete) => Response::FunctionSucceeded,
        (_, Outcome::Complete) => Response::Ok,
        (_, Outcome::Succeeded) => Response::FunctionSucceeded,
        (_, Outcome::Rejected) => Response::FunctionRejected,
        (_, Outcome::IncorrectLun) => Response::IncorrectLun,
        (_, Outcome::Failed) => Response::Failure,
    }
}

/// `struct virtio_scsi_event`: event (le32), lun[8], reason (le32).
pub const EVENT_SIZE: usize = 16;
/// `VIRTIO_SCSI_T_NO_EVENT`.
pub const T_NO_EVENT: u32 = 0;
/// `VIRTIO_SCSI_T_TRANSPORT_RESET`.
pub const T_TRANSPORT_RESET: u32 = 1;
/// `VIRTIO_SCSI_T_EVENTS_MISSED`, or-ed into the event type.
pub const T_EVENTS_MISSED: u32 = 0x8000_0000;
/// `VIRTIO_SCSI_EVT_RESET_HARD`: a bus or target reset (never sent).
pub const EVT_RESET_HARD: u32 = 0;
/// `VIRTIO_SCSI_EVT_RESET_RESCAN`: a LUN appeared.
pub const EVT_RESET_RESCAN: u32 = 1;
/// `VIRTIO_SCSI_EVT_RESET_REMOVED`: a LUN went away.
pub const EVT_RESET_REMOVED: u32 = 2;

/// Encodes an event.  `lun` is `None` for `VIRTIO_SCSI_T_NO_EVENT`; the
/// LUN field is encoded as C `vhost_scsi` does (`1, target, 0x40 | lun >>
/// 8` for LUNs of 256 and above, `lun & 0xff`).
pub fn encode_event(event: u32, lun: Option<Lun>, reason: u32) -> [u8; EVENT_SIZE] {
    let mut b = [0u8; EVENT_SIZE];
    b[0..4].copy_from_slice(&event.to_le_bytes());
    if let Some(Lun { target, lun }) = lun {
        let [hi, lo] = (lun & (LUN_LIMIT - 1)).to_be_bytes();
        b[4] = 1;
        b[5] = target;
        if hi != 0 {
            b[6] = 0x40 | hi;
        }
        b[7] = lo;
    }
    b[12..16].copy_from_slice(&reason.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmf_mapping() {
        for st in 0..8 {
            assert!(tmf_function(st).is_some());
        }
        assert_eq!(tmf_function(8), None);
        assert_eq!(tmf_function(u32::MAX), None);
        let lr = Function::LunReset;
        assert_eq!(
            tmf_response(lr, Outcome::Complete),
            Response::FunctionSucceeded
        );
        assert_eq!(
            tmf_response(Function::AbortTask, Outcome::Complete),
            Response::Ok
        );
        assert_eq!(
            tmf_response(Function::QueryTask, Outcome::Succeeded),
            Response::FunctionSucceeded
        );
        assert_eq!(
            tmf_response(lr, Outcome::IncorrectLun),
            Response::IncorrectLun
        );
        assert_eq!(
            tmf_response(lr, Outcome::Rejected),
            Response::FunctionRejected
        );
        assert_eq!(tmf_response(lr, Outcome::Failed), Response::Failure);
    }

    #[test]
    fn event_encoding() {
        let e = encode_event(T_TRANSPORT_RESET, Lun::addressable(1, 3), EVT_RESET_RESCAN);
        assert_eq!(e, [1, 0, 0, 0, 1, 1, 0, 3, 0, 0, 0, 0, 1, 0, 0, 0]);
        let l = Lun::addressable(7, 0x1ff);
        let e = encode_event(T_TRANSPORT_RESET | T_EVENTS_MISSED, l, 2);
        assert_eq!(e, [1, 0, 0, 0x80, 1, 7, 0x41, 0xff, 0, 0, 0, 0, 2, 0, 0, 0]);
        let e = encode_event(T_TRANSPORT_RESET, Lun::addressable(255, 0x3fff), 0);
        assert_eq!(e, [1, 0, 0, 0, 1, 255, 0x7f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
        let e = encode_event(T_NO_EVENT | T_EVENTS_MISSED, None, 0);
        assert_eq!(e, [0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn addressable_luns() {
        assert_eq!(Lun::addressable(0, 0), Some(Lun { target: 0, lun: 0 }));
        assert_eq!(
            Lun::addressable(255, 16383),
            Some(Lun {
                target: 255,
                lun: 16383
            })
        );
        // What the LUN field cannot carry has no address, rather than the
        // address of another LUN.
        assert_eq!(Lun::addressable(1, 16384), None);
        assert_eq!(Lun::addressable(1, 65536), None);
        assert_eq!(Lun::addressable(1, u64::MAX), None);
        assert_eq!(Lun::addressable(256, 0), None);
        // Every addressable LUN decodes back to itself.
        for lun in [0u64, 1, 255, 256, 300, 16383] {
            let l = Lun::addressable(3, lun).unwrap();
            let e = encode_event(T_TRANSPORT_RESET, Some(l), 0);
            assert_eq!(decode_lun(e[4..12].try_into().unwrap()), Ok(l));
        }
    }

    #[test]
    fn sizes_match_the_uapi_header() {
        assert_eq!(CMD_REQ_SIZE, 51);
        assert_eq!(CMD_REQ_PI_SIZE, 59);
        assert_eq!(CMD_RESP_SIZE, 108);
    }

    #[test]
    fn lun_round_trip() {
        for (t, l) in [(0u8, 0u16), (1, 1), (255, 16383), (7, 0x1234)] {
            let enc = encode_lun(t, l);
            assert_eq!(decode_lun(&enc), Ok(Lun { target: t, lun: l }));
        }
        assert_eq!(
            decode_lun(&[0, 1, 0x40, 0, 0, 0, 0, 0]),
            Err(ReqError::BadLunFormat)
        );
        assert_eq!(decode_lun(&[2; 8]), Err(ReqError::BadLunFormat));
        // the 0x40 flat-space bits are masked off, as in C vhost_scsi
        assert_eq!(
            decode_lun(&[1, 0, 0xff, 0xff, 0, 0, 0, 0]).unwrap().lun,
            0x3fff
        );
    }

    #[test]
    fn cdb_lengths() {
        let mut cdb = [0u8; CDB_SIZE];
        for (op, len) in [
            (0x00, 6),
            (0x28, 10),
            (0x4d, 10),
            (0xa0, 12),
            (0x88, 16),
            (0xc0, 10),
        ] {
            cdb[0] = op;
            assert_eq!(cdb_len(&cdb), len, "opcode {op:#x}");
        }
        cdb[0] = 0x7f;
        cdb[7] = 24;
        assert_eq!(cdb_len(&cdb), 32);
        cdb[7] = 25;
        assert_eq!(cdb_len(&cdb), 33);
    }

    #[test]
    fn request_round_trip() {
        for pi in [false, true] {
            let mut cdb = [0u8; CDB_SIZE];
            cdb[..10].copy_from_slice(&[0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0]);
            let req = CmdReq {
                lun: encode_lun(1, 3),
                tag: 0x1122_3344_5566_7788,
                task_attr: TaskAttr::Ordered,
                prio: 4,
                crn: 5,
                pi_bytesout: if pi { 8 } else { 0 },
                pi_bytesin: if pi { 16 } else { 0 },
                cdb,
            };
            let mut buf = [0u8; 64];
            let n = req.encode(pi, &mut buf);
            assert_eq!(n, CmdReq::header_size(pi));
            assert_eq!(CmdReq::parse(&buf[..n], pi), Ok(req));
            assert_eq!(CmdReq::parse(&buf[..n - 1], pi), Err(ReqError::ShortHeader));
            assert_eq!(req.validate(), Ok(Lun { target: 1, lun: 3 }));
        }
    }

    #[test]
    fn response_round_trip() {
        let mut r = CmdResp::with_response(Response::Ok);
        r.status = 2;
        r.sense_len = 18;
        r.resid = 512;
        r.sense[0] = 0x70;
        r.sense[2] = 0x05;
        let b = r.encode();
        assert_eq!(b[10], 2);
        assert_eq!(b[11], 0);
        assert_eq!(CmdResp::decode(&b), Some(r));
        let mut bad = b;
        bad[11] = 13;
        assert_eq!(CmdResp::decode(&bad), None);
        assert_eq!(CmdResp::decode(&b[..100]), None);
    }

    /// `encode_ended` gives what `encode` of the same response gives, and
    /// keeps at most SENSE_SIZE bytes.
    #[test]
    fn ended_response_matches_encode() {
        let mut sense = [0u8; 120];
        for (i, s) in sense.iter_mut().enumerate() {
            *s = i as u8 ^ 0x5a;
        }
        for (response, status, resid, n) in [
            (Response::Ok, 0u8, 0u32, 0usize),
            (Response::Ok, 2, 512, 18),
            (Response::Ok, 2, 7, SENSE_SIZE),
            (Response::Ok, 2, 7, 120),
            (Response::Aborted, 0, 0, 0),
            (Response::Reset, 0, 0, 0),
        ] {
            let mut r = CmdResp::with_response(response);
            r.status = status;
            r.resid = resid;
            let kept = n.min(SENSE_SIZE);
            r.sense_len = kept as u32;
            r.sense[..kept].copy_from_slice(&sense[..kept]);
            let b = CmdResp::encode_ended(response, status, resid, &sense[..n]);
            assert_eq!(b, r.encode(), "{response:?} status {status} sense {n}");
        }
    }

    /// Arbitrary bytes: parsing never panics, and what validates addresses
    /// a target byte and a 14-bit LUN with a CDB that fits.
    #[test]
    fn arbitrary_headers() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = [0u8; 80];
        for _ in 0..50_000 {
            for b in buf.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            buf[0] = if seed & 1 == 0 { 1 } else { buf[0] };
            let len = (seed >> 8) as usize % buf.len();
            for pi in [false, true] {
                if let Ok(req) = CmdReq::parse(&buf[..len], pi) {
                    if let Ok(l) = req.validate() {
                        assert!(l.lun < 0x4000);
                        assert!(cdb_len(&req.cdb) <= CDB_SIZE);
                    }
                }
            }
            let _ = CmdResp::decode(&buf[..len]);
        }
    }

    #[test]
    fn plan_directions() {
        let r = CmdReq::parse(&[1u8; CMD_REQ_SIZE], false).unwrap();
        let p = plan_io(CMD_REQ_SIZE, CMD_RESP_SIZE, false, Some(&r)).unwrap();
        assert_eq!((p.dir, p.data_len), (DataDir::None, 0));
        let p = plan_io(CMD_REQ_SIZE + 512, CMD_RESP_SIZE, false, Some(&r)).unwrap();
        assert_eq!((p.dir, p.data_len), (DataDir::ToDevice, 512));
        let p = plan_io(CMD_REQ_SIZE, CMD_RESP_SIZE + 4096, false, Some(&r)).unwrap();
        assert_eq!((p.dir, p.data_len), (DataDir::FromDevice, 4096));
        // Both: a write, as C vhost_scsi does.
        let p = plan_io(CMD_REQ_SIZE + 8, CMD_RESP_SIZE + 8, false, Some(&r)).unwrap();
        assert_eq!(p.dir, DataDir::ToDevice);
        assert_eq!(
            plan_io(CMD_REQ_SIZE, CMD_RESP_SIZE - 1, false, None),
            Err(PlanError::NoResponseBuffer)
        );
        assert_eq!(
            plan_io(CMD_REQ_SIZE - 1, CMD_RESP_SIZE, false, None),
            Err(PlanError::ShortHeader)
        );
        assert_eq!(
            plan_io(
                CMD_REQ_SIZE,
                CMD_RESP_SIZE + MAX_DATA_BYTES + 1,
                false,
                None
            ),
            Err(PlanError::TooMuchData)
        );
        assert!(plan_io(CMD_REQ_SIZE, CMD_RESP_SIZE + MAX_DATA_BYTES, false, None).is_ok());
    }

    #[test]
    fn plan_protection_information() {
        let mut r = CmdReq::parse(&[0u8; CMD_REQ_PI_SIZE], true).unwrap();
        r.pi_bytesout = 8;
        let p = plan_io(CMD_REQ_PI_SIZE + 520, CMD_RESP_SIZE, true, Some(&r)).unwrap();
        assert_eq!((p.data_len, p.prot_len), (512, 8));
        assert_eq!(
            plan_io(CMD_REQ_PI_SIZE, CMD_RESP_SIZE + 520, true, Some(&r)),
            Err(PlanError::PiWrongDirection)
        );
        assert_eq!(
            plan_io(CMD_REQ_PI_SIZE + 8, CMD_RESP_SIZE, true, Some(&r)),
            Err(PlanError::PiTooLarge)
        );
        r.pi_bytesout = 0;
        r.pi_bytesin = u32::MAX;
        assert_eq!(
            plan_io(CMD_REQ_PI_SIZE, CMD_RESP_SIZE + 520, true, Some(&r)),
            Err(PlanError::PiTooLarge)
        );
    }

    #[test]
    fn control_requests() {
        let mut b = [0u8; TMF_REQ_SIZE];
        b[4] = 5;
        b[8] = 1;
        b[16] = 0x42;
        assert_eq!(
            CtrlReq::parse(&b, TMF_REQ_SIZE, 1),
            Ok(CtrlReq::Tmf {
                subtype: 5,
                lun: [1, 0, 0, 0, 0, 0, 0, 0],
                tag: 0x42
            })
        );
        assert_eq!(
            CtrlReq::parse(&b, TMF_REQ_SIZE, 0),
            Err(CtrlError::NoResponseBuffer)
        );
        assert_eq!(
            CtrlReq::parse(&b[..20], 20, 1),
            Err(CtrlError::ShortRequest)
        );
        b[0] = 9;
        assert_eq!(
            CtrlReq::parse(&b, TMF_REQ_SIZE, 1),
            Err(CtrlError::UnknownType(9))
        );
        assert_eq!(CtrlReq::parse(&b[..3], 3, 1), Err(CtrlError::NoType));
        let mut a = [0u8; AN_REQ_SIZE];
        a[0] = 2;
        a[12] = 0x10;
        assert!(matches!(
            CtrlReq::parse(&a, AN_REQ_SIZE, AN_RESP_SIZE),
            Ok(CtrlReq::An {
                subscribe: true,
                event_requested: 0x10,
                ..
            })
        ));
    }

    #[test]
    fn arbitrary_sizes_never_panic() {
        let mut x: u64 = 0x1234_5678_9abc_def0;
        let mut buf = [0u8; CMD_REQ_PI_SIZE];
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (x >> (i % 8 * 8)) as u8;
            }
            let pi = x & 1 != 0;
            let out = (x >> 8) as usize % (MAX_DATA_BYTES * 2);
            let inn = (x >> 32) as usize % (MAX_DATA_BYTES * 2);
            let r = CmdReq::parse(&buf, pi).unwrap();
            if let Ok(p) = plan_io(out, inn, pi, Some(&r)) {
                let total = p.data_len as usize + p.prot_len as usize;
                assert!(total <= out.max(inn));
            }
            let _ = CtrlReq::parse(&buf[..(x as usize % buf.len())], out, inn);
        }
    }
}
