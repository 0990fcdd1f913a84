//! The ring algorithms, over a header reference and a slot pointer. They never learn where the
//! memory came from, so loom runs exactly this code on a heap region.

pub(crate) mod broadcast;
pub(crate) mod copy;
pub(crate) mod frame;
pub(crate) mod mpmc;
pub(crate) mod spsc;

use std::ptr::NonNull;

use bytemuck::Pod;

use crate::layout::{Geometry, Header};
use crate::region::Region;
use crate::sync::Ordering;

/// Every this many positions, a sender checks whether a probe of its receivers is due (see
/// `handle::poll_send`). A power of two, so the check is a mask of a register.
pub(crate) const CHECKPOINT: u64 = 64;

/// Does a producer moving from position `from` to `to` pass a multiple of [`CHECKPOINT`]?
#[inline(always)]
pub(crate) fn passes_checkpoint(from: u64, to: u64) -> bool {
    (from / CHECKPOINT) != (to / CHECKPOINT)
}

/// Messages in a ring as its shared positions say: a snapshot, clamped to `0..=capacity` so
/// that positions a peer corrupted cannot make it larger, nor MPMC hints that a racing store
/// moved back make it negative.
pub(crate) fn len(hdr: &Header, capacity: u64) -> usize {
    // Relaxed: a snapshot; nothing is read on the strength of it.
    let head = hdr.head.load(Ordering::Relaxed);
    let tail = hdr.tail.load(Ordering::Relaxed);
    (tail.wrapping_sub(head) as i64).clamp(0, capacity as i64) as usize
}

/// Where the slots are, from process-private validated geometry only.
pub(crate) struct Slots {
    /// Slot 0; slots `0..=mask` at `stride` bytes apart lie inside the region.
    base: NonNull<u8>,
    stride: usize,
    /// Offset of the payload in a slot (after its 8-byte stamp).
    payload_offset: usize,
    mask: u64,
    #[cfg(loom)]
    tracks: NonNull<crate::sync::SlotTrack>,
    #[cfg(loom)]
    stamps: NonNull<crate::sync::AtomicU64>,
    /// Broadcast payload words (loom only: they cannot live in the slot bytes).
    #[cfg(loom)]
    words: NonNull<crate::sync::AtomicU64>,
    /// Words of a slot's payload, padding included.
    payload_words: usize,
}

// SAFETY: `Slots` is an address range inside a region that the owning handle keeps alive; all
// access to the bytes follows the ring protocol, whichever thread the handle moves to.
unsafe impl Send for Slots {}
// SAFETY: `Slots` itself has no interior state; reads and writes of slot bytes are made by
// the ring, which orders them with the header's atomics.
unsafe impl Sync for Slots {}

impl Slots {
    /// The slots of `region` for a geometry validated against it.
    pub(crate) fn new(region: &Region, geo: &Geometry) -> Slots {
        Slots {
            base: region.slots(geo),
            stride: geo.stride,
            payload_offset: geo.payload_offset,
            mask: geo.capacity - 1,
            #[cfg(loom)]
            tracks: NonNull::from(region.slot_track(0)),
            #[cfg(loom)]
            stamps: NonNull::from(region.slot_stamp(0)),
            #[cfg(loom)]
            words: if geo.payload_words() == 0 {
                NonNull::dangling()
            } else {
                NonNull::from(region.slot_word(0, 0))
            },
            payload_words: geo.payload_words(),
        }
    }

    /// Word `i` of the payload of the slot for `pos` (broadcast slots, which are written and
    /// read word by word with atomics: a subscriber may read a slot the publisher is writing,
    /// and tells by the stamp that it must not use what it read).
    #[inline(always)]
    fn payload_word(&self, pos: u64, i: usize) -> &crate::sync::AtomicU64 {
        debug_assert!(i < self.payload_words);
        let slot = (pos & self.mask) as usize;
        #[cfg(loom)]
        {
            // SAFETY: the heap block holds `payload_words` atomics per slot, `capacity` slots
            // in a row, for as long as the region (and `self`) lives; `i < payload_words`.
            unsafe { &*self.words.as_ptr().add(slot * self.payload_words + i) }
        }
        #[cfg(not(loom))]
        {
            // SAFETY: the slot is in bounds (see `slot`), its payload starts 8-aligned and
            // spans `payload_words` words inside the stride; `i < payload_words`.
            unsafe {
                word(
                    self.base
                        .as_ptr()
                        .add(slot * self.stride + self.payload_offset),
                    i,
                )
            }
        }
    }

