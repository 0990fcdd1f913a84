//! Typed channels: `shmchan.spsc.Sender/Receiver`, `shmchan.mpmc.Sender/Receiver`,
//! `shmchan.broadcast.Publisher/Subscriber`, over the library's `untyped` handles (an element
//! known at run time: a name, a size, an alignment), which are the peers of Rust's typed
//! `spsc::Sender<Quote>` and the others when the names, sizes and alignments agree.
//!
//! The element and the conversions of values are `codec.rs`'s. Every handle here follows the
//! conventions of `lib.rs`: one attempt with the GIL held, waiting in slices with it released,
//! copies of [`BIG`] bytes or more without it; `ForkedHandle` in a fork child. Handles lend
//! nothing out (the untyped calls copy whole elements in and out), so queries work at any
//! time; an asynchronous receive keeps its `untyped::Waiting` beside the handle, one per
//! pending receive (by its token), never a borrow of the handle.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use shmchan::broadcast::{Overflow, Start};
use shmchan::untyped::{self, Element, Waiting};
use shmchan::{Options, WaitForPeerError};

use crate::codec::{Codec, Out};
use crate::errors::{self, Kind};
use crate::frame::{wait_for_peer, with_create};
use crate::lend::lock;
use crate::wait::{self, Patience};
use crate::{BIG, fork};

/// How a handle attaches to its channel.
pub(crate) enum Attach {
    Create,
    Open,
    Subscribe(Start),
}

/// Why a send stopped (with how many elements went before it).
pub(crate) enum TxErr {
    Full,
    Timeout(usize),
    Disconnected(usize),
}

/// Why a receive got nothing.
pub(crate) enum RxErr {
    Empty,
    Timeout,
    Disconnected,
    Lagged(u64),
    Evicted,
}

impl From<shmchan::TrySendError<()>> for TxErr {
    fn from(e: shmchan::TrySendError<()>) -> TxErr {
        match e {
            shmchan::TrySendError::Full(()) => TxErr::Full,
            shmchan::TrySendError::Disconnected(()) => TxErr::Disconnected(0),
        }
    }
}

impl From<shmchan::SendTimeoutError<usize>> for TxErr {
    fn from(e: shmchan::SendTimeoutError<usize>) -> TxErr {
        match e {
            shmchan::SendTimeoutError::Timeout(n) => TxErr::Timeout(n),
            shmchan::SendTimeoutError::Disconnected(n) => TxErr::Disconnected(n),
        }
    }
}

impl From<shmchan::TryRecvError> for RxErr {
    fn from(e: shmchan::TryRecvError) -> RxErr {
        match e {
            shmchan::TryRecvError::Empty => RxErr::Empty,
            shmchan::TryRecvError::Disconnected => RxErr::Disconnected,
        }
    }
}

impl From<shmchan::RecvTimeoutError> for RxErr {
    fn from(e: shmchan::RecvTimeoutError) -> RxErr {
        match e {
            shmchan::RecvTimeoutError::Timeout => RxErr::Timeout,
            shmchan::RecvTimeoutError::Disconnected => RxErr::Disconnected,
        }
    }
}

impl From<shmchan::RecvError> for RxErr {
    fn from(_: shmchan::RecvError) -> RxErr {
        RxErr::Disconnected
    }
}

impl From<shmchan::broadcast::TryRecvError> for RxErr {
    fn from(e: shmchan::broadcast::TryRecvError) -> RxErr {
        use shmchan::broadcast::TryRecvError as E;
        match e {
            E::Empty => RxErr::Empty,
            E::Lagged(n) => RxErr::Lagged(n),
            E::Evicted => RxErr::Evicted,
            E::Disconnected => RxErr::Disconnected,
        }
    }
}

impl From<shmchan::broadcast::RecvTimeoutError> for RxErr {
    fn from(e: shmchan::broadcast::RecvTimeoutError) -> RxErr {
        use shmchan::broadcast::RecvTimeoutError as E;
        match e {
            E::Timeout => RxErr::Timeout,
            E::Lagged(n) => RxErr::Lagged(n),
            E::Evicted => RxErr::Evicted,
            E::Disconnected => RxErr::Disconnected,
        }
    }
}

impl From<shmchan::broadcast::RecvError> for RxErr {
    fn from(e: shmchan::broadcast::RecvError) -> RxErr {
        use shmchan::broadcast::RecvError as E;
        match e {
            E::Lagged(n) => RxErr::Lagged(n),
            E::Evicted => RxErr::Evicted,
            E::Disconnected => RxErr::Disconnected,
        }
    }
}

