//! The System V gate's word protocol (`lock.rs`): a lock in one shared `u64`, held by a
//! process's liveness token, and taken over from a holder the kernel says is dead. Apart from
//! the waiting (which needs a clock) so that loom runs exactly this code.
//!
//! ```text
//!  0                free
//!  token id + 1     held by the process whose token that is
//! ```
//!
//! Taking it is a CAS from free, or from exactly the dead holder's value seen, so two takers
//! (or a taker and a late release) cannot both win. SYNC POINT (gate): the taking CAS is
//! Acquire and the releasing CAS Release, so what one holder did under the gate happens before
//! what the next does; a takeover synchronises with nothing (the dead holder released nothing),
//! and every step taken under the gate is a single store or can be redone by the next holder.

use crate::sync::{AtomicU64, Ordering};

/// One try at taking the gate word for `mine` (nonzero). `alive(held)` says whether the holder
/// whose value is `held` is alive. True if we hold it now.
pub(crate) fn try_take(word: &AtomicU64, mine: u64, alive: impl Fn(u64) -> bool) -> bool {
    let mut seen = 0;
    loop {
        // SYNC POINT (gate): Acquire, pairs with the Release in `release`.
        match word.compare_exchange(seen, mine, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(0) => seen = 0,
            // A dead holder's value: take it over from exactly that value.
            Err(held) if seen != held && !alive(held) => seen = held,
            Err(_) => return false,
        }
    }
}

/// Release the gate word if we (`mine`) still hold it (a waiter may have taken it over, having
/// judged us dead: then it is theirs).
pub(crate) fn release(word: &AtomicU64, mine: u64) {
    // SYNC POINT (gate): Release, pairs with the Acquire CAS in `try_take`.
    let _ = word.compare_exchange(mine, 0, Ordering::Release, Ordering::Relaxed);
}
