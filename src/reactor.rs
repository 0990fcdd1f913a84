//! Async waiting: one process-wide thread sleeps on the doorbells of every channel that has an
//! async waiter, and wakes the waiting tasks.
//!
//! # Design
//!
//! A blocking waiter sleeps in `FUTEX_WAIT` on its doorbell's `seq` word (`wait.rs`). An async
//! waiter must not block its executor's thread, so someone else has to sleep for it. Here that
//! is a **reactor thread**, started on the first async wait of a process, that sleeps on many
//! doorbells at once with `futex_waitv(2)` (Linux 5.16): up to 127 registered words and one
//! private word of its own (`ctl`, bumped whenever the registration set changes) per call, and
//! one more thread for each further 127 words. The notifier's side is untouched: the same
//! `sleepers` flag, the same bump of `seq` and `FUTEX_WAKE`, so a sender neither knows nor pays
//! for whether its receiver waits synchronously or asynchronously, and nothing on the
//! synchronous hot path changed.
//!
//! The alternatives, and why not:
//!
//! - *A thread per waiting channel* (what `spawn_blocking` around `recv` gives today) costs a
//!   thread, its stack and a context switch per channel: the very thing async users want gone.
//! - *An eventfd handed between processes* (over a UNIX socket, `SCM_RIGHTS`) would let the
//!   waiter's executor poll it in its own epoll, with no thread at all. But the notifier would
//!   have to `write` it, so a process would need every peer's eventfd before it could wake
//!   them, a side channel to pass them, and a new field in the header saying "this waiter is
//!   async": a second wake-up protocol beside the futex one, for every kind of channel, and
//!   descriptors that a `kill -9` or a `fork` leaves in odd places. The futex word is already
//!   in shared memory, and the kernel already keys it across processes.
//! - *Polling* (each future re-polling itself on a timer) costs CPU in proportion to the number
//!   of idle waiters and adds the timer's period to every wake-up.
//!
//! The reactor's costs: one thread per 127 waiting futures, and one extra hop (the reactor's
//! wake-up, then the executor's) in each wake-up. On kernels older than 5.16 (`ENOSYS`), each
//! reactor thread falls back to sleeping on its own word for at most [`FALLBACK_NAP`] and then
//! asking the kernel, word by word, whether each registered word still holds its value (one
//! `FUTEX_WAIT` with a zero timeout each): wake-ups usually up to 2 ms late (later while the
//! registration set keeps changing, since a change skips that round's scan; never later than
//! the 40 ms liveness wake-up), and 500 system calls a second per idle waiter; with nothing
//! registered the thread sleeps without a deadline. Any other refusal of `futex_waitv`
//! (`EPERM` from a seccomp filter that does not know the call, as Docker's and systemd's
//! filters answer) takes the same fallback rather than retrying in a loop.
//! (`SHMCHAN_NO_FUTEX_WAITV=1` in the environment of a process, read when its reactor threads
//! start, forces the fallback: how the tests exercise it.)
//!
//! What an idle waiter costs grows with their number: each one is a registration (of its own,
//! even when many wait on one word: 2,000 futures on one MPMC channel take 16 threads) and a
//! poll every 40 ms (below). Reactor threads are never retired: a burst of N waiting futures
//! leaves about N/127 threads, asleep, for the life of the process. If no thread can be
//! started (a thread limit), a waiting future naps 1 ms on its executor's thread and polls
//! again, and the next registration tries to start one again.
//!
//! Wakers run on the reactor thread that serves up to 127 registrations: a slow waker delays
//! the others; one that panics is caught (the others are still woken, and the thread goes
//! on). Wakers are cloned and dropped outside the reactor's lock, so one whose drop drops a
//! task owning another of our futures cannot deadlock.
//!
//! # The protocol
//!
//! An async wait ([`Wait::poll`]) first tries the operation (the fast path: no reactor, no
//! system call). If it must wait, it does what a blocking sleeper does before `futex_wait`:
//! [`Doorbell::prepare`] (read `seq`, set the `sleepers` flag, SeqCst fence, membarrier), then
//! tries again (the re-check); if still pending, it registers `(seq's address, the value
//! read, the task's waker)` with the reactor and returns `Pending`. The reactor's
//! `futex_waitv` returns at once if a word no longer holds its registered value, or when it is
//! woken; either way it wakes that word's tasks. So a notifier that published after the
//! re-check saw the flag (the two fences, as in `wait.rs`) and bumped `seq`, and the task is
//! woken; one that published before it was seen by the re-check.
//!
//! A registration lives until its future is ready or dropped ([`Wait`]'s `Drop` removes it), or
//! until its word changes (the reactor removes it as it wakes the task, which then arms and
//! registers again with the new value). While `seq` still holds the value an earlier
//! `prepare` read, the flag that `prepare` set is still set (a notifier clears it only just
//! before bumping `seq`), so polling again needs no new `prepare` and its membarrier: the
//! guarantee "every later publish is followed by a bump past that value" still holds.
//!
//! # Liveness, cancellation, unmapping, fork
//!
//! - Every [`PROBE_INTERVAL`] the reactor wakes every registered task (keeping its
//!   registration), which polls again and asks the kernel whether its peers are alive when a
//!   probe is due, so a peer killed with `kill -9` ends an async wait as soon as a blocking one.
//!   An idle waiter thus costs one poll per 40 ms (measured: 100 idle receivers use 0.03 to
//!   0.05 s of CPU in 2 s, `tests/async.rs`).
//! - A future takes a message only in the poll that returns `Ready`, and its registration is
//!   removed when it is dropped: dropping one loses nothing and leaves nothing registered.
//! - The reactor never reads a registered word itself: it only hands addresses to the kernel
//!   (`futex_waitv`, `FUTEX_WAIT`), which reads them with checked accesses. So a word whose
//!   handle was dropped (even one whose future was leaked with `mem::forget` and so never
//!   deregistered) costs at most an `EFAULT` or a spurious wake, never a crash.
//! - Threads are not copied by `fork`. A forked child's copies of handles refuse every call (as
//!   disconnected) before any reactor is involved, and a child's own new handles get a reactor
//!   of their own: each reactor records the fork generation it was made in, and one from
//!   another generation is never touched (its lock may have been held at the fork).
//!
//! Under loom the reactor is a loop the model runs on a thread of its own
//! ([`loom_run`]), and `futex_waitv` is modelled by the futex model of `wait.rs`.