/// The exception for a send that stopped; `Timeout` and `Disconnected` say how many elements
/// were sent before (`.sent`).
fn tx_error(py: Python<'_>, e: TxErr) -> PyErr {
    let sent = |n: usize| {
        [(
            "sent",
            n.into_pyobject(py).expect("an int").into_any().unbind(),
        )]
    };
    match e {
        TxErr::Full => errors::new(py, Kind::Full, shmchan::TrySendError::Full(())),
        TxErr::Timeout(n) => errors::with_attrs(
            py,
            Kind::Timeout,
            shmchan::SendTimeoutError::Timeout(n),
            &sent(n),
        ),
        TxErr::Disconnected(n) => errors::with_attrs(
            py,
            Kind::Disconnected,
            shmchan::SendTimeoutError::Disconnected(n),
            &sent(n),
        ),
    }
}

/// The exception for a receive that got nothing (a topic's messages for a subscriber).
fn rx_error(py: Python<'_>, e: RxErr, topic: bool) -> PyErr {
    use shmchan::broadcast::{RecvError as BRecv, TryRecvError as BTry};
    match (e, topic) {
        (RxErr::Empty, false) => errors::new(py, Kind::Empty, shmchan::TryRecvError::Empty),
        (RxErr::Empty, true) => errors::new(py, Kind::Empty, BTry::Empty),
        (RxErr::Timeout, _) => errors::timeout(py, shmchan::RecvTimeoutError::Timeout),
        (RxErr::Disconnected, false) => {
            errors::disconnected(py, shmchan::RecvTimeoutError::Disconnected)
        }
        (RxErr::Disconnected, true) => errors::disconnected(py, BRecv::Disconnected),
        (RxErr::Lagged(n), _) => crate::broadcast::lagged(py, n, BRecv::Lagged(n)),
        (RxErr::Evicted, _) => errors::new(py, Kind::Evicted, BRecv::Evicted),
    }
}

/// A sending handle of elements.
pub(crate) trait Tx: Sized + Send + 'static {
    fn attach(name: &str, e: &Element, o: &Options, how: Attach) -> Result<Self, shmchan::Error>;
    /// As many of `v`'s elements as there is room for now (at least one), or `Full`.
    fn tx_try(&mut self, v: &[u8]) -> Result<usize, TxErr>;
    /// Every element of `v`, waiting at most `d`.
    fn tx_timeout(&mut self, v: &[u8], d: Duration) -> Result<(), TxErr>;
    fn capacity(&self) -> usize;
}

/// A receiving handle of elements.
pub(crate) trait Rx: Sized + Send + 'static {
    /// A broadcast subscriber (its errors are a topic's).
    const TOPIC: bool;
    fn attach(name: &str, e: &Element, o: &Options, how: Attach) -> Result<Self, shmchan::Error>;
    /// The elements there now, as many as `buf` holds (at least one), or `Empty`.
    fn rx_try(&mut self, buf: &mut [u8]) -> Result<usize, RxErr>;
    /// As `rx_try`, waiting at most `d` for a first element.
    fn rx_timeout(&mut self, buf: &mut [u8], d: Duration) -> Result<usize, RxErr>;
    /// One poll of an asynchronous receive into `buf`.
    fn rx_poll(
        &mut self,
        cx: &mut Context<'_>,
        w: &mut Waiting,
        buf: &mut [u8],
    ) -> Poll<Result<usize, RxErr>>;
    fn capacity(&self) -> usize;
}

/// What SPSC and MPMC endpoints answer about their ring and their peer.
pub(crate) trait Peer {
    fn ring_len(&self) -> usize;
    fn connected(&self) -> bool;
    fn wait_peer(&self, d: Duration) -> Result<(), WaitForPeerError>;
}

macro_rules! endpoint_impls {
    ($tx:ty, $rx:ty) => {
        impl Tx for $tx {
            fn attach(
                name: &str,
                e: &Element,
                o: &Options,
                how: Attach,
            ) -> Result<Self, shmchan::Error> {
                match how {
                    Attach::Create => <$tx>::create(name, e, o),
                    _ => <$tx>::open(name, e, o),
                }
            }
            fn tx_try(&mut self, v: &[u8]) -> Result<usize, TxErr> {
                <$tx>::try_send(self, v).map_err(TxErr::from)
            }
            fn tx_timeout(&mut self, v: &[u8], d: Duration) -> Result<(), TxErr> {
                <$tx>::send_timeout(self, v, d).map_err(TxErr::from)
            }
            fn capacity(&self) -> usize {
                <$tx>::capacity(self)
            }
        }

        impl Rx for $rx {
            const TOPIC: bool = false;
            fn attach(
                name: &str,
                e: &Element,
                o: &Options,
                how: Attach,
            ) -> Result<Self, shmchan::Error> {
                match how {
                    Attach::Create => <$rx>::create(name, e, o),
                    _ => <$rx>::open(name, e, o),
                }
            }
            fn rx_try(&mut self, buf: &mut [u8]) -> Result<usize, RxErr> {
                <$rx>::try_recv(self, buf).map_err(RxErr::from)
            }
            fn rx_timeout(&mut self, buf: &mut [u8], d: Duration) -> Result<usize, RxErr> {
                <$rx>::recv_timeout(self, buf, d).map_err(RxErr::from)
            }
            fn rx_poll(
                &mut self,
                cx: &mut Context<'_>,
                w: &mut Waiting,
                buf: &mut [u8],
            ) -> Poll<Result<usize, RxErr>> {
                <$rx>::poll_recv(self, cx, w, buf).map(|r| r.map_err(RxErr::from))
            }
            fn capacity(&self) -> usize {
                <$rx>::capacity(self)
            }
        }

        impl Peer for $tx {
            fn ring_len(&self) -> usize {
                <$tx>::len(self)
            }
            fn connected(&self) -> bool {
                <$tx>::is_connected(self)
            }
            fn wait_peer(&self, d: Duration) -> Result<(), WaitForPeerError> {
                <$tx>::wait_for_peer(self, d)
            }
        }

        impl Peer for $rx {
            fn ring_len(&self) -> usize {
                <$rx>::len(self)
            }
            fn connected(&self) -> bool {
                <$rx>::is_connected(self)
            }
            fn wait_peer(&self, d: Duration) -> Result<(), WaitForPeerError> {
                <$rx>::wait_for_peer(self, d)
            }
        }
    };
}

