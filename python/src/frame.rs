//! Frame channels: `FrameSender`, `FrameReceiver`, and what they lend out, `Loan` (a writable
//! buffer in the ring) and `Frame` (a read-only buffer in the ring, zero copy).

use std::ffi::c_int;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyMemoryView, PyType};

use shmchan::frame::{self, SendTimeoutError, TrySendError};
use shmchan::{RecvTimeoutError, TryRecvError};

use crate::errors::{self, Kind};
use crate::lend::{Borrower, Lender, lock};
use crate::wait::{self, Patience};
use crate::{BIG, buf, fork};

/// Keyword arguments `kw` (or none) with `create` set.
pub(crate) fn with_create<'py>(
    py: Python<'py>,
    kw: Option<&Bound<'py, PyDict>>,
    create: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let d = match kw {
        Some(kw) => kw.copy()?,
        None => PyDict::new(py),
    };
    d.set_item("create", create)?;
    Ok(d)
}

/// Copy `src` into `dst` (same length), with the GIL released if it is large.
pub(crate) fn copy(py: Python<'_>, dst: &mut [u8], src: &[u8]) {
    if src.len() >= BIG {
        py.detach(|| dst.copy_from_slice(src));
    } else {
        dst.copy_from_slice(src);
    }
}

/// A new `bytes` holding a copy of `src` (the GIL released for a large one).
pub(crate) fn to_bytes<'py>(py: Python<'py>, src: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    if src.len() >= BIG {
        PyBytes::new_with(py, src.len(), |dst| {
            copy(py, dst, src);
            Ok(())
        })
    } else {
        Ok(PyBytes::new(py, src))
    }
}

/// The `BufferError` of an operation refused while views of a lent buffer are alive.
pub(crate) fn views_alive(what: &str, exports: usize) -> PyErr {
    PyBufferError::new_err(format!(
        "{what}: {exports} buffer view(s) of it (memoryview, numpy array, ...) are still alive; \
         delete them first (a view may not outlive its slot in the ring)"
    ))
}

/// Index a buffer-exporting object through a short-lived memoryview (`obj[key]`); a slice
/// comes back as `bytes`.
pub(crate) fn getitem<'py>(
    obj: &Bound<'py, PyAny>,
    key: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let mv = PyMemoryView::from(obj)?;
    let r = mv
        .get_item(key)
        .and_then(|v| match v.cast::<PyMemoryView>() {
            Ok(sub) => {
                let b = sub.call_method0("tobytes");
                sub.call_method0("release")?;
                b
            }
            Err(_) => Ok(v),
        });
    mv.call_method0("release")?;
    r
}

/// `obj[key] = value` through a short-lived memoryview.
pub(crate) fn setitem(
    obj: &Bound<'_, PyAny>,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let mv = PyMemoryView::from(obj)?;
    let r = mv.set_item(key, value);
    mv.call_method0("release")?;
    r
}

// ---------------------------------------------------------------------------------------------
// Sender

