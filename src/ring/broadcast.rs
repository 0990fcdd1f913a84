//! One publisher, any number of subscribers, each reading every message: one ring of slots,
//! each with a stamp, and a cursor per subscriber on a line of its own (after Aeron's log with
//! per-subscriber positions and the Disruptor's sequence barrier; research/next.md, A).
//!
//! ```text
//!  slot stamp:  0              never written
//!               p + 1          holds message p, complete
//!               (p + 1) | BUSY message p is being written (the publisher's seqlock marker)
//! ```
//!
//! **Publishing** message `p` (one publisher: no CAS): store the marker, a Release fence,
//! the payload word by word (Relaxed atomic stores), then the stamp `p + 1` with Release, then
//! the shared `tail` (for joiners, lag and people). The publisher never reads a subscriber's
//! cursor in Overwrite mode, so its cost does not grow with their number.
//!
//! **Receiving** at cursor `c` is a seqlock read: load the stamp (Acquire); if it is `c + 1`,
//! copy the payload word by word (Relaxed atomic loads), an Acquire fence, and load the stamp
//! again: unchanged, the copy is whole; changed, the publisher lapped us while we copied and
//! the copy is thrown away. A stamp below `c + 1` (or `c + 1` being written) is a message not
//! yet published; one above is a later lap: the subscriber *lagged*. It is then told how many
//! messages it lost (`Lagged(n)`, exact) and moves on to the oldest message still in the ring,
//! as `tokio::sync::broadcast` does.
//!
//! - SYNC POINT (bcast-publish): the publisher's Release store of the stamp `p + 1` pairs with
//!   the subscriber's Acquire load of it: the payload is complete before it is read.
//! - SYNC POINT (bcast-seqlock): the publisher's marker store, then Release fence, then payload
//!   stores; the subscriber's payload loads, then Acquire fence, then the stamp's second load.
//!   If the subscriber read any word of a newer payload, the fences make its second load see
//!   the marker (or later), and it throws the copy away.
//! - SYNC POINT (bcast-free, Block mode): the subscriber stores its cursor with Release after
//!   reading a message; the publisher loads cursors with Acquire before it writes over their
//!   slots.
//!
//! **Block mode** (lossless for live subscribers): the publisher keeps the lowest cursor of the
//! attached, live, not evicted subscribers, as last scanned, and may write up to one ring past
//! it; it scans the table again only when it gets there, or when a subscriber that joined asks
//! (the control line's `rescan`), and between scans it reads no cursor. A subscriber joining
//! stores its cursor, then asks for a scan, then reads how many scans the publisher has made
//! (`epoch`, `e`): the publisher's scan `e + 2` began after the request, so it counts the
//! joiner, and from then on the joiner cannot be lapped. Before that a publisher on an older
//! scan can lap it: a joiner at the latest message then starts again at the latest, silently
//! (it had not been counted yet: those messages were not yet its); a joiner with history is
//! told `Lagged`. Every read is validated, in both modes, so a race never returns a torn
//! value.
//!
//! Nothing read from shared memory is trusted: positions from stamps and `tail` only decide
//! where to read next and are clamped to a ring; a value is returned only when its stamp said
//! so both before and after the copy.

use std::cell::Cell;
use std::ptr::NonNull;

use bytemuck::Pod;

use super::Slots;
use crate::layout::{Control, Geometry, Header, Sub};
use crate::region::Region;
use crate::sync::{Ordering, fence};
use crate::wait::NotifyFence;

/// Where a topic's control line and subscriber lines are, from process-private validated
/// geometry only (as [`Slots`] for the slots).
pub(crate) struct Lines {
    control: NonNull<Control>,
    /// Subscriber line 0; line `i` is `stride * i` bytes further, for `i < count`.
    subs: NonNull<u8>,
    stride: usize,
    count: usize,
}

// SAFETY: as for `Slots`: addresses inside a region the owning handle keeps alive, whose
// fields are all atomics.
unsafe impl Send for Lines {}
// SAFETY: as above.
unsafe impl Sync for Lines {}

impl Lines {
    /// The lines of `region` for a broadcast geometry validated against it.
    pub(crate) fn new(region: &Region, geo: &Geometry) -> Lines {
        let count = geo.max_receivers as usize;
        let first = region.sub(geo, 0) as *const Sub as usize;
        let stride = if count > 1 {
            region.sub(geo, 1) as *const Sub as usize - first
        } else {
            crate::layout::LINE
        };
        Lines {
            control: NonNull::from(region.control(geo)),
            subs: NonNull::from(region.sub(geo, 0)).cast(),
            stride,
            count,
        }
    }

    /// The control line.
    #[inline(always)]
    pub(crate) fn control(&self) -> &Control {
        // SAFETY: from `Region::control` of the region the owning handle keeps alive.
        unsafe { self.control.as_ref() }
    }