endpoint_impls!(untyped::spsc::Sender, untyped::spsc::Receiver);
endpoint_impls!(untyped::mpmc::Sender, untyped::mpmc::Receiver);

impl Tx for untyped::broadcast::Publisher {
    fn attach(name: &str, e: &Element, o: &Options, how: Attach) -> Result<Self, shmchan::Error> {
        match how {
            Attach::Create => Self::create(name, e, o),
            _ => Self::open(name, e, o),
        }
    }
    fn tx_try(&mut self, v: &[u8]) -> Result<usize, TxErr> {
        untyped::broadcast::Publisher::try_send(self, v).map_err(TxErr::from)
    }
    fn tx_timeout(&mut self, v: &[u8], d: Duration) -> Result<(), TxErr> {
        untyped::broadcast::Publisher::send_timeout(self, v, d).map_err(TxErr::from)
    }
    fn capacity(&self) -> usize {
        untyped::broadcast::Publisher::capacity(self)
    }
}

impl Rx for untyped::broadcast::Subscriber {
    const TOPIC: bool = true;
    fn attach(name: &str, e: &Element, o: &Options, how: Attach) -> Result<Self, shmchan::Error> {
        let start = match how {
            Attach::Subscribe(s) => s,
            _ => Start::Latest,
        };
        Self::open_from(name, e, start, o)
    }
    fn rx_try(&mut self, buf: &mut [u8]) -> Result<usize, RxErr> {
        untyped::broadcast::Subscriber::try_recv(self, buf).map_err(RxErr::from)
    }
    fn rx_timeout(&mut self, buf: &mut [u8], d: Duration) -> Result<usize, RxErr> {
        untyped::broadcast::Subscriber::recv_timeout(self, buf, d).map_err(RxErr::from)
    }
    fn rx_poll(
        &mut self,
        cx: &mut Context<'_>,
        w: &mut Waiting,
        buf: &mut [u8],
    ) -> Poll<Result<usize, RxErr>> {
        untyped::broadcast::Subscriber::poll_recv(self, cx, w, buf).map(|r| r.map_err(RxErr::from))
    }
    fn capacity(&self) -> usize {
        untyped::broadcast::Subscriber::capacity(self)
    }
}

/// Send every element of `values` (whole elements of `size` bytes): one attempt with the GIL
/// held (released for a large copy), then waiting in slices as `patience` allows.
fn send_all<H: Tx>(
    py: Python<'_>,
    tx: &mut H,
    values: &[u8],
    size: usize,
    patience: Patience,
) -> PyResult<()> {
    let total = values.len() / size;
    if total == 0 {
        return Ok(());
    }
    let first = if values.len() >= BIG {
        py.detach(|| tx.tx_try(values))
    } else {
        tx.tx_try(values)
    };
    let mut sent = match first {
        Ok(n) => n,
        Err(TxErr::Full) => 0,
        Err(e) => return Err(tx_error(py, e)),
    };
    if sent == total {
        return Ok(());
    }
    let deadline = match patience {
        Patience::Try => return Err(tx_error(py, TxErr::Full)),
        Patience::Until(d) => d,
    };
    let r = wait::in_slices(py, deadline, |d| {
        match tx.tx_timeout(&values[sent * size..], d) {
            Ok(()) => {
                sent = total;
                Some(Ok(()))
            }
            Err(TxErr::Timeout(n)) => {
                sent += n;
                None
            }
            Err(TxErr::Disconnected(n)) => {
                sent += n;
                Some(Err(()))
            }
            Err(TxErr::Full) => None,
        }
    })?;
    match r {
        Some(Ok(())) => Ok(()),
        Some(Err(())) => Err(tx_error(py, TxErr::Disconnected(sent))),
        None => Err(tx_error(py, TxErr::Timeout(sent))),
    }
}

