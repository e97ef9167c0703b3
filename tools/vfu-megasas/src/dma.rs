// SPDX-License-Identifier: GPL-2.0
//! The DMA regions the client mapped, with their validation (no I/O).
//!
//! `M` is the server's mapping of a region's file (`None` for a read-only
//! region that came without a file descriptor: recorded so that its unmap
//! is accepted, never put in the adapter's memory table).  Regions are kept
//! sorted by IOVA; they may not overlap, wrap around the end of the address
//! space, be empty, or number more than [`MAX_REGIONS`] (vhost core's
//! default `max_mem_regions`, so every table the server builds fits).

use crate::proto::{Errno, EEXIST, EINVAL, ENOSPC};

pub const MAX_REGIONS: usize = 64;
pub const PAGE_SIZE: u64 = 4096;

#[derive(Debug)]
pub struct Region<M> {
    pub iova: u64,
    pub size: u64,
    /// Offset of the region in the client's file.
    pub offset: u64,
    pub map: Option<M>,
}

impl<M> Region<M> {
    /// The last IOVA of the region (validated regions do not wrap).
    pub fn last(&self) -> u64 {
        self.iova.saturating_add(self.size - 1)
    }
}

#[derive(Debug)]
pub struct Table<M> {
    regions: Vec<Region<M>>,
}

impl<M> Default for Table<M> {
    fn default() -> Self {
        Table {
            regions: Vec::new(),
        }
    }
}

impl<M> Table<M> {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    #[cfg(test)]
    pub fn regions(&self) -> &[Region<M>] {
        &self.regions
    }

    /// Checks that a region `iova`, `size` at file `offset` may be added.
    pub fn check_map(&self, iova: u64, size: u64, offset: u64) -> Result<(), Errno> {
        if size == 0 || !(iova | size | offset).is_multiple_of(PAGE_SIZE) {
            return Err(EINVAL);
        }
        let last = iova.checked_add(size - 1).ok_or(EINVAL)?;
        // The mapping's end in the file must not wrap either, and the
        // offset must fit mmap's signed off_t.
        offset.checked_add(size).ok_or(EINVAL)?;
        if i64::try_from(offset).is_err() || usize::try_from(size).is_err() {
            return Err(EINVAL);
        }
        if self
            .regions
            .iter()
            .any(|r| r.iova <= last && iova <= r.last())
        {
            return Err(EEXIST);
        }
        if self.regions.len() >= MAX_REGIONS {
            return Err(ENOSPC);
        }
        Ok(())
    }

    /// Adds a region that [`Table::check_map`] accepted.
    pub fn insert(&mut self, r: Region<M>) -> Result<(), Errno> {
        self.check_map(r.iova, r.size, r.offset)?;
        let at = self.regions.partition_point(|x| x.iova < r.iova);
        self.regions.insert(at, r);
        Ok(())
    }

    /// The indexes of the regions an unmap of `iova`, `size` removes: every
    /// region inside the range (none is fine, as for VFIO type1).  A region
    /// only partly inside is an error; `all` (VFIO_DMA_UNMAP_FLAG_ALL, with
    /// `iova` and `size` 0) removes every region.
    pub fn plan_unmap(&self, iova: u64, size: u64, all: bool) -> Result<Vec<usize>, Errno> {
        if all {
            if iova != 0 || size != 0 {
                return Err(EINVAL);
            }
            return Ok((0..self.regions.len()).collect());
        }
        if size == 0 {
            return Err(EINVAL);
        }
        let last = iova.checked_add(size - 1).ok_or(EINVAL)?;
        let mut v = Vec::new();
        for (i, r) in self.regions.iter().enumerate() {
            let overlaps = r.iova <= last && iova <= r.last();
            let inside = iova <= r.iova && r.last() <= last;
            if inside {
                v.push(i);
            } else if overlaps {
                return Err(EINVAL);
            }
        }
        Ok(v)
    }

    /// Removes and returns the regions at `idx` (from [`Table::plan_unmap`]).
    pub fn take(&mut self, idx: &[usize]) -> Vec<Region<M>> {
        let mut keep = Vec::with_capacity(self.regions.len());
        let mut out = Vec::with_capacity(idx.len());
        for (i, r) in std::mem::take(&mut self.regions).into_iter().enumerate() {
            if idx.contains(&i) {
                out.push(r);
            } else {
                keep.push(r);
            }
        }
        self.regions = keep;
        out
    }

