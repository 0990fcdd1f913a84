//! Broadcast frame topics: `shmchan.broadcast.FramePublisher` and `FrameSubscriber`.
//!
//! A subscriber copies each frame out (the library has no in-place read for topics: the
//! publisher may overwrite any slot at any time), into a buffer it reuses.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple, PyType};

use shmchan::broadcast::{self, Overflow, RecvError, RecvTimeoutError, Start, TryRecvError};
use shmchan::frame::{SendTimeoutError, TrySendError};

use crate::errors::{self, Kind};
use crate::frame::{
    Loan, LoanOwner, TxLent, copy, lend_loan, to_bytes, wait_for_peer, with_create,
};
use crate::lend::{Borrower, Lender, lock};
use crate::wait::{self, Patience};
use crate::{BIG, buf, fork};

fn send_error(py: Python<'_>, e: SendTimeoutError) -> PyErr {
    match e {
        SendTimeoutError::Timeout => errors::timeout(py, e),
        SendTimeoutError::Disconnected => errors::disconnected(py, e),
        SendTimeoutError::TooLarge { .. } => errors::new(py, Kind::TooLarge, e),
    }
}

fn try_send_error(py: Python<'_>, e: TrySendError) -> PyErr {
    match e {
        TrySendError::Full => errors::new(py, Kind::Full, e),
        TrySendError::Disconnected => errors::disconnected(py, e),
        TrySendError::TooLarge { .. } => errors::new(py, Kind::TooLarge, e),
    }
}

/// The publisher of a broadcast frame topic: every subscriber gets every frame (or is told
/// how many it missed, `Lagged`).
///
/// >>> pub = shmchan.broadcast.FramePublisher.create("ticks", capacity=64, max_frame=4096)
/// >>> pub.send(b"tick")                    # never waits in the default "overwrite" mode
#[pyclass(module = "shmchan._shmchan", frozen, subclass)]
pub struct FramePublisher {
    inner: Mutex<PubLender>,
    born: u32,
    capacity: usize,
    max_frame: usize,
    overflow: &'static str,
    name: String,
}

type PubLender = Lender<broadcast::FramePublisher, TxLent>;

impl FramePublisher {
    /// The publisher and the loan it may have lent (for `Loan`).
    pub(crate) fn lender(&self) -> &Mutex<PubLender> {
        &self.inner
    }

    /// The process generation the publisher was made in.
    pub(crate) fn born(&self) -> u32 {
        self.born
    }

    /// The handle locked, open, not used in a fork child, and with no loan out (the library's
    /// frame loan borrows the publisher and lends it to nobody: a query waits for the loan).
    fn locked(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, PubLender>> {
        fork::check(py, self.born, "FramePublisher")?;
        let g = lock(py, &self.inner);
        if !g.is_open() {
            return Err(errors::closed_handle("FramePublisher"));
        }
        if g.lent().is_some() {
            return Err(PyBufferError::new_err(
                "a loan of this publisher is outstanding: commit it or leave its with block first",
            ));
        }
        Ok(g)
    }

    fn send_impl(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        patience: Patience,
    ) -> PyResult<()> {
        let src = buf::Borrowed::read(data)?;
        let bytes = src.bytes();
        let mut g = self.locked(py)?;
        let tx = g.handle().expect("open, nothing lent");
        let first = if bytes.len() >= BIG {
            py.detach(|| tx.try_send(bytes))
        } else {
            tx.try_send(bytes)
        };
        match first {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full) => {}
            Err(e) => return Err(try_send_error(py, e)),
        }
        let deadline = match patience {
            Patience::Try => return Err(try_send_error(py, TrySendError::Full)),
            Patience::Until(d) => d,
        };
        let r = wait::in_slices(py, deadline, |d| match tx.send_timeout(bytes, d) {
            Ok(()) => Some(Ok(())),
            Err(SendTimeoutError::Timeout) => None,
            Err(e) => Some(Err(e)),
        })?;
        match r {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(send_error(py, e)),
            None => Err(send_error(py, SendTimeoutError::Timeout)),
        }
    }
}

#[pymethods]
impl FramePublisher {
    #[new]
    #[pyo3(signature = (name, *, create = false, **options))]
    fn new(
        py: Python<'_>,
        name: &str,
        create: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = crate::opts::parse(options)?;
        let tx = py
            .detach(|| {
                if create {
                    broadcast::FramePublisher::create(name, &opts)
                } else {
                    broadcast::FramePublisher::open(name, &opts)
                }
            })
            .map_err(|e| errors::from_error(py, e))?;
        Ok(FramePublisher {
            capacity: tx.capacity(),
            max_frame: tx.max_frame(),
            overflow: match tx.overflow() {
                Overflow::Overwrite => "overwrite",
                _ => "block",
            },
            inner: Mutex::new(Lender::new(tx)),
            born: fork::generation(),
            name: name.to_owned(),
        })
    }

