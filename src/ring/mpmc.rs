//! A bounded multi-producer multi-consumer ring with per-slot stamps (after Vyukov), made safe
//! against processes that die mid-operation.
//!
//! Every slot starts with a 64-bit stamp, changed only by CAS:
//!
//! ```text
//!  63                    16 15       8 7        2 1   0
//! +------------------------+----------+----------+-----+
//! |  lap position p (48)   |  gen (8) |  owner   |state|
//! +------------------------+----------+----------+-----+
//! FREE(p)           the slot waits for the producer of position p
//! WRITING(p, o, g)  endpoint o (generation g of its place) claimed p and is copying it in
//! FULL(p)           the payload of position p is complete
//! READING(p, o, g)  endpoint o (generation g) claimed p and is copying it out
//! ```
//!
//! A producer claims position `p` with a CAS FREE(p) -> WRITING(p, me), which records who
//! holds the slot in the same atomic step, then publishes with a CAS WRITING(p, me) -> FULL(p).
//! FULL carries no owner, so that a waiting consumer can CAS from it without loading it first
//! ([`Ring::take`]); a FULL stamp with an owner, as producers stored it before, is taken the
//! same way after a load. A consumer claims with FULL(p) -> READING(p, me) and frees the slot
//! for the next lap with READING(p, me) -> FREE(p + capacity). The shared `tail` and `head` are only hints
//! of the next position to try: whoever takes a position, or sees it taken, stores the next one
//! (racing stores may move a hint back; the stamps, not the hints, decide).
//!
//! `owner` is the holder's place in the endpoint table and `gen` the low 8 bits of that
//! place's generation (`endpoint.rs`): places are reused, and a slot stamped by an occupant
//! that has since left must never be taken for the new occupant's (it would wait for ever on a
//! slot that nobody will finish), nor a repair decided on the old occupant's slot be applied to
//! one the new occupant stamped (the CAS compares the generation too).
//!
//! Crash safety: if the owner of a WRITING or READING slot is gone (its endpoint was reaped as
//! dead, or detached, or its place has another generation now), whoever finds the slot repairs
//! it: a WRITING slot with a CAS to FREE(p + capacity), so that position's message is lost and a
//! half-written payload is never delivered; a READING slot with a CAS back to FULL(p), so the
//! message a consumer died holding is delivered again (at least once), and the `head` hint is
//! moved back to it so that the next consumer finds it at once. A repair and a late
//! publish or free are CASes from the same stamp, so they cannot both succeed. A new endpoint
//! sweeps the ring for such slots when it attaches ([`Ring::sweep`]), so a consumer killed
//! holding a message hands it to the next one without waiting for the ring to come round.
//!
//! One step, for payloads of up to 8 bytes: a slot is then 16 bytes, the stamp and one payload
//! word, and on x86-64 one `lock cmpxchg16b` can change both ([`Slots::cas_pair`]). A `send`
//! goes from FREE(p) to FULL(p) with its payload in one CAS ([`Ring::push_pair`]), and a `recv`
//! from FULL(p) to FREE(p + capacity) while reading the payload and setting it to 0
//! ([`Ring::pop_pair`]). There is no WRITING or READING state in between, so a process killed
//! at any instruction leaves nothing to repair (and a consumer killed in a `recv` has either
//! not taken the message or taken it whole). These are the claim-and-publish and the
//! take-and-free transitions made at once, CASes from the same stamps, so they share the ring
//! with the two-step paths (loans and references, which hold a slot, and the untyped API): a
//! one-step send and a loan's claim cannot both take FREE(p), nor a one-step receive and a
//! reference both take FULL(p). Payloads of 8 bytes or less pass 4 locked instructions a
//! message down to 2; measured, the 1x1 stream about 2x faster and the round trip from 1.5x
//! SPSC's to 1.3x (README, "One step for payloads of up to 8 bytes").
//!
//! Nothing read from a stamp is trusted: the slot index is always masked, and a stamp that fits
//! no state of the protocol makes the operation report [`Error::Broken`].

