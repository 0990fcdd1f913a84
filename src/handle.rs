//! What the public handles of every channel kind do around their ring: one attempt at a time
//! (`poll_send`, `poll_recv`), checked against the peers' liveness, and the `try_`, blocking
//! and `_timeout` families built on it. `spsc` and `mpmc` supply only the ring operation.

use std::time::{Duration, Instant};

use crate::chan::Chan;
use crate::endpoint::RoleState;
use crate::error::{
    RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError, WaitForPeerError,
};
use crate::options::WaitStrategy;
use crate::ring::spsc::Error as RingError;
use crate::wait::{Poll, wait_until};

/// One send attempt. `push(probe)` tries the ring once (with `probe`, it may check slot
/// owners' processes) and gives what a success returns (`()`, or a count for a slice).
/// `Ready(Err(value))` means disconnected: `value` is what to hand back to the caller.
///
/// This is the body of the closure every send inlines into its fast path: keep it this small
/// (see [`send_deadline`]). The once-per-call check of a forked child's copy is made by the
/// callers, outside it; the checkpoint of a single message by the ring's push (SPSC) or the
/// caller after it (MPMC, batches, loans).
#[inline(always)]
pub(crate) fn poll_send<T, R>(
    chan: &Chan,
    value: T,
    probe: bool,
    push: impl FnOnce(bool) -> Result<R, RingError>,
) -> Poll<Result<R, T>> {
    // A receiver that dropped its handle is seen at once: the table is read only when an
    // endpoint left since this handle last read it (two loads otherwise; reading the
    // receivers' entries on every send cost 26 of spsc_8B's 100 instructions a message,
    // `.ci/instructions spsc_8B`).
    if chan.receivers_left() {
        return Poll::Ready(Err(value));
    }
    match push(probe) {
        Ok(r) => Poll::Ready(Ok(r)),
        Err(RingError::Broken) => Poll::Ready(Err(value)),
        Err(RingError::WouldBlock) => {
            if probe && chan.peers(true) == RoleState::Gone {
                Poll::Ready(Err(value))
            } else {
                Poll::Pending
            }
        }
    }
}

/// One receive attempt. `Ready(Err(()))` means disconnected (senders gone, ring drained).
#[inline(always)]
pub(crate) fn poll_recv<T>(
    chan: &Chan,
    probe: bool,
    mut pop: impl FnMut(bool) -> Result<T, RingError>,
) -> Poll<Result<T, ()>> {
    match pop(probe) {
        Ok(v) => Poll::Ready(Ok(v)),
        Err(RingError::Broken) => Poll::Ready(Err(())),
        Err(RingError::WouldBlock) => {
            if chan.peers(probe) != RoleState::Gone {
                return Poll::Pending;
            }
            // The senders are gone, but what they published before leaving is still ours:
            // each detach (Release) came after its last publish, and `peers` read the entries
            // with Acquire, so another pop sees everything (and may repair the slots of dead
            // senders, now reaped).
            match pop(true) {
                Ok(v) => Poll::Ready(Ok(v)),
                Err(_) => Poll::Ready(Err(())),
            }
        }
    }
}

/// As [`poll_recv`], for a `pop` too large to be inlined at two call sites (MPMC's): its
/// second call, once the senders are gone, is out of line, so that the first is inlined (with
/// both inline, the MPMC receive was a call: 262 against 231 instructions a message,
/// `.ci/instructions mpmc_8B`; SPSC and frames measured 2 and 15 instructions more this way).
#[inline(always)]
pub(crate) fn poll_recv_outlined<T>(
    chan: &Chan,
    probe: bool,
    mut pop: impl FnMut(bool) -> Result<T, RingError>,
) -> Poll<Result<T, ()>> {
    match pop(probe) {
        Ok(v) => Poll::Ready(Ok(v)),
        Err(RingError::Broken) => Poll::Ready(Err(())),
        Err(RingError::WouldBlock) => {
            if chan.peers(probe) != RoleState::Gone {
                return Poll::Pending;
            }
            pop_after_the_senders_left(&mut pop)
        }
    }
}

/// The last pop of [`poll_recv_outlined`], once the senders are gone, out of line.
#[cold]
#[inline(never)]
fn pop_after_the_senders_left<T>(
    pop: &mut impl FnMut(bool) -> Result<T, RingError>,
) -> Poll<Result<T, ()>> {
    // As in `poll_recv`: what the senders published before leaving is still ours.
    match pop(true) {
        Ok(v) => Poll::Ready(Ok(v)),
        Err(_) => Poll::Ready(Err(())),
    }
}