use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use crate::layout::Doorbell;
use crate::sync::{AtomicU32, Mutex, Ordering};
use crate::wait::{PROBE_INTERVAL, Poll, SHORT_NAP};

/// Registered words per reactor thread: `futex_waitv` takes 128 words, one of which is the
/// thread's own `ctl`.
const PER_THREAD: usize = if cfg!(loom) { usize::MAX } else { 127 };

/// The longest sleep of a reactor thread on a kernel without `futex_waitv` (see the module
/// docs).
const FALLBACK_NAP: Duration = Duration::from_millis(2);

/// An async waiter polls again after the reactor's periodic wake-up; it asks the kernel about
/// its peers if its last probe is at least this old (a little less than the reactor's period,
/// so that each periodic wake-up finds a probe due).
const PROBE_EVERY: Duration = Duration::from_millis(PROBE_INTERVAL.as_millis() as u64 * 3 / 4);

/// One registered word.
struct Entry {
    /// Unique among every registration of this reactor, so a stale key never matches.
    id: u64,
    /// The address of a doorbell's `seq` (see the module docs on unmapping).
    word: usize,
    /// The value the waiter read before its re-check.
    expected: u32,
    waker: Waker,
    /// The waiter's process cannot issue `membarrier` (`wait.rs`): wake it at least every
    /// [`SHORT_NAP`].
    short: bool,
}