    /// Create the topic `name` (or take over one whose publisher is gone) and attach as its
    /// publisher. `capacity` is in frames; `max_frame` (default 1024) in bytes.
    #[classmethod]
    #[pyo3(signature = (name, **options))]
    fn create<'py>(
        cls: &Bound<'py, PyType>,
        name: &str,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        cls.call((name,), Some(&with_create(cls.py(), options, true)?))
    }

    /// Open the existing topic `name` as its publisher (its previous publisher is gone).
    #[classmethod]
    #[pyo3(signature = (name, **options))]
    fn open<'py>(
        cls: &Bound<'py, PyType>,
        name: &str,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        cls.call((name,), Some(&with_create(cls.py(), options, false)?))
    }

    /// Publish a copy of `data` to every subscriber. Never waits in "overwrite" mode; in
    /// "block" mode waits for room at most `timeout` seconds.
    #[pyo3(signature = (data, timeout = None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        self.send_impl(py, data, Patience::from_timeout(timeout)?)
    }

    /// Publish without waiting; `Full` in "block" mode when the slowest subscriber is a ring
    /// behind.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.send_impl(py, data, Patience::Try)
    }

    /// Reserve `n` bytes (at most `max_frame`) of the next slot to write a frame in place,
    /// waiting for room at most `timeout` seconds in "block" mode (never in "overwrite"). The
    /// `Loan` is a writable buffer; `commit(k)` publishes its first `k` bytes; leaving its
    /// `with` block without a commit publishes nothing. While it is out the publisher does
    /// nothing else (`BufferError`).
    #[pyo3(signature = (n, timeout = None))]
    fn loan(slf: &Bound<'_, Self>, n: usize, timeout: Option<f64>) -> PyResult<Loan> {
        let py = slf.py();
        let patience = Patience::from_timeout(timeout)?;
        let mut g = slf.get().locked(py)?;
        let serial = lend_loan(py, &mut g, n, patience)?;
        Ok(Loan {
            owner: LoanOwner::Publisher(slf.clone().unbind()),
            serial,
            len: n,
        })
    }

    /// How many subscribers are attached and alive now.
    fn subscriber_count(&self, py: Python<'_>) -> PyResult<usize> {
        let mut g = self.locked(py)?;
        Ok(g.handle().expect("open, nothing lent").subscriber_count())
    }

    /// Is at least one subscriber attached and alive?
    fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
        let mut g = self.locked(py)?;
        Ok(g.handle().expect("open, nothing lent").is_connected())
    }

    /// Wait until at least `n` subscribers are attached, at most `timeout` seconds.
    #[pyo3(signature = (n = 1, timeout = None))]
    fn wait_for_subscribers(&self, py: Python<'_>, n: usize, timeout: Option<f64>) -> PyResult<()> {
        let Patience::Until(deadline) = Patience::from_timeout(timeout)? else {
            unreachable!()
        };
        let mut g = self.locked(py)?;
        let tx = g.handle().expect("open, nothing lent");
        wait_for_peer(py, deadline, move |d| tx.wait_for_subscribers(n, d))
    }

    /// Frames the ring holds.
    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest frame the topic takes.
    #[getter]
    fn max_frame(&self) -> usize {
        self.max_frame
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// `"overwrite"` or `"block"`.
    #[getter]
    fn overflow(&self) -> &'static str {
        self.overflow
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        !lock(py, &self.inner).is_open()
    }

    /// Detach from the topic. Raises `BufferError` if a loan with live views is out (a loan
    /// without views is abandoned).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock(py, &self.inner);
        if let Some(l) = g.lent() {
            if l.exports() > 0 {
                return Err(crate::frame::views_alive(
                    "cannot close the publisher",
                    l.exports(),
                ));
            }
        }
        g.close();
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmchan.broadcast.FramePublisher {:?} capacity={} max_frame={}>",
            self.name, self.capacity, self.max_frame
        )
    }
}

