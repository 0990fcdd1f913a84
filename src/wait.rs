//! Waiting: spin, yield, then sleep on a futex word in the shared header.
//!
//! Protocol (the Dekker pattern, one SeqCst fence on each side):
//!
//! ```text
//!  sleeper (ring empty/full)              notifier (just pushed/popped)
//!  s = seq.load(Acquire)                  index.store(Release)       (the publish)
//!  sleepers = 1                           fence(SeqCst)              SYNC POINT (doorbell)
//!  fence(SeqCst)   SYNC POINT (doorbell)  if sleepers != 0 {
//!  re-check the ring; if ready: leave         sleepers = 0
//!  (`sleepers`: the sleeper flag, the high half of `Doorbell::state`, set and cleared by
//!  read-modify-writes since version 8, as the departure count shares the word)
//!  futex_wait(seq, s)                         seq += 1 (Release)
//!                                             futex_wake(seq, all)
//!                                         }
//! ```
//!
//! The two fences guarantee that the sleeper's re-check sees the publish, or the notifier sees
//! the flag (or both); in the second case `seq` changes after `s` was read, so `futex_wait`
//! returns at once or is woken. A notifier that clears the flag wakes *every* sleeper, and
//! each one that still has to wait sets it again before its next re-check; a sleeper that set
//! it after the clear read `seq` before the bump (the clear, then the bump, are ordered before
//! any later read of the new `seq`), so its `futex_wait` returns at once. The flag is not a
//! count on purpose: a sleeper killed while asleep (or between setting the flag and leaving)
//! leaves nothing behind but one spurious wake, after which the next notifier clears it. (A
//! count would stay raised for ever, and every later message would pay a `FUTEX_WAKE`.) The
//! price: a sleeper that finds its message in the re-check leaves the flag set, and the next
//! notifier makes one system call for nobody.
//!
//! The notifier's fence is on every send and receive, and a full fence costs as much as the
//! rest of the operation. So, as `membarrier(2)` describes, the barrier is made asymmetric:
//! every process registers for `MEMBARRIER_CMD_GLOBAL_EXPEDITED` when it attaches, a notifier in
//! a registered process needs only a compiler fence, and a thread about to sleep issues
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` after its own fence, which runs a full barrier
//! on every running thread of every registered process (one that is not running passed one when
//! it was switched out). Either that barrier falls after the notifier's `sleepers` load, and the
//! notifier's publish was visible before the sleeper's re-check; or before it, and the sleeper's
//! flag was visible to the load. A process that cannot issue `membarrier` (seccomp forbids it,
//! or registration failed) keeps the full fence when it notifies; when it *sleeps*, nothing can
//! make its peers' compiler fences enough, so it never sleeps longer than [`SHORT_NAP`]: a
//! wake-up lost to that race is late by at most 1 ms (and an idle waiter there wakes 1,000
//! times a second). Marking the channel so that every notifier fences instead was tried and
//! measured: the one extra load per notify cost 15% of 8-byte streaming
//! (`cargo bench --bench throughput -- spsc_8B`), for every user, to help the rare one. When
//! nobody sleeps, notifying costs one load of a line nobody writes. (loom cannot model
//! `membarrier`, so under loom both sides use the symmetric fences.)
//!
//! Sleeps are bounded (at most [`PROBE_INTERVAL`]) so that a waiter notices a peer killed with
//! `kill -9`, which never rings the bell.

use std::time::{Duration, Instant};

use crate::layout::{Doorbell, SLEEPERS};
use crate::options::WaitStrategy;
use crate::sync::{Ordering, fence};

/// How often a waiting call checks whether its peers are still alive.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_millis(40);

/// The longest sleep of a process that cannot issue `membarrier` (see the module docs).
pub(crate) const SHORT_NAP: Duration = Duration::from_millis(1);

impl Doorbell {
    /// Tell sleepers (if any) that the side they wait for made progress. Call right after the
    /// Release store that published it.
    #[inline]
    pub(crate) fn notify(&self) {
        self.notify_as(NotifyFence::now());
    }

    /// [`notify`](Self::notify) with the fence a ring end chose when it was made.
    #[inline(always)]
    pub(crate) fn notify_as(&self, fence_kind: NotifyFence) {
        // SYNC POINT (doorbell): orders the caller's publish before the `sleepers` load; pairs
        // with the fence (and the membarrier) in `prepare`.
        if !fence_kind.asymmetric {
            full_fence();
        }
        // With the asymmetric barrier, only the compiler is kept from moving the load up (the
        // full fence, out of line, is one too).
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        if self.state.load(Ordering::Relaxed) & SLEEPERS != 0 {
            self.wake();
        }
    }

    /// Wake every sleeper unconditionally (disconnect, attach), clearing the flag first: each
    /// sleeper that must go on waiting sets it again before its next re-check.
    #[cold]
    pub(crate) fn wake(&self) {
        // Relaxed: ordered before the bump below by the bump's Release, which every sleeper
        // that reads the new `seq` synchronises with (so its own flag store comes after this).
        // A read-modify-write of the flag's bits: the departure count shares the word.
        self.state.fetch_and(!SLEEPERS, Ordering::Relaxed);
        // Release: a sleeper that reads the new `seq` with Acquire sees the publish.
        self.seq.fetch_add(1, Ordering::Release);
        futex::wake(&self.seq);
    }

    /// Register as a sleeper. The caller then re-checks its condition and either calls
    /// [`sleep`](Self::sleep) with the returned value or leaves (the flag stays set: one
    /// spurious wake for the next notifier).
    pub(crate) fn prepare(&self) -> u32 {
        // Acquire: pairs with `wake`'s Release; reading a newer `seq` means seeing the publish
        // (and the flag clear) that came before it.
        let seq = self.seq.load(Ordering::Acquire);
        // Relaxed: the fence below orders it before the re-check. (A read-modify-write: the
        // departure count shares the word.)
        self.state
            .fetch_or(crate::layout::SLEEPER, Ordering::Relaxed);
        // SYNC POINT (doorbell): orders the flag before the re-check; pairs with the fence in
        // `notify`, or with the compiler fence there through the membarrier.
        fence(Ordering::SeqCst);
        heavy_barrier();
        seq
    }

    fn sleep(&self, seq: u32, timeout: Option<Duration>) {
        futex::wait(&self.seq, seq, timeout);
    }
}

/// This process's membarrier registration: [`UNREGISTERED`], [`REGISTERED`] or [`REFUSED`].
/// Process-private (it is a static, not shared memory); Relaxed is enough because the kernel's
/// registration, not this flag, is what the barrier relies on, and the flag is only set after
/// the registration call returned.
#[cfg(not(loom))]
static MEMBARRIER: crate::sync::AtomicU32 = crate::sync::AtomicU32::new(UNREGISTERED);
#[cfg(not(loom))]
const UNREGISTERED: u32 = 0;
#[cfg(not(loom))]
const REGISTERED: u32 = 1;
#[cfg(not(loom))]
const REFUSED: u32 = 2;

/// Register this process for expedited global membarriers (called at every attach; registers
/// once per process). Afterwards its notifiers use a compiler fence only; a process that cannot
/// issue the barrier keeps full fences and naps at most [`SHORT_NAP`].
///
/// A forked child is not registered (the kernel resets it with the new address space) but
/// inherits this flag, so a fork handler resets the flag; the child's next attach registers.
pub(crate) fn register_process() {
    #[cfg(not(loom))]
    if MEMBARRIER.load(Ordering::Relaxed) == UNREGISTERED {
        extern "C" fn forked_child() {
            MEMBARRIER.store(UNREGISTERED, Ordering::Relaxed);
        }
        static AT_FORK: std::sync::Once = std::sync::Once::new();
        // SAFETY: registers a handler that only stores to a static atomic, which is
        // async-signal-safe as a fork child handler must be.
        AT_FORK.call_once(|| unsafe {
            libc::pthread_atfork(None, None, Some(forked_child));
        });
        // Registered, and the barrier itself works (seccomp could allow one and not the other).
        let ok = crate::sys::membarrier(crate::sys::MEMBARRIER_REGISTER_GLOBAL_EXPEDITED).is_ok()
            && crate::sys::membarrier(crate::sys::MEMBARRIER_GLOBAL_EXPEDITED).is_ok();
        MEMBARRIER.store(if ok { REGISTERED } else { REFUSED }, Ordering::Relaxed);
    }
}

/// The full fence of a notifier whose process could not register for the asymmetric barrier
/// (`NotifyFence`): out of line, so that the usual (registered) path is one test of a flag
/// that falls through.
#[cold]
#[inline(never)]
fn full_fence() {
    fence(Ordering::SeqCst);
}

/// Which fence a ring end's notifies use: [`asymmetric`]'s answer, asked once when the ring
/// end is made. The answer does not change in a process once it attached (a forked child,
/// where it does, uses no handle it inherited), so a notify tests the ring end's own copy
/// instead of loading the process-wide flag through the GOT on every message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NotifyFence {
    asymmetric: bool,
}

impl NotifyFence {
    /// The answer for this process now (it has attached: [`register_process`] ran).
    pub(crate) fn now() -> NotifyFence {
        NotifyFence {
            asymmetric: asymmetric(),
        }
    }
}

/// May this process's notifiers skip the full fence?
#[inline(always)]
pub(crate) fn asymmetric() -> bool {
    #[cfg(not(loom))]
    return MEMBARRIER.load(Ordering::Relaxed) == REGISTERED;
    #[cfg(loom)]
    return false;
}

/// The sleeper's side of the asymmetric barrier: a full barrier on every running thread of
/// every registered process. Issued whatever this process's own registration gave (the
/// notifiers that skip their fence are in registered processes).
fn heavy_barrier() {
    #[cfg(not(loom))]
    let _ = crate::sys::membarrier(crate::sys::MEMBARRIER_GLOBAL_EXPEDITED);
}

/// What one attempt of a blocking operation gave.
pub(crate) enum Poll<R> {
    Ready(R),
    Pending,
}

/// Repeat `attempt` until it is ready or `deadline` passes (`None` on timeout), waiting between
/// tries as `strategy` says and sleeping on `bell`. `attempt(probe)` must try the operation
/// once; when `probe` is true it should also check that the peers are alive (a system call,
/// asked for at most every [`PROBE_INTERVAL`]). The caller has just tried once and found the
/// operation pending (the first try is the fast path, inlined in the caller).
#[inline(never)]
pub(crate) fn wait_until<R>(
    bell: &Doorbell,
    strategy: WaitStrategy,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(bool) -> Poll<R>,
) -> Option<R> {
    // The clock is first read after 64 tries, not on entry: a wait that ends sooner (a stream
    // whose receiver caught up with its sender, again and again) never reads it. The spin
    // phase and the probe interval count from that first reading, 64 pauses late at most.
    let mut start: Option<Instant> = None;
    let mut last_probe: Option<Instant> = None;
    let mut probe_due = |now: Instant| {
        // Under loom, never: the clock would make the model's branches depend on how long the
        // checker takes ("unexpected exploration state" on a loaded machine), and a heap
        // region's probe asks no kernel (every entry reads as alive), so it adds nothing but
        // branches. Deaths there are the table's (a detach, `declare_dead`).
        if cfg!(loom) {
            return false;
        }
        let last = *last_probe.get_or_insert(now);
        let due = now.duration_since(last) >= PROBE_INTERVAL;
        if due {
            last_probe = Some(now);
        }
        due
    };
    let expired = |now: Instant| deadline.is_some_and(|d| now >= d);

    let spin_for = match strategy {
        WaitStrategy::SpinThenPark(d) => Some(d),
        WaitStrategy::Spin => None,
        WaitStrategy::Park => Some(Duration::ZERO),
    };
    // Spin (and, for `Spin`, never stop), reading the clock once every 64 tries.
    if cfg!(not(loom)) && spin_for != Some(Duration::ZERO) {
        let mut i = 0u32;
        loop {
            crate::sync::spin_loop();
            i = i.wrapping_add(1);
            let mut probe = false;
            if i % 64 == 0 {
                let now = Instant::now();
                if expired(now) {
                    return None;
                }
                let start = *start.get_or_insert(now);
                if spin_for.is_some_and(|d| now.duration_since(start) >= d) {
                    break;
                }
                probe = probe_due(now);
            }
            if let Poll::Ready(r) = attempt(probe) {
                return Some(r);
            }
        }
        for _ in 0..4 {
            crate::sync::yield_now();
            if let Poll::Ready(r) = attempt(false) {
                return Some(r);
            }
        }
    }
    loop {
        let now = Instant::now();
        if expired(now) {
            return None;
        }
        let seq = bell.prepare();
        match attempt(probe_due(now)) {
            Poll::Ready(r) => return Some(r),
            Poll::Pending => {
                let mut nap = if asymmetric() || cfg!(loom) {
                    PROBE_INTERVAL
                } else {
                    SHORT_NAP
                };
                if let Some(d) = deadline {
                    nap = nap.min(d.saturating_duration_since(now));
                }
                bell.sleep(seq, Some(nap));
            }
        }
    }
}

#[cfg(not(loom))]
pub(crate) mod futex {
    use crate::sync::AtomicU32;
    use std::time::Duration;

    pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        // SAFETY: `word` is a live, 4-byte aligned atomic in the mapped header, which the
        // caller's handle keeps mapped for the duration of the call; `AtomicU32` has the same
        // layout as `u32`.
        unsafe { crate::sys::futex_wait(word.as_ptr(), expected, timeout) }
    }

    pub(crate) fn wake(word: &AtomicU32) {
        // SAFETY: as in `wait`.
        unsafe { crate::sys::futex_wake(word.as_ptr()) }
    }
}

/// The futex modelled with loom's mutex and condition variable: `wait` checks the word and
/// blocks under the lock, `wake` notifies under it, so a wake between a sleeper's check and its
/// sleep cannot be lost, as with the kernel's futex. Timeouts are ignored, so a lost wake-up
/// shows up as a deadlock.
#[cfg(loom)]
pub(crate) mod futex {
    use crate::sync::{AtomicU32, Ordering};
    use loom::sync::{Condvar, Mutex};
    use std::time::Duration;

    loom::lazy_static! {
        static ref LOCK: Mutex<()> = Mutex::new(());
        static ref COND: Condvar = Condvar::new();
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
        let guard = LOCK.lock().unwrap();
        if word.load(Ordering::Relaxed) == expected {
            drop(COND.wait(guard).unwrap());
        }
    }

    pub(crate) fn wake(_word: &AtomicU32) {
        let _guard = LOCK.lock().unwrap();
        COND.notify_all();
    }

    /// `futex_waitv` for the async reactor's model (`reactor.rs`): the index of the first word
    /// that does not hold its value, or `None` after a wake (of any word; the caller looks
    /// again). Checked and slept under the lock, so no wake is lost in between.
    pub(crate) fn wait_any(words: &[(&AtomicU32, u32)]) -> Option<usize> {
        let guard = LOCK.lock().unwrap();
        if let Some(i) = words
            .iter()
            .position(|(w, v)| w.load(Ordering::Relaxed) != *v)
        {
            return Some(i);
        }
        drop(COND.wait(guard).unwrap());
        None
    }
}
