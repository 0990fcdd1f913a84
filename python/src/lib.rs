//! `shmchan._shmchan`: the native half of the `shmchan` Python package (the pure-Python half is
//! `python-src/shmchan/`). A thin layer over the Rust API: frames, pipes, broadcast frame
//! topics, and typed channels (SPSC, MPMC, broadcast) over the library's `untyped` handles,
//! with exceptions under `shmchan.Error`.
//!
//! Conventions every class here follows:
//!
//! - **The GIL.** An operation first tries the ring with the GIL held (a hit costs one call);
//!   the GIL is released only before waiting (`wait::in_slices`, which wakes every 50 ms to run
//!   signal handlers, so Ctrl-C works) and around copies of 64 KiB or more ([`BIG`]).
//! - **Borrows.** A Rust frame or loan borrows its handle; a Python object cannot. Each handle
//!   keeps what it lent out beside itself under one mutex (`lend::Lender`), and refuses other
//!   work on the ring while something is lent.
//! - **fork.** A handle used in a child created by `fork` raises `ForkedHandle` (`fork.rs`).

use pyo3::prelude::*;

mod aio;
mod broadcast;
mod buf;
mod codec;
mod errors;
mod fork;
mod frame;
mod lend;
mod opts;
mod pipe;
mod typed;
mod wait;

/// Copies of at least this many bytes are made with the GIL released.
pub(crate) const BIG: usize = 64 * 1024;

#[pymodule]
fn _shmchan(m: &Bound<'_, PyModule>) -> PyResult<()> {
    fork::install()?;
    errors::register(m)?;
    m.add_class::<frame::FrameSender>()?;
    m.add_class::<frame::FrameReceiver>()?;
    m.add_class::<frame::Frame>()?;
    m.add_class::<frame::Loan>()?;
    m.add_class::<pipe::PipeWriter>()?;
    m.add_class::<pipe::PipeReader>()?;
    m.add_class::<broadcast::FramePublisher>()?;
    m.add_class::<broadcast::FrameSubscriber>()?;
    m.add_class::<typed::SpscSender>()?;
    m.add_class::<typed::SpscReceiver>()?;
    m.add_class::<typed::MpmcSender>()?;
    m.add_class::<typed::MpmcReceiver>()?;
    m.add_class::<typed::Publisher>()?;
    m.add_class::<typed::Subscriber>()?;
    m.add_class::<aio::LoopWaker>()?;
    m.add_function(wrap_pyfunction!(remove, m)?)?;
    m.add_function(wrap_pyfunction!(sysv_key, m)?)?;
    m.add("BIG_COPY", BIG)?;
    Ok(())
}

/// Remove the channel `name` if no endpoint of it is alive (what a start-up script uses after a
/// crash). Raises `NotFound` if there is no such name, `InUse` if an endpoint is alive.
///
/// >>> shmchan.remove("frames")                       # options: backend, dir, open_timeout
#[pyfunction]
#[pyo3(signature = (name, **options))]
fn remove(
    py: Python<'_>,
    name: &str,
    options: Option<&Bound<'_, pyo3::types::PyDict>>,
) -> PyResult<()> {
    let opts = opts::parse(options)?;
    py.detach(|| shmchan::remove(name, &opts))
        .map_err(|e| errors::from_error(py, e))
}

/// The System V key of channel `name` with `backend="sysv"` (as `ipcs -m` shows it).
#[pyfunction]
fn sysv_key(name: &str) -> i32 {
    shmchan::Backend::sysv_key(name)
}