struct State {
    /// Registrations; slot `i` belongs to thread `i / PER_THREAD`. A freed slot is reused, but
    /// entries never move, so a thread's set changes only through `register`/`update` (which
    /// bump `ctl`) or `deregister` (which needs no wake: the thread at worst sleeps on one
    /// word too many until its next wake-up).
    slots: Vec<Option<Entry>>,
    next_id: u64,
    /// Reactor threads started.
    threads: usize,
    /// A thread may be asleep with the current `ctl` value: whoever bumps `ctl` must wake it.
    parked: bool,
}

/// Wake tasks from a reactor thread. A waker is the executor's code: one that panics must not
/// take the thread (and every other registration it serves) down with it, nor keep the
/// others from being woken.
fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake()));
    }
}

/// The process's reactor (one per fork generation).
pub(crate) struct Reactor {
    state: Mutex<State>,
    /// Bumped (under the lock) whenever the registration set changes; every reactor thread
    /// also sleeps on it.
    ctl: AtomicU32,
    /// The fork generation this reactor belongs to (its threads exist only there).
    generation: u32,
    /// Loom only: set to end [`loom_run`].
    #[cfg(loom)]
    stop: AtomicU32,
}

/// A registration's handle.
#[derive(Clone, Copy)]
struct Key {
    slot: usize,
    id: u64,
}

