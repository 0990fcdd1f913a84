//! The endpoint table: who is attached to a channel, and whether they are still alive.
//!
//! Each entry is one `u64` in the header, written with a single CAS so that a process killed at
//! any instruction leaves it either free or fully claimed:
//!
//! ```text
//!  63            32 31                  2 1   0
//! +----------------+---------------------+-----+
//! |      pid       |  start-time tag     |state|     0 = free (never claimed)
//! +----------------+---------------------+-----+
//! ```
//!
//! `state` is [`ATTACHED`], [`DETACHED`] (the handle was dropped) or [`DEAD`] (a peer found the
//! process gone and reaped the entry). An entry is claimed once and never reused: an SPSC
//! channel's sender that left cannot be replaced, so "every sender that had attached is gone"
//! stays true once it is.
//!
//! Liveness: the tag is the low 30 bits of the process start time in clock ticks since boot
//! (`/proc/<pid>/stat` field 22), so a recycled pid is not mistaken for the peer; a zombie
//! (state `Z`) counts as dead, since it can no longer touch the ring.

use crate::layout::Header;
use crate::sync::{AtomicU64, Ordering};

pub(crate) const ATTACHED: u64 = 1;
pub(crate) const DETACHED: u64 = 2;
pub(crate) const DEAD: u64 = 3;
const STATE_MASK: u64 = 3;
const TAG_MASK: u64 = (1 << 30) - 1;

/// The word this process writes into an entry it claims.
pub(crate) fn my_word() -> u64 {
    let (pid, tag) = my_identity();
    (u64::from(pid) << 32) | ((tag & TAG_MASK) << 2) | ATTACHED
}

#[cfg(not(loom))]
fn my_identity() -> (u32, u64) {
    static ME: std::sync::OnceLock<(u32, u64)> = std::sync::OnceLock::new();
    let pid = crate::sys::getpid();
    // A forked child has another pid: only reuse the cached value for the same pid.
    let &(cached_pid, tag) = ME.get_or_init(|| (pid, start_time(pid).unwrap_or(0)));
    if cached_pid == pid {
        (pid, tag)
    } else {
        (pid, start_time(pid).unwrap_or(0))
    }
}

#[cfg(loom)]
fn my_identity() -> (u32, u64) {
    (1, 1)
}

/// Start time of `pid` in clock ticks since boot, and whether it is a zombie.
#[cfg(not(loom))]
fn stat(pid: u32) -> std::io::Result<(u64, bool)> {
    use std::io::{Read, Write};
    // No allocation: this runs on the empty/full paths of send and receive. The path goes
    // into a stack buffer (std turns a short path into a C string on the stack too), the file
    // into another (the line is a few hundred bytes; the fields we need come well before 1 KiB).
    let mut path = [0u8; 32];
    let mut w = &mut path[..];
    write!(w, "/proc/{pid}/stat")?;
    let left = w.len();
    let path = std::str::from_utf8(&path[..path.len() - left]).map_err(std::io::Error::other)?;
    let mut buf = [0u8; 1024];
    let mut file = std::fs::File::open(path)?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
    // The command name (field 2) is in parentheses and may contain anything: parse after the
    // last ')'. Then: state (field 3) ... starttime (field 22), i.e. index 19 after the state.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| std::io::Error::other("malformed /proc/<pid>/stat"))?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next().unwrap_or("?");
    let start = fields
        .nth(18)
        .and_then(|f| f.parse::<u64>().ok())
        .ok_or_else(|| std::io::Error::other("malformed /proc/<pid>/stat"))?;
    Ok((start, state == "Z" || state == "X"))
}

#[cfg(not(loom))]
fn start_time(pid: u32) -> Option<u64> {
    stat(pid).ok().map(|(s, _)| s)
}

/// Is the process that wrote `word` certainly gone?
#[cfg(not(loom))]
pub(crate) fn is_dead(word: u64) -> bool {
    let pid = (word >> 32) as u32;
    let tag = (word >> 2) & TAG_MASK;
    if pid == 0 || pid > i32::MAX as u32 {
        return true; // no process has this pid: the word is corrupt
    }
    match stat(pid) {
        Ok((start, zombie)) => zombie || (start & TAG_MASK) != tag,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        // /proc unreadable (hidepid, no procfs): fall back to existence only.
        Err(_) => crate::sys::kill0_gone(pid).unwrap_or(false),
    }
}

/// Under loom no process dies.
#[cfg(loom)]
pub(crate) fn is_dead(_word: u64) -> bool {
    false
}

