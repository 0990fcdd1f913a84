//! Zero-copy SPSC messages: a [`Loan`] is the slot at the sender's position, written in place
//! and published by [`Loan::commit`]; a [`Ref`] is the slot at the receiver's position, read in
//! place and freed when it drops.
//!
//! A loan changes none of the ring's shared state (positions, stamps) until it is committed
//! (only the slot's own bytes, which no reader looks at before the commit), so dropping it,
//! leaking it, or the process dying with it leaves the ring as it was: the next loan or send
//! takes the same slot. A `Ref` moves the receiver's private position past its message at once,
//! so the message is never received twice; the shared position, which gives the slot back to
//! the sender, moves when the `Ref` drops (a leaked `Ref` is given back by the next receive:
//! the next message's, or one that finds the ring empty). One loan or `Ref` at a time per
//! handle: each borrows its handle mutably.

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

/// The slot at the sender's position, lent by [`Sender::loan`] to be written in place.
///
/// Derefs to `T` in the slot, which holds whatever was there before (an older message, or
/// zeros): set every field you publish. [`commit`](Self::commit) publishes it; dropping the
/// loan (or a panic while it is held) publishes nothing. `Send`: it may be filled on another
/// thread.
///
/// The slot is shared memory: a receiver that reads it against the protocol sees your writes
/// early, and one that writes it against the protocol races your writes.
#[must_use = "a loan publishes nothing unless it is committed"]
pub struct Loan<'a, T: Pod> {
    tx: &'a mut Sender<T>,
    pos: u64,
}

/// The message at the receiver's position, lent by [`Receiver::recv_ref`] to be read in
/// place. Derefs to `T` in the slot; the slot goes back to the sender when it drops (a `Ref`
/// leaked with `mem::forget` is not received again: its slot comes back with the next
/// receive).
///
/// A reference into shared memory is only as stable as the peer is honest. A sender writing
/// the slot against the protocol while you hold a `Ref` races your reads: the compiler assumes
/// the bytes behind a `&T` do not change, so a value checked once may read differently later.
/// The reference never points outside the slot. Against an untrusted peer, receive with
/// [`Receiver::recv`] and validate the copy: for payloads of up to 256 bytes the copy is made
/// of atomic loads (a racing writer can tear it, but what you validate is then yours); larger
/// payloads are copied with a plain `memcpy`, which such a writer races as well.
pub struct Ref<'a, T: Pod> {
    rx: &'a mut Receiver<T>,
    pos: u64,
}

impl<T: Pod> Sender<T> {
    /// One attempt at claiming the slot at our position: `Ready` with its position, or a
    /// disconnect; `Pending` when full.
    #[inline(always)]
    fn poll_loan(&self, probe: bool) -> Poll<Result<u64, ()>> {
        handle::poll_send(&self.chan, (), probe, |_| {
            self.ring.claim(self.chan.header())
        })
    }

    #[inline(always)]
    fn lend(&mut self, pos: u64) -> Loan<'_, T> {
        Loan { tx: self, pos }
    }

    /// Borrow the next slot of the ring to write a message in place, waiting for room as long
    /// as it takes. Nothing is copied: fill the [`Loan`] and [`commit`](Loan::commit) it.
    ///
    /// # Errors
    /// [`SendError`] if the receiver is gone.
    ///
    /// ```
    /// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    /// #[repr(C)]
    /// struct Frame { seq: u64, pixels: [u8; 4096] }
    ///
    /// let (mut tx, mut rx) = shmchan::spsc::channel::<Frame>(4)?;
    /// let mut slot = tx.loan()?;              // the slot itself, in shared memory
    /// slot.seq = 7;
    /// slot.pixels.fill(0xff);                 // written in place: no copy of 4 KiB
    /// slot.commit();                          // published
    /// let frame = rx.recv_ref()?;             // read in place
    /// assert_eq!((frame.seq, frame.pixels[4095]), (7, 0xff));
    /// drop(frame);                            // the slot goes back to the sender
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn loan(&mut self) -> Result<Loan<'_, T>, SendError<()>> {
        self.loan_deadline(None).map_err(|_| SendError(()))
    }

    /// Borrow the next slot without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] if the ring is full, [`TrySendError::Disconnected`] if the
    /// receiver is gone.
    ///
    /// ```
    /// use shmchan::TrySendError;
    /// let (mut tx, _rx) = shmchan::spsc::channel::<u64>(1)?;
    /// let mut slot = tx.try_loan()?;
    /// *slot = 1;
    /// slot.commit();
    /// assert!(matches!(tx.try_loan(), Err(TrySendError::Full(()))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_loan(&mut self) -> Result<Loan<'_, T>, TrySendError<()>> {
        let pos = handle::try_send(&self.chan, (), |(), p| self.poll_loan(p))?;
        Ok(self.lend(pos))
    }

    /// Borrow the next slot, waiting for room at most `timeout`.
    ///
    /// # Errors
    /// [`SendTimeoutError::Timeout`] if the ring stayed full,
    /// [`SendTimeoutError::Disconnected`] if the receiver is gone.
    pub fn loan_timeout(&mut self, timeout: Duration) -> Result<Loan<'_, T>, SendTimeoutError<()>> {
        self.loan_deadline(crate::chan::deadline_after(timeout))
    }

    #[inline]
    fn loan_deadline(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Loan<'_, T>, SendTimeoutError<()>> {
        let pos = handle::send_deadline(&self.chan, &self.wait, (), deadline, |(), p| {
            self.poll_loan(p)
        })?;
        Ok(self.lend(pos))
    }
}