impl Reactor {
    fn new(generation: u32) -> Reactor {
        Reactor {
            state: Mutex::new(State {
                slots: Vec::new(),
                next_id: 1,
                threads: 0,
                parked: false,
            }),
            ctl: AtomicU32::new(0),
            generation,
            #[cfg(loom)]
            stop: AtomicU32::new(0),
        }
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a change to the set (under the lock): make every thread look at it again.
    /// Returns whether a thread must be woken (after unlocking).
    fn changed(&self, st: &mut State) -> bool {
        // Relaxed: written and read under the lock; the kernel compares it in `futex_waitv`.
        self.ctl.fetch_add(1, Ordering::Relaxed);
        std::mem::replace(&mut st.parked, false)
    }

    fn ring_ctl(&self, wake: bool) {
        if wake {
            crate::wait::futex::wake(&self.ctl);
        }
    }

    /// Register, or update the registration `key` (if it still exists) to, `word` holding
    /// `expected` and `waker`. `None` if no reactor thread can run (the caller polls instead).
    fn register(
        &'static self,
        key: Option<Key>,
        word: &AtomicU32,
        expected: u32,
        waker: &Waker,
        short: bool,
    ) -> Option<Key> {
        // The wrapper's address is the word's (`sync.rs` atomics are `repr(transparent)`).
        let addr = std::ptr::from_ref(word) as usize;
        // Wakers are cloned and dropped outside the lock: their code is the executor's, and
        // dropping one may drop a task that owns another of our futures, whose `Drop` takes
        // this lock (a deadlock if we held it).
        let mut fresh = Some(waker.clone());
        let mut st = self.lock();
        if let Some(k) = key {
            if let Some(Some(e)) = st.slots.get_mut(k.slot) {
                if e.id == k.id {
                    if !e.waker.will_wake(waker) {
                        if let Some(w) = fresh.as_mut() {
                            std::mem::swap(&mut e.waker, w); // the old one is dropped below
                        }
                    }
                    if e.word == addr && e.expected == expected && e.short == short {
                        drop(st);
                        drop(fresh);
                        return Some(k); // nothing the threads wait on changed
                    }
                    e.word = addr;
                    e.expected = expected;
                    e.short = short;
                    let wake = self.changed(&mut st);
                    drop(st);
                    drop(fresh);
                    self.ring_ctl(wake);
                    return Some(k);
                }
            }
        }
        let slot = match st.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                st.slots.push(None);
                st.slots.len() - 1
            }
        };
        // A thread for this slot's shard; if none can be started now (a thread limit), the
        // caller naps and polls instead, and the next registration tries again.
        if slot / PER_THREAD >= st.threads && !self.start_thread(&mut st) {
            drop(st);
            drop(fresh);
            return None;
        }
        let id = st.next_id;
        st.next_id += 1;
        st.slots[slot] = Some(Entry {
            id,
            word: addr,
            expected,
            waker: fresh.take().unwrap_or_else(|| waker.clone()),
            short,
        });
        let wake = self.changed(&mut st);
        drop(st);
        self.ring_ctl(wake);
        Some(Key { slot, id })
    }

    /// Remove the registration `key` if it still exists (its waker is dropped after the lock
    /// is released: see `register`).
    fn deregister(&self, key: Key) {
        let mut st = self.lock();
        let old = match st.slots.get_mut(key.slot) {
            Some(slot) if slot.as_ref().is_some_and(|e| e.id == key.id) => slot.take(),
            _ => None,
        };
        drop(st);
        drop(old);
    }

    #[cfg(not(loom))]
    fn start_thread(&'static self, st: &mut State) -> bool {
        let shard = st.threads;
        let spawned = std::thread::Builder::new()
            .name(format!("shmchan-reactor-{shard}"))
            .stack_size(256 * 1024) // wakers run here: room for an executor's wake path
            .spawn(move || self.run(shard));
        if spawned.is_ok() {
            st.threads += 1;
        }
        spawned.is_ok()
    }

    /// Under loom the model runs the one reactor loop itself ([`loom_run`]).
    #[cfg(loom)]
    fn start_thread(&'static self, st: &mut State) -> bool {
        st.threads = 1;
        true
    }

    /// Under the lock: the words thread `shard` waits on, after its own `ctl`; and whether any
    /// of them is `short`.
    fn build(&self, st: &mut State, shard: usize, list: &mut Vec<(usize, u32, Key)>) -> bool {
        list.clear();
        let mut short = false;
        let start = shard.saturating_mul(PER_THREAD);
        let end = start.saturating_add(PER_THREAD).min(st.slots.len());
        for (i, e) in st.slots.iter().enumerate().take(end).skip(start) {
            if let Some(e) = e {
                list.push((e.word, e.expected, Key { slot: i, id: e.id }));
                short |= e.short;
            }
        }
        st.parked = true;
        short
    }

    /// Remove the registrations `keys` (those still there with their word and value) and every
    /// other one on the same word with the same value, and wake their tasks.
    fn fire(&self, fired: &[(usize, u32, Key)]) {
        let mut wake = Vec::new();
        {
            let mut st = self.lock();
            for slot in st.slots.iter_mut() {
                let hit = slot.as_ref().is_some_and(|e| {
                    fired
                        .iter()
                        .any(|&(w, v, k)| k.id == e.id || (w == e.word && v == e.expected))
                });
                if hit {
                    if let Some(e) = slot.take() {
                        wake.push(e.waker);
                    }
                }
            }
        }
        wake_all(wake);
    }

    /// Wake the tasks of thread `shard` (all of them, or only the `short` ones), keeping their
    /// registrations: they poll again (and probe their peers when due).
    fn tick(&self, shard: usize, only_short: bool) {
        let wake: Vec<Waker> = {
            let st = self.lock();
            let start = shard.saturating_mul(PER_THREAD);
            let end = start.saturating_add(PER_THREAD).min(st.slots.len());
            st.slots[start.min(end)..end]
                .iter()
                .flatten()
                .filter(|e| !only_short || e.short)
                .map(|e| e.waker.clone())
                .collect()
        };
        wake_all(wake);
    }

    /// A reactor thread: sleep on `ctl` and the words of slots
    /// `[shard * PER_THREAD, (shard + 1) * PER_THREAD)`; wake the tasks whose word changed;
    /// every [`PROBE_INTERVAL`], wake all of them.
    #[cfg(not(loom))]
    fn run(&'static self, shard: usize) {
        let mut list = Vec::with_capacity(PER_THREAD);
        let mut waitv = Vec::with_capacity(crate::sys::FUTEX_WAITV_MAX);
        let mut fallback = std::env::var_os("SHMCHAN_NO_FUTEX_WAITV").is_some_and(|v| v == "1");
        let mut next_tick: Option<Instant> = None;
        let mut next_nap: Option<Instant> = None;
        loop {
            let (ctl, short) = {
                let mut st = self.lock();
                // Relaxed: written under the lock we hold.
                let ctl = self.ctl.load(Ordering::Relaxed);
                (ctl, self.build(&mut st, shard, &mut list))
            };
            let now = Instant::now();
            if list.is_empty() {
                next_tick = None;
            } else if next_tick.is_none() {
                next_tick = Some(now + PROBE_INTERVAL);
            }
            next_nap = if short {
                Some(next_nap.unwrap_or(now + SHORT_NAP))
            } else {
                None
            };
            let mut deadline = [next_tick, next_nap].into_iter().flatten().min();
            // Nothing registered: sleep on `ctl` alone, with no deadline, even in the fallback.
            if fallback && !list.is_empty() {
                deadline = Some(deadline.map_or(now + FALLBACK_NAP, |d| d.min(now + FALLBACK_NAP)));
            }
            let outcome = if fallback {
                crate::wait::futex::wait(&self.ctl, ctl, deadline.map(|d| d - now));
                Err(libc::EAGAIN) // look at every word
            } else {
                waitv.clear();
                waitv.push(crate::sys::FutexWaitv::shared_u32(
                    self.ctl.as_ptr() as usize,
                    ctl,
                ));
                waitv.extend(
                    list.iter()
                        .map(|&(w, v, _)| crate::sys::FutexWaitv::shared_u32(w, v)),
                );
                let abs = deadline.map(|d| timespec_after(d.saturating_duration_since(now)));
                crate::sys::futex_waitv(&waitv, abs).map_err(|e| e.raw_os_error().unwrap_or(0))
            };
            match outcome {
                Ok(0) => {}
                Ok(i) => {
                    if let Some(&hit) = list.get(i - 1) {
                        self.fire(&[hit]);
                    }
                }
                Err(libc::ETIMEDOUT | libc::EINTR) => {}
                // ENOSYS (before Linux 5.16), or refused: EPERM from a seccomp filter that does
                // not know the call (Docker's default profile before 20.10.x, systemd's
                // `SystemCallFilter=`), EINVAL. Anything but the answers the loop expects:
                // fall back to naps for good, rather than retry the call in a hot loop.
                Err(e) if e != libc::EAGAIN && e != libc::EFAULT => fallback = true,
                // EAGAIN: some word did not hold its value; EFAULT: some word is not mapped
                // (a future leaked with its handle dropped). Unless `ctl` moved (then the set
                // is simply rebuilt), ask the kernel about each word.
                Err(_) => {
                    // Relaxed: only compared; a stale value costs one more round.
                    if self.ctl.load(Ordering::Relaxed) == ctl {
                        let changed: Vec<_> = list
                            .iter()
                            .copied()
                            .filter(|&(w, v, _)| !crate::sys::futex_holds(w, v).unwrap_or(false))
                            .collect();
                        if !changed.is_empty() {
                            self.fire(&changed);
                        }
                    }
                }
            }
            let now = Instant::now();
            if next_tick.is_some_and(|t| now >= t) {
                next_tick = Some(now + PROBE_INTERVAL);
                next_nap = next_nap.map(|_| now + SHORT_NAP);
                self.tick(shard, false);
            } else if next_nap.is_some_and(|t| now >= t) {
                next_nap = Some(now + SHORT_NAP);
                self.tick(shard, true);
            }
        }
    }
}

