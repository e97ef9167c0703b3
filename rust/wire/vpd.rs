// SPDX-License-Identifier: GPL-2.0

//! INQUIRY vital product data (SPC-4 7.8, SBC-3 6.6) for pass-through LUNs.
//!
//! A pass-through device that does not offer the Block Limits page (B0h)
//! leaves the guest without a transfer limit.  For such a LUN the module
//! adds B0h to the Supported VPD Pages list (page 00h) the device returns
//! and answers B0h itself, with [`block_limits`]; where the device has B0h,
//! its MAXIMUM TRANSFER LENGTH is clamped to the host's limit with
//! [`clamp_block_limits`].

/// INQUIRY operation code.
pub const INQUIRY: u8 = 0x12;
/// Supported VPD Pages.
pub const PAGE_SUPPORTED: u8 = 0x00;
/// Block Limits.
pub const PAGE_BLOCK_LIMITS: u8 = 0xb0;
/// Length of the Block Limits page [`block_limits`] encodes: the 16 bytes up
/// to OPTIMAL TRANSFER LENGTH, as target core answers for a device without
/// thin provisioning (PAGE LENGTH 0Ch).
pub const BLOCK_LIMITS_LEN: usize = 16;
/// Largest Supported VPD Pages response: a header and each page code once.
pub const SUPPORTED_MAX: usize = 4 + 256;

/// The VPD page an INQUIRY CDB asks for: `None` unless the CDB is an
/// INQUIRY with EVPD set (and CMDDT clear).
pub fn inquiry_page(cdb: &[u8]) -> Option<u8> {
    match cdb {
        [INQUIRY, flags, page, ..] if flags & 0x03 == 0x01 => Some(*page),
        _ => None,
    }
}