use bytemuck::Pod;

use super::Slots;
use super::spsc::Error;
use crate::layout::Header;
use crate::sync::{AtomicU64, Ordering};
use crate::wait::NotifyFence;

pub(crate) const FREE: u64 = 0;
pub(crate) const WRITING: u64 = 1;
pub(crate) const FULL: u64 = 2;
pub(crate) const READING: u64 = 3;
const POS_BITS: u32 = 48;
const POS_MASK: u64 = (1 << POS_BITS) - 1;

/// Give up a push or pop after this many retries (another endpoint keeps winning, or a hostile
/// peer keeps moving the hints) and report "would block"; the caller's wait loop retries.
const RETRIES: usize = 1 << 16;

/// The stamp of position `pos` in `state`, held by endpoint `owner` of generation `generation`.
pub(crate) fn stamp(pos: u64, owner: usize, generation: u8, state: u64) -> u64 {
    ((pos & POS_MASK) << 16) | (u64::from(generation) << 8) | (((owner as u64) & 63) << 2) | state
}

/// A stamp taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decoded {
    /// The lap position (48 bits).
    pos: u64,
    owner: usize,
    generation: u8,
    state: u64,
}

fn decode(s: u64) -> Decoded {
    Decoded {
        pos: s >> 16,
        owner: ((s >> 2) & 63) as usize,
        generation: (s >> 8) as u8,
        state: s & 3,
    }
}

/// Signed distance from `pos` to a stamp's 48-bit position.
fn dist(stamp_pos: u64, pos: u64) -> i64 {
    ((stamp_pos.wrapping_sub(pos) & POS_MASK) << 16) as i64 >> 16
}

/// Initialise the stamps of a new ring: slot `i` waits for position `i`.
pub(crate) fn init(slots: &Slots, capacity: u64) {
    for i in 0..capacity {
        // Relaxed: published by the header's ready flag (Release).
        slots
            .stamp(i)
            .store(stamp(i, 0, 0, FREE), Ordering::Relaxed);
    }
}

/// One endpoint's view of the ring.
pub(crate) struct Ring {
    capacity: u64,
    /// Our endpoint index, recorded in the stamps we claim.
    me: usize,
    /// The low 8 bits of our place's generation, recorded beside `me`.
    generation: u8,
    /// The fence our notifies use.
    fence: NotifyFence,
    /// Whether copies of payloads of up to 8 bytes go in and out in one step
    /// ([`Slots::pairs`]; see [`push_pair`](Self::push_pair)).
    pairs: bool,
}

impl Ring {
    pub(crate) fn new(capacity: u64, me: usize, generation: u8, pairs: bool) -> Ring {
        Ring {
            capacity,
            me,
            generation,
            fence: NotifyFence::now(),
            pairs,
        }
    }

    /// Does `T` go through the one-step paths on a ring that [`pairs`](Self::pairs)? Every
    /// payload type of such a ring fits in its 8-byte word. (Under loom, only rings of
    /// 8-aligned payloads pair: see `mpmc::Shared::new`.)
    #[inline(always)]
    fn pair_type<T: Pod>(&self) -> bool {
        self.pairs && size_of::<T>() <= 8
    }

    /// A compare-and-swap of a slot's stamp (every change of a stamp in this ring goes through
    /// here or [`Slots::cas_pair`]). Under loom, on a ring that pairs, it takes the mutex that
    /// models the 16-byte CAS, so that the model's pair operations are atomic with respect to
    /// the two-step ones, as `cmpxchg16b` is with respect to 8-byte locked instructions. (The
    /// mutex also orders those CASes with each other, whatever ordering they declare: the
    /// models of such rings check atomicity, not orderings; the `u32` models check those.)
    #[inline(always)]
    fn cas(
        &self,
        cell: &crate::sync::AtomicU64,
        current: u64,
        new: u64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        #[cfg(loom)]
        let _pair = self.pairs.then(crate::sync::pair_lock);
        cell.compare_exchange(current, new, success, failure)
    }