/// `CLOCK_MONOTONIC` now plus `d`, as `futex_waitv` takes its deadline.
#[cfg(not(loom))]
fn timespec_after(d: Duration) -> libc::timespec {
    let now = crate::sys::monotonic_now();
    let mut sec = now
        .tv_sec
        .saturating_add(d.as_secs().min(1 << 31) as libc::time_t);
    let mut nsec = now.tv_nsec + d.subsec_nanos() as libc::c_long;
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// The fork generation of this process (always 0 under loom).
fn generation() -> u32 {
    #[cfg(not(loom))]
    return crate::fork::generation();
    #[cfg(loom)]
    return 0;
}

/// The current reactor, as an address (0: none yet). A lock-free slot, not a mutex: a mutex
/// held by another thread at a `fork` would stay locked in the child.
#[cfg(not(loom))]
static CURRENT: crate::sync::AtomicU64 = crate::sync::AtomicU64::new(0);

/// A mapping of `len` bytes at `base` is going away (a region unmapped, a heap block freed):
/// drop every registration of a word inside it, without waking anyone.
///
/// Only a leaked future (`mem::forget`, so its `Drop` never deregistered), or an
/// `untyped::Waiting` kept after its handle was dropped, can still be registered there: a
/// future borrows its handle, which owns the mapping. Such a registration
/// used to stay until the kernel refused its word (`EFAULT`); but the address is often mapped
/// again (the next channel of the same size lands there), and fresh memory holding the
/// registered value (a new doorbell's `seq` is 0, like most first reads) made `futex_waitv`
/// sleep on it instead: the registration, its waker and its slot stayed for the life of the
/// process (`tests/async.rs::handle_dropped_after_its_future_and_leaked_futures` failed about
/// one run in ten). Does nothing if this process (this fork generation) has no reactor.
#[cfg(not(loom))]
pub(crate) fn forget_range(base: usize, len: usize) {
    // Acquire: pairs with the Release of the CAS in `reactor` (the reactor is initialised).
    let p = CURRENT.load(Ordering::Acquire);
    if p == 0 || len == 0 {
        return;
    }
    // SAFETY: a non-zero value is the address of a leaked `Reactor` (never freed), published
    // by the CAS in `reactor` after it was initialised.
    let r: &'static Reactor = unsafe { &*(p as usize as *const Reactor) };
    if r.generation != generation() {
        return; // another generation's reactor: its lock may have been held at the fork
    }
    let end = base.saturating_add(len);
    let mut gone = Vec::new();
    {
        let mut st = r.lock();
        for slot in st.slots.iter_mut() {
            if slot.as_ref().is_some_and(|e| (base..end).contains(&e.word)) {
                gone.extend(slot.take());
            }
        }
    }
    // As for `deregister`, no thread is woken: one asleep on such a word at worst sleeps on a
    // word too many until its next wake-up, and builds its set anew after it.
    drop(gone); // wakers dropped outside the lock (see `register`)
}

/// The reactor of this process (of this fork generation), made on first use. Reactors are
/// never freed: one per process, plus one per forked child that waits asynchronously itself.
#[cfg(not(loom))]
fn reactor() -> &'static Reactor {
    // Before reading the generation this reactor will be of: a fork after this bumps it in
    // the child, which then makes a reactor of its own (without the handlers, a process whose
    // first wait came before any named channel kept generation 0 in its children, and they
    // registered with this reactor, whose thread they do not have).
    let _ = crate::fork::install_handlers();
    let gen_now = generation();
    loop {
        // Acquire: pairs with the Release of the CAS below (the reactor is initialised).
        let p = CURRENT.load(Ordering::Acquire);
        if p != 0 {
            // SAFETY: a non-zero value is the address of a leaked `Reactor` (never freed),
            // published by the CAS below after it was initialised.
            let r: &'static Reactor = unsafe { &*(p as usize as *const Reactor) };
            if r.generation == gen_now {
                return r;
            }
        }
        let new = Box::into_raw(Box::new(Reactor::new(gen_now)));
        // Release: publishes the initialised reactor; Acquire on failure as for the load.
        match CURRENT.compare_exchange(p, new as usize as u64, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: `new` came from `Box::into_raw` just above and is now shared for ever.
            Ok(_) => return unsafe { &*new },
            // SAFETY: `new` came from `Box::into_raw` above and was never shared.
            Err(_) => drop(unsafe { Box::from_raw(new) }),
        }
        // Another thread installed one meanwhile: use it (if it is of this generation).
    }
}