/// Receive at least one element into `dst` (whole elements), as many as are there: one
/// attempt with the GIL held (released for a large buffer), then waiting in slices.
fn recv_some<H: Rx>(
    py: Python<'_>,
    rx: &mut H,
    dst: &mut [u8],
    patience: Patience,
) -> PyResult<usize> {
    let first = if dst.len() >= BIG {
        py.detach(|| rx.rx_try(dst))
    } else {
        rx.rx_try(dst)
    };
    match first {
        Ok(n) => return Ok(n),
        Err(RxErr::Empty) => {}
        Err(e) => return Err(rx_error(py, e, H::TOPIC)),
    }
    let deadline = match patience {
        Patience::Try => return Err(rx_error(py, RxErr::Empty, H::TOPIC)),
        Patience::Until(d) => d,
    };
    let r = wait::in_slices(py, deadline, |d| match rx.rx_timeout(dst, d) {
        Ok(n) => Some(Ok(n)),
        Err(RxErr::Timeout) => None,
        Err(e) => Some(Err(e)),
    })?;
    match r {
        Some(Ok(n)) => Ok(n),
        Some(Err(e)) => Err(rx_error(py, e, H::TOPIC)),
        None => Err(rx_error(py, RxErr::Timeout, H::TOPIC)),
    }
}

/// The exception for a failed create/open: the library's, with a hint about the dtype's
/// layout when the payloads disagree.
fn attach_error(py: Python<'_>, e: shmchan::Error, codec: &Codec) -> PyErr {
    if let (shmchan::Error::Incompatible { .. }, Some(hint)) = (&e, codec.hint()) {
        return errors::new(py, Kind::Incompatible, format!("{e} ({hint})"));
    }
    errors::from_error(py, e)
}

/// What every typed handle keeps beside its Rust handle.
struct Common {
    codec: Codec,
    born: u32,
    capacity: usize,
    name: String,
    /// The Python class's name, for messages (`"spsc.Sender"`).
    what: &'static str,
}

impl Common {
    fn repr(&self, py: Python<'_>, closed: bool) -> String {
        format!(
            "<shmchan.{} {:?} of {} capacity={}{}>",
            self.what,
            self.name,
            self.codec.describe(py),
            self.capacity,
            if closed { " closed" } else { "" }
        )
    }
}

/// The sending side of a typed handle class.
pub(crate) struct TxCore<H> {
    inner: Mutex<Option<H>>,
    c: Common,
}

impl<H: Tx> TxCore<H> {
    fn new(
        py: Python<'_>,
        name: &str,
        how: Attach,
        codec: Codec,
        options: Option<&Bound<'_, PyDict>>,
        what: &'static str,
    ) -> PyResult<Self> {
        let opts = crate::opts::parse(options)?;
        let element = codec.element();
        let h = py
            .detach(|| H::attach(name, element, &opts, how))
            .map_err(|e| attach_error(py, e, &codec))?;
        Ok(TxCore {
            c: Common {
                capacity: h.capacity(),
                codec,
                born: fork::generation(),
                name: name.to_owned(),
                what,
            },
            inner: Mutex::new(Some(h)),
        })
    }

    /// The handle locked, open and not used in a fork child.
    fn locked(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Option<H>>> {
        fork::check(py, self.c.born, self.c.what)?;
        let g = lock(py, &self.inner);
        if g.is_none() {
            return Err(errors::closed_handle(self.c.what));
        }
        Ok(g)
    }

    fn with<T>(&self, py: Python<'_>, f: impl FnOnce(&mut H) -> PyResult<T>) -> PyResult<T> {
        let mut g = self.locked(py)?;
        f(g.as_mut().expect("checked by locked"))
    }

    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>, patience: Patience) -> PyResult<()> {
        // Converted before the lock: the conversion may run Python code.
        let bytes = self.c.codec.encode(value)?;
        let size = self.c.codec.size();
        self.with(py, |tx| send_all(py, tx, &bytes, size, patience))
    }

    fn send_many(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyAny>,
        patience: Patience,
    ) -> PyResult<()> {
        let batch = self.c.codec.batch(values)?;
        let size = self.c.codec.size();
        self.with(py, |tx| send_all(py, tx, batch.bytes(py), size, patience))
    }

    fn close(&self, py: Python<'_>) {
        lock(py, &self.inner).take();
    }

    fn closed(&self, py: Python<'_>) -> bool {
        lock(py, &self.inner).is_none()
    }
}

struct RxState<H> {
    /// The registrations of the asynchronous receives in progress, by token (dropped before
    /// the handle: fields drop in order).
    waiting: HashMap<u64, Waiting>,
    handle: Option<H>,
    out: Out,
}

/// The receiving side of a typed handle class.
pub(crate) struct RxCore<H> {
    inner: Mutex<RxState<H>>,
    c: Common,
}