/// Claim a free entry in `range` for this process. On failure says why, in words.
pub(crate) fn attach(
    hdr: &Header,
    range: core::ops::Range<usize>,
    word: u64,
) -> Result<usize, &'static str> {
    let mut any_live = false;
    for i in range {
        let e = &hdr.endpoints[i];
        // SYNC POINT (endpoint): AcqRel CAS; Acquire so that what a previous owner published is
        // visible, Release so that peers reading the entry with Acquire see our setup.
        match e.compare_exchange(0, word, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(i),
            Err(cur) => any_live |= cur & STATE_MASK == ATTACHED,
        }
    }
    Err(if any_live {
        "the channel already has as many of them attached as it allows"
    } else {
        "every place for one was taken by an endpoint that has since left, and a channel's \
         endpoints cannot be replaced"
    })
}

/// Mark our entry detached. Returns false if it no longer holds our word (a peer reaped it as
/// dead, or the header was overwritten), in which case our reference was already dropped for
/// us and must not be dropped again.
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
    /// At least one is attached (and, if probed, alive).
    Live,
    /// Some attached once, and all of them are gone.
    Gone,
}

/// Look at the entries of one role. With `probe`, entries that claim to be attached are
/// checked against the process table, and those whose process is gone are reaped (marked
/// [`DEAD`], their reference dropped). Without it, only what the table says is used (no
/// system call).
#[inline]
pub(crate) fn role_state(hdr: &Header, range: core::ops::Range<usize>, probe: bool) -> RoleState {
    if probe {
        return role_state_probed(hdr, range);
    }
    // The fast path (every send checks its receivers): loads only, no call into the probing
    // code, whose large frame cost as much as a message in the throughput benchmark.
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

#[cold]
#[inline(never)]
fn role_state_probed(hdr: &Header, range: core::ops::Range<usize>) -> RoleState {
    // The caller holds a reference, so no reap here drops the last one.
    reap_dead(hdr, range.clone());
    role_state(hdr, range, false)
}

/// Mark a dead process's entry and drop the reference it held. Only the reaper whose CAS wins
/// drops it, so racing reapers in several processes count it once.
fn reap(hdr: &Header, e: &AtomicU64, w: u64) {
    let dead = (w & !STATE_MASK) | DEAD;
    // AcqRel: as for `detach`, a peer that reads DEAD with Acquire sees what the reaper saw.
    if e.compare_exchange(w, dead, Ordering::AcqRel, Ordering::Relaxed)
        .is_ok()
    {
        release_ref(hdr);
    }
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

/// Reap every entry in `range` whose process is gone; returns whether any entry is still
/// attached by a live process.
pub(crate) fn reap_dead(hdr: &Header, range: core::ops::Range<usize>) -> bool {
    let mut live = false;
    for e in &hdr.endpoints[range] {
        // SYNC POINT (endpoint): Acquire, pairs with `detach`'s Release.
        let w = e.load(Ordering::Acquire);
        if w & STATE_MASK == ATTACHED {
            if is_dead(w) {
                reap(hdr, e, w);
            } else {
                live = true;
            }
        }
    }
    live
}

/// Take a reference to the channel unless it has already been closed (refs reached 0).
pub(crate) fn acquire_ref(hdr: &Header) -> bool {
    // Relaxed: only a first guess for the CAS below, which checks it.
    let mut cur = hdr.refs.load(Ordering::Relaxed);
    loop {
        if cur == 0 {
            return false;
        }
        // Acquire: the new handle sees what handles that detached before it wrote (their
        // Release in `release_ref`). The header itself is published by the ready flag.
        match hdr
            .refs
            .compare_exchange_weak(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => return true,
            Err(c) => cur = c,
        }
    }
}

/// Drop a reference; true if it was the last (the caller then removes the name).
pub(crate) fn release_ref(hdr: &Header) -> bool {
    // AcqRel: the last one out sees every other handle's release before removing the name.
    hdr.refs.fetch_sub(1, Ordering::AcqRel) == 1
}

/// May the slots that endpoint `o` holds be repaired? True if `o` is outside the channel's
/// table (a corrupt stamp), detached (a detached endpoint has no operation in flight, so a slot
/// it holds can only be left from corruption), reaped as dead, or, when `probe` is set, still
/// marked attached but its process is gone (it is then reaped).
pub(crate) fn owner_gone(
    hdr: &Header,
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
    if probe && is_dead(w) {
        reap(hdr, e, w);
        return true;
    }
    false
}