    /// Store `value` into the slot for `pos` word by word (Relaxed atomic stores: ordered by
    /// the stamps around them; see `ring/broadcast.rs`).
    #[inline(always)]
    pub(crate) fn store_words<T: Pod>(&self, pos: u64, value: &T) {
        for (i, chunk) in bytemuck::bytes_of(value).chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.payload_word(pos, i)
                .store(u64::from_ne_bytes(w), Ordering::Relaxed);
        }
    }

    /// Load the slot for `pos` word by word (Relaxed atomic loads; the caller checks the
    /// stamp again before using the value).
    #[inline(always)]
    pub(crate) fn load_words<T: Pod>(&self, pos: u64) -> T {
        let mut out = T::zeroed();
        for (i, chunk) in bytemuck::bytes_of_mut(&mut out).chunks_mut(8).enumerate() {
            let w = self
                .payload_word(pos, i)
                .load(Ordering::Relaxed)
                .to_ne_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
        out
    }

    /// Store `bytes`, one payload of a size known at run time (`untyped`), into the slot for
    /// `pos` with [`copy_to_shared`](copy::copy_to_shared): race-free, so it is safe whoever
    /// else reads the slot (a lapped broadcast subscriber, a peer breaking the protocol); the
    /// caller's ring protocol says when the slot is its to write and orders the bytes with the
    /// slot's stamp (as [`store_words`](Self::store_words)' stores are ordered).
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn store_bytes(&self, pos: u64, bytes: &[u8]) {
        assert!(
            bytes.len() <= self.payload_words * 8,
            "a payload larger than its slot"
        );
        // SAFETY: the payload lies inside the slot, 8-aligned, and spans `payload_words` words
        // (see `slot`), which hold `bytes.len()` rounded up to 8 (checked above); the
        // publisher owns the slot's bytes (marked as being written); `bytes` is our memory.
        unsafe { copy::copy_to_shared(self.slot(pos), bytes.as_ptr(), bytes.len()) }
    }

    /// Load the payload of the slot for `pos` into `out`, `out.len()` bytes (`untyped`), with
    /// [`copy_from_shared`](copy::copy_from_shared): race-free (a broadcast subscriber checks
    /// the stamp again before using them, as for [`load_words`](Self::load_words); an SPSC or
    /// MPMC receiver reads a slot its protocol made its own).
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn load_bytes(&self, pos: u64, out: &mut [u8]) {
        assert!(
            out.len() <= self.payload_words * 8,
            "a payload larger than its slot"
        );
        // SAFETY: as in `store_bytes`, `out.len()` bytes of the payload are in the slot; `out`
        // is the caller's memory, not the slot.
        unsafe { copy::copy_from_shared(out.as_mut_ptr(), self.slot(pos), out.len()) }
    }

    /// The largest frame a slot holds (broadcast frame topics: a slot's payload is the frame's
    /// length, one word, then its bytes).
    #[inline(always)]
    pub(crate) fn max_frame(&self) -> usize {
        (self.payload_words - 1) * 8
    }

    /// Store a frame of at most [`max_frame`](Self::max_frame) bytes into the slot for `pos`:
    /// its length in the payload's first word (a Relaxed atomic store), its bytes in the words
    /// after it with [`copy_to_shared`](copy::copy_to_shared) (race-free: a lapped subscriber
    /// may load them meanwhile), ordered by the stamps around them as
    /// [`store_words`](Self::store_words)' stores are. Bytes after the frame in its last word
    /// are not part of it (zero, or left as they were).
    #[inline]
    pub(crate) fn store_frame(&self, pos: u64, frame: &[u8]) {
        debug_assert!(frame.len() <= self.max_frame());
        self.payload_word(pos, 0)
            .store(frame.len() as u64, Ordering::Relaxed);
        #[cfg(not(loom))]
        // SAFETY: the payload's words `1..payload_words` lie inside the slot (see `slot`):
        // `max_frame >= frame.len()` bytes from word 1, which is 8-aligned, the padding to the
        // next word included; the publisher owns the slot's bytes (marked as being written);
        // `frame` is our own memory.
        unsafe {
            copy::copy_to_shared(self.slot(pos).add(8), frame.as_ptr(), frame.len());
        }
        // Under loom the payload words are loom atomics in a block of their own.
        #[cfg(loom)]
        self.store_frame_words(pos, frame);
    }

    /// [`store_frame`](Self::store_frame)'s bytes as loom atomics, word by word.
    #[cfg(loom)]
    fn store_frame_words(&self, pos: u64, frame: &[u8]) {
        let mut words = frame.chunks_exact(8);
        let mut i = 1;
        for chunk in &mut words {
            let w = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
            self.payload_word(pos, i).store(w, Ordering::Relaxed);
            i += 1;
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.payload_word(pos, i)
                .store(u64::from_ne_bytes(w), Ordering::Relaxed);
        }
    }

    /// Store the length of a frame written in place ([`frame_mut`](Self::frame_mut)) into
    /// the slot for `pos` (Relaxed, ordered as [`store_frame`](Self::store_frame)'s).
    #[inline]
    pub(crate) fn store_frame_len(&self, pos: u64, len: usize) {
        debug_assert!(len <= self.max_frame());
        self.payload_word(pos, 0)
            .store(len as u64, Ordering::Relaxed);
    }

    /// Load the frame in the slot for `pos` into `out` (its length set to the frame's) and
    /// return its length: the length word with a Relaxed atomic load, the bytes with
    /// [`copy_from_shared`](copy::copy_from_shared), race-free (the caller checks the stamp
    /// again before using them: a publisher lapping us may write them meanwhile). A length
    /// word above [`max_frame`](Self::max_frame), which only a peer breaking the protocol
    /// writes, reads as `max_frame`: odd bytes, never out of bounds.
    #[inline]
    pub(crate) fn load_frame(&self, pos: u64, out: &mut Vec<u8>) -> usize {
        let max = self.max_frame();
        let len = (self.payload_word(pos, 0).load(Ordering::Relaxed)).min(max as u64) as usize;
        #[cfg(not(loom))]
        {
            out.clear();
            out.reserve(len);
            // SAFETY: `len <= max_frame` bytes from payload word 1 lie inside the slot (see
            // `slot`); `out` has room for `len` bytes (reserved), its own allocation; after the
            // copy they are initialised.
            unsafe {
                copy::copy_from_shared(out.as_mut_ptr(), self.slot(pos).add(8), len);
                out.set_len(len);
            }
        }
        // Under loom the payload words are loom atomics in a block of their own.
        #[cfg(loom)]
        self.load_frame_words(pos, len, out);
        len
    }

    /// [`load_frame`](Self::load_frame)'s bytes from loom atomics, word by word.
    #[cfg(loom)]
    fn load_frame_words(&self, pos: u64, len: usize, out: &mut Vec<u8>) {
        let words = len.div_ceil(8);
        // Every byte below `8 * words` is written next, so the old contents need no clearing.
        out.resize(8 * words, 0);
        for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
            let w = self.payload_word(pos, 1 + i).load(Ordering::Relaxed);
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        out.truncate(len);
    }

    /// The bytes of the slot for `pos` that a frame occupies, for a loan to write in place.
    ///
    /// # Safety
    /// The caller owns the slot (marked as being written, by the only publisher) for as long
    /// as the slice lives. Subscribers lapped by the publisher may load these bytes while it
    /// writes them (with [`copy_from_shared`](copy::copy_from_shared), race-free on their
    /// side, and they throw what they load away: the stamp says the slot is being written);
    /// the slice's plain writes are still formally the other half of a race with those loads,
    /// as for the loans of typed topics.
    #[cfg(not(loom))]
    #[inline]
    #[allow(clippy::mut_from_ref)] // the slot is shared memory the ring protocol hands out
    pub(crate) unsafe fn frame_mut(&self, pos: u64) -> &mut [u8] {
        // SAFETY: the payload's words `1..payload_words` lie inside the slot (see `slot`), so
        // `max_frame` bytes from word 1 are in bounds; the caller owns them (this function's
        // contract); any bytes are valid `u8`s.
        unsafe { std::slice::from_raw_parts_mut(self.slot(pos).add(8), self.max_frame()) }
    }

    /// The same bytes as [`frame_mut`](Self::frame_mut), shared, for a loan's `Deref` (two
    /// of which may live at once, so neither may be a `&mut`).
    ///
    /// # Safety
    /// As for [`frame_mut`](Self::frame_mut).
    #[cfg(not(loom))]
    #[inline]
    pub(crate) unsafe fn frame(&self, pos: u64) -> &[u8] {
        // SAFETY: as in `frame_mut`: in bounds, owned by the caller, any bytes are `u8`s.
        unsafe { std::slice::from_raw_parts(self.slot(pos).add(8), self.max_frame()) }
    }

    /// The stamp of the slot for position `pos` (every slot starts with one).
    #[inline(always)]
    pub(crate) fn stamp(&self, pos: u64) -> &crate::sync::AtomicU64 {
        let i = (pos & self.mask) as usize;
        #[cfg(loom)]
        {
            // SAFETY: the heap region holds `capacity` stamps in a row and outlives `self`.
            unsafe { &*self.stamps.as_ptr().add(i) }
        }
        #[cfg(not(loom))]
        {
            // SAFETY: the slot is in bounds (see `slot`), starts 8-byte aligned (base is
            // 128-aligned and a stride is a multiple of 8), and its first 8 bytes are the stamp,
            // accessed only atomically by every process. `AtomicU64` accepts any bits.
            unsafe {
                &*self
                    .base
                    .as_ptr()
                    .add(i * self.stride)
                    .cast::<crate::sync::AtomicU64>()
            }
        }
    }

    /// The stamp of the slot for position `pos` of a ring whose payload type is `T`: as
    /// [`stamp`](Self::stamp), with the stride known at compile time (for small payloads a
    /// shift, where `stamp` loads the stride and multiplies), for the single-message paths.
    /// The stride is then the geometry's, by the one rule of
    /// [`slot_shape`](crate::layout::slot_shape).
    ///
    /// # Safety
    /// `T` must be the payload type the geometry was made for (every typed caller's contract);
    /// debug builds check the shape.
    #[inline(always)]
    pub(crate) unsafe fn stamp_of<T>(&self, pos: u64) -> &crate::sync::AtomicU64 {
        #[cfg(loom)]
        {
            // The stamps live apart under loom (see `stamp`); debug builds check the shape.
            debug_assert_eq!((self.payload_offset, self.stride), typed_shape::<T>());
            self.stamp(pos)
        }
        #[cfg(not(loom))]
        {
            // SAFETY: as in `stamp`: `slot_start` is in bounds and 8-aligned (this function's
            // contract is its own).
            unsafe { &*self.slot_start::<T>(pos).cast::<crate::sync::AtomicU64>() }
        }
    }

    /// The start (the stamp) of the slot for position `pos`, for payload type `T` (see
    /// [`stamp_of`](Self::stamp_of)).
    ///
    /// # Safety
    /// As for [`stamp_of`](Self::stamp_of).
    #[inline(always)]
    unsafe fn slot_start<T>(&self, pos: u64) -> *mut u8 {
        let (_, stride) = const { typed_shape::<T>() };
        debug_assert_eq!(
            (self.payload_offset, self.stride),
            typed_shape::<T>(),
            "a typed slot access for a payload type the geometry was not made for"
        );
        let i = (pos & self.mask) as usize;
        // SAFETY: `i <= mask < capacity` and `stride` is the geometry's (the callers' contract:
        // `T` is its payload type), so the slot is inside the slot array (the field's
        // invariant).
        unsafe { self.base.as_ptr().add(i * stride) }
    }

    /// The payload of the slot for position `pos`, for payload type `T`: as
    /// [`slot`](Self::slot), with the geometry known at compile time (see
    /// [`stamp_of`](Self::stamp_of)).
    ///
    /// # Safety
    /// As for [`stamp_of`](Self::stamp_of).
    #[inline(always)]
    unsafe fn slot_of<T>(&self, pos: u64) -> *mut u8 {
        let (payload_offset, _) = const { typed_shape::<T>() };
        // SAFETY: the payload lies within its slot (`slot_start`, whose contract is this
        // function's), `payload_offset` bytes in.
        unsafe { self.slot_start::<T>(pos).add(payload_offset) }
    }

    /// Can a slot's stamp and payload be changed together, with one 16-byte compare-and-swap
    /// ([`cas_pair`](Self::cas_pair))? When slots are 16 bytes, the stamp then one payload word
    /// (payloads of up to 8 bytes), 16-byte aligned, on an x86-64 CPU with `cmpxchg16b`. Under
    /// loom, when slots are 16 bytes (the pair is modelled: see `cas_pair`).
    pub(crate) fn pairs(&self) -> bool {
        if self.stride != 16 || self.payload_offset != 8 {
            return false;
        }
        #[cfg(loom)]
        return true;
        #[cfg(all(not(loom), target_arch = "x86_64"))]
        return (self.base.as_ptr() as usize) & 15 == 0
            && std::arch::is_x86_feature_detected!("cmpxchg16b");
        #[cfg(all(not(loom), not(target_arch = "x86_64")))]
        return false;
    }

    /// If the slot for `pos` holds exactly `old` (its stamp, then its payload word), replace
    /// it with `new` in one atomic step; otherwise return what it holds. Only for rings whose
    /// slots [`pairs`](Self::pairs) says can.
    ///
    /// The instruction is `lock cmpxchg16b`, a full barrier like every locked instruction. The
    /// other accesses to the stamp, by this process or another, are 8-byte atomics: locked
    /// instructions of two sizes on the same bytes, which the Intel SDM (vol. 3, 8.1.2.2) does
    /// not promise to order when they split a line. 16 aligned bytes never do, so both are
    /// cache locks of one line and x86 orders them totally; that is what this relies on.
    ///
    /// The payload word is also copied by the owner of a slot held in two steps (a loan
    /// writing it in place, a reference reading it). This CAS cannot change such a slot (its
    /// stamp is WRITING or READING, never the FREE or FULL it expects), but a failed
    /// `cmpxchg16b` still writes back the 16 bytes it read, unchanged, and
    /// [`payload_guess`](Self::payload_guess) reads the word: on the hardware, an atomic
    /// access that leaves the owner's bytes as they are; in Rust's model, a race with the
    /// owner's plain access, as for any access by a peer process (see [`write`](Self::write)).
    /// The one-step paths never act on the guess without this CAS confirming it.
    ///
    /// Under loom the pair is modelled with one mutex (loom has no 16-byte atomic), which
    /// every pair operation takes and, on rings that pair, every 8-byte CAS of a stamp too
    /// (`mpmc::Ring::cas`): a pair operation is then atomic with respect to the two-step
    /// protocol's transitions, as on the hardware, and models may mix the two on one ring
    /// (`loom-tests/mpmc.rs`, `u64` payloads: only rings of 8-aligned payloads pair under
    /// loom, see `mpmc::Shared::new`).
    ///
    /// # Safety
    /// [`pairs`](Self::pairs) must be true for these slots.
    #[inline(always)]
    pub(crate) unsafe fn cas_pair(
        &self,
        pos: u64,
        old: (u64, u64),
        new: (u64, u64),
    ) -> Result<(), (u64, u64)> {
        #[cfg(loom)]
        {
            let _pair = crate::sync::pair_lock();
            // Acquire and Release: the mutex orders the pair operations with each other and
            // with the 8-byte CASes of the stamp (`mpmc::Ring::cas` takes it too); these order
            // them with the 8-byte loads of the stamp outside it.
            let stamp = self.stamp(pos).load(Ordering::Acquire);
            if stamp != old.0 {
                // The payload word is not read: the slot may be a two-step owner's (WRITING or
                // READING), whose plain access to it loom would report racing ours, where the
                // hardware's 16-byte read is atomic. Its value then means nothing: callers look
                // at a failed CAS's payload only when the stamp was the one they expected.
                return Err((stamp, 0));
            }
            // SAFETY: the slot holds at least 8 payload bytes (`pairs`); its stamp is FREE or
            // FULL (what pair operations expect), so no endpoint owns it, and every access
            // to it in that state is a pair operation, made under the mutex held here. (No
            // model declares a live endpoint dead on a ring that pairs, which would let a
            // repair free a slot its owner still writes.)
            let word = unsafe { self.read::<u64>(pos) };
            if word != old.1 {
                return Err((stamp, word));
            }
            // SAFETY: as above.
            unsafe { self.write::<u64>(pos, new.1) };
            self.stamp(pos).store(new.0, Ordering::Release);
            Ok(())
        }
        #[cfg(all(not(loom), target_arch = "x86_64"))]
        {
            let cell = self.stamp(pos).as_ptr();
            let (mut lo, mut hi) = old;
            // SAFETY: `cell` is the slot's stamp, in bounds (see `stamp`) and followed by its
            // payload word; 16-byte aligned, as `pairs` checked of the base and the stride is
            // 16; the CPU has `cmpxchg16b` (`pairs`, this function's contract). The
            // instruction reads and writes only those 16 bytes, rax, rdx and the flags. rbx
            // cannot be named as an operand (LLVM may use it), so the new low word goes in
            // through a register of the allocator's choice, swapped with rbx around the
            // instruction; the address is pinned to rdi, so that it cannot be given rbx (a
            // first version let the allocator choose, got rbx, and faulted).
            unsafe {
                core::arch::asm!(
                    "xchg {new_lo}, rbx",
                    "lock cmpxchg16b xmmword ptr [rdi]",
                    "mov rbx, {new_lo}",
                    new_lo = inout(reg) new.0 => _,
                    in("rdi") cell,
                    inout("rax") lo,
                    inout("rdx") hi,
                    in("rcx") new.1,
                    options(nostack),
                );
            }
            // rdx:rax is left as it was when the slot held `old` (and was swapped), and is
            // what the slot held otherwise.
            if (lo, hi) == old {
                Ok(())
            } else {
                Err((lo, hi))
            }
        }
        #[cfg(all(not(loom), not(target_arch = "x86_64")))]
        {
            let _ = (pos, old, new);
            unreachable!("`pairs` is false on this architecture")
        }
    }

    /// The payload word of the slot for `pos` as it is now, for a [`cas_pair`](Self::cas_pair)
    /// to expect: a guess, which that CAS checks (under loom, 0: the model takes the CAS's
    /// answer instead of a load outside its mutex).
    #[inline(always)]
    pub(crate) fn payload_guess(&self, pos: u64) -> u64 {
        #[cfg(loom)]
        {
            let _ = pos;
            0
        }
        #[cfg(not(loom))]
        {
            // SAFETY: the payload word of a slot of at least 8 payload bytes (`pairs`), in
            // bounds and 8-aligned (see `slot`), and `AtomicU64` accepts any bits. The slot's
            // owner in the two-step protocol (a loan) may be writing it meanwhile: the load is
            // atomic on the hardware, its value only a guess (see `cas_pair`).
            let word = unsafe { &*self.slot(pos).cast::<crate::sync::AtomicU64>() };
            // Relaxed: a guess; the pair CAS that uses it compares it with the slot.
            word.load(Ordering::Relaxed)
        }
    }

    /// Address of the slot for position `pos`. Always in bounds: the index is masked with the
    /// private mask, and `base + capacity * stride <= region end` was checked at create/open.
    #[inline(always)]
    fn slot(&self, pos: u64) -> *mut u8 {
        let i = (pos & self.mask) as usize;
        // SAFETY: `i <= mask < capacity`, so `i * stride + payload_offset` (the payload lies
        // within the stride) is inside the slot array (see the field's invariant).
        unsafe {
            self.base
                .as_ptr()
                .add(i * self.stride + self.payload_offset)
        }
    }

    #[inline(always)]
    fn track(&self, pos: u64) -> &crate::sync::SlotTrack {
        #[cfg(loom)]
        {
            // SAFETY: the region holds `capacity` tracking cells in a row and outlives `self`.
            unsafe { &*self.tracks.as_ptr().add((pos & self.mask) as usize) }
        }
        #[cfg(not(loom))]
        {
            let _ = pos;
            static NONE: crate::sync::SlotTrack = crate::sync::SlotTrack {};
            &NONE
        }
    }

    /// The payload of the slot for `pos`, for a loan to write in place.
    ///
    /// # Safety
    /// As for [`write`](Self::write), for as long as the reference lives: the caller owns the
    /// slot (claimed, not yet published), and `T` is the geometry's payload type.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)] // the slot is shared memory the ring protocol hands out
    pub(crate) unsafe fn payload_mut<T: Pod>(&self, pos: u64) -> &mut T {
        self.track(pos).write();
        // SAFETY: in bounds and aligned as in `write`; `T: Pod` accepts whatever bytes the slot
        // holds (zeros, or an older message); the caller owns the slot (this function's
        // contract), so nothing else reads or writes it while the reference lives.
        unsafe { &mut *self.slot(pos).cast::<T>() }
    }

    /// The payload of the slot for `pos`, for a reference to read in place.
    ///
    /// # Safety
    /// As for [`read`](Self::read), for as long as the reference lives: the slot is published
    /// and ours until we free it.
    #[inline(always)]
    pub(crate) unsafe fn payload<T: Pod>(&self, pos: u64) -> &T {
        self.track(pos).read();
        // SAFETY: in bounds and aligned as in `write`; `T: Pod` accepts every bit pattern; an
        // honest producer does not write the slot until we free it (this function's contract;
        // a dishonest one can change the bytes under the reference, which the public docs
        // state).
        unsafe { &*self.slot(pos).cast::<T>() }
    }

    /// Copy `*value` into the slot for `pos`: one copy, from the caller's memory straight
    /// into the slot (the path of payloads larger than [`LARGE`]), with
    /// [`copy_to_shared`](copy::copy_to_shared): race-free even against a peer that reads or
    /// writes the slot against the protocol.
    ///
    /// # Safety
    /// As for [`write`](Self::write).
    #[inline(always)]
    pub(crate) unsafe fn write_from<T: Pod>(&self, pos: u64, value: &T) {
        self.track(pos).write();
        // SAFETY: the slot's payload starts 8-aligned and spans `size_of::<T>()` rounded up to
        // 8 bytes inside the slot (see `slot` and `write`), so its padding is ours as well; the
        // caller owns the slot (this function's contract); `value` is a valid `T` in our own
        // memory, which cannot overlap the slot (shared memory is never handed out as a `&T`
        // while it is being written).
        unsafe {
            copy::copy_to_shared(
                self.slot(pos),
                std::ptr::from_ref(value).cast::<u8>(),
                size_of::<T>(),
            )
        }
    }

    /// Copy the slot for `pos` into `out`: one copy, straight into the caller's memory (the
    /// path of payloads larger than [`LARGE`]), with
    /// [`copy_from_shared`](copy::copy_from_shared): race-free even against a peer that
    /// writes the slot against the protocol (it can only make the bytes odd).
    ///
    /// # Safety
    /// As for [`read`](Self::read).
    #[inline(always)]
    pub(crate) unsafe fn read_into<T: Pod>(&self, pos: u64, out: &mut std::mem::MaybeUninit<T>) {
        self.track(pos).read();
        // SAFETY: the slot's payload is in bounds (see `slot`), `size_of::<T>()` bytes; the
        // slot is published and ours (this function's contract); `out` is the caller's
        // memory, `size_of::<T>()` bytes, not the slot.
        unsafe {
            copy::copy_from_shared(
                out.as_mut_ptr().cast::<u8>(),
                self.slot(pos),
                size_of::<T>(),
            )
        }
    }

    /// Copy `value` into the slot for `pos`.
    ///
    /// # Safety
    /// The caller must own that slot (per the ring protocol no peer reads or writes it until
    /// the caller publishes it), and `T` must be the payload type the geometry was made for
    /// (so the payload, rounded up to 8 bytes, lies inside the slot).
    #[inline(always)]
    pub(crate) unsafe fn write<T: Pod>(&self, pos: u64, value: T) {
        if size_of::<T>() > LARGE {
            // Large values (the batch path, `push_slice`): `copy.rs`'s race-free copy.
            // SAFETY: this function's contract is `write_from`'s.
            return unsafe { self.write_from(pos, &value) };
        }
        self.track(pos).write();
        // Up to `LARGE` bytes, a plain write, not `copy_out`'s atomic words nor `copy.rs`'s
        // assembly: the writer never reads the slot back, so a peer that (against the
        // protocol) writes or reads it meanwhile changes only what that peer sees, never a
        // value of ours (formally, in Rust's model, that peer's access still races this
        // store); and atomic word stores were measured 3x slower for 64-byte messages
        // (`cargo bench --bench throughput -- spsc_64B`: eight 8-byte stores where a copy makes
        // two or four wide ones, behind a line the reader holds), where an inlined store of a
        // size known at compile time beats an out-of-line call to the assembly.
        // SAFETY: in bounds (see `slot_of`: `T` is the geometry's payload type, this
        // function's contract), aligned because base and stride are multiples of
        // `align_of::<T>()`, and owned by the caller per this function's contract.
        unsafe { self.slot_of::<T>(pos).cast::<T>().write(value) }
    }

    /// Copy the value out of the slot for `pos`.
    ///
    /// # Safety
    /// As for [`write`](Self::write): the caller owns the slot, which a peer published.
    #[inline(always)]
    pub(crate) unsafe fn read<T: Pod>(&self, pos: u64) -> T {
        self.track(pos).read();
        #[cfg(loom)]
        // SAFETY: in bounds and aligned as in `write`; `T: Pod` accepts every bit pattern.
        unsafe {
            self.slot(pos).cast::<T>().read()
        }
        #[cfg(not(loom))]
        if size_of::<T>() <= LARGE {
            // SAFETY: as above; `copy_out`'s contract is this function's.
            return unsafe { copy_out(self.slot_of::<T>(pos)) };
        }
        // Larger payloads (the batch path, `pop_slice`; single messages this large go by
        // `read_into` directly): the race-free copy of `copy.rs`, at `memcpy` speed (a word
        // loop took 1 KiB streaming from 9.0 to 4.9 M msg/s).
        #[cfg(not(loom))]
        {
            let mut out = std::mem::MaybeUninit::<T>::uninit();
            // SAFETY: this function's contract is `read_into`'s.
            unsafe { self.read_into(pos, &mut out) };
            // SAFETY: `read_into` wrote every byte of `out`, and `T: Pod` accepts any bytes.
            unsafe { out.assume_init() }
        }
    }
}

