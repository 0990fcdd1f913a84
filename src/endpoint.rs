//! The endpoint table: who is attached to a channel, and whether they are still alive.
//!
//! Each entry is a *place* for one endpoint: one `u64` in the header, written with a single CAS
//! so that a process killed at any instruction leaves it either as it was or fully claimed:
//!
//! ```text
//!  63           34 33                    2 1   0
//! +---------------+-----------------------+-----+
//! | generation(30)|  token (32)           |state|     0 = never claimed
//! +---------------+-----------------------+-----+
//! ```
//!
//! `state` is [`ATTACHED`], [`DETACHED`] (the handle was dropped) or [`DEAD`] (a peer found the
//! process gone and marked it). A place whose occupant detached or died is *vacant*, and the
//! next `open` or `create` of its role takes it, any number of times: the channel outlives its
//! peers. `generation` counts the place's occupants (1 for the first): each claim moves it on,
//! so a peer's view of an old occupant can never be taken for the new one's. A reaper that read
//! the old occupant's word marks it dead with a CAS from exactly that word, which fails once the
//! place changed hands (even to a process of the same pid and token: the generation differs),
//! and an MPMC slot stamped by an old occupant carries its generation (`ring/mpmc.rs`), so it is
//! repaired as the dead occupant's and never waited for as the new one's. The occupant's pid is
//! kept beside the table ([`Header::pids`]), for people.
//!
//! Liveness is the kernel's word, never a guess from `/proc` (see `region/lock.rs`): the
//! claimer takes the entry's *witness* (a lock the kernel releases when the process exits,
//! execs, or drops the handle) before its CAS, and keeps it until after it marks the entry
//! detached. An entry that says ATTACHED while its witness is gone belongs to a dead process.
//! `token` is what the witness needs besides the entry index (System V: the process's token
//! id; 0 otherwise).

use crate::layout::Header;
use crate::region::Region;
use crate::sync::{AtomicU64, Ordering};

pub(crate) const ATTACHED: u64 = 1;
pub(crate) const DETACHED: u64 = 2;
pub(crate) const DEAD: u64 = 3;
const STATE_MASK: u64 = 3;
/// Generations count modulo 2^30.
const GEN_MASK: u64 = (1 << 30) - 1;

/// The state bits of an entry word: 0 (never claimed), [`ATTACHED`], [`DETACHED`], [`DEAD`].
pub(crate) fn state_of(w: u64) -> u64 {
    w & STATE_MASK
}

/// The witness token an entry word carries.
pub(crate) fn token_of(w: u64) -> u32 {
    (w >> 2) as u32
}

/// The place's generation: how many endpoints have claimed it (modulo 2^30; 0 if none).
pub(crate) fn generation_of(w: u64) -> u32 {
    (w >> 34) as u32
}

/// The word the occupant of generation `generation` with liveness token `token` writes.
fn word(generation: u32, token: u32) -> u64 {
    ((u64::from(generation) & GEN_MASK) << 34) | (u64::from(token) << 2) | ATTACHED
}

/// Claim a place in `range` for this process: a never-claimed one, or one whose occupant
/// detached or died (as the kernel says). Takes the place's witness, then CASes the entry from
/// the vacant word it saw to ours, of the next generation; records `pid` beside it. Returns
/// the index and the word written; `Ok(Err(why))` when every place is held by a live endpoint.
///
/// A live occupant's place is never taken: on POSIX and File regions its witness lock cannot be
/// had while it lives, and on System V its token is asked (`Region::endpoint_alive`).
pub(crate) fn attach(
    hdr: &Header,
    region: &Region,
    range: core::ops::Range<usize>,
    token: u32,
    pid: u32,
) -> std::io::Result<Result<(usize, u64), &'static str>> {
    for i in range {
        let e = &hdr.endpoints[i];
        // A place's word changes under us only a few times (its occupant detaches, a reaper
        // marks it dead, another claimer takes it): look again after each.
        for _ in 0..4 {
            // Relaxed: a first look, to skip live places without taking their witness; the
            // CAS below decides.
            let cur = e.load(Ordering::Relaxed);
            if state_of(cur) == ATTACHED && region.endpoint_alive(i, token_of(cur)) {
                break;
            }
            if !region.hold_endpoint(i)? {
                break; // another process holds this place's witness: alive, or claiming it
            }
            // We hold the witness now. SYNC POINT (endpoint): Acquire, pairs with the Release
            // of the previous occupant's `detach` (or its reaper's `reap`): what it did to the
            // ring happens before what we do.
            let cur = e.load(Ordering::Acquire);
            // Still attached: on System V (no lock to hold) ask its token; on POSIX and File
            // we hold the place's lock, so its occupant is gone (the kernel asked from our own
            // descriptor reports no other holder).
            if state_of(cur) == ATTACHED && region.endpoint_alive(i, token_of(cur)) {
                region.release_endpoint(i);
                break;
            }
            let mine = word(generation_of(cur).wrapping_add(1), token);
            // SYNC POINT (endpoint): AcqRel CAS from exactly the vacant word seen; Release so
            // that peers reading the entry with Acquire see our setup. A reaper marking the
            // old occupant dead meanwhile, or a racing claimer (System V), changes the word:
            // then we look again.
            match e.compare_exchange(cur, mine, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    // Relaxed: for people only (see `Header::pids`).
                    hdr.pids[i].store(pid, Ordering::Relaxed);
                    return Ok(Ok((i, mine)));
                }
                Err(_) => region.release_endpoint(i),
            }
        }
    }
    Ok(Err(
        "the channel already has as many of them attached as it allows",
    ))
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
    /// Some attached once, and none is attached now (until the next one claims a place).
    Gone,
}