/// A Rust loan: of a frame sender, or of a frame topic's publisher.
pub(crate) enum AnyLoan {
    Frame(frame::Loan<'static>),
    Topic(shmchan::broadcast::FrameLoan<'static>),
}

/// A loan out of a sender or a publisher: the Rust loan, where its bytes are, and how many
/// views are alive.
pub(crate) struct TxLent {
    loan: AnyLoan,
    ptr: *mut u8,
    len: usize,
    exports: usize,
}

impl TxLent {
    fn new(loan: AnyLoan, len: usize) -> TxLent {
        let mut loan = loan;
        let ptr = match &mut loan {
            AnyLoan::Frame(l) => l.as_mut_ptr(),
            AnyLoan::Topic(l) => l.as_mut_ptr(),
        };
        TxLent {
            loan,
            ptr,
            len,
            exports: 0,
        }
    }

    /// How many buffer views of the loan are alive.
    pub(crate) fn exports(&self) -> usize {
        self.exports
    }

    fn commit(self, n: usize) {
        match self.loan {
            AnyLoan::Frame(l) => l.commit(n),
            AnyLoan::Topic(l) => l.commit(n),
        }
    }
}

// SAFETY: a `frame::Loan` borrows only its `frame::Sender`, a `broadcast::FrameLoan` only its
// `FramePublisher` (both `Send`); `ptr` points into the ring the handle maps. Nothing is tied
// to a thread.
unsafe impl Borrower for TxLent {}

type TxLender = Lender<frame::Sender, TxLent>;

/// A handle that lends frame loans (a frame sender, a frame topic's publisher).
pub(crate) trait LoanSource: Send + 'static {
    fn try_loan_any(&'static mut self, n: usize) -> Result<AnyLoan, TrySendError>;
    fn loan_timeout_any(
        &'static mut self,
        n: usize,
        d: std::time::Duration,
    ) -> Result<AnyLoan, SendTimeoutError>;
}

impl LoanSource for frame::Sender {
    fn try_loan_any(&'static mut self, n: usize) -> Result<AnyLoan, TrySendError> {
        self.try_loan(n).map(AnyLoan::Frame)
    }
    fn loan_timeout_any(
        &'static mut self,
        n: usize,
        d: std::time::Duration,
    ) -> Result<AnyLoan, SendTimeoutError> {
        self.loan_timeout(n, d).map(AnyLoan::Frame)
    }
}

impl LoanSource for shmchan::broadcast::FramePublisher {
    fn try_loan_any(&'static mut self, n: usize) -> Result<AnyLoan, TrySendError> {
        self.try_loan(n).map(AnyLoan::Topic)
    }
    fn loan_timeout_any(
        &'static mut self,
        n: usize,
        d: std::time::Duration,
    ) -> Result<AnyLoan, SendTimeoutError> {
        self.loan_timeout(n, d).map(AnyLoan::Topic)
    }
}

/// Lend a loan of `n` bytes out of `g`'s handle (open, nothing lent: the caller checked),
/// kept in `g`; returns the lend's number. One attempt with the GIL held, then waiting in
/// slices as `patience` allows.
pub(crate) fn lend_loan<H: LoanSource>(
    py: Python<'_>,
    g: &mut Lender<H, TxLent>,
    n: usize,
    patience: Patience,
) -> PyResult<u64> {
    // SAFETY: open and nothing lent (the caller's check); the reference is dropped, or the
    // loan made from it is stored in `g` (`lend`), before `g` is used again.
    let h = unsafe { g.handle_static() };
    match h.try_loan_any(n) {
        Ok(loan) => return Ok(g.lend(TxLent::new(loan, n))),
        Err(TrySendError::Full) => {}
        Err(e) => return Err(try_send_error(py, e)),
    }
    let deadline = match patience {
        Patience::Try => return Err(try_send_error(py, TrySendError::Full)),
        Patience::Until(d) => d,
    };
    let r = wait::in_slices(py, deadline, |d| {
        // SAFETY: as above (the first attempt took nothing).
        let h = unsafe { g.handle_static() };
        match h.loan_timeout_any(n, d) {
            Ok(loan) => Some(Ok(g.lend(TxLent::new(loan, n)))),
            Err(SendTimeoutError::Timeout) => None,
            Err(e) => Some(Err(e)),
        }
    })?;
    match r {
        Some(Ok(serial)) => Ok(serial),
        Some(Err(e)) => Err(send_error(py, e)),
        None => Err(send_error(py, SendTimeoutError::Timeout)),
    }
}

/// What a `Loan` does to the lender it came from, whichever handle that lender holds.
pub(crate) trait Lends {
    fn lent(&self) -> Option<&TxLent>;
    fn lent_mut(&mut self) -> Option<&mut TxLent>;
    fn take(&mut self) -> Option<TxLent>;
    fn end(&mut self);
}

impl<H: 'static> Lends for Lender<H, TxLent> {
    fn lent(&self) -> Option<&TxLent> {
        Lender::lent(self)
    }
    fn lent_mut(&mut self) -> Option<&mut TxLent> {
        Lender::lent_mut(self)
    }
    fn take(&mut self) -> Option<TxLent> {
        Lender::take(self)
    }
    fn end(&mut self) {
        Lender::end(self)
    }
}

/// Whose loan a `Loan` is.
pub(crate) enum LoanOwner {
    Sender(Py<FrameSender>),
    Publisher(Py<crate::broadcast::FramePublisher>),
}

/// The sending end of a frame channel: byte strings of 0 to `max_frame` bytes.
///
/// Make one with `FrameSender.create(name, **options)` or `FrameSender.open(name, **options)`.
///
/// >>> tx = shmchan.FrameSender.create("frames", capacity=1 << 20)
/// >>> tx.send(b"hello")                   # any contiguous buffer: bytes, memoryview, ndarray
/// >>> with tx.loan(4096) as loan:         # write in place, publish with commit(n)
/// ...     loan[:5] = b"world"
/// ...     loan.commit(5)
#[pyclass(module = "shmchan._shmchan", frozen, subclass)]
pub struct FrameSender {
    inner: Mutex<TxLender>,
    born: u32,
    capacity: usize,
    max_frame: usize,
    name: String,
}

impl FrameSender {
    /// The handle locked, open and not used in a fork child.
    fn open_locked(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, TxLender>> {
        fork::check(py, self.born, "FrameSender")?;
        let g = lock(py, &self.inner);
        if !g.is_open() {
            return Err(errors::closed_handle("FrameSender"));
        }
        Ok(g)
    }

    /// As `open_locked`, with no loan out.
    fn free_locked(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, TxLender>> {
        let g = self.open_locked(py)?;
        if g.lent().is_some() {
            return Err(PyBufferError::new_err(
                "a loan of this sender is outstanding: commit it or leave its with block first",
            ));
        }
        Ok(g)
    }
}

/// The sender, for a query: the handle, or the one the outstanding loan borrows.
fn sender_of(l: &mut TxLender) -> &frame::Sender {
    if l.lent().is_none() {
        return l.handle().expect("open (checked by the caller)");
    }
    match &l.lent().expect("checked above").loan {
        AnyLoan::Frame(loan) => loan.sender(),
        AnyLoan::Topic(_) => unreachable!("a frame sender lends frame loans"),
    }
}

/// A reference taken into `py.detach`, which runs its closure on this same thread (it only
/// releases the GIL): a handle that is `Send` but not `Sync` (a frame receiver, borrowed by the
/// frame it lent) can then be waited on there. Use it through [`get`](Self::get), so that a
/// closure captures the wrapper, not its field.
struct SameThread<T>(T);

// SAFETY: the value never reaches another thread: `py.detach` runs the closure on the thread
// that made it, and the handle's mutex, held across the call, keeps other threads from it.
unsafe impl<T> Send for SameThread<T> {}

impl<T> SameThread<T> {
    fn get(&self) -> &T {
        &self.0
    }
}

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

/// Send `bytes`: one attempt with the GIL held (released for a large copy), then waiting in
/// slices if there is no room and `patience` allows.
fn send_bytes(
    py: Python<'_>,
    tx: &mut frame::Sender,
    bytes: &[u8],
    patience: Patience,
) -> PyResult<()> {
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

#[pymethods]
impl FrameSender {
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
                    frame::Sender::create(name, &opts)
                } else {
                    frame::Sender::open(name, &opts)
                }
            })
            .map_err(|e| errors::from_error(py, e))?;
        Ok(FrameSender {
            capacity: tx.capacity(),
            max_frame: tx.max_frame(),
            inner: Mutex::new(Lender::new(tx)),
            born: fork::generation(),
            name: name.to_owned(),
        })
    }

