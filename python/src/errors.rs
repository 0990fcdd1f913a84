//! The exception classes (`shmchan.Error` and its subclasses) and the mapping of every Rust
//! error onto them. The message is always the Rust error's `Display`.
//!
//! The classes are made at module initialisation with `type(name, bases, ns)`, because several
//! of them also derive from a built-in exception (`Disconnected` is an `EOFError`, `Timeout` a
//! `TimeoutError`, ...), which `create_exception!` cannot express.

use std::fmt::Display;

use pyo3::exceptions;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// The classes, in the order of [`TABLE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Error,
    Disconnected,
    Timeout,
    Full,
    Empty,
    Incompatible,
    AlreadyExists,
    NotFound,
    NotReady,
    InUse,
    EndpointTaken,
    TooLarge,
    Closed,
    ForkedHandle,
    InvalidName,
    InvalidOptions,
    Io,
    Lagged,
    Evicted,
}

/// A base of a class: one of ours (made earlier in the table) or a built-in.
enum Base {
    Ours(Kind),
    Builtin(fn(Python<'_>) -> Bound<'_, PyType>),
}

fn b<T: pyo3::PyTypeInfo>(py: Python<'_>) -> Bound<'_, PyType> {
    py.get_type::<T>()
}

/// Name, bases, docstring.
const TABLE: &[(Kind, &str, &[Base], &str)] = &[
    (
        Kind::Error,
        "Error",
        &[Base::Builtin(b::<exceptions::PyException>)],
        "Base class of every shmchan error. The message is the Rust library's.",
    ),
    (
        Kind::Disconnected,
        "Disconnected",
        &[
            Base::Ours(Kind::Error),
            Base::Builtin(b::<exceptions::PyEOFError>),
        ],
        "The peer is gone (closed, or its process died) and the ring is drained (receivers), or \
         nobody will read (senders). Also an EOFError. A new peer can attach later.",
    ),
    (
        Kind::Timeout,
        "Timeout",
        &[
            Base::Ours(Kind::Error),
            Base::Builtin(b::<exceptions::PyTimeoutError>),
        ],
        "The timeout expired before a message (or room) came. Also a TimeoutError.",
    ),
    (
        Kind::Full,
        "Full",
        &[Base::Ours(Kind::Error)],
        "try_send: there is no room in the ring now.",
    ),
    (
        Kind::Empty,
        "Empty",
        &[Base::Ours(Kind::Error)],
        "try_recv: there is no message now.",
    ),
    (
        Kind::Incompatible,
        "Incompatible",
        &[Base::Ours(Kind::Error)],
        "The name holds a channel of another kind, payload or layout (or not a channel).",
    ),
    (
        Kind::AlreadyExists,
        "AlreadyExists",
        &[
            Base::Ours(Kind::Error),
            Base::Builtin(b::<exceptions::PyFileExistsError>),
        ],
        "create: the name is taken. Also a FileExistsError.",
    ),
    (
        Kind::NotFound,
        "NotFound",
        &[
            Base::Ours(Kind::Error),
            Base::Builtin(b::<exceptions::PyFileNotFoundError>),
        ],
        "open: no channel has that name. Also a FileNotFoundError.",
    ),
    (
        Kind::NotReady,
        "NotReady",
        &[
            Base::Ours(Kind::Error),
            Base::Builtin(b::<exceptions::PyTimeoutError>),
        ],
        "open: the channel's creator did not finish creating it within open_timeout.",
    ),
    (
        Kind::InUse,
        "InUse",
        &[Base::Ours(Kind::Error)],
        "The channel (or this role in it) is held by a live endpoint.",
    ),
    (
        Kind::EndpointTaken,
        "EndpointTaken",
        &[Base::Ours(Kind::InUse)],
        "The channel already has its sender (or receiver, or publisher) attached and alive.",
    ),
    (
        Kind::TooLarge,
        "TooLarge",
        &[
            Base::Ours(Kind::Error),
            Base::Builtin(b::<exceptions::PyValueError>),
        ],
        "The frame is longer than the channel's max_frame; nothing was sent.",
    ),
    (
        Kind::Closed,
        "Closed",
        &[Base::Ours(Kind::Error)],
        "The channel was closed by its last handle before this one could join: create it anew.",
    ),
    (
        Kind::ForkedHandle,
        "ForkedHandle",
        &[Base::Ours(Kind::Error)],
        "A handle inherited through fork() was used in the child: open the channel in the child.",
    ),
    (
        Kind::InvalidName,
        "InvalidName",
        &[
            Base::Ours(Kind::Error),
            Base::Builtin(b::<exceptions::PyValueError>),
        ],
        "The channel name is empty, too long, or contains '/' or NUL.",
    ),
    (
        Kind::InvalidOptions,
        "InvalidOptions",
        &[
            Base::Ours(Kind::Error),
            Base::Builtin(b::<exceptions::PyValueError>),
        ],
        "An option is out of range (a capacity of 0, too large, ...).",
    ),
    (
        Kind::Io,
        "Io",
        &[
            Base::Ours(Kind::Error),
            Base::Builtin(b::<exceptions::PyOSError>),
        ],
        "A system call failed (errno is set). Also an OSError.",
    ),
    (
        Kind::Lagged,
        "Lagged",
        &[Base::Ours(Kind::Error)],
        "Broadcast: the publisher overwrote `missed` messages before this subscriber read them; \
         the next receive goes on with the oldest message still in the ring.",
    ),
    (
        Kind::Evicted,
        "Evicted",
        &[Base::Ours(Kind::Error)],
        "Broadcast (Block mode): this subscriber held the publisher back longer than \
         evict_after and was dropped; open the topic again to go on.",
    ),
];

static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn build(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let type_ = py.get_type::<PyType>();
    let mut made: Vec<Py<PyType>> = Vec::with_capacity(TABLE.len());
    for (i, (kind, name, bases, doc)) in TABLE.iter().enumerate() {
        debug_assert_eq!(*kind as usize, i);
        let bases: Vec<Bound<'_, PyType>> = bases
            .iter()
            .map(|base| match base {
                Base::Ours(k) => made[*k as usize].bind(py).clone(),
                Base::Builtin(f) => f(py),
            })
            .collect();
        let ns = PyDict::new(py);
        ns.set_item("__module__", "shmchan")?;
        ns.set_item("__doc__", *doc)?;
        let cls = type_.call1((*name, PyTuple::new(py, bases)?, ns))?;
        made.push(cls.cast_into::<PyType>()?.unbind());
    }
    Ok(made)
}

/// Make the classes and add them to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let types = TYPES.get_or_try_init(py, || build(py))?;
    for ((_, name, _, _), ty) in TABLE.iter().zip(types) {
        m.add(*name, ty.bind(py))?;
    }
    Ok(())
}

fn class(py: Python<'_>, kind: Kind) -> Bound<'_, PyType> {
    let types = TYPES
        .get(py)
        .expect("the exception classes are made when the module is initialised");
    types[kind as usize].bind(py).clone()
}

/// An exception of class `kind` with message `msg`.
pub(crate) fn new(py: Python<'_>, kind: Kind, msg: impl Display) -> PyErr {
    PyErr::from_type(class(py, kind), msg.to_string())
}

/// An exception of class `kind` with message `msg` and attributes set on the instance.
pub(crate) fn with_attrs(
    py: Python<'_>,
    kind: Kind,
    msg: impl Display,
    attrs: &[(&str, Py<PyAny>)],
) -> PyErr {
    let make = || -> PyResult<PyErr> {
        let exc = class(py, kind).call1((msg.to_string(),))?;
        for (k, v) in attrs {
            exc.setattr(*k, v)?;
        }
        Ok(PyErr::from_value(exc))
    };
    make().unwrap_or_else(|e| e)
}

/// The exception for a `shmchan::Error` (creating or opening a channel).
pub(crate) fn from_error(py: Python<'_>, e: shmchan::Error) -> PyErr {
    use shmchan::Error as E;
    let errno = |n: i32| -> Vec<(&str, Py<PyAny>)> {
        vec![(
            "errno",
            n.into_pyobject(py).expect("an int").into_any().unbind(),
        )]
    };
    match &e {
        E::InvalidName { .. } => new(py, Kind::InvalidName, &e),
        E::InvalidOptions { .. } => new(py, Kind::InvalidOptions, &e),
        E::AlreadyExists { .. } => with_attrs(py, Kind::AlreadyExists, &e, &errno(libc::EEXIST)),
        E::NotFound { .. } => with_attrs(py, Kind::NotFound, &e, &errno(libc::ENOENT)),
        E::NotReady { .. } => new(py, Kind::NotReady, &e),
        E::Incompatible { .. } => new(py, Kind::Incompatible, &e),
        E::EndpointTaken { .. } => new(py, Kind::EndpointTaken, &e),
        E::InUse { .. } => new(py, Kind::InUse, &e),
        E::Closed { .. } => new(py, Kind::Closed, &e),
        E::Io { source, .. } => match source.raw_os_error() {
            Some(n) => with_attrs(py, Kind::Io, &e, &errno(n)),
            None => new(py, Kind::Io, &e),
        },
        // `shmchan::Error` is non-exhaustive: a variant added later is still a shmchan.Error.
        _ => new(py, Kind::Error, &e),
    }
}

/// `shmchan.Disconnected` with the Rust error's message.
pub(crate) fn disconnected(py: Python<'_>, msg: impl Display) -> PyErr {
    new(py, Kind::Disconnected, msg)
}

/// `shmchan.Timeout` with the Rust error's message.
pub(crate) fn timeout(py: Python<'_>, msg: impl Display) -> PyErr {
    new(py, Kind::Timeout, msg)
}

/// The exception for a `WaitForPeerError`.
pub(crate) fn from_wait_for_peer(py: Python<'_>, e: shmchan::WaitForPeerError) -> PyErr {
    match e {
        shmchan::WaitForPeerError::Timeout => timeout(py, e),
        shmchan::WaitForPeerError::Disconnected => disconnected(py, e),
        // Non-exhaustive in spirit: anything else is still a shmchan.Error.
        #[allow(unreachable_patterns)]
        _ => new(py, Kind::Error, e),
    }
}

/// `ValueError` for an operation on a handle that was closed.
pub(crate) fn closed_handle(what: &str) -> PyErr {
    exceptions::PyValueError::new_err(format!("operation on a closed {what}"))
}