impl<H: Rx> RxCore<H> {
    fn new(
        py: Python<'_>,
        name: &str,
        how: Attach,
        codec: Codec,
        options: Option<&Bound<'_, PyDict>>,
        what: &'static str,
    ) -> PyResult<Self> {
        let opts = crate::opts::parse(options)?;
        let element = codec.element();
        let h = py
            .detach(|| H::attach(name, element, &opts, how))
            .map_err(|e| attach_error(py, e, &codec))?;
        let out = codec.out(py);
        Ok(RxCore {
            c: Common {
                capacity: h.capacity(),
                codec,
                born: fork::generation(),
                name: name.to_owned(),
                what,
            },
            inner: Mutex::new(RxState {
                waiting: HashMap::new(),
                handle: Some(h),
                out,
            }),
        })
    }

    fn locked(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, RxState<H>>> {
        fork::check(py, self.c.born, self.c.what)?;
        let g = lock(py, &self.inner);
        if g.handle.is_none() {
            return Err(errors::closed_handle(self.c.what));
        }
        Ok(g)
    }

    fn with<T>(&self, py: Python<'_>, f: impl FnOnce(&mut H) -> PyResult<T>) -> PyResult<T> {
        let mut g = self.locked(py)?;
        f(g.handle.as_mut().expect("checked by locked"))
    }

    fn recv<'py>(&self, py: Python<'py>, patience: Patience) -> PyResult<Bound<'py, PyAny>> {
        let mut g = self.locked(py)?;
        let st = &mut *g;
        let slot = st.out.slot(py)?;
        let rx = st.handle.as_mut().expect("checked by locked");
        recv_some(py, rx, slot, patience)?;
        st.out.take(py)
    }

    fn recv_into(
        &self,
        py: Python<'_>,
        buffer: &Bound<'_, PyAny>,
        patience: Patience,
    ) -> PyResult<usize> {
        let mut dst = self.c.codec.destination(buffer)?;
        self.with(py, |rx| recv_some(py, rx, dst.bytes_mut(), patience))
    }

    fn poll<'py>(
        &self,
        py: Python<'py>,
        waker: &crate::aio::LoopWaker,
        token: u64,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut g = self.locked(py)?;
        let st = &mut *g;
        let slot = st.out.slot(py)?;
        let rx = st.handle.as_mut().expect("checked by locked");
        let w = st.waiting.entry(token).or_default();
        let waker = waker.waker(token);
        let mut cx = Context::from_waker(&waker);
        match rx.rx_poll(&mut cx, w, slot) {
            Poll::Pending => Ok(None),
            Poll::Ready(r) => {
                st.waiting.remove(&token);
                match r {
                    Ok(_) => st.out.take(py).map(Some),
                    Err(e) => Err(rx_error(py, e, H::TOPIC)),
                }
            }
        }
    }

    fn cancel(&self, py: Python<'_>, token: Option<u64>) {
        let mut g = lock(py, &self.inner);
        match token {
            Some(t) => drop(g.waiting.remove(&t)),
            None => g.waiting.clear(),
        }
    }

    fn close(&self, py: Python<'_>) {
        let mut g = lock(py, &self.inner);
        g.waiting.clear();
        g.handle = None;
    }

    fn closed(&self, py: Python<'_>) -> bool {
        lock(py, &self.inner).handle.is_none()
    }
}

/// `Patience::Until` of a `timeout` (for the waits that have no `try_` form).
fn deadline(timeout: Option<f64>) -> PyResult<Option<std::time::Instant>> {
    match Patience::from_timeout(timeout)? {
        Patience::Until(d) => Ok(d),
        Patience::Try => unreachable!("from_timeout never says Try"),
    }
}

/// The methods every typed handle class has (`$core` is `TxCore` or `RxCore`), then `$extra`.
/// One `#[pymethods]` block per class (PyO3 takes one without `multiple-pymethods`).
macro_rules! typed_class {
    (
        $(#[$meta:meta])*
        $cls:ident, $pyname:literal, $core:ident<$handle:ty>, { $($extra:tt)* }
    ) => {
        $(#[$meta])*
        #[pyclass(module = "shmchan._shmchan", name = $pyname, frozen, subclass)]
        pub struct $cls {
            core: $core<$handle>,
        }

        #[pymethods]
        impl $cls {
            /// The channel's name.
            #[getter]
            fn name(&self) -> &str {
                &self.core.c.name
            }

            /// How many elements the ring holds.
            #[getter]
            fn capacity(&self) -> usize {
                self.core.c.capacity
            }

            /// The element's numpy dtype (`None` with `format=`).
            #[getter]
            fn dtype<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
                self.core.c.codec.dtype(py)
            }

            /// The element's `struct` format (`None` with `dtype=`).
            #[getter]
            fn format(&self) -> Option<&str> {
                self.core.c.codec.format()
            }

            /// The name both sides know the element by (Rust: `Options::type_name`).
            #[getter]
            fn type_name(&self) -> &str {
                self.core.c.codec.element().name()
            }

            /// The size of one element in bytes.
            #[getter]
            fn itemsize(&self) -> usize {
                self.core.c.codec.size()
            }

            /// The element's alignment in bytes.
            #[getter]
            fn alignment(&self) -> usize {
                self.core.c.codec.element().align()
            }

            /// Has `close()` been called?
            #[getter]
            fn closed(&self, py: Python<'_>) -> bool {
                self.core.closed(py)
            }

            /// Detach from the channel.
            fn close(&self, py: Python<'_>) {
                self.core.close(py)
            }

            fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
                slf
            }

            #[pyo3(signature = (*_exc))]
            fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
                self.core.close(py);
                false
            }

            fn __repr__(&self, py: Python<'_>) -> String {
                self.core.c.repr(py, self.core.closed(py))
            }

            $($extra)*
        }
    };
}