    /// Create the frame channel `name` (exclusively) and attach as its sender.
    /// `capacity` is in bytes (rounded up to a power of two).
    #[classmethod]
    #[pyo3(signature = (name, **options))]
    fn create<'py>(
        cls: &Bound<'py, PyType>,
        name: &str,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        cls.call((name,), Some(&with_create(cls.py(), options, true)?))
    }

    /// Open the existing frame channel `name` and attach as its sender.
    #[classmethod]
    #[pyo3(signature = (name, **options))]
    fn open<'py>(
        cls: &Bound<'py, PyType>,
        name: &str,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        cls.call((name,), Some(&with_create(cls.py(), options, false)?))
    }

    /// Send a copy of `data` (any contiguous buffer), waiting for room at most `timeout`
    /// seconds (`None`: as long as it takes). Raises `Timeout`, `Disconnected`, `TooLarge`.
    #[pyo3(signature = (data, timeout = None))]
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let src = buf::Borrowed::read(data)?;
        let patience = Patience::from_timeout(timeout)?;
        let mut g = self.free_locked(py)?;
        let tx = g.handle().expect("open, nothing lent");
        send_bytes(py, tx, src.bytes(), patience)
    }

    /// Send a copy of `data` if there is room now; raises `Full` otherwise.
    fn try_send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let src = buf::Borrowed::read(data)?;
        let mut g = self.free_locked(py)?;
        let tx = g.handle().expect("open, nothing lent");
        send_bytes(py, tx, src.bytes(), Patience::Try)
    }

    /// Reserve `n` bytes of the ring to write a frame in place, waiting for room at most
    /// `timeout` seconds. The `Loan` is a writable buffer; `commit(k)` publishes its first `k`
    /// bytes; leaving its `with` block without a commit publishes nothing.
    #[pyo3(signature = (n, timeout = None))]
    fn loan(slf: &Bound<'_, Self>, n: usize, timeout: Option<f64>) -> PyResult<Loan> {
        let py = slf.py();
        let patience = Patience::from_timeout(timeout)?;
        let mut g = slf.get().free_locked(py)?;
        let serial = lend_loan(py, &mut g, n, patience)?;
        Ok(Loan {
            owner: LoanOwner::Sender(slf.clone().unbind()),
            serial,
            len: n,
        })
    }

    /// Bytes in the ring now (frames, their 16-byte headers and padding).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let mut g = self.open_locked(py)?;
        Ok(sender_of(&mut g).len())
    }

    /// The ring's size in bytes.
    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest frame this channel takes, in bytes.
    #[getter]
    fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The channel's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Has `close()` been called?
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        !lock(py, &self.inner).is_open()
    }

    /// Is the receiver attached and alive now (asks the kernel)? (Answered while a loan is
    /// out too, as every query.)
    fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
        let mut g = self.open_locked(py)?;
        Ok(sender_of(&mut g).is_connected())
    }

    /// Wait until a receiver is attached and alive, at most `timeout` seconds.
    #[pyo3(signature = (timeout = None))]
    fn wait_for_peer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let Patience::Until(deadline) = Patience::from_timeout(timeout)? else {
            unreachable!()
        };
        let mut g = self.open_locked(py)?;
        let tx = SameThread(sender_of(&mut g));
        wait_for_peer(py, deadline, move |d| tx.get().wait_for_peer(d))
    }

    /// Detach from the channel (the receiver sees `Disconnected` once it has read everything).
    /// Raises `BufferError` if a loan with live views is out.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock(py, &self.inner);
        if let Some(l) = g.lent() {
            if l.exports > 0 {
                return Err(views_alive("cannot close the sender", l.exports));
            }
        }
        g.close();
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.closed(py) { " closed" } else { "" };
        format!(
            "<shmchan.FrameSender {:?} capacity={}{state}>",
            self.name, self.capacity
        )
    }
}

