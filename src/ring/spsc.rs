//! Lamport's single-producer single-consumer ring with a cached index (as in rtrb), whose slots
//! carry their own "published" stamp.
//!
//! Positions are `u64`s that only grow; the slot for position `p` is `p & mask`. The producer
//! owns `tail` and reads `head` (through a private cached copy, refreshed only when the ring
//! looks full); the consumer owns `head`. Each keeps its own position in private memory: what is
//! in shared memory is only ever written by it, never read back.
//!
//! The consumer does not read `tail`: each slot starts with a stamp that the producer sets to
//! `p + 1` after writing the payload of position `p`, and the consumer polls the stamp of the
//! slot it wants. Stamp and payload share a cache line, so a message costs the consumer one line
//! transfer instead of two (the index's, then the slot's).
//!
//! The shared `tail` is a hint, for `len`, `shmchan stat` and a producer taking over: `push`
//! stores it only when it reaches a multiple of [`CHECKPOINT`] (and batches and loans at their
//! end), so it may be up to `CHECKPOINT - 1` behind what is published (more, after a producer
//! killed between a stamp and that store, or within a batch). Readers that need the exact
//! position follow the stamps from it ([`published`]). A store per message cost 12% of 8-byte
//! streaming: the producer's stores queue behind its store to the slot line the consumer is
//! reading (`cargo bench --bench throughput -- 'stream/spsc_8B$'`, 4.4-4.8 against 5.0-5.4 ns a
//! message in three interleaved rounds on a quiet 2-vCPU AMD EPYC).
//!
//! Positions read from the peer are checked: `0 <= tail - head <= capacity` must hold, or the
//! ring is [`Broken`](Error::Broken) and the handle reports the peer as disconnected. A stamp
//! can at worst make the consumer read a slot early: the payload is `Pod`, so that is an odd
//! value, never undefined behaviour.

use std::cell::Cell;

use bytemuck::Pod;

use super::{CHECKPOINT, Slots};
use crate::layout::Header;
use crate::sync::Ordering;
use crate::wait::NotifyFence;

/// Why a push or pop did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Error {
    /// Nothing to pop / no room to push.
    WouldBlock,
    /// The peer's position is impossible (shared memory was corrupted).
    Broken,
}

/// The producer's private state.
pub(crate) struct Producer {
    capacity: u64,
    /// Our position: the next slot to write. The shared `tail` holds the same value once
    /// published.
    tail: Cell<u64>,
    /// The consumer's position as last read, plus `capacity`: the position we may not reach
    /// until we read it again (kept as this sum, so that a push's room test is one compare).
    limit: Cell<u64>,
    /// The fence our notifies use.
    fence: NotifyFence,
}

/// The consumer's private state.
pub(crate) struct Consumer {
    /// Our position: the next slot to read. The shared `head` is behind it only while a `Ref`
    /// holds the slot below it, or after one was leaked (then the next receive that finds the
    /// ring empty gives the slot back: see [`Consumer::give_back_leaked`]).
    head: Cell<u64>,
    /// The fence our notifies use.
    fence: NotifyFence,
}

/// Load both positions for a handle taking over a side, checking they make sense together.
/// The shared `tail` may lag behind `head`: it is a hint, stored every [`CHECKPOINT`] messages
/// (and at the end of a batch, and when a producer leaves), so the consumer may have taken up
/// to `CHECKPOINT` messages past it while the producer lives, and up to a batch more
/// (`capacity`) after a producer killed within one. The position returned for the producer's
/// side is then `head` (everything below it was published), from which [`Producer::new`]
/// looks further. (Before stop 30 a lag of more than `capacity` was taken for corruption: a
/// ring smaller than 64 refused its next receiver or sender after a few messages.)
fn positions(hdr: &Header, capacity: u64) -> Result<(u64, u64), Error> {
    // Acquire: pair with the Release stores of `head` (in `pop`) and `tail` (at a checkpoint
    // of `push`, the end of a batch, a producer's leaving), so
    // a handle taking over a side starts from slots its predecessor had finished with.
    let head = hdr.head.load(Ordering::Acquire);
    let tail = hdr.tail.load(Ordering::Acquire);
    if tail.wrapping_sub(head) <= capacity {
        Ok((head, tail))
    } else if head.wrapping_sub(tail) <= capacity + CHECKPOINT {
        Ok((head, head))
    } else {
        Err(Error::Broken)
    }
}