/// `typed_class!` for a sending class, with `send`, `try_send`, `send_many`, the constructors
/// `create`/`open`, and `$extra`.
macro_rules! tx_class {
    (
        $(#[$meta:meta])*
        $cls:ident, $pyname:literal, $handle:ty, $what:literal, { $($extra:tt)* }
    ) => {
        typed_class! {
            $(#[$meta])*
            $cls, $pyname, TxCore<$handle>, {
                #[new]
                #[pyo3(signature = (
                    name, *, create = false, dtype = None, format = None, type_name = None,
                    **options
                ))]
                fn new(
                    py: Python<'_>,
                    name: &str,
                    create: bool,
                    dtype: Option<&Bound<'_, PyAny>>,
                    format: Option<&str>,
                    type_name: Option<&str>,
                    options: Option<&Bound<'_, PyDict>>,
                ) -> PyResult<Self> {
                    let codec = Codec::new(py, dtype, format, type_name)?;
                    let how = if create { Attach::Create } else { Attach::Open };
                    Ok($cls {
                        core: TxCore::new(py, name, how, codec, options, $what)?,
                    })
                }

                /// Create the channel `name` and attach to it. Keywords: `dtype=` (a numpy
                /// dtype) or `format=` (a `struct` format), `type_name=` (required: the name the
                /// other side knows the element by), and the options (`capacity` in elements,
                /// `backend`, ...).
                #[classmethod]
                #[pyo3(signature = (name, **options))]
                fn create<'py>(
                    cls: &Bound<'py, PyType>,
                    name: &str,
                    options: Option<&Bound<'py, PyDict>>,
                ) -> PyResult<Bound<'py, PyAny>> {
                    cls.call((name,), Some(&with_create(cls.py(), options, true)?))
                }

                /// Open the existing channel `name` and attach to it (keywords as `create`'s).
                /// `Incompatible` if its element has another name, size or alignment.
                #[classmethod]
                #[pyo3(signature = (name, **options))]
                fn open<'py>(
                    cls: &Bound<'py, PyType>,
                    name: &str,
                    options: Option<&Bound<'py, PyDict>>,
                ) -> PyResult<Bound<'py, PyAny>> {
                    cls.call((name,), Some(&with_create(cls.py(), options, false)?))
                }

                /// Send one element, waiting for room at most `timeout` seconds (`None`: as
                /// long as it takes). `value` is a tuple of the fields, an `np.void` (or numpy
                /// scalar) of the dtype, a Python number for a plain dtype, or `bytes` of
                /// exactly one element. Raises `Timeout`, `Disconnected`.
                #[pyo3(signature = (value, timeout = None))]
                fn send(
                    &self,
                    py: Python<'_>,
                    value: &Bound<'_, PyAny>,
                    timeout: Option<f64>,
                ) -> PyResult<()> {
                    self.core.send(py, value, Patience::from_timeout(timeout)?)
                }

                /// Send one element if there is room now; `Full` otherwise.
                fn try_send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
                    self.core.send(py, value, Patience::Try)
                }

                /// Send every element of `values` in order, in batches: a C-contiguous ndarray
                /// of the dtype, a bytes-like object of whole elements, or a sequence of values.
                /// Waits for room at most `timeout` seconds in all; `Timeout` and `Disconnected`
                /// carry `.sent`, how many elements went before.
                #[pyo3(signature = (values, timeout = None))]
                fn send_many(
                    &self,
                    py: Python<'_>,
                    values: &Bound<'_, PyAny>,
                    timeout: Option<f64>,
                ) -> PyResult<()> {
                    self.core.send_many(py, values, Patience::from_timeout(timeout)?)
                }

                $($extra)*
            }
        }
    };
}