/// Wait for a peer with `wait(d)` in slices until `deadline`.
pub(crate) fn wait_for_peer(
    py: Python<'_>,
    deadline: Option<std::time::Instant>,
    mut wait: impl FnMut(std::time::Duration) -> Result<(), shmchan::WaitForPeerError> + Send,
) -> PyResult<()> {
    let r = wait::in_slices(py, deadline, |d| match wait(d) {
        Ok(()) => Some(Ok(())),
        Err(shmchan::WaitForPeerError::Timeout) => None,
        Err(e) => Some(Err(e)),
    })?;
    match r {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(errors::from_wait_for_peer(py, e)),
        None => Err(errors::from_wait_for_peer(
            py,
            shmchan::WaitForPeerError::Timeout,
        )),
    }
}

/// Bytes reserved in the ring by `FrameSender.loan(n)`: a writable buffer
/// (`memoryview(loan)`, `np.frombuffer(loan, np.uint8)`, `loan[a:b] = ...`,
/// `f.readinto(loan)`). `commit(k)` publishes the first `k` bytes as one frame; leaving the
/// `with` block (or dropping the loan) without a commit publishes nothing. Views must be gone
/// before the commit (`BufferError` otherwise).
#[pyclass(module = "shmchan._shmchan", frozen)]
pub struct Loan {
    pub(crate) owner: LoanOwner,
    pub(crate) serial: u64,
    pub(crate) len: usize,
}

impl Loan {
    /// Run `f` on the lender this loan came from, if the loan is still out.
    fn with_lent<R>(&self, py: Python<'_>, f: impl FnOnce(&mut dyn Lends) -> R) -> Option<R> {
        match &self.owner {
            LoanOwner::Sender(o) => {
                let mut g = lock(py, &o.get().inner);
                g.lent_as(self.serial)?;
                Some(f(&mut *g))
            }
            LoanOwner::Publisher(o) => {
                let mut g = lock(py, o.get().lender());
                g.lent_as(self.serial)?;
                Some(f(&mut *g))
            }
        }
    }

    /// The process generation of the loan's handle.
    fn born(&self) -> u32 {
        match &self.owner {
            LoanOwner::Sender(o) => o.get().born,
            LoanOwner::Publisher(o) => o.get().born(),
        }
    }

    fn done() -> PyErr {
        PyValueError::new_err("the loan was committed or abandoned")
    }
}

#[pymethods]
impl Loan {
    fn __len__(&self) -> usize {
        self.len
    }

    /// Publish the first `n` bytes (all of them if `n` is None) as one frame.
    #[pyo3(signature = (n = None))]
    fn commit(&self, py: Python<'_>, n: Option<usize>) -> PyResult<()> {
        let n = n.unwrap_or(self.len);
        fork::check(py, self.born(), "Loan")?;
        self.with_lent(py, |g| {
            let l = g.lent().expect("checked by with_lent");
            if l.exports > 0 {
                return Err(views_alive("cannot commit the loan", l.exports));
            }
            if n > l.len {
                return Err(PyValueError::new_err(format!(
                    "commit({n}) of a loan of {} bytes",
                    l.len
                )));
            }
            let l = g.take().expect("checked by with_lent");
            l.commit(n);
            Ok(())
        })
        .unwrap_or_else(|| Err(Self::done()))
    }

