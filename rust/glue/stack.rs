// SPDX-License-Identifier: GPL-2.0

//! An intrusive lock-free stack, the pattern of the kernel's `llist`: any
//! context pushes (target core releasing a command, a finished TMF job),
//! one consumer (the queue's worker) takes everything at once.

use core::{
    marker::PhantomData,
    ptr,
    sync::atomic::{AtomicPtr, Ordering},
};

/// An item with a link field of its own for a [`Stack`].
///
/// # Safety
///
/// `link` must return the address of a `*mut Self` field of `*this` that
/// nothing but one [`Stack`] uses.
pub(crate) unsafe trait Link: Sized {
    /// The address of the link field of `this`.
    fn link(this: *mut Self) -> *mut *mut Self;
}

/// Implements [`Link`] for a type with its `*mut Self` field: `impl_link!(T,
/// field)`.  The field must not be used for anything else.
macro_rules! impl_link {
    ($t:ty, $f:ident) => {
        // SAFETY: `$f` is a `*mut Self` field of `$t` (the check below only
        // compiles then), which the type reserves for one stack's link.
        unsafe impl $crate::glue::stack::Link for $t {
            fn link(this: *mut Self) -> *mut *mut Self {
                let _field_is_a_link = |x: &Self| -> *mut Self { x.$f };
                this.cast::<u8>()
                    .wrapping_add(::core::mem::offset_of!($t, $f))
                    .cast()
            }
        }
    };
}
pub(crate) use impl_link;

/// A lock-free stack of `T`s linked through their own field.
pub(crate) struct Stack<T: Link> {
    head: AtomicPtr<T>,
}

impl<T: Link> Stack<T> {
    pub(crate) const fn new() -> Stack<T> {
        Stack {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Pushes `item`.
    ///
    /// # Safety
    ///
    /// `item` must be valid, owned by the caller, and stay valid until the
    /// [`Taken`] of a [`Stack::take_all`] yielded it (whatever owns its
    /// storage must not free it before); it is handed over to whoever
    /// iterates that `Taken`.
    pub(crate) unsafe fn push(&self, item: *mut T) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the item is valid and still the caller's (not on the
            // stack yet); only its link field is written.
            unsafe { *T::link(item) = head };
            match self
                .head
                .compare_exchange_weak(head, item, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
    }

    /// Takes every item off the stack, newest first.  The items become the
    /// caller's (each was valid when pushed and is valid until taken).
    pub(crate) fn take_all(&self) -> Taken<T> {
        Taken {
            cur: self.head.swap(ptr::null_mut(), Ordering::Acquire),
            _t: PhantomData,
        }
    }
}

/// The items taken off a [`Stack`], as raw pointers the caller owns.
pub(crate) struct Taken<T: Link> {
    cur: *mut T,
    _t: PhantomData<*mut T>,
}

impl<T: Link> Taken<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.cur.is_null()
    }
}

impl<T: Link> Iterator for Taken<T> {
    type Item = *mut T;

    fn next(&mut self) -> Option<*mut T> {
        let item = self.cur;
        if item.is_null() {
            return None;
        }
        // The link is read before the item is handed out: its new owner
        // may free it.
        // SAFETY: `item` is valid until this `Taken`, which alone took it
        // off the stack, yields it (the contract of `push`).
        self.cur = unsafe { *T::link(item) };
        Some(item)
    }
}
