//! Pipes: the native halves of `shmchan.PipeWriter` and `shmchan.PipeReader` (binary file
//! objects, `io.RawIOBase` subclasses in `python-src/shmchan/_pipe.py`).
//!
//! The GIL policy of `lib.rs`: a write or read first tries the ring with the GIL held
//! (`try_write`, `try_read`; released around a copy of `BIG` bytes or more), then waits in
//! slices with it released (`write_timeout`, `read_timeout`), so Ctrl-C interrupts a read that
//! waits for data or a write that waits for room.

use std::io::ErrorKind;
use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyBrokenPipeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use shmchan::pipe;

use crate::frame::wait_for_peer;
use crate::lend::lock;
use crate::wait::{self, Patience};
use crate::{BIG, buf, errors, fork};

fn io_error(e: std::io::Error) -> PyErr {
    if e.kind() == ErrorKind::BrokenPipe {
        PyBrokenPipeError::new_err(e.to_string())
    } else {
        e.into()
    }
}

/// One step of an I/O call on `io`: the first attempt `attempt` with the GIL held (released
/// for `len >= BIG`), then, if it would block, `bounded(io, d)` in slices with the GIL released
/// until it moves something (or errs).
fn step<S: Send>(
    py: Python<'_>,
    len: usize,
    io: &mut S,
    attempt: fn(&mut S) -> std::io::Result<usize>,
    bounded: fn(&mut S, std::time::Duration) -> std::io::Result<usize>,
) -> PyResult<usize> {
    let first = if len >= BIG {
        py.detach(|| attempt(io))
    } else {
        attempt(io)
    };
    match first {
        Ok(n) => return Ok(n),
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => return Err(io_error(e)),
    }
    let r = wait::in_slices(py, None, |d| match bounded(io, d) {
        Ok(n) => Some(Ok(n)),
        Err(e) if e.kind() == ErrorKind::TimedOut => None,
        Err(e) => Some(Err(e)),
    })?;
    r.expect("no deadline: waits until something moves")
        .map_err(io_error)
}

/// The writing end of a pipe (native half of `shmchan.PipeWriter`).
#[pyclass(module = "shmchan._shmchan", name = "_PipeWriter", frozen)]
pub struct PipeWriter {
    inner: Mutex<Option<pipe::Writer>>,
    born: u32,
    capacity: usize,
    name: String,
}

impl PipeWriter {
    fn locked(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Option<pipe::Writer>>> {
        fork::check(py, self.born, "PipeWriter")?;
        let g = lock(py, &self.inner);
        if g.is_none() {
            return Err(errors::closed_handle("PipeWriter"));
        }
        Ok(g)
    }
}

#[pymethods]
impl PipeWriter {
    #[new]
    #[pyo3(signature = (name, *, create = false, **options))]
    fn new(
        py: Python<'_>,
        name: &str,
        create: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = crate::opts::parse(options)?;
        let w = py
            .detach(|| {
                if create {
                    pipe::Writer::create(name, &opts)
                } else {
                    pipe::Writer::open(name, &opts)
                }
            })
            .map_err(|e| errors::from_error(py, e))?;
        Ok(PipeWriter {
            capacity: w.capacity(),
            inner: Mutex::new(Some(w)),
            born: fork::generation(),
            name: name.to_owned(),
        })
    }

    /// Write all of `data` (any contiguous buffer), waiting for room as long as it takes;
    /// returns its length. `BrokenPipeError` if the reader is gone.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let src = buf::Borrowed::read(data)?;
        let mut g = self.locked(py)?;
        let w = g.as_mut().expect("checked by locked");
        let bytes = src.bytes();
        let mut done = 0;
        while done < bytes.len() {
            let rest = &bytes[done..];
            done += step(
                py,
                rest.len(),
                &mut (&mut *w, rest),
                |(w, b)| w.try_write(b),
                |(w, b), d| w.write_timeout(b, d),
            )?;
        }
        Ok(bytes.len())
    }

    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
        let g = self.locked(py)?;
        Ok(g.as_ref().expect("checked by locked").is_connected())
    }

    #[pyo3(signature = (timeout = None))]
    fn wait_for_peer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let Patience::Until(deadline) = Patience::from_timeout(timeout)? else {
            unreachable!()
        };
        let mut g = self.locked(py)?;
        let w = g.as_mut().expect("checked by locked");
        wait_for_peer(py, deadline, move |d| w.wait_for_peer(d))
    }

    /// Detach: the reader gets end of file once it has read everything.
    fn close(&self, py: Python<'_>) {
        lock(py, &self.inner).take();
    }
}

/// The reading end of a pipe (native half of `shmchan.PipeReader`).
#[pyclass(module = "shmchan._shmchan", name = "_PipeReader", frozen)]
pub struct PipeReader {
    inner: Mutex<Option<pipe::Reader>>,
    born: u32,
    capacity: usize,
    name: String,
}

impl PipeReader {
    fn locked(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Option<pipe::Reader>>> {
        fork::check(py, self.born, "PipeReader")?;
        let g = lock(py, &self.inner);
        if g.is_none() {
            return Err(errors::closed_handle("PipeReader"));
        }
        Ok(g)
    }
}

#[pymethods]
impl PipeReader {
    #[new]
    #[pyo3(signature = (name, *, create = false, **options))]
    fn new(
        py: Python<'_>,
        name: &str,
        create: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = crate::opts::parse(options)?;
        let r = py
            .detach(|| {
                if create {
                    pipe::Reader::create(name, &opts)
                } else {
                    pipe::Reader::open(name, &opts)
                }
            })
            .map_err(|e| errors::from_error(py, e))?;
        Ok(PipeReader {
            capacity: r.capacity(),
            inner: Mutex::new(Some(r)),
            born: fork::generation(),
            name: name.to_owned(),
        })
    }

    /// Read what is there into `buffer` (at least one byte, waiting for some as long as it
    /// takes); 0 only at end of file (the writer gone and everything read).
    fn readinto(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut dst = buf::Borrowed::write(buffer)?;
        let mut g = self.locked(py)?;
        let r = g.as_mut().expect("checked by locked");
        let bytes = dst.bytes_mut();
        if bytes.is_empty() {
            return Ok(0);
        }
        step(
            py,
            bytes.len(),
            &mut (r, bytes),
            |(r, b)| r.try_read(b),
            |(r, b), d| r.read_timeout(b, d),
        )
    }

    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
        let g = self.locked(py)?;
        Ok(g.as_ref().expect("checked by locked").is_connected())
    }

    #[pyo3(signature = (timeout = None))]
    fn wait_for_peer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let Patience::Until(deadline) = Patience::from_timeout(timeout)? else {
            unreachable!()
        };
        let mut g = self.locked(py)?;
        let r = g.as_mut().expect("checked by locked");
        wait_for_peer(py, deadline, move |d| r.wait_for_peer(d))
    }

    fn close(&self, py: Python<'_>) {
        lock(py, &self.inner).take();
    }
}
