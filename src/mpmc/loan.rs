//! Zero-copy MPMC messages: a [`Loan`] is a slot claimed for writing in place and published
//! by [`Loan::commit`]; a [`Ref`] is a message claimed for reading in place, its slot freed
//! when it drops.
//!
//! Each loan and each `Ref` is its own claimed slot (the stamp records which endpoint holds
//! it), so a handle may hold several at once, from any of its clones and threads. A loan
//! dropped without a commit gives its position up at once: consumers skip it and nothing of
//! it is delivered; a process killed holding one loses that position only, once it is found
//! dead, as for a producer killed mid-`send`. A consumer killed holding a `Ref` loses that
//! one message; no message is delivered twice.
//!
//! Holding is not free for the others: the ring stays in order, so consumers (in every
//! process) wait at a loan's position until it is committed or dropped, and producers wait for
//! a `Ref`'s slot when the ring comes round to it. A loan or `Ref` leaked with `mem::forget`
//! holds its slot until this endpoint goes (every clone of the handle dropped, or the process
//! gone): meanwhile a leaked loan stops every consumer at its position.
//!
//! A reference into shared memory is only as stable as the peers are honest: one writing the
//! slot against the protocol races the reads through a `Ref` (see `spsc::Ref`).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use super::{Receiver, Sender};
use crate::Pod;
use crate::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::handle;
use crate::wait::Poll;

/// A slot claimed by [`Sender::loan`] to be written in place.
///
/// Derefs to `T` in the slot, which holds whatever was there before (an older message, or
/// zeros): set every field you publish. [`commit`](Self::commit) publishes it; dropping the
/// loan (or a panic while it is held) gives the position up (consumers skip it). While it is
/// held, consumers wait at its position (messages sent after it queue behind it).
#[must_use = "a loan publishes nothing unless it is committed"]
pub struct Loan<'a, T: Pod> {
    tx: &'a Sender<T>,
    pos: u64,
}

/// A message claimed by [`Receiver::recv_ref`] to be read in place. Derefs to `T` in the
/// slot; the slot is freed for the producers when it drops. A consumer killed holding one
/// loses that message only.
///
/// A reference into shared memory is only as stable as the peers are honest: one writing the
/// slot against the protocol races the reads through it (see `spsc::Ref`). Against untrusted
/// peers, receive with [`Receiver::recv`] and validate the copy.
pub struct Ref<'a, T: Pod> {
    rx: &'a Receiver<T>,
    pos: u64,
}

impl<T: Pod> Sender<T> {
    /// One attempt at claiming a slot: `Ready` with its position, or a disconnect; `Pending`
    /// when full.
    #[inline(always)]
    fn poll_loan(&self, probe: bool) -> Poll<Result<u64, ()>> {
        let s = &*self.shared;
        handle::poll_send(&s.chan, (), probe, |probe| {
            s.ring.claim(s.chan.header(), &s.slots, |o, g| {
                s.chan.owner_gone(o, g, probe)
            })
        })
    }

    /// Claim a slot of the ring to write a message in place, waiting for room as long as it
    /// takes. Nothing is copied: fill the [`Loan`] and [`commit`](Loan::commit) it. A handle
    /// (and its clones) may hold several loans at once; a process holding a whole ring's worth
    /// of loans (or references) and asking for one more waits for itself: use
    /// [`try_loan`](Self::try_loan) or [`loan_timeout`](Self::loan_timeout) there.
    ///
    /// # Errors
    /// [`SendError`] if every receiver is gone.
    ///
    /// ```
    /// let (tx, rx) = shmchan::mpmc::channel::<[u32; 1024]>(4)?;
    /// let mut a = tx.loan()?;
    /// let mut b = tx.loan()?;                 // a second slot, claimed after the first
    /// a.fill(1);
    /// b.fill(2);
    /// b.commit();
    /// drop(a);                                // given up: consumers skip its position
    /// assert_eq!(rx.recv_ref()?[1023], 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn loan(&self) -> Result<Loan<'_, T>, SendError<()>> {
        self.loan_deadline(None).map_err(|_| SendError(()))
    }

    /// Claim a slot without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] if the ring is full, [`TrySendError::Disconnected`] if every
    /// receiver is gone.
    pub fn try_loan(&self) -> Result<Loan<'_, T>, TrySendError<()>> {
        let pos = handle::try_send(&self.shared.chan, (), |(), p| self.poll_loan(p))?;
        Ok(Loan { tx: self, pos })
    }

    /// Claim a slot, waiting for room at most `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] if the ring stayed full,
    /// [`SendTimeoutError::Disconnected`] if every receiver is gone.
    pub fn loan_timeout(&self, timeout: Duration) -> Result<Loan<'_, T>, SendTimeoutError<()>> {
        self.loan_deadline(crate::chan::deadline_after(timeout))
    }

    #[inline]
    fn loan_deadline(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Loan<'_, T>, SendTimeoutError<()>> {
        let s = &*self.shared;
        let pos = handle::send_deadline(&s.chan, &s.wait, (), deadline, |(), p| self.poll_loan(p))?;
        Ok(Loan { tx: self, pos })
    }
}

impl<T: Pod> Loan<'_, T> {
    /// Publish the message. (In a child created by `fork`, a copy of its parent's loan
    /// publishes nothing: the slot is its parent's. If shared memory was corrupted so that
    /// another endpoint repaired the slot as a dead owner's, the message is not delivered, as
    /// for a `send` in that case.)
    #[inline]
    pub fn commit(self) {
        let this = std::mem::ManuallyDrop::new(self);
        let s = &*this.tx.shared;
        if s.chan.forked() {
            return;
        }
        // Fails only if a repairer took the slot from us, which only corruption of the shared
        // memory does to a live endpoint: the message is then not delivered, as for `send`.
        let _ = s.ring.publish(s.chan.header(), &s.slots, this.pos);
        this.tx.checkpoint();
    }
}

