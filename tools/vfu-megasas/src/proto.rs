// SPDX-License-Identifier: GPL-2.0
//! The vfio-user wire format (the subset this server speaks), parsed from
//! and encoded to bytes with no I/O.
//!
//! Every message starts with a 16-byte header (id, command, size, flags,
//! error); `size` counts the header.  All fields are little endian.  The
//! payload layouts are those of the VFIO ioctl structures they carry
//! (`struct vfio_device_info`, `vfio_region_info`, ...), as the protocol
//! specification and QEMU's `hw/vfio-user/protocol.h` define them.

/// An errno value carried in an error reply (positive, as on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub u32);

pub const E2BIG: Errno = Errno(7);
pub const EEXIST: Errno = Errno(17);
pub const EINVAL: Errno = Errno(22);
pub const ENOSPC: Errno = Errno(28);
pub const ENOTSUP: Errno = Errno(95);

impl Errno {
    /// The errno of an I/O error (EINVAL if it has none).
    pub fn of(e: &std::io::Error) -> Errno {
        e.raw_os_error()
            .and_then(|n| u32::try_from(n).ok())
            .map_or(EINVAL, Errno)
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = i32::try_from(self.0).map_or_else(
            |_| std::io::Error::other("bad errno"),
            std::io::Error::from_raw_os_error,
        );
        write!(f, "{e}")
    }
}

pub const HEADER_SIZE: usize = 16;

// Commands.
pub const VERSION: u16 = 1;
pub const DMA_MAP: u16 = 2;
pub const DMA_UNMAP: u16 = 3;
pub const DEVICE_GET_INFO: u16 = 4;
pub const DEVICE_GET_REGION_INFO: u16 = 5;
pub const DEVICE_GET_IRQ_INFO: u16 = 7;
pub const DEVICE_SET_IRQS: u16 = 8;
pub const REGION_READ: u16 = 9;
pub const REGION_WRITE: u16 = 10;
pub const DEVICE_RESET: u16 = 13;

// Header flags.
pub const TYPE_MASK: u32 = 0xf;
pub const TYPE_REQUEST: u32 = 0;
pub const TYPE_REPLY: u32 = 1;
pub const NO_REPLY: u32 = 0x10;
pub const ERROR: u32 = 0x20;

/// The largest data transfer (region read/write) accepted and advertised
/// (`max_data_xfer_size`, the protocol's default).
pub const MAX_XFER: u32 = 1 << 20;
/// The largest message accepted: a region write of `MAX_XFER` bytes.
pub const MAX_MSG: u32 = HEADER_SIZE as u32 + 16 + MAX_XFER;
/// File descriptors accepted in one message (advertised as `max_msg_fds`).
pub const MAX_FDS: usize = 8;

/// The server's capabilities, the VERSION reply's JSON.  Kept shorter than
/// QEMU's own VERSION request: QEMU receives the reply into the buffer of
/// its request and refuses a longer one.
pub const SERVER_CAPS: &str =
    "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":1048576,\"max_dma_maps\":64}}";

// struct vfio_device_info flags.
pub const DEVICE_FLAGS_RESET: u32 = 1 << 0;
pub const DEVICE_FLAGS_PCI: u32 = 1 << 1;
// struct vfio_region_info flags.
pub const REGION_INFO_FLAG_READ: u32 = 1 << 0;
pub const REGION_INFO_FLAG_WRITE: u32 = 1 << 1;
// struct vfio_irq_info flags.
pub const IRQ_INFO_EVENTFD: u32 = 1 << 0;
pub const IRQ_INFO_MASKABLE: u32 = 1 << 1;
pub const IRQ_INFO_AUTOMASKED: u32 = 1 << 2;
pub const IRQ_INFO_NORESIZE: u32 = 1 << 3;
// struct vfio_irq_set flags.
pub const IRQ_SET_DATA_NONE: u32 = 1 << 0;
pub const IRQ_SET_DATA_BOOL: u32 = 1 << 1;
pub const IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
pub const IRQ_SET_ACTION_MASK: u32 = 1 << 3;
pub const IRQ_SET_ACTION_UNMASK: u32 = 1 << 4;
pub const IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;
const IRQ_SET_DATA_TYPE: u32 = 0x7;
const IRQ_SET_ACTION_TYPE: u32 = 0x38;
// struct vfio_iommu_type1_dma_map / _unmap flags.
pub const DMA_MAP_FLAG_WRITE: u32 = 1 << 1;
pub const DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: u32 = 1 << 0;
pub const DMA_UNMAP_FLAG_ALL: u32 = 1 << 1;