/// What a subscriber has lent out: an `await recv_async()` in progress.
pub(crate) struct Awaiting(Pin<Box<broadcast::FrameRecvFuture<'static>>>);

// SAFETY: the future borrows only its `FrameSubscriber` (`Send`) and is tied to no thread (its
// reactor registration is process-wide).
unsafe impl Borrower for Awaiting {}

struct Sub {
    l: Lender<broadcast::FrameSubscriber, Awaiting>,
    /// Reused for every frame.
    scratch: Vec<u8>,
    /// A frame in `scratch` that `recv_into` could not deliver (its buffer was too small).
    pending: bool,
}

fn recv_error(py: Python<'_>, e: RecvError) -> PyErr {
    match e {
        RecvError::Lagged(n) => lagged(py, n, e),
        RecvError::Evicted => errors::new(py, Kind::Evicted, e),
        RecvError::Disconnected => errors::disconnected(py, e),
    }
}

pub(crate) fn lagged(py: Python<'_>, n: u64, msg: impl std::fmt::Display) -> PyErr {
    let missed = n.into_pyobject(py).expect("an int").into_any().unbind();
    errors::with_attrs(py, Kind::Lagged, msg, &[("missed", missed)])
}

/// A subscriber of a broadcast frame topic.
///
/// >>> sub = shmchan.broadcast.FrameSubscriber.open("ticks", start="latest")
/// >>> try:
/// ...     data = sub.recv(timeout=1.0)
/// ... except shmchan.Lagged as e:
/// ...     print("missed", e.missed)         # then go on: the next recv gets the oldest kept
#[pyclass(module = "shmchan._shmchan", frozen, subclass)]
pub struct FrameSubscriber {
    inner: Mutex<Sub>,
    born: u32,
    capacity: usize,
    max_frame: usize,
    name: String,
}

pub(crate) fn start_of(start: &Bound<'_, PyAny>) -> PyResult<Start> {
    if let Ok(s) = start.extract::<String>() {
        return match s.as_str() {
            "latest" => Ok(Start::Latest),
            "oldest" => Ok(Start::Oldest),
            _ => Err(PyValueError::new_err(format!(
                "start must be \"latest\", \"oldest\" or (\"history\", n), not {s:?}"
            ))),
        };
    }
    if let Ok((k, n)) = start.extract::<(String, usize)>() {
        if k == "history" {
            return Ok(Start::History(n));
        }
    }
    Err(PyValueError::new_err(
        "start must be \"latest\", \"oldest\" or (\"history\", n)",
    ))
}

impl FrameSubscriber {
    fn locked(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Sub>> {
        fork::check(py, self.born, "FrameSubscriber")?;
        let g = lock(py, &self.inner);
        if !g.l.is_open() {
            return Err(errors::closed_handle("FrameSubscriber"));
        }
        if g.l.lent().is_some() {
            return Err(PyRuntimeError::new_err(
                "a recv_async() is in progress on this subscriber",
            ));
        }
        Ok(g)
    }

    /// Receive the next frame into `scratch` (unless one is pending there already).
    fn next(py: Python<'_>, sub: &mut Sub, patience: Patience) -> PyResult<()> {
        if sub.pending {
            sub.pending = false;
            return Ok(());
        }
        let Sub { l, scratch, .. } = sub;
        let rx = l.handle().expect("open, nothing lent");
        match rx.try_recv_into(scratch) {
            Ok(_) => return Ok(()),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Lagged(n)) => return Err(recv_error(py, RecvError::Lagged(n))),
            Err(TryRecvError::Evicted) => return Err(recv_error(py, RecvError::Evicted)),
            Err(TryRecvError::Disconnected) => {
                return Err(recv_error(py, RecvError::Disconnected));
            }
        }
        let deadline = match patience {
            Patience::Try => return Err(errors::new(py, Kind::Empty, TryRecvError::Empty)),
            Patience::Until(d) => d,
        };
        let r = wait::in_slices(py, deadline, |d| match rx.recv_timeout_into(scratch, d) {
            Ok(_) => Some(Ok(())),
            Err(RecvTimeoutError::Timeout) => None,
            Err(e) => Some(Err(e)),
        })?;
        match r {
            Some(Ok(())) => Ok(()),
            Some(Err(RecvTimeoutError::Lagged(n))) => Err(recv_error(py, RecvError::Lagged(n))),
            Some(Err(RecvTimeoutError::Evicted)) => Err(recv_error(py, RecvError::Evicted)),
            Some(Err(_)) => Err(recv_error(py, RecvError::Disconnected)),
            None => Err(errors::timeout(py, RecvTimeoutError::Timeout)),
        }
    }
}

#[pymethods]
impl FrameSubscriber {
    #[new]
    #[pyo3(signature = (name, start = None, **options))]
    fn new(
        py: Python<'_>,
        name: &str,
        start: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let start = match start {
            Some(s) => start_of(s)?,
            None => Start::Latest,
        };
        let opts = crate::opts::parse(options)?;
        let rx = py
            .detach(|| broadcast::FrameSubscriber::open_from(name, start, &opts))
            .map_err(|e| errors::from_error(py, e))?;
        Ok(FrameSubscriber {
            capacity: rx.capacity(),
            max_frame: rx.max_frame(),
            inner: Mutex::new(Sub {
                l: Lender::new(rx),
                scratch: Vec::new(),
                pending: false,
            }),
            born: fork::generation(),
            name: name.to_owned(),
        })
    }

    /// Subscribe to the topic `name`, starting at `start`: `"latest"` (the next frame
    /// published), `"oldest"` (all the ring still holds) or `("history", n)` (the last n).
    #[classmethod]
    #[pyo3(signature = (name, start = None, **options))]
    fn open<'py>(
        cls: &Bound<'py, PyType>,
        name: &str,
        start: Option<&Bound<'py, PyAny>>,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        cls.call((name, start), options)
    }

    /// The next frame as `bytes`, waiting at most `timeout` seconds. Raises `Lagged` (with
    /// `.missed`; the next receive goes on with the oldest frame kept), `Evicted`, `Timeout`,
    /// `Disconnected`.
    #[pyo3(signature = (timeout = None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        let patience = Patience::from_timeout(timeout)?;
        let mut g = self.locked(py)?;
        Self::next(py, &mut g, patience)?;
        to_bytes(py, &g.scratch)
    }

    /// The next frame if there is one now; `Empty` otherwise.
    fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut g = self.locked(py)?;
        Self::next(py, &mut g, Patience::Try)?;
        to_bytes(py, &g.scratch)
    }

    /// Copy the next frame into `buffer`; returns its length. A frame longer than the buffer
    /// raises `ValueError` and stays for the next receive.
    #[pyo3(signature = (buffer, timeout = None))]
    fn recv_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let mut dst = buf::Borrowed::write(buffer)?;
        let patience = Patience::from_timeout(timeout)?;
        let mut g = self.locked(py)?;
        Self::next(py, &mut g, patience)?;
        let n = g.scratch.len();
        if n > dst.len() {
            g.pending = true;
            return Err(PyValueError::new_err(format!(
                "the next frame is {n} bytes and the buffer only {}: the frame stays for the \
                 next receive",
                dst.len()
            )));
        }
        copy(py, &mut dst.bytes_mut()[..n], &g.scratch);
        Ok(n)
    }

    /// One poll of an asynchronous receive (for `recv_async`).
    fn _poll_recv<'py>(
        &self,
        py: Python<'py>,
        waker: &crate::aio::LoopWaker,
        token: u64,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        fork::check(py, self.born, "FrameSubscriber")?;
        let mut g = lock(py, &self.inner);
        let sub: &mut Sub = &mut g;
        if !sub.l.is_open() {
            return Err(errors::closed_handle("FrameSubscriber"));
        }
        if sub.pending {
            sub.pending = false;
            return to_bytes(py, &sub.scratch).map(Some);
        }
        if sub.l.lent().is_none() {
            // SAFETY: open and nothing lent; the future made from it goes into `sub.l` at once.
            let rx = unsafe { sub.l.handle_static() };
            sub.l.lend(Awaiting(Box::pin(rx.recv_async())));
        }
        let fut = &mut sub.l.lent_mut().expect("lent above").0;
        let w = waker.waker(token);
        let mut cx = Context::from_waker(&w);
        match fut.as_mut().poll(&mut cx) {
            Poll::Pending => Ok(None),
            Poll::Ready(r) => {
                sub.l.end();
                match r {
                    Ok(v) => to_bytes(py, &v).map(Some),
                    Err(e) => Err(recv_error(py, e)),
                }
            }
        }
    }

    /// (`_token`, the receive's number, is for the typed classes, which keep one registration
    /// per receive: this handle has one receive in progress at most.)
    #[pyo3(signature = (_token = None))]
    fn _cancel_recv(&self, py: Python<'_>, _token: Option<u64>) {
        lock(py, &self.inner).l.end();
    }

    /// Frames published and not yet read by this subscriber.
    fn lag(&self, py: Python<'_>) -> PyResult<u64> {
        let mut g = self.locked(py)?;
        Ok(g.l.handle().expect("open, nothing lent").lag())
    }

    /// Is the publisher attached and alive now?
    fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
        let mut g = self.locked(py)?;
        Ok(g.l.handle().expect("open, nothing lent").is_connected())
    }

    /// Wait until a publisher is attached and alive, at most `timeout` seconds.
    #[pyo3(signature = (timeout = None))]
    fn wait_for_peer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let Patience::Until(deadline) = Patience::from_timeout(timeout)? else {
            unreachable!()
        };
        let mut g = self.locked(py)?;
        let rx = g.l.handle().expect("open, nothing lent");
        wait_for_peer(py, deadline, move |d| rx.wait_for_peer(d))
    }

    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    #[getter]
    fn max_frame(&self) -> usize {
        self.max_frame
    }

    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        !lock(py, &self.inner).l.is_open()
    }

    fn close(&self, py: Python<'_>) {
        lock(py, &self.inner).l.close();
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<shmchan.broadcast.FrameSubscriber {:?} capacity={} max_frame={}>",
            self.name, self.capacity, self.max_frame
        )
    }
}
