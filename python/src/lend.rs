//! A handle and what it has lent out, kept together: the one place where a borrow of a Rust
//! handle (a `Frame<'_>`, a `Loan<'_>`, a receive future) is given a `'static` lifetime so that
//! a Python object can hold it.
//!
//! The handle lives in a `Box` turned into a raw pointer, so that it never moves and no `&mut`
//! to it is held by the `Lender` itself. At any time there is at most one live `&mut` to the
//! handle: either the one inside the lent item, or a short one made by [`Lender::handle`] while
//! nothing is lent. [`Lender::end`] drops the lent item before anything else can reach the
//! handle, and `Drop` drops it before the handle is freed.

use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::prelude::*;

/// What a handle of type `H` can lend out: items that borrow it mutably (and may hold raw
/// pointers into the mapping the handle owns).
///
/// # Safety
/// An implementor borrows nothing but its handle (and memory the handle keeps alive), and has
/// no thread affinity: moving it to another thread together with its handle is sound whenever
/// moving the handle is (`H: Send`).
pub(crate) unsafe trait Borrower {}

/// A handle, and the one item it may have lent out (with the lend's number).
pub(crate) struct Lender<H: 'static, L: 'static> {
    /// From `Box::into_raw`; `None` once closed.
    handle: Option<NonNull<H>>,
    /// Borrows `*handle`; dropped before the handle is touched again.
    lent: Option<L>,
    /// Counts lends, so that a Python object for an item that was since ended (and perhaps
    /// replaced) can tell.
    serial: u64,
}

// SAFETY: the handle is `Send` and owned here (a box); the lent item borrows only it and has no
// thread affinity (`Borrower`'s contract). So the pair moves between threads as the handle
// alone would. (`Mutex<Lender>` is then `Sync`: every access goes through the mutex.)
unsafe impl<H: Send, L: Borrower> Send for Lender<H, L> {}

impl<H: 'static, L: Borrower + 'static> Lender<H, L> {
    pub(crate) fn new(handle: H) -> Self {
        Lender {
            handle: Some(NonNull::from(Box::leak(Box::new(handle)))),
            lent: None,
            serial: 0,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.handle.is_some()
    }

    /// The handle, if it is open and nothing is lent.
    pub(crate) fn handle(&mut self) -> Option<&mut H> {
        if self.lent.is_some() {
            return None;
        }
        let mut h = self.handle?;
        // SAFETY: nothing is lent, so no other reference to the handle lives (see the module
        // docs); the returned borrow of `self` keeps anything from being lent meanwhile.
        Some(unsafe { h.as_mut() })
    }

    /// The handle for `'static`, to lend something out of it.
    ///
    /// # Safety
    /// Nothing may be lent (checked) and the handle open (checked). The returned reference, and
    /// whatever borrows from it, must be dropped, or moved into this lender with
    /// [`lend`](Self::lend), before this lender is used again in any other way.
    pub(crate) unsafe fn handle_static(&mut self) -> &'static mut H {
        assert!(self.lent.is_none(), "a second item lent by one handle");
        let mut h = self.handle.expect("a closed handle lent out");
        // SAFETY: per this function's contract: the only reference to the handle until it is
        // dropped or stored in `self.lent`; the handle lives until `close`/`drop`, which drop
        // `self.lent` first.
        unsafe { h.as_mut() }
    }

    /// Keep `item` (which borrows the handle) as the lent item; returns the lend's number.
    pub(crate) fn lend(&mut self, item: L) -> u64 {
        assert!(self.lent.is_none(), "a second item lent by one handle");
        self.lent = Some(item);
        self.serial += 1;
        self.serial
    }

    /// The lent item.
    pub(crate) fn lent(&self) -> Option<&L> {
        self.lent.as_ref()
    }

    /// The lent item, mutably.
    pub(crate) fn lent_mut(&mut self) -> Option<&mut L> {
        self.lent.as_mut()
    }

    /// The lent item if it is lend number `serial`.
    pub(crate) fn lent_as(&mut self, serial: u64) -> Option<&mut L> {
        if self.serial == serial {
            self.lent.as_mut()
        } else {
            None
        }
    }

    /// Take the lent item back (to consume it, e.g. a loan's commit).
    pub(crate) fn take(&mut self) -> Option<L> {
        self.lent.take()
    }

    /// Drop the lent item, if any (a frame is released, a loan abandoned, a future cancelled).
    pub(crate) fn end(&mut self) {
        self.lent = None;
    }

    /// Drop the lent item, then the handle.
    pub(crate) fn close(&mut self) {
        self.lent = None;
        if let Some(h) = self.handle.take() {
            // SAFETY: the pointer came from `Box::leak` in `new` and is taken once (`take`);
            // the lent item that borrowed it was dropped on the line above.
            drop(unsafe { Box::from_raw(h.as_ptr()) });
        }
    }
}

impl<H: 'static, L: 'static> Drop for Lender<H, L> {
    fn drop(&mut self) {
        self.lent = None;
        if let Some(h) = self.handle.take() {
            // SAFETY: as in `close`.
            drop(unsafe { Box::from_raw(h.as_ptr()) });
        }
    }
}

/// Lock `m` without ever blocking while holding the GIL: the holder may be a thread waiting
/// with the GIL released that needs it back (to check signals) before it can let go.
pub(crate) fn lock<'a, T: Send>(py: Python<'_>, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
    loop {
        match m.try_lock() {
            Ok(g) => return g,
            Err(TryLockError::Poisoned(p)) => return p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                // Wait for the holder with the GIL released, then try again with it held.
                py.detach(|| drop(m.lock()));
            }
        }
    }
}