    /// Subscriber line `i` (of place `1 + i`).
    ///
    /// # Panics
    /// If `i` is not below the topic's `max_subscribers` (callers index from validated places).
    #[inline(always)]
    pub(crate) fn sub(&self, i: usize) -> &Sub {
        assert!(i < self.count, "subscriber line {i} of {}", self.count);
        // SAFETY: lines `0..count` lie `stride` apart from `subs` (see `new`), inside the
        // region the owning handle keeps alive; every field is an atomic.
        unsafe { &*self.subs.as_ptr().add(self.stride * i).cast::<Sub>() }
    }
}

/// The stamp bit that marks a slot being written.
pub(crate) const BUSY: u64 = 1 << 63;

/// The publisher's private state.
pub(crate) struct Publisher {
    capacity: u64,
    /// Our position: the next message to write. The shared `tail` holds it once published.
    tail: Cell<u64>,
    /// The fence our notifies use.
    fence: NotifyFence,
}

impl Publisher {
    /// Take over the publisher side: at the shared `tail`, moved past every message a
    /// previous publisher published beyond it (one killed between a stamp and `tail`). A slot
    /// left being written is simply written again. At most `capacity` stamps are read.
    pub(crate) fn new(hdr: &Header, slots: &Slots, capacity: u64) -> Publisher {
        // Acquire: pairs with the Release store of `tail` in `end`.
        let mut tail = hdr.tail.load(Ordering::Acquire);
        for _ in 0..capacity {
            // SYNC POINT (bcast-publish): Acquire, as a subscriber loads stamps.
            if slots.stamp(tail).load(Ordering::Acquire) != tail.wrapping_add(1) {
                break;
            }
            tail = tail.wrapping_add(1);
        }
        // Release: as in `publish`.
        hdr.tail.store(tail, Ordering::Release);
        Publisher {
            capacity,
            tail: Cell::new(tail),
            fence: NotifyFence::now(),
        }
    }

    /// Our position (the next message to write): private, so reading it costs nothing shared.
    #[inline(always)]
    pub(crate) fn position(&self) -> u64 {
        self.tail.get()
    }

    /// Publish `value` at our position (see the module docs). In Block mode the caller has
    /// checked there is room ([`Gate::room`]).
    #[inline(always)]
    pub(crate) fn publish<T: Pod>(&self, hdr: &Header, slots: &Slots, value: &T) {
        let p = self.tail.get();
        self.begin(slots, p);
        slots.store_words(p, value);
        self.end(hdr, slots, p);
    }

    /// Mark the slot of position `p` as being written (the seqlock's first half). Relaxed,
    /// then a Release fence: SYNC POINT (bcast-seqlock), the marker is ordered before the
    /// payload stores that follow.
    #[inline(always)]
    pub(crate) fn begin(&self, slots: &Slots, p: u64) {
        slots
            .stamp(p)
            .store(p.wrapping_add(1) | BUSY, Ordering::Relaxed);
        fence(Ordering::Release);
    }

    /// Publish the slot of position `p`, written since [`begin`](Self::begin).
    #[inline(always)]
    pub(crate) fn end(&self, hdr: &Header, slots: &Slots, p: u64) {
        debug_assert_eq!(p, self.tail.get());
        let next = p.wrapping_add(1);
        // SYNC POINT (bcast-publish): Release, pairs with the subscriber's Acquire load of
        // the stamp.
        slots.stamp(p).store(next, Ordering::Release);
        // For joiners, lag and people (Release: a joiner that reads it sees the slots below
        // it written).
        hdr.tail.store(next, Ordering::Release);
        self.tail.set(next);
        hdr.data_bell.notify_as(self.fence);
    }

    /// The capacity of the ring.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }
}

/// What one receive attempt found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Read<T> {
    /// The message at our cursor, whole; the cursor moved past it.
    Value(T),
    /// Nothing published at our cursor yet.
    Empty,
    /// The publisher lapped us: this many messages were lost, and the cursor moved on to the
    /// oldest still there.
    Lagged(u64),
}

/// A subscriber's private state.
pub(crate) struct Subscriber {
    capacity: u64,
    /// Our position: the next message to read.
    cursor: Cell<u64>,
    /// What our line's cursor says (at most `cursor`): published every `every` messages, and
    /// whenever we find nothing to read or jump (see [`publish`](Self::publish)). Storing it
    /// after every message made a blocked Block-mode publisher, which reads it, take the line
    /// from us on every message: 8-13 M msg/s instead of the ring's speed.
    published: Cell<u64>,
    /// A power of two: publish the cursor when it reaches a multiple of it.
    every: u64,
    /// Block mode, after joining: the publisher's scan count at which we are protected (see
    /// the module docs); 0 once we are, and in Overwrite mode.
    guard: Cell<u64>,
    /// We asked to start at the latest message: lapped before we are protected, we start
    /// again at the latest instead of reporting a lag.
    latest: bool,
}