/// `typed_class!` for a receiving class, with `recv`, `try_recv`, `recv_into` and the asyncio
/// hooks, and `$extra` (which has the constructors).
macro_rules! rx_class {
    (
        $(#[$meta:meta])*
        $cls:ident, $pyname:literal, $handle:ty, { $($extra:tt)* }
    ) => {
        typed_class! {
            $(#[$meta])*
            $cls, $pyname, RxCore<$handle>, {
                /// The next element, waiting at most `timeout` seconds (`None`: as long as it
                /// takes): an `np.void` (a copy) for a structured dtype, a numpy scalar for a
                /// plain one, a tuple with `format=`. Raises `Timeout`, `Disconnected`.
                #[pyo3(signature = (timeout = None))]
                fn recv<'py>(
                    &self,
                    py: Python<'py>,
                    timeout: Option<f64>,
                ) -> PyResult<Bound<'py, PyAny>> {
                    self.core.recv(py, Patience::from_timeout(timeout)?)
                }

                /// The next element if there is one now; `Empty` otherwise.
                fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                    self.core.recv(py, Patience::Try)
                }

                /// Receive into `buffer` (a writable C-contiguous ndarray of the dtype, or a
                /// writable buffer of whole elements) as many elements as are there, up to
                /// what it holds, waiting at most `timeout` seconds for the first; returns how
                /// many. The fast path: one call for a whole batch.
                #[pyo3(signature = (buffer, timeout = None))]
                fn recv_into(
                    &self,
                    py: Python<'_>,
                    buffer: &Bound<'_, PyAny>,
                    timeout: Option<f64>,
                ) -> PyResult<usize> {
                    self.core.recv_into(py, buffer, Patience::from_timeout(timeout)?)
                }

                /// One poll of an asynchronous receive (for `recv_async`): the element, or
                /// `None` with `waker` to be woken with `token` when there may be one.
                fn _poll_recv<'py>(
                    &self,
                    py: Python<'py>,
                    waker: &crate::aio::LoopWaker,
                    token: u64,
                ) -> PyResult<Option<Bound<'py, PyAny>>> {
                    self.core.poll(py, waker, token)
                }

                /// End the asynchronous receive `token` (all of them: `None`); it took
                /// nothing.
                #[pyo3(signature = (token = None))]
                fn _cancel_recv(&self, py: Python<'_>, token: Option<u64>) {
                    self.core.cancel(py, token)
                }

                $($extra)*
            }
        }
    };
}

/// `len`, `is_connected` and `wait_for_peer` of an SPSC or MPMC endpoint, whose peer is
/// `$peer`, added to a class made by `$class` (`tx_class` or `rx_class`) with `$extra`.
macro_rules! endpoint_class {
    (
        $class:ident, $peer:literal,
        $(#[$meta:meta])*
        $cls:ident, $pyname:literal, $handle:ty, $($what:literal,)? { $($extra:tt)* }
    ) => {
        $class! {
            $(#[$meta])*
            $cls, $pyname, $handle, $($what,)? {
                /// Elements in the ring now.
                fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
                    self.core.with(py, |h| Ok(h.ring_len()))
                }

                #[doc = concat!("Is a ", $peer, " attached and alive now (asks the kernel)?")]
                fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
                    self.core.with(py, |h| Ok(h.connected()))
                }

                #[doc = concat!(
                    "Wait until a ", $peer, " is attached and alive, at most `timeout` seconds."
                )]
                #[pyo3(signature = (timeout = None))]
                fn wait_for_peer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
                    let d = deadline(timeout)?;
                    self.core.with(py, |h| wait_for_peer(py, d, move |t| h.wait_peer(t)))
                }

                $($extra)*
            }
        }
    };
}

/// `create` and `open` of an SPSC or MPMC receiving class (`$what` names it in messages).
macro_rules! rx_endpoint_class {
    (
        $(#[$meta:meta])*
        $cls:ident, $pyname:literal, $handle:ty, $what:literal
    ) => {
        endpoint_class! {
            rx_class, "sender",
            $(#[$meta])*
            $cls, $pyname, $handle, {
                #[new]
                #[pyo3(signature = (
                    name, *, create = false, dtype = None, format = None, type_name = None,
                    **options
                ))]
                fn new(
                    py: Python<'_>,
                    name: &str,
                    create: bool,
                    dtype: Option<&Bound<'_, PyAny>>,
                    format: Option<&str>,
                    type_name: Option<&str>,
                    options: Option<&Bound<'_, PyDict>>,
                ) -> PyResult<Self> {
                    let codec = Codec::new(py, dtype, format, type_name)?;
                    let how = if create { Attach::Create } else { Attach::Open };
                    Ok($cls {
                        core: RxCore::new(py, name, how, codec, options, $what)?,
                    })
                }

                /// Create the channel `name` and attach to it. Keywords: `dtype=` (a numpy
                /// dtype) or `format=` (a `struct` format), `type_name=` (required: the name the
                /// other side knows the element by), and the options (`capacity` in elements,
                /// `backend`, ...).
                #[classmethod]
                #[pyo3(signature = (name, **options))]
                fn create<'py>(
                    cls: &Bound<'py, PyType>,
                    name: &str,
                    options: Option<&Bound<'py, PyDict>>,
                ) -> PyResult<Bound<'py, PyAny>> {
                    cls.call((name,), Some(&with_create(cls.py(), options, true)?))
                }

                /// Open the existing channel `name` and attach to it (keywords as `create`'s).
                /// `Incompatible` if its element has another name, size or alignment.
                #[classmethod]
                #[pyo3(signature = (name, **options))]
                fn open<'py>(
                    cls: &Bound<'py, PyType>,
                    name: &str,
                    options: Option<&Bound<'py, PyDict>>,
                ) -> PyResult<Bound<'py, PyAny>> {
                    cls.call((name,), Some(&with_create(cls.py(), options, false)?))
                }
            }
        }
    };
}