/// What the entries of one role say, from the table alone (no system call). An entry whose
/// process died reads as attached until someone probes it ([`reap_dead`]).
#[inline]
pub(crate) fn role_state(hdr: &Header, range: core::ops::Range<usize>) -> RoleState {
    // Loads only: a sender walks this when the departure count moved (`Chan::receivers_left`),
    // a receiver when its ring looks empty.
    let mut seen = false;
    for e in &hdr.endpoints[range] {
        // SYNC POINT (endpoint): Acquire, pairs with `detach`'s Release.
        let w = e.load(Ordering::Acquire);
        if state_of(w) == ATTACHED {
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
/// with it, or a new occupant claiming the place, wins or loses cleanly.
fn reap(hdr: &Header, e: &AtomicU64, w: u64) {
    let dead = (w & !STATE_MASK) | DEAD;
    // AcqRel: as for `detach`, a peer that reads DEAD with Acquire sees what the reaper saw.
    if e.compare_exchange(w, dead, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        departed(hdr);
    }
}

/// Count a departure (an entry that was attached is now detached or dead), after the entry's
/// change: see [`Doorbell::state`](crate::layout::Doorbell).
#[inline]
pub(crate) fn departed(hdr: &Header) {
    // SYNC POINT (departure): Release, after the entry's own store; pairs with the sender's
    // Acquire load in `Chan::receivers_left`: a sender that reads the new count reads the
    // entry as it is now when it then walks the table.
    hdr.data_bell.state.fetch_add(1, Ordering::Release);
}

/// Mark an entry DEAD although its process lives on (the loom repair models).
#[cfg(loom)]
pub(crate) fn declare_dead(hdr: &Header, e: &AtomicU64) {
    // Release: as for `detach`.
    e.store(
        (e.load(Ordering::Relaxed) & !STATE_MASK) | DEAD,
        Ordering::Release,
    );
    departed(hdr);
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
        if state_of(w) == ATTACHED {
            if region.endpoint_alive(range.start + i, token_of(w)) {
                live = true;
            } else {
                reap(hdr, e, w);
            }
        }
    }
    live
}

/// Is an endpoint in `range` attached and alive? Asks the kernel about attached entries in
/// turn, marking dead ones, and stops at the first live one.
#[cold]
#[inline(never)]
pub(crate) fn find_alive(hdr: &Header, region: &Region, range: core::ops::Range<usize>) -> bool {
    for (i, e) in hdr.endpoints[range.clone()].iter().enumerate() {
        // SYNC POINT (endpoint): Acquire, pairs with `detach`'s Release.
        let w = e.load(Ordering::Acquire);
        if state_of(w) == ATTACHED {
            if region.endpoint_alive(range.start + i, token_of(w)) {
                return true;
            }
            reap(hdr, e, w);
        }
    }
    false
}

/// May a slot held by endpoint `o` of generation `generation` (modulo 2^8, as MPMC stamps keep
/// it) be repaired? True if `o` is outside the channel's table (a corrupt stamp); if the place
/// has another generation now (the occupant that stamped the slot has left, and a new one may
/// sit there); if it is detached (a detached endpoint has no operation in flight, so a slot it
/// holds can only be left from corruption) or marked dead; or, when `probe` is set, if it is
/// still marked attached but the kernel says its process is gone (it is then marked dead).
pub(crate) fn owner_gone(
    hdr: &Header,
    region: &Region,
    used: core::ops::Range<usize>,
    o: usize,
    generation: u8,
    probe: bool,
) -> bool {
    if !used.contains(&o) {
        return true;
    }
    let e = &hdr.endpoints[o];
    // SYNC POINT (endpoint): Acquire, pairs with `detach`'s and `reap`'s Release: a repair
    // decided on a DETACHED or DEAD entry comes after what the owner (or its reaper) did.
    let w = e.load(Ordering::Acquire);
    if generation_of(w) as u8 != generation || state_of(w) != ATTACHED {
        return true;
    }
    if probe && !region.endpoint_alive(o, token_of(w)) {
        reap(hdr, e, w);
        return true;
    }
    false
}
