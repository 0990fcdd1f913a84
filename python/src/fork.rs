//! Handles inherited through `fork`: every handle records the process generation it was made
//! in, bumped in each child by a `pthread_atfork` handler, and refuses to work in another one
//! (the library would answer "disconnected"; a Python user gets a clear `ForkedHandle`).

use std::sync::atomic::{AtomicU32, Ordering};

use pyo3::prelude::*;

/// Bumped in every child created by `fork` (by the child handler, while the child has one
/// thread). Relaxed: only this process writes it.
static GENERATION: AtomicU32 = AtomicU32::new(0);

extern "C" fn child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Install the child handler (once: the module is initialised once per process).
pub(crate) fn install() -> PyResult<()> {
    // SAFETY: the handler only increments an atomic, which is async-signal-safe as a fork child
    // handler must be.
    let err = unsafe { libc::pthread_atfork(None, None, Some(child)) };
    if err != 0 {
        return Err(std::io::Error::from_raw_os_error(err).into());
    }
    Ok(())
}

/// This process's generation: 0 unless it was forked from one that loaded the module.
pub(crate) fn generation() -> u32 {
    GENERATION.load(Ordering::Relaxed)
}

/// `ForkedHandle` if a handle made in generation `born` is used in another process.
pub(crate) fn check(py: Python<'_>, born: u32, what: &str) -> PyResult<()> {
    if born == generation() {
        return Ok(());
    }
    Err(crate::errors::new(
        py,
        crate::errors::Kind::ForkedHandle,
        format!(
            "this {what} was inherited through fork() and cannot be used in the child process: \
             open the channel in the child"
        ),
    ))
}