impl<T: Pod> Loan<'_, T> {
    /// Publish the message. (In a child created by `fork`, a copy of its parent's loan
    /// publishes nothing: the ring is its parent's.)
    #[inline]
    pub fn commit(self) {
        let tx = self.tx;
        if tx.chan.forked() {
            return;
        }
        let before = self.pos;
        // SAFETY: `pos` is the position of the claim this loan holds, and the loan's mutable
        // borrow of the sender kept any other claim or push from happening since; the sender
        // is the channel's only producer.
        unsafe { tx.ring.commit(tx.chan.header(), &tx.slots, self.pos) };
        tx.checkpoint(before);
    }
}

impl<T: Pod> Deref for Loan<'_, T> {
    type Target = T;
    /// # Panics
    /// In a child created by `fork`, on a copy of its parent's loan: the slot is the parent's.
    #[inline(always)]
    fn deref(&self) -> &T {
        self.tx.chan.refuse_in_child("spsc::Loan");
        // SAFETY: the claim made the slot at `pos` ours until it is published, which consumes
        // the loan; the loan borrows the sender mutably, which keeps the region mapped and any
        // other access to the slot out. `T` is the payload type the geometry was validated
        // for.
        unsafe { self.tx.slots.payload(self.pos) }
    }
}

impl<T: Pod> DerefMut for Loan<'_, T> {
    /// # Panics
    /// As [`deref`](Deref::deref).
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        self.tx.chan.refuse_in_child("spsc::Loan");
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the slot.
        unsafe { self.tx.slots.payload_mut(self.pos) }
    }
}

impl<T: Pod> fmt::Debug for Loan<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("spsc::Loan")
            .field("position", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Receiver<T> {
    /// One attempt at taking the message at our position in place: `Ready` with its
    /// position, or a disconnect; `Pending` when empty.
    #[inline(always)]
    fn poll_ref(&self, probe: bool) -> Poll<Result<u64, ()>> {
        handle::poll_recv(&self.chan, probe, |_| {
            self.ring.peek(self.chan.header(), &self.slots)
        })
    }

    #[inline(always)]
    fn lend(&mut self, pos: u64) -> Ref<'_, T> {
        Ref { rx: self, pos }
    }

    /// Receive the next message in place, waiting as long as it takes: the [`Ref`] reads the
    /// slot itself, which goes back to the sender when the `Ref` drops.
    ///
    /// # Errors
    /// [`RecvError`] once the ring is empty and the sender is gone.
    ///
    /// ```
    /// let (tx, mut rx) = shmchan::spsc::channel::<[u64; 512]>(2)?;
    /// tx.send([3; 512])?;
    /// let m = rx.recv_ref()?;                 // no copy of the 4 KiB
    /// assert_eq!(m.iter().sum::<u64>(), 3 * 512);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn recv_ref(&mut self) -> Result<Ref<'_, T>, RecvError> {
        self.ref_deadline(None).map_err(|_| RecvError)
    }

    /// Receive the next message in place without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] if the ring is empty, [`TryRecvError::Disconnected`] if it is
    /// empty and the sender is gone.
    pub fn try_recv_ref(&mut self) -> Result<Ref<'_, T>, TryRecvError> {
        let pos = handle::try_recv(&self.chan, |p| self.poll_ref(p))?;
        Ok(self.lend(pos))
    }

    /// Receive the next message in place, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] if nothing arrived, [`RecvTimeoutError::Disconnected`] if
    /// the ring is empty and the sender is gone.
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Ref<'_, T>, RecvTimeoutError> {
        self.ref_deadline(crate::chan::deadline_after(timeout))
    }

    #[inline]
    fn ref_deadline(&mut self, deadline: Option<Instant>) -> Result<Ref<'_, T>, RecvTimeoutError> {
        let pos = handle::recv_deadline(&self.chan, &self.wait, deadline, |p| self.poll_ref(p))?;
        Ok(self.lend(pos))
    }
}

impl<T: Pod> Deref for Ref<'_, T> {
    type Target = T;
    /// # Panics
    /// In a child created by `fork`, on a copy of its parent's `Ref`: the slot is the
    /// parent's, and it may reuse it at any time.
    #[inline(always)]
    fn deref(&self) -> &T {
        self.rx.chan.refuse_in_child("spsc::Ref");
        // SAFETY: `peek` saw the slot at `pos` published (Acquire), and the producer does not
        // write it until the shared position passes it, which happens only when this `Ref`
        // drops (or, if it was leaked, at a receive this `Ref`'s borrow rules out while it
        // lives). The `Ref` borrows the receiver, which keeps the region mapped; `T` is the
        // payload type the geometry was validated for.
        unsafe { self.rx.slots.payload(self.pos) }
    }
}

impl<T: Pod> Drop for Ref<'_, T> {
    /// Give the slot back to the sender (not in a forked child's copy: the ring is its
    /// parent's).
    #[inline]
    fn drop(&mut self) {
        if !self.rx.chan.forked() {
            self.rx
                .ring
                .release(self.rx.chan.header(), self.pos.wrapping_add(1));
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("spsc::Ref").field(&**self).finish()
    }
}