/// The exact published position (the producer's `tail`) and the consumer's `head`, for `len`:
/// from the shared `tail` hint, or `head` if that is ahead of it, forward over the slots whose
/// stamps say published, at most [`CHECKPOINT`] of them (a producer killed within a batch can
/// leave more uncounted, until the next producer takes over). Reads slot lines the producer may
/// be writing: a query, not a per-message path.
pub(crate) fn published(hdr: &Header, slots: &Slots, capacity: u64) -> (u64, u64) {
    // Acquire: as in `positions` (a snapshot, whatever a peer does meanwhile).
    let head = hdr.head.load(Ordering::Acquire);
    let mut tail = hdr.tail.load(Ordering::Acquire);
    if tail.wrapping_sub(head) > capacity {
        // Behind `head` (the consumer took what the hint does not count yet), or corrupt.
        tail = head;
    }
    for _ in 0..CHECKPOINT {
        // SYNC POINT (publish): Acquire, as the consumer loads stamps.
        if tail.wrapping_sub(head) >= capacity
            || slots.stamp(tail).load(Ordering::Acquire) != tail.wrapping_add(1)
        {
            break;
        }
        tail = tail.wrapping_add(1);
    }
    (head, tail)
}

impl Producer {
    /// Take over the producer side: at the shared `tail`, moved past every slot a previous
    /// producer published beyond it (one killed between a slot's stamp and `tail`, or within a
    /// batch, which stores `tail` once at its end). Those messages stay published; the next
    /// one goes after them. At most `capacity` stamps are read.
    pub(crate) fn new(hdr: &Header, slots: &Slots, capacity: u64) -> Result<Producer, Error> {
        let (head, mut tail) = positions(hdr, capacity)?;
        // SYNC POINT (publish): Acquire, as the consumer loads stamps: the messages found
        // published here are complete (their producer's Release store of the stamp).
        while tail.wrapping_sub(head) < capacity
            && slots.stamp(tail).load(Ordering::Acquire) == tail.wrapping_add(1)
        {
            tail = tail.wrapping_add(1);
        }
        // For `len` and the next handle's checks (Release: as in `push`).
        hdr.tail.store(tail, Ordering::Release);
        Ok(Producer {
            capacity,
            tail: Cell::new(tail),
            limit: Cell::new(head.wrapping_add(capacity)),
            fence: NotifyFence::now(),
        })
    }

    /// How many slots are free for a producer at `tail`, reading the consumer's position only
    /// when the cached one shows fewer than `want`.
    #[inline(always)]
    fn room(&self, hdr: &Header, tail: u64, want: u64) -> Result<u64, Error> {
        // `tail - head <= capacity` held when `limit` was set, and `tail` has not passed it.
        let free = self.limit.get().wrapping_sub(tail);
        if free >= want {
            return Ok(free);
        }
        // SYNC POINT (slot-free): Acquire, pairs with the consumer's Release store of `head` in
        // `pop`/`pop_slice`: its reads of the slots we are about to overwrite are finished.
        let head = hdr.head.load(Ordering::Acquire);
        let used = tail.wrapping_sub(head);
        if used > self.capacity {
            return Err(Error::Broken);
        }
        self.limit.set(head.wrapping_add(self.capacity));
        Ok(self.capacity - used)
    }

