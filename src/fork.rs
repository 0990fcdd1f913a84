//! What `fork(2)` must not carry into a child, and how it is kept out.
//!
//! A child created by `fork` gets a copy of every handle of its parent, and a descriptor for
//! each open file description its parent holds. Two things must not come with them:
//!
//! - **The handle's identity.** The copy would send into (or receive from) its parent's ring
//!   position, overwriting messages, and detach its parent's endpoint when dropped. Every handle
//!   records the process [`generation`] it was made in; the counter is bumped in each child, and
//!   a handle from another generation refuses every operation (as disconnected) and detaches
//!   nothing.
//! - **The liveness locks.** An endpoint proves it is alive by holding a lock on its region's
//!   open file description (`region/lock.rs`), which the kernel releases when the last
//!   descriptor referring to it is closed. A child's copy of the descriptor would keep the
//!   parent "alive" after it died. Every such descriptor is [`Guarded`]: a fork child handler
//!   points each registered descriptor number at an inert descriptor (`dup3` over it, which
//!   drops the child's reference to the description and leaves no number dangling).
//!
//! A descriptor is opened and registered under a lock that the fork prepare handler also takes,
//! so a fork cannot fall between the two. Handlers run for `fork()` (and so for `Command` with
//! `pre_exec`); `posix_spawn` and `vfork` are followed by `execve`, which closes the
//! descriptors anyway (they are all close-on-exec).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::sync::{AtomicU32, Ordering};

/// Bumped in every child created by `fork`. Written only by the child handler, which runs while
/// the child has one thread.
static GENERATION: AtomicU32 = AtomicU32::new(0);

/// Most descriptors registered at once (one per mapped region, plus one per gate held).
const SLOTS: usize = 8192;

/// Registered descriptors, as `fd + 1` (0: a free slot).
static FDS: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];

/// An inert descriptor (an eventfd) that replaces each registered one in a child, as `fd + 1`.
static INERT: AtomicU32 = AtomicU32::new(0);

/// Held while a descriptor is being opened and registered, and across a fork (from the prepare
/// handler to the parent and child handlers): a plain pthread mutex (a spin lock here would
/// starve under real-time scheduling: `sched_yield` never gives the CPU to a lower class).
// A process-wide mutex for `fork`, not a concurrency primitive of the channel protocol: loom
// has nothing to model here (this module is compiled out under loom).
#[allow(clippy::disallowed_types)]
struct ForkLock(std::cell::UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: the mutex is only used through the pthread functions, which synchronise it.
unsafe impl Sync for ForkLock {}

#[allow(clippy::disallowed_types)] // as on `ForkLock`
static LOCK: ForkLock = ForkLock(std::cell::UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));

/// The generation of this process: 0 in a process that was not forked from another that used
/// shmchan, and a different value in each fork child. Relaxed: only this process writes it,
/// and only while single-threaded (in the fork child handler).
#[inline(always)]
pub(crate) fn generation() -> u32 {
    GENERATION.load(Ordering::Relaxed)
}

fn lock() {
    // SAFETY: a statically initialised mutex, locked and unlocked only here and in `unlock`.
    unsafe { libc::pthread_mutex_lock(LOCK.0.get()) };
}

/// Also called in the fork child, which unlocks the copy its (single) thread locked in the
/// prepare handler: the usual `pthread_atfork` pattern.
fn unlock() {
    // SAFETY: as in `lock`; the calling thread (or, in a fork child, the copy of the thread
    // that) locked it.
    unsafe { libc::pthread_mutex_unlock(LOCK.0.get()) };
}

extern "C" fn prepare() {
    lock();
}

extern "C" fn parent() {
    unlock();
}

/// In the child: only async-signal-safe work (atomics, `dup3`, and unlocking the mutex the
/// prepare handler locked).
extern "C" fn child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    let inert = INERT.load(Ordering::Relaxed);
    if inert != 0 {
        for slot in &FDS {
            let fd = slot.load(Ordering::Relaxed);
            if fd != 0 {
                // On failure the descriptor stays (and the parent may look alive to its peers
                // while this child lives); nothing better can be done here.
                let _ = crate::sys::dup3_raw((inert - 1) as libc::c_int, (fd - 1) as libc::c_int);
            }
        }
    }
    unlock();
}

/// Install the fork handlers, once per process (retried by the next call if the system had no
/// memory for them). Called before anything a fork must invalidate is made: every handle
/// (`chan.rs`, heap channels included, which record the fork generation too), every reactor
/// (`reactor.rs`), and every guarded descriptor. A process whose handlers were installed only
/// later (say at its first named channel) would keep generation 0 in a child forked before
/// that, and the child would take its parent's handles and reactor for its own.
pub(crate) fn install_handlers() -> io::Result<()> {
    static INSTALLED: AtomicU32 = AtomicU32::new(0);
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // Relaxed fast path: a process-private flag, set under `LOCK` after the registration.
    if INSTALLED.load(Ordering::Relaxed) != 0 {
        return Ok(());
    }
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if INSTALLED.load(Ordering::Relaxed) != 0 {
        return Ok(());
    }
    // SAFETY: the handlers only touch atomics, a mutex their own thread locked, and make
    // async-signal-safe system calls, as a child handler must.
    let err = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    INSTALLED.store(1, Ordering::Relaxed);
    Ok(())
}

/// Install the fork handlers and the inert descriptor, once per process (a failure, such as
/// running out of descriptors, is reported and tried again by the next call).
fn install() -> io::Result<()> {
    install_handlers()?;
    static INSTALLED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return Ok(());
    }
    let inert = crate::sys::eventfd()?;
    INERT.store(inert.as_raw_fd() as u32 + 1, Ordering::Relaxed);
    std::mem::forget(inert); // lives as long as the process
    *done = true;
    Ok(())
}

/// Run `f` with no fork in between its steps (a fork waits for it, and it for a fork).
pub(crate) fn exclusive<R>(f: impl FnOnce() -> R) -> io::Result<R> {
    install()?;
    lock();
    let r = f();
    unlock();
    Ok(r)
}

/// A descriptor that a forked child does not inherit (see the module docs). Unregistered and
/// closed on drop.
pub(crate) struct Guarded {
    fd: std::mem::ManuallyDrop<OwnedFd>,
    slot: usize,
}

impl Guarded {
    /// Open a descriptor with `open` and register it, with no fork in between.
    pub(crate) fn open(open: impl FnOnce() -> io::Result<OwnedFd>) -> io::Result<Guarded> {
        exclusive(|| {
            let fd = open()?;
            let raw = fd.as_raw_fd() as u32 + 1;
            for (slot, cell) in FDS.iter().enumerate() {
                // Relaxed: the slot is only read by the fork child handler, which runs after
                // the prepare handler took `LOCK` (Acquire), so it sees every registration.
                if cell
                    .compare_exchange(0, raw, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    return Ok(Guarded {
                        fd: std::mem::ManuallyDrop::new(fd),
                        slot,
                    });
                }
            }
            Err(io::Error::other(format!(
                "more than {SLOTS} shared-memory regions are open in this process"
            )))
        })?
    }
}

impl AsFd for Guarded {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: `fd` is taken exactly once, here, and `self` is not used afterwards.
        let fd = unsafe { std::mem::ManuallyDrop::take(&mut self.fd) };
        let slot = &FDS[self.slot];
        // Unregister and close with no fork in between, so that a child never inherits this
        // descriptor unguarded. (`exclusive` cannot fail here: `open` installed the handlers.)
        let _ = exclusive(move || {
            slot.store(0, Ordering::Relaxed);
            drop(fd);
        });
    }
}
