//! A bounded multi-producer multi-consumer ring with per-slot stamps (after Vyukov), made safe
//! against processes that die mid-operation.
//!
//! Every slot starts with a 64-bit stamp, changed only by CAS:
//!
//! ```text
//!  63                              8 7        2 1   0
//! +----------------------------------+----------+-----+
//! |  lap position p (low 56 bits)    |  owner   |state|
//! +----------------------------------+----------+-----+
//! FREE(p)        the slot waits for the producer of position p
//! WRITING(p, o)  endpoint o claimed position p and is copying the payload in
//! FULL(p, o)     the payload of position p is complete
//! READING(p, o)  endpoint o claimed position p and is copying the payload out
//! ```
//!
//! A producer claims position `p` with a CAS FREE(p) -> WRITING(p, me), which records who
//! holds the slot in the same atomic step, then publishes with a CAS WRITING(p, me) ->
//! FULL(p, me). A consumer claims with FULL(p) -> READING(p, me) and frees the slot for the next
//! lap with READING(p, me) -> FREE(p + capacity). The shared `tail` and `head` are only hints
//! of the next position to try: whoever takes a position, or sees it taken, stores the next one
//! (racing stores may move a hint back; the stamps, not the hints, decide).
//!
//! Crash safety: if the owner of a WRITING or READING slot is gone (its endpoint was reaped as
//! dead, or is not attached at all), whoever finds the slot repairs it with a CAS to
//! FREE(p + capacity): that position's message is lost, nothing else. The repair and a late
//! publish are CASes from the same WRITING value, so they cannot both succeed, and a consumer
//! only reads FULL slots, so a half-written payload is never delivered. A consumer killed while
//! reading loses only the message it held.
//!
//! Nothing read from a stamp is trusted: the slot index is always masked, and a stamp that fits
//! no state of the protocol makes the operation report [`Error::Broken`].

use bytemuck::Pod;

use super::Slots;
use super::spsc::Error;
use crate::layout::Header;
use crate::sync::{AtomicU64, Ordering};

pub(crate) const FREE: u64 = 0;
pub(crate) const WRITING: u64 = 1;
pub(crate) const FULL: u64 = 2;
pub(crate) const READING: u64 = 3;
const POS_BITS: u32 = 56;
const POS_MASK: u64 = (1 << POS_BITS) - 1;

/// Give up a push or pop after this many retries (another endpoint keeps winning, or a hostile
/// peer keeps moving the hints) and report "would block"; the caller's wait loop retries.
const RETRIES: usize = 1 << 16;

pub(crate) fn stamp(pos: u64, owner: usize, state: u64) -> u64 {
    ((pos & POS_MASK) << 8) | (((owner as u64) & 63) << 2) | state
}

/// `(position, owner, state)` of a stamp.
fn decode(s: u64) -> (u64, usize, u64) {
    (s >> 8, ((s >> 2) & 63) as usize, s & 3)
}

/// Signed distance from `pos` to a stamp's 56-bit position.
fn dist(stamp_pos: u64, pos: u64) -> i64 {
    ((stamp_pos.wrapping_sub(pos) & POS_MASK) << 8) as i64 >> 8
}

/// Initialise the stamps of a new ring: slot `i` waits for position `i`.
pub(crate) fn init(slots: &Slots, capacity: u64) {
    for i in 0..capacity {
        // Relaxed: published by the header's ready flag (Release).
        slots.stamp(i).store(stamp(i, 0, FREE), Ordering::Relaxed);
    }
}

/// One endpoint's view of the ring.
pub(crate) struct Ring {
    capacity: u64,
    /// Our endpoint index, recorded in the stamps we claim.
    me: usize,
}

impl Ring {
    pub(crate) fn new(capacity: u64, me: usize) -> Ring {
        Ring { capacity, me }
    }

    /// Move a position hint to `pos + 1` (someone took `pos`). Relaxed: the hints carry no
    /// data; the stamps do.
    ///
    /// A plain store, not a CAS from `pos`: racing endpoints may move a hint back, which only
    /// costs the next caller a few steps forward (each finds its position taken and advances),
    /// while a locked instruction per message drains the store buffer (a CAS here made 1x1
    /// streaming 20% slower, `cargo bench --bench throughput -- mpmc`).
    fn advance(hint: &AtomicU64, pos: u64) {
        hint.store(pos.wrapping_add(1), Ordering::Relaxed);
    }