#[cfg(loom)]
loom::lazy_static! {
    static ref LOOM_REACTOR: Reactor = Reactor::new(0);
}

#[cfg(loom)]
fn reactor() -> &'static Reactor {
    &LOOM_REACTOR
}

/// Loom only: run the reactor loop until [`loom_stop`].
#[cfg(loom)]
pub fn loom_run() {
    let r = reactor();
    let mut list = Vec::new();
    loop {
        let ctl = {
            let mut st = r.lock();
            // Relaxed (both): read under the lock that `loom_stop` sets and bumps them under.
            if r.stop.load(Ordering::Relaxed) != 0 {
                return;
            }
            let ctl = r.ctl.load(Ordering::Relaxed);
            r.build(&mut st, 0, &mut list);
            ctl
        };
        let mut words = vec![(&r.ctl, ctl)];
        words.extend(list.iter().map(|&(w, v, _)| {
            // SAFETY: (model only) the models keep every handle alive until this loop has
            // stopped, so each registered word is live; production never dereferences them
            // (module docs).
            let word = unsafe { &*(w as *const AtomicU32) };
            (word, v)
        }));
        match crate::wait::futex::wait_any(&words) {
            Some(0) | None => {}
            Some(i) => r.fire(&[list[i - 1]]),
        }
    }
}

