//! Regions on the heap: in-process channels, unit tests and loom models.

use std::ptr::NonNull;

use crate::error::Error;
use crate::layout::Geometry;

/// A zeroed, page-aligned heap block laid out exactly like a shared region (production), or a
/// header value plus slot bytes and per-slot tracking cells (loom, whose atomics cannot live in
/// raw bytes).
pub(crate) struct HeapBlock {
    ptr: NonNull<u8>,
    layout: std::alloc::Layout,
    #[cfg(loom)]
    header: Box<crate::layout::Header>,
    #[cfg(loom)]
    tracks: Box<[crate::sync::SlotTrack]>,
    /// MPMC slot stamps (loom atomics cannot live in the slot bytes).
    #[cfg(loom)]
    stamps: Box<[crate::sync::AtomicU64]>,
    /// Per endpoint place, the witness a model's occupant holds (the id of its `Region`, 0:
    /// none): the OFD lock of production, released when a model "kills" the occupant
    /// (`Region::endpoint_alive`).
    #[cfg(loom)]
    witness: Box<[crate::sync::AtomicU32]>,
    /// Broadcast payload words, `payload_words` per slot (loom only: a broadcast payload is
    /// written and read word by word with atomics, racing by design).
    #[cfg(loom)]
    words: Box<[crate::sync::AtomicU64]>,
    #[cfg(loom)]
    payload_words: usize,
    /// A broadcast topic's control line and subscriber lines (loom only).
    #[cfg(loom)]
    control: Box<crate::layout::Control>,
    #[cfg(loom)]
    subs: Box<[crate::layout::Sub]>,
}

// SAFETY: the block owns its allocation; concurrent access to the bytes is governed by the
// ring protocol through atomics, exactly as for a mapping shared with another process.
unsafe impl Send for HeapBlock {}
// SAFETY: as above.
unsafe impl Sync for HeapBlock {}

impl HeapBlock {
    /// A zeroed block for `geo`, or [`Error::InvalidOptions`] if the memory cannot be had
    /// (an allocation failure is the caller's to handle, not an abort).
    pub(crate) fn new(geo: &Geometry) -> Result<HeapBlock, Error> {
        let too_big = || Error::InvalidOptions {
            reason: format!(
                "an in-process channel of {} slots needs {} bytes, which could not be allocated",
                geo.capacity, geo.region_len
            ),
        };
        let layout = std::alloc::Layout::from_size_align(geo.region_len.max(1), 4096)
            .map_err(|_| too_big())?;
        // SAFETY: `layout` has non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or_else(too_big)?;
        Ok(HeapBlock {
            ptr,
            layout,
            #[cfg(loom)]
            header: Box::new(crate::layout::Header::zeroed()),
            #[cfg(loom)]
            tracks: (0..geo.capacity).map(|_| Default::default()).collect(),
            #[cfg(loom)]
            stamps: (0..geo.capacity)
                .map(|_| crate::sync::AtomicU64::new(0))
                .collect(),
            #[cfg(loom)]
            witness: (0..crate::layout::MAX_ENDPOINTS)
                .map(|_| crate::sync::AtomicU32::new(0))
                .collect(),
            #[cfg(loom)]
            words: (0..geo.capacity as usize * geo.payload_words())
                .map(|_| crate::sync::AtomicU64::new(0))
                .collect(),
            #[cfg(loom)]
            payload_words: geo.payload_words(),
            #[cfg(loom)]
            control: Box::new(crate::layout::Control::zeroed()),
            #[cfg(loom)]
            subs: (0..if geo.kind == crate::layout::Kind::Broadcast {
                geo.max_receivers as usize
            } else {
                0
            })
                .map(|_| crate::layout::Sub::zeroed())
                .collect(),
        })
    }

    pub(crate) fn base(&self) -> NonNull<u8> {
        self.ptr
    }

    pub(crate) fn len(&self) -> usize {
        self.layout.size()
    }

    #[cfg(loom)]
    pub(crate) fn header(&self) -> &crate::layout::Header {
        &self.header
    }

    /// Under loom the slots start at the block itself (the header is a separate value).
    #[cfg(loom)]
    pub(crate) fn slots(&self) -> NonNull<u8> {
        self.ptr
    }

    #[cfg(loom)]
    pub(crate) fn track(&self, i: usize) -> &crate::sync::SlotTrack {
        &self.tracks[i]
    }

    #[cfg(loom)]
    pub(crate) fn stamp(&self, i: usize) -> &crate::sync::AtomicU64 {
        &self.stamps[i]
    }

    /// Word `i` of the payload of slot `slot` (loom only).
    #[cfg(loom)]
    pub(crate) fn word(&self, slot: usize, i: usize) -> &crate::sync::AtomicU64 {
        &self.words[slot * self.payload_words + i]
    }

    /// A broadcast topic's control line (loom only).
    #[cfg(loom)]
    pub(crate) fn control(&self) -> &crate::layout::Control {
        &self.control
    }

    /// Broadcast subscriber `i`'s line (loom only).
    #[cfg(loom)]
    pub(crate) fn sub(&self, i: usize) -> &crate::layout::Sub {
        &self.subs[i]
    }

    /// The witness of endpoint place `i` (loom only).
    #[cfg(loom)]
    pub(crate) fn witness(&self, i: usize) -> &crate::sync::AtomicU32 {
        &self.witness[i]
    }
}

impl Drop for HeapBlock {
    fn drop(&mut self) {
        // The last region sharing the block is gone: so are the async registrations of its
        // words (see `reactor::forget_range`).
        #[cfg(not(loom))]
        crate::reactor::forget_range(self.ptr.as_ptr() as usize, self.layout.size());
        // SAFETY: `ptr` was allocated in `new` with exactly `layout` and is freed only here.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}
