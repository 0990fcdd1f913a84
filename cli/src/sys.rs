//! The few system calls the command makes itself (the library makes the rest): one thin
//! wrapper each.

// A flag set by a signal handler in this process only; the loom seam of the library's
// `clippy.toml` does not concern a binary.
#![allow(clippy::disallowed_types)]

use std::ffi::CString;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    // Async-signal-safe: one atomic store.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Make Ctrl-C (SIGINT) and SIGTERM set a flag instead of killing the process, so that `watch`
/// ends cleanly (see [`interrupted`]).
///
/// # References
/// `sigaction(2)`
pub fn catch_interrupt() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sigaction` is plain data, all-zero valid (empty mask, no flags).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_interrupt as *const () as libc::sighandler_t;
        // SAFETY: installs a handler that only stores to an atomic (async-signal-safe); `sa`
        // is valid for the call, and the old action is not asked for.
        unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
    }
}

/// Was Ctrl-C pressed (or SIGTERM received) since [`catch_interrupt`]?
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Size and free space of the filesystem at `path`, in bytes.
///
/// # References
/// `statvfs(3)`
pub fn statvfs(path: &str) -> io::Result<(u64, u64)> {
    let c = CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is NUL-terminated and `st` valid for writes of one `statvfs`.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    let frsize = st.f_frsize;
    Ok((st.f_blocks * frsize, st.f_bavail * frsize))
}

/// Which `membarrier` commands the kernel supports (a bit mask), or why it cannot say.
///
/// # References
/// `membarrier(2)`, `MEMBARRIER_CMD_QUERY`
pub fn membarrier_query() -> io::Result<i64> {
    // SAFETY: MEMBARRIER_CMD_QUERY (0) takes no pointers and changes nothing.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, 0, 0, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}