// VFIO PCI region and interrupt indexes.
pub const PCI_BAR0_REGION: u32 = 0;
pub const PCI_CONFIG_REGION: u32 = 7;
pub const PCI_NUM_REGIONS: u32 = 9;
pub const PCI_INTX_IRQ: u32 = 0;
pub const PCI_MSIX_IRQ: u32 = 2;
pub const PCI_NUM_IRQS: u32 = 5;

/// A message header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub command: u16,
    pub size: u32,
    pub flags: u32,
    pub error: u32,
}

impl Header {
    pub fn parse(b: &[u8; HEADER_SIZE]) -> Header {
        Header {
            id: u16::from_le_bytes([b[0], b[1]]),
            command: u16::from_le_bytes([b[2], b[3]]),
            size: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            flags: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            error: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.command.to_le_bytes());
        b[4..8].copy_from_slice(&self.size.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..16].copy_from_slice(&self.error.to_le_bytes());
        b
    }

    pub fn no_reply(&self) -> bool {
        self.flags & NO_REPLY != 0
    }

    /// Bytes of payload after the header, if `size` is a valid message size.
    pub fn payload_len(&self) -> Result<usize, Errno> {
        let n = self.size.checked_sub(HEADER_SIZE as u32).ok_or(EINVAL)?;
        if self.size > MAX_MSG {
            return Err(E2BIG);
        }
        usize::try_from(n).map_err(|_| E2BIG)
    }
}

/// The reply message to `req` carrying `payload`.
pub fn reply(req: &Header, payload: &[u8]) -> Vec<u8> {
    let size = HEADER_SIZE.saturating_add(payload.len());
    let h = Header {
        id: req.id,
        command: req.command,
        size: u32::try_from(size).unwrap_or(u32::MAX),
        flags: TYPE_REPLY,
        error: 0,
    };
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(&h.encode());
    v.extend_from_slice(payload);
    v
}

/// The error reply to `req`.
pub fn error_reply(req: &Header, e: Errno) -> Vec<u8> {
    Header {
        id: req.id,
        command: req.command,
        size: HEADER_SIZE as u32,
        flags: TYPE_REPLY | ERROR,
        error: e.0,
    }
    .encode()
    .to_vec()
}

fn u16_at(p: &[u8], o: usize) -> Result<u16, Errno> {
    let b = p.get(o..o.checked_add(2).ok_or(EINVAL)?).ok_or(EINVAL)?;
    Ok(u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(p: &[u8], o: usize) -> Result<u32, Errno> {
    let b = p.get(o..o.checked_add(4).ok_or(EINVAL)?).ok_or(EINVAL)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn u64_at(p: &[u8], o: usize) -> Result<u64, Errno> {
    let b = p.get(o..o.checked_add(8).ok_or(EINVAL)?).ok_or(EINVAL)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(u64::from_le_bytes(a))
}

/// VERSION: the client's major and minor version (its capabilities are not
/// needed: the server sends no requests and no file descriptors).
pub fn parse_version(p: &[u8]) -> Result<(u16, u16), Errno> {
    Ok((u16_at(p, 0)?, u16_at(p, 2)?))
}

/// The VERSION reply payload: version 0.0 and `SERVER_CAPS`, NUL-terminated.
pub fn version_payload() -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + SERVER_CAPS.len() + 1);
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(SERVER_CAPS.as_bytes());
    v.push(0);
    v
}

/// DMA_MAP (`struct vfio_iommu_type1_dma_map` with the fd offset in place
/// of the process address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaMap {
    pub flags: u32,
    pub offset: u64,
    pub iova: u64,
    pub size: u64,
}

pub fn parse_dma_map(p: &[u8]) -> Result<DmaMap, Errno> {
    if p.len() < 32 {
        return Err(EINVAL);
    }
    Ok(DmaMap {
        flags: u32_at(p, 4)?,
        offset: u64_at(p, 8)?,
        iova: u64_at(p, 16)?,
        size: u64_at(p, 24)?,
    })
}

/// DMA_UNMAP (`struct vfio_iommu_type1_dma_unmap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaUnmap {
    pub flags: u32,
    pub iova: u64,
    pub size: u64,
}

pub fn parse_dma_unmap(p: &[u8]) -> Result<DmaUnmap, Errno> {
    if p.len() < 24 {
        return Err(EINVAL);
    }
    Ok(DmaUnmap {
        flags: u32_at(p, 4)?,
        iova: u64_at(p, 8)?,
        size: u64_at(p, 16)?,
    })
}

