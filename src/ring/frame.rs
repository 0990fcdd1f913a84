//! A single-producer single-consumer ring of variable-size records in `capacity` bytes (a
//! power of two), after Aeron's `RingBuffer` and Lamport's ring with cached indices (rtrb).
//!
//! ```text
//!  record at position p (16-aligned)
//! +----------------+---------------+----------------------+
//! | length word    | stamp         | payload, padded      |     length word:
//! +----------------+---------------+----------------------+     bit 63 PAD, the rest the
//!   8 bytes          8 bytes: p ^ key  round16(length)            payload's length
//! ```
//!
//! The consumer does not read the producer's `tail`: like the typed ring's slots, each record
//! carries a stamp the producer stores last (with Release), and the consumer polls the stamp
//! of the record it wants, in the line its data is in (a caught-up consumer otherwise misses
//! twice per frame: `tail`, then the record). A stamp is the record's position XORed with the
//! channel's *key*, its incarnation (a per-channel random value in the header): bytes left at
//! that offset by an earlier lap's payload could otherwise pass for a stamp, and payload bytes
//! come from wherever the sender's data came from; without the key, nobody feeding the sender
//! can forge one. `tail` is still stored, for `len` and for a handle taking over a side.
//!
//! A record never wraps: when the next one does not fit before the end of the ring, the
//! producer first publishes a *padding* record (`PAD`, covering the rest of the ring), which the
//! consumer skips, and writes the record at offset 0 (once the start of the ring is free). So a
//! frame is always one contiguous slice, and a frame of up to `capacity - 16` bytes fits once
//! the ring is empty.
//!
//! Positions are `u64` byte counts that only grow; offset = position mod capacity. The
//! producer owns `tail`, the consumer `head` (each also kept in private memory, never read
//! back); each reads the other's only when its cached copy shows too little.
//!
//! - SYNC POINT (frame-publish): the producer writes a record's payload and length word, then
//!   stores its stamp with Release; the consumer loads the stamp with Acquire before reading the
//!   record.
//! - SYNC POINT (frame-free): the consumer stores `head` with Release after reading a record;
//!   the producer loads `head` with Acquire before writing over it.
//!
//! Writing is claim, then commit (Aeron's `tryClaim`/`commit`): [`Producer::claim`] finds room
//! for a record of up to `len` bytes without publishing it, the caller writes the payload in
//! place, and [`Producer::commit`] publishes the first `n <= len` bytes of it. A claim that is
//! never committed publishes nothing (a padding record it needed stays, and is skipped).
//!
//! Nothing read from shared memory is trusted: positions must satisfy
//! `0 <= tail - head <= capacity`, and a length word must describe a record that lies inside
//! the ring, before its end; otherwise the ring is [`Broken`](Error::Broken). A stamp can at
//! worst make the consumer read a record early: odd bytes, never out of bounds.

use std::cell::Cell;

use super::Bytes;
use super::spsc::Error;
use crate::layout::Header;
use crate::sync::Ordering;
use crate::wait::NotifyFence;

/// Bytes of a record's header: the length word, then the stamp.
pub(crate) const HEADER: u64 = 16;
/// The length-word bit that marks a padding record.
const PAD: u64 = 1 << 63;
/// Records start at multiples of this (so a padding record always has room for its header).
const ALIGN: u64 = 16;

/// Bytes a record of `len` payload bytes takes.
pub(crate) fn record_size(len: u64) -> u64 {
    HEADER + len.div_ceil(ALIGN) * ALIGN
}

/// Load both positions for a handle taking over a side, checking they make sense together
/// (as `ring::spsc::positions`: a `tail` behind `head` was left by a producer killed between a
/// record's stamp and `tail`, and the producer's side then starts at `head`).
fn positions(hdr: &Header, capacity: u64) -> Result<(u64, u64), Error> {
    // Acquire: as in `ring::spsc::positions`, a handle taking over a side starts from records
    // its predecessor had finished with.
    let head = hdr.head.load(Ordering::Acquire);
    let tail = hdr.tail.load(Ordering::Acquire);
    if tail % ALIGN != 0 || head % ALIGN != 0 {
        return Err(Error::Broken);
    }
    if tail.wrapping_sub(head) <= capacity {
        Ok((head, tail))
    } else if head.wrapping_sub(tail) <= capacity {
        Ok((head, head))
    } else {
        Err(Error::Broken)
    }
}

/// Room for one record, found by [`Producer::claim`]: `len` bytes of payload at position
/// `pos` (the record's header is at `pos`, its payload at `pos + 16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) pos: u64,
    pub(crate) len: u64,
}

