//! Errors: [`Error`] for creating and opening a channel, and crossbeam-channel's data-path
//! errors for sending and receiving.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::options::Backend;

/// Why a channel could not be created or opened.
///
/// Every variant names the channel and the backend, and says what was expected and what was
/// found, so the message can be acted on.
///
/// ```
/// use shmchan::{spsc, Error, Options};
///
/// let err = spsc::Receiver::<u64>::open("shmchan-doc-no-such-channel", &Options::new()).unwrap_err();
/// assert!(matches!(err, Error::NotFound { .. }));
/// assert!(err.to_string().contains("shmchan-doc-no-such-channel"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The name is empty, too long, or contains a character that cannot appear in it.
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An option is out of range (capacity 0, too large, a payload type that cannot be placed).
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// `create` found the name already in use (by a live channel or by something else).
    AlreadyExists {
        /// The channel name.
        name: String,
        /// Where it was looked for.
        backend: Backend,
    },
    /// `open` found no region with that name.
    NotFound {
        /// The channel name.
        name: String,
        /// Where it was looked for.
        backend: Backend,
    },
    /// The region exists but its creator did not finish initialising it before the open
    /// timeout (it may have crashed while creating it).
    NotReady {
        /// The channel name.
        name: String,
        /// Where it was found.
        backend: Backend,
        /// How long `open` waited.
        waited: Duration,
    },
    /// The region exists but is not a channel this handle can use: another payload type,
    /// another channel kind, another layout version, a different name behind the same System V
    /// key, or a header that is not shmchan's at all.
    Incompatible {
        /// The channel name.
        name: String,
        /// Where it was found.
        backend: Backend,
        /// What was expected and what was found.
        detail: String,
    },
    /// The channel already has as many endpoints of this role as it allows (an SPSC channel
    /// takes one sender and one receiver), or that role's endpoint has attached and left.
    EndpointTaken {
        /// The channel name.
        name: String,
        /// `"sender"` or `"receiver"`.
        role: &'static str,
        /// Why no slot could be taken.
        detail: &'static str,
    },
    /// [`remove`](crate::remove) found an endpoint of the channel alive, and left it.
    InUse {
        /// The channel name.
        name: String,
        /// Where it was found.
        backend: Backend,
        /// Which endpoints are alive (role and pid).
        detail: String,
    },
    /// The channel was closed (its last endpoint left) before this handle could join it;
    /// create it anew.
    Closed {
        /// The channel name.
        name: String,
        /// Where it was found.
        backend: Backend,
    },
    /// A system call failed.
    Io {
        /// What shmchan was doing (e.g. `"shm_open"`, `"posix_fallocate"`).
        op: &'static str,
        /// The channel name.
        name: String,
        /// The backend in use.
        backend: Backend,
        /// The operating system's error.
        source: io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName { name, reason } => {
                write!(f, "invalid channel name {name:?}: {reason}")
            }
            Error::InvalidOptions { reason } => write!(f, "invalid options: {reason}"),
            Error::AlreadyExists { name, backend } => write!(
                f,
                "cannot create channel {name:?}: {} already exists (another channel lives there; \
                 pick another name or open it instead)",
                backend.location(name)
            ),
            Error::NotFound { name, backend } => {
                write!(
                    f,
                    "no channel named {name:?}: {} does not exist",
                    backend.location(name)
                )
            }
            Error::NotReady {
                name,
                backend,
                waited,
            } => write!(
                f,
                "channel {name:?} at {} was not initialised by its creator within {waited:?} \
                 (the creator may have died while creating it)",
                backend.location(name)
            ),
            Error::Incompatible {
                name,
                backend,
                detail,
            } => write!(
                f,
                "cannot open channel {name:?} at {}: {detail}",
                backend.location(name)
            ),
            Error::EndpointTaken { name, role, detail } => {
                write!(f, "cannot attach a {role} to channel {name:?}: {detail}")
            }
            Error::InUse {
                name,
                backend,
                detail,
            } => write!(
                f,
                "channel {name:?} at {} is in use ({detail}); not removed",
                backend.location(name)
            ),
            Error::Closed { name, backend } => write!(
                f,
                "channel {name:?} at {} was closed by its last handle; create it anew",
                backend.location(name)
            ),
            Error::Io {
                op,
                name,
                backend,
                source,
            } => write!(
                f,
                "{op} failed for channel {name:?} at {}: {source}",
                backend.location(name)
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The receiving side is gone; the message comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub struct SendError<T>(pub T);

/// Why [`try_send`](crate::spsc::Sender::try_send) did not send; the message comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum TrySendError<T> {
    /// The ring is full.
    Full(T),
    /// The receiving side is gone.
    Disconnected(T),
}

/// Why [`send_timeout`](crate::spsc::Sender::send_timeout) did not send; the message comes back.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendTimeoutError<T> {
    /// The ring stayed full for the whole timeout.
    Timeout(T),
    /// The receiving side is gone.
    Disconnected(T),
}