/// Loom only: end [`loom_run`].
#[cfg(loom)]
pub fn loom_stop() {
    let r = reactor();
    let mut st = r.lock();
    r.stop.store(1, Ordering::Relaxed);
    r.changed(&mut st);
    drop(st);
    crate::wait::futex::wake(&r.ctl);
}

/// The waiting state of one async operation (a future or a stream): see the module docs.
/// Dropping it removes its registration.
pub(crate) struct Wait {
    /// Our registration with `reactor`, if any.
    key: Option<Key>,
    reactor: Option<&'static Reactor>,
    /// The doorbell (its `seq`'s address) our last [`Doorbell::prepare`] was on, and the
    /// `seq` value it read (the flag it set is still set while that `seq` holds it). The
    /// address too: a `Wait` polled on another doorbell (an `untyped::Waiting` kept for the
    /// next operation, on another channel) whose `seq` happens to hold the same value (every
    /// new doorbell starts at 0) must arm that one; skipping it left the notifier seeing no
    /// sleeper, and the task woken only by the reactor's 40 ms tick.
    armed: Option<(usize, u32)>,
    /// When we last asked the kernel about the peers.
    last_probe: Option<Instant>,
}

impl Wait {
    pub(crate) const fn new() -> Wait {
        Wait {
            key: None,
            reactor: None,
            armed: None,
            last_probe: None,
        }
    }

    /// One poll of an async operation: `attempt(probe)` tries it once, as for
    /// [`wait_until`](crate::wait::wait_until). Ready with what it gave, or `Pending` with the
    /// task registered to be woken when `bell` rings (or for the periodic probe).
    #[inline]
    pub(crate) fn poll<R>(
        &mut self,
        cx: &mut Context<'_>,
        bell: &Doorbell,
        mut attempt: impl FnMut(bool) -> Poll<R>,
    ) -> std::task::Poll<R> {
        if let Poll::Ready(r) = attempt(false) {
            self.cancel();
            return std::task::Poll::Ready(r);
        }
        self.poll_slow(cx, bell, &mut attempt)
    }