/// The DMA_UNMAP reply payload: the request's structure (argsz 24).
pub fn dma_unmap_payload(u: &DmaUnmap) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    v.extend_from_slice(&24u32.to_le_bytes());
    v.extend_from_slice(&u.flags.to_le_bytes());
    v.extend_from_slice(&u.iova.to_le_bytes());
    v.extend_from_slice(&u.size.to_le_bytes());
    v
}

/// The DEVICE_GET_INFO reply payload (`struct vfio_device_info`, argsz 16).
pub fn device_info_payload(flags: u32, regions: u32, irqs: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    for x in [16u32, flags, regions, irqs] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// DEVICE_GET_REGION_INFO: the region index asked for (argsz, flags,
/// index, ...: only the index matters).
pub fn parse_region_info(p: &[u8]) -> Result<u32, Errno> {
    u32_at(p, 8)
}

/// The region info reply payload (`struct vfio_region_info`, argsz 32, no
/// capabilities; `offset` is the mmap offset, 0 as no region is mappable).
pub fn region_info_payload(index: u32, flags: u32, size: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(32);
    for x in [32u32, flags, index, 0] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(&size.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v
}

/// DEVICE_GET_IRQ_INFO: the interrupt index asked for.
pub fn parse_irq_info(p: &[u8]) -> Result<u32, Errno> {
    u32_at(p, 8)
}

/// The IRQ info reply payload (`struct vfio_irq_info`, argsz 16).
pub fn irq_info_payload(index: u32, flags: u32, count: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    for x in [16u32, flags, index, count] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// What a DEVICE_SET_IRQS asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqAction {
    Mask,
    Unmask,
    Trigger,
}

/// Where its data is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IrqData {
    None,
    /// One byte per interrupt of the range.
    Bool(Vec<bool>),
    /// Eventfds, passed with the message (none: de-assign the range).
    Eventfd,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetIrqs {
    pub index: u32,
    pub start: u32,
    pub count: u32,
    pub action: IrqAction,
    pub data: IrqData,
}

/// DEVICE_SET_IRQS (`struct vfio_irq_set`): exactly one data type and one
/// action; for DATA_BOOL, `count` bytes follow.
pub fn parse_set_irqs(p: &[u8]) -> Result<SetIrqs, Errno> {
    let flags = u32_at(p, 4)?;
    let index = u32_at(p, 8)?;
    let start = u32_at(p, 12)?;
    let count = u32_at(p, 16)?;
    if flags & !(IRQ_SET_DATA_TYPE | IRQ_SET_ACTION_TYPE) != 0 {
        return Err(EINVAL);
    }
    let action = match flags & IRQ_SET_ACTION_TYPE {
        IRQ_SET_ACTION_MASK => IrqAction::Mask,
        IRQ_SET_ACTION_UNMASK => IrqAction::Unmask,
        IRQ_SET_ACTION_TRIGGER => IrqAction::Trigger,
        _ => return Err(EINVAL),
    };
    let data = match flags & IRQ_SET_DATA_TYPE {
        IRQ_SET_DATA_NONE => IrqData::None,
        IRQ_SET_DATA_EVENTFD => IrqData::Eventfd,
        IRQ_SET_DATA_BOOL => {
            let n = usize::try_from(count).map_err(|_| EINVAL)?;
            let end = n.checked_add(20).ok_or(EINVAL)?;
            let b = p.get(20..end).ok_or(EINVAL)?;
            IrqData::Bool(b.iter().map(|&x| x != 0).collect())
        }
        _ => return Err(EINVAL),
    };
    Ok(SetIrqs {
        index,
        start,
        count,
        action,
        data,
    })
}

/// REGION_READ / REGION_WRITE: offset, region, count (data follows for a
/// write).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionAccess {
    pub offset: u64,
    pub region: u32,
    pub count: u32,
}

pub fn parse_region_access(p: &[u8]) -> Result<RegionAccess, Errno> {
    let a = RegionAccess {
        offset: u64_at(p, 0)?,
        region: u32_at(p, 8)?,
        count: u32_at(p, 12)?,
    };
    if a.count > MAX_XFER {
        return Err(E2BIG);
    }
    Ok(a)
}

/// The data of a REGION_WRITE: exactly `count` bytes after the 16 of the
/// access.
pub fn region_write_data(p: &[u8], a: &RegionAccess) -> Result<Vec<u8>, Errno> {
    let n = usize::try_from(a.count).map_err(|_| E2BIG)?;
    let end = n.checked_add(16).ok_or(EINVAL)?;
    if p.len() != end {
        return Err(EINVAL);
    }
    Ok(p[16..end].to_vec())
}

/// The region read/write reply payload: the access, then the data read.
pub fn region_access_payload(a: &RegionAccess, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + data.len());
    v.extend_from_slice(&a.offset.to_le_bytes());
    v.extend_from_slice(&a.region.to_le_bytes());
    v.extend_from_slice(&a.count.to_le_bytes());
    v.extend_from_slice(data);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_sizes() {
        let h = Header {
            id: 7,
            command: REGION_WRITE,
            size: 36,
            flags: NO_REPLY,
            error: 0,
        };
        assert_eq!(Header::parse(&h.encode()), h);
        assert!(h.no_reply());
        assert_eq!(h.payload_len(), Ok(20));
        let short = Header { size: 15, ..h };
        assert_eq!(short.payload_len(), Err(EINVAL));
        let huge = Header {
            size: u32::MAX,
            ..h
        };
        assert_eq!(huge.payload_len(), Err(E2BIG));
    }

    #[test]
    fn replies() {
        let req = Header {
            id: 3,
            command: DMA_MAP,
            size: 48,
            flags: 0,
            error: 0,
        };
        let r = error_reply(&req, ENOTSUP);
        let h = Header::parse(r[..16].try_into().unwrap());
        assert_eq!((h.id, h.command, h.size), (3, DMA_MAP, 16));
        assert_eq!((h.flags, h.error), (TYPE_REPLY | ERROR, 95));
        let r = reply(&req, &[1, 2, 3]);
        assert_eq!(Header::parse(r[..16].try_into().unwrap()).size, 19);
    }

    #[test]
    fn version_reply_fits_qemus_request() {
        // QEMU's request carries its own capabilities (about 200 bytes).
        assert!(version_payload().len() < 120);
        assert_eq!(version_payload().last(), Some(&0));
    }

    #[test]
    fn short_payloads_are_refused() {
        assert_eq!(parse_dma_map(&[0; 31]), Err(EINVAL));
        assert_eq!(parse_dma_unmap(&[0; 23]), Err(EINVAL));
        assert_eq!(parse_region_info(&[0; 11]), Err(EINVAL));
        assert_eq!(parse_region_access(&[0; 15]), Err(EINVAL));
        assert_eq!(parse_set_irqs(&[0; 19]), Err(EINVAL));
        assert_eq!(parse_version(&[0; 3]), Err(EINVAL));
    }

    #[test]
    fn set_irqs_parsing() {
        let mut p = [0u8; 20];
        let put = |p: &mut [u8], o: usize, v: u32| p[o..o + 4].copy_from_slice(&v.to_le_bytes());
        put(&mut p, 4, IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER);
        put(&mut p, 8, PCI_MSIX_IRQ);
        put(&mut p, 16, 1);
        let s = parse_set_irqs(&p).unwrap();
        assert_eq!((s.index, s.start, s.count), (PCI_MSIX_IRQ, 0, 1));
        assert_eq!((s.action, s.data), (IrqAction::Trigger, IrqData::Eventfd));
        // Two data types, or no action: refused.
        put(
            &mut p,
            4,
            IRQ_SET_DATA_EVENTFD | IRQ_SET_DATA_NONE | IRQ_SET_ACTION_TRIGGER,
        );
        assert_eq!(parse_set_irqs(&p), Err(EINVAL));
        put(&mut p, 4, IRQ_SET_DATA_NONE);
        assert_eq!(parse_set_irqs(&p), Err(EINVAL));
        // DATA_BOOL with fewer bytes than count: refused.
        put(&mut p, 4, IRQ_SET_DATA_BOOL | IRQ_SET_ACTION_TRIGGER);
        put(&mut p, 16, u32::MAX);
        assert_eq!(parse_set_irqs(&p), Err(EINVAL));
    }

    #[test]
    fn region_access_bounds() {
        let mut p = vec![0u8; 20];
        p[8..12].copy_from_slice(&PCI_BAR0_REGION.to_le_bytes());
        p[12..16].copy_from_slice(&4u32.to_le_bytes());
        let a = parse_region_access(&p).unwrap();
        assert_eq!(region_write_data(&p, &a).unwrap().len(), 4);
        p.push(0);
        assert_eq!(region_write_data(&p, &a), Err(EINVAL));
        p[12..16].copy_from_slice(&(MAX_XFER + 1).to_le_bytes());
        assert_eq!(parse_region_access(&p), Err(E2BIG));
    }
}
