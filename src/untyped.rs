//! Typed channels whose payload type is known at run time: a name, a size and an alignment
//! ([`Element`]) instead of a Rust `T: Pod`. For programs that learn the type from elsewhere
//! (the Python bindings, whose types are `numpy` dtypes; a bridge; a generic recorder), and
//! that must still be peers of a Rust program's `spsc::Sender<Quote>` or `mpmc::Receiver<Quote>`.
//!
//! The channels are the same ones: an [`untyped::spsc::Receiver`](spsc::Receiver) opened with
//! `Element::new("Quote", 24, 8)` receives what a `spsc::Sender::<Quote>` created with
//! [`Options::type_name("Quote")`](crate::Options::type_name) sends, and the reverse; a name,
//! size or alignment that differs is [`Error::Incompatible`], as
//! between two Rust types. Values move as bytes: one element is `size` bytes, in the layout
//! the other side's type has (`repr(C)` on the Rust side, an aligned dtype or a `struct`
//! format in Python).
//!
//! Every call moves a *batch*: `values` holds whole elements (one or more), and a receive
//! fills up to as many elements as `buf` holds. Each element is copied once, race-free
//! (`ring/copy.rs`), straight between the caller's memory and its slot.
//!
//! ```
//! use shmchan::{untyped::{self, Element}, Options};
//! # let name = format!("doc-untyped-{}", std::process::id());
//! let pair = Element::new("Pair", 8, 4); // e.g. a C `struct { uint32_t a, b; }`
//! let tx = untyped::spsc::Sender::create(&name, &pair, &Options::new().capacity(16))?;
//! let rx = untyped::spsc::Receiver::open(&name, &pair, &Options::new())?;
//! let values: Vec<u8> = [1u32, 2, 3, 4].iter().flat_map(|v| v.to_ne_bytes()).collect();
//! tx.send(&values)?; // two elements
//! let mut buf = [0u8; 64]; // room for eight
//! let n = rx.recv(&mut buf)?;
//! assert_eq!(n, 2);
//! assert_eq!(buf[..16], values[..]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod mpmc;
pub mod spsc;

/// Broadcast topics of [`Element`]s: the peers of
/// [`broadcast::Publisher<T>`](crate::broadcast::Publisher) and
/// [`broadcast::Subscriber<T>`](crate::broadcast::Subscriber) for a program that has no `T`.
/// Errors, overflow modes and starting points are [`broadcast`](crate::broadcast)'s.
pub mod broadcast {
    pub use crate::broadcast::elements::{Publisher, Subscriber};
}

use crate::error::Error;
use crate::layout::Fingerprint;
use crate::reactor::Wait;

/// A payload type described at run time: its name, its size in bytes and its alignment.
///
/// The name is what both sides agree on, in place of a Rust type name (see
/// [`Options::type_name`](crate::Options::type_name)): 1 to 104 bytes, without `::` or control
/// characters, not `frames` or `bytes`. The size is 1 byte to 1 GiB, the alignment a power of
/// two that divides it (as for any Rust or C type); `create` and `open` return
/// [`Error::InvalidOptions`] otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Element {
    name: String,
    size: usize,
    align: usize,
}

impl Element {
    /// An element named `name`, `size` bytes long, aligned to `align` bytes.
    pub fn new(name: impl Into<String>, size: usize, align: usize) -> Element {
        Element {
            name: name.into(),
            size,
            align,
        }
    }

    /// The element of the Rust type `T` (its size and alignment) under the name `name`: what
    /// a typed handle of `T` with [`Options::type_name(name)`](crate::Options::type_name)
    /// checks against.
    pub fn of<T: crate::Pod>(name: impl Into<String>) -> Element {
        Element::new(name, size_of::<T>(), align_of::<T>())
    }

    /// The element's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The element's size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The element's alignment in bytes.
    pub fn align(&self) -> usize {
        self.align
    }

    pub(crate) fn fingerprint(&self) -> Result<Fingerprint, Error> {
        Fingerprint::element(self.size, self.align, &self.name)
            .map_err(|reason| Error::InvalidOptions { reason })
    }
}