impl Subscriber {
    /// A subscriber starting at position `cursor` (see [`start`]), publishing its cursor
    /// every `every` messages (a power of two).
    pub(crate) fn new(
        capacity: u64,
        cursor: u64,
        every: u64,
        latest: bool,
        sub: &Sub,
    ) -> Subscriber {
        debug_assert!(every.is_power_of_two());
        let me = Subscriber {
            capacity,
            cursor: Cell::new(cursor),
            published: Cell::new(cursor.wrapping_sub(1)),
            every,
            guard: Cell::new(0),
            latest,
        };
        me.publish(sub);
        me
    }

    /// Block mode: ask the publisher to count us (after our cursor is published), and note
    /// when we are protected. SYNC POINT (bcast-join): the claim and the cursor store, a
    /// SeqCst fence, the request; pairs with the fence in [`Gate::begin_scan`].
    pub(crate) fn join(&self, ctl: &Control) {
        fence(Ordering::SeqCst);
        ctl.rescan.store(1, Ordering::Relaxed);
        // Acquire: pairs with the publisher's Release bump after a scan.
        let e = ctl.epoch.load(Ordering::Acquire);
        self.guard.set(e.wrapping_add(2).max(1));
    }

    /// Is the cursor on our line where we are (just published)?
    #[inline(always)]
    pub(crate) fn is_published(&self) -> bool {
        self.published.get() == self.cursor.get()
    }

    /// Publish our cursor to our line, if it moved since we last did. SYNC POINT
    /// (bcast-free): Release, so that a Block-mode publisher that reads it with Acquire writes
    /// over the slots below it only after we read them. Returns whether it stored.
    #[inline]
    pub(crate) fn publish(&self, sub: &Sub) -> bool {
        let c = self.cursor.get();
        if self.published.get() == c {
            return false;
        }
        self.published.set(c);
        sub.cursor.store(c, Ordering::Release);
        true
    }

    /// One attempt at the message at our cursor (see the module docs). On `Value` and
    /// `Lagged` the cursor moved; it is published to `sub` every `every` messages and on
    /// `Lagged` (`Empty` leaves that to the caller: [`publish`](Self::publish)).
    ///
    /// `copy` copies the message at a position out of the slots (typed values word by word,
    /// frames with their length); what it returns is thrown away unless the stamp is still the
    /// same after it.
    #[inline(always)]
    pub(crate) fn read<R>(
        &self,
        hdr: &Header,
        slots: &Slots,
        lines: &Lines,
        index: usize,
        copy: impl FnOnce(&Slots, u64) -> R,
    ) -> Read<R> {
        let sub = lines.sub(index);
        let c = self.cursor.get();
        let want = c.wrapping_add(1);
        // SYNC POINT (bcast-publish): Acquire, pairs with the publisher's Release store.
        let s1 = slots.stamp(c).load(Ordering::Acquire);
        if s1 != want {
            return self.not_here(hdr, lines.control(), sub, c, s1);
        }
        let value = copy(slots, c);
        // SYNC POINT (bcast-seqlock): the payload loads are ordered before the second stamp
        // load; if any of them read a newer payload, that load sees the newer marker.
        fence(Ordering::Acquire);
        let s2 = slots.stamp(c).load(Ordering::Relaxed);
        if s2 != s1 {
            return self.not_here(hdr, lines.control(), sub, c, s2);
        }
        self.advance(sub, want);
        Read::Value(value)
    }

    /// Move our cursor to `to`, publishing it at every `every`-th position.
    #[inline(always)]
    fn advance(&self, sub: &Sub, to: u64) {
        self.cursor.set(to);
        if to & (self.every - 1) == 0 {
            self.publish(sub);
        }
    }