/// The bytes of a byte ring (`frame.rs`), from process-private validated geometry only.
pub(crate) struct Bytes {
    /// Byte 0 of the ring; `capacity` bytes from here lie inside the region.
    base: NonNull<u8>,
    /// `capacity - 1` (a power of two).
    mask: u64,
    /// Causality tracking per 8-byte word (loom only).
    #[cfg(loom)]
    tracks: NonNull<crate::sync::SlotTrack>,
    /// The stamps, one per 8-byte word (loom only: loom atomics cannot live in the ring).
    #[cfg(loom)]
    stamps: NonNull<crate::sync::AtomicU64>,
}

// SAFETY: as for `Slots`: an address range inside a region the owning handle keeps alive.
unsafe impl Send for Bytes {}
// SAFETY: as for `Slots`.
unsafe impl Sync for Bytes {}

impl Bytes {
    /// The ring of `region` for a byte-ring geometry validated against it.
    pub(crate) fn new(region: &Region, geo: &Geometry) -> Bytes {
        debug_assert!(geo.kind.is_bytes());
        Bytes {
            base: region.slots(geo),
            mask: geo.capacity - 1,
            #[cfg(loom)]
            tracks: NonNull::from(region.slot_track(0)),
            #[cfg(loom)]
            stamps: NonNull::from(region.slot_stamp(0)),
        }
    }

