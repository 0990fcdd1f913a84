//! The endpoint table: who is attached to a channel, and whether they are still alive.
//!
//! Each entry is one `u64` in the header, written with a single CAS so that a process killed at
//! any instruction leaves it either free or fully claimed:
//!
//! ```text
//!  63        34 33                    2 1   0
//! +------------+-----------------------+-----+
//! |  pid (30)  |  token (32)           |state|     0 = free (never claimed)
//! +------------+-----------------------+-----+
//! ```
//!
//! `state` is [`ATTACHED`], [`DETACHED`] (the handle was dropped) or [`DEAD`] (a peer found the
//! process gone and marked it). An entry is claimed once and never reused: an SPSC channel's
//! sender that left cannot be replaced, so "every sender that had attached is gone" stays true
//! once it is.
//!
//! Liveness is the kernel's word, never a guess from `/proc` (see `region/lock.rs`): the
//! claimer takes the entry's *witness* (a lock the kernel releases when the process exits,
//! execs, or drops the handle) before its CAS, and keeps it until after it marks the entry
//! detached. An entry that says ATTACHED while its witness is gone belongs to a dead process.
//! `token` is what the witness needs besides the entry index (System V: the process's token
//! id; 0 otherwise). `pid` is the claimer's pid as its own pid namespace numbers it, for
//! people reading the table; nothing is decided on it.

use crate::layout::Header;
use crate::region::Region;
use crate::sync::{AtomicU64, Ordering};

pub(crate) const ATTACHED: u64 = 1;
pub(crate) const DETACHED: u64 = 2;
pub(crate) const DEAD: u64 = 3;
const STATE_MASK: u64 = 3;
const PID_MASK: u64 = (1 << 30) - 1;

/// The word a process with pid `pid` and liveness token `token` writes into an entry it claims.
pub(crate) fn word(pid: u32, token: u32) -> u64 {
    ((u64::from(pid) & PID_MASK) << 34) | (u64::from(token) << 2) | ATTACHED
}

/// The witness token an entry word carries.
pub(crate) fn token_of(w: u64) -> u32 {
    (w >> 2) as u32
}

/// Claim a free entry in `range` for this process: take its witness, then CAS it from free to
/// `word`. `Ok(Err(why))` when none is free, in words.
pub(crate) fn attach(
    hdr: &Header,
    region: &Region,
    range: core::ops::Range<usize>,
    word: u64,
) -> std::io::Result<Result<usize, &'static str>> {
    let mut any_live = false;
    for i in range {
        let e = &hdr.endpoints[i];
        // Relaxed: a first look; the CAS below decides.
        let cur = e.load(Ordering::Relaxed);
        if cur != 0 {
            any_live |= cur & STATE_MASK == ATTACHED;
            continue;
        }
        if !region.hold_endpoint(i)? {
            continue; // another process is claiming it
        }
        // SYNC POINT (endpoint): AcqRel CAS; Release so that peers reading the entry with
        // Acquire see our setup.
        match e.compare_exchange(0, word, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(Ok(i)),
            Err(cur) => {
                region.release_endpoint(i);
                any_live |= cur & STATE_MASK == ATTACHED;
            }
        }
    }
    Ok(Err(if any_live {
        "the channel already has as many of them attached as it allows"
    } else {
        "every place for one was taken by an endpoint that has since left, and a channel's \
         endpoints cannot be replaced"
    }))
}

/// Mark our entry detached. Returns false if it no longer holds our word (a peer marked it
/// dead, or the header was overwritten).
pub(crate) fn detach(e: &AtomicU64, word: u64) -> bool {
    // SYNC POINT (endpoint): Release, so a peer that sees DETACHED with Acquire also sees every
    // message this handle published before dropping.
    e.compare_exchange(
        word,
        (word & !STATE_MASK) | DETACHED,
        Ordering::AcqRel,
        Ordering::Relaxed,
    )
    .is_ok()
}

/// What the entries in a range say about that role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoleState {
    /// No endpoint of this role has attached yet.
    NeverAttached,
    /// At least one is attached (and, if just probed, alive).
    Live,
    /// Some attached once, and all of them are gone.
    Gone,
}

/// What the entries of one role say, from the table alone (no system call). An entry whose
/// process died reads as attached until someone probes it ([`reap_dead`]).
#[inline]
pub(crate) fn role_state(hdr: &Header, range: core::ops::Range<usize>) -> RoleState {
    // The fast path (every send checks its receivers): loads only.
    let mut seen = false;
    for e in &hdr.endpoints[range] {
        // SYNC POINT (endpoint): Acquire, pairs with `detach`'s Release.
        let w = e.load(Ordering::Acquire);
        if w & STATE_MASK == ATTACHED {
            return RoleState::Live;
        }
        seen |= w != 0;
    }
    if seen {
        RoleState::Gone
    } else {
        RoleState::NeverAttached
    }
}

/// Mark a dead process's entry. A CAS from exactly the word seen, so that a detach racing
/// with it wins or loses cleanly.
fn reap(e: &AtomicU64, w: u64) {
    let dead = (w & !STATE_MASK) | DEAD;
    // AcqRel: as for `detach`, a peer that reads DEAD with Acquire sees what the reaper saw.
    let _ = e.compare_exchange(w, dead, Ordering::AcqRel, Ordering::Relaxed);
}

/// Mark an entry DEAD although its process lives on (the loom repair model).
#[cfg(loom)]
pub(crate) fn declare_dead(e: &AtomicU64) {
    // Release: as for `detach`.
    e.store(
        (e.load(Ordering::Relaxed) & !STATE_MASK) | DEAD,
        Ordering::Release,
    );
}

/// Mark every entry in `range` whose process is gone (asking the kernel about each attached
/// one); returns whether any entry is still attached by a live process.
#[cold]
#[inline(never)]
pub(crate) fn reap_dead(hdr: &Header, region: &Region, range: core::ops::Range<usize>) -> bool {
    let mut live = false;
    for (i, e) in hdr.endpoints[range.clone()].iter().enumerate() {
        // SYNC POINT (endpoint): Acquire, pairs with `detach`'s Release.
        let w = e.load(Ordering::Acquire);
        if w & STATE_MASK == ATTACHED {
            if region.endpoint_alive(range.start + i, token_of(w)) {
                live = true;
            } else {
                reap(e, w);
            }
        }
    }
    live
}

/// May the slots that endpoint `o` holds be repaired? True if `o` is outside the channel's
/// table (a corrupt stamp), detached (a detached endpoint has no operation in flight, so a slot
/// it holds can only be left from corruption), marked dead, or, when `probe` is set, still
/// marked attached but the kernel says its process is gone (it is then marked dead).
pub(crate) fn owner_gone(
    hdr: &Header,
    region: &Region,
    used: core::ops::Range<usize>,
    o: usize,
    probe: bool,
) -> bool {
    if !used.contains(&o) {
        return true;
    }
    let e = &hdr.endpoints[o];
    // SYNC POINT (endpoint): Acquire, pairs with `detach`'s and `reap`'s Release: a repair
    // decided on a DETACHED or DEAD entry comes after what the owner (or its reaper) did.
    let w = e.load(Ordering::Acquire);
    if w & STATE_MASK != ATTACHED {
        return true;
    }
    if probe && !region.endpoint_alive(o, token_of(w)) {
        reap(e, w);
        return true;
    }
    false
}