    /// Push one value if there is room.
    ///
    /// # Safety
    /// This must be the only producer of the ring described by `hdr` and `slots`, and `T` the
    /// payload type of its geometry.
    ///
    /// `at_checkpoint` runs (out of line) when the new position is a multiple of
    /// [`CHECKPOINT`], after the `tail` hint is stored: the handle's probe of its peer. One test
    /// of the position for both, after the doorbell: the hint and the probe were two tests, one
    /// each side of the doorbell's fence, which the compiler could not merge (`spsc_8B` 65.7 ->
    /// 63.7 instructions, `.ci/instructions`).
    #[inline]
    pub(crate) unsafe fn push<T: Pod>(
        &self,
        hdr: &Header,
        slots: &Slots,
        value: T,
        at_checkpoint: impl FnOnce(),
    ) -> Result<(), Error> {
        let tail = self.tail.get();
        if self.room(hdr, tail, 1)? == 0 {
            return Err(Error::WouldBlock);
        }
        // SAFETY: `tail - head < capacity`, so the slot at `tail` is not one the consumer may
        // still read; we are the only producer (this function's contract).
        unsafe { slots.write(tail, value) };
        let next = tail.wrapping_add(1);
        // SYNC POINT (publish): Release, pairs with the consumer's Acquire load of the stamp in
        // `pop`: the payload written above is visible before the stamp says so.
        // SAFETY: (`stamp_of`) `T` is the geometry's payload type (this function's contract).
        unsafe { slots.stamp_of::<T>(tail) }.store(next, Ordering::Release);
        self.tail.set(next);
        hdr.data_bell.notify_as(self.fence);
        if next % CHECKPOINT == 0 {
            checkpoint(hdr, next, at_checkpoint);
        }
        Ok(())
    }

    /// Loom only: push as a producer killed between the stamp and the `tail` store does (the
    /// message is published; `tail` is not moved).
    ///
    /// # Safety
    /// As for [`push`](Self::push).
    #[cfg(loom)]
    pub(crate) unsafe fn push_and_die_before_tail<T: Pod>(
        &self,
        hdr: &Header,
        slots: &Slots,
        value: T,
    ) -> Result<(), Error> {
        let tail = self.tail.get();
        if self.room(hdr, tail, 1)? == 0 {
            return Err(Error::WouldBlock);
        }
        // SAFETY: as in `push`.
        unsafe { slots.write(tail, value) };
        // SYNC POINT (publish): as in `push`.
        slots
            .stamp(tail)
            .store(tail.wrapping_add(1), Ordering::Release);
        hdr.data_bell.notify_as(self.fence);
        Ok(())
    }

    /// Push `*value` if there is room, copying it once, straight into the slot (the path of
    /// large payloads).
    ///
    /// # Safety
    /// As for [`push`](Self::push).
    #[inline(always)]
    pub(crate) unsafe fn push_from<T: Pod>(
        &self,
        hdr: &Header,
        slots: &Slots,
        value: &T,
    ) -> Result<(), Error> {
        let pos = self.claim(hdr)?;
        // SAFETY: the claim found the slot at `pos` free; we are the only producer.
        unsafe {
            slots.write_from(pos, value);
            self.commit(hdr, slots, pos);
        }
        Ok(())
    }

    /// Push as many of `values` as there is room for (a prefix), publishing each slot's stamp
    /// as in [`push`](Self::push) but `tail` and the doorbell once for the batch. Returns how
    /// many were pushed; `WouldBlock` if none could be (and `values` is not empty).
    ///
    /// # Safety
    /// As for [`push`](Self::push).
    #[inline]
    pub(crate) unsafe fn push_slice<T: Pod>(
        &self,
        hdr: &Header,
        slots: &Slots,
        values: &[T],
    ) -> Result<usize, Error> {
        let write = |pos, i: usize| {
            // SAFETY: `push_slice_with` hands out only slots the consumer cannot read (see
            // there); we are the only producer; `T` is the payload type (this function's
            // contract).
            unsafe { slots.write(pos, values[i]) }
        };
        // SAFETY: this function's contract is `push`'s; `write` writes value `i` of `values`
        // (`i < values.len()`), the whole payload, into the slot it is given, and nothing else.
        unsafe { self.push_slice_with(hdr, slots, values.len(), write) }
    }