impl<T: Pod> Drop for Loan<'_, T> {
    /// Give the position up without publishing it (not in a forked child's copy).
    fn drop(&mut self) {
        let s = &*self.tx.shared;
        if !s.chan.forked() {
            s.ring.abandon(s.chan.header(), &s.slots, self.pos);
        }
    }
}

impl<T: Pod> Deref for Loan<'_, T> {
    type Target = T;
    /// # Panics
    /// In a child created by `fork`, on a copy of its parent's loan: the slot is the parent's.
    #[inline(always)]
    fn deref(&self) -> &T {
        self.tx.shared.chan.refuse_in_child("mpmc::Loan");
        // SAFETY: the claiming CAS made the slot at `pos` ours (WRITING(pos, me)) until this
        // loan publishes or abandons it, both of which consume it; no consumer reads a
        // WRITING slot, and writes go through `deref_mut`, which `&mut self` keeps from
        // overlapping this shared borrow. The loan borrows the sender, which keeps the region
        // mapped; `T` is the payload type the geometry was validated for.
        unsafe { self.tx.shared.slots.payload(self.pos) }
    }
}

impl<T: Pod> DerefMut for Loan<'_, T> {
    /// # Panics
    /// As [`deref`](Deref::deref).
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        self.tx.shared.chan.refuse_in_child("mpmc::Loan");
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the slot (every
        // other loan holds another position).
        unsafe { self.tx.shared.slots.payload_mut(self.pos) }
    }
}

impl<T: Pod> fmt::Debug for Loan<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpmc::Loan")
            .field("position", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Receiver<T> {
    /// One attempt at claiming a published message: `Ready` with its position, or a
    /// disconnect; `Pending` when empty.
    #[inline(always)]
    fn poll_ref(&self, probe: bool) -> Poll<Result<u64, ()>> {
        let s = &*self.shared;
        handle::poll_recv(&s.chan, probe, |probe| {
            s.ring.take(s.chan.header(), &s.slots, !probe, |o, g| {
                s.chan.owner_gone(o, g, probe)
            })
        })
    }

    /// Receive a message in place, waiting as long as it takes: the [`Ref`] reads the slot
    /// itself, freed for the producers when the `Ref` drops. A handle may hold several; a
    /// process holding a whole ring's worth of references (or loans) and waiting for one more
    /// message waits for itself: use [`try_recv_ref`](Self::try_recv_ref) or
    /// [`recv_ref_timeout`](Self::recv_ref_timeout) there.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and every sender is gone.
    ///
    /// ```
    /// let (tx, rx) = shmchan::mpmc::channel::<[u64; 512]>(4)?;
    /// tx.send([1; 512])?;
    /// tx.send([2; 512])?;
    /// let (a, b) = (rx.recv_ref()?, rx.recv_ref()?); // two slots held at once
    /// assert_eq!((a[0], b[511]), (1, 2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn recv_ref(&self) -> Result<Ref<'_, T>, RecvError> {
        self.ref_deadline(None).map_err(|_| RecvError)
    }

    /// Receive a message in place without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if nothing is ready, [`TryRecvError::Disconnected`] if the ring
    /// is empty and every sender is gone.
    pub fn try_recv_ref(&self) -> Result<Ref<'_, T>, TryRecvError> {
        let pos = handle::try_recv(&self.shared.chan, |p| self.poll_ref(p))?;
        Ok(Ref { rx: self, pos })
    }

    /// Receive a message in place, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if nothing arrived, [`RecvTimeoutError::Disconnected`] if
    /// the ring is empty and every sender is gone.
    pub fn recv_ref_timeout(&self, timeout: Duration) -> Result<Ref<'_, T>, RecvTimeoutError> {
        self.ref_deadline(crate::chan::deadline_after(timeout))
    }

    #[inline]
    fn ref_deadline(&self, deadline: Option<Instant>) -> Result<Ref<'_, T>, RecvTimeoutError> {
        let s = &*self.shared;
        let pos = handle::recv_deadline(&s.chan, &s.wait, deadline, |p| self.poll_ref(p))?;
        Ok(Ref { rx: self, pos })
    }
}

impl<T: Pod> Deref for Ref<'_, T> {
    type Target = T;
    /// # Panics
    /// In a child created by `fork`, on a copy of its parent's `Ref`: the slot is the
    /// parent's.
    #[inline(always)]
    fn deref(&self) -> &T {
        self.rx.shared.chan.refuse_in_child("mpmc::Ref");
        // SAFETY: the claiming CAS (Acquire, after the producer's Release publish) made the
        // slot at `pos` ours (READING(pos, me)) until this `Ref` frees it on drop; no producer
        // writes a READING slot. The `Ref` borrows the receiver, which keeps the region
        // mapped; `T` is the payload type the geometry was validated for.
        unsafe { self.rx.shared.slots.payload(self.pos) }
    }
}

impl<T: Pod> Drop for Ref<'_, T> {
    /// Free the slot for the producers (not in a forked child's copy: it is its parent's).
    fn drop(&mut self) {
        let s = &*self.rx.shared;
        if !s.chan.forked() {
            // Fails only if a repairer freed the slot first (corruption): nothing to undo.
            let _ = s.ring.free(s.chan.header(), &s.slots, self.pos);
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("mpmc::Ref").field(&**self).finish()
    }
}