    /// Free a slot that `owner` left WRITING or READING, for the next lap, if `owner` is
    /// another endpoint and `gone`. Returns whether it was (the caller then reloads the stamp,
    /// whichever repairer's CAS won); otherwise the holder may still finish and the caller
    /// waits.
    fn repair_if_gone(
        &self,
        cell: &AtomicU64,
        seen: u64,
        owner: usize,
        gone: &impl Fn(usize) -> bool,
    ) -> bool {
        let repairable = owner != self.me && gone(owner);
        if repairable {
            let lap_pos = decode(seen).0;
            // AcqRel: Acquire so a late owner's writes are ordered before ours; Release so the
            // producer that claims the freed slot (Acquire) sees the slot handed over.
            let _ = cell.compare_exchange(
                seen,
                stamp(lap_pos.wrapping_add(self.capacity), 0, FREE),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        repairable
    }

    /// Push one value if there is room. `gone(o)` tells whether endpoint `o` is dead or
    /// detached (its slots may be repaired).
    ///
    /// # Safety
    /// `T` must be the payload type of the ring's geometry, and `me` an endpoint index this
    /// process holds.
    #[inline(always)]
    pub(crate) unsafe fn push<T: Pod>(
        &self,
        hdr: &Header,
        slots: &Slots,
        value: T,
        gone: impl Fn(usize) -> bool,
    ) -> Result<(), Error> {
        let pos = self.claim(hdr, slots, gone)?;
        // SAFETY: the claim made this slot ours (WRITING(pos, me)); no consumer reads it
        // before FULL, and `T` is the geometry's payload type (this function's contract).
        unsafe { slots.write(pos, value) };
        self.publish(hdr, slots, pos)
    }

    /// Push `*value`, copying it once, straight into the slot (the path of large payloads).
    ///
    /// # Safety
    /// As for [`push`](Self::push).
    #[inline(always)]
    pub(crate) unsafe fn push_from<T: Pod>(
        &self,
        hdr: &Header,
        slots: &Slots,
        value: &T,
        gone: impl Fn(usize) -> bool,
    ) -> Result<(), Error> {
        let pos = self.claim(hdr, slots, gone)?;
        // SAFETY: as in `push`.
        unsafe { slots.write_from(pos, value) };
        self.publish(hdr, slots, pos)
    }

    /// Claim the next free position for writing: its slot becomes WRITING(pos, me) and is
    /// ours until [`publish`](Self::publish) or [`abandon`](Self::abandon). `gone` as for
    /// [`push`](Self::push).
    #[inline]
    pub(crate) fn claim(
        &self,
        hdr: &Header,
        slots: &Slots,
        gone: impl Fn(usize) -> bool,
    ) -> Result<u64, Error> {
        let cap = self.capacity as i64;
        let mut pos = hdr.tail.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            let cell = slots.stamp(pos);
            // Relaxed: the claiming CAS below, which reads the same value, carries the Acquire.
            let seen = cell.load(Ordering::Relaxed);
            let (sp, owner, state) = decode(seen);
            match dist(sp, pos) {
                0 if state == FREE => {
                    let mine = stamp(pos, self.me, WRITING);
                    // SYNC POINT (slot-free): Acquire, pairs with the consumer's Release CAS
                    // that freed the slot (or a repairer's or an abandoning producer's
                    // AcqRel/Release): the old payload's read (or write) is done before we
                    // overwrite it.
                    if cell
                        .compare_exchange(seen, mine, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        Self::advance(&hdr.tail, pos);
                        return Ok(pos);
                    }
                }
                // Position `pos` was claimed by someone else, or the hint is behind.
                d if d >= 0 => Self::advance(&hdr.tail, pos),
                // The previous lap still holds the slot: full, unless its holder died.
                d if d == -cap => {
                    let stuck = state == WRITING || state == READING;
                    if !(stuck && self.repair_if_gone(cell, seen, owner, &gone)) {
                        return Err(Error::WouldBlock);
                    }
                }
                _ => return Err(Error::Broken),
            }
            pos = hdr.tail.load(Ordering::Relaxed);
        }
        Err(Error::WouldBlock)
    }

    /// Publish the slot of position `pos`, claimed by us and written since.
    #[inline(always)]
    pub(crate) fn publish(&self, hdr: &Header, slots: &Slots, pos: u64) -> Result<(), Error> {
        // SYNC POINT (publish): Release, pairs with the consumer's Acquire CAS FULL -> READING.
        // If it fails, a repairer took the slot from us (our entry was marked gone, which only
        // corruption of the shared memory does to a live endpoint): the message was not sent.
        if slots
            .stamp(pos)
            .compare_exchange(
                stamp(pos, self.me, WRITING),
                stamp(pos, self.me, FULL),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(Error::Broken);
        }
        hdr.data_bell.notify();
        Ok(())
    }

    /// Give back a claimed position without publishing it (a dropped loan): its slot goes to
    /// the next lap, as a repairer would free it, without waiting for anyone to find us dead.
    /// Consumers skip the position; nothing of it is delivered.
    pub(crate) fn abandon(&self, hdr: &Header, slots: &Slots, pos: u64) {
        // SYNC POINT (slot-free): Release, pairs with the next lap producer's Acquire claiming
        // CAS: our writes into the slot are done before it writes. Fails only if a repairer
        // freed the slot already (corruption marked us gone): nothing left to do then.
        let _ = slots.stamp(pos).compare_exchange(
            stamp(pos, self.me, WRITING),
            stamp(pos.wrapping_add(self.capacity), 0, FREE),
            Ordering::Release,
            Ordering::Relaxed,
        );
        // A consumer waiting at this position, or a producer waiting for the slot, may be
        // asleep: let them look again.
        hdr.data_bell.notify();
        hdr.space_bell.notify();
    }

    /// Pop one value if one is ready.
    ///
    /// # Safety
    /// As for [`push`](Self::push).
    #[inline(always)]
    pub(crate) unsafe fn pop<T: Pod>(
        &self,
        hdr: &Header,
        slots: &Slots,
        gone: impl Fn(usize) -> bool,
    ) -> Result<T, Error> {
        let pos = self.take(hdr, slots, gone)?;
        // SAFETY: the take made this slot ours (READING(pos, me)); no producer writes it until
        // we free it, and `T` is the payload type (this function's contract).
        let value = unsafe { slots.read(pos) };
        // If the free fails, a repairer freed the slot while we read it (our entry was marked
        // gone: only corruption does that to a live endpoint), so a producer may have been
        // writing it: the value may be torn and is not delivered.
        self.free(hdr, slots, pos)?;
        Ok(value)
    }

    /// Pop one value into `out`, copying it once, straight out of the slot (the path of large
    /// payloads). On an error `out` may hold a torn copy: do not use it.
    ///
    /// # Safety
    /// As for [`push`](Self::push).
    #[inline(always)]
    pub(crate) unsafe fn pop_into<T: Pod>(
        &self,
        hdr: &Header,
        slots: &Slots,
        out: &mut std::mem::MaybeUninit<T>,
        gone: impl Fn(usize) -> bool,
    ) -> Result<(), Error> {
        let pos = self.take(hdr, slots, gone)?;
        // SAFETY: as in `pop`.
        unsafe { slots.read_into(pos, out) };
        self.free(hdr, slots, pos)
    }

    /// Take the next published position for reading: its slot becomes READING(pos, me) and is
    /// ours until [`free`](Self::free). `gone` as for [`push`](Self::push).
    #[inline]
    pub(crate) fn take(
        &self,
        hdr: &Header,
        slots: &Slots,
        gone: impl Fn(usize) -> bool,
    ) -> Result<u64, Error> {
        let cap = self.capacity as i64;
        let mut pos = hdr.head.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            let cell = slots.stamp(pos);
            let seen = cell.load(Ordering::Relaxed);
            let (sp, owner, state) = decode(seen);
            match (dist(sp, pos), state) {
                (0, FULL) => {
                    let mine = stamp(pos, self.me, READING);
                    // SYNC POINT (publish): Acquire, pairs with the producer's Release CAS
                    // WRITING -> FULL: the payload is complete.
                    if cell
                        .compare_exchange(seen, mine, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        Self::advance(&hdr.head, pos);
                        return Ok(pos);
                    }
                }
                // Not produced yet.
                (0, FREE) => return Err(Error::WouldBlock),
                // Being written: wait, unless the writer died (then that message is lost).
                (0, WRITING) => {
                    if !self.repair_if_gone(cell, seen, owner, &gone) {
                        return Err(Error::WouldBlock);
                    }
                }
                // Another consumer has it (repair it if that consumer died), or the hint is
                // behind: move on.
                (0, READING) => {
                    self.repair_if_gone(cell, seen, owner, &gone);
                    Self::advance(&hdr.head, pos);
                }
                (d, _) if d > 0 => Self::advance(&hdr.head, pos),
                // The previous lap's consumer is still reading, so `pos` is not produced yet;
                // free the slot if that consumer died.
                (d, READING) if d == -cap => {
                    if !self.repair_if_gone(cell, seen, owner, &gone) {
                        return Err(Error::WouldBlock);
                    }
                }
                _ => return Err(Error::Broken),
            }
            pos = hdr.head.load(Ordering::Relaxed);
        }
        Err(Error::WouldBlock)
    }

    /// Free the slot of position `pos`, taken by us and read, for the next lap. `Broken` if a
    /// repairer freed it first (see [`pop`](Self::pop)).
    #[inline(always)]
    pub(crate) fn free(&self, hdr: &Header, slots: &Slots, pos: u64) -> Result<(), Error> {
        // SYNC POINT (slot-free): Release, pairs with the producer's Acquire claiming CAS: our
        // read is done before the slot is reused.
        if slots
            .stamp(pos)
            .compare_exchange(
                stamp(pos, self.me, READING),
                stamp(pos.wrapping_add(self.capacity), 0, FREE),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(Error::Broken);
        }
        hdr.space_bell.notify();
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_distances_wrap() {
        let s = stamp(12345, 17, READING);
        assert_eq!(decode(s), (12345, 17, READING));
        assert_eq!(dist(5, 5), 0);
        assert_eq!(dist(3, 5), -2);
        assert_eq!(dist(0, POS_MASK), 1, "56-bit wrap-around");
        assert_eq!(dist(decode(stamp(u64::MAX, 0, FREE)).0, u64::MAX), 0);
    }
}