/// Did every receiver die, one of them asleep waiting for data? A sender about to send asks
/// when a receiver's sleeper flag is set: this send is about to pay for waking it, so it asks
/// the kernel first whether any receiver lives, and the first send after a receiver died
/// asleep is refused, before anything is put in the ring. Its cost is one load of the flag
/// (`receivers_died` is out of line): `try_send` and the async sends call it before their
/// attempt; `send`'s inlined attempt only loads the flag (SPSC's, with the departure count,
/// in one word: `Chan::send_clear`) and calls this from `send_wait` when it is set (a check inside that attempt, keeping the value live across a call, halved
/// 8-byte streaming, `cargo bench --bench throughput -- 'stream/spsc_8B$'`: 40 against 100 M
/// msg/s).
#[inline]
pub(crate) fn receivers_died_asleep(chan: &Chan) -> bool {
    crate::sync::probe(|| chan.receiver_may_sleep() && chan.receivers_died())
}

/// `try_send` on top of a `poll(value, probe)`: probe for dead receivers at most every
/// [`PROBE_INTERVAL`](crate::wait::PROBE_INTERVAL). Inlined like [`send_deadline`], with the
/// probing second attempt out of line: with both attempts here the closure was called from two
/// places and not inlined, and `try_send` + `try_recv` cost 161 instructions a message against
/// 100 for `send` + `recv`; now 103 (`.ci/instructions spsc_8B_try`).
#[inline(always)]
pub(crate) fn try_send<T: Copy, R>(
    chan: &Chan,
    value: T,
    poll: impl Fn(T, bool) -> Poll<Result<R, T>>,
) -> Result<R, TrySendError<T>> {
    if chan.forked() || receivers_died_asleep(chan) {
        return Err(TrySendError::Disconnected(value));
    }
    let r = match poll(value, false) {
        Poll::Pending if chan.probe_due() => poll_again_probing(value, &poll),
        r => r,
    };
    match r {
        Poll::Ready(Ok(r)) => Ok(r),
        Poll::Ready(Err(v)) => Err(TrySendError::Disconnected(v)),
        Poll::Pending => Err(TrySendError::Full(value)),
    }
}

/// The second attempt of [`try_send`], probing the peers: out of line, so that the first one,
/// the only one on the fast path, is the closure's only call site inlined there.
#[cold]
#[inline(never)]
fn poll_again_probing<T: Copy, R>(
    value: T,
    poll: &impl Fn(T, bool) -> Poll<Result<R, T>>,
) -> Poll<Result<R, T>> {
    poll(value, true)
}

/// `send`/`send_timeout` on top of a `poll(value, probe)`. The first attempt is inlined
/// into the caller; only waiting goes out of line.
///
/// Why it is shaped like this (`cargo bench --bench throughput`, 8-byte streaming): on the
/// fast path nothing but the ring's own stores may be written. While the consumer reads the
/// slot line, the producer's store to it waits for the line to come back, and x86 commits
/// stores in order, so every other store queues behind it: a call's register spills cost 15%
/// (75 -> 88 M msg/s in one process), and a copy of `value` kept in memory for a closure to
/// borrow cost two thirds (88 -> 250). So small values reach the waiting loop by value; values
/// larger than [`LARGE`](crate::ring::LARGE) never come here (the handles send them by
/// reference, `T = ()` here, copying them once).
#[inline(always)]
pub(crate) fn send_deadline<T: Copy, R>(
    chan: &Chan,
    wait: &WaitStrategy,
    value: T,
    deadline: Option<Instant>,
    poll: impl Fn(T, bool) -> Poll<Result<R, T>>,
) -> Result<R, SendTimeoutError<T>> {
    // A forked child's copy of a handle does nothing (`fork.rs`).
    if chan.forked() {
        return Err(SendTimeoutError::Disconnected(value));
    }
    // A receiver asleep: the out-of-line path asks the kernel about it first (one load here).
    let r = if crate::sync::probe(|| chan.receiver_may_sleep()) {
        send_wait(chan, wait, value, deadline, poll)
    } else {
        match poll(value, false) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => send_wait(chan, wait, value, deadline, poll),
        }
    };
    send_result(r, value)
}