    /// [`push_slice`](Self::push_slice) of `want` values that `write(pos, i)` writes, value
    /// `i` into the slot for `pos` (a copy of a size known at run time, for `untyped`).
    ///
    /// # Safety
    /// As for [`push`](Self::push); `write` must write the whole payload of the slot it is
    /// given, and nothing else.
    #[inline]
    pub(crate) unsafe fn push_slice_with(
        &self,
        hdr: &Header,
        slots: &Slots,
        want: usize,
        mut write: impl FnMut(u64, usize),
    ) -> Result<usize, Error> {
        let tail = self.tail.get();
        let n = (want as u64).min(self.room(hdr, tail, want as u64)?);
        if n == 0 {
            return Err(Error::WouldBlock);
        }
        let mut pos = tail;
        for i in 0..n as usize {
            // `pos - head < capacity` for every `pos` in `tail..tail + n`, so none of these
            // slots is one the consumer may still read.
            write(pos, i);
            let next = pos.wrapping_add(1);
            // SYNC POINT (publish): as in `push`; the consumer may take each message as soon
            // as its own stamp is set.
            slots.stamp(pos).store(next, Ordering::Release);
            pos = next;
        }
        // Once for the batch (Release: as in `publish_tail`).
        hdr.tail.store(pos, Ordering::Release);
        self.tail.set(pos);
        hdr.data_bell.notify_as(self.fence);
        Ok(n as usize)
    }
}

/// A single message's push reached a multiple of [`CHECKPOINT`]: store the `tail` hint (see
/// the module docs), then run the handle's part.
#[cold]
#[inline(never)]
fn checkpoint(hdr: &Header, next: u64, then: impl FnOnce()) {
    // Release: as in `publish_tail`.
    hdr.tail.store(next, Ordering::Release);
    then();
}

/// The `tail` hint after a single message: stored when it reaches a multiple of
/// [`CHECKPOINT`] (see the module docs).
#[inline(always)]
fn publish_tail(hdr: &Header, next: u64) {
    if next % CHECKPOINT == 0 {
        // Release: pairs with the Acquire in `positions` and `published`, so a handle that reads
        // this `tail` also sees the slots below it written.
        hdr.tail.store(next, Ordering::Release);
    }
}

impl Producer {
    /// Store the exact `tail` (a producer leaving: `len` and `shmchan stat` then need no walk
    /// of the stamps).
    pub(crate) fn store_tail(&self, hdr: &Header) {
        // Release: as in `publish_tail`.
        hdr.tail.store(self.tail.get(), Ordering::Release);
    }

    /// Our position (the next slot to write): private, so reading it costs nothing shared.
    #[inline(always)]
    pub(crate) fn position(&self) -> u64 {
        self.tail.get()
    }

    /// Reserve the slot at our position for a loan, if there is room: returns its position.
    /// Nothing is published and nothing shared is written: a loan never committed leaves the
    /// ring as it was, and the next claim or push takes the same slot.
    #[inline(always)]
    pub(crate) fn claim(&self, hdr: &Header) -> Result<u64, Error> {
        let tail = self.tail.get();
        if self.room(hdr, tail, 1)? == 0 {
            return Err(Error::WouldBlock);
        }
        Ok(tail)
    }