    #[inline(never)]
    fn poll_slow<R>(
        &mut self,
        cx: &mut Context<'_>,
        bell: &Doorbell,
        attempt: &mut impl FnMut(bool) -> Poll<R>,
    ) -> std::task::Poll<R> {
        let now = Instant::now();
        let probe = match self.last_probe {
            None => {
                self.last_probe = Some(now); // the first wait starts the clock, as in `wait_until`
                false
            }
            Some(t) => now.duration_since(t) >= PROBE_EVERY,
        };
        if probe {
            self.last_probe = Some(now);
        }
        // Arm: set the sleepers flag unless the flag we set is still up (see the module docs).
        // Acquire: pairs with the Release bump in `Doorbell::wake`, as in `prepare`.
        let seq = bell.seq.load(Ordering::Acquire);
        let at = std::ptr::from_ref(&bell.seq) as usize;
        let expected = match self.armed {
            Some((a, s)) if a == at && s == seq => s,
            _ => {
                let s = bell.prepare();
                self.armed = Some((at, s));
                s
            }
        };
        // The re-check: after the flag (and the fences in `prepare`), before registering.
        if let Poll::Ready(r) = attempt(probe) {
            self.cancel();
            return std::task::Poll::Ready(r);
        }
        let reactor = match self.reactor {
            Some(r) if r.generation == generation() => r,
            _ => {
                self.key = None;
                let r = reactor();
                self.reactor = Some(r);
                r
            }
        };
        let short = !crate::wait::asymmetric() && cfg!(not(loom));
        self.key = reactor.register(self.key, &bell.seq, expected, cx.waker(), short);
        if self.key.is_none() {
            // No reactor thread could be started (a thread limit): poll again in a moment
            // rather than hang, napping first so that a waiting task does not spin a core (a
            // millisecond of this executor thread; the next poll tries to start one again).
            std::thread::sleep(Duration::from_millis(1));
            cx.waker().wake_by_ref();
        }
        std::task::Poll::Pending
    }

    /// Remove our registration (if the reactor has not already fired it).
    pub(crate) fn cancel(&mut self) {
        if let (Some(k), Some(r)) = (self.key.take(), self.reactor) {
            // A reactor of another fork generation (a forked copy of this future) is never
            // touched: its lock may have been held at the fork.
            if r.generation == generation() {
                r.deregister(k);
            }
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// A stream's poll, fused: once `poll` gave `Ready(None)` (the channel is disconnected and
/// drained), `Ready(None)` for ever, without polling again (`FusedStream`).
pub(crate) fn poll_fused<T>(
    done: &mut bool,
    poll: impl FnOnce() -> std::task::Poll<Option<T>>,
) -> std::task::Poll<Option<T>> {
    if *done {
        return std::task::Poll::Ready(None);
    }
    let r = poll();
    if let std::task::Poll::Ready(None) = r {
        *done = true;
    }
    r
}

/// How many registrations this process's reactor holds now (tests: cancellation leaves none).
#[doc(hidden)]
pub fn registered_waiters() -> usize {
    let r = reactor();
    if r.generation != generation() {
        return 0;
    }
    r.lock().slots.iter().flatten().count()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A `Wait` that waited on one doorbell and is then polled on another whose `seq` holds
    /// the same value (every new doorbell starts at 0) arms that one too: its sleeper flag is
    /// what makes a notifier bump `seq` and wake the reactor. (It was skipped, and the task
    /// woken only by the reactor's 40 ms tick: an `untyped::Waiting` kept for the next
    /// operation, on another channel.)
    #[test]
    fn a_wait_moved_to_another_doorbell_arms_it() {
        let bell = || Doorbell {
            seq: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
            state: crate::sync::AtomicU64::new(0),
        };
        let (a, b) = (bell(), bell());
        let mut w = Wait::new();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(w.poll(&mut cx, &a, |_| Poll::<()>::Pending).is_pending());
        assert_ne!(
            a.state.load(Ordering::Relaxed) & crate::layout::SLEEPERS,
            0,
            "the first doorbell is armed"
        );
        assert!(w.poll(&mut cx, &b, |_| Poll::<()>::Pending).is_pending());
        assert_ne!(
            b.state.load(Ordering::Relaxed) & crate::layout::SLEEPERS,
            0,
            "the second doorbell is armed"
        );
        w.cancel();
    }
}