    /// Give the bytes back without publishing anything.
    fn abandon(&self, py: Python<'_>) -> PyResult<()> {
        self.with_lent(py, |g| {
            let l = g.lent().expect("checked by with_lent");
            if l.exports > 0 {
                return Err(views_alive("cannot abandon the loan", l.exports));
            }
            g.end();
            Ok(())
        })
        .unwrap_or(Ok(()))
    }

    /// Is the loan still out (neither committed nor abandoned)?
    #[getter]
    fn active(&self, py: Python<'_>) -> bool {
        self.with_lent(py, |_| ()).is_some()
    }

    fn __getitem__<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        getitem(slf.as_any(), key)
    }

    fn __setitem__(
        slf: &Bound<'_, Self>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        setitem(slf.as_any(), key, value)
    }

    /// # Safety
    /// Called by Python with a `Py_buffer` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        this.with_lent(py, |g| {
            let l = g.lent_mut().expect("checked by with_lent");
            // SAFETY: the loan's `len` bytes at `ptr` are ours to write until it is committed
            // or abandoned, which both refuse while `exports > 0`, counted up here and down in
            // `__releasebuffer__`; the view holds a reference to this `Loan`, which holds its
            // sender or publisher.
            unsafe { buf::export(view, slf.as_any(), l.ptr, l.len, false, flags)? };
            l.exports += 1;
            Ok(())
        })
        .unwrap_or_else(|| Err(Self::done()))
    }

    /// # Safety
    /// Called by Python for a view `__getbuffer__` filled.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        Python::attach(|py| {
            self.with_lent(py, |g| {
                if let Some(l) = g.lent_mut() {
                    l.exports = l.exports.saturating_sub(1);
                }
            });
        });
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Abandon the loan unless it was committed.
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.abandon(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.active(py) { "" } else { " done" };
        format!("<shmchan.Loan of {} bytes{state}>", self.len)
    }
}