    /// The slot at cursor `c` holds stamp `s`, not `c + 1`: not yet published, or lapped.
    #[cold]
    #[inline(never)]
    fn not_here<T>(&self, hdr: &Header, ctl: &Control, sub: &Sub, c: u64, s: u64) -> Read<T> {
        let held = s & !BUSY; // the position (+ 1) the slot holds or is being written with
        // Positions earlier than ours (an older lap), ours being written, or never written:
        // not published yet. Wrapping distances, so that a hostile stamp cannot overflow.
        let ahead = held.wrapping_sub(c.wrapping_add(1)) as i64;
        if held == 0 || ahead <= 0 {
            return Read::Empty;
        }
        // A later lap: we lost messages. The publisher is at least past the slot's message
        // (or at `tail`, if that is further); the oldest message still there is one ring
        // behind it, less one (its slot is the next to be written).
        // Acquire: as a joiner reads `tail` (the slots below it are written).
        let tail = hdr.tail.load(Ordering::Acquire);
        let front = if (tail.wrapping_sub(held) as i64) > 0 {
            tail
        } else {
            held
        };
        // Lapped before the publisher counted us (Block mode, just joined)?
        let guard = self.guard.get();
        if guard != 0 {
            // Acquire: pairs with the publisher's Release bump after a scan.
            if ctl.epoch.load(Ordering::Acquire).wrapping_sub(guard) as i64 >= 0 {
                self.guard.set(0); // counted since: a lag like any other
            } else if self.latest {
                // Not yet ours: start again at the latest message.
                self.cursor.set(front);
                self.publish(sub);
                return Read::Empty;
            }
        }
        let oldest = front.wrapping_sub(self.capacity).wrapping_add(1);
        // At least one further than where we were (a hostile `tail` may not move us back).
        let to = if (oldest.wrapping_sub(c) as i64) > 0 {
            oldest
        } else {
            c.wrapping_add(1)
        };
        let lost = to.wrapping_sub(c);
        // Relaxed: a counter for people.
        sub.lagged.store(
            sub.lagged.load(Ordering::Relaxed).wrapping_add(lost),
            Ordering::Relaxed,
        );
        // Published at once: a Block-mode publisher may be waiting on where we were.
        self.cursor.set(to);
        self.publish(sub);
        Read::Lagged(lost)
    }

    /// Messages published and not yet read by us (clamped to the ring).
    pub(crate) fn lag(&self, hdr: &Header) -> u64 {
        // Relaxed: a snapshot.
        let tail = hdr.tail.load(Ordering::Relaxed);
        (tail.wrapping_sub(self.cursor.get()) as i64).clamp(0, self.capacity as i64) as u64
    }
}

/// Where a new subscriber starts, from the shared `tail` (clamped to what the ring can hold):
/// the next message (`back == 0`), or `back` messages before it, at most `capacity - 1` (the
/// oldest slot is the next the publisher writes) and never before position 0.
pub(crate) fn start(hdr: &Header, capacity: u64, back: u64) -> u64 {
    // Acquire: pairs with the publisher's Release store of `tail`.
    let tail = hdr.tail.load(Ordering::Acquire);
    tail - back.min(capacity - 1).min(tail)
}

/// What a Block-mode publisher knows of its subscribers between scans: the lowest cursor it
/// must not pass by a ring.
pub(crate) struct Gate {
    /// The lowest cursor seen by the last scan (`u64::MAX`: none).
    low: Cell<u64>,
}

impl Gate {
    pub(crate) fn new() -> Gate {
        Gate {
            low: Cell::new(u64::MAX),
        }
    }

    /// May the publisher write position `p` without a scan? Only if it [`fits`](Self::fits),
    /// and no joiner asked for a scan.
    #[inline(always)]
    pub(crate) fn room(&self, ctl: &Control, p: u64, capacity: u64) -> bool {
        // Relaxed: a request flag; the scan it asks for reads the cursors with Acquire.
        self.fits(p, capacity) && ctl.rescan.load(Ordering::Relaxed) == 0
    }

    /// Is position `p` less than a ring past the lowest cursor the last scan saw? (After a
    /// scan, a request made meanwhile is left to the next message: a joiner is not counted on
    /// until the publisher's next scan anyway; see the module docs.)
    #[inline(always)]
    pub(crate) fn fits(&self, p: u64, capacity: u64) -> bool {
        let low = self.low.get();
        low == u64::MAX || p.wrapping_sub(low) < capacity
    }

    /// Record the result of a scan (after [`begin_scan`](Self::begin_scan)): `cursors` are
    /// those of the attached, live, not evicted subscribers (read with Acquire by the caller)
    /// when the publisher is at `p`. Counts the scan (the control line's `epoch`).
    pub(crate) fn scanned(&self, ctl: &Control, cursors: impl Iterator<Item = u64>, p: u64) {
        let low = cursors
            // A cursor ahead of the publisher (hostile or stale) holds nothing back.
            .map(|c| if (p.wrapping_sub(c) as i64) < 0 { p } else { c })
            .min()
            .unwrap_or(u64::MAX);
        self.low.set(low);
        // Release: a joiner that reads the new count (Acquire) was counted by this scan or an
        // earlier one (see `Subscriber::join`). Written by the publisher only.
        ctl.epoch.store(
            ctl.epoch.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
    }

    /// Clear the joiners' request before reading the cursors. SYNC POINT (bcast-join): the
    /// clear, a SeqCst fence, then the scan's loads of places and cursors; a joiner claims its
    /// place and stores its cursor, a SeqCst fence, then sets the request
    /// ([`Subscriber::join`]). Either the scan sees the joiner's cursor, or the joiner's
    /// request comes after the clear and the next `room` sees it.
    pub(crate) fn begin_scan(&self, ctl: &Control) {
        ctl.rescan.store(0, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }
}
