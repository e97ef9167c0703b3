// SPDX-License-Identifier: GPL-2.0

//! The free slots of a command pool: a stack with room for every slot, so
//! that taking and giving back a slot on the I/O path is two inline
//! operations (no allocation, no call).

use kernel::prelude::*;

/// The free slots of a pool of `n` commands.
pub(crate) struct FreeSlots {
    // INVARIANT: `top <= slots.len()`; `slots[..top]` are the free slots.
    slots: KVec<u16>,
    top: usize,
}

impl FreeSlots {
    /// Room for `n` slots, none free yet ([`FreeSlots::put`] them).
    pub(crate) fn with_room(n: usize) -> Result<FreeSlots> {
        Ok(FreeSlots {
            slots: KVec::from_elem(0u16, n, GFP_KERNEL)?,
            // INVARIANT: nothing is free.
            top: 0,
        })
    }

    /// Takes the slot given back last, if any is free.
    #[inline(always)]
    pub(crate) fn take(&mut self) -> Option<u16> {
        let top = self.top.checked_sub(1)?;
        let slot = *self.slots.get(top)?;
        // INVARIANT: one fewer, still within the array.
        self.top = top;
        Some(slot)
    }

    /// Gives back `slot`; more slots than the pool has are dropped (no
    /// caller gives back a slot it did not take).
    #[inline(always)]
    pub(crate) fn put(&mut self, slot: u16) {
        if let Some(s) = self.slots.get_mut(self.top) {
            *s = slot;
            // INVARIANT: `top` was below the length.
            self.top += 1;
        }
    }
}