    /// A stamp of ours.
    #[inline(always)]
    fn mine(&self, pos: u64, state: u64) -> u64 {
        stamp(pos, self.me, self.generation, state)
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

    /// Repair a slot whose holder (the stamp `seen`, WRITING or READING) is another endpoint
    /// that is `gone` (see the module docs): WRITING goes to FREE for the next lap (the message
    /// is lost), READING back to FULL (the message is delivered again) with the `head` hint
    /// moved back to it. Returns whether the holder was gone (the caller then reloads the
    /// stamp, whichever repairer's CAS won); otherwise the holder may still finish and the
    /// caller waits.
    fn repair_if_gone(
        &self,
        hdr: &Header,
        cell: &AtomicU64,
        seen: u64,
        gone: &impl Fn(usize, u8) -> bool,
    ) -> bool {
        let d = decode(seen);
        let repairable =
            (d.owner, d.generation) != (self.me, self.generation) && gone(d.owner, d.generation);
        if repairable {
            let to = if d.state == READING {
                stamp(d.pos, 0, 0, FULL)
            } else {
                stamp(d.pos.wrapping_add(self.capacity), 0, 0, FREE)
            };
            // AcqRel: Acquire so the dead holder's accesses (and a late owner's, after
            // corruption) are ordered before ours; Release so the endpoint that claims the
            // repaired slot (Acquire) sees it handed over. A READING slot made FULL again
            // still holds the payload its producer published (Release, which our Acquire
            // here extends to the next taker).
            if self
                .cas(cell, seen, to, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
                && d.state == READING
            {
                Self::rewind(&hdr.head, d.pos);
                // A consumer may be asleep, having found the ring empty.
                hdr.data_bell.notify_as(self.fence);
            }
        }
        repairable
    }

    /// Move the `head` hint back to `pos` (a message there was handed back), unless it is
    /// already at or before it (in 48-bit lap positions, as the stamps count). Relaxed: a hint.
    #[cold]
    fn rewind(hint: &AtomicU64, pos: u64) {
        let mut cur = hint.load(Ordering::Relaxed);
        while dist(pos, cur & POS_MASK) < 0 {
            // The full 64-bit hint with its low 48 bits set back to `pos`.
            let to = cur.wrapping_sub(((cur & POS_MASK).wrapping_sub(pos)) & POS_MASK);
            match hint.compare_exchange(cur, to, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Repair every slot in the ring held by an endpoint that is `gone` (see
    /// [`repair_if_gone`](Self::repair_if_gone)): what a new endpoint does when it attaches, so
    /// that a message a consumer died holding goes to the next consumer now rather than when
    /// the ring comes round to it. Attaching already costs a pass over the region; this reads
    /// one stamp per slot.
    #[cold]
    pub(crate) fn sweep(&self, hdr: &Header, slots: &Slots, gone: impl Fn(usize, u8) -> bool) {
        for i in 0..self.capacity {
            let cell = slots.stamp(i);
            // Relaxed: the repairing CAS, from this value, carries the ordering.
            let seen = cell.load(Ordering::Relaxed);
            let state = decode(seen).state;
            if state == WRITING || state == READING {
                self.repair_if_gone(hdr, cell, seen, &gone);
            }
        }
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
        gone: impl Fn(usize, u8) -> bool,
    ) -> Result<(), Error> {
        if self.pair_type::<T>() {
            // SAFETY: the ring pairs (`pair_type`).
            return unsafe { self.push_pair(hdr, slots, to_word(value), gone) };
        }
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
        gone: impl Fn(usize, u8) -> bool,
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
        gone: impl Fn(usize, u8) -> bool,
    ) -> Result<u64, Error> {
        let mut pos = hdr.tail.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            let cell = slots.stamp(pos);
            // Claim without loading first: a free slot holds FREE(pos) with no owner (`init`,
            // `free`, a repair and an abandon all store it so), and a CAS straight from it
            // takes the line for writing in one transfer, where a load and then a CAS fetch it
            // shared and then upgrade it. A failed CAS is the load (its value, Relaxed).
            // SYNC POINT (slot-free): Acquire, pairs with the consumer's Release CAS that freed
            // the slot (or a repairer's or an abandoning producer's AcqRel/Release): the old
            // payload's read (or write) is done before we overwrite it.
            let seen = match self.cas(
                cell,
                stamp(pos, 0, 0, FREE),
                self.mine(pos, WRITING),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    Self::advance(&hdr.tail, pos);
                    return Ok(pos);
                }
                Err(seen) => seen,
            };
            if Self::full_at(seen, pos, self.capacity) {
                return Err(Error::WouldBlock);
            }
            self.missed_claim(hdr, cell, seen, pos, &gone)?;
            pos = hdr.tail.load(Ordering::Relaxed);
        }
        Err(Error::WouldBlock)
    }

    /// Does `seen` say the ring is full at `pos`: the previous lap's message, not yet taken?
    /// The waiting producer's case, kept out of [`missed_claim`](Self::missed_claim), whose
    /// reference to `gone` would put the closure on the stack at every try.
    #[inline(always)]
    fn full_at(seen: u64, pos: u64, capacity: u64) -> bool {
        let d = decode(seen);
        d.state == FULL && dist(d.pos, pos) == -(capacity as i64)
    }

    /// What a producer does when the slot of position `pos` holds `seen`, not FREE(pos): `Ok`
    /// to look again at the `tail` hint, or the error to report. Shared by
    /// [`claim`](Self::claim) and the one-step send ([`push_pair`](Self::push_pair)).
    #[inline(always)]
    fn missed_claim(
        &self,
        hdr: &Header,
        cell: &AtomicU64,
        seen: u64,
        pos: u64,
        gone: &impl Fn(usize, u8) -> bool,
    ) -> Result<(), Error> {
        let Decoded { pos: sp, state, .. } = decode(seen);
        match dist(sp, pos) {
            // FREE(pos) with owner bits: no state of the protocol (a free slot would have been
            // taken): the memory was written by something else.
            0 if state == FREE => Err(Error::Broken),
            // Position `pos` was claimed by someone else, or the hint is behind.
            d if d >= 0 => {
                Self::advance(&hdr.tail, pos);
                Ok(())
            }
            // The previous lap still holds the slot: full, unless its holder died (a dead
            // consumer's message goes back to FULL, and the ring stays full until another
            // consumer takes it).
            d if d == -(self.capacity as i64) => {
                let stuck = state == WRITING || state == READING;
                if stuck && self.repair_if_gone(hdr, cell, seen, gone) {
                    Ok(())
                } else {
                    Err(Error::WouldBlock)
                }
            }
            _ => Err(Error::Broken),
        }
    }

    /// Publish the slot of position `pos`, claimed by us and written since.
    #[inline(always)]
    pub(crate) fn publish(&self, hdr: &Header, slots: &Slots, pos: u64) -> Result<(), Error> {
        // SYNC POINT (publish): Release, pairs with the consumer's Acquire CAS FULL -> READING.
        // If it fails, a repairer took the slot from us (our entry was marked gone, which only
        // corruption of the shared memory does to a live endpoint): the message was not sent.
        if self
            .cas(
                slots.stamp(pos),
                self.mine(pos, WRITING),
                stamp(pos, 0, 0, FULL),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(Error::Broken);
        }
        hdr.data_bell.notify_as(self.fence);
        Ok(())
    }

    /// Give back a claimed position without publishing it (a dropped loan): its slot goes to
    /// the next lap, as a repairer would free it, without waiting for anyone to find us dead.
    /// Consumers skip the position; nothing of it is delivered.
    pub(crate) fn abandon(&self, hdr: &Header, slots: &Slots, pos: u64) {
        // SYNC POINT (slot-free): Release, pairs with the next lap producer's Acquire claiming
        // CAS: our writes into the slot are done before it writes. Fails only if a repairer
        // freed the slot already (corruption marked us gone): nothing left to do then.
        let _ = self.cas(
            slots.stamp(pos),
            self.mine(pos, WRITING),
            stamp(pos.wrapping_add(self.capacity), 0, 0, FREE),
            Ordering::Release,
            Ordering::Relaxed,
        );
        // A consumer waiting at this position, or a producer waiting for the slot, may be
        // asleep: let them look again.
        hdr.data_bell.notify_as(self.fence);
        hdr.space_bell.notify_as(self.fence);
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
        eager: bool,
        gone: impl Fn(usize, u8) -> bool,
    ) -> Result<T, Error> {
        if self.pair_type::<T>() {
            // SAFETY: the ring pairs (`pair_type`).
            return unsafe { self.pop_pair(hdr, slots, gone) }.map(from_word);
        }
        let pos = self.take(hdr, slots, eager, gone)?;
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
        eager: bool,
        gone: impl Fn(usize, u8) -> bool,
    ) -> Result<(), Error> {
        let pos = self.take(hdr, slots, eager, gone)?;
        // SAFETY: as in `pop`.
        unsafe { slots.read_into(pos, out) };
        self.free(hdr, slots, pos)
    }

    /// Take the next published position for reading: its slot becomes READING(pos, me) and is
    /// ours until [`free`](Self::free). `gone` as for [`push`](Self::push).
    ///
    /// `eager`: try the claiming CAS from FULL(pos) before loading the stamp, as a producer's
    /// claim does (publishes and repairs store FULL with no owner, so the CAS can name it).
    /// The consumer's wait loop asks for it: the CAS fetches the slot's line for writing in
    /// one transfer when the message has come, where a load fetches it shared and the CAS
    /// then upgrades it, a second transfer on the round trip's path (MPMC round trip 1.6x
    /// SPSC's with loads, 1.4x with eager CASes, in the faster of the VM's two speeds:
    /// `cargo bench --bench latency -- --ratios`).
    /// A failed CAS is the load. The first attempt of a receive does not ask for it: a CAS
    /// that finds the ring empty takes the line from the producer about to write it. Nor do
    /// probing attempts (one per `PROBE_INTERVAL` of a wait), among them the last pop once
    /// every sender is gone: that pop must see what they published through the entries'
    /// detach (Release, read with Acquire). With an eager CAS there, every interleaving
    /// loom ran read the newest stamp anyway, and the models no longer noticed the detach's
    /// ordering missing (the mutant `detach: CAS AcqRel -> Relaxed` survived); with a load,
    /// `exactly_once_one_consumer` catches it again.
    #[inline]
    pub(crate) fn take(
        &self,
        hdr: &Header,
        slots: &Slots,
        eager: bool,
        gone: impl Fn(usize, u8) -> bool,
    ) -> Result<u64, Error> {
        let cap = self.capacity as i64;
        let mut pos = hdr.head.load(Ordering::Relaxed);
        for i in 0..RETRIES {
            let cell = slots.stamp(pos);
            let seen = if eager && i == 0 {
                // SYNC POINT (publish): Acquire, pairs with the producer's Release CAS
                // WRITING -> FULL (or a repairer's AcqRel READING -> FULL), as below.
                match self.cas(
                    cell,
                    stamp(pos, 0, 0, FULL),
                    self.mine(pos, READING),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        Self::advance(&hdr.head, pos);
                        return Ok(pos);
                    }
                    Err(seen) => seen,
                }
            } else {
                cell.load(Ordering::Relaxed)
            };
            let Decoded { pos: sp, state, .. } = decode(seen);
            match (dist(sp, pos), state) {
                (0, FULL) => {
                    let mine = self.mine(pos, READING);
                    // SYNC POINT (publish): Acquire, pairs with the producer's Release CAS
                    // WRITING -> FULL (or a repairer's AcqRel READING -> FULL): the payload is
                    // complete.
                    if self
                        .cas(cell, seen, mine, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        Self::advance(&hdr.head, pos);
                        return Ok(pos);
                    }
                }
                // A message of the previous lap handed back by a repair (its consumer died)
                // after the hint had passed it: take it now (the hint stays where it is).
                (d, FULL) if d == -cap => {
                    let back = pos.wrapping_sub(self.capacity);
                    // SYNC POINT (publish): Acquire, pairs with the repairer's AcqRel CAS.
                    if self
                        .cas(
                            cell,
                            seen,
                            self.mine(back, READING),
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        return Ok(back);
                    }
                }
                // Not produced yet: the waiting consumer's case, kept out of `missed_take`, whose
                // reference to `gone` would put the closure on the stack at every try.
                (0, FREE) => return Err(Error::WouldBlock),
                _ => self.missed_take(hdr, cell, seen, pos, &gone)?,
            }
            pos = hdr.head.load(Ordering::Relaxed);
        }
        Err(Error::WouldBlock)
    }

    /// What a consumer does when the slot of position `pos` holds `seen`, which is not a
    /// message to take (neither FULL(pos) nor a handed-back FULL of the previous lap): `Ok` to
    /// look again at the `head` hint, or the error to report. Shared by [`take`](Self::take)
    /// and the one-step receive ([`pop_pair`](Self::pop_pair)).
    #[inline(always)]
    fn missed_take(
        &self,
        hdr: &Header,
        cell: &AtomicU64,
        seen: u64,
        pos: u64,
        gone: &impl Fn(usize, u8) -> bool,
    ) -> Result<(), Error> {
        let Decoded { pos: sp, state, .. } = decode(seen);
        match (dist(sp, pos), state) {
            // Not produced yet.
            (0, FREE) => Err(Error::WouldBlock),
            // Being written: wait, unless the writer died (then that message is lost).
            (0, WRITING) => {
                if self.repair_if_gone(hdr, cell, seen, gone) {
                    Ok(())
                } else {
                    Err(Error::WouldBlock)
                }
            }
            // Another consumer has it: move on, unless that consumer died (then the message is
            // FULL again, and we look at it again).
            (0, READING) => {
                if !self.repair_if_gone(hdr, cell, seen, gone) {
                    Self::advance(&hdr.head, pos);
                }
                Ok(())
            }
            (d, _) if d > 0 => {
                Self::advance(&hdr.head, pos);
                Ok(())
            }
            // The previous lap's consumer is still reading, so `pos` is not produced yet;
            // unless that consumer died: then its message is handed back (FULL), and taken as
            // the caller's previous-lap case.
            (d, READING) if d == -(self.capacity as i64) => {
                if self.repair_if_gone(hdr, cell, seen, gone) {
                    Ok(())
                } else {
                    Err(Error::WouldBlock)
                }
            }
            _ => Err(Error::Broken),
        }
    }

    /// Free the slot of position `pos`, taken by us and read, for the next lap. `Broken` if a
    /// repairer freed it first (see [`pop`](Self::pop)).
    #[inline(always)]
    pub(crate) fn free(&self, hdr: &Header, slots: &Slots, pos: u64) -> Result<(), Error> {
        // SYNC POINT (slot-free): Release, pairs with the producer's Acquire claiming CAS: our
        // read is done before the slot is reused.
        if self
            .cas(
                slots.stamp(pos),
                self.mine(pos, READING),
                stamp(pos.wrapping_add(self.capacity), 0, 0, FREE),
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return Err(Error::Broken);
        }
        hdr.space_bell.notify_as(self.fence);
        Ok(())
    }
}

impl Ring {
    /// Send one word in one step: the slot of the next free position goes from FREE(pos) to
    /// FULL(pos) with the payload `word`, in one 16-byte CAS ([`Slots::cas_pair`]). There is no
    /// WRITING state, so a producer killed at any instruction leaves nothing to repair.
    ///
    /// It makes the same transition as a claim and a publish, from the same stamp, so it can
    /// share the ring with producers that go in two steps (loans): only one of them takes a
    /// free slot. The payload word the CAS expects is 0, what [`pop_pair`](Self::pop_pair)
    /// leaves; a slot freed in two steps holds the last payload, which the failed CAS returns
    /// and the next try expects.
    ///
    /// # Safety
    /// The ring's slots must pair ([`Slots::pairs`]).
    #[inline(always)]
    unsafe fn push_pair(
        &self,
        hdr: &Header,
        slots: &Slots,
        word: u64,
        gone: impl Fn(usize, u8) -> bool,
    ) -> Result<(), Error> {
        let mut pos = hdr.tail.load(Ordering::Relaxed);
        let mut expect = 0;
        for _ in 0..RETRIES {
            let free = stamp(pos, 0, 0, FREE);
            // SYNC POINT (slot-free and publish, in one step): a locked instruction, a full
            // barrier. Slot-free: ordered after the consumer's freeing CAS (pair or Release),
            // so its read of the old payload is done. Publish: the payload is in the slot in
            // the same atomic step as FULL, for a pair receive, and before FULL for a consumer
            // that takes it in two steps (Acquire CAS, then its copy).
            // SAFETY: the ring pairs (this function's contract).
            match unsafe { slots.cas_pair(pos, (free, expect), (stamp(pos, 0, 0, FULL), word)) } {
                Ok(()) => {
                    Self::advance(&hdr.tail, pos);
                    hdr.data_bell.notify_as(self.fence);
                    return Ok(());
                }
                // Free, with another payload word than expected: try again with it.
                Err((seen, now)) if seen == free => {
                    expect = now;
                    continue;
                }
                Err((seen, _)) if Self::full_at(seen, pos, self.capacity) => {
                    return Err(Error::WouldBlock);
                }
                Err((seen, _)) => self.missed_claim(hdr, slots.stamp(pos), seen, pos, &gone)?,
            }
            pos = hdr.tail.load(Ordering::Relaxed);
            expect = 0;
        }
        Err(Error::WouldBlock)
    }

    /// Receive one word in one step: the slot of the next published position goes from
    /// FULL(pos) to FREE(pos + capacity), with its payload word read and set to 0, in one
    /// 16-byte CAS. There is no READING state: a consumer killed at any instruction has either
    /// not taken the message (it stays FULL for the next) or taken it whole.
    ///
    /// A waiting consumer loads the stamp before the CAS, whatever `take`'s eager path does:
    /// measured, a CAS that keeps taking the slot's line while the producer wants it made the
    /// round trip no faster than the two-step one, and a load made it 1.3x SPSC's instead of
    /// 1.5x (`cargo bench --bench latency -- --ratios`).
    ///
    /// # Safety
    /// The ring's slots must pair ([`Slots::pairs`]).
    #[inline(always)]
    unsafe fn pop_pair(
        &self,
        hdr: &Header,
        slots: &Slots,
        gone: impl Fn(usize, u8) -> bool,
    ) -> Result<u64, Error> {
        let cap = self.capacity as i64;
        let mut pos = hdr.head.load(Ordering::Relaxed);
        for _ in 0..RETRIES {
            let cell = slots.stamp(pos);
            // Relaxed: the pair CAS that takes the message carries the ordering. The payload
            // word is read beside the stamp (one line), as the CAS's guess.
            let seen = cell.load(Ordering::Relaxed);
            let word = slots.payload_guess(pos);
            let Decoded { pos: sp, state, .. } = decode(seen);
            match (dist(sp, pos), state) {
                (0, FULL) => {
                    let free = stamp(pos.wrapping_add(self.capacity), 0, 0, FREE);
                    // SAFETY: the ring pairs (this function's contract).
                    if let Some(word) = unsafe { Self::consume_pair(slots, pos, seen, word, free) }
                    {
                        Self::advance(&hdr.head, pos);
                        hdr.space_bell.notify_as(self.fence);
                        return Ok(word);
                    }
                }
                // A message of the previous lap handed back by a repair (its consumer died)
                // after the hint had passed it: take it now (the hint stays where it is).
                (d, FULL) if d == -cap => {
                    // SAFETY: as above.
                    let word = unsafe {
                        Self::consume_pair(slots, pos, seen, word, stamp(pos, 0, 0, FREE))
                    };
                    if let Some(word) = word {
                        hdr.space_bell.notify_as(self.fence);
                        return Ok(word);
                    }
                }
                // Not produced yet: the waiting consumer's case, kept out of `missed_take`, whose
                // reference to `gone` would put the closure on the stack at every try.
                (0, FREE) => return Err(Error::WouldBlock),
                _ => self.missed_take(hdr, cell, seen, pos, &gone)?,
            }
            pos = hdr.head.load(Ordering::Relaxed);
        }
        Err(Error::WouldBlock)
    }

    /// Take the message in the slot for `pos`, whose stamp was `full`, leaving `free` and a
    /// zero payload word: the message's word, or `None` if the stamp is no longer `full`
    /// (another consumer took it). The payload word of a FULL slot does not change, so a
    /// guess read from the slot is right at the first try unless a peer writes where it must
    /// not: then a few tries, and `None`.
    ///
    /// # Safety
    /// The ring's slots must pair ([`Slots::pairs`]).
    #[inline(always)]
    unsafe fn consume_pair(
        slots: &Slots,
        pos: u64,
        full: u64,
        guess: u64,
        free: u64,
    ) -> Option<u64> {
        let mut expect = guess;
        for _ in 0..4 {
            // SYNC POINT (publish and slot-free, in one step): a locked instruction, a full
            // barrier. Publish: ordered after the producer's pair CAS or its Release CAS to
            // FULL, so the word read here is the one published. Slot-free: the next producer's
            // pair CAS or Acquire claiming CAS comes after it, so it overwrites nothing we read.
            // SAFETY: the ring pairs (this function's contract).
            match unsafe { slots.cas_pair(pos, (full, expect), (free, 0)) } {
                Ok(()) => return Some(expect),
                Err((seen, now)) if seen == full => expect = now,
                Err(_) => return None,
            }
        }
        None
    }
}

/// A payload of up to 8 bytes as the slot's payload word holds it (its bytes first, then
/// zeros).
#[inline(always)]
fn to_word<T: Pod>(value: T) -> u64 {
    let mut w = [0u8; 8];
    w[..size_of::<T>()].copy_from_slice(bytemuck::bytes_of(&value));
    u64::from_ne_bytes(w)
}

/// The payload of up to 8 bytes a slot's payload word holds.
#[inline(always)]
fn from_word<T: Pod>(word: u64) -> T {
    bytemuck::pod_read_unaligned(&word.to_ne_bytes()[..size_of::<T>()])
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_distances_wrap() {
        let s = stamp(12345, 17, 0xab, READING);
        let d = decode(s);
        assert_eq!(
            (d.pos, d.owner, d.generation, d.state),
            (12345, 17, 0xab, READING)
        );
        assert_eq!(dist(5, 5), 0);
        assert_eq!(dist(3, 5), -2);
        assert_eq!(dist(0, POS_MASK), 1, "48-bit wrap-around");
        assert_eq!(dist(decode(stamp(u64::MAX, 0, 0, FREE)).pos, u64::MAX), 0);
    }
}
