//! The minimal Lamport ring the SPSC ring is judged against: cached indices, the consumer
//! reads `tail` and the producer `head` only when the ring looks empty or full; no stamps, no
//! liveness, no parking. Over any mapping (a file two processes share, or an anonymous one).
// A reference outside the crate: plain std atomics, not the crate's loom seam.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
// Each benchmark file that includes this one uses some of its references.
#![allow(dead_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::*};

/// Messages the ring holds, as the shmchan rings it is compared with.
pub const CAP: u64 = 4096;

/// Bytes of a ring of messages of `w` words: `tail` on the first 128-byte line, `head` on
/// the second, then the slots.
pub const fn bytes(w: usize) -> usize {
    256 + 8 * w * CAP as usize
}

/// A ring of messages of `W` 8-byte words, each written and read whole (as shmchan copies a
/// message of that size in and out).
pub struct Ring<'a, const W: usize> {
    tail: &'a AtomicU64,
    head: &'a AtomicU64,
    slots: &'a [AtomicU64],
    /// This side's own index and its cached copy of the other side's.
    mine: Cell<u64>,
    theirs: Cell<u64>,
}

impl<'a, const W: usize> Ring<'a, W> {
    pub fn new(map: &'a memmap2::MmapMut) -> Ring<'a, W> {
        assert!(map.len() >= bytes(W));
        // SAFETY: the mapping is page-aligned and at least `bytes(W)` long; every access
        // to it is atomic; it outlives the ring ('a).
        let words =
            unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<AtomicU64>(), bytes(W) / 8) };
        Ring {
            tail: &words[0],
            head: &words[16],
            slots: &words[32..],
            mine: Cell::new(0),
            theirs: Cell::new(0),
        }
    }

    /// Send a message whose first word is `v` (the others: copies of it).
    #[inline(always)]
    pub fn push(&self, v: u64) {
        let t = self.mine.get();
        wait_for_room(t, &self.theirs, self.head);
        let at = (t % CAP) as usize * W;
        // Relaxed: published by the Release store of `tail` below.
        write_words(&self.slots[at..at + W], v);
        // Release: pairs with the consumer's Acquire load of `tail` in `pop`.
        self.tail.store(t + 1, Release);
        self.mine.set(t + 1);
    }

    /// Receive a message (every word of it read); its first word.
    #[inline(always)]
    pub fn pop(&self) -> u64 {
        let h = self.mine.get();
        while h == self.theirs.get() {
            // Acquire: pairs with the producer's Release store of `tail` in `push`: the
            // slots below it are written.
            self.theirs.set(self.tail.load(Acquire));
            if h == self.theirs.get() {
                std::hint::spin_loop();
            }
        }
        let at = (h % CAP) as usize * W;
        // Relaxed: ordered after the Acquire load of `tail` that showed the slot published.
        let msg = read_words::<W>(&self.slots[at..at + W]);
        // Release: pairs with the producer's Acquire load of `head` in `push`.
        self.head.store(h + 1, Release);
        self.mine.set(h + 1);
        msg[0]
    }
}

/// Wait until a producer at `t` has room, refreshing its cached copy of the consumer's `head`
/// only when that copy shows the ring full.
#[inline(always)]
fn wait_for_room(t: u64, theirs: &Cell<u64>, head: &AtomicU64) {
    while t - theirs.get() == CAP {
        // Acquire: pairs with the consumer's Release store of `head` in `pop`: its reads of the
        // slots we are about to overwrite are done.
        theirs.set(head.load(Acquire));
        if t - theirs.get() == CAP {
            std::hint::spin_loop();
        }
    }
}

/// Store `v` in every word of a message (the caller publishes them after).
#[inline(always)]
fn write_words(words: &[AtomicU64], v: u64) {
    for w in words {
        w.store(v, Relaxed);
    }
}

/// Read every word of a published message (the caller's Acquire load showed it published),
/// kept opaque to the optimiser so that all of them are read.
#[inline(always)]
fn read_words<const W: usize>(words: &[AtomicU64]) -> [u64; W] {
    let mut msg = [0u64; W];
    for (m, w) in msg.iter_mut().zip(words) {
        *m = w.load(Relaxed);
    }
    std::hint::black_box(msg)
}

/// Bytes of a [`Stamped`] ring of messages of `w` words: as [`bytes`], with a stamp word
/// before each message.
pub const fn stamped_bytes(w: usize) -> usize {
    256 + 8 * (w + 1) * CAP as usize
}

/// The same minimal ring with shmchan's SPSC layout instead of a published `tail`: each slot
/// is a stamp word then the message, the producer publishes a message by storing `pos + 1` in
/// its stamp, and the consumer polls the stamp of the slot it wants (the producer still reads
/// `head` only when the ring looks full). Nothing else of shmchan (no liveness, no parking, no
/// checks): what the layout costs on its own, beside [`Ring`].
pub struct Stamped<'a, const W: usize> {
    head: &'a AtomicU64,
    slots: &'a [AtomicU64],
    mine: Cell<u64>,
    /// The producer's cached `head` (unused by the consumer).
    theirs: Cell<u64>,
}