    /// Offset in the ring of position `pos`.
    #[inline(always)]
    pub(crate) fn offset(&self, pos: u64) -> u64 {
        pos & self.mask
    }

    /// Address of position `pos` (in bounds: the offset is masked with the private mask).
    #[inline(always)]
    pub(crate) fn at(&self, pos: u64) -> *mut u8 {
        // SAFETY: `offset(pos) <= mask < capacity`, inside the ring (see the field).
        unsafe { self.base.as_ptr().add(self.offset(pos) as usize) }
    }

    /// The 8-byte word at `pos` (8-aligned) as an atomic.
    ///
    /// # Safety
    /// `pos` is a multiple of 8.
    #[cfg(not(loom))]
    #[inline(always)]
    unsafe fn word(&self, pos: u64) -> &crate::sync::AtomicU64 {
        // SAFETY: in bounds (`at`), and 8-aligned: the ring starts 128-aligned and `pos` is a
        // multiple of 8, so the word does not cross the ring's end; any bits are a valid atomic.
        unsafe { &*self.at(pos).cast::<crate::sync::AtomicU64>() }
    }

    /// The stamp word at `pos` (8-aligned), an atomic every process accesses atomically.
    #[inline(always)]
    pub(crate) fn stamp(&self, pos: u64) -> &crate::sync::AtomicU64 {
        #[cfg(loom)]
        {
            // SAFETY: the heap block holds one atomic per byte of the ring, so one per 8-byte
            // word is in bounds, for as long as the region (and `self`) lives.
            unsafe { &*self.stamps.as_ptr().add((self.offset(pos) / 8) as usize) }
        }
        #[cfg(not(loom))]
        {
            debug_assert!(pos % 8 == 0);
            // SAFETY: `pos` is 8-aligned (stamps are at record position + 8, records are
            // 16-aligned): see `word`.
            unsafe { self.word(pos) }
        }
    }