/// The producer's private state.
pub(crate) struct Producer {
    capacity: u64,
    /// The channel's key (see the module docs).
    key: u64,
    /// Our position: where the next record goes. The shared `tail` holds it once published.
    tail: Cell<u64>,
    /// The consumer's position, as last read.
    head_cache: Cell<u64>,
    /// The fence our notifies use.
    fence: NotifyFence,
}

impl Producer {
    /// Take over the producer side, for a channel of `key`: at the shared `tail`, moved past
    /// every record a previous producer published beyond it (one killed between a record's
    /// stamp and `tail`). Each record found is checked as the consumer would check it; a bad
    /// one is [`Broken`](Error::Broken). At most `capacity / 16` records are read.
    pub(crate) fn new(
        hdr: &Header,
        bytes: &Bytes,
        capacity: u64,
        key: u64,
    ) -> Result<Producer, Error> {
        let (head, mut tail) = positions(hdr, capacity)?;
        loop {
            let used = tail.wrapping_sub(head);
            // SYNC POINT (frame-publish): Acquire, as in `peek`: a record found published is
            // complete.
            if used >= capacity
                || bytes.stamp(tail.wrapping_add(8)).load(Ordering::Acquire) != tail ^ key
            {
                break;
            }
            let left = capacity - bytes.offset(tail);
            // SAFETY: the stamp says a record was published at `tail` (a forged one only
            // makes the word odd, and it is checked below).
            let word = unsafe { bytes.read_word(tail) };
            let size = if word & PAD != 0 {
                HEADER + (word & !PAD)
            } else {
                record_size(word.min(capacity))
            };
            let ok = if word & PAD != 0 {
                size == left
            } else {
                word <= capacity - HEADER && size <= left
            };
            if !ok || used + size > capacity {
                return Err(Error::Broken);
            }
            tail = tail.wrapping_add(size);
        }
        // For `len` and the next handle's checks (Release: pairs with `positions`).
        hdr.tail.store(tail, Ordering::Release);
        Ok(Producer {
            capacity,
            key,
            tail: Cell::new(tail),
            head_cache: Cell::new(head),
            fence: NotifyFence::now(),
        })
    }

    /// The largest payload a record can have.
    pub(crate) fn max_frame(&self) -> u64 {
        self.capacity - HEADER
    }

    /// How many bytes are free for a producer at `tail`, reading the consumer's position only
    /// when the cached one shows fewer than `want`.
    #[inline(always)]
    fn room(&self, hdr: &Header, tail: u64, want: u64) -> Result<u64, Error> {
        let free = self.capacity - tail.wrapping_sub(self.head_cache.get());
        if free >= want {
            return Ok(free);
        }
        // SYNC POINT (frame-free): Acquire, pairs with the consumer's Release store of `head`
        // in `release`: its reads of the bytes we are about to overwrite are finished.
        let head = hdr.head.load(Ordering::Acquire);
        let used = tail.wrapping_sub(head);
        if used > self.capacity || head % ALIGN != 0 {
            return Err(Error::Broken);
        }
        self.head_cache.set(head);
        Ok(self.capacity - used)
    }

    /// Find room for a record of `len <= max_frame()` payload bytes, contiguous in the ring,
    /// publishing a padding record first if it would not fit before the end. `WouldBlock` if
    /// there is no room yet. Nothing of the record is published until [`commit`](Self::commit).
    ///
    /// # Safety
    /// This must be the only producer of the ring described by `hdr` and `bytes`.
    #[inline]
    pub(crate) unsafe fn claim(
        &self,
        hdr: &Header,
        bytes: &Bytes,
        len: u64,
    ) -> Result<Claim, Error> {
        debug_assert!(len <= self.max_frame());
        let mut tail = self.tail.get();
        let size = record_size(len);
        let left = self.capacity - bytes.offset(tail);
        if left < size {
            // Skip to the start of the ring: a padding record over the rest of it.
            if self.room(hdr, tail, left)? < left {
                return Err(Error::WouldBlock);
            }
            // SAFETY: `left >= HEADER` free bytes from `tail` (records are 16-aligned): no
            // record the consumer may still read.
            unsafe { bytes.write_word(tail, PAD | (left - HEADER)) };
            // SYNC POINT (frame-publish): Release, pairs with the consumer's Acquire load of
            // the stamp in `peek`: the length word is written before the stamp says so.
            bytes
                .stamp(tail.wrapping_add(8))
                .store(tail ^ self.key, Ordering::Release);
            tail = tail.wrapping_add(left);
            // For `len` and for a handle taking over a side (Release: pairs with `positions`).
            hdr.tail.store(tail, Ordering::Release);
            self.tail.set(tail);
            hdr.data_bell.notify_as(self.fence);
        }
        if self.room(hdr, tail, size)? < size {
            return Err(Error::WouldBlock);
        }
        Ok(Claim { pos: tail, len })
    }