    /// Publish the slot at `pos`, returned by [`claim`](Self::claim) and written since, as in
    /// [`push`](Self::push).
    ///
    /// # Safety
    /// This must be the only producer, and `pos` the position of the last claim, with no push
    /// since.
    #[inline(always)]
    pub(crate) unsafe fn commit(&self, hdr: &Header, slots: &Slots, pos: u64) {
        debug_assert_eq!(pos, self.tail.get());
        let next = pos.wrapping_add(1);
        // SYNC POINT (publish): Release, pairs with the consumer's Acquire load of the stamp
        // in `pop`/`peek`: the loan's writes into the slot are visible before the stamp says
        // so.
        slots.stamp(pos).store(next, Ordering::Release);
        self.tail.set(next);
        publish_tail(hdr, next);
        hdr.data_bell.notify_as(self.fence);
    }
}

impl Consumer {
    /// Take over the consumer side at the shared `head`: a message its predecessor was given
    /// but did not free (a `Ref` it held, or one it was copying out, when it was killed) is
    /// received again.
    pub(crate) fn new(hdr: &Header, capacity: u64) -> Result<Consumer, Error> {
        let (head, _) = positions(hdr, capacity)?;
        Ok(Consumer {
            head: Cell::new(head),
            fence: NotifyFence::now(),
        })
    }

    /// A `Ref` leaked with `mem::forget` left the shared `head` behind ours: store ours, so
    /// that its slot goes back to the producer even if no message ever comes to free it (in
    /// a ring of 1, none could). Called when a receive finds the ring empty; no `Ref` can be
    /// alive then (each borrows the receiver).
    #[cold]
    #[inline(never)]
    fn give_back_leaked(&self, hdr: &Header) {
        // SYNC POINT (slot-free): Release, as in `release`.
        hdr.head.store(self.head.get(), Ordering::Release);
        hdr.space_bell.notify_as(self.fence);
    }

    /// The ring looked empty: give back a leaked `Ref`'s slot if there is one. One load of the
    /// shared `head`, a line only we write (so it is in our cache), on the empty path only: the
    /// message path stays as it was.
    #[inline(always)]
    fn empty(&self, hdr: &Header) -> Error {
        // Relaxed: our own last store, or a hostile one (then storing ours back is right too).
        if hdr.head.load(Ordering::Relaxed) != self.head.get() {
            self.give_back_leaked(hdr);
        }
        Error::WouldBlock
    }

    /// Pop one value if there is one.
    ///
    /// # Safety
    /// This must be the only consumer of the ring described by `hdr` and `slots`, and `T` the
    /// payload type of its geometry.
    #[inline]
    pub(crate) unsafe fn pop<T: Pod>(&self, hdr: &Header, slots: &Slots) -> Result<T, Error> {
        let head = self.head.get();
        let next = head.wrapping_add(1);
        // SYNC POINT (publish): Acquire, pairs with the producer's Release store of the stamp
        // in `push`.
        // SAFETY: (`stamp_of`) `T` is the geometry's payload type (this function's contract).
        if unsafe { slots.stamp_of::<T>(head) }.load(Ordering::Acquire) != next {
            return Err(self.empty(hdr));
        }
        // SAFETY: the stamp says the producer published position `head` in this slot, and it
        // will not overwrite it until we move `head` past it; we are the only consumer (this
        // function's contract).
        let value = unsafe { slots.read(head) };
        // SYNC POINT (slot-free): Release, pairs with the producer's Acquire load of `head` in
        // `push`: our read of the slot happens before the producer reuses it.
        hdr.head.store(next, Ordering::Release);
        self.head.set(next);
        hdr.space_bell.notify_as(self.fence);
        Ok(value)
    }

    /// Take the message at our position for reading in place, if one is published: returns
    /// its position and moves our private position past it, so it is never returned twice.
    /// Its slot stays the consumer's (the shared `head` does not move) until
    /// [`release`](Self::release) (or, if the `Ref` was leaked, the next pop, which frees it
    /// with its own slot, or the next receive that finds the ring empty).
    #[inline(always)]
    pub(crate) fn peek(&self, hdr: &Header, slots: &Slots) -> Result<u64, Error> {
        let head = self.head.get();
        let next = head.wrapping_add(1);
        // SYNC POINT (publish): Acquire, pairs with the producer's Release store of the stamp
        // in `push`/`commit`: the payload is complete before we hand out a reference to it.
        if slots.stamp(head).load(Ordering::Acquire) != next {
            return Err(self.empty(hdr));
        }
        self.head.set(next);
        Ok(head)
    }