endpoint_class! {
    tx_class, "receiver",
    /// The sending end of an SPSC channel of typed elements (native half of
    /// `shmchan.spsc.Sender`).
    SpscSender, "SpscSender", untyped::spsc::Sender, "spsc.Sender", {}
}

rx_endpoint_class! {
    /// The receiving end of an SPSC channel of typed elements (native half of
    /// `shmchan.spsc.Receiver`).
    SpscReceiver, "SpscReceiver", untyped::spsc::Receiver, "spsc.Receiver"
}

endpoint_class! {
    tx_class, "receiver",
    /// A sending end of an MPMC channel of typed elements (native half of
    /// `shmchan.mpmc.Sender`).
    MpmcSender, "MpmcSender", untyped::mpmc::Sender, "mpmc.Sender", {}
}

rx_endpoint_class! {
    /// A receiving end of an MPMC channel of typed elements (native half of
    /// `shmchan.mpmc.Receiver`).
    MpmcReceiver, "MpmcReceiver", untyped::mpmc::Receiver, "mpmc.Receiver"
}

tx_class! {
    /// The publisher of a broadcast topic of typed elements (native half of
    /// `shmchan.broadcast.Publisher`).
    Publisher, "Publisher", untyped::broadcast::Publisher, "broadcast.Publisher", {
        /// How many subscribers are attached and alive now.
        fn subscriber_count(&self, py: Python<'_>) -> PyResult<usize> {
            self.core.with(py, |h| Ok(h.subscriber_count()))
        }

        /// Is at least one subscriber attached and alive?
        fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
            self.core.with(py, |h| Ok(h.is_connected()))
        }

        /// Wait until at least `n` subscribers are attached, at most `timeout` seconds.
        #[pyo3(signature = (n = 1, timeout = None))]
        fn wait_for_subscribers(
            &self,
            py: Python<'_>,
            n: usize,
            timeout: Option<f64>,
        ) -> PyResult<()> {
            let d = deadline(timeout)?;
            self.core
                .with(py, |h| wait_for_peer(py, d, move |t| h.wait_for_subscribers(n, t)))
        }

        /// `"overwrite"` or `"block"`.
        #[getter]
        fn overflow(&self, py: Python<'_>) -> PyResult<&'static str> {
            self.core.with(py, |h| {
                Ok(match h.overflow() {
                    Overflow::Overwrite => "overwrite",
                    _ => "block",
                })
            })
        }
    }
}

rx_class! {
    /// A subscriber of a broadcast topic of typed elements (native half of
    /// `shmchan.broadcast.Subscriber`).
    Subscriber, "Subscriber", untyped::broadcast::Subscriber, {
        #[new]
        #[pyo3(signature = (
            name, *, dtype = None, format = None, type_name = None, start = None, **options
        ))]
        fn new(
            py: Python<'_>,
            name: &str,
            dtype: Option<&Bound<'_, PyAny>>,
            format: Option<&str>,
            type_name: Option<&str>,
            start: Option<&Bound<'_, PyAny>>,
            options: Option<&Bound<'_, PyDict>>,
        ) -> PyResult<Self> {
            let codec = Codec::new(py, dtype, format, type_name)?;
            let start = match start {
                Some(s) => crate::broadcast::start_of(s)?,
                None => Start::Latest,
            };
            Ok(Subscriber {
                core: RxCore::new(
                    py,
                    name,
                    Attach::Subscribe(start),
                    codec,
                    options,
                    "broadcast.Subscriber",
                )?,
            })
        }

        /// Subscribe to the topic `name`: `dtype=` or `format=`, `type_name=` (required),
        /// `start="latest"` (the next element published; default), `"oldest"` (all the ring
        /// still holds) or `("history", n)` (the last n), and the options.
        #[classmethod]
        #[pyo3(signature = (name, **options))]
        fn open<'py>(
            cls: &Bound<'py, PyType>,
            name: &str,
            options: Option<&Bound<'py, PyDict>>,
        ) -> PyResult<Bound<'py, PyAny>> {
            cls.call((name,), options)
        }

        /// Elements published and not yet read by this subscriber.
        fn lag(&self, py: Python<'_>) -> PyResult<u64> {
            self.core.with(py, |h| Ok(h.lag()))
        }

        /// Is the publisher attached and alive now?
        fn is_connected(&self, py: Python<'_>) -> PyResult<bool> {
            self.core.with(py, |h| Ok(h.is_connected()))
        }

        /// Wait until a publisher is attached and alive, at most `timeout` seconds.
        #[pyo3(signature = (timeout = None))]
        fn wait_for_peer(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
            let d = deadline(timeout)?;
            self.core.with(py, |h| wait_for_peer(py, d, move |t| h.wait_for_peer(t)))
        }
    }
}
