// SPDX-License-Identifier: GPL-2.0

//! Which command slot owns which frame address.

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