    /// Free the slots below `next`, a [`peek`](Self::peek)ed message's position + 1, for the
    /// producer. Nothing was received since that peek (the `Ref` borrows the receiver), so
    /// `next` is our position.
    #[inline(always)]
    pub(crate) fn release(&self, hdr: &Header, next: u64) {
        debug_assert_eq!(next, self.head.get());
        // SYNC POINT (slot-free): Release, pairs with the producer's Acquire load of `head` in
        // `room`: every read of the slot through the reference happens before it is reused.
        hdr.head.store(next, Ordering::Release);
        hdr.space_bell.notify_as(self.fence);
    }

    /// Pop one value into `out` if there is one, copying it once, straight out of the slot
    /// (the path of large payloads).
    ///
    /// # Safety
    /// As for [`pop`](Self::pop).
    #[inline(always)]
    pub(crate) unsafe fn pop_into<T: Pod>(
        &self,
        hdr: &Header,
        slots: &Slots,
        out: &mut std::mem::MaybeUninit<T>,
    ) -> Result<(), Error> {
        let pos = self.peek(hdr, slots)?;
        // SAFETY: `peek` saw the slot published, and it stays ours until `release`.
        unsafe { slots.read_into(pos, out) };
        self.release(hdr, pos.wrapping_add(1));
        Ok(())
    }

    /// Pop up to `buf.len()` values into `buf`, the published run starting at our position,
    /// then free their slots with one store of `head` and one doorbell. Returns how many;
    /// `WouldBlock` if none (and `buf` is not empty).
    ///
    /// # Safety
    /// As for [`pop`](Self::pop).
    #[inline]
    pub(crate) unsafe fn pop_slice<T: Pod>(
        &self,
        hdr: &Header,
        slots: &Slots,
        buf: &mut [T],
    ) -> Result<usize, Error> {
        let want = buf.len();
        let read = |pos, i: usize| {
            // SAFETY: as in `pop`, for position `pos`: published, and not reused until `head`
            // moves past it, which `pop_slice_with` does only after the last read; `T` is the
            // payload type (this function's contract).
            buf[i] = unsafe { slots.read(pos) };
        };
        // SAFETY: this function's contract is `pop`'s; `read` only reads the slot it is given
        // (into `buf[i]`, `i < buf.len()`).
        unsafe { self.pop_slice_with(hdr, slots, want, read) }
    }

    /// [`pop_slice`](Self::pop_slice) of up to `want` values that `read(pos, i)` copies out,
    /// value `i` from the slot for `pos` (a copy of a size known at run time, for `untyped`).
    ///
    /// # Safety
    /// As for [`pop`](Self::pop); `read` must only read the slot it is given.
    #[inline]
    pub(crate) unsafe fn pop_slice_with(
        &self,
        hdr: &Header,
        slots: &Slots,
        want: usize,
        mut read: impl FnMut(u64, usize),
    ) -> Result<usize, Error> {
        let head = self.head.get();
        let mut pos = head;
        let mut n = 0;
        while n < want {
            let next = pos.wrapping_add(1);
            // SYNC POINT (publish): as in `pop`.
            if slots.stamp(pos).load(Ordering::Acquire) != next {
                break;
            }
            // Published, and not reused until `head` moves past it, which happens only below.
            read(pos, n);
            pos = next;
            n += 1;
        }
        if n == 0 {
            return Err(self.empty(hdr));
        }
        // SYNC POINT (slot-free): as in `pop`, for every slot read above.
        hdr.head.store(pos, Ordering::Release);
        self.head.set(pos);
        hdr.space_bell.notify_as(self.fence);
        Ok(n)
    }
}