/// The ALLOCATION LENGTH of an INQUIRY CDB (bytes 3-4): the most bytes the
/// initiator takes back.
pub fn inquiry_alloc_len(cdb: &[u8]) -> Option<usize> {
    match cdb {
        [INQUIRY, _, _, hi, lo, ..] => Some(usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

/// The page codes a Supported VPD Pages response lists, or `None` when it is
/// not one (shorter than its header, or another page code).  `resp` holds
/// the bytes the device returned; a list longer than that is cut there.
pub fn supported_list(resp: &[u8]) -> Option<&[u8]> {
    if resp.len() < 4 || resp[1] != PAGE_SUPPORTED {
        return None;
    }
    let n = usize::from(u16::from_be_bytes([resp[2], resp[3]]));
    Some(&resp[4..resp.len().min(4 + n)])
}

/// Whether a Supported VPD Pages response lists `page`.
pub fn lists_page(resp: &[u8], page: u8) -> bool {
    supported_list(resp).is_some_and(|l| l.contains(&page))
}

/// Adds `page` to the Supported VPD Pages response in `buf`, of which the
/// first `valid` bytes were returned; `buf.len()` is the room the initiator
/// gave (its allocation length).
///
/// The code goes before the first one above it, so the list (ascending, as
/// SPC-4 requires) stays ascending, and PAGE LENGTH grows by one.  A
/// response the allocation length cut stays cut there: the code is added
/// if it falls among the codes returned, the last of which then drops out,
/// and PAGE LENGTH still tells the whole list.  Returns the number of valid
/// bytes afterwards, or `None` (nothing changed) when `buf` is not a
/// Supported VPD Pages response or lists `page` already.
pub fn add_supported(buf: &mut [u8], valid: usize, page: u8) -> Option<usize> {
    let valid = valid.min(buf.len());
    if valid < 4 || buf[1] != PAGE_SUPPORTED {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    // Each code once: a longer list is not one.
    if total >= 256 {
        return None;
    }
    let end = valid.min(4 + total);
    let codes = &buf[4..end];
    if codes.contains(&page) {
        return None;
    }
    let at = 4 + codes.iter().position(|&c| c > page).unwrap_or(codes.len());
    let new_end = (end + 1).min(buf.len());
    if at < new_end {
        buf.copy_within(at..new_end - 1, at + 1);
        buf[at] = page;
    }
    buf[2..4].copy_from_slice(&(total as u16 + 1).to_be_bytes());
    Some(new_end)
}

/// The limits of a pass-through LUN's Block Limits page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Byte 0 of the page: peripheral qualifier and device type.
    pub peripheral: u8,
    /// Logical block size in bytes.
    pub block_size: u32,
    /// The host's limit for one command, in 512-byte sectors (the backing
    /// queue's `max_sectors`); 0 when unknown.
    pub host_sectors: u32,
    /// The fabric's limit for one command, in bytes; 0 for none.
    pub fabric_bytes: u64,
    /// The backstore's optimal transfer, in logical blocks; 0 for none.
    pub optimal_blocks: u32,
}

impl Limits {
    /// MAXIMUM TRANSFER LENGTH in logical blocks: the lower of the host's
    /// and the fabric's limits, at least one block; 0 (no limit reported)
    /// when neither is known.
    pub fn max_transfer(&self) -> u32 {
        if self.block_size == 0 {
            return 0;
        }
        let bs = u64::from(self.block_size);
        let blocks = |bytes: u64| (bytes != 0).then(|| (bytes / bs).max(1));
        let host = blocks(u64::from(self.host_sectors) * 512);
        let m = match (host, blocks(self.fabric_bytes)) {
            (None, None) => return 0,
            (Some(h), Some(f)) => h.min(f),
            (Some(x), None) | (None, Some(x)) => x,
        };
        m.clamp(1, u64::from(u32::MAX)) as u32
    }
}

/// The Block Limits page target core would return for the LUN (SBC-3
/// 6.6.4), with `l`'s limits: WSNZ set, OPTIMAL TRANSFER LENGTH
/// GRANULARITY 1, MAXIMUM TRANSFER LENGTH [`Limits::max_transfer`],
/// OPTIMAL TRANSFER LENGTH the backstore's, no larger than the maximum.
/// MAXIMUM COMPARE AND WRITE LENGTH is 0: whether the device can do it is
/// the device's business, and it did not say.
pub fn block_limits(l: &Limits) -> [u8; BLOCK_LIMITS_LEN] {
    let mut p = [0u8; BLOCK_LIMITS_LEN];
    p[0] = l.peripheral;
    p[1] = PAGE_BLOCK_LIMITS;
    p[2..4].copy_from_slice(&((BLOCK_LIMITS_LEN - 4) as u16).to_be_bytes());
    p[4] = 0x01;
    p[6..8].copy_from_slice(&1u16.to_be_bytes());
    let max = l.max_transfer();
    p[8..12].copy_from_slice(&max.to_be_bytes());
    let opt = match (l.optimal_blocks, max) {
        (0, _) => 0,
        (o, 0) => o,
        (o, m) => o.min(m),
    };
    p[12..16].copy_from_slice(&opt.to_be_bytes());
    p
}

/// Clamps MAXIMUM TRANSFER LENGTH (and OPTIMAL TRANSFER LENGTH, which must
/// not exceed it) of a device's Block Limits page in `page`, of which
/// `valid` bytes were returned, to `max` logical blocks.  0 in the page
/// means "no limit" and is clamped too.  Returns the device's value when
/// it was changed.
pub fn clamp_block_limits(page: &mut [u8], valid: usize, max: u32) -> Option<u32> {
    let valid = valid.min(page.len());
    if max == 0 || valid < 12 || page[1] != PAGE_BLOCK_LIMITS {
        return None;
    }
    let mtl = u32::from_be_bytes([page[8], page[9], page[10], page[11]]);
    if valid >= 16 {
        let otl = u32::from_be_bytes([page[12], page[13], page[14], page[15]]);
        if otl > max {
            page[12..16].copy_from_slice(&max.to_be_bytes());
        }
    }
    if mtl != 0 && mtl <= max {
        return None;
    }
    page[8..12].copy_from_slice(&max.to_be_bytes());
    Some(mtl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(codes: &[u8]) -> Vec<u8> {
        let mut v = vec![0x0e, 0, 0, codes.len() as u8];
        v.extend_from_slice(codes);
        v
    }

    #[test]
    fn inquiry_pages() {
        assert_eq!(inquiry_page(&[0x12, 1, 0xb0, 0, 0xff, 0]), Some(0xb0));
        assert_eq!(inquiry_page(&[0x12, 1, 0, 0, 0xff, 0]), Some(0));
        assert_eq!(
            inquiry_page(&[0x12, 0, 0, 0, 0x24, 0]),
            None,
            "standard INQUIRY"
        );
        assert_eq!(inquiry_page(&[0x12, 3, 0xb0, 0, 0xff, 0]), None, "CMDDT");
        assert_eq!(inquiry_page(&[0x28, 1, 0xb0, 0, 0, 0]), None);
        assert_eq!(inquiry_page(&[0x12, 1]), None);
    }

    #[test]
    fn inquiry_alloc_lens() {
        assert_eq!(inquiry_alloc_len(&[0x12, 1, 0xb0, 0, 0x40, 0]), Some(64));
        assert_eq!(inquiry_alloc_len(&[0x12, 1, 0, 1, 4, 0]), Some(260));
        assert_eq!(inquiry_alloc_len(&[0x28, 1, 0xb0, 0, 0x40, 0]), None);
        assert_eq!(inquiry_alloc_len(&[0x12, 1, 0]), None);
    }

    #[test]
    fn supported_lists() {
        let r = resp(&[0, 0x80, 0x83, 0x86]);
        assert_eq!(supported_list(&r), Some(&[0, 0x80, 0x83, 0x86][..]));
        assert!(lists_page(&r, 0x83));
        assert!(!lists_page(&r, 0xb0));
        assert_eq!(
            supported_list(&r[..5]),
            Some(&[0][..]),
            "cut by the allocation length"
        );
        assert_eq!(supported_list(&r[..3]), None);
        let mut other = r.clone();
        other[1] = 0x80;
        assert_eq!(supported_list(&other), None);
    }

    #[test]
    fn add_in_order() {
        // scsi_debug's list for a non-disk device.
        let codes = [0u8, 0x80, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88];
        let r = resp(&codes);
        let mut buf = r.clone();
        buf.resize(255, 0xee);
        let n = add_supported(&mut buf, r.len(), PAGE_BLOCK_LIMITS).unwrap();
        assert_eq!(n, r.len() + 1);
        assert_eq!(
            &buf[..n],
            &resp(&[0, 0x80, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0xb0])[..]
        );
        // In the middle, and first.
        let mut buf = resp(&[0, 0x80, 0xb1, 0xb2]);
        buf.push(0);
        assert_eq!(add_supported(&mut buf, 8, 0xb0), Some(9));
        assert_eq!(buf, resp(&[0, 0x80, 0xb0, 0xb1, 0xb2]));
        let mut buf = resp(&[0x80]);
        buf.push(0);
        assert_eq!(add_supported(&mut buf, 5, 0), Some(6));
        assert_eq!(buf, resp(&[0, 0x80]));
    }

    #[test]
    fn add_cut_by_allocation_length() {
        // Room for the header and 3 codes: the list grows to 4 codes, the
        // last is cut, PAGE LENGTH tells the full length.
        let mut buf = resp(&[0, 0x80, 0x83]);
        assert_eq!(add_supported(&mut buf, 7, 0x81), Some(7));
        assert_eq!(buf, [0x0e, 0, 0, 4, 0, 0x80, 0x81]);
        // Room for the header only: PAGE LENGTH alone.
        let mut buf = resp(&[0, 0x80])[..4].to_vec();
        assert_eq!(add_supported(&mut buf, 4, 0xb0), Some(4));
        assert_eq!(buf, [0x0e, 0, 0, 3]);
        // The device's response cut before where the code goes: PAGE
        // LENGTH only.
        let mut buf = resp(&[0, 0x80, 0x83])[..6].to_vec();
        assert_eq!(add_supported(&mut buf, 6, 0xb0), Some(6));
        assert_eq!(buf, [0x0e, 0, 0, 4, 0, 0x80]);
        // ...or after it: the code goes in, the last returned drops out.
        let mut buf = resp(&[0, 0x80, 0xb1, 0xb2])[..7].to_vec();
        assert_eq!(add_supported(&mut buf, 7, 0xb0), Some(7));
        assert_eq!(buf, [0x0e, 0, 0, 5, 0, 0x80, 0xb0]);
    }

    #[test]
    fn add_refused() {
        let mut buf = resp(&[0, 0x80, 0xb0]);
        buf.push(0);
        let before = buf.clone();
        assert_eq!(add_supported(&mut buf, 7, 0xb0), None, "listed already");
        assert_eq!(buf, before);
        assert_eq!(add_supported(&mut [0x0e, 0x83, 0, 0, 0], 4, 0xb0), None);
        assert_eq!(add_supported(&mut [0u8; 2], 2, 0xb0), None);
        assert_eq!(add_supported(&mut [], 0, 0xb0), None);
    }

    /// Every page code into many lists: the result is the list with the
    /// code added, ascending lists stay ascending, nothing is written past
    /// the room, and no input panics.
    #[test]
    fn add_property() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut codes: Vec<u8> = (0..=255u8).filter(|_| rnd() % 8 == 0).collect();
            if rnd() % 4 == 0 {
                codes.reverse();
            }
            let page = rnd() as u8;
            let r = resp(&codes);
            let room = (rnd() % 300) as usize;
            let mut buf = r.clone();
            buf.resize(room.max(r.len()), 0xee);
            buf.truncate(room);
            let valid = r.len().min(room);
            let out = add_supported(&mut buf, valid, page);
            if room < 4 || codes[..valid.saturating_sub(4)].contains(&page) {
                // Not a response, or the code is listed: left alone.
                assert_eq!(out, None);
                assert_eq!(&buf[..valid], &r[..valid]);
                continue;
            }
            if codes.contains(&page) {
                // Listed past the cut: unknown here (the module only adds
                // a code the device's whole list lacks).
                continue;
            }
            let n = out.unwrap();
            let mut want = codes.clone();
            let at = want.iter().position(|&c| c > page).unwrap_or(want.len());
            want.insert(at, page);
            let full = resp(&want);
            assert_eq!(n, full.len().min(room));
            assert_eq!(&buf[..n], &full[..n]);
            assert!(buf[n..].iter().all(|&b| b == 0xee));
            if codes.windows(2).all(|w| w[0] < w[1]) {
                assert!(supported_list(&buf[..n])
                    .unwrap()
                    .windows(2)
                    .all(|w| w[0] < w[1]));
            }
        }
        // Arbitrary bytes never panic.
        for _ in 0..3000 {
            let len = (rnd() % 40) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            let valid = (rnd() % 50) as usize;
            let _ = add_supported(&mut buf, valid, rnd() as u8);
            let _ = clamp_block_limits(&mut buf, valid, rnd() as u32);
        }
    }

    #[test]
    fn max_transfer() {
        let l = Limits {
            block_size: 512,
            host_sectors: 128,
            fabric_bytes: 2048 * 4096,
            ..Default::default()
        };
        assert_eq!(l.max_transfer(), 128);
        assert_eq!(
            Limits {
                block_size: 4096,
                ..l
            }
            .max_transfer(),
            16
        );
        assert_eq!(
            Limits {
                host_sectors: 0,
                ..l
            }
            .max_transfer(),
            16384
        );
        assert_eq!(
            Limits {
                host_sectors: u32::MAX,
                ..l
            }
            .max_transfer(),
            16384
        );
        assert_eq!(
            Limits {
                fabric_bytes: 0,
                ..l
            }
            .max_transfer(),
            128
        );
        assert_eq!(
            Limits {
                host_sectors: 0,
                fabric_bytes: 0,
                ..l
            }
            .max_transfer(),
            0
        );
        assert_eq!(Limits { block_size: 0, ..l }.max_transfer(), 0);
        // A host limit below one block still allows one block.
        assert_eq!(
            Limits {
                block_size: 4096,
                host_sectors: 1,
                ..l
            }
            .max_transfer(),
            1
        );
    }

    #[test]
    fn encode_block_limits() {
        let l = Limits {
            peripheral: 0x0e,
            block_size: 512,
            host_sectors: 128,
            fabric_bytes: 8 << 20,
            optimal_blocks: 4096,
        };
        assert_eq!(
            block_limits(&l),
            [0x0e, 0xb0, 0, 0x0c, 1, 0, 0, 1, 0, 0, 0, 128, 0, 0, 0, 128]
        );
        let p = block_limits(&Limits {
            optimal_blocks: 64,
            ..l
        });
        assert_eq!(&p[12..], &[0, 0, 0, 64]);
        let p = block_limits(&Limits {
            optimal_blocks: 0,
            ..l
        });
        assert_eq!(&p[12..], &[0, 0, 0, 0]);
    }

    #[test]
    fn clamp() {
        // scsi_debug's page: MTL 32768 blocks, OTL 1024.
        let mut p = [0u8; 64];
        p[1] = 0xb0;
        p[3] = 0x3c;
        p[8..12].copy_from_slice(&32768u32.to_be_bytes());
        p[12..16].copy_from_slice(&1024u32.to_be_bytes());
        assert_eq!(clamp_block_limits(&mut p, 64, 128), Some(32768));
        assert_eq!(&p[8..16], &[0, 0, 0, 128, 0, 0, 0, 128]);
        assert_eq!(
            clamp_block_limits(&mut p, 64, 128),
            None,
            "within the limit"
        );
        assert_eq!(clamp_block_limits(&mut p, 64, 256), None);
        assert_eq!(&p[8..12], &[0, 0, 0, 128]);
        // 0 means no limit.
        p[8..12].copy_from_slice(&[0; 4]);
        assert_eq!(clamp_block_limits(&mut p, 64, 256), Some(0));
        assert_eq!(&p[8..12], &256u32.to_be_bytes());
        // Too short, another page, or no host limit: untouched.
        let mut q = p;
        q[8..12].copy_from_slice(&9999u32.to_be_bytes());
        let before = q;
        assert_eq!(clamp_block_limits(&mut q, 11, 128), None);
        assert_eq!(clamp_block_limits(&mut q, 64, 0), None);
        q[1] = 0xb1;
        assert_eq!(clamp_block_limits(&mut q, 64, 128), None);
        q[1] = 0xb0;
        assert_eq!(q, before);
        // MTL but no OTL returned.
        assert_eq!(clamp_block_limits(&mut q, 12, 128), Some(9999));
        assert_eq!(&q[8..16], &[0, 0, 0, 128, 0, 0, 0, 128]);
    }
}