    /// Publish the record of `claim` with its first `len <= claim.len` payload bytes, which
    /// the caller has written.
    ///
    /// # Safety
    /// `claim` is the latest claim of this producer (no record was committed since), and
    /// `len <= claim.len`.
    #[inline]
    pub(crate) unsafe fn commit(&self, hdr: &Header, bytes: &Bytes, claim: Claim, len: u64) {
        debug_assert!(len <= claim.len && claim.pos == self.tail.get());
        // SAFETY: the claim made these bytes ours (free, contiguous, not yet published).
        unsafe { bytes.write_word(claim.pos, len) };
        bytes.track_write(claim.pos.wrapping_add(HEADER), len);
        // SYNC POINT (frame-publish): Release, pairs with the consumer's Acquire load of the
        // stamp in `peek`: the payload and length word are written before the stamp says so.
        bytes
            .stamp(claim.pos.wrapping_add(8))
            .store(claim.pos ^ self.key, Ordering::Release);
        let next = claim.pos.wrapping_add(record_size(len));
        // For `len` and for a handle taking over a side (Release: pairs with `positions`).
        hdr.tail.store(next, Ordering::Release);
        self.tail.set(next);
        hdr.data_bell.notify_as(self.fence);
    }
}

/// The consumer's private state.
pub(crate) struct Consumer {
    capacity: u64,
    /// The channel's key (see the module docs).
    key: u64,
    /// Our position: the next record to read.
    head: Cell<u64>,
    /// The fence our notifies use.
    fence: NotifyFence,
}

impl Consumer {
    /// Take over the consumer side at the current shared positions, for a channel of `key`.
    pub(crate) fn new(hdr: &Header, capacity: u64, key: u64) -> Result<Consumer, Error> {
        let (head, _) = positions(hdr, capacity)?;
        Ok(Consumer {
            capacity,
            key,
            head: Cell::new(head),
            fence: NotifyFence::now(),
        })
    }

    /// The next frame, `(position, length)` of its payload, if one is published; padding
    /// records on the way are skipped (and freed). Stays the next frame until
    /// [`release`](Self::release).
    ///
    /// # Safety
    /// This must be the only consumer of the ring described by `hdr` and `bytes`.
    #[inline]
    pub(crate) unsafe fn peek(&self, hdr: &Header, bytes: &Bytes) -> Result<(u64, u64), Error> {
        loop {
            let head = self.head.get();
            // SYNC POINT (frame-publish): Acquire, pairs with the producer's Release store of
            // the stamp in `claim`/`commit`.
            if bytes.stamp(head.wrapping_add(8)).load(Ordering::Acquire) != head ^ self.key {
                return Err(Error::WouldBlock);
            }
            let left = self.capacity - bytes.offset(head);
            // SAFETY: the stamp says a record was published at `head` (or the producer broke
            // the protocol, which only makes the word odd: it is checked below).
            let word = unsafe { bytes.read_word(head) };
            if word & PAD != 0 {
                // Padding: must cover exactly the rest of the ring.
                if HEADER + (word & !PAD) != left {
                    return Err(Error::Broken);
                }
                self.free(hdr, head.wrapping_add(left));
                continue;
            }
            let size = record_size(word.min(self.capacity));
            if word > self.capacity - HEADER || size > left {
                return Err(Error::Broken);
            }
            bytes.track_read(head.wrapping_add(HEADER), word);
            return Ok((head.wrapping_add(HEADER), word));
        }
    }

    /// Free the frame [`peek`](Self::peek) returned (of `len` payload bytes): the producer may
    /// write over it.
    #[inline]
    pub(crate) fn release(&self, hdr: &Header, len: u64) {
        let next = self.head.get().wrapping_add(record_size(len));
        self.free(hdr, next);
    }

    /// Move `head` to `next` and tell the producer.
    #[inline(always)]
    fn free(&self, hdr: &Header, next: u64) {
        // SYNC POINT (frame-free): Release, pairs with the producer's Acquire load of `head`
        // in `room`: our reads of the record happen before the producer reuses its bytes.
        hdr.head.store(next, Ordering::Release);
        self.head.set(next);
        hdr.space_bell.notify_as(self.fence);
    }
}