    /// Write a record header (Relaxed: published by the stamp store that follows).
    ///
    /// # Safety
    /// `pos` is a multiple of 8, in a part of the ring the caller owns (not yet published).
    #[inline(always)]
    pub(crate) unsafe fn write_word(&self, pos: u64, w: u64) {
        self.track_write(pos, 8);
        #[cfg(not(loom))]
        // SAFETY: per this function's contract.
        unsafe {
            self.word(pos).store(w, Ordering::Relaxed)
        }
        #[cfg(loom)]
        // SAFETY: per this function's contract; under loom the ring is plain heap memory.
        unsafe {
            self.at(pos).cast::<u64>().write(w)
        }
    }

    /// Read a record header (Relaxed: ordered by the Acquire stamp load before it).
    ///
    /// # Safety
    /// `pos` is a multiple of 8, in a published part of the ring the caller has not freed.
    #[inline(always)]
    pub(crate) unsafe fn read_word(&self, pos: u64) -> u64 {
        self.track_read(pos, 8);
        #[cfg(not(loom))]
        // SAFETY: per this function's contract.
        unsafe {
            self.word(pos).load(Ordering::Relaxed)
        }
        #[cfg(loom)]
        // SAFETY: per this function's contract; under loom the ring is plain heap memory.
        unsafe {
            self.at(pos).cast::<u64>().read()
        }
    }

