#![allow(clippy::disallowed_types, clippy::disallowed_methods)] // this module is the seam
//! The one seam for concurrency primitives.
//!
//! Every atomic, fence, spin and yield used by the ring, the doorbell, the header handshake and
//! the endpoint table comes from here, so that `RUSTFLAGS="--cfg loom"` swaps them all for
//! loom's models and the model checker runs the production code (`clippy.toml` bans the std
//! atomics everywhere else).

pub(crate) use core::sync::atomic::Ordering;

#[cfg(not(loom))]
use core::sync::atomic as imp;
#[cfg(loom)]
use loom::sync::atomic as imp;

/// Declares a `#[repr(transparent)]` wrapper that derefs to the std (or loom) atomic, so that
/// other modules name only `crate::sync` types and the `disallowed-types` lint can ban the
/// originals everywhere else.
macro_rules! atomic {
    ($name:ident, $int:ty) => {
        #[repr(transparent)]
        pub(crate) struct $name(imp::$name);

        impl $name {
            #[cfg(not(loom))]
            #[allow(dead_code)] // production headers are zeroed memory, never constructed
            pub(crate) const fn new(v: $int) -> Self {
                $name(imp::$name::new(v))
            }
            #[cfg(loom)]
            pub(crate) fn new(v: $int) -> Self {
                $name(imp::$name::new(v))
            }
        }

        impl core::ops::Deref for $name {
            type Target = imp::$name;
            #[inline(always)]
            fn deref(&self) -> &imp::$name {
                &self.0
            }
        }
    };
}

atomic!(AtomicU32, u32);
atomic!(AtomicU64, u64);

#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(loom)]
loom::lazy_static! {
    static ref PAIR_LOCK: loom::sync::Mutex<()> = loom::sync::Mutex::new(());
}

/// Loom only: the lock that models a 16-byte compare-and-swap (`Slots::cas_pair`).
#[cfg(loom)]
pub(crate) fn pair_lock() -> loom::sync::MutexGuard<'static, ()> {
    PAIR_LOCK.lock().unwrap()
}
/// A mutex (std's, or loom's model of it): the async reactor's registration table
/// (`reactor.rs`), which is process-private and off the hot path.
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// A memory fence (std's, or loom's model of it).
#[inline(always)]
pub(crate) fn fence(order: Ordering) {
    imp::fence(order)
}

/// One iteration of a busy-wait loop.
///
/// Under loom this yields to the scheduler, so that a spin on a value only another thread can
/// change does not look like an infinite execution.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Give the rest of this time slice to another thread.
#[inline]
pub(crate) fn yield_now() {
    #[cfg(not(loom))]
    std::thread::yield_now();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// Run `f`, a check whose outcome cannot change what a model observes while every peer lives
/// (the probe a sender makes before waking a sleeping receiver, `handle::poll_send`). In
/// production it is just `f()`. Under loom its loads and stores are not explored as branch
/// points (`loom::stop_exploring`) unless the running model asked for it with
/// [`loom_explore_probes`]: each send's probe made every model with a sleeping receiver ten
/// times longer to check (`exactly_once_one_consumer`: 50 s to 550 s), while only the models
/// of a dead sleeper need its interleavings, and they ask for them.
#[inline(always)]
pub(crate) fn probe<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(loom)]
    if !EXPLORE_PROBES.with(|e| e.get()) {
        loom::stop_exploring();
        let r = f();
        loom::explore();
        return r;
    }
    f()
}

#[cfg(loom)]
std::thread_local! {
    /// Whether the model running on this thread explores probes (loom runs a model's threads
    /// on the thread that called `loom::model`).
    static EXPLORE_PROBES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Loom only: let the model running on this thread explore the interleavings of probes
/// (see [`probe`]); call it at the start of the model's closure.
#[cfg(loom)]
pub fn loom_explore_probes(on: bool) {
    EXPLORE_PROBES.with(|e| e.set(on));
}

/// Causality tracking for the bytes of one ring slot.
///
/// The slot bytes themselves are always copied with raw pointers (they live in memory another
/// process maps). In production this type is empty and its methods compile to nothing; under
/// loom it wraps a `loom::cell::UnsafeCell` that the ring touches on every slot write and read,
/// so loom reports a data race when a reader can reach a slot without the Acquire/Release
/// pairing that orders it after the writer.
#[derive(Default)]
pub(crate) struct SlotTrack {
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<()>,
}

impl SlotTrack {
    /// Record a write of the slot's bytes.
    #[inline(always)]
    pub(crate) fn write(&self) {
        #[cfg(loom)]
        self.cell.with_mut(|_| ());
    }

    /// Record a read of the slot's bytes.
    #[inline(always)]
    pub(crate) fn read(&self) {
        #[cfg(loom)]
        self.cell.with(|_| ());
    }
}