/// The out-of-line part of [`send_deadline`], taking `value` by value: refuse if every
/// receiver died asleep ([`receivers_died_asleep`]), try once, then wait.
#[inline(never)]
fn send_wait<T: Copy, R>(
    chan: &Chan,
    wait: &WaitStrategy,
    value: T,
    deadline: Option<Instant>,
    poll: impl Fn(T, bool) -> Poll<Result<R, T>>,
) -> Option<Result<R, T>> {
    if receivers_died_asleep(chan) {
        return Some(Err(value));
    }
    if let Poll::Ready(r) = poll(value, false) {
        return Some(r);
    }
    wait_until(&chan.header().space_bell, *wait, deadline, |probe| {
        poll(value, probe)
    })
}

/// What a send returns, from what its wait loop gave (`None`: timed out).
#[inline(always)]
fn send_result<T, R>(r: Option<Result<R, T>>, value: T) -> Result<R, SendTimeoutError<T>> {
    match r {
        Some(Ok(r)) => Ok(r),
        Some(Err(v)) => Err(SendTimeoutError::Disconnected(v)),
        None => Err(SendTimeoutError::Timeout(value)),
    }
}

/// `try_recv` on top of a `poll(probe)`, inlined as [`try_send`].
#[inline(always)]
pub(crate) fn try_recv<T>(
    chan: &Chan,
    mut poll: impl FnMut(bool) -> Poll<Result<T, ()>>,
) -> Result<T, TryRecvError> {
    if chan.forked() {
        return Err(TryRecvError::Disconnected); // a forked child's copy takes nothing
    }
    let r = match poll(false) {
        Poll::Pending if chan.probe_due() => recv_again_probing(&mut poll),
        r => r,
    };
    match r {
        Poll::Ready(r) => r.map_err(|()| TryRecvError::Disconnected),
        Poll::Pending => Err(TryRecvError::Empty),
    }
}

/// The second attempt of [`try_recv`], probing the peers, out of line as
/// [`poll_again_probing`].
#[cold]
#[inline(never)]
fn recv_again_probing<T>(
    poll: &mut impl FnMut(bool) -> Poll<Result<T, ()>>,
) -> Poll<Result<T, ()>> {
    poll(true)
}

/// `recv`/`recv_timeout` on top of a `poll(probe)`; the first attempt is inlined as in
/// [`send_deadline`].
#[inline(always)]
pub(crate) fn recv_deadline<T>(
    chan: &Chan,
    wait: &WaitStrategy,
    deadline: Option<Instant>,
    mut poll: impl FnMut(bool) -> Poll<Result<T, ()>>,
) -> Result<T, RecvTimeoutError> {
    if chan.forked() {
        return Err(RecvTimeoutError::Disconnected); // a forked child's copy takes nothing
    }
    let r = match poll(false) {
        Poll::Ready(r) => Some(r),
        Poll::Pending => recv_wait(chan, wait, deadline, poll),
    };
    match r {
        Some(r) => r.map_err(|()| RecvTimeoutError::Disconnected),
        None => Err(RecvTimeoutError::Timeout),
    }
}

/// The waiting part of [`recv_deadline`], out of line: the strategy is read here, not on the
/// path that finds a message at once.
#[inline(never)]
fn recv_wait<T>(
    chan: &Chan,
    wait: &WaitStrategy,
    deadline: Option<Instant>,
    poll: impl FnMut(bool) -> Poll<Result<T, ()>>,
) -> Option<Result<T, ()>> {
    wait_until(&chan.header().data_bell, *wait, deadline, poll)
}

/// Wait until an endpoint of the other role is attached and alive (see the `wait_for_peer`
/// methods): the first one, or the next one after every earlier one left.
pub(crate) fn wait_for_peer_until(
    chan: &Chan,
    bell: &crate::layout::Doorbell,
    wait: WaitStrategy,
    timeout: Duration,
) -> Result<(), WaitForPeerError> {
    let attempt = |_probe: bool| {
        if chan.forked() {
            return Poll::Ready(Err(WaitForPeerError::Disconnected));
        }
        match chan.peers(false) {
            // The table says attached: ask the kernel whether it is alive.
            RoleState::Live if chan.peers(true) == RoleState::Live => Poll::Ready(Ok(())),
            // None now: wait for the next, unless none can come any more.
            _ if !chan.joinable() => Poll::Ready(Err(WaitForPeerError::Disconnected)),
            _ => Poll::Pending,
        }
    };
    if let Poll::Ready(r) = attempt(false) {
        return r;
    }
    // Joiners ring both doorbells after claiming their entry.
    wait_until(bell, wait, crate::chan::deadline_after(timeout), attempt)
        .unwrap_or(Err(WaitForPeerError::Timeout))
}

