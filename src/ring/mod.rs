//! The ring algorithms, over a header reference and a slot pointer. They never learn where the
//! memory came from, so loom runs exactly this code on a heap region.

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
        }
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

    /// Copy `value` into the slot for `pos`.
    ///
    /// # Safety
    /// The caller must own that slot (per the ring protocol no peer reads or writes it until
    /// the caller publishes it), and `T` must be the payload type the geometry was made for
    /// (so `size_of::<T>() == stride` and the slot is aligned for `T`).
    #[inline(always)]
    pub(crate) unsafe fn write<T: Pod>(&self, pos: u64, value: T) {
        self.track(pos).write();
        // SAFETY: in bounds (see `slot`), aligned because base and stride are multiples of
        // `align_of::<T>()`, and owned by the caller per this function's contract.
        unsafe { self.slot(pos).cast::<T>().write(value) }
    }

    /// Copy the value out of the slot for `pos`.
    ///
    /// # Safety
    /// As for [`write`](Self::write): the caller owns the slot, which a peer published.
    #[inline(always)]
    pub(crate) unsafe fn read<T: Pod>(&self, pos: u64) -> T {
        self.track(pos).read();
        // SAFETY: in bounds and aligned as in `write`. `T: Pod` accepts every bit pattern, so
        // even bytes a misbehaving peer wrote concurrently make a valid (if odd) value; the
        // copy is made once into a local and never re-read from shared memory.
        unsafe { self.slot(pos).cast::<T>().read() }
    }
}