impl Drop for Loan {
    /// A loan dropped while still out is abandoned (no view is alive: each holds the loan).
    fn drop(&mut self) {
        Python::attach(|py| {
            self.with_lent(py, |g| g.end());
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Receiver

/// What a receiver has lent out.
pub(crate) enum RxLent {
    /// Received and not yet handed to Python (inside a call, or kept by a `recv_into` whose
    /// buffer was too small: the next receive delivers it).
    Pending(frame::Frame<'static>),
    /// Handed to Python as a `Frame` object, with its views alive.
    Lent {
        frame: frame::Frame<'static>,
        exports: usize,
    },
    /// An `await recv_async()` in progress.
    Awaiting(Pin<Box<frame::RecvFuture<'static>>>),
}

// SAFETY: a `frame::Frame` and a `frame::RecvFuture` borrow only their `frame::Receiver`
// (`Send`), and point into the ring it maps; neither is tied to a thread (the future's reactor
// registration is process-wide).
unsafe impl Borrower for RxLent {}

type RxLender = Lender<frame::Receiver, RxLent>;

/// The receiving end of a frame channel.
///
/// >>> rx = shmchan.FrameReceiver.open("frames", open_timeout=5.0)
/// >>> data = rx.recv(timeout=1.0)         # bytes (a copy)
/// >>> n = rx.recv_into(buffer)            # into your bytearray / ndarray
/// >>> with rx.recv_frame() as f:          # in place, zero copy
/// ...     a = np.frombuffer(f, np.uint8)
/// ...     total = int(a.sum())
/// ...     del a                           # views must be gone when the block ends
#[pyclass(module = "shmchan._shmchan", frozen, subclass)]
pub struct FrameReceiver {
    inner: Mutex<RxLender>,
    born: u32,
    capacity: usize,
    name: String,
}

impl FrameReceiver {
    fn open_locked(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, RxLender>> {
        fork::check(py, self.born, "FrameReceiver")?;
        let g = lock(py, &self.inner);
        if !g.is_open() {
            return Err(errors::closed_handle("FrameReceiver"));
        }
        Ok(g)
    }
}

/// The receiver, for a query: the handle, or the one the frame it lent borrows (a frame from
/// `recv_frame` that is still out is not released behind its holder's back). A `recv_async`
/// in progress holds the receiver in its future, which lends it to nobody: `RuntimeError`.
fn receiver_of(l: &mut RxLender) -> PyResult<&frame::Receiver> {
    if l.lent().is_none() {
        return Ok(l.handle().expect("open (checked by the caller)"));
    }
    match l.lent() {
        Some(RxLent::Pending(f) | RxLent::Lent { frame: f, .. }) => Ok(f.receiver()),
        _ => Err(PyRuntimeError::new_err(
            "a recv_async() is in progress on this receiver: ask it after the receive",
        )),
    }
}

/// Before a receive: `true` if a frame is already pending (deliver it); `false` if nothing is
/// lent any more (a `Frame` whose views are all gone is released, as the Rust receiver
/// releases a leaked frame at its next receive).
fn settle(l: &mut RxLender) -> PyResult<bool> {
    match l.lent() {
        None => Ok(false),
        Some(RxLent::Pending(_)) => Ok(true),
        Some(RxLent::Lent { exports: 0, .. }) => {
            l.end();
            Ok(false)
        }
        Some(RxLent::Lent { exports, .. }) => Err(views_alive(
            "cannot receive while the frame from recv_frame() is held",
            *exports,
        )),
        Some(RxLent::Awaiting(_)) => Err(PyRuntimeError::new_err(
            "a recv_async() is in progress on this receiver",
        )),
    }
}

/// Make the next frame pending in `l`: one attempt with the GIL held, then waiting in slices
/// if `patience` allows.
fn next_frame(py: Python<'_>, l: &mut RxLender, patience: Patience) -> PyResult<()> {
    if settle(l)? {
        return Ok(());
    }
    // SAFETY: open (checked by the caller) and nothing lent (`settle`); the frame made from it
    // goes into `l` at once, or the reference is dropped.
    let rx = unsafe { l.handle_static() };
    match rx.try_recv() {
        Ok(f) => {
            l.lend(RxLent::Pending(f));
            return Ok(());
        }
        Err(e @ TryRecvError::Disconnected) => return Err(errors::disconnected(py, e)),
        Err(e @ TryRecvError::Empty) => {
            if let Patience::Try = patience {
                return Err(errors::new(py, Kind::Empty, e));
            }
        }
    }
    let Patience::Until(deadline) = patience else {
        unreachable!("Try returned above")
    };
    let got = wait::in_slices(py, deadline, |d| {
        // SAFETY: as above: nothing is lent, and the frame goes into `l` at once.
        let rx = unsafe { l.handle_static() };
        match rx.recv_timeout(d) {
            Ok(f) => {
                l.lend(RxLent::Pending(f));
                Some(Ok(()))
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(e) => Some(Err(e)),
        }
    })?;
    match got {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(errors::disconnected(py, e)),
        None => Err(errors::timeout(py, RecvTimeoutError::Timeout)),
    }
}

/// The pending frame as `bytes`; the frame is released.
fn take_bytes<'py>(py: Python<'py>, l: &mut RxLender) -> PyResult<Bound<'py, PyBytes>> {
    let Some(RxLent::Pending(f)) = l.lent() else {
        unreachable!("next_frame leaves a pending frame")
    };
    let out = to_bytes(py, f);
    l.end();
    out
}

#[pymethods]
impl FrameReceiver {
    #[new]
    #[pyo3(signature = (name, *, create = false, **options))]
    fn new(
        py: Python<'_>,
        name: &str,
        create: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let opts = crate::opts::parse(options)?;
        let rx = py
            .detach(|| {
                if create {
                    frame::Receiver::create(name, &opts)
                } else {
                    frame::Receiver::open(name, &opts)
                }
            })
            .map_err(|e| errors::from_error(py, e))?;
        Ok(FrameReceiver {
            capacity: rx.capacity(),
            inner: Mutex::new(Lender::new(rx)),
            born: fork::generation(),
            name: name.to_owned(),
        })
    }

    /// Create the frame channel `name` (exclusively) and attach as its receiver.
    #[classmethod]
    #[pyo3(signature = (name, **options))]
    fn create<'py>(
        cls: &Bound<'py, PyType>,
        name: &str,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        cls.call((name,), Some(&with_create(cls.py(), options, true)?))
    }

    /// Open the existing frame channel `name` and attach as its receiver.
    #[classmethod]
    #[pyo3(signature = (name, **options))]
    fn open<'py>(
        cls: &Bound<'py, PyType>,
        name: &str,
        options: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        cls.call((name,), Some(&with_create(cls.py(), options, false)?))
    }

    /// The next frame as `bytes`, waiting at most `timeout` seconds (`None`: as long as it
    /// takes). Raises `Timeout`, or `Disconnected` once the sender is gone and all is read.
    #[pyo3(signature = (timeout = None))]
    fn recv<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        let patience = Patience::from_timeout(timeout)?;
        let mut g = self.open_locked(py)?;
        next_frame(py, &mut g, patience)?;
        take_bytes(py, &mut g)
    }

    /// The next frame as `bytes` if there is one now; raises `Empty` otherwise.
    fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let mut g = self.open_locked(py)?;
        next_frame(py, &mut g, Patience::Try)?;
        take_bytes(py, &mut g)
    }

    /// Copy the next frame into `buffer` (any writable contiguous buffer) and return its
    /// length. A frame longer than the buffer raises `ValueError` and stays for the next
    /// receive.
    #[pyo3(signature = (buffer, timeout = None))]
    fn recv_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        let mut dst = buf::Borrowed::write(buffer)?;
        let patience = Patience::from_timeout(timeout)?;
        let mut g = self.open_locked(py)?;
        next_frame(py, &mut g, patience)?;
        let Some(RxLent::Pending(f)) = g.lent() else {
            unreachable!("next_frame leaves a pending frame")
        };
        let n = f.len();
        if n > dst.len() {
            return Err(PyValueError::new_err(format!(
                "the next frame is {n} bytes and the buffer only {}: the frame stays for the \
                 next receive",
                dst.len()
            )));
        }
        copy(py, &mut dst.bytes_mut()[..n], f);
        g.end();
        Ok(n)
    }

    /// The next frame in place, as a read-only buffer pinned to its slot in the ring (zero
    /// copy): `memoryview(f)`, `np.frombuffer(f, np.uint8)`. Use it in a `with` block: at its
    /// end the slot goes back to the sender, and `BufferError` is raised if a view of it is
    /// still alive (the slot then stays held until the views are gone and the frame is
    /// released or the next receive is made).
    #[pyo3(signature = (timeout = None))]
    fn recv_frame(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<Frame> {
        let py = slf.py();
        let this = slf.get();
        let patience = Patience::from_timeout(timeout)?;
        let mut g = this.open_locked(py)?;
        next_frame(py, &mut g, patience)?;
        let Some(RxLent::Pending(frame)) = g.take() else {
            unreachable!("next_frame leaves a pending frame")
        };
        let (ptr, len) = (frame.as_ptr(), frame.len());
        let serial = g.lend(RxLent::Lent { frame, exports: 0 });
        Ok(Frame {
            owner: slf.clone().unbind(),
            serial,
            ptr: ptr as usize,
            len,
        })
    }

    /// One poll of an asynchronous receive (for `recv_async`): the frame as `bytes`, or `None`
    /// if there is none yet, in which case `waker` is woken with `token` when there may be.
    fn _poll_recv<'py>(
        &self,
        py: Python<'py>,
        waker: &crate::aio::LoopWaker,
        token: u64,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mut g = self.open_locked(py)?;
        if !matches!(g.lent(), Some(RxLent::Awaiting(_))) {
            if settle(&mut g)? {
                return take_bytes(py, &mut g).map(Some);
            }
            // SAFETY: open and nothing lent (`settle`); the future made from it goes into `g`
            // at once.
            let rx = unsafe { g.handle_static() };
            g.lend(RxLent::Awaiting(Box::pin(rx.recv_async())));
        }
        let Some(RxLent::Awaiting(fut)) = g.lent_mut() else {
            unreachable!("set above")
        };
        let w = waker.waker(token);
        let mut cx = Context::from_waker(&w);
        match fut.as_mut().poll(&mut cx) {
            Poll::Pending => Ok(None),
            Poll::Ready(r) => {
                // The future gave its borrow of the receiver to the frame: drop the future, keep
                // the frame.
                g.end();
                match r {
                    Ok(f) => {
                        g.lend(RxLent::Pending(f));
                        take_bytes(py, &mut g).map(Some)
                    }
                    Err(e) => Err(errors::disconnected(py, e)),
                }
            }
        }
    }

    /// Cancel an asynchronous receive in progress (its Rust future is dropped, which undoes its
    /// registration; nothing was taken from the ring).
    /// (`_token`, the receive's number, is for the typed classes, which keep one registration
    /// per receive: this handle has one receive in progress at most.)
    #[pyo3(signature = (_token = None))]
    fn _cancel_recv(&self, py: Python<'_>, _token: Option<u64>) {
        let mut g = lock(py, &self.inner);
        if matches!(g.lent(), Some(RxLent::Awaiting(_))) {
            g.end();
        }
    }

    /// Bytes in the ring now (frames, their headers and padding).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let mut g = self.open_locked(py)?;
        Ok(receiver_of(&mut g)?.len())
    }