    /// Record writes of `len` bytes from `pos` (loom only: nothing in production).
    #[inline(always)]
    pub(crate) fn track_write(&self, pos: u64, len: u64) {
        #[cfg(loom)]
        self.tracked(pos, len, |t| t.write());
        #[cfg(not(loom))]
        let _ = (pos, len);
    }

    /// Record reads of `len` bytes from `pos` (loom only).
    #[inline(always)]
    pub(crate) fn track_read(&self, pos: u64, len: u64) {
        #[cfg(loom)]
        self.tracked(pos, len, |t| t.read());
        #[cfg(not(loom))]
        let _ = (pos, len);
    }

    #[cfg(loom)]
    fn tracked(&self, pos: u64, len: u64, f: impl Fn(&crate::sync::SlotTrack)) {
        let first = self.offset(pos) / 8;
        for w in first..first + len.div_ceil(8) {
            // SAFETY: the heap block holds one tracking cell per byte of the ring, so one per
            // 8-byte word is in bounds (records never wrap, so `w` stays below capacity / 8).
            f(unsafe { &*self.tracks.as_ptr().add(w as usize) });
        }
    }
}

/// Payloads larger than this go by reference through the handles' send and receive paths:
/// one copy in (the caller's value into the slot, [`Slots::write_from`]) and one out (the slot
/// into the caller's result, [`Slots::read_into`]), where passing them by value through the
/// layers of a call made seven copies of a 4 KiB message per `send` + `recv` (`examples`-style
/// loop under callgrind), at 98% of its time. Both copies are `copy.rs`'s race-free ones
/// (assembly on x86_64, atomic words elsewhere), so a peer writing or reading the slot against
/// the protocol can make the bytes odd but cannot cause undefined behaviour here. Payloads up
/// to this size are read with atomic word loads ([`copy_out`]), which measured as fast as a
/// plain copy or faster up to here (`cargo bench --bench throughput -- spsc_64B`); both reads
/// are race-free.
pub(crate) const LARGE: usize = 256;