    /// The adapter's memory table for the regions except `skip`: (guest
    /// address, size, user address) of each region with a mapping, whose
    /// address `addr` gives.
    pub fn memory_table(&self, skip: &[usize], addr: impl Fn(&M) -> u64) -> Vec<(u64, u64, u64)> {
        self.regions
            .iter()
            .enumerate()
            .filter(|(i, _)| !skip.contains(i))
            .filter_map(|(_, r)| r.map.as_ref().map(|m| (r.iova, r.size, addr(m))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(iova: u64, size: u64) -> Region<u64> {
        Region {
            iova,
            size,
            offset: 0,
            map: Some(0x7f00_0000_0000 + iova),
        }
    }

    #[test]
    fn accepts_disjoint_regions_sorted() {
        let mut t = Table::default();
        assert!(t.is_empty());
        t.insert(region(0x10_0000, 0x7ff0_0000)).unwrap();
        t.insert(region(0, 0xa_0000)).unwrap();
        t.insert(region(0xc_0000, 0x4_0000)).unwrap();
        // Adjacent to the first (ends right below it).
        t.insert(region(0x1_0000_0000, 0x1000)).unwrap();
        let iovas: Vec<u64> = t.regions().iter().map(|r| r.iova).collect();
        assert_eq!(iovas, vec![0, 0xc_0000, 0x10_0000, 0x1_0000_0000]);
        let mt = t.memory_table(&[], |&m| m);
        assert_eq!(mt[0], (0, 0xa_0000, 0x7f00_0000_0000));
        assert_eq!(mt.len(), 4);
    }

    #[test]
    fn rejects_overlap() {
        let mut t = Table::default();
        t.insert(region(0x10_0000, 0x10_0000)).unwrap();
        for (iova, size) in [
            (0x10_0000, 0x1000), // same start
            (0xf_f000, 0x2000),  // straddles the start
            (0x1f_f000, 0x2000), // straddles the end
            (0, 0x100_0000),     // covers it
            (0x18_0000, 0x1000), // inside
        ] {
            assert_eq!(
                t.check_map(iova, size, 0),
                Err(EEXIST),
                "{iova:#x}+{size:#x}"
            );
        }
        t.check_map(0x20_0000, 0x1000, 0).unwrap();
        t.check_map(0xf_f000, 0x1000, 0).unwrap();
    }

    #[test]
    fn rejects_wrap_empty_and_unaligned() {
        let t: Table<u64> = Table::default();
        assert_eq!(t.check_map(0, 0, 0), Err(EINVAL));
        assert_eq!(t.check_map(u64::MAX - 0xfff, 0x2000, 0), Err(EINVAL));
        assert_eq!(t.check_map(0xffff_ffff_ffff_f000, 0x1000, 0), Ok(()));
        assert_eq!(t.check_map(0x1000, 0x1000, u64::MAX - 0xfff), Err(EINVAL));
        assert_eq!(t.check_map(0x1000, 0x1000, 1 << 63), Err(EINVAL));
        assert_eq!(t.check_map(0x1001, 0x1000, 0), Err(EINVAL));
        assert_eq!(t.check_map(0x1000, 0x1001, 0), Err(EINVAL));
        assert_eq!(t.check_map(0x1000, 0x1000, 0x10), Err(EINVAL));
    }

    #[test]
    fn rejects_too_many() {
        let mut t = Table::default();
        for i in 0..MAX_REGIONS as u64 {
            t.insert(region(i * 0x2000, 0x1000)).unwrap();
        }
        assert_eq!(t.check_map(0x100_0000, 0x1000, 0), Err(ENOSPC));
        assert_eq!(t.insert(region(0x100_0000, 0x1000)), Err(ENOSPC));
        assert_eq!(t.len(), MAX_REGIONS);
    }

    #[test]
    fn unmap_plans() {
        let mut t = Table::default();
        t.insert(region(0, 0xa_0000)).unwrap();
        t.insert(region(0xc_0000, 0x4_0000)).unwrap();
        t.insert(region(0x10_0000, 0x1000)).unwrap();
        assert_eq!(t.plan_unmap(0xc_0000, 0x4_0000, false), Ok(vec![1]));
        // A range covering several.
        assert_eq!(t.plan_unmap(0xc_0000, 0x10_0000, false), Ok(vec![1, 2]));
        // Nothing there: nothing to do.
        assert_eq!(t.plan_unmap(0x20_0000, 0x1000, false), Ok(vec![]));
        // Part of a region: refused.
        assert_eq!(t.plan_unmap(0x1000, 0x1000, false), Err(EINVAL));
        // Wrapping or empty ranges: refused.
        assert_eq!(t.plan_unmap(u64::MAX, 2, false), Err(EINVAL));
        assert_eq!(t.plan_unmap(0, 0, false), Err(EINVAL));
        // All.
        assert_eq!(t.plan_unmap(0, 0, true), Ok(vec![0, 1, 2]));
        assert_eq!(t.plan_unmap(0, 1, true), Err(EINVAL));
        // The table without the planned regions, then their removal.
        let plan = t.plan_unmap(0xc_0000, 0x4_0000, false).unwrap();
        let mt = t.memory_table(&plan, |&m| m);
        assert_eq!(
            mt.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![0, 0x10_0000]
        );
        let gone = t.take(&plan);
        assert_eq!((gone.len(), gone[0].iova), (1, 0xc_0000));
        assert_eq!(t.len(), 2);
        // The space is free again.
        t.check_map(0xc_0000, 0x4_0000, 0).unwrap();
    }

    #[test]
    fn regions_without_mapping_stay_out_of_the_table() {
        let mut t = Table::default();
        t.insert(Region {
            iova: 0xfffc_0000,
            size: 0x4_0000,
            offset: 0,
            map: None::<u64>,
        })
        .unwrap();
        t.insert(region(0, 0x1000)).unwrap();
        assert_eq!(t.memory_table(&[], |&m| m).len(), 1);
        assert_eq!(t.check_map(0xfffc_0000, 0x1000, 0), Err(EEXIST));
    }
}