    /// The ring's size in bytes.
    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// The largest frame the channel takes (the capacity less 16).
    #[getter]
    fn max_frame(&self) -> usize {
        self.capacity - 16
    }

    /// The channel's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Has `close()` been called?
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        !lock(py, &self.inner).is_open()
    }

    /// Is the sender attached and alive now (asks the kernel)? (Answered while a frame is
    /// out too, as every query.)
    fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
        let mut g = self.open_locked(py)?;
        Ok(receiver_of(&mut g)?.is_connected())
    }

    /// Wait until a sender is attached and alive, at most `timeout` seconds.
    #[pyo3(signature = (timeout = None))]
    fn wait_for_peer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let Patience::Until(deadline) = Patience::from_timeout(timeout)? else {
            unreachable!()
        };
        let mut g = self.open_locked(py)?;
        let rx = SameThread(receiver_of(&mut g)?);
        wait_for_peer(py, deadline, move |d| rx.get().wait_for_peer(d))
    }

    /// Detach from the channel. Raises `BufferError` if a frame with live views is out.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut g = lock(py, &self.inner);
        if let Some(RxLent::Lent { exports, .. }) = g.lent() {
            if *exports > 0 {
                return Err(views_alive("cannot close the receiver", *exports));
            }
        }
        g.close();
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.closed(py) { " closed" } else { "" };
        format!(
            "<shmchan.FrameReceiver {:?} capacity={}{state}>",
            self.name, self.capacity
        )
    }
}