/// The 8-byte word `i` of a slot's payload, as an atomic.
///
/// # Safety
/// `slot + 8 * i .. + 8` must lie inside a mapping that outlives the returned reference, and
/// `slot` must be 8-byte aligned (payloads start 8-aligned: slots are 128-aligned, strides and
/// payload offsets multiples of 8).
#[cfg(not(loom))]
#[inline(always)]
unsafe fn word<'a>(slot: *mut u8, i: usize) -> &'a crate::sync::AtomicU64 {
    // SAFETY: in bounds and aligned per the contract; any bits are a valid `AtomicU64`.
    unsafe { &*slot.add(8 * i).cast::<crate::sync::AtomicU64>() }
}

/// [`slot_shape`](crate::layout::slot_shape) of payload type `T`: `(payload_offset, stride)`.
const fn typed_shape<T>() -> (usize, usize) {
    match crate::layout::slot_shape(size_of::<T>(), align_of::<T>()) {
        Some(shape) => shape,
        None => panic!("a payload type too large for a slot"),
    }
}

/// Copy a payload of up to [`LARGE`] bytes out of a slot, one 8-byte word at a time
/// with Relaxed atomic loads (larger ones: [`copy_from_shared`](copy::copy_from_shared)).
///
/// Why atomics: a peer that is buggy or hostile may write the slot while we copy it. With a
/// plain copy that is a data race, undefined behaviour in Rust's model whatever `T` accepts,
/// and not only in theory: the compiler may load the bytes again later instead of keeping the
/// copy, assuming they cannot change, so a field checked once could be used with another
/// value. Atomic loads are copied once. Relaxed word loads of a size known at compile time
/// compile to the plain `mov`s a copy would use, inlined (measured: 64-byte streaming is faster
/// this way, 91-107 against 58-66 M msg/s, `cargo bench --bench throughput -- spsc_64B`), which
/// is why this path stays beside `copy.rs`'s assembly for small payloads. Whole-value
/// `read_volatile`, the other candidate, copies byte by byte (`[u8; 4096]`: 4,096 loads), 2-50x
/// slower than a copy.
///
/// # Safety
/// `slot` is 8-byte aligned, `slot .. slot + size_of::<T>()` rounded up to a multiple of 8
/// lies in the mapping, and the caller took the slot (a peer published it).
#[cfg(not(loom))]
#[inline(always)]
unsafe fn copy_out<T: Pod>(slot: *mut u8) -> T {
    let mut out = std::mem::MaybeUninit::<T>::uninit();
    let dst = out.as_mut_ptr().cast::<u8>();
    let (words, tail) = (size_of::<T>() / 8, size_of::<T>() % 8);
    for i in 0..words {
        // SAFETY: the slot word is in bounds per the contract; bytes `8i .. 8i + 8` of `out`
        // exist (i < words).
        unsafe {
            let w = word(slot, i).load(crate::sync::Ordering::Relaxed);
            dst.add(8 * i).cast::<u64>().write_unaligned(w);
        }
    }
    if tail != 0 {
        // SAFETY: the slot's last word is in bounds (the payload is rounded up to 8 bytes inside
        // the slot); the last `tail` bytes of `out` exist.
        unsafe {
            let last = word(slot, words)
                .load(crate::sync::Ordering::Relaxed)
                .to_ne_bytes();
            std::ptr::copy_nonoverlapping(last.as_ptr(), dst.add(8 * words), tail);
        }
    }
    // SAFETY: every byte of `out` was written above, and `T: Pod` accepts any bytes.
    unsafe { out.assume_init() }
}