/// The waiting state of one async operation on an untyped handle, for its `poll_send`,
/// `poll_recv` (and the `send_async`/`recv_async` built on them): keep one per pending
/// operation and pass it to each poll of it. Dropping it, or a poll that completes, removes
/// the operation's registration with the reactor (see the crate's "Async" docs: no thread per
/// channel). For bindings whose futures live outside Rust (asyncio) and so cannot borrow a
/// handle across polls.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// use shmchan::untyped::{self, Element, Waiting};
/// use shmchan::Options;
/// # let name = format!("doc-untyped-waiting-{}", std::process::id());
/// let e = Element::new("u32", 4, 4);
/// let tx = untyped::spsc::Sender::create(&name, &e, &Options::new())?;
/// let rx = untyped::spsc::Receiver::open(&name, &e, &Options::new())?;
/// let mut waiting = Waiting::new();
/// let mut buf = [0u8; 16];
/// let t = std::thread::spawn(move || tx.send(&7u32.to_ne_bytes()));
/// let n = std::future::poll_fn(|cx| rx.poll_recv(cx, &mut waiting, &mut buf)).await?;
/// assert_eq!((n, &buf[..4]), (1, &7u32.to_ne_bytes()[..]));
/// t.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Waiting(Wait);

impl Default for Waiting {
    fn default() -> Waiting {
        Waiting::new()
    }
}

impl Waiting {
    /// A new waiting state, registered with nothing.
    pub const fn new() -> Waiting {
        Waiting(Wait::new())
    }

    pub(crate) fn wait(&mut self) -> &mut Wait {
        &mut self.0
    }
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("untyped::Waiting").finish_non_exhaustive()
    }
}

/// Send every element of `values` (whole elements of `size` bytes) in order, a prefix at a
/// time: `send_some(rest)` sends a non-empty prefix of `rest`, waiting as its caller's deadline
/// allows, and says how many. The error says how many were sent before it.
#[track_caller]
fn send_all(
    values: &[u8],
    size: usize,
    mut send_some: impl FnMut(&[u8]) -> Result<usize, crate::SendTimeoutError<()>>,
) -> Result<(), crate::SendTimeoutError<usize>> {
    use crate::SendTimeoutError::{Disconnected, Timeout};
    let total = elements(values.len(), size, "values");
    let mut sent = 0;
    while sent < total {
        match send_some(&values[sent * size..]) {
            Ok(n) => sent += n,
            Err(Timeout(())) => return Err(Timeout(sent)),
            Err(Disconnected(())) => return Err(Disconnected(sent)),
        }
    }
    Ok(())
}

/// `send_async` of every untyped sender: every element of `values` (whole elements of `size`
/// bytes), a prefix at a time, each published by `poll_send(cx, waiting, rest)` (the handle's
/// `poll_send`). The error says how many were sent before it.
pub(crate) async fn send_all_async(
    values: &[u8],
    size: usize,
    mut poll_send: impl FnMut(
        &mut std::task::Context<'_>,
        &mut Waiting,
        &[u8],
    ) -> std::task::Poll<Result<usize, crate::SendError<()>>>,
) -> Result<(), crate::SendError<usize>> {
    let mut waiting = Waiting::new();
    let mut sent = 0;
    while sent * size < values.len() {
        let rest = &values[sent * size..];
        match std::future::poll_fn(|cx| poll_send(cx, &mut waiting, rest)).await {
            Ok(n) => sent += n,
            Err(crate::SendError(())) => return Err(crate::SendError(sent)),
        }
    }
    Ok(())
}

/// `Debug` for an untyped handle (`$label`), whose `chan()` and `capacity()` exist.
macro_rules! debug_impl {
    ($ty:ty, $label:literal) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct($label)
                    .field("name", &self.chan().name)
                    .field("backend", &self.chan().backend)
                    .field("element_size", &self.size)
                    .field("capacity", &self.capacity())
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use debug_impl;

/// How many whole elements of `size` bytes `len` bytes hold.
///
/// # Panics
/// If `len` is not a multiple of `size`: a caller's mistake, like a slice index out of
/// bounds (the Python bindings check it first and raise `ValueError`).
#[inline]
#[track_caller]
pub(crate) fn elements(len: usize, size: usize, what: &str) -> usize {
    assert!(
        len % size == 0,
        "{what} holds {len} bytes, not a whole number of {size}-byte elements"
    );
    len / size
}