/// The ring is empty and every sender is gone.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub struct RecvError;

/// Why [`try_recv`](crate::spsc::Receiver::try_recv) returned no message.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum TryRecvError {
    /// The ring is empty.
    Empty,
    /// The ring is empty and every sender is gone.
    Disconnected,
}

/// Why [`recv_timeout`](crate::spsc::Receiver::recv_timeout) returned no message.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum RecvTimeoutError {
    /// The ring stayed empty for the whole timeout.
    Timeout,
    /// The ring is empty and every sender is gone.
    Disconnected,
}

/// Why [`wait_for_peer`](crate::spsc::Sender::wait_for_peer) returned without a peer.
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub enum WaitForPeerError {
    /// No peer attached within the timeout (none yet, or none since the last one left).
    Timeout,
    /// No peer can attach any more: the channel is an in-process one whose other end was
    /// dropped, its name was removed by force (`shmchan rm --force`), or this is a forked
    /// child's copy of a handle.
    Disconnected,
}

impl fmt::Display for WaitForPeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitForPeerError::Timeout => f.write_str("timed out waiting for a peer to attach"),
            WaitForPeerError::Disconnected => {
                f.write_str("no peer can attach to this channel any more")
            }
        }
    }
}

impl std::error::Error for WaitForPeerError {}

impl<T> SendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> TrySendError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        }
    }
    /// Was the ring full?
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full(_))
    }
    /// Is the receiving side gone?
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TrySendError::Disconnected(_))
    }
}

impl<T> SendTimeoutError<T> {
    /// The message that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendTimeoutError::Timeout(v) | SendTimeoutError::Disconnected(v) => v,
        }
    }
    /// Did the timeout expire?
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout(_))
    }
    /// Is the receiving side gone?
    pub fn is_disconnected(&self) -> bool {
        matches!(self, SendTimeoutError::Disconnected(_))
    }
}

impl TrySendError<()> {
    /// The same error, carrying `value` (the by-reference send paths hand the caller's value
    /// back only when it was not sent).
    pub(crate) fn with<T>(self, value: T) -> TrySendError<T> {
        match self {
            TrySendError::Full(()) => TrySendError::Full(value),
            TrySendError::Disconnected(()) => TrySendError::Disconnected(value),
        }
    }
}

impl SendTimeoutError<()> {
    /// As [`TrySendError::with`].
    pub(crate) fn with<T>(self, value: T) -> SendTimeoutError<T> {
        match self {
            SendTimeoutError::Timeout(()) => SendTimeoutError::Timeout(value),
            SendTimeoutError::Disconnected(()) => SendTimeoutError::Disconnected(value),
        }
    }
}

impl TryRecvError {
    /// Was the ring empty?
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
    /// Is every sender gone?
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TryRecvError::Disconnected)
    }
}

impl RecvTimeoutError {
    /// Did the timeout expire?
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }
    /// Is every sender gone?
    pub fn is_disconnected(&self) -> bool {
        matches!(self, RecvTimeoutError::Disconnected)
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}
impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}
impl<T> fmt::Debug for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("Timeout(..)"),
            SendTimeoutError::Disconnected(_) => f.write_str("Disconnected(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending on a disconnected channel")
    }
}
impl<T> fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("sending on a full channel"),
            TrySendError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}
impl<T> fmt::Display for SendTimeoutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting on send operation"),
            SendTimeoutError::Disconnected(_) => f.write_str("sending on a disconnected channel"),
        }
    }
}
impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("receiving on an empty and disconnected channel")
    }
}
impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("receiving on an empty channel"),
            TryRecvError::Disconnected => {
                f.write_str("receiving on an empty and disconnected channel")
            }
        }
    }
}
impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting on receive operation"),
            RecvTimeoutError::Disconnected => f.write_str("channel is empty and disconnected"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}
impl<T> std::error::Error for TrySendError<T> {}
impl<T> std::error::Error for SendTimeoutError<T> {}
impl std::error::Error for RecvError {}
impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvTimeoutError {}

impl<T> From<SendError<T>> for TrySendError<T> {
    fn from(SendError(v): SendError<T>) -> Self {
        TrySendError::Disconnected(v)
    }
}
impl<T> From<SendError<T>> for SendTimeoutError<T> {
    fn from(SendError(v): SendError<T>) -> Self {
        SendTimeoutError::Disconnected(v)
    }
}
impl From<RecvError> for TryRecvError {
    fn from(_: RecvError) -> Self {
        TryRecvError::Disconnected
    }
}
impl From<RecvError> for RecvTimeoutError {
    fn from(_: RecvError) -> Self {
        RecvTimeoutError::Disconnected
    }
}