impl<'a, const W: usize> Stamped<'a, W> {
    pub fn new(map: &'a memmap2::MmapMut) -> Stamped<'a, W> {
        assert!(map.len() >= stamped_bytes(W));
        // SAFETY: as in `Ring::new`, for `stamped_bytes(W)`.
        let words = unsafe {
            std::slice::from_raw_parts(map.as_ptr().cast::<AtomicU64>(), stamped_bytes(W) / 8)
        };
        Stamped {
            head: &words[16],
            slots: &words[32..],
            mine: Cell::new(0),
            theirs: Cell::new(0),
        }
    }

    /// Send a message whose first word is `v` (the others: copies of it).
    #[inline(always)]
    pub fn push(&self, v: u64) {
        let t = self.mine.get();
        wait_for_room(t, &self.theirs, self.head);
        let at = (t % CAP) as usize * (W + 1);
        // Relaxed: published by the Release store of the stamp below.
        write_words(&self.slots[at + 1..at + 1 + W], v);
        // Release: pairs with the consumer's Acquire load of the stamp in `pop`.
        self.slots[at].store(t + 1, Release);
        self.mine.set(t + 1);
    }

    /// Receive a message (every word of it read); its first word.
    #[inline(always)]
    pub fn pop(&self) -> u64 {
        let h = self.mine.get();
        let at = (h % CAP) as usize * (W + 1);
        // Acquire: pairs with the producer's Release store of the stamp in `push`.
        while self.slots[at].load(Acquire) != h + 1 {
            std::hint::spin_loop();
        }
        // Relaxed: ordered after the Acquire load of the stamp.
        let msg = read_words::<W>(&self.slots[at + 1..at + 1 + W]);
        // Release: as in `Ring::pop`.
        self.head.store(h + 1, Release);
        self.mine.set(h + 1);
        msg[0]
    }
}

/// Bytes of a [`Vyukov`] queue: `tail` and `head` lines, then 16-byte slots (a sequence word,
/// then the 8-byte message).
pub const fn vyukov_bytes() -> usize {
    256 + 16 * CAP as usize
}

/// The textbook bounded MPMC queue (Vyukov's, as `crossbeam`'s `ArrayQueue`) of `u64`s over a
/// mapping: a producer claims a position with a CAS on `tail` and publishes it with a plain
/// store of the slot's sequence; a consumer claims with a CAS on `head` and frees with a
/// store. No owner in the slots, so no repair of a dead claimer: what shmchan's MPMC is
/// judged against across processes (one CAS a message a side, on a line each side has to
/// itself when there is one producer and one consumer).
pub struct Vyukov<'a> {
    tail: &'a AtomicU64,
    head: &'a AtomicU64,
    slots: &'a [AtomicU64],
}

impl<'a> Vyukov<'a> {
    /// Over a zeroed mapping, which the first side to attach must [`init`](Self::init).
    pub fn new(map: &'a memmap2::MmapMut) -> Vyukov<'a> {
        assert!(map.len() >= vyukov_bytes());
        // SAFETY: as in `Ring::new`, for `vyukov_bytes()`.
        let words = unsafe {
            std::slice::from_raw_parts(map.as_ptr().cast::<AtomicU64>(), vyukov_bytes() / 8)
        };
        Vyukov {
            tail: &words[0],
            head: &words[16],
            slots: &words[32..],
        }
    }

    /// Slot `i` waits for position `i` (before any other side uses the queue).
    pub fn init(&self) {
        for i in 0..CAP {
            // Relaxed: published to the other process by the handshake that tells it to start.
            self.slots[2 * i as usize].store(i, Relaxed);
        }
    }

    /// Send `v`, spinning while the queue is full.
    #[inline(always)]
    pub fn push(&self, v: u64) {
        let mut pos = self.tail.load(Relaxed);
        let at = loop {
            let at = 2 * (pos % CAP) as usize;
            // Acquire: pairs with the consumer's Release store in `pop`: its read of the slot
            // is done.
            let seq = self.slots[at].load(Acquire);
            if seq == pos {
                // Relaxed: the slot's sequence, not `tail`, carries the data.
                match self
                    .tail
                    .compare_exchange_weak(pos, pos + 1, Relaxed, Relaxed)
                {
                    Ok(_) => break at,
                    Err(now) => pos = now,
                }
            } else {
                if seq < pos {
                    std::hint::spin_loop(); // full
                }
                pos = self.tail.load(Relaxed);
            }
        };
        self.slots[at + 1].store(v, Relaxed);
        // Release: pairs with the consumer's Acquire load of the sequence in `pop`.
        self.slots[at].store(pos + 1, Release);
    }

    /// Receive a message, spinning while the queue is empty.
    #[inline(always)]
    pub fn pop(&self) -> u64 {
        let mut pos = self.head.load(Relaxed);
        let at = loop {
            let at = 2 * (pos % CAP) as usize;
            // Acquire: pairs with the producer's Release store in `push`.
            let seq = self.slots[at].load(Acquire);
            if seq == pos + 1 {
                match self
                    .head
                    .compare_exchange_weak(pos, pos + 1, Relaxed, Relaxed)
                {
                    Ok(_) => break at,
                    Err(now) => pos = now,
                }
            } else {
                if seq < pos + 1 {
                    std::hint::spin_loop(); // empty
                }
                pos = self.head.load(Relaxed);
            }
        };
        let v = self.slots[at + 1].load(Relaxed);
        // Release: pairs with the producer's Acquire load of the sequence in `push`.
        self.slots[at].store(pos + CAP, Release);
        v
    }
}