/// A received frame, read in place: a read-only buffer pinned to its slot in the ring.
/// `memoryview(f)` and `np.frombuffer(f, np.uint8)` share memory with the channel (no copy);
/// `bytes(f)` / `f.tobytes()` copy; `len(f)`, `f[i]`, `f[a:b]` work too. The slot goes back to
/// the sender at the end of the `with` block, by `release()`, or at the next receive; each
/// raises `BufferError` while a view is alive (as `mmap.close` does), so no view outlives its
/// slot.
#[pyclass(module = "shmchan._shmchan", frozen)]
pub struct Frame {
    owner: Py<FrameReceiver>,
    serial: u64,
    /// Where the bytes are (an address: the pointer is only used while the frame is lent,
    /// checked under the receiver's lock).
    ptr: usize,
    len: usize,
}

impl Frame {
    fn released_error() -> PyErr {
        PyValueError::new_err("the frame was released (its slot went back to the sender)")
    }
}

#[pymethods]
impl Frame {
    fn __len__(&self) -> usize {
        self.len
    }

    /// Give the slot back to the sender. `BufferError` if a view of the frame is alive.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let owner = self.owner.get();
        let mut g = lock(py, &owner.inner);
        match g.lent_as(self.serial) {
            Some(RxLent::Lent { exports: 0, .. }) => {
                g.end();
                Ok(())
            }
            Some(RxLent::Lent { exports, .. }) => {
                Err(views_alive("cannot release the frame", *exports))
            }
            _ => Ok(()),
        }
    }

    /// Has the slot gone back to the sender?
    #[getter]
    fn released(&self, py: Python<'_>) -> bool {
        let owner = self.owner.get();
        let mut g = lock(py, &owner.inner);
        !matches!(g.lent_as(self.serial), Some(RxLent::Lent { .. }))
    }

    /// A copy of the bytes.
    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let owner = self.owner.get();
        let mut g = lock(py, &owner.inner);
        match g.lent_as(self.serial) {
            Some(RxLent::Lent { frame, .. }) => to_bytes(py, frame),
            _ => Err(Self::released_error()),
        }
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.tobytes(py)
    }

    fn __getitem__<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        getitem(slf.as_any(), key)
    }

    /// # Safety
    /// Called by Python with a `Py_buffer` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let owner = this.owner.get();
        let mut g = lock(py, &owner.inner);
        let Some(RxLent::Lent { exports, .. }) = g.lent_as(this.serial) else {
            return Err(Self::released_error());
        };
        // SAFETY: the frame's `len` bytes at `ptr` stay in the ring, unwritten by the sender,
        // until the frame is released, which every path refuses while `exports > 0` (counted
        // up here, down in `__releasebuffer__`); the view holds a reference to this `Frame`,
        // which holds its receiver (and so the mapping). Exported read-only.
        unsafe {
            buf::export(
                view,
                slf.as_any(),
                this.ptr as *mut u8,
                this.len,
                true,
                flags,
            )?
        };
        *exports += 1;
        Ok(())
    }

    /// # Safety
    /// Called by Python for a view `__getbuffer__` filled.
    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        Python::attach(|py| {
            let owner = self.owner.get();
            let mut g = lock(py, &owner.inner);
            if let Some(RxLent::Lent { exports, .. }) = g.lent_as(self.serial) {
                *exports = exports.saturating_sub(1);
            }
        });
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    /// Release the frame; `BufferError` if a view of it is still alive.
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let state = if self.released(py) { " released" } else { "" };
        format!("<shmchan.Frame of {} bytes{state}>", self.len)
    }
}

impl Drop for Frame {
    /// A frame object that goes away releases its slot (no view is alive: each holds it).
    fn drop(&mut self) {
        Python::attach(|py| {
            let owner = self.owner.get();
            let mut g = lock(py, &owner.inner);
            if let Some(RxLent::Lent { .. }) = g.lent_as(self.serial) {
                g.end();
            }
        });
    }
}