/// The read-only queries every handle has, for an `impl` block whose type has a
/// `fn chan(&self) -> &Chan`. `$peer` names the other side ("sender" or "receiver").
macro_rules! queries {
    // An SPSC handle (`fn slots(&self) -> &Slots` too): the shared `tail` is a hint there, and
    // `len` follows the stamps from it (`ring::spsc::published`).
    ($peer:literal, spsc) => {
        /// Messages in the ring now (a snapshot: the other side may be adding or taking some).
        pub fn len(&self) -> usize {
            let cap = self.chan().geo.capacity;
            let (head, tail) = crate::ring::spsc::published(self.chan().header(), self.slots(), cap);
            tail.wrapping_sub(head).min(cap) as usize
        }

        crate::handle::queries!(@rest $peer);
    };
    ($peer:literal) => {
        /// Messages in the ring now (a snapshot: the other side may be adding or taking some).
        pub fn len(&self) -> usize {
            crate::ring::len(self.chan().header(), self.chan().geo.capacity)
        }

        crate::handle::queries!(@rest $peer);
    };
    (@rest $peer:literal) => {

        /// Is the ring empty now?
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }

        /// Is the ring full now?
        pub fn is_full(&self) -> bool {
            self.len() == self.capacity()
        }

        /// How many messages the ring holds (the requested capacity rounded up to a power of
        /// two).
        pub fn capacity(&self) -> usize {
            self.chan().geo.capacity as usize
        }

        crate::handle::liveness_queries!($peer);
    };
}
pub(crate) use queries;

/// `is_disconnected` and `is_connected`, for an `impl` block whose type has a
/// `fn chan(&self) -> &Chan` (every handle, typed or not). `$peer` names the other side.
macro_rules! liveness_queries {
    ($peer:literal) => {
        #[doc = concat!("Is every ", $peer, " gone (dropped, or its process died)? `false` \
                         before any ", $peer, " has attached. Asks the kernel about each \
                         attached ", $peer, " (a system call each). Always `true` for a \
                         forked child's copy of a handle.")]
        pub fn is_disconnected(&self) -> bool {
            self.chan().forked()
                || self.chan().peers(true) == crate::endpoint::RoleState::Gone
        }

        #[doc = concat!("Is a ", $peer, " attached and alive now? Asks the kernel about each \
                         attached ", $peer, " (a system call each), so it is exact even for a \
                         peer killed a moment ago, in another pid namespace, or one that \
                         called `exec`. Always `false` for a forked child's copy of a handle.")]
        pub fn is_connected(&self) -> bool {
            !self.chan().forked()
                && self.chan().peers(true) == crate::endpoint::RoleState::Live
        }
    };
}
pub(crate) use liveness_queries;

/// `wait_for_peer` for a handle type with `fn chan(&self) -> &Chan` and
/// `fn wait_strategy(&self) -> WaitStrategy`;
/// `$peer` names the other side, `$bell` the doorbell this side waits on, `$doc_example` the
/// runnable example.
macro_rules! wait_for_peer {
    ($peer:literal, $bell:ident, $doc_example:literal) => {
        #[doc = concat!("Wait until a ", $peer, " is attached and alive, at most `timeout` \
            (`Duration::MAX`: as long as it takes). Useful before a benchmark or a first \
            message that must not sit in the ring unread.")]
        ///
        /// # Errors
        #[doc = concat!("[`WaitForPeerError::Timeout`](crate::WaitForPeerError::Timeout) if no ", $peer,
            " attached in time; [`WaitForPeerError::Disconnected`](crate::WaitForPeerError::Disconnected) \
            if every ", $peer, " that attached has gone.")]
        ///
        #[doc = $doc_example]
        pub fn wait_for_peer(
            &self,
            timeout: std::time::Duration,
        ) -> Result<(), crate::WaitForPeerError> {
            let chan = self.chan();
            crate::handle::wait_for_peer_until(chan, &chan.header().$bell, self.wait_strategy(), timeout)
        }
    };
}
pub(crate) use wait_for_peer;

/// A `Debug` that names the channel and does not require `T: Debug`.
macro_rules! debug_impl {
    ($ty:ident, $label:literal) => {
        impl<T: crate::Pod> std::fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct($label)
                    .field("name", &self.chan().name)
                    .field("backend", &self.chan().backend)
                    .field("capacity", &self.capacity())
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use debug_impl;
